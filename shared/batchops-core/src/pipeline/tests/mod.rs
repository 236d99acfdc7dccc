//! The whole pipeline over the in-memory ports: every manifest line ends as exactly one
//! report row, whatever the time budget, redeliveries or cancellations. The world the tests
//! run in is here; the tests, by stage, in the files below.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::chunk::{ChunkMessage, ControlMessage, FinalizeMessage};
use crate::events::RecordedEvents;
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::memory::pipeline::Stepped;
use crate::memory::{InMemoryJobStore, InMemoryObjectStore, InMemoryPipeline, InMemoryQueue, InMemoryRoles};
use crate::ops::{BucketCheck, Operation, Task};
use crate::pipeline::executor::Disposition;
use crate::pipeline::intake::Caller;
use crate::ports::{ChunkLedger, JobRecords, Queue, ReportLedger};
use crate::ports::{JobFilter, OperationRunner};
use crate::retry::{Outcome, TaskFailure};
use crate::Error;

/// Succeeds unless the key contains "missing" (404), "flaky" (503 on the first try) or
/// "throttled" (503 SlowDown, always).
/// Batches are recorded (bucket, size); buckets named `unlocked*` fail the Object Lock check.
#[derive(Default)]
struct FakeRunner {
    calls: std::sync::Mutex<HashMap<String, u32>>,
    batches: std::sync::Mutex<Vec<(String, usize)>>,
    /// How long each task takes.
    delay: std::sync::Mutex<Duration>,
}

impl FakeRunner {
    fn total_calls(&self) -> u32 {
        self.calls.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl OperationRunner for FakeRunner {
    async fn run_batch(&self, op: &Operation, tasks: &[Task]) -> Vec<Outcome> {
        assert!(tasks.iter().all(|t| t.target.bucket == tasks[0].target.bucket), "one bucket per batch");
        self.batches.lock().unwrap().push((tasks[0].target.bucket.clone(), tasks.len()));
        let mut out = Vec::new();
        for t in tasks {
            out.push(self.run(op, t).await);
        }
        out
    }

    async fn check_bucket(&self, check: BucketCheck, bucket: &str) -> crate::Result<Option<JobFailure>> {
        Ok((check == BucketCheck::ObjectLock && bucket.starts_with("unlocked"))
            .then(|| JobFailure::new("ObjectLockNotEnabled", format!("Bucket {bucket} has no Object Lock"))))
    }

    async fn run(&self, _op: &Operation, task: &Task) -> Outcome {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let t = &task.target;
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(t.key.clone()).or_default();
            *n += 1;
            *n
        };
        if t.key.contains("throttled") {
            Outcome::Failed(TaskFailure::classify(503, "SlowDown", "Please reduce your request rate."))
        } else if t.key.contains("missing") {
            Outcome::Failed(TaskFailure::classify(404, "NoSuchKey", "The specified key does not exist."))
        } else if t.key.contains("flaky") && n == 1 {
            Outcome::Failed(TaskFailure::classify(503, "SlowDown", "Please reduce your request rate."))
        } else {
            Outcome::Succeeded { message: "Successful".into() }
        }
    }
}

struct World {
    store: Arc<InMemoryJobStore>,
    objects: Arc<InMemoryObjectStore>,
    control: Arc<InMemoryQueue>,
    chunks: Arc<InMemoryQueue>,
    finalize: Arc<InMemoryQueue>,
    runner: Arc<FakeRunner>,
    roles: Arc<InMemoryRoles>,
    events: Arc<RecordedEvents>,
    settings: Settings,
    /// The chunk queue's depth the dispatcher keeps (large: every chunk released at once).
    depth: u64,
}

impl World {
    fn new(chunk_size: u64, budget: Duration) -> World {
        let mut objects = InMemoryObjectStore::default();
        objects.piece_size = Some(7);
        let mut settings = Settings { chunk_size, time_budget: budget, ..Settings::default() };
        settings.retry.base_delay = Duration::from_millis(1);
        let objects = Arc::new(objects);
        let runner = Arc::new(FakeRunner::default());
        World {
            store: Arc::default(),
            roles: Arc::new(InMemoryRoles::new(objects.clone(), runner.clone())),
            objects,
            control: Arc::default(),
            chunks: Arc::default(),
            finalize: Arc::default(),
            runner,
            events: Arc::default(),
            settings,
            depth: 1_000_000,
        }
    }

