//! `ManifestGenerator` (`S3JobManifestGenerator`): the job's objects are listed from a bucket
//! and filtered, instead of read from a manifest. Every `Filter` member of S3 Control's
//! `JobManifestGeneratorFilter` is honoured; what each costs in requests:
//!
//! | member | requests |
//! |---|---|
//! | `KeyNameConstraint.MatchAnyPrefix` | none extra: only those prefixes are listed |
//! | `MatchAnySuffix`, `MatchAnySubstring`, `CreatedAfter`/`Before`, size bounds, `MatchAnyStorageClass` | none: decided from the listing |
//! | `ObjectReplicationStatuses`, `MatchAnyObjectEncryption` | one HeadObject per object that passed the filters above (32 at a time) |
//! | `EligibleForReplication` | one GetBucketReplication per job; one GetObjectTagging per object when a rule filters on tags |
//!
//! Listing is ListObjectsV2, or ListObjectVersions when the bucket is versioned (tasks then
//! name the version that was listed: the current one, or every version for
//! `S3ReplicateObject`). <https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_S3ManifestOutputLocation.html>

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use crate::fields::{check_len, parse_s3_arn, require, timestamp, OutputEncryption};
use crate::objects::{ListedObject, ObjectHead};
use crate::ops::replicate_object::{rules_for, ReplicationRule};
use crate::{Error, Result};

/// The only format of generated manifests.
pub const GENERATED_FORMAT: &str = "S3InventoryReport_CSV_20211130";

const ROOT: &str = "ManifestGenerator.S3JobManifestGenerator";

const STORAGE_CLASSES: [&str; 7] =
    ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "GLACIER", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR"];
const REPLICATION_STATUSES: [&str; 4] = ["COMPLETED", "FAILED", "REPLICA", "NONE"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratorJson {
    #[serde(rename = "S3JobManifestGenerator")]
    s3: Option<S3GeneratorJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct S3GeneratorJson {
    expected_bucket_owner: Option<String>,
    source_bucket: Option<String>,
    manifest_output_location: Option<OutputJson>,
    filter: Option<FilterJson>,
    enable_manifest_output: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OutputJson {
    expected_manifest_bucket_owner: Option<String>,
    bucket: Option<String>,
    manifest_prefix: Option<String>,
    manifest_encryption: Option<Value>,
    manifest_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct FilterJson {
    eligible_for_replication: Option<bool>,
    created_after: Option<Value>,
    created_before: Option<Value>,
    object_replication_statuses: Option<Vec<String>>,
    key_name_constraint: Option<KeyNameJson>,
    object_size_greater_than_bytes: Option<i64>,
    object_size_less_than_bytes: Option<i64>,
    match_any_storage_class: Option<Vec<String>>,
    match_any_object_encryption: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct KeyNameJson {
    match_any_prefix: Option<Vec<String>>,
    match_any_suffix: Option<Vec<String>>,
    match_any_substring: Option<Vec<String>>,
}

/// Where a generated manifest is written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestOutput {
    pub bucket: String,
    pub prefix: Option<String>,
    pub expected_owner: Option<String>,
    pub encryption: Option<OutputEncryption>,
}

impl ManifestOutput {
    /// `<prefix>/job-<id>`: the generated manifest's folder.
    pub fn folder(&self, job_id: &crate::job::JobId) -> String {
        match &self.prefix {
            Some(p) => format!("{}/job-{job_id}", p.trim_end_matches('/')),
            None => format!("job-{job_id}"),
        }
    }
}

/// The object encryption one `MatchAnyObjectEncryption` entry asks for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EncryptionFilter {
    SseS3,
    SseKms { key: Option<String>, bucket_key: Option<bool> },
    DsseKms { key: Option<String> },
    SseC,
    NotSse,
}

/// A validated `Filter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub substrings: Vec<String>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
    pub storage_classes: Vec<String>,
    pub replication_statuses: Vec<String>,
    pub eligible_for_replication: bool,
    pub encryption: Vec<EncryptionFilter>,
}

/// A validated `S3JobManifestGenerator`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generator {
    pub source_bucket: String,
    pub expected_owner: Option<String>,
    /// Set when `EnableManifestOutput` is true.
    pub output: Option<ManifestOutput>,
    pub filter: Filter,
}

fn account(field: &str, v: &Option<String>) -> Result<Option<String>> {
    if let Some(a) = v {
        if a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::field(field, "must be 12 digits"));
        }
    }
    Ok(v.clone())
}

