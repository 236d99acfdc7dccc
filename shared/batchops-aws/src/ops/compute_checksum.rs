//! `S3ComputeObjectChecksum`: HEAD (with checksums) first; when S3 already stores a checksum of
//! the requested algorithm and type it is reported as is. Otherwise the object is streamed
//! (GetObject, `If-Match` its ETag) through the hasher in constant memory: whole for
//! FULL_OBJECT, part by part (HEAD `partNumber` for each part's size, ranged GETs) for
//! COMPOSITE. The work stops at the invocation's deadline with a clear failure.

use std::time::Instant;

use aws_sdk_s3::types::ChecksumType as S3ChecksumType;
use batchops_core::ops::compute_checksum::{base64, composite, result_message, Algorithm, ChecksumType, Hasher};
use batchops_core::ops::{ComputeChecksum, Task, TaskTarget};
use batchops_core::retry::TaskFailure;
use bytes::Bytes;

use super::put_object_copy::head_source;
use super::runner::TaskResult;
use crate::errors::task;

/// The checksums S3 stores with an object, as a HEAD or a GET with checksum mode returns them:
/// at most one per algorithm, and their type.
struct Stored<'a> {
    values: [(Algorithm, Option<&'a str>); 10],
    kind: Option<&'a S3ChecksumType>,
}

macro_rules! stored_of {
    ($out:expr) => {
        Stored {
            values: [
                (Algorithm::Crc32, $out.checksum_crc32()),
                (Algorithm::Crc32c, $out.checksum_crc32_c()),
                (Algorithm::Crc64Nvme, $out.checksum_crc64_nvme()),
                (Algorithm::Sha1, $out.checksum_sha1()),
                (Algorithm::Sha256, $out.checksum_sha256()),
                (Algorithm::Md5, $out.checksum_md5()),
                (Algorithm::Sha512, $out.checksum_sha512()),
                (Algorithm::XxHash64, $out.checksum_xxhash64()),
                (Algorithm::XxHash3, $out.checksum_xxhash3()),
                (Algorithm::XxHash128, $out.checksum_xxhash128()),
            ],
            kind: $out.checksum_type(),
        }
    };
}

/// The stored checksum, when it is of the algorithm and type asked for.
fn stored(h: Stored<'_>, op: &ComputeChecksum) -> Option<String> {
    let value = h.values.iter().find(|(a, _)| *a == op.algorithm)?.1?;
    let kind = match h.kind? {
        S3ChecksumType::FullObject => ChecksumType::FullObject,
        S3ChecksumType::Composite => ChecksumType::Composite,
        _ => return None,
    };
    (kind == op.checksum_type).then(|| value.to_string())
}

/// A FULL_OBJECT checksum in one request: a GET with checksum mode, whose headers carry the
/// stored checksum when S3 has it (the body is then not read), else whose body is hashed.
/// A HEAD first would answer nothing the GET does not.
async fn full_object(client: &aws_sdk_s3::Client, op: &ComputeChecksum, t: &TaskTarget) -> TaskResult {
    let mut out = client
        .get_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| task(&e))?;
    let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_string();
    if let Some(value) = stored(stored_of!(out), op) {
        return Ok(result_message(op, &value, &etag));
    }
    let mut h = Hasher::new(op.algorithm);
    while let Some(piece) = out.body.next().await {
        let piece =
            piece.map_err(|e| TaskFailure::transient(500, "InternalError", format!("reading the object: {e}")))?;
        h.update(&piece);
    }
    Ok(result_message(op, &base64(&h.finalize()), &etag))
}

/// The digest of bytes `range` (`None`: all) of the object, streamed.
async fn digest(
    client: &aws_sdk_s3::Client,
    t: &TaskTarget,
    etag: &str,
    algorithm: Algorithm,
    range: Option<(u64, u64)>,
) -> Result<Bytes, TaskFailure> {
    let mut out = client
        .get_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .set_range(range.map(|(first, last)| format!("bytes={first}-{last}")))
        .if_match(etag)
        .send()
        .await
        .map_err(|e| task(&e))?;
    let mut h = Hasher::new(algorithm);
    while let Some(piece) = out.body.next().await {
        let piece =
            piece.map_err(|e| TaskFailure::transient(500, "InternalError", format!("reading the object: {e}")))?;
        h.update(&piece);
    }
    Ok(h.finalize())
}

