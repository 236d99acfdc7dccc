//! `chunker-bench`: how fast the manifest chunker turns manifest rows into chunk messages,
//! and how much memory it holds, for a CSV manifest and for a gzip S3 Inventory of the same
//! rows (1 million and 10 million by default), next to merely reading the same bytes and
//! counting newlines (for the inventory: gunzip and count) in the same run.
//!
//! The chunker is the real one (`batchops_core::pipeline::Chunker`), over the in-memory job
//! store, a queue that counts the chunk messages it is sent, and an object store that reads
//! local files in 1 MiB pieces (as an S3 body arrives). Peak memory is the heap's high-water
//! mark during each run above what was live before it (`peak_alloc`). Prints figures; asserts nothing.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use batchops_core::chunk::ControlMessage;
use batchops_core::job::JobId;
use batchops_core::memory::{InMemoryJobStore, InMemoryQueue, InMemoryRoles};
use batchops_core::ops::replicate_object::ReplicationRule;
use batchops_core::ops::{Operation, Task};
use batchops_core::pipeline::dispatcher::Dispatcher;
use batchops_core::pipeline::intake::Caller;
use batchops_core::pipeline::{Chunker, Intake, Settings, StagePorts};
use batchops_core::ports::{
    Backlog, ByteStream, JobRecords, ListPage, ListRequest, ObjectHead, ObjectRef, ObjectStore, OperationRunner,
    PutOptions, Queue, ReadOptions, StorageError, Waiting,
};
use batchops_core::retry::Outcome;
use bytes::Bytes;
use clap::Parser;
use md5::{Digest, Md5};
use serde_json::json;

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

#[derive(Parser)]
#[command(about = "The manifest chunker's rows per second and peak memory, against counting newlines.")]
struct Args {
    /// Manifest sizes in rows.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    rows: Vec<u64>,
    /// Data files of each inventory.
    #[arg(long, default_value_t = 10)]
    files: u64,
    /// Runs of each measurement; the fastest counts (the machine is shared: one run is noise).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Where the generated manifests go (kept between runs).
    #[arg(long, env = "BENCH_DIR")]
    dir: Option<PathBuf>,
}

/// Bytes per piece of a read, as an S3 body arrives in pieces.
const PIECE: u64 = 256 * 1024;

/// Objects are files under `root/<bucket>/<key>`; ETags are in `<file>.md5` next to them.
struct FileStore {
    root: PathBuf,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError { http_status: 500, code: "InternalError".into(), message: e.to_string() }
}

#[async_trait]
impl ObjectStore for FileStore {
    async fn head(&self, bucket: &str, key: &str, _: Option<&str>) -> Result<ObjectHead, StorageError> {
        let path = self.root.join(bucket).join(key);
        let size = std::fs::metadata(&path).map_err(err)?.len();
        let etag = std::fs::read_to_string(path.with_extension("md5")).map_err(err)?;
        Ok(ObjectHead { etag, size, ..Default::default() })
    }

