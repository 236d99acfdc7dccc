//! End-to-end tests: the real pipeline (`batchops local` in-process: HTTP API, SQS pollers,
//! the functions' handlers) against moto server, checked through the completion report.

// Tests: a step that cannot be done fails the test.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{ensure, Result};
use aws_sdk_s3::primitives::ByteStream;
use batchops_core::manifest::encode_key;
use batchops_core::pipeline::Settings;
use batchops_e2e::{columns, spec, System};
use futures_lite::JoinSet;
use serde_json::{json, Value};

mod contract;
mod control;
mod faults;
mod manifests;
mod operations;
mod roles;
mod s3control;

mod futures_lite {
    pub(crate) use tokio::task::JoinSet;
}

const LONG: Duration = Duration::from_secs(300);

/// Keys that exercise URL-encoding: spaces, non-ASCII, +, %, #, // and more.
fn awkward_keys() -> Vec<String> {
    vec![
        "with space.txt".into(),
        "plus+sign.txt".into(),
        "percent%20literal.txt".into(),
        "hash#tag.txt".into(),
        "double//slash/x.txt".into(),
        "ünïcödé/日本語.txt".into(),
        "comma,and\"quote.txt".into(),
        "question?and&amp=.txt".into(),
        "trailing space ".into(),
        "tab\tkey".into(),
    ]
}

