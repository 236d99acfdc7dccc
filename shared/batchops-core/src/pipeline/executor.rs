//! The task executor: runs one chunk's tasks with bounded concurrency, writes the chunk's
//! result files, then records the chunk exactly once with its counts. A chunk delivered twice
//! is recorded once; a duplicate that loses the race removes its own files.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tracing::{info, warn};

use super::dispatcher::Dispatcher;
use super::limiter::{observe, Flow, Limiters};
use super::{fail_job, finalize_if_done, now_ms, ports_for, request_finalize, Shutdown, StagePorts};
use crate::chunk::{decode_rows, is_blank, ChunkBody, ChunkMessage};
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::manifest::{lines, parse_line, ManifestEntry, ParsedLine};
use crate::metrics::{self, Metric};
use crate::ops::{Operation, Task};
use crate::ports::{read_all, ChunkLease, ChunkRecord, JobPorts, LeaseOutcome, ReadOptions, RecordOutcome, Waiting};
use crate::report::{render_chunk, ResultRow};
use crate::retry::{Outcome, RetryPolicy, TaskFailure};
use crate::spec::ManifestRef;
use crate::{Error, Result};

/// S3's failure threshold: once this many tasks have run ...
pub const THRESHOLD_MIN_TASKS: u64 = 1000;

pub struct Executor {
    /// Every request of a job (range reads, tasks, result files) acts as the job's role.
    pub ports: StagePorts,
    /// Set when the process is stopping: no new task starts, the chunk is handed back.
    pub shutdown: Shutdown,
    /// The adaptive request limits of the jobs running here, by bucket.
    pub limits: Arc<Limiters>,
    /// Releases the next chunks when one ends; takes back the chunks of a Paused job.
    pub dispatcher: Arc<Dispatcher>,
}

/// Why a chunk stopped starting tasks before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The job left the statuses that run chunks (cancelled, failing, paused).
    Job(JobStatus),
    /// The chunk's claim lapsed (this worker stalled past it): its results can no longer be
    /// recorded.
    LeaseLost,
    Shutdown,
    /// The invocation is ending: the tasks not started are handed on as a new chunk.
    HandOn,
}

/// The first reason a chunk stopped; read before each task starts.
#[derive(Default)]
struct StopFlag(OnceLock<Stop>);

impl StopFlag {
    fn set(&self, stop: Stop) {
        let _ = self.0.set(stop);
    }

    fn get(&self) -> Option<Stop> {
        self.0.get().copied()
    }
}

/// What one chunk's tasks run with.
struct ChunkRun<'a> {
    ports: &'a JobPorts,
    op: &'a Operation,
    job_id: &'a JobId,
    file: Option<u64>,
    deadline: Instant,
    /// When the chunk stops starting tasks, so that those running end and the chunk is
    /// recorded within its invocation (after at least one task started: a chunk always moves).
    hand_on: tokio::time::Instant,
    /// When the tasks still running are abandoned, so the chunk is recorded before its
    /// invocation ends (the time budget).
    cutoff: tokio::time::Instant,
    /// The longest a task (or batch) of this chunk took so far, in ms.
    longest_ms: std::sync::atomic::AtomicU64,
    /// Outcomes so far: succeeded, failed.
    tally: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    /// The tasks that started (by their index in the chunk).
    begun: std::sync::Mutex<std::collections::BTreeSet<usize>>,
    stop: &'a StopFlag,
    flow: &'a Flow<'a>,
    shutdown: &'a Shutdown,
}

