//! The whole pipeline over the in-memory ports: every manifest line ends as exactly one
//! report row, whatever the time budget, redeliveries or cancellations.

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
use crate::memory::{InMemoryJobStore, InMemoryObjectStore, InMemoryQueue, InMemoryRoles};
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

    fn dispatcher(&self) -> Arc<dispatcher::Dispatcher> {
        Arc::new(dispatcher::Dispatcher {
            store: self.store.clone(),
            events: self.events.clone(),
            backlog: self.store.clone(),
            chunks: self.chunks.clone(),
            depth: self.depth,
        })
    }

    /// What every stage is wired with.
    fn ports(&self) -> StagePorts {
        StagePorts {
            store: self.store.clone(),
            events: self.events.clone(),
            roles: self.roles.clone(),
            finalize: self.finalize.clone(),
            settings: self.settings.clone(),
        }
    }

    fn chunker(&self) -> Chunker {
        Chunker {
            ports: self.ports(),
            control: self.control.clone(),
            dispatcher: self.dispatcher(),
            dead_letters: Default::default(),
        }
    }

    fn executor(&self) -> Executor {
        // A zero budget stresses the chunker's continuations; an executor's invocation has
        // a real one (with none, every task it starts would be cut off at once).
        let mut settings = self.settings.clone();
        if settings.time_budget.is_zero() {
            settings.time_budget = Duration::from_secs(60);
        }
        Executor {
            ports: StagePorts { settings, ..self.ports() },
            shutdown: Default::default(),
            limits: Default::default(),
            dispatcher: self.dispatcher(),
        }
    }

    fn finalizer(&self) -> Finalizer {
        Finalizer { ports: self.ports() }
    }

    fn intake(&self) -> Intake {
        Intake { ports: self.ports(), control: self.control.clone(), pass_role: None }
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
        if let Some(m) = self.control.pop() {
            let msg: ControlMessage = serde_json::from_str(&m).unwrap();
            self.chunker().handle(msg, Instant::now() + Duration::from_secs(60)).await.unwrap();
        } else if let Some(m) = self.chunks.pop() {
            let msg = ChunkMessage::decode(&m).unwrap();
            self.executor().handle(&msg).await.unwrap();
        } else if let Some(m) = self.finalize.pop() {
            let msg: FinalizeMessage = serde_json::from_str(&m).unwrap();
            self.finalizer().handle(&msg).await.unwrap();
        } else {
            return !self.dispatcher().dispatch().await.unwrap().released.is_empty();
        }
        true
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

#[tokio::test]
async fn a_job_runs_end_to_end_with_one_row_per_line() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(95), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.total_tasks, Some(95));
    assert_eq!((job.progress.succeeded, job.progress.failed), (85, 10));
    assert!(job.terminated.is_some());
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 95);
    assert!(rows.contains(&"src,missing-3,,failed,404,NoSuchKey,The specified key does not exist.".to_string()));
    assert!(rows.contains(&"src,flaky+7,,succeeded,200,,Successful".to_string()), "retried after SlowDown");
    assert!(rows.contains(&"src,obj%2094,,succeeded,200,,Successful".to_string()));
}

#[tokio::test]
async fn a_zero_time_budget_loses_and_repeats_no_row() {
    // Every piece read (7 bytes) exhausts the budget: the chunker continues itself constantly.
    let w = World::new(4, Duration::ZERO);
    let id = w.intake().create_job(&w.spec(&manifest(53), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.total_tasks, Some(53));
    assert_eq!(job.progress.total_chunks, Some(14));
    let rows = w.report_rows(&job);
    let expected: Vec<String> = {
        let mut keys: Vec<String> = manifest(53).lines().map(|l| l.split(',').nth(1).unwrap().to_string()).collect();
        keys.sort();
        keys
    };
    let mut keys: Vec<String> = rows.iter().map(|r| r.split(',').nth(1).unwrap().to_string()).collect();
    keys.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn blank_lines_by_the_thousand_hand_on_and_count_as_no_row() {
    // GIVEN manifests mostly blank (`\n`, `\r\r\n`), before, between and after their rows, a
    // CSV one and an inventory file, read with no time budget: before issue 23 a run of blank
    // lines before a chunk's first task never paused (no chunk was cut), and `\r\r` was a
    // failed row to the executor but no task to the chunker
    let w = World::new(4, Duration::ZERO);
    let blanks = "\n\r\r\n".repeat(500);
    let csv = format!("{blanks}{}{blanks}{}{blanks}", manifest(6), manifest(3).replace("src,", "src,b-"));
    let id = w.intake().create_job(&w.spec(&csv, json!({})), Caller::Unknown).await.unwrap();
    let v = World::new(4, Duration::ZERO);
    let inventory = format!("{blanks}{}{blanks}", inventory_rows(0, 5));
    let spec = v.inventory_spec(INVENTORY_SCHEMA, &[gzip(&inventory)], None, json!({}));
    let inv = v.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    // WHEN they run
    w.drain().await;
    v.drain().await;
    // THEN each completes with one row per line that names an object, and counters to match
    for (w, id, tasks) in [(&w, id, 9), (&v, inv, 5)] {
        let job = w.store.get(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
        assert_eq!(job.progress.total_tasks, Some(tasks));
        assert_eq!(job.progress.succeeded + job.progress.failed, tasks);
        assert_eq!(w.report_rows(&job).len() as u64, tasks);
    }
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

#[tokio::test]
async fn a_tiny_budget_hands_on_within_runs_of_blank_lines_before_any_chunk() {
    // GIVEN with no time budget and chunks of 10 tasks, a CSV manifest and an inventory file
    // whose rows follow 3 MiB and 250,000 blank lines: before, a run of blank lines cut no
    // chunk, so the chunker read it whole whatever its budget
    let handed_on = |csv: bool, blank: usize| async move {
        let w = World::new(10, Duration::ZERO);
        let blanks = "\n".repeat(blank);
        let spec = if csv {
            w.spec(&format!("{blanks}{}", manifest(5)), json!({}))
        } else {
            w.inventory_spec(INVENTORY_SCHEMA, &[gzip(&format!("{blanks}{}", inventory_rows(0, 5)))], None, json!({}))
        };
        let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
        let control = w.drain_counting_control().await;
        let job = w.store.get(&id).await.unwrap();
        assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(5)));
        assert_eq!(w.report_rows(&job).len(), 5);
        control
    };
    // WHEN they run, and the same rows without the blank lines
    let (csv, csv_alone) = (handed_on(true, 3 << 20).await, handed_on(true, 0).await);
    let (inv, inv_alone) = (handed_on(false, 250_000).await, handed_on(false, 0).await);
    // THEN the blank runs are read over several invocations: a megabyte, or 100,000 lines, each
    assert!(csv >= csv_alone + 2, "{csv} control messages, {csv_alone} without the blank lines");
    assert!(inv >= inv_alone + 2, "{inv} control messages, {inv_alone} without the blank lines");
}

#[tokio::test]
async fn checkpoints_whose_answers_are_lost_still_lead_the_preparation_on() {
    // Every continuation's checkpoint is written, and its answer lost: the retry meets the
    // write it repeats. The chunker must know it for its own and go on, not stop as if another
    // writer had changed the job.
    let w = World::new(4, Duration::ZERO);
    *w.store.lose_put_answers.lock().unwrap() =
        Some(Box::new(|j| j.status == JobStatus::Preparing && j.checkpoint != crate::job::Checkpoint::default()));
    let id = w.intake().create_job(&w.spec(&manifest(53), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_chunks), (JobStatus::Complete, Some(14)), "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 53);
}

#[tokio::test]
async fn a_status_change_whose_answer_is_lost_is_still_followed_through() {
    // The finalizer's Active -> Completing is written and its answer lost (seen on DynamoDB
    // through the fault proxy: the job stayed Completing, its 400 tasks all done).
    let w = World::new(10, Duration::from_secs(60));
    let once = std::sync::atomic::AtomicBool::new(true);
    *w.store.lose_put_answers.lock().unwrap() = Some(Box::new(move |j| {
        j.status == JobStatus::Completing && once.swap(false, std::sync::atomic::Ordering::SeqCst)
    }));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 25);
    let announced: Vec<JobStatus> =
        w.events.all().iter().filter(|e| e.job_id == id.as_str()).map(|e| e.status).collect();
    assert!(announced.contains(&JobStatus::Completing), "its event too: {announced:?}");
}

#[tokio::test]
async fn a_redelivered_chunk_is_recorded_once() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    // Run preparation only, then duplicate every chunk message.
    let first = w.control.pop().unwrap();
    w.control.send(vec![first.clone()]).await.unwrap();
    w.control.send(vec![first]).await.unwrap();
    let mut bodies = Vec::new();
    w.drain_control_only().await;
    while let Some(b) = w.chunks.pop() {
        bodies.push(b);
    }
    let doubled: Vec<String> = bodies.iter().chain(bodies.iter()).cloned().collect();
    w.chunks.send(doubled).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.tasks_run(), 30);
    assert_eq!(job.progress.chunks_done, 3);
    assert_eq!(w.report_rows(&job).len(), 30);
    // No orphan result files: every CSV under the job folder is listed in the manifest.
    let csvs = w.objects.keys("reports").into_iter().filter(|k| k.ends_with(".csv")).count();
    let listed = w.store.chunks(&id).await.unwrap().iter().map(|c| c.files.len()).sum::<usize>();
    assert_eq!(csvs, listed);
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

#[tokio::test]
async fn a_finalize_request_lost_after_the_last_chunk_is_made_up_by_the_chunks_redelivery() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let first = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let last = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    w.executor().handle(&first).await.unwrap();
    // The last chunk is recorded, then the finalize queue cannot be reached: the delivery fails.
    let mut cut_off = w.executor();
    cut_off.ports.finalize = Arc::new(Unreachable);
    let err = cut_off.handle(&last).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(w.store.get(&id).await.unwrap().progress.chunks_done, 2);
    assert!(w.finalize.is_empty());
    // Its redelivery finds it recorded and asks for the finalizer.
    assert!(matches!(w.executor().handle(&last).await.unwrap(), Disposition::Duplicate));
    assert_eq!(w.finalize.len(), 1);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 20);
}

