//! The ports: how the domain reaches job storage, queues, object storage and the operations.
//! `batchops-aws` implements them with DynamoDB, SQS and S3; [`crate::memory`] in memory.
//! They carry domain types only, never SDK types.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::fields::OutputEncryption;
use crate::job::JobFailure;
use crate::job::{Job, JobId, JobStatus};
use crate::ops::replicate_object::ReplicationRule;
use crate::ops::{BucketCheck, Operation, Task};
use crate::retry::Outcome;
use crate::Result;

pub use crate::objects::{ListPage, ListedObject, ObjectHead, ObjectRef, StorageError};

/// Outcome of [`JobRecords::create`].
#[derive(Debug, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// The token was used before with the same request: that job.
    Existing(JobId),
    /// The token was used before with another request.
    Conflict,
}

/// Which jobs ListJobs returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobFilter<'a> {
    /// Only these statuses, when not empty.
    pub statuses: &'a [JobStatus],
    /// Only the jobs of this account (S3 Control requests name theirs), when given.
    pub account: Option<&'a str>,
    /// Only jobs that have not ended, read where only those are (DynamoDB: the sparse
    /// `open-jobs` index, whose cost does not grow with the jobs that ended). A job last
    /// written before that index existed is not there until its next write: the sweep reads
    /// every job once an hour for those.
    pub open: bool,
}

impl JobFilter<'_> {
    pub fn matches(&self, job: &Job) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&job.status))
            && self.account.is_none_or(|a| job.account() == a)
            && !(self.open && job.status.is_terminal())
    }
}

/// One page of ListJobs.
#[derive(Debug)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_token: Option<String>,
}

/// A result file of the completion report, written by the executor for one chunk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResultFile {
    pub key: String,
    /// `succeeded` or `failed`, as the report manifest's TaskExecutionStatus.
    pub status: String,
    pub md5: String,
    pub rows: u64,
}

/// Indexes of chunks handed on start here, far above any the chunker cuts (an inventory's
/// are `part << 32 | n`).
pub const SPLIT_BASE: u64 = 1 << 62;

/// What the executor records, once, when a chunk is done.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkRecord {
    pub index: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub files: Vec<ResultFile>,
}

/// The consolidated result files of a run of consecutive recorded chunks: a job of many chunks
/// reports these instead of each chunk's files (see `pipeline::report_files`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRecord {
    pub index: u64,
    pub files: Vec<ResultFile>,
}

/// Outcome of [`ChunkLedger::record_chunk`].
#[derive(Debug, PartialEq)]
pub enum RecordOutcome {
    Recorded,
    /// Another delivery of the same chunk was recorded first: nothing changed.
    AlreadyRecorded,
    /// The job has ended (or, for a part, is no longer prepared): nothing changed.
    JobClosed(JobStatus),
    /// The delivery's claim on the chunk had expired and was taken away (the finalizer
    /// reaped it, or another delivery took it over): nothing changed.
    LeaseLost,
}

/// One delivery's claim on a chunk while it runs its tasks. The finalizer of a cancelled or
/// failed job waits until no live claim is left, so every task that ran is in the report;
/// the claim is renewed by a heartbeat and lapses when its worker dies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLease {
    pub index: u64,
    /// Unique per delivery.
    pub owner: String,
    /// Unix time in milliseconds until which the claim holds.
    pub until_ms: u64,
}

impl ChunkLease {
    pub fn live(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

pub use crate::clock::now_ms;

/// Outcome of [`ChunkLedger::start_chunk`].
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    Started,
    /// Another delivery holds a live claim until then (Unix milliseconds).
    Held {
        until_ms: u64,
    },
    /// The job starts no chunk in this status.
    JobClosed(JobStatus),
}

/// The passes over a manifest read in parts (inventory files read in parallel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Count only (a job that waits for confirmation).
    Count,
    /// Cut the chunks and send them.
    Cut,
}

impl Pass {
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Count => "count",
            Pass::Cut => "cut",
        }
    }
}

