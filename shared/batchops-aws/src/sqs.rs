//! SQS queues: SendMessageBatch, ten messages per call.

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use batchops_core::ports::Queue;
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

#[async_trait]
impl Queue for SqsQueue {
    async fn depth(&self) -> Result<u64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let names = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", e))?;
        let attrs = out.attributes();
        Ok(names.iter().filter_map(|n| attrs.and_then(|a| a.get(n)).and_then(|v| v.parse::<u64>().ok())).sum())
    }

    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        for batch in bodies.chunks(10) {
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
                                .map_err(|e| Error::backend("SendMessageBatch entry", e))
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
