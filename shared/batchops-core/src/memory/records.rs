//! [`JobRecords`] in memory: the job records, their request tokens and the sweep's sightings.

use async_trait::async_trait;

use super::store::{lock, InMemoryJobStore};
use crate::job::{Job, JobId};
use crate::ports::{CreateOutcome, JobFilter, JobPage, JobRecords, Sighting};
use crate::{Error, Result};

#[async_trait]
impl JobRecords for InMemoryJobStore {
    async fn create(&self, job: &Job, token: &str, request_hash: &str) -> Result<CreateOutcome> {
        let mut s = lock(&self.state);
        if let Some((id, hash)) = s.tokens.get(token) {
            return Ok(if hash == request_hash {
                CreateOutcome::Existing(id.clone())
            } else {
                CreateOutcome::Conflict
            });
        }
        s.tokens.insert(token.to_string(), (job.id.clone(), request_hash.to_string()));
        s.jobs.insert(job.id.clone(), job.clone());
        Ok(CreateOutcome::Created)
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        lock(&self.state).jobs.get(id).cloned().ok_or_else(|| Error::JobNotFound { job_id: id.clone() })
    }

    async fn list(&self, filter: &JobFilter<'_>, max: usize, next_token: Option<&str>) -> Result<JobPage> {
        let s = lock(&self.state);
        let mut jobs: Vec<Job> = s.jobs.values().filter(|j| filter.matches(j)).cloned().collect();
        jobs.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        let start = match next_token {
            Some(t) => t.parse::<usize>().map_err(|_| Error::field("nextToken", "is not a token this API gave"))?,
            None => 0,
        };
        let page: Vec<Job> = jobs.iter().skip(start).take(max).cloned().collect();
        let next = (start + page.len() < jobs.len() && max > 0).then(|| (start + page.len()).to_string());
        Ok(JobPage { jobs: page, next_token: next })
    }

    async fn put(&self, job: &Job) -> Result<Job> {
        let mut s = lock(&self.state);
        let stored = s.jobs.get_mut(&job.id).ok_or_else(|| Error::JobNotFound { job_id: job.id.clone() })?;
        if stored.version != job.version {
            return Err(Error::Conflict { job_id: job.id.clone() });
        }
        let mut next = job.clone();
        next.version += 1;
        // Counters belong to record_chunk alone.
        next.progress.succeeded = stored.progress.succeeded;
        next.progress.failed = stored.progress.failed;
        next.progress.chunks_done = stored.progress.chunks_done;
        next.progress.chunks_split = stored.progress.chunks_split;
        next.progress.counted = stored.progress.counted.clone();
        next.progress.cut = stored.progress.cut.clone();
        next.throttled = stored.throttled.clone();
        *stored = next.clone();
        drop(s);
        if lock(&self.lose_put_answers).as_ref().is_some_and(|lost| lost(&next)) {
            return Err(Error::Conflict { job_id: job.id.clone() });
        }
        Ok(next)
    }

    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()> {
        let mut s = lock(&self.state);
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        job.throttled.insert(bucket.to_string(), at_ms);
        Ok(())
    }

    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>> {
        Ok(lock(&self.state).sightings.get(id).cloned())
    }

    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()> {
        lock(&self.state).sightings.insert(id.clone(), sighting.clone());
        Ok(())
    }
}
