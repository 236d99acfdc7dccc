//! `make bench-scale`: one copy job of `--tasks` tasks (1,000,000) through `batchops local`
//! run as its own process (S3 on s3s-fs, queues and table on moto). The source objects are
//! made by writing files straight into s3s-fs's directory (a bucket is a directory there).
//! Prints the time from create to Complete, the resident memory of `batchops local` sampled
//! through the run (against the tasks done so far, to show whether it grows with the job), the
//! report checked row by row (every key once), its files and `manifest.json`'s size, and the
//! DynamoDB and SQS requests `batchops local` counted. Figures; asserts only the report.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use batchops::client::ApiClient;
use batchops_aws::Clients;
use batchops_bench::harness::{self, job_spec, make_buckets, put_manifest, rss_bytes};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    /// The directory s3s-fs serves (buckets are its subdirectories).
    #[arg(long)]
    data_dir: PathBuf,
    /// The `batchops` binary.
    #[arg(long)]
    batchops: PathBuf,
    #[arg(long, default_value_t = 4)]
    chunk_workers: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients = Clients::from_env().await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let [src, dst, man, rep] = ["src", "dst", "man", "rep"].map(|b| format!("{b}-{run}"));
    make_buckets(&clients.s3, &[&src, &dst, &man, &rep]).await?;
    let keys = harness::keys(args.tasks);
    let t = Instant::now();
    write_objects(&args.data_dir.join(&src), &keys)?;
    let etag = put_manifest(&clients.s3, &man, "m.csv", &src, &keys).await?;
    eprintln!("{} objects and their manifest made in {:.1}s", keys.len(), t.elapsed().as_secs_f64());

    let meter = std::env::temp_dir().join(format!("scale-meter-{run}.json"));
    let mut local = Local::spawn(&args, &run, &meter)?;
    let api = ApiClient::new(&local.api_url);
    let op = json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
    let t = Instant::now();
    let id = api.create_job(&job_spec(&run, op, &man, "m.csv", &etag, &rep)).await?;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let job = loop {
        let job = api.describe_job(&id).await?["Job"].clone();
        let done = job["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64().unwrap_or(0)
            + job["ProgressSummary"]["NumberOfTasksFailed"].as_u64().unwrap_or(0);
        samples.push((done, rss_bytes(local.child.id()).unwrap_or(0)));
        match job["Status"].as_str() {
            Some("Complete") | Some("Failed") | Some("Cancelled") => break job,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let counts = local.stop(&meter)?;
    if job["Status"] != "Complete" {
        bail!("the job did not complete: {job}");
    }
    let (files, manifest_bytes) = harness::check_report(&clients.s3, &rep, &id, &keys).await?;

    let n = args.tasks as f64;
    println!(
        "{} copy tasks through batchops local ({} chunk workers), S3 = s3s-fs, SQS and DynamoDB = moto",
        args.tasks, args.chunk_workers
    );
    println!("create to Complete: {secs:.1} s, {:.0} tasks/s", n / secs);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("peak RSS of batchops local: {:.1} MiB", peak as f64 / 1048576.0);
    print!("RSS by tasks done:");
    for pct in [0u64, 10, 25, 50, 75, 90, 100] {
        let at = args.tasks as u64 * pct / 100;
        if let Some((done, rss)) = samples.iter().find(|(d, _)| *d >= at) {
            print!("  {done}: {:.1} MiB", *rss as f64 / 1048576.0);
        }
    }
    println!();
    println!("report: {} rows, each key once; {files} result files; manifest.json {manifest_bytes} bytes", args.tasks);
    print_counts(&counts, n);
    Ok(())
}

/// One small file per key under the bucket's directory, as s3s-fs stores objects.
fn write_objects(bucket_dir: &std::path::Path, keys: &[String]) -> Result<()> {
    for k in keys {
        let path = bucket_dir.join(k);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, b"x").with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// `batchops local` as a child process, counting its AWS requests into a file.
struct Local {
    child: Child,
    api_url: String,
}

impl Local {
    fn spawn(args: &Args, run: &str, meter: &std::path::Path) -> Result<Local> {
        let mut child = Command::new(&args.batchops)
            .args(["local", "--listen", "127.0.0.1:0", "--prefix", &format!("scale-{run}"), "--no-job-roles"])
            .args(["--chunk-workers", &args.chunk_workers.to_string()])
            .env("BATCHOPS_METER_FILE", meter)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", args.batchops.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = lines.next().context("batchops local exited before it started")??;
        let api_url =
            line.split_whitespace().find(|w| w.starts_with("http://")).context("no API URL printed")?.to_string();
        std::thread::spawn(move || for _ in lines {});
        Ok(Local { child, api_url })
    }

    /// SIGTERM, then the counts it wrote.
    fn stop(&mut self, meter: &std::path::Path) -> Result<Value> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        self.child.wait()?;
        Ok(serde_json::from_slice(&std::fs::read(meter).context("the request counts of batchops local")?)?)
    }
}

/// DynamoDB and SQS figures of what `batchops local` counted.
fn print_counts(counts: &Value, tasks: f64) {
    let rows = counts["requests"].as_array().cloned().unwrap_or_default();
    let sum = |service: &str, field: &str| -> f64 {
        rows.iter()
            .filter(|r| r["service"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(service)))
            .map(|r| r[field].as_f64().unwrap_or(0.0))
            .sum()
    };
    println!(
        "DynamoDB: {:.0} requests, {:.0} items written ({:.2} per 1,000 tasks), {:.0} write units, {:.0} read units",
        sum("dynamodb", "requests"),
        sum("dynamodb", "items_written"),
        sum("dynamodb", "items_written") / tasks * 1000.0,
        sum("dynamodb", "write_units"),
        sum("dynamodb", "read_units")
    );
    println!(
        "SQS: {:.0} requests; S3: {:.0} requests ({:.4} per task)",
        sum("sqs", "requests"),
        sum("s3", "requests"),
        sum("s3", "requests") / tasks
    );
    for r in rows.iter().filter(|r| r["service"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("dynamodb"))) {
        println!(
            "  {} {}: {} requests, {} items written",
            r["class"], r["operation"], r["requests"], r["items_written"]
        );
    }
}
