//! task-executor: runs the tasks of one chunk message. The logic is
//! `batchops_core::pipeline::Executor`; this crate wires it to AWS and to the Lambda event.

use batchops_aws::driver::note_message;
use batchops_aws::{Clients, Config};
use batchops_core::chunk::ChunkMessage;
use batchops_core::pipeline::executor::Disposition;
use batchops_core::pipeline::Executor;
use batchops_core::{Error, Result};

pub fn executor(config: &Config, clients: &Clients) -> Executor {
    Executor {
        ports: config.stage_ports(clients),
        shutdown: Default::default(),
        limits: Default::default(),
        dispatcher: config.dispatcher(clients),
    }
}

/// Handles one chunk message; `attempt` is how many times it has been delivered.
pub async fn handle_message(executor: &Executor, body: &str, attempt: u32) -> Result<Disposition> {
    let msg = ChunkMessage::decode(body).map_err(|e| Error::field("chunk message", format!("unreadable: {e}")))?;
    note_message(Some(&msg.job_id), Some(msg.index));
    executor.handle_attempt(&msg, attempt).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsEvent;
    use batchops_aws::driver::sqs_batch;
    use batchops_core::memory::{InMemoryJobStore, InMemoryObjectStore, InMemoryQueue, InMemoryRoles};
    use batchops_core::ops::{Operation, Task};
    use batchops_core::pipeline::dispatcher::Dispatcher;
    use batchops_core::pipeline::{Settings, StagePorts};
    use batchops_core::ports::OperationRunner;
    use batchops_core::retry::Outcome;
    use std::sync::Arc;

    struct Never;

    #[async_trait::async_trait]
    impl OperationRunner for Never {
        async fn run(&self, _: &Operation, _: &Task) -> Outcome {
            unreachable!("no task runs for a job that does not exist")
        }
    }

    #[tokio::test]
    async fn only_the_failed_records_of_a_batch_are_reported() {
        // GIVEN the SQS event of two chunk messages, one of them unreadable
        let event: SqsEvent = serde_json::from_str(include_str!("../fixtures/chunk-messages.json")).unwrap();
        let store = Arc::new(InMemoryJobStore::default());
        let dispatcher = Dispatcher {
            store: store.clone(),
            events: Arc::new(batchops_core::events::NoEvents),
            backlog: store.clone(),
            chunks: Arc::new(InMemoryQueue::default()),
            depth: 10,
        };
        let executor = Executor {
            ports: StagePorts {
                store,
                events: Arc::new(batchops_core::events::NoEvents),
                roles: Arc::new(InMemoryRoles::new(Arc::new(InMemoryObjectStore::default()), Arc::new(Never))),
                finalize: Arc::new(InMemoryQueue::default()),
                settings: Settings::default(),
            },
            shutdown: Default::default(),
            limits: Default::default(),
            dispatcher: Arc::new(dispatcher),
        };
        // WHEN the handler runs the batch
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
        let response = sqs_batch("task-executor", event, deadline, None, |m| {
            let executor = &executor;
            async move { handle_message(executor, &m.body, m.attempt).await.map(|_| ()) }
        })
        .await;
        // THEN the chunk of an unknown job is dropped, and only the unreadable message fails
        let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, vec!["c0ffee00-0000-4000-8000-000000000002".to_string()]);
    }
}