#[tokio::test]
async fn a_job_whose_last_chunks_end_while_it_is_pausing_still_ends() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // The dispatcher paused it (a job of higher priority came) and released its last chunks;
    // they run and ask for the finalizer before the dispatcher moves it back to Active.
    let pausing = transition_from(&*w.store, &*w.events, &id, &[JobStatus::Active], JobStatus::Pausing, |_| {});
    assert!(pausing.await.unwrap().is_ok());
    while let Some(body) = w.chunks.pop() {
        w.executor().handle(&serde_json::from_str(&body).unwrap()).await.unwrap();
    }
    let msg: FinalizeMessage = serde_json::from_str(&w.finalize.pop().unwrap()).unwrap();
    let job = w.finalizer().handle(&msg).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), 20);
}

#[tokio::test]
async fn a_job_that_needs_confirmation_waits_in_suspended() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w
        .intake()
        .create_job(&w.spec(&manifest(25), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Suspended);
    assert_eq!(job.progress.total_tasks, Some(25));
    assert_eq!(job.progress.tasks_run(), 0, "nothing runs before confirmation");
    assert!(job.suspended.is_some() && job.suspended_cause.is_some());
    let up = w.intake().update_job_status(id.as_str(), "Ready", Some("go".into())).await.unwrap();
    assert_eq!(up.status, JobStatus::Ready);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 25);
    let err = w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap_err();
    assert!(matches!(err, crate::Error::StatusConflict { .. }));
    // Every status it went through, in order, with the causes stated.
    let history: Vec<(JobStatus, Option<&str>)> = job.history.iter().map(|c| (c.status, c.reason.as_deref())).collect();
    let cause = job.suspended_cause.as_deref();
    use JobStatus::*;
    assert_eq!(
        history,
        [
            (New, None),
            (Preparing, None),
            (Suspended, cause),
            (Ready, Some("go")),
            (Active, None),
            (Completing, None),
            (Complete, None)
        ]
    );
    assert!(job.history.windows(2).all(|w| w[0].at <= w[1].at));
    let described = super::describe::descriptor(&job, time::OffsetDateTime::now_utc());
    assert_eq!(
        described["StatusHistory"][3],
        json!({"Status": "Ready", "Time": described["StatusHistory"][3]["Time"], "Reason": "go"})
    );
}

/// A confirmed job that a job of higher priority pauses while it is being cut (issue 22, hole
/// 4: its continuation, its parts and the end of its cut were refused for a Pausing or Paused
/// job, so it never learnt its chunk total and stayed Active forever). Returns the chunk total.
async fn paused_while_cut(mut w: World, spec: Vec<u8>, tasks: usize) -> u64 {
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    // The executors are busy with the other job: nothing of this one is released.
    w.depth = 0;
    // The confirmation's Start: Active, the cut begun and to be continued.
    assert!(w.step().await);
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_chunks), (JobStatus::Active, None));
    assert!(!w.control.is_empty(), "the cut continues");
    for (from, to) in [(JobStatus::Active, JobStatus::Pausing), (JobStatus::Pausing, JobStatus::Paused)] {
        let paused = transition_from(&*w.store, &*w.events, &id, &[from], to, |_| {}).await;
        assert!(paused.unwrap().is_ok());
    }
    w.drain_control_only().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Paused);
    let chunks = job.progress.total_chunks.expect("cut whole while paused");
    // The other job is done: this one resumes, runs and ends.
    w.depth = 1_000_000;
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.history);
    assert_eq!(w.report_rows(&job).len(), tasks);
    chunks
}

#[tokio::test]
async fn a_confirmed_job_paused_while_it_is_cut_still_learns_its_chunks_and_ends() {
    // A zero budget: the cut continues itself after every piece it reads.
    let w = World::new(4, Duration::ZERO);
    let spec = w.spec(&manifest(53), json!({"ConfirmationRequired": true}));
    assert_eq!(paused_while_cut(w, spec, 53).await, 14);
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 9)), gzip(&inventory_rows(1, 6))];
    let spec = w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({"ConfirmationRequired": true}));
    assert_eq!(paused_while_cut(w, spec, 15).await, 5, "chunks of 4 of 9 rows and of 6");
}

#[tokio::test]
async fn a_wrong_manifest_etag_fails_the_job_with_a_reason() {
    let w = World::new(10, Duration::from_secs(60));
    let mut spec: Value = serde_json::from_slice(&w.spec(&manifest(5), json!({}))).unwrap();
    spec["Manifest"]["Location"]["ETag"] = json!("0000");
    let id = w.intake().create_job(spec.to_string().as_bytes(), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ManifestETagMismatch");
    assert!(job.failure_reasons[0].failure_reason.contains("0000"));
    assert!(w.report_rows(&job).is_empty(), "no task ran, so no report");
}

#[tokio::test]
async fn cancelling_stops_work_and_reports_what_ran() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(50), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // Run two of the five chunks, then cancel.
    let executor = w.executor();
    for _ in 0..2 {
        let m = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
        executor.handle(&m).await.unwrap();
    }
    let up = w.intake().update_job_status(id.as_str(), "Cancelled", Some("stop".into())).await.unwrap();
    assert_eq!(up.status, JobStatus::Cancelling);
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.progress.tasks_run(), 20);
    assert_eq!(job.status_update_reason.as_deref(), Some("stop"));
    assert_eq!(w.report_rows(&job).len(), 20, "counters equal report rows");
}

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

#[tokio::test(start_paused = true)]
async fn a_chunk_running_when_its_job_is_cancelled_records_the_tasks_it_ran() {
    // GIVEN a chunk of 200 tasks running for 62 ms
    let (w, id, msg) = slow_world(200).await;
    let executor = w.executor();
    let running = tokio::spawn(async move { executor.handle(&msg).await });
    tokio::time::sleep(Duration::from_millis(62)).await;
    // WHEN the job is cancelled meanwhile
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    // THEN the finalizer waits for the chunk in flight instead of ending the job without it
    let waiting = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    assert!(matches!(waiting, Err(Error::NotYet { .. })), "{waiting:?}");
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Cancelling);
    // ... the chunk stops starting tasks and records those that ran
    let Ok(Disposition::Recorded { succeeded, failed: 0 }) = running.await.unwrap() else { panic!("not recorded") };
    // ... those started before its next job check (at 63 ms) saw the cancel: 13 rounds of four
    assert_eq!(succeeded, 13 * 4, "{succeeded} of 200 tasks ran");
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    // ... and report rows = counters = tasks that ran
    assert_eq!(job.progress.succeeded, succeeded);
    assert_eq!(w.report_rows(&job).len() as u64, succeeded);
    assert_eq!(w.runner.total_calls() as u64, succeeded);
}

