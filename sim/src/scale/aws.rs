//! AWS as `make sim-scale` models it, calibrated from published figures (each constant names
//! its source; an assumption says so): DynamoDB's latency and per-item capacity, S3's request
//! latency, per-prefix request rates and per-connection throughput, SQS's latency, Lambda's
//! event source mapping ramp and its vCPU per MB. The models count what they serve, so the
//! run can say how busy each resource was.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use batchops_core::objects::StorageError;
use batchops_core::ops::replicate_object::ReplicationRule;
use batchops_core::ops::{Operation, Task};
use batchops_core::ports::{
    read_all, ByteStream, ListPage, ListRequest, ObjectHead, ObjectRef, ObjectStore, OperationRunner, PutOptions,
    ReadOptions,
};
use batchops_core::retry::{Outcome, RetryPolicy, TaskFailure};
use bytes::Bytes;
use tokio::time::Instant;

use crate::rng::Rng;

/// DynamoDB: one partition serves at most 1,000 WCU and 3,000 RCU a second, in on-demand
/// mode too, and an item lives on one partition.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>
pub const DYNAMODB_PARTITION_WCU: f64 = 1_000.0;
pub const DYNAMODB_PARTITION_RCU: f64 = 3_000.0;

/// DynamoDB's latency: "single-digit millisecond performance at any scale"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Introduction.html>), as
/// (lowest, highest) ms of a single-item request and of a query page; a transaction makes two
/// rounds (prepare, commit: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html>),
/// so twice a write (our assumption; AWS publishes no figure).
pub const DYNAMODB_ITEM_MS: (u64, u64) = (3, 9);
/// A query page reads many items: up to 15 ms (our assumption, past "single-digit").
pub const DYNAMODB_QUERY_MS: (u64, u64) = (5, 15);
pub const DYNAMODB_TRANSACTION_MS: (u64, u64) = (8, 25);

/// DynamoDB bills a write per 1 KB of the item and a strongly consistent read per 4 KB, a
/// transaction twice (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>,
/// "Capacity management for transactions" in transaction-apis.html above).
const WRITE_KB: u64 = 1;
const READ_KB: u64 = 4;

/// S3: "roughly 100–200 milliseconds" for small objects
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-guidelines.html>,
/// "Timeouts and retries for latency-sensitive applications").
pub const S3_LATENCY_MS: (u64, u64) = (100, 200);

/// S3: "at least 3,500 PUT/COPY/POST/DELETE or 5,500 GET/HEAD requests per second per
/// partitioned Amazon S3 prefix" (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html>);
/// more gets 503 SlowDown. The model gives every first key segment a partition of its own from
/// the start: a fresh or quiet bucket has fewer, and answers SlowDown while S3 splits them
/// (minutes to an hour, reported, not published), so the model is optimistic there.
pub const S3_PREFIX_WRITES: f64 = 3_500.0;

/// S3: "one concurrent request for each 85–90 MB/s of desired network throughput" (the
/// performance guidelines above, "Scale storage connections horizontally").
pub const S3_CONNECTION_BYTES_PER_SEC: f64 = 85.0 * 1000.0 * 1000.0;

/// SQS: "Typical latencies for SendMessage, ReceiveMessage, and DeleteMessage API requests
/// are in the tens or low hundreds of milliseconds" (<https://aws.amazon.com/sqs/faqs/>).
pub const SQS_MS: (u64, u64) = (10, 40);

/// Lambda's SQS event source mapping "starts processing five batches at a time with five
/// concurrent invocations ... increases ... by up to 300 more instances per minute"
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html>).
pub const ESM_FIRST: usize = 5;
pub const ESM_PER_MINUTE: usize = 300;

/// Lambda's account concurrency quota by default, and the most an event source mapping's
/// `MaximumConcurrency` takes (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>,
/// <https://docs.aws.amazon.com/lambda/latest/dg/API_ScalingConfig.html>).
pub const LAMBDA_ACCOUNT_CONCURRENCY: usize = 1_000;

/// Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
pub const LAMBDA_MB_PER_VCPU: f64 = 1_769.0;

/// The middle of a (lowest, highest) ms range, in seconds.
pub fn mid_secs((lo, hi): (u64, u64)) -> f64 {
    (lo + hi) as f64 / 2000.0
}