    async fn read(&self, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<ByteStream, StorageError> {
        let ReadOptions { start, end, .. } = options;
        let mut file = std::fs::File::open(self.root.join(object.bucket).join(object.key)).map_err(err)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start)).map_err(err)?;
        let mut left = end.map(|e| e.saturating_sub(start)).unwrap_or(u64::MAX);
        let stream = futures::stream::poll_fn(move |_| {
            if left == 0 {
                return std::task::Poll::Ready(None);
            }
            let want = PIECE.min(left);
            let mut buf = Vec::with_capacity(want as usize);
            match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => std::task::Poll::Ready(None),
                Ok(n) => {
                    left -= n as u64;
                    std::task::Poll::Ready(Some(Ok(Bytes::from(buf))))
                }
                Err(e) => std::task::Poll::Ready(Some(Err(err(e)))),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn put(&self, _: &str, _: &str, _: Bytes, _: &str) -> Result<(), StorageError> {
        Err(err("read-only"))
    }
    async fn put_with(&self, _: &str, _: &str, _: Bytes, _: &str, _: &PutOptions<'_>) -> Result<String, StorageError> {
        Err(err("read-only"))
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), StorageError> {
        Err(err("read-only"))
    }
    async fn start_upload(&self, _: &str, _: &str, _: &str) -> Result<String, StorageError> {
        Err(err("read-only"))
    }
    async fn upload_part(&self, _: &str, _: &str, _: &str, _: i32, _: Bytes) -> Result<String, StorageError> {
        Err(err("read-only"))
    }
    async fn complete_upload(&self, _: &str, _: &str, _: &str, _: &[(i32, String)]) -> Result<(), StorageError> {
        Err(err("read-only"))
    }
    async fn abort_upload(&self, _: &str, _: &str, _: &str) -> Result<(), StorageError> {
        Err(err("read-only"))
    }
    async fn list(&self, _: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        Err(err("not listed"))
    }
    async fn versioned(&self, _: &str) -> Result<bool, StorageError> {
        Ok(false)
    }
    async fn replication_rules(&self, _: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        Ok(Vec::new())
    }
    async fn tags(&self, _: &str, _: &str, _: Option<&str>) -> Result<Vec<(String, String)>, StorageError> {
        Ok(Vec::new())
    }
}

/// The chunks' backlog (and chunk queue): counts messages and bytes, keeps nothing.
#[derive(Default)]
struct CountingQueue {
    messages: AtomicU64,
    bytes: AtomicU64,
}

#[async_trait]
impl Queue for CountingQueue {
    async fn send(&self, bodies: Vec<String>) -> batchops_core::Result<()> {
        self.messages.fetch_add(bodies.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bodies.iter().map(|b| b.len() as u64).sum(), Ordering::Relaxed);
        Ok(())
    }

    async fn depth(&self) -> batchops_core::Result<u64> {
        Ok(0)
    }
}

#[async_trait]
impl Backlog for CountingQueue {
    async fn push(&self, _: &JobId, chunks: Vec<Waiting>) -> batchops_core::Result<()> {
        self.send(chunks.into_iter().map(|w| w.body).collect()).await
    }
    async fn runnable(&self) -> batchops_core::Result<Vec<(JobId, u64)>> {
        Ok(Vec::new())
    }
    async fn peek(&self, _: &JobId, _: usize) -> batchops_core::Result<Vec<Waiting>> {
        Ok(Vec::new())
    }
    async fn remove(&self, _: &JobId, _: &[u64]) -> batchops_core::Result<()> {
        Ok(())
    }
    async fn unmark(&self, _: &JobId, _: u64) -> batchops_core::Result<()> {
        Ok(())
    }
    async fn lock(&self, _: &str, _: Duration) -> batchops_core::Result<bool> {
        Ok(true)
    }
    async fn unlock(&self, _: &str) -> batchops_core::Result<()> {
        Ok(())
    }
}

struct NoRunner;

#[async_trait]
impl OperationRunner for NoRunner {
    async fn run(&self, _: &Operation, _: &Task) -> Outcome {
        Outcome::Succeeded { message: String::new() }
    }
}

fn row_key(i: u64) -> String {
    format!("data/year=2026/month={:02}/part-{:05}/object-{i:010}.parquet", i % 12 + 1, i % 10_000)
}

fn write_md5(path: &Path) -> Result<()> {
    let mut md5 = Md5::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    std::fs::write(path.with_extension("md5"), hex::encode(md5.finalize()))?;
    Ok(())
}

/// `bench/manifest-<n>.csv` and `bench/inventory-<n>/` (data files and manifest.json).
fn generate(root: &Path, rows: u64, files: u64) -> Result<()> {
    let bucket = root.join("bench");
    std::fs::create_dir_all(bucket.join(format!("inventory-{rows}/data")))?;
    let csv = bucket.join(format!("manifest-{rows}.csv"));
    if !csv.exists() {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&csv)?);
        for i in 0..rows {
            writeln!(w, "source-bucket,{}", row_key(i))?;
        }
        w.flush()?;
        write_md5(&csv)?;
    }
    let manifest = bucket.join(format!("inventory-{rows}/manifest.json"));
    if !manifest.exists() {
        let per = rows.div_ceil(files);
        let mut entries = Vec::new();
        for f in 0..files {
            let key = format!("inventory-{rows}/data/{f:03}.csv.gz");
            let path = bucket.join(&key);
            let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path)?, flate2::Compression::fast());
            let mut w = BufWriter::with_capacity(1 << 20, gz);
            for i in f * per..((f + 1) * per).min(rows) {
                writeln!(
                    w,
                    "\"source-bucket\",\"{}\",\"{}\",\"2026-11-25T00:00:00.000Z\",\"0123456789abcdef0123456789abcdef\",\"STANDARD\"",
                    row_key(i),
                    i % 100_000
                )?;
            }
            w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?.finish()?;
            write_md5(&path)?;
            let md5 = std::fs::read_to_string(path.with_extension("md5"))?;
            entries.push(json!({"key": key, "size": std::fs::metadata(&path)?.len(), "MD5checksum": md5}));
        }
        let doc = json!({"sourceBucket": "source-bucket", "destinationBucket": "arn:aws:s3:::bench",
            "version": "2016-11-30", "creationTimestamp": "0", "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass", "files": entries});
        std::fs::write(&manifest, doc.to_string())?;
        write_md5(&manifest)?;
    }
    Ok(())
}

