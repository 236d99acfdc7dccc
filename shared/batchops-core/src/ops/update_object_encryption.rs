//! `S3UpdateObjectEncryption`: changes each object to SSE-KMS with the given key (and S3
//! Bucket Keys), by copying the object onto itself. The copy keeps the object's metadata,
//! tags, storage class and ACL.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-update-encryption.html>

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpdateObjectEncryption {
    pub kms_key_arn: String,
    pub bucket_key_enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Params {
    object_encryption: Option<EncryptionParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionParam {
    #[serde(rename = "SSEKMS", alias = "SSE-KMS")]
    sse_kms: Option<KmsParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KmsParam {
    #[serde(rename = "KMSKeyArn")]
    kms_key_arn: Option<String>,
    bucket_key_enabled: Option<bool>,
}

/// `arn:aws[a-zA-Z0-9-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+`, as the model requires.
fn valid_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, service, region, account, resource] = parts[..] else { return false };
    let key_id = resource.strip_prefix("key/").unwrap_or("");
    arn_ == "arn"
        && partition.starts_with("aws")
        && partition.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && service == "kms"
        && !region.is_empty()
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !key_id.is_empty()
        && key_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl UpdateObjectEncryption {
    pub fn from_spec(field: &str, v: &Value) -> Result<Self> {
        let p: Params = crate::fields::params(field, v)?;
        let ef = format!("{field}.ObjectEncryption");
        let kms = p.object_encryption.ok_or_else(|| Error::field(&ef, "is required"))?.sse_kms.ok_or_else(|| {
            Error::field(format!("{ef}.SSEKMS"), "is required (SSE-KMS is the encryption this operation sets)")
        })?;
        let kf = format!("{ef}.SSEKMS.KMSKeyArn");
        let kms_key_arn = kms.kms_key_arn.ok_or_else(|| Error::field(&kf, "is required"))?;
        if !(20..=2048).contains(&kms_key_arn.len()) || !valid_key_arn(&kms_key_arn) {
            return Err(Error::field(
                &kf,
                format!("'{kms_key_arn}' is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)"),
            ));
        }
        Ok(UpdateObjectEncryption { kms_key_arn, bucket_key_enabled: kms.bucket_key_enabled.unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: &str = "Operation.S3UpdateObjectEncryption";
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn a_kms_key_arn_is_required() {
        let op = UpdateObjectEncryption::from_spec(
            F,
            &json!({"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": KEY, "BucketKeyEnabled": true}}}),
        )
        .unwrap();
        assert!(op.bucket_key_enabled);
        for (spec, prefix) in [
            (json!({}), "Operation.S3UpdateObjectEncryption.ObjectEncryption:"),
            (json!({"ObjectEncryption": {}}), "Operation.S3UpdateObjectEncryption.ObjectEncryption.SSEKMS:"),
            (
                json!({"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": "alias/mine"}}}),
                "Operation.S3UpdateObjectEncryption.ObjectEncryption.SSEKMS.KMSKeyArn:",
            ),
            (
                json!({"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": "arn:aws:kms:us-east-1:1234:key/x"}}}),
                "Operation.S3UpdateObjectEncryption.ObjectEncryption.SSEKMS.KMSKeyArn:",
            ),
        ] {
            let err = UpdateObjectEncryption::from_spec(F, &spec).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{spec}: {err}");
        }
    }
}
