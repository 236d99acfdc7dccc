//! The sweep: level-triggered progress. Messages move a job on quickly, but no message carries
//! its fate: one lost, dead-lettered or sent by a writer that died after its write would leave
//! the job where it is forever. Every minute (the dispatcher's timer) the sweep walks the jobs
//! that have not ended and, from what is stored alone, notices those that have not changed for
//! longer than any step takes ([`Bounds`]). For such a job it first re-issues the step the job
//! waits for (idempotent: every stage takes a repeated message for what it is); if the job
//! still does not move, the sweep acts itself: a preparation that goes nowhere, or chunks that
//! will never run, fail the job with a named reason (`PreparationStalled`, `ChunksLost`), and a
//! job that should end is finalized by the sweep. So every job ends within
//! [`Bounds::liveness`] even when every message about it is lost.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{fail_job, now_ms, request_finalize, send_one, Finalizer, Settings};
use crate::chunk::ControlMessage;
use crate::events::Events;
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::metrics::{self, Metric};
use crate::ports::{Backlog, JobFilter, JobStore, Queue, Sighting, SPLIT_BASE};
use crate::{Error, Result};

/// How long a job may look the same before the sweep steps in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// A job that waits for one message to move on (New, Ready, ending, or every chunk run).
    pub quiet: Duration,
    /// A job being prepared or running chunks: longer than one invocation of any stage lasts
    /// (a running chunk keeps its claim alive, so a slow one is never taken for a stall).
    pub busy: Duration,
    /// Steps re-issued before the sweep acts itself.
    pub nudges: u32,
    /// How often the sweep runs.
    pub period: Duration,
}

impl Bounds {
    /// The bounds for stages that run with `settings` (the chunker's time budget is the
    /// longest any invocation works before it hands on).
    pub fn for_settings(settings: &Settings) -> Bounds {
        Bounds {
            quiet: settings.stall,
            busy: settings.time_budget + settings.stall,
            nudges: 1,
            period: settings.sweep_every,
        }
    }

    /// The longest a job takes to end when every message about it is lost: its preparation
    /// (or its chunks) stalls, is nudged, then failed; then its end stalls, is nudged, then
    /// done by the sweep. Each wait is noticed at most one period late.
    pub fn liveness(&self) -> Duration {
        let tries = self.nudges + 1;
        (self.busy + self.period) * tries + (self.quiet + self.period) * tries + self.period
    }
}

/// What the sweep did for one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Its waiting chunks had lost their runnable mark: marked again.
    Remarked,
    /// Sent the control message that goes on with its preparation.
    Prepare,
    /// Sent a confirmed job's Start.
    Start,
    /// Asked the finalizer to end it.
    Finalize,
    /// Nothing to re-issue (its chunks are gone): waited one more bound.
    Waited,
    /// Failed it with this code.
    Failed(&'static str),
    /// Ended it (or tried: it may still wait for a chunk in flight).
    Finalized,
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Jobs looked at.
    pub seen: usize,
    /// What was done, by job.
    pub steps: Vec<(JobId, Step)>,
}

pub struct Sweeper {
    pub store: Arc<dyn JobStore>,
    pub events: Arc<dyn Events>,
    pub backlog: Arc<dyn Backlog>,
    pub control: Arc<dyn Queue>,
    pub finalize: Arc<dyn Queue>,
    /// Ends a job whose finalize requests go nowhere.
    pub finalizer: Finalizer,
    pub bounds: Bounds,
}

/// The statuses the sweep looks at: every one that has not ended, but Suspended (it waits
/// for a person; [`super::expire_suspended`] ends it after 30 days).
const SWEPT: [JobStatus; 9] = [
    JobStatus::New,
    JobStatus::Preparing,
    JobStatus::Ready,
    JobStatus::Active,
    JobStatus::Pausing,
    JobStatus::Paused,
    JobStatus::Completing,
    JobStatus::Cancelling,
    JobStatus::Failing,
];

impl Sweeper {
    /// Looks at every job that has not ended, once (from where only those are listed). A job
    /// the sweep cannot handle now (a store error) is left for the next sweep; the others are
    /// still looked at.
    pub async fn sweep(&self) -> Result<Swept> {
        self.walk(true).await
    }

    /// [`Sweeper::sweep`] reading every job (hourly): a job last written before the open-jobs
    /// index existed is not listed there.
    pub async fn sweep_every_job(&self) -> Result<Swept> {
        self.walk(false).await
    }

