//! SQS as the stack uses it: a standard queue whose received messages stay invisible for a
//! window, come back when it lapses, and go to the dead-letter queue once received more than
//! `maxReceiveCount` times. Sends lose or duplicate messages as the seed says, and a message
//! over 256 KiB is refused, as SQS refuses it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use batchops_core::ports::{DeadLetter, DeadLetters, Queue};
use tokio::time::Instant;

use crate::rng::Rng;

/// SQS's largest message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What the seed makes of sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendFaults {
    /// Accepted, then never delivered.
    pub lost: f64,
    pub duplicated: f64,
    /// Refused (an SQS outage): the send fails from that message on.
    pub failed: f64,
}

struct Message {
    id: u64,
    body: String,
    visible_at: Instant,
    receives: u32,
}

#[derive(Default)]
struct State {
    next_id: u64,
    messages: Vec<Message>,
    dead: Vec<String>,
    /// Letters received from the dead-letter queue and not yet deleted, by receipt.
    held: std::collections::BTreeMap<u64, String>,
    /// Messages ever moved to the dead-letter queue.
    dead_lettered: usize,
    /// Bodies refused for their size: a violation of SQS's limit by the pipeline.
    oversized: Vec<usize>,
    lost: u64,
}

pub struct SimQueue {
    pub name: &'static str,
    state: Mutex<State>,
    max_receives: u32,
    faults: SendFaults,
    rng: Rng,
    /// How long a SendMessage call takes, in ms (`make sim-scale`); instant in `make sim`.
    send_latency: Option<(u64, u64)>,
}

/// A message as a consumer receives it.
pub struct Received {
    pub id: u64,
    pub body: String,
    /// This receive included.
    pub receives: u32,
}

impl SimQueue {
    pub fn new(name: &'static str, max_receives: u32, faults: SendFaults, rng: Rng) -> Arc<SimQueue> {
        Arc::new(SimQueue { name, state: Mutex::default(), max_receives, faults, rng, send_latency: None })
    }

    /// A queue without faults whose sends take SQS's latency (`make sim-scale`).
    pub fn modelled(name: &'static str, max_receives: u32, rng: Rng, send_latency: (u64, u64)) -> Arc<SimQueue> {
        let faults = SendFaults::default();
        let state = Mutex::default();
        Arc::new(SimQueue { name, state, max_receives, faults, rng, send_latency: Some(send_latency) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a message in, `delay` from now, whatever the faults (a requeue, the timer).
    pub fn put(&self, body: String, delay: Duration) {
        let mut s = self.state();
        if body.len() > MAX_MESSAGE_BYTES {
            s.oversized.push(body.len());
            return;
        }
        s.next_id += 1;
        let id = s.next_id;
        s.messages.push(Message { id, body, visible_at: Instant::now() + delay, receives: 0 });
    }

    /// Receives a visible message (any of them: a standard queue keeps no order), invisible
    /// for `window`; one received more than `maxReceiveCount` times goes to the dead letters.
    pub fn receive(&self, window: Duration) -> Option<Received> {
        let now = Instant::now();
        let mut s = self.state();
        loop {
            let visible: Vec<usize> =
                s.messages.iter().enumerate().filter(|(_, m)| m.visible_at <= now).map(|(i, _)| i).collect();
            if visible.is_empty() {
                return None;
            }
            let i = visible[(self.rng.next() % visible.len() as u64) as usize];
            if s.messages[i].receives >= self.max_receives {
                let dead = s.messages.swap_remove(i);
                s.dead.push(dead.body);
                s.dead_lettered += 1;
                continue;
            }
            let m = &mut s.messages[i];
            m.receives += 1;
            m.visible_at = now + window;
            return Some(Received { id: m.id, body: m.body.clone(), receives: m.receives });
        }
    }

    /// Keeps a received message invisible for `window` more (the handler's heartbeat).
    pub fn extend(&self, id: u64, window: Duration) {
        if let Some(m) = self.state().messages.iter_mut().find(|m| m.id == id) {
            m.visible_at = Instant::now() + window;
        }
    }

    /// Makes a received message visible again after `after` (a failure handed back).
    pub fn release(&self, id: u64, after: Duration) {
        self.extend(id, after);
    }

    pub fn delete(&self, id: u64) {
        self.state().messages.retain(|m| m.id != id);
    }

    /// Messages ever moved to the dead-letter queue.
    pub fn dead_lettered(&self) -> usize {
        self.state().dead_lettered
    }

    pub fn oversized(&self) -> Vec<usize> {
        self.state().oversized.clone()
    }

    pub fn lost(&self) -> u64 {
        self.state().lost
    }

    pub fn len(&self) -> usize {
        self.state().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The queue's dead-letter queue, as the sweep reads it: a letter received and not deleted
/// comes back at the next receive.
#[async_trait]
impl DeadLetters for SimQueue {
    async fn receive(&self, max: usize) -> batchops_core::Result<Vec<DeadLetter>> {
        let mut s = self.state();
        let back: Vec<String> = std::mem::take(&mut s.held).into_values().collect();
        s.dead.extend(back);
        let n = max.min(s.dead.len());
        let letters: Vec<String> = s.dead.drain(..n).collect();
        let mut out = Vec::with_capacity(letters.len());
        for body in letters {
            s.next_id += 1;
            let receipt = s.next_id;
            s.held.insert(receipt, body.clone());
            out.push(DeadLetter { body, receipt: receipt.to_string() });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> batchops_core::Result<()> {
        if let Ok(r) = receipt.parse::<u64>() {
            self.state().held.remove(&r);
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SimQueue {
    async fn send(&self, bodies: Vec<String>) -> batchops_core::Result<()> {
        if let Some((lo, hi)) = self.send_latency {
            // One SendMessageBatch call per ten messages, made one after another.
            for _ in 0..bodies.len().div_ceil(10) {
                tokio::time::sleep(self.rng.millis(lo, hi)).await;
            }
        }
        for body in bodies {
            if self.rng.chance(self.faults.failed) {
                return Err(batchops_core::Error::transient("SendMessage", "ServiceUnavailable (simulated)"));
            }
            if self.rng.chance(self.faults.lost) {
                self.state().lost += 1;
                continue;
            }
            if self.rng.chance(self.faults.duplicated) {
                self.put(body.clone(), Duration::ZERO);
            }
            self.put(body, Duration::ZERO);
        }
        Ok(())
    }

    async fn depth(&self) -> batchops_core::Result<u64> {
        if let Some((lo, hi)) = self.send_latency {
            // GetQueueAttributes: one SQS request.
            tokio::time::sleep(self.rng.millis(lo, hi)).await;
        }
        Ok(self.len() as u64)
    }
}