#[tokio::test(start_paused = true)]
async fn the_claim_of_a_worker_that_died_lapses_and_the_job_ends() {
    // GIVEN a cancelled job whose one chunk was claimed by a worker that died
    let (w, id, msg) = slow_world(10).await;
    let dead = crate::ports::ChunkLease { index: msg.index, owner: "dead".into(), until_ms: now_ms() + 300 };
    w.store.start_chunk(&id, &dead).await.unwrap();
    w.intake().update_job_status(id.as_str(), "Cancelled", None).await.unwrap();
    // WHEN the finalizer runs while the claim holds, then after it lapsed
    let early = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    let Err(Error::NotYet { retry_after, .. }) = early else { panic!("{early:?}") };
    assert!(retry_after <= Duration::from_millis(800), "back soon after the claim lapses: {retry_after:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let still = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await;
    assert!(matches!(still, Err(Error::NotYet { .. })), "the claim holds until 300 ms: {still:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = w.finalizer().handle(&FinalizeMessage { job_id: id.clone(), merge: None }).await.unwrap();
    // THEN the job ends, and the dead worker can no longer record
    assert_eq!(job.status, JobStatus::Cancelled);
    let late = crate::ports::ChunkRecord { index: msg.index, succeeded: 1, failed: 0, files: vec![] };
    assert_ne!(w.store.record_chunk(&id, &late, "dead").await.unwrap(), crate::ports::RecordOutcome::Recorded);
    assert_eq!(w.store.get(&id).await.unwrap().progress.tasks_run(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stopping_worker_hands_its_chunk_back_and_the_next_runs_it_whole() {
    // GIVEN a chunk of 100 tasks running in a worker that is asked to stop
    let (w, id, msg) = slow_world(100).await;
    let stopping = w.executor();
    let shutdown = stopping.shutdown.clone();
    let m = msg.clone();
    let running = tokio::spawn(async move { stopping.handle(&m).await });
    tokio::time::sleep(Duration::from_millis(42)).await;
    shutdown.begin();
    // THEN it hands the chunk back at once, unrecorded, and releases its claim
    let handed = running.await.unwrap();
    assert!(matches!(handed, Err(Error::NotYet { retry_after: Duration::ZERO, .. })), "{handed:?}");
    let ran_first = w.runner.total_calls();
    assert_eq!(ran_first, 9 * 4, "the rounds started before it was asked to stop, no more");
    assert!(!w.store.chunk_recorded(&id, msg.index).await.unwrap());
    assert!(w.store.chunk_leases(&id).await.unwrap().is_empty());
    // ... and the next delivery runs it from its start: one row per line
    assert!(matches!(w.executor().handle(&msg).await.unwrap(), Disposition::Recorded { succeeded: 100, .. }));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 100);
    assert_eq!(w.runner.total_calls(), ran_first + 100, "the first run's tasks are run again, not recorded");
}

#[tokio::test]
async fn a_key_over_s3s_limit_fails_its_task_saying_how_long_it_is() {
    let w = World::new(10, Duration::from_secs(60));
    let long = "k".repeat(1100);
    let id = w.intake().create_job(&w.spec(&format!("src,{long}\nsrc,short\n"), json!({})), Caller::Unknown).await;
    w.drain().await;
    let job = w.store.get(&id.unwrap()).await.unwrap();
    let rows = w.report_rows(&job);
    let row = rows.iter().find(|r| r.contains(&long)).unwrap();
    assert!(
        row.ends_with(",failed,400,KeyTooLongError,The key is 1100 bytes long; S3 keys are at most 1024 bytes (UTF-8)"),
        "{row}"
    );
    assert_eq!(w.runner.total_calls(), 1, "S3 is not asked");
}

#[tokio::test]
async fn a_permanent_error_while_preparing_fails_the_job_at_once() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(5), json!({})), Caller::Unknown).await.unwrap();
    // A stored record (without its plan) whose spec no longer validates: delivering the
    // message again cannot help.
    modify(&*w.store, &id, |j| {
        j.spec.role_arn = Some("not a role".into());
        j.plan = None;
        true
    })
    .await
    .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "PreparationFailed");
    assert!(job.failure_reasons[0].failure_reason.contains("RoleArn"), "{:?}", job.failure_reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_transition_is_refused_at_once_and_a_lost_race_is_retried() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(5), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    // Complete -> Active is not a transition: refused without retrying 20 times.
    let refused = transition(&*w.store, &*w.events, w.store.get(&id).await.unwrap(), JobStatus::Active, |_| {}).await;
    assert!(matches!(refused, Err(Error::StatusConflict { actual: JobStatus::Complete, .. })), "{refused:?}");
    // A stale copy loses the race; modify() re-reads and wins.
    let stale = w.store.get(&id).await.unwrap();
    modify(&*w.store, &id, |j| {
        j.priority = 7;
        true
    })
    .await
    .unwrap();
    assert!(matches!(w.store.put(&stale).await, Err(Error::Conflict { .. })));
    let tries = std::sync::atomic::AtomicU32::new(0);
    let changed = modify(&*w.store, &id, |j| {
        // The first try loses a race against a writer that got in between.
        if tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let mut other = j.clone();
            other.priority = 8;
            let put = w.store.put(&other);
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(put)).unwrap();
        }
        j.priority = 9;
        true
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((changed.priority, tries.into_inner()), (9, 2));
}

#[tokio::test]
async fn a_higher_priority_job_overtakes_a_lower_one_which_pauses_then_resumes() {
    // GIVEN executors with room for two chunks, and a low-priority job of ten chunks running
    let mut w = World::new(10, Duration::from_secs(60));
    w.depth = 2;
    let spec = |n, priority| w.spec_at(&format!("m{priority}.csv"), &manifest(n), json!({ "Priority": priority }));
    let low = w.intake().create_job(&spec(100, 1), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    assert_eq!(w.chunks.len(), 2, "the queue holds only what the executors need");
    let status = |id: JobId| {
        let store = w.store.clone();
        async move { store.get(&id).await.unwrap().status }
    };
    assert_eq!(status(low.clone()).await, JobStatus::Active);
    // WHEN a job of higher priority arrives
    let high = w.intake().create_job(&spec(30, 100), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // THEN the next chunk that ends makes room for the high job first, and the low job, whose
    // chunks held that room, goes Pausing ...
    assert_eq!(status(low.clone()).await, JobStatus::Active, "nothing changes while the queue is full");
    w.step().await;
    assert_eq!(status(low.clone()).await, JobStatus::Pausing);
    // ... and Paused once none of its chunks runs
    w.step().await;
    let j = w.store.get(&low).await.unwrap();
    assert_eq!(j.status, JobStatus::Paused, "{:?}", j.failure_reasons);
    // ... the high job completes while the low one waits, which then resumes and completes
    let mut low_done_when_high_completed = None;
    let mut low_statuses = vec![JobStatus::Paused];
    while w.step().await {
        let s = status(low.clone()).await;
        if low_statuses.last() != Some(&s) {
            low_statuses.push(s);
        }
        let high_job = w.store.get(&high).await.unwrap();
        if low_done_when_high_completed.is_none() && high_job.progress.all_chunks_done() {
            low_done_when_high_completed = Some(w.store.get(&low).await.unwrap().progress.chunks_done);
        }
    }
    let low_chunks = low_done_when_high_completed.expect("the high job ran all its chunks");
    assert!(low_chunks <= 3, "the low job ran {low_chunks} of its 10 chunks before the high one ran its 3");
    assert_eq!(low_statuses, vec![JobStatus::Paused, JobStatus::Active, JobStatus::Complete]);
    for id in [&low, &high] {
        let job = w.store.get(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Complete);
        assert_eq!(w.report_rows(&job).len() as u64, job.progress.total_tasks.unwrap());
    }
}

#[tokio::test]
async fn jobs_of_equal_priority_take_turns() {
    let mut w = World::new(10, Duration::from_secs(60));
    w.depth = 2;
    let a = w.intake().create_job(&w.spec_at("a.csv", &manifest(60), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let b = w.intake().create_job(&w.spec_at("b.csv", &manifest(60), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // Each chunk that ends lets the next job in turn have the room.
    let mut order = Vec::new();
    while let Some(m) = w.chunks.pop() {
        let msg = ChunkMessage::decode(&m).unwrap();
        order.push(if msg.job_id == a { 'a' } else { 'b' });
        w.executor().handle(&msg).await.unwrap();
    }
    let first_b = order.iter().position(|c| *c == 'b').unwrap();
    assert!(first_b <= 3, "b waited for {first_b} of a's chunks: {order:?}");
    let a_in_first_eight = order.iter().take(8).filter(|c| **c == 'a').count();
    assert!((3..=5).contains(&a_in_first_eight), "turns: {order:?}");
    w.drain().await;
    for id in [&a, &b] {
        assert_eq!(w.store.get(id).await.unwrap().status, JobStatus::Complete);
    }
}

#[tokio::test]
async fn the_failure_threshold_fails_the_job() {
    let w = World::new(100, Duration::from_secs(60));
    let body: String = (0..1500).map(|i| format!("src,missing-{i}\n")).collect();
    let id = w.intake().create_job(&w.spec(&body, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.progress.tasks_run(), 1000, "the job stops once the threshold is crossed");
    assert_eq!(job.failure_reasons[0].failure_code, "TaskFailureThresholdExceeded");
    assert_eq!(w.report_rows(&job).len(), 1000);
}

#[tokio::test]
async fn bad_lines_fail_their_task_only() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w
        .intake()
        .create_job(&w.spec("src,a\nsrc,b,c,d\n\nsrc,%ZZ%FF\nsrc,e", json!({})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.succeeded, job.progress.failed), (2, 2));
    let rows = w.report_rows(&job);
    assert!(rows.iter().any(|r| r.contains("manifest line 2: expected 2 columns")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("manifest line 4:") && r.contains("URL-")), "{rows:?}");
}

#[tokio::test]
async fn create_job_is_idempotent_on_its_token() {
    let w = World::new(10, Duration::from_secs(60));
    let body = w.spec(&manifest(3), json!({"ClientRequestToken": "same"}));
    let a = w.intake().create_job(&body, Caller::Unknown).await.unwrap();
    let b = w.intake().create_job(&body, Caller::Unknown).await.unwrap();
    assert_eq!(a, b);
    let other = w.spec(&manifest(3), json!({"ClientRequestToken": "same", "Priority": 2}));
    assert!(matches!(w.intake().create_job(&other, Caller::Unknown).await, Err(crate::Error::Idempotency { .. })));
}

#[tokio::test]
async fn list_pages_and_filters_by_status() {
    let w = World::new(10, Duration::from_secs(60));
    for _ in 0..5 {
        w.intake().create_job(&w.spec(&manifest(1), json!({})), Caller::Unknown).await.unwrap();
    }
    let page = w.intake().list_jobs(&JobFilter::default(), Some(2), None).await.unwrap();
    assert_eq!(page.jobs.len(), 2);
    let page2 = w.intake().list_jobs(&JobFilter::default(), Some(10), page.next_token.as_deref()).await.unwrap();
    assert_eq!(page2.jobs.len(), 3);
    assert!(page2.next_token.is_none());
    assert_eq!(
        w.intake()
            .list_jobs(&JobFilter { statuses: &[JobStatus::New], account: None, open: false }, None, None)
            .await
            .unwrap()
            .jobs
            .len(),
        5
    );
    assert_eq!(
        w.intake()
            .list_jobs(&JobFilter { statuses: &[JobStatus::Active], account: None, open: false }, None, None)
            .await
            .unwrap()
            .jobs
            .len(),
        0
    );
}

#[tokio::test]
async fn a_manifest_overwritten_during_the_job_fails_it() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    // GIVEN the manifest is replaced after it was cut
    w.objects.insert("manifests", "m.csv", manifest(31).into_bytes());
    // WHEN the chunks run
    w.drain().await;
    // THEN the job fails naming the change, and no task ran against the new content
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ManifestChanged");
    assert_eq!(job.progress.tasks_run(), 0);
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

#[tokio::test]
async fn a_chunk_that_keeps_failing_fails_its_job_instead_of_hanging() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(15), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let broken = InMemoryRoles::new(Arc::new(BrokenRangeReads(w.objects.clone())), w.runner.clone());
    let mut executor = w.executor();
    executor.ports.roles = Arc::new(broken);
    let msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    for attempt in 1..w.settings.max_chunk_attempts {
        assert!(executor.handle_attempt(&msg, attempt).await.is_err(), "attempt {attempt} is retried");
    }
    let last = executor.handle_attempt(&msg, w.settings.max_chunk_attempts).await.unwrap();
    assert_eq!(last, crate::pipeline::executor::Disposition::Skipped(JobStatus::Failing));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ChunkFailed");
    assert!(job.failure_reasons[0].failure_reason.contains("from manifest line 1"), "{:?}", job.failure_reasons);
}

#[tokio::test]
async fn an_unreadable_chunk_message_fails_its_job_at_its_first_delivery() {
    // Delivering it again cannot mend it: the job fails now, naming it, instead of the message
    // going round until it is dead-lettered.
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(15), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let mut msg = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    let garbage = serde_json::value::RawValue::from_string(r#"{"not": "rows"}"#.into()).unwrap();
    msg.body = crate::chunk::ChunkBody::Rows(serde_json::from_str(garbage.get()).unwrap());
    let first = w.executor().handle_attempt(&msg, 1).await.unwrap();
    assert_eq!(first, Disposition::Skipped(JobStatus::Failing));
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.failure_reasons[0].failure_code.as_str()), (JobStatus::Failed, "ChunkFailed"));
    assert!(job.failure_reasons[0].failure_reason.contains("unreadable message"), "{:?}", job.failure_reasons);
}

#[tokio::test]
async fn batched_operations_get_the_tasks_of_one_bucket_together() {
    let w = World::new(2500, Duration::from_secs(60));
    let lines: String = (0..2300).map(|i| format!("{},k{i}\n", if i % 3 == 0 { "other" } else { "src" })).collect();
    let spec = w.spec(&lines, json!({"Operation": {"S3DeleteObject": {}}}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.progress.succeeded, 2300);
    let mut batches = w.runner.batches.lock().unwrap().clone();
    batches.sort();
    // 767 keys in "other", 1533 in "src": batches of at most 1,000, one bucket each.
    assert_eq!(batches, vec![("other".to_string(), 767), ("src".to_string(), 533), ("src".to_string(), 1000)]);
    assert_eq!(w.report_rows(&job).len(), 2300);
}

#[tokio::test]
async fn a_bucket_failing_its_check_fails_the_job_before_any_task_runs() {
    let w = World::new(10, Duration::from_secs(60));
    let op = json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}});
    let spec = w.spec("unlocked-bucket,a\nunlocked-bucket,b\n", json!({ "Operation": op }));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "ObjectLockNotEnabled");
    assert!(w.runner.calls.lock().unwrap().is_empty(), "no task ran");
    let spec = w.spec("locked,a\n", json!({ "Operation": op }));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Complete);
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

#[tokio::test]
async fn inventory_files_are_read_in_parallel_with_one_row_per_line_whatever_the_budget() {
    // GIVEN an inventory of four gzip files, with an empty version ID, a short line, a blank
    // line, an empty file and a line that is not UTF-8, read with no time budget at all (every
    // chunk hands on)
    let w = World::new(7, Duration::ZERO);
    let mut second = inventory_rows(1, 20);
    second.push_str("\"src\",\"null-version\",\"\",\"true\",\"false\",\"1\"\n\n\"src\",\"short\"\n");
    let mut third = b"\"src\",\"ok-key\",\"v1\",\"true\",\"false\",\"1\"\n".to_vec();
    third.extend_from_slice(b"\"src\",\"bad\xff\",\"v1\",\"true\",\"false\",\"1\"\n");
    let files = vec![gzip(&inventory_rows(0, 30)), gzip(&second), gzip(""), gzip_bytes(&third)];
    let id = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    // WHEN the job runs
    w.drain().await;
    // THEN every line is one report row, failures name their file and line, versions are kept
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(job.progress.total_tasks, Some(54));
    assert_eq!(job.progress.files_total, Some(4));
    assert_eq!((job.progress.succeeded, job.progress.failed), (51, 3));
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 54);
    assert!(rows.contains(&"src,ok-key,v1,succeeded,200,,Successful".to_string()), "a bad line spoils only itself");
    assert!(rows.iter().any(|r| r.ends_with("inventory file src/cfg/data/3.csv.gz line 2: is not UTF-8")), "{rows:?}");
    assert!(rows.contains(&"src,f0/obj%2029,v29,succeeded,200,,Successful".to_string()), "{rows:?}");
    assert!(rows
        .contains(&"src,null-version,,failed,400,InvalidManifestContent,inventory file src/cfg/data/1.csv.gz line 21: Task failed due to missing VersionId".to_string()), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with("src,short,,failed,400,InvalidManifestContent,\"inventory file src/cfg/data/1.csv.gz line 23: expected 6 columns")), "{rows:?}");
}

