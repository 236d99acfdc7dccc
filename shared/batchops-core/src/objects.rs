//! The object a task works on and what object storage answers about objects, whatever the
//! store: an object's head, a listing's objects, and a storage failure with its HTTP status and code. A leaf under [`crate::ports`], so the
//! generator, the retry rules and the stores can all name them without naming each other.

/// An object storage failure, with the HTTP status and error code S3 gave.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({http_status}): {message}")]
pub struct StorageError {
    pub http_status: u16,
    pub code: String,
    pub message: String,
}

impl StorageError {
    /// True when trying again later may help: no answer at all, 5xx, or throttling (429,
    /// `SlowDown`). The one rule for every storage error that is not a task's.
    pub fn is_transient(&self) -> bool {
        crate::error::is_transient(self.http_status, &self.code)
    }
}

impl From<StorageError> for crate::Error {
    fn from(e: StorageError) -> Self {
        let transient = e.is_transient();
        crate::Error::caused("object storage", e, transient)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectHead {
    /// Without the surrounding quotes.
    pub etag: String,
    pub size: u64,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`; `None` when not encrypted at rest.
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    pub sse_customer_algorithm: Option<String>,
    /// `COMPLETED`, `PENDING`, `FAILED` or `REPLICA`; `None` when not replicated.
    pub replication_status: Option<String>,
}

/// One object (or version) of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    /// Set when the bucket was listed by version.
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub is_delete_marker: bool,
    pub size: u64,
    pub last_modified: Option<jiff::Timestamp>,
    pub etag: String,
    pub storage_class: String,
}

/// A page of a listing, and the token of the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub next: Option<String>,
}

/// The one object a task works on, with its key decoded exactly as S3 stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskTarget {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl TaskTarget {
    pub fn object(&self) -> ObjectRef<'_> {
        ObjectRef { bucket: &self.bucket, key: &self.key, version_id: self.version_id.as_deref() }
    }
}

/// The object a request names: its bucket, its key exactly as S3 stores it, and a version
/// (the current one when `None`). Borrowed from whoever owns the names (a job's manifest,
/// a task's target, a result file), as [`crate::ports::ListRequest`] is: a read copies none
/// of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

impl<'a> ObjectRef<'a> {
    /// The current version of `bucket`/`key`.
    pub fn new(bucket: &'a str, key: &'a str) -> Self {
        ObjectRef { bucket, key, version_id: None }
    }
}
