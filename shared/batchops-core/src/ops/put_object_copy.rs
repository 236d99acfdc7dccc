//! `S3PutObjectCopy`: copies each object to `TargetResource` (CopyObject), with the options
//! of S3 Control's `S3CopyObjectOperation`.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-copy-object.html>

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::grants::{self, Grant, GrantParam};
use crate::fields::{check_len, check_tag_set, parse_s3_arn, S3Tag};
use crate::fields::{one_of, timestamp};
use crate::objects::TaskTarget;
use crate::{Error, Result};

pub(crate) const CANNED_ACLS: [&str; 7] = [
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];
const STORAGE_CLASSES: [&str; 7] =
    ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "GLACIER", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR"];
const CHECKSUMS: [&str; 10] =
    ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME", "SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128"];

/// New metadata for the copies (`MetadataDirective: REPLACE`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMetadata {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_type: Option<String>,
    pub expires: Option<Timestamp>,
    pub user_metadata: BTreeMap<String, String>,
    /// `AES256` or `aws:kms` as the SDK spells it.
    pub sse_algorithm: Option<String>,
}

/// `Default` is a plain copy into no bucket; set `target_bucket`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CopyObject {
    pub target_bucket: String,
    pub target_key_prefix: Option<String>,
    /// `None` copies the source metadata; `Some` replaces it.
    pub new_metadata: Option<ObjectMetadata>,
    /// `None` copies the source tags; `Some` replaces them.
    pub new_tagging: Option<Vec<S3Tag>>,
    pub storage_class: Option<String>,
    pub canned_acl: Option<String>,
    pub grants: Vec<Grant>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    pub checksum_algorithm: Option<String>,
    pub modified_since: Option<Timestamp>,
    pub unmodified_since: Option<Timestamp>,
    pub redirect_location: Option<String>,
    pub requester_pays: bool,
    pub object_lock_legal_hold: Option<String>,
    pub object_lock_mode: Option<String>,
    pub object_lock_retain_until: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    target_resource: Option<String>,
    target_key_prefix: Option<String>,
    canned_access_control_list: Option<String>,
    #[serde(default)]
    access_control_grants: Vec<GrantParam>,
    metadata_directive: Option<String>,
    modified_since_constraint: Option<Value>,
    un_modified_since_constraint: Option<Value>,
    new_object_metadata: Option<MetadataParam>,
    new_object_tagging: Option<Vec<S3Tag>>,
    redirect_location: Option<String>,
    requester_pays: Option<bool>,
    storage_class: Option<String>,
    #[serde(rename = "SSEAwsKmsKeyId")]
    sse_aws_kms_key_id: Option<String>,
    bucket_key_enabled: Option<bool>,
    object_lock_legal_hold_status: Option<String>,
    object_lock_mode: Option<String>,
    object_lock_retain_until_date: Option<Value>,
    checksum_algorithm: Option<String>,
    // S3's newest members, refused by name (see `not_supported`).
    annotation_directive: Option<Value>,
    object_lock_event_hold: Option<Value>,
    object_lock_event_hold_duration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetadataParam {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    #[serde(default)]
    user_metadata: BTreeMap<String, String>,
    content_length: Option<i64>,
    #[serde(rename = "ContentMD5")]
    content_md5: Option<String>,
    content_type: Option<String>,
    http_expires_date: Option<Value>,
    requester_charged: Option<bool>,
    #[serde(rename = "SSEAlgorithm")]
    sse_algorithm: Option<String>,
}

