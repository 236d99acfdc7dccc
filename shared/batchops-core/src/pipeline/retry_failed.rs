//! Retry the failed tasks (batchops): a new job with the same operation, role and report
//! settings over the failed rows of an ended job's report. The rows' first three columns
//! (`Bucket,Key,VersionId`, keys encoded as in CSV manifests) become the new job's manifest,
//! written beside the report.

use super::finalizer::report::failed_files;
use super::intake::{Caller, Intake};
use crate::job::{Job, JobId};
use futures::StreamExt;

use crate::ports::{ObjectRef, ObjectStore, ReadOptions, ResultFile};
use crate::report::Records;
use crate::spec::{JobManifest, ManifestLocation, ManifestSpec, S3Tag, CSV_FORMAT};
use crate::{Error, Result};

/// The tag a retry job carries, naming the job it retries.
pub const RETRY_OF_TAG: &str = "batchops:retry-of";

impl Intake {
    /// Creates the job that runs the failed tasks of job `id` again. Asking twice gives the
    /// same job (its ClientRequestToken is derived from the parent).
    pub async fn retry_failed(&self, id: &str, caller: Caller<'_>) -> Result<JobId> {
        let parent = self.ports.store.get(&JobId::parse(id)?).await?;
        if !parent.status.is_terminal() {
            return Err(Error::StatusConflict {
                job_id: parent.id.clone(),
                actual: parent.status,
                message: "only the failed tasks of an ended job can be retried".into(),
            });
        }
        let report = parent.required_report()?;
        let failed = failed_files(&*self.ports.store, &parent.id).await?;
        if failed.is_empty() {
            return Err(Error::field("JobId", format!("job {id} has no failed tasks to retry")));
        }
        let ports = self.ports.roles.assume(&parent.id, parent.role_arn()).await?;
        let (rows, versioned, body) = failed_rows(&*ports.objects, &report.bucket, &failed).await?;
        let key = format!("{}/retry-failed/manifest.csv", report.job_folder(&parent.id));
        ports.objects.put(&report.bucket, &key, body.into(), "text/csv").await?;
        let etag = ports.objects.head(&report.bucket, &key, None).await?.etag;
        let spec = retry_spec(&parent, &report.bucket, &key, &etag, rows, versioned)?;
        let body = serde_json::to_vec(&spec).map_err(|e| Error::caused("retry spec", e, false))?;
        self.create_job(&body, caller).await
    }
}

/// What is kept of a result row: its first columns are a few KiB at most.
const MAX_KEPT: usize = 16 * 1024;

/// The largest manifest of failed rows a retry writes (about 600,000 rows): it is built in
/// the intake's memory. Beyond it, a job over the failed result files themselves (each is a
/// manifest) does the same.
pub const MAX_RETRY_MANIFEST: usize = 64 << 20;

/// The `Bucket,Key,VersionId` of every row of the failed result files, as manifest lines (the
/// VersionId column only when a row has one), their count, and whether they have versions.
async fn failed_rows(objects: &dyn ObjectStore, bucket: &str, files: &[ResultFile]) -> Result<(u64, bool, Vec<u8>)> {
    let mut kept = Kept::default();
    let too_many = || Error::TooLarge {
        what: format!("the manifest of the failed rows ({} result files)", files.len()),
        limit: MAX_RETRY_MANIFEST,
    };
    for f in files {
        let mut stream = objects.read(&ObjectRef::new(bucket, &f.key), ReadOptions::default()).await?;
        let mut records = Records::new(MAX_KEPT);
        while let Some(piece) = stream.next().await {
            records.feed(&piece?, &mut |record: &[u8], _: bool| kept.take(record));
            if kept.over {
                return Err(too_many());
            }
        }
        records.finish(&mut |record: &[u8], _: bool| kept.take(record));
        if kept.over {
            return Err(too_many());
        }
    }
    Ok((kept.rows, kept.versioned, kept.manifest()))
}

/// The manifest lines of the failed rows read so far, in one buffer (a row's own allocation
/// would cost more than a short row): `Bucket,Key,VersionId` each, the version column dropped
/// at the end when no row has one.
#[derive(Default)]
struct Kept {
    lines: Vec<u8>,
    rows: u64,
    versioned: bool,
    /// The lines passed [`MAX_RETRY_MANIFEST`]: the rest is not kept.
    over: bool,
}

