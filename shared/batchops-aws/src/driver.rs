//! The one SQS driver: how a queue message becomes one call of a stage's handler, whichever
//! runs it (Lambda's event source mapping, through [`serve`] and [`sqs_batch`], or
//! `batchops local`'s poller, through [`handle_record`]).
//!
//! Every message is handled inside a `message` span carrying the function, the message id and
//! the delivery's attempt number; the handler adds the job id and the chunk index once it has
//! read the message ([`note_message`]), so every log line of a message carries them. A failed
//! message is handed back with the delay its error asks for ([`Visibility::hand_back`]) or
//! left for SQS to deliver again; on Lambda only those are reported back
//! (`ReportBatchItemFailures`).
//!
//! With a [`Visibility`], every record of a Lambda batch is leased for a short window renewed
//! by a heartbeat while the batch runs (so a timed-out or crashed invocation's messages come
//! back within that window).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use batchops_core::job::JobId;
use batchops_core::Result;
use futures::future::join_all;
use tokio::time::Instant;
use tracing::{error, info, Instrument, Span};

use crate::{Clients, Config, Visibility};

/// One delivery of one message, as the handler gets it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times SQS has delivered the message, this time included (1 for the first).
    pub attempt: u32,
    /// When the invocation ends (Lambda's deadline; the function's timeout locally).
    pub deadline: Instant,
}

impl Delivery {
    /// A record of a Lambda SQS event.
    pub fn from_lambda(record: SqsMessage, deadline: Instant) -> Delivery {
        let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        Delivery {
            message_id: record.message_id.unwrap_or_default(),
            receipt: record.receipt_handle.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
            attempt,
            deadline,
        }
    }

    /// A message `ReceiveMessage` gave (asked with `ApproximateReceiveCount`).
    pub fn from_sqs(m: aws_sdk_sqs::types::Message, deadline: Instant) -> Delivery {
        let attempt = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Delivery {
            message_id: m.message_id.unwrap_or_default(),
            receipt: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            attempt,
            deadline,
        }
    }

    /// The span every log line of this message is written in; `job_id` and `chunk` are filled
    /// in by the handler ([`note_message`]). At the error level, so a filter of `warn` or
    /// `error` (as `make cost` runs) keeps the fields on the lines it lets through.
    fn span(&self, function: &'static str) -> Span {
        tracing::error_span!(
            "message",
            function,
            message_id = %self.message_id,
            attempt = self.attempt,
            job_id = tracing::field::Empty,
            chunk = tracing::field::Empty,
        )
    }
}

/// Records which job (and chunk) the message being handled is about in its span, so every
/// later log line of the message carries them.
pub fn note_message(job_id: Option<&JobId>, chunk: Option<u64>) {
    let span = Span::current();
    if let Some(id) = job_id {
        span.record("job_id", id.as_str());
    }
    if let Some(index) = chunk {
        span.record("chunk", index);
    }
}

/// Runs one delivery's handler inside its span and settles the message: true when it is done
/// with (delete it), false when SQS is to deliver it again. `run` is `None` when the function
/// timed out (its message comes again when its lease runs out). `before_hand_back` runs
/// before a failed message is handed back (Lambda stops renewing its lease there).
pub async fn handle_record<Run>(
    function: &'static str,
    delivery: &Delivery,
    visibility: Option<&Visibility>,
    run: Run,
    before_hand_back: impl FnOnce(),
) -> bool
where
    Run: Future<Output = Option<Result<()>>>,
{
    let settle = async {
        let e = match run.await {
            Some(Ok(())) => return true,
            Some(Err(e)) => e,
            None => {
                error!("the function timed out: its message comes again when its lease runs out");
                return false;
            }
        };
        before_hand_back();
        match e.retry_after() {
            Some(_) => info!(reason = %e, "message handed back"),
            None => error!(error = %e, "message failed; it will be delivered again"),
        }
        // A requeued message is done with: it is deleted (on Lambda, with the batch).
        match visibility {
            Some(v) => v.hand_back(&delivery.receipt, &delivery.body, &e, delivery.attempt).await,
            None => false,
        }
    };
    settle.instrument(delivery.span(function)).await
}

