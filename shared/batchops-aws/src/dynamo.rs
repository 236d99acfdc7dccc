//! The job store in one DynamoDB table (on-demand), keyed by `pk`/`sk`:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | job | `JOB#<id>` | `JOB` | `status`, `version`, `body` (the job as JSON, counters aside), `succeeded`, `failed`, `chunks_done`, `chunks_split` (chunks handed on), `split_seq` (their indexes given out), `gsi1pk` = `JOB`, `gsi1sk` = `<created>#<id>`, `open` = `OPEN` until it ends, `ttl` once ended |
//! | chunk done | `JOB#<id>` | `CHUNK#<index, 20 digits>` | `record` (JSON: counts and result files) |
//! | chunk running | `JOB#<id>` | `RUN#<index, 20 digits>` | `owner` (the delivery), `until` (Unix ms): a claim renewed by the executor's heartbeat, ended when the chunk is recorded |
//! | chunk waiting | `JOB#<id>` | `Q#<index, 20 digits>` | `body` (the chunk message): the job's backlog, released by the dispatcher |
//! | runnable job | `RUNNABLE` | `<id>` | `pushes` (count of backlog pushes): jobs with chunks waiting |
//! | dispatcher lock | `DISPATCH` | `LOCK` | `holder`, `until` (Unix ms) |
//! | part read | `JOB#<id>` | `PART#<pass>#<part, 12 digits>` | (an inventory file read by the chunker; its counts went to the job's `<pass>_parts`, `<pass>_tasks`, `<pass>_chunks`) |
//! | sweep's sighting | `JOB#<id>` | `SWEEP` | `fingerprint`, `since` (Unix ms), `nudges`: what the sweep last saw of the job, `ttl` |
//! | request token | `TOKEN#<account>#<ClientRequestToken>` | `TOKEN` | `job_id`, `hash` (SHA-1 of the request) |
//!
//! GSI `by-created` (`gsi1pk`, `gsi1sk`) lists jobs newest first; the sparse GSI `open-jobs`
//! (`open`, `gsi1sk`) the jobs that have not ended. Job writes are conditional
//! on `version`; counters change only by [`JobStore::record_chunk`], one transaction per chunk
//! (the chunk item's `attribute_not_exists` makes a redelivered chunk count once).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use batchops_core::job::PartCounts;
use batchops_core::job::{Job, JobId, JobStatus};
use batchops_core::ports::{
    now_ms, Backlog, ChunkLease, ChunkRecord, CreateOutcome, JobFilter, JobPage, JobStore, LeaseOutcome, PartRecord,
    Pass, RecordOutcome, SegmentRecord, Sighting, Waiting, SPLIT_BASE,
};
use batchops_core::retry::RetryPolicy;
use batchops_core::{Error, Result};

use crate::errors::backend;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;

/// The sparse index of the jobs that have not ended: a job item holds `open` (sorted by
/// `gsi1sk`, newest first as `by-created`) until it ends, so the sweep's minutely walk reads
/// only those, however many jobs ended before. It holds their keys alone: a chunk's counters
/// written to the job item do not write to the index too.
pub const OPEN_INDEX: &str = "open-jobs";
const OPEN: &str = "open";
const OPEN_VALUE: &str = "OPEN";

/// Attributes of the job item named `throttle:<bucket>` hold when an executor was last
/// throttled on that bucket (Unix ms).
const THROTTLE_PREFIX: &str = "throttle:";

/// Jobs are deleted this long after they end, as S3 deletes its jobs after 90 days.
const RETENTION_SECS: i64 = batchops_core::job::RETENTION.whole_seconds();

#[derive(Clone, Debug)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
    /// Set against emulators: every write to the table waits for the previous one.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// One gate per table, shared by every store of the process (intake, chunker, executors and
