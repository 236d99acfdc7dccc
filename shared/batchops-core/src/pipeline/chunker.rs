//! The manifest chunker: checks the manifest against its ETag, streams it, and cuts it into
//! chunk messages; when its time budget runs out it records a checkpoint and sends itself a
//! continuation, so no manifest is too large for one invocation.
//!
//! Jobs without `ConfirmationRequired` are cut while they prepare (Preparing), and the
//! executors start on the first chunks at once; at the end of the manifest the job gets its
//! `TotalNumberOfTasks` and becomes Active. Jobs that need confirmation are only counted
//! (Preparing -> Suspended); once confirmed (Ready) a `Start` message cuts them (Active).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tracing::{info, warn};

use super::{encode, fail_job, finalize_if_done, send_one, transition_from, Settings};
use crate::chunk::{ChunkCutter, ChunkMessage, ControlMessage};
use crate::job::{Checkpoint, Job, JobFailure, JobId, JobStatus};
use crate::manifest::{lines, parse_line};
use crate::ports::{read_all, JobStore, ObjectStore, OperationRunner, Queue, StorageError};
use crate::spec::ManifestRef;
use crate::{Error, Result};

/// What a pass over the manifest does with the chunks it cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Count only (a job that waits for confirmation).
    Count,
    /// Send every chunk to the chunk queue.
    Cut,
}

pub struct Chunker {
    pub store: Arc<dyn JobStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub control: Arc<dyn Queue>,
    pub chunks: Arc<dyn Queue>,
    pub finalize: Arc<dyn Queue>,
    /// Checks what the operation needs of the manifest's bucket (Object Lock, replication).
    pub runner: Arc<dyn OperationRunner>,
    pub settings: Settings,
}

/// How much of the manifest's start is read to find the bucket its tasks are in.
const FIRST_BUCKET_PROBE: u64 = 64 * 1024;

/// SQS SendMessageBatch takes ten messages at a time.
const SEND_BATCH: usize = 10;

