//! The manifest chunker: checks the manifest against its ETag, reads it, and cuts it into
//! chunk messages; when its time budget runs out it records where it stopped and sends itself
//! a continuation, so no manifest is too large for one invocation.
//!
//! Three sources: a CSV manifest is streamed and cut into byte ranges (here); the data files
//! of an S3 Inventory are read in parallel, one control message per file ([`super::parts`]);
//! a `ManifestGenerator` lists its bucket page by page ([`super::listing`]).
//!
//! Jobs without `ConfirmationRequired` are cut while they prepare (Preparing), and the
//! executors start on the first chunks at once; at the end of the manifest the job gets its
//! `TotalNumberOfTasks` and becomes Active. Jobs that need confirmation are only counted
//! (Preparing -> Suspended); once confirmed (Ready) a `Start` message cuts them (Active), and
//! the cut sets the number of chunks when it ends.

use std::sync::Arc;
use tokio::time::Instant;

use futures::StreamExt;
use tracing::{info, warn};

use super::dispatcher::Dispatcher;
use super::{encode, fail_job, finalize_if_done, modify, ports_for, send_one, transition_from, Settings};
use crate::chunk::{ChunkCutter, ChunkMessage, ControlMessage};
use crate::job::{Checkpoint, Job, JobFailure, JobId, JobStatus};
use crate::manifest::{header_row, lines, parse_line};
use crate::ports::{read_all, JobStore, ObjectStore, OperationRunner, Pass, Queue, RoleAccess, StorageError, Waiting};
use crate::spec::{ManifestRef, Source};
use crate::{Error, Result};

pub struct Chunker {
    pub store: Arc<dyn JobStore>,
    /// Where status changes are announced.
    pub events: Arc<dyn crate::events::Events>,
    /// Every request made for a job (manifest reads, listings, bucket checks, generated
    /// manifests) acts as the job's role.
    pub roles: Arc<dyn RoleAccess>,
    pub control: Arc<dyn Queue>,
    /// Cut chunks go to their job's backlog; the dispatcher releases them by priority.
    pub dispatcher: Arc<Dispatcher>,
    pub finalize: Arc<dyn Queue>,
    pub settings: Settings,
    /// Read by every sweep ([`super::dead_letters`]); `Default` where there are none.
    pub dead_letters: super::dead_letters::DeadLetterQueues,
}

/// The chunker acting for one job: its object store and runner are the job's role's.
pub(super) struct Acting<'a> {
    chunker: &'a Chunker,
    pub(super) objects: Arc<dyn ObjectStore>,
    /// Checks what the operation needs of the manifest's bucket (Object Lock, replication).
    pub(super) runner: Arc<dyn OperationRunner>,
}

impl std::ops::Deref for Acting<'_> {
    type Target = Chunker;

    fn deref(&self) -> &Chunker {
        self.chunker
    }
}

/// How much of the manifest's start is read to find the bucket its tasks are in.
const FIRST_BUCKET_PROBE: u64 = 64 * 1024;

/// A cut chunk as its backlog keeps it.
fn waiting(msg: &ChunkMessage) -> Result<Waiting> {
    Ok(Waiting { index: msg.index, body: encode(msg)? })
}

/// Chunks pushed into the backlog at a time (DynamoDB's BatchWriteItem takes up to 25; 10
/// keeps the chunker's memory low when messages carry their rows, about 92 KB each).
pub(super) const SEND_BATCH: usize = 10;

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

impl Chunker {
    /// The timer's sweep: the dead-letter queues are read ([`super::dead_letters`]), then every
    /// job that has not ended is looked at, and a stalled one moved on ([`super::sweep`]).
    pub async fn sweep(&self) -> Result<super::sweep::Swept> {
        // First: a chunk sent again makes its job busy before the sweep judges the job.
        self.handle_dead_letters().await;
        self.sweeper().sweep().await
    }

    fn sweeper(&self) -> super::sweep::Sweeper {
        super::sweep::Sweeper {
            store: self.store.clone(),
            events: self.events.clone(),
            backlog: self.dispatcher.backlog.clone(),
            control: self.control.clone(),
            finalize: self.finalize.clone(),
            finalizer: super::Finalizer {
                store: self.store.clone(),
                events: self.events.clone(),
                roles: self.roles.clone(),
                finalize: self.finalize.clone(),
                settings: self.settings.clone(),
            },
            bounds: super::sweep::Bounds::for_settings(&self.settings),
        }
    }

