//! The job record as stored: its spec, status, progress, checkpoint and history. S3 Control's
//! views of it (DescribeJob, ListJobs) are in [`crate::pipeline::describe`].

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::ids::{iso8601, BadJobId, JobId, JobStatus};
use crate::spec::JobSpec;

/// Most status changes a job's record keeps.
pub const MAX_HISTORY: usize = 50;

/// One status a job entered, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: JobStatus,
    pub at: Timestamp,
    /// Why, when the change has a stated cause: the caller's reason, the failure codes, the
    /// cause of a suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One entry of `FailureReasons`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobFailure {
    pub failure_code: String,
    pub failure_reason: String,
}

impl JobFailure {
    pub fn new(code: &str, reason: impl Into<String>) -> Self {
        let mut reason: String = reason.into();
        // S3 Control bounds FailureReason at 256 characters.
        if reason.chars().count() > 256 {
            reason = reason.chars().take(253).collect::<String>() + "...";
        }
        JobFailure { failure_code: code.to_string(), failure_reason: reason }
    }
}

/// Counters of a job. They only ever change by whole chunks, so they always equal the rows of
/// the chunks recorded as done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Set when preparation has read the whole manifest.
    pub total_tasks: Option<u64>,
    /// Set with `total_tasks`: how many chunks the manifest was cut into.
    pub total_chunks: Option<u64>,
    pub succeeded: u64,
    pub failed: u64,
    pub chunks_done: u64,
    /// Chunks handed on by executors whose invocation was ending (the tasks a chunk had not
    /// started, as a new chunk): to run besides the `total_chunks` cut.
    #[serde(default)]
    pub chunks_split: u64,
    /// Tasks the chunker has read so far (progress of preparation).
    pub tasks_prepared: u64,
    /// Inventory files of a manifest, read in parallel; set when known.
    #[serde(default, rename = "parts_total")]
    pub files_total: Option<u64>,
    /// Inventory files read by the counting pass (a job that waits for confirmation); counters.
    #[serde(default)]
    pub counted: FileCounts,
    /// Inventory files read by the cutting pass; counters.
    #[serde(default)]
    pub cut: FileCounts,
}

/// Counters of the inventory files of a manifest read so far in one pass. They change only by
/// [`crate::ports::ChunkLedger::record_file`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCounts {
    /// Inventory files read (stored as `parts`, as records written before the name changed).
    #[serde(rename = "parts")]
    pub files: u64,
    pub tasks: u64,
    pub chunks: u64,
}

impl Progress {
    pub fn tasks_run(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// True once preparation finished and every chunk it cut, or an executor handed on, has
    /// been recorded.
    pub fn all_chunks_done(&self) -> bool {
        matches!(self.total_chunks, Some(n) if self.chunks_done >= n + self.chunks_split)
    }
}

/// Where the chunker stopped reading the manifest; a continuation starts from here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Byte offset of the next unread line.
    pub offset: u64,
    /// 1-based number of that line.
    pub line: u64,
    /// Index of the next chunk to cut.
    pub next_chunk: u64,
    /// Tasks counted before `offset`.
    pub tasks: u64,
    /// A listing (`ManifestGenerator`): which of the prefixes is being listed ...
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix: u64,
    /// ... and the token of its next page (`None`: its first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Data files of the generated manifest written so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files: u64,
    /// Objects listed so far (before filtering).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub listed: u64,
    /// Chunks before this index were sent already (a listing resumes from the start of its
    /// unfinished data file, and does not send those chunks again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a generated manifest was written (`GeneratedManifestDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedManifest {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    /// Whether the job's spec asked for it (`EnableManifestOutput`), so DescribeJob shows it;
    /// otherwise it was kept only to run a confirmed job.
    pub requested: bool,
}

/// How long an ended job is kept (and listed) after it ends, as S3 does.
pub const RETENTION: SignedDuration = SignedDuration::from_hours(90 * 24);

/// How long a job waits for confirmation in Suspended before it fails, as in S3.
pub const CONFIRMATION_WINDOW: SignedDuration = SignedDuration::from_hours(30 * 24);

