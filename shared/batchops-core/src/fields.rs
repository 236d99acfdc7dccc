//! Checks of single fields that the spec, the generator and the operations share (lengths,
//! required members, S3 ARNs, tag sets, timestamps, one-of values, operation parameters), and the small validated types they produce. A leaf
//! beside [`crate::error`], so an operation can check its fields without depending on the spec
//! that holds it.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Reads a timestamp as the CLI and SDKs give it: RFC 3339 (`2023-09-01T12:00:00Z`, see
/// [`rfc3339`]), a date (`2023-09-01`: midnight UTC) or epoch seconds. The operations and the
/// generator's filter all read times through here.
pub(crate) fn timestamp(field: &str, v: &Value) -> Result<Timestamp> {
    let bad =
        || Error::field(field, format!("{v} is not a timestamp (2023-09-01, 2023-09-01T12:00:00Z or epoch seconds)"));
    // jiff holds times up to 9999-12-30T22:00:00Z (`time` went to the end of 9999): what lies
    // between is refused by that name, not by the parser's overflow.
    let late = || Error::field(field, format!("{v} is later than {}, the latest time batchops holds", Timestamp::MAX));
    match v {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(bad)?.floor();
            Timestamp::from_second(secs as i64).map_err(|_| if secs > 0.0 { late() } else { bad() })
        }
        Value::String(s) if is_date(s) => {
            let date: Date = s.parse().map_err(|_| bad())?;
            date.to_zoned(TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| late())
        }
        Value::String(s) if is_rfc3339(s) => s.parse().map_err(|_| {
            // The shape is right: either the date does not exist (02-30) or it is too late.
            if s[..10].parse::<Date>().is_ok_and(|d| d.year() == 9999) {
                late()
            } else {
                bad()
            }
        }),
        _ => Err(bad()),
    }
}

/// `2023-09-01`: four digits, two, two (jiff's own parser also takes `20230901` and `-002023-09-01`).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// An RFC 3339 time as S3 reads it, or `None` (also for a time past those jiff holds).
pub(crate) fn rfc3339(s: &str) -> Option<Timestamp> {
    is_rfc3339(s).then(|| s.parse().ok()).flatten()
}

/// RFC 3339 as S3 reads it: `2023-09-01T12:00:00`, a `.fraction` of up to nine digits, then `Z`
/// or an offset `+02:00` (`t`, `z` and a space for `T` too). jiff's parser also reads ISO 8601's
/// other spellings, which S3 refuses and so does batchops: no seconds (`T12:00Z`), `,5`,
/// `[Europe/Berlin]`, `+0200`, a leap second `:60`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let two = |i: usize, max: u8| digits(i..i + 2) && (b[i] - b'0') * 10 + (b[i + 1] - b'0') <= max;
    let head = s.get(..10).is_some_and(is_date)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && two(11, 23)
        && b.get(13) == Some(&b':')
        && two(14, 59)
        && b.get(16) == Some(&b':')
        && two(17, 59);
    if !head {
        return false;
    }
    let mut rest = &b[19..];
    if let [b'.', fraction @ ..] = rest {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => two(b.len() - 5, 23) && two(b.len() - 2, 59),
        _ => false,
    }
}

pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::field(field, format!("'{value}' is not one of {}", allowed.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(v: Value) -> i64 {
        timestamp("F", &v).unwrap_or_else(|e| panic!("{v}: {e}")).as_second()
    }

    #[test]
    fn timestamps_are_rfc_3339_dates_or_epoch_seconds() {
        assert_eq!(secs(json!("2023-09-01")), 1_693_526_400);
        assert_eq!(secs(json!("2023-09-01T00:00:00Z")), 1_693_526_400);
        assert_eq!(secs(json!("2023-09-01T02:00:00+02:00")), 1_693_526_400);
        assert_eq!(secs(json!("2023-08-31T22:00:00-02:00")), 1_693_526_400);
        assert_eq!(secs(json!("2023-09-01t00:00:00.999999999z")), 1_693_526_400);
        assert_eq!(secs(json!("2023-09-01 00:00:00.5Z")), 1_693_526_400);
        assert_eq!(secs(json!(1_693_526_400)), 1_693_526_400);
        assert_eq!(secs(json!(1_693_526_400.9)), 1_693_526_400);
        assert_eq!(secs(json!(-1.5)), -2, "epoch seconds are floored");
        let fraction = timestamp("F", &json!("2023-09-01T00:00:00.5Z")).unwrap();
        assert_eq!(fraction.subsec_millisecond(), 500);
    }

    #[test]
    fn only_rfc_3339_is_taken_not_the_rest_of_iso_8601() {
        // What jiff's own parser takes and S3 (and `time`, before it) refuses.
        for text in [
            "2023-09-01T00:00Z",
            "2023-09-01T00:00:00",
            "2023-09-01T00:00:00Z[Europe/Berlin]",
            "2023-09-01T00:00:00,5Z",
            "2023-09-01T00:00:00+0200",
            "2023-09-01T00:00:00+24:00",
            "2023-09-01T00:00:00+02:00:00",
            "2023-09-01T23:59:60Z",
            "2023-09-01T00:00:00.1234567891Z",
            "2023-09-01T00:00:00.Z",
            "2023-09-01T24:00:00Z",
            "2023-02-30T00:00:00Z",
            "2023-02-30",
            "20230901",
            "+002023-09-01",
            "-002023-09-01T00:00:00Z",
            "yesterday",
            "",
        ] {
            let e = timestamp("F", &json!(text)).map(|t| t.to_string()).unwrap_err().to_string();
            assert!(e.starts_with("F: ") && e.contains("is not a timestamp"), "{text}: {e}");
            assert_eq!(rfc3339(text), None, "{text}");
        }
        assert!(timestamp("F", &json!(true)).is_err());
    }

    #[test]
    fn times_past_the_latest_jiff_holds_are_a_field_error() {
        // `time` held up to 9999-12-31T23:59:59Z, jiff up to 9999-12-30T22:00:00Z.
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-30T22:00:00.999999999Z");
        assert_eq!(secs(json!("9999-12-30T22:00:00Z")), 253_402_207_200);
        for v in [
            json!("9999-12-31T23:59:59Z"),
            json!("9999-12-30T22:00:01Z"),
            json!("9999-12-30T20:00:01-02:00"),
            json!("9999-12-31"),
            json!(253_402_300_799_i64),
            json!(1e300),
        ] {
            let e = timestamp("F", &v).map(|t| t.to_string()).unwrap_err().to_string();
            assert!(e.starts_with(&format!("F: {v} is later than 9999-12-30T22:00:00")), "{v}: {e}");
        }
        let e = timestamp("F", &json!(-1e300)).map(|t| t.to_string()).unwrap_err().to_string();
        assert!(e.contains("is not a timestamp"), "{e}");
    }
}
