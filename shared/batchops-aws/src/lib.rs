//! Adapters of the batchops ports to AWS: DynamoDB job store, SQS queues, S3 object store and
//! S3 operations, plus the typed configuration every binary reads once at start-up.
//!
//! Every client is built from one `SdkConfig`, which honours the SDK's standard
//! `AWS_ENDPOINT_URL*` variables; when an endpoint is set, S3 uses path-style addressing, so
//! the same code runs against AWS, moto server or any S3-compatible store.

pub mod clients;
pub mod config;
pub mod driver;
pub mod dynamo;
pub mod errors;
pub mod events;
pub mod health;
#[cfg(feature = "metering")]
pub mod metering;
pub mod ops;
pub mod resources;
pub mod responder;
pub mod roles;
pub mod s3;
pub mod sqs;
pub mod visibility;

pub use clients::{Clients, DataClients};
pub use config::{init_tracing, Config};
pub use dynamo::DynamoJobStore;
pub use events::EventBridgeEvents;
pub use ops::{OpsSettings, S3OperationRunner};
pub use responder::HttpResponder;
pub use roles::{IamPassRole, StsRoles};
pub use s3::S3ObjectStore;
pub use sqs::{SqsDeadLetters, SqsQueue};
pub use visibility::Visibility;
