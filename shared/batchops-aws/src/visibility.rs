//! Message leases on SQS: a message being handled is kept invisible for a short window that a
//! heartbeat extends while the work runs. A worker that dies (a crash, a Lambda timeout, a
//! `kill -9`) stops extending it, so its message comes back within one window instead of the
//! queue's whole visibility timeout (which Lambda requires to exceed the function's timeout).
//! A message that cannot be handled now is handed back with the delay its error asks for.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use batchops_core::retry::redelivery_delay;
use batchops_core::Error;
use tracing::warn;

/// Leases on the messages of one queue.
#[derive(Clone, Debug)]
pub struct Visibility {
    sqs: aws_sdk_sqs::Client,
    url: String,
    /// How long a message stays invisible without a heartbeat.
    pub window: Duration,
    /// Delay before a message that failed with a transient error is delivered again.
    pub retry_delay: Duration,
}

impl Visibility {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>, window: Duration, retry_delay: Duration) -> Self {
        Visibility { sqs, url: url.into(), window, retry_delay }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the messages visible again after `after` (0: at once). Failures are logged: the
    /// message then comes back when its current window ends. One request per message: the
    /// batch request would need its own permission on emulators (IAM authorizes both as
    /// `sqs:ChangeMessageVisibility`), and a batch holds one message but on Lambda's side.
    pub async fn set(&self, receipts: &[String], after: Duration) {
        // SQS takes whole seconds, at most 12 hours.
        let secs = after.as_secs_f64().ceil().min(43_200.0) as i32;
        for receipt in receipts {
            let sent = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .visibility_timeout(secs)
                .send()
                .await;
            if let Err(e) = sent {
                warn!(queue = %self.url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "message lease not changed");
            }
        }
    }

    /// Hands a message back without using up one of its receives: a copy is sent, delayed
    /// as asked (SQS delays at most 15 minutes), and the caller deletes the original. A
    /// hand-back is a wait, not a failure: counted as receives, the waits of a finalizer for a
    /// slow chunk sent its job's finalize message to the dead-letter queue. False when the copy
    /// could not be sent: then hand the original back with [`Visibility::set`].
    pub async fn requeue(&self, body: &str, after: Duration) -> bool {
        let delay = after.as_secs_f64().ceil().min(900.0) as i32;
        let sent = self.sqs.send_message().queue_url(&self.url).message_body(body).delay_seconds(delay).send().await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                warn!(queue = %self.url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "message not requeued; handed back");
                false
            }
        }
    }

    /// Hands back a message whose handling answered `e`: requeued when the error asks to wait
    /// (true: the original is done with), else made visible again after its delay.
    pub async fn hand_back(&self, receipt: &str, body: &str, e: &Error, attempt: u32) -> bool {
        if let Some(after) = e.retry_after() {
            if self.requeue(body, after).await {
                return true;
            }
        }
        self.set(&[receipt.to_string()], self.after_failure(e, attempt)).await;
        false
    }

    /// Extends the leases of the messages in `held` every third of the window, at once first,
    /// for as long as it is polled (run it beside the work with `select!`).
    pub async fn heartbeat(&self, held: &Mutex<Vec<String>>) {
        loop {
            let receipts = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if !receipts.is_empty() {
                self.set(&receipts, self.window).await;
            }
            tokio::time::sleep(self.window / 3).await;
        }
    }

    /// Runs `work` on one message with its lease kept alive.
    pub async fn hold<T>(&self, receipt: &str, work: impl Future<Output = T>) -> T {
        let held = Mutex::new(vec![receipt.to_string()]);
        tokio::select! {
            out = work => out,
            _ = self.heartbeat(&held) => unreachable!("the heartbeat runs until the work ends"),
        }
    }

    /// When a message whose delivery number `attempt` failed with `e` should come back: as
    /// the error asks (a chunk handed back, a finalizer waiting), after the retry delay doubled
    /// with each delivery when transient ([`redelivery_delay`]), at once when permanent (it is
    /// headed for the dead-letter queue, where it can be inspected).
    pub fn after_failure(&self, e: &Error, attempt: u32) -> Duration {
        match e.retry_after() {
            Some(after) => after,
            None if e.is_transient() => redelivery_delay(self.retry_delay, attempt),
            None => Duration::ZERO,
        }
    }
}
