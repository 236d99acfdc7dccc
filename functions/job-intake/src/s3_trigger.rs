//! The S3 trigger: a job spec uploaded to the specs bucket under `jobs/` (S3 notification ->
//! SQS -> this handler) creates a job, and the outcome is written next to the spec as
//! `<key>.result.json`: `{"JobId": ...}` or `{"Code": ..., "Message": ...}`.

use batchops_core::pipeline::intake::read_spec;
use batchops_core::pipeline::intake::Caller;
use batchops_core::pipeline::Intake;
use batchops_core::ports::ObjectStore;
use batchops_core::{Error, Result};
use bytes::Bytes;
use serde_json::json;
use sha1::{Digest, Sha1};
use tracing::info;

/// Keys of the uploads one SQS message body (an S3 event) announces, decoded. S3 events
/// carry keys URL-encoded with `+` for spaces. Test events and other messages hold none.
pub fn uploaded_objects(body: &str) -> Result<Vec<(String, String)>> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| Error::field("S3 event", format!("unreadable: {e}")))?;
    if value.get("Records").is_none() {
        return Ok(Vec::new());
    }
    // Read leniently: emulators and S3 differ in which event members they fill.
    let mut out = Vec::new();
    for r in value["Records"].as_array().into_iter().flatten() {
        if !r["eventName"].as_str().unwrap_or_default().starts_with("ObjectCreated") {
            continue;
        }
        let (Some(bucket), Some(key)) = (r["s3"]["bucket"]["name"].as_str(), r["s3"]["object"]["key"].as_str()) else {
            continue;
        };
        let key = batchops_core::manifest::decode_key(key).map_err(|e| Error::field("S3 event key", e))?;
        if key.ends_with(".result.json") {
            continue;
        }
        out.push((bucket.to_string(), key));
    }
    Ok(out)
}

/// A spec uploaded without `ClientRequestToken` gets one derived from the upload (bucket, key
/// and ETag), so a notification delivered twice creates one job, and uploading the same spec
/// again creates another only if its content changed.
fn with_upload_token(spec: &[u8], bucket: &str, key: &str, etag: &str) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(spec) else {
        return spec.to_vec();
    };
    match value.as_object_mut() {
        Some(obj) if !obj.contains_key("ClientRequestToken") => {
            let digest = Sha1::digest(format!("{bucket}/{key}/{etag}").as_bytes());
            obj.insert("ClientRequestToken".into(), json!(format!("upload-{}", hex::encode(digest))));
            serde_json::to_vec(&value).unwrap_or_else(|_| spec.to_vec())
        }
        _ => spec.to_vec(),
    }
}

