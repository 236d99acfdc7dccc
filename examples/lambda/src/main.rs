//! An example `LambdaInvoke` function, for S3 Batch Operations and for batchops alike: it reads
//! invocation schema `1.0` (`s3BucketArn`) and `2.0` (`s3Bucket`, `job.userArguments`), one or
//! more tasks per invocation, decodes each key as S3's own examples do (`unquote_plus`), and
//! answers with a result per task.
//!
//! What it does with a key (so that a job can exercise every result code):
//! - `permanent/...`: `PermanentFailure`, with a reason;
//! - `temporary/...`: `TemporaryFailure` every time (the report shows the last attempt);
//! - `flaky/...`: `TemporaryFailure` the first time it sees the task, `Succeeded` after;
//! - `panic/...`: the function fails as a whole (a function error);
//! - `omit/...`: left out of `results` (the job's `treatMissingKeysAs` applies; the user
//!   argument `treatMissingKeysAs` sets it);
//! - anything else: `Succeeded`, with a `resultString` naming the bucket, the decoded key, the
//!   version and the user arguments.
//!
//! Run it locally with `cargo lambda watch` and invoke it through the Lambda Invoke API.

use std::collections::HashMap;
use std::sync::Mutex;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub invocation_schema_version: String,
    pub invocation_id: String,
    pub job: Job,
    pub tasks: Vec<BatchTask>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    #[serde(default)]
    pub user_arguments: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchTask {
    pub task_id: String,
    pub s3_key: String,
    #[serde(default)]
    pub s3_version_id: Option<String>,
    /// Schema 1.0.
    #[serde(default)]
    pub s3_bucket_arn: Option<String>,
    /// Schema 2.0.
    #[serde(default)]
    pub s3_bucket: Option<String>,
}

impl BatchTask {
    pub fn bucket(&self) -> String {
        match (&self.s3_bucket, &self.s3_bucket_arn) {
            (Some(b), _) => b.clone(),
            (None, Some(arn)) => arn.rsplit(':').next().unwrap_or_default().to_string(),
            (None, None) => String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub invocation_schema_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treat_missing_keys_as: Option<String>,
    pub invocation_id: String,
    pub results: Vec<TaskResult>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    pub task_id: String,
    pub result_code: String,
    pub result_string: String,
}

/// Form-style URL decoding, as Python's `urllib.parse.unquote_plus` in AWS's examples.
pub fn unquote_plus(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// How many times each task was seen (tasks are redriven to the same warm instance locally).
static SEEN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn seen(task_id: &str) -> u32 {
    let mut guard = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let n = map.entry(task_id.to_string()).or_default();
    *n += 1;
    *n
}

pub fn handle(event: Invocation) -> Result<Response, Error> {
    let args = event.job.user_arguments.clone().unwrap_or_default();
    let mut results = Vec::new();
    for task in &event.tasks {
        let key = unquote_plus(&task.s3_key);
        let attempt = seen(&task.task_id);
        let (code, message) = if key.starts_with("panic/") {
            return Err(format!("refusing to handle {key}").into());
        } else if key.starts_with("omit/") {
            continue;
        } else if key.starts_with("permanent/") {
            ("PermanentFailure", format!("{key} is not something this function handles"))
        } else if key.starts_with("temporary/") {
            ("TemporaryFailure", format!("{key} is still not ready (attempt {attempt})"))
        } else if key.starts_with("flaky/") && attempt == 1 {
            ("TemporaryFailure", format!("{key} is not ready yet"))
        } else {
            let result = json!({
                "bucket": task.bucket(),
                "key": key,
                "versionId": task.s3_version_id,
                "userArguments": args,
                "attempt": attempt,
                "jobId": event.job.id,
            });
            ("Succeeded", result.to_string())
        };
        results.push(TaskResult { task_id: task.task_id.clone(), result_code: code.into(), result_string: message });
    }
    Ok(Response {
        invocation_schema_version: event.invocation_schema_version,
        treat_missing_keys_as: args.get("treatMissingKeysAs").cloned(),
        invocation_id: event.invocation_id,
        results,
    })
}

async fn function(event: LambdaEvent<Value>) -> Result<Response, Error> {
    let invocation: Invocation = serde_json::from_value(event.payload)?;
    handle(invocation)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(function)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request S3 Batch Operations sends with schema 1.0, verbatim from the S3 user guide.
    #[test]
    fn reads_the_schema_1_0_payload_s3_sends() {
        let event: Invocation = serde_json::from_str(include_str!("../fixtures/s3-schema-1.0.json")).unwrap();
        let response = handle(event).unwrap();
        let r = &response.results[0];
        assert_eq!((r.task_id.as_str(), r.result_code.as_str()), ("dGFza2lkZ29lc2hlcmUK", "Succeeded"));
        let result: Value = serde_json::from_str(&r.result_string).unwrap();
        assert_eq!(result["bucket"], "amzn-s3-demo-bucket1");
        assert_eq!(result["key"], "customerImage1.jpg");
        assert_eq!(response.invocation_id, "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo");
    }

    /// Schema 2.0 as AWS's own test fixture has it (bucket name, user arguments).
    #[test]
    fn reads_the_schema_2_0_payload() {
        let event: Invocation = serde_json::from_str(include_str!("../fixtures/s3-schema-2.0.json")).unwrap();
        let response = handle(event).unwrap();
        let result: Value = serde_json::from_str(&response.results[0].result_string).unwrap();
        assert_eq!(result["bucket"], "powertools-dataset");
        assert_eq!(result["userArguments"]["k1"], "v1");
        assert_eq!(result["key"], "prefix/dataset/dataset.20231222.json.gz");
    }

    #[test]
    fn keys_are_decoded_like_unquote_plus() {
        assert_eq!(unquote_plus("a+b%2Bc%20d%C3%A9"), "a b+c dé");
    }

    #[test]
    fn the_response_has_the_field_names_s3_reads() {
        let r = Response {
            invocation_schema_version: "1.0".into(),
            treat_missing_keys_as: Some("PermanentFailure".into()),
            invocation_id: "i".into(),
            results: vec![TaskResult {
                task_id: "t".into(),
                result_code: "Succeeded".into(),
                result_string: "s".into(),
            }],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"invocationSchemaVersion": "1.0", "treatMissingKeysAs": "PermanentFailure", "invocationId": "i",
                   "results": [{"taskId": "t", "resultCode": "Succeeded", "resultString": "s"}]})
        );
    }
}
