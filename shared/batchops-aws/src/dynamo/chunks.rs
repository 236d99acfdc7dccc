//! [`ChunkLedger`] on DynamoDB: claims (`RUN#` items), chunk and inventory-file records (`CHUNK#`,
//! `PART#`) each written in one transaction with the job's counters, and the indexes of chunks
//! handed on (`split_seq`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update};
use batchops_core::job::{Job, JobId, JobStatus};
use batchops_core::ports::{
    now_ms, ChunkLease, ChunkLedger, ChunkRecord, FileRecord, JobRecords, LeaseOutcome, RecordOutcome, Waiting,
    SPLIT_BASE,
};
use batchops_core::retry::RetryPolicy;
use batchops_core::{Error, Result};

use super::{
    cancellation_codes, chunk_sk, conditional, file_counters, file_sk, get_n, get_s, job_pk, n, only_conflicts,
    queue_sk, run_sk, s, DynamoJobStore, Item,
};
use crate::errors::backend;

/// A record's first two writes: its marker item and its job's counters.
fn marker_and_counters(put: Put, update: Update) -> Vec<TransactWriteItem> {
    vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(update).build()]
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

impl DynamoJobStore {
    /// Puts a marker item (the chunk or the inventory file) and updates the job's counters in one
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
}

#[async_trait]
impl ChunkLedger for DynamoJobStore {
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
        // The claim's condition check reads the job item, which every chunk's record writes in
        // a transaction too: two at the same moment cancel one (TransactionConflict). That one
        // is tried again here; taken for a claim held elsewhere, its chunk would wait a whole
        // redelivery (make sim-scale's model of 200 executors found it).
        let (check, claim) = (&check, &claim);
        let result = RetryPolicy::backend()
            .until("TransactWriteItems claim: the transaction kept conflicting", |_| async move {
                let gate = self.gate().await;
                let result = self
                    .client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().condition_check(check.clone()).build())
                    .transact_items(TransactWriteItem::builder().put(claim.clone()).build())
                    .send()
                    .await;
                drop(gate);
                match &result {
                    Err(e) if cancellation_codes(e).is_some_and(|codes| only_conflicts(&codes)) => Ok(None),
                    _ => Ok(Some(result)),
                }
            })
            .await?;
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

    async fn record_file(&self, id: &JobId, part: &FileRecord) -> Result<RecordOutcome> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(job_pk(id)))
            .item("sk", s(file_sk(part)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::caused("Put", e, false))?;
        let [p, t, c] = file_counters(part.pass);
        let taking: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|st| st.takes_files()).collect();
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
        let sk = file_sk(part);
        self.record_once(id, marker_and_counters(put, update), &sk, |j| j.status.takes_files(), None).await
    }

    async fn chunk_recorded(&self, id: &JobId, index: u64) -> Result<bool> {
        Ok(self.recorded_by(id, &chunk_sk(index)).await?.is_some())
    }

    async fn chunks_after(&self, id: &JobId, after: Option<u64>, limit: usize) -> Result<Vec<ChunkRecord>> {
        self.records_after(id, "CHUNK#", after.map(chunk_sk), limit).await
    }
}
