//! The S3 Control views of a job: DescribeJob's `JobDescriptor` and ListJobs'
//! `JobListDescriptor`. Here, beside the dry run it estimates from, rather than on the job record,
//! so the record does not depend on the pipeline that reads it.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::ids::{iso8601, JobStatus};
use crate::job::Job;

fn timestamp(t: Timestamp) -> Value {
    Value::String(iso8601(t))
}

fn progress_summary(job: &Job, now: Timestamp) -> Value {
    let elapsed = match job.active_since {
        Some(start) => {
            let end = job.terminated.unwrap_or(now);
            end.duration_since(start).as_secs().max(0)
        }
        None => 0,
    };
    let p = &job.progress;
    let total = p.total_tasks.unwrap_or(p.tasks_prepared.max(p.counted.tasks).max(p.cut.tasks));
    json!({
        "TotalNumberOfTasks": total,
        "NumberOfTasksSucceeded": job.progress.succeeded,
        "NumberOfTasksFailed": job.progress.failed,
        "Timers": {"ElapsedTimeInActiveSeconds": elapsed},
    })
}

/// The `JobDescriptor` of DescribeJob.
pub fn descriptor(job: &Job, now: Timestamp) -> Value {
    let mut d = serde_json::Map::new();
    d.insert("JobId".into(), json!(job.id));
    d.insert("JobArn".into(), json!(job.arn));
    d.insert("ConfirmationRequired".into(), json!(job.spec.confirmation_required.unwrap_or(false)));
    if let Some(desc) = &job.spec.description {
        d.insert("Description".into(), json!(desc));
    }
    d.insert("Status".into(), json!(job.status));
    if let Some(m) = &job.spec.manifest {
        d.insert("Manifest".into(), serde_json::to_value(m).unwrap_or(Value::Null));
    }
    if let Some(g) = &job.spec.manifest_generator {
        d.insert("ManifestGenerator".into(), g.clone());
    }
    d.insert("Operation".into(), job.spec.operation.clone().unwrap_or(Value::Null));
    d.insert("Priority".into(), json!(job.priority));
    if let Some(rate) = job.max_tasks_per_second {
        d.insert("MaxTasksPerSecond".into(), json!(rate));
    }
    d.insert("ProgressSummary".into(), progress_summary(job, now));
    if let Some(plan) = job.plan().ok().filter(|p| p.dry_run) {
        d.insert("DryRun".into(), json!(true));
        d.insert("DryRunEstimate".into(), super::dry_run::estimate(&plan.operation, job.progress.succeeded));
    }
    if let Some(r) = &job.status_update_reason {
        d.insert("StatusUpdateReason".into(), json!(r));
    }
    d.insert("FailureReasons".into(), json!(job.failure_reasons));
    if let Some(r) = &job.spec.report {
        d.insert("Report".into(), serde_json::to_value(r).unwrap_or(Value::Null));
    }
    d.insert("CreationTime".into(), timestamp(job.created));
    if let Some(t) = job.terminated {
        d.insert("TerminationDate".into(), timestamp(t));
    }
    if let Some(role) = &job.spec.role_arn {
        d.insert("RoleArn".into(), json!(role));
    }
    if let Some(t) = job.suspended {
        d.insert("SuspendedDate".into(), timestamp(t));
    }
    if let Some(c) = &job.suspended_cause {
        d.insert("SuspendedCause".into(), json!(c));
    }
    let history: Vec<Value> = job
        .history
        .iter()
        .map(|c| {
            let mut entry = json!({"Status": c.status, "Time": timestamp(c.at)});
            if let Some(r) = &c.reason {
                entry["Reason"] = json!(r);
            }
            entry
        })
        .collect();
    d.insert("StatusHistory".into(), Value::Array(history));
    if let Some(g) = job.generated_manifest.as_ref().filter(|g| g.requested) {
        d.insert(
            "GeneratedManifestDescriptor".into(),
            json!({"Format": crate::generator::GENERATED_FORMAT,
                   "Location": {"ObjectArn": format!("arn:aws:s3:::{}/{}", g.bucket, g.key), "ETag": g.etag}}),
        );
    }
    if job.status == JobStatus::Preparing || job.progress.total_tasks.is_none() {
        // batchops extension: how far preparation has come.
        d.insert("PreparationProgress".into(), preparation(job));
    }
    Value::Object(d)
}

/// How far the chunker has read the manifest (a batchops member of the descriptor, shown
/// while the job prepares): tasks found, and the inventory files or listed objects so far.
pub fn preparation(job: &Job) -> Value {
    let p = &job.progress;
    let pass = if p.cut.files > 0 || p.counted.files == 0 { &p.cut } else { &p.counted };
    let mut v = json!({"TasksPrepared": p.tasks_prepared.max(pass.tasks).max(p.total_tasks.unwrap_or(0))});
    if let Some(n) = p.files_total {
        v["FilesRead"] = json!(pass.files);
        v["FilesTotal"] = json!(n);
    }
    if job.checkpoint.listed > 0 {
        v["ObjectsListed"] = json!(job.checkpoint.listed);
    }
    v
}

/// The `JobListDescriptor` of ListJobs.
pub fn list_descriptor(job: &Job, now: Timestamp) -> Value {
    let mut d = serde_json::Map::new();
    d.insert("JobId".into(), json!(job.id));
    if let Some(desc) = &job.spec.description {
        d.insert("Description".into(), json!(desc));
    }
    d.insert("Operation".into(), json!(job.spec.operation_name().unwrap_or_default()));
    d.insert("Priority".into(), json!(job.priority));
    d.insert("Status".into(), json!(job.status));
    d.insert("CreationTime".into(), timestamp(job.created));
    if let Some(t) = job.terminated {
        d.insert("TerminationDate".into(), timestamp(t));
    }
    d.insert("ProgressSummary".into(), progress_summary(job, now));
    // batchops: the tags, so a list shows them without a GetJobTagging per job.
    d.insert("Tags".into(), json!(job.tags));
    Value::Object(d)
}