    /// The timer's hourly housekeeping: jobs unconfirmed for 30 days fail, and the sweep
    /// looks at every job once, those last written before the open-jobs index existed too.
    pub async fn expire(&self) -> Result<()> {
        let failed = super::expire_suspended(&*self.store, &*self.events, &*self.finalize, super::now()).await?;
        if failed > 0 {
            info!(failed, "unconfirmed jobs failed after 30 days in Suspended");
        }
        self.sweeper().sweep_every_job().await.map(|_| ())
    }

    /// Handles one control message. `deadline` is when this invocation must have handed its
    /// work on. An `Err` means the message should be delivered again.
    pub async fn handle(&self, msg: ControlMessage, deadline: Instant) -> Result<()> {
        let job_id = msg.job_id().cloned();
        match (self.handle_message(msg, deadline).await, job_id) {
            // Delivering it again cannot help: the job fails now, naming the error, instead of
            // waiting in Preparing while the message goes to the dead-letter queue.
            (Err(e), Some(id)) if !e.is_transient() && !matches!(e, Error::JobNotFound { .. }) => {
                let failure = JobFailure::new("PreparationFailed", format!("Preparing the job failed: {e}"));
                fail_job(&*self.store, &*self.events, &*self.finalize, &id, failure).await
            }
            (result, _) => result,
        }
    }

    async fn handle_message(&self, msg: ControlMessage, deadline: Instant) -> Result<()> {
        let deadline = deadline.min(Instant::now() + self.settings.time_budget);
        match msg {
            ControlMessage::Prepare { job_id } => self.prepare(&job_id, deadline).await,
            ControlMessage::Continue { job_id, checkpoint } => {
                let job = self.store.get(&job_id).await?;
                if job.checkpoint != checkpoint {
                    // A duplicate (its successor is on its way), or a continuation whose
                    // successor was never sent (the worker died, or the send failed, after the
                    // checkpoint was written): go on from the job's checkpoint either way. Two
                    // chains from one checkpoint cut the same chunks and meet at its next
                    // write, where one stops.
                    info!(job_id = %job_id, "continuing from the job's checkpoint, not the message's");
                }
                self.resume(job, deadline).await
            }
            ControlMessage::Start { job_id } => self.start(&job_id, deadline).await,
            ControlMessage::Dispatch => {
                // A failed round does not keep the sweep from running: it is the guarantee.
                let round = self.dispatcher.dispatch().await;
                self.sweep().await?;
                // Expiry reads the Suspended jobs: once an hour is precise enough for 30 days.
                if super::now().minute() == 0 {
                    self.expire().await?;
                }
                round.map(|_| ())
            }
            ControlMessage::File { job_id, pass, part, file, fields, at } => {
                let job = self.store.get(&job_id).await?;
                let Some(acting) = self.acting(&job).await? else { return Ok(()) };
                acting.file(job, super::parts::FileRead { pass, part, file, fields, at }, deadline).await
            }
        }
    }

