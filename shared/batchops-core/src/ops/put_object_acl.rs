//! `S3PutObjectAcl`: replaces the access control list of each object (PutObjectAcl), with a
//! canned ACL or with an owner and a list of grants.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-put-object-acl.html>

use serde::Deserialize;
use serde_json::Value;

use super::grants::{self, Grant, GrantParam};
use super::put_object_copy::CANNED_ACLS;
use crate::fields::one_of;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PutObjectAcl {
    Canned(String),
    List { owner_id: String, owner_display_name: Option<String>, grants: Vec<Grant> },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    access_control_policy: Option<PolicyParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PolicyParam {
    access_control_list: Option<ListParam>,
    canned_access_control_list: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListParam {
    owner: Option<OwnerParam>,
    #[serde(default)]
    grants: Vec<GrantParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OwnerParam {
    #[serde(rename = "ID")]
    id: Option<String>,
    display_name: Option<String>,
}

impl PutObjectAcl {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let pf = format!("{field}.AccessControlPolicy");
        let policy = p.access_control_policy.ok_or_else(|| Error::field(&pf, "is required"))?;
        match (policy.access_control_list, policy.canned_access_control_list) {
            (Some(_), Some(_)) => Err(Error::field(
                &pf,
                "set either AccessControlList or CannedAccessControlList, not both (S3 PutObjectAcl takes one)",
            )),
            (None, None) => Err(Error::field(&pf, "needs AccessControlList or CannedAccessControlList")),
            (None, Some(canned)) => {
                one_of(&format!("{pf}.CannedAccessControlList"), &canned, &CANNED_ACLS)?;
                Ok(PutObjectAcl::Canned(canned))
            }
            (Some(list), None) => {
                let lf = format!("{pf}.AccessControlList");
                let owner = list.owner.ok_or_else(|| Error::field(format!("{lf}.Owner"), "is required"))?;
                let owner_id = owner
                    .id
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::field(format!("{lf}.Owner.ID"), "is required"))?;
                let grants = grants::parse(&format!("{lf}.Grants"), &list.grants)?;
                Ok(PutObjectAcl::List { owner_id, owner_display_name: owner.display_name, grants })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3PutObjectAcl";

    #[test]
    fn a_canned_acl_or_an_owner_with_grants() {
        let canned = json!({"AccessControlPolicy": {"CannedAccessControlList": "public-read"}});
        assert_eq!(PutObjectAcl::from_spec(F, &canned).unwrap(), PutObjectAcl::Canned("public-read".into()));
        let list = json!({"AccessControlPolicy": {"AccessControlList": {
            "Owner": {"ID": "abc", "DisplayName": "me"},
            "Grants": [{"Grantee": {"TypeIdentifier": "uri", "Identifier": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}]
        }}});
        match PutObjectAcl::from_spec(F, &list).unwrap() {
            PutObjectAcl::List { owner_id, grants, .. } => {
                assert_eq!(owner_id, "abc");
                assert_eq!(grants[0].kind, "uri");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_member() {
        let cases = [
            (json!({}), "Operation.S3PutObjectAcl.AccessControlPolicy:"),
            (json!({"AccessControlPolicy": {}}), "Operation.S3PutObjectAcl.AccessControlPolicy:"),
            (
                json!({"AccessControlPolicy": {"CannedAccessControlList": "everyone"}}),
                "Operation.S3PutObjectAcl.AccessControlPolicy.CannedAccessControlList:",
            ),
            (
                json!({"AccessControlPolicy": {"AccessControlList": {"Grants": []}}}),
                "Operation.S3PutObjectAcl.AccessControlPolicy.AccessControlList.Owner:",
            ),
            (
                json!({"AccessControlPolicy": {"AccessControlList": {"Owner": {"ID": "a"}, "Grants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "x"}, "Permission": "ALL"}]}}}),
                "Operation.S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants[0].Permission:",
            ),
            (
                json!({"AccessControlPolicy": {"CannedAccessControlList": "private", "AccessControlList": {"Owner": {"ID": "a"}}}}),
                "Operation.S3PutObjectAcl.AccessControlPolicy:",
            ),
        ];
        for (spec, prefix) in cases {
            let err = PutObjectAcl::from_spec(F, &spec).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{spec}: {err}");
        }
    }
}
