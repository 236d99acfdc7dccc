//! task-executor: runs the tasks of one chunk message. The logic is
//! `batchops_core::pipeline::Executor`; this crate wires it to AWS and to the Lambda event.

use std::sync::Arc;

use batchops_aws::{Clients, Config, DynamoJobStore, S3ObjectStore, S3OperationRunner, SqsQueue};
use batchops_core::chunk::ChunkMessage;
use batchops_core::pipeline::executor::Disposition;
use batchops_core::pipeline::Executor;
use batchops_core::{Error, Result};

pub fn executor(config: &Config, clients: &Clients) -> Executor {
    Executor {
        store: Arc::new(DynamoJobStore::new(clients.dynamodb.clone(), &config.table)),
        objects: Arc::new(S3ObjectStore::new(clients.s3.clone())),
        runner: Arc::new(S3OperationRunner::new(clients.s3_ops.clone())),
        finalize: Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &config.finalize_queue_url,
        )),
        settings: config.settings.clone(),
    }
}

pub async fn handle_message(executor: &Executor, body: &str) -> Result<Disposition> {
    let msg: ChunkMessage = serde_json::from_str(body)
        .map_err(|e| Error::field("chunk message", format!("unreadable: {e}")))?;
    executor.handle(&msg).await
}
