//! The dispatcher: how chunks reach the executors in priority order.
//!
//! SQS cannot reorder messages already queued, so the chunker does not send chunks to the
//! chunk queue: it pushes them into their job's backlog (a [`Backlog`]). The dispatcher keeps
//! the chunk queue only as deep as the executors need ([`Dispatcher::depth`]: their capacity
//! and a quarter more) and fills it from the backlogs, highest priority first, jobs of equal
//! priority taking turns one chunk at a time. So a new job of higher priority waits at most
//! for the chunks already queued and running, whatever the size of the lower jobs' backlogs.
//!
//! A round runs after every chunk the chunker pushes and every chunk an executor ends, and on
//! a timer (a schedule on Lambda, a loop in `batchops local`); one round at a time (a lock).
//! An Active job with chunks waiting that gets none because higher-priority jobs have work
//! goes `Pausing` (its chunks running finish) and then `Paused` once none runs; it is `Active`
//! again as soon as a round releases one of its chunks, as in S3.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{now_ms, transition_from};
use crate::job::{Job, JobId, JobStatus};
use crate::metrics::{self, Metric};
use crate::ports::{Backlog, JobStore, Queue, Waiting};
use crate::{Error, Result};

pub struct Dispatcher {
    pub store: Arc<dyn JobStore>,
    /// Where status changes are announced.
    pub events: Arc<dyn crate::events::Events>,
    pub backlog: Arc<dyn Backlog>,
    pub chunks: Arc<dyn Queue>,
    /// The most messages the chunk queue holds, waiting or running.
    pub depth: u64,
}

/// The chunk queue depth for `capacity` executors: each busy, and a quarter more waiting.
pub fn depth_for(capacity: u64) -> u64 {
    capacity + (capacity / 4).max(1)
}

/// How long a chunk of a paced job (`MaxTasksPerSecond`) should take at its share of the
/// rate: well within the executor's invocation (270 s of 300), so it ends there instead of
/// handing most of its tasks on.
pub const PACED_CHUNK_SECS: f64 = 240.0;

/// The most chunks of a paced job that run at once: as many as share its rate with each still
/// ending within [`PACED_CHUNK_SECS`] (at least one). `None` for a job without a rate. Its
/// chunks' size is the job's average once it is cut, the default chunk size before.
pub fn paced_chunks(job: &Job) -> Option<usize> {
    let rate = job.max_tasks_per_second? as f64;
    let p = &job.progress;
    let per_chunk = match (p.total_tasks, p.total_chunks) {
        (Some(tasks), Some(chunks)) if chunks > 0 => (tasks as f64 / chunks as f64).max(1.0),
        _ => super::Settings::default().chunk_size as f64,
    };
    Some(((rate * PACED_CHUNK_SECS / per_chunk).floor() as usize).max(1))
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Chunks released, by job.
    pub released: HashMap<JobId, usize>,
    /// Jobs that went Pausing, Paused, or back to Active.
    pub moved: Vec<(JobId, JobStatus)>,
}

/// Statuses whose chunks may be released (they run, or wait their turn).
pub(super) fn releasable(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Preparing | JobStatus::Ready | JobStatus::Active | JobStatus::Pausing | JobStatus::Paused
    )
}

impl Dispatcher {
    /// Runs one round unless another is running, or the chunk queue is full already (one
    /// queue-depth request then, no write: a chunker pushing a big job's chunks asks often).
    pub async fn dispatch(&self) -> Result<Round> {
        let queued = self.chunks.depth().await?;
        metrics::gauge(Metric::ChunkQueueDepth, &[], queued as f64);
        if queued >= self.depth {
            return Ok(Round::default());
        }
        let holder = crate::clock::uuid().to_string();
        if !self.backlog.lock(&holder, Duration::from_secs(30)).await? {
            return Ok(Round::default());
        }
        let round = self.round(queued).await;
        if let Err(e) = self.backlog.unlock(&holder).await {
            warn!(error = %e, "could not release the dispatcher's lock; it lapses by itself");
        }
        round
    }