/// finalizer each hold their own store).
fn gate_for(table: &str) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: OnceLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    gates.entry(table.to_string()).or_default().clone()
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The query's start from a token this API gave: the keys of a job in the index read
/// (any other map made DynamoDB refuse the query, a 500 for the caller's mistake).
fn start_key(token: &str, open: bool) -> Result<HashMap<String, String>> {
    let bad = || Error::field("nextToken", "is not a token this API gave");
    let keys: HashMap<String, String> = serde_json::from_str(token).map_err(|_| bad())?;
    let (index_key, value) = if open { (OPEN, OPEN_VALUE) } else { ("gsi1pk", "JOB") };
    let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = ["gsi1sk", "pk", "sk", index_key];
    expected.sort_unstable();
    let pk_ok = keys.get("pk").and_then(|pk| pk.strip_prefix("JOB#")).is_some_and(|id| JobId::parse(id).is_ok());
    let is_job = keys.get("sk").is_some_and(|sk| sk == "JOB") && keys.get(index_key).is_some_and(|v| v == value);
    (names == expected && pk_ok && is_job && keys["gsi1sk"].len() <= 128).then_some(keys).ok_or_else(bad)
}

fn job_pk(id: &JobId) -> String {
    format!("JOB#{id}")
}

fn chunk_sk(index: u64) -> String {
    format!("CHUNK#{index:020}")
}

fn segment_sk(index: u64) -> String {
    format!("SEG#{index:020}")
}

fn run_sk(index: u64) -> String {
    format!("RUN#{index:020}")
}

fn part_sk(part: &PartRecord) -> String {
    format!("PART#{}#{:012}", part.pass.as_str(), part.part)
}

/// The counter attributes of one pass's parts.
fn part_counters(pass: Pass) -> [&'static str; 3] {
    match pass {
        Pass::Count => ["count_parts", "count_tasks", "count_chunks"],
        Pass::Cut => ["cut_parts", "cut_tasks", "cut_chunks"],
    }
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| Error::permanent("job table", format!("item without string attribute {name}")))
}

/// A record's first two writes: its marker item and its job's counters.
fn marker_and_counters(put: Put, update: Update) -> Vec<TransactWriteItem> {
    vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(update).build()]
}

