//! In-memory implementations of the ports: real backends for fast tests of the domain (and
//! the reference the AWS adapters' contract tests compare against).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};

use crate::job::{Job, JobId};
use crate::ops::replicate_object::ReplicationRule;
use crate::ports::{
    now_ms, Backlog, ByteStream, ChunkLease, ChunkRecord, CreateOutcome, JobFilter, JobPage, JobPorts, JobStore,
    LeaseOutcome, ListPage, ListRequest, ListedObject, ObjectHead, ObjectStore, OperationRunner, PartRecord, Pass,
    PassRoleCheck, PutOptions, Queue, RecordOutcome, RoleAccess, RoleError, SegmentRecord, Sighting, StorageError,
    Waiting,
};
use crate::ports::{DeadLetter, DeadLetters};
use crate::{Error, Result};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// DynamoDB's largest item. The store refuses a record larger than that as DynamoDB does, so
/// what would fail there fails in every test and simulation too.
pub const ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's largest transaction (TransactWriteItems).
pub const TRANSACTION_ITEMS: usize = 100;
pub const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

fn fits_an_item(what: &str, bytes: usize) -> Result<()> {
    match bytes > ITEM_BYTES {
        true => Err(Error::permanent(
            what,
            format!("ValidationException: Item size has exceeded the maximum allowed size ({bytes} bytes)"),
        )),
        false => Ok(()),
    }
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_string(value).map_or(0, |j| j.len())
}

#[derive(Default)]
struct StoreState {
    jobs: HashMap<JobId, Job>,
    tokens: HashMap<String, (JobId, String)>,
    chunks: HashMap<JobId, BTreeMap<u64, ChunkRecord>>,
    segments: HashMap<JobId, BTreeMap<u64, SegmentRecord>>,
    /// The delivery that recorded each chunk.
    recorders: HashMap<(JobId, u64), String>,
    parts: HashMap<JobId, std::collections::HashSet<(&'static str, u64)>>,
    leases: HashMap<JobId, BTreeMap<u64, ChunkLease>>,
    backlog: HashMap<JobId, BTreeMap<u64, String>>,
    runnable: BTreeMap<JobId, u64>,
    dispatch_lock: Option<(String, tokio::time::Instant)>,
    sightings: HashMap<JobId, Sighting>,
    /// Chunk indexes given out for chunks handed on, by job.
    allocated: HashMap<JobId, u64>,
}

/// Which job writes apply but answer [`Error::Conflict`], as a DynamoDB put whose answer was
/// lost answers its SDK retry (tests of the hardest fault: did my write happen?).
pub type LostAnswers = Box<dyn Fn(&Job) -> bool + Send + Sync>;

#[derive(Default)]
pub struct InMemoryJobStore {
    state: Mutex<StoreState>,
    /// Set by tests: the puts whose answers are lost.
    pub lose_put_answers: Mutex<Option<LostAnswers>>,
    /// Set by tests: how many of the next chunk records are throttled (not applied).
    pub throttle_records: Mutex<u32>,
}

#[async_trait]
impl JobStore for InMemoryJobStore {
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

    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()> {
        let mut s = lock(&self.state);
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        job.throttled.insert(bucket.to_string(), at_ms);
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

    async fn record_part(&self, id: &JobId, part: &PartRecord) -> Result<RecordOutcome> {
        let mut s = lock(&self.state);
        let key = (part.pass.as_str(), part.part);
        if s.parts.get(id).is_some_and(|p| p.contains(&key)) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        if !job.status.takes_parts() {
            return Ok(RecordOutcome::JobClosed(job.status));
        }
        let counts = match part.pass {
            Pass::Count => &mut job.progress.counted,
            Pass::Cut => &mut job.progress.cut,
        };
        counts.parts += 1;
        counts.tasks += part.tasks;
        counts.chunks += part.chunks;
        s.parts.entry(id.clone()).or_default().insert(key);
        Ok(RecordOutcome::Recorded)
    }

    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>> {
        Ok(lock(&self.state).sightings.get(id).cloned())
    }

    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()> {
        lock(&self.state).sightings.insert(id.clone(), sighting.clone());
        Ok(())
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

    async fn record_segment(&self, id: &JobId, segment: &SegmentRecord) -> Result<bool> {
        fits_an_item("PutItem segment", json_len(segment))?;
        let mut s = lock(&self.state);
        let segments = s.segments.entry(id.clone()).or_default();
        if segments.contains_key(&segment.index) {
            return Ok(false);
        }
        segments.insert(segment.index, segment.clone());
        Ok(true)
    }

    async fn segments_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<SegmentRecord>> {
        let s = lock(&self.state);
        let Some(segments) = s.segments.get(id) else { return Ok(Vec::new()) };
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(segments.range((from, std::ops::Bound::Unbounded)).take(limit).map(|(_, c)| c.clone()).collect())
    }
}

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

/// A FIFO queue of message bodies. Read as a dead-letter queue ([`DeadLetters`]), a letter
/// received is in flight until deleted (receipts `r1`, `r2`, ...).
#[derive(Default)]
pub struct InMemoryQueue {
    messages: Mutex<VecDeque<String>>,
    in_flight: Mutex<(u64, BTreeMap<String, String>)>,
}

impl InMemoryQueue {
    pub fn pop(&self) -> Option<String> {
        lock(&self.messages).pop_front()
    }

    /// Letters received and not deleted.
    pub fn in_flight(&self) -> usize {
        lock(&self.in_flight).1.len()
    }

    pub fn len(&self) -> usize {
        lock(&self.messages).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Queue for InMemoryQueue {
    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        lock(&self.messages).extend(bodies);
        Ok(())
    }

    async fn depth(&self) -> Result<u64> {
        Ok(self.len() as u64)
    }
}

#[async_trait]
impl DeadLetters for InMemoryQueue {
    async fn receive(&self, max: usize) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        let mut in_flight = lock(&self.in_flight);
        while out.len() < max {
            let Some(body) = self.pop() else { break };
            in_flight.0 += 1;
            let receipt = format!("r{}", in_flight.0);
            in_flight.1.insert(receipt.clone(), body.clone());
            out.push(DeadLetter { body, receipt });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        lock(&self.in_flight).1.remove(receipt);
        Ok(())
    }
}

/// Objects by (bucket, key), with S3-style ETags (MD5 hex of the body) and the time they
/// were written. Buckets are unversioned and have no replication configuration.
#[derive(Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<HashMap<(String, String), (Bytes, time::OffsetDateTime)>>,
    /// Multipart uploads in progress: parts by upload ID.
    uploads: Mutex<HashMap<String, BTreeMap<i32, Bytes>>>,
    /// Bytes per piece when streaming, to exercise readers on small pieces.
    pub piece_size: Option<usize>,
}

impl InMemoryObjectStore {
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> String {
        let body = body.into();
        let etag = hex::encode(Md5::digest(&body));
        lock(&self.objects).insert((bucket.into(), key.into()), (body, crate::clock::now()));
        etag
    }

    pub fn remove(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string())).map(|(b, _)| b)
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.objects).get(&(bucket.to_string(), key.to_string())).map(|(b, _)| b.clone())
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut v: Vec<String> =
            lock(&self.objects).keys().filter(|(b, _)| b == bucket).map(|(_, k)| k.clone()).collect();
        v.sort();
        v
    }

