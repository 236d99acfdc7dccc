//! The system's health, as `batchops status` and the console's System page show it: the
//! queues and their dead letters, the jobs by status, the jobs that stopped moving, the
//! alarms; and whether any of it needs a person ([`SystemStatus::assemble`]).
//!
//! The adapters measure the queues and read the alarms; the jobs are read here, through the
//! job records: the open ones (where only those are), the sweep's sightings of them (since
//! when each has looked the same), and the newest jobs for those that ended in the last day.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkMessage, ControlMessage, FinalizeMessage};
use crate::ids::iso8601;
use crate::job::JobStatus;
use crate::ports::{JobFilter, JobRecords};
use crate::Result;

/// Jobs read for "ended in the last day", at most, newest first: the view is read every few
/// seconds while the console shows it, so it reads no more than this (and says so in
/// `EndedLastDayCapped`).
pub const RECENT_JOBS_READ: usize = 1_000;

/// How far back the jobs that may have ended in the last day were created: a job that ran
/// longer than this before it ended is not counted.
pub const RECENT_JOBS_CREATED: Duration = Duration::from_secs(2 * 86_400);

/// The whole view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemStatus {
    pub checked_at: String,
    pub healthy: bool,
    /// What needs a person, one sentence each; empty when healthy.
    pub problems: Vec<String>,
    pub stalled_after_minutes: u64,
    pub queues: Vec<QueueStatus>,
    pub jobs: JobsStatus,
    /// The stack's alarms in ALARM; `None` where there are none to read (`batchops local`).
    pub alarms: Option<Vec<AlarmStatus>>,
}

/// One queue, as SQS counts it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueStatus {
    /// `control`, `chunk`, `finalize`, `specs`, or one of those with `-dlq`.
    pub name: String,
    pub url: String,
    pub dead_letter: bool,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Age of the oldest message, where it can be read without disturbing the queue (a
    /// dead-letter queue's first message; CloudWatch's metric for a deployed stack).
    pub oldest_age_seconds: Option<u64>,
    /// A dead-letter queue's first message: what it is about.
    pub first_dead: Option<DeadMessage>,
}

/// What a dead-lettered message was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadMessage {
    pub message_id: String,
    /// `chunk`, `control`, `finalize` or `spec`.
    pub kind: String,
    pub job_id: Option<String>,
    pub detail: String,
    pub sent_at: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobsStatus {
    /// Jobs that have not ended, by status.
    pub open: BTreeMap<String, u64>,
    /// Jobs created in the last two days that ended in the last 24 hours, by status.
    pub ended_last_day: BTreeMap<String, u64>,
    /// True when more jobs were created in the last two days than [`RECENT_JOBS_READ`]: the
    /// counts are the newest ones'.
    pub ended_last_day_capped: bool,
    pub stalled: Vec<StalledJob>,
}

/// An open job that has looked the same for longer than the bound, or that the sweep had to
/// nudge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StalledJob {
    pub job_id: String,
    pub status: String,
    pub description: Option<String>,
    /// Minutes since the job last changed (or since the sweep last stepped in).
    pub idle_minutes: u64,
    pub last_progress_at: String,
    /// Steps the sweep re-issued for it since it last changed.
    pub nudges: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmStatus {
    pub name: String,
    pub state: String,
    pub reason: String,
    pub since: Option<String>,
}

/// Statuses in which a job is expected to move by itself (not Suspended or Paused: those
/// wait for a person or for their turn).
fn expected_to_move(status: JobStatus) -> bool {
    !matches!(status, JobStatus::Suspended | JobStatus::Paused) && !status.is_terminal()
}

