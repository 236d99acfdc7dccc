//! In-memory implementations of the ports: real backends for fast tests of the domain (and
//! the reference the AWS adapters' contract tests compare against).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};

use crate::job::{Job, JobId, JobStatus};
use crate::ports::{
    ByteStream, ChunkRecord, CreateOutcome, JobPage, JobStore, ObjectHead, ObjectStore, Queue, RecordOutcome,
    StorageError,
};
use crate::{Error, Result};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct StoreState {
    jobs: HashMap<JobId, Job>,
    tokens: HashMap<String, (JobId, String)>,
    chunks: HashMap<JobId, BTreeMap<u64, ChunkRecord>>,
}

#[derive(Default)]
pub struct InMemoryJobStore {
    state: Mutex<StoreState>,
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

    async fn list(&self, statuses: &[JobStatus], max: usize, next_token: Option<&str>) -> Result<JobPage> {
        let s = lock(&self.state);
        let mut jobs: Vec<Job> =
            s.jobs.values().filter(|j| statuses.is_empty() || statuses.contains(&j.status)).cloned().collect();
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
            return Err(Error::StatusConflict {
                job_id: job.id.clone(),
                actual: stored.status,
                message: "the job was changed by another writer".into(),
            });
        }
        let mut next = job.clone();
        next.version += 1;
        // Counters belong to record_chunk alone.
        next.progress.succeeded = stored.progress.succeeded;
        next.progress.failed = stored.progress.failed;
        next.progress.chunks_done = stored.progress.chunks_done;
        *stored = next.clone();
        Ok(next)
    }

    async fn record_chunk(&self, id: &JobId, chunk: &ChunkRecord) -> Result<RecordOutcome> {
        let mut s = lock(&self.state);
        if s.chunks.get(id).is_some_and(|c| c.contains_key(&chunk.index)) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        let job = s.jobs.get_mut(id).ok_or_else(|| Error::JobNotFound { job_id: id.clone() })?;
        if !job.status.accepts_chunks() {
            return Ok(RecordOutcome::JobClosed(job.status));
        }
        job.progress.succeeded += chunk.succeeded;
        job.progress.failed += chunk.failed;
        job.progress.chunks_done += 1;
        s.chunks.entry(id.clone()).or_default().insert(chunk.index, chunk.clone());
        Ok(RecordOutcome::Recorded)
    }

    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool> {
        Ok(lock(&self.state).chunks.get(id).is_some_and(|c| c.contains_key(&index)))
    }

    async fn chunks(&self, id: &JobId) -> Result<Vec<ChunkRecord>> {
        Ok(lock(&self.state).chunks.get(id).map(|c| c.values().cloned().collect()).unwrap_or_default())
    }
}

/// A FIFO queue of message bodies.
#[derive(Default)]
pub struct InMemoryQueue {
    messages: Mutex<VecDeque<String>>,
}

impl InMemoryQueue {
    pub fn pop(&self) -> Option<String> {
        lock(&self.messages).pop_front()
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
}

/// Objects by (bucket, key), with S3-style ETags (MD5 hex of the body).
#[derive(Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<HashMap<(String, String), Bytes>>,
    /// Bytes per piece when streaming, to exercise readers on small pieces.
    pub piece_size: Option<usize>,
}

impl InMemoryObjectStore {
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> String {
        let body = body.into();
        let etag = hex::encode(Md5::digest(&body));
        lock(&self.objects).insert((bucket.into(), key.into()), body);
        etag
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.objects).get(&(bucket.to_string(), key.to_string())).cloned()
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
        Ok(ObjectHead { etag: hex::encode(Md5::digest(&body)), size: body.len() as u64 })
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

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        lock(&self.objects).remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }
}
