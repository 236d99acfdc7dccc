//! `LambdaInvoke`: one synchronous Invoke per task with S3 Batch Operations' payload; the
//! function's result code decides the task (see `batchops_core::ops::lambda_invoke`).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use batchops_core::ops::lambda_invoke::{outcome, InvokeTask};
use batchops_core::ops::{LambdaInvoke, Task};
use batchops_core::retry::Outcome;

use super::TaskResult;
use crate::errors::task;

pub(crate) async fn run(client: &aws_sdk_lambda::Client, op: &LambdaInvoke, t: &Task) -> TaskResult {
    let invocation_id = format!("{:032x}", rand::random::<u128>());
    let one = InvokeTask {
        task_id: &t.id,
        encoded_key: &t.encoded_key,
        version_id: t.target.version_id.as_deref(),
        bucket: &t.target.bucket,
    };
    let payload = op.payload(&invocation_id, &t.job_id, &[one]);
    let out = client
        .invoke()
        .function_name(&op.function_arn)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| task(&e))?;
    let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
    match outcome(&t.id, body, out.function_error()) {
        Outcome::Succeeded { message } => Ok(message),
        Outcome::Failed(f) => Err(f),
    }
}
