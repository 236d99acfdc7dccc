//! CloudFormation's custom resource `Custom::BatchopsJob`: a job declared in a template. The
//! request documents CloudFormation sends (Create, Update, Delete), the resource's properties
//! (CreateJob's members, as CloudFormation passes them: every scalar a string), and the
//! response document it waits for.
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref.html>

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::job::{Job, JobId};
use crate::spec::{self, JobSpec};
use crate::{Error, Result};

/// How long CloudFormation waits for a custom resource's answer unless its `ServiceTimeout`
/// says less: one hour.
pub const CLOUDFORMATION_WAIT_SECS: u64 = 3600;

/// The longest reason an answer gives (bytes): CloudFormation takes response documents of up to
/// 4,096 bytes, and the ids and attributes need their share.
const MAX_REASON: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// A request document, as CloudFormation sends it to the service token's function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    #[serde(default)]
    pub resource_type: String,
    pub logical_resource_id: String,
    /// Absent on Create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Map<String, Value>,
    /// Update only: the properties before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_resource_properties: Option<Map<String, Value>>,
}

impl Request {
    pub fn parse(body: &[u8]) -> Result<Request> {
        spec::parse_json(body, "the CloudFormation request")
    }

    /// The ClientRequestToken of the job this request creates: the same for every delivery
    /// of the request (a retried Create makes one job), another for the next request.
    pub fn token(&self) -> String {
        format!("cfn-{}", hex::encode(self.digest()))
    }

    /// The id of the job this request creates, if it creates one, known before it exists: an
    /// answer names it even when the request failed after storing it, so the job can always
    /// be found and cancelled (UUID-shaped, as S3's job ids are).
    pub fn job_id(&self) -> JobId {
        let mut first = [0u8; 16];
        first.copy_from_slice(&self.digest()[..16]);
        JobId::from_digest(first)
    }

    fn digest(&self) -> Vec<u8> {
        let mut h = Sha1::new();
        for part in [&self.stack_id, &self.logical_resource_id, &self.request_id] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_vec()
    }
}

/// Whether `url` may be answered: an https URL whose host is one of `hosts` or under one
/// (`amazonaws.com` takes CloudFormation's response buckets), or an http URL of a host given
/// exactly (an emulator's). Whoever may invoke the function names the URL it PUTs to: anything
/// else would let them send its requests anywhere. Parsed as the HTTP client parses it (a `\`
/// ends a host there), and the client follows no redirect.
pub fn answers_to(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str().map(|h| h.trim_end_matches('.').to_ascii_lowercase()) else { return false };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return false;
    }
    match parsed.scheme() {
        "https" => hosts.iter().any(|h| host == *h || host.ends_with(&format!(".{h}"))),
        "http" => hosts.contains(&host),
        _ => false,
    }
}

/// `WaitFor`: when CloudFormation gets its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// As soon as the job is created (or changed).
    Created,
    /// When the job has ended: the resource fails unless it is Complete.
    Complete,
}

/// Members of the custom resource that are not CreateJob's.
const SERVICE_TOKEN: &str = "ServiceToken";
const SERVICE_TIMEOUT: &str = "ServiceTimeout";
const WAIT_FOR: &str = "WaitFor";

/// CreateJob's members (and those of its operations and generators) that are not strings:
/// CloudFormation hands every scalar property over as a string, so these are turned back.
/// Only by name: a tag's value or a description of "10" stays a string. job-intake's tests
/// check the lists against every boolean and integer member of S3 Control's model.
pub const BOOLEANS: [&str; 9] = [
    "ConfirmationRequired",
    "DryRun",
    "Enabled",
    "EnableManifestOutput",
    "EligibleForReplication",
    "RequesterPays",
    "RequesterCharged",
    "BucketKeyEnabled",
    "BypassGovernanceRetention",
];
pub const INTEGERS: [&str; 8] = [
    "Priority",
    "MaxTasksPerSecond",
    "ExpirationInDays",
    "ObjectSizeGreaterThanBytes",
    "ObjectSizeLessThanBytes",
    "ContentLength",
    "Days",
    "Years",
];
/// Maps whose keys are the user's own (a Lambda function's arguments, user metadata): their
/// values stay strings whatever their keys are named.
const FREE_MAPS: [&str; 2] = ["UserArguments", "UserMetadata"];

