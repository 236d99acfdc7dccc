//! SQS event source mapping glue shared by the queue-driven functions: each record is handled
//! on its own and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS
//! redelivers just those. Handlers also get the delivery's attempt number.
//!
//! With a [`Visibility`], every record of the batch is leased for a short window renewed by a
//! heartbeat while the batch runs (so a timed-out or crashed invocation's messages come back
//! within that window), and a failed record is handed back with the delay its error asks for.

use std::future::Future;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use batchops_core::Result;
use futures::future::join_all;
use tracing::{error, info};

use crate::Visibility;

pub async fn sqs_batch<F, Fut>(event: SqsEvent, visibility: Option<&Visibility>, handle: F) -> SqsBatchResponse
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let held: Mutex<Vec<String>> = Mutex::new(event.records.iter().filter_map(|r| r.receipt_handle.clone()).collect());
    // The records side by side: they share the invocation's time, and one after another ten
    // slow ones (a big report's merges) would not end within it.
    let work = async {
        let failed = join_all(event.records.into_iter().map(|record| one(record, visibility, &held, &handle))).await;
        let mut response = SqsBatchResponse::default();
        failed.into_iter().flatten().for_each(|id| response.add_failure(id));
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

/// Handles one record; returns its message id when SQS is to deliver it again.
async fn one<F, Fut>(
    record: SqsMessage,
    visibility: Option<&Visibility>,
    held: &Mutex<Vec<String>>,
    handle: &F,
) -> Option<String>
where
    F: Fn(String, u32) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let id = record.message_id.clone().unwrap_or_default();
    // How many times SQS has delivered the message, this time included.
    let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
    let body = record.body.unwrap_or_default();
    let result = handle(body.clone(), attempt).await;
    let receipt = record.receipt_handle.unwrap_or_default();
    // A record done with stays leased until the batch returns and Lambda deletes it: a lease
    // that lapsed while the others run would deliver it again.
    let e = result.err()?;
    held.lock().unwrap_or_else(|e| e.into_inner()).retain(|r| *r != receipt);
    match e.retry_after() {
        Some(_) => info!(message_id = %id, reason = %e, "message handed back"),
        None => error!(message_id = %id, error = %e, "message failed; it will be delivered again"),
    }
    // A requeued message is done with: Lambda deletes it with the batch.
    let requeued = match visibility {
        Some(v) => v.hand_back(&receipt, &body, &e, attempt).await,
        None => false,
    };
    (!requeued).then_some(id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn event(n: usize) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = (0..n)
            .map(|i| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m{i}"));
                m.receipt_handle = Some(format!("r{i}"));
                m.body = Some(i.to_string());
                m.attributes = HashMap::from([("ApproximateReceiveCount".to_string(), "2".to_string())]);
                m
            })
            .collect();
        event
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_ten_slow_records_takes_as_long_as_one_and_reports_the_failed_one() {
        // GIVEN ten records that each take a minute (a big report's merges), the fourth failing
        let started = tokio::time::Instant::now();
        let response = sqs_batch(event(10), None, |body, attempt| async move {
            assert_eq!(attempt, 2);
            tokio::time::sleep(Duration::from_secs(60)).await;
            match body.as_str() {
                "3" => Err(batchops_core::Error::transient("merge", "SlowDown")),
                _ => Ok(()),
            }
        })
        .await;
        // THEN they ran side by side: a minute, not ten, well within Lambda's five
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, ["m3"]);
    }
}
