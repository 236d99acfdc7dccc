//! Manifests at scale against moto: S3 Inventory reports (gzip CSV data files, manifest.json,
//! manifest.checksum, versions) and ManifestGenerator listings with their filters and
//! generated manifests.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use batchops_core::pipeline::Settings;
use batchops_e2e::{columns, spec, System};
use md5::{Digest, Md5};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(300);

fn gzip(text: &str) -> Vec<u8> {
    batchops_core::inventory::gzip(text.as_bytes())
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(body).read_to_string(&mut text).expect("gunzip");
    text
}

/// Writes an inventory in S3's layout under `inv`: data files, manifest.json and
/// manifest.checksum; returns the spec's `Manifest` member. `md5` replaces a file's MD5.
async fn put_inventory(
    sys: &System,
    inv: &str,
    source: &str,
    schema: &str,
    files: Vec<Vec<u8>>,
    md5: Option<(usize, &str)>,
) -> Result<Value> {
    let mut entries = Vec::new();
    for (i, body) in files.into_iter().enumerate() {
        let key = format!("{source}/cfg/data/{i:04}-{}.csv.gz", uuid::Uuid::new_v4());
        let sum = match md5 {
            Some((j, m)) if j == i => m.to_string(),
            _ => hex::encode(Md5::digest(&body)),
        };
        entries.push(json!({"key": key, "size": body.len(), "MD5checksum": sum}));
        sys.put(inv, &key, body).await?;
    }
    let manifest = json!({"sourceBucket": source, "destinationBucket": format!("arn:aws:s3:::{inv}"),
        "version": "2016-11-30", "creationTimestamp": "1700000000000", "fileFormat": "CSV",
        "fileSchema": schema, "files": entries})
    .to_string();
    let key = format!("{source}/cfg/2026-11-25T00-00Z/manifest.json");
    sys.put(inv, &format!("{source}/cfg/2026-11-25T00-00Z/manifest.checksum"), hex::encode(Md5::digest(&manifest)))
        .await?;
    let etag = sys.put(inv, &key, manifest).await?;
    Ok(json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
              "Location": {"ObjectArn": format!("arn:aws:s3:::{inv}/{key}"), "ETag": etag}}))
}