/// Handles the records of one Lambda SQS event side by side and reports the ones SQS is to
/// deliver again.
pub async fn sqs_batch<F, Fut>(
    function: &'static str,
    event: SqsEvent,
    deadline: Instant,
    visibility: Option<&Visibility>,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let held: Mutex<Vec<String>> = Mutex::new(event.records.iter().filter_map(|r| r.receipt_handle.clone()).collect());
    // The records side by side: they share the invocation's time, and one after another ten
    // slow ones (a big report's merges) would not end within it.
    let work = async {
        let one = |record: SqsMessage| {
            let delivery = Delivery::from_lambda(record, deadline);
            let (held, handle) = (&held, &handle);
            async move {
                let run = async { Some(handle(delivery.clone()).await) };
                // A record done with stays leased until the batch returns and Lambda deletes
                // it: a lease that lapsed while the others run would deliver it again.
                let forget = || held.lock().unwrap_or_else(|e| e.into_inner()).retain(|r| *r != delivery.receipt);
                let done = handle_record(function, &delivery, visibility, run, forget).await;
                (!done).then_some(delivery.message_id)
            }
        };
        let failed = join_all(event.records.into_iter().map(one)).await;
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

/// The `main` of a queue-driven Lambda function: logging, the configuration and clients from
/// the environment, the stage `build` makes (once per execution environment), and every SQS
/// event handled by [`sqs_batch`], under a lease on `queue(config)` when there is one (the
/// spec trigger's queue has none: its messages are quick and harmless to repeat).
pub async fn serve<S, B, H, Fut>(
    function: &'static str,
    queue: Option<fn(&Config) -> &str>,
    build: B,
    handle: H,
) -> std::result::Result<(), lambda_runtime::Error>
where
    S: Sync + 'static,
    B: FnOnce(&Config, &Clients) -> S,
    H: Fn(&'static S, Delivery) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    crate::init_tracing();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    // The stage lives as long as the execution environment: leaked once, borrowed by every
    // invocation.
    let stage: &'static S = Box::leak(Box::new(build(&config, &clients)));
    let visibility = &queue.map(|queue| config.visibility(&clients, queue(&config)));
    let handle = &handle;
    lambda_runtime::run(lambda_runtime::service_fn(|event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + left;
        let response = sqs_batch(function, event.payload, deadline, visibility.as_ref(), |d| handle(stage, d)).await;
        crate::health::flush_metrics(function);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
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
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        let response = sqs_batch("test", event(10), deadline, None, |d| async move {
            assert_eq!(d.attempt, 2);
            assert_eq!(d.deadline, deadline);
            tokio::time::sleep(Duration::from_secs(60)).await;
            match d.body.as_str() {
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

    #[tokio::test]
    async fn a_function_that_timed_out_leaves_its_message_to_come_again() {
        let d = Delivery::from_lambda(SqsMessage::default(), Instant::now());
        let mut forgotten = false;
        assert!(!handle_record("test", &d, None, async { None }, || forgotten = true).await);
        assert!(!forgotten, "a timed-out message is not handed back: its lease brings it again");
        assert!(handle_record("test", &d, None, async { Some(Ok(())) }, || unreachable!()).await);
    }

    /// A writer of log lines into a buffer the test reads.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    thread_local! {
        /// Where the log lines written on this thread go: the buffer of the test running on it
        /// ([`capture_logs`]), or nowhere.
        static CAPTURED: RefCell<Option<Lines>> = const { RefCell::new(None) };
    }

    /// A writer into this thread's captured lines (a line of a thread capturing none is dropped).
    struct ThisThread;

    impl std::io::Write for ThisThread {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with_borrow_mut(|captured| match captured {
                Some(lines) => std::io::Write::write(lines, buf),
                None => Ok(buf.len()),
            })
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The functions' JSON logs written on this thread from now on. One global subscriber,
    /// installed once, writes them, not a `set_default` one: while a scoped dispatcher is the only
    /// one, tracing-core (0.1.36, `Rebuilder::JustOne`) caches a callsite's interest from the
    /// default of whichever thread hits it first, so another test's thread reaching the driver's
    /// `error!` first cached "never" and this thread lost the line (tokio-rs/tracing#3611). The
    /// global default is every thread's, so any thread's first hit caches the right interest.
    fn capture_logs() -> Lines {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let logs = crate::config::json_logs(tracing_subscriber::EnvFilter::new("info"), || ThisThread);
            tracing::subscriber::set_global_default(logs).expect("the tests' only global subscriber");
            // A callsite another thread registered while the global default was being set.
            tracing::callsite::rebuild_interest_cache();
        });
        let lines = Lines::default();
        CAPTURED.with_borrow_mut(|captured| *captured = Some(lines.clone()));
        lines
    }

    #[tokio::test]
    async fn every_log_line_of_a_message_carries_its_message_job_and_chunk() {
        // GIVEN the functions' JSON logs, and a chunk message whose handler logs, then fails
        let lines = capture_logs();
        let mut d = Delivery::from_lambda(SqsMessage::default(), Instant::now());
        d.message_id = "m-1".into();
        let run = async {
            note_message(Some(&JobId::parse("job-12345").unwrap()), Some(7));
            info!("a task ran");
            Some(Err(batchops_core::Error::field("chunk message", "unreadable")))
        };
        // WHEN the driver handles it
        assert!(!handle_record("task-executor", &d, None, run, || {}).await);
        // THEN both lines (the handler's and the driver's) name the message, the job and the chunk
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let logged: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(logged.len(), 2, "{text}");
        for line in &logged {
            let span = &line["span"];
            assert_eq!(span["function"], "task-executor", "{line}");
            assert_eq!(span["message_id"], "m-1", "{line}");
            assert_eq!(span["job_id"], "job-12345", "{line}");
            assert_eq!(span["chunk"], 7, "{line}");
        }
        assert_eq!(logged[1]["fields"]["message"], "message failed; it will be delivered again");
    }
}