    fn not_found(key: &str) -> StorageError {
        StorageError { http_status: 404, code: "NoSuchKey".into(), message: format!("{key} does not exist") }
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjectStore {
    async fn head(&self, bucket: &str, key: &str, _version_id: Option<&str>) -> Result<ObjectHead, StorageError> {
        let body = self.get(bucket, key).ok_or_else(|| Self::not_found(key))?;
        Ok(ObjectHead { etag: hex::encode(Md5::digest(&body)), size: body.len() as u64, ..Default::default() })
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        start: u64,
        end: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<ByteStream, StorageError> {
        let body = self.get(bucket, key).ok_or_else(|| Self::not_found(key))?;
        if let Some(etag) = if_match {
            if etag != hex::encode(Md5::digest(&body)) {
                return Err(StorageError {
                    http_status: 412,
                    code: "PreconditionFailed".into(),
                    message: "ETag".into(),
                });
            }
        }
        let end = end.unwrap_or(body.len() as u64).min(body.len() as u64) as usize;
        let slice = body.slice((start as usize).min(end)..end);
        let piece = self.piece_size.unwrap_or(64 * 1024).max(1);
        let pieces: Vec<std::result::Result<Bytes, StorageError>> =
            (0..slice.len()).step_by(piece).map(|i| Ok(slice.slice(i..(i + piece).min(slice.len())))).collect();
        Ok(Box::pin(futures::stream::iter(pieces)))
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes, _content_type: &str) -> Result<(), StorageError> {
        self.insert(bucket, key, body);
        Ok(())
    }

    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        _options: &PutOptions<'_>,
    ) -> Result<String, StorageError> {
        Ok(self.insert(bucket, key, body))
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }

    async fn start_upload(&self, _: &str, _: &str, _: &str) -> Result<String, StorageError> {
        let id = crate::clock::uuid().to_string();
        lock(&self.uploads).insert(id.clone(), BTreeMap::new());
        Ok(id)
    }

    async fn upload_part(
        &self,
        _: &str,
        _: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let etag = hex::encode(Md5::digest(&body));
        let mut uploads = lock(&self.uploads);
        let parts = uploads.get_mut(upload_id).ok_or_else(|| Self::not_found(upload_id))?;
        parts.insert(number, body);
        Ok(etag)
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), StorageError> {
        let stored = lock(&self.uploads).remove(upload_id).ok_or_else(|| Self::not_found(upload_id))?;
        let last = parts.len().saturating_sub(1);
        let mut body = Vec::new();
        for (i, (n, etag)) in parts.iter().enumerate() {
            let part = stored.get(n).ok_or_else(|| Self::not_found(&format!("part {n}")))?;
            if *etag != hex::encode(Md5::digest(part)) || (i < last && part.len() < 5 * 1024 * 1024) {
                return Err(StorageError {
                    http_status: 400,
                    code: "InvalidPart".into(),
                    message: format!("part {n}"),
                });
            }
            body.extend_from_slice(part);
        }
        self.insert(bucket, key, body);
        Ok(())
    }

    async fn abort_upload(&self, _: &str, _: &str, upload_id: &str) -> Result<(), StorageError> {
        lock(&self.uploads).remove(upload_id);
        Ok(())
    }

    /// Pages of 1,000 keys in key order; the token is the last key of the previous page.
    async fn list(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        let objects = lock(&self.objects);
        let mut keys: Vec<(&String, &(Bytes, time::OffsetDateTime))> = objects
            .iter()
            .filter(|((b, k), _)| {
                b == req.bucket && k.starts_with(req.prefix) && req.token.is_none_or(|t| k.as_str() > t)
            })
            .map(|((_, k), v)| (k, v))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let more = keys.len() > 1000;
        keys.truncate(1000);
        let listed: Vec<ListedObject> = keys
            .into_iter()
            .map(|(k, (body, modified))| ListedObject {
                key: k.clone(),
                version_id: req.versions.then(|| "null".to_string()),
                is_latest: true,
                is_delete_marker: false,
                size: body.len() as u64,
                last_modified: Some(*modified),
                etag: hex::encode(Md5::digest(body)),
                storage_class: "STANDARD".into(),
            })
            .collect();
        let next = if more { listed.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage { objects: listed, next })
    }

    async fn versioned(&self, _bucket: &str) -> Result<bool, StorageError> {
        Ok(false)
    }

    async fn replication_rules(&self, _bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        Ok(Vec::new())
    }

    async fn tags(&self, _: &str, _: &str, _: Option<&str>) -> Result<Vec<(String, String)>, StorageError> {
        Ok(Vec::new())
    }

    async fn presign_get(&self, bucket: &str, key: &str, _: std::time::Duration) -> Result<String, StorageError> {
        Ok(format!("memory://{bucket}/{key}"))
    }
}

/// Roles in memory: every role gives the same ports, except the roles named in `refused`
/// (STS's AccessDenied) and `throttled` (a transient error). Records who assumed what.
pub struct InMemoryRoles {
    ports: JobPorts,
    pub refused: Mutex<std::collections::HashSet<String>>,
    pub throttled: Mutex<std::collections::HashSet<String>>,
    pub assumed: Mutex<Vec<(JobId, String)>>,
}

impl InMemoryRoles {
    pub fn new(objects: Arc<dyn ObjectStore>, runner: Arc<dyn OperationRunner>) -> Self {
        InMemoryRoles {
            ports: JobPorts { objects, runner },
            refused: Mutex::default(),
            throttled: Mutex::default(),
            assumed: Mutex::default(),
        }
    }
}

#[async_trait]
impl RoleAccess for InMemoryRoles {
    async fn assume(&self, job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError> {
        let error = |code: &str, transient| RoleError {
            role: role_arn.to_string(),
            code: code.into(),
            message: format!("not authorized to perform sts:AssumeRole on resource {role_arn}"),
            transient,
        };
        if lock(&self.refused).contains(role_arn) {
            return Err(error("AccessDenied", false));
        }
        if lock(&self.throttled).contains(role_arn) {
            return Err(error("Throttling", true));
        }
        lock(&self.assumed).push((job.clone(), role_arn.to_string()));
        Ok(self.ports.clone())
    }
}

/// Refuses every role: for intake tests that never act as a job's role.
pub struct NoRoles;

#[async_trait]
impl RoleAccess for NoRoles {
    async fn assume(&self, _job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError> {
        Err(RoleError {
            role: role_arn.to_string(),
            code: "AccessDenied".into(),
            message: "no role may be assumed here".into(),
            transient: false,
        })
    }
}

/// `iam:PassRole` grants in memory: (caller ARN, role ARN) pairs.
#[derive(Default)]
pub struct InMemoryPassRole {
    pub grants: Mutex<std::collections::HashSet<(String, String)>>,
}

#[async_trait]
impl PassRoleCheck for InMemoryPassRole {
    async fn may_pass(&self, caller: &str, role_arn: &str) -> Result<bool> {
        Ok(lock(&self.grants).contains(&(caller.to_string(), role_arn.to_string())))
    }
}
