//! The pipeline in memory, for the manifest targets: a job over a fuzzed manifest runs through
//! the real intake, chunker, dispatcher, executor and finalizer (the in-memory ports of
//! `batchops_core::memory`), and its end is checked against an independent count of the
//! manifest's tasks: report rows = counters = tasks, and a retry of its failed tasks gets them all.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batchops_core::job::{Job, JobId, JobStatus};
use batchops_core::memory::pipeline::Stepped;
use batchops_core::memory::{InMemoryObjectStore, InMemoryPipeline, InMemoryQueue, InMemoryRoles};
use batchops_core::ops::{Operation, Task};
use batchops_core::pipeline::intake::Caller;
use batchops_core::pipeline::{Intake, Settings};
use batchops_core::ports::OperationRunner;
use batchops_core::retry::{Outcome, TaskFailure};
use serde_json::{json, Value};

/// Every task succeeds, but those whose key says `fail`.
struct Runner;

#[async_trait]
impl OperationRunner for Runner {
    async fn run(&self, _: &Operation, task: &Task) -> Outcome {
        if task.target.key.contains("fail") {
            Outcome::Failed(TaskFailure::permanent(400, "Refused", "the key says fail"))
        } else {
            Outcome::Succeeded { message: "Successful".into() }
        }
    }
}

/// Messages handled before a job that has not ended counts as one that never ends.
const MAX_STEPS: usize = 100_000;

/// The in-memory pipeline a fuzzed job runs through.
pub struct World {
    pipeline: InMemoryPipeline,
    pub objects: Arc<InMemoryObjectStore>,
}

impl World {
    /// Chunks of `chunk_size` tasks; the chunker hands on after every piece when `no_budget`;
    /// objects are read in pieces of `piece` bytes.
    pub fn new(chunk_size: u64, no_budget: bool, piece: usize) -> World {
        let mut objects = InMemoryObjectStore::default();
        objects.piece_size = Some(piece.max(1));
        let objects = Arc::new(objects);
        let budget = if no_budget { Duration::ZERO } else { Duration::from_secs(60) };
        let mut settings = Settings { chunk_size, time_budget: budget, ..Settings::default() };
        settings.retry.base_delay = Duration::from_millis(1);
        let roles = Arc::new(InMemoryRoles::new(objects.clone(), Arc::new(Runner)));
        let pipeline = InMemoryPipeline::new(objects.clone(), roles, settings);
        World { pipeline, objects }
    }

    pub fn intake(&self) -> Intake {
        self.pipeline.intake()
    }

