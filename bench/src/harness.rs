//! What the benchmarks share: buckets and objects made fast, a job run from create to its
//! end, `batchops local` started in this process, and CPU time from /proc.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use batchops::client::ApiClient;
use batchops::local::{self, LocalHandle, LocalOptions};
use batchops_aws::{Clients, OpsSettings};
use futures::StreamExt;
use serde_json::{json, Value};

/// (own CPU seconds, CPU seconds of waited-for children) of this process, from /proc.
pub fn cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of proc(5) are utime, stime, cutime, cstime; `rest` starts at field 3.
    let tick = 100.0;
    Ok(((f[11] + f[12]) / tick, (f[13] + f[14]) / tick))
}

/// Resident set size of a process in bytes (VmRSS of /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub async fn make_buckets(s3: &aws_sdk_s3::Client, buckets: &[&str]) -> Result<()> {
    for b in buckets {
        s3.create_bucket().bucket(*b).send().await.with_context(|| format!("create bucket {b}"))?;
    }
    Ok(())
}

/// `n` keys spread over 100 prefixes.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench/{:03}/obj-{i:07}.bin", i % 100)).collect()
}

/// Puts `body` under every key, `concurrency` at a time.
pub async fn put_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
    body: &[u8],
    concurrency: usize,
) -> Result<()> {
    let body = bytes::Bytes::copy_from_slice(body);
    let mut puts = futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let (s3, body) = (s3.clone(), body.clone());
            async move { s3.put_object().bucket(bucket).key(&k).body(ByteStream::from(body)).send().await }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = puts.next().await {
        r.context("put a source object")?;
    }
    Ok(())
}

/// Writes a CSV manifest of `bucket,key` rows; returns its ETag.
pub async fn put_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    src: &str,
    keys: &[String],
) -> Result<String> {
    let manifest: String = keys.iter().map(|k| format!("{src},{k}\n")).collect();
    let out = s3.put_object().bucket(bucket).key(key).body(ByteStream::from(manifest.into_bytes())).send().await?;
    Ok(out.e_tag().unwrap_or_default().to_string())
}

/// The CreateJob request of a job running `op` over the CSV manifest `s3://man/key`, with a
/// report of all tasks in `rep`.
pub fn job_spec(token: &str, op: Value, man: &str, key: &str, etag: &str, rep: &str) -> Value {
    json!({
        "ClientRequestToken": token, "Priority": 1, "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "Operation": op,
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{man}/{key}"), "ETag": etag}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{rep}"), "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"}
    })
}

/// A job as it ended.
pub struct Ended {
    pub job: Value,
    pub id: String,
    pub secs: f64,
    /// CPU seconds of this process over the run.
    pub cpu: f64,
}

/// Creates the job and polls it every `poll` to its end.
pub async fn run_job(api: &ApiClient, spec: &Value, poll: Duration) -> Result<Ended> {
    let (cpu0, _) = cpu_seconds()?;
    let t = Instant::now();
    let id = api.create_job(spec).await?;
    let job = loop {
        let job = api.describe_job(&id).await?["Job"].clone();
        match job["Status"].as_str() {
            Some("Complete") | Some("Failed") | Some("Cancelled") => break job,
            _ => tokio::time::sleep(poll).await,
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_seconds()?;
    Ok(Ended { job, id, secs, cpu: cpu1 - cpu0 })
}

/// `batchops local` in this process with its own table and queues (`prefix`), jobs acting
/// with the process's own credentials (s3s-fs has no STS).
pub async fn start_local(
    clients: &Clients,
    prefix: String,
    chunk_workers: usize,
    settings: batchops_core::pipeline::Settings,
    ops: OpsSettings,
) -> Result<LocalHandle> {
    local::start(
        clients.clone(),
        LocalOptions {
            prefix,
            listen: "127.0.0.1:0".parse()?,
            chunk_workers,
            retry_delay_secs: 1,
            settings,
            ops,
            check_pass_role: false,
            assume_roles: false,
            schedule_group: None,
            executor_budget: None,
        },
    )
    .await
}

/// CopyObject of every key from `src` to `dst` through the client the executor uses (SDK
/// retries off, the same S3 settings), `in_flight` at a time: no manifest, queue, table or
/// report. (wall seconds, CPU seconds of this process).
pub async fn bare_loop(
    clients: &Clients,
    src: &str,
    dst: &str,
    keys: &[String],
    in_flight: usize,
) -> Result<(f64, f64)> {
    let s3 = Clients::data_clients(&clients.sdk).s3_ops;
    let (cpu0, _) = cpu_seconds()?;
    let t = Instant::now();
    let mut copies = futures::stream::iter(keys)
        .map(|k| {
            let s3 = s3.clone();
            async move { s3.copy_object().copy_source(format!("{src}/{k}")).bucket(dst).key(k).send().await }
        })
        .buffer_unordered(in_flight);
    while let Some(r) = copies.next().await {
        r.context("bare-loop CopyObject")?;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, cpu_seconds()?.0 - cpu0))
}

/// Reads the report back: every row once, each key of the manifest, all succeeded.
/// Returns (result files, bytes of manifest.json).
pub async fn check_report(s3: &aws_sdk_s3::Client, rep: &str, id: &str, keys: &[String]) -> Result<(usize, usize)> {
    let get = |key: String| async move {
        let out = s3.get_object().bucket(rep).key(&key).send().await.with_context(|| format!("get {key}"))?;
        anyhow::Ok(out.body.collect().await?.into_bytes())
    };
    let manifest = get(format!("job-{id}/manifest.json")).await?;
    let doc: Value = serde_json::from_slice(&manifest)?;
    let files: Vec<String> = doc["Results"]
        .as_array()
        .context("Results")?
        .iter()
        .filter_map(|f| f["Key"].as_str().map(String::from))
        .collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(keys.len());
    let mut bodies = futures::stream::iter(files.iter().cloned()).map(get).buffered(8);
    while let Some(body) = bodies.next().await {
        for row in std::str::from_utf8(&body?)?.lines() {
            let cols: Vec<&str> = row.split(',').collect();
            if cols.get(3) != Some(&"succeeded") {
                bail!("a task did not succeed: {row}");
            }
            if !seen.insert(cols[1].to_string()) {
                bail!("a key is in the report twice: {row}");
            }
        }
    }
    if seen.len() != keys.len() || keys.iter().any(|k| !seen.contains(k)) {
        bail!("the report has {} keys, the manifest {}", seen.len(), keys.len());
    }
    Ok((files.len(), manifest.len()))
}