/// The resource's properties, read once: the job's spec and how long CloudFormation waits.
#[derive(Clone, Debug, PartialEq)]
pub struct Properties {
    /// CreateJob's members, typed back (see [`BOOLEANS`]); the token is set per request.
    pub spec: JobSpec,
    pub wait_for: WaitFor,
    /// How long CloudFormation waits for an answer (its `ServiceTimeout`, at most an hour).
    pub wait_secs: u64,
}

impl Properties {
    pub fn parse(props: &Map<String, Value>) -> Result<Properties> {
        let mut members = props.clone();
        members.remove(SERVICE_TOKEN);
        let wait_for = match members.remove(WAIT_FOR) {
            None => WaitFor::Created,
            Some(Value::String(s)) if s == "Complete" => WaitFor::Complete,
            Some(other) => return Err(Error::field(WAIT_FOR, format!("{other} is not \"Complete\" (or absent)"))),
        };
        let wait_secs = match members.remove(SERVICE_TIMEOUT) {
            None => CLOUDFORMATION_WAIT_SECS,
            Some(v) => integer(&v).filter(|s| (1..=CLOUDFORMATION_WAIT_SECS as i64).contains(s)).ok_or_else(|| {
                Error::field(SERVICE_TIMEOUT, format!("{v} is not a number of seconds from 1 to 3600"))
            })? as u64,
        };
        if members.contains_key("ClientRequestToken") {
            return Err(Error::field(
                "ClientRequestToken",
                "is derived from the stack, the resource and the request; leave it out",
            ));
        }
        let mut members = Value::Object(members);
        typed(&mut members);
        let body = serde_json::to_vec(&members).map_err(Error::invalid_json)?;
        Ok(Properties { spec: spec::parse(&body)?, wait_for, wait_secs })
    }

    /// How long CloudFormation waits for the job's end, when the answer is to wait for it.
    pub fn wait(&self) -> Option<u64> {
        (self.wait_for == WaitFor::Complete).then_some(self.wait_secs)
    }

    /// The CreateJob spec of this resource's job, under `token`.
    pub fn job_spec(&self, token: String) -> JobSpec {
        JobSpec { client_request_token: Some(token), ..self.spec.clone() }
    }

    /// Whether a change from `other` to these properties needs a new job: anything but the
    /// members a job changes in place (priority, rate, tags) and WaitFor. A rate can be set or
    /// changed in place but not removed.
    pub fn differs_from(&self, other: &JobSpec) -> bool {
        let rate_removed = other.max_tasks_per_second.is_some() && self.spec.max_tasks_per_second.is_none();
        rate_removed || in_place_removed(&self.spec) != in_place_removed(other)
    }
}

