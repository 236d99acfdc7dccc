//! A queue in memory, and its dead letters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::store::lock;
use crate::ports::{DeadLetter, DeadLetters, Queue};
use crate::Result;

/// A FIFO queue of message bodies. Read as a dead-letter queue ([`DeadLetters`]), a letter
/// received is in flight until deleted (receipts `r1`, `r2`, ...).
#[derive(Default)]
pub struct InMemoryQueue {
    messages: Mutex<VecDeque<String>>,
    in_flight: Mutex<(u64, BTreeMap<String, String>)>,
}

impl InMemoryQueue {
    pub fn pop(&self) -> Option<String> {
        lock(&self.messages).pop_front()
    }

    /// Letters received and not deleted.
    pub fn in_flight(&self) -> usize {
        lock(&self.in_flight).1.len()
    }

    pub fn len(&self) -> usize {
        lock(&self.messages).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Queue for InMemoryQueue {
    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        lock(&self.messages).extend(bodies);
        Ok(())
    }

    async fn depth(&self) -> Result<u64> {
        Ok(self.len() as u64)
    }
}

#[async_trait]
impl DeadLetters for InMemoryQueue {
    async fn receive(&self, max: usize) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        let mut in_flight = lock(&self.in_flight);
        while out.len() < max {
            let Some(body) = self.pop() else { break };
            in_flight.0 += 1;
            let receipt = format!("r{}", in_flight.0);
            in_flight.1.insert(receipt.clone(), body.clone());
            out.push(DeadLetter { body, receipt });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        lock(&self.in_flight).1.remove(receipt);
        Ok(())
    }
}
