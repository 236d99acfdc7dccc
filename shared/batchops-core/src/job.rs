//! The job record as stored: its spec, status, progress, checkpoint and history. S3 Control's
//! views of it (DescribeJob, ListJobs) are in [`crate::pipeline::describe`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::ids::{iso8601, BadJobId, JobId, JobStatus};
use crate::spec::JobSpec;

/// Most status changes a job's record keeps.
pub const MAX_HISTORY: usize = 50;

/// One status a job entered, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: JobStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
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
pub const RETENTION: time::Duration = time::Duration::days(90);

/// How long a job waits for confirmation in Suspended before it fails, as in S3.
pub const CONFIRMATION_WINDOW: time::Duration = time::Duration::days(30);

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub status: JobStatus,
    /// The CreateJob request as given (relative windows resolved); DescribeJob answers from it.
    pub spec: JobSpec,
    /// The spec as intake validated it, typed: what every stage runs. `None` only in records
    /// written before it was kept, which [`Job::plan`] validates from `spec` when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub terminated: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub suspended: Option<OffsetDateTime>,
    #[serde(default)]
    pub suspended_cause: Option<String>,
    /// When the job first became Active, for `ElapsedTimeInActiveSeconds`.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub active_since: Option<OffsetDateTime>,
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

    pub fn new(id: JobId, spec: JobSpec, arn: String, now: OffsetDateTime) -> Job {
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
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.terminated.is_some_and(|t| now - t > RETENTION)
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
        let mut job = Job::new(JobId::new_random(), JobSpec::default(), String::new(), OffsetDateTime::UNIX_EPOCH);
        for i in 0..200 {
            let status = if i % 2 == 0 { JobStatus::Paused } else { JobStatus::Active };
            job.record_status(StatusChange { status, at: OffsetDateTime::UNIX_EPOCH, reason: Some(i.to_string()) });
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
