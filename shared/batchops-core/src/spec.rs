//! The job spec: the JSON body of S3 Control CreateJob (what `aws s3control create-job
//! --cli-input-json` takes), and its validation. Every error names the member that is wrong,
//! as a dotted path (`Manifest.Location.ETag`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use crate::fields::{check_len, require};
pub use crate::fields::{check_tag_set, parse_s3_arn, OutputEncryption, S3Tag};
use crate::ops::Operation;
use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_required: Option<bool>,
    /// Kept as given; [`Operation::from_spec`] parses it into a validated operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<JobReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JobManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<S3Tag>>,
    /// batchops: the most tasks per second the job runs, across all its executors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks_per_second: Option<u64>,
    /// batchops: run everything but the operation's writes, and report what would happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobManifest {
    pub spec: Option<ManifestSpec>,
    pub location: Option<ManifestLocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestSpec {
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestLocation {
    pub object_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
    #[serde(rename = "ETag")]
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
}

pub const CSV_FORMAT: &str = "S3BatchOperations_CSV_20180820";
pub const INVENTORY_FORMAT: &str = "S3InventoryReport_CSV_20161130";
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";

/// Columns a CSV manifest can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestField {
    Ignore,
    Bucket,
    Key,
    VersionId,
}

/// Which tasks the completion report lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReportScope {
    AllTasks,
    FailedTasksOnly,
}

/// A validated report configuration. `None` at the job level means the report is disabled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportTarget {
    pub bucket: String,
    pub prefix: Option<String>,
    pub scope: ReportScope,
}

impl ReportTarget {
    /// `<prefix>/job-<id>`, the folder every report object of a job lives under.
    pub fn job_folder(&self, job_id: &crate::job::JobId) -> String {
        match &self.prefix {
            Some(p) => format!("{}/job-{job_id}", p.trim_end_matches('/')),
            None => format!("job-{job_id}"),
        }
    }
}

/// A validated manifest reference.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: String,
    pub fields: Vec<ManifestField>,
}

impl ManifestRef {
    /// The manifest object, at the version the job names.
    pub fn object(&self) -> crate::objects::ObjectRef<'_> {
        crate::objects::ObjectRef { bucket: &self.bucket, key: &self.key, version_id: self.version_id.as_deref() }
    }
}

/// Where a job's objects come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// A CSV manifest: chunks are byte ranges of it.
    Csv(ManifestRef),
    /// An S3 Inventory report; the reference points at its `manifest.json`.
    Inventory(ManifestRef),
    /// A listing of a bucket (`ManifestGenerator`).
    Generator(Box<crate::generator::Generator>),
}

impl Source {
    /// The manifest object the job names, if it names one.
    pub fn manifest(&self) -> Option<&ManifestRef> {
        match self {
            Source::Csv(m) | Source::Inventory(m) => Some(m),
            Source::Generator(_) => None,
        }
    }
}

/// Everything the pipeline needs from a spec, validated: intake stores it with the job, and
/// every stage reads it from there.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValidJob {
    pub operation: Operation,
    pub source: Source,
    pub report: Option<ReportTarget>,
    /// batchops `DryRun`: read each task's object instead of running the operation.
    #[serde(default)]
    pub dry_run: bool,
}

/// The range of `MaxTasksPerSecond`.
pub const MAX_RATE: u64 = 1_000_000;

/// Checks a task rate: 1 to [`MAX_RATE`] tasks per second.
pub fn check_rate(field: &str, rate: u64) -> Result<()> {
    if !(1..=MAX_RATE).contains(&rate) {
        return Err(Error::field(field, format!("must be 1-{MAX_RATE} tasks per second, not {rate}")));
    }
    Ok(())
}

/// Parses a request body into a spec; type errors name the member (`Priority: invalid type`).
pub fn parse(body: &[u8]) -> Result<JobSpec> {
    parse_json(body, "CreateJobRequest")
}

/// The largest spec read, from a request body, the specs bucket or a schedule's
/// `SpecLocation` (a CreateJob request is a few KiB).
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Deepest nesting of objects and arrays a JSON body may have (a spec's deepest member,
/// `ManifestGenerator...MatchAnyObjectEncryption[0].SSE-KMS.KmsKeyArn`, is 7 levels down).
/// serde_json stops at 128, but a spec accepted 127 deep was stored one level deeper, inside
/// its job, and that job could not be read back.
pub const MAX_JSON_DEPTH: usize = 32;

/// Parses a JSON request body; type errors name the member, or `request` for the whole body.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], request: &str) -> Result<T> {
    parse_json_within(body, request, MAX_JSON_DEPTH)
}

