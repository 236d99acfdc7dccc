//! SQS event source mapping glue shared by the queue-driven functions: each record is handled
//! on its own and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS
//! redelivers just those. Handlers also get the delivery's attempt number.
//!
//! With a [`Visibility`], every record of the batch is leased for a short window renewed by a
//! heartbeat while the batch runs (so a timed-out or crashed invocation's messages come back
//! within that window), and a failed record is handed back with the delay its error asks for.

use std::future::Future;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::Result;
use tracing::{error, info};

use crate::Visibility;

pub async fn sqs_batch<F, Fut>(event: SqsEvent, visibility: Option<&Visibility>, handle: F) -> SqsBatchResponse
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let held: Mutex<Vec<String>> = Mutex::new(event.records.iter().filter_map(|r| r.receipt_handle.clone()).collect());
    let work = async {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            // How many times SQS has delivered the message, this time included.
            let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            let body = record.body.unwrap_or_default();
            let result = handle(body.clone(), attempt).await;
            let receipt = record.receipt_handle.unwrap_or_default();
            held.lock().unwrap_or_else(|e| e.into_inner()).retain(|r| *r != receipt);
            if let Err(e) = result {
                match e.retry_after() {
                    Some(_) => info!(message_id = %id, reason = %e, "message handed back"),
                    None => error!(message_id = %id, error = %e, "message failed; it will be delivered again"),
                }
                // A requeued message is done with: Lambda deletes it with the batch.
                let requeued = match visibility {
                    Some(v) => v.hand_back(&receipt, &body, &e).await,
                    None => false,
                };
                if !requeued {
                    response.add_failure(id);
                }
            }
        }
        response
    };
    match visibility {
        None => work.await,
        Some(v) => tokio::select! {
            response = work => response,
            _ = v.heartbeat(&held) => unreachable!("the heartbeat runs until the batch ends"),
        },
    }
}