    /// The chunker acting as the job's role; `None` when the role cannot be assumed (the job
    /// is failed).
    async fn acting(&self, job: &Job) -> Result<Option<Acting<'_>>> {
        let ports = ports_for(&*self.roles, &*self.store, &*self.events, &*self.finalize, job).await?;
        Ok(ports.map(|p| Acting { chunker: self, objects: p.objects, runner: p.runner }))
    }

    /// Reads on from the job's checkpoint, while the job is being prepared.
    async fn resume(&self, job: Job, deadline: Instant) -> Result<()> {
        let pass = match (job.status, job.progress.total_chunks) {
            (JobStatus::Preparing, None) if job.spec.confirmation_required == Some(true) => Pass::Count,
            (JobStatus::Preparing, None) => Pass::Cut,
            // A confirmed job's cut, which goes on if a job of higher priority paused it.
            (status, None) if status.is_running() => Pass::Cut,
            (status, _) => {
                info!(job_id = %job.id, status = %status, "continuation for a job that is not being prepared");
                return Ok(());
            }
        };
        let Some(acting) = self.acting(&job).await? else { return Ok(()) };
        acting.pass(job, pass, deadline).await
    }

    async fn prepare(&self, id: &JobId, deadline: Instant) -> Result<()> {
        let job =
            match transition_from(&*self.store, &*self.events, id, &[JobStatus::New], JobStatus::Preparing, |_| {})
                .await?
            {
                Ok(job) => job,
                // A redelivered Prepare whose first attempt died before its first checkpoint (or,
                // for an inventory, perhaps before every file was sent): start over. Chunks cut
                // again keep their indexes and executors drop duplicates; an inventory file read
                // twice is recorded once.
                Err(job) if job.status == JobStatus::Preparing && job.checkpoint == Checkpoint::default() => job,
                // A redelivered Prepare whose first attempt died between Ready and Active.
                Err(job)
                    if job.status == JobStatus::Ready
                        && job.progress.total_chunks.is_some()
                        && job.spec.confirmation_required != Some(true) =>
                {
                    return self.activate(id).await;
                }
                // A redelivered Prepare whose first attempt died after a checkpoint, before its
                // continuation was sent: go on from the checkpoint.
                Err(job) if job.status == JobStatus::Preparing && job.progress.total_chunks.is_none() => {
                    return self.resume(job, deadline).await;
                }
                // The sweep's Prepare for a confirmed job whose cut stalled: go on with the cut
                // (from its checkpoint, or every inventory file again; a file read before is
                // recorded once and its chunks run once).
                Err(job) if job.status.is_running() && job.progress.total_chunks.is_none() => {
                    let Some(acting) = self.acting(&job).await? else { return Ok(()) };
                    return acting.started(job, deadline).await;
                }
                Err(job) => {
                    info!(job_id = %id, status = %job.status, "prepare for a job that is not New: already handled");
                    return Ok(());
                }
            };
        let Some(acting) = self.acting(&job).await? else { return Ok(()) };
        acting.prepared(job, deadline).await
    }

    /// A confirmed job: Ready -> Active, then cut it from the start (the number of chunks is
    /// set again when the cut ends).
    async fn start(&self, id: &JobId, deadline: Instant) -> Result<()> {
        let started = transition_from(&*self.store, &*self.events, id, &[JobStatus::Ready], JobStatus::Active, |j| {
            j.checkpoint = Checkpoint::default();
            j.progress.total_chunks = None;
        })
        .await?;
        let job = match started {
            Ok(job) => job,
            // A redelivered Start whose first delivery died while it cut: go on with the cut
            // (the sweep would, but only a stall bound later).
            Err(job) if job.status.is_running() && job.progress.total_chunks.is_none() => job,
            Err(job) => {
                info!(job_id = %id, status = %job.status, "start for a job that is not Ready");
                return Ok(());
            }
        };
        let Some(acting) = self.acting(&job).await? else { return Ok(()) };
        acting.started(job, deadline).await
    }
}