/// Puts `keys` into `bucket` with metadata and tags, 16 at a time.
async fn put_sources(sys: &System, bucket: &str, keys: &[String]) -> Result<()> {
    let mut set = JoinSet::new();
    for (i, k) in keys.iter().enumerate() {
        let (s3, bucket, key) = (sys.clients.s3.clone(), bucket.to_string(), k.clone());
        set.spawn(async move {
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(ByteStream::from(format!("body of {key}").into_bytes()))
                .content_type("text/plain")
                .metadata("origin", format!("n{i}"))
                .tagging(format!("team=data&idx={i}"))
                .send()
                .await
                .map(|_| ())
        });
        if set.len() >= 16 {
            set.join_next().await.expect("task")??;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_job_of_2510_rows_with_awkward_and_missing_keys() -> Result<()> {
    let sys = System::start(Settings::default(), 4).await?;
    let [src, dst, man, rep] = sys.buckets(["src", "dst", "man", "rep"]).await?;
    let mut keys: Vec<String> = (0..2490).map(|i| format!("data/part-{i:05}.json")).collect();
    keys.extend(awkward_keys());
    put_sources(&sys, &src, &keys).await?;
    let missing: Vec<String> = (0..10).map(|i| format!("missing/gone {i}.txt")).collect();
    // The manifest: every key once, some encoded with %20 instead of +, missing keys spread.
    let mut lines = Vec::new();
    let mut encoded: BTreeMap<String, String> = BTreeMap::new();
    for (i, k) in keys.iter().chain(missing.iter()).enumerate() {
        let e = if i % 2 == 0 { encode_key(k) } else { encode_key(k).replace('+', "%20") };
        encoded.insert(e.clone(), k.clone());
        lines.push(format!("{src},{e}"));
    }
    lines.rotate_left(1234);
    let etag = sys.put(&man, "manifest.csv", lines.join("\n") + "\n").await?;
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}"), "TargetKeyPrefix": "copies"}});
    let id = sys.api.create_job(&spec(op, &man, "manifest.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed", "Cancelled"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], 2510);
    assert_eq!(p["NumberOfTasksSucceeded"], 2500);
    assert_eq!(p["NumberOfTasksFailed"], 10);
    assert!(job["TerminationDate"].is_string());

    // The report, row by row: each manifest entry exactly once, with the right outcome.
    let (manifest, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(manifest["Format"], "Report_CSV_20180820");
    assert_eq!(
        manifest["ReportSchema"],
        "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    );
    assert!(manifest["Results"].as_array().unwrap().len() >= 4, "succeeded and failed files of 3 chunks");
    assert_eq!(rows.len(), 2510);
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (file_status, row) in &rows {
        let c = columns(row);
        assert_eq!(c.len(), 7, "{row}");
        assert_eq!(&c[3], file_status, "row in the file of its status: {row}");
        assert_eq!(c[0], src);
        assert!(seen.insert(c[1].clone(), c).is_none(), "a key reported twice: {row}");
    }
    assert_eq!(seen.len(), encoded.len());
    for (enc, key) in &encoded {
        let c = seen.get(enc).unwrap_or_else(|| panic!("no row for {enc}"));
        if key.starts_with("missing/") {
            assert_eq!((c[3].as_str(), c[4].as_str(), c[5].as_str()), ("failed", "404", "NoSuchKey"), "{c:?}");
        } else {
            assert_eq!((c[3].as_str(), c[4].as_str(), c[5].as_str()), ("succeeded", "200", ""), "{c:?}");
            let msg: Value = serde_json::from_str(&c[6])?;
            assert_eq!(msg["Key"], format!("copies/{key}"));
        }
    }

    // The copies: all there, and the awkward ones (plus a sample) with bytes, metadata, tags.
    let mut listed = 0;
    let mut token = None;
    loop {
        let out = sys.clients.s3.list_objects_v2().bucket(&dst).set_continuation_token(token).send().await?;
        listed += out.contents().len();
        token = out.next_continuation_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, 2500);
    let sample: Vec<&String> = keys.iter().rev().take(10).chain(keys.iter().step_by(250)).collect();
    for k in sample {
        let i = keys.iter().position(|x| x == k).unwrap();
        let out = sys.clients.s3.get_object().bucket(&dst).key(format!("copies/{k}")).send().await?;
        assert_eq!(
            out.metadata().and_then(|m| m.get("origin")).map(String::as_str),
            Some(format!("n{i}").as_str()),
            "{k}"
        );
        assert_eq!(out.content_type(), Some("text/plain"));
        assert_eq!(out.body.collect().await?.into_bytes().as_ref(), format!("body of {k}").as_bytes());
        let tags = sys.clients.s3.get_object_tagging().bucket(&dst).key(format!("copies/{k}")).send().await?;
        let tags: BTreeMap<&str, &str> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, BTreeMap::from([("idx", i.to_string().as_str()), ("team", "data")]), "{k}");
    }
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagging_job_replaces_tags_and_deleting_removes_them() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let keys: Vec<String> = (0..40).map(|i| format!("t/{i} é+")).collect();
    put_sources(&sys, &src, &keys).await?;
    let body: String = keys.iter().map(|k| format!("{src},{}\n", encode_key(k))).collect();
    let etag = sys.put(&man, "m.csv", body).await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "reviewed", "Value": "yes"}, {"Key": "by", "Value": "batchops"}]}});
    let id = sys.api.create_job(&spec(op, &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64()),
        (Some("Complete"), Some(40))
    );
    for k in &keys {
        let tags = sys.clients.s3.get_object_tagging().bucket(&src).key(k).send().await?;
        let tags: BTreeMap<&str, &str> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, BTreeMap::from([("by", "batchops"), ("reviewed", "yes")]), "tags replaced on {k}");
    }
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 40);

    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete");
    for k in keys.iter().take(5) {
        let tags = sys.clients.s3.get_object_tagging().bucket(&src).key(k).send().await?;
        assert!(tags.tag_set().is_empty(), "tags deleted on {k}");
    }
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_manifest_etag_fails_the_job_and_a_bad_field_is_a_400() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [man, rep] = sys.buckets(["man", "rep"]).await?;
    sys.put(&man, "m.csv", "some-bucket,k\n").await?;
    let op = json!({"S3DeleteObjectTagging": {}});
    let id = sys.api.create_job(&spec(op.clone(), &man, "m.csv", "\"0123456789abcdef0123456789abcdef\"", &rep)).await?;
    let job = sys.wait_for(&id, &["Failed", "Complete"], LONG).await?;
    assert_eq!(job["Status"], "Failed");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "ManifestETagMismatch");
    assert!(job["FailureReasons"][0]["FailureReason"].as_str().unwrap().contains("0123456789abcdef"));

    let mut bad = spec(json!({"S3PutObjectCopy": {"TargetResource": "not-an-arn"}}), &man, "m.csv", "x", &rep);
    let err = sys.api.create_job(&bad).await.unwrap_err();
    let err = err.downcast::<batchops::client::ApiError>()?;
    assert_eq!((err.status, err.code.as_str()), (400, "BadRequestException"));
    assert!(err.message.starts_with("Operation.S3PutObjectCopy.TargetResource:"), "{}", err.message);
    bad["Operation"] = op;
    bad["Manifest"]["Spec"]["Fields"] = json!(["Bucket"]);
    let err = sys.api.create_job(&bad).await.unwrap_err().downcast::<batchops::client::ApiError>()?;
    assert!(err.message.starts_with("Manifest.Spec.Fields:"), "{}", err.message);
    sys.stop().await;
    Ok(())
}