fn strings(field: &str, v: &Option<Vec<String>>) -> Result<Vec<String>> {
    let v = v.clone().unwrap_or_default();
    for (i, s) in v.iter().enumerate() {
        check_len(&format!("{field}[{i}]"), s, 1, 1024)?;
    }
    Ok(v)
}

fn one_of(field: &str, v: &Option<Vec<String>>, allowed: &[&str]) -> Result<Vec<String>> {
    let v = v.clone().unwrap_or_default();
    for (i, s) in v.iter().enumerate() {
        if !allowed.contains(&s.as_str()) {
            return Err(Error::field(format!("{field}[{i}]"), format!("'{s}' is not one of {}", allowed.join(", "))));
        }
    }
    Ok(v)
}

/// Reads `{"SSE-KMS": {...}}` or `{"SSEKMS": {...}}` (the XML and the JSON spellings).
fn single_member<'a>(field: &str, v: &'a Value) -> Result<(String, &'a Value)> {
    match v.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) {
        Some((k, inner)) => Ok((k.replace('-', "").to_ascii_uppercase(), inner)),
        None => Err(Error::field(field, "must have exactly one member")),
    }
}

fn encryption_filter(field: &str, v: &Value) -> Result<EncryptionFilter> {
    let (name, inner) = single_member(field, v)?;
    let s = |k: &str| inner.get(k).and_then(Value::as_str).map(String::from);
    Ok(match name.as_str() {
        "SSES3" => EncryptionFilter::SseS3,
        "SSEKMS" => EncryptionFilter::SseKms {
            key: s("KmsKeyArn"),
            bucket_key: inner.get("BucketKeyEnabled").and_then(Value::as_bool),
        },
        "DSSEKMS" => EncryptionFilter::DsseKms { key: s("KmsKeyArn") },
        "SSEC" => EncryptionFilter::SseC,
        "NOTSSE" => EncryptionFilter::NotSse,
        other => {
            return Err(Error::field(
                field,
                format!("'{other}' is not one of SSE-S3, SSE-KMS, DSSE-KMS, SSE-C, NOT-SSE"),
            ))
        }
    })
}

/// Validates the CreateJob `ManifestGenerator` member; errors name the member.
pub fn validate(v: &Value) -> Result<Generator> {
    let parsed: GeneratorJson = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { "ManifestGenerator".to_string() } else { format!("ManifestGenerator.{path}") };
        Error::field(at, e.into_inner().to_string())
    })?;
    let g = parsed.s3.ok_or_else(|| Error::field("ManifestGenerator.S3JobManifestGenerator", "is required"))?;
    let source_arn = require(&format!("{ROOT}.SourceBucket"), &g.source_bucket)?;
    let (source_bucket, key) = parse_s3_arn(&format!("{ROOT}.SourceBucket"), source_arn)?;
    if !key.is_empty() {
        return Err(Error::field(format!("{ROOT}.SourceBucket"), "must be a bucket ARN (arn:aws:s3:::bucket)"));
    }
    let expected_owner = account(&format!("{ROOT}.ExpectedBucketOwner"), &g.expected_bucket_owner)?;
    let enabled = *require(&format!("{ROOT}.EnableManifestOutput"), &g.enable_manifest_output)?;
    let output = match (&g.manifest_output_location, enabled) {
        (None, true) => {
            return Err(Error::field(
                format!("{ROOT}.ManifestOutputLocation"),
                "is required when EnableManifestOutput is true",
            ))
        }
        (Some(_), false) | (None, false) => None,
        (Some(o), true) => Some(output(o)?),
    };
    let filter = match &g.filter {
        Some(f) => filter(f)?,
        None => Filter::default(),
    };
    Ok(Generator { source_bucket, expected_owner, output, filter })
}