impl Acting<'_> {
    /// The rest of Prepare, once the job is Preparing: checks the manifest and its bucket, then
    /// reads it.
    async fn prepared(&self, job: Job, deadline: Instant) -> Result<()> {
        let id = &job.id.clone();
        let valid = job.plan()?;
        let pass = if job.spec.confirmation_required == Some(true) { Pass::Count } else { Pass::Cut };
        if let Some(m) = valid.source.manifest() {
            match self.objects.head(&m.bucket, &m.key, m.version_id.as_deref()).await {
                Ok(head) if head.etag == m.etag => {}
                Ok(head) => {
                    let reason = format!(
                        "The manifest ETag {} does not match the ETag {} of s3://{}/{}",
                        m.etag, head.etag, m.bucket, m.key
                    );
                    return self.fail(id, JobFailure::new("ManifestETagMismatch", reason)).await;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.fail(id, read_failure(m, &e)).await,
            }
        }
        match &valid.source {
            Source::Csv(m) => {
                let first = self.probe(m).await?;
                // A retry's manifest is batchops' own: its first failed row may name a bucket
                // no bucket has (that row failed for it), which is no header to refuse the job for.
                let ours = job.tags.iter().any(|t| t.key == super::retry_failed::RETRY_OF_TAG);
                if let Some(reason) = first.header.filter(|_| !ours) {
                    return self.fail(id, JobFailure::new("InvalidManifestContent", reason)).await;
                }
                if let (Some(check), Some(bucket)) = (valid.operation.bucket_check(), first.bucket) {
                    if let Some(failure) = self.runner.check_bucket(check, &bucket).await? {
                        return self.fail(id, failure).await;
                    }
                }
                self.pass(job, pass, deadline).await
            }
            Source::Inventory(m) => {
                let Some(inventory) = self.read_inventory(id, m).await? else { return Ok(()) };
                let bucket = inventory.source_bucket.clone();
                if let (Some(check), Some(bucket)) = (valid.operation.bucket_check(), bucket) {
                    if let Some(failure) = self.runner.check_bucket(check, &bucket).await? {
                        return self.fail(id, failure).await;
                    }
                }
                self.fan_out(id, pass, inventory).await
            }
            Source::Generator(g) => {
                if let Some(check) = valid.operation.bucket_check() {
                    if let Some(failure) = self.runner.check_bucket(check, &g.source_bucket).await? {
                        return self.fail(id, failure).await;
                    }
                }
                self.pass(job, pass, deadline).await
            }
        }
    }

    /// The rest of Start, once the job is Active.
    async fn started(&self, job: Job, deadline: Instant) -> Result<()> {
        let id = &job.id.clone();
        let valid = job.plan()?;
        let inventory = match (&valid.source, &job.generated_manifest) {
            (Source::Inventory(m), _) => Some(m.clone()),
            (Source::Generator(_), Some(g)) => Some(ManifestRef {
                bucket: g.bucket.clone(),
                key: g.key.clone(),
                version_id: None,
                etag: g.etag.clone(),
                fields: Vec::new(),
            }),
            _ => None,
        };
        match inventory {
            Some(m) => match self.read_inventory(id, &m).await? {
                Some(inv) => self.fan_out(id, Pass::Cut, inv).await,
                None => Ok(()),
            },
            None => self.pass(job, Pass::Cut, deadline).await,
        }
    }

    /// Reads the start of a CSV manifest: the bucket of its first well-formed line within its
    /// first 64 KiB (`None` when there is none: then each task fails on its own, with S3's
    /// error), and whether line 1 is a header row.
    async fn probe(&self, m: &ManifestRef) -> Result<Probe> {
        let (version, etag) = (m.version_id.as_deref(), Some(m.etag.as_str()));
        let buf = match self.objects.read(&m.bucket, &m.key, version, 0, Some(FIRST_BUCKET_PROBE), etag).await {
            Ok(stream) => read_all(stream).await?,
            // An empty manifest has no range to read.
            Err(e) if e.http_status == 416 => return Ok(Probe::default()),
            Err(e) => return Err(e.into()),
        };
        let complete = match buf.iter().rposition(|b| *b == b'\n') {
            Some(end) if (buf.len() as u64) >= FIRST_BUCKET_PROBE => &buf[..end],
            _ => &buf[..],
        };
        let header = lines(complete, 1).next().and_then(|(_, l)| header_row(&m.fields, l));
        let bucket = lines(complete, 1)
            .filter(|(_, l)| !crate::chunk::is_blank(l))
            .find_map(|(n, l)| parse_line(&m.fields, n, l).ok())
            .map(|e| e.target.bucket);
        Ok(Probe { bucket, header })
    }

    /// One sequential pass from the job's checkpoint: a CSV manifest or a listing.
    async fn pass(&self, job: Job, pass: Pass, deadline: Instant) -> Result<()> {
        let valid = job.plan()?.into_owned();
        match valid.source {
            Source::Csv(m) => self.csv_pass(job, m, pass, deadline).await,
            Source::Generator(g) => {
                self.list_pass(job, &valid.operation, &g, valid.report.as_ref(), pass, deadline).await
            }
            Source::Inventory(_) => {
                warn!(job_id = %job.id, "a continuation for an inventory job: inventories are read by file");
                Ok(())
            }
        }
    }

    async fn csv_pass(&self, job: Job, m: ManifestRef, pass: Pass, deadline: Instant) -> Result<()> {
        /// Bytes of blank lines the chunker skips before it may hand on without a chunk cut.
        const BLANK_RUN_BYTES: u64 = 1 << 20;
        let from = job.checkpoint.clone();
        let mut stream =
            match self.objects.read(&m.bucket, &m.key, m.version_id.as_deref(), from.offset, None, Some(&m.etag)).await
            {
                Ok(s) => s,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.fail(&job.id, read_failure(&m, &e)).await,
            };
        let mut cutter = ChunkCutter::new(job.id.clone(), self.settings.chunk_size, &from);
        let mut pending: Vec<Waiting> = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.fail(&job.id, read_failure(&m, &e)).await,
            };
            let cut = cutter.feed(&piece);
            let too_long = || self.over_line_limit(cutter.line_len(), || format!("manifest line {}", cutter.line()));
            if let Some(failure) = self.over_task_limit(cutter.tasks()).or_else(too_long) {
                return self.fail(&job.id, failure).await;
            }
            if pass == Pass::Cut {
                pending.extend(cut.iter().map(waiting).collect::<Result<Vec<_>>>()?);
                if pending.len() >= SEND_BATCH {
                    self.send(&job.id, &mut pending).await?;
                }
            }
            // Hand on only after progress (a chunk cut, or a megabyte of blank lines skipped),
            // so that even a tiny budget moves on.
            let moved =
                cutter.chunks_cut() > from.next_chunk || cutter.checkpoint().offset >= from.offset + BLANK_RUN_BYTES;
            if Instant::now() >= deadline && moved {
                self.send(&job.id, &mut pending).await?;
                return self.continue_later(job, from, cutter.checkpoint()).await;
            }
        }
        if let Some(last) = cutter.finish() {
            if pass == Pass::Cut {
                pending.push(waiting(&last)?);
            }
        }
        self.send(&job.id, &mut pending).await?;
        self.finish(&job.id, pass, cutter.tasks(), cutter.chunks_cut(), |_| {}).await
    }
}

