//! The four stages of a job, as plain async code over the ports. The Lambda functions and
//! `batchops local` call exactly these.

pub mod chunker;
pub mod dead_letters;
pub mod describe;
pub mod dispatcher;
pub mod dry_run;
pub mod executor;
pub mod failures;
pub mod finalizer;
pub mod health;
pub mod intake;
pub mod limiter;
pub mod report_links;
pub mod resource;
pub mod retry_failed;
pub mod stage;
pub mod sweep;

pub use chunker::Chunker;
pub use executor::Executor;
pub use finalizer::Finalizer;
pub use intake::Intake;
pub(crate) use stage::{encode, now, now_ms, ports_for, send_one};
pub use stage::{
    expire_suspended, fail_job, finalize_if_done, modify, request_finalize, transition, transition_from, Settings,
    Shutdown, StagePorts,
};

#[cfg(test)]
mod tests;
