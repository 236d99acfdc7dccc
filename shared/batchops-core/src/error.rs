//! The one error type of the domain. Each variant maps to an S3 Control error code for the API.

use crate::ids::{BadJobId, JobId, JobStatus};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request or spec that does not validate; `field` is the path of the offending member,
    /// e.g. `Operation.S3PutObjectCopy.TargetResource`.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// A request body that cannot be read (not JSON, not XML, nested too deep); the message
    /// says what and where.
    #[error("{message}")]
    InvalidBody { message: String },
    /// A request over a documented size limit (bytes).
    #[error("{what} is over the limit of {limit} bytes")]
    TooLarge { what: String, limit: usize },
    /// A request whose body did not arrive within the API's deadline (seconds).
    #[error("{what} did not arrive within {seconds} s")]
    TooSlow { what: String, seconds: u64 },
    #[error("job {job_id} does not exist")]
    JobNotFound { job_id: JobId },
    /// A transition the state machine does not allow from the job's status.
    #[error("job {job_id} is {actual}; {message}")]
    StatusConflict { job_id: JobId, actual: JobStatus, message: String },
    /// A conditional write that lost the race: another writer changed the job first. Read it
    /// again and retry ([`crate::retry::optimistic`]).
    #[error("job {job_id} was changed by another writer")]
    Conflict { job_id: JobId },
    /// The caller may not do what it asked (CreateJob without `iam:PassRole` on the role).
    #[error("{message}")]
    AccessDenied { message: String },
    /// PutJobTagging with more tags than a job holds.
    #[error("{message}")]
    TooManyTags { message: String },
    #[error("ClientRequestToken {token} was already used with a different request")]
    Idempotency { token: String },
    /// A failure of the storage, queue or database behind a port, with its cause when there
    /// is one. `transient` tells whether handling the message again later may help.
    #[error("{context}: {message}")]
    Backend {
        context: String,
        message: String,
        transient: bool,
        #[source]
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The message cannot be handled now but will be later: hand it back to its queue to be
    /// delivered again after `retry_after` (a chunk another delivery holds, a finalizer
    /// waiting for chunks in flight, a worker shutting down).
    #[error("{message}")]
    NotYet { message: String, retry_after: std::time::Duration },
}

impl From<BadJobId> for Error {
    fn from(_: BadJobId) -> Self {
        Error::field("JobId", BadJobId::RULE)
    }
}

impl Error {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidField { field: field.into(), message: message.into() }
    }

    /// A body that is not the JSON asked for.
    pub fn invalid_json(message: impl std::fmt::Display) -> Self {
        Error::InvalidBody { message: format!("the request body is not valid JSON: {message}") }
    }

    /// A backend failure that may pass (a race lost, retries used up on throttling): the
    /// message is handed back and handled again.
    pub fn transient(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Backend { context: context.into(), message: message.to_string(), transient: true, source: None }
    }

    /// A backend failure that handling the message again cannot mend (an item or message
    /// that cannot be read, a request that cannot be built): the job fails now with its
    /// reason instead of the message going round until it is dead-lettered. With a cause,
    /// use [`Error::caused`].
    pub fn permanent(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Backend { context: context.into(), message: message.to_string(), transient: false, source: None }
    }

    /// A backend failure caused by `source` (kept, for logs and callers that look inside).
    pub fn caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        transient: bool,
    ) -> Self {
        Error::Backend {
            context: context.into(),
            message: source.to_string(),
            transient,
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// The S3 Control exception name and HTTP status the API answers with.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            Error::InvalidField { .. } | Error::InvalidBody { .. } => ("BadRequestException", 400),
            Error::TooLarge { .. } => ("RequestEntityTooLarge", 413),
            Error::TooSlow { .. } => ("RequestTimeout", 408),
            Error::JobNotFound { .. } => ("NotFoundException", 404),
            Error::StatusConflict { .. } => ("JobStatusException", 409),
            Error::Conflict { .. } => ("TooManyRequestsException", 429),
            Error::Idempotency { .. } => ("IdempotencyException", 409),
            Error::TooManyTags { .. } => ("TooManyTagsException", 400),
            Error::AccessDenied { .. } => ("AccessDeniedException", 403),
            Error::Backend { .. } | Error::NotYet { .. } => ("InternalServiceException", 500),
        }
    }

    /// Whether handling the message again later may succeed. A permanent error fails its chunk
    /// or job at once instead of being delivered again until the dead-letter queue.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { transient, .. } => *transient,
            Error::NotYet { .. } | Error::Conflict { .. } => true,
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

/// The one answer to "may trying again help?" for any AWS answer, by its HTTP status and error
/// code: every retry of a task and every redelivery decision of the backends asks it. No
/// answer at all (status 0: a timeout, a refused or cut connection), a 5xx, a 429, and the
/// throttling and timeout codes of S3, DynamoDB, SQS, STS, IAM, Lambda and EventBridge are
/// transient. Anything else (NoSuchKey, AccessDenied, ConditionalCheckFailedException,
/// ValidationException ...) is permanent: the same request gets the same answer.
pub fn is_transient(http_status: u16, code: &str) -> bool {
    http_status == 0
        || http_status >= 500
        || http_status == 429
        || code.contains("Throttl")
        || matches!(
            code,
            "SlowDown"
                | "RequestTimeout"
                | "RequestTimeoutException"
                | "RequestTimeTooSkewed"
                | "InternalError"
                | "InternalFailure"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "ProvisionedThroughputExceededException"
                | "TransactionInProgressException"
                | "TransactionConflictException"
                | "OperationAborted"
                | "PriorRequestNotComplete"
                | "IDPCommunicationError"
                | "NetworkError"
                // An answer that could not be read (the connection cut while it came).
                | "ResponseError"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn backend_errors_keep_their_cause_and_say_whether_to_retry() {
        let io = std::io::Error::other("connection reset");
        let e = Error::caused("GetItem job", io, true);
        assert!(e.is_transient());
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("connection reset"));
        assert!(!Error::caused("GetItem job", std::io::Error::other("denied"), false).is_transient());
        assert!(!Error::field("Priority", "must be 0-2147483647").is_transient());
        let raced = Error::Conflict { job_id: JobId::parse("job-12345").unwrap() };
        assert!(raced.is_transient(), "a lost race is retried");
        let illegal = Error::StatusConflict {
            job_id: JobId::parse("job-12345").unwrap(),
            actual: JobStatus::Complete,
            message: "it cannot move to Active".into(),
        };
        assert!(!illegal.is_transient(), "an illegal transition is not");
        assert_eq!(illegal.code_and_status(), ("JobStatusException", 409));
    }
}