    async fn walk(&self, open: bool) -> Result<Swept> {
        let runnable: HashSet<JobId> = self.backlog.runnable().await?.into_iter().map(|(id, _)| id).collect();
        let mut swept = Swept::default();
        let mut token: Option<String> = None;
        loop {
            let filter = JobFilter { statuses: &SWEPT, account: None, open };
            let page = self.store.list(&filter, 1000, token.as_deref()).await?;
            for job in page.jobs {
                swept.seen += 1;
                let id = job.id.clone();
                match self.job(job, &runnable).await {
                    Ok(Some(step)) => {
                        info!(job_id = %id, step = ?step, "sweep");
                        let metric = match step {
                            Step::Failed(_) => Metric::JobsFailedBySweep,
                            _ => Metric::JobsFoundStuck,
                        };
                        metrics::count(metric, &[], Some(&id), 1);
                        swept.steps.push((id, step));
                    }
                    Ok(None) => {}
                    Err(e) => warn!(job_id = %id, error = %e, "sweep could not look at the job; the next one will"),
                }
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(swept),
            }
        }
    }

    /// One job: notes how it looks, and steps in when it has looked the same too long.
    async fn job(&self, listed: Job, runnable: &HashSet<JobId>) -> Result<Option<Step>> {
        // As it is now: a page of the listing may be a while old when the sweep gets to it.
        let job = self.store.get(&listed.id).await?;
        if job.status.is_terminal() || job.status == JobStatus::Suspended {
            return Ok(None);
        }
        let now = now_ms();
        let (busy, remarked) = self.busy(&job, runnable, now).await?;
        // An ending job's report segments are recorded beside it as their merges end.
        let segments = match job.status {
            JobStatus::Completing | JobStatus::Cancelling | JobStatus::Failing => {
                self.store.segments_recorded(&job.id).await?
            }
            _ => 0,
        };
        let fingerprint = fingerprint(&job, segments);
        let seen = self.store.sighting(&job.id).await?;
        let mut sighting = match seen {
            Some(s) if s.fingerprint == fingerprint && !busy => s,
            // Changed (or busy: running chunks, chunks waiting their turn): it moves.
            _ => {
                self.store.put_sighting(&job.id, &Sighting { fingerprint, since_ms: now, nudges: 0 }).await?;
                return Ok(remarked.then_some(Step::Remarked));
            }
        };
        if now.saturating_sub(sighting.since_ms) < self.bound(&job).as_millis() as u64 {
            return Ok(None);
        }
        let step = if sighting.nudges < self.bounds.nudges { self.nudge(&job).await? } else { self.act(&job).await? };
        sighting.nudges += 1;
        sighting.since_ms = now;
        self.store.put_sighting(&job.id, &sighting).await?;
        Ok(Some(step))
    }

    /// True while one of the job's chunks runs (a live claim) or waits its turn in the
    /// backlog; waiting chunks that lost their runnable mark are marked again (the second
    /// value says so).
    async fn busy(&self, job: &Job, runnable: &HashSet<JobId>, now: u64) -> Result<(bool, bool)> {
        let has_chunks = matches!(
            job.status,
            JobStatus::Preparing
                | JobStatus::Ready
                | JobStatus::Active
                | JobStatus::Pausing
                | JobStatus::Paused
                | JobStatus::Cancelling
                | JobStatus::Failing
        );
        if !has_chunks {
            return Ok((false, false));
        }
        if self.store.chunk_leases(&job.id).await?.iter().any(|l| l.live(now)) {
            return Ok((true, false));
        }
        if job.status.is_terminal() || matches!(job.status, JobStatus::Cancelling | JobStatus::Failing) {
            return Ok((false, false));
        }
        let waiting = self.backlog.peek(&job.id, 1).await?;
        if waiting.is_empty() {
            return Ok((false, false));
        }
        let remark = !runnable.contains(&job.id);
        if remark {
            // Pushing a waiting chunk again replaces it and marks its job.
            self.backlog.push(&job.id, waiting).await?;
        }
        Ok((true, remark))
    }

    /// How long the job may look the same: the quiet bound only for a job that waits for a
    /// finalize request (every chunk run, or cancelled or failing); a job whose Prepare may
    /// wait behind an inventory's file messages, one being prepared or running chunks, and one
    /// whose report is merged in segments get the busy bound.
    fn bound(&self, job: &Job) -> Duration {
        let working = match job.status {
            JobStatus::New | JobStatus::Preparing | JobStatus::Ready | JobStatus::Completing => true,
            s if s.is_running() => !job.progress.all_chunks_done(),
            _ => false,
        };
        if working {
            self.bounds.busy
        } else {
            self.bounds.quiet
        }
    }

