//! `S3PutObjectTagging` as PutObjectTagging.

use batchops_core::ops::{PutObjectTagging, TaskTarget};

use super::{tagging, TaskResult};
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectTagging, t: &TaskTarget) -> TaskResult {
    client
        .put_object_tagging()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .tagging(tagging(&op.tags)?)
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok("Successful".into())
}
