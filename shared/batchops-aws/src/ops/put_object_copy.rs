//! `S3PutObjectCopy`: one CopyObject up to the multipart threshold (5 GiB, S3's limit for a
//! single copy, unless configured lower); above it a multipart copy (UploadPartCopy, parts in
//! parallel) that keeps the source's metadata, tags, storage class and checksum algorithm,
//! and aborts its upload when it fails or runs out of time, so that no parts are left.

use std::time::Instant;

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, MetadataDirective, ObjectCannedAcl,
    ObjectLockLegalHoldStatus, ObjectLockMode, RequestPayer, ServerSideEncryption, StorageClass, TaggingDirective,
};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use batchops_core::ops::{CopyObject, Task, TaskTarget};
use batchops_core::retry::{RetryPolicy, TaskFailure, Tries};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tracing::warn;

use super::runner::{GrantHeaders, S3OperationRunner, TaskResult, SINGLE_COPY_LIMIT};
use crate::errors::task;

/// Characters left as they are in `x-amz-copy-source`: unreserved ones and the `/` separators.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

pub(crate) fn copy_source(t: &TaskTarget) -> String {
    let mut s = format!("{}/{}", t.bucket, utf8_percent_encode(&t.key, COPY_SOURCE));
    if let Some(v) = &t.version_id {
        s.push_str("?versionId=");
        s.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
    }
    s
}

pub(crate) fn dt(t: Timestamp) -> DateTime {
    DateTime::from_secs(t.as_second())
}