impl Kept {
    /// A row is a CSV record, not a line: its ResultMessage may hold quoted line breaks. Bucket
    /// names, encoded keys and version IDs hold no comma: the first columns end at commas (and
    /// are in what is kept of a record however long its message).
    fn take(&mut self, record: &[u8]) {
        let mut columns = record.splitn(4, |b| *b == b',');
        let (b, k, v) = (columns.next().unwrap_or_default(), columns.next().unwrap_or_default(), columns.next());
        let v = v.unwrap_or_default();
        if self.over || self.lines.len() + b.len() + k.len() + v.len() + 3 > MAX_RETRY_MANIFEST {
            self.over = true;
            return;
        }
        self.versioned |= !v.is_empty();
        self.rows += 1;
        for part in [b, b",", k, b",", v, b"\n"] {
            self.lines.extend_from_slice(part);
        }
    }

    /// The manifest: without the empty version column when no row has a version.
    fn manifest(mut self) -> Vec<u8> {
        if !self.versioned {
            // Every line ends `,\n`: drop each comma, in place.
            let mut w = 0;
            for r in 0..self.lines.len() {
                let c = self.lines[r];
                if c == b',' && self.lines.get(r + 1) == Some(&b'\n') {
                    continue;
                }
                self.lines[w] = c;
                w += 1;
            }
            self.lines.truncate(w);
        }
        self.lines
    }
}

/// The parent's spec over the new manifest, named and tagged as its retry.
fn retry_spec(
    parent: &Job,
    bucket: &str,
    key: &str,
    etag: &str,
    rows: u64,
    versioned: bool,
) -> Result<crate::spec::JobSpec> {
    let mut spec = parent.spec.clone();
    let fields = if versioned { vec!["Bucket", "Key", "VersionId"] } else { vec!["Bucket", "Key"] };
    spec.manifest = Some(JobManifest {
        spec: Some(ManifestSpec {
            format: Some(CSV_FORMAT.into()),
            fields: Some(fields.into_iter().map(String::from).collect()),
        }),
        location: Some(ManifestLocation {
            object_arn: Some(format!("arn:aws:s3:::{bucket}/{key}")),
            object_version_id: None,
            etag: Some(etag.to_string()),
        }),
    });
    spec.manifest_generator = None;
    spec.client_request_token = Some(format!("retry-failed-{}", parent.id));
    spec.description = Some(format!("Retry of the {rows} failed tasks of job {}", parent.id));
    let mut tags: Vec<S3Tag> = parent.tags.iter().filter(|t| t.key != RETRY_OF_TAG).cloned().collect();
    if tags.len() >= super::intake::MAX_JOB_TAGS {
        return Err(Error::TooManyTags {
            message: format!(
                "job {} has {} tags: its retry needs room for the {RETRY_OF_TAG} tag",
                parent.id,
                tags.len()
            ),
        });
    }
    tags.push(S3Tag { key: RETRY_OF_TAG.into(), value: parent.id.to_string() });
    spec.tags = Some(tags);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryObjectStore;
    use crate::report::ResultRow;

    fn row(key: &str, version: &str, message: &str) -> String {
        let mut out = String::new();
        ResultRow {
            bucket: "src".into(),
            encoded_key: key.into(),
            version_id: version.into(),
            succeeded: false,
            http_status: 500,
            error_code: "InternalError".into(),
            message: message.into(),
        }
        .render(&mut out);
        out
    }

    #[tokio::test]
    async fn the_failed_rows_are_records_whose_messages_may_hold_line_breaks() {
        // GIVEN failed result files whose messages hold quoted line breaks, commas and quotes
        let objects = InMemoryObjectStore::default();
        let first = [row("a%20b", "", "line one\nline two, \"quoted\"\n"), row("c", "", "plain")].concat();
        let second = [row("d", "v1", "x\r\ny"), row("e", "", &"long ".repeat(10_000))].concat();
        let files: Vec<ResultFile> = [("f1.csv", first), ("f2.csv", second)]
            .into_iter()
            .map(|(key, body)| {
                objects.insert("rep", key, body.into_bytes());
                ResultFile { key: key.into(), status: "failed".into(), md5: String::new(), rows: 2 }
            })
            .collect();
        // WHEN they become the retry's manifest
        let (rows, versioned, body) = failed_rows(&objects, "rep", &files).await.unwrap();
        // THEN each row is one line of it, nothing of a message is
        assert_eq!((rows, versioned), (4, true));
        assert_eq!(String::from_utf8(body).unwrap(), "src,a%20b,\nsrc,c,\nsrc,d,v1\nsrc,e,\n");
    }
}