/// `spec` without what UpdateJobPriority, the rate and PutJobTagging change, and its token.
fn in_place_removed(spec: &JobSpec) -> JobSpec {
    JobSpec { priority: None, max_tasks_per_second: None, tags: None, client_request_token: None, ..spec.clone() }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Turns the string scalars CloudFormation passes back into the booleans and integers
/// CreateJob takes, by member name, at any depth. A string that is not one stays, for the
/// spec's validation to name.
fn typed(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if FREE_MAPS.contains(&name.as_str()) {
                    continue;
                }
                if let Value::String(s) = member {
                    if BOOLEANS.contains(&name.as_str()) && (s == "true" || s == "false") {
                        *member = Value::Bool(s == "true");
                    } else if INTEGERS.contains(&name.as_str()) {
                        if let Ok(n) = s.trim().parse::<i64>() {
                            *member = Value::from(n);
                        }
                    }
                } else {
                    typed(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(typed),
        _ => {}
    }
}

/// A response document: what CloudFormation reads from the ResponseURL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

impl Response {
    pub fn success(req: &Request, physical: &str, data: Map<String, Value>) -> Response {
        Response::new(req, "SUCCESS", String::new(), physical, data)
    }

    /// A failure CloudFormation shows with `reason` (cut to fit a response document).
    pub fn failed(req: &Request, physical: &str, reason: &str) -> Response {
        let mut reason = reason.to_string();
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        Response::new(req, "FAILED", reason, physical, Map::new())
    }

    fn new(req: &Request, status: &str, reason: String, physical: &str, data: Map<String, Value>) -> Response {
        Response {
            status: status.into(),
            reason,
            physical_resource_id: physical.into(),
            stack_id: req.stack_id.clone(),
            request_id: req.request_id.clone(),
            logical_resource_id: req.logical_resource_id.clone(),
            data,
        }
    }
}

/// The job's attributes (`Fn::GetAtt`): its id, ARN, status, counters and where its report's
/// manifest is (written when the job ends; empty for a job without a report). Counters are
/// strings, as CloudFormation hands attributes on.
pub fn attributes(job: &Job) -> Map<String, Value> {
    let report = job.plan().ok().and_then(|p| p.report.clone());
    let manifest =
        report.map(|r| format!("s3://{}/{}/manifest.json", r.bucket, r.job_folder(&job.id))).unwrap_or_default();
    let p = &job.progress;
    let counters = [p.total_tasks.unwrap_or(0), p.succeeded, p.failed];
    attribute_map(&job.id, &job.arn, &job.status.to_string(), counters, manifest)
}

/// The attributes of a job past its retention (DescribeJob no longer knows it): every name a
/// template may `Fn::GetAtt` is still answered (CloudFormation keeps only the last answer's),
/// with the status `Expired`.
pub fn expired_attributes(id: &JobId, arn: &str) -> Map<String, Value> {
    attribute_map(id, arn, "Expired", [0, 0, 0], String::new())
}

fn attribute_map(id: &JobId, arn: &str, status: &str, counters: [u64; 3], manifest: String) -> Map<String, Value> {
    let [total, succeeded, failed] = counters.map(|n| n.to_string());
    [
        ("JobId", id.to_string()),
        ("JobArn", arn.to_string()),
        ("Status", status.to_string()),
        ("TotalNumberOfTasks", total),
        ("NumberOfTasksSucceeded", succeeded),
        ("NumberOfTasksFailed", failed),
        ("ReportManifest", manifest),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), Value::String(value)))
    .collect()
}

/// A Create or Update waiting for its job to end (`WaitFor: Complete`), as queued between checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Wait {
    pub request: Request,
    pub job_id: String,
    /// Only to cancel the job (the request was answered FAILED, and cancelling it then
    /// failed): no answer is sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_only: bool,
    /// When the resource answers FAILED if the job has not ended: a minute before
    /// CloudFormation would stop waiting.
    pub deadline: jiff::Timestamp,
}