impl ChunkRun<'_> {
    fn task(&self, e: &ManifestEntry) -> Task {
        Task {
            target: e.target.clone(),
            encoded_key: e.encoded_key.clone(),
            id: task_id(self.job_id, self.file, e.line),
            job_id: self.job_id.to_string(),
            deadline: self.deadline,
        }
    }

    /// A task starts only while the chunk has not been stopped; one that does not start is
    /// not in the report (S3 reports the tasks that ran).
    fn stopped(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if self.shutdown.begun() {
            self.stop.set(Stop::Shutdown);
        }
        // Past the hand-on time, or too late for a task as long as the longest seen to end
        // before the cutoff: no more tasks start (after the first: a chunk always moves).
        let now = tokio::time::Instant::now();
        let longest = Duration::from_millis(self.longest_ms.load(SeqCst));
        let any_begun = !self.begun.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
        if any_begun && (now >= self.hand_on || now + longest >= self.cutoff) {
            self.stop.set(Stop::HandOn);
        }
        self.stop.get().is_some()
    }

    /// True once the job is cancelled or failing: tasks try no more (a cancelled job ends
    /// within seconds, not after every throttled task's retries), keeping their last outcome.
    fn job_closing(&self) -> bool {
        matches!(self.stop.get(), Some(Stop::Job(status)) if closing(status))
    }

    /// Notes tasks as started: at the cutoff, those without an outcome are reported as cut off.
    fn began(&self, idx: &[usize]) {
        self.begun.lock().unwrap_or_else(|e| e.into_inner()).extend(idx);
    }

    /// Waits for the job's rate to let `n` tasks start, or for the hand-on time (a paced
    /// chunk does not wait past its invocation for tasks it will not start).
    async fn pace(&self, n: usize) {
        // Biased (polled in order), as every select of the pipeline: a run then depends on
        // its inputs alone, and the simulation replays a seed exactly (tokio otherwise picks
        // the first branch at random).
        tokio::select! {
            biased;
            _ = self.flow.pace(n) => {}
            _ = tokio::time::sleep_until(self.hand_on) => {}
        }
    }

    /// Runs task `i`: paced, under its bucket's limit, retried.
    async fn one(&self, retry: &RetryPolicy, i: usize, t: Task) -> Vec<(usize, Outcome)> {
        self.pace(1).await;
        if self.stopped() {
            return Vec::new();
        }
        self.began(&[i]);
        let began = tokio::time::Instant::now();
        let (runner, op, aimd) = (&self.ports.runner, self.op, self.flow.aimd(&t.target.bucket));
        let attempt = || async {
            let _slot = aimd.acquire().await;
            let outcome = runner.run(op, &t).await;
            self.answered([&outcome]);
            observe(&aimd, outcome)
        };
        let outcome = retry.run_until(attempt, || self.job_closing()).await;
        self.took(began, 1);
        self.count([&outcome]);
        vec![(i, outcome)]
    }

    /// Runs the tasks `idx` of one bucket through the operation's batch API.
    async fn group(
        &self,
        retry: &RetryPolicy,
        bucket: String,
        idx: Vec<usize>,
        tasks: Vec<Task>,
    ) -> Vec<(usize, Outcome)> {
        self.pace(tasks.len()).await;
        if self.stopped() {
            return Vec::new();
        }
        self.began(&idx);
        let began = tokio::time::Instant::now();
        let (runner, op, aimd, tasks) = (&self.ports.runner, self.op, self.flow.aimd(&bucket), &tasks);
        let out = retry
            .run_batch_until(
                tasks.len(),
                |pending| {
                    let subset: Vec<Task> = pending.iter().map(|i| tasks[*i].clone()).collect();
                    let aimd = aimd.clone();
                    async move {
                        let _slot = aimd.acquire().await;
                        let out = runner.run_batch(op, &subset).await;
                        self.answered(&out);
                        out.into_iter().map(|o| observe(&aimd, o)).collect()
                    }
                    .boxed()
                },
                || self.job_closing(),
            )
            .await;
        self.took(began, out.len());
        self.count(&out);
        idx.into_iter().zip(out).collect()
    }

    /// Counts outcomes as they come, for the failure threshold.
    fn count<'o>(&self, outcomes: impl IntoIterator<Item = &'o Outcome>) {
        for o in outcomes {
            let counter = if matches!(o, Outcome::Succeeded { .. }) { &self.tally.0 } else { &self.tally.1 };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The outcomes so far: (succeeded, failed).
    fn tally(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.tally.0.load(SeqCst), self.tally.1.load(SeqCst))
    }

    /// Notes how long a task (or a batch of `tasks`) that began at `began` took.
    fn took(&self, began: tokio::time::Instant, tasks: usize) {
        let ms = began.elapsed().as_millis() as u64;
        self.longest_ms.fetch_max(ms, std::sync::atomic::Ordering::SeqCst);
        metrics::observe_n(Metric::TaskLatency, &[self.op.name()], Some(self.job_id), ms as f64, tasks as u64);
    }

    /// Counts a request's throttling or server error, retried or not (what the service said):
    /// once per request, so a batch request's one SlowDown, given to each of its tasks, is one.
    fn answered<'o>(&self, outcomes: impl IntoIterator<Item = &'o Outcome>) {
        let (mut throttled, mut server) = (false, false);
        for o in outcomes {
            let Outcome::Failed(f) = o else { continue };
            if f.is_throttle() {
                throttled = true;
            } else if f.http_status >= 500 {
                server = true;
            }
        }
        for (seen, metric) in [(throttled, Metric::SlowDowns), (server, Metric::ServerErrors)] {
            if seen {
                metrics::count(metric, &[self.op.name()], Some(self.job_id), 1);
            }
        }
    }
}