/// A function's share of a vCPU at its memory.
pub fn vcpu_share(mb: f64) -> f64 {
    (mb / LAMBDA_MB_PER_VCPU).min(1.0)
}

/// SQS: a standard queue holds about 120,000 messages in flight
/// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html>).
pub const SQS_IN_FLIGHT: f64 = 120_000.0;

/// The items of the table a request can be held up by: one item sits on one partition. The
/// others (chunk records, claims, backlog entries: many items under the job's key) DynamoDB
/// spreads over partitions as their traffic grows ("split for heat",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>):
/// counted, never waited for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Job,
    Runnable,
    Lock,
    Spread,
}

/// What one request touches: (item, write units, read units).
type Touches = Vec<(Item, u64, u64)>;

/// The capacity an item has used since the last look.
#[derive(Default, Clone, Copy, Debug)]
pub struct Used {
    pub wcu: f64,
    pub rcu: f64,
    /// Requests that waited their turn at the item: spaced by their units over its capacity
    /// per second, with no burst (DynamoDB may have served some of them at once).
    pub throttled: u64,
    /// Transactions cancelled for meeting another on the item (TransactionConflict), each
    /// tried again after the adapter's backoff.
    pub conflicts: u64,
}

#[derive(Clone, Copy)]
struct Meter {
    write_free: Instant,
    read_free: Instant,
    /// Until when a transaction writing the item is in progress.
    transaction_until: Instant,
    used: Used,
}

/// DynamoDB in front of the in-memory store (through [`crate::dynamo::FlakyStore`]): each
/// request takes its latency, and waits its turn at a hot item: DynamoDB would refuse a
/// request over the item's capacity and the SDK try it again later. A transaction that meets
/// another transaction on the same item is cancelled (TransactionConflict) and tried again
/// after the adapter's backoff (`RetryPolicy::backend`), as `record_once` and `start_chunk`
/// do; a transaction holds the items it writes for its whole latency (our assumption: AWS
/// publishes no figure, and the whole round trip is the longest it can be).
pub struct Dynamo {
    rng: Rng,
    /// The job item's size in bytes (its body and counters), set once the job exists.
    pub job_bytes: AtomicU64,
    meters: Mutex<HashMap<Item, Meter>>,
    totals: Mutex<HashMap<Item, Used>>,
}

impl Dynamo {
    pub fn new(rng: Rng) -> Dynamo {
        Dynamo { rng, job_bytes: AtomicU64::new(1024), meters: Mutex::default(), totals: Mutex::default() }
    }

    /// The items a request of the store (named as [`crate::dynamo::FlakyStore`] names it,
    /// after the adapter's calls in `batchops-aws/src/dynamo`) touches, and its latency.
    pub fn touches(&self, what: &str) -> (Touches, (u64, u64)) {
        let job_kb = self.job_bytes.load(Ordering::Relaxed).div_ceil(1024).max(1);
        let job_read = job_kb.div_ceil(READ_KB);
        let (item, query, txn) = (DYNAMODB_ITEM_MS, DYNAMODB_QUERY_MS, DYNAMODB_TRANSACTION_MS);
        match what {
            // The job item, strongly consistent.
            "GetItem" => (vec![(Item::Job, 0, job_read)], item),
            // A status change, a noted throttle, chunk indexes given out: the job item.
            "UpdateItem" | "UpdateItem throttle" | "UpdateItem split_seq" => (vec![(Item::Job, job_kb, 0)], item),
            // The chunk item put, the job's counters added, the claim deleted; the claim is
            // a condition check of the job's status beside the claim's put.
            "TransactWriteItems record" | "TransactWriteItems claim" | "TransactWriteItems part" => {
                (vec![(Item::Job, 2 * job_kb, 0), (Item::Spread, 4 * WRITE_KB, 0)], txn)
            }
            "UpdateItem claim" | "DeleteItem claim" | "PutItem sighting" | "PutItem segment" => {
                (vec![(Item::Spread, WRITE_KB, 0)], item)
            }
            "GetItem sighting" | "GetItem chunk" => (vec![(Item::Spread, 0, 1)], item),
            // A page of up to 32 KB of small items (our assumption; spread items are counted,
            // never waited for).
            "Query claims" | "Query chunks" | "Query segments" | "Query backlog" | "Query jobs" => {
                (vec![(Item::Spread, 0, 8)], query)
            }
            // Backlog entries written or deleted 25 at a time, and the job marked runnable.
            "BatchWriteItem backlog" => (vec![(Item::Spread, 25 * WRITE_KB, 0), (Item::Runnable, WRITE_KB, 0)], query),
            "Query runnable" => (vec![(Item::Runnable, 0, 1)], query),
            "DeleteItem runnable" => (vec![(Item::Runnable, WRITE_KB, 0)], item),
            "PutItem lock" | "DeleteItem lock" => (vec![(Item::Lock, WRITE_KB, 0)], item),
            other => panic!("the DynamoDB model does not know the store's request {other:?}"),
        }
    }

