//! The report finalizer: writes the completion report's `manifest.json` from the recorded
//! chunks (read a page at a time, written in parts when large) and ends the job (Completing -> Complete, Failing -> Failed, Cancelling ->
//! Cancelled). Safe to run twice: the manifest is rewritten from the same records.

use std::time::Duration;

use tracing::{info, warn};

mod merge;
pub mod report;

use super::stage::{now, now_ms, role_failure, transition, transition_from, StagePorts};
use crate::chunk::FinalizeMessage;
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::ports::{ObjectStore, StorageError};
use crate::report::{manifest_entry, manifest_head, manifest_tail};
use crate::spec::ReportTarget;
use crate::{Error, Result};
use report::{PartWriter, ReportSource};

pub struct Finalizer {
    /// The report is written as the job's role; `finalize` is the finalizer's own queue,
    /// where the merges of a big report's segments go.
    pub ports: StagePorts,
}

impl Finalizer {
    /// A Pausing or Paused job whose chunks are all done goes back to Active, so it ends like
    /// any other. The dispatcher moves a job back to Active after releasing its last chunks;
    /// when those ran and the last one was recorded before that move, its request is the only
    /// one there will be (a fresh-clone `make test` met a job left Active, all tasks done).
    async fn resume_if_done(&self, job: Job) -> Result<Job> {
        if !matches!(job.status, JobStatus::Pausing | JobStatus::Paused) || !job.progress.all_chunks_done() {
            return Ok(job);
        }
        info!(job_id = %job.id, status = %job.status, "every chunk is done: the job resumes to end");
        let pausable = [JobStatus::Pausing, JobStatus::Paused];
        Ok(transition_from(&*self.ports.store, &*self.ports.events, &job.id, &pausable, JobStatus::Active, |_| {})
            .await?
            .unwrap_or_else(|j| j))
    }

    /// Returns the job as it is after this message (ended, or untouched when it is not
    /// ready to end).
    pub async fn handle(&self, msg: &FinalizeMessage) -> Result<Job> {
        let job = self.ports.store.get(&msg.job_id).await?;
        if let Some(m) = &msg.merge {
            self.merge(&job, m).await?;
            return Ok(job);
        }
        self.end(job, Merges::Wait).await
    }

    /// The sweep's last resort for a job that should end and has not: ends it as
    /// [`Finalizer::handle`] does, but records the report segments still missing with their
    /// chunks' files unmerged instead of waiting for merges that do not get through.
    pub async fn end_unmerged(&self, id: &JobId) -> Result<Job> {
        let job = self.ports.store.get(id).await?;
        self.end(job, Merges::RecordUnmerged).await
    }

