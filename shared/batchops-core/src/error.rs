//! The one error type of the domain. Each variant maps to an S3 Control error code for the API.

use crate::job::{JobId, JobStatus};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request or spec that does not validate; `field` is the path of the offending member,
    /// e.g. `Operation.S3PutObjectCopy.TargetResource`.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("the request body is not valid JSON: {message}")]
    InvalidJson { message: String },
    /// A request over a documented size limit (bytes).
    #[error("{what} is over the limit of {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("job {job_id} does not exist")]
    JobNotFound { job_id: JobId },
    /// An illegal transition, or a conditional write that found the job in another status.
    #[error("job {job_id} is {actual}; {message}")]
    StatusConflict { job_id: JobId, actual: JobStatus, message: String },
    /// The caller may not do what it asked (CreateJob without `iam:PassRole` on the role).
    #[error("{message}")]
    AccessDenied { message: String },
    #[error("ClientRequestToken {token} was already used with a different request")]
    Idempotency { token: String },
    /// A failure of the storage, queue or database behind a port. `transient` tells whether
    /// retrying the whole message later may help.
    #[error("{context}: {message}")]
    Backend { context: String, message: String, transient: bool },
    /// The message cannot be handled now but will be later: hand it back to its queue to be
    /// delivered again after `retry_after` (a chunk another delivery holds, a finalizer
    /// waiting for chunks in flight, a worker shutting down).
    #[error("{message}")]
    NotYet { message: String, retry_after: std::time::Duration },
}

impl Error {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidField { field: field.into(), message: message.into() }
    }

    pub fn backend(context: impl Into<String>, source: impl std::fmt::Display) -> Self {
        Error::Backend { context: context.into(), message: source.to_string(), transient: true }
    }

    /// The S3 Control exception name and HTTP status the API answers with.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            Error::InvalidField { .. } | Error::InvalidJson { .. } => ("BadRequestException", 400),
            Error::TooLarge { .. } => ("RequestEntityTooLarge", 413),
            Error::JobNotFound { .. } => ("NotFoundException", 404),
            Error::StatusConflict { .. } => ("JobStatusException", 409),
            Error::Idempotency { .. } => ("IdempotencyException", 409),
            Error::AccessDenied { .. } => ("AccessDeniedException", 403),
            Error::Backend { .. } | Error::NotYet { .. } => ("InternalServiceException", 500),
        }
    }

    /// Whether handling the message again later may succeed. A permanent error fails its chunk
    /// or job at once instead of being delivered again until the dead-letter queue.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { transient, .. } => *transient,
            Error::NotYet { .. } => true,
            _ => false,
        }
    }

    /// How soon to deliver the message again when it is handed back.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::NotYet { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