    /// The stages over this world's ports, wired as the functions wire them.
    fn pipeline(&self) -> InMemoryPipeline {
        InMemoryPipeline {
            store: self.store.clone(),
            objects: self.objects.clone(),
            roles: self.roles.clone() as Arc<dyn crate::ports::RoleAccess>,
            control: self.control.clone(),
            chunks: self.chunks.clone(),
            finalize: self.finalize.clone(),
            events: self.events.clone(),
            settings: self.settings.clone(),
            depth: self.depth,
        }
    }

    fn dispatcher(&self) -> Arc<dispatcher::Dispatcher> {
        self.pipeline().dispatcher()
    }

    fn chunker(&self) -> Chunker {
        self.pipeline().chunker()
    }

    fn executor(&self) -> Executor {
        self.pipeline().executor()
    }

    fn finalizer(&self) -> Finalizer {
        self.pipeline().finalizer()
    }

    fn intake(&self) -> Intake {
        self.pipeline().intake()
    }

    fn spec(&self, manifest: &str, extra: Value) -> Vec<u8> {
        self.spec_at("m.csv", manifest, extra)
    }

    /// A spec whose manifest is `s3://manifests/<key>`.
    fn spec_at(&self, key: &str, manifest: &str, extra: Value) -> Vec<u8> {
        let etag = self.objects.insert("manifests", key, manifest.as_bytes().to_vec());
        let mut v = json!({
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "Priority": 1,
            "RoleArn": "arn:aws:iam::123456789012:role/batch",
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}"), "ETag": etag}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "Prefix": "r", "ReportScope": "AllTasks"}
        });
        for (k, val) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = val;
        }
        v.to_string().into_bytes()
    }

    /// Plays the event source mappings until every queue is empty.
    async fn drain(&self) {
        while self.step().await {}
    }

    /// Handles one message (control first, then chunks, then finalize), or runs a dispatcher
    /// round when the queues are empty; false when there was nothing to do.
    async fn step(&self) -> bool {
        match self.pipeline().step(Duration::from_secs(60)).await.unwrap() {
            Stepped::Handled { result, .. } => {
                result.unwrap();
                true
            }
            Stepped::Dispatched(released) => released > 0,
        }
    }

    /// Every report row of a job, read back through manifest.json.
    fn report_rows(&self, job: &crate::job::Job) -> Vec<String> {
        let folder = format!("r/job-{}", job.id);
        let Some(manifest) = self.objects.get("reports", &format!("{folder}/manifest.json")) else {
            return Vec::new();
        };
        let doc: Value = serde_json::from_slice(&manifest).unwrap();
        let mut rows = Vec::new();
        for f in doc["Results"].as_array().unwrap() {
            let body = self.objects.get("reports", f["Key"].as_str().unwrap()).unwrap();
            rows.extend(String::from_utf8(body.to_vec()).unwrap().lines().map(String::from));
        }
        rows.sort();
        rows
    }
}

fn manifest(n: usize) -> String {
    (0..n)
        .map(|i| match i % 10 {
            3 => format!("src,missing-{i}\n"),
            7 => format!("src,flaky+{i}\n"),
            _ => format!("src,obj%20{i}\n"),
        })
        .collect()
}

impl World {
    /// [`World::drain`], counting the control messages handled (preparations and hand-ons).
    async fn drain_counting_control(&self) -> usize {
        let mut control = 0;
        loop {
            if let Some(m) = self.control.pop() {
                control += 1;
                let msg: ControlMessage = serde_json::from_str(&m).unwrap();
                self.chunker().handle(msg, Instant::now() + self.settings.time_budget).await.unwrap();
            } else if !self.step().await {
                return control;
            }
        }
    }
}