    async fn end(&self, job: Job, merges: Merges) -> Result<Job> {
        let job = self.resume_if_done(job).await?;
        let job = match job.status {
            JobStatus::Active if job.progress.all_chunks_done() => {
                match transition_from(
                    &*self.ports.store,
                    &*self.ports.events,
                    &job.id,
                    &[JobStatus::Active],
                    JobStatus::Completing,
                    |_| {},
                )
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
        self.wait_for_chunks(&job).await?;
        if merges == Merges::RecordUnmerged {
            // Only now: with no chunk in flight, the chunks (and so the segments) are final.
            self.record_unmerged(&job).await?;
        }
        if !self.segments_ready(&job).await? {
            // The last merge asks for the finalizer again.
            return Ok(job);
        }
        let failure = self.write_report(&job).await?;
        let end = match job.status {
            JobStatus::Completing => JobStatus::Complete,
            JobStatus::Failing => JobStatus::Failed,
            _ => JobStatus::Cancelled,
        };
        let from = job.status;
        let done = transition_from(&*self.ports.store, &*self.ports.events, &job.id, &[from], end, |j| {
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
                transition(&*self.ports.store, &*self.ports.events, j, JobStatus::Failed, |_| {}).await
            }
            Err(j) => Ok(j),
        }
    }

    /// The chunks still running record what they did before the report lists the chunks: a
    /// live claim hands this message back until it ends (the chunk asks for the finalizer
    /// again when it records); a lapsed one, whose worker died, is reaped so it can no longer
    /// be recorded.
    async fn wait_for_chunks(&self, job: &Job) -> Result<()> {
        let now = now_ms();
        let (mut live, mut last) = (0u64, now);
        for lease in self.ports.store.chunk_leases(&job.id).await? {
            if lease.live(now) {
                live += 1;
                last = last.max(lease.until_ms);
            } else if !self.ports.store.reap_chunk(&job.id, &lease).await? {
                // Changed since it was read (renewed by a worker that came back, or ended by
                // the chunk's record): looked at again on the next delivery.
                live += 1;
                last = last.max(now + self.ports.settings.job_check.as_millis() as u64);
            }
        }
        if live == 0 {
            return Ok(());
        }
        info!(job_id = %job.id, chunks = live, "waiting for the chunks in flight");
        Err(Error::NotYet {
            message: format!("job {} is {}: waiting for {live} chunks in flight", job.id, job.status),
            retry_after: Duration::from_millis(last - now).min(self.ports.settings.job_check * 5)
                + Duration::from_millis(500),
        })
    }

    /// Writes `manifest.json` when the report is enabled and any task ran. A report bucket that
    /// refuses the write does not fail the job (S3 behaves the same) but is recorded.
    async fn write_report(&self, job: &Job) -> Result<Option<JobFailure>> {
        let valid = match job.plan() {
            Ok(v) => v,
            // Never the case for a job intake accepted; the job still ends, without a report.
            Err(e) => return Ok(Some(JobFailure::new("ReportWriteFailed", format!("No report: {e}")))),
        };
        let Some(target) = valid.report.clone() else {
            return Ok(None);
        };
        // The counters equal the report's rows.
        if job.progress.tasks_run() == 0 {
            return Ok(None);
        }
        let key = format!("{}/manifest.json", target.job_folder(&job.id));
        let objects = match self.ports.roles.assume(&job.id, job.role_arn()).await {
            Ok(ports) => ports.objects,
            Err(e) if e.transient => return Err(e.into()),
            // The job still ends; without its role there is no report.
            Err(e) => return Ok(Some(role_failure(&e))),
        };
        match self.stream_manifest(&*objects, job, &target, &key).await {
            Ok(files) => {
                info!(job_id = %job.id, bucket = %target.bucket, key = %key, files, "report written");
                Ok(None)
            }
            Err(Failed::Store(e)) => Err(e),
            Err(Failed::Write(e)) if e.is_transient() => Err(Error::from(e)),
            Err(Failed::Write(e)) => {
                warn!(job_id = %job.id, error = %e, "report could not be written");
                Ok(Some(JobFailure::new(
                    "ReportWriteFailed",
                    format!("The job report could not be written to your report bucket: {e}"),
                )))
            }
        }
    }

    /// Writes `manifest.json` from the recorded segments or chunks, a page at a time, so
    /// memory stays bounded whatever the number of files. Returns the number listed.
    async fn stream_manifest(
        &self,
        objects: &dyn ObjectStore,
        job: &Job,
        target: &ReportTarget,
        key: &str,
    ) -> Result<u64, Failed> {
        let source = ReportSource::of(&*self.ports.store, &job.id).await.map_err(Failed::Store)?;
        let mut w = PartWriter::new(objects, &target.bucket, key, JSON);
        let (mut after, mut files) = (None, 0u64);
        let mut out = manifest_head(now());
        let written = async {
            loop {
                let page = source
                    .files_after(&*self.ports.store, &job.id, after, source.page())
                    .await
                    .map_err(Failed::Store)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(*last);
                for f in page.iter().flat_map(|(_, files)| files) {
                    manifest_entry(&mut out, target, f, files == 0);
                    files += 1;
                }
                w.write(std::mem::take(&mut out).as_bytes()).await.map_err(Failed::Write)?;
            }
            out.push_str(&manifest_tail());
            w.write(out.as_bytes()).await.map_err(Failed::Write)
        }
        .await;
        if let Err(e) = written {
            w.abort().await;
            return Err(e);
        }
        w.finish().await.map_err(Failed::Write)?;
        Ok(files)
    }
}

/// What ending a job does about report segments not merged yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Merges {
    /// Asks for them, and ends the job when the last one is recorded.
    Wait,
    /// Records them unmerged and ends the job now.
    RecordUnmerged,
}

const JSON: &str = "application/json";

/// Why the manifest was not written: the job store, or the report bucket.
enum Failed {
    Store(Error),
    Write(StorageError),
}
