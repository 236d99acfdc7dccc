//! `S3PutObjectTagging` as PutObjectTagging; with `TaggingMode: MERGE`, GetObjectTagging first
//! and the merged set written back.

use batchops_core::ops::{PutObjectTagging, TaggingMode, TaskTarget};
use batchops_core::retry::TaskFailure;

use super::runner::{object_tags, tagging, TaskResult};
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectTagging, t: &TaskTarget) -> TaskResult {
    let tags = match op.mode {
        TaggingMode::Replace => op.tags.clone(),
        TaggingMode::Merge => {
            let existing = object_tags(client, t).await?;
            op.merged(&existing).map_err(|m| TaskFailure::permanent(400, "BadRequest", m))?
        }
    };
    client
        .put_object_tagging()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .tagging(tagging(&tags)?)
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok(match op.mode {
        TaggingMode::Replace => "Successful".into(),
        TaggingMode::Merge => serde_json::json!({ "TagCount": tags.len() }).to_string(),
    })
}
