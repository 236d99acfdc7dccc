//! `S3PutObjectAcl` as PutObjectAcl: a canned ACL, or an owner with grants.

use aws_sdk_s3::types::{AccessControlPolicy, Grant, Grantee, ObjectCannedAcl, Owner, Permission, Type};
use batchops_core::ops::{PutObjectAcl, TaskTarget};
use batchops_core::retry::TaskFailure;

use super::TaskResult;
use crate::errors::task;

fn policy(
    owner_id: &str,
    display: Option<&str>,
    grants: &[batchops_core::ops::grants::Grant],
) -> Result<AccessControlPolicy, TaskFailure> {
    let bad = |e: aws_sdk_s3::error::BuildError| TaskFailure::permanent(400, "InvalidArgument", e.to_string());
    let grants = grants
        .iter()
        .map(|g| {
            let grantee = match g.kind.as_str() {
                "id" => Grantee::builder().r#type(Type::CanonicalUser).id(&g.identifier),
                "emailAddress" => Grantee::builder().r#type(Type::AmazonCustomerByEmail).email_address(&g.identifier),
                _ => Grantee::builder().r#type(Type::Group).uri(&g.identifier),
            }
            .set_display_name(g.display_name.clone())
            .build()
            .map_err(bad)?;
            Ok(Grant::builder().grantee(grantee).permission(Permission::from(g.permission.as_str())).build())
        })
        .collect::<Result<Vec<_>, TaskFailure>>()?;
    Ok(AccessControlPolicy::builder()
        .owner(Owner::builder().id(owner_id).set_display_name(display.map(String::from)).build())
        .set_grants(Some(grants))
        .build())
}

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectAcl, t: &TaskTarget) -> TaskResult {
    let req = client.put_object_acl().bucket(&t.bucket).key(&t.key).set_version_id(t.version_id.clone());
    let req = match op {
        PutObjectAcl::Canned(acl) => req.acl(ObjectCannedAcl::from(acl.as_str())),
        PutObjectAcl::List { owner_id, owner_display_name, grants } => {
            req.access_control_policy(policy(owner_id, owner_display_name.as_deref(), grants)?)
        }
    };
    req.send().await.map_err(|e| task(&e))?;
    Ok("Successful".into())
}
