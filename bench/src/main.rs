//! The copy benchmark of `make bench`: N small objects copied by a batchops job (the whole
//! pipeline in this process: API, chunker, executors, finalizer; S3 on s3s-fs, SQS and
//! DynamoDB on moto), then the same copies by `s5cmd run` against the same S3 server.
//! Prints tasks per second and CPU seconds per 1,000 tasks for both. Then one large object
//! copied by a batchops job (multipart) and by `s5cmd cp`, in MiB/s. Measures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use batchops::client::ApiClient;
use batchops::local::{self, LocalOptions};
use batchops_aws::Clients;
use clap::Parser;
use futures::StreamExt;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Objects to copy.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Bytes per object.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Chunk messages run at the same time by batchops.
    #[arg(long, default_value_t = 4)]
    chunk_workers: usize,
    /// Tasks of one chunk run at the same time.
    #[arg(long, default_value_t = 64)]
    task_concurrency: usize,
    /// The s5cmd binary.
    #[arg(long, default_value = "s5cmd")]
    s5cmd: String,
    /// s5cmd --numworkers.
    #[arg(long, default_value_t = 256)]
    s5cmd_workers: usize,
    /// Size in MiB of the large object copied by a multipart batchops job and by `s5cmd cp`
    /// (0 skips that part).
    #[arg(long, default_value_t = 1024)]
    large_mib: usize,
    /// Part size in MiB of batchops' multipart copy.
    #[arg(long, default_value_t = 64)]
    part_mib: u64,
    /// Parts copied at the same time by batchops.
    #[arg(long, default_value_t = 16)]
    part_concurrency: usize,
    /// The S3 endpoint s5cmd talks to (the same one as AWS_ENDPOINT_URL_S3).
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    s3_endpoint: String,
}

/// (own CPU seconds, CPU seconds of waited-for children) of this process, from /proc.
fn cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of proc(5) are utime, stime, cutime, cstime; `rest` starts at field 3.
    let tick = 100.0;
    Ok(((f[11] + f[12]) / tick, (f[13] + f[14]) / tick))
}

async fn make_bucket(s3: &aws_sdk_s3::Client, b: &str) -> Result<()> {
    s3.create_bucket().bucket(b).send().await.with_context(|| format!("create bucket {b}"))?;
    Ok(())
}

/// The CreateJob request of a copy job over `s3://man/key`.
fn copy_spec(token: &str, op: serde_json::Value, man: &str, key: &str, etag: &str, rep: &str) -> serde_json::Value {
    json!({
        "ClientRequestToken": token, "Priority": 1, "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "Operation": op,
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{man}/{key}"), "ETag": etag}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{rep}"), "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"}
    })
}

/// Creates the job and polls it to its end: (descriptor, wall seconds, CPU seconds of this process).
async fn run_job(api: &ApiClient, spec: &serde_json::Value) -> Result<(serde_json::Value, f64, f64)> {
    let (cpu0, _) = cpu_seconds()?;
    let t = Instant::now();
    let id = api.create_job(spec).await?;
    let job = loop {
        let job = api.describe_job(&id).await?["Job"].clone();
        match job["Status"].as_str() {
            Some("Complete") | Some("Failed") | Some("Cancelled") => break job,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_seconds()?;
    Ok((job, secs, cpu1 - cpu0))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients = Clients::from_env().await;
    let s3 = clients.s3.clone();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (src, dst, dst2, man, rep) =
        (format!("src-{run}"), format!("dst-{run}"), format!("s5-{run}"), format!("man-{run}"), format!("rep-{run}"));
    for b in [&src, &dst, &dst2, &man, &rep] {
        make_bucket(&s3, b).await?;
    }
    let keys: Vec<String> = (0..args.objects).map(|i| format!("bench/{:03}/obj-{i:07}.bin", i % 100)).collect();
    let body = vec![b'x'; args.size];
    let t = Instant::now();
    let mut puts = futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let (s3, src, body) = (s3.clone(), src.clone(), body.clone());
            async move { s3.put_object().bucket(&src).key(&k).body(ByteStream::from(body)).send().await }
        })
        .buffer_unordered(64);
    while let Some(r) = puts.next().await {
        r.context("put a source object")?;
    }
    eprintln!("put {} objects of {} bytes in {:.1}s", args.objects, args.size, t.elapsed().as_secs_f64());
    let manifest: String = keys.iter().map(|k| format!("{src},{k}\n")).collect();
    let etag = s3.put_object().bucket(&man).key("m.csv").body(ByteStream::from(manifest.into_bytes())).send().await?;
    let etag = etag.e_tag().unwrap_or_default().to_string();

    // batchops
    let mut settings = batchops_aws::config::settings_from_env()?;
    settings.task_concurrency = args.task_concurrency;
    let handle = local::start(
        clients.clone(),
        LocalOptions {
            prefix: format!("bench-{run}"),
            listen: "127.0.0.1:0".parse()?,
            chunk_workers: args.chunk_workers,
            retry_delay_secs: 1,
            settings: settings.clone(),
            ops: batchops_aws::config::ops_from_env()?,
            check_pass_role: false,
            // s3s-fs has no STS: jobs act with the bench's own credentials.
            assume_roles: false,
            schedule_group: None,
        },
    )
    .await?;
    let api = ApiClient::new(&handle.api_url);
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let spec = copy_spec(run, op, &man, "m.csv", &etag, &rep);
    let (job, bo_secs, cpu) = run_job(&api, &spec).await?;
    handle.stop().await;
    let ok = job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0);
    if job["Status"] != "Complete" || ok != args.objects as u64 {
        bail!("the batchops job did not copy everything: {job}");
    }

    // s5cmd, the same copies against the same server
    let cmds: String = keys.iter().map(|k| format!("cp s3://{src}/{k} s3://{dst2}/{k}\n")).collect();
    let cmd_file = std::env::temp_dir().join(format!("s5cmd-{run}.txt"));
    std::fs::write(&cmd_file, cmds)?;
    let (_, child0) = cpu_seconds()?;
    let t = Instant::now();
    let status = std::process::Command::new(&args.s5cmd)
        .args(["--endpoint-url", &args.s3_endpoint, "--numworkers", &args.s5cmd_workers.to_string(), "run"])
        .arg(&cmd_file)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("run {}", args.s5cmd))?;
    let s5_secs = t.elapsed().as_secs_f64();
    let (_, child1) = cpu_seconds()?;
    if !status.success() {
        bail!("s5cmd failed: {status}");
    }
    let n = args.objects as f64;
    let (bo_rate, s5_rate) = (n / bo_secs, n / s5_secs);
    println!("copy of {} objects of {} bytes, S3 = s3s-fs at {}", args.objects, args.size, args.s3_endpoint);
    println!(
        "batchops: {bo_secs:>7.2} s  {bo_rate:>8.0} tasks/s  {:.3} CPU s per 1,000 tasks  (chunk {} tasks, {} chunk workers x {} tasks)",
        cpu / n * 1000.0,
        settings.chunk_size,
        args.chunk_workers,
        args.task_concurrency
    );
    println!(
        "s5cmd:    {s5_secs:>7.2} s  {s5_rate:>8.0} tasks/s  {:.3} CPU s per 1,000 tasks  (--numworkers {})",
        (child1 - child0) / n * 1000.0,
        args.s5cmd_workers
    );
    println!("ratio batchops/s5cmd: {:.2}x the throughput", bo_rate / s5_rate);
    if args.large_mib > 0 {
        large_copy(&args, &clients, run, &src, &dst, &dst2, &man, &rep).await?;
    }
    Ok(())
}

