//! The copy benchmark of `make bench`: N small objects copied by a batchops job (the whole
//! pipeline in this process: API, chunker, executors, finalizer; S3 on s3s-fs, SQS and
//! DynamoDB on moto), the same copies by `s5cmd run` against the same S3 server, and by a
//! bare loop of the executor's CopyObject calls: interleaved rounds (`--rounds`, each
//! starting with the next copier), every run printed, then the median and the range of each
//! and of the ratios per round. Then one large object
//! copied by a batchops job (multipart) and by `s5cmd cp`, in MiB/s. Measures; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use batchops::client::ApiClient;
use batchops_aws::Clients;
use batchops_bench::harness::{self, cpu_seconds, job_spec, make_buckets, put_manifest, put_objects, run_job};
use clap::Parser;
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
    /// Rounds of the three copiers, interleaved (each round starts with the next one).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The S3 endpoint s5cmd talks to (the same one as AWS_ENDPOINT_URL_S3).
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    s3_endpoint: String,
}

/// One measured run: wall seconds and CPU seconds (of this process, or of s5cmd).
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    cpu: f64,
}

/// Who copies, in the order of the first round (each round starts one later, so none always
/// runs first on a machine that warms up or gets busier).
const COPIERS: [&str; 3] = ["batchops", "bare loop", "s5cmd"];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients = Clients::from_env().await;
    let s3 = clients.s3.clone();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let [src, man, rep] = ["src", "man", "rep"].map(|b| format!("{b}-{run}"));
    make_buckets(&s3, &[&src, &man, &rep]).await?;
    let keys = harness::keys(args.objects);
    let t = Instant::now();
    put_objects(&s3, &src, &keys, &vec![b'x'; args.size], 64).await?;
    eprintln!("put {} objects of {} bytes in {:.1}s", args.objects, args.size, t.elapsed().as_secs_f64());
    let etag = put_manifest(&s3, &man, "m.csv", &src, &keys).await?;
    let mut settings = batchops_aws::config::settings_from_env()?;
    settings.task_concurrency = args.task_concurrency;
    let ops = batchops_aws::config::ops_from_env()?;
    let handle =
        harness::start_local(&clients, format!("bench-{run}"), args.chunk_workers, settings.clone(), ops).await?;
    let api = ApiClient::new(&handle.api_url);
    let in_flight = args.chunk_workers * args.task_concurrency;
    println!("copy of {} objects of {} bytes, S3 = s3s-fs at {}", args.objects, args.size, args.s3_endpoint);
    println!(
        "batchops: create to Complete with the report, chunk {} tasks, {} chunk workers x {} tasks; bare loop: CopyObject \
         with the executor's client, {in_flight} in flight; s5cmd run --numworkers {}",
        settings.chunk_size, args.chunk_workers, args.task_concurrency, args.s5cmd_workers
    );
    let manifest = Manifest { bucket: &man, etag: &etag, report: &rep };
    let mut runs: Vec<[Run; 3]> = Vec::new();
    for round in 0..args.rounds {
        let mut this = [Run { secs: 0.0, cpu: 0.0 }; 3];
        for i in (0..3).map(|i| (i + round) % 3) {
            let dst = format!("d{round}{i}-{run}");
            make_buckets(&s3, &[&dst]).await?;
            this[i] = match i {
                0 => batchops_copies(&api, &format!("{run}-{round}"), &manifest, &dst, args.objects).await?,
                1 => harness::bare_loop(&clients, &src, &dst, &keys, in_flight)
                    .await
                    .map(|(secs, cpu)| Run { secs, cpu })?,
                _ => s5cmd_copies(&args, run, &src, &dst, &keys).map(|(secs, cpu)| Run { secs, cpu })?,
            };
        }
        print_round(round, &this, args.objects as f64);
        runs.push(this);
    }
    handle.stop().await;
    print_spread(&runs, args.objects as f64);
    if args.large_mib > 0 {
        let [dst, dst2] = ["dst", "s5"].map(|b| format!("{b}-{run}"));
        make_buckets(&s3, &[&dst, &dst2]).await?;
        large_copy(&args, &clients, run, [&src, &dst, &dst2, &man, &rep]).await?;
    }
    Ok(())
}