fn get_n(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoJobStore { client, table: table.into(), write_gate: None }
    }

    /// The store the functions use: serialized when the clients point at an emulator.
    pub fn from_clients(clients: &crate::clients::Clients, table: impl Into<String>) -> Self {
        Self::new(clients.dynamodb.clone(), table).serialized_on_emulators(clients.custom_endpoint)
    }

    /// Serializes this process's writes to the table when `emulated` is true. moto's
    /// TransactWriteItems restores a copy of the whole table taken when it started if the
    /// transaction is cancelled, and its conditional updates are not atomic, so concurrent
    /// writes can be lost there. DynamoDB itself needs none of this.
    pub fn serialized_on_emulators(mut self, emulated: bool) -> Self {
        self.write_gate = emulated.then(|| gate_for(&self.table));
        self
    }

    async fn gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn job_from_item(item: &Item) -> Result<Job> {
        let mut job: Job = serde_json::from_str(get_s(item, "body")?)
            .map_err(|e| Error::caused("job table: unreadable job body", e, false))?;
        job.version = get_n(item, "version");
        job.progress.succeeded = get_n(item, "succeeded");
        job.progress.failed = get_n(item, "failed");
        job.progress.chunks_done = get_n(item, "chunks_done");
        job.progress.chunks_split = get_n(item, "chunks_split");
        let counts = |pass| {
            let [p, t, c] = part_counters(pass);
            PartCounts { parts: get_n(item, p), tasks: get_n(item, t), chunks: get_n(item, c) }
        };
        job.progress.counted = counts(Pass::Count);
        job.progress.cut = counts(Pass::Cut);
        job.throttled = item
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(THROTTLE_PREFIX)?.to_string(), v.as_n().ok()?.parse().ok()?)))
            .collect();
        if let Some(st) = item.get("status").and_then(|v| v.as_s().ok()).and_then(|s| JobStatus::parse(s)) {
            job.status = st;
        }
        Ok(job)
    }

    /// Puts a marker item (the chunk or part) and updates the job's counters in one
    /// transaction, at most once: the marker's `attribute_not_exists` makes a second try
    /// `AlreadyRecorded`, and the job's status condition makes it `JobClosed`. Transactions on
    /// the same job item conflict (TransactionConflict) when recorded at the same moment;
    /// those are tried again here rather than by redoing the whole chunk.
    async fn record_once(
        &self,
        id: &JobId,
        // The marker's put, the counters' update, and what else is written with them (the
        // chunks a record hands on, and their job's runnable mark).
        writes: Vec<TransactWriteItem>,
        marker_sk: &str,
        open: impl Fn(&Job) -> bool,
        // The claim the record ends: its delete, the chunk's index and the claim's owner.
        lease: Option<(Delete, u64, &str)>,
    ) -> Result<RecordOutcome> {
        let (open, lease, writes) = (&open, &lease, &writes);
        // Transactions on one job item conflict when recorded at the same moment: tried again.
        RetryPolicy::backend()
            .until(format!("record {marker_sk}: the transaction kept conflicting"), |_| async move {
                let gate = self.gate().await;
                let mut request = self.client.transact_write_items().set_transact_items(Some(writes.clone()));
                if let Some((delete, _, _)) = lease {
                    request = request.transact_items(TransactWriteItem::builder().delete(delete.clone()).build());
                }
                let result = request.send().await;
                drop(gate);
                let e = match result {
                    Ok(_) => return Ok(Some(RecordOutcome::Recorded)),
                    Err(e) => e,
                };
                if cancellation_codes(&e).is_none() {
                    return Err(backend("TransactWriteItems record", e));
                }
                // Which condition failed decides the answer; read it back rather than rely on
                // the cancellation reasons (emulators differ in how they fill them).
                if let Some(recorder) = self.recorded_by(id, marker_sk).await? {
                    // An earlier try of this very request may have been applied with its answer
                    // lost (a timeout, a cut connection): then the record is ours.
                    let ours = lease.as_ref().is_some_and(|(_, _, owner)| recorder.as_deref() == Some(*owner));
                    return Ok(Some(if ours { RecordOutcome::Recorded } else { RecordOutcome::AlreadyRecorded }));
                }
                let job = self.get(id).await?;
                if !open(&job) {
                    return Ok(Some(RecordOutcome::JobClosed(job.status)));
                }
                if let Some((_, index, owner)) = lease {
                    if self.lease(id, *index).await?.is_none_or(|held| held.owner != *owner) {
                        return Ok(Some(RecordOutcome::LeaseLost));
                    }
                }
                Ok(None)
            })
            .await
    }

    /// The transaction items that put chunks handed on into the job's backlog and mark it
    /// runnable (none when nothing is handed on).
    fn handed_on(&self, id: &JobId, rest: &[Waiting]) -> Result<Vec<TransactWriteItem>> {
        if rest.is_empty() {
            return Ok(Vec::new());
        }
        let mut items = Vec::with_capacity(rest.len() + 1);
        for w in rest {
            let put = Put::builder()
                .table_name(&self.table)
                .item("pk", s(job_pk(id)))
                .item("sk", s(queue_sk(w.index)))
                .item("body", s(&w.body))
                .build()
                .map_err(|e| Error::caused("Put", e, false))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s("RUNNABLE"))
            .key("sk", s(id.as_str()))
            .update_expression("ADD pushes :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| Error::caused("Update", e, false))?;
        items.push(TransactWriteItem::builder().update(mark).build());
        Ok(items)
    }

    async fn lease(&self, id: &JobId, index: u64) -> Result<Option<ChunkLease>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s(run_sk(index)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem claim", e))?;
        out.item().map(|item| lease_from_item(index, item)).transpose()
    }

    /// Every item of partition `pk` (whose sort key starts with `prefix`), page after page,
    /// read consistently.
    async fn query_all(&self, pk: String, prefix: Option<&str>) -> Result<Vec<Item>> {
        self.query_up_to(pk, prefix, None).await
    }

    /// The first `most` items of a partition (all with `None`), in key order. A page stops at
    /// 1 MB whatever its Limit, so a short page is not the end: only a page without
    /// `LastEvaluatedKey` is.
    async fn query_up_to(&self, pk: String, prefix: Option<&str>, most: Option<usize>) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let left = most.map(|m| m.saturating_sub(out.len()).clamp(1, 1000) as i32);
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(&pk))
                .consistent_read(true)
                .set_limit(left)
                .set_exclusive_start_key(start.take());
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let page = q.send().await.map_err(|e| backend("Query", e))?;
            out.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() || most.is_some_and(|m| out.len() >= m) {
                out.truncate(most.unwrap_or(usize::MAX));
                return Ok(out);
            }
        }
    }

    /// Deletes a chunk's claim when `condition` holds of it (a claim that changed is left).
    async fn delete_claim(
        &self,
        id: &JobId,
        index: u64,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool> {
        self.delete_if(job_pk(id), run_sk(index), condition, values).await
    }

    /// A condition on the job's status being one of `statuses`, as (expression, values).
    fn status_in(statuses: &[JobStatus]) -> (String, Vec<(String, AttributeValue)>) {
        let names: Vec<String> = (0..statuses.len()).map(|i| format!(":st{i}")).collect();
        let values = names.iter().zip(statuses).map(|(n, st)| (n.clone(), s(st.as_str()))).collect();
        (format!("#st IN ({})", names.join(", ")), values)
    }

    /// Whether a record item exists, and the owner it names (chunk records name the delivery
    /// that wrote them).
    async fn recorded_by(&self, id: &JobId, sk: &str) -> Result<Option<Option<String>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s(sk))
            .projection_expression("pk, #o")
            .expression_attribute_names("#o", "owner")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out.item().map(|item| item.get("owner").and_then(|v| v.as_s().ok()).cloned()))
    }

    fn body(job: &Job) -> Result<String> {
        serde_json::to_string(job).map_err(|e| Error::caused("job body", e, false))
    }

    fn new_job_item(job: &Job) -> Result<Item> {
        let created = job
            .created
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::caused("created", e, false))?;
        Ok(HashMap::from([
            ("pk".to_string(), s(job_pk(&job.id))),
            ("sk".to_string(), s("JOB")),
            ("gsi1pk".to_string(), s("JOB")),
            ("gsi1sk".to_string(), s(format!("{created}#{}", job.id))),
            (OPEN.to_string(), s(OPEN_VALUE)),
            ("status".to_string(), s(job.status.as_str())),
            ("version".to_string(), n(0)),
            ("body".to_string(), s(Self::body(job)?)),
            ("succeeded".to_string(), n(0)),
            ("failed".to_string(), n(0)),
            ("chunks_done".to_string(), n(0)),
        ]))
    }
}

