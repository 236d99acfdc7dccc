//! What every operation uses: the runner's clients and settings ([`S3OperationRunner`]), the
//! result of a task, grant headers and tag sets. The operations depend on this file; the
//! dispatch in `mod.rs` depends on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::types::{Tag, Tagging};
use batchops_core::ops::replicate_object::ReplicationRule;
use batchops_core::retry::{RetryPolicy, TaskFailure};
use batchops_core::spec::S3Tag;

/// S3's limit for one CopyObject; larger objects need a multipart copy.
pub const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Tunables of the operations (read from `BATCHOPS_*` variables, see [`crate::config`]).
#[derive(Clone, Debug)]
pub struct OpsSettings {
    /// Objects larger than this are copied with multipart UploadPartCopy.
    pub multipart_threshold: u64,
    /// Part size of multipart copies (raised when an object would need more than 10,000 parts).
    pub part_size: u64,
    /// Parts of one object copied at the same time.
    pub part_concurrency: usize,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings { multipart_threshold: SINGLE_COPY_LIMIT, part_size: 128 * 1024 * 1024, part_concurrency: 16 }
    }
}

#[derive(Clone, Debug)]
pub struct S3OperationRunner {
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) lambda: aws_sdk_lambda::Client,
    pub(super) settings: OpsSettings,
    /// The executor's policy, for the requests inside one task (the parts of a multipart copy).
    pub(super) retry: RetryPolicy,
    /// Replication rules per source bucket, read once per process.
    pub(super) replication: Arc<Mutex<HashMap<String, Arc<Vec<ReplicationRule>>>>>,
}

impl S3OperationRunner {
    /// The clients should have SDK retries disabled: the executor retries with its own policy.
    pub fn new(
        s3: aws_sdk_s3::Client,
        lambda: aws_sdk_lambda::Client,
        settings: OpsSettings,
        retry: RetryPolicy,
    ) -> Self {
        S3OperationRunner { s3, lambda, settings, retry, replication: Arc::default() }
    }
}

pub(crate) type TaskResult = Result<String, TaskFailure>;

/// Grantee lists for the `x-amz-grant-*` headers, per permission (`id="..."`, `uri="..."`).
#[derive(Default)]
pub(crate) struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write: Option<String>,
    pub write_acp: Option<String>,
}

impl GrantHeaders {
    pub(super) fn new<'a>(grants: impl Iterator<Item = (&'a str, String)>) -> GrantHeaders {
        let mut h = GrantHeaders::default();
        for (permission, grantee) in grants {
            let slot = match permission {
                "FULL_CONTROL" => &mut h.full_control,
                "READ" => &mut h.read,
                "READ_ACP" => &mut h.read_acp,
                "WRITE" => &mut h.write,
                "WRITE_ACP" => &mut h.write_acp,
                _ => continue,
            };
            match slot {
                Some(list) => {
                    list.push_str(", ");
                    list.push_str(&grantee);
                }
                None => *slot = Some(grantee),
            }
        }
        h
    }
}

pub(crate) fn tagging(tags: &[S3Tag]) -> Result<Tagging, TaskFailure> {
    let set = tags
        .iter()
        .map(|t| Tag::builder().key(&t.key).value(&t.value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TaskFailure::permanent(400, "InvalidTag", e.to_string()))?;
    Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| TaskFailure::permanent(400, "InvalidTag", e.to_string()))
}

/// The tags of an object (or of the given version).
pub(crate) async fn object_tags(
    client: &aws_sdk_s3::Client,
    t: &batchops_core::ops::TaskTarget,
) -> Result<Vec<S3Tag>, TaskFailure> {
    let out = client
        .get_object_tagging()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .send()
        .await
        .map_err(|e| crate::errors::task(&e))?;
    Ok(out.tag_set().iter().map(|t| S3Tag { key: t.key().to_string(), value: t.value().to_string() }).collect())
}
