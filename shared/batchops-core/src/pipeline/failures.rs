//! A job's failed tasks at a glance (batchops): counts per `ErrorCode` and HTTP status, with
//! the first rows of each, read from the failed result files of its report, for the console
//! and `batchops failures`.
//!
//! Bounded whatever the job's size: the files are streamed (never held whole), at most
//! [`MAX_GROUPS`] distinct (code, status) pairs are kept (further ones are counted together),
//! at most `limit` rows per pair, and reading stops after [`MAX_SCAN_BYTES`], the answer then
//! saying it is partial. Works while the job runs too: the files of the chunks recorded so far.

use futures::StreamExt;
use serde::Serialize;

use super::finalizer::report::failed_files;
use super::intake::Intake;
use crate::job::JobId;
use crate::manifest::split_csv;
use crate::ports::{ObjectRef, ObjectStore, ReadOptions};
use crate::report::Records;
use crate::{Error, Result};

/// Most distinct (ErrorCode, HTTPStatusCode) pairs counted apart.
pub const MAX_GROUPS: usize = 50;
/// Most rows shown per pair.
pub const MAX_LIMIT: usize = 1000;
/// Bytes of failed result files read at most for one answer.
pub const MAX_SCAN_BYTES: u64 = 64 * 1024 * 1024;
/// Longest result row read; a longer one (S3 caps keys at 1 KiB and messages are short) is
/// cut there and counted as unreadable.
const MAX_ROW_BYTES: usize = 64 * 1024;

/// The failed tasks of a job, as far as they were read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Failures {
    pub job_id: String,
    /// The job's own count of failed tasks (its `ProgressSummary`).
    pub failed_tasks: u64,
    /// Failed rows read from the report's files.
    pub rows_read: u64,
    /// Whether every failed result file was read to its end (false: the counts are partial).
    pub complete: bool,
    /// Per (ErrorCode, HTTPStatusCode), most rows first.
    pub groups: Vec<FailureGroup>,
    /// Rows of pairs beyond [`MAX_GROUPS`], and rows that could not be read as CSV.
    pub other_rows: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureGroup {
    pub error_code: String,
    #[serde(rename = "HTTPStatusCode")]
    pub http_status_code: u16,
    pub count: u64,
    /// The first rows of this pair, in report order.
    pub tasks: Vec<FailedTask>,
}

/// One failed row: its object (the key URL-encoded, as in the report) and S3's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailedTask {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub result_message: String,
}

impl Intake {
    /// The failed tasks of job `id`: at most `limit` rows per (code, status) pair.
    pub async fn failures(&self, id: &str, limit: usize) -> Result<Failures> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::field("limit", format!("{limit} is not 1-{MAX_LIMIT}")));
        }
        let job = self.ports.store.get(&JobId::parse(id)?).await?;
        let report = job.required_report()?;
        let files = failed_files(&*self.ports.store, &job.id).await?;
        let ports = self.ports.roles.assume(&job.id, job.role_arn()).await?;
        let mut tally = Tally::new(limit);
        let mut complete = true;
        for file in &files {
            if !read_file(&*ports.objects, &report.bucket, &file.key, &mut tally).await? {
                complete = false;
                break;
            }
        }
        Ok(tally.finish(job.id.to_string(), job.progress.failed, complete))
    }
}

/// Streams one result file into `tally`, record by record; false when the byte budget ran out.
async fn read_file(objects: &dyn ObjectStore, bucket: &str, key: &str, tally: &mut Tally) -> Result<bool> {
    let mut stream = objects.read(&ObjectRef::new(bucket, key), ReadOptions::default()).await?;
    let mut records = Records::new(MAX_ROW_BYTES);
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        tally.bytes += piece.len() as u64;
        records.feed(&piece, |record, whole| tally.add(whole.then_some(record)));
        if tally.bytes >= MAX_SCAN_BYTES {
            return Ok(false);
        }
    }
    records.finish(|record, whole| tally.add(whole.then_some(record)));
    Ok(true)
}

/// What has been counted so far.
struct Tally {
    limit: usize,
    bytes: u64,
    rows: u64,
    other: u64,
    groups: Vec<FailureGroup>,
}

impl Tally {
    fn new(limit: usize) -> Self {
        Tally { limit, bytes: 0, rows: 0, other: 0, groups: Vec::new() }
    }

