//! The manifest chunker: checks the manifest against its ETag, reads it, and cuts it into
//! chunk messages; when its time budget runs out it records where it stopped and sends itself
//! a continuation, so no manifest is too large for one invocation.
//!
//! Three sources: a CSV manifest is streamed and cut into byte ranges (here); the data files
//! of an S3 Inventory are read in parallel, one control message per file ([`inventory`]);
//! a `ManifestGenerator` lists its bucket page by page ([`listing`]).
//!
//! Jobs without `ConfirmationRequired` are cut while they prepare (Preparing), and the
//! executors start on the first chunks at once; at the end of the manifest the job gets its
//! `TotalNumberOfTasks` and becomes Active. Jobs that need confirmation are only counted
//! (Preparing -> Suspended); once confirmed (Ready) a `Start` message cuts them (Active), and
//! the cut sets the number of chunks when it ends.

mod acting;
mod inventory;
pub(crate) mod listing;

use tokio::time::Instant;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tracing::{info, warn};

use crate::chunk::{ChunkCutter, ControlMessage};
use crate::job::{Checkpoint, Job, JobFailure, JobId, JobStatus};
use crate::manifest::{header_row, lines, parse_line};
use crate::pipeline::stage::{fail_job, ports_for, read_failure, transition_from};
use crate::ports::{read_all, Pass, ReadOptions, Waiting};
use crate::spec::{ManifestRef, Source};
use crate::{Error, Result};

pub use acting::Chunker;
use acting::{waiting, Acting, SEND_BATCH};

/// How much of the manifest's start is read to find the bucket its tasks are in.
const FIRST_BUCKET_PROBE: u64 = 64 * 1024;

impl Chunker {
    /// The timer's sweep: the dead-letter queues are read ([`crate::pipeline::dead_letters`]), then every
    /// job that has not ended is looked at, and a stalled one moved on ([`crate::pipeline::sweep`]).
    pub async fn sweep(&self) -> Result<crate::pipeline::sweep::Swept> {
        // First: a chunk sent again makes its job busy before the sweep judges the job.
        self.handle_dead_letters().await;
        self.sweeper().sweep().await
    }

    fn sweeper(&self) -> crate::pipeline::sweep::Sweeper {
        crate::pipeline::sweep::Sweeper {
            store: self.ports.store.clone(),
            events: self.ports.events.clone(),
            backlog: self.dispatcher.backlog.clone(),
            control: self.control.clone(),
            finalize: self.ports.finalize.clone(),
            finalizer: super::Finalizer { ports: self.ports.clone() },
            bounds: crate::pipeline::sweep::Bounds::for_settings(&self.ports.settings),
        }
    }

