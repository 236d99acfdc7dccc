//! The completion report, as S3 writes it: `<prefix>/job-<id>/manifest.json` and result CSV
//! files under `<prefix>/job-<id>/results/`, one set for succeeded and one for failed tasks.
//! Rows have no header and use the physical column order of real S3 reports:
//! `Bucket,Key,VersionId,TaskStatus,HTTPStatusCode,ErrorCode,ResultMessage`.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-examples-reports.html>

use jiff::Timestamp;
use md5::{Digest, Md5};
use serde_json::json;
use sha1::Sha1;

use crate::job::JobId;
use crate::manifest::{BadLine, ManifestEntry};
use crate::ports::ResultFile;
use crate::retry::Outcome;
use crate::spec::{ReportScope, ReportTarget, REPORT_FORMAT};

/// The literal `ReportSchema` of S3's report manifest (note: it lists ErrorCode before
/// HTTPStatusCode, while the rows carry the status first, as S3's own rows do).
pub const REPORT_SCHEMA: &str = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

/// One row of a result file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRow {
    pub bucket: String,
    /// URL-encoded, exactly as the manifest had it.
    pub encoded_key: String,
    pub version_id: String,
    pub succeeded: bool,
    pub http_status: u16,
    pub error_code: String,
    pub message: String,
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The longest `ResultMessage` a report row holds (bytes). A LambdaInvoke function may answer
/// 6 MB, and a chunk holds its rows until its result files are written: a chunk of a thousand
/// such answers would have held 6 GB.
pub const MAX_RESULT_MESSAGE: usize = 4096;

/// `message`, cut to [`MAX_RESULT_MESSAGE`] bytes (on a character boundary) and saying so.
fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_RESULT_MESSAGE {
        let all = message.len();
        let mut end = MAX_RESULT_MESSAGE - 64;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(&format!("... ({all} bytes, cut to the first {end})"));
    }
    message
}

impl ResultRow {
    /// The row of a task that ran.
    pub fn task(entry: ManifestEntry, outcome: Outcome) -> ResultRow {
        let version_id = entry.target.version_id.unwrap_or_default();
        let (bucket, encoded_key) = (entry.target.bucket, entry.encoded_key);
        match outcome {
            Outcome::Succeeded { message } => ResultRow {
                bucket,
                encoded_key,
                version_id,
                succeeded: true,
                http_status: 200,
                error_code: String::new(),
                message: bounded_message(message),
            },
            Outcome::Failed(f) => ResultRow {
                bucket,
                encoded_key,
                version_id,
                succeeded: false,
                http_status: f.http_status,
                error_code: f.error_code,
                message: bounded_message(f.message),
            },
        }
    }

    /// The row of a manifest line that could not become a task.
    pub fn bad_line(bad: BadLine) -> ResultRow {
        ResultRow {
            bucket: bad.bucket,
            encoded_key: bad.encoded_key,
            version_id: bad.version_id,
            succeeded: false,
            http_status: 400,
            error_code: "InvalidManifestContent".into(),
            message: bounded_message(bad.reason),
        }
    }

    pub fn render(&self, out: &mut String) {
        csv_field(out, &self.bucket);
        out.push(',');
        csv_field(out, &self.encoded_key);
        out.push(',');
        csv_field(out, &self.version_id);
        out.push(',');
        out.push_str(if self.succeeded { "succeeded" } else { "failed" });
        out.push(',');
        out.push_str(&self.http_status.to_string());
        out.push(',');
        csv_field(out, &self.error_code);
        out.push(',');
        csv_field(out, &self.message);
        out.push('\n');
    }
}

/// A result file ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub file: ResultFile,
    pub body: String,
}

/// Renders the result files of one chunk (one per status that has rows and is in scope).
/// `attempt` makes the keys unique per execution, so a concurrent duplicate execution of a
/// chunk never overwrites the files of the one that was recorded.
pub fn render_chunk(
    target: &ReportTarget,
    job_id: &JobId,
    chunk: u64,
    attempt: &str,
    rows: &[ResultRow],
) -> Vec<RenderedFile> {
    let folder = target.job_folder(job_id);
    let mut files = Vec::new();
    for (succeeded, status) in [(true, "succeeded"), (false, "failed")] {
        if succeeded && target.scope == ReportScope::FailedTasksOnly {
            continue;
        }
        let mut body = String::new();
        let mut n = 0;
        for r in rows.iter().filter(|r| r.succeeded == succeeded) {
            r.render(&mut body);
            n += 1;
        }
        if n == 0 {
            continue;
        }
        let name = hex::encode(Sha1::digest(format!("{job_id}/{chunk}/{attempt}/{status}").as_bytes()));
        files.push(RenderedFile {
            file: ResultFile {
                key: format!("{folder}/results/{name}.csv"),
                status: status.into(),
                md5: hex::encode(Md5::digest(body.as_bytes())),
                rows: n,
            },
            body,
        });
    }
    files
}

/// The report's `manifest.json`: one `Results[]` entry per result file, in S3's member
/// order. Written in pieces ([`manifest_head`], [`manifest_entry`], [`MANIFEST_TAIL`]) so a
/// job of any size streams it.
pub fn render_manifest(target: &ReportTarget, files: &[ResultFile], created: Timestamp) -> String {
    let mut out = manifest_head(created);
    for (i, f) in files.iter().enumerate() {
        manifest_entry(&mut out, target, f, i == 0);
    }
    out.push_str(&manifest_tail());
    out
}