/// `Ok(true)` when a conditional write happened, `Ok(false)` when its condition was false.
fn conditional<O, E>(result: std::result::Result<O, SdkError<E, HttpResponse>>, what: &str) -> Result<bool>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(backend(what, e)),
    }
}

fn lease_item(id: &JobId, lease: &ChunkLease) -> Item {
    HashMap::from([
        ("pk".to_string(), s(job_pk(id))),
        ("sk".to_string(), s(run_sk(lease.index))),
        ("owner".to_string(), s(&lease.owner)),
        ("until".to_string(), n(lease.until_ms)),
    ])
}

fn lease_from_item(index: u64, item: &Item) -> Result<ChunkLease> {
    Ok(ChunkLease { index, owner: get_s(item, "owner")?.to_string(), until_ms: get_n(item, "until") })
}

fn queue_sk(index: u64) -> String {
    format!("Q#{index:020}")
}

impl DynamoJobStore {
    /// Writes or deletes items 25 at a time, sending back what DynamoDB left unprocessed.
    async fn batch_write(&self, requests: Vec<aws_sdk_dynamodb::types::WriteRequest>) -> Result<()> {
        for batch in requests.chunks(25) {
            let pending = std::sync::Mutex::new(batch.to_vec());
            let pending = &pending;
            RetryPolicy::backend()
                .until("BatchWriteItem: items left unprocessed", |_| async move {
                    let items = pending.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let gate = self.gate().await;
                    let out = self.client.batch_write_item().request_items(&self.table, items).send().await;
                    drop(gate);
                    let left = out
                        .map_err(|e| backend("BatchWriteItem", e))?
                        .unprocessed_items()
                        .and_then(|u| u.get(&self.table))
                        .cloned()
                        .unwrap_or_default();
                    let done = left.is_empty();
                    *pending.lock().unwrap_or_else(|e| e.into_inner()) = left;
                    Ok(done.then_some(()))
                })
                .await?;
        }
        Ok(())
    }

