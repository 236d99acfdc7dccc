//! Dead letters: a message whose consumer failed on every delivery (five, the queues'
//! `maxReceiveCount`) goes to its queue's dead-letter queue, where nothing else reads it. Each
//! sweep reads them first ([`Chunker::sweep`]) and handles each by what it carries:
//!
//! - a chunk of a job that still runs is sent once more, through the job's backlog (the
//!   dispatcher releases it as a new message, with its receives counted afresh), marked as
//!   redriven; dead-lettered again, it fails the job `ChunkDeadLettered`, naming the chunk. A
//!   chunk of a job that ended (or ends), or one that ran after all, is dropped;
//! - a control or finalize message is dropped with a warning: the sweep re-issues whatever step
//!   the job waits for from its stored state (and ends it if that does not help), so the
//!   message itself is not needed.
//!
//! A letter that cannot be handled now (a store error) is left for the next sweep (SQS shows it
//! again after the queue's visibility timeout); the others are still handled.

use tracing::{info, warn};

use super::dispatcher::releasable;
use super::Chunker;
use crate::chunk::{ChunkBody, ChunkMessage, ControlMessage, FinalizeMessage};
use crate::job::JobFailure;
use crate::ports::{DeadLetters, Waiting};
use crate::{Error, Result};

pub use crate::ports::DeadLetterQueues;

/// Letters read from one queue per sweep, at most: a flood is worked off over a few sweeps
/// while the sweep itself still runs every minute.
pub const PER_SWEEP: usize = 100;

/// What one sweep did with the dead letters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLettered {
    /// Chunks sent once more.
    pub redriven: usize,
    /// Jobs failed `ChunkDeadLettered`.
    pub failed: usize,
    /// Letters deleted without more ado (control and finalize messages, chunks of jobs that
    /// ended or that ran, unreadable letters).
    pub dropped: usize,
    /// Letters not handled (an error): left for the next sweep.
    pub left: usize,
}

enum Handled {
    Redriven,
    Failed,
    Dropped,
}

#[derive(Clone, Copy)]
enum Kind {
    Chunk,
    Control,
    Finalize,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Chunk => "chunk",
            Kind::Control => "control",
            Kind::Finalize => "finalize",
        }
    }
}

impl Chunker {
    /// Reads and handles up to [`PER_SWEEP`] letters of each dead-letter queue. Never fails:
    /// what cannot be done now is logged and left for the next sweep.
    pub async fn handle_dead_letters(&self) -> DeadLettered {
        let mut out = DeadLettered::default();
        let q = &self.dead_letters;
        for (kind, queue) in [(Kind::Chunk, &q.chunks), (Kind::Control, &q.control), (Kind::Finalize, &q.finalize)] {
            if let Some(queue) = queue {
                self.drain(kind, &**queue, &mut out).await;
            }
        }
        if out.redriven > 0 {
            // Released now rather than at the next round; a failed round leaves them waiting.
            if let Err(e) = self.dispatcher.dispatch().await {
                warn!(error = %e, "dispatcher round after redriving chunks failed; the next one releases them");
            }
        }
        if out != DeadLettered::default() {
            info!(redriven = out.redriven, failed = out.failed, dropped = out.dropped, left = out.left, "dead letters");
        }
        out
    }

    async fn drain(&self, kind: Kind, queue: &dyn DeadLetters, out: &mut DeadLettered) {
        let mut read = 0;
        while read < PER_SWEEP {
            let letters = match queue.receive((PER_SWEEP - read).min(10)).await {
                Ok(letters) if letters.is_empty() => return,
                Ok(letters) => letters,
                Err(e) => {
                    warn!(queue = kind.name(), error = %e, "cannot read the dead-letter queue; the next sweep will");
                    return;
                }
            };
            read += letters.len();
            for letter in letters {
                let handled = match kind {
                    Kind::Chunk => self.chunk_letter(&letter.body).await,
                    Kind::Control => Ok(control_letter(&letter.body)),
                    Kind::Finalize => Ok(finalize_letter(&letter.body)),
                };
                match handled {
                    Ok(h) => {
                        match h {
                            Handled::Redriven => out.redriven += 1,
                            Handled::Failed => out.failed += 1,
                            Handled::Dropped => out.dropped += 1,
                        }
                        crate::metrics::count(crate::metrics::Metric::DeadLettersHandled, &[kind.name()], None, 1);
                        // Handling it again is harmless: a chunk pushed again replaces itself,
                        // a job failed is failed once.
                        if let Err(e) = queue.delete(&letter.receipt).await {
                            warn!(queue = kind.name(), error = %e, "a dead letter handled could not be deleted; it comes back");
                        }
                    }
                    Err(e) => {
                        out.left += 1;
                        warn!(queue = kind.name(), error = %e, "a dead letter could not be handled; the next sweep will");
                    }
                }
            }
        }
    }