/// The fastest of `n` runs of `f`.
fn best<T>(n: u32, mut f: impl FnMut() -> Result<(T, Duration)>) -> Result<(T, Duration)> {
    let mut out = f()?;
    for _ in 1..n {
        let next = f()?;
        if next.1 < out.1 {
            out = next;
        }
    }
    Ok(out)
}

/// Reads `paths` and counts newlines (gunzipping them first when `gzip`).
fn count_newlines(paths: &[PathBuf], gzip: bool) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let file = std::fs::File::open(p)?;
        let mut reader: Box<dyn Read> =
            if gzip { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
    }
    Ok((lines, start.elapsed()))
}

struct Run {
    tasks: u64,
    chunks: u64,
    message_bytes: u64,
    elapsed: Duration,
    peak: usize,
}

/// Runs the real chunker over a job whose manifest is `spec_manifest`, until the job is prepared.
async fn run_chunker(root: &Path, manifest: serde_json::Value) -> Result<Run> {
    let store: Arc<InMemoryJobStore> = Arc::default();
    let control: Arc<InMemoryQueue> = Arc::default();
    let finalize: Arc<InMemoryQueue> = Arc::default();
    let chunks: Arc<CountingQueue> = Arc::default();
    let settings = Settings { time_budget: Duration::from_secs(3600), ..Settings::default() };
    let ports = StagePorts {
        store: store.clone(),
        events: Arc::new(batchops_core::events::NoEvents),
        roles: Arc::new(batchops_core::memory::NoRoles),
        finalize,
        settings,
    };
    let intake = Intake { ports: ports.clone(), control: control.clone(), pass_role: None };
    let spec = json!({
        "ClientRequestToken": uuid::Uuid::new_v4().to_string(), "Priority": 1,
        "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
        "Manifest": manifest, "Report": {"Enabled": false}
    });
    let id = intake.create_job(spec.to_string().as_bytes(), Caller::Unknown).await?;
    let roles = InMemoryRoles::new(Arc::new(FileStore { root: root.to_path_buf() }), Arc::new(NoRunner));
    let chunker = Chunker {
        ports: StagePorts { roles: Arc::new(roles), ..ports },
        control: control.clone(),
        dispatcher: Arc::new(Dispatcher {
            store: store.clone(),
            events: Arc::new(batchops_core::events::NoEvents),
            backlog: chunks.clone(),
            chunks: chunks.clone(),
            depth: 0,
        }),
        dead_letters: Default::default(),
    };
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let start = Instant::now();
    while let Some(body) = control.pop() {
        let msg: ControlMessage = serde_json::from_str(&body)?;
        chunker.handle(msg, tokio::time::Instant::now() + Duration::from_secs(3600)).await?;
    }
    let elapsed = start.elapsed();
    let peak = ALLOC.peak_usage().saturating_sub(base);
    let job = store.get(&id).await?;
    anyhow::ensure!(job.failure_reasons.is_empty(), "job failed: {:?}", job.failure_reasons);
    Ok(Run {
        tasks: job.progress.total_tasks.context("job not prepared")?,
        chunks: chunks.messages.load(Ordering::Relaxed),
        message_bytes: chunks.bytes.load(Ordering::Relaxed),
        elapsed,
        peak,
    })
}

