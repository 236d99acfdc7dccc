//! Helpers of the end-to-end tests: a batchops system started in-process against the local
//! emulator (moto server at `AWS_ENDPOINT_URL`, default `http://127.0.0.1:5000`), each test
//! with its own table, queues and buckets.

pub mod faults;
pub mod process;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use batchops::client::ApiClient;
use batchops::local::{self, LocalHandle, LocalOptions};
use batchops_aws::{Clients, OpsSettings};
use batchops_core::pipeline::Settings;
use serde_json::{json, Value};

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

/// Clients for the emulator, with test credentials. The endpoint comes from
/// `AWS_ENDPOINT_URL` when it is set (as `make test` does), so that a service's own variable
/// such as `AWS_ENDPOINT_URL_LAMBDA` (`cargo lambda watch`) still wins over it.
pub async fn clients() -> Clients {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "batchops-tests"));
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        loader = loader.endpoint_url(endpoint());
    }
    Clients::from_sdk_config(&loader.load().await)
}

/// A unique, valid bucket-name-safe prefix.
pub fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A running system and what a test needs to talk to it.
pub struct System {
    pub handle: LocalHandle,
    pub api: ApiClient,
    pub clients: Clients,
    pub prefix: String,
}

impl System {
    pub async fn start(settings: Settings, chunk_workers: usize) -> Result<System> {
        System::start_with(settings, OpsSettings::default(), chunk_workers).await
    }

    /// Starts with the given operation tunables; `LambdaInvoke` goes to the Invoke API at
    /// `AWS_ENDPOINT_URL_LAMBDA` (`cargo lambda watch`, set by `make test`).
    pub async fn start_with(settings: Settings, ops: OpsSettings, chunk_workers: usize) -> Result<System> {
        System::start_executing(settings, ops, chunk_workers, None).await
    }

    /// Starts with the executor's time budget given (the template's by default: a test's
    /// budget is for the chunker's continuations).
    pub async fn start_executing(
        settings: Settings,
        ops: OpsSettings,
        chunk_workers: usize,
        executor_budget: Option<Duration>,
    ) -> Result<System> {
        let clients = clients().await;
        let prefix = unique("t");
        let handle = local::start(
            clients.clone(),
            LocalOptions {
                prefix: prefix.clone(),
                listen: "127.0.0.1:0".parse()?,
                chunk_workers,
                retry_delay_secs: 1,
                settings,
                ops,
                check_pass_role: false,
                assume_roles: true,
                // Each test's own group, so one test's schedules fire in its system only.
                schedule_group: Some(prefix.clone()),
                executor_budget,
            },
        )
        .await?;
        let api = ApiClient::new(&handle.api_url);
        Ok(System { handle, api, clients, prefix })
    }

    pub fn bucket(&self, tag: &str) -> String {
        format!("{}-{tag}", self.prefix)
    }

    /// Creates one bucket per tag (named after the test's prefix) and returns their names.
    pub async fn buckets<const N: usize>(&self, tags: [&str; N]) -> Result<[String; N]> {
        let names = tags.map(|t| self.bucket(t));
        for n in &names {
            self.create_bucket(n).await?;
        }
        Ok(names)
    }

    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        self.clients.s3.create_bucket().bucket(name).send().await.with_context(|| format!("create bucket {name}"))?;
        Ok(())
    }

    /// Turns versioning on for `bucket`.
    pub async fn enable_versioning(&self, bucket: &str) -> Result<()> {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let v = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        self.clients.s3.put_bucket_versioning().bucket(bucket).versioning_configuration(v).send().await?;
        Ok(())
    }

    /// Puts an object and returns its ETag (quoted, as S3 gives it).
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Result<String> {
        let out = self
            .clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .with_context(|| format!("put s3://{bucket}/{key}"))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        get_object(&self.clients.s3, bucket, key).await
    }

    /// Polls the job until it is in one of `statuses`; fails after `timeout`.
    pub async fn wait_for(&self, id: &str, statuses: &[&str], timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let job = self.api.describe_job(id).await?["Job"].clone();
            if statuses.contains(&job["Status"].as_str().unwrap_or_default()) {
                return Ok(job);
            }
            if start.elapsed() > timeout {
                bail!("job {id} still {} after {timeout:?}: {job}", job["Status"]);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The report's manifest.json and every row of its result files, with each file's status.
    pub async fn report(&self, bucket: &str, prefix: &str, id: &str) -> Result<(Value, Vec<(String, String)>)> {
        read_report(&self.clients.s3, bucket, prefix, id).await
    }

    pub async fn stop(self) {
        self.handle.stop().await;
    }
}

/// Reads an object whole.
pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out =
        s3.get_object().bucket(bucket).key(key).send().await.with_context(|| format!("get s3://{bucket}/{key}"))?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

/// A job's report: its manifest.json and every row of its result files, with each file's
/// status; each file's MD5 is checked against the manifest.
pub async fn read_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    id: &str,
) -> Result<(Value, Vec<(String, String)>)> {
    let manifest: Value =
        serde_json::from_slice(&get_object(s3, bucket, &format!("{prefix}/job-{id}/manifest.json")).await?)?;
    let mut rows = Vec::new();
    for f in manifest["Results"].as_array().context("Results")? {
        let key = f["Key"].as_str().context("Key")?;
        let body = get_object(s3, bucket, key).await?;
        use md5::Digest;
        assert_eq!(hex::encode(md5::Md5::digest(&body)), f["MD5Checksum"].as_str().unwrap_or_default(), "MD5 of {key}");
        let status = f["TaskExecutionStatus"].as_str().unwrap_or_default().to_string();
        for line in String::from_utf8(body)?.lines() {
            rows.push((status.clone(), line.to_string()));
        }
    }
    Ok((manifest, rows))
}

/// A CreateJob spec for a CSV manifest at `s3://manifest_bucket/manifest_key`.
pub fn spec(operation: Value, manifest_bucket: &str, manifest_key: &str, etag: &str, report_bucket: &str) -> Value {
    json!({
        "AccountId": "123456789012",
        "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
        "Priority": 10,
        "RoleArn": "arn:aws:iam::123456789012:role/batchops-tests",
        "Operation": operation,
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": format!("arn:aws:s3:::{manifest_bucket}/{manifest_key}"), "ETag": etag}
        },
        "Report": {"Bucket": format!("arn:aws:s3:::{report_bucket}"), "Format": "Report_CSV_20180820",
                   "Enabled": true, "Prefix": "reports", "ReportScope": "AllTasks"}
    })
}

/// Splits a report row (RFC 4180) into its 7 columns.
pub fn columns(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}