impl Chunker {
    pub(super) async fn fail(&self, id: &JobId, failure: JobFailure) -> Result<()> {
        fail_job(&*self.store, &*self.events, &*self.finalize, id, failure).await
    }

    /// The job failure when a manifest holds more tasks than allowed.
    #[inline]
    pub(super) fn over_task_limit(&self, tasks: u64) -> Option<JobFailure> {
        let max = self.settings.max_tasks;
        (tasks > max).then(|| {
            JobFailure::new(
                "ManifestTooLarge",
                format!("The manifest holds more than {max} tasks, the limit (BATCHOPS_MAX_TASKS)"),
            )
        })
    }

    /// The job failure when a manifest line (named by `line`) is longer than allowed.
    #[inline]
    pub(super) fn over_line_limit(&self, len: u64, line: impl Fn() -> String) -> Option<JobFailure> {
        let max = self.settings.max_line_bytes;
        (len > max).then(|| {
            JobFailure::new(
                "InvalidManifestContent",
                format!("{} is longer than {max} bytes (BATCHOPS_MAX_LINE_BYTES): not a manifest line", line()),
            )
        })
    }

    /// Ready -> Active for a job whose chunks are all cut, and finalize it if they all ran.
    async fn activate(&self, id: &JobId) -> Result<()> {
        if let Ok(active) =
            transition_from(&*self.store, &*self.events, id, &[JobStatus::Ready], JobStatus::Active, |_| {}).await?
        {
            finalize_if_done(&*self.finalize, &active).await?;
        }
        Ok(())
    }

    /// Pushes the chunks waiting in `pending` into the job's backlog, and lets the dispatcher
    /// release what the executors have room for.
    pub(super) async fn send(&self, job: &JobId, pending: &mut Vec<Waiting>) -> Result<()> {
        self.dispatcher.push(job, std::mem::take(pending)).await
    }