#[tokio::test]
async fn inventory_files_that_do_not_check_out_fail_the_job_before_any_task() {
    for (files, md5, schema, code, says) in [
        (
            vec![gzip(&inventory_rows(0, 5))],
            Some((0, "0123456789abcdef0123456789abcdef")),
            INVENTORY_SCHEMA,
            "ManifestChecksumMismatch",
            "not the 0123456789abcdef0123456789abcdef its manifest.json gives",
        ),
        (vec![b"not gzip at all".to_vec()], None, INVENTORY_SCHEMA, "InvalidManifestContent", "is not valid gzip"),
        (vec![gzip(&inventory_rows(0, 5))], None, "Bucket, Size", "InvalidManifestContent", "has no Key column"),
    ] {
        let w = World::new(10, Duration::from_secs(60));
        let id =
            w.intake().create_job(&w.inventory_spec(schema, &files, md5, json!({})), Caller::Unknown).await.unwrap();
        w.drain().await;
        let job = w.store.get(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.failure_reasons[0].failure_code, code);
        assert!(job.failure_reasons[0].failure_reason.contains(says), "{:?}", job.failure_reasons);
        assert_eq!(job.progress.tasks_run(), 0);
    }
}

#[tokio::test]
async fn a_confirmed_inventory_job_counts_then_cuts() {
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 9)), gzip(&inventory_rows(1, 6))];
    let spec = w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({"ConfirmationRequired": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Suspended, Some(15)));
    assert_eq!(job.progress.tasks_run(), 0);
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(w.report_rows(&job).len(), 15);
}