impl World {
    /// Records `count` chunks of one success and one failure each, whose result files (named
    /// by `key(index, status)`) the report bucket does not hold, sets them as the job's
    /// chunks, and has the finalizer end the job, its merge messages handled as they come.
    async fn end_with_recorded_chunks(&self, id: &JobId, count: u64, key: impl Fn(u64, &str) -> String) {
        for index in 0..count {
            let file = |status: &str| crate::ports::ResultFile {
                key: key(index, status),
                status: status.into(),
                md5: "0".repeat(32),
                rows: 1,
            };
            let record = crate::ports::ChunkRecord {
                index,
                succeeded: 1,
                failed: 1,
                files: vec![file("succeeded"), file("failed")],
            };
            let lease = crate::ports::ChunkLease { index, owner: "w".into(), until_ms: u64::MAX };
            self.store.start_chunk(id, &lease).await.unwrap();
            assert_eq!(self.store.record_chunk(id, &record, "w").await.unwrap(), crate::ports::RecordOutcome::Recorded);
        }
        modify(&*self.store, id, |j| {
            j.progress.total_chunks = Some(count);
            true
        })
        .await
        .unwrap();
        let finalizer = self.finalizer();
        finalizer.handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await.unwrap();
        while let Some(m) = self.finalize.pop() {
            finalizer.handle(&serde_json::from_str(&m).unwrap()).await.unwrap();
        }
    }

    async fn drain_control_only(&self) {
        let chunker = self.chunker();
        while let Some(m) = self.control.pop() {
            chunker.handle(serde_json::from_str(&m).unwrap(), Instant::now() + Duration::from_secs(60)).await.unwrap();
        }
    }
}

/// A queue that refuses every send, as SQS does in an outage.
struct Unreachable;

#[async_trait]
impl crate::ports::Queue for Unreachable {
    async fn send(&self, _bodies: Vec<String>) -> crate::Result<()> {
        Err(crate::Error::transient("SendMessageBatch", "connection refused"))
    }

    async fn depth(&self) -> crate::Result<u64> {
        Err(crate::Error::transient("GetQueueAttributes", "connection refused"))
    }
}

/// Fails every ranged read (the executor's), as a manifest bucket in trouble would.
struct BrokenRangeReads(Arc<InMemoryObjectStore>);

#[async_trait]
impl crate::ports::ObjectStore for BrokenRangeReads {
    async fn head(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
    ) -> Result<crate::ports::ObjectHead, crate::ports::StorageError> {
        self.0.head(b, k, v).await
    }
    async fn read(
        &self,
        object: &crate::ports::ObjectRef<'_>,
        options: crate::ports::ReadOptions<'_>,
    ) -> Result<crate::ports::ByteStream, crate::ports::StorageError> {
        if options.end.is_some() {
            return Err(crate::ports::StorageError {
                http_status: 503,
                code: "SlowDown".into(),
                message: "busy".into(),
            });
        }
        self.0.read(object, options).await
    }
    async fn put(&self, b: &str, k: &str, body: bytes::Bytes, ct: &str) -> Result<(), crate::ports::StorageError> {
        self.0.put(b, k, body, ct).await
    }
    async fn delete(&self, b: &str, k: &str) -> Result<(), crate::ports::StorageError> {
        self.0.delete(b, k).await
    }
    async fn put_with(
        &self,
        b: &str,
        k: &str,
        body: bytes::Bytes,
        ct: &str,
        o: &crate::ports::PutOptions<'_>,
    ) -> Result<String, crate::ports::StorageError> {
        self.0.put_with(b, k, body, ct, o).await
    }
    async fn list(
        &self,
        r: &crate::ports::ListRequest<'_>,
    ) -> Result<crate::ports::ListPage, crate::ports::StorageError> {
        self.0.list(r).await
    }
    async fn versioned(&self, b: &str) -> Result<bool, crate::ports::StorageError> {
        self.0.versioned(b).await
    }
    async fn replication_rules(
        &self,
        b: &str,
    ) -> Result<Vec<crate::ops::replicate_object::ReplicationRule>, crate::ports::StorageError> {
        self.0.replication_rules(b).await
    }
    async fn tags(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
    ) -> Result<Vec<(String, String)>, crate::ports::StorageError> {
        self.0.tags(b, k, v).await
    }
    async fn start_upload(&self, b: &str, k: &str, ct: &str) -> Result<String, crate::ports::StorageError> {
        self.0.start_upload(b, k, ct).await
    }
    async fn upload_part(
        &self,
        b: &str,
        k: &str,
        id: &str,
        n: i32,
        body: bytes::Bytes,
    ) -> Result<String, crate::ports::StorageError> {
        self.0.upload_part(b, k, id, n, body).await
    }
    async fn complete_upload(
        &self,
        b: &str,
        k: &str,
        id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), crate::ports::StorageError> {
        self.0.complete_upload(b, k, id, parts).await
    }
    async fn abort_upload(&self, b: &str, k: &str, id: &str) -> Result<(), crate::ports::StorageError> {
        self.0.abort_upload(b, k, id).await
    }
}