impl CopyObject {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        crate::fields::not_supported(field, "AnnotationDirective", &p.annotation_directive)?;
        crate::fields::not_supported(field, "ObjectLockEventHold", &p.object_lock_event_hold)?;
        crate::fields::not_supported(field, "ObjectLockEventHoldDuration", &p.object_lock_event_hold_duration)?;
        let f = |m: &str| format!("{field}.{m}");
        let target = p.target_resource.as_ref().ok_or_else(|| Error::field(f("TargetResource"), "is required"))?;
        check_len(&f("TargetResource"), target, 1, 128)?;
        let (target_bucket, rest) = parse_s3_arn(&f("TargetResource"), target)?;
        if !rest.is_empty() {
            return Err(Error::field(f("TargetResource"), "must be a bucket ARN (arn:aws:s3:::bucket), without a key"));
        }
        if let Some(prefix) = &p.target_key_prefix {
            check_len(&f("TargetKeyPrefix"), prefix, 1, 1024)?;
        }
        if let Some(acl) = &p.canned_access_control_list {
            one_of(&f("CannedAccessControlList"), acl, &CANNED_ACLS)?;
        }
        let grants = grants::parse(&f("AccessControlGrants"), &p.access_control_grants)?;
        let directive = match p.metadata_directive.as_deref() {
            None => None,
            Some(d) => {
                one_of(&f("MetadataDirective"), d, &["COPY", "REPLACE"])?;
                Some(d)
            }
        };
        let new_metadata = match (directive, p.new_object_metadata) {
            (Some("COPY"), Some(_)) => {
                return Err(Error::field(f("NewObjectMetadata"), "cannot be combined with MetadataDirective COPY"))
            }
            (Some("REPLACE"), None) => Some(ObjectMetadata::default()),
            (_, None) => None,
            (_, Some(m)) => Some(metadata(&f("NewObjectMetadata"), m)?),
        };
        if let Some(tags) = &p.new_object_tagging {
            check_tag_set(&f("NewObjectTagging"), tags, super::put_object_tagging::MAX_OBJECT_TAGS)?;
        }
        if let Some(r) = &p.redirect_location {
            check_len(&f("RedirectLocation"), r, 1, 2048)?;
        }
        if let Some(sc) = &p.storage_class {
            one_of(&f("StorageClass"), sc, &STORAGE_CLASSES)?;
        }
        if let Some(k) = &p.sse_aws_kms_key_id {
            check_len(&f("SSEAwsKmsKeyId"), k, 1, 2000)?;
        }
        if let Some(s) = &p.object_lock_legal_hold_status {
            one_of(&f("ObjectLockLegalHoldStatus"), s, &["OFF", "ON"])?;
        }
        if let Some(m) = &p.object_lock_mode {
            one_of(&f("ObjectLockMode"), m, &["COMPLIANCE", "GOVERNANCE"])?;
        }
        if let Some(c) = &p.checksum_algorithm {
            one_of(&f("ChecksumAlgorithm"), c, &CHECKSUMS)?;
        }
        let ts = |name: &str, v: &Option<Value>| -> Result<Option<Timestamp>> {
            v.as_ref().map(|v| timestamp(&f(name), v)).transpose()
        };
        Ok(CopyObject {
            target_bucket,
            target_key_prefix: p.target_key_prefix,
            new_metadata,
            new_tagging: p.new_object_tagging,
            storage_class: p.storage_class,
            canned_acl: p.canned_access_control_list,
            grants,
            sse_kms_key_id: p.sse_aws_kms_key_id,
            bucket_key_enabled: p.bucket_key_enabled,
            checksum_algorithm: p.checksum_algorithm,
            modified_since: ts("ModifiedSinceConstraint", &p.modified_since_constraint)?,
            unmodified_since: ts("UnModifiedSinceConstraint", &p.un_modified_since_constraint)?,
            redirect_location: p.redirect_location,
            requester_pays: p.requester_pays.unwrap_or(false),
            object_lock_legal_hold: p.object_lock_legal_hold_status,
            object_lock_mode: p.object_lock_mode,
            object_lock_retain_until: ts("ObjectLockRetainUntilDate", &p.object_lock_retain_until_date)?,
        })
    }

    /// The key a source object is copied to: `TargetKeyPrefix/` + the source key, as S3 Batch
    /// Operations puts copies "into" the prefix folder.
    pub fn target_key(&self, source: &TaskTarget) -> String {
        match self.target_key_prefix.as_deref() {
            None => source.key.clone(),
            Some(p) if p.ends_with('/') => format!("{p}{}", source.key),
            Some(p) => format!("{p}/{}", source.key),
        }
    }
}

