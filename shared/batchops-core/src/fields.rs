//! Checks of single fields that the spec, the generator and the operations share (lengths,
//! required members, S3 ARNs, tag sets, timestamps, one-of values, operation parameters), and the small validated types they produce. A leaf
//! beside [`crate::error`], so an operation can check its fields without depending on the spec
//! that holds it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Tag {
    pub key: String,
    pub value: String,
}

/// Server-side encryption of objects batchops writes (generated manifests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputEncryption {
    /// SSE-S3 (AES256).
    S3,
    /// SSE-KMS with this key.
    Kms(String),
}

pub(crate) fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(Error::field(field, format!("length must be {min}-{max} characters, got {n}")));
    }
    Ok(())
}

pub(crate) fn require<'a, T>(field: &str, v: &'a Option<T>) -> Result<&'a T> {
    v.as_ref().ok_or_else(|| Error::field(field, "is required"))
}

/// Splits an S3 ARN (`arn:aws:s3:::bucket/key`) into bucket and key (the key may be empty).
pub fn parse_s3_arn(field: &str, arn: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1].is_empty() || parts[2] != "s3" {
        return Err(Error::field(field, format!("'{arn}' is not an S3 ARN (arn:aws:s3:::bucket)")));
    }
    let resource = parts[5];
    let (bucket, key) = match resource.split_once('/') {
        Some((b, k)) => (b, k),
        None => (resource, ""),
    };
    if !valid_bucket_name(bucket) {
        return Err(Error::field(field, format!("'{bucket}' is not a valid bucket name")));
    }
    Ok((bucket.to_string(), key.to_string()))
}

fn valid_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub(crate) fn check_tag(field: &str, tag: &S3Tag) -> Result<()> {
    check_len(&format!("{field}.Key"), &tag.key, 1, 128)?;
    check_len(&format!("{field}.Value"), &tag.value, 0, 256)?;
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if !tag.key.chars().all(allowed) {
        return Err(Error::field(format!("{field}.Key"), "may hold only letters, digits, spaces and _.:/=+-@"));
    }
    if !tag.value.chars().all(allowed) {
        return Err(Error::field(format!("{field}.Value"), "may hold only letters, digits, spaces and _.:/=+-@"));
    }
    Ok(())
}

pub fn check_tag_set(field: &str, tags: &[S3Tag], max: usize) -> Result<()> {
    if tags.len() > max {
        return Err(Error::field(field, format!("at most {max} tags, got {}", tags.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        check_tag(&format!("{field}[{i}]"), t)?;
        if !seen.insert(&t.key) {
            return Err(Error::field(format!("{field}[{i}].Key"), format!("duplicate tag key '{}'", t.key)));
        }
    }
    Ok(())
}

/// Refuses, by name, a member S3's model has and batchops does not run yet (S3's newest:
/// copying annotations, object-lock event holds): a job without it would do something else.
pub(crate) fn not_supported(field: &str, member: &str, given: &Option<Value>) -> Result<()> {
    match given {
        None => Ok(()),
        Some(_) => Err(Error::field(format!("{field}.{member}"), "is not supported by this version of batchops")),
    }
}

/// Deserializes an operation's parameters; errors carry the full member path.
pub(crate) fn params<T: DeserializeOwned>(field: &str, v: &Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let full = if path == "." { field.to_string() } else { format!("{field}.{path}") };
        Error::field(full, e.into_inner().to_string())
    })
}

/// Reads a timestamp as the CLI accepts it: ISO 8601 text or epoch seconds.
pub(crate) fn timestamp(field: &str, v: &Value) -> Result<OffsetDateTime> {
    match v {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| Error::field(field, "is not a timestamp"))?;
            OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| Error::field(field, e.to_string()))
        }
        Value::String(s) => {
            if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                return Ok(t);
            }
            let date = time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| Error::field(field, format!("'{s}' is not an ISO 8601 timestamp")))?;
            Ok(date.midnight().assume_utc())
        }
        _ => Err(Error::field(field, "is not a timestamp")),
    }
}

pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::field(field, format!("'{value}' is not one of {}", allowed.join(", "))))
    }
}