    /// Serves one request: its turn at the items it touches, then its latency; a transaction
    /// that conflicts comes back cancelled and is tried again after the adapter's backoff.
    pub async fn request(&self, what: &str) {
        let (touches, (lo, hi)) = self.touches(what);
        let transaction = what.starts_with("TransactWriteItems");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let latency = self.rng.millis(lo, hi);
            match self.turn(&touches, transaction, latency) {
                Ok(start) => return tokio::time::sleep_until(start + latency).await,
                Err(start) => {
                    let backoff = RetryPolicy::backend().delay(attempt);
                    tokio::time::sleep_until(start + latency + backoff).await;
                }
            }
        }
    }

    /// Takes the request's turn at the items it touches: `Ok(when it starts)`, or `Err(when
    /// it starts)` for a transaction that meets another writing the same hot item (cancelled).
    fn turn(&self, touches: &Touches, transaction: bool, latency: Duration) -> Result<Instant, Instant> {
        let now = Instant::now();
        let mut start = now;
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Meter { write_free: now, read_free: now, transaction_until: now, used: Used::default() };
        for &(item, wcu, rcu) in touches {
            let m = meters.entry(item).or_insert(fresh);
            m.used.wcu += wcu as f64;
            m.used.rcu += rcu as f64;
            if item == Item::Spread {
                continue;
            }
            let mut turn = now;
            if wcu > 0 {
                turn = turn.max(m.write_free);
                m.write_free = turn + Duration::from_secs_f64(wcu as f64 / DYNAMODB_PARTITION_WCU);
            }
            if rcu > 0 {
                turn = turn.max(m.read_free);
                m.read_free = turn + Duration::from_secs_f64(rcu as f64 / DYNAMODB_PARTITION_RCU);
            }
            if turn > now {
                m.used.throttled += 1;
            }
            start = start.max(turn);
        }
        if !transaction {
            return Ok(start);
        }
        let hot = |item: &Item| *item != Item::Spread;
        let items: Vec<Item> = touches.iter().map(|t| t.0).filter(hot).collect();
        let busy = items.iter().find(|i| meters.get(*i).is_some_and(|m| start < m.transaction_until));
        if let Some(m) = busy.and_then(|i| meters.get_mut(i)) {
            m.used.conflicts += 1;
            return Err(start);
        }
        for item in items {
            if let Some(m) = meters.get_mut(&item) {
                m.transaction_until = start + latency;
            }
        }
        Ok(start)
    }

    /// What each item used since the last call (and adds it to the totals).
    pub fn take(&self) -> HashMap<Item, Used> {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        meters
            .iter_mut()
            .map(|(item, m)| {
                let used = std::mem::take(&mut m.used);
                let t = totals.entry(*item).or_default();
                t.wcu += used.wcu;
                t.rcu += used.rcu;
                t.throttled += used.throttled;
                t.conflicts += used.conflicts;
                (*item, used)
            })
            .collect()
    }

    pub fn totals(&self) -> HashMap<Item, Used> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A token bucket: `rate` a second, at most a tenth of a second's saved (AWS publishes no
/// burst; a small one makes SlowDown come as soon as a prefix is over its rate).
struct Tokens {
    tokens: f64,
    at: Instant,
}

/// S3 running the copies: each request takes S3's latency plus the time its invocation's
/// CPU needs for it, and is a write on its destination prefix (the key's first segment):
/// over the prefix's rate it gets 503 SlowDown.
pub struct S3 {
    rng: Rng,
    prefixes: Mutex<HashMap<String, Tokens>>,
    /// Per invocation: when its CPU is next free.
    cpu: Mutex<HashMap<u64, Instant>>,
    /// CPU time one task needs of the executor's share of a vCPU.
    cpu_per_task: Duration,
    began: Instant,
    /// Requests and SlowDowns since the last look.
    pub requests: AtomicU64,
    pub slowdowns: AtomicU64,
    window: Mutex<PrefixWindow>,
}

