//! DynamoDB's faults the pipeline must live with, around the in-memory store (which keeps
//! DynamoDB's semantics: conditional writes, transactions, 1 MB pages are the adapter's and
//! are tested against moto): throttling, and a write applied whose answer is lost (a timeout
//! after the table took it), each as the seed says. The intake's own calls go to the store
//! directly: a CreateJob refused is the caller's to retry.

use std::sync::Arc;

use async_trait::async_trait;
use batchops_core::job::{Job, JobId};
use batchops_core::memory::InMemoryJobStore;
use batchops_core::ports::{
    Backlog, ChunkLease, ChunkLedger, ChunkRecord, CreateOutcome, FileRecord, JobFilter, JobPage, JobRecords,
    LeaseOutcome, RecordOutcome, ReportLedger, SegmentRecord, Sighting, Waiting,
};
use batchops_core::{Error, Result};

use crate::rng::Rng;

/// The AWS SDK's attempts of a request (standard retry mode).
const SDK_ATTEMPTS: u32 = 3;

pub struct FlakyStore {
    pub inner: Arc<InMemoryJobStore>,
    rng: Rng,
    /// DynamoDB's latency and per-item capacity (`make sim-scale`); none in `make sim`.
    model: Option<Arc<crate::scale::aws::Dynamo>>,
    /// Chance that a request is throttled (not applied).
    throttled: f64,
    /// Chance that a write is applied and its answer lost.
    lost: f64,
}

impl FlakyStore {
    pub fn new(inner: Arc<InMemoryJobStore>, rng: Rng, throttled: f64, lost: f64) -> FlakyStore {
        FlakyStore { inner, rng, throttled, lost, model: None }
    }

    /// The same store answering at DynamoDB's latency, each item within its capacity.
    pub fn modelled(mut self, model: Arc<crate::scale::aws::Dynamo>) -> FlakyStore {
        self.model = Some(model);
        self
    }

    /// Before a request: its latency and its turn at the items it touches (the model's),
    /// then throttled as the seed says, on each of the SDK's three attempts (its standard
    /// retry mode) before the adapter sees it.
    async fn before(&self, what: &str) -> Result<()> {
        if let Some(model) = &self.model {
            model.request(what).await;
        }
        if (0..SDK_ATTEMPTS).all(|_| self.rng.chance(self.throttled)) {
            return Err(Error::transient(what, "ProvisionedThroughputExceededException (simulated)"));
        }
        Ok(())
    }

    /// After a write that was applied: its answer lost as the seed says.
    fn after<T>(&self, what: &str, result: Result<T>) -> Result<T> {
        match result {
            Ok(_) if self.rng.chance(self.lost) => {
                Err(Error::transient(what, "the answer was lost (simulated timeout)"))
            }
            other => other,
        }
    }
}

/// A read: throttled, then asked.
macro_rules! read {
    ($self:ident, $what:literal, $call:expr) => {{
        $self.before($what).await?;
        $call.await
    }};
}

/// A write: throttled, or applied and its answer lost.
macro_rules! write {
    ($self:ident, $what:literal, $call:expr) => {{
        $self.before($what).await?;
        let result = $call.await;
        $self.after($what, result)
    }};
}

#[async_trait]
impl JobRecords for FlakyStore {
    async fn create(&self, job: &Job, token: &str, request_hash: &str) -> Result<CreateOutcome> {
        self.inner.create(job, token, request_hash).await
    }
    async fn get(&self, id: &JobId) -> Result<Job> {
        read!(self, "GetItem", self.inner.get(id))
    }
    async fn list(&self, filter: &JobFilter<'_>, max: usize, next_token: Option<&str>) -> Result<JobPage> {
        read!(self, "Query jobs", self.inner.list(filter, max, next_token))
    }
    async fn put(&self, job: &Job) -> Result<Job> {
        // A put whose answer is lost meets its own condition when the SDK tries it again:
        // Conflict, as the adapter answers it.
        self.before("UpdateItem").await?;
        let result = self.inner.put(job).await;
        match result {
            Ok(_) if self.rng.chance(self.lost) => Err(Error::Conflict { job_id: job.id.clone() }),
            other => other,
        }
    }
    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()> {
        write!(self, "UpdateItem throttle", self.inner.note_throttle(id, bucket, at_ms))
    }
    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>> {
        read!(self, "GetItem sighting", self.inner.sighting(id))
    }
    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()> {
        write!(self, "PutItem sighting", self.inner.put_sighting(id, sighting))
    }
}