#[tokio::test]
async fn an_empty_manifest_or_inventory_completes_with_no_tasks_and_says_so() {
    let w = World::new(10, Duration::from_secs(60));
    // (the inventory's spec writes the CSV manifest too: it goes first)
    let inv = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &[], None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    let csv = w.intake().create_job(&w.spec("\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    for id in [csv, inv] {
        let job = w.store.get(&id).await.unwrap();
        assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(0)), "{:?}", job.failure_reasons);
        assert_eq!(job.status_update_reason.as_deref(), Some("The manifest holds no tasks: nothing to run"));
        assert!(w.report_rows(&job).is_empty(), "no report when no task ran");
    }
}

#[tokio::test]
async fn a_csv_manifest_with_a_header_row_fails_naming_line_one() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec("Bucket,Key\nsrc,a\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons[0].failure_code, "InvalidManifestContent");
    assert!(job.failure_reasons[0].failure_reason.starts_with("manifest line 1: 'Bucket' is not a bucket name"));
    assert_eq!(job.progress.tasks_run(), 0);
}

#[tokio::test]
async fn manifests_beyond_the_configured_limits_fail_the_job() {
    let mut w = World::new(3, Duration::from_secs(60));
    w.settings.max_tasks = 5;
    let id = w.intake().create_job(&w.spec(&manifest(9), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.failure_reasons[0].failure_code.as_str()), (JobStatus::Failed, "ManifestTooLarge"));

    let mut w = World::new(3, Duration::from_secs(60));
    w.settings.max_line_bytes = 100;
    let long = format!("src,a\nsrc,{}\n", "x".repeat(500));
    let id = w.intake().create_job(&w.spec(&long, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.failure_reasons[0].failure_code, "InvalidManifestContent");
    assert!(
        job.failure_reasons[0].failure_reason.starts_with("manifest line 2 is longer than 100 bytes"),
        "{:?}",
        job.failure_reasons
    );
}

#[tokio::test]
async fn a_generator_lists_filters_and_writes_its_manifest_whatever_the_budget() {
    // GIVEN 2,300 objects, of which the .log ones under logs/ match, listed with no time budget
    let w = World::new(5, Duration::ZERO);
    for i in 0..2300 {
        let key = if i % 2 == 0 { format!("logs/{i:05} a.log") } else { format!("logs/{i:05}.txt") };
        w.objects.insert("src", &key, vec![b'x'; i % 7]);
    }
    w.objects.insert("src", "other/x.log", "x");
    let filter = json!({"KeyNameConstraint": {"MatchAnyPrefix": ["logs/"], "MatchAnySuffix": [".log"]},
                        "ObjectSizeGreaterThanBytes": 0});
    let id = w.intake().create_job(&w.generator_spec(filter, true, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let expected: Vec<usize> = (0..2300).filter(|i| i % 2 == 0 && i % 7 != 0).collect();
    assert_eq!(job.progress.total_tasks, Some(expected.len() as u64));
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), expected.len());
    assert!(rows.contains(&"src,logs/00002+a.log,,succeeded,200,,Successful".to_string()), "{:?}", &rows[..2]);
    // AND the generated manifest lists the same objects, and DescribeJob says where it is
    let d = super::describe::descriptor(&job, time::OffsetDateTime::now_utc());
    let loc = &d["GeneratedManifestDescriptor"];
    assert_eq!(loc["Format"], "S3InventoryReport_CSV_20211130");
    assert_eq!(loc["Location"]["ObjectArn"], format!("arn:aws:s3:::gen/out/job-{id}/manifest.json"));
    let m =
        crate::inventory::parse_manifest(&w.objects.get("gen", &format!("out/job-{id}/manifest.json")).unwrap(), "gen")
            .unwrap();
    assert!(m.files.len() >= 2, "one data file per {} chunks", super::chunker::listing::FILE_CHUNKS);
    let mut listed = 0;
    for f in &m.files {
        let body = w.objects.get("gen", &f.key).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
        listed += text.lines().count();
    }
    assert_eq!(listed, expected.len());
}

#[tokio::test]
async fn a_generator_that_matches_nothing_completes_with_zero_tasks_and_says_so() {
    let w = World::new(50, Duration::from_secs(60));
    w.objects.insert("src", "a.txt", "x");
    let id = w
        .intake()
        .create_job(&w.generator_spec(json!({"MatchAnyStorageClass": ["GLACIER"]}), false, json!({})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.total_tasks), (JobStatus::Complete, Some(0)));
    let reason = job.status_update_reason.unwrap_or_default();
    assert!(reason.contains("matched none of the 1 objects listed in s3://src"), "{reason}");
}

#[tokio::test]
async fn a_confirmed_generator_job_runs_on_what_it_listed_before_confirmation() {
    let w = World::new(5, Duration::ZERO);
    for i in 0..12 {
        w.objects.insert("src", &format!("k{i:02}"), "x");
    }
    let spec = w.generator_spec(json!({}), false, json!({"ConfirmationRequired": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().progress.total_tasks, Some(12));
    w.objects.insert("src", "k99-added-later", "x");
    w.intake().update_job_status(id.as_str(), "Ready", None).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 12);
    assert!(!rows.iter().any(|r| r.contains("added-later")));
    assert!(
        super::describe::descriptor(&job, time::OffsetDateTime::now_utc()).get("GeneratedManifestDescriptor").is_none(),
        "not asked for"
    );
}

#[tokio::test]
async fn a_redelivered_inventory_prepare_reads_each_file_into_the_totals_once() {
    // GIVEN an inventory job whose Prepare message is delivered twice
    let w = World::new(4, Duration::ZERO);
    let files = vec![gzip(&inventory_rows(0, 10)), gzip(&inventory_rows(1, 7))];
    let id = w
        .intake()
        .create_job(&w.inventory_spec(INVENTORY_SCHEMA, &files, None, json!({})), Caller::Unknown)
        .await
        .unwrap();
    let prepare = w.control.pop().unwrap();
    w.control.send(vec![prepare.clone(), prepare]).await.unwrap();
    // WHEN everything runs
    w.drain().await;
    // THEN the files were sent twice, read twice, but counted and reported once
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!((job.progress.total_tasks, job.progress.cut.files), (Some(17), 2));
    assert_eq!(w.report_rows(&job).len(), 17);
}

#[tokio::test]
async fn a_report_whose_files_cannot_be_merged_lists_them_all_in_a_manifest_of_parts() {
    // GIVEN an active job with 12,001 recorded chunks of two result files each (about 9 MiB of
    // manifest.json), files the report bucket does not hold, so merges cannot read them
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(1), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    w.chunks.pop().expect("the job's one chunk");
    let long = "k".repeat(300);
    let key = |index: u64, status: &str| format!("r/job-{id}/results/{index:040}-{status}-{long}.csv");
    // WHEN the finalizer ends it (its merges run, and record their chunks' files unmerged)
    w.end_with_recorded_chunks(&id, 12_001, key).await;
    let job = w.store.get(&id).await.unwrap();
    // THEN the manifest (written in parts: it is larger than one) lists every file in order
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.store.segments_recorded(&id).await.unwrap(), 481, "12,001 chunks in segments of 25");
    let body = w.objects.get("reports", &format!("r/job-{id}/manifest.json")).unwrap();
    assert!(body.len() > super::finalizer::report::REPORT_PART_BYTES, "{} bytes", body.len());
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let results = doc["Results"].as_array().unwrap();
    assert_eq!(results.len(), 24_002);
    assert!(results[24_001]["Key"].as_str().unwrap().contains(&format!("{:040}-failed", 12_000)));
    assert_eq!(doc["Format"], "Report_CSV_20180820");
}

#[tokio::test]
async fn unmerged_segments_of_a_report_under_the_longest_prefix_each_fit_one_dynamodb_item() {
    // GIVEN a job reported under a 512-character prefix in one segment (as it would be), with
    // 600 recorded chunks of two result files each that merges cannot read
    let mut w = World::new(10, Duration::from_secs(60));
    w.settings.report_segments = 1;
    let prefix = "p".repeat(512);
    let report = json!({"Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                                   "Prefix": prefix, "ReportScope": "AllTasks"}});
    let id = w.intake().create_job(&w.spec(&manifest(1), report), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    w.chunks.pop().expect("the job's one chunk");
    let key = |index: u64, status: &str| {
        format!("{prefix}/job-{id}/results/{:040}.csv", index * 2 + (status == "failed") as u64)
    };
    // WHEN the finalizer ends it (its merges record their chunks' files unmerged)
    w.end_with_recorded_chunks(&id, 600, key).await;
    // THEN the segments were cut small enough for DynamoDB's 400 KB items (the store refuses
    // larger ones as DynamoDB does), and the job ended listing every file
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    let segments = w.store.segments_recorded(&id).await.unwrap();
    assert!(segments > 1, "600 chunks of the widest files cannot be one item");
    let body = w.objects.get("reports", &format!("{prefix}/job-{id}/manifest.json")).unwrap();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["Results"].as_array().unwrap().len(), 1200);
}

const ROLE: &str = "arn:aws:iam::123456789012:role/batch";

#[tokio::test]
async fn every_request_of_a_job_acts_as_its_role() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Complete);
    let assumed = w.roles.assumed.lock().unwrap().clone();
    // Prepare, three chunks and the report: each stage asked for the job's role.
    assert_eq!(assumed.len(), 5, "{assumed:?}");
    assert!(assumed.iter().all(|(job, role)| *job == id && role == ROLE), "{assumed:?}");
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_fails_the_job_in_preparing() {
    let w = World::new(10, Duration::from_secs(60));
    w.roles.refused.lock().unwrap().insert(ROLE.to_string());
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure_reasons.len(), 1, "{:?}", job.failure_reasons);
    let f = &job.failure_reasons[0];
    assert_eq!(f.failure_code, "AssumeRoleFailed");
    assert!(f.failure_reason.contains(ROLE) && f.failure_reason.contains("AccessDenied"), "{}", f.failure_reason);
    assert!(w.runner.calls.lock().unwrap().is_empty(), "no task ran");
    assert_eq!((job.progress.succeeded, job.progress.failed), (0, 0));
    assert!(w.report_rows(&job).is_empty());
}

#[tokio::test]
async fn a_throttled_role_is_tried_again_and_then_the_job_runs() {
    let w = World::new(10, Duration::from_secs(60));
    w.roles.throttled.lock().unwrap().insert(ROLE.to_string());
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    let chunker = w.chunker();
    let prepare = w.control.pop().unwrap();
    let err = chunker.handle(serde_json::from_str(&prepare).unwrap(), Instant::now()).await.unwrap_err();
    assert!(matches!(err, crate::Error::Backend { transient: true, .. }), "{err}");
    assert_eq!(w.store.get(&id).await.unwrap().status, JobStatus::Preparing);
    // The message comes back once STS answers again.
    w.roles.throttled.lock().unwrap().clear();
    w.control.send(vec![prepare]).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(w.report_rows(&job).len(), 25);
}

#[tokio::test]
async fn a_role_lost_while_the_job_runs_fails_it_and_every_task_run_is_counted_and_reported() {
    // GIVEN a job whose first chunk ran
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(25), json!({})), Caller::Unknown).await.unwrap();
    w.drain_control_only().await;
    let first = ChunkMessage::decode(&w.chunks.pop().unwrap()).unwrap();
    w.executor().handle(&first).await.unwrap();
    // WHEN the role can no longer be assumed (its trust policy was changed)
    w.roles.refused.lock().unwrap().insert(ROLE.to_string());
    w.drain().await;
    // THEN the job fails naming the role; counters equal the rows written (no report manifest:
    // it too would be written as the role)
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.failure_reasons.iter().all(|f| f.failure_code == "AssumeRoleFailed"), "{:?}", job.failure_reasons);
    assert_eq!(job.progress.tasks_run(), 10);
    let rows: usize = w
        .objects
        .keys("reports")
        .iter()
        .filter(|k| k.ends_with(".csv"))
        .map(|k| String::from_utf8(w.objects.get("reports", k).unwrap().to_vec()).unwrap().lines().count())
        .sum();
    assert_eq!(rows, 10, "the rows of the chunk that ran are kept");
}

