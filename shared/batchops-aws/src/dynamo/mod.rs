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
//! | inventory file read | `JOB#<id>` | `PART#<pass>#<file index, 12 digits>` | (an inventory file read by the chunker, keyed `PART#` as before the name changed; its counts went to the job's `<pass>_parts`, `<pass>_tasks`, `<pass>_chunks`) |
//! | sweep's sighting | `JOB#<id>` | `SWEEP` | `fingerprint`, `since` (Unix ms), `nudges`: what the sweep last saw of the job, `ttl` |
//! | request token | `TOKEN#<account>#<ClientRequestToken>` | `TOKEN` | `job_id`, `hash` (SHA-1 of the request) |
//!
//! GSI `by-created` (`gsi1pk`, `gsi1sk`) lists jobs newest first; the sparse GSI `open-jobs`
//! (`open`, `gsi1sk`) the jobs that have not ended. Job writes are conditional on `version`;
//! counters change only by the ledger's records ([`ChunkLedger`]), one transaction per chunk
//! (the chunk item's `attribute_not_exists` makes a redelivered chunk count once).
//!
//! One file per port: [`JobRecords`] in `records.rs`, [`ChunkLedger`] in `chunks.rs`,
//! [`ReportLedger`] in `report.rs`, [`Backlog`] in `backlog.rs`; what they share (keys,
//! attributes, queries, conditional writes) is here, and depends on none of them.
//!
//! [`JobRecords`]: batchops_core::ports::JobRecords
//! [`ChunkLedger`]: batchops_core::ports::ChunkLedger
//! [`ReportLedger`]: batchops_core::ports::ReportLedger
//! [`Backlog`]: batchops_core::ports::Backlog

mod backlog;
mod chunks;
mod records;
mod report;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use batchops_core::job::{JobId, JobStatus};
use batchops_core::ports::{FileRecord, Pass};
use batchops_core::retry::RetryPolicy;
use batchops_core::{Error, Result};

use crate::errors::backend;

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
const RETENTION_SECS: i64 = batchops_core::job::RETENTION.as_secs();

/// The job store and the backlog in one table: every part of
/// [`JobStore`](batchops_core::ports::JobStore), and [`Backlog`](batchops_core::ports::Backlog).
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

fn file_sk(part: &FileRecord) -> String {
    format!("PART#{}#{:012}", part.pass.as_str(), part.file)
}

/// The counter attributes of one pass's parts.
fn file_counters(pass: Pass) -> [&'static str; 3] {
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

fn get_n(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn queue_sk(index: u64) -> String {
    format!("Q#{index:020}")
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

/// True when a TransactWriteItems was cancelled; returns the cancellation codes per action.
/// True when a transaction was cancelled only for meeting another on the same item (no
/// condition of its own failed): the same request may go through when tried again.
fn only_conflicts(codes: &[String]) -> bool {
    codes.iter().any(|c| c == "TransactionConflict") && codes.iter().all(|c| c == "TransactionConflict" || c == "None")
}

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