/// The indexes `pending` grouped by bucket, manifest order kept within a group, at most
/// `batch` per group.
fn by_bucket(parsed: &[ParsedLine], pending: &[usize], batch: usize) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for &i in pending {
        let Ok(e) = &parsed[i] else { continue };
        match groups.iter_mut().find(|(b, idx)| *b == e.target.bucket && idx.len() < batch) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((e.target.bucket.clone(), vec![i])),
        }
    }
    groups
}

/// The report rows of a chunk in manifest order: bad lines, and tasks with their outcome.
/// A task without one did not start; when the chunk ran `whole` that cannot be, and the row
/// says so rather than vanish.
fn rows(parsed: Vec<ParsedLine>, outcomes: Vec<Option<Outcome>>, whole: bool) -> Vec<ResultRow> {
    parsed
        .into_iter()
        .zip(outcomes)
        .filter_map(|(p, o)| match (p, o) {
            (Err(bad), _) => Some(ResultRow::bad_line(bad)),
            (Ok(entry), Some(outcome)) => Some(ResultRow::task(entry, outcome)),
            (Ok(_), None) if !whole => None,
            (Ok(entry), None) => Some(ResultRow::task(
                entry,
                Outcome::Failed(TaskFailure::permanent(500, "InternalError", "task did not run")),
            )),
        })
        .collect()
}

/// What a chunk's run leaves to record: the rows of the tasks that ran (and of bad lines),
/// and the tasks it hands on unstarted, as new chunks.
struct Ran {
    rows: Vec<ResultRow>,
    rest: Vec<Waiting>,
    /// The operation's name and when the chunk was claimed, for the metrics.
    operation: &'static str,
    claimed: tokio::time::Instant,
}

/// What became of a chunk message.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Ran and recorded, with (succeeded, failed) counts.
    Recorded { succeeded: u64, failed: u64 },
    /// Recorded before (a redelivery): nothing done.
    Duplicate,
    /// The job is Paused: the chunk went back to its backlog, to run when the job resumes.
    Deferred,
    /// The job does not run chunks in this status (cancelled, failing, ended).
    Skipped(JobStatus),
}

/// True when S3 would fail the job: at least 1,000 tasks run and more than half failed.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-job-status.html>
pub fn over_failure_threshold(succeeded: u64, failed: u64) -> bool {
    let run = succeeded + failed;
    run >= THRESHOLD_MIN_TASKS && failed * 2 > run
}

