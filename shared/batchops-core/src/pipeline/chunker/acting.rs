//! The chunker's ports ([`Chunker`]), what every pass over a manifest uses (failing the job,
//! pushing chunks to the backlog, handing on, finishing a pass), and [`Acting`]: the chunker
//! acting for one job. The passes (CSV in `mod.rs`, [`super::inventory`], [`super::listing`])
//! depend on this file; it depends on none of them.

use std::sync::Arc;

use tracing::{info, warn};

use crate::chunk::{ChunkMessage, ControlMessage};
use crate::job::{Checkpoint, Job, JobFailure, JobId, JobStatus};
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::stage::{encode, fail_job, finalize_if_done, modify, send_one, transition_from, StagePorts};
use crate::ports::{ObjectStore, OperationRunner, Pass, Queue, Waiting};
use crate::{Error, Result};

pub struct Chunker {
    /// Every request made for a job (manifest reads, listings, bucket checks, generated
    /// manifests) acts as the job's role.
    pub ports: StagePorts,
    pub control: Arc<dyn Queue>,
    /// Cut chunks go to their job's backlog; the dispatcher releases them by priority.
    pub dispatcher: Arc<Dispatcher>,
    /// Read by every sweep ([`crate::pipeline::dead_letters`]); `Default` where there are none.
    pub dead_letters: crate::ports::DeadLetterQueues,
}

/// The chunker acting for one job: its object store and runner are the job's role's.
pub(super) struct Acting<'a> {
    pub(super) chunker: &'a Chunker,
    pub(super) objects: Arc<dyn ObjectStore>,
    /// Checks what the operation needs of the manifest's bucket (Object Lock, replication).
    pub(super) runner: Arc<dyn OperationRunner>,
}

/// A cut chunk as its backlog keeps it.
pub(super) fn waiting(msg: &ChunkMessage) -> Result<Waiting> {
    Ok(Waiting { index: msg.index, body: encode(msg)? })
}

/// Chunks pushed into the backlog at a time (DynamoDB's BatchWriteItem takes up to 25; 10
/// keeps the chunker's memory low when messages carry their rows, about 92 KB each).
pub(super) const SEND_BATCH: usize = 10;

impl Chunker {
    pub(crate) async fn fail(&self, id: &JobId, failure: JobFailure) -> Result<()> {
        fail_job(&*self.ports.store, &*self.ports.events, &*self.ports.finalize, id, failure).await
    }

    /// The job failure when a manifest holds more tasks than allowed.
    #[inline]
    pub(crate) fn over_task_limit(&self, tasks: u64) -> Option<JobFailure> {
        let max = self.ports.settings.max_tasks;
        (tasks > max).then(|| {
            JobFailure::new(
                "ManifestTooLarge",
                format!("The manifest holds more than {max} tasks, the limit (BATCHOPS_MAX_TASKS)"),
            )
        })
    }

    /// The job failure when a manifest line (named by `line`) is longer than allowed.
    #[inline]
    pub(crate) fn over_line_limit(&self, len: u64, line: impl Fn() -> String) -> Option<JobFailure> {
        let max = self.ports.settings.max_line_bytes;
        (len > max).then(|| {
            JobFailure::new(
                "InvalidManifestContent",
                format!("{} is longer than {max} bytes (BATCHOPS_MAX_LINE_BYTES): not a manifest line", line()),
            )
        })
    }

    /// Ready -> Active for a job whose chunks are all cut, and finalize it if they all ran.
    pub(super) async fn activate(&self, id: &JobId) -> Result<()> {
        if let Ok(active) =
            transition_from(&*self.ports.store, &*self.ports.events, id, &[JobStatus::Ready], JobStatus::Active, |_| {})
                .await?
        {
            finalize_if_done(&*self.ports.finalize, &active).await?;
        }
        Ok(())
    }

    /// Pushes the chunks waiting in `pending` into the job's backlog, and lets the dispatcher
    /// release what the executors have room for.
    pub(crate) async fn send(&self, job: &JobId, pending: &mut Vec<Waiting>) -> Result<()> {
        self.dispatcher.push(job, std::mem::take(pending)).await
    }

    /// Records the checkpoint (conditionally: a duplicate invocation that lost the race stops
    /// here) and sends the continuation.
    pub(crate) async fn continue_later(&self, mut job: Job, from: Checkpoint, checkpoint: Checkpoint) -> Result<()> {
        let id = job.id.clone();
        let status = job.status;
        job.progress.tasks_prepared = job.progress.tasks_prepared.max(checkpoint.tasks);
        job.checkpoint = checkpoint.clone();
        match self.ports.store.put(&job).await {
            Ok(_) => {}
            Err(Error::Conflict { .. }) => {
                // Someone else wrote the job: go on only if it is still ours to prepare (the
                // dispatcher pausing or resuming a confirmed job does not end its cut).
                let mut fresh = self.ports.store.get(&id).await?;
                let same = fresh.status == status || (fresh.status.is_running() && status.is_running());
                if same && fresh.checkpoint == checkpoint {
                    // Our own write, applied with its answer lost (the retry then met it).
                } else if same && fresh.checkpoint == from {
                    fresh.checkpoint = checkpoint.clone();
                    fresh.progress.tasks_prepared = fresh.progress.tasks_prepared.max(checkpoint.tasks);
                    self.ports.store.put(&fresh).await?;
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
    pub(crate) async fn finish(
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
        let status = self.ports.store.get(id).await?.status;
        match (pass, status) {
            (Pass::Count, _) => {
                let cause = "The job requires confirmation: run update-job-status --requested-job-status Ready";
                match transition_from(
                    &*self.ports.store,
                    &*self.ports.events,
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
                    &*self.ports.store,
                    &*self.ports.events,
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
    pub(super) async fn cut_confirmed(&self, id: &JobId, tasks: u64, chunks: u64) -> Result<()> {
        let mut counted = None;
        let set = modify(&*self.ports.store, id, |j| {
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
                finalize_if_done(&*self.ports.finalize, &fresh).await?;
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
