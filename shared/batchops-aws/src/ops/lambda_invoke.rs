//! `LambdaInvoke`: one synchronous Invoke per task with S3 Batch Operations' payload; the
//! function's result code decides the task (see `batchops_core::ops::lambda_invoke`).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use batchops_core::ops::lambda_invoke::{outcome, InvokeTask};
use batchops_core::ops::{LambdaInvoke, Task};
use batchops_core::retry::Outcome;

use crate::errors::task;

/// Lambda answers a failed function with 200 and `X-Amz-Function-Error`; local emulators of
/// the Invoke API (`cargo lambda watch`) answer 500 with the function's error document
/// (`errorType`, `errorMessage`) instead. Such a 500 is a function error too, not a failure
/// of the Lambda service (whose errors have a `Type`/`message` body).
fn function_error_body<E>(e: &SdkError<E, Response>) -> Option<Vec<u8>> {
    let SdkError::ServiceError(se) = e else { return None };
    let body = se.raw().body().bytes()?;
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    (doc.get("errorMessage").is_some() && doc.get("errorType").is_some()).then(|| body.to_vec())
}

pub(crate) async fn run(client: &aws_sdk_lambda::Client, op: &LambdaInvoke, t: &Task) -> Outcome {
    let invocation_id = format!("{:032x}", rand::random::<u128>());
    let one = InvokeTask {
        task_id: &t.id,
        encoded_key: &t.encoded_key,
        version_id: t.target.version_id.as_deref(),
        bucket: &t.target.bucket,
    };
    let payload = op.payload(&invocation_id, &t.job_id, &[one]);
    let sent = client
        .invoke()
        .function_name(&op.function_arn)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await;
    match sent {
        Ok(out) => outcome(&t.id, out.payload().map(|b| b.as_ref()).unwrap_or_default(), out.function_error()),
        Err(e) => match function_error_body(&e) {
            Some(body) => outcome(&t.id, &body, Some("Unhandled")),
            None => Outcome::Failed(task(&e)),
        },
    }
}