fn output(o: &OutputJson) -> Result<ManifestOutput> {
    let at = format!("{ROOT}.ManifestOutputLocation");
    let arn = require(&format!("{at}.Bucket"), &o.bucket)?;
    let (bucket, key) = parse_s3_arn(&format!("{at}.Bucket"), arn)?;
    if !key.is_empty() {
        return Err(Error::field(format!("{at}.Bucket"), "must be a bucket ARN (arn:aws:s3:::bucket)"));
    }
    let format = require(&format!("{at}.ManifestFormat"), &o.manifest_format)?;
    if format != GENERATED_FORMAT {
        return Err(Error::field(format!("{at}.ManifestFormat"), format!("'{format}' is not {GENERATED_FORMAT}")));
    }
    if let Some(p) = &o.manifest_prefix {
        check_len(&format!("{at}.ManifestPrefix"), p, 1, 512)?;
    }
    let encryption = match &o.manifest_encryption {
        None => None,
        Some(v) => {
            let field = format!("{at}.ManifestEncryption");
            let (name, inner) = single_member(&field, v)?;
            Some(match name.as_str() {
                "SSES3" => OutputEncryption::S3,
                "SSEKMS" => match inner.get("KeyId").and_then(Value::as_str) {
                    Some(k) if !k.is_empty() => OutputEncryption::Kms(k.to_string()),
                    _ => return Err(Error::field(format!("{field}.SSE-KMS.KeyId"), "is required")),
                },
                other => return Err(Error::field(field, format!("'{other}' is not one of SSE-S3, SSE-KMS"))),
            })
        }
    };
    Ok(ManifestOutput {
        bucket,
        prefix: o.manifest_prefix.clone(),
        expected_owner: account(&format!("{at}.ExpectedManifestBucketOwner"), &o.expected_manifest_bucket_owner)?,
        encryption,
    })
}

fn size(field: &str, v: Option<i64>) -> Result<Option<u64>> {
    match v {
        Some(n) if n < 0 => Err(Error::field(field, "must not be negative")),
        other => Ok(other.map(|n| n as u64)),
    }
}

/// Replaces a filter's relative `CreatedAfter`/`CreatedBefore` (`"-P1D"`, batchops) by the
/// absolute time it gives counted back from `reference` (a schedule's firing time, else the
/// job's creation), so the job's spec, and DescribeJob, hold the time it ran with.
pub fn resolve_windows(generator: &mut Value, reference: Timestamp) -> Result<()> {
    for name in ["CreatedAfter", "CreatedBefore"] {
        let Some(v) = generator.pointer_mut(&format!("/S3JobManifestGenerator/Filter/{name}")) else { continue };
        let Some(text) = v.as_str() else { continue };
        if let Some(t) = resolve_relative(&format!("{ROOT}.Filter.{name}"), text, reference)? {
            *v = Value::String(crate::job::iso8601(t));
        }
    }
    Ok(())
}

fn filter(f: &FilterJson) -> Result<Filter> {
    let at = format!("{ROOT}.Filter");
    let time = |name: &str, v: &Option<Value>| -> Result<Option<Timestamp>> {
        v.as_ref().map(|v| timestamp(&format!("{at}.{name}"), v)).transpose()
    };
    let k = f.key_name_constraint.as_ref();
    let kn = format!("{at}.KeyNameConstraint");
    let out = Filter {
        created_after: time("CreatedAfter", &f.created_after)?,
        created_before: time("CreatedBefore", &f.created_before)?,
        prefixes: strings(&format!("{kn}.MatchAnyPrefix"), &k.and_then(|k| k.match_any_prefix.clone()))?,
        suffixes: strings(&format!("{kn}.MatchAnySuffix"), &k.and_then(|k| k.match_any_suffix.clone()))?,
        substrings: strings(&format!("{kn}.MatchAnySubstring"), &k.and_then(|k| k.match_any_substring.clone()))?,
        size_greater_than: size(&format!("{at}.ObjectSizeGreaterThanBytes"), f.object_size_greater_than_bytes)?,
        size_less_than: size(&format!("{at}.ObjectSizeLessThanBytes"), f.object_size_less_than_bytes)?,
        storage_classes: one_of(&format!("{at}.MatchAnyStorageClass"), &f.match_any_storage_class, &STORAGE_CLASSES)?,
        replication_statuses: one_of(
            &format!("{at}.ObjectReplicationStatuses"),
            &f.object_replication_statuses,
            &REPLICATION_STATUSES,
        )?,
        eligible_for_replication: f.eligible_for_replication.unwrap_or(false),
        encryption: f
            .match_any_object_encryption
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, v)| encryption_filter(&format!("{at}.MatchAnyObjectEncryption[{i}]"), v))
            .collect::<Result<_>>()?,
    };
    if let (Some(a), Some(b)) = (out.created_after, out.created_before) {
        if a >= b {
            return Err(Error::field(format!("{at}.CreatedBefore"), "must be after CreatedAfter"));
        }
    }
    if let (Some(gt), Some(lt)) = (out.size_greater_than, out.size_less_than) {
        if lt <= gt.saturating_add(1) {
            return Err(Error::field(
                format!("{at}.ObjectSizeLessThanBytes"),
                format!("no size is greater than {gt} and less than {lt}"),
            ));
        }
    }
    Ok(out)
}