/// The fastest of `n` chunker runs, with the highest peak of them.
async fn best_run(n: u32, root: &Path, manifest: &serde_json::Value) -> Result<Run> {
    let mut out = run_chunker(root, manifest.clone()).await?;
    for _ in 1..n {
        let next = run_chunker(root, manifest.clone()).await?;
        out.peak = out.peak.max(next.peak);
        if next.elapsed < out.elapsed {
            out.elapsed = next.elapsed;
        }
    }
    Ok(out)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(what: &str, rows: u64, input_bytes: u64, run: &Run, baseline: Duration) {
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "{what:<22} {rows:>11} rows  {:>7.1} MiB  chunker {:>6.2} s {:>12.0} rows/s  newlines {:>6.2} s {:>12.0} rows/s  {:>5.2}x  peak heap {:>6.2} MiB  {} chunks, {:.0} B/msg",
        mib(input_bytes),
        run.elapsed.as_secs_f64(),
        rate(run.elapsed),
        baseline.as_secs_f64(),
        rate(baseline),
        run.elapsed.as_secs_f64() / baseline.as_secs_f64(),
        mib(run.peak as u64),
        run.chunks,
        run.message_bytes as f64 / run.chunks.max(1) as f64,
    );
    assert_eq!(run.tasks, rows, "every row is a task");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let root = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("batchops-chunker-bench"));
    println!(
        "chunker bench: data in {} (chunk size 1000, one chunker at a time, fastest of {} runs)",
        root.display(),
        args.repeat
    );
    for &rows in &args.rows {
        let t = Instant::now();
        generate(&root, rows, args.files)?;
        eprintln!("  {rows} rows ready in {:.1} s", t.elapsed().as_secs_f64());
        let bucket = root.join("bench");

        let csv = bucket.join(format!("manifest-{rows}.csv"));
        let etag = std::fs::read_to_string(csv.with_extension("md5"))?;
        let (lines, baseline) = best(args.repeat, || count_newlines(std::slice::from_ref(&csv), false))?;
        anyhow::ensure!(lines == rows);
        let manifest = json!({"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
               "Location": {"ObjectArn": format!("arn:aws:s3:::bench/manifest-{rows}.csv"), "ETag": etag}});
        let run = best_run(args.repeat, &root, &manifest).await?;
        report("CSV manifest", rows, std::fs::metadata(&csv)?.len(), &run, baseline);

        let dir = bucket.join(format!("inventory-{rows}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "gz"))
            .collect();
        files.sort();
        let gz_bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
        let (lines, baseline) = best(args.repeat, || count_newlines(&files, true))?;
        anyhow::ensure!(lines == rows);
        let etag = std::fs::read_to_string(dir.join("manifest.md5"))?;
        let manifest = json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
               "Location": {"ObjectArn": format!("arn:aws:s3:::bench/inventory-{rows}/manifest.json"), "ETag": etag}});
        let run = best_run(args.repeat, &root, &manifest).await?;
        report("gzip inventory", rows, gz_bytes, &run, baseline);
    }
    Ok(())
}