/// Gzip of `text`, as S3 Inventory writes its data files.
fn gzip(text: &str) -> Vec<u8> {
    gzip_bytes(text.as_bytes())
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    crate::inventory::gzip(bytes)
}

impl World {
    /// An inventory in the `inv` bucket: one data file per body (already compressed), and a
    /// spec naming its manifest.json. `md5` overrides a file's MD5 in manifest.json.
    fn inventory_spec(&self, schema: &str, files: &[Vec<u8>], md5: Option<(usize, &str)>, extra: Value) -> Vec<u8> {
        use md5::{Digest, Md5};
        let entries: Vec<Value> = files
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let key = format!("src/cfg/data/{i}.csv.gz");
                self.objects.insert("inv", &key, body.clone());
                let sum = match md5 {
                    Some((j, m)) if j == i => m.to_string(),
                    _ => hex::encode(Md5::digest(body)),
                };
                json!({"key": key, "size": body.len(), "MD5checksum": sum})
            })
            .collect();
        let manifest = json!({"sourceBucket": "src", "destinationBucket": "arn:aws:s3:::inv", "version": "2016-11-30",
            "creationTimestamp": "1514944800000", "fileFormat": "CSV", "fileSchema": schema, "files": entries});
        let etag = self.objects.insert("inv", "src/cfg/2024-01-01T00-00Z/manifest.json", manifest.to_string());
        let mut v: Value = serde_json::from_slice(&self.spec("", extra)).unwrap();
        v["Manifest"] = json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
            "Location": {"ObjectArn": "arn:aws:s3:::inv/src/cfg/2024-01-01T00-00Z/manifest.json", "ETag": etag}});
        v.to_string().into_bytes()
    }

    fn generator_spec(&self, filter: Value, output: bool, extra: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&self.spec("", extra)).unwrap();
        v.as_object_mut().unwrap().remove("Manifest");
        let mut g = json!({"SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": output, "Filter": filter});
        if output {
            g["ManifestOutputLocation"] = json!({"Bucket": "arn:aws:s3:::gen", "ManifestPrefix": "out",
                "ManifestFormat": "S3InventoryReport_CSV_20211130"});
        }
        v["ManifestGenerator"] = json!({"S3JobManifestGenerator": g});
        v.to_string().into_bytes()
    }
}

const INVENTORY_SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size";

fn inventory_rows(file: usize, n: usize) -> String {
    (0..n).map(|i| format!("\"src\",\"f{file}/obj%20{i}\",\"v{i}\",\"true\",\"false\",\"{i}\"\n")).collect()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/batch";

/// A job of `n` plain objects in one chunk whose tasks take 5 ms each, four at a time, and
/// whose running chunks read their job every 7 ms. Its tests run on a paused clock, so what
/// has run by when is decided by virtual time, not by how loaded the machine is; they act
/// at instants when no task ends and no check is due, so the order is never a tie.
async fn slow_world(n: usize) -> (World, JobId, ChunkMessage) {
    let mut w = World::new(n as u64, Duration::from_secs(60));
    w.settings.task_concurrency = 4;
    w.settings.job_check = Duration::from_millis(7);
    *w.runner.delay.lock().unwrap() = Duration::from_millis(5);
    let body: String = (0..n).map(|i| format!("src,obj{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    (w, id, msg)
}

mod chunks;
mod csv_manifests;
mod dead_letters;
mod generators;
mod hand_on;
mod intake_api;
mod inventories;
mod lifecycle;
mod reports;
mod resources;
mod sweep;