impl Wait {
    /// The wait of `request` for job `job_id`, CloudFormation having waited since `since` (its
    /// request's first handling: the job's creation, for one the request created). The
    /// properties are left out: an answer does not need them, and a queue message has a limit.
    pub fn new(request: &Request, job_id: &str, wait_secs: u64, since: jiff::Timestamp) -> Wait {
        // A minute's margin for the last check and the answer, less for very short waits.
        let margin = 60.min(wait_secs / 4);
        let deadline = since + jiff::SignedDuration::from_secs((wait_secs - margin) as i64);
        let request = Request { resource_properties: Map::new(), old_resource_properties: None, ..request.clone() };
        Wait { request, job_id: job_id.to_string(), cancel_only: false, deadline }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn tagging(extra: Value) -> Value {
        let mut v = json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:batchops-JobResource",
            "RoleArn": "arn:aws:iam::123456789012:role/batchops-job",
            "Priority": "10",
            "ConfirmationRequired": "false",
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "n", "Value": "10"}]}},
            "Manifest": {
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": "arn:aws:s3:::b/m.csv", "ETag": "abc"}
            },
            "Report": {"Enabled": "false"},
            "Tags": [{"Key": "Description", "Value": "true"}]
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn cloudformations_strings_become_the_types_createjob_takes_by_name_only() {
        let p = Properties::parse(&props(tagging(json!({})))).unwrap();
        assert_eq!(p.spec.priority, Some(10));
        assert_eq!(p.spec.confirmation_required, Some(false));
        assert_eq!(p.spec.report.as_ref().unwrap().enabled, Some(false));
        assert_eq!(p.spec.operation.as_ref().unwrap()["S3PutObjectTagging"]["TagSet"][0]["Value"], "10");
        assert_eq!(p.spec.tags.as_ref().unwrap()[0].value, "true");
        // The user's own keys keep their string values, whatever they are named.
        let lambda = json!({"Operation": {"LambdaInvoke": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "InvocationSchemaVersion": "2.0", "UserArguments": {"Enabled": "true", "Priority": "7"}}}});
        let p = Properties::parse(&props(tagging(lambda))).unwrap();
        assert_eq!(
            p.spec.operation.unwrap()["LambdaInvoke"]["UserArguments"],
            json!({"Enabled": "true", "Priority": "7"})
        );
        assert_eq!((p.wait_for, p.wait_secs), (WaitFor::Created, 3600));
        let p = Properties::parse(&props(tagging(json!({"WaitFor": "Complete", "ServiceTimeout": "900"})))).unwrap();
        assert_eq!((p.wait_for, p.wait_secs), (WaitFor::Complete, 900));
    }

    #[test]
    fn bad_properties_are_named() {
        for (extra, field) in [
            (json!({"WaitFor": "Forever"}), "WaitFor:"),
            (json!({"ServiceTimeout": "7200"}), "ServiceTimeout:"),
            (json!({"ClientRequestToken": "mine"}), "ClientRequestToken:"),
            (json!({"Priority": "high"}), "Priority"),
            (json!({"Colour": "blue"}), "Colour"),
        ] {
            let err = Properties::parse(&props(tagging(extra.clone()))).unwrap_err().to_string();
            assert!(err.contains(field), "{extra}: {err}");
        }
    }

    #[test]
    fn priority_rate_tags_and_waitfor_change_in_place_anything_else_replaces() {
        let old = Properties::parse(&props(tagging(json!({})))).unwrap();
        let changed = |extra: Value| Properties::parse(&props(tagging(extra))).unwrap().differs_from(&old.spec);
        assert!(!changed(json!({"Priority": "99", "MaxTasksPerSecond": "50", "WaitFor": "Complete"})));
        assert!(!changed(json!({"Tags": [{"Key": "team", "Value": "data"}]})));
        assert!(changed(json!({"Description": "another"})));
        // A rate set or changed is a change in place; a rate removed is not.
        let limited = Properties::parse(&props(tagging(json!({"MaxTasksPerSecond": "10"})))).unwrap();
        assert!(!Properties::parse(&props(tagging(json!({"MaxTasksPerSecond": "20"}))))
            .unwrap()
            .differs_from(&limited.spec));
        assert!(Properties::parse(&props(tagging(json!({})))).unwrap().differs_from(&limited.spec));
        assert!(changed(json!({"Operation": {"S3PutObjectTagging": {"TagSet": []}}})));
    }

    #[test]
    fn only_the_response_hosts_given_are_answered() {
        let hosts = vec!["amazonaws.com".to_string(), "127.0.0.1".to_string()];
        for (url, ok) in [
            ("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A?X-Amz-Signature=1", true),
            ("https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/x", true),
            ("http://127.0.0.1:5100/bucket/key?sig", true),
            ("https://127.0.0.1.evil.example/x", false),
            ("https://evil.example/amazonaws.com", false),
            ("https://amazonaws.com.evil.example/x", false),
            ("https://s3.amazonaws.com@evil.example/x", false),
            ("https://evil.example\\.s3.amazonaws.com/x", false),
            ("http://bucket.s3.amazonaws.com/x", false),
            ("https://CLOUDFORMATION-custom-resource-response-useast1.S3.amazonaws.com./x", true),
            ("https://notamazonaws.com/x", false),
            ("ftp://s3.amazonaws.com/x", false),
            ("", false),
        ] {
            assert_eq!(answers_to(url, &hosts), ok, "{url}");
        }
    }

    #[test]
    fn the_token_is_the_requests_and_fits_createjob() {
        let req = |id: &str| Request {
            request_type: RequestType::Create,
            response_url: "https://example".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1".into(),
            request_id: id.into(),
            resource_type: "Custom::BatchopsJob".into(),
            logical_resource_id: "Job".into(),
            physical_resource_id: None,
            resource_properties: Map::new(),
            old_resource_properties: None,
        };
        assert_eq!(req("a").token(), req("a").token());
        assert_eq!(req("a").job_id(), req("a").job_id());
        assert_ne!(req("a").job_id(), req("b").job_id());
        assert_eq!(req("a").job_id().as_str().len(), 36);
        assert_ne!(req("a").token(), req("b").token());
        assert!(req("a").token().len() <= 64);
        let long = Response::failed(&req("a"), "p", &"é".repeat(2000));
        assert!(long.reason.len() <= MAX_REASON + 3 && long.reason.ends_with("..."));
    }
}
