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
    /// How the event source mapping scales and how fast it hands a message on (defaults:
    /// `make sim`'s; `make sim-scale` models Lambda's).
    pub mapping: Mapping,
    /// Invocations running now.
    pub running: AtomicUsize,
}

/// What every function of one run shares: the lease its glue keeps, its chance of crashing,
/// and its mappings' pace.
#[derive(Clone, Copy, Debug)]
pub struct Fleet {
    pub lease: Duration,
    pub crash: f64,
    pub mapping: Mapping,
}

impl Fleet {
    /// The function `name`, fed by `queue`, up to `concurrency` invocations of `timeout`.
    pub fn function(
        &self,
        name: &'static str,
        queue: &Arc<SimQueue>,
        handler: Handler,
        timeout: Duration,
        concurrency: usize,
    ) -> Arc<Function> {
        let Fleet { lease, crash, mapping } = *self;
        let queue = queue.clone();
        Arc::new(Function {
            name,
            queue,
            handler,
            timeout,
            concurrency,
            lease,
            crash,
            mapping,
            running: Default::default(),
        })
    }
}

/// An SQS event source mapping's pace.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// How often an idle mapping polls.
    pub poll: Duration,
    /// Invocations it starts with and adds per minute while messages wait (no ramp: `None`).
    pub ramp: Option<(usize, usize)>,
    /// From a message received to the handler running, in ms (receive and invoke).
    pub start: Option<(u64, u64)>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping { poll: POLL, ramp: None, start: None }
    }
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
    /// Billed time (handler start to end) per function, for GB-seconds.
    pub busy: Mutex<std::collections::BTreeMap<&'static str, Duration>>,
}

/// How long a failed message waits before it comes back the first time (the glue's retry
/// delay; doubled with each delivery, as the glue does).
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// How often an idle event source mapping polls.
const POLL: Duration = Duration::from_millis(500);

impl Function {
    /// Polls and invokes until the end of time (the caller drops it).
    pub async fn run(self: Arc<Self>, rng: Rng, log: Arc<Invocations>) {
        let began = tokio::time::Instant::now();
        loop {
            let cap = match self.mapping.ramp {
                Some((first, per_minute)) => {
                    let minutes = began.elapsed().as_secs_f64() / 60.0;
                    self.concurrency.min(first + (minutes * per_minute as f64) as usize)
                }
                None => self.concurrency,
            };
            while self.running.load(Ordering::SeqCst) < cap {
                let Some(m) = self.queue.receive(self.lease) else { break };
                self.running.fetch_add(1, Ordering::SeqCst);
                let id = log.next.fetch_add(1, Ordering::SeqCst);
                let (me, rng, log) = (self.clone(), rng.clone(), log.clone());
                tokio::spawn(async move {
                    if let Some((lo, hi)) = me.mapping.start {
                        tokio::time::sleep(rng.millis(lo, hi)).await;
                    }
                    let began = tokio::time::Instant::now();
                    me.invoke(id, m, &rng, &log).await;
                    *log.busy.lock().unwrap_or_else(|e| e.into_inner()).entry(me.name).or_default() += began.elapsed();
                    me.running.fetch_sub(1, Ordering::SeqCst);
                });
            }
            tokio::time::sleep(self.mapping.poll).await;
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