    /// Pushes chunks into their job's backlog, then runs a round.
    pub async fn push(&self, job: &JobId, chunks: Vec<Waiting>) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.backlog.push(job, chunks).await?;
        self.dispatch().await.map(|_| ())
    }

    /// A round with `queued` messages in the chunk queue (read just before the lock).
    async fn round(&self, queued: u64) -> Result<Round> {
        let mut round = Round::default();
        let mut jobs: Vec<(Job, u64)> = Vec::new();
        for (id, pushes) in self.backlog.runnable().await? {
            match self.store.get(&id).await {
                Ok(job) if releasable(job.status) => jobs.push((job, pushes)),
                // Ended, cancelled or failing: its waiting chunks will never run.
                Ok(_) | Err(Error::JobNotFound { .. }) => self.drop_backlog(&id, pushes).await?,
                Err(e) => return Err(e),
            }
        }
        // Highest priority first; within a priority, the job that has run fewest chunks first,
        // so equal jobs take turns across rounds too.
        jobs.sort_by(|(a, _), (b, _)| {
            b.priority
                .cmp(&a.priority)
                .then(a.progress.chunks_done.cmp(&b.progress.chunks_done))
                .then(a.created.cmp(&b.created))
        });
        let mut room = self.depth.saturating_sub(queued) as usize;
        let mut left: HashMap<JobId, bool> = HashMap::new();
        let mut start = 0;
        while start < jobs.len() {
            let level = jobs[start].0.priority;
            let end = start + jobs[start..].iter().take_while(|(j, _)| j.priority == level).count();
            room = self.release_level(&jobs[start..end], room, &mut round, &mut left).await?;
            start = end;
        }
        metrics::gauge(Metric::BacklogJobs, &[], left.values().filter(|waiting| **waiting).count() as f64);
        self.pause_and_resume(&jobs, &left, &mut round).await?;
        Ok(round)
    }

    /// Releases up to `room` chunks of jobs of one priority, taking turns; returns the room
    /// left. Records in `left` whether each job still has chunks waiting.
    async fn release_level(
        &self,
        level: &[(Job, u64)],
        room: usize,
        round: &mut Round,
        left: &mut HashMap<JobId, bool>,
    ) -> Result<usize> {
        if room == 0 {
            for (job, _) in level {
                left.insert(job.id.clone(), true);
            }
            return Ok(0);
        }
        let share = room.div_ceil(level.len()) + 1;
        let mut queues: Vec<(&Job, u64, VecDeque<Waiting>, bool)> = Vec::new();
        let mut caps = Vec::new();
        for (job, pushes) in level {
            let cap = self.paced_room(job).await?;
            let waiting = self.backlog.peek(&job.id, share.min(cap.max(1))).await?;
            let more = waiting.len() >= share.min(cap.max(1));
            caps.push(cap);
            queues.push((job, *pushes, waiting.into(), more));
        }
        let mut taken: Vec<Vec<Waiting>> = vec![Vec::new(); queues.len()];
        let mut room = room;
        let open = |i: usize, q: &(&Job, u64, VecDeque<Waiting>, bool), taken: &[Vec<Waiting>]| {
            !q.2.is_empty() && taken[i].len() < caps[i]
        };
        while room > 0 && queues.iter().enumerate().any(|(i, q)| open(i, q, &taken)) {
            for (i, q) in queues.iter_mut().enumerate() {
                if room == 0 {
                    break;
                }
                if !open(i, q, &taken) {
                    continue;
                }
                if let Some(w) = q.2.pop_front() {
                    taken[i].push(w);
                    room -= 1;
                }
            }
        }
        for ((job, pushes, rest, more), taken) in queues.into_iter().zip(taken) {
            if !taken.is_empty() {
                self.chunks.send(taken.iter().map(|w| w.body.clone()).collect()).await?;
                // Counted once sent, whatever fails after: they are on their way.
                metrics::count(Metric::ChunksReleased, &[], Some(&job.id), taken.len() as u64);
                let indexes: Vec<u64> = taken.iter().map(|w| w.index).collect();
                self.backlog.remove(&job.id, &indexes).await?;
                info!(job_id = %job.id, priority = job.priority, chunks = taken.len(), "chunks released");
                round.released.insert(job.id.clone(), taken.len());
            }
            let waiting = more || !rest.is_empty();
            if !waiting {
                self.backlog.unmark(&job.id, pushes).await?;
            }
            left.insert(job.id.clone(), waiting);
        }
        Ok(room)
    }

    /// An Active job with chunks waiting, none released, while a job of higher priority has
    /// work: Pausing, then Paused once none of its chunks runs. A Pausing or Paused job that
    /// got chunks: Active.
    async fn pause_and_resume(
        &self,
        jobs: &[(Job, u64)],
        left: &HashMap<JobId, bool>,
        round: &mut Round,
    ) -> Result<()> {
        let mut higher_busy = false;
        let mut i = 0;
        while i < jobs.len() {
            let level = jobs[i].0.priority;
            let level_jobs: Vec<&Job> =
                jobs[i..].iter().take_while(|(j, _)| j.priority == level).map(|(j, _)| j).collect();
            for job in &level_jobs {
                let got = round.released.get(&job.id).copied().unwrap_or(0);
                let waiting = left.get(&job.id).copied().unwrap_or(false);
                let to = match job.status {
                    JobStatus::Pausing | JobStatus::Paused if got > 0 => Some(JobStatus::Active),
                    JobStatus::Active if got == 0 && waiting && higher_busy => Some(JobStatus::Pausing),
                    JobStatus::Pausing if got == 0 && !self.running(&job.id).await? => Some(JobStatus::Paused),
                    _ => None,
                };
                if let Some(to) = to {
                    if transition_from(&*self.store, &*self.events, &job.id, &[job.status], to, |_| {}).await?.is_ok() {
                        info!(job_id = %job.id, priority = job.priority, status = %to, "job {}", to.as_str().to_lowercase());
                        round.moved.push((job.id.clone(), to));
                    }
                }
            }
            higher_busy |= level_jobs
                .iter()
                .any(|j| round.released.contains_key(&j.id) || left.get(&j.id).copied().unwrap_or(false));
            i += level_jobs.len();
        }
        Ok(())
    }

    /// How many more of the job's chunks may run: for a paced job, [`paced_chunks`] less
    /// those running (a released chunk not claimed yet is not seen: the executor defers a
    /// chunk claimed beyond the cap); for any other, no limit.
    async fn paced_room(&self, job: &Job) -> Result<usize> {
        let Some(cap) = paced_chunks(job) else { return Ok(usize::MAX) };
        let now = now_ms();
        let running = self.store.chunk_leases(&job.id).await?.iter().filter(|l| l.live(now)).count();
        Ok(cap.saturating_sub(running))
    }

    /// True while a chunk of the job runs.
    async fn running(&self, id: &JobId) -> Result<bool> {
        let now = now_ms();
        Ok(self.store.chunk_leases(id).await?.iter().any(|l| l.live(now)))
    }

    /// Empties the backlog of a job that will run no more chunks.
    async fn drop_backlog(&self, id: &JobId, pushes: u64) -> Result<()> {
        loop {
            let page = self.backlog.peek(id, 100).await?;
            if page.is_empty() {
                return self.backlog.unmark(id, pushes).await;
            }
            let indexes: Vec<u64> = page.iter().map(|w| w.index).collect();
            self.backlog.remove(id, &indexes).await?;
        }
    }
}
