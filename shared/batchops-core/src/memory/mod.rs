//! In-memory implementations of the ports: real backends for fast tests of the domain (and
//! the reference the AWS adapters' contract tests compare against, [`crate::contract`]).
//!
//! One file per port: the job store's parts ([`JobRecords`](crate::ports::JobRecords) in
//! `records.rs`, [`ChunkLedger`](crate::ports::ChunkLedger) in `chunks.rs`,
//! [`ReportLedger`](crate::ports::ReportLedger) in `report.rs`, [`Backlog`](crate::ports::Backlog)
//! in `backlog.rs`) over the state in `store.rs`; queues, objects and roles beside them; and
//! [`pipeline`]: every stage wired over them, as the tests and the fuzz targets run jobs.

mod backlog;
mod chunks;
mod objects;
pub mod pipeline;
mod queue;
mod records;
mod report;
mod roles;
mod store;

pub use objects::InMemoryObjectStore;
pub use pipeline::InMemoryPipeline;
pub use queue::InMemoryQueue;
pub use roles::{InMemoryPassRole, InMemoryRoles, NoRoles};
pub use store::{InMemoryJobStore, LostAnswers, ITEM_BYTES, TRANSACTION_BYTES, TRANSACTION_ITEMS};

#[cfg(test)]
mod tests {
    //! The in-memory backends keep the ports' contracts ([`crate::contract`]).

    use super::*;
    use crate::contract;

    #[tokio::test]
    async fn the_in_memory_job_records_keep_the_contract() {
        contract::job_records(&InMemoryJobStore::default()).await.unwrap();
    }

    #[tokio::test]
    async fn the_in_memory_chunk_ledger_keeps_the_contract() {
        contract::chunk_ledger(&InMemoryJobStore::default()).await.unwrap();
    }

    #[tokio::test]
    async fn the_in_memory_report_ledger_keeps_the_contract() {
        contract::report_ledger(&InMemoryJobStore::default()).await.unwrap();
    }

    #[tokio::test]
    async fn the_in_memory_backlog_keeps_the_contract() {
        contract::backlog(&InMemoryJobStore::default()).await.unwrap();
    }

    #[tokio::test]
    async fn the_in_memory_object_store_keeps_the_contract() {
        contract::object_store(&InMemoryObjectStore::default(), "bucket").await.unwrap();
    }
}
