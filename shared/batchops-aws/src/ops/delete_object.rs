//! `S3DeleteObject` as DeleteObjects: the tasks of one bucket (up to 1,000) in one call, each
//! key's own result from S3's answer (a deleted key, or that key's error).

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use batchops_core::ops::{DeleteObject, Task};
use batchops_core::retry::{Outcome, TaskFailure};

use crate::errors::task;

/// The HTTP status a per-key error of DeleteObjects stands for (the answer itself is a 200).
fn status_of(code: &str) -> u16 {
    match code {
        "AccessDenied" | "AllAccessDisabled" => 403,
        "NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" => 404,
        "InvalidArgument" | "InvalidRequest" | "MalformedXML" => 400,
        "SlowDown" | "ServiceUnavailable" => 503,
        "InternalError" => 500,
        "OperationAborted" => 409,
        _ => 400,
    }
}

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &DeleteObject, tasks: &[Task]) -> Vec<Outcome> {
    let Some(first) = tasks.first() else { return Vec::new() };
    let ids: Result<Vec<ObjectIdentifier>, _> = tasks
        .iter()
        .map(|t| ObjectIdentifier::builder().key(&t.target.key).set_version_id(t.target.version_id.clone()).build())
        .collect();
    let request = ids.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(false).build());
    let delete = match request {
        Ok(d) => d,
        Err(e) => {
            let f = TaskFailure::permanent(400, "InvalidRequest", e.to_string());
            return tasks.iter().map(|_| Outcome::Failed(f.clone())).collect();
        }
    };
    let sent = client
        .delete_objects()
        .bucket(&first.target.bucket)
        .delete(delete)
        .set_bypass_governance_retention(op.bypass_governance.then_some(true))
        .send()
        .await;
    let out = match sent {
        Ok(out) => out,
        Err(e) => {
            let f = task(&e);
            return tasks.iter().map(|_| Outcome::Failed(f.clone())).collect();
        }
    };
    tasks
        .iter()
        .map(|t| {
            // Some S3-compatible stores leave the version out of an answer: a key without
            // version answers for any version of it.
            let same = |key: Option<&str>, version: Option<&str>| {
                key == Some(t.target.key.as_str())
                    && (t.target.version_id.is_none() || version.is_none() || version == t.target.version_id.as_deref())
            };
            if let Some(d) = out.deleted().iter().find(|d| same(d.key(), d.version_id())) {
                let mut msg = serde_json::json!({ "Deleted": true });
                if let Some(v) = d.version_id() {
                    msg["VersionId"] = serde_json::json!(v);
                }
                if d.delete_marker() == Some(true) {
                    msg["DeleteMarker"] = serde_json::json!(true);
                    msg["DeleteMarkerVersionId"] = serde_json::json!(d.delete_marker_version_id());
                }
                return Outcome::Succeeded { message: msg.to_string() };
            }
            if let Some(e) = out.errors().iter().find(|e| same(e.key(), e.version_id())) {
                let code = e.code().unwrap_or("InternalError");
                return Outcome::Failed(TaskFailure::classify(status_of(code), code, e.message().unwrap_or(code)));
            }
            Outcome::Failed(TaskFailure::transient(
                500,
                "InternalError",
                "DeleteObjects returned no result for this key",
            ))
        })
        .collect()
}
