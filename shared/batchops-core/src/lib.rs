//! The batchops domain, free of any AWS SDK or Lambda crate.
//!
//! A job runs one operation over every object of a manifest. Intake validates the CreateJob
//! spec and stores the job; the chunker streams the manifest and cuts it into byte ranges
//! (chunks) sent to a queue; the executor runs each chunk's tasks and records the chunk once;
//! the finalizer writes the completion report and ends the job. All of it talks to the world
//! through the ports in [`ports`], implemented by `batchops-aws` and by [`memory`].
//!
//! Layout:
//! - [`spec`]: the S3 Control CreateJob request, as JSON, and its field-by-field validation.
//! - [`ids`]: a job's id, its status and how times are written: the leaf everything names.
//! - [`fields`]: checks of single fields (lengths, ARNs, tag sets) shared by spec, generator and ops.
//! - [`job`]: the job record, its descriptor (DescribeJob/ListJobs shapes) and [`job::JobStatus`].
//! - [`state`]: the one state machine every status change goes through.
//! - [`manifest`]: CSV manifest rows (`S3BatchOperations_CSV_20180820`), URL-decoding of keys.
//! - [`inventory`]: S3 Inventory reports as manifests (`manifest.json`, `fileSchema`, gzip CSV files).
//! - [`generator`]: `ManifestGenerator`: listing filters and where a generated manifest goes.
//! - [`chunk`]: queue messages and chunk planning over manifest byte ranges.
//! - [`objects`]: what object storage answers (heads, listed objects, storage errors).
//! - [`ops`]: the operations, one module each, from spec parameters to a validated request.
//! - [`report`]: completion report rows, result files and `manifest.json`.
//! - [`clock`]: the one "now" of the domain, on tokio's clock so tests can pause it.
//! - [`retry`]: outcome classes and the backoff policy for transient failures.
//! - [`events`]: the status-change events every status write announces.
//! - [`metrics`]: what the stages count, as CloudWatch EMF lines and Prometheus text.
//! - [`schedule`]: schedule expressions (at, rate, AWS cron) and the firings job-intake gets.
//! - [`pipeline`]: intake, chunker, executor and finalizer logic over the ports.
//! - [`memory`]: in-memory implementations of the ports for fast tests.
//! - `contract` (tests, and the `contract-tests` feature): one suite per port, run against
//!   every backend.

pub mod chunk;
pub mod clock;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod error;
pub mod events;
pub mod fields;
pub mod generator;
pub mod ids;
pub mod inventory;
pub mod job;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod pipeline;
pub mod ports;
pub mod report;
pub mod resource;
pub mod retry;
pub mod schedule;
pub mod spec;
pub mod state;

pub use error::{Error, Result};

#[cfg(test)]
mod proptests;