/// A job as stored. Its times are RFC 3339 text (`2026-12-01T10:00:00.5Z`), as records have
/// always been written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub status: JobStatus,
    /// The CreateJob request as given (relative windows resolved); DescribeJob answers from it.
    pub spec: JobSpec,
    /// The spec as intake validated it, typed: what every stage runs. `None` only in records
    /// written before it was kept, or before its times were RFC 3339 text (see [`stored_plan`]),
    /// which [`Job::plan`] validates from `spec` when read.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "stored_plan")]
    pub plan: Option<crate::spec::ValidJob>,
    pub arn: String,
    pub priority: i64,
    /// batchops: the job's task rate limit (`MaxTasksPerSecond`), changeable while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks_per_second: Option<u64>,
    /// When an executor was last throttled on each bucket (Unix ms): the job's executors share
    /// their backoff through it. Kept beside the job body, like the counters.
    #[serde(skip)]
    pub throttled: std::collections::BTreeMap<String, u64>,
    pub created: Timestamp,
    #[serde(default)]
    pub terminated: Option<Timestamp>,
    #[serde(default)]
    pub suspended: Option<Timestamp>,
    #[serde(default)]
    pub suspended_cause: Option<String>,
    /// When the job first became Active, for `ElapsedTimeInActiveSeconds`.
    #[serde(default)]
    pub active_since: Option<Timestamp>,
    #[serde(default)]
    pub status_update_reason: Option<String>,
    #[serde(default)]
    pub failure_reasons: Vec<JobFailure>,
    #[serde(default)]
    pub progress: Progress,
    #[serde(default)]
    pub checkpoint: Checkpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_manifest: Option<GeneratedManifest>,
    /// The job's tags: the spec's `Tags` at first, then what PutJobTagging set.
    #[serde(default)]
    pub tags: Vec<crate::spec::S3Tag>,
    /// batchops: every status the job has been in, oldest first (a job changes status a
    /// handful of times), for DescribeJob's `StatusHistory` and the console's timeline.
    #[serde(default)]
    pub history: Vec<StatusChange>,
    /// Bumped by every write of the record; writes are conditional on it.
    #[serde(default)]
    pub version: u64,
}

/// Reads a stored plan, or `None` for one this version cannot read: plans written with the
/// `time` crate held their times as tuples (`[2026,335,10,0,0,500000000,2,0,0]`), which are
/// not RFC 3339. The spec beside it is what the plan was validated from, so [`Job::plan`]
/// validates it again rather than the job becoming unreadable.
fn stored_plan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::spec::ValidJob>, D::Error> {
    let stored = Option::<serde_json::Value>::deserialize(d)?;
    Ok(stored.and_then(|v| serde_json::from_value(v).ok()))
}

impl Job {
    /// A job whose manifest is still being read: Preparing, or a confirmed job being cut (its
    /// chunk total not known yet), which a job of higher priority may have paused meanwhile.
    pub fn being_prepared(&self) -> bool {
        self.status == JobStatus::Preparing || (self.status.is_running() && self.progress.total_chunks.is_none())
    }

    /// The role every request of the job is made as (validation requires `RoleArn`; a job
    /// stored without one has an empty role, which no STS assumes).
    pub fn role_arn(&self) -> &str {
        self.spec.role_arn.as_deref().unwrap_or_default()
    }

