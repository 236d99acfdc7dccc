//! Download links to a job's completion report (batchops): every result file the job has
//! recorded and, once it has ended, `manifest.json`, each with a URL presigned as the job's
//! role, so the console can offer the files without the browser holding credentials.
//!
//! The files come from the job's own records (no listing of the report bucket); a job of any
//! size has at most about 1,000 (segments past 500 chunks), so the answer stays small.

use std::time::Duration;

use serde::Serialize;

use super::finalizer::report::report_files;
use super::intake::Intake;
use crate::job::JobId;
use crate::Result;

/// How long a link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportLinks {
    pub job_id: String,
    pub bucket: String,
    /// `manifest.json`, once the job has ended (the finalizer writes it last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ReportLink>,
    pub files: Vec<ReportLink>,
    /// Seconds each URL stays valid.
    pub expires_in_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportLink {
    pub key: String,
    /// `succeeded` or `failed` for a result file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_execution_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub url: String,
}

impl Intake {
    /// The report files of job `id` so far, each with a presigned GET URL.
    pub async fn report_links(&self, id: &str) -> Result<ReportLinks> {
        let job = self.ports.store.get(&JobId::parse(id)?).await?;
        let report = job.required_report()?;
        let ports = self.ports.roles.assume(&job.id, job.role_arn()).await?;
        let sign = |key: String| {
            let objects = ports.objects.clone();
            let bucket = report.bucket.clone();
            async move { objects.presign_get(&bucket, &key, LINK_LIFETIME).await.map(|url| (key, url)) }
        };
        let mut files = Vec::new();
        for f in report_files(&*self.ports.store, &job.id).await? {
            let (key, url) = sign(f.key).await?;
            files.push(ReportLink { key, task_execution_status: Some(f.status), rows: Some(f.rows), url });
        }
        let manifest = if job.status.is_terminal() {
            let (key, url) = sign(format!("{}/manifest.json", report.job_folder(&job.id))).await?;
            Some(ReportLink { key, task_execution_status: None, rows: None, url })
        } else {
            None
        };
        Ok(ReportLinks {
            job_id: job.id.to_string(),
            bucket: report.bucket.clone(),
            manifest,
            files,
            expires_in_seconds: LINK_LIFETIME.as_secs(),
        })
    }
}
