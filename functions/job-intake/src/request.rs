//! What every request of the API is read with, whatever its protocol (JSON or S3 Control's
//! XML): the account header and the body limit. A leaf both `api` and `xml` name.

/// The header S3 Control requests name their account in.
pub const ACCOUNT_HEADER: &str = "x-amz-account-id";

/// Largest request body the API reads (a CreateJob request is a few KiB; S3 Control's own
/// limit is not published). Bodies also nest at most 32 levels ([`batchops_core::spec::MAX_JSON_DEPTH`]).
pub const MAX_REQUEST_BYTES: usize = batchops_core::spec::MAX_SPEC_BYTES;