/// What a chunker records, once, when it has read one inventory file of a manifest ("part"
/// is kept for multipart uploads: a file is a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub pass: Pass,
    /// The file's index in the inventory's `manifest.json`.
    pub file: u64,
    pub tasks: u64,
    pub chunks: u64,
}

/// What the sweep last saw of a job (see [`crate::pipeline::sweep`]): a job that looks the
/// same for too long is stalled, whatever message was meant to move it on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sighting {
    /// A digest of the job's status, version and counters.
    pub fingerprint: u64,
    /// Unix ms since which the job has looked like this (or since the sweep last acted on it).
    pub since_ms: u64,
    /// Steps the sweep took for the job while it looked like this.
    pub nudges: u32,
}

/// The job records themselves: one record per job, written whole and conditionally on its
/// version, and the sweep's notes beside it. Intake and every status change
/// ([`crate::pipeline::transition`]) need no more than this; the counters in a record are
/// written by the ledgers ([`ChunkLedger`]), never here.
#[async_trait]
pub trait JobRecords: Send + Sync {
    /// Stores a new job unless `token` (the account's ClientRequestToken, `<account>#<token>`)
    /// was used before: CreateJob is idempotent.
    async fn create(&self, job: &Job, token: &str, request_hash: &str) -> Result<CreateOutcome>;
    /// Reads a job with strong consistency; `Error::JobNotFound` when there is none.
    async fn get(&self, id: &JobId) -> Result<Job>;
    /// Jobs newest first that `filter` matches: `max` of them unless the jobs run out first.
    async fn list(&self, filter: &JobFilter<'_>, max: usize, next_token: Option<&str>) -> Result<JobPage>;
    /// Writes `job` (all but its counters) if the stored version is still `job.version`;
    /// returns the job as stored, with its version bumped. `Error::Conflict` when
    /// another writer changed it first.
    async fn put(&self, job: &Job) -> Result<Job>;
    /// Records that an executor of the job was throttled on `bucket` at `at_ms` (Unix ms), so
    /// its other executors slow down too ([`Job::throttled`]). Beside the version: it
    /// conflicts with no [`JobRecords::put`].
    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()>;
    /// What the sweep last saw of the job; `None` before its first look.
    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>>;
    /// Keeps what the sweep saw (one sweep runs at a time: a plain write).
    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()>;
}

/// The ledger of a job's work: the claims on chunks running, and the records of chunks run
/// and manifest parts read. Every record is written at most once and adds its counts to the
/// job's counters in the same atomic write, so a message delivered twice counts once: the
/// chunker and the executor write here, the finalizer and the sweep read it.
#[async_trait]
pub trait ChunkLedger: Send + Sync {
    /// Records a chunk as done, adds its counts to the job and ends the claim `owner` holds
    /// on it, atomically and at most once; only while the claim is held and the job has not
    /// ended (a cancelled or failing job still records the chunks that ran).
    async fn record_chunk(&self, id: &JobId, chunk: &ChunkRecord, owner: &str) -> Result<RecordOutcome> {
        self.record_handing_on(id, chunk, owner, &[]).await
    }
    /// [`ChunkLedger::record_chunk`] of a chunk that ran part of its tasks, in the same
    /// transaction handing the rest on as new chunks (`rest`, indexes from
    /// [`ChunkLedger::allocate_chunks`]) into the job's backlog, counted in `chunks_split`: a
    /// task is in the record or in the rest, never in both or neither.
    async fn record_handing_on(
        &self,
        id: &JobId,
        chunk: &ChunkRecord,
        owner: &str,
        rest: &[Waiting],
    ) -> Result<RecordOutcome>;
    /// `n` chunk indexes no chunk of the job has had, for chunks handed on; returns the first.
    async fn allocate_chunks(&self, id: &JobId, n: u64) -> Result<u64>;
    /// Claims a chunk for one delivery, while the job starts chunks
    /// ([`JobStatus::accepts_chunks`]) and no other delivery holds a live claim on it.
    async fn start_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<LeaseOutcome>;
    /// Extends a claim; false when it was lost (reaped or taken over).
    async fn renew_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool>;
    /// Ends a claim without recording the chunk (the delivery gives the chunk back).
    async fn release_chunk(&self, id: &JobId, index: u64, owner: &str) -> Result<()>;
    /// Every claim on the job's chunks, live or lapsed.
    async fn chunk_leases(&self, id: &JobId) -> Result<Vec<ChunkLease>>;
    /// Removes a lapsed claim (if it is still exactly `lease`), so its late worker can no
    /// longer record the chunk once the report is being written. False when it was not
    /// (renewed by its worker, released, or ended by the chunk's record).
    async fn reap_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool>;
    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool>;
    /// Up to `limit` recorded chunks with an index above `after`, in index order: the
    /// finalizer reads a job's chunks page by page.
    async fn chunks_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<ChunkRecord>>;
    /// Records a part of the manifest as read and adds its counts to the job's counters of
    /// that pass, atomically and at most once, while the job is being prepared or cut.
    async fn record_file(&self, id: &JobId, part: &FileRecord) -> Result<RecordOutcome>;