    /// A conditional delete that finds its condition false is not an error. `#o` and `#u` in
    /// the condition name a claim's `owner` and `until`.
    async fn delete_if(
        &self,
        pk: String,
        sk: String,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool> {
        let names: HashMap<String, String> = [("#o", "owner"), ("#u", "until")]
            .into_iter()
            .filter(|(name, _)| condition.contains(name))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let gate = self.gate().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
            .send()
            .await;
        drop(gate);
        conditional(result, "DeleteItem")
    }
}

#[async_trait]
impl Backlog for DynamoJobStore {
    async fn push(&self, job: &JobId, chunks: Vec<Waiting>) -> Result<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = chunks
            .into_iter()
            .map(|w| {
                let item = HashMap::from([
                    ("pk".to_string(), s(job_pk(job))),
                    ("sk".to_string(), s(queue_sk(w.index))),
                    ("body".to_string(), s(w.body)),
                ]);
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| Error::caused("PutRequest", e, false))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(requests).await?;
        let gate = self.gate().await;
        let marked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("RUNNABLE"))
            .key("sk", s(job.as_str()))
            .update_expression("ADD pushes :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        drop(gate);
        marked.map_err(|e| backend("UpdateItem runnable", e))?;
        Ok(())
    }

    async fn runnable(&self) -> Result<Vec<(JobId, u64)>> {
        self.query_all("RUNNABLE".into(), None)
            .await?
            .iter()
            .map(|item| Ok((JobId::parse(get_s(item, "sk")?)?, get_n(item, "pushes"))))
            .collect()
    }

    async fn peek(&self, job: &JobId, n: usize) -> Result<Vec<Waiting>> {
        // Bodies of inventory chunks are 80-160 KB: a 1 MB page holds a handful, and the
        // dispatcher reads a short answer as "nothing more waiting".
        self.query_up_to(job_pk(job), Some("Q#"), Some(n.max(1)))
            .await?
            .iter()
            .map(|item| {
                let index = get_s(item, "sk")?.trim_start_matches("Q#").parse().unwrap_or(u64::MAX);
                Ok(Waiting { index, body: get_s(item, "body")?.to_string() })
            })
            .collect()
    }

    async fn remove(&self, job: &JobId, indexes: &[u64]) -> Result<()> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let requests = indexes
            .iter()
            .map(|i| {
                let key = HashMap::from([("pk".to_string(), s(job_pk(job))), ("sk".to_string(), s(queue_sk(*i)))]);
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| Error::caused("DeleteRequest", e, false))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(requests).await
    }

    async fn unmark(&self, job: &JobId, pushes: u64) -> Result<()> {
        self.delete_if("RUNNABLE".into(), job.to_string(), "pushes = :n", vec![(":n", n(pushes))]).await.map(|_| ())
    }

    async fn lock(&self, holder: &str, hold: std::time::Duration) -> Result<bool> {
        let now = now_ms();
        let gate = self.gate().await;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("DISPATCH"))
            .item("sk", s("LOCK"))
            .item("holder", s(holder))
            .item("until", n(now + hold.as_millis() as u64))
            .condition_expression("attribute_not_exists(pk) OR #u < :now OR holder = :me")
            .expression_attribute_names("#u", "until")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        drop(gate);
        conditional(result, "PutItem dispatcher lock")
    }

    async fn unlock(&self, holder: &str) -> Result<()> {
        self.delete_if("DISPATCH".into(), "LOCK".into(), "holder = :me", vec![(":me", s(holder))]).await.map(|_| ())
    }
}