/// [`parse_json`] of a body that holds a spec `envelope` levels down (a schedule's input:
/// `{"batchops": {"Spec": ...}}`), so that a spec the API takes is taken there too.
pub fn parse_json_within<T: serde::de::DeserializeOwned>(body: &[u8], request: &str, depth: usize) -> Result<T> {
    check_json_depth(body, depth)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::invalid_json(inner)
        } else if path == "." {
            Error::field(request, inner.to_string())
        } else {
            Error::field(path, inner.to_string())
        }
    })?;
    de.end().map_err(Error::invalid_json)?;
    Ok(value)
}

/// Refuses a body nesting objects and arrays deeper than `max`, naming where; a
/// loop over the bytes (strings skipped), before anything builds a value of it.
fn check_json_depth(body: &[u8], max: usize) -> Result<()> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut line, mut line_start) = (1usize, 0usize);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'\n' => (line, line_start) = (line + 1, i + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    let column = i - line_start + 1;
                    return Err(Error::invalid_json(format!(
                        "it nests deeper than {max} objects and arrays at line {line} column {column}"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

impl JobSpec {
    /// The `OperationName` of the one operation member, if exactly one is set.
    pub fn operation_name(&self) -> Option<String> {
        match self.operation.as_ref()? {
            Value::Object(m) if m.len() == 1 => m.keys().next().cloned(),
            _ => None,
        }
    }

    /// Validates every member CreateJob takes, with S3 Control's lengths, ranges and enums.
    pub fn validate(&self) -> Result<ValidJob> {
        self.check().map_err(|mut errors| errors.swap_remove(0))
    }

    /// Every problem of the spec, one per member that has one (S3 answers CreateJob with
    /// the first; the console shows them all at once). Empty when the spec is valid.
    pub fn problems(&self) -> Vec<Error> {
        self.check().err().unwrap_or_default()
    }

    /// The spec, validated; or its problems, in member order, at least one.
    fn check(&self) -> std::result::Result<ValidJob, Vec<Error>> {
        let mut errors: Vec<Error> = self.check_members().into_iter().filter_map(Result::err).collect();
        let operation = require("Operation", &self.operation).and_then(Operation::from_spec);
        let source = match (&self.manifest, &self.manifest_generator) {
            (Some(_), Some(_)) => Err(Error::field("Manifest", "give either Manifest or ManifestGenerator, not both")),
            (None, None) => Err(Error::field("Manifest", "one of Manifest or ManifestGenerator is required")),
            (None, Some(g)) => crate::generator::validate(g).map(|g| Source::Generator(Box::new(g))),
            (Some(m), None) => validate_manifest(m),
        };
        let report = require("Report", &self.report).and_then(validate_report);
        let (operation, source, report) = match (operation, source, report) {
            (Ok(o), Ok(s), Ok(r)) if errors.is_empty() => (o, s, r),
            (o, s, r) => {
                errors.extend([o.err(), s.err(), r.err()].into_iter().flatten());
                return Err(errors);
            }
        };
        if let Source::Generator(g) = &source {
            // A confirmed job runs on the objects counted before confirmation, so they are
            // written down somewhere: the manifest output, or else the report bucket.
            if self.confirmation_required == Some(true) && g.output.is_none() && report.is_none() {
                return Err(vec![Error::field(
                    "ManifestGenerator.S3JobManifestGenerator.EnableManifestOutput",
                    "a job that requires confirmation keeps the list it generated until it is confirmed: \
                     enable the manifest output or the report",
                )]);
            }
        }
        Ok(ValidJob { operation, source, report, dry_run: self.dry_run == Some(true) })
    }

    /// The checks of the top-level scalar members, each independent of the others.
    fn check_members(&self) -> [Result<()>; 7] {
        let role = || -> Result<()> {
            let role = require("RoleArn", &self.role_arn)?;
            check_len("RoleArn", role, 1, 2048)?;
            let role_ok = role.starts_with("arn:")
                && role.split(':').nth(2) == Some("iam")
                && role.split(':').nth(4).is_some_and(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()))
                && role.split(':').nth(5).is_some_and(|r| r.starts_with("role/"));
            if role_ok {
                Ok(())
            } else {
                Err(Error::field(
                    "RoleArn",
                    format!("'{role}' is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"),
                ))
            }
        };
        [
            match &self.account_id {
                Some(acct) if acct.len() != 12 || !acct.chars().all(|c| c.is_ascii_digit()) => {
                    Err(Error::field("AccountId", "must be 12 digits"))
                }
                _ => Ok(()),
            },
            require("ClientRequestToken", &self.client_request_token)
                .and_then(|t| check_len("ClientRequestToken", t, 1, 64)),
            require("Priority", &self.priority).and_then(|p| match (0..=2_147_483_647).contains(p) {
                true => Ok(()),
                false => Err(Error::field("Priority", "must be 0-2147483647")),
            }),
            role(),
            self.description.as_deref().map_or(Ok(()), |d| check_len("Description", d, 1, 256)),
            self.max_tasks_per_second.map_or(Ok(()), |rate| check_rate("MaxTasksPerSecond", rate)),
            self.tags.as_ref().map_or(Ok(()), |tags| check_tag_set("Tags", tags, 50)),
        ]
    }
}

fn validate_manifest(m: &JobManifest) -> Result<Source> {
    let spec = require("Manifest.Spec", &m.spec)?;
    let format = require("Manifest.Spec.Format", &spec.format)?;
    let inventory = match format.as_str() {
        CSV_FORMAT => false,
        INVENTORY_FORMAT => true,
        other => {
            return Err(Error::field(
                "Manifest.Spec.Format",
                format!("'{other}' is not one of {CSV_FORMAT}, {INVENTORY_FORMAT}"),
            ))
        }
    };
    let fields = match &spec.fields {
        // An inventory's columns are its fileSchema's, read with the inventory.
        Some(_) if inventory => {
            return Err(Error::field(
                "Manifest.Spec.Fields",
                "is for CSV manifests; an inventory's fileSchema says which column holds what",
            ))
        }
        None => vec![ManifestField::Bucket, ManifestField::Key],
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                out.push(match n.as_str() {
                    "Ignore" => ManifestField::Ignore,
                    "Bucket" => ManifestField::Bucket,
                    "Key" => ManifestField::Key,
                    "VersionId" => ManifestField::VersionId,
                    other => {
                        return Err(Error::field(
                            format!("Manifest.Spec.Fields[{i}]"),
                            format!("'{other}' is not one of Ignore, Bucket, Key, VersionId"),
                        ))
                    }
                });
            }
            for needed in [ManifestField::Bucket, ManifestField::Key] {
                let count = out.iter().filter(|f| **f == needed).count();
                if count != 1 {
                    return Err(Error::field("Manifest.Spec.Fields", format!("must name {needed:?} exactly once")));
                }
            }
            if out.iter().filter(|f| **f == ManifestField::VersionId).count() > 1 {
                return Err(Error::field("Manifest.Spec.Fields", "must name VersionId at most once"));
            }
            out
        }
    };
    let loc = require("Manifest.Location", &m.location)?;
    let arn = require("Manifest.Location.ObjectArn", &loc.object_arn)?;
    check_len("Manifest.Location.ObjectArn", arn, 1, 2000)?;
    let (bucket, key) = parse_s3_arn("Manifest.Location.ObjectArn", arn)?;
    if key.is_empty() {
        return Err(Error::field("Manifest.Location.ObjectArn", "must name an object (arn:aws:s3:::bucket/key)"));
    }
    let etag = require("Manifest.Location.ETag", &loc.etag)?;
    check_len("Manifest.Location.ETag", etag, 1, 1024)?;
    if let Some(v) = &loc.object_version_id {
        check_len("Manifest.Location.ObjectVersionId", v, 1, 2000)?;
    }
    let m = ManifestRef {
        bucket,
        key,
        version_id: loc.object_version_id.clone(),
        etag: etag.trim_matches('"').to_string(),
        fields,
    };
    Ok(if inventory { Source::Inventory(m) } else { Source::Csv(m) })
}

fn validate_report(r: &JobReport) -> Result<Option<ReportTarget>> {
    let enabled = *require("Report.Enabled", &r.enabled)?;
    if !enabled {
        return Ok(None);
    }
    let bucket_arn = require("Report.Bucket", &r.bucket)?;
    check_len("Report.Bucket", bucket_arn, 1, 128)?;
    let (bucket, key) = parse_s3_arn("Report.Bucket", bucket_arn)?;
    if !key.is_empty() {
        return Err(Error::field("Report.Bucket", "must be a bucket ARN (arn:aws:s3:::bucket), without a key"));
    }
    let format = require("Report.Format", &r.format)?;
    if format != REPORT_FORMAT {
        return Err(Error::field("Report.Format", format!("'{format}' is not {REPORT_FORMAT}")));
    }
    if let Some(p) = &r.prefix {
        check_len("Report.Prefix", p, 1, 512)?;
    }
    let scope = match r.report_scope.as_deref() {
        None | Some("AllTasks") => ReportScope::AllTasks,
        Some("FailedTasksOnly") => ReportScope::FailedTasksOnly,
        Some(other) => {
            return Err(Error::field(
                "Report.ReportScope",
                format!("'{other}' is not one of AllTasks, FailedTasksOnly"),
            ))
        }
    };
    if let Some(o) = &r.expected_bucket_owner {
        if o.len() != 12 || !o.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::field("Report.ExpectedBucketOwner", "must be 12 digits"));
        }
    }
    Ok(Some(ReportTarget { bucket, prefix: r.prefix.clone(), scope }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn copy_spec() -> Value {
        json!({
            "AccountId": "123456789012",
            "ClientRequestToken": "tok-1",
            "Priority": 10,
            "RoleArn": "arn:aws:iam::123456789012:role/batch",
            "Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dest-bucket"}},
            "Manifest": {
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv", "ETag": "\"abc\""}
            },
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "Prefix": "out", "ReportScope": "AllTasks"}
        })
    }

    fn error_field(v: Value) -> String {
        let spec = parse(v.to_string().as_bytes());
        let err = match spec {
            Ok(s) => s.validate().expect_err("spec should not validate"),
            Err(e) => e,
        };
        match err {
            Error::InvalidField { field, .. } => field,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn every_member_with_a_problem_is_named_and_the_first_is_what_validate_answers() {
        let mut v = copy_spec();
        v["Priority"] = json!(-1);
        v["Operation"]["S3PutObjectCopy"]["TargetResource"] = json!("dest-bucket");
        v["Report"]["Bucket"] = json!("reports");
        v["Description"] = json!("");
        let spec = parse(v.to_string().as_bytes()).unwrap();
        let fields: Vec<String> = spec
            .problems()
            .into_iter()
            .map(|e| match e {
                Error::InvalidField { field, .. } => field,
                other => panic!("unexpected error {other:?}"),
            })
            .collect();
        assert_eq!(fields, ["Priority", "Description", "Operation.S3PutObjectCopy.TargetResource", "Report.Bucket"]);
        assert_eq!(error_field(v), "Priority");
        assert!(parse(copy_spec().to_string().as_bytes()).unwrap().problems().is_empty());
    }

    #[test]
    fn a_complete_copy_spec_validates() {
        let spec = parse(copy_spec().to_string().as_bytes()).unwrap();
        let v = spec.validate().unwrap();
        let m = v.source.manifest().unwrap();
        assert_eq!(m.bucket, "manifests");
        assert_eq!(m.key, "m.csv");
        assert_eq!(m.etag, "abc", "quotes around the ETag are dropped");
        assert_eq!(v.report.unwrap().bucket, "reports");
        assert_eq!(spec.operation_name().as_deref(), Some("S3PutObjectCopy"));
    }

    #[test]
    fn every_error_names_its_field() {
        let mut v = copy_spec();
        v.as_object_mut().unwrap().remove("RoleArn");
        assert_eq!(error_field(v), "RoleArn");

        let mut v = copy_spec();
        v["Priority"] = json!("high");
        assert_eq!(error_field(v), "Priority");

        let mut v = copy_spec();
        v["Priority"] = json!(-1);
        assert_eq!(error_field(v), "Priority");

        let mut v = copy_spec();
        v["Manifest"]["Location"].as_object_mut().unwrap().remove("ETag");
        assert_eq!(error_field(v), "Manifest.Location.ETag");

        let mut v = copy_spec();
        v["Manifest"]["Spec"]["Fields"] = json!(["Bucket", "Keys"]);
        assert_eq!(error_field(v), "Manifest.Spec.Fields[1]");

        let mut v = copy_spec();
        v["Manifest"]["Spec"]["Format"] = json!("CSV");
        assert_eq!(error_field(v), "Manifest.Spec.Format");

        let mut v = copy_spec();
        v["Report"]["ReportScope"] = json!("Some");
        assert_eq!(error_field(v), "Report.ReportScope");

        let mut v = copy_spec();
        v["Report"]["Bucket"] = json!("reports");
        assert_eq!(error_field(v), "Report.Bucket");

        let mut v = copy_spec();
        v["ManifestGenerator"] = json!({"S3JobManifestGenerator": {}});
        assert_eq!(error_field(v), "Manifest");

        let mut v = copy_spec();
        v["Manifest"]["Spec"]["Format"] = json!(INVENTORY_FORMAT);
        assert_eq!(error_field(v), "Manifest.Spec.Fields");

        let mut v = copy_spec();
        v.as_object_mut().unwrap().remove("Manifest");
        v["ManifestGenerator"] =
            json!({"S3JobManifestGenerator": {"SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": false}});
        v["ConfirmationRequired"] = json!(true);
        v["Report"] = json!({"Enabled": false});
        assert_eq!(error_field(v), "ManifestGenerator.S3JobManifestGenerator.EnableManifestOutput");

        let mut v = copy_spec();
        v["Unknown"] = json!(1);
        assert_eq!(error_field(v), "Unknown");

        let mut v = copy_spec();
        v["Manifest"]["Location"]["Etag"] = json!("x");
        assert_eq!(error_field(v), "Manifest.Location.Etag");

        let mut v = copy_spec();
        v["RoleArn"] = json!("arn:aws:iam::12:role/x");
        assert_eq!(error_field(v), "RoleArn");

        let mut v = copy_spec();
        v["Tags"] = json!([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]);
        assert_eq!(error_field(v), "Tags[1].Key");
    }

    #[test]
    fn a_disabled_report_needs_no_bucket() {
        let mut v = copy_spec();
        v["Report"] = json!({"Enabled": false});
        let spec = parse(v.to_string().as_bytes()).unwrap();
        assert!(spec.validate().unwrap().report.is_none());
    }

    #[test]
    fn broken_json_is_reported_as_such() {
        assert!(matches!(parse(b"{\"Priority\": "), Err(Error::InvalidBody { .. })));
    }

    #[test]
    fn bodies_nesting_deeper_than_the_limit_are_refused_where_they_do() {
        // An ignored member 126 levels deep was accepted and its job never read back (issue 23).
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut v = copy_spec();
        v["ManifestEncryption"] = json!({"Ignored": "placeholder"});
        let at = |n: usize| v.to_string().replace("\"placeholder\"", &nested(n));
        let e = parse(at(30).as_bytes()).map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("nests deeper"), "32 levels pass the depth check: {e}");
        let e = parse(at(31).as_bytes()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("nests deeper than 32 objects and arrays at line 1 column"), "{e}");
        // Brackets inside strings (escaped quotes too) are text, not levels.
        let mut v = copy_spec();
        v["Description"] = json!(format!("\"{}", "[{".repeat(100)));
        assert!(parse(v.to_string().as_bytes()).is_ok());
        let e = parse(format!("{{\n \"A\": {}", nested(100_000)).as_bytes()).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("at line 2 column"), "{e}");
    }
}

#[cfg(test)]
mod example_specs {
    /// Every spec in `examples/specs/` validates (with a token added, as the CLI adds one).
    #[test]
    fn the_examples_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs");
        let mut seen = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            v["ClientRequestToken"] = serde_json::json!("example");
            let spec = super::parse(v.to_string().as_bytes()).unwrap();
            let valid = spec.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let name = stem.split('-').next().unwrap_or_default();
            assert_eq!(valid.operation.name(), name, "{} is named after its operation", path.display());
            seen.insert(name.to_string());
        }
        for name in crate::ops::NAMES {
            assert!(seen.contains(name), "examples/specs has no {name}.json");
        }
    }
}