    /// Every recorded chunk of a job, in index order (all in memory: for tests and small jobs).
    async fn chunks(&self, id: &JobId) -> Result<Vec<ChunkRecord>> {
        let mut out: Vec<ChunkRecord> = Vec::new();
        loop {
            let page = self.chunks_after(id, out.last().map(|c| c.index), 1000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }
}

/// The consolidated segments of a big job's completion report: the finalizer's merges write
/// them once each, and the report is read from them instead of from every chunk's files (see
/// [`crate::pipeline::finalizer::report`]). Apart from [`ChunkLedger`] because only the
/// finalizer (and the sweep, waiting for it) touches them.
#[async_trait]
pub trait ReportLedger: Send + Sync {
    /// Records a consolidated segment once: false when another merge recorded it first.
    async fn record_segment(&self, id: &JobId, segment: &SegmentRecord) -> Result<bool>;
    /// Up to `limit` recorded segments with an index above `after`, in index order.
    async fn segments_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<SegmentRecord>>;

    /// The indexes of a job's recorded segments (a few hundred at most).
    async fn segment_indexes(&self, id: &JobId) -> Result<Vec<u64>> {
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            // A few at a time: a segment recorded unmerged lists up to a thousand files.
            let page = self.segments_after(id, after, 10).await?;
            let Some(last) = page.last() else { return Ok(out) };
            after = Some(last.index);
            out.extend(page.iter().map(|s| s.index));
        }
    }

    /// How many segments of a job are recorded.
    async fn segments_recorded(&self, id: &JobId) -> Result<u64> {
        Ok(self.segment_indexes(id).await?.len() as u64)
    }
}

/// Where job records live, whole: what the stages are wired with (one DynamoDB table in
/// production, [`crate::memory::InMemoryJobStore`] in tests, the simulation and the fuzz targets),
/// and what a component holds when it reaches all three parts (the finalizer, the sweep). A
/// function takes the narrowest part it uses; `&*store` upcasts an `Arc<dyn JobStore>` to it.
pub trait JobStore: JobRecords + ChunkLedger + ReportLedger {}

impl<T: JobRecords + ChunkLedger + ReportLedger + ?Sized> JobStore for T {}

/// Where a custom resource's answer goes: CloudFormation's `ResponseURL`, an S3 URL presigned
/// for a PUT.
#[async_trait]
pub trait Responder: Send + Sync {
    /// PUTs `body` to `url`; a refusal is an error, transient when trying again may help.
    async fn put(&self, url: &str, body: Vec<u8>) -> Result<()>;
}

/// A message queue (SQS in production).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends the message bodies (batched as the backend allows).
    async fn send(&self, bodies: Vec<String>) -> Result<()>;
    /// Messages in the queue, waiting or being handled (approximate on SQS).
    async fn depth(&self) -> Result<u64>;
}

/// A message of a dead-letter queue: a message its consumer failed on every delivery (five,
/// the queues' `maxReceiveCount`), and the receipt that deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub receipt: String,
}