    /// A tagging job over `s3://manifests/<key>` of `format`, reporting every task.
    pub fn spec(&self, key: &str, etag: &str, format: &str) -> Vec<u8> {
        let mut spec = json!({
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "Priority": 1,
            "RoleArn": "arn:aws:iam::123456789012:role/batch",
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": format},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}"), "ETag": etag}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "Prefix": "r", "ReportScope": "AllTasks"}
        });
        if format.starts_with("S3BatchOperations") {
            spec["Manifest"]["Spec"]["Fields"] = json!(["Bucket", "Key"]);
        }
        spec.to_string().into_bytes()
    }

    /// Handles messages until every queue is empty; an error if one fails for good or the
    /// job never ends.
    pub async fn drain(&self) -> Result<(), String> {
        let p = &self.pipeline;
        for _ in 0..MAX_STEPS {
            let handled = match p.step(p.settings.time_budget).await.map_err(|e| e.to_string())? {
                Stepped::Handled { stage, body, result } => self.again(p.queue(stage), body, result).await?,
                Stepped::Dispatched(released) => released > 0,
            };
            if !handled && p.control.len() + p.chunks.len() + p.finalize.len() == 0 {
                return Ok(());
            }
        }
        Err(format!("the queues were not empty after {MAX_STEPS} messages"))
    }

    /// A message whose handler failed comes again when the failure may pass (SQS's
    /// redelivery); a permanent failure of a handler is a bug: the job should fail instead.
    async fn again(&self, queue: &InMemoryQueue, body: String, r: batchops_core::Result<()>) -> Result<bool, String> {
        use batchops_core::ports::Queue;
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.is_transient() => {
                queue.send(vec![body]).await.map_err(|e| e.to_string())?;
                Ok(true)
            }
            Err(e) => Err(format!("a handler failed for good: {e}")),
        }
    }

    pub async fn job(&self, id: &JobId) -> Result<Job, String> {
        use batchops_core::ports::JobRecords;
        self.pipeline.store.get(id).await.map_err(|e| e.to_string())
    }

    /// Every report row of a job, read back through its manifest.json (none without one: a
    /// job of no task writes no report, and its counters say 0).
    pub fn report_rows(&self, job: &Job) -> Result<Vec<String>, String> {
        let folder = format!("r/job-{}", job.id);
        let Some(manifest) = self.objects.get("reports", &format!("{folder}/manifest.json")) else {
            return Ok(Vec::new());
        };
        let doc: Value = serde_json::from_slice(&manifest).map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for f in doc["Results"].as_array().into_iter().flatten() {
            let key = f["Key"].as_str().unwrap_or_default();
            let body = self.objects.get("reports", key).ok_or_else(|| format!("report file {key} is missing"))?;
            let mut records = Vec::new();
            let mut reader = batchops_core::report::Records::new(usize::MAX);
            reader.feed(&body, |r: &[u8], _| records.push(String::from_utf8_lossy(r).into_owned()));
            reader.finish(|r: &[u8], _| records.push(String::from_utf8_lossy(r).into_owned()));
            rows.extend(records);
        }
        Ok(rows)
    }

    /// Runs the job of `spec` to its end and checks it against `expected` tasks (None: the job
    /// may fail, with a reason); then a retry of its failed tasks, which must get them all.
    pub async fn run_and_check(&self, spec: &[u8], expected: Option<u64>) -> Result<(), String> {
        let intake = self.intake();
        let id = intake.create_job(spec, Caller::Unknown).await.map_err(|e| format!("CreateJob: {e}"))?;
        self.drain().await?;
        let job = self.job(&id).await?;
        // A manifest with no line over the limit fails only as a header row would (its first
        // line naming no bucket); any other may fail, with a reason.
        let allowed = |reason: &str| expected.is_none() || reason.contains("no header row");
        match job.status {
            JobStatus::Complete => {}
            JobStatus::Failed if job.failure_reasons.iter().any(|f| allowed(&f.failure_reason)) => return Ok(()),
            other => return Err(format!("job ended {other:?}: {:?}", job.failure_reasons)),
        }
        let p = &job.progress;
        let rows = self.report_rows(&job)?;
        let counted = p.succeeded + p.failed;
        if p.total_tasks != Some(counted) || rows.len() as u64 != counted || expected.is_some_and(|e| e != counted) {
            return Err(format!(
                "tasks {:?}, counters {counted} ({} succeeded), report rows {}, tasks in the manifest {expected:?}",
                p.total_tasks,
                p.succeeded,
                rows.len()
            ));
        }
        if let Some(bad) = rows.iter().find(|r| r.contains("InvalidManifestContent") && !names_a_line(r)) {
            return Err(format!("a failed line's row names no line: {bad:.300}"));
        }
        if p.failed > 0 {
            let retry = intake.retry_failed(id.as_str(), Caller::Unknown).await.map_err(|e| format!("retry: {e}"))?;
            self.drain().await?;
            let again = self.job(&retry).await?;
            let got = again.progress.succeeded + again.progress.failed;
            if again.status != JobStatus::Complete || got != p.failed {
                let why = &again.failure_reasons;
                return Err(format!(
                    "the retry of {} failed tasks ended {:?} with {got}: {why:?}",
                    p.failed, again.status
                ));
            }
        }
        Ok(())
    }
}

fn names_a_line(row: &str) -> bool {
    row.contains("manifest line ") || row.contains(" line ")
}

/// Tasks of a manifest counted apart from the pipeline: its lines that are not blank (empty or
/// only `\r`s), the last one without a line break too.
pub fn count_tasks(manifest: &[u8]) -> u64 {
    manifest.split(|b| *b == b'\n').filter(|l| !l.iter().all(|b| *b == b'\r')).count() as u64
}

/// The runtime the targets run on: one thread, time enabled (the chunker's budget).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}