    /// A chunk message that failed every delivery.
    async fn chunk_letter(&self, body: &str) -> Result<Handled> {
        let msg = match ChunkMessage::decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                warn!(error = %e, "an unreadable chunk message was dead-lettered: dropped");
                return Ok(Handled::Dropped);
            }
        };
        let (id, index) = (&msg.job_id, msg.index);
        let job = match self.ports.store.get(id).await {
            Ok(job) => job,
            Err(Error::JobNotFound { .. }) => {
                warn!(job_id = %id, chunk = index, "a chunk of a job that is gone was dead-lettered: dropped");
                return Ok(Handled::Dropped);
            }
            Err(e) => return Err(e),
        };
        if !releasable(job.status) {
            // Ended or ending (cancelled, failing): no chunk of it runs any more, and its report
            // lists the tasks that ran.
            info!(job_id = %id, chunk = index, status = %job.status, "a chunk of a job that no longer runs chunks was dead-lettered: dropped");
            return Ok(Handled::Dropped);
        }
        if self.ports.store.chunk_recorded(id, index).await? {
            info!(job_id = %id, chunk = index, "a dead-lettered chunk had run (another delivery recorded it): dropped");
            return Ok(Handled::Dropped);
        }
        if msg.redriven == 0 {
            let body = ChunkMessage::redriven_body(body).map_err(|e| Error::permanent("dead-lettered chunk", e))?;
            warn!(job_id = %id, chunk = index, tasks = msg.tasks, "a chunk was dead-lettered: sent once more");
            self.dispatcher.backlog.push(id, vec![Waiting { index, body }]).await?;
            return Ok(Handled::Redriven);
        }
        let origin = match (&msg.body, msg.file) {
            (ChunkBody::Lines(lines), _) => lines.origin.clone(),
            (_, Some(part)) => format!("part {part} of the manifest"),
            (_, None) => "the manifest".into(),
        };
        let reason = format!(
            "Chunk {index} ({} tasks from line {} of {origin}) was dead-lettered twice: every delivery \
             failed, also after it was sent once more, so its tasks did not run; the report lists every \
             task that ran",
            msg.tasks, msg.first_line
        );
        self.fail(id, JobFailure::new("ChunkDeadLettered", reason)).await?;
        Ok(Handled::Failed)
    }
}

/// A control message that failed every delivery: dropped. The sweep re-issues the step the
/// job waits for (its Prepare, Start or finalize) from the job's stored state, and fails a
/// preparation that still goes nowhere; a dispatcher round's message is sent again every minute.
fn control_letter(body: &str) -> Handled {
    match serde_json::from_str::<ControlMessage>(body) {
        Ok(msg) => {
            let what = msg.step();
            match msg.job_id() {
                Some(id) => warn!(
                    job_id = %id,
                    message = what,
                    "a control message was dead-lettered: dropped; the sweep re-issues the job's step from its stored state"
                ),
                None => warn!(message = what, "a dispatcher round's message was dead-lettered: dropped"),
            }
        }
        Err(e) => warn!(error = %e, "an unreadable control message was dead-lettered: dropped"),
    }
    Handled::Dropped
}

/// A finalize message that failed every delivery: dropped. The sweep asks again for the end
/// of a job that should end (and ends it itself if that does not help), from its stored state.
fn finalize_letter(body: &str) -> Handled {
    match serde_json::from_str::<FinalizeMessage>(body) {
        Ok(msg) => warn!(
            job_id = %msg.job_id,
            merge = msg.merge.is_some(),
            "a finalize message was dead-lettered: dropped; the sweep ends the job from its stored state"
        ),
        Err(e) => warn!(error = %e, "an unreadable finalize message was dead-lettered: dropped"),
    }
    Handled::Dropped
}