/// A dead-letter queue, read by the sweep ([`crate::pipeline::dead_letters`]).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `max` letters waiting, at once (no long poll); a letter received and not deleted
    /// comes back later (after the queue's visibility timeout on SQS).
    async fn receive(&self, max: usize) -> Result<Vec<DeadLetter>>;
    /// Deletes a letter handled.
    async fn delete(&self, receipt: &str) -> Result<()>;
}

/// The dead-letter queues of the three stages' queues; `None` where there is none to read.
#[derive(Clone, Default)]
pub struct DeadLetterQueues {
    pub chunks: Option<Arc<dyn DeadLetters>>,
    pub control: Option<Arc<dyn DeadLetters>>,
    pub finalize: Option<Arc<dyn DeadLetters>>,
}

/// A chunk waiting in its job's backlog: its index and its message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub index: u64,
    pub body: String,
}

/// Where cut chunks wait until the dispatcher releases them into the chunk queue, highest
/// priority first (see [`crate::pipeline::dispatcher`]). Jobs with chunks waiting are marked
/// runnable; the mark carries a count of pushes, so clearing it cannot race a push.
#[async_trait]
pub trait Backlog: Send + Sync {
    /// Adds chunks to a job's backlog (a chunk already waiting is replaced) and marks the job
    /// runnable.
    async fn push(&self, job: &JobId, chunks: Vec<Waiting>) -> Result<()>;
    /// The jobs marked runnable, with the push count their mark had when read.
    async fn runnable(&self) -> Result<Vec<(JobId, u64)>>;
    /// Up to `n` of a job's waiting chunks, lowest index first.
    async fn peek(&self, job: &JobId, n: usize) -> Result<Vec<Waiting>>;
    /// Removes released chunks from the backlog.
    async fn remove(&self, job: &JobId, indexes: &[u64]) -> Result<()>;
    /// Clears a job's runnable mark if nothing was pushed since `pushes` was read.
    async fn unmark(&self, job: &JobId, pushes: u64) -> Result<()>;
    /// Takes the dispatcher's lock for `hold` unless another holder has it; true when taken.
    async fn lock(&self, holder: &str, hold: std::time::Duration) -> Result<bool>;
    async fn unlock(&self, holder: &str) -> Result<()>;
}

pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, StorageError>>;

/// Reads a stream to its end, or `None` as soon as it holds more than `max` bytes (a store
/// that ignores a Range request, an object larger than its reader allows).
pub async fn read_at_most(mut stream: ByteStream, max: usize) -> Result<Option<Vec<u8>>, StorageError> {
    use futures::StreamExt;
    let mut buf = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        if buf.len() + piece.len() > max {
            return Ok(None);
        }
        buf.extend_from_slice(&piece);
    }
    Ok(Some(buf))
}

/// Reads a stream to its end; for bounded reads only (a chunk's range, a spec).
pub async fn read_all(mut stream: ByteStream) -> Result<Vec<u8>, StorageError> {
    use futures::StreamExt;
    let mut buf = Vec::new();
    while let Some(piece) = stream.next().await {
        buf.extend_from_slice(&piece?);
    }
    Ok(buf)
}

/// How batchops writes an object it was asked to keep (a generated manifest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutOptions<'a> {
    pub encryption: Option<&'a OutputEncryption>,
    /// The account that must own the bucket (`x-amz-expected-bucket-owner`).
    pub expected_owner: Option<&'a str>,
}

/// Which bytes of an object a read streams, and on what condition: the whole object, as it
/// is now, by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions<'a> {
    /// The first byte.
    pub start: u64,
    /// The end, exclusive; `None` for the rest of the object.
    pub end: Option<u64>,
    /// Fails the read with 412 when the object's ETag is no longer this one (a manifest
    /// changed under its job).
    pub if_match: Option<&'a str>,
}

/// What to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// ListObjectVersions instead of ListObjectsV2.
    pub versions: bool,
    pub token: Option<&'a str>,
    pub expected_owner: Option<&'a str>,
}