/// Receives every chunk message from the real chunk queue and hands each to the executor
/// twice, once concurrently with itself and once after; returns how many were received.
async fn deliver_chunks_twice(sys: &System, expected: usize) -> Result<usize> {
    let executor = std::sync::Arc::new(task_executor::executor(&sys.handle.config, &sys.clients));
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while got < expected && std::time::Instant::now() < deadline {
        let out = sys
            .clients
            .sqs
            .receive_message()
            .queue_url(&sys.handle.config.chunk_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in out.messages() {
            let body = m.body().unwrap_or_default().to_string();
            let (a, b) = tokio::join!(
                task_executor::handle_message(&executor, &body, 1),
                task_executor::handle_message(&executor, &body, 1)
            );
            // Two deliveries at once: one runs the chunk, the other finds it claimed (handed
            // back to the queue) or already recorded.
            use batchops_core::pipeline::executor::Disposition;
            let recorded = [&a, &b].iter().filter(|r| matches!(r, Ok(Disposition::Recorded { .. }))).count();
            assert_eq!(recorded, 1, "{a:?} {b:?}");
            for r in [a, b] {
                assert!(matches!(r, Ok(_) | Err(batchops_core::Error::NotYet { .. })), "{r:?}");
            }
            let again = task_executor::handle_message(&executor, &body, 1).await?;
            assert!(
                !matches!(again, batchops_core::pipeline::executor::Disposition::Recorded { .. }),
                "a third delivery records nothing: {again:?}"
            );
            sys.clients
                .sqs
                .delete_message()
                .queue_url(&sys.handle.config.chunk_queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            got += 1;
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_delivered_twice_are_counted_and_reported_once() -> Result<()> {
    let settings = Settings { chunk_size: 25, ..Settings::default() };
    let sys = System::start(settings, 0).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    put_sources(&sys, &src, &keys[..90]).await?;
    let body: String = keys.iter().map(|k| format!("{src},{k}\n")).collect();
    let etag = sys.put(&man, "m.csv", body).await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "a", "Value": "b"}]}});
    let id = sys.api.create_job(&spec(op, &man, "m.csv", &etag, &rep)).await?;
    assert_eq!(deliver_chunks_twice(&sys, 4).await?, 4);
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 90);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 10);
    let (manifest, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 100, "no duplicate rows");
    // Files of executions that lost the race were removed: only listed files remain.
    let listed =
        sys.clients.s3.list_objects_v2().bucket(&rep).prefix(format!("reports/job-{id}/results/")).send().await?;
    assert_eq!(listed.contents().len(), manifest["Results"].as_array().unwrap().len());
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_time_budget_loses_and_repeats_no_row() -> Result<()> {
    // Budget zero: the chunker hands on after every chunk, through real SQS continuations.
    let settings = Settings { chunk_size: 20, time_budget: Duration::ZERO, ..Settings::default() };
    let sys = System::start(settings, 4).await?;
    let [man, rep, src] = sys.buckets(["man", "rep", "src"]).await?;
    // Every key is missing: the tasks fail fast, and each row must still appear once.
    let body: String = (0..333).map(|i| format!("{src},nothing/{i}\n")).collect();
    let etag = sys.put(&man, "m.csv", body).await?;
    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 333);
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    let mut keys: Vec<String> = rows.iter().map(|(_, r)| columns(r)[1].clone()).collect();
    keys.sort();
    let mut expected: Vec<String> = (0..333).map(|i| format!("nothing/{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_uploaded_under_jobs_creates_a_job() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    put_sources(&sys, &src, &["a".to_string(), "b c".to_string()]).await?;
    let etag = sys.put(&man, "m.csv", format!("{src},a\n{src},b+c\n")).await?;
    let body = spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep);
    let specs = sys.handle.names.specs_bucket.clone();
    sys.put(&specs, "jobs/nightly cleanup.json", serde_json::to_vec(&body)?).await?;
    sys.put(&specs, "jobs/broken.json", b"{\"Priority\": 1}".to_vec()).await?;
    let mut result = None;
    for _ in 0..150 {
        if let Ok(bytes) = sys.get(&specs, "jobs/nightly cleanup.json.result.json").await {
            result = Some(serde_json::from_slice::<Value>(&bytes)?);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = result.expect("the trigger wrote a result file");
    let id = result["JobId"].as_str().expect("a JobId").to_string();
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64()),
        (Some("Complete"), Some(2))
    );
    let broken: Value = serde_json::from_slice(&sys.get(&specs, "jobs/broken.json.result.json").await?)?;
    assert_eq!(broken["Code"], "BadRequestException");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_needs_confirmation_runs_only_once_confirmed() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 10, ..Settings::default() }, 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let keys: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    put_sources(&sys, &src, &keys).await?;
    let etag = sys.put(&man, "m.csv", keys.iter().map(|k| format!("{src},{k}\n")).collect::<String>()).await?;
    let mut body = spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep);
    body["ConfirmationRequired"] = json!(true);
    let id = sys.api.create_job(&body).await?;
    let job = sys.wait_for(&id, &["Suspended", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Suspended");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 30);
    assert!(job["SuspendedDate"].is_string() && job["SuspendedCause"].is_string());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let job = sys.api.describe_job(&id).await?["Job"].clone();
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64()),
        (Some("Suspended"), Some(0))
    );
    let out = sys.api.update_job_status(&id, "Ready", Some("looks right")).await?;
    assert_eq!(out["Status"], "Ready");
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64()),
        (Some("Complete"), Some(30))
    );
    assert_eq!(job["StatusUpdateReason"], "looks right");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_and_reports_what_ran() -> Result<()> {
    let settings = Settings { chunk_size: 10, ..Settings::default() };
    let sys = System::start(settings, 0).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let keys: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
    put_sources(&sys, &src, &keys).await?;
    let etag = sys.put(&man, "m.csv", keys.iter().map(|k| format!("{src},{k}\n")).collect::<String>()).await?;
    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    sys.wait_for(&id, &["Active"], LONG).await?;
    // Run exactly one chunk, then cancel, then offer what reached the queue: it must be
    // skipped (the chunks still in the backlog never reach it: the dispatcher drops them).
    let executor = task_executor::executor(&sys.handle.config, &sys.clients);
    let queue = sys.handle.config.chunk_queue_url.clone();
    let mut handled = 0;
    let mut ran = 0;
    let mut quiet = 0;
    let deadline = std::time::Instant::now() + LONG;
    while quiet < 3 {
        ensure!(
            std::time::Instant::now() < deadline,
            "the chunk queue of job {id} not quiet after {LONG:?}: {handled} chunks received, {ran} run"
        );
        let out = sys
            .clients
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .send()
            .await?;
        quiet = if out.messages().is_empty() && handled > 1 { quiet + 1 } else { 0 };
        for m in out.messages() {
            if handled == 1 {
                let up = sys.api.update_job_status(&id, "Cancelled", Some("wrong bucket")).await?;
                assert_eq!(up["Status"], "Cancelling");
            }
            let d = task_executor::handle_message(&executor, m.body().unwrap_or_default(), 1).await?;
            if matches!(d, batchops_core::pipeline::executor::Disposition::Recorded { .. }) {
                ran += 1;
            }
            sys.clients
                .sqs
                .delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            handled += 1;
        }
    }
    assert_eq!(ran, 1, "chunks after the cancel are not run");
    assert!(handled >= 2, "a chunk was offered after the cancel");
    let job = sys.wait_for(&id, &["Cancelled"], LONG).await?;
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 10);
    assert_eq!(job["StatusUpdateReason"], "wrong bucket");
    assert!(job["TerminationDate"].is_string());
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 10, "the report holds what ran");
    let err =
        sys.api.update_job_status(&id, "Ready", None).await.unwrap_err().downcast::<batchops::client::ApiError>()?;
    assert_eq!((err.status, err.code.as_str()), (409, "JobStatusException"));
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_filters_and_pages_through_dynamodb() -> Result<()> {
    let sys = System::start(Settings::default(), 0).await?;
    let [man, rep] = sys.buckets(["man", "rep"]).await?;
    let etag = sys.put(&man, "m.csv", "b,k\n").await?;
    let mut body = spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep);
    body["ConfirmationRequired"] = json!(true);
    let mut ids = Vec::new();
    for i in 0..3 {
        body["ClientRequestToken"] = json!(format!("tok-{i}"));
        ids.push(sys.api.create_job(&body).await?);
    }
    // Idempotent: the same token and body give the same job.
    assert_eq!(sys.api.create_job(&body).await?, ids[2]);
    for id in &ids {
        sys.wait_for(id, &["Suspended"], LONG).await?;
    }
    sys.api.update_job_status(&ids[0], "Cancelled", None).await?;
    sys.wait_for(&ids[0], &["Cancelled"], LONG).await?;
    let page = sys.api.list_jobs(&[], Some(2), None).await?;
    assert_eq!(page["Jobs"].as_array().unwrap().len(), 2);
    let next = page["NextToken"].as_str().expect("a next page");
    let page2 = sys.api.list_jobs(&[], Some(2), Some(next)).await?;
    assert_eq!(page2["Jobs"].as_array().unwrap().len(), 1);
    let suspended = sys.api.list_jobs(&["Suspended".into()], None, None).await?;
    assert_eq!(suspended["Jobs"].as_array().unwrap().len(), 2);
    let p = sys.api.update_job_priority(&ids[1], 77).await?;
    assert_eq!(p["Priority"], 77);
    assert_eq!(sys.api.describe_job(&ids[1]).await?["Job"]["Priority"], 77);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_half_failed_after_1000_tasks_fails_the_job() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    let body: String = (0..1100).map(|i| format!("{src},absent/{i}\n")).collect();
    let etag = sys.put(&man, "m.csv", body).await?;
    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Failed", "Complete"], LONG).await?;
    assert_eq!(job["Status"], "Failed");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "TaskFailureThresholdExceeded");
    let failed = job["ProgressSummary"]["NumberOfTasksFailed"].as_u64().unwrap();
    assert!(failed >= 1000, "{job}");
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len() as u64, failed, "the report of a failed job holds what ran");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_line_fails_one_task_naming_its_line() -> Result<()> {
    let sys = System::start(Settings::default(), 2).await?;
    let [src, man, rep] = sys.buckets(["src", "man", "rep"]).await?;
    put_sources(&sys, &src, &["ok 1".to_string(), "ok 2".to_string()]).await?;
    let body = format!("{src},ok+1\n{src},too,many,columns\n\n{src},bad%ZZkey\n{src},ok%202");
    let etag = sys.put(&man, "m.csv", body).await?;
    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete");
    assert_eq!(
        (
            job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64(),
            job["ProgressSummary"]["NumberOfTasksFailed"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    let failed: Vec<Vec<String>> = rows.iter().filter(|(s, _)| s == "failed").map(|(_, r)| columns(r)).collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().any(|c| c[6].starts_with("manifest line 2: expected 2 columns")), "{failed:?}");
    assert!(failed.iter().any(|c| c[6].starts_with("manifest line 4:") && c[1] == "bad%ZZkey"), "{failed:?}");
    sys.stop().await;
    Ok(())
}