/// The start of `manifest.json`, up to the opening of `Results`.
pub fn manifest_head(created: Timestamp) -> String {
    let date = crate::job::iso8601(created);
    format!("{{\"Format\":\"{REPORT_FORMAT}\",\"ReportCreationDate\":\"{date}\",\"Results\":[")
}

/// Appends one `Results[]` entry (`first`: no comma before it).
pub fn manifest_entry(out: &mut String, target: &ReportTarget, f: &ResultFile, first: bool) {
    if !first {
        out.push(',');
    }
    let entry = json!({
        "TaskExecutionStatus": f.status,
        "Bucket": target.bucket,
        "MD5Checksum": f.md5,
        "Key": f.key,
    });
    out.push_str(&entry.to_string());
}

/// The end of `manifest.json`, after the last entry.
pub fn manifest_tail() -> String {
    format!("],\"ReportSchema\":{}}}", json!(REPORT_SCHEMA))
}

/// Cuts a result file into CSV records as it streams in: a record ends at a line break outside
/// quotes (a ResultMessage may hold quoted line breaks). Each record is kept up to `max`
/// bytes; a longer one is handed over cut there and marked as not whole.
pub struct Records {
    pending: Vec<u8>,
    quoted: bool,
    max: usize,
    /// The current record passed `max`: the rest of it is skipped.
    overlong: bool,
}

impl Records {
    pub fn new(max: usize) -> Self {
        Records { pending: Vec::new(), quoted: false, max, overlong: false }
    }

    /// Hands each record `piece` completes to `record`, with whether it is whole.
    pub fn feed(&mut self, piece: &[u8], mut record: impl FnMut(&[u8], bool)) {
        for &b in piece {
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => {
                    self.emit(&mut record);
                    continue;
                }
                _ => {}
            }
            if self.pending.len() < self.max {
                self.pending.push(b);
            } else {
                self.overlong = true;
            }
        }
    }

    fn emit(&mut self, record: &mut impl FnMut(&[u8], bool)) {
        let text = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
        if !text.is_empty() {
            record(text, !self.overlong);
        }
        self.pending.clear();
        self.overlong = false;
    }

    /// The last record, when the file does not end with a line break.
    pub fn finish(mut self, mut record: impl FnMut(&[u8], bool)) {
        self.emit(&mut record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(succeeded: bool, key: &str, msg: &str) -> ResultRow {
        ResultRow {
            bucket: "b".into(),
            encoded_key: key.into(),
            version_id: String::new(),
            succeeded,
            http_status: if succeeded { 200 } else { 404 },
            error_code: if succeeded { String::new() } else { "NoSuchKey".into() },
            message: msg.into(),
        }
    }

    #[test]
    fn rows_use_the_column_order_of_real_reports_and_quote_like_rfc4180() {
        let mut s = String::new();
        row(false, "a%20b", "said \"no\", twice").render(&mut s);
        assert_eq!(s, "b,a%20b,,failed,404,NoSuchKey,\"said \"\"no\"\", twice\"\n");
    }

    #[test]
    fn succeeded_and_failed_rows_go_to_separate_files_and_scope_is_honoured() {
        let id = JobId::parse("job-00001").unwrap();
        let rows = vec![row(true, "a", "ok"), row(false, "b", "gone"), row(true, "c", "ok")];
        let mut target = ReportTarget { bucket: "r".into(), prefix: Some("out/".into()), scope: ReportScope::AllTasks };
        let files = render_chunk(&target, &id, 3, "x", &rows);
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].file.status.as_str(), files[0].file.rows), ("succeeded", 2));
        assert_eq!((files[1].file.status.as_str(), files[1].file.rows), ("failed", 1));
        assert!(files[0].file.key.starts_with("out/job-job-00001/results/"), "{}", files[0].file.key);
        assert_eq!(files[0].file.key.len(), "out/job-job-00001/results/".len() + 40 + 4);
        assert_ne!(files[0].file.key, render_chunk(&target, &id, 3, "y", &rows)[0].file.key);
        target.scope = ReportScope::FailedTasksOnly;
        let files = render_chunk(&target, &id, 3, "x", &rows);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].file.status, "failed");
    }

    #[test]
    fn the_manifest_lists_every_file_with_its_md5() {
        let target = ReportTarget { bucket: "r".into(), prefix: None, scope: ReportScope::AllTasks };
        let f = ResultFile { key: "job-x/results/a.csv".into(), status: "failed".into(), md5: "00".into(), rows: 1 };
        let doc: serde_json::Value =
            serde_json::from_str(&render_manifest(&target, std::slice::from_ref(&f), Timestamp::UNIX_EPOCH)).unwrap();
        assert_eq!(doc["Format"], "Report_CSV_20180820");
        assert_eq!(doc["ReportSchema"], REPORT_SCHEMA);
        assert_eq!(doc["ReportCreationDate"], "1970-01-01T00:00:00.000Z");
        assert_eq!(doc["Results"][0]["Bucket"], "r");
        assert_eq!(doc["Results"][0]["TaskExecutionStatus"], "failed");
        let two: serde_json::Value = serde_json::from_str(&render_manifest(
            &target,
            &[f.clone(), ResultFile { key: "k2".into(), ..f.clone() }],
            Timestamp::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(two["Results"][1]["Key"], "k2");
        let empty: serde_json::Value =
            serde_json::from_str(&render_manifest(&target, &[], Timestamp::UNIX_EPOCH)).unwrap();
        assert_eq!(empty["Results"], serde_json::json!([]));
    }
}
