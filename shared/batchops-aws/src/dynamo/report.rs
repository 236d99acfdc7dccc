//! [`ReportLedger`] on DynamoDB: a big report's consolidated segments (`SEG#` items), each
//! put once.

use async_trait::async_trait;
use batchops_core::job::JobId;
use batchops_core::ports::{ReportLedger, SegmentRecord};
use batchops_core::{Error, Result};

use super::{conditional, get_s, job_pk, s, segment_sk, DynamoJobStore};
use crate::errors::backend;

#[async_trait]
impl ReportLedger for DynamoJobStore {
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