/// Where a copy job's manifest is, and its report goes.
struct Manifest<'a> {
    bucket: &'a str,
    etag: &'a str,
    report: &'a str,
}

/// The copies by a batchops job: its run, after checking it copied every object.
async fn batchops_copies(api: &ApiClient, token: &str, job: &Manifest<'_>, dst: &str, objects: usize) -> Result<Run> {
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let spec = job_spec(token, op, job.bucket, "m.csv", job.etag, job.report);
    let ended = run_job(api, &spec, Duration::from_millis(20)).await?;
    let ok = ended.job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0);
    if ended.job["Status"] != "Complete" || ok != objects as u64 {
        bail!("the batchops job did not copy everything: {}", ended.job);
    }
    Ok(Run { secs: ended.secs, cpu: ended.cpu })
}

fn print_round(round: usize, runs: &[Run; 3], n: f64) {
    let cells: Vec<String> = COPIERS
        .iter()
        .zip(runs)
        .map(|(name, r)| format!("{name} {:.0}/s ({:.3} CPU s/1,000)", n / r.secs, r.cpu / n * 1000.0))
        .collect();
    let (bo, bare, s5) = (runs[0].secs, runs[1].secs, runs[2].secs);
    println!(
        "round {}: {}; batchops/bare {:.2}, batchops/s5cmd {:.2}x",
        round + 1,
        cells.join(", "),
        bare / bo,
        s5 / bo
    );
}

/// The median, lowest and highest of each copier's tasks/s, and of the ratios per round (a
/// ratio is of two runs of the same round, so a busy minute weighs on both).
fn print_spread(runs: &[[Run; 3]], n: f64) {
    let spread = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
        (median, v[0], v[v.len() - 1])
    };
    println!("over {} interleaved rounds: median (lowest-highest)", runs.len());
    for (i, name) in COPIERS.iter().enumerate() {
        let (m, lo, hi) = spread(runs.iter().map(|r| n / r[i].secs).collect());
        println!("  {name:<9} {m:>7.0} tasks/s ({lo:.0}-{hi:.0})");
    }
    let (m, lo, hi) = spread(runs.iter().map(|r| r[1].secs / r[0].secs).collect());
    println!("  batchops / bare loop: {m:.2} of the limit ({lo:.2}-{hi:.2}; the worst round {lo:.2})");
    let (m, lo, hi) = spread(runs.iter().map(|r| r[2].secs / r[0].secs).collect());
    println!("  batchops / s5cmd:     {m:.2}x the throughput ({lo:.2}-{hi:.2})");
}

/// The same copies by `s5cmd run`: (wall seconds, its CPU seconds).
fn s5cmd_copies(args: &Args, run: &str, src: &str, dst: &str, keys: &[String]) -> Result<(f64, f64)> {
    let cmds: String = keys.iter().map(|k| format!("cp s3://{src}/{k} s3://{dst}/{k}\n")).collect();
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
    let secs = t.elapsed().as_secs_f64();
    let (_, child1) = cpu_seconds()?;
    if !status.success() {
        bail!("s5cmd failed: {status}");
    }
    Ok((secs, child1 - child0))
}

/// One large object copied by a batchops job (multipart UploadPartCopy, parts in parallel)
/// and by `s5cmd cp` (one server-side copy) against the same server; MiB/s of each.
async fn large_copy(args: &Args, clients: &Clients, run: &str, buckets: [&String; 5]) -> Result<()> {
    let [src, dst, dst2, man, rep] = buckets;
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
    let settings = batchops_aws::config::settings_from_env()?;
    let handle = harness::start_local(clients, format!("bench-large-{run}"), 1, settings, ops).await?;
    let api = ApiClient::new(&handle.api_url);
    // NewObjectTagging: s3s-fs has no object tagging, so the copy is told its tags.
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}"), "NewObjectTagging": []}});
    let spec = job_spec(&format!("{run}-large"), op, man, "large.csv", &etag, rep);
    let harness::Ended { job, secs: bo_secs, cpu, .. } = run_job(&api, &spec, Duration::from_millis(20)).await?;
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