/// Requests per prefix in each second of virtual time: a prefix of sorted keys is done in
/// seconds, so its rate over a minute's sample would understate its peak.
#[derive(Default)]
struct PrefixWindow {
    second: u64,
    counts: HashMap<String, u64>,
    /// The most one prefix took in one second since the last look.
    peak: u64,
    /// Prefixes written since the last look.
    used: std::collections::HashSet<String>,
}

impl PrefixWindow {
    fn note(&mut self, prefix: &str, second: u64) {
        if second != self.second {
            self.peak = self.peak.max(self.counts.values().copied().max().unwrap_or(0));
            self.counts.clear();
            self.second = second;
        }
        *self.counts.entry(prefix.to_string()).or_default() += 1;
        if !self.used.contains(prefix) {
            self.used.insert(prefix.to_string());
        }
    }
}

impl S3 {
    /// `cpu_per_task`: measured on one core; `executor_mb`: the executor's memory.
    pub fn new(rng: Rng, cpu_per_task: Duration, executor_mb: f64) -> S3 {
        let share = vcpu_share(executor_mb);
        S3 {
            rng,
            prefixes: Mutex::default(),
            cpu: Mutex::default(),
            cpu_per_task: cpu_per_task.div_f64(share),
            began: Instant::now(),
            requests: AtomicU64::new(0),
            slowdowns: AtomicU64::new(0),
            window: Mutex::default(),
        }
    }

    fn over_rate(&self, prefix: &str) -> bool {
        let now = Instant::now();
        let burst = S3_PREFIX_WRITES / 10.0;
        let mut prefixes = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        let t = prefixes.entry(prefix.to_string()).or_insert(Tokens { tokens: burst, at: now });
        t.tokens = (t.tokens + now.duration_since(t.at).as_secs_f64() * S3_PREFIX_WRITES).min(burst);
        t.at = now;
        if t.tokens < 1.0 {
            return true;
        }
        t.tokens -= 1.0;
        false
    }

    /// Waits for the invocation's CPU to do one task's work.
    async fn compute(&self) {
        let Some(invocation) = crate::lambda::invocation() else { return };
        let now = Instant::now();
        let done = {
            let mut cpu = self.cpu.lock().unwrap_or_else(|e| e.into_inner());
            let free = cpu.entry(invocation).or_insert(now);
            *free = (*free).max(now) + self.cpu_per_task;
            *free
        };
        tokio::time::sleep_until(done).await;
    }

    /// The most requests one prefix took in one second since the last look, and how many
    /// prefixes were written.
    pub fn take_window(&self) -> (u64, usize) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let busiest = w.peak.max(w.counts.values().copied().max().unwrap_or(0));
        let used = w.used.len();
        w.peak = 0;
        w.used.clear();
        // Invocations that ended keep no CPU.
        let now = Instant::now();
        self.cpu.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, free| *free > now);
        (busiest, used)
    }
}

/// A key's prefix as S3 partitions it here: its first segment.
fn prefix_of(key: &str) -> &str {
    key.split('/').next().unwrap_or_default()
}

#[async_trait]
impl OperationRunner for S3 {
    async fn run(&self, _op: &Operation, task: &Task) -> Outcome {
        self.compute().await;
        let prefix = prefix_of(&task.target.key);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let second = Instant::now().duration_since(self.began).as_secs();
        self.window.lock().unwrap_or_else(|e| e.into_inner()).note(prefix, second);
        let (lo, hi) = S3_LATENCY_MS;
        tokio::time::sleep(self.rng.millis(lo, hi)).await;
        if self.over_rate(prefix) {
            self.slowdowns.fetch_add(1, Ordering::Relaxed);
            return Outcome::Failed(TaskFailure::classify(503, "SlowDown", "Please reduce your request rate."));
        }
        Outcome::Succeeded { message: "Successful".into() }
    }
}

