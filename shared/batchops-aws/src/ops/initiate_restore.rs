//! `S3InitiateRestoreObject` as RestoreObject. S3's refusals (an object not in an archive
//! class: `InvalidObjectState`; a conflicting restore in progress: `RestoreAlreadyInProgress`)
//! are failed tasks with S3's code.

use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
use batchops_core::ops::{InitiateRestore, TaskTarget};
use batchops_core::retry::TaskFailure;

use super::runner::TaskResult;
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &InitiateRestore, t: &TaskTarget) -> TaskResult {
    let params = GlacierJobParameters::builder()
        .tier(Tier::from(op.tier.as_str()))
        .build()
        .map_err(|e| TaskFailure::permanent(400, "InvalidArgument", e.to_string()))?;
    let request = RestoreRequest::builder().set_days(op.expiration_days).glacier_job_parameters(params).build();
    let out = client
        .restore_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .restore_request(request)
        .send()
        .await
        .map_err(|e| task(&e))?;
    // 202: a restore started; 200: the object was already restored and its expiry is updated.
    let _ = out;
    Ok("Successful".into())
}
