//! [`Backlog`] on DynamoDB: chunks waiting as `Q#` items of their job's partition, the
//! `RUNNABLE` marks with their push counts, and the dispatcher's lock item.

use std::collections::HashMap;

use async_trait::async_trait;
use batchops_core::job::JobId;
use batchops_core::ports::{now_ms, Backlog, Waiting};
use batchops_core::{Error, Result};

use super::{conditional, get_n, get_s, job_pk, n, queue_sk, s, DynamoJobStore};
use crate::errors::backend;

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
