//! ACL grants as S3 Control spells them (`S3Grant`), shared by `S3PutObjectCopy`
//! (`AccessControlGrants`) and `S3PutObjectAcl` (`AccessControlList.Grants`).

use serde::Deserialize;

use crate::fields::one_of;
use crate::{Error, Result};

pub const PERMISSIONS: [&str; 5] = ["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"];

/// One validated grant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// `FULL_CONTROL`, `READ`, `WRITE`, `READ_ACP` or `WRITE_ACP`.
    pub permission: String,
    /// `id`, `emailAddress` or `uri` (S3 Control's `TypeIdentifier`).
    pub kind: String,
    pub identifier: String,
    pub display_name: Option<String>,
}

impl Grant {
    /// The grantee as an `x-amz-grant-*` header value: `id="..."`.
    pub fn header(&self) -> String {
        format!("{}=\"{}\"", self.kind, self.identifier)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GrantParam {
    grantee: Option<GranteeParam>,
    permission: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GranteeParam {
    type_identifier: Option<String>,
    identifier: Option<String>,
    display_name: Option<String>,
}

/// Validates a list of grants; `field` is the list's path (`Operation.S3PutObjectCopy.AccessControlGrants`).
pub(crate) fn parse(field: &str, params: &[GrantParam]) -> Result<Vec<Grant>> {
    let mut grants = Vec::with_capacity(params.len());
    for (i, g) in params.iter().enumerate() {
        let gf = format!("{field}[{i}]");
        let grantee = g.grantee.as_ref().ok_or_else(|| Error::field(format!("{gf}.Grantee"), "is required"))?;
        let permission =
            g.permission.as_ref().ok_or_else(|| Error::field(format!("{gf}.Permission"), "is required"))?;
        one_of(&format!("{gf}.Permission"), permission, &PERMISSIONS)?;
        let kind = grantee
            .type_identifier
            .as_deref()
            .ok_or_else(|| Error::field(format!("{gf}.Grantee.TypeIdentifier"), "is required"))?;
        one_of(&format!("{gf}.Grantee.TypeIdentifier"), kind, &["id", "emailAddress", "uri"])?;
        let identifier = grantee
            .identifier
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::field(format!("{gf}.Grantee.Identifier"), "is required"))?;
        grants.push(Grant {
            permission: permission.clone(),
            kind: kind.to_string(),
            identifier: identifier.to_string(),
            display_name: grantee.display_name.clone(),
        });
    }
    Ok(grants)
}
