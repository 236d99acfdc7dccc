//! The report finalizer: writes the completion report's `manifest.json` from the recorded
//! chunks and ends the job (Completing -> Complete, Failing -> Failed, Cancelling ->
//! Cancelled). Safe to run twice: the manifest is rewritten from the same records.

use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};

use super::{now, transition, transition_from, Settings};
use crate::chunk::FinalizeMessage;
use crate::job::{Job, JobFailure, JobStatus};
use crate::ports::{JobStore, ObjectStore};
use crate::report::render_manifest;
use crate::{Error, Result};

pub struct Finalizer {
    pub store: Arc<dyn JobStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub settings: Settings,
}

impl Finalizer {
    /// Returns the job as it is after this message (ended, or untouched when it is not
    /// ready to end).
    pub async fn handle(&self, msg: &FinalizeMessage) -> Result<Job> {
        let job = self.store.get(&msg.job_id).await?;
        let job = match job.status {
            JobStatus::Active if job.progress.all_chunks_done() => {
                match transition_from(&*self.store, &job.id, &[JobStatus::Active], JobStatus::Completing, |_| {})
                    .await?
                {
                    Ok(j) => j,
                    Err(j) => return Ok(j),
                }
            }
            JobStatus::Completing | JobStatus::Failing | JobStatus::Cancelling => job,
            status => {
                info!(job_id = %job.id, status = %status, "nothing to finalize");
                return Ok(job);
            }
        };
        let failure = self.write_report(&job).await?;
        let end = match job.status {
            JobStatus::Completing => JobStatus::Complete,
            JobStatus::Failing => JobStatus::Failed,
            _ => JobStatus::Cancelled,
        };
        let from = job.status;
        let done = transition_from(&*self.store, &job.id, &[from], end, |j| {
            if let Some(f) = &failure {
                if !j.failure_reasons.contains(f) {
                    j.failure_reasons.push(f.clone());
                }
            }
        })
        .await?;
        match done {
            Ok(j) => Ok(j),
            // A job that started failing while its report was written fails.
            Err(j) if j.status == JobStatus::Failing => {
                self.write_report(&j).await?;
                transition(&*self.store, j, JobStatus::Failed, |_| {}).await
            }
            Err(j) => Ok(j),
        }
    }

    /// Writes `manifest.json` when the report is enabled and any task ran. A report bucket that
    /// refuses the write does not fail the job (S3 behaves the same) but is recorded.
    async fn write_report(&self, job: &Job) -> Result<Option<JobFailure>> {
        let valid = job.spec.validate()?;
        let Some(target) = valid.report else {
            return Ok(None);
        };
        let chunks = self.store.chunks(&job.id).await?;
        if chunks.iter().all(|c| c.succeeded + c.failed == 0) {
            return Ok(None);
        }
        let files: Vec<_> = chunks.into_iter().flat_map(|c| c.files).collect();
        let body = render_manifest(&target, &files, now());
        let key = format!("{}/manifest.json", target.job_folder(&job.id));
        match self.objects.put(&target.bucket, &key, Bytes::from(body), "application/json").await {
            Ok(()) => {
                info!(job_id = %job.id, bucket = %target.bucket, key = %key, files = files.len(), "report written");
                Ok(None)
            }
            Err(e) if e.http_status >= 500 || e.http_status == 0 => Err(Error::from(e)),
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "report could not be written");
                Ok(Some(JobFailure::new(
                    "ReportWriteFailed",
                    format!("The job report could not be written to your report bucket: {e}"),
                )))
            }
        }
    }
}
