//! The contract of each storage port, written once and run against every backend: the
//! in-memory ones by this crate's unit tests (`memory/mod.rs`), the AWS adapters against the
//! local emulator by `tests/e2e/contract.rs`, so that both behave the same. Each suite takes
//! the port as a trait object (the chunk ledger, which counts into job records and hands
//! chunks on into the backlog, a store of all three) and asserts what a backend could get
//! wrong: conditional writes that lose races, claims that lapse, pages that go on past a
//! page's bytes.
//!
//! Built for this crate's tests, and for other crates' behind the `contract-tests` feature.
//! A failed expectation panics with what was expected; a backend error is returned.

mod backlog;
mod chunks;
mod fixtures;
mod objects;
mod records;
mod report;

pub use backlog::backlog;
pub use chunks::chunk_ledger;
pub use objects::object_store;
pub use records::job_records;
pub use report::report_ledger;
