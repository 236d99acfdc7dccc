//! `S3PutObjectAcl` as PutObjectAcl: a canned ACL (`x-amz-acl`), or the grants of an access
//! control list as `x-amz-grant-*` headers (the owner stays the object's owner, as S3
//! requires it to be).

use aws_sdk_s3::types::ObjectCannedAcl;
use batchops_core::ops::{PutObjectAcl, TaskTarget};

use super::runner::{GrantHeaders, TaskResult};
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectAcl, t: &TaskTarget) -> TaskResult {
    let req = client.put_object_acl().bucket(&t.bucket).key(&t.key).set_version_id(t.version_id.clone());
    let req = match op {
        PutObjectAcl::Canned(acl) => req.acl(ObjectCannedAcl::from(acl.as_str())),
        PutObjectAcl::List { grants, .. } => {
            let h = GrantHeaders::new(grants.iter().map(|g| (g.permission.as_str(), g.header())));
            req.set_grant_full_control(h.full_control)
                .set_grant_read(h.read)
                .set_grant_read_acp(h.read_acp)
                .set_grant_write(h.write)
                .set_grant_write_acp(h.write_acp)
        }
    };
    req.send().await.map_err(|e| task(&e))?;
    Ok("Successful".into())
}