impl Filter {
    /// The prefixes to list: `MatchAnyPrefix`, or the whole bucket.
    pub fn list_prefixes(&self) -> Vec<String> {
        if self.prefixes.is_empty() {
            vec![String::new()]
        } else {
            self.prefixes.clone()
        }
    }

    /// Decides what the listing alone can decide.
    pub fn matches_listing(&self, o: &ListedObject) -> bool {
        let key = o.key.as_str();
        (self.suffixes.is_empty() || self.suffixes.iter().any(|s| key.ends_with(s.as_str())))
            && (self.substrings.is_empty() || self.substrings.iter().any(|s| key.contains(s.as_str())))
            && self.created_after.is_none_or(|t| o.last_modified.is_some_and(|m| m > t))
            && self.created_before.is_none_or(|t| o.last_modified.is_some_and(|m| m < t))
            && self.size_greater_than.is_none_or(|n| o.size > n)
            && self.size_less_than.is_none_or(|n| o.size < n)
            && (self.storage_classes.is_empty() || self.storage_classes.contains(&o.storage_class))
    }

    /// True when each object must be HEADed (replication status or encryption filters).
    pub fn needs_head(&self) -> bool {
        !self.replication_statuses.is_empty() || !self.encryption.is_empty()
    }

    /// Decides the members that need the object's HEAD (`None`: S3 refused the HEAD with 400,
    /// which is what an SSE-C object answers without its key).
    pub fn matches_head(&self, head: Option<&ObjectHead>) -> bool {
        let status_ok = self.replication_statuses.is_empty()
            || self.replication_statuses.iter().any(|s| {
                let actual = head.and_then(|h| h.replication_status.as_deref()).unwrap_or("NONE");
                s == actual
            });
        let enc_ok = self.encryption.is_empty() || self.encryption.iter().any(|e| encryption_matches(e, head));
        status_ok && enc_ok
    }

    /// `EligibleForReplication`: an enabled rule of the source bucket's replication
    /// configuration matches the object.
    pub fn eligible(&self, rules: &[ReplicationRule], key: &str, tags: &[(String, String)]) -> bool {
        !self.eligible_for_replication || !rules_for(rules, key, tags).is_empty()
    }
}

fn encryption_matches(filter: &EncryptionFilter, head: Option<&ObjectHead>) -> bool {
    let Some(h) = head else { return *filter == EncryptionFilter::SseC };
    let sse = h.server_side_encryption.as_deref();
    let key_ok = |want: &Option<String>| {
        want.as_ref()
            .is_none_or(|k| h.kms_key_id.as_deref().is_some_and(|have| have == k || have.ends_with(&format!("/{k}"))))
    };
    match filter {
        EncryptionFilter::SseS3 => sse == Some("AES256"),
        EncryptionFilter::SseKms { key, bucket_key } => {
            sse == Some("aws:kms") && key_ok(key) && bucket_key.is_none_or(|b| b == h.bucket_key_enabled)
        }
        EncryptionFilter::DsseKms { key } => sse == Some("aws:kms:dsse") && key_ok(key),
        EncryptionFilter::SseC => h.sse_customer_algorithm.is_some(),
        EncryptionFilter::NotSse => sse.is_none() && h.sse_customer_algorithm.is_none(),
    }
}

