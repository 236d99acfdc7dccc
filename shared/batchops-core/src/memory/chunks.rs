//! [`ChunkLedger`] in memory: claims, chunk and inventory-file records, and the counters they add to,
//! changed together under the store's one lock as DynamoDB's transactions change them.

use async_trait::async_trait;

use super::store::{fits_an_item, json_len, lock, InMemoryJobStore, TRANSACTION_BYTES, TRANSACTION_ITEMS};
use crate::job::JobId;
use crate::ports::{
    now_ms, ChunkLease, ChunkLedger, ChunkRecord, FileRecord, LeaseOutcome, Pass, RecordOutcome, Waiting,
};
use crate::{Error, Result};

#[async_trait]
impl ChunkLedger for InMemoryJobStore {
    async fn record_handing_on(
        &self,
        id: &JobId,
        chunk: &ChunkRecord,
        owner: &str,
        rest: &[Waiting],
    ) -> Result<RecordOutcome> {
        {
            let mut throttled = lock(&self.throttle_records);
            if *throttled > 0 {
                *throttled -= 1;
                return Err(Error::transient("TransactWriteItems", "ProvisionedThroughputExceededException"));
            }
        }
        fits_an_item("TransactWriteItems chunk", json_len(chunk))?;
        for w in rest {
            fits_an_item("TransactWriteItems backlog", w.body.len())?;
        }
        // The chunk, the counters, the claim, the runnable mark and the chunks handed on.
        let (items, bytes) = (4 + rest.len(), json_len(chunk) + rest.iter().map(|w| w.body.len()).sum::<usize>());
        if items > TRANSACTION_ITEMS || bytes > TRANSACTION_BYTES {
            return Err(Error::permanent(
                "TransactWriteItems",
                format!("ValidationException: a transaction of {items} items, {bytes} bytes exceeds DynamoDB's limits"),
            ));
        }
        let mut s = lock(&self.state);
        if s.chunks.get(id).is_some_and(|c| c.contains_key(&chunk.index)) {
            // Its owner trying again (the first answer lost) recorded it.
            let ours = s.recorders.get(&(id.clone(), chunk.index)).is_some_and(|o| o == owner);
            return Ok(if ours { RecordOutcome::Recorded } else { RecordOutcome::AlreadyRecorded });
        }
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        if job.status.is_terminal() {
            return Ok(RecordOutcome::JobClosed(job.status));
        }
        let held = s.leases.get(id).and_then(|l| l.get(&chunk.index)).is_some_and(|l| l.owner == owner);
        if !held {
            return Ok(RecordOutcome::LeaseLost);
        }
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        job.progress.succeeded += chunk.succeeded;
        job.progress.failed += chunk.failed;
        job.progress.chunks_done += 1;
        job.progress.chunks_split += rest.len() as u64;
        if !rest.is_empty() {
            let backlog = s.backlog.entry(id.clone()).or_default();
            backlog.extend(rest.iter().map(|w| (w.index, w.body.clone())));
            *s.runnable.entry(id.clone()).or_default() += 1;
        }
        s.chunks.entry(id.clone()).or_default().insert(chunk.index, chunk.clone());
        s.recorders.insert((id.clone(), chunk.index), owner.to_string());
        s.leases.entry(id.clone()).or_default().remove(&chunk.index);
        Ok(RecordOutcome::Recorded)
    }

    async fn allocate_chunks(&self, id: &JobId, n: u64) -> Result<u64> {
        let mut s = lock(&self.state);
        let next = s.allocated.entry(id.clone()).or_default();
        *next += n;
        Ok(crate::ports::SPLIT_BASE + *next - n)
    }

    async fn start_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<LeaseOutcome> {
        let mut s = lock(&self.state);
        let job = s.jobs.get(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        if !job.status.accepts_chunks() {
            return Ok(LeaseOutcome::JobClosed(job.status));
        }
        let leases = s.leases.entry(id.clone()).or_default();
        match leases.get(&lease.index) {
            Some(other) if other.owner != lease.owner && other.live(now_ms()) => {
                Ok(LeaseOutcome::Held { until_ms: other.until_ms })
            }
            _ => {
                leases.insert(lease.index, lease.clone());
                Ok(LeaseOutcome::Started)
            }
        }
    }

    async fn renew_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        let mut s = lock(&self.state);
        match s.leases.get_mut(id).and_then(|l| l.get_mut(&lease.index)) {
            Some(held) if held.owner == lease.owner => {
                held.until_ms = lease.until_ms;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_chunk(&self, id: &JobId, index: u64, owner: &str) -> Result<()> {
        let mut s = lock(&self.state);
        if let Some(leases) = s.leases.get_mut(id) {
            if leases.get(&index).is_some_and(|l| l.owner == owner) {
                leases.remove(&index);
            }
        }
        Ok(())
    }

    async fn chunk_leases(&self, id: &JobId) -> Result<Vec<ChunkLease>> {
        Ok(lock(&self.state).leases.get(id).map(|l| l.values().cloned().collect()).unwrap_or_default())
    }

    async fn reap_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        let mut s = lock(&self.state);
        let Some(leases) = s.leases.get_mut(id) else { return Ok(false) };
        if leases.get(&lease.index) != Some(lease) {
            return Ok(false);
        }
        leases.remove(&lease.index);
        Ok(true)
    }

    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool> {
        Ok(lock(&self.state).chunks.get(id).is_some_and(|c| c.contains_key(&index)))
    }

    async fn chunks_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<ChunkRecord>> {
        let s = lock(&self.state);
        let Some(chunks) = s.chunks.get(id) else { return Ok(Vec::new()) };
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(chunks.range((from, std::ops::Bound::Unbounded)).take(limit).map(|(_, c)| c.clone()).collect())
    }

    async fn record_file(&self, id: &JobId, file: &FileRecord) -> Result<RecordOutcome> {
        let mut s = lock(&self.state);
        let key = (file.pass.as_str(), file.file);
        if s.files_read.get(id).is_some_and(|p| p.contains(&key)) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        if !job.status.takes_files() {
            return Ok(RecordOutcome::JobClosed(job.status));
        }
        let counts = match file.pass {
            Pass::Count => &mut job.progress.counted,
            Pass::Cut => &mut job.progress.cut,
        };
        counts.files += 1;
        counts.tasks += file.tasks;
        counts.chunks += file.chunks;
        s.files_read.entry(id.clone()).or_default().insert(key);
        Ok(RecordOutcome::Recorded)
    }
}