fn metadata(field: &str, m: MetadataParam) -> Result<ObjectMetadata> {
    // ContentLength, ContentMD5 and RequesterCharged are deprecated in the model and ignored.
    let _ = (m.content_length, m.content_md5, m.requester_charged);
    if m.user_metadata.len() > 8192 {
        return Err(Error::field(format!("{field}.UserMetadata"), "at most 8192 entries"));
    }
    for (k, v) in &m.user_metadata {
        check_len(&format!("{field}.UserMetadata.{k}"), k, 1, 1024)?;
        check_len(&format!("{field}.UserMetadata.{k}"), v, 0, 1024)?;
    }
    let sse_algorithm = match m.sse_algorithm.as_deref() {
        None => None,
        Some("AES256") => Some("AES256".to_string()),
        Some("KMS") => Some("aws:kms".to_string()),
        Some(other) => {
            return Err(Error::field(format!("{field}.SSEAlgorithm"), format!("'{other}' is not one of AES256, KMS")))
        }
    };
    Ok(ObjectMetadata {
        cache_control: m.cache_control,
        content_disposition: m.content_disposition,
        content_encoding: m.content_encoding,
        content_language: m.content_language,
        content_type: m.content_type,
        expires: m.http_expires_date.as_ref().map(|v| timestamp(&format!("{field}.HttpExpiresDate"), v)).transpose()?,
        user_metadata: m.user_metadata,
        sse_algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3PutObjectCopy";

    fn target(key: &str) -> TaskTarget {
        TaskTarget { bucket: "src".into(), key: key.into(), version_id: None }
    }

    #[test]
    fn target_keys_go_into_the_prefix_folder() {
        let op = CopyObject::from_spec(F, &json!({"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": "copies"}))
            .unwrap();
        assert_eq!(op.target_key(&target("a/b c")), "copies/a/b c");
        let op =
            CopyObject::from_spec(F, &json!({"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": "c/"})).unwrap();
        assert_eq!(op.target_key(&target("x")), "c/x");
        let op = CopyObject::from_spec(F, &json!({"TargetResource": "arn:aws:s3:::dst"})).unwrap();
        assert_eq!(op.target_key(&target("x")), "x");
        assert!(op.new_metadata.is_none() && op.new_tagging.is_none());
    }

    #[test]
    fn metadata_replacement_follows_the_directive() {
        let op = CopyObject::from_spec(
            F,
            &json!({"TargetResource": "arn:aws:s3:::dst", "MetadataDirective": "REPLACE",
                    "NewObjectMetadata": {"ContentType": "text/plain", "UserMetadata": {"a": "1"}}}),
        )
        .unwrap();
        let m = op.new_metadata.unwrap();
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.user_metadata.get("a").map(String::as_str), Some("1"));
        let err = CopyObject::from_spec(
            F,
            &json!({"TargetResource": "arn:aws:s3:::dst", "MetadataDirective": "COPY", "NewObjectMetadata": {}}),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("Operation.S3PutObjectCopy.NewObjectMetadata:"), "{err}");
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let cases = [
            (json!({}), "Operation.S3PutObjectCopy.TargetResource"),
            (json!({"TargetResource": "dst"}), "Operation.S3PutObjectCopy.TargetResource"),
            (json!({"TargetResource": "arn:aws:s3:::dst/key"}), "Operation.S3PutObjectCopy.TargetResource"),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "StorageClass": "COLD"}),
                "Operation.S3PutObjectCopy.StorageClass",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "CannedAccessControlList": "open"}),
                "Operation.S3PutObjectCopy.CannedAccessControlList",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "ChecksumAlgorithm": "CRC16"}),
                "Operation.S3PutObjectCopy.ChecksumAlgorithm",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "MetadataDirective": "MOVE"}),
                "Operation.S3PutObjectCopy.MetadataDirective",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": ""}),
                "Operation.S3PutObjectCopy.TargetKeyPrefix",
            ),
            (json!({"TargetResource": "arn:aws:s3:::dst", "Bogus": 1}), "Operation.S3PutObjectCopy.Bogus"),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "NewObjectMetadata": {"SSEAlgorithm": "DES"}}),
                "Operation.S3PutObjectCopy.NewObjectMetadata.SSEAlgorithm",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "AccessControlGrants": [{"Permission": "READ"}]}),
                "Operation.S3PutObjectCopy.AccessControlGrants[0].Grantee",
            ),
            // Past the latest time jiff holds (9999-12-30T22:00:00Z): a field error, not a panic.
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "ObjectLockRetainUntilDate": "9999-12-31T23:59:59Z"}),
                "Operation.S3PutObjectCopy.ObjectLockRetainUntilDate",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "NewObjectMetadata": {"HttpExpiresDate": "9999-12-31"}}),
                "Operation.S3PutObjectCopy.NewObjectMetadata.HttpExpiresDate",
            ),
            (
                json!({"TargetResource": "arn:aws:s3:::dst", "UnModifiedSinceConstraint": "2026-12-01T10:00Z"}),
                "Operation.S3PutObjectCopy.UnModifiedSinceConstraint",
            ),
        ];
        for (params, field) in cases {
            let err = CopyObject::from_spec(F, &params).unwrap_err();
            match err {
                Error::InvalidField { field: got, .. } => assert_eq!(got, field, "for {params}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