    /// Records the checkpoint (conditionally: a duplicate invocation that lost the race stops
    /// here) and sends the continuation.
    pub(super) async fn continue_later(&self, mut job: Job, from: Checkpoint, checkpoint: Checkpoint) -> Result<()> {
        let id = job.id.clone();
        let status = job.status;
        job.progress.tasks_prepared = job.progress.tasks_prepared.max(checkpoint.tasks);
        job.checkpoint = checkpoint.clone();
        match self.store.put(&job).await {
            Ok(_) => {}
            Err(Error::Conflict { .. }) => {
                // Someone else wrote the job: go on only if it is still ours to prepare (the
                // dispatcher pausing or resuming a confirmed job does not end its cut).
                let mut fresh = self.store.get(&id).await?;
                let same = fresh.status == status || (fresh.status.is_running() && status.is_running());
                if same && fresh.checkpoint == checkpoint {
                    // Our own write, applied with its answer lost (the retry then met it).
                } else if same && fresh.checkpoint == from {
                    fresh.checkpoint = checkpoint.clone();
                    fresh.progress.tasks_prepared = fresh.progress.tasks_prepared.max(checkpoint.tasks);
                    self.store.put(&fresh).await?;
                } else {
                    info!(job_id = %id, status = %fresh.status, "preparation stopped: job changed");
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
        info!(job_id = %id, offset = checkpoint.offset, tasks = checkpoint.tasks, "time budget used: continuing");
        send_one(&*self.control, &ControlMessage::Continue { job_id: id, checkpoint }).await
    }

    /// The end of a pass over the whole manifest, with its totals. `change` is applied with
    /// them (the generated manifest's location).
    pub(super) async fn finish(
        &self,
        id: &JobId,
        pass: Pass,
        tasks: u64,
        chunks: u64,
        change: impl Fn(&mut Job),
    ) -> Result<()> {
        let set_totals = |j: &mut Job| {
            j.progress.total_tasks = Some(tasks);
            j.progress.total_chunks = Some(chunks);
            j.progress.tasks_prepared = tasks;
            if tasks == 0 {
                j.status_update_reason = Some("The manifest holds no tasks: nothing to run".into());
            }
            change(j);
        };
        let status = self.store.get(id).await?.status;
        match (pass, status) {
            (Pass::Count, _) => {
                let cause = "The job requires confirmation: run update-job-status --requested-job-status Ready";
                match transition_from(
                    &*self.store,
                    &*self.events,
                    id,
                    &[JobStatus::Preparing],
                    JobStatus::Suspended,
                    |j| {
                        set_totals(j);
                        j.checkpoint = Checkpoint::default();
                        j.suspended_cause = Some(cause.into());
                    },
                )
                .await?
                {
                    Ok(_) => info!(job_id = %id, tasks, "job prepared, waiting for confirmation"),
                    Err(j) => {
                        warn!(job_id = %id, status = %j.status, "job changed while it was counted")
                    }
                }
                Ok(())
            }
            (Pass::Cut, JobStatus::Preparing) => {
                let ready = transition_from(
                    &*self.store,
                    &*self.events,
                    id,
                    &[JobStatus::Preparing],
                    JobStatus::Ready,
                    set_totals,
                )
                .await?;
                if ready.is_err() {
                    return Ok(());
                }
                self.activate(id).await?;
                info!(job_id = %id, tasks, chunks, "job prepared and active");
                Ok(())
            }
            (Pass::Cut, _) => self.cut_confirmed(id, tasks, chunks).await,
        }
    }

    /// The end of the cutting pass of a confirmed job: its tasks were counted before the
    /// confirmation, and must still be as many.
    async fn cut_confirmed(&self, id: &JobId, tasks: u64, chunks: u64) -> Result<()> {
        let mut counted = None;
        let set = modify(&*self.store, id, |j| {
            if !j.status.is_running() || j.progress.total_chunks.is_some() {
                return false;
            }
            counted = j.progress.total_tasks;
            if j.progress.total_tasks == Some(tasks) {
                j.progress.total_chunks = Some(chunks);
                true
            } else {
                false
            }
        })
        .await?;
        match set {
            Some(fresh) => {
                finalize_if_done(&*self.finalize, &fresh).await?;
                Ok(())
            }
            None if counted.is_some_and(|c| c != tasks) => {
                let reason = format!(
                    "The manifest held {tasks} tasks when it was cut but {} when it was counted",
                    counted.unwrap_or(0)
                );
                self.fail(id, JobFailure::new("ManifestChanged", reason)).await
            }
            None => Ok(()),
        }
    }
}

/// What the start of a CSV manifest says.
#[derive(Default)]
struct Probe {
    bucket: Option<String>,
    header: Option<String>,
}