    /// The timer's hourly housekeeping: jobs unconfirmed for 30 days fail, and the sweep
    /// looks at every job once, those last written before the open-jobs index existed too.
    pub async fn expire(&self) -> Result<()> {
        let failed = crate::pipeline::stage::expire_suspended(
            &*self.ports.store,
            &*self.ports.events,
            &*self.ports.finalize,
            crate::pipeline::stage::now(),
        )
        .await?;
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
                fail_job(&*self.ports.store, &*self.ports.events, &*self.ports.finalize, &id, failure).await
            }
            (result, _) => result,
        }
    }

    /// The work of one control message, boxed and made in a plain function: every kind's
    /// future is large, and a debug build keeps room for each of them in the frame of an
    /// `async fn` that awaits them in one `match`; under a job's deepest path (cut, activate,
    /// a DynamoDB write) that frame took the poll chain past a 2 MiB thread stack. This
    /// function's frame is gone before the work is polled.
    fn handle_message(&self, msg: ControlMessage, deadline: Instant) -> BoxFuture<'_, Result<()>> {
        let deadline = deadline.min(Instant::now() + self.ports.settings.time_budget);
        match msg {
            ControlMessage::Prepare { job_id } => async move { self.prepare(&job_id, deadline).await }.boxed(),
            ControlMessage::Continue { job_id, checkpoint } => async move {
                let job = self.ports.store.get(&job_id).await?;
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
            .boxed(),
            ControlMessage::Start { job_id } => async move { self.start(&job_id, deadline).await }.boxed(),
            ControlMessage::Dispatch => async move {
                // A failed round does not keep the sweep from running: it is the guarantee.
                let round = self.dispatcher.dispatch().await;
                self.sweep().await?;
                // Expiry reads the Suspended jobs: once an hour is precise enough for 30 days.
                if jiff::tz::TimeZone::UTC.to_datetime(crate::pipeline::stage::now()).minute() == 0 {
                    self.expire().await?;
                }
                round.map(|_| ())
            }
            .boxed(),
            ControlMessage::File { job_id, pass, index, file, fields, at } => async move {
                let job = self.ports.store.get(&job_id).await?;
                let Some(acting) = self.acting(&job).await? else { return Ok(()) };
                acting.file(job, inventory::FileRead { pass, index, file, fields, at }, deadline).await
            }
            .boxed(),
        }
    }

    /// The chunker acting as the job's role; `None` when the role cannot be assumed (the job
    /// is failed).
    async fn acting(&self, job: &Job) -> Result<Option<Acting<'_>>> {
        let ports =
            ports_for(&*self.ports.roles, &*self.ports.store, &*self.ports.events, &*self.ports.finalize, job).await?;
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
        let job = match transition_from(
            &*self.ports.store,
            &*self.ports.events,
            id,
            &[JobStatus::New],
            JobStatus::Preparing,
            |_| {},
        )
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
        let started =
            transition_from(&*self.ports.store, &*self.ports.events, id, &[JobStatus::Ready], JobStatus::Active, |j| {
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
                    return self.chunker.fail(id, JobFailure::new("ManifestETagMismatch", reason)).await;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.chunker.fail(id, read_failure(m, &e)).await,
            }
        }
        match &valid.source {
            Source::Csv(m) => {
                let first = self.probe(m).await?;
                // A retry's manifest is batchops' own: its first failed row may name a bucket
                // no bucket has (that row failed for it), which is no header to refuse the job for.
                let ours = job.tags.iter().any(|t| t.key == crate::pipeline::retry_failed::RETRY_OF_TAG);
                if let Some(reason) = first.header.filter(|_| !ours) {
                    return self.chunker.fail(id, JobFailure::new("InvalidManifestContent", reason)).await;
                }
                if let (Some(check), Some(bucket)) = (valid.operation.bucket_check(), first.bucket) {
                    if let Some(failure) = self.runner.check_bucket(check, &bucket).await? {
                        return self.chunker.fail(id, failure).await;
                    }
                }
                self.pass(job, pass, deadline).await
            }
            Source::Inventory(m) => {
                let Some(inventory) = self.read_inventory(id, m).await? else { return Ok(()) };
                let bucket = inventory.source_bucket.clone();
                if let (Some(check), Some(bucket)) = (valid.operation.bucket_check(), bucket) {
                    if let Some(failure) = self.runner.check_bucket(check, &bucket).await? {
                        return self.chunker.fail(id, failure).await;
                    }
                }
                self.fan_out(id, pass, inventory).await
            }
            Source::Generator(g) => {
                if let Some(check) = valid.operation.bucket_check() {
                    if let Some(failure) = self.runner.check_bucket(check, &g.source_bucket).await? {
                        return self.chunker.fail(id, failure).await;
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
        let options = ReadOptions { end: Some(FIRST_BUCKET_PROBE), if_match: Some(&m.etag), ..Default::default() };
        let buf = match self.objects.read(&m.object(), options).await {
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
        let options = ReadOptions { start: from.offset, if_match: Some(&m.etag), ..Default::default() };
        let mut stream = match self.objects.read(&m.object(), options).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return self.chunker.fail(&job.id, read_failure(&m, &e)).await,
        };
        let mut cutter = ChunkCutter::new(job.id.clone(), self.chunker.ports.settings.chunk_size, &from);
        let mut pending: Vec<Waiting> = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.chunker.fail(&job.id, read_failure(&m, &e)).await,
            };
            let cut = cutter.feed(&piece);
            let too_long =
                || self.chunker.over_line_limit(cutter.line_len(), || format!("manifest line {}", cutter.line()));
            if let Some(failure) = self.chunker.over_task_limit(cutter.tasks()).or_else(too_long) {
                return self.chunker.fail(&job.id, failure).await;
            }
            if pass == Pass::Cut {
                pending.extend(cut.iter().map(waiting).collect::<Result<Vec<_>>>()?);
                if pending.len() >= SEND_BATCH {
                    self.chunker.send(&job.id, &mut pending).await?;
                }
            }
            // Hand on only after progress (a chunk cut, or a megabyte of blank lines skipped),
            // so that even a tiny budget moves on.
            let moved =
                cutter.chunks_cut() > from.next_chunk || cutter.checkpoint().offset >= from.offset + BLANK_RUN_BYTES;
            if Instant::now() >= deadline && moved {
                self.chunker.send(&job.id, &mut pending).await?;
                return self.chunker.continue_later(job, from, cutter.checkpoint()).await;
            }
        }
        if let Some(last) = cutter.finish() {
            if pass == Pass::Cut {
                pending.push(waiting(&last)?);
            }
        }
        self.chunker.send(&job.id, &mut pending).await?;
        self.chunker.finish(&job.id, pass, cutter.tasks(), cutter.chunks_cut(), |_| {}).await
    }
}

/// What the start of a CSV manifest says.
#[derive(Default)]
struct Probe {
    bucket: Option<String>,
    header: Option<String>,
}