#[tokio::test]
async fn every_status_a_job_takes_is_announced_once_in_order() {
    let w = World::new(10, Duration::from_secs(60));
    let spec = w.spec(&manifest(25), json!({"Tags": [{"Key": "team", "Value": "data"}]}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    use JobStatus::*;
    assert_eq!(w.events.statuses(id.as_str()), vec![New, Preparing, Ready, Active, Completing, Complete]);
    let all: Vec<_> = w.events.all().into_iter().filter(|e| e.job_id == id.as_str()).collect();
    assert_eq!(all[0].detail["eventName"], "JobCreated");
    assert_eq!(all[1].detail["eventName"], "JobStatusChanged");
    assert_eq!(all[1].detail["previousStatus"], "New");
    assert_eq!(all[0].detail["tags"], json!([{"Key": "team", "Value": "data"}]));
    let done = &all[5].detail;
    assert_eq!(done["progressSummary"]["NumberOfTasksSucceeded"], 22);
    assert_eq!(done["progressSummary"]["NumberOfTasksFailed"], 3);
    assert_eq!(done["report"]["manifest"], format!("r/job-{id}/manifest.json"));
    assert_eq!(done["jobEventId"].as_str().unwrap().len(), 32);

    // A failing job says why.
    let bad = w.spec(&manifest(5), json!({}));
    let failing = w.intake().create_job(&bad, Caller::Unknown).await.unwrap();
    w.objects.insert("manifests", "m.csv", b"changed".to_vec());
    w.drain().await;
    let events: Vec<_> = w.events.all().into_iter().filter(|e| e.job_id == failing.as_str()).collect();
    let last = &events[events.len() - 1];
    assert_eq!(events[events.len() - 2].status, Failing);
    assert_eq!(last.status, Failed);
    assert_eq!(last.detail["failureCodes"], json!(["ManifestETagMismatch"]), "{}", last.detail);
}

#[tokio::test]
async fn retry_failed_runs_exactly_the_failed_rows_again_as_a_tagged_child_job() {
    let w = World::new(10, Duration::from_secs(60));
    let spec = w.spec(&manifest(40), json!({"Tags": [{"Key": "team", "Value": "data"}]}));
    let parent = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    // Not before it has ended.
    let early = w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(matches!(early, crate::Error::StatusConflict { .. }), "{early}");
    w.drain().await;
    assert_eq!(w.store.get(&parent).await.unwrap().progress.failed, 4);
    let child = w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap();
    assert_eq!(w.intake().retry_failed(parent.as_str(), Caller::Unknown).await.unwrap(), child, "asked twice, one job");
    let manifest_key = format!("r/job-{parent}/retry-failed/manifest.csv");
    let written = String::from_utf8(w.objects.get("reports", &manifest_key).unwrap().to_vec()).unwrap();
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    assert_eq!(lines, ["src,missing-13", "src,missing-23", "src,missing-3", "src,missing-33"]);
    w.drain().await;
    let job = w.store.get(&child).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.total_tasks, job.progress.failed), (Some(4), 4));
    assert_eq!(job.spec.description.as_deref(), Some(format!("Retry of the 4 failed tasks of job {parent}").as_str()));
    let tags: Vec<(String, String)> = job.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    assert_eq!(tags, [("team".into(), "data".into()), ("batchops:retry-of".into(), parent.to_string())]);
    assert_eq!(job.spec.operation, w.store.get(&parent).await.unwrap().spec.operation);

    // A job with no failed task, or without a report, says so.
    let clean =
        w.intake().create_job(&w.spec_at("ok.csv", "src,a\nsrc,b\n", json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let none = w.intake().retry_failed(clean.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(none.to_string().contains("has no failed tasks"), "{none}");
    let quiet = w.spec_at("q.csv", "src,missing-1\n", json!({"Report": {"Enabled": false}}));
    let quiet = w.intake().create_job(&quiet, Caller::Unknown).await.unwrap();
    w.drain().await;
    let unreported = w.intake().retry_failed(quiet.as_str(), Caller::Unknown).await.unwrap_err();
    assert!(unreported.to_string().contains("has no report"), "{unreported}");
}

#[tokio::test]
async fn a_dry_run_reads_each_object_runs_no_operation_and_reports_what_would_happen() {
    let w = World::new(2, Duration::from_secs(60));
    w.objects.insert("src", "a", b"12345".to_vec());
    w.objects.insert("src", "b c", b"1".to_vec());
    let spec = w.spec_at("dry.csv", "src,a\nsrc,b%20c\nsrc,gone\n", json!({"DryRun": true}));
    let id = w.intake().create_job(&spec, Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.succeeded, job.progress.failed), (2, 1));
    assert_eq!(w.runner.total_calls(), 0, "no task ran the operation");
    let rows = w.report_rows(&job);
    assert!(
        rows.iter().any(|r| r.starts_with("src,a,,succeeded,200,,")
            && r.contains(r#"""DryRun"":true"#)
            && r.contains(r#"""Size"":5"#)),
        "{rows:?}"
    );
    assert!(rows.contains(&"src,gone,,failed,404,NoSuchKey,The specified key does not exist.".to_string()), "{rows:?}");
    let d = super::describe::descriptor(&job, time::OffsetDateTime::now_utc());
    assert_eq!(d["DryRun"], true);
    assert_eq!(d["DryRunEstimate"]["TasksThatWouldRun"], 2);
    assert_eq!(d["DryRunEstimate"]["RequestsOfTheRealRun"], json!({"PutObjectTagging": 2}));
}

#[tokio::test]
async fn a_schedule_firing_creates_one_job_however_often_it_is_delivered() {
    let w = World::new(10, Duration::from_secs(60));
    let spec: Value = serde_json::from_slice(&w.generator_spec(
        json!({"CreatedAfter": "-P1D", "CreatedBefore": "-PT1H"}),
        false,
        json!({}),
    ))
    .unwrap();
    let input = |time: &str| {
        json!({"batchops": {"Spec": spec, "ScheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/batchops/nightly",
                            "ScheduledTime": time, "ExecutionId": uuid::Uuid::new_v4().to_string()}})
        .to_string()
    };
    let firing = crate::schedule::Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
    let id = w.intake().create_scheduled(&firing, &*w.objects).await.unwrap();
    let again = crate::schedule::Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
    assert_eq!(w.intake().create_scheduled(&again, &*w.objects).await.unwrap(), id, "a redelivered firing");
    let next = crate::schedule::Firing::parse(input("2026-12-02T02:00:00Z").as_bytes()).unwrap();
    assert_ne!(w.intake().create_scheduled(&next, &*w.objects).await.unwrap(), id, "the next firing");
    // The windows were counted back from the scheduled time, and DescribeJob shows them.
    let d = super::describe::descriptor(&w.store.get(&id).await.unwrap(), time::OffsetDateTime::now_utc());
    let filter = &d["ManifestGenerator"]["S3JobManifestGenerator"]["Filter"];
    assert_eq!(filter["CreatedAfter"], "2026-11-30T02:00:00.000Z");
    assert_eq!(filter["CreatedBefore"], "2026-12-01T01:00:00.000Z");

    // A spec read from SpecLocation; a location that does not exist is named.
    w.objects.insert("specs", "schedules/nightly.json", w.spec(&manifest(3), json!({})));
    let located = json!({"batchops": {"SpecLocation": "s3://specs/schedules/nightly.json", "ScheduleArn": "arn:s",
                                      "ScheduledTime": "2026-12-01T02:00:00Z"}});
    let f = crate::schedule::Firing::parse(located.to_string().as_bytes()).unwrap();
    let job = w.intake().create_scheduled(&f, &*w.objects).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&job).await.unwrap().progress.total_tasks, Some(3));
    let missing = json!({"batchops": {"SpecLocation": "s3://specs/none.json", "ScheduleArn": "arn:s",
                                      "ScheduledTime": "2026-12-01T02:00:00Z"}});
    let f = crate::schedule::Firing::parse(missing.to_string().as_bytes()).unwrap();
    let e = w.intake().create_scheduled(&f, &*w.objects).await.unwrap_err().to_string();
    assert!(e.starts_with("batchops.SpecLocation: cannot read s3://specs/none.json"), "{e}");
}

#[tokio::test]
async fn a_job_unconfirmed_for_30_days_fails_and_an_ended_job_is_gone_after_90() {
    let w = World::new(10, Duration::from_secs(60));
    let waiting = w
        .intake()
        .create_job(&w.spec(&manifest(5), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    let recent = w
        .intake()
        .create_job(&w.spec_at("r.csv", &manifest(5), json!({"ConfirmationRequired": true})), Caller::Unknown)
        .await
        .unwrap();
    w.drain().await;
    let ago = |days| time::OffsetDateTime::now_utc() - time::Duration::days(days);
    let mut old = w.store.get(&waiting).await.unwrap();
    assert_eq!(old.status, JobStatus::Suspended);
    old.suspended = Some(ago(31));
    w.store.put(&old).await.unwrap();
    w.chunker().expire().await.unwrap();
    w.drain().await;
    let failed = w.store.get(&waiting).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure_reasons[0].failure_code, "JobConfirmationExpired");
    assert_eq!(w.store.get(&recent).await.unwrap().status, JobStatus::Suspended, "29 days to go");

    // Ended 91 days ago: neither listed nor described.
    let mut ended = w.store.get(&waiting).await.unwrap();
    ended.terminated = Some(ago(91));
    w.store.put(&ended).await.unwrap();
    let listed: Vec<JobId> =
        w.intake().list_jobs(&JobFilter::default(), None, None).await.unwrap().jobs.into_iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![recent.clone()]);
    assert!(matches!(w.intake().describe_job(waiting.as_str()).await, Err(crate::Error::JobNotFound { .. })));
}

#[tokio::test]
async fn every_stage_runs_the_plan_intake_validated_and_a_record_without_one_still_runs() {
    let w = World::new(10, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(20), json!({})), Caller::Unknown).await.unwrap();
    let mut job = w.store.get(&id).await.unwrap();
    let plan = job.plan.clone().expect("intake stores the validated job");
    assert_eq!(plan, job.spec.validate().unwrap());
    // The spec as given is for DescribeJob only: the stages never validate it again.
    job.spec.operation = Some(json!({"NotAnOperation": {}}));
    w.store.put(&job).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!((job.status, job.progress.tasks_run()), (JobStatus::Complete, 20));

    // A record written before the plan was kept is validated from its spec when read.
    let old = w.intake().create_job(&w.spec_at("o.csv", &manifest(5), json!({})), Caller::Unknown).await.unwrap();
    let mut record = w.store.get(&old).await.unwrap();
    record.plan = None;
    w.store.put(&record).await.unwrap();
    w.drain().await;
    assert_eq!(w.store.get(&old).await.unwrap().status, JobStatus::Complete);
}

#[tokio::test]
async fn a_chunker_that_wrote_its_checkpoint_but_never_sent_its_continuation_is_resumed_by_the_redelivery() {
    // A zero budget: every piece read continues itself.
    let w = World::new(4, Duration::ZERO);
    let id = w.intake().create_job(&w.spec(&manifest(30), json!({})), Caller::Unknown).await.unwrap();
    let deadline = || Instant::now() + Duration::from_secs(60);
    let cut_off = Chunker { control: Arc::new(Unreachable), ..w.chunker() };
    // The Prepare: checkpoint written, continuation lost; the Prepare comes again.
    let prepare: ControlMessage = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
    assert!(cut_off.handle(prepare.clone(), deadline()).await.unwrap_err().is_transient());
    assert_ne!(w.store.get(&id).await.unwrap().checkpoint, Default::default());
    w.chunker().handle(prepare, deadline()).await.unwrap();
    // A continuation: the same again.
    let next: ControlMessage = serde_json::from_str(&w.control.pop().unwrap()).unwrap();
    assert!(matches!(next, ControlMessage::Continue { .. }));
    assert!(cut_off.handle(next.clone(), deadline()).await.unwrap_err().is_transient());
    w.chunker().handle(next, deadline()).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.progress.total_tasks, job.progress.tasks_run()), (Some(30), 30));
    assert_eq!(w.report_rows(&job).len(), 30, "each row once");
}