/// The job failure for a manifest that cannot be read (or changed under the job).
pub(crate) fn read_failure(manifest: &ManifestRef, e: &StorageError) -> JobFailure {
    let what = format!("s3://{}/{}", manifest.bucket, manifest.key);
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
    /// Handles one control message. `deadline` is when this invocation must have handed its
    /// work on. An `Err` means the message should be delivered again.
    pub async fn handle(&self, msg: ControlMessage, deadline: Instant) -> Result<()> {
        let deadline = deadline.min(Instant::now() + self.settings.time_budget);
        match msg {
            ControlMessage::Prepare { job_id } => self.prepare(&job_id, deadline).await,
            ControlMessage::Continue { job_id, checkpoint } => {
                let job = self.store.get(&job_id).await?;
                if job.checkpoint != checkpoint {
                    info!(job_id = %job_id, "stale continuation ignored");
                    return Ok(());
                }
                match (job.status, job.progress.total_chunks) {
                    (JobStatus::Preparing, None) if job.spec.confirmation_required == Some(true) => {
                        self.pass(job, Pass::Count, deadline).await
                    }
                    (JobStatus::Preparing, None) | (JobStatus::Active, Some(_)) => {
                        self.pass(job, Pass::Cut, deadline).await
                    }
                    (status, _) => {
                        info!(job_id = %job_id, status = %status, "continuation for a job that is not being prepared");
                        Ok(())
                    }
                }
            }
            ControlMessage::Start { job_id } => {
                match transition_from(&*self.store, &job_id, &[JobStatus::Ready], JobStatus::Active, |j| {
                    j.checkpoint = Checkpoint::default();
                })
                .await?
                {
                    Ok(job) => self.pass(job, Pass::Cut, deadline).await,
                    Err(job) => {
                        info!(job_id = %job_id, status = %job.status, "start for a job that is not Ready");
                        Ok(())
                    }
                }
            }
        }
    }

    async fn prepare(&self, id: &JobId, deadline: Instant) -> Result<()> {
        let job = match transition_from(&*self.store, id, &[JobStatus::New], JobStatus::Preparing, |_| {}).await? {
            Ok(job) => job,
            // A redelivered Prepare whose first attempt died before its first checkpoint:
            // start over (chunks cut again keep their indexes, and executors drop duplicates).
            Err(job) if job.status == JobStatus::Preparing && job.checkpoint == Checkpoint::default() => job,
            // A redelivered Prepare whose first attempt died between Ready and Active.
            Err(job)
                if job.status == JobStatus::Ready
                    && job.progress.total_chunks.is_some()
                    && job.spec.confirmation_required != Some(true) =>
            {
                return self.activate(id).await;
            }
            Err(job) => {
                info!(job_id = %id, status = %job.status, "prepare for a job that is not New: already handled");
                return Ok(());
            }
        };
        let valid = job.spec.validate()?;
        let m = &valid.manifest;
        match self.objects.head(&m.bucket, &m.key, m.version_id.as_deref()).await {
            Ok(head) if head.etag == m.etag => {}
            Ok(head) => {
                let reason = format!(
                    "The manifest ETag {} does not match the ETag {} of s3://{}/{}",
                    m.etag, head.etag, m.bucket, m.key
                );
                return fail_job(&*self.store, &*self.finalize, id, JobFailure::new("ManifestETagMismatch", reason))
                    .await;
            }
            Err(e) if e.http_status >= 500 || e.http_status == 0 => return Err(e.into()),
            Err(e) => return fail_job(&*self.store, &*self.finalize, id, read_failure(m, &e)).await,
        }
        if let Some(check) = valid.operation.bucket_check() {
            if let Some(bucket) = self.first_bucket(m).await? {
                if let Some(failure) = self.runner.check_bucket(check, &bucket).await? {
                    return fail_job(&*self.store, &*self.finalize, id, failure).await;
                }
            }
        }
        let pass = if job.spec.confirmation_required == Some(true) { Pass::Count } else { Pass::Cut };
        self.pass(job, pass, deadline).await
    }

    /// The bucket of the manifest's first well-formed line within its first 64 KiB; `None`
    /// when there is none (then each task fails on its own, with S3's error).
    async fn first_bucket(&self, m: &ManifestRef) -> Result<Option<String>> {
        let (version, etag) = (m.version_id.as_deref(), Some(m.etag.as_str()));
        let buf = match self.objects.read(&m.bucket, &m.key, version, 0, Some(FIRST_BUCKET_PROBE), etag).await {
            Ok(stream) => read_all(stream).await?,
            // An empty manifest has no range to read.
            Err(e) if e.http_status == 416 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let complete = match buf.iter().rposition(|b| *b == b'\n') {
            Some(end) if (buf.len() as u64) >= FIRST_BUCKET_PROBE => &buf[..end],
            _ => &buf[..],
        };
        let bucket = lines(complete, 1)
            .filter(|(_, l)| !crate::chunk::is_blank(l))
            .find_map(|(n, l)| parse_line(&m.fields, n, l).ok())
            .map(|e| e.target.bucket);
        Ok(bucket)
    }

    async fn pass(&self, job: Job, pass: Pass, deadline: Instant) -> Result<()> {
        let valid = job.spec.validate()?;
        let m = valid.manifest;
        let from = job.checkpoint.clone();
        let mut stream =
            match self.objects.read(&m.bucket, &m.key, m.version_id.as_deref(), from.offset, None, Some(&m.etag)).await
            {
                Ok(s) => s,
                Err(e) if e.http_status >= 500 || e.http_status == 0 => return Err(e.into()),
                Err(e) => return fail_job(&*self.store, &*self.finalize, &job.id, read_failure(&m, &e)).await,
            };
        let mut cutter = ChunkCutter::new(job.id.clone(), self.settings.chunk_size, &from);
        let mut pending: Vec<ChunkMessage> = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) if e.http_status >= 500 || e.http_status == 0 => return Err(e.into()),
                Err(e) => return fail_job(&*self.store, &*self.finalize, &job.id, read_failure(&m, &e)).await,
            };
            let cut = cutter.feed(&piece);
            if pass == Pass::Cut {
                pending.extend(cut);
                if pending.len() >= SEND_BATCH {
                    self.send(&mut pending).await?;
                }
            }
            // Hand on only after progress (a chunk cut), so that even a tiny budget moves on.
            if Instant::now() >= deadline && cutter.checkpoint().offset > from.offset {
                self.send(&mut pending).await?;
                return self.continue_later(job, from, cutter.checkpoint()).await;
            }
        }
        if let Some(last) = cutter.finish() {
            if pass == Pass::Cut {
                pending.push(last);
            }
        }
        self.send(&mut pending).await?;
        self.finish(job, pass, &cutter).await
    }

    /// Ready -> Active for a job whose chunks are all cut, and finalize it if they all ran.
    async fn activate(&self, id: &JobId) -> Result<()> {
        if let Ok(active) = transition_from(&*self.store, id, &[JobStatus::Ready], JobStatus::Active, |_| {}).await? {
            finalize_if_done(&*self.finalize, &active).await?;
        }
        Ok(())
    }

    async fn send(&self, pending: &mut Vec<ChunkMessage>) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let bodies = pending.drain(..).map(|c| encode(&c)).collect::<Result<Vec<_>>>()?;
        self.chunks.send(bodies).await
    }

    /// Records the checkpoint (conditionally: a duplicate invocation that lost the race stops
    /// here) and sends the continuation.
    async fn continue_later(&self, mut job: Job, from: Checkpoint, checkpoint: Checkpoint) -> Result<()> {
        let id = job.id.clone();
        let status = job.status;
        job.progress.tasks_prepared = job.progress.tasks_prepared.max(checkpoint.tasks);
        job.checkpoint = checkpoint.clone();
        match self.store.put(&job).await {
            Ok(_) => {}
            Err(Error::StatusConflict { .. }) => {
                // Someone else wrote the job: go on only if it is still ours to prepare.
                let mut fresh = self.store.get(&id).await?;
                if fresh.status != status || fresh.checkpoint != from {
                    info!(job_id = %id, status = %fresh.status, "preparation stopped: job changed");
                    return Ok(());
                }
                fresh.checkpoint = checkpoint.clone();
                fresh.progress.tasks_prepared = fresh.progress.tasks_prepared.max(checkpoint.tasks);
                self.store.put(&fresh).await?;
            }
            Err(e) => return Err(e),
        }
        info!(job_id = %id, offset = checkpoint.offset, tasks = checkpoint.tasks, "time budget used: continuing");
        send_one(&*self.control, &ControlMessage::Continue { job_id: id, checkpoint }).await
    }

    async fn finish(&self, job: Job, pass: Pass, cutter: &ChunkCutter) -> Result<()> {
        let id = job.id.clone();
        let (tasks, chunks) = (cutter.tasks(), cutter.chunks_cut());
        let end = cutter.checkpoint();
        let set_totals = move |j: &mut Job| {
            j.progress.total_tasks = Some(tasks);
            j.progress.total_chunks = Some(chunks);
            j.progress.tasks_prepared = tasks;
            j.checkpoint = end.clone();
        };
        match (pass, job.status) {
            (Pass::Count, _) => {
                let cause = "The job requires confirmation: run update-job-status --requested-job-status Ready";
                match transition_from(&*self.store, &id, &[JobStatus::Preparing], JobStatus::Suspended, |j| {
                    set_totals(j);
                    j.checkpoint = Checkpoint::default();
                    j.suspended_cause = Some(cause.into());
                })
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
                let ready =
                    transition_from(&*self.store, &id, &[JobStatus::Preparing], JobStatus::Ready, &set_totals).await?;
                if ready.is_err() {
                    return Ok(());
                }
                self.activate(&id).await?;
                info!(job_id = %id, tasks, chunks, "job prepared and active");
                Ok(())
            }
            (Pass::Cut, _) => {
                // A confirmed job: the totals were set when it was counted.
                let fresh = self.store.get(&id).await?;
                if fresh.progress.total_chunks != Some(chunks) {
                    let reason = format!(
                        "The manifest held {tasks} tasks when it was cut but {} when it was counted",
                        fresh.progress.total_tasks.unwrap_or(0)
                    );
                    return fail_job(&*self.store, &*self.finalize, &id, JobFailure::new("ManifestChanged", reason))
                        .await;
                }
                finalize_if_done(&*self.finalize, &fresh).await?;
                Ok(())
            }
        }
    }
}
