//! [`Backlog`] in memory: the chunks waiting by job, the runnable marks and the dispatcher's
//! lock (on tokio's clock, so a paused or simulated one lets the lock lapse as it says).

use async_trait::async_trait;

use super::store::{lock, InMemoryJobStore};
use crate::job::JobId;
use crate::ports::{Backlog, Waiting};
use crate::Result;

#[async_trait]
impl Backlog for InMemoryJobStore {
    async fn push(&self, job: &JobId, chunks: Vec<Waiting>) -> Result<()> {
        let mut s = lock(&self.state);
        let backlog = s.backlog.entry(job.clone()).or_default();
        for w in chunks {
            backlog.insert(w.index, w.body);
        }
        *s.runnable.entry(job.clone()).or_default() += 1;
        Ok(())
    }

    async fn runnable(&self) -> Result<Vec<(JobId, u64)>> {
        Ok(lock(&self.state).runnable.iter().map(|(j, n)| (j.clone(), *n)).collect())
    }

    async fn peek(&self, job: &JobId, n: usize) -> Result<Vec<Waiting>> {
        let s = lock(&self.state);
        Ok(s.backlog
            .get(job)
            .map(|b| b.iter().take(n).map(|(i, body)| Waiting { index: *i, body: body.clone() }).collect())
            .unwrap_or_default())
    }

    async fn remove(&self, job: &JobId, indexes: &[u64]) -> Result<()> {
        if let Some(b) = lock(&self.state).backlog.get_mut(job) {
            for i in indexes {
                b.remove(i);
            }
        }
        Ok(())
    }

    async fn unmark(&self, job: &JobId, pushes: u64) -> Result<()> {
        let mut s = lock(&self.state);
        if s.runnable.get(job) == Some(&pushes) {
            s.runnable.remove(job);
        }
        Ok(())
    }

    async fn lock(&self, holder: &str, hold: std::time::Duration) -> Result<bool> {
        let mut s = lock(&self.state);
        // The pipeline's clock: a paused or simulated one lets the lock lapse as it says.
        let now = tokio::time::Instant::now();
        match &s.dispatch_lock {
            Some((h, until)) if h != holder && *until > now => Ok(false),
            _ => {
                s.dispatch_lock = Some((holder.to_string(), now + hold));
                Ok(true)
            }
        }
    }

    async fn unlock(&self, holder: &str) -> Result<()> {
        let mut s = lock(&self.state);
        if s.dispatch_lock.as_ref().is_some_and(|(h, _)| h == holder) {
            s.dispatch_lock = None;
        }
        Ok(())
    }
}