/// Runs the job's queues to the end, handing every merge message of a big report to the
/// finalizer `times` times (a duplicate delivery).
async fn drain_merging(w: &World, times: usize) {
    loop {
        if let Some(m) = w.finalize.pop() {
            let msg: FinalizeMessage = serde_json::from_str(&m).unwrap();
            let n = if msg.merge.is_some() { times } else { 1 };
            for _ in 0..n {
                w.finalizer().handle(&msg).await.unwrap();
            }
        } else if !w.step().await {
            return;
        }
    }
}

#[tokio::test]
async fn a_job_of_many_chunks_reports_in_at_most_a_thousand_files_with_every_row_once() {
    use crate::pipeline::finalizer::report::MAX_SEGMENTS;
    // 1,203 chunks of one task: 401 segments of 3 chunks.
    let w = World::new(1, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(1203), json!({})), Caller::Unknown).await.unwrap();
    drain_merging(&w, 2).await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    let manifest_json = w.objects.get("reports", &format!("r/job-{id}/manifest.json")).unwrap();
    let doc: Value = serde_json::from_slice(&manifest_json).unwrap();
    let results = doc["Results"].as_array().unwrap();
    assert!(results.len() as u64 <= 2 * MAX_SEGMENTS, "{} files", results.len());
    let succeeded = results.iter().filter(|f| f["TaskExecutionStatus"] == "succeeded").count();
    // Every segment has successes; one line in ten fails, in 120 of them.
    assert_eq!((succeeded, results.len() - succeeded), (401, 120), "one file per status per segment");
    for f in results {
        let body = w.objects.get("reports", f["Key"].as_str().unwrap()).unwrap();
        assert_eq!(f["MD5Checksum"].as_str().unwrap(), hex::encode(<md5::Md5 as md5::Digest>::digest(&body)));
    }
    let rows = w.report_rows(&job);
    assert_eq!(rows.len(), 1203);
    let mut keys: Vec<&str> = rows.iter().map(|r| r.split(',').nth(1).unwrap()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 1203, "each row once, though every merge ran twice");
    assert_eq!((job.progress.succeeded + job.progress.failed), 1203);
    // The chunks' own files were merged and deleted; a duplicate merge's output too.
    let left = w.objects.keys("reports").into_iter().filter(|k| k.contains("/results/")).count();
    assert_eq!(left, results.len());
}

