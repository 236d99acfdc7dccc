//! Lambda's SQS event source mapping, as the stack configures it: up to `concurrency`
//! invocations of batch size 1, each killed at the function's timeout, or at any await when
//! the seed crashes it. The handler glue is the functions' own: a message whose handler asks
//! to wait is requeued (it uses no receive); a failure is handed back after a delay; a message
//! leased while its handler runs (a heartbeat) comes back one lease after a crash.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::rng::Rng;
use crate::sqs::SimQueue;

tokio::task_local! {
    /// The invocation a task runs in: the runner notes it beside each task it runs.
    pub static INVOCATION: u64;
}

pub type Handler =
    Arc<dyn Fn(String, u32) -> Pin<Box<dyn Future<Output = batchops_core::Result<()>> + Send>> + Send + Sync>;

/// One function fed by one queue.
pub struct Function {
    pub name: &'static str,
    pub queue: Arc<SimQueue>,
    pub handler: Handler,
    pub timeout: Duration,
    pub concurrency: usize,
    /// The message lease the glue keeps while the handler runs.
    pub lease: Duration,
    /// Chance that an invocation crashes at a random instant before its timeout.
    pub crash: f64,
}

/// What the functions did, for the checks and the trace.
#[derive(Default)]
pub struct Invocations {
    next: AtomicU64,
    /// Invocations killed (timeout or crash): their tasks may have run unreported.
    pub killed: Mutex<std::collections::HashSet<u64>>,
    pub timeouts: AtomicU64,
    /// The functions of the invocations that ran into their timeout.
    pub timed_out: Mutex<Vec<&'static str>>,
    pub crashes: AtomicU64,
    pub count: AtomicU64,
}

/// How long a failed message waits before it comes back the first time (the glue's retry
/// delay; doubled with each delivery, as the glue does).
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// How often an idle event source mapping polls.
const POLL: Duration = Duration::from_millis(500);

impl Function {
    /// Polls and invokes until the end of time (the caller drops it).
    pub async fn run(self: Arc<Self>, rng: Rng, log: Arc<Invocations>) {
        let running = Arc::new(AtomicUsize::new(0));
        loop {
            while running.load(Ordering::SeqCst) < self.concurrency {
                let Some(m) = self.queue.receive(self.lease) else { break };
                running.fetch_add(1, Ordering::SeqCst);
                let id = log.next.fetch_add(1, Ordering::SeqCst);
                let (me, rng, log, running) = (self.clone(), rng.clone(), log.clone(), running.clone());
                tokio::spawn(async move {
                    me.invoke(id, m, &rng, &log).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn invoke(&self, id: u64, m: crate::sqs::Received, rng: &Rng, log: &Invocations) {
        log.count.fetch_add(1, Ordering::SeqCst);
        let crash = rng.chance(self.crash);
        let life = if crash { rng.millis(0, self.timeout.as_millis() as u64) } else { self.timeout };
        let work = (self.handler)(m.body.clone(), m.receives);
        let heartbeat = async {
            loop {
                self.queue.extend(m.id, self.lease);
                tokio::time::sleep(self.lease / 3).await;
            }
        };
        let leased = async {
            tokio::select! {
                biased;
                r = work => r,
                _ = heartbeat => unreachable!("the heartbeat runs until the work ends"),
            }
        };
        match tokio::time::timeout(life, INVOCATION.scope(id, leased)).await {
            Err(_) => {
                // Killed: no answer, no heartbeat; the message comes back when its lease lapses.
                log.killed.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                if crash {
                    log.crashes.fetch_add(1, Ordering::SeqCst);
                } else {
                    log.timeouts.fetch_add(1, Ordering::SeqCst);
                    log.timed_out.lock().unwrap_or_else(|e| e.into_inner()).push(self.name);
                }
            }
            Ok(Ok(())) => self.queue.delete(m.id),
            Ok(Err(e)) => match e.retry_after() {
                Some(after) => {
                    self.queue.put(m.body, after.min(Duration::from_secs(900)));
                    self.queue.delete(m.id);
                }
                None => {
                    let after = match e.is_transient() {
                        true => batchops_core::retry::redelivery_delay(RETRY_DELAY, m.receives),
                        false => Duration::ZERO,
                    };
                    self.queue.release(m.id, after)
                }
            },
        }
    }
}

/// Whether a task runs inside an invocation that was killed.
pub fn invocation() -> Option<u64> {
    INVOCATION.try_with(|i| *i).ok()
}
