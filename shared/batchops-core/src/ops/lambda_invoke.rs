//! `LambdaInvoke`: invokes a Lambda function for each object, with S3 Batch Operations'
//! invocation schema `1.0` or `2.0`, and reads the function's result codes: `Succeeded`,
//! `TemporaryFailure` (redriven a bounded number of times), `PermanentFailure`.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-invoke-lambda.html>

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::retry::{Outcome, TaskFailure};
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SchemaVersion {
    V1,
    V2,
}

impl SchemaVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaVersion::V1 => "1.0",
            SchemaVersion::V2 => "2.0",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LambdaInvoke {
    pub function_arn: String,
    pub schema: SchemaVersion,
    pub user_arguments: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    function_arn: Option<String>,
    invocation_schema_version: Option<String>,
    user_arguments: Option<BTreeMap<String, String>>,
}

/// What the task sends about its object.
pub struct InvokeTask<'a> {
    pub task_id: &'a str,
    /// The key as the manifest spells it (URL-encoded), as S3 passes it.
    pub encoded_key: &'a str,
    pub version_id: Option<&'a str>,
    pub bucket: &'a str,
}

impl LambdaInvoke {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let ff = format!("{field}.FunctionArn");
        let function_arn = p.function_arn.ok_or_else(|| Error::field(&ff, "is required"))?;
        crate::fields::check_len(&ff, &function_arn, 1, 1024)?;
        if function_arn.starts_with("arn:") && !function_arn.contains(":lambda:") {
            return Err(Error::field(&ff, format!("'{function_arn}' is not a Lambda function ARN")));
        }
        let schema = match p.invocation_schema_version.as_deref() {
            None | Some("1.0") => SchemaVersion::V1,
            Some("2.0") => SchemaVersion::V2,
            Some(other) => {
                return Err(Error::field(
                    format!("{field}.InvocationSchemaVersion"),
                    format!("'{other}' is not one of 1.0, 2.0"),
                ))
            }
        };
        let uf = format!("{field}.UserArguments");
        let user_arguments = p.user_arguments.unwrap_or_default();
        if !user_arguments.is_empty() {
            if schema != SchemaVersion::V2 {
                return Err(Error::field(&uf, "needs InvocationSchemaVersion 2.0"));
            }
            if user_arguments.len() > 10 {
                return Err(Error::field(&uf, format!("at most 10 entries, got {}", user_arguments.len())));
            }
            for (k, v) in &user_arguments {
                crate::fields::check_len(&format!("{uf}.{k}"), k, 1, 64)?;
                crate::fields::check_len(&format!("{uf}.{k}"), v, 0, 1024)?;
            }
        }
        Ok(LambdaInvoke { function_arn, schema, user_arguments })
    }

    /// The invocation payload, exactly as S3 Batch Operations sends it.
    pub fn payload(&self, invocation_id: &str, job_id: &str, tasks: &[InvokeTask<'_>]) -> Value {
        let mut job = json!({ "id": job_id });
        let tasks: Vec<Value> = tasks
            .iter()
            .map(|t| match self.schema {
                SchemaVersion::V1 => json!({
                    "taskId": t.task_id,
                    "s3Key": t.encoded_key,
                    "s3VersionId": t.version_id,
                    "s3BucketArn": format!("arn:aws:s3:::{}", t.bucket),
                }),
                SchemaVersion::V2 => json!({
                    "taskId": t.task_id,
                    "s3Key": t.encoded_key,
                    "s3VersionId": t.version_id,
                    "s3Bucket": t.bucket,
                }),
            })
            .collect();
        if self.schema == SchemaVersion::V2 {
            job["userArguments"] = json!(self.user_arguments);
        }
        json!({
            "invocationSchemaVersion": self.schema.as_str(),
            "invocationId": invocation_id,
            "job": job,
            "tasks": tasks,
        })
    }
}