/// A spec with `manifest` as its Manifest member.
fn inventory_spec(op: Value, manifest: Value, report: &str) -> Value {
    let mut v = spec(op, "unused", "unused", "x", report);
    v["Manifest"] = manifest;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_of_100000_rows_with_a_tiny_budget_reports_each_row_once() -> Result<()> {
    // GIVEN an inventory of 100,000 rows in four gzip files, and a chunker that hands on
    // after every chunk (time budget zero): about 100 continuations through real SQS
    let settings = Settings { chunk_size: 1000, time_budget: Duration::ZERO, ..Settings::default() };
    let sys = System::start(settings, 4).await?;
    let [inv, rep, src] = sys.buckets(["inv", "rep", "src"]).await?;
    let files: Vec<Vec<u8>> = (0..4)
        .map(|f| gzip(&(0..25_000).map(|i| format!("\"{src}\",\"part{f}/key%20{i}\",\"{i}\"\n")).collect::<String>()))
        .collect();
    let manifest = put_inventory(&sys, &inv, &src, "Bucket, Key, Size", files, None).await?;
    // WHEN a delete job runs over it (the keys do not exist: DeleteObjects says Deleted)
    let id = sys.api.create_job(&inventory_spec(json!({"S3DeleteObject": {}}), manifest, &rep)).await?;
    // Polled here rather than with `wait_for`: the preparation progress is shown only while
    // the job prepares. The suite's largest job: three times the others' bound.
    let (mut saw_files, start, within) = (false, Instant::now(), LONG * 3);
    let job = loop {
        let job = sys.api.describe_job(&id).await?["Job"].clone();
        saw_files |= job["PreparationProgress"]["FilesTotal"] == 4;
        if ["Complete", "Failed"].contains(&job["Status"].as_str().unwrap_or_default()) {
            break job;
        }
        ensure!(start.elapsed() < within, "job {id} not Complete or Failed after {within:?}: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // THEN every row is reported exactly once
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 100_000);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 100_000);
    assert!(saw_files, "DescribeJob showed the inventory files while preparing");
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(rows.len(), 100_000);
    let keys: BTreeSet<String> = rows.iter().map(|(_, r)| columns(r)[1].clone()).collect();
    assert_eq!(keys.len(), 100_000, "no row twice");
    assert!(keys.contains("part3/key%2024999"));
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_inventory_tags_the_versions_it_names_and_refuses_bad_files() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 3, ..Settings::default() }, 2).await?;
    let [inv, rep, src] = sys.buckets(["inv", "rep", "src"]).await?;
    sys.enable_versioning(&src).await?;
    // GIVEN two versions of each of four objects, and an all-versions inventory that names the
    // old ones, plus a row whose VersionId is empty
    let mut rows = String::new();
    let mut old = Vec::new();
    for i in 0..4 {
        let key = format!("doc {i}.txt");
        let v1 = sys.clients.s3.put_object().bucket(&src).key(&key).body(ByteStream::from_static(b"v1")).send().await?;
        sys.put(&src, &key, "v2").await?;
        let v1 = v1.version_id().context("version")?.to_string();
        rows.push_str(&format!("\"{src}\",\"doc+{i}.txt\",\"{v1}\",\"false\",\"false\"\n"));
        old.push((key, v1));
    }
    rows.push_str(&format!("\"{src}\",\"doc+0.txt\",\"\",\"true\",\"false\"\n"));
    let schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker";
    let lines: Vec<&str> = rows.lines().collect();
    let files = vec![gzip(&(lines[..2].join("\n") + "\n")), gzip(&(lines[2..].join("\n") + "\n"))];
    let manifest = put_inventory(&sys, &inv, &src, schema, files, None).await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "state", "Value": "old"}]}});
    // WHEN the job runs
    let id = sys.api.create_job(&inventory_spec(op.clone(), manifest, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    // THEN the named versions carry the tag, the current ones do not
    for (key, v1) in &old {
        let tags = sys.clients.s3.get_object_tagging().bucket(&src).key(key).version_id(v1).send().await?;
        assert_eq!(tags.tag_set().len(), 1, "{key} {v1}");
        let current = sys.clients.s3.get_object_tagging().bucket(&src).key(key).send().await?;
        assert!(current.tag_set().is_empty(), "{key} current version untouched");
    }
    let (_, report) = sys.report(&rep, "reports", &id).await?;
    assert_eq!(report.len(), 5);
    let missing: Vec<_> = report.iter().filter(|(s, _)| s == "failed").map(|(_, r)| columns(r)).collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0][6].ends_with("line 3: Task failed due to missing VersionId"), "{missing:?}");
    for (_, r) in report.iter().filter(|(s, _)| s == "succeeded") {
        assert!(old.iter().any(|(_, v)| *v == columns(r)[2]), "version-specific rows: {r}");
    }

    // AND an MD5 that does not match, gzip that does not decode, or a schema without Key each
    // fail their job before any task, naming the problem
    let cases = [
        (vec![gzip(&rows)], Some((0, "0123456789abcdef0123456789abcdef")), schema, "ManifestChecksumMismatch"),
        (vec![b"PK\x03\x04 not gzip".to_vec()], None, schema, "InvalidManifestContent"),
        (vec![gzip(&rows)], None, "Bucket, VersionId", "InvalidManifestContent"),
    ];
    for (files, md5, schema, code) in cases {
        let manifest = put_inventory(&sys, &inv, &src, schema, files, md5).await?;
        let id = sys.api.create_job(&inventory_spec(op.clone(), manifest, &rep)).await?;
        let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
        assert_eq!(job["Status"], "Failed", "{job}");
        assert_eq!(job["FailureReasons"][0]["FailureCode"], code, "{job}");
        assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
    }
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_manifest_with_a_header_row_fails_the_job_naming_line_one() -> Result<()> {
    let sys = System::start(Settings::default(), 1).await?;
    let [man, rep, src] = sys.buckets(["man", "rep", "src"]).await?;
    let etag = sys.put(&man, "m.csv", format!("Bucket,Key\n{src},a.txt\n")).await?;
    let id = sys.api.create_job(&spec(json!({"S3DeleteObjectTagging": {}}), &man, "m.csv", &etag, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "InvalidManifestContent");
    let reason = job["FailureReasons"][0]["FailureReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("manifest line 1: 'Bucket' is not a bucket name"), "{reason}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
    sys.stop().await;
    Ok(())
}

fn generator_spec(op: Value, source: &str, filter: Value, output: Option<&str>, report: &str) -> Value {
    let mut v = spec(op, "unused", "unused", "x", report);
    v.as_object_mut().expect("object").remove("Manifest");
    let mut g = json!({"SourceBucket": format!("arn:aws:s3:::{source}"), "EnableManifestOutput": output.is_some(),
                       "Filter": filter});
    if let Some(out) = output {
        g["ManifestOutputLocation"] = json!({"Bucket": format!("arn:aws:s3:::{out}"), "ManifestPrefix": "generated",
            "ExpectedManifestBucketOwner": "123456789012",
            "ManifestFormat": "S3InventoryReport_CSV_20211130", "ManifestEncryption": {"SSES3": {}}});
    }
    v["ManifestGenerator"] = json!({"S3JobManifestGenerator": g});
    v
}

async fn put_with(sys: &System, bucket: &str, key: &str, size: usize, class: StorageClass, sse: bool) -> Result<()> {
    let mut req = sys.clients.s3.put_object().bucket(bucket).key(key).body(ByteStream::from(vec![b'x'; size]));
    req = req.storage_class(class);
    if sse {
        req = req.server_side_encryption(ServerSideEncryption::Aes256);
    }
    req.send().await.with_context(|| format!("put {key}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_job_lists_filters_writes_its_manifest_and_runs() -> Result<()> {
    let settings = Settings { chunk_size: 4, time_budget: Duration::ZERO, ..Settings::default() };
    let sys = System::start(settings, 2).await?;
    let [src, rep, out] = sys.buckets(["src", "rep", "out"]).await?;
    // GIVEN objects that differ by prefix, suffix, size, storage class and encryption
    for i in 0..12 {
        put_with(&sys, &src, &format!("logs/app {i}.log"), 10 + i, StorageClass::Standard, i % 3 == 0).await?;
    }
    put_with(&sys, &src, "logs/app.txt", 50, StorageClass::Standard, true).await?;
    put_with(&sys, &src, "logs/cold.log", 50, StorageClass::Glacier, true).await?;
    put_with(&sys, &src, "logs/empty.log", 0, StorageClass::Standard, true).await?;
    put_with(&sys, &src, "other/app.log", 50, StorageClass::Standard, true).await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "found", "Value": "yes"}]}});
    let filter = json!({
        "KeyNameConstraint": {"MatchAnyPrefix": ["logs/"], "MatchAnySuffix": [".log"], "MatchAnySubstring": ["app"]},
        "ObjectSizeGreaterThanBytes": 0, "ObjectSizeLessThanBytes": 1000,
        "MatchAnyStorageClass": ["STANDARD"], "CreatedAfter": "2020-01-01", "CreatedBefore": "2100-01-01T00:00:00Z",
        "MatchAnyObjectEncryption": [{"SSE-S3": {}}]
    });
    // WHEN a generator job runs with manifest output
    let id = sys.api.create_job(&generator_spec(op.clone(), &src, filter, Some(&out), &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    // THEN exactly the matching objects were tagged and reported
    assert_eq!(job["Status"], "Complete", "{job}");
    let expected: BTreeSet<String> = (0..12).filter(|i| i % 3 == 0).map(|i| format!("logs/app {i}.log")).collect();
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], expected.len());
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    let reported: BTreeSet<String> =
        rows.iter().map(|(_, r)| batchops_core::manifest::decode_key(&columns(r)[1]).expect("key")).collect();
    assert_eq!(reported, expected);
    for k in &expected {
        let tags = sys.clients.s3.get_object_tagging().bucket(&src).key(k).send().await?;
        assert_eq!(tags.tag_set().len(), 1, "{k}");
    }
    // AND the generated manifest is where DescribeJob says, in the inventory layout
    let loc = &job["GeneratedManifestDescriptor"];
    assert_eq!(loc["Format"], "S3InventoryReport_CSV_20211130");
    let key = format!("generated/job-{id}/manifest.json");
    assert_eq!(loc["Location"]["ObjectArn"], format!("arn:aws:s3:::{out}/{key}"));
    let manifest: Value = serde_json::from_slice(&sys.get(&out, &key).await?)?;
    assert_eq!(manifest["fileSchema"], "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass");
    let mut listed = BTreeSet::new();
    for f in manifest["files"].as_array().context("files")? {
        let body = sys.get(&out, f["key"].as_str().context("key")?).await?;
        assert_eq!(hex::encode(Md5::digest(&body)), f["MD5checksum"].as_str().unwrap_or_default());
        for line in gunzip(&body).lines() {
            listed.insert(batchops_core::manifest::decode_key(&columns(line)[1]).expect("key"));
        }
    }
    assert_eq!(listed, expected);
    let checksum = sys.get(&out, &format!("generated/job-{id}/manifest.checksum")).await?;
    assert_eq!(String::from_utf8(checksum)?, hex::encode(Md5::digest(sys.get(&out, &key).await?)));

    // AND a filter that matches nothing completes the job with zero tasks, and says so
    let id = sys.api.create_job(&generator_spec(op, &src, json!({"CreatedAfter": "2099-01-01"}), None, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 0);
    let reason = job["StatusUpdateReason"].as_str().unwrap_or_default();
    assert!(reason.contains("matched none of the 16 objects listed"), "{reason}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_on_a_versioned_bucket_names_the_current_versions() -> Result<()> {
    let sys = System::start(Settings::default(), 1).await?;
    let [src, rep] = sys.buckets(["src", "rep"]).await?;
    sys.enable_versioning(&src).await?;
    let mut current = BTreeSet::new();
    for i in 0..3 {
        sys.put(&src, &format!("k{i}"), "old").await?;
        let out = sys
            .clients
            .s3
            .put_object()
            .bucket(&src)
            .key(format!("k{i}"))
            .body(ByteStream::from_static(b"new"))
            .send()
            .await?;
        current.insert(out.version_id().context("version")?.to_string());
    }
    sys.put(&src, "gone", "x").await?;
    sys.clients.s3.delete_object().bucket(&src).key("gone").send().await?;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "v", "Value": "current"}]}});
    let id = sys.api.create_job(&generator_spec(op, &src, json!({}), None, &rep)).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    let versions: BTreeSet<String> = rows.iter().map(|(_, r)| columns(r)[2].clone()).collect();
    assert_eq!(versions, current, "one task per current version, none for the deleted key");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_replication_filters_read_the_bucket_configuration_and_each_object() -> Result<()> {
    use aws_sdk_s3::types::{
        DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, ReplicationConfiguration, ReplicationRule,
        ReplicationRuleFilter, ReplicationRuleStatus,
    };
    let sys = System::start(Settings::default(), 1).await?;
    let [src, plain, dst, rep] = sys.buckets(["src", "plain", "dst", "rep"]).await?;
    for b in [&src, &dst] {
        sys.enable_versioning(b).await?;
    }
    let rule = ReplicationRule::builder()
        .id("all")
        .priority(1)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("").build())
        .delete_marker_replication(
            DeleteMarkerReplication::builder().status(DeleteMarkerReplicationStatus::Disabled).build(),
        )
        .destination(Destination::builder().bucket(format!("arn:aws:s3:::{dst}")).build()?)
        .build()?;
    let config = ReplicationConfiguration::builder().role("arn:aws:iam::123456789012:role/r").rules(rule).build()?;
    sys.clients.s3.put_bucket_replication().bucket(&src).replication_configuration(config).send().await?;
    for b in [&src, &plain] {
        for k in ["a", "b", "c"] {
            sys.put(b, k, "x").await?;
        }
    }
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "eligible", "Value": "yes"}]}});
    let run = |source: String, filter: Value| {
        let (sys, op, rep) = (&sys, op.clone(), rep.clone());
        async move {
            let id = sys.api.create_job(&generator_spec(op, &source, filter, None, &rep)).await?;
            sys.wait_for(&id, &["Complete", "Failed"], LONG).await
        }
    };
    // Eligible: every object of the bucket whose rule matches everything, none elsewhere.
    let job = run(src.clone(), json!({"EligibleForReplication": true})).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["TotalNumberOfTasks"].as_u64()),
        (Some("Complete"), Some(3)),
        "{job}"
    );
    let job = run(plain.clone(), json!({"EligibleForReplication": true})).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["TotalNumberOfTasks"].as_u64()),
        (Some("Complete"), Some(0)),
        "{job}"
    );
    // Replication status from each object's HEAD: nothing was replicated yet, so all are NONE.
    let job = run(plain.clone(), json!({"ObjectReplicationStatuses": ["NONE"]})).await?;
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 3, "{job}");
    let job = run(plain, json!({"ObjectReplicationStatuses": ["COMPLETED", "FAILED"]})).await?;
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 0, "{job}");
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_generator_job_runs_on_the_list_it_kept() -> Result<()> {
    let sys = System::start(Settings { chunk_size: 2, ..Settings::default() }, 1).await?;
    let [src, rep] = sys.buckets(["src", "rep"]).await?;
    for k in ["a", "b", "c"] {
        sys.put(&src, k, "x").await?;
    }
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "listed", "Value": "before"}]}});
    let mut body = generator_spec(op, &src, json!({}), None, &rep);
    body["ConfirmationRequired"] = json!(true);
    let id = sys.api.create_job(&body).await?;
    let job = sys.wait_for(&id, &["Suspended", "Failed"], LONG).await?;
    assert_eq!(
        (job["Status"].as_str(), job["ProgressSummary"]["TotalNumberOfTasks"].as_u64()),
        (Some("Suspended"), Some(3)),
        "{job}"
    );
    // The list was kept next to the report, in the inventory layout.
    let kept: Value =
        serde_json::from_slice(&sys.get(&rep, &format!("reports/job-{id}/generated-manifest/manifest.json")).await?)?;
    assert_eq!(kept["files"].as_array().map(Vec::len), Some(1));
    // An object added before confirmation is not part of the job.
    sys.put(&src, "d-later", "x").await?;
    sys.api.update_job_status(&id, "Ready", None).await?;
    let job = sys.wait_for(&id, &["Complete", "Failed"], LONG).await?;
    assert_eq!(job["Status"], "Complete", "{job}");
    let (_, rows) = sys.report(&rep, "reports", &id).await?;
    let keys: BTreeSet<String> = rows.iter().map(|(_, r)| columns(r)[1].clone()).collect();
    assert_eq!(keys, ["a", "b", "c"].map(String::from).into_iter().collect());
    let later = sys.clients.s3.get_object_tagging().bucket(&src).key("d-later").send().await?;
    assert!(later.tag_set().is_empty());
    sys.stop().await;
    Ok(())
}