/// True when a TransactWriteItems was cancelled; returns the cancellation codes per action.
fn cancellation_codes<E: std::fmt::Debug>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        E,
    >,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(tc) => {
            Some(tc.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect())
        }
        _ => None,
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &Job, token: &str, request_hash: &str) -> Result<CreateOutcome> {
        let token_item = HashMap::from([
            ("pk".to_string(), s(format!("TOKEN#{token}"))),
            ("sk".to_string(), s("TOKEN")),
            ("job_id".to_string(), s(job.id.as_str())),
            ("hash".to_string(), s(request_hash)),
        ]);
        let put = |item: Item| -> Result<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| Error::caused("Put", e, false))?,
                )
                .build())
        };
        let gate = self.gate().await;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(token_item)?)
            .transact_items(put(Self::new_job_item(job)?)?)
            .send()
            .await;
        drop(gate);
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) if cancellation_codes(&e).is_some() => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(format!("TOKEN#{token}")))
                    .key("sk", s("TOKEN"))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend("GetItem token", e))?;
                let Some(item) = out.item() else {
                    return Err(Error::transient("CreateJob", "transaction cancelled"));
                };
                if get_s(item, "hash")? == request_hash {
                    Ok(CreateOutcome::Existing(JobId::parse(get_s(item, "job_id")?)?))
                } else {
                    Ok(CreateOutcome::Conflict)
                }
            }
            Err(e) => Err(backend("TransactWriteItems create", e)),
        }
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem job", e))?;
        match out.item() {
            Some(item) => Self::job_from_item(item),
            None => Err(Error::JobNotFound { job_id: id.clone() }),
        }
    }

    async fn list(&self, filter: &JobFilter<'_>, max: usize, next_token: Option<&str>) -> Result<JobPage> {
        let statuses = filter.statuses;
        let mut start: Option<Item> = match next_token {
            None => None,
            Some(t) => Some(start_key(t, filter.open)?.into_iter().map(|(k, v)| (k, s(v))).collect()),
        };
        let mut jobs = Vec::new();
        loop {
            if jobs.len() >= max {
                break;
            }
            let (index, key, value) = match filter.open {
                true => (OPEN_INDEX, OPEN, OPEN_VALUE),
                false => ("by-created", "gsi1pk", "JOB"),
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :j")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":j", s(value))
                .scan_index_forward(false)
                .limit((max - jobs.len()) as i32)
                .set_exclusive_start_key(start.take());
            // The open-jobs index holds keys alone: its jobs are read whole and matched below.
            if !statuses.is_empty() && !filter.open {
                let names: Vec<String> = (0..statuses.len()).map(|i| format!(":s{i}")).collect();
                q = q
                    .filter_expression(format!("#st IN ({})", names.join(", ")))
                    .expression_attribute_names("#st", "status");
                for (name, st) in names.iter().zip(statuses) {
                    q = q.expression_attribute_values(name, s(st.as_str()));
                }
            }
            let out = q.send().await.map_err(|e| backend("Query jobs", e))?;
            for item in out.items() {
                // The account is in the job's ARN, inside its body: matched here, not by the
                // query (a filter expression reads, and is billed for, the same items).
                let job = match filter.open {
                    false => Self::job_from_item(item)?,
                    true => match self.get(&JobId::parse(get_s(item, "pk")?.trim_start_matches("JOB#"))?).await {
                        Ok(job) => job,
                        // Gone since the index was read (its retention ended).
                        Err(Error::JobNotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    },
                };
                if filter.matches(&job) {
                    jobs.push(job);
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let next_token = match start {
            None => None,
            Some(key) => {
                let plain: HashMap<String, String> =
                    key.into_iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k, v.clone()))).collect();
                Some(serde_json::to_string(&plain).map_err(|e| Error::caused("nextToken", e, false))?)
            }
        };
        Ok(JobPage { jobs, next_token })
    }

    async fn put(&self, job: &Job) -> Result<Job> {
        let mut update = "SET body = :b, #st = :s, version = :next".to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(&job.id)))
            .key("sk", s("JOB"))
            .condition_expression("version = :v")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":b", s(Self::body(job)?))
            .expression_attribute_values(":s", s(job.status.as_str()))
            .expression_attribute_values(":v", n(job.version))
            .expression_attribute_values(":next", n(job.version + 1))
            .return_values(ReturnValue::AllNew);
        if let Some(t) = job.terminated {
            update.push_str(", #ttl = :ttl");
            req = req
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(t.unix_timestamp() + RETENTION_SECS));
        }
        // In the open-jobs index while it has not ended, and out of it once it has.
        req = req.expression_attribute_names("#open", OPEN);
        match job.status.is_terminal() {
            true => update.push_str(" REMOVE #open"),
            false => {
                update.push_str(", #open = :open");
                req = req.expression_attribute_values(":open", s(OPEN_VALUE));
            }
        }
        let gate = self.gate().await;
        let result = req.update_expression(update).send().await;
        drop(gate);
        match result {
            Ok(out) => Self::job_from_item(
                out.attributes().ok_or_else(|| Error::permanent("UpdateItem", "no attributes returned"))?,
            ),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(Error::Conflict { job_id: job.id.clone() })
            }
            Err(e) => Err(backend("UpdateItem job", e)),
        }
    }

    async fn allocate_chunks(&self, id: &JobId, count: u64) -> Result<u64> {
        // Beside the job's body and its version, like the counters: no job write conflicts.
        let gate = self.gate().await;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .update_expression("ADD split_seq :n")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        drop(gate);
        let out = out.map_err(|e| backend("UpdateItem split_seq", e))?;
        let next = out.attributes().map(|a| get_n(a, "split_seq")).unwrap_or(count);
        Ok(SPLIT_BASE + next - count)
    }

    async fn record_handing_on(
        &self,
        id: &JobId,
        chunk: &ChunkRecord,
        owner: &str,
        rest: &[Waiting],
    ) -> Result<RecordOutcome> {
        let record = serde_json::to_string(chunk).map_err(|e| Error::caused("chunk record", e, false))?;
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s(chunk_sk(chunk.index)))
            .item("record", s(record))
            .item("owner", s(owner))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::caused("Put", e, false))?;
        // Counted until the job ends: a cancelled or failing job records the chunks that ran.
        let live: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|st| !st.is_terminal()).collect();
        let (condition, values) = Self::status_in(&live);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .update_expression("ADD succeeded :ok, failed :ko, chunks_done :one, chunks_split :split")
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(
                values
                    .into_iter()
                    .chain([
                        (":ok".into(), n(chunk.succeeded)),
                        (":ko".into(), n(chunk.failed)),
                        (":one".into(), n(1)),
                        (":split".into(), n(rest.len())),
                    ])
                    .collect(),
            ))
            .build()
            .map_err(|e| Error::caused("Update", e, false))?;
        let end_claim = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s(run_sk(chunk.index)))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .build()
            .map_err(|e| Error::caused("Delete", e, false))?;
        let sk = chunk_sk(chunk.index);
        let mut writes = marker_and_counters(put, update);
        writes.extend(self.handed_on(id, rest)?);
        let claim = Some((end_claim, chunk.index, owner));
        self.record_once(id, writes, &sk, |j| !j.status.is_terminal(), claim).await
    }

    async fn start_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<LeaseOutcome> {
        let accepting: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|st| st.accepts_chunks()).collect();
        let (condition, values) = Self::status_in(&accepting);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(values.into_iter().collect()))
            .build()
            .map_err(|e| Error::caused("ConditionCheck", e, false))?;
        // Taken when free, lapsed, or already this delivery's.
        let claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(lease_item(id, lease)))
            .condition_expression("attribute_not_exists(pk) OR #u < :now OR #o = :me")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":me", s(&lease.owner))
            .build()
            .map_err(|e| Error::caused("Put", e, false))?;
        let gate = self.gate().await;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .send()
            .await;
        drop(gate);
        match result {
            Ok(_) => Ok(LeaseOutcome::Started),
            Err(e) if cancellation_codes(&e).is_some() => {
                let job = self.get(id).await?;
                if !job.status.accepts_chunks() {
                    return Ok(LeaseOutcome::JobClosed(job.status));
                }
                // Held by another delivery (or the two raced): try again after it lapses.
                let until_ms = self.lease(id, lease.index).await?.map_or(now_ms() + 1000, |l| l.until_ms);
                Ok(LeaseOutcome::Held { until_ms })
            }
            Err(e) => Err(backend("TransactWriteItems claim", e)),
        }
    }

    async fn renew_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        let gate = self.gate().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s(run_sk(lease.index)))
            .update_expression("SET #u = :until")
            .condition_expression("#o = :me")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":until", n(lease.until_ms))
            .expression_attribute_values(":me", s(&lease.owner))
            .send()
            .await;
        drop(gate);
        conditional(result, "UpdateItem claim")
    }

    async fn release_chunk(&self, id: &JobId, index: u64, owner: &str) -> Result<()> {
        self.delete_claim(id, index, "#o = :me", vec![(":me", s(owner))]).await.map(|_| ())
    }

    async fn note_throttle(&self, id: &JobId, bucket: &str, at_ms: u64) -> Result<()> {
        let gate = self.gate().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .update_expression("SET #t = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#t", format!("{THROTTLE_PREFIX}{bucket}"))
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await;
        drop(gate);
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(Error::JobNotFound { job_id: id.clone() })
            }
            Err(e) => Err(backend("UpdateItem throttle", e)),
        }
    }

    async fn chunk_leases(&self, id: &JobId) -> Result<Vec<ChunkLease>> {
        self.query_all(job_pk(id), Some("RUN#"))
            .await?
            .iter()
            .map(|item| {
                let index = get_s(item, "sk")?.trim_start_matches("RUN#").parse().unwrap_or(u64::MAX);
                lease_from_item(index, item)
            })
            .collect()
    }

    async fn reap_chunk(&self, id: &JobId, lease: &ChunkLease) -> Result<bool> {
        let values = vec![(":me", s(&lease.owner)), (":until", n(lease.until_ms))];
        self.delete_claim(id, lease.index, "#o = :me AND #u = :until", values).await
    }

    async fn record_part(&self, id: &JobId, part: &PartRecord) -> Result<RecordOutcome> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s(part_sk(part)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::caused("Put", e, false))?;
        let [p, t, c] = part_counters(part.pass);
        let taking: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|st| st.takes_parts()).collect();
        let (condition, statuses) = Self::status_in(&taking);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .update_expression(format!("ADD {p} :one, {t} :t, {c} :c"))
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(statuses.into_iter().collect()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":t", n(part.tasks))
            .expression_attribute_values(":c", n(part.chunks))
            .build()
            .map_err(|e| Error::caused("Update", e, false))?;
        let sk = part_sk(part);
        self.record_once(id, marker_and_counters(put, update), &sk, |j| j.status.takes_parts(), None).await
    }

    async fn sighting(&self, id: &JobId) -> Result<Option<Sighting>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("SWEEP"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out.item().map(|item| Sighting {
            fingerprint: get_n(item, "fingerprint"),
            since_ms: get_n(item, "since"),
            nudges: get_n(item, "nudges") as u32,
        }))
    }

    async fn put_sighting(&self, id: &JobId, sighting: &Sighting) -> Result<()> {
        // Kept as long as an ended job: the sweep no longer looks at it, and it goes with it.
        let ttl = now_ms() as i64 / 1000 + RETENTION_SECS;
        let gate = self.gate().await;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s("SWEEP"))
            .item("fingerprint", n(sighting.fingerprint))
            .item("since", n(sighting.since_ms))
            .item("nudges", n(sighting.nudges))
            .item("ttl", n(ttl))
            .send()
            .await;
        drop(gate);
        result.map(|_| ()).map_err(|e| backend("PutItem sighting", e))
    }

    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool> {
        Ok(self.recorded_by(id, &chunk_sk(index)).await?.is_some())
    }

    async fn chunks_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<ChunkRecord>> {
        self.records_after(id, "CHUNK#", after.map(chunk_sk), limit).await
    }

    async fn record_segment(&self, id: &JobId, segment: &SegmentRecord) -> Result<bool> {
        let record = serde_json::to_string(segment).map_err(|e| Error::caused("segment record", e, false))?;
        let gate = self.gate().await;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s(segment_sk(segment.index)))
            .item("record", s(record))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        drop(gate);
        conditional(put, "PutItem segment")
    }

    async fn segments_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<SegmentRecord>> {
        self.records_after(id, "SEG#", after.map(segment_sk), limit).await
    }

    async fn segment_indexes(&self, id: &JobId) -> Result<Vec<u64>> {
        // The keys alone: a segment recorded unmerged lists up to a thousand files.
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :seg)")
                .expression_attribute_values(":pk", s(job_pk(id)))
                .expression_attribute_values(":seg", s("SEG#"))
                .projection_expression("sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query segments", e))?;
            for item in page.items() {
                let sk = get_s(item, "sk")?;
                let index =
                    sk.trim_start_matches("SEG#").parse().map_err(|e| Error::caused("segment key", e, false))?;
                out.push(index);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

impl DynamoJobStore {
    /// Up to `limit` records (the `record` attribute) of one kind of a job's items, whose keys
    /// start with `prefix` and sort by index, after the item `after` (excluded).
    async fn records_after<T: serde::de::DeserializeOwned>(
        &self,
        id: &JobId,
        prefix: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<T>> {
        let from = after.unwrap_or_else(|| prefix.to_string());
        let mut out = Vec::new();
        let mut start = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(job_pk(id)))
                .expression_attribute_values(":from", s(from.clone()))
                .expression_attribute_values(":to", s(format!("{prefix}~")))
                .consistent_read(true)
                .limit((limit - out.len()).min(1000) as i32 + 1)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query records", e))?;
            for item in page.items() {
                if get_s(item, "sk")? == from {
                    continue;
                }
                if out.len() < limit {
                    let record = get_s(item, "record")?;
                    out.push(
                        serde_json::from_str(record)
                            .map_err(|e| Error::caused("stored record: unreadable", e, false))?,
                    );
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }
}
