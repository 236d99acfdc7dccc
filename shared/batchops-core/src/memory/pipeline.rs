//! The whole pipeline on the in-memory ports: intake, chunker, dispatcher, executor and
//! finalizer wired as the functions wire them, and one step of the event source mappings. The
//! pipeline's tests and the fuzz targets run their jobs through it (each with its own runner,
//! events and settings), so the wiring is written once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{InMemoryJobStore, InMemoryObjectStore, InMemoryQueue};
use crate::chunk::{ChunkMessage, ControlMessage, FinalizeMessage};
use crate::events::Events;
use crate::events::NoEvents;
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::{Chunker, Executor, Finalizer, Intake, Settings, StagePorts};
use crate::ports::RoleAccess;
use crate::{Error, Result};

/// The stages over one set of in-memory ports. Cheap to build (every field is shared), so a
/// caller may make one per step.
#[derive(Clone)]
pub struct InMemoryPipeline {
    pub store: Arc<InMemoryJobStore>,
    pub objects: Arc<InMemoryObjectStore>,
    pub roles: Arc<dyn RoleAccess>,
    pub control: Arc<InMemoryQueue>,
    pub chunks: Arc<InMemoryQueue>,
    pub finalize: Arc<InMemoryQueue>,
    pub events: Arc<dyn Events>,
    pub settings: Settings,
    /// The chunk queue's depth the dispatcher keeps (large: every chunk released at once).
    pub depth: u64,
}

/// Which queue a step took its message from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Control,
    Chunks,
    Finalize,
}

/// What one step did.
#[derive(Debug)]
pub enum Stepped {
    /// A message of `stage` was handled; `result` is its handler's (the message is not sent
    /// again here: the caller plays SQS's redelivery as it needs).
    Handled { stage: Stage, body: String, result: Result<()> },
    /// The queues were empty; a dispatcher round released this many chunks.
    Dispatched(usize),
}

impl InMemoryPipeline {
    /// Every port in memory and empty, no status events, every chunk released at once; a job
    /// acts through `roles` (its objects in `objects`).
    pub fn new(objects: Arc<InMemoryObjectStore>, roles: Arc<dyn RoleAccess>, settings: Settings) -> Self {
        InMemoryPipeline {
            store: Arc::default(),
            objects,
            roles,
            control: Arc::default(),
            chunks: Arc::default(),
            finalize: Arc::default(),
            events: Arc::new(NoEvents),
            settings,
            depth: 1_000_000,
        }
    }

    pub fn dispatcher(&self) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            store: self.store.clone(),
            events: self.events.clone(),
            backlog: self.store.clone(),
            chunks: self.chunks.clone(),
            depth: self.depth,
        })
    }

    /// What every stage is wired with.
    pub fn ports(&self) -> StagePorts {
        StagePorts {
            store: self.store.clone(),
            events: self.events.clone(),
            roles: self.roles.clone(),
            finalize: self.finalize.clone(),
            settings: self.settings.clone(),
        }
    }

    pub fn chunker(&self) -> Chunker {
        Chunker {
            ports: self.ports(),
            control: self.control.clone(),
            dispatcher: self.dispatcher(),
            dead_letters: Default::default(),
        }
    }

    /// The executor, with a real time budget when the settings give none: a zero budget
    /// stresses the chunker's hand-ons, but an executor's invocation always has one (with
    /// none, every task it starts would be cut off at once).
    pub fn executor(&self) -> Executor {
        let mut settings = self.settings.clone();
        if settings.time_budget.is_zero() {
            settings.time_budget = Duration::from_secs(60);
        }
        Executor {
            ports: StagePorts { settings, ..self.ports() },
            shutdown: Default::default(),
            limits: Default::default(),
            dispatcher: self.dispatcher(),
        }
    }

    pub fn finalizer(&self) -> Finalizer {
        Finalizer { ports: self.ports() }
    }

    pub fn intake(&self) -> Intake {
        Intake { ports: self.ports(), control: self.control.clone(), pass_role: None }
    }

    /// Handles one message (control first, then chunks, then finalize, each as its function
    /// would, the chunker with `chunker_budget` of time), or runs a dispatcher round when the
    /// queues are empty. A message that cannot be read is an error.
    pub async fn step(&self, chunker_budget: Duration) -> Result<Stepped> {
        let unreadable = |what: &str, e: &dyn std::fmt::Display| Error::field(what, format!("unreadable: {e}"));
        let (stage, body, result) = if let Some(body) = self.control.pop() {
            let msg: ControlMessage = serde_json::from_str(&body).map_err(|e| unreadable("control message", &e))?;
            let result = self.chunker().handle(msg, Instant::now() + chunker_budget).await;
            (Stage::Control, body, result)
        } else if let Some(body) = self.chunks.pop() {
            let msg = ChunkMessage::decode(&body).map_err(|e| unreadable("chunk message", &e))?;
            let result = self.executor().handle(&msg).await.map(|_| ());
            (Stage::Chunks, body, result)
        } else if let Some(body) = self.finalize.pop() {
            let msg: FinalizeMessage = serde_json::from_str(&body).map_err(|e| unreadable("finalize message", &e))?;
            let result = self.finalizer().handle(&msg).await.map(|_| ());
            (Stage::Finalize, body, result)
        } else {
            return Ok(Stepped::Dispatched(self.dispatcher().dispatch().await?.released.len()));
        };
        Ok(Stepped::Handled { stage, body, result })
    }

    /// The queue a stage reads.
    pub fn queue(&self, stage: Stage) -> &Arc<InMemoryQueue> {
        match stage {
            Stage::Control => &self.control,
            Stage::Chunks => &self.chunks,
            Stage::Finalize => &self.finalize,
        }
    }
}