/// The task ID a Lambda function sees: opaque, unique within the job, the same on every
/// delivery of the chunk. Rows of an inventory are numbered within their file (`file`).
pub fn task_id(job_id: &JobId, file: Option<u64>, line: u64) -> String {
    use base64::Engine;
    let plain = match file {
        Some(p) => format!("{job_id}:{p}:{line}"),
        None => format!("{job_id}:{line}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(plain)
}

impl Executor {
    /// Runs the chunk's tasks (bad lines become failed rows) and returns the rows in
    /// manifest order, and the tasks handed on unstarted. Operations with a batch API get the
    /// tasks of one bucket together.
    async fn run_tasks(&self, run: &ChunkRun<'_>, parsed: Vec<ParsedLine>) -> (Vec<ResultRow>, Vec<ManifestEntry>) {
        let retry = &self.ports.settings.retry;
        let batch = run.op.batch_size();
        // S3 would refuse these keys; say why without asking it.
        let mut outcomes: Vec<Option<Outcome>> =
            parsed.iter().map(|p| p.as_ref().ok().and_then(|e| key_too_long(&e.target.key))).collect();
        let entry = |i: usize| parsed[i].as_ref().ok();
        let pending: Vec<usize> = (0..parsed.len()).filter(|i| entry(*i).is_some() && outcomes[*i].is_none()).collect();
        let runs: Vec<BoxFuture<'_, Vec<(usize, Outcome)>>> = if batch <= 1 {
            pending.iter().filter_map(|&i| Some(run.one(retry, i, run.task(entry(i)?)).boxed())).collect()
        } else {
            by_bucket(&parsed, &pending, batch)
                .into_iter()
                .map(|(bucket, idx)| {
                    let tasks = idx.iter().filter_map(|i| entry(*i)).map(|e| run.task(e)).collect();
                    run.group(retry, bucket, idx, tasks).boxed()
                })
                .collect()
        };
        let concurrency = self.ports.settings.task_concurrency.max(1);
        let width = if batch <= 1 { concurrency } else { concurrency.min(8) };
        let mut running = futures::stream::iter(runs).buffer_unordered(width);
        loop {
            match tokio::time::timeout_at(run.cutoff, running.next()).await {
                Ok(Some(done)) => done.into_iter().for_each(|(i, o)| outcomes[i] = Some(o)),
                Ok(None) => break,
                // The budget is spent: tasks still running (a huge copy, a slow Lambda target)
                // are abandoned and reported as cut off: their outcome is unknown, and run again
                // they would be cut off again. The tasks not started are handed on.
                Err(_) => {
                    run.stop.set(Stop::HandOn);
                    break;
                }
            }
        }
        drop(running);
        let began = std::mem::take(&mut *run.begun.lock().unwrap_or_else(|e| e.into_inner()));
        let cut_off: Vec<usize> = began.into_iter().filter(|i| outcomes[*i].is_none()).collect();
        if !cut_off.is_empty() {
            warn!(job_id = %run.job_id, tasks = cut_off.len(), "time budget spent: tasks still running are reported as cut off");
        }
        for i in cut_off {
            outcomes[i] = Some(cut_off_outcome(self.ports.settings.time_budget));
        }
        let rest = match run.stop.get() {
            Some(Stop::HandOn) => parsed
                .iter()
                .zip(&outcomes)
                .filter_map(|(p, o)| match (p, o) {
                    (Ok(entry), None) => Some(entry.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        (rows(parsed, outcomes, run.stop.get().is_none()), rest)
    }

    /// The tasks a chunk did not start, as new chunks of rows (more than one only when their
    /// rows are more than a message holds), with indexes of their own. Task IDs stay the same.
    async fn hand_on(&self, msg: &ChunkMessage, rest: &[ManifestEntry]) -> Result<Vec<Waiting>> {
        use std::borrow::Cow;
        let mut batch = crate::chunk::RowBatch::new(u64::MAX);
        let mut out = Vec::new();
        for (i, e) in rest.iter().enumerate() {
            let row = Ok(crate::manifest::RowRef {
                line: e.line,
                bucket: Cow::Borrowed(&e.target.bucket),
                encoded_key: Cow::Borrowed(&e.encoded_key),
                version_id: e.target.version_id.as_deref().map(Cow::Borrowed),
                decoded: None,
            });
            if batch.push(&row) || i + 1 == rest.len() {
                let allocate = || self.ports.store.allocate_chunks(&msg.job_id, 1);
                let index = RetryPolicy::backend().transient(allocate).await?;
                if let Some(body) = batch.take(&msg.job_id, index, msg.file) {
                    out.push(Waiting { index, body });
                }
            }
        }
        Ok(out)
    }

    /// Runs beside a chunk's tasks until they end: every `job_check` it reads the job (a
    /// cancelled or failing job stops starting tasks within that time) and every third of the
    /// lease it renews the chunk's claim.
    async fn watch(&self, id: &JobId, lease: &ChunkLease, run: &ChunkRun<'_>) {
        let renew_every = self.ports.settings.lease / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.ports.settings.job_check.min(renew_every)).await;
            match self.ports.store.get(id).await {
                Ok(job) if !job.status.accepts_chunks() => run.stop.set(Stop::Job(job.status)),
                Ok(job) => {
                    if let Err(e) = self.share_flow(&job, run.flow).await {
                        warn!(job_id = %id, error = %e, "could not share the job's flow control");
                    }
                    self.threshold_so_far(&job, run).await;
                }
                Err(e) => warn!(job_id = %id, error = %e, "could not read the job while its chunk runs"),
            }
            if renewed.elapsed() >= renew_every {
                let renewal =
                    ChunkLease { until_ms: now_ms() + self.ports.settings.lease.as_millis() as u64, ..lease.clone() };
                match self.ports.store.renew_chunk(id, &renewal).await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => run.stop.set(Stop::LeaseLost),
                    Err(e) => warn!(job_id = %id, chunk = lease.index, error = %e, "could not renew the chunk's claim"),
                }
            }
        }
    }

    /// S3's failure threshold seen as tasks finish, not only when a chunk records: the job's
    /// counters with the outcomes this chunk has so far. Crossed, the job fails and the chunk
    /// records what ran.
    async fn threshold_so_far(&self, job: &Job, run: &ChunkRun<'_>) {
        let (ok, ko) = run.tally();
        let (succeeded, failed) = (job.progress.succeeded + ok, job.progress.failed + ko);
        if !over_failure_threshold(succeeded, failed) {
            return;
        }
        let reason =
            format!("More than 50% of the tasks run failed ({failed} of {}); the job was stopped", succeeded + failed);
        match self.fail(&job.id, JobFailure::new("TaskFailureThresholdExceeded", reason)).await {
            Ok(_) => run.stop.set(Stop::Job(JobStatus::Failing)),
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "could not fail the job over the threshold; its next check will")
            }
        }
    }

    /// Tells the job's other executors of this one's throttling, hears of theirs, and takes
    /// this chunk's share of the job's rate (the rate over the chunks running now).
    async fn share_flow(&self, job: &Job, flow: &Flow<'_>) -> Result<()> {
        for bucket in self.limits.unpublished(&job.id) {
            let at = now_ms();
            self.ports.store.note_throttle(&job.id, &bucket, at).await?;
            self.limits.published(&job.id, &bucket, at);
        }
        self.limits.hear(&job.id, &job.throttled, flow.max);
        flow.share(self.ports.store.as_ref(), job).await
    }

    /// The chunk's manifest lines, parsed: carried in the message, or read back from the
    /// manifest's byte range as the job's role. `None` when the manifest can no longer be read
    /// (the job was failed).
    async fn chunk_lines(
        &self,
        ports: &JobPorts,
        job: &Job,
        manifest: Option<&ManifestRef>,
        msg: &ChunkMessage,
    ) -> Result<Option<Vec<ParsedLine>>> {
        let context = || format!("chunk {} of job {}", msg.index, job.id);
        let unreadable = |e: String| Error::permanent(context(), format!("unreadable message: {e}"));
        let (start, end) = match &msg.body {
            ChunkBody::Rows(packed) => return decode_rows(packed).map(Some).map_err(unreadable),
            ChunkBody::Lines(lines) => return lines.parse(msg.first_line).map(Some).map_err(unreadable),
            ChunkBody::Range { start, end } => (*start, *end),
        };
        let Some(m) = manifest else {
            return Err(Error::permanent(context(), "a byte range of a job without a manifest file"));
        };
        let options = ReadOptions { start, end: Some(end), if_match: Some(&m.etag) };
        let read = match ports.objects.read(&m.object(), options).await {
            Ok(stream) => read_all(stream).await,
            Err(e) => Err(e),
        };
        let buf = match read {
            Ok(buf) => buf,
            Err(e) if e.is_transient() => return Err(e.into()),
            // The manifest changed or vanished under the job: its tasks can no longer be known.
            Err(e) => return self.fail(&job.id, super::stage::read_failure(m, &e)).await.map(|_| None),
        };
        if buf.len() as u64 != end - start {
            let expected = end - start;
            // A read cut short: its bytes may all come on another try.
            return Err(Error::transient(
                context(),
                format!("read {} bytes of the manifest, expected {expected}", buf.len()),
            ));
        }
        Ok(Some(
            lines(&buf, msg.first_line)
                .filter(|(_, l)| !is_blank(l))
                .map(|(n, l)| parse_line(&m.fields, n, l))
                .collect(),
        ))
    }

    /// Fails the job; the chunk is skipped.
    async fn fail(&self, id: &JobId, failure: JobFailure) -> Result<Disposition> {
        fail_job(&*self.ports.store, &*self.ports.events, &*self.ports.finalize, id, failure).await?;
        Ok(Disposition::Skipped(JobStatus::Failing))
    }

    /// After a chunk is recorded: S3's failure threshold, or the finalizer once every chunk ran.
    async fn after_recorded(&self, id: &JobId) -> Result<()> {
        let job = self.ports.store.get(id).await?;
        let p = &job.progress;
        if job.status.accepts_chunks() && over_failure_threshold(p.succeeded, p.failed) {
            let reason = format!(
                "More than 50% of the tasks run failed ({} of {}); the job was stopped",
                p.failed,
                p.tasks_run()
            );
            self.fail(&job.id, JobFailure::new("TaskFailureThresholdExceeded", reason)).await?;
        } else if matches!(job.status, JobStatus::Cancelling | JobStatus::Failing) {
            // The finalizer of a closing job waits for the chunks in flight; this may be the last.
            request_finalize(&*self.ports.finalize, &job.id).await?;
        } else {
            finalize_if_done(&*self.ports.finalize, &job).await?;
        }
        if job.progress.all_chunks_done() || closing(job.status) {
            // No more chunks of it will run here: its limiters can go.
            self.limits.forget(&job.id);
        }
        Ok(())
    }

    /// Handles delivery number `attempt` of a chunk. When the last allowed delivery fails too,
    /// the job fails with a reason naming the chunk's manifest lines, instead of waiting
    /// forever for a chunk that went to the dead-letter queue.
    pub async fn handle_attempt(&self, msg: &ChunkMessage, attempt: u32) -> Result<Disposition> {
        match self.handle(msg).await {
            Err(e @ Error::JobNotFound { .. }) => Err(e),
            // A chunk handed back has not failed; a permanent error fails at once, a transient
            // one on the last allowed delivery.
            Err(e)
                if e.retry_after().is_none()
                    && (!e.is_transient() || attempt >= self.ports.settings.max_chunk_attempts) =>
            {
                let reason = format!(
                    "Chunk {} ({} tasks from manifest line {}) failed {attempt} times; last error: {e}",
                    msg.index, msg.tasks, msg.first_line
                );
                self.fail(&msg.job_id, JobFailure::new("ChunkFailed", reason)).await
            }
            other => other,
        }
    }

    pub async fn handle(&self, msg: &ChunkMessage) -> Result<Disposition> {
        let job = match self.ports.store.get(&msg.job_id).await {
            Ok(j) => j,
            Err(Error::JobNotFound { .. }) => {
                warn!(job_id = %msg.job_id, "chunk of a job that does not exist: dropped");
                return Ok(Disposition::Skipped(JobStatus::Cancelled));
            }
            Err(e) => return Err(e),
        };
        if job.status == JobStatus::Paused {
            return self.defer(msg).await;
        }
        if !job.status.accepts_chunks() {
            info!(job_id = %job.id, chunk = msg.index, status = %job.status, "chunk skipped");
            return Ok(Disposition::Skipped(job.status));
        }
        if self.ports.store.chunk_recorded(&job.id, msg.index).await? {
            info!(job_id = %job.id, chunk = msg.index, "chunk already recorded: duplicate delivery");
            // The delivery that recorded it may have failed before asking for the finalizer
            // (an SQS outage): the steps after recording are idempotent, so take them again.
            self.after_recorded(&job.id).await?;
            return Ok(Disposition::Duplicate);
        }
        let lease = ChunkLease {
            index: msg.index,
            owner: crate::clock::uuid().to_string(),
            until_ms: now_ms() + self.ports.settings.lease.as_millis() as u64,
        };
        match self.ports.store.start_chunk(&job.id, &lease).await? {
            LeaseOutcome::Started => {}
            LeaseOutcome::JobClosed(JobStatus::Paused) => return self.defer(msg).await,
            LeaseOutcome::JobClosed(status) => return Ok(Disposition::Skipped(status)),
            LeaseOutcome::Held { until_ms } => {
                return Err(Error::NotYet {
                    message: format!("chunk {} of job {} is being run by another delivery", msg.index, job.id),
                    retry_after: Duration::from_millis(until_ms.saturating_sub(now_ms()) + 1000),
                })
            }
        }
        // An error here too gives the claim back below.
        let result = match self.beyond_pace(&job, &lease).await {
            Ok(true) => self.defer(msg).await,
            Ok(false) => self.run_claimed(&job, msg, &lease).await,
            Err(e) => Err(e),
        };
        if !matches!(result, Ok(Disposition::Recorded { .. })) {
            // Recording ends the claim; anything else gives the chunk back at once.
            if let Err(e) = self.ports.store.release_chunk(&job.id, msg.index, &lease.owner).await {
                warn!(job_id = %job.id, chunk = msg.index, error = %e, "could not release the chunk's claim");
            }
        }
        result
    }

    /// True when this claim makes more chunks of a paced job run than its rate can keep busy
    /// ([`super::dispatcher::paced_chunks`]): the dispatcher released it before it saw the
    /// others start. Two claims at once may both step back; the next round releases again.
    async fn beyond_pace(&self, job: &Job, lease: &ChunkLease) -> Result<bool> {
        let Some(cap) = super::dispatcher::paced_chunks(job) else { return Ok(false) };
        let now = now_ms();
        let leases = self.ports.store.chunk_leases(&job.id).await?;
        let others = leases.iter().filter(|l| l.live(now) && l.owner != lease.owner).count();
        if others >= cap {
            info!(job_id = %job.id, chunk = lease.index, running = others, cap, "paced job: chunk back in its backlog");
        }
        Ok(others >= cap)
    }

    /// Puts a chunk of a Paused job (or one beyond a paced job's share) back into its backlog.
    async fn defer(&self, msg: &ChunkMessage) -> Result<Disposition> {
        let waiting = Waiting { index: msg.index, body: super::encode(msg)? };
        self.dispatcher.backlog.push(&msg.job_id, vec![waiting]).await?;
        info!(job_id = %msg.job_id, chunk = msg.index, "chunk back in its backlog");
        Ok(Disposition::Deferred)
    }

    /// Runs a claimed chunk's tasks while watching its job, then records what ran.
    async fn run_claimed(&self, job: &Job, msg: &ChunkMessage, lease: &ChunkLease) -> Result<Disposition> {
        let claimed = tokio::time::Instant::now();
        let Some(ports) =
            ports_for(&*self.ports.roles, &*self.ports.store, &*self.ports.events, &*self.ports.finalize, job).await?
        else {
            return Ok(Disposition::Skipped(JobStatus::Failing));
        };
        let valid = job.plan()?;
        // A dry run reads each task's object instead of running the operation.
        let ports = if valid.dry_run { super::dry_run::DryRunner::ports(&ports) } else { ports };
        let Some(parsed) = self.chunk_lines(&ports, job, valid.source.manifest(), msg).await? else {
            return Ok(Disposition::Skipped(JobStatus::Failing));
        };
        let stop = StopFlag::default();
        // The process's limit per bucket covers all the chunks it runs: with one chunk's cap,
        // four chunk workers of `batchops local` ran a quarter of the requests they could.
        let settings = &self.ports.settings;
        let flow = Flow::new(&self.limits, &job.id, settings.task_concurrency * settings.chunks_per_process.max(1));
        flow.share(self.ports.store.as_ref(), job).await?;
        let budget = self.ports.settings.time_budget;
        let run = ChunkRun {
            ports: &ports,
            op: &valid.operation,
            job_id: &job.id,
            file: msg.file,
            // A long operation (a multipart copy) stops at the budget and cleans up before the
            // cutoff, a grace later.
            deadline: Instant::now() + budget,
            hand_on: tokio::time::Instant::now() + budget.mul_f64(HAND_ON_AT),
            cutoff: tokio::time::Instant::now() + budget + CUTOFF_GRACE.min(budget / 10).max(CUTOFF_MIN),
            longest_ms: Default::default(),
            tally: Default::default(),
            begun: Default::default(),
            stop: &stop,
            flow: &flow,
            shutdown: &self.shutdown,
        };
        let (rows, rest) = tokio::select! {
            biased;
            ran = self.run_tasks(&run, parsed) => ran,
            _ = self.watch(&job.id, lease, &run) => unreachable!("the watch runs until the tasks end"),
        };
        match stop.get() {
            Some(Stop::LeaseLost) => {
                warn!(job_id = %job.id, chunk = msg.index, tasks = rows.len(), "the chunk's claim lapsed: its results are not recorded");
                return Ok(Disposition::Skipped(job.status));
            }
            Some(Stop::Shutdown) => return Err(handed_back(msg, "the worker is stopping")),
            Some(Stop::Job(status)) if !closing(status) => {
                return Err(handed_back(msg, &format!("the job is {status}")));
            }
            _ => {}
        }
        let rest = self.hand_on(msg, &rest).await?;
        if !rest.is_empty() {
            info!(job_id = %job.id, chunk = msg.index, ran = rows.len(), handed_on = rest.len(), "invocation ending: the tasks not started are handed on");
        }
        let ran = Ran { rows, rest, operation: valid.operation.name(), claimed };
        self.record(job, &ports, valid.report.as_ref(), msg, &lease.owner, ran).await
    }

    /// Writes the chunk's result files and records it with its counts, once.
    async fn record(
        &self,
        job: &Job,
        ports: &JobPorts,
        report: Option<&crate::spec::ReportTarget>,
        msg: &ChunkMessage,
        owner: &str,
        Ran { rows, rest, operation, claimed }: Ran,
    ) -> Result<Disposition> {
        let succeeded = rows.iter().filter(|r| r.succeeded).count() as u64;
        let failed = rows.len() as u64 - succeeded;
        let files = match report {
            Some(target) => render_chunk(target, &job.id, msg.index, owner, &rows),
            None => Vec::new(),
        };
        // The tasks ran: their record is tried again on a transient failure here, not redone
        // from the start by a redelivery (which skips the chunk of a job that has closed since,
        // and with it rows that ran).
        let retry = RetryPolicy::backend();
        if let Some(target) = report {
            for f in &files {
                let put = || ports.objects.put(&target.bucket, &f.file.key, Bytes::from(f.body.clone()), "text/csv");
                match retry.transient(put).await {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => {
                        // Running tasks whose results cannot be reported would lose track of them.
                        let reason = format!("The job report could not be written to s3://{}: {e}", target.bucket);
                        return self.fail(&job.id, JobFailure::new("ReportWriteFailed", reason)).await;
                    }
                }
            }
        }
        let record =
            ChunkRecord { index: msg.index, succeeded, failed, files: files.iter().map(|f| f.file.clone()).collect() };
        let outcome = retry.transient(|| self.ports.store.record_handing_on(&job.id, &record, owner, &rest)).await?;
        if outcome != RecordOutcome::Recorded {
            if let Some(target) = report {
                for f in &files {
                    if let Err(e) = ports.objects.delete(&target.bucket, &f.file.key).await {
                        warn!(job_id = %job.id, key = %f.file.key, error = %e, "could not remove the files of an unrecorded chunk");
                    }
                }
            }
            return Ok(match outcome {
                RecordOutcome::JobClosed(status) => Disposition::Skipped(status),
                RecordOutcome::LeaseLost => {
                    warn!(job_id = %job.id, chunk = msg.index, "the chunk's claim lapsed before it was recorded");
                    Disposition::Skipped(job.status)
                }
                _ => Disposition::Duplicate,
            });
        }
        // Counted once recorded, as the job's counters are (a delivery that runs a chunk
        // recorded already counts nothing), before anything after it can fail.
        let (op, id) = (&[operation], Some(&job.id));
        metrics::count(Metric::TasksSucceeded, op, id, succeeded);
        metrics::count(Metric::TasksFailed, op, id, failed);
        metrics::count(Metric::ChunksRun, op, id, 1);
        metrics::observe(Metric::ChunkDuration, op, id, claimed.elapsed().as_millis() as f64);
        info!(job_id = %job.id, chunk = msg.index, succeeded, failed, "chunk recorded");
        self.after_recorded(&job.id).await?;
        // Room for the next chunk; a failed round is made up by the next one or the timer.
        if let Err(e) = self.dispatcher.dispatch().await {
            warn!(error = %e, "dispatch after a chunk failed");
        }
        Ok(Disposition::Recorded { succeeded, failed })
    }
}

