//! `S3PutObjectLegalHold` as PutObjectLegalHold.

use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus};
use batchops_core::ops::{PutObjectLegalHold, TaskTarget};

use super::runner::TaskResult;
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectLegalHold, t: &TaskTarget) -> TaskResult {
    let hold = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::from(op.status.as_str())).build();
    client
        .put_object_legal_hold()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .legal_hold(hold)
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok("Successful".into())
}