/// Object storage for manifests and reports.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead, StorageError>;
    /// Streams the object's bytes that `options` names (all of them by default).
    async fn read(&self, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<ByteStream, StorageError>;
    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), StorageError>;
    /// Writes an object with the given options (generated manifests); returns its ETag.
    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        options: &PutOptions<'_>,
    ) -> Result<String, StorageError>;
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError>;
    /// Starts a multipart upload (for objects written piece by piece); returns its ID.
    async fn start_upload(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StorageError>;
    /// Uploads part `number` (1-based; every part but the last at least 5 MiB); returns its ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StorageError>;
    /// Completes the upload from its parts' (number, ETag), in order.
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), StorageError>;
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StorageError>;
    /// One page (up to 1,000 entries) of a bucket listing.
    async fn list(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError>;
    /// True when the bucket's versioning is Enabled or Suspended (its objects have versions).
    async fn versioned(&self, bucket: &str) -> Result<bool, StorageError>;
    /// The bucket's replication rules; empty when it has no replication configuration.
    async fn replication_rules(&self, bucket: &str) -> Result<Vec<ReplicationRule>, StorageError>;
    /// An object's tags, as (key, value).
    async fn tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError>;
    /// A URL that GETs the object without credentials until `expires` has passed (signed with
    /// this store's): the console's download links to report files.
    async fn presign_get(&self, bucket: &str, key: &str, expires: std::time::Duration) -> Result<String, StorageError> {
        let _ = (bucket, key, expires);
        Err(StorageError {
            http_status: 501,
            code: "NotImplemented".into(),
            message: "this store cannot presign".into(),
        })
    }
}

/// Runs the tasks of an operation; never fails as a whole: a failure is an outcome.
#[async_trait]
pub trait OperationRunner: Send + Sync {
    async fn run(&self, op: &Operation, task: &Task) -> Outcome;

    /// Runs up to [`Operation::batch_size`] tasks of one bucket together; one outcome per
    /// task, in order. Operations without a batch API run their tasks one by one.
    async fn run_batch(&self, op: &Operation, tasks: &[Task]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(self.run(op, t).await);
        }
        out
    }

    /// Checks, once per job and before any task runs, what `op` needs of the manifest's
    /// bucket. `Ok(Some(failure))` fails the job; `Err` is a transient error (try again).
    async fn check_bucket(&self, check: BucketCheck, bucket: &str) -> Result<Option<JobFailure>> {
        let _ = (check, bucket);
        Ok(None)
    }
}

/// The ports one job's requests go through: object storage and the operation runner acting
/// as the job's role (`RoleArn`). S3 Batch Operations makes every request of a job (manifest
/// read, listing, the operation, report write) with that role; so does batchops.
#[derive(Clone)]
pub struct JobPorts {
    pub objects: Arc<dyn ObjectStore>,
    pub runner: Arc<dyn OperationRunner>,
}

/// A job's role that could not be assumed, with STS's error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("The job's role {role} could not be assumed: {code}: {message}")]
pub struct RoleError {
    pub role: String,
    pub code: String,
    pub message: String,
    /// Throttling or an STS outage: the message is tried again later. Anything else (the role
    /// does not exist, does not trust batchops) fails the job.
    pub transient: bool,
}

impl From<RoleError> for crate::Error {
    fn from(e: RoleError) -> Self {
        let transient = e.transient;
        crate::Error::caused("sts:AssumeRole", e, transient)
    }
}

/// Gives the ports acting as a job's role (sts:AssumeRole in production).
#[async_trait]
pub trait RoleAccess: Send + Sync {
    /// The ports acting as `role_arn` for job `job` (the session is named after the job).
    async fn assume(&self, job: &JobId, role_arn: &str) -> Result<JobPorts, RoleError>;
}

/// Answers whether a caller may pass a role to a job: S3 requires `iam:PassRole` of the
/// CreateJob caller for the job's `RoleArn`.
#[async_trait]
pub trait PassRoleCheck: Send + Sync {
    /// `caller` is an IAM user or role ARN. `Ok(false)` refuses; `Err` is a failure to ask.
    async fn may_pass(&self, caller: &str, role_arn: &str) -> Result<bool>;
}
