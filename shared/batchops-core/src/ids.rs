//! The words every module names: a job's id, its status and how times are written. A leaf: it
//! uses nothing else of the crate but the clock, so the error type, the spec, the job record and
//! the ports can all name a job without naming each other.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A job ID: a UUID in practice; S3 allows 5-36 characters of `[a-zA-Z0-9\-_]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn new_random() -> Self {
        JobId(crate::clock::uuid().to_string())
    }

    /// The id a digest names (UUID-shaped, from its first 16 bytes), for ids known before the
    /// job exists: the same digest, the same id.
    pub fn from_digest(digest: [u8; 16]) -> Self {
        JobId(uuid::Builder::from_bytes(digest).into_uuid().to_string())
    }

    /// Parses an ID from a URL or a message, refusing anything S3 would not accept.
    pub fn parse(s: &str) -> Result<Self, BadJobId> {
        let ok = (5..=36).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(JobId(s.to_string()))
        } else {
            Err(BadJobId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A job id S3 would not accept; [`crate::Error`] takes it as an invalid `JobId` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JobId: {}", BadJobId::RULE)]
pub struct BadJobId;

impl BadJobId {
    pub const RULE: &'static str = "must be 5-36 characters of [a-zA-Z0-9-_]";
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 13 statuses of S3 Control's `JobStatus` enum.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-job-status.html>
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    New,
    Preparing,
    Suspended,
    Ready,
    Active,
    Pausing,
    Paused,
    Completing,
    Complete,
    Cancelling,
    Cancelled,
    Failing,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 13] = [
        JobStatus::New,
        JobStatus::Preparing,
        JobStatus::Suspended,
        JobStatus::Ready,
        JobStatus::Active,
        JobStatus::Pausing,
        JobStatus::Paused,
        JobStatus::Completing,
        JobStatus::Complete,
        JobStatus::Cancelling,
        JobStatus::Cancelled,
        JobStatus::Failing,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Preparing => "Preparing",
            JobStatus::Suspended => "Suspended",
            JobStatus::Ready => "Ready",
            JobStatus::Active => "Active",
            JobStatus::Pausing => "Pausing",
            JobStatus::Paused => "Paused",
            JobStatus::Completing => "Completing",
            JobStatus::Complete => "Complete",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Failing => "Failing",
            JobStatus::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Cancelled | JobStatus::Failed)
    }

    /// Statuses of a job that has started running: Active, and paused for priority (Pausing,
    /// Paused). A confirmed job is cut in these (a pause does not stop its cut).
    pub fn is_running(self) -> bool {
        matches!(self, JobStatus::Active | JobStatus::Pausing | JobStatus::Paused)
    }

    /// Statuses in which a manifest's inventory files are recorded as read: Preparing, and
    /// running, since a confirmed job is cut while Active, Pausing or Paused.
    pub fn takes_files(self) -> bool {
        self == JobStatus::Preparing || self.is_running()
    }

    /// Statuses in which chunks start (a Pausing job's chunks released before the pause
    /// still run; a Paused job's go back to its backlog).
    pub fn accepts_chunks(self) -> bool {
        matches!(self, JobStatus::Preparing | JobStatus::Ready | JobStatus::Active | JobStatus::Pausing)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ISO 8601 with milliseconds (cut, not rounded), as S3 Control's JSON shapes (and S3's
/// reports) write times: `2026-12-01T10:00:00.500Z`, always three digits, always `Z`.
pub fn iso8601(t: Timestamp) -> String {
    let t = TimeZone::UTC.to_datetime(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_writes_milliseconds_cut_and_z() {
        let at = |s: &str| iso8601(s.parse().unwrap());
        assert_eq!(iso8601(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(at("2026-12-01T10:00:00.5Z"), "2026-12-01T10:00:00.500Z");
        assert_eq!(at("2026-12-01T10:00:00.123999999Z"), "2026-12-01T10:00:00.123Z");
        assert_eq!(at("2026-12-01T10:00:00+02:00"), "2026-12-01T08:00:00.000Z");
        assert_eq!(at("0001-02-03T04:05:06.007Z"), "0001-02-03T04:05:06.007Z");
    }
}