    /// Counts one record (`None`: one that could not be read).
    fn add(&mut self, record: Option<&[u8]>) {
        self.rows += 1;
        let Some(row) = record.and_then(parse_row) else {
            self.other += 1;
            return;
        };
        let (code, status, task) = row;
        let at = match self.groups.iter().position(|g| g.error_code == code && g.http_status_code == status) {
            Some(i) => i,
            None if self.groups.len() < MAX_GROUPS => {
                self.groups.push(FailureGroup {
                    error_code: code,
                    http_status_code: status,
                    count: 0,
                    tasks: Vec::new(),
                });
                self.groups.len() - 1
            }
            None => {
                self.other += 1;
                return;
            }
        };
        let group = &mut self.groups[at];
        group.count += 1;
        if group.tasks.len() < self.limit {
            group.tasks.push(task);
        }
    }

    fn finish(mut self, job_id: String, failed_tasks: u64, complete: bool) -> Failures {
        // Most rows first; equal counts keep the order they were first seen in.
        self.groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        Failures { job_id, failed_tasks, rows_read: self.rows, complete, groups: self.groups, other_rows: self.other }
    }
}

/// `Bucket,Key,VersionId,TaskStatus,HTTPStatusCode,ErrorCode,ResultMessage` (the report's
/// physical column order) as its code, status and task; `None` when it is not such a row.
pub fn parse_row(record: &[u8]) -> Option<(String, u16, FailedTask)> {
    let text = std::str::from_utf8(record).ok()?;
    let cols = split_csv(text).ok()?;
    let [bucket, key, version, _status, http, code, message] = <[_; 7]>::try_from(cols).ok()?;
    let task = FailedTask {
        bucket: bucket.into_owned(),
        key: key.into_owned(),
        version_id: version.into_owned(),
        result_message: message.into_owned(),
    };
    Some((code.into_owned(), http.parse().ok()?, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ResultRow;

    fn row(key: &str, code: &str, status: u16, message: &str) -> String {
        let mut out = String::new();
        ResultRow {
            bucket: "b".into(),
            encoded_key: key.into(),
            version_id: String::new(),
            succeeded: false,
            http_status: status,
            error_code: code.into(),
            message: message.into(),
        }
        .render(&mut out);
        out
    }

    fn tally(text: &str, piece: usize, limit: usize) -> Failures {
        let mut tally = Tally::new(limit);
        let mut records = Records::new(MAX_ROW_BYTES);
        for p in text.as_bytes().chunks(piece) {
            records.feed(p, |r, whole| tally.add(whole.then_some(r)));
        }
        records.finish(|r, whole| tally.add(whole.then_some(r)));
        tally.finish("j".into(), 0, true)
    }

    #[test]
    fn rows_are_counted_per_code_and_status_whatever_the_pieces_they_arrive_in() {
        let text = [
            row("k1", "NoSuchKey", 404, "gone"),
            row("k2", "AccessDenied", 403, "a message, with a comma and a \"quote\"\nand a line break"),
            row("k3", "NoSuchKey", 404, "gone"),
            row("k4", "NoSuchKey", 404, "gone"),
        ]
        .concat();
        for piece in [1, 2, 7, 1000] {
            let f = tally(&text, piece, 2);
            assert_eq!(f.rows_read, 4, "piece {piece}");
            assert_eq!(f.other_rows, 0);
            let counts: Vec<_> =
                f.groups.iter().map(|g| (g.error_code.as_str(), g.http_status_code, g.count)).collect();
            assert_eq!(counts, [("NoSuchKey", 404, 3), ("AccessDenied", 403, 1)], "piece {piece}");
            let keys: Vec<_> = f.groups[0].tasks.iter().map(|t| t.key.as_str()).collect();
            assert_eq!(keys, ["k1", "k3"], "at most `limit` rows, the first ones");
            assert_eq!(
                f.groups[1].tasks[0].result_message,
                "a message, with a comma and a \"quote\"\nand a line break"
            );
        }
    }

    #[test]
    fn pairs_beyond_the_cap_and_unreadable_rows_are_counted_apart() {
        let mut text: String = (0..MAX_GROUPS + 3).map(|i| row("k", &format!("Code{i}"), 500, "m")).collect();
        text.push_str("not,a,report,row\n");
        let f = tally(&text, 4096, 1);
        assert_eq!(f.groups.len(), MAX_GROUPS);
        assert_eq!((f.rows_read, f.other_rows), (MAX_GROUPS as u64 + 4, 4));
    }
}