/// Creates a job from each uploaded spec of the message and writes its result file.
pub async fn handle_message(intake: &Intake, objects: &dyn ObjectStore, body: &str) -> Result<()> {
    for (bucket, key) in uploaded_objects(body)? {
        let created = match read_spec(objects, &bucket, &key, "SpecObject").await {
            Ok(spec) => match objects.head(&bucket, &key, None).await {
                Ok(head) => {
                    intake.create_job(&with_upload_token(&spec, &bucket, &key, &head.etag), Caller::SpecUpload).await
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                // Deleted since it was read: its result says so instead of the message going round.
                Err(e) => Err(Error::field("SpecObject", format!("cannot read s3://{bucket}/{key}: {}", e.code))),
            },
            Err(e) => Err(e),
        };
        let result = match created {
            Ok(id) => {
                info!(bucket = %bucket, key = %key, job_id = %id, "job created from an uploaded spec");
                json!({ "JobId": id })
            }
            // Infrastructure trouble: let SQS deliver the message again.
            Err(e @ Error::Backend { .. }) => return Err(e),
            Err(e) => {
                let (code, _) = e.code_and_status();
                info!(bucket = %bucket, key = %key, error = %e, "uploaded spec refused");
                json!({ "Code": code, "Message": e.to_string() })
            }
        };
        let body = serde_json::to_vec_pretty(&result).map_err(|e| Error::caused("result", e, false))?;
        objects.put(&bucket, &format!("{key}.result.json"), Bytes::from(body), "application/json").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsEvent;
    use batchops_core::memory::{InMemoryObjectStore, InMemoryPipeline, NoRoles};
    use batchops_core::pipeline::Settings;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_uploaded_spec_becomes_a_job_and_a_result_file() {
        // GIVEN the SQS event Lambda delivers for an upload of jobs/tag reviewed!.json
        let event: SqsEvent = serde_json::from_str(include_str!("../fixtures/s3-upload-via-sqs.json")).unwrap();
        let body = event.records[0].body.clone().unwrap();
        assert_eq!(
            uploaded_objects(&body).unwrap(),
            vec![("batchops-specs".to_string(), "jobs/tag reviewed!.json".to_string())]
        );
        let objects = InMemoryObjectStore::default();
        objects.insert(
            "batchops-specs",
            "jobs/tag reviewed!.json",
            include_str!("../fixtures/create-job.json").as_bytes().to_vec(),
        );
        let intake = InMemoryPipeline::new(Arc::default(), Arc::new(NoRoles), Settings::default()).intake();
        // WHEN the trigger handles it
        handle_message(&intake, &objects, &body).await.unwrap();
        // THEN the result file names the new job, which exists
        let result: serde_json::Value =
            serde_json::from_slice(&objects.get("batchops-specs", "jobs/tag reviewed!.json.result.json").unwrap())
                .unwrap();
        let id = result["JobId"].as_str().unwrap();
        assert!(intake.describe_job(id).await.is_ok());

        // AND a bad spec gets an error result naming the field, not a retry
        objects.insert("batchops-specs", "jobs/tag reviewed!.json", b"{\"Priority\": 1}".to_vec());
        handle_message(&intake, &objects, &body).await.unwrap();
        let result: serde_json::Value =
            serde_json::from_slice(&objects.get("batchops-specs", "jobs/tag reviewed!.json.result.json").unwrap())
                .unwrap();
        assert_eq!(result["Code"], "BadRequestException");
        assert!(result["Message"].as_str().unwrap().starts_with("RoleArn:"), "{result}");

        // AND a spec over 1 MiB is not read whole (the API's limit): its result says so
        let result_of = |spec: Option<Vec<u8>>| {
            let (objects, intake, body) = (&objects, &intake, &body);
            async move {
                match spec {
                    Some(spec) => drop(objects.insert("batchops-specs", "jobs/tag reviewed!.json", spec)),
                    None => drop(objects.remove("batchops-specs", "jobs/tag reviewed!.json")),
                }
                handle_message(intake, objects, body).await.unwrap();
                let file = objects.get("batchops-specs", "jobs/tag reviewed!.json.result.json").unwrap();
                serde_json::from_slice::<serde_json::Value>(&file).unwrap()
            }
        };
        let result = result_of(Some(vec![b' '; (1 << 20) + 1])).await;
        assert_eq!(result["Code"], "RequestEntityTooLarge", "{result}");
        assert!(
            result["Message"].as_str().unwrap().contains("s3://batchops-specs/jobs/tag reviewed!.json"),
            "{result}"
        );
        // AND a spec deleted before its message is handled gets a result, not a dead letter
        let result = result_of(None).await;
        assert_eq!(result["Code"], "BadRequestException", "{result}");
        assert!(result["Message"].as_str().unwrap().starts_with("SpecObject: cannot read"), "{result}");
    }

    #[test]
    fn uploads_without_a_token_get_one_from_the_object() {
        let a = with_upload_token(br#"{"Priority": 1}"#, "b", "jobs/x.json", "e1");
        let again = with_upload_token(br#"{"Priority": 1}"#, "b", "jobs/x.json", "e1");
        let changed = with_upload_token(br#"{"Priority": 1}"#, "b", "jobs/x.json", "e2");
        let token = |v: &[u8]| serde_json::from_slice::<serde_json::Value>(v).unwrap()["ClientRequestToken"].clone();
        assert_eq!(token(&a), token(&again));
        assert_ne!(token(&a), token(&changed));
        assert!(token(&a).as_str().unwrap().len() <= 64);
        let own = with_upload_token(br#"{"ClientRequestToken": "mine"}"#, "b", "k", "e");
        assert_eq!(token(&own), "mine");
    }

    #[test]
    fn test_events_and_result_files_are_ignored() {
        assert!(uploaded_objects(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).unwrap().is_empty());
        let ev = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"jobs/a.json.result.json"}}}]}"#;
        assert!(uploaded_objects(ev).unwrap().is_empty());
    }
}