#[async_trait]
impl ChunkLedger for FlakyStore {
    async fn record_handing_on(
        &self,
        id: &JobId,
        chunk: &ChunkRecord,
        owner: &str,
        rest: &[Waiting],
    ) -> Result<RecordOutcome> {
        write!(self, "TransactWriteItems record", self.inner.record_handing_on(id, chunk, owner, rest))
    }
    async fn allocate_chunks(&self, id: &JobId, n: u64) -> Result<u64> {
        write!(self, "UpdateItem split_seq", self.inner.allocate_chunks(id, n))
    }
    async fn start_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<LeaseOutcome> {
        write!(self, "TransactWriteItems claim", self.inner.start_chunk(id, lease))
    }
    async fn renew_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        write!(self, "UpdateItem claim", self.inner.renew_chunk(id, lease))
    }
    async fn release_chunk(&self, id: &JobId, index: u64, owner: &str) -> Result<()> {
        write!(self, "DeleteItem claim", self.inner.release_chunk(id, index, owner))
    }
    async fn chunk_leases(&self, id: &JobId) -> Result<Vec<ChunkLease>> {
        read!(self, "Query claims", self.inner.chunk_leases(id))
    }
    async fn reap_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        write!(self, "DeleteItem claim", self.inner.reap_chunk(id, lease))
    }
    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool> {
        read!(self, "GetItem chunk", self.inner.chunk_recorded(id, index))
    }
    async fn chunks_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<ChunkRecord>> {
        read!(self, "Query chunks", self.inner.chunks_after(id, after, limit))
    }
    async fn record_file(&self, id: &JobId, part: &FileRecord) -> Result<RecordOutcome> {
        write!(self, "TransactWriteItems part", self.inner.record_file(id, part))
    }
}

#[async_trait]
impl ReportLedger for FlakyStore {
    async fn record_segment(&self, id: &JobId, segment: &SegmentRecord) -> Result<bool> {
        write!(self, "PutItem segment", self.inner.record_segment(id, segment))
    }
    async fn segments_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<SegmentRecord>> {
        read!(self, "Query segments", self.inner.segments_after(id, after, limit))
    }
}

#[async_trait]
impl Backlog for FlakyStore {
    async fn push(&self, job: &JobId, chunks: Vec<Waiting>) -> Result<()> {
        write!(self, "BatchWriteItem backlog", self.inner.push(job, chunks))
    }
    async fn runnable(&self) -> Result<Vec<(JobId, u64)>> {
        read!(self, "Query runnable", self.inner.runnable())
    }
    async fn peek(&self, job: &JobId, n: usize) -> Result<Vec<Waiting>> {
        read!(self, "Query backlog", self.inner.peek(job, n))
    }
    async fn remove(&self, job: &JobId, indexes: &[u64]) -> Result<()> {
        write!(self, "BatchWriteItem backlog", self.inner.remove(job, indexes))
    }
    async fn unmark(&self, job: &JobId, pushes: u64) -> Result<()> {
        write!(self, "DeleteItem runnable", self.inner.unmark(job, pushes))
    }
    async fn lock(&self, holder: &str, hold: std::time::Duration) -> Result<bool> {
        write!(self, "PutItem lock", self.inner.lock(holder, hold))
    }
    async fn unlock(&self, holder: &str) -> Result<()> {
        write!(self, "DeleteItem lock", self.inner.unlock(holder))
    }
}