    /// Re-issues the step the job waits for.
    async fn nudge(&self, job: &Job) -> Result<Step> {
        let id = &job.id;
        let prepare = ControlMessage::Prepare { job_id: id.clone() };
        Ok(match job.status {
            JobStatus::Ready if job.spec.confirmation_required == Some(true) => {
                send_one(&*self.control, &ControlMessage::Start { job_id: id.clone() }).await?;
                Step::Start
            }
            // The chunker takes a repeated Prepare for what it is: it goes on from the job's
            // checkpoint (a confirmed job's cut too) or activates a job cut whole.
            JobStatus::New | JobStatus::Preparing | JobStatus::Ready => {
                send_one(&*self.control, &prepare).await?;
                Step::Prepare
            }
            s if s.is_running() && job.progress.total_chunks.is_none() => {
                send_one(&*self.control, &prepare).await?;
                Step::Prepare
            }
            s if s.is_running() && !job.progress.all_chunks_done() => Step::Waited,
            _ => {
                request_finalize(&*self.finalize, id).await?;
                Step::Finalize
            }
        })
    }

    /// The nudge did not help: the sweep ends what cannot go on.
    async fn act(&self, job: &Job) -> Result<Step> {
        let id = &job.id;
        let minutes = self.bound(job).as_secs().div_ceil(60);
        let preparing = matches!(job.status, JobStatus::New | JobStatus::Preparing | JobStatus::Ready)
            || (job.status.is_running() && job.progress.total_chunks.is_none());
        if preparing {
            let reason = format!(
                "The job's preparation made no progress for {minutes} minutes, even after it was \
                 asked again (its control messages were lost or dead-lettered)"
            );
            self.fail(id, JobFailure::new("PreparationStalled", reason)).await?;
            return Ok(Step::Failed("PreparationStalled"));
        }
        if job.status.is_running() && !job.progress.all_chunks_done() {
            let reason = self.lost_chunks(job).await?;
            self.fail(id, JobFailure::new("ChunksLost", reason)).await?;
            return Ok(Step::Failed("ChunksLost"));
        }
        match self.finalizer.end_unmerged(id).await {
            Ok(_) => Ok(Step::Finalized),
            // A chunk still in flight: the next sweep (or the chunk's own request) ends it.
            Err(e @ Error::NotYet { .. }) => {
                info!(job_id = %id, reason = %e, "sweep waits to end the job");
                Ok(Step::Finalized)
            }
            Err(e) => Err(e),
        }
    }

    async fn fail(&self, id: &JobId, failure: JobFailure) -> Result<()> {
        fail_job(&*self.store, &*self.events, &*self.finalize, id, failure).await
    }

    /// Says which chunks never ran, for the failure reason.
    async fn lost_chunks(&self, job: &Job) -> Result<String> {
        let p = &job.progress;
        let (cut, total) = (p.total_chunks.unwrap_or(0), p.total_chunks.unwrap_or(0) + p.chunks_split);
        // Gaps among the chunks cut; chunks handed on (indexes from SPLIT_BASE) are counted.
        let (mut missing, mut next, mut after, mut numbered) = (Vec::new(), 0u64, None, true);
        loop {
            let page = self.store.chunks_after(&job.id, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            // An inventory's chunks are numbered per file (`part << 32 | n`): no gaps to name.
            numbered &= page.iter().all(|c| c.index < cut || c.index >= SPLIT_BASE);
            for c in page.iter().filter(|c| c.index < cut) {
                if c.index > next {
                    missing.push((next, c.index - 1));
                }
                next = c.index + 1;
            }
        }
        if next < cut {
            missing.push((next, cut - 1));
        }
        if !numbered {
            missing.clear();
        }
        let count = total.saturating_sub(p.chunks_done);
        let mut shown: Vec<String> =
            missing.iter().take(5).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        if missing.len() > 5 {
            shown.push("...".into());
        }
        let cut_missing: u64 = missing.iter().map(|(a, b)| b - a + 1).sum();
        if count > cut_missing {
            let what = if numbered { "handed on by an executor" } else { "of its files or handed on" };
            shown.push(format!("{} {what}", count - cut_missing));
        }
        Ok(format!(
            "{count} of the job's {total} chunks never ran: their messages were lost or dead-lettered \
             (chunks {}); the report lists every task that ran",
            shown.join(", ")
        ))
    }
}

/// A digest of what changes when a job moves: its status, its version (every write), its
/// counters (every chunk or part recorded) and its report segments recorded.
fn fingerprint(job: &Job, segments: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    job.status.hash(&mut h);
    job.version.hash(&mut h);
    let p = &job.progress;
    (p.succeeded, p.failed, p.chunks_done, p.tasks_prepared, p.total_chunks).hash(&mut h);
    (p.counted.files, p.cut.files, segments).hash(&mut h);
    // Stored as a DynamoDB number: kept within an i64 to be safe with every reader.
    h.finish() >> 1
}
