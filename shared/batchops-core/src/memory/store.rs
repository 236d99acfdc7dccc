//! The in-memory job store's state, and the DynamoDB limits it keeps: what the files beside
//! it share. It depends on none of them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::job::{Job, JobId};
use crate::ports::{ChunkLease, ChunkRecord, SegmentRecord, Sighting};
use crate::{Error, Result};

/// A poisoned lock is taken as it is: a test that panicked holding it has failed already.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// DynamoDB's largest item. The store refuses a record larger than that as DynamoDB does, so
/// what would fail there fails in every test and simulation too.
pub const ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's largest transaction (TransactWriteItems).
pub const TRANSACTION_ITEMS: usize = 100;
pub const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn fits_an_item(what: &str, bytes: usize) -> Result<()> {
    match bytes > ITEM_BYTES {
        true => Err(Error::permanent(
            what,
            format!("ValidationException: Item size has exceeded the maximum allowed size ({bytes} bytes)"),
        )),
        false => Ok(()),
    }
}

pub(super) fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_string(value).map_or(0, |j| j.len())
}

#[derive(Default)]
pub(super) struct StoreState {
    pub(super) jobs: HashMap<JobId, Job>,
    pub(super) tokens: HashMap<String, (JobId, String)>,
    pub(super) chunks: HashMap<JobId, BTreeMap<u64, ChunkRecord>>,
    pub(super) segments: HashMap<JobId, BTreeMap<u64, SegmentRecord>>,
    /// The delivery that recorded each chunk.
    pub(super) recorders: HashMap<(JobId, u64), String>,
    pub(super) files_read: HashMap<JobId, HashSet<(&'static str, u64)>>,
    pub(super) leases: HashMap<JobId, BTreeMap<u64, ChunkLease>>,
    pub(super) backlog: HashMap<JobId, BTreeMap<u64, String>>,
    pub(super) runnable: BTreeMap<JobId, u64>,
    pub(super) dispatch_lock: Option<(String, tokio::time::Instant)>,
    pub(super) sightings: HashMap<JobId, Sighting>,
    /// Chunk indexes given out for chunks handed on, by job.
    pub(super) allocated: HashMap<JobId, u64>,
}

/// Which job writes apply but answer [`Error::Conflict`], as a DynamoDB put whose answer was
/// lost answers its SDK retry (tests of the hardest fault: did my write happen?).
pub type LostAnswers = Box<dyn Fn(&Job) -> bool + Send + Sync>;

/// The job store in memory: one value implements every part of
/// [`JobStore`](crate::ports::JobStore) and the [`Backlog`](crate::ports::Backlog), over one
/// state under one lock, so a record and its counters change together as DynamoDB's
/// transactions change them (`records.rs`, `chunks.rs`, `report.rs`, `backlog.rs`).
#[derive(Default)]
pub struct InMemoryJobStore {
    pub(super) state: Mutex<StoreState>,
    /// Set by tests: the puts whose answers are lost.
    pub lose_put_answers: Mutex<Option<LostAnswers>>,
    /// Set by tests: how many of the next chunk records are throttled (not applied).
    pub throttle_records: Mutex<u32>,
}