/// The jobs part of the view, at `now_ms`.
pub async fn jobs_status(store: &dyn JobRecords, stalled_after: Duration, now_ms: u64) -> Result<JobsStatus> {
    let mut status = JobsStatus::default();
    let mut token: Option<String> = None;
    loop {
        let filter = JobFilter { statuses: &[], account: None, open: true };
        let page = store.list(&filter, 1000, token.as_deref()).await?;
        for job in page.jobs.into_iter().filter(|j| !j.status.is_terminal()) {
            *status.open.entry(job.status.to_string()).or_default() += 1;
            if !expected_to_move(job.status) {
                continue;
            }
            // The sweep's sighting (since when the job has looked the same), unless a status
            // change is newer (a sweep that has not run since).
            let last_change = job.history.last().map(|c| c.at).unwrap_or(job.created).as_millisecond().max(0) as u64;
            let (since_ms, nudges) = match store.sighting(&job.id).await? {
                Some(s) if s.since_ms >= last_change => (s.since_ms, s.nudges),
                Some(_) | None => (last_change, 0),
            };
            let idle = Duration::from_millis(now_ms.saturating_sub(since_ms));
            if idle >= stalled_after || nudges > 0 {
                status.stalled.push(StalledJob {
                    job_id: job.id.to_string(),
                    status: job.status.to_string(),
                    description: job.spec.description.clone(),
                    idle_minutes: idle.as_secs() / 60,
                    last_progress_at: iso8601_ms(since_ms),
                    nudges,
                });
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ended_last_day(store, now_ms, &mut status).await?;
    Ok(status)
}

/// Counts the jobs that ended in the last day, reading the newest jobs first until they were
/// created before [`RECENT_JOBS_CREATED`], or [`RECENT_JOBS_READ`] of them.
async fn ended_last_day(store: &dyn JobRecords, now_ms: u64, status: &mut JobsStatus) -> Result<()> {
    let day_ago = now_ms.saturating_sub(86_400_000) as i64;
    let created_after = now_ms.saturating_sub(RECENT_JOBS_CREATED.as_millis() as u64) as i64;
    let (mut read, mut token) = (0, None::<String>);
    loop {
        let page = store.list(&JobFilter::default(), 100, token.as_deref()).await?;
        for job in page.jobs {
            if job.created.as_millisecond() < created_after {
                return Ok(());
            }
            read += 1;
            if read > RECENT_JOBS_READ {
                status.ended_last_day_capped = true;
                return Ok(());
            }
            if job.terminated.is_some_and(|t| t.as_millisecond() >= day_ago) {
                *status.ended_last_day.entry(job.status.to_string()).or_default() += 1;
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(()),
        }
    }
}

fn iso8601_ms(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).map(iso8601).unwrap_or_default()
}

/// What the first message of a dead-letter queue of `kind` is about.
pub fn dead_message(kind: &str, message_id: &str, body: &str, sent_at_ms: Option<u64>) -> DeadMessage {
    let (job_id, detail) = match kind {
        "chunk" => match ChunkMessage::decode(body) {
            Ok(m) => (
                Some(m.job_id.to_string()),
                format!("chunk {} ({} tasks from line {})", m.index, m.tasks, m.first_line),
            ),
            Err(e) => (None, format!("unreadable chunk message: {e}")),
        },
        "control" => match serde_json::from_str::<ControlMessage>(body) {
            Ok(m) => (m.job_id().map(|id| id.to_string()), m.step().to_string()),
            Err(e) => (None, format!("unreadable control message: {e}")),
        },
        "finalize" => match serde_json::from_str::<FinalizeMessage>(body) {
            Ok(m) => {
                let what = if m.merge.is_some() { "a report segment's merge" } else { "finalize" };
                (Some(m.job_id.to_string()), what.to_string())
            }
            Err(e) => (None, format!("unreadable finalize message: {e}")),
        },
        _ => (None, spec_key(body).map(|k| format!("spec upload {k}")).unwrap_or_else(|| "spec upload".into())),
    };
    DeadMessage {
        message_id: message_id.to_string(),
        kind: kind.to_string(),
        job_id,
        detail,
        sent_at: sent_at_ms.map(iso8601_ms),
    }
}

/// The object key of an S3 event notification (a spec upload).
fn spec_key(body: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(body).ok()?;
    event["Records"][0]["s3"]["object"]["key"].as_str().map(str::to_string)
}

impl SystemStatus {
    /// The view, with what needs a person: a dead-letter queue that holds messages, a job
    /// that stopped moving, an alarm in ALARM.
    pub fn assemble(
        queues: Vec<QueueStatus>,
        jobs: JobsStatus,
        alarms: Option<Vec<AlarmStatus>>,
        stalled_after: Duration,
        now_ms: u64,
    ) -> SystemStatus {
        let mut problems = Vec::new();
        for q in queues.iter().filter(|q| q.dead_letter && q.visible + q.in_flight + q.delayed > 0) {
            let held = q.visible + q.in_flight + q.delayed;
            let first = match &q.first_dead {
                Some(DeadMessage { job_id: Some(job), detail, .. }) => format!("; the first: {detail} of job {job}"),
                Some(DeadMessage { detail, .. }) => format!("; the first: {detail}"),
                None => String::new(),
            };
            problems.push(format!("dead-letter queue {} holds {held} message(s){first}", q.name));
        }
        for j in &jobs.stalled {
            let nudged = match j.nudges {
                0 => String::new(),
                n => format!(" (the sweep stepped in {n} time(s))"),
            };
            problems.push(format!("job {} ({}) has not moved for {} min{nudged}", j.job_id, j.status, j.idle_minutes));
        }
        for a in alarms.iter().flatten() {
            problems.push(format!("alarm {} is in {}: {}", a.name, a.state, a.reason));
        }
        SystemStatus {
            checked_at: iso8601_ms(now_ms),
            healthy: problems.is_empty(),
            problems,
            stalled_after_minutes: stalled_after.as_secs() / 60,
            queues,
            jobs,
            alarms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkBody;
    use crate::ids::JobId;
    use crate::job::Job;
    use crate::ports::Sighting;
    use crate::spec::JobSpec;

    #[test]
    fn a_dead_chunk_names_its_job_and_index() {
        let msg = ChunkMessage {
            job_id: JobId::parse("job-7").unwrap(),
            index: 3,
            first_line: 2001,
            tasks: 1000,
            file: None,
            body: ChunkBody::Range { start: 0, end: 10 },
            redriven: 0,
        };
        let dead = dead_message("chunk", "m-1", &serde_json::to_string(&msg).unwrap(), Some(1_765_000_000_000));
        assert_eq!(dead.job_id.as_deref(), Some("job-7"));
        assert_eq!(dead.detail, "chunk 3 (1000 tasks from line 2001)");
        assert_eq!(dead.sent_at.as_deref(), Some("2025-12-06T05:46:40.000Z"));
        let garbage = dead_message("control", "m-2", "{not json", None);
        assert!(garbage.job_id.is_none() && garbage.detail.starts_with("unreadable control message"));
        let spec = dead_message("spec", "m-3", r#"{"Records":[{"s3":{"object":{"key":"jobs/a.json"}}}]}"#, None);
        assert_eq!(spec.detail, "spec upload jobs/a.json");
    }

    #[tokio::test]
    async fn a_job_that_looked_the_same_past_the_bound_is_stalled_and_needs_a_person() {
        let store = crate::memory::InMemoryJobStore::default();
        let now: u64 = 1_765_000_000_000;
        let stored = |id: &str, status: JobStatus, created_ms: u64| {
            let created = jiff::Timestamp::from_millisecond(created_ms as i64).unwrap();
            let mut job = Job::new(
                JobId::parse(id).unwrap(),
                JobSpec::default(),
                format!("arn:aws:s3:us-east-1:1:job/{id}"),
                created,
            );
            job.status = status;
            let store = &store;
            async move {
                store.create(&job, job.id.as_str(), "hash").await.unwrap();
                job
            }
        };
        let two_hours_ago = now - 2 * 3_600_000;
        let moving = stored("job-moving", JobStatus::Active, two_hours_ago).await;
        let stuck = stored("job-stuck", JobStatus::Active, two_hours_ago).await;
        stored("job-waiting", JobStatus::Suspended, two_hours_ago).await;
        // Created (its last change) after the sweep's sighting was taken: it moved since.
        let moved = stored("job-moved", JobStatus::Active, now - 5 * 60_000).await;
        let sighted = |since_ms: u64| Sighting { fingerprint: 1, since_ms, nudges: 0 };
        store.put_sighting(&moving.id, &sighted(now - 60_000)).await.unwrap();
        store.put_sighting(&stuck.id, &sighted(now - 45 * 60_000)).await.unwrap();
        store.put_sighting(&moved.id, &sighted(now - 45 * 60_000)).await.unwrap();
        let jobs = jobs_status(&store, Duration::from_secs(30 * 60), now).await.unwrap();
        assert_eq!(jobs.open.get("Active"), Some(&3));
        assert_eq!(jobs.open.get("Suspended"), Some(&1));
        let stalled: Vec<&str> = jobs.stalled.iter().map(|s| s.job_id.as_str()).collect();
        assert_eq!(stalled, ["job-stuck"], "Suspended waits for a person by design; the others moved");
        assert_eq!(jobs.stalled[0].idle_minutes, 45);
        let status = SystemStatus::assemble(Vec::new(), jobs, None, Duration::from_secs(1800), now);
        assert!(!status.healthy);
        assert_eq!(status.problems, ["job job-stuck (Active) has not moved for 45 min"]);
    }

    #[test]
    fn a_dead_letter_queue_with_a_message_needs_a_person_an_empty_one_does_not() {
        let queue = |name: &str, dead_letter: bool, visible: u64| QueueStatus {
            name: name.into(),
            dead_letter,
            visible,
            ..QueueStatus::default()
        };
        let calm = vec![queue("chunk", false, 500), queue("chunk-dlq", true, 0)];
        let quiet = SystemStatus::assemble(calm, JobsStatus::default(), Some(Vec::new()), Duration::from_secs(60), 0);
        assert!(quiet.healthy, "a deep work queue is work, not trouble: {:?}", quiet.problems);
        let dead = vec![queue("chunk", false, 0), queue("control-dlq", true, 2)];
        let status = SystemStatus::assemble(dead, JobsStatus::default(), None, Duration::from_secs(60), 0);
        assert_eq!(status.problems, ["dead-letter queue control-dlq holds 2 message(s)"]);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["Queues"][1]["DeadLetter"], true);
        assert!(json["Alarms"].is_null());
    }
}