/// The time an ISO 8601 duration counted back from `reference` gives (`-P1D`, `-PT1H`,
/// `-P1DT12H`, `-P2W`); `None` when `text` is not a relative time at all.
pub fn resolve_relative(field: &str, text: &str, reference: Timestamp) -> Result<Option<Timestamp>> {
    let Some(iso) = text.strip_prefix('-').filter(|t| t.starts_with('P')) else {
        if text.starts_with('P') || text.starts_with("+P") {
            return Err(Error::field(
                field,
                format!("'{text}' counts forward: a window is counted back, as -{}", text.trim_start_matches('+')),
            ));
        }
        return Ok(None);
    };
    let span: jiff::Span =
        iso.parse().map_err(|e| Error::field(field, format!("'{text}' is not an ISO 8601 duration: {e}")))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(Error::field(field, format!("'{text}': years and months have no fixed length; use days (P30D)")));
    }
    let secs = span.get_weeks() as i64 * 604_800
        + span.get_days() as i64 * 86_400
        + span.get_hours() as i64 * 3600
        + span.get_minutes() * 60
        + span.get_seconds();
    // Checked: -P700000W reached past year -9999 and `time` panicked (issue 23); nothing in S3
    // is older than 1970, so a window reaching before it is refused rather than written as
    // year -712.
    match reference.checked_sub(SignedDuration::from_secs(secs)) {
        Ok(t) if t >= Timestamp::UNIX_EPOCH => Ok(Some(t)),
        _ => Err(Error::field(field, format!("'{text}' counts back before 1970"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn generator(filter: Value) -> Result<Generator> {
        validate(&json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src",
            "EnableManifestOutput": false,
            "Filter": filter,
        }}))
    }

    fn field(r: Result<Generator>) -> String {
        match r {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn listed(key: &str, size: u64, class: &str, modified: &str) -> ListedObject {
        ListedObject {
            key: key.into(),
            version_id: None,
            is_latest: true,
            is_delete_marker: false,
            size,
            last_modified: Some(modified.parse().unwrap()),
            etag: "e".into(),
            storage_class: class.into(),
        }
    }

    #[test]
    fn every_filter_member_is_read() {
        let g = generator(json!({
            "CreatedAfter": "2023-09-01", "CreatedBefore": "2024-01-01T00:00:00Z",
            "KeyNameConstraint": {"MatchAnyPrefix": ["logs/"], "MatchAnySuffix": [".gz"], "MatchAnySubstring": ["2023"]},
            "ObjectSizeGreaterThanBytes": 10, "ObjectSizeLessThanBytes": 1000,
            "MatchAnyStorageClass": ["STANDARD", "GLACIER"],
            "ObjectReplicationStatuses": ["NONE"], "EligibleForReplication": true,
            "MatchAnyObjectEncryption": [{"SSE-KMS": {"KmsKeyArn": "arn:aws:kms:us-east-1:1:key/k", "BucketKeyEnabled": true}}]
        }))
        .unwrap();
        let f = &g.filter;
        assert_eq!(f.list_prefixes(), vec!["logs/".to_string()]);
        assert!(f.needs_head() && f.eligible_for_replication);
        assert!(f.matches_listing(&listed("logs/2023/a.gz", 100, "GLACIER", "2023-10-01T00:00:00Z")));
        for (o, why) in [
            (listed("logs/2023/a.txt", 100, "STANDARD", "2023-10-01T00:00:00Z"), "suffix"),
            (listed("logs/2022/a.gz", 100, "STANDARD", "2023-10-01T00:00:00Z"), "substring"),
            (listed("logs/2023/a.gz", 10, "STANDARD", "2023-10-01T00:00:00Z"), "size not greater"),
            (listed("logs/2023/a.gz", 1000, "STANDARD", "2023-10-01T00:00:00Z"), "size not less"),
            (listed("logs/2023/a.gz", 100, "DEEP_ARCHIVE", "2023-10-01T00:00:00Z"), "class"),
            (listed("logs/2023/a.gz", 100, "STANDARD", "2023-09-01T00:00:00Z"), "created after is exclusive"),
            (listed("logs/2023/a.gz", 100, "STANDARD", "2024-02-01T00:00:00Z"), "created before"),
        ] {
            assert!(!f.matches_listing(&o), "{why}");
        }
    }

    #[test]
    fn head_filters_decide_encryption_and_replication_status() {
        let g = generator(json!({"MatchAnyObjectEncryption": [{"SSEKMS": {"KmsKeyArn": "k1"}}]})).unwrap();
        let mut h = ObjectHead {
            etag: "e".into(),
            size: 1,
            server_side_encryption: Some("aws:kms".into()),
            kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/k1".into()),
            ..Default::default()
        };
        assert!(g.filter.matches_head(Some(&h)));
        h.kms_key_id = Some("other".into());
        assert!(!g.filter.matches_head(Some(&h)));
        let not_sse = generator(json!({"MatchAnyObjectEncryption": [{"NOT-SSE": {}}]})).unwrap();
        assert!(!not_sse.filter.matches_head(Some(&h)));
        assert!(not_sse.filter.matches_head(Some(&ObjectHead::default())));
        let sse_c = generator(json!({"MatchAnyObjectEncryption": [{"SSE-C": {}}]})).unwrap();
        assert!(sse_c.filter.matches_head(None), "a HEAD refused with 400 is an SSE-C object");
        let status = generator(json!({"ObjectReplicationStatuses": ["FAILED", "NONE"]})).unwrap();
        assert!(status.filter.matches_head(Some(&ObjectHead::default())));
        let done = ObjectHead { replication_status: Some("COMPLETED".into()), ..Default::default() };
        assert!(!status.filter.matches_head(Some(&done)));
    }

    #[test]
    fn eligibility_follows_the_replication_rules() {
        let g = generator(json!({"EligibleForReplication": true})).unwrap();
        let rules = vec![ReplicationRule {
            enabled: true,
            prefix: "a/".into(),
            destination_bucket: "d".into(),
            ..Default::default()
        }];
        assert!(g.filter.eligible(&rules, "a/x", &[]));
        assert!(!g.filter.eligible(&rules, "b/x", &[]));
        assert!(generator(json!({})).unwrap().filter.eligible(&[], "b/x", &[]));
    }

    #[test]
    fn errors_name_the_member() {
        assert_eq!(
            field(generator(json!({"MatchAnyStorageClass": ["STANDARD", "COLD"]}))),
            format!("{ROOT}.Filter.MatchAnyStorageClass[1]")
        );
        assert_eq!(field(generator(json!({"CreatedAfter": "yesterday"}))), format!("{ROOT}.Filter.CreatedAfter"));
        assert_eq!(field(generator(json!({"Size": 1}))), format!("{ROOT}.Filter.Size"));
        assert_eq!(
            field(generator(json!({"ObjectSizeGreaterThanBytes": 10, "ObjectSizeLessThanBytes": 11}))),
            format!("{ROOT}.Filter.ObjectSizeLessThanBytes")
        );
        assert_eq!(
            field(generator(json!({"MatchAnyObjectEncryption": [{"SSE-X": {}}]}))),
            format!("{ROOT}.Filter.MatchAnyObjectEncryption[0]")
        );
        let no_location = validate(&json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": true}}));
        assert_eq!(field(no_location), format!("{ROOT}.ManifestOutputLocation"));
        let bad_format = validate(&json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::out", "ManifestFormat": "CSV"}}}));
        assert_eq!(field(bad_format), format!("{ROOT}.ManifestOutputLocation.ManifestFormat"));
        let no_bucket = validate(&json!({"S3JobManifestGenerator": {"EnableManifestOutput": false}}));
        assert_eq!(field(no_bucket), format!("{ROOT}.SourceBucket"));
    }

    #[test]
    fn output_locations_and_timestamps() {
        let g = validate(&json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::out", "ManifestPrefix": "gen/",
                "ManifestFormat": "S3InventoryReport_CSV_20211130",
                "ManifestEncryption": {"SSE-KMS": {"KeyId": "alias/k"}}}}}))
        .unwrap();
        let out = g.output.unwrap();
        assert_eq!(out.encryption, Some(OutputEncryption::Kms("alias/k".into())));
        assert_eq!(out.folder(&crate::job::JobId::parse("job-1").unwrap()), "gen/job-job-1");
        assert_eq!(timestamp("t", &json!(0)).unwrap(), Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn relative_windows_count_back_from_the_reference() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let t = at("2026-12-01T02:00:00Z");
        let r = |s| resolve_relative("F", s, t).unwrap().unwrap();
        assert_eq!(r("-P1D"), at("2026-11-30T02:00:00Z"));
        assert_eq!(r("-PT1H"), at("2026-12-01T01:00:00Z"));
        assert_eq!(r("-P1DT12H30M"), at("2026-11-29T13:30:00Z"));
        assert_eq!(r("-P2W"), at("2026-11-17T02:00:00Z"));
        assert_eq!(resolve_relative("F", "2026-01-01T00:00:00Z", t).unwrap(), None);
        assert!(resolve_relative("F", "P1D", t).unwrap_err().to_string().contains("counted back"));
        assert!(resolve_relative("F", "-P1M", t).unwrap_err().to_string().contains("no fixed length"));
        assert!(resolve_relative("F", "-Pfoo", t).unwrap_err().to_string().starts_with("F:"));
        // Past year -9999 `time` panicked (issue 23); before 1970 is refused as well.
        for far in ["-P700000W", "-P4400000D", "-P30000D", "-PT9999999999S"] {
            let e = resolve_relative("F", far, t).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("counts back before 1970"), "{far}: {e}");
        }
    }
}
