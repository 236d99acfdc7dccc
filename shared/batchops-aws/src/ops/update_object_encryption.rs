//! `S3UpdateObjectEncryption`: copies each object onto itself with SSE-KMS (the multipart path
//! above the threshold), keeping metadata, tags and storage class; an ACL with more than the
//! owner's full control is read before and put back on the new version after.

use aws_sdk_s3::types::{Permission, Type};
use batchops_core::ops::{CopyObject, Task, UpdateObjectEncryption};

use super::put_object_copy::copy;
use super::runner::{GrantHeaders, S3OperationRunner, TaskResult};
use crate::errors::task;

pub(crate) async fn run(r: &S3OperationRunner, op: &UpdateObjectEncryption, job_task: &Task) -> TaskResult {
    let t = &job_task.target;
    let acl =
        r.s3.get_object_acl()
            .bucket(&t.bucket)
            .key(&t.key)
            .set_version_id(t.version_id.clone())
            .send()
            .await
            .map_err(|e| task(&e))?;
    let owner = acl.owner().and_then(|o| o.id()).map(String::from);
    let only_owner = acl.grants().iter().all(|g| {
        g.permission() == Some(&Permission::FullControl)
            && g.grantee().is_some_and(|gr| gr.r#type() == &Type::CanonicalUser && gr.id().map(String::from) == owner)
    });
    let copy_op = CopyObject {
        target_bucket: t.bucket.clone(),
        sse_kms_key_id: Some(op.kms_key_arn.clone()),
        bucket_key_enabled: Some(op.bucket_key_enabled),
        ..CopyObject::default()
    };
    let copied = copy(r, &copy_op, t, &t.key, job_task.deadline, true).await?;
    if !only_owner {
        let h = GrantHeaders::new(acl.grants().iter().filter_map(|g| {
            let gr = g.grantee()?;
            let header = match gr.r#type() {
                Type::CanonicalUser => format!("id=\"{}\"", gr.id()?),
                Type::Group => format!("uri=\"{}\"", gr.uri()?),
                Type::AmazonCustomerByEmail => format!("emailAddress=\"{}\"", gr.email_address()?),
                _ => return None,
            };
            Some((g.permission()?.as_str(), header))
        }));
        r.s3.put_object_acl()
            .bucket(&t.bucket)
            .key(&t.key)
            .set_version_id(copied.version_id.clone())
            .set_grant_full_control(h.full_control)
            .set_grant_read(h.read)
            .set_grant_read_acp(h.read_acp)
            .set_grant_write(h.write)
            .set_grant_write_acp(h.write_acp)
            .send()
            .await
            .map_err(|e| task(&e))?;
    }
    let mut msg = copied.json(&t.key);
    msg["SSEKMSKeyId"] = serde_json::json!(op.kms_key_arn);
    msg["BucketKeyEnabled"] = serde_json::json!(op.bucket_key_enabled);
    Ok(msg.to_string())
}