/// The most parts a multipart object has (S3's limit).
const MAX_PARTS: i32 = 10_000;

/// The HEAD of one part (`partNumber`): its size, and the object's part count.
async fn head_part(client: &aws_sdk_s3::Client, t: &TaskTarget, n: i32) -> Result<(u64, i32), TaskFailure> {
    let h = client
        .head_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .set_version_id(t.version_id.clone())
        .part_number(n)
        .send()
        .await
        .map_err(|e| task(&e))?;
    Ok((h.content_length().unwrap_or(0).max(0) as u64, h.parts_count().unwrap_or(1).max(1)))
}

async fn compute(client: &aws_sdk_s3::Client, op: &ComputeChecksum, t: &TaskTarget) -> TaskResult {
    match op.checksum_type {
        ChecksumType::FullObject => full_object(client, op, t).await,
        ChecksumType::Composite => composite_of_parts(client, op, t).await,
    }
}

/// A COMPOSITE checksum: the parts' sizes from HEADs, each part's digest from a ranged GET
/// pinned to the ETag, unless S3 stores it.
async fn composite_of_parts(client: &aws_sdk_s3::Client, op: &ComputeChecksum, t: &TaskTarget) -> TaskResult {
    let head = head_source(client, t, false).await?;
    let etag = head.etag.clone();
    if let Some(value) = stored(stored_of!(head.head), op) {
        return Ok(result_message(op, &value, etag.trim_matches('"')));
    }
    let (first_len, parts) = head_part(client, t, 1).await?;
    if parts > MAX_PARTS {
        // S3 stops at 10,000; a store answering more is not trusted with an allocation.
        let message = format!("The object has {parts} parts; S3 allows at most {MAX_PARTS}");
        return Err(TaskFailure::permanent(400, "InvalidPart", message));
    }
    let mut digests = Vec::with_capacity(parts as usize);
    let mut offset = 0u64;
    for n in 1..=parts {
        let len = if n == 1 { first_len } else { head_part(client, t, n).await?.0 };
        let range = (parts > 1 && len > 0).then(|| (offset, offset + len - 1));
        digests.push(digest(client, t, &etag, op.algorithm, range).await?);
        offset = offset.saturating_add(len);
    }
    if parts > 1 && offset != head.size {
        return Err(TaskFailure::permanent(
            500,
            "InternalError",
            format!("the parts add up to {offset} bytes but the object has {}", head.size),
        ));
    }
    let value = composite(op.algorithm, &digests);
    Ok(result_message(op, &value, etag.trim_matches('"')))
}

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &ComputeChecksum, task: &Task) -> TaskResult {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(task.deadline);
    match tokio::time::timeout_at(deadline, compute(client, op, &task.target)).await {
        Ok(result) => result,
        Err(_) => Err(TaskFailure::permanent(
            500,
            "TimeBudgetExceeded",
            format!(
                "Computing the checksum did not finish within this invocation's time budget ({} s); raise BATCHOPS_TIME_BUDGET_SECS (up to the function timeout)",
                task.deadline.saturating_duration_since(started).as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;

    use super::*;

    fn op(algorithm: Algorithm, checksum_type: ChecksumType) -> ComputeChecksum {
        ComputeChecksum { algorithm, checksum_type }
    }

    /// S3's stored checksum is reported only when it is of the algorithm and the type asked for.
    #[test]
    fn a_stored_checksum_is_used_only_for_its_own_algorithm_and_type() {
        let head = HeadObjectOutput::builder()
            .checksum_sha512("c3RvcmVk")
            .checksum_xxhash3("eHgz")
            .checksum_type(S3ChecksumType::FullObject)
            .build();
        let full = ChecksumType::FullObject;
        assert_eq!(stored(stored_of!(head), &op(Algorithm::Sha512, full)).as_deref(), Some("c3RvcmVk"));
        assert_eq!(stored(stored_of!(head), &op(Algorithm::XxHash3, full)).as_deref(), Some("eHgz"));
        assert_eq!(stored(stored_of!(head), &op(Algorithm::XxHash128, full)), None, "not stored");
        assert_eq!(stored(stored_of!(head), &op(Algorithm::Sha512, ChecksumType::Composite)), None, "another type");
        let untyped = HeadObjectOutput::builder().checksum_sha512("c3RvcmVk").build();
        assert_eq!(stored(stored_of!(untyped), &op(Algorithm::Sha512, full)), None, "a type S3 did not say");
    }
}