/// The manifest and report bucket: each request takes S3's latency and its bytes at one
/// connection's throughput. Requests are counted by name.
pub struct Objects {
    pub inner: std::sync::Arc<batchops_core::memory::InMemoryObjectStore>,
    rng: Rng,
    pub counts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Objects {
    pub fn new(inner: std::sync::Arc<batchops_core::memory::InMemoryObjectStore>, rng: Rng) -> Objects {
        Objects { inner, rng, counts: Mutex::default() }
    }

    async fn request(&self, what: &'static str, bytes: usize) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(what).or_default() += 1;
        let (lo, hi) = S3_LATENCY_MS;
        let transfer = Duration::from_secs_f64(bytes as f64 / S3_CONNECTION_BYTES_PER_SEC);
        tokio::time::sleep(self.rng.millis(lo, hi) + transfer).await;
    }
}

#[async_trait]
impl ObjectStore for Objects {
    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead, StorageError> {
        self.request("HeadObject", 0).await;
        self.inner.head(bucket, key, version_id).await
    }
    async fn read(&self, object: &ObjectRef<'_>, options: ReadOptions<'_>) -> Result<ByteStream, StorageError> {
        let body = read_all(self.inner.read(object, options).await?).await?;
        self.request("GetObject", body.len()).await;
        let once: ByteStream = Box::pin(futures::stream::once(async move { Ok(Bytes::from(body)) }));
        Ok(once)
    }
    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), StorageError> {
        self.request("PutObject", body.len()).await;
        self.inner.put(bucket, key, body, content_type).await
    }
    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        options: &PutOptions<'_>,
    ) -> Result<String, StorageError> {
        self.request("PutObject", body.len()).await;
        self.inner.put_with(bucket, key, body, content_type, options).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.request("DeleteObject", 0).await;
        self.inner.delete(bucket, key).await
    }
    async fn start_upload(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StorageError> {
        self.request("CreateMultipartUpload", 0).await;
        self.inner.start_upload(bucket, key, content_type).await
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        self.request("UploadPart", body.len()).await;
        self.inner.upload_part(bucket, key, upload_id, number, body).await
    }
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), StorageError> {
        self.request("CompleteMultipartUpload", 0).await;
        self.inner.complete_upload(bucket, key, upload_id, parts).await
    }
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.request("AbortMultipartUpload", 0).await;
        self.inner.abort_upload(bucket, key, upload_id).await
    }
    async fn list(&self, req: &ListRequest<'_>) -> Result<ListPage, StorageError> {
        self.request("ListObjectsV2", 0).await;
        self.inner.list(req).await
    }
    async fn versioned(&self, bucket: &str) -> Result<bool, StorageError> {
        self.request("GetBucketVersioning", 0).await;
        self.inner.versioned(bucket).await
    }
    async fn replication_rules(&self, bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        self.request("GetBucketReplication", 0).await;
        self.inner.replication_rules(bucket).await
    }
    async fn tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        self.request("GetObjectTagging", 0).await;
        self.inner.tags(bucket, key, version_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request the sim's store makes is one the model knows (it panics otherwise).
    #[test]
    fn the_model_knows_every_request_of_the_store() {
        let src = include_str!("../dynamo.rs");
        let model = Dynamo::new(Rng::new(1));
        let names: Vec<&str> = src.split("(self, \"").skip(1).filter_map(|s| s.split('"').next()).collect();
        assert!(names.len() >= 20, "{names:?}");
        for name in names.iter().chain(&["UpdateItem"]) {
            let (touches, _) = model.touches(name);
            assert!(!touches.is_empty(), "{name}");
        }
    }

    /// A hot item serves its capacity a second and no more: 2,000 writes of a 1 KB item take
    /// two seconds.
    #[test]
    fn a_hot_item_serves_its_capacity() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let model = std::sync::Arc::new(Dynamo::new(Rng::new(1)));
            let began = Instant::now();
            let writes: Vec<_> = (0..2_000)
                .map(|_| {
                    let m = model.clone();
                    tokio::spawn(async move { m.request("UpdateItem").await })
                })
                .collect();
            for w in writes {
                w.await.unwrap();
            }
            let took = began.elapsed().as_secs_f64();
            assert!((2.0..2.1).contains(&took), "{took}");
            let used = model.take();
            assert_eq!(used[&Item::Job].wcu, 2_000.0);
            assert!(used[&Item::Job].throttled > 1_000);
        });
    }
}
