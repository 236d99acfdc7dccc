//! `S3DeleteObjectTagging` as DeleteObjectTagging.

use batchops_core::ops::TaskTarget;

use super::runner::TaskResult;
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, t: &TaskTarget) -> TaskResult {
    client
        .delete_object_tagging()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok("Successful".into())
}
