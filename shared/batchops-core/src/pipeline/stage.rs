//! What every stage shares: the ports and settings it is wired with ([`StagePorts`]), the
//! shutdown flag, status changes through the state machine, the job's role, and sending a
//! queue message. Every stage's file depends on this one; it depends on none of them.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::info;

use crate::chunk::FinalizeMessage;
use crate::events::Events;
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::objects::StorageError;
use crate::ports::{JobFilter, JobPorts, JobRecords, JobStore, Queue, RoleAccess, RoleError};
use crate::retry::RetryPolicy;
use crate::spec::ManifestRef;
use crate::{state, Error, Result};

/// Tunables of the pipeline, read once from the environment by the binaries.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Tasks per chunk (per chunk message).
    pub chunk_size: u64,
    /// Tasks of one chunk run at the same time.
    pub task_concurrency: usize,
    /// Chunks one process runs at the same time: 1 on Lambda (an invocation runs one chunk),
    /// `batchops local`'s chunk workers there. The requests in flight to one bucket of a job
    /// from this process are capped at `task_concurrency` times this, however the chunks share
    /// them (see [`super::limiter::Limiters`]).
    pub chunks_per_process: usize,
    pub retry: RetryPolicy,
    /// Deliveries of a chunk message before its job fails (keep it below the chunk queue's
    /// maxReceiveCount, so the job fails before the message goes to the dead-letter queue).
    pub max_chunk_attempts: u32,
    /// How long one chunker invocation reads before it continues itself.
    pub time_budget: Duration,
    pub region: String,
    /// Account ID for job ARNs when a spec does not give `AccountId`.
    pub account_id: String,
    /// Tasks one job may hold; a manifest with more fails the job (`ManifestTooLarge`).
    pub max_tasks: u64,
    /// Longest manifest line read, in bytes; a longer one fails the job.
    pub max_line_bytes: u64,
    /// How long a running chunk's claim (and its queue message) holds without a heartbeat:
    /// the time after which the chunk of a worker that died is run again.
    pub lease: Duration,
    /// How often a running chunk reads its job, so a cancelled or failing job stops starting
    /// tasks within this time.
    pub job_check: Duration,
    /// A job of more recorded chunks than this reports in this many merged segments (one
    /// result file per status each) instead of each chunk's files.
    pub report_segments: u64,
    /// How often the sweep runs (the deployed stack's timer fires every minute).
    pub sweep_every: Duration,
    /// How long a job waiting for one message may look the same before the sweep steps in;
    /// a job being prepared or running chunks gets the time budget on top.
    pub stall: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunk_size: 1000,
            task_concurrency: 64,
            chunks_per_process: 1,
            retry: RetryPolicy::default(),
            max_chunk_attempts: 4,
            time_budget: Duration::from_secs(780),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            // S3 Batch Operations' own bound: "up to 20 billion objects".
            max_tasks: 20_000_000_000,
            max_line_bytes: 64 * 1024,
            lease: Duration::from_secs(60),
            job_check: Duration::from_secs(2),
            report_segments: super::finalizer::report::MAX_SEGMENTS,
            sweep_every: Duration::from_secs(60),
            stall: Duration::from_secs(5 * 60),
        }
    }
}

/// What each of the four stages (intake, chunker, executor, finalizer) is wired with. Built
/// once by a wiring (a function's `lib.rs`, `batchops local`, the simulation) and cloned into
/// each stage; a stage adds what is its own beside it (the chunker's control queue, the
/// executor's limits).
#[derive(Clone)]
pub struct StagePorts {
    /// The whole store: between them the stages reach every part of it (intake's report views
    /// read the ledgers too), and the functions they call take the part they use.
    pub store: Arc<dyn JobStore>,
    /// Where status changes are announced.
    pub events: Arc<dyn Events>,
    /// Every request made for a job (manifest reads, listings, tasks, result files, the
    /// report) acts as the job's role.
    pub roles: Arc<dyn RoleAccess>,
    /// The finalizer's queue: a job ready to end is sent there, and so are the merges of a
    /// big report's segments.
    pub finalize: Arc<dyn Queue>,
    pub settings: Settings,
}

pub(crate) use crate::clock::{now, now_ms};

