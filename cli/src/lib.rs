//! The `batchops` command as a library: the API client used by the job verbs, and the local
//! runtime behind `batchops local` (also started in-process by the end-to-end tests).

pub mod client;
pub mod console;
pub mod health;
pub mod http;
pub mod local;
pub mod schedules;