/// The `x-amz-tagging` value: URL-encoded `key=value` pairs joined by `&`.
fn tagging_header(tags: &[batchops_core::spec::S3Tag]) -> String {
    tags.iter()
        .map(|t| {
            format!(
                "{}={}",
                utf8_percent_encode(&t.key, NON_ALPHANUMERIC),
                utf8_percent_encode(&t.value, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// What a copy produced.
pub(crate) struct Copied {
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// Parts of a multipart copy; 0 for a single CopyObject.
    pub parts: usize,
}

impl Copied {
    /// The report's ResultMessage: `{"Key","ETag","VersionId"}`, and `"Parts"` when multipart.
    pub(super) fn message(&self, key: &str) -> String {
        self.json(key).to_string()
    }

    pub(super) fn json(&self, key: &str) -> serde_json::Value {
        let mut msg = serde_json::json!({ "Key": key });
        if let Some(etag) = &self.etag {
            msg["ETag"] = serde_json::json!(etag.trim_matches('"'));
        }
        if let Some(v) = &self.version_id {
            msg["VersionId"] = serde_json::json!(v);
        }
        if self.parts > 0 {
            msg["Parts"] = serde_json::json!(self.parts);
        }
        msg
    }
}

pub(crate) async fn run(r: &S3OperationRunner, op: &CopyObject, task: &Task) -> TaskResult {
    let key = op.target_key(&task.target);
    Ok(copy(r, op, &task.target, &key, task.deadline, false).await?.message(&key))
}

/// S3's refusal of a CopyObject over 5 GiB.
fn too_large(f: &TaskFailure) -> bool {
    f.error_code == "EntityTooLarge"
        || (f.error_code == "InvalidRequest" && f.message.contains("larger than the maximum allowable size"))
}

/// Copies `src` to `op.target_bucket`/`target_key`: one CopyObject up to the multipart
/// threshold, a multipart copy above it. With `keep_storage_class` (in-place updates,
/// replication) the copy keeps the source's storage class when `op` names none.
pub(crate) async fn copy(
    r: &S3OperationRunner,
    op: &CopyObject,
    src: &TaskTarget,
    target_key: &str,
    deadline: Instant,
    keep_storage_class: bool,
) -> Result<Copied, TaskFailure> {
    let s = &r.settings;
    if s.multipart_threshold >= SINGLE_COPY_LIMIT && !keep_storage_class {
        // The common case costs one request; only a refusal for size costs a HEAD.
        match single(&r.s3, op, src, target_key, None).await {
            Err(f) if too_large(&f) => {}
            other => return other,
        }
    }
    let head = head_source(&r.s3, src, op.requester_pays).await?;
    if head.size > s.multipart_threshold {
        multipart(r, op, src, target_key, &head, deadline).await
    } else {
        let class = if keep_storage_class { head.storage_class.clone() } else { None };
        single(&r.s3, op, src, target_key, class).await
    }
}

/// Sets what CopyObject and CreateMultipartUpload both say about the new object (their SDK
/// builders are different types with the same setters): replaced metadata, storage class,
/// ACL, grants, SSE-KMS, Bucket Key, Object Lock, requester pays.
macro_rules! destination {
    ($req:expr, $op:expr, $storage_class:expr) => {{
        let (op, mut req) = ($op, $req);
        if let Some(m) = &op.new_metadata {
            req = req
                .set_cache_control(m.cache_control.clone())
                .set_content_disposition(m.content_disposition.clone())
                .set_content_encoding(m.content_encoding.clone())
                .set_content_language(m.content_language.clone())
                .set_content_type(m.content_type.clone())
                .set_expires(m.expires.map(dt));
            for (k, v) in &m.user_metadata {
                req = req.metadata(k, v);
            }
            if let Some(alg) = &m.sse_algorithm {
                req = req.server_side_encryption(ServerSideEncryption::from(alg.as_str()));
            }
        }
        if let Some(sc) = op.storage_class.as_ref().or($storage_class) {
            req = req.storage_class(StorageClass::from(sc.as_str()));
        }
        if let Some(acl) = &op.canned_acl {
            req = req.acl(ObjectCannedAcl::from(acl.as_str()));
        }
        let grants = GrantHeaders::new(op.grants.iter().map(|g| (g.permission.as_str(), g.header())));
        req = req
            .set_grant_full_control(grants.full_control)
            .set_grant_read(grants.read)
            .set_grant_read_acp(grants.read_acp)
            .set_grant_write_acp(grants.write_acp);
        if let Some(key) = &op.sse_kms_key_id {
            req = req.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(key);
        }
        req.set_bucket_key_enabled(op.bucket_key_enabled)
            .set_object_lock_legal_hold_status(
                op.object_lock_legal_hold.as_deref().map(ObjectLockLegalHoldStatus::from),
            )
            .set_object_lock_mode(op.object_lock_mode.as_deref().map(ObjectLockMode::from))
            .set_object_lock_retain_until_date(op.object_lock_retain_until.map(dt))
            .set_request_payer(op.requester_pays.then_some(RequestPayer::Requester))
    }};
}

async fn single(
    client: &aws_sdk_s3::Client,
    op: &CopyObject,
    t: &TaskTarget,
    target_key: &str,
    storage_class: Option<String>,
) -> Result<Copied, TaskFailure> {
    let mut req = client.copy_object().bucket(&op.target_bucket).key(target_key).copy_source(copy_source(t));
    if op.new_metadata.is_some() {
        req = req.metadata_directive(MetadataDirective::Replace);
    }
    if let Some(tags) = &op.new_tagging {
        req = req.tagging_directive(TaggingDirective::Replace).tagging(tagging_header(tags));
    }
    let req = destination!(req, op, storage_class.as_ref())
        .set_checksum_algorithm(op.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
        .set_copy_source_if_modified_since(op.modified_since.map(dt))
        .set_copy_source_if_unmodified_since(op.unmodified_since.map(dt))
        .set_website_redirect_location(op.redirect_location.clone());
    let out = req.send().await.map_err(|e| task(&e))?;
    Ok(Copied {
        etag: out.copy_object_result().and_then(|r| r.e_tag()).map(String::from),
        version_id: out.version_id().map(String::from),
        parts: 0,
    })
}

/// A HEAD of the source (with its checksums): what a multipart copy needs to know of it.
pub(crate) struct SourceHead {
    pub size: u64,
    pub etag: String,
    pub storage_class: Option<String>,
    pub head: HeadObjectOutput,
}

pub(crate) async fn head_source(
    client: &aws_sdk_s3::Client,
    t: &TaskTarget,
    requester_pays: bool,
) -> Result<SourceHead, TaskFailure> {
    let head = client
        .head_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .set_request_payer(requester_pays.then_some(RequestPayer::Requester))
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok(SourceHead {
        size: head.content_length().unwrap_or(0).max(0) as u64,
        etag: head.e_tag().unwrap_or_default().to_string(),
        storage_class: head.storage_class().map(|c| c.as_str().to_string()),
        head,
    })
}

/// The checksum algorithm the source was stored with, if any.
fn source_checksum(h: &HeadObjectOutput) -> Option<ChecksumAlgorithm> {
    if h.checksum_crc64_nvme().is_some() {
        Some(ChecksumAlgorithm::Crc64Nvme)
    } else if h.checksum_crc32_c().is_some() {
        Some(ChecksumAlgorithm::Crc32C)
    } else if h.checksum_crc32().is_some() {
        Some(ChecksumAlgorithm::Crc32)
    } else if h.checksum_sha256().is_some() {
        Some(ChecksumAlgorithm::Sha256)
    } else if h.checksum_sha1().is_some() {
        Some(ChecksumAlgorithm::Sha1)
    } else {
        None
    }
}

/// The part size for an object: the configured one, raised so that no more than 10,000 parts
/// are needed, and never under S3's 5 MiB minimum.
pub(crate) fn part_size(size: u64, configured: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(10_000).div_ceil(MIB) * MIB;
    configured.max(needed).max(5 * MIB)
}

fn out_of_time(t: &TaskTarget, size: u64, parts: usize, deadline: Instant, started: Instant) -> TaskFailure {
    TaskFailure::permanent(
        500,
        "TimeBudgetExceeded",
        format!(
            "The multipart copy of s3://{}/{} ({size} bytes, {parts} parts) did not finish within this invocation's time budget ({} s); its upload was aborted. Raise BATCHOPS_TIME_BUDGET_SECS (up to the function timeout) or BATCHOPS_COPY_PART_CONCURRENCY",
            t.bucket,
            t.key,
            deadline.saturating_duration_since(started).as_secs()
        ),
    )
}

async fn multipart(
    r: &S3OperationRunner,
    op: &CopyObject,
    t: &TaskTarget,
    target_key: &str,
    head: &SourceHead,
    deadline: Instant,
) -> Result<Copied, TaskFailure> {
    let started = Instant::now();
    let size = head.size;
    let part = part_size(size, r.settings.part_size);
    let parts = size.div_ceil(part).max(1) as usize;
    let h = &head.head;
    let tags = match &op.new_tagging {
        Some(tags) => tags.clone(),
        None => super::runner::object_tags(&r.s3, t).await?,
    };
    let mut req = r.s3.create_multipart_upload().bucket(&op.target_bucket).key(target_key);
    if op.new_metadata.is_none() {
        // What a CopyObject copies by itself (MetadataDirective COPY) is told explicitly here.
        req = req
            .set_cache_control(h.cache_control().map(String::from))
            .set_content_disposition(h.content_disposition().map(String::from))
            .set_content_encoding(h.content_encoding().map(String::from))
            .set_content_language(h.content_language().map(String::from))
            .set_content_type(h.content_type().map(String::from))
            .set_metadata(h.metadata().cloned());
        if let Some(exp) = h.expires_string().and_then(|s| DateTime::from_str(s, Format::HttpDate).ok()) {
            req = req.expires(exp);
        }
    }
    if !tags.is_empty() {
        req = req.tagging(tagging_header(&tags));
    }
    let checksum = op.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from).or_else(|| source_checksum(h));
    let req = destination!(req, op, head.storage_class.as_ref())
        .set_checksum_algorithm(checksum)
        .set_website_redirect_location(
            op.redirect_location.clone().or_else(|| h.website_redirect_location().map(String::from)),
        );
    let created = req.send().await.map_err(|e| task(&e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();

    let upload = Upload { key: target_key, id: &upload_id, part_size: part, parts, deadline };
    let copied = copy_parts(r, op, t, head, &upload).await;
    let result = match copied {
        Ok(done) => {
            let upload = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
            r.s3.complete_multipart_upload()
                .bucket(&op.target_bucket)
                .key(target_key)
                .upload_id(&upload_id)
                .multipart_upload(upload)
                .set_request_payer(op.requester_pays.then_some(RequestPayer::Requester))
                .send()
                .await
                .map(|out| Copied {
                    etag: out.e_tag().map(String::from),
                    version_id: out.version_id().map(String::from),
                    parts,
                })
                .map_err(|e| task(&e))
        }
        Err(Some(f)) => Err(f),
        Err(None) => Err(out_of_time(t, size, parts, deadline, started)),
    };
    if result.is_err() {
        abort(&r.s3, &op.target_bucket, target_key, &upload_id).await;
    }
    result
}

/// A multipart upload in progress: where it goes, its parts, and when it must be done.
#[derive(Clone, Copy)]
struct Upload<'a> {
    key: &'a str,
    id: &'a str,
    part_size: u64,
    parts: usize,
    deadline: Instant,
}

/// Aborts a multipart upload so that no parts are left behind (tried a few times).
async fn abort(client: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str) {
    let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::backend() };
    let aborted = policy
        .until("AbortMultipartUpload", |attempt| async move {
            match client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) => {
                    warn!(bucket, key, upload_id, attempt, error = %task(&e).message, "could not abort a multipart upload");
                    Ok(None)
                }
            }
        })
        .await;
    if aborted.is_err() {
        warn!(
            bucket,
            key, upload_id, "multipart upload left behind: a lifecycle rule on incomplete uploads removes it"
        );
    }
}

/// Copies every part, `part_concurrency` at a time, each retried on transient errors.
/// `Err(None)`: the deadline came first.
async fn copy_parts(
    r: &S3OperationRunner,
    op: &CopyObject,
    t: &TaskTarget,
    head: &SourceHead,
    upload: &Upload<'_>,
) -> Result<Vec<CompletedPart>, Option<TaskFailure>> {
    let Upload { key: target_key, id: upload_id, part_size: part, parts, deadline } = *upload;
    let source = copy_source(t);
    let size = head.size;
    let one = |n: usize| {
        let source = &source;
        async move {
            let first = n as u64 * part;
            let last = (first + part).min(size).saturating_sub(1);
            let mut tries = Tries::default();
            loop {
                if Instant::now() >= deadline {
                    return Err(None);
                }
                let req =
                    r.s3.upload_part_copy()
                        .bucket(&op.target_bucket)
                        .key(target_key)
                        .upload_id(upload_id)
                        .part_number(n as i32 + 1)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .copy_source_if_match(&head.etag)
                        .set_copy_source_if_modified_since(op.modified_since.map(dt))
                        .set_copy_source_if_unmodified_since(op.unmodified_since.map(dt))
                        .set_request_payer(op.requester_pays.then_some(RequestPayer::Requester))
                        .send();
                let sent = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), req).await;
                let failure = match sent {
                    Err(_) => return Err(None),
                    Ok(Ok(out)) => {
                        let c = out.copy_part_result();
                        return Ok(CompletedPart::builder()
                            .part_number(n as i32 + 1)
                            .set_e_tag(c.and_then(|c| c.e_tag()).map(String::from))
                            .set_checksum_crc32(c.and_then(|c| c.checksum_crc32()).map(String::from))
                            .set_checksum_crc32_c(c.and_then(|c| c.checksum_crc32_c()).map(String::from))
                            .set_checksum_crc64_nvme(c.and_then(|c| c.checksum_crc64_nvme()).map(String::from))
                            .set_checksum_sha1(c.and_then(|c| c.checksum_sha1()).map(String::from))
                            .set_checksum_sha256(c.and_then(|c| c.checksum_sha256()).map(String::from))
                            .build());
                    }
                    Ok(Err(e)) => task(&e),
                };
                if !r.retry.again(&failure, &mut tries) {
                    return Err(Some(TaskFailure {
                        message: format!("part {} of {parts}: {}", n + 1, failure.message),
                        ..failure
                    }));
                }
                tokio::time::sleep(r.retry.delay(tries.total())).await;
            }
        }
    };
    let mut done: Vec<CompletedPart> = futures::stream::iter(0..parts)
        .map(one)
        .buffer_unordered(r.settings.part_concurrency.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|p| p.part_number());
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_url_encoded_with_their_version() {
        let t = TaskTarget { bucket: "b".into(), key: "a b/c+d#é".into(), version_id: None };
        assert_eq!(copy_source(&t), "b/a%20b/c%2Bd%23%C3%A9");
        let t = TaskTarget { bucket: "b".into(), key: "k".into(), version_id: Some("v1".into()) };
        assert_eq!(copy_source(&t), "b/k?versionId=v1");
    }

    #[test]
    fn part_sizes_respect_s3s_limits() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(12 * MIB, MIB), 5 * MIB, "at least 5 MiB");
        assert_eq!(part_size(6 * 1024 * MIB, 128 * MIB), 128 * MIB);
        // 5 TiB in 128 MiB parts would be 40,960 parts: raised to fit 10,000.
        let big = 5 * 1024 * 1024 * MIB;
        let p = part_size(big, 128 * MIB);
        assert!(big.div_ceil(p) <= 10_000 && p.is_multiple_of(MIB), "{p}");
    }

    #[test]
    fn refusals_for_size_are_recognised() {
        let f = TaskFailure::permanent(
            400,
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        );
        assert!(too_large(&f));
        assert!(!too_large(&TaskFailure::permanent(400, "InvalidRequest", "other")));
    }

    #[test]
    fn tagging_header_is_a_query_string() {
        let tags = vec![
            batchops_core::spec::S3Tag { key: "a b".into(), value: "x=y".into() },
            batchops_core::spec::S3Tag { key: "c".into(), value: "".into() },
        ];
        assert_eq!(tagging_header(&tags), "a%20b=x%3Dy&c=");
    }
}
