//! SDK errors into domain errors, keeping the HTTP status and the error code S3 gave.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use batchops_core::ports::StorageError;
use batchops_core::retry::{is_transient, TaskFailure};
use batchops_core::Error;

/// The status, code and message of any SDK error. Errors without a response (timeouts,
/// connection failures) get status 0 and are transient.
pub fn parts<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, Response>,
) -> (u16, String, String) {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let err = se.err();
            let code = err.code().map(str::to_string).unwrap_or_else(|| match status {
                404 => "NoSuchKey".to_string(),
                403 => "AccessDenied".to_string(),
                412 => "PreconditionFailed".to_string(),
                s if s >= 500 => "InternalError".to_string(),
                s => format!("Http{s}"),
            });
            let message = err.message().map(str::to_string).unwrap_or_else(|| code.clone());
            (status, code, message)
        }
        SdkError::TimeoutError(_) => (0, "RequestTimeout".into(), "the request timed out".into()),
        SdkError::DispatchFailure(d) => (0, "NetworkError".into(), format!("{:?}", d)),
        SdkError::ResponseError(r) => (r.raw().status().as_u16(), "ResponseError".into(), format!("{:?}", r)),
        other => (0, "ClientError".into(), other.to_string()),
    }
}

pub fn storage<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, Response>) -> StorageError {
    let (http_status, code, message) = parts(e);
    StorageError { http_status, code, message }
}

pub fn task<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, Response>) -> TaskFailure {
    let (status, mut code, mut message) = parts(e);
    // HEAD answers have no body: report a missing object as GET would.
    if status == 404 && code == "NotFound" {
        code = "NoSuchKey".into();
        message = "The specified key does not exist.".into();
    }
    TaskFailure::classify(if status == 0 { 500 } else { status }, &code, message)
}

/// A DynamoDB, SQS, STS or IAM failure; throttling and 5xx are transient (the message is
/// redelivered).
pub fn backend<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    context: &str,
    e: SdkError<E, Response>,
) -> Error {
    let (status, code, message) = parts(&e);
    Error::Backend {
        context: context.to_string(),
        transient: is_transient(status, &code),
        message: format!("{code}: {message}"),
        source: Some(std::sync::Arc::new(e)),
    }
}