/// The function's answer for one task. `function_error` is Lambda's `X-Amz-Function-Error`
/// (the function threw, timed out or ran out of memory).
pub fn outcome(task_id: &str, payload: &[u8], function_error: Option<&str>) -> Outcome {
    let text = String::from_utf8_lossy(payload);
    if function_error.is_some() {
        return Outcome::Failed(TaskFailure::permanent(
            200,
            "PermanentFailure",
            format!("Lambda returned function error: {}", text.trim()),
        ));
    }
    let response: Value = match serde_json::from_slice(payload) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Outcome::Failed(TaskFailure::permanent(
                200,
                "PermanentFailure",
                format!("Invalid JSON returned in Lambda payload: {}", truncate(&text, 512)),
            ))
        }
    };
    let result =
        response["results"].as_array().and_then(|rs| rs.iter().find(|r| r["taskId"].as_str() == Some(task_id)));
    let (code, message) = match result {
        Some(r) => (
            r["resultCode"].as_str().unwrap_or_default().to_string(),
            match &r["resultString"] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        ),
        None => {
            let code = response["treatMissingKeysAs"].as_str().unwrap_or("TemporaryFailure").to_string();
            (code, format!("Task {task_id} was missing from the function's results (treatMissingKeysAs)"))
        }
    };
    match code.as_str() {
        "Succeeded" => Outcome::Succeeded { message },
        "TemporaryFailure" => Outcome::Failed(TaskFailure::transient(200, "TemporaryFailure", message)),
        "PermanentFailure" => Outcome::Failed(TaskFailure::permanent(200, "PermanentFailure", message)),
        other => Outcome::Failed(TaskFailure::permanent(
            200,
            "PermanentFailure",
            format!("Invalid resultCode '{other}' returned in Lambda payload (expected Succeeded, TemporaryFailure or PermanentFailure)"),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::FailureClass;

    const F: &str = "Operation.LambdaInvoke";

    fn task() -> InvokeTask<'static> {
        InvokeTask { task_id: "dGFzaw", encoded_key: "a%20b+c", version_id: None, bucket: "bkt" }
    }

    #[test]
    fn schema_1_0_payload_has_the_bucket_arn() {
        let op =
            LambdaInvoke::from_spec(F, &json!({"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}))
                .unwrap();
        let p = op.payload("inv", "job-1", &[task()]);
        assert_eq!(
            p,
            json!({
                "invocationSchemaVersion": "1.0",
                "invocationId": "inv",
                "job": {"id": "job-1"},
                "tasks": [{"taskId": "dGFzaw", "s3Key": "a%20b+c", "s3VersionId": null, "s3BucketArn": "arn:aws:s3:::bkt"}]
            })
        );
    }

    #[test]
    fn schema_2_0_payload_has_the_bucket_name_and_user_arguments() {
        let op = LambdaInvoke::from_spec(
            F,
            &json!({"FunctionArn": "f", "InvocationSchemaVersion": "2.0", "UserArguments": {"k1": "v1"}}),
        )
        .unwrap();
        let p = op.payload("inv", "job-1", &[task()]);
        assert_eq!(p["job"], json!({"id": "job-1", "userArguments": {"k1": "v1"}}));
        assert_eq!(p["tasks"][0]["s3Bucket"], "bkt");
        assert!(p["tasks"][0].get("s3BucketArn").is_none());
    }

    #[test]
    fn spec_errors_name_the_member() {
        for (spec, prefix) in [
            (json!({}), "Operation.LambdaInvoke.FunctionArn:"),
            (
                json!({"FunctionArn": "f", "InvocationSchemaVersion": "3.0"}),
                "Operation.LambdaInvoke.InvocationSchemaVersion:",
            ),
            (json!({"FunctionArn": "f", "UserArguments": {"a": "b"}}), "Operation.LambdaInvoke.UserArguments:"),
            (json!({"FunctionArn": "arn:aws:s3:::bucket"}), "Operation.LambdaInvoke.FunctionArn:"),
        ] {
            let err = LambdaInvoke::from_spec(F, &spec).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{spec}: {err}");
        }
    }

    #[test]
    fn result_codes() {
        let answer = |code: &str| {
            json!({"invocationSchemaVersion": "1.0", "invocationId": "i",
                   "results": [{"taskId": "t", "resultCode": code, "resultString": "why"}]})
            .to_string()
        };
        assert_eq!(outcome("t", answer("Succeeded").as_bytes(), None), Outcome::Succeeded { message: "why".into() });
        match outcome("t", answer("TemporaryFailure").as_bytes(), None) {
            Outcome::Failed(f) => assert_eq!(
                (f.class, f.error_code.as_str(), f.http_status),
                (FailureClass::Transient, "TemporaryFailure", 200)
            ),
            o => panic!("{o:?}"),
        }
        match outcome("t", answer("PermanentFailure").as_bytes(), None) {
            Outcome::Failed(f) => assert_eq!((f.class, f.message.as_str()), (FailureClass::Permanent, "why")),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn missing_tasks_default_to_temporary_failure() {
        let none = json!({"results": []}).to_string();
        assert!(
            matches!(outcome("t", none.as_bytes(), None), Outcome::Failed(f) if f.class == FailureClass::Transient)
        );
        let permanent = json!({"treatMissingKeysAs": "PermanentFailure", "results": []}).to_string();
        assert!(
            matches!(outcome("t", permanent.as_bytes(), None), Outcome::Failed(f) if f.class == FailureClass::Permanent)
        );
        let ok = json!({"treatMissingKeysAs": "Succeeded", "results": []}).to_string();
        assert!(matches!(outcome("t", ok.as_bytes(), None), Outcome::Succeeded { .. }));
    }

    #[test]
    fn function_errors_and_bad_json_are_permanent_failures_with_http_200() {
        let err = br#"{"errorMessage":"boom","errorType":"Panic"}"#;
        match outcome("t", err, Some("Unhandled")) {
            Outcome::Failed(f) => {
                assert_eq!((f.http_status, f.error_code.as_str()), (200, "PermanentFailure"));
                assert_eq!(f.message, r#"Lambda returned function error: {"errorMessage":"boom","errorType":"Panic"}"#);
            }
            o => panic!("{o:?}"),
        }
        match outcome("t", b"null", None) {
            Outcome::Failed(f) => {
                assert!(f.message.starts_with("Invalid JSON returned in Lambda payload"), "{}", f.message)
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn answers_of_megabytes_or_thousands_of_levels_make_rows_of_at_most_4_kib() {
        use crate::report::{ResultRow, MAX_RESULT_MESSAGE};
        let row = |o: Outcome| {
            let target = crate::ops::TaskTarget { bucket: "b".into(), key: "k".into(), version_id: None };
            let entry = crate::manifest::ManifestEntry { line: 1, target, encoded_key: "k".into() };
            ResultRow::task(entry, o).message
        };
        let huge = "é".repeat(3 << 20); // 6 MB, two bytes a character: cut on a boundary
        let ok = json!({"results": [{"taskId": "t", "resultCode": "Succeeded", "resultString": huge}]}).to_string();
        let error = format!("{{\"errorMessage\": \"{huge}\"}}");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for (payload, function_error) in
            [(ok.as_str(), None), (error.as_str(), Some("Unhandled")), (deep.as_str(), None)]
        {
            let message = row(outcome("t", payload.as_bytes(), function_error));
            assert!(message.len() <= MAX_RESULT_MESSAGE, "{}", message.len());
            assert!(
                message.contains("bytes, cut to the first") || message.starts_with("Invalid JSON"),
                "{message:.80}"
            );
        }
    }
}