/// One large object copied by a batchops job (multipart UploadPartCopy, parts in parallel)
/// and by `s5cmd cp` (one server-side copy) against the same server; MiB/s of each.
#[allow(clippy::too_many_arguments)]
async fn large_copy(
    args: &Args,
    clients: &Clients,
    run: &str,
    src: &str,
    dst: &str,
    dst2: &str,
    man: &str,
    rep: &str,
) -> Result<()> {
    let s3 = &clients.s3;
    let size = args.large_mib * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    s3.put_object().bucket(src).key("large/object.bin").body(ByteStream::from(body)).send().await?;
    eprintln!("put a {} MiB object in {:.1}s", args.large_mib, t.elapsed().as_secs_f64());
    let etag = s3
        .put_object()
        .bucket(man)
        .key("large.csv")
        .body(ByteStream::from(format!("{src},large/object.bin\n").into_bytes()))
        .send()
        .await?;
    let etag = etag.e_tag().unwrap_or_default().to_string();
    let ops = batchops_aws::OpsSettings {
        multipart_threshold: args.part_mib * 1024 * 1024,
        part_size: args.part_mib * 1024 * 1024,
        part_concurrency: args.part_concurrency,
    };
    let handle = local::start(
        clients.clone(),
        LocalOptions {
            prefix: format!("bench-large-{run}"),
            listen: "127.0.0.1:0".parse()?,
            chunk_workers: 1,
            retry_delay_secs: 1,
            settings: batchops_aws::config::settings_from_env()?,
            ops,
            check_pass_role: false,
            // s3s-fs has no STS: jobs act with the bench's own credentials.
            assume_roles: false,
            schedule_group: None,
        },
    )
    .await?;
    let api = ApiClient::new(&handle.api_url);
    // NewObjectTagging: s3s-fs has no object tagging, so the copy is told its tags.
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}"), "NewObjectTagging": []}});
    let spec = copy_spec(&format!("{run}-large"), op, man, "large.csv", &etag, rep);
    let (job, bo_secs, cpu) = run_job(&api, &spec).await?;
    handle.stop().await;
    if job["ProgressSummary"]["NumberOfTasksSucceeded"] != 1 {
        bail!("the large copy failed: {job}");
    }
    let copied = s3.head_object().bucket(dst).key("large/object.bin").send().await?;
    if copied.content_length() != Some(size as i64) {
        bail!("the copy has {:?} bytes, not {size}", copied.content_length());
    }
    let t = Instant::now();
    let status = std::process::Command::new(&args.s5cmd)
        .args(["--endpoint-url", &args.s3_endpoint, "cp"])
        .arg(format!("s3://{src}/large/object.bin"))
        .arg(format!("s3://{dst2}/large/object.bin"))
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("run {}", args.s5cmd))?;
    let s5_secs = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("s5cmd cp failed: {status}");
    }
    let mib = args.large_mib as f64;
    println!("copy of one {} MiB object, S3 = s3s-fs at {}", args.large_mib, args.s3_endpoint);
    println!(
        "batchops: {bo_secs:>7.2} s  {:>8.0} MiB/s  (whole job; multipart, {} MiB parts, {} at a time; {:.2} CPU s in batchops)",
        mib / bo_secs,
        args.part_mib,
        args.part_concurrency,
        cpu
    );
    println!("s5cmd cp: {s5_secs:>7.2} s  {:>8.0} MiB/s", mib / s5_secs);
    println!("ratio batchops/s5cmd: {:.2}x the throughput", s5_secs / bo_secs);
    Ok(())
}
