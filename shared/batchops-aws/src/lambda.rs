//! SQS event source mapping glue shared by the queue-driven functions: each record is handled
//! on its own and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS
//! redelivers just those. Handlers also get the delivery's attempt number.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::Result;
use tracing::error;

pub async fn sqs_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        // How many times SQS has delivered the message, this time included.
        let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        let body = record.body.unwrap_or_default();
        if let Err(e) = handle(body, attempt).await {
            error!(message_id = %id, error = %e, "message failed; it will be delivered again");
            response.add_failure(id);
        }
    }
    response
}
