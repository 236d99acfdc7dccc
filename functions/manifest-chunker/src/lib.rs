//! manifest-chunker: reads control messages (prepare, continue, start) and cuts manifests into
//! chunk messages. The logic is `batchops_core::pipeline::Chunker`; this crate wires it to
//! AWS and to the Lambda event.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use batchops_aws::driver::note_message;
use batchops_aws::{Clients, Config, SqsDeadLetters, SqsQueue};
use batchops_core::chunk::ControlMessage;
use batchops_core::pipeline::dead_letters::DeadLetterQueues;
use batchops_core::pipeline::Chunker;
use batchops_core::ports::DeadLetters;
use batchops_core::{Error, Result};

/// Builds the chunker from the configuration and clients.
pub fn chunker(config: &Config, clients: &Clients) -> Chunker {
    Chunker {
        ports: config.stage_ports(clients),
        control: Arc::new(SqsQueue::new(clients.sqs.clone(), &config.control_queue_url)),
        dispatcher: config.dispatcher(clients),
        dead_letters: dead_letters(config, clients),
    }
}

/// The dead-letter queues the sweep reads: those configured (`BATCHOPS_*_DLQ_URL`).
pub fn dead_letters(config: &Config, clients: &Clients) -> DeadLetterQueues {
    let queue = |url: &Option<String>| {
        url.as_ref().map(|u| Arc::new(SqsDeadLetters::new(clients.sqs.clone(), u)) as Arc<dyn DeadLetters>)
    };
    DeadLetterQueues {
        chunks: queue(&config.chunk_dlq_url),
        control: queue(&config.control_dlq_url),
        finalize: queue(&config.finalize_dlq_url),
    }
}

/// Handles one control message body. `deadline` is when the invocation must hand its work on.
pub async fn handle_message(chunker: &Chunker, body: &str, deadline: Instant) -> Result<()> {
    let msg: ControlMessage =
        serde_json::from_str(body).map_err(|e| Error::field("control message", format!("unreadable: {e}")))?;
    note_message(msg.job_id(), None);
    chunker.handle(msg, deadline).await
}

/// The margin kept before a Lambda invocation's deadline to checkpoint and continue.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);