#[tokio::test]
async fn a_job_of_few_chunks_keeps_its_chunk_files() {
    let w = World::new(1, Duration::from_secs(60));
    let id = w.intake().create_job(&w.spec(&manifest(40), json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(w.report_rows(&job).len(), 40);
    assert!(w.store.segments_after(&id, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn failures_count_every_failed_row_of_the_report_per_code_with_the_first_rows() {
    let w = World::new(10, Duration::from_secs(60));
    // 40 rows: every tenth object is missing, and one line is not a manifest row.
    let mut text = manifest(40);
    text.push_str("src\n");
    let id = w.intake().create_job(&w.spec_at("f.csv", &text, json!({})), Caller::Unknown).await.unwrap();
    w.drain().await;
    let job = w.store.get(&id).await.unwrap();
    assert_eq!(job.progress.failed, 5);
    let f = w.intake().failures(id.as_str(), 2).await.unwrap();
    assert!(f.complete);
    assert_eq!((f.failed_tasks, f.rows_read, f.other_rows), (5, 5, 0), "rows read = counters");
    let counts: Vec<_> = f.groups.iter().map(|g| (g.error_code.as_str(), g.http_status_code, g.count)).collect();
    assert_eq!(counts, [("NoSuchKey", 404, 4), ("InvalidManifestContent", 400, 1)]);
    assert_eq!(f.groups[0].tasks.len(), 2, "at most `limit` rows per pair");
    assert!(f.groups[0].tasks.iter().all(|t| t.bucket == "src" && t.key.starts_with("missing-")));
    assert!(f.groups[1].tasks[0].result_message.contains("line 41"), "{:?}", f.groups[1]);

    // Every result file, and the manifest of the ended job, with a link.
    let links = w.intake().report_links(id.as_str()).await.unwrap();
    assert_eq!(
        links.files.len(),
        crate::pipeline::finalizer::report::report_files(&*w.store, &id).await.unwrap().len()
    );
    assert_eq!(links.files.iter().map(|f| f.rows.unwrap()).sum::<u64>(), 41, "every row in some file");
    assert!(links.files.iter().all(|f| f.url == format!("memory://reports/{}", f.key)), "{links:?}");
    assert_eq!(links.manifest.unwrap().key, format!("r/job-{id}/manifest.json"));
    let bad = w.intake().failures(id.as_str(), 0).await.unwrap_err();
    assert!(bad.to_string().contains("limit"), "{bad}");
    let quiet = w.spec_at("q2.csv", "src,missing-1\n", json!({"Report": {"Enabled": false}}));
    let quiet = w.intake().create_job(&quiet, Caller::Unknown).await.unwrap();
    w.drain().await;
    let unreported = w.intake().failures(quiet.as_str(), 10).await.unwrap_err();
    assert!(unreported.to_string().contains("has no report"), "{unreported}");
}

mod dead_letters;
mod hand_on;
mod sweep;
