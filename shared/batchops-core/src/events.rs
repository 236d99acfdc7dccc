//! Status-change events: every job creation and status change is announced (on AWS, to an
//! EventBridge bus) after its write commits, at least once, never blocking or failing the job.
//!
//! The `detail` follows S3's `JobStatusChanged` service event (`jobId`, `jobArn`, `status`,
//! `jobEventId`, `failureCodes`, `statusChangeReason`), plus `previousStatus`, the counters, the
//! job's tags and, once the job has ended, where its report is.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::job::{Job, JobStatus};
use crate::retry::RetryPolicy;
use crate::Result;

/// EventBridge `source` of every event.
pub const SOURCE: &str = "batchops";
/// EventBridge `detail-type` of every event.
pub const DETAIL_TYPE: &str = "Batch Operations Job State Change";

/// One announcement: a job as it was written, and the status it left.
#[derive(Clone, Debug, PartialEq)]
pub struct JobEvent {
    pub job_id: String,
    pub status: JobStatus,
    /// The `detail` member, as JSON.
    pub detail: Value,
}

impl JobEvent {
    /// The event of `job` having just been written with its status; `previous` is `None` for
    /// a job just created (S3's `JobCreated`).
    pub fn of(job: &Job, previous: Option<JobStatus>) -> JobEvent {
        let mut detail = json!({
            "eventName": if previous.is_none() { "JobCreated" } else { "JobStatusChanged" },
            "jobId": job.id,
            "jobArn": job.arn,
            "status": job.status,
            // S3's are 32 hex characters; unique per announcement.
            "jobEventId": crate::clock::uuid().simple().to_string(),
            "failureCodes": job.failure_reasons.iter().map(|f| f.failure_code.clone()).collect::<Vec<_>>(),
            "statusChangeReason": job.status_update_reason.iter().collect::<Vec<_>>(),
            "previousStatus": previous,
            "priority": job.priority,
            "progressSummary": {
                "TotalNumberOfTasks": job.progress.total_tasks,
                "NumberOfTasksSucceeded": job.progress.succeeded,
                "NumberOfTasksFailed": job.progress.failed,
            },
            "tags": job.tags(),
        });
        let plan = job.plan().ok();
        if plan.as_ref().is_some_and(|p| p.dry_run) {
            detail["dryRun"] = json!(true);
        }
        if job.status.is_terminal() {
            if let Some(valid) = &plan {
                if let Some(r) = &valid.report {
                    let folder = r.job_folder(&job.id);
                    detail["report"] = json!({
                        "bucket": r.bucket,
                        "manifest": format!("{folder}/manifest.json"),
                        "location": format!("s3://{}/{folder}/manifest.json", r.bucket),
                    });
                }
            }
        }
        JobEvent { job_id: job.id.to_string(), status: job.status, detail }
    }
}

/// Where events go.
#[async_trait]
pub trait Events: Send + Sync {
    async fn publish(&self, event: &JobEvent) -> Result<()>;
}

/// Announces nothing (tests and benchmarks that do not look).
pub struct NoEvents;

#[async_trait]
impl Events for NoEvents {
    async fn publish(&self, _event: &JobEvent) -> Result<()> {
        Ok(())
    }
}

/// Keeps every event, in order (tests).
#[derive(Default)]
pub struct RecordedEvents(Mutex<Vec<JobEvent>>);

impl RecordedEvents {
    pub fn all(&self) -> Vec<JobEvent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The statuses announced for one job, in order.
    pub fn statuses(&self, job_id: &str) -> Vec<JobStatus> {
        self.all().into_iter().filter(|e| e.job_id == job_id).map(|e| e.status).collect()
    }
}

#[async_trait]
impl Events for RecordedEvents {
    async fn publish(&self, event: &JobEvent) -> Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
        Ok(())
    }
}

/// Announces a write that has committed: retried while the failure is transient, then logged.
/// The job goes on either way: an event is a notice, not a step of the job.
pub async fn announce(events: &dyn Events, job: &Job, previous: Option<JobStatus>) {
    let event = JobEvent::of(job, previous);
    let sent = RetryPolicy::backend()
        .until("PutEvents", |_| async {
            match events.publish(&event).await {
                Ok(()) => Ok(Some(())),
                Err(e) if e.is_transient() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
    if let Err(e) = sent {
        tracing::error!(job_id = %job.id, status = %job.status, error = %e, "status event not sent");
        crate::metrics::count(crate::metrics::Metric::EventsNotDelivered, &[], Some(&job.id), 1);
    }
}