    /// The account the job belongs to: the one in its ARN (`arn:aws:s3:<region>:<account>:job/<id>`).
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }

    pub fn new(id: JobId, spec: JobSpec, arn: String, now: Timestamp) -> Job {
        let spec_tags = spec.tags.clone().unwrap_or_default();
        Job {
            id,
            status: JobStatus::New,
            priority: spec.priority.unwrap_or(0),
            max_tasks_per_second: spec.max_tasks_per_second,
            throttled: Default::default(),
            plan: None,
            spec,
            arn,
            created: now,
            terminated: None,
            suspended: None,
            suspended_cause: None,
            active_since: None,
            status_update_reason: None,
            failure_reasons: Vec::new(),
            progress: Progress::default(),
            checkpoint: Checkpoint::default(),
            generated_manifest: None,
            tags: spec_tags,
            history: vec![StatusChange { status: JobStatus::New, at: now, reason: None }],
            version: 0,
        }
    }

    /// Adds a status change to the history, which keeps the first change and the latest
    /// [`MAX_HISTORY`] - 1: a job paused and resumed by priority again and again must not grow
    /// its record (a DynamoDB item, written at every change) without end.
    pub fn record_status(&mut self, change: StatusChange) {
        self.history.push(change);
        if self.history.len() > MAX_HISTORY {
            self.history.remove(1);
        }
    }

    /// Where the job's report goes, or the 400 that the routes reading a report (retry-failed,
    /// failures, report-files) answer for a job that has none.
    pub fn required_report(&self) -> crate::Result<crate::spec::ReportTarget> {
        let report = self.plan()?.report.clone();
        report.ok_or_else(|| crate::Error::field("JobId", format!("job {} has no report", self.id)))
    }

    /// What the job runs, as intake validated it.
    pub fn plan(&self) -> crate::Result<std::borrow::Cow<'_, crate::spec::ValidJob>> {
        match &self.plan {
            Some(p) => Ok(std::borrow::Cow::Borrowed(p)),
            None => self.spec.validate().map(std::borrow::Cow::Owned),
        }
    }

    /// True once an ended job is past its retention: S3 no longer lists or describes it
    /// (the table's TTL deletes it some time after).
    pub fn expired(&self, now: Timestamp) -> bool {
        self.terminated.is_some_and(|t| now.duration_since(t) > RETENTION)
    }

    pub fn tags(&self) -> &[crate::spec::S3Tag] {
        &self.tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_first_change_and_the_latest_ones() {
        let mut job = Job::new(JobId::new_random(), JobSpec::default(), String::new(), Timestamp::UNIX_EPOCH);
        for i in 0..200 {
            let status = if i % 2 == 0 { JobStatus::Paused } else { JobStatus::Active };
            job.record_status(StatusChange { status, at: Timestamp::UNIX_EPOCH, reason: Some(i.to_string()) });
        }
        assert_eq!(job.history.len(), MAX_HISTORY);
        assert_eq!(job.history[0].status, JobStatus::New);
        assert_eq!(job.history[1].reason.as_deref(), Some("151"));
        assert_eq!(job.history[MAX_HISTORY - 1].reason.as_deref(), Some("199"));
    }

    #[test]
    fn job_ids_are_checked_like_s3_does() {
        assert!(JobId::parse("93735294-df46-44d5-8638-6356f335324e").is_ok());
        assert!(JobId::parse("abc").is_err());
        assert!(JobId::parse("abc/def").is_err());
    }

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("Running"), None);
    }

    #[test]
    fn failure_reasons_are_cut_at_256_characters() {
        let f = JobFailure::new("X", "a".repeat(400));
        assert_eq!(f.failure_reason.chars().count(), 256);
    }

    /// A job record as the version that used the `time` crate wrote it: its own times RFC 3339
    /// (with a fraction, and an offset where one was given), its plan's times tuples of
    /// `time`'s own (year, day of the year, hour, minute, second, nanosecond, offset h, m, s).
    const STORED_WITH_TIME: &str = r#"{"id":"job-1","status":"Complete",
        "spec":{"Operation":{"S3PutObjectCopy":{"MetadataDirective":"REPLACE",
            "ModifiedSinceConstraint":"2026-12-01T10:00:00.5Z",
            "NewObjectMetadata":{"HttpExpiresDate":"2026-12-01T12:00:00.12+02:00"},
            "ObjectLockRetainUntilDate":1893456000,"TargetResource":"arn:aws:s3:::dst",
            "UnModifiedSinceConstraint":"2030-01-01"}},
          "Report":{"Enabled":false},"ClientRequestToken":"t-1",
          "ManifestGenerator":{"S3JobManifestGenerator":{"EnableManifestOutput":false,
            "Filter":{"CreatedAfter":"2023-09-01","CreatedBefore":"2026-12-01T10:00:00.5Z"},
            "SourceBucket":"arn:aws:s3:::src"}},
          "Priority":10,"RoleArn":"arn:aws:iam::000000000000:role/batch"},
        "plan":{"operation":{"PutObjectCopy":{"target_bucket":"dst","target_key_prefix":null,
            "new_metadata":{"cache_control":null,"content_disposition":null,"content_encoding":null,
              "content_language":null,"content_type":null,"expires":[2026,335,12,0,0,120000000,2,0,0],
              "user_metadata":{},"sse_algorithm":null},
            "new_tagging":null,"storage_class":null,"canned_acl":null,"grants":[],"sse_kms_key_id":null,
            "bucket_key_enabled":null,"checksum_algorithm":null,
            "modified_since":[2026,335,10,0,0,500000000,0,0,0],"unmodified_since":[2030,1,0,0,0,0,0,0,0],
            "redirect_location":null,"requester_pays":false,"object_lock_legal_hold":null,
            "object_lock_mode":null,"object_lock_retain_until":[2030,1,0,0,0,0,0,0,0]}},
          "source":{"Generator":{"source_bucket":"src","expected_owner":null,"output":null,
            "filter":{"created_after":[2023,244,0,0,0,0,0,0,0],"created_before":[2026,335,10,0,0,500000000,0,0,0],
              "prefixes":[],"suffixes":[],"substrings":[],"size_greater_than":null,"size_less_than":null,
              "storage_classes":[],"replication_statuses":[],"eligible_for_replication":false,"encryption":[]}}},
          "report":null,"dry_run":false},
        "arn":"arn:aws:s3:us-east-1:000000000000:job/job-1","priority":10,
        "created":"2026-12-01T10:00:00.5Z","terminated":"2026-12-01T12:30:00.25+02:00","suspended":null,
        "suspended_cause":null,"active_since":"2026-12-01T10:00:01Z","status_update_reason":null,
        "failure_reasons":[],
        "progress":{"total_tasks":0,"total_chunks":0,"succeeded":0,"failed":0,"chunks_done":0,
          "chunks_split":0,"tasks_prepared":0,"parts_total":null,"counted":{"parts":0,"tasks":0,"chunks":0},
          "cut":{"parts":0,"tasks":0,"chunks":0}},
        "checkpoint":{"offset":0,"line":0,"next_chunk":0,"tasks":0},"tags":[],
        "history":[{"status":"New","at":"2026-12-01T10:00:00.5Z"},
                   {"status":"Complete","at":"2026-12-01T12:30:00.25+02:00"}],
        "version":4}"#;

    #[test]
    fn records_written_with_the_time_crate_are_read() {
        let job: Job = serde_json::from_str(STORED_WITH_TIME).unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // The record's own times: RFC 3339 as before, fractions and offsets included.
        assert_eq!(job.created, at("2026-12-01T10:00:00.500Z"));
        assert_eq!(job.terminated, Some(at("2026-12-01T10:30:00.25Z")));
        assert_eq!(job.active_since, Some(at("2026-12-01T10:00:01Z")));
        assert_eq!(job.history[1].at, at("2026-12-01T10:30:00.25Z"));
        assert_eq!(job.version, 4);
        // The plan's tuples are not read: the plan is validated again from the spec beside
        // it, which gives the plan the job was created with.
        assert_eq!(job.plan, None);
        let plan = job.plan().unwrap();
        assert_eq!(*plan, job.spec.validate().unwrap());
        let crate::ops::Operation::PutObjectCopy(copy) = &plan.operation else { panic!("{plan:?}") };
        assert_eq!(copy.modified_since, Some(at("2026-12-01T10:00:00.5Z")));
        assert_eq!(copy.unmodified_since, Some(at("2030-01-01T00:00:00Z")));
        assert_eq!(copy.object_lock_retain_until, Some(at("2030-01-01T00:00:00Z")));
        assert_eq!(copy.new_metadata.as_ref().and_then(|m| m.expires), Some(at("2026-12-01T10:00:00.12Z")));
        let crate::spec::Source::Generator(g) = &plan.source else { panic!("{plan:?}") };
        assert_eq!(g.filter.created_after, Some(at("2023-09-01T00:00:00Z")));
        assert_eq!(g.filter.created_before, Some(at("2026-12-01T10:00:00.5Z")));
    }

    #[test]
    fn a_record_keeps_its_times_as_rfc_3339_and_its_plan() {
        let mut job: Job = serde_json::from_str(STORED_WITH_TIME).unwrap();
        job.plan = Some(job.plan().unwrap().into_owned());
        let stored = serde_json::to_value(&job).unwrap();
        assert_eq!(stored["created"], "2026-12-01T10:00:00.5Z");
        assert_eq!(stored["terminated"], "2026-12-01T10:30:00.25Z");
        assert_eq!(stored["suspended"], serde_json::Value::Null);
        assert_eq!(stored["history"][0]["at"], "2026-12-01T10:00:00.5Z");
        let copy = &stored["plan"]["operation"]["PutObjectCopy"];
        assert_eq!(copy["object_lock_retain_until"], "2030-01-01T00:00:00Z");
        assert_eq!(stored["plan"]["source"]["Generator"]["filter"]["created_after"], "2023-09-01T00:00:00Z");
        let read: Job = serde_json::from_value(stored).unwrap();
        assert!(read.plan.is_some());
        assert_eq!(read, job);
    }

    #[test]
    fn inventory_file_counters_keep_the_names_records_were_stored_with() {
        // Records written before "part" meant only a multipart part name the counters `parts`.
        let mut p = Progress { files_total: Some(3), ..Progress::default() };
        p.counted.files = 2;
        let stored = serde_json::to_value(&p).unwrap();
        assert_eq!((stored["parts_total"].as_u64(), stored["counted"]["parts"].as_u64()), (Some(3), Some(2)));
        let read: Progress = serde_json::from_value(stored).unwrap();
        assert_eq!((read.files_total, read.counted.files), (Some(3), 2));
    }
}
