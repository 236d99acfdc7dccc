//! `S3PutObjectRetention` as PutObjectRetention, and the per-job check that the bucket has
//! Object Lock (GetObjectLockConfiguration) shared with `S3PutObjectLegalHold`.

use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockRetention, ObjectLockRetentionMode};
use batchops_core::job::JobFailure;
use batchops_core::ops::{PutObjectRetention, TaskTarget};

use super::put_object_copy::dt;
use super::runner::TaskResult;
use crate::errors::{backend, parts, task};

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &PutObjectRetention, t: &TaskTarget) -> TaskResult {
    let retention = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::from(op.mode.as_str()))
        .retain_until_date(dt(op.retain_until))
        .build();
    client
        .put_object_retention()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .retention(retention)
        .set_bypass_governance_retention(op.bypass_governance.then_some(true))
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok("Successful".into())
}

/// S3 Batch Operations "verifies that Object Lock is enabled on your bucket before processing
/// any keys"; so does batchops.
pub(crate) async fn check_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> batchops_core::Result<Option<JobFailure>> {
    let not_enabled = || format!("Object Lock is not enabled on bucket {bucket}; retention and legal holds need it");
    match client.get_object_lock_configuration().bucket(bucket).send().await {
        Ok(out) => {
            let enabled = out.object_lock_configuration().and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled);
            Ok((!enabled).then(|| JobFailure::new("ObjectLockNotEnabled", not_enabled())))
        }
        Err(e) => {
            let (status, code, message) = parts(&e);
            if status >= 500 || status == 0 {
                return Err(backend("GetObjectLockConfiguration", e));
            }
            let reason = if code == "ObjectLockConfigurationNotFoundError" {
                not_enabled()
            } else {
                format!("The Object Lock configuration of bucket {bucket} could not be read: {code} {message}")
            };
            Ok(Some(JobFailure::new("ObjectLockNotEnabled", reason)))
        }
    }
}