/// Set when the process stops: running chunks start no more tasks and are handed back.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Shutdown {
    pub fn begin(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn begun(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Moves `job` to `to` through the state machine, applying `change`, with a conditional write;
/// once written, the change is announced.
pub async fn transition(
    store: &dyn JobRecords,
    events: &dyn Events,
    mut job: Job,
    to: JobStatus,
    change: impl FnOnce(&mut Job),
) -> Result<Job> {
    state::check(&job.id, job.status, to)?;
    let now = now();
    let from = job.status;
    job.status = to;
    if to == JobStatus::Active && job.active_since.is_none() {
        job.active_since = Some(now);
    }
    if to == JobStatus::Suspended {
        job.suspended = Some(now);
    }
    if to.is_terminal() {
        job.terminated = Some(now);
    }
    let reason_before = job.status_update_reason.clone();
    change(&mut job);
    let reason = change_reason(&job, to, reason_before.as_deref());
    let written = crate::job::StatusChange { status: to, at: now, reason };
    job.record_status(written.clone());
    let stored = match store.put(&job).await {
        Ok(stored) => stored,
        // A write applied with its answer lost meets itself when tried again: the job as read
        // back holds this very change (its instant, to the nanosecond, is this call's). It is
        // ours, and so are the steps after it: taking it for another writer's left the job
        // Completing with no one to finish it.
        Err(Error::Conflict { .. }) => match store.get(&job.id).await? {
            fresh if fresh.history.contains(&written) => fresh,
            _ => return Err(Error::Conflict { job_id: job.id.clone() }),
        },
        Err(e) => return Err(e),
    };
    info!(job_id = %stored.id, from = %from, to = %to, "job status changed");
    crate::metrics::count(crate::metrics::Metric::JobTransitions, &[to.as_str()], Some(&stored.id), 1);
    crate::events::announce(events, &stored, Some(from)).await;
    Ok(stored)
}

/// Why a job moved to `to`, for its status history: the failure codes, the cause of a
/// suspension, or the caller's reason when this change set it.
fn change_reason(job: &Job, to: JobStatus, reason_before: Option<&str>) -> Option<String> {
    match to {
        JobStatus::Failing | JobStatus::Failed => {
            let codes: Vec<&str> = job.failure_reasons.iter().map(|f| f.failure_code.as_str()).collect();
            (!codes.is_empty()).then(|| codes.join(", "))
        }
        JobStatus::Suspended => job.suspended_cause.clone(),
        _ => job.status_update_reason.clone().filter(|r| Some(r.as_str()) != reason_before),
    }
}

/// Re-reads the job and moves it to `to` when it is in one of `from`, retrying when another
/// writer (a progress update, a priority change) got in between. Returns the job as it was
/// found when its status is not one of `from`.
pub async fn transition_from(
    store: &dyn JobRecords,
    events: &dyn Events,
    id: &JobId,
    from: &[JobStatus],
    to: JobStatus,
    change: impl Fn(&mut Job),
) -> Result<std::result::Result<Job, Job>> {
    RetryPolicy::optimistic()
        .until(format!("job {id}: concurrent updates"), |_| async {
            let job = store.get(id).await?;
            if !from.contains(&job.status) {
                return Ok(Some(Err(job)));
            }
            match transition(store, events, job, to, &change).await {
                Ok(j) => Ok(Some(Ok(j))),
                Err(Error::Conflict { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
}

/// Re-reads the job and writes `change` to it (without changing its status), retrying when
/// another writer got in between. `change` returns false to leave the job as it is.
pub async fn modify(store: &dyn JobRecords, id: &JobId, change: impl FnMut(&mut Job) -> bool) -> Result<Option<Job>> {
    // Called once per try, never across an await.
    let change = std::sync::Mutex::new(change);
    RetryPolicy::optimistic()
        .until(format!("job {id}: concurrent updates"), |_| {
            let change = &change;
            async move {
                let mut job = store.get(id).await?;
                let keep = (change.lock().unwrap_or_else(|e| e.into_inner()))(&mut job);
                if !keep {
                    return Ok(Some(None));
                }
                match store.put(&job).await {
                    Ok(j) => Ok(Some(Some(j))),
                    Err(Error::Conflict { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await
}

/// Fails a job that has not ended: Failing with the reason, then the finalizer ends it.
pub async fn fail_job(
    store: &dyn JobRecords,
    events: &dyn Events,
    finalize: &dyn Queue,
    id: &JobId,
    failure: JobFailure,
) -> Result<()> {
    let live = state::statuses_leading_to(JobStatus::Failing);
    tracing::warn!(job_id = %id, code = %failure.failure_code, reason = %failure.failure_reason, "job failing");
    let moved = transition_from(store, events, id, &live, JobStatus::Failing, |j| {
        if !j.failure_reasons.contains(&failure) {
            j.failure_reasons.push(failure.clone());
        }
    })
    .await?;
    if moved.is_ok() {
        request_finalize(finalize, id).await?;
    }
    Ok(())
}

/// Fails the jobs left Suspended (unconfirmed) longer than [`CONFIRMATION_WINDOW`], as S3
/// does; run with the dispatcher's timer. Returns how many it failed.
///
/// [`CONFIRMATION_WINDOW`]: crate::job::CONFIRMATION_WINDOW
pub async fn expire_suspended(
    store: &dyn JobRecords,
    events: &dyn Events,
    finalize: &dyn Queue,
    now: Timestamp,
) -> Result<usize> {
    let mut failed = 0;
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list(&JobFilter { statuses: &[JobStatus::Suspended], account: None, open: false }, 1000, token.as_deref())
            .await?;
        for job in &page.jobs {
            if job.suspended.is_some_and(|t| now.duration_since(t) > crate::job::CONFIRMATION_WINDOW) {
                let reason = "The job was not confirmed within 30 days of being suspended";
                fail_job(store, events, finalize, &job.id, JobFailure::new("JobConfirmationExpired", reason)).await?;
                failed += 1;
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(failed),
        }
    }
}

/// The job failure of a role that cannot be assumed.
pub(crate) fn role_failure(e: &RoleError) -> JobFailure {
    JobFailure::new("AssumeRoleFailed", e.to_string())
}

/// The ports acting as the job's role. A role that cannot be assumed fails the job (`None`);
/// a transient STS error is an `Err`, so the message is delivered again.
pub(crate) async fn ports_for(
    access: &dyn RoleAccess,
    store: &dyn JobRecords,
    events: &dyn Events,
    finalize: &dyn Queue,
    job: &Job,
) -> Result<Option<JobPorts>> {
    match access.assume(&job.id, job.role_arn()).await {
        Ok(ports) => Ok(Some(ports)),
        Err(e) if e.transient => Err(e.into()),
        Err(e) => {
            fail_job(store, events, finalize, &job.id, role_failure(&e)).await?;
            Ok(None)
        }
    }
}

/// A queue message body: the message as JSON.
pub(crate) fn encode<T: serde::Serialize>(msg: &T) -> Result<String> {
    serde_json::to_string(msg).map_err(|e| Error::caused("queue message", e, false))
}

/// Sends one message.
pub(crate) async fn send_one<T: serde::Serialize>(queue: &dyn Queue, msg: &T) -> Result<()> {
    queue.send(vec![encode(msg)?]).await
}

pub async fn request_finalize(finalize: &dyn Queue, id: &JobId) -> Result<()> {
    send_one(finalize, &FinalizeMessage { job_id: id.clone(), merge: None }).await
}

/// Sends the finalize message when the job has run every chunk. A Pausing or Paused job
/// counts: its last chunks may end before the dispatcher moves it back to Active, and then
/// this is the only request there is (the finalizer resumes it to end it).
pub async fn finalize_if_done(finalize: &dyn Queue, job: &Job) -> Result<bool> {
    let running = matches!(job.status, JobStatus::Active | JobStatus::Pausing | JobStatus::Paused);
    if running && job.progress.all_chunks_done() {
        request_finalize(finalize, &job.id).await?;
        return Ok(true);
    }
    Ok(false)
}

/// The job failure for a manifest that cannot be read (or changed under the job).
pub(crate) fn read_failure(manifest: &ManifestRef, e: &StorageError) -> JobFailure {
    object_read_failure(&manifest.bucket, &manifest.key, e)
}

/// The job failure for a manifest object (or inventory file) that cannot be read.
pub(crate) fn object_read_failure(bucket: &str, key: &str, e: &StorageError) -> JobFailure {
    let what = format!("s3://{bucket}/{key}");
    if e.http_status == 412 {
        JobFailure::new(
            "ManifestChanged",
            format!("The manifest {what} changed while the job was prepared (ETag no longer matches)"),
        )
    } else if e.http_status == 403 {
        JobFailure::new("ManifestReadFailed", format!("Reading the manifest is forbidden: {} ({what})", e.code))
    } else {
        JobFailure::new("ManifestReadFailed", format!("Reading the manifest {what} failed: {} {}", e.code, e.message))
    }
}