/// The share of the time budget after which a chunk starts no more tasks: those running end
/// (a long one by the budget itself) and the chunk is recorded before its invocation ends.
const HAND_ON_AT: f64 = 0.9;

/// How long after its deadline (the budget) a long operation may take to stop and clean up
/// (abort its multipart upload, fail with its own reason) before the chunk abandons it: a
/// tenth of the budget, 10 s at most (the template's 270 s budget leaves 30 s of Lambda's 300)
/// and 1 s at least.
const CUTOFF_GRACE: Duration = Duration::from_secs(10);
const CUTOFF_MIN: Duration = Duration::from_secs(1);

/// The outcome of a task still running when its chunk's time budget was spent.
fn cut_off_outcome(budget: Duration) -> Outcome {
    Outcome::Failed(TaskFailure::permanent(
        500,
        "TaskTimedOut",
        format!(
            "The task did not finish within the executor's time budget ({} s) and was abandoned; it may have completed",
            budget.as_secs()
        ),
    ))
}

/// S3's longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The failure of a task whose key S3 would refuse for its length.
fn key_too_long(key: &str) -> Option<Outcome> {
    (key.len() > MAX_KEY_BYTES).then(|| {
        Outcome::Failed(TaskFailure::permanent(
            400,
            "KeyTooLongError",
            format!("The key is {} bytes long; S3 keys are at most {MAX_KEY_BYTES} bytes (UTF-8)", key.len()),
        ))
    })
}

/// Statuses whose chunks record the tasks that ran before they stopped.
fn closing(status: JobStatus) -> bool {
    matches!(status, JobStatus::Cancelling | JobStatus::Failing) || status.is_terminal()
}

/// The error that hands a chunk back to its queue, to be run again from its start.
fn handed_back(msg: &ChunkMessage, why: &str) -> Error {
    Error::NotYet {
        message: format!("chunk {} of job {} handed back: {why}", msg.index, msg.job_id),
        retry_after: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_needs_a_thousand_tasks_and_a_failed_majority() {
        assert!(!over_failure_threshold(0, 999));
        assert!(over_failure_threshold(0, 1000));
        assert!(!over_failure_threshold(500, 500), "exactly half is not more than half");
        assert!(over_failure_threshold(499, 501));
    }
}
