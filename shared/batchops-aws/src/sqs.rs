//! SQS queues: SendMessageBatch, up to ten messages and 1 MiB per call; dead-letter queues read
//! by the sweep.

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use batchops_core::ports::{DeadLetter, DeadLetters, Queue};
use batchops_core::retry::RetryPolicy;
use batchops_core::{Error, Result};

use crate::errors::backend;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// SendMessageBatch's limits: ten entries, and their bodies 1 MiB together (a batch over it is
/// refused whole, `AWS.SimpleQueueService.BatchRequestTooLong`).
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 1024 * 1024;

/// `bodies` cut into runs SendMessageBatch takes, in order: a run ends at ten bodies or before
/// the body that would take it over 1 MiB (a body over 1 MiB alone goes alone, for SQS to
/// refuse by name).
fn batches(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (i - start == BATCH_ENTRIES || bytes + body.len() > BATCH_BYTES) {
            out.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

/// What SQS counts in a queue (approximately, as SQS says).
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl QueueCounts {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// The queue at `url`'s messages visible, in flight and delayed: one GetQueueAttributes.
pub async fn counts(client: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let names = [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ];
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| backend("GetQueueAttributes", e))?;
    let count = |n: &A| out.attributes().and_then(|a| a.get(n)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(QueueCounts { visible: count(&names[0]), in_flight: count(&names[1]), delayed: count(&names[2]) })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn depth(&self) -> Result<u64> {
        Ok(counts(&self.client, &self.url).await?.total())
    }

    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        for batch in batches(&bodies) {
            // Entries SQS refuses in a batch are sent again, the others not.
            let pending = std::sync::Mutex::new(batch.iter().enumerate().collect::<Vec<(usize, &String)>>());
            let pending = &pending;
            RetryPolicy::backend()
                .until("SendMessageBatch: messages refused", |_| async move {
                    let entries = pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .map(|(i, b)| {
                            SendMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .message_body(b.as_str())
                                .build()
                                .map_err(|e| Error::caused("SendMessageBatch entry", e, false))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let out = self
                        .client
                        .send_message_batch()
                        .queue_url(&self.url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| backend("SendMessageBatch", e))?;
                    let failed: Vec<String> = out.failed().iter().map(|f| f.id().to_string()).collect();
                    pending.lock().unwrap_or_else(|e| e.into_inner()).retain(|(i, _)| failed.contains(&i.to_string()));
                    Ok(failed.is_empty().then_some(()))
                })
                .await?;
        }
        Ok(())
    }
}

/// A dead-letter queue, read by the sweep: short polls (no wait), ten letters at most per
/// ReceiveMessage. A letter received and not deleted shows again after the queue's visibility
/// timeout (30 s unless set), before the next sweep.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsDeadLetters { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn receive(&self, max: usize) -> Result<Vec<DeadLetter>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, BATCH_ENTRIES) as i32)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receipt = m.receipt_handle()?.to_string();
                Some(DeadLetter { body: m.body().unwrap_or_default().to_string(), receipt })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend("DeleteMessage", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(bodies: &[String]) -> Vec<Vec<usize>> {
        batches(bodies).iter().map(|b| b.iter().map(String::len).collect()).collect()
    }

    #[test]
    fn batches_stop_at_ten_messages_or_one_mib() {
        let small: Vec<String> = (0..23).map(|i| i.to_string()).collect();
        assert_eq!(batches(&small).iter().map(|b| b.len()).collect::<Vec<_>>(), [10, 10, 3]);
        // Ten inventory chunks of 160 KiB are 1.6 MiB: six fit, then four.
        let big: Vec<String> = (0..10).map(|_| "x".repeat(160 * 1024)).collect();
        assert_eq!(sizes(&big), [vec![160 * 1024; 6], vec![160 * 1024; 4]]);
        assert!(batches(&big).iter().all(|b| b.iter().map(String::len).sum::<usize>() <= BATCH_BYTES));
        // Exactly 1 MiB fits in one batch; a body over it goes alone.
        let exact = vec!["a".repeat(BATCH_BYTES / 2), "b".repeat(BATCH_BYTES / 2), "c".into()];
        assert_eq!(sizes(&exact), [vec![BATCH_BYTES / 2, BATCH_BYTES / 2], vec![1]]);
        let over = vec!["d".into(), "e".repeat(BATCH_BYTES + 1), "f".into()];
        assert_eq!(sizes(&over), [vec![1], vec![BATCH_BYTES + 1], vec![1]]);
        assert!(batches(&[]).is_empty());
        let all: Vec<&String> = batches(&big).into_iter().flatten().collect();
        assert_eq!(all.len(), 10, "every body once, in order");
    }
}
