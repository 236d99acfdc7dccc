//! `S3PutObjectCopy` as one CopyObject (objects up to 5 GiB, S3's limit for a single copy).

use aws_sdk_s3::types::{
    ChecksumAlgorithm, MetadataDirective, ObjectCannedAcl, ObjectLockLegalHoldStatus, ObjectLockMode, RequestPayer,
    ServerSideEncryption, StorageClass, TaggingDirective,
};
use aws_smithy_types::DateTime;
use batchops_core::ops::{CopyObject, TaskTarget};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::OffsetDateTime;

use super::TaskResult;
use crate::errors::task;

/// Characters left as they are in `x-amz-copy-source`: unreserved ones and the `/` separators.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

fn copy_source(t: &TaskTarget) -> String {
    let mut s = format!("{}/{}", t.bucket, utf8_percent_encode(&t.key, COPY_SOURCE));
    if let Some(v) = &t.version_id {
        s.push_str("?versionId=");
        s.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
    }
    s
}

fn dt(t: OffsetDateTime) -> DateTime {
    DateTime::from_secs(t.unix_timestamp())
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

pub(crate) async fn run(client: &aws_sdk_s3::Client, op: &CopyObject, t: &TaskTarget) -> TaskResult {
    let target_key = op.target_key(t);
    let mut req = client.copy_object().bucket(&op.target_bucket).key(&target_key).copy_source(copy_source(t));
    if let Some(m) = &op.new_metadata {
        req = req
            .metadata_directive(MetadataDirective::Replace)
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
    if let Some(tags) = &op.new_tagging {
        req = req.tagging_directive(TaggingDirective::Replace).tagging(tagging_header(tags));
    }
    if let Some(sc) = &op.storage_class {
        req = req.storage_class(StorageClass::from(sc.as_str()));
    }
    if let Some(acl) = &op.canned_acl {
        req = req.acl(ObjectCannedAcl::from(acl.as_str()));
    }
    let grantees = |perm: &str| {
        let g: Vec<&str> = op.grants.iter().filter(|g| g.permission == perm).map(|g| g.grantee.as_str()).collect();
        (!g.is_empty()).then(|| g.join(", "))
    };
    req = req
        .set_grant_full_control(grantees("FULL_CONTROL"))
        .set_grant_read(grantees("READ"))
        .set_grant_read_acp(grantees("READ_ACP"))
        .set_grant_write_acp(grantees("WRITE_ACP"));
    if let Some(key) = &op.sse_kms_key_id {
        req = req.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(key);
    }
    req = req
        .set_bucket_key_enabled(op.bucket_key_enabled)
        .set_checksum_algorithm(op.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
        .set_copy_source_if_modified_since(op.modified_since.map(dt))
        .set_copy_source_if_unmodified_since(op.unmodified_since.map(dt))
        .set_website_redirect_location(op.redirect_location.clone())
        .set_object_lock_legal_hold_status(op.object_lock_legal_hold.as_deref().map(ObjectLockLegalHoldStatus::from))
        .set_object_lock_mode(op.object_lock_mode.as_deref().map(ObjectLockMode::from))
        .set_object_lock_retain_until_date(op.object_lock_retain_until.map(dt));
    if op.requester_pays {
        req = req.request_payer(RequestPayer::Requester);
    }
    let out = req.send().await.map_err(|e| task(&e))?;
    let mut msg = serde_json::json!({"Key": target_key});
    if let Some(etag) = out.copy_object_result().and_then(|r| r.e_tag()) {
        msg["ETag"] = serde_json::json!(etag.trim_matches('"'));
    }
    if let Some(v) = out.version_id() {
        msg["VersionId"] = serde_json::json!(v);
    }
    Ok(msg.to_string())
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
    fn tagging_header_is_a_query_string() {
        let tags = vec![
            batchops_core::spec::S3Tag { key: "a b".into(), value: "x=y".into() },
            batchops_core::spec::S3Tag { key: "c".into(), value: "".into() },
        ];
        assert_eq!(tagging_header(&tags), "a%20b=x%3Dy&c=");
    }
}
