//! A consolidated report for a job of any size. Each chunk writes its own result files (one
//! per status), so a billion tasks would leave two million files and a `manifest.json` of
//! hundreds of MB. A job of more recorded chunks than `Settings::report_segments` (at most
//! [`MAX_SEGMENTS`]) is reported instead in segments of consecutive chunks, each one file per
//! status: that many segments (so at most 1,000 result files and a `manifest.json` of about
//! 200 KB) until a segment would hold more than [`chunks_per_segment`] chunks, more beyond
//! (a billion tasks: 2,000 segments). The cap keeps a merge well within one invocation and a
//! segment recorded unmerged within one DynamoDB item:
//!
//! 1. the finalizer cuts the recorded chunks (frozen once the job is ending and no claim is
//!    live) into segments and sends one merge message per segment not yet recorded, to its
//!    own queue, so merges run in parallel on as many finalizers as the queue feeds (and the
//!    ten of one delivery side by side);
//! 2. a merge streams its chunks' files, [`READ_AHEAD`] at a time, into one file per status
//!    (multipart in [`REPORT_PART_BYTES`] parts: memory stays at one part), records the
//!    segment once (a conditional write: a duplicate merge deletes what it wrote), deletes the
//!    chunk files it merged, and the merge that finds every segment recorded asks for the
//!    finalizer again;
//! 3. the finalizer lists the segments' files in `manifest.json`.
//!
//! Merges that never get through (their messages lost, or dying each time) do not hold the
//! job: when the sweep finds it unmoved after asking again, it records the segments still
//! missing with their chunks' files unmerged ([`Finalizer::record_unmerged`]) and ends it.
//!
//! A merge that cannot read or write the report bucket (a job role allowed only PutObject,
//! as S3's own reports need) records its segment with the chunk files as they are: the
//! report is then not consolidated there, and every row is still in it exactly once.

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use tracing::{info, warn};

use super::finalizer::{Finalizer, REPORT_PART_BYTES};
use super::{encode, request_finalize};
use crate::chunk::FinalizeMessage;
use crate::job::{Job, JobId, JobStatus};
use crate::ports::{JobStore, ObjectStore, ResultFile, SegmentRecord, StorageError};
use crate::spec::ReportTarget;
use crate::Result;

/// A report has this many segments, each one result file per status (the default and the
/// largest `Settings::report_segments`), unless a segment would hold more than
/// [`chunks_per_segment`] chunks.
pub const MAX_SEGMENTS: u64 = 500;

/// The most chunks a segment holds: a merge reads their files (two each) and writes them out
/// in well under a minute of one invocation's five.
pub const MAX_CHUNKS_PER_SEGMENT: u64 = 500;

/// Bytes a segment record may take: DynamoDB's item limit is 400 KB, with room for the keys.
const RECORD_BUDGET: usize = 360 * 1024;

/// Result files a merge asks for ahead of the one it writes (their requests start as each
/// body before them ends, so most first-byte waits overlap).
pub const READ_AHEAD: usize = 8;

/// How long one call records segments unmerged.
const UNMERGED_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// The most chunks one segment of a report to `target` holds: at most
/// [`MAX_CHUNKS_PER_SEGMENT`], and few enough that the segment recorded unmerged (two of the
/// widest result files per chunk listed) fits [`RECORD_BUDGET`] (a 512-character report
/// prefix: about 260).
pub fn chunks_per_segment(target: &ReportTarget, job: &JobId) -> u64 {
    let widest = ResultFile {
        key: format!("{}/results/{}.csv", target.job_folder(job), "f".repeat(40)),
        status: "succeeded".into(),
        md5: "f".repeat(32),
        rows: u64::MAX,
    };
    // Serialized as the record is (the separating comma included).
    let per_file = serde_json::to_string(&widest).map_or(2048, |j| j.len() + 1);
    ((RECORD_BUDGET / (2 * per_file)) as u64).clamp(1, MAX_CHUNKS_PER_SEGMENT)
}

/// How many segments `count` chunks are cut into: `wanted`, or more when a segment would hold
/// more than `per_segment` chunks.
pub fn segment_count(count: u64, wanted: u64, per_segment: u64) -> u64 {
    wanted.max(count.div_ceil(per_segment.max(1))).max(1)
}

/// One segment to merge: the recorded chunks `first..=last` (by index), segment `segment`
/// of `of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    pub segment: u64,
    pub of: u64,
    pub first: u64,
    pub last: u64,
}

/// Cuts chunk indexes (ascending) into at most `segments` runs of equal length (the last
/// shorter), given how many there are.
pub fn cut(indexes: impl IntoIterator<Item = u64>, count: u64, segments: u64) -> Vec<Merge> {
    let per = count.div_ceil(segments.max(1)).max(1);
    let mut merges: Vec<Merge> = Vec::new();
    for (i, index) in indexes.into_iter().enumerate() {
        if (i as u64).is_multiple_of(per) {
            merges.push(Merge { segment: merges.len() as u64, of: 0, first: index, last: index });
        } else if let Some(m) = merges.last_mut() {
            m.last = index;
        }
    }
    let of = merges.len() as u64;
    merges.iter_mut().for_each(|m| m.of = of);
    merges
}

/// Where a job's report files are recorded: its segments, when it has any, else its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportSource {
    Chunks,
    Segments,
}

impl ReportSource {
    /// Records read at a time: a chunk lists two files; a segment recorded unmerged up to a
    /// thousand (some 360 KB), so a page of those stays a few MB.
    pub fn page(self) -> usize {
        match self {
            ReportSource::Chunks => 1000,
            ReportSource::Segments => 10,
        }
    }

    /// Read once per listing, so the pages of one listing come from one source.
    pub async fn of(store: &dyn JobStore, id: &JobId) -> Result<ReportSource> {
        Ok(match store.segments_after(id, None, 1).await?.is_empty() {
            true => ReportSource::Chunks,
            false => ReportSource::Segments,
        })
    }

    /// The report's result files in order, a page at a time: `(index, files)` of the
    /// records with an index above `after`.
    pub async fn files_after(
        self,
        store: &dyn JobStore,
        id: &JobId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<ResultFile>)>> {
        Ok(match self {
            ReportSource::Segments => {
                store.segments_after(id, after, limit).await?.into_iter().map(|s| (s.index, s.files)).collect()
            }
            ReportSource::Chunks => {
                store.chunks_after(id, after, limit).await?.into_iter().map(|c| (c.index, c.files)).collect()
            }
        })
    }
}

/// Every result file of a job's report, in order (all in memory).
pub async fn report_files(store: &dyn JobStore, id: &JobId) -> Result<Vec<ResultFile>> {
    let source = ReportSource::of(store, id).await?;
    let (mut out, mut after) = (Vec::new(), None);
    loop {
        let page = source.files_after(store, id, after, source.page()).await?;
        let Some((last, _)) = page.last() else { return Ok(out) };
        after = Some(*last);
        out.extend(page.into_iter().flat_map(|(_, files)| files));
    }
}

/// The job's result files of failed tasks that hold rows (what retry-failed and the failures
/// view read).
pub async fn failed_files(store: &dyn JobStore, id: &JobId) -> Result<Vec<ResultFile>> {
    let files = report_files(store, id).await?;
    Ok(files.into_iter().filter(|f| f.status == "failed" && f.rows > 0).collect())
}

impl Finalizer {
    /// True when the report can be listed: the job needs no segments, or all are recorded.
    /// Otherwise sends a merge for each segment not recorded (again, when this runs twice:
    /// a segment is recorded once however often it is merged).
    pub(super) async fn segments_ready(&self, job: &Job) -> Result<bool> {
        let missing = self.missing_segments(job).await?;
        if missing.is_empty() {
            return Ok(true);
        }
        info!(job_id = %job.id, segments = missing.len(), "merging the report's result files");
        let bodies = missing
            .iter()
            .map(|m| encode(&FinalizeMessage { job_id: job.id.clone(), merge: Some(*m) }))
            .collect::<Result<Vec<_>>>()?;
        self.finalize.send(bodies).await?;
        Ok(false)
    }

    /// The segments of the job's report not recorded yet (none when it needs none).
    async fn missing_segments(&self, job: &Job) -> Result<Vec<Merge>> {
        if job.progress.chunks_done <= self.settings.report_segments {
            return Ok(Vec::new());
        }
        // No plan (never the case for a job intake accepted): the job ends without a report.
        let Some(target) = job.plan().ok().and_then(|p| p.report.clone()) else { return Ok(Vec::new()) };
        let (mut indexes, mut after) = (Vec::new(), None);
        loop {
            let page = self.store.chunks_after(&job.id, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            indexes.extend(page.iter().map(|c| c.index));
        }
        let count = indexes.len() as u64;
        let segments = segment_count(count, self.settings.report_segments, chunks_per_segment(&target, &job.id));
        let recorded: std::collections::HashSet<u64> = self.store.segment_indexes(&job.id).await?.into_iter().collect();
        Ok(cut(indexes, count, segments).into_iter().filter(|m| !recorded.contains(&m.segment)).collect())
    }

    /// Records the segments still missing with their chunks' files as they are (the sweep's
    /// last resort when merges do not get through): the report is then not consolidated
    /// there, and lists every row once. At most [`UNMERGED_BUDGET`] of work per call (a huge
    /// job's segments are many items of up to 360 KB on one partition): the recorded segments
    /// count as the job moving, and the sweep comes back for the rest. Returns how many it
    /// recorded.
    pub(super) async fn record_unmerged(&self, job: &Job) -> Result<usize> {
        let until = tokio::time::Instant::now() + UNMERGED_BUDGET;
        let mut recorded = 0;
        for m in self.missing_segments(job).await? {
            if tokio::time::Instant::now() >= until {
                break;
            }
            let files = self.segment_sources(&job.id, &m).await?;
            if self.store.record_segment(&job.id, &SegmentRecord { index: m.segment, files }).await? {
                recorded += 1;
            }
        }
        if recorded > 0 {
            warn!(job_id = %job.id, segments = recorded, "report segments recorded unmerged: their merges did not get through");
        }
        Ok(recorded)
    }

    /// Merges one segment (see the module's documentation), then asks for the finalizer if
    /// every segment is recorded: also when this one already was, so a request lost with a
    /// failed delivery is made by the next.
    pub(super) async fn merge(&self, job: &Job, m: &Merge) -> Result<()> {
        if !matches!(job.status, JobStatus::Completing | JobStatus::Failing | JobStatus::Cancelling) {
            return Ok(());
        }
        if !self.segment_recorded(&job.id, m.segment).await? {
            self.merge_once(job, m).await?;
        }
        if self.store.segments_recorded(&job.id).await? >= m.of {
            request_finalize(&*self.finalize, &job.id).await?;
        }
        Ok(())
    }

    /// Writes the segment's files, records it (once), and deletes what no record lists.
    async fn merge_once(&self, job: &Job, m: &Merge) -> Result<()> {
        let Some(target) = job.plan()?.report.clone() else { return Ok(()) };
        let sources = self.segment_sources(&job.id, m).await?;
        let ports = match self.roles.assume(&job.id, job.role_arn()).await {
            Ok(ports) => Some(ports),
            Err(e) if e.transient => return Err(e.into()),
            Err(_) => None,
        };
        let merged = match &ports {
            Some(ports) => self.concatenate(&*ports.objects, job, &target, m, &sources).await,
            None => Ok(sources.clone()),
        };
        let files = match merged {
            Ok(files) => files,
            // A duplicate merge recorded it (and may have deleted the chunk files read here).
            Err(_) if self.segment_recorded(&job.id, m.segment).await? => return Ok(()),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                warn!(job_id = %job.id, segment = m.segment, error = %e, "report files not merged; the segment lists its chunks' files");
                sources.clone()
            }
        };
        let record = SegmentRecord { index: m.segment, files };
        let written = self.store.record_segment(&job.id, &record).await?;
        let (keep, drop) = if written { (&record.files, &sources) } else { (&sources, &record.files) };
        if let Some(ports) = &ports {
            // What no record lists: the merged chunk files, or a duplicate merge's output.
            for f in drop.iter().filter(|f| !keep.contains(f)) {
                if let Err(e) = ports.objects.delete(&target.bucket, &f.key).await {
                    warn!(job_id = %job.id, key = %f.key, error = %e, "could not delete a merged result file");
                }
            }
        }
        Ok(())
    }

    /// The result files of the segment's chunks, in chunk order.
    async fn segment_sources(&self, id: &JobId, m: &Merge) -> Result<Vec<ResultFile>> {
        let mut sources = Vec::new();
        let mut after = m.first.checked_sub(1);
        loop {
            let page = self.store.chunks_after(id, after, 1000).await?;
            let Some(last) = page.last() else { return Ok(sources) };
            after = Some(last.index);
            for c in page {
                if c.index > m.last {
                    return Ok(sources);
                }
                sources.extend(c.files);
            }
        }
    }

    async fn segment_recorded(&self, id: &JobId, segment: u64) -> Result<bool> {
        let page = self.store.segments_after(id, segment.checked_sub(1), 1).await?;
        Ok(page.first().is_some_and(|s| s.index == segment))
    }

    /// One file per status of the segment's chunk files, in chunk order.
    async fn concatenate(
        &self,
        objects: &dyn ObjectStore,
        job: &Job,
        target: &ReportTarget,
        m: &Merge,
        sources: &[ResultFile],
    ) -> std::result::Result<Vec<ResultFile>, StorageError> {
        let mut out = Vec::new();
        // Unique per merge, so a duplicate merge never overwrites the recorded file.
        let attempt = crate::clock::uuid().simple().to_string();
        for status in ["succeeded", "failed"] {
            let parts: Vec<&ResultFile> = sources.iter().filter(|f| f.status == status).collect();
            if parts.is_empty() {
                continue;
            }
            let name = hex::encode(Sha1::digest(format!("{}/segment/{}/{attempt}/{status}", job.id, m.segment)));
            let key = format!("{}/results/{name}.csv", target.job_folder(&job.id));
            let mut w = PartWriter::new(objects, &target.bucket, &key, "text/csv");
            let written = async {
                // Collected first: a lazy map's closure in this future trips rustc's `Send`
                // inference for higher-ranked lifetimes (rust-lang/rust#102211).
                let opened: Vec<_> =
                    parts.iter().map(|f| objects.read(&target.bucket, &f.key, None, 0, None, None)).collect();
                // In order, with the next files' requests already on their way.
                let mut bodies = futures::stream::iter(opened).buffered(READ_AHEAD);
                while let Some(body) = bodies.next().await {
                    let mut body = body?;
                    while let Some(piece) = body.next().await {
                        w.write(&piece?).await?;
                    }
                }
                Ok::<(), StorageError>(())
            }
            .await;
            if let Err(e) = written {
                w.abort().await;
                return Err(e);
            }
            let md5 = w.finish().await?;
            out.push(ResultFile { key, status: status.into(), md5, rows: parts.iter().map(|f| f.rows).sum() });
        }
        Ok(out)
    }
}

/// Writes one object from pieces: one PutObject when it stays under a part, else a multipart
/// upload of [`REPORT_PART_BYTES`] parts, so memory stays at one part whatever the size.
pub(super) struct PartWriter<'a> {
    objects: &'a dyn ObjectStore,
    bucket: &'a str,
    key: &'a str,
    content_type: &'static str,
    buf: Vec<u8>,
    upload: Option<(String, Vec<(i32, String)>)>,
    md5: Md5,
}

impl<'a> PartWriter<'a> {
    pub(super) fn new(objects: &'a dyn ObjectStore, bucket: &'a str, key: &'a str, content_type: &'static str) -> Self {
        PartWriter { objects, bucket, key, content_type, buf: Vec::new(), upload: None, md5: Md5::new() }
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), StorageError> {
        self.md5.update(bytes);
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= REPORT_PART_BYTES {
            self.part().await?;
        }
        Ok(())
    }

    async fn part(&mut self) -> std::result::Result<(), StorageError> {
        let (id, parts) = match &mut self.upload {
            Some(u) => u,
            None => {
                let id = self.objects.start_upload(self.bucket, self.key, self.content_type).await?;
                self.upload.insert((id, Vec::new()))
            }
        };
        let n = parts.len() as i32 + 1;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        let etag = self.objects.upload_part(self.bucket, self.key, id, n, body).await?;
        parts.push((n, etag));
        Ok(())
    }

    /// Ends the object; returns the MD5 (hex) of all it holds.
    pub(super) async fn finish(mut self) -> std::result::Result<String, StorageError> {
        let result = match self.upload.is_some() {
            false => {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                self.objects.put(self.bucket, self.key, body, self.content_type).await
            }
            true => {
                async {
                    self.part().await?;
                    let (id, parts) = self.upload.as_ref().expect("an upload was started");
                    self.objects.complete_upload(self.bucket, self.key, id, parts).await
                }
                .await
            }
        };
        if result.is_err() {
            self.abort().await;
        }
        result.map(|()| hex::encode(self.md5.finalize()))
    }

    /// Aborts the upload, if one was started (no parts are left behind).
    pub(super) async fn abort(&self) {
        if let Some((id, _)) = &self.upload {
            if let Err(e) = self.objects.abort_upload(self.bucket, self.key, id).await {
                warn!(bucket = self.bucket, key = self.key, error = %e, "could not abort an upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_at_most_max_and_cover_every_chunk_once() {
        for count in [1u64, 499, 500, 501, 1000, 1001, 123_457] {
            // Indexes with gaps, as a cancelled job leaves them.
            let indexes: Vec<u64> = (0..count).map(|i| i * 3 + 1).collect();
            let merges = cut(indexes.iter().copied(), count, MAX_SEGMENTS);
            assert!(merges.len() as u64 <= MAX_SEGMENTS, "{count}");
            assert!(merges.iter().all(|m| m.of == merges.len() as u64));
            let covered: u64 =
                merges.iter().map(|m| indexes.iter().filter(|i| (m.first..=m.last).contains(i)).count() as u64).sum();
            assert_eq!(covered, count, "{count}");
            assert!(merges.windows(2).all(|w| w[0].last < w[1].first && w[1].segment == w[0].segment + 1));
        }
        assert_eq!(cut(0..10, 10, 3).iter().map(|m| (m.first, m.last)).collect::<Vec<_>>(), [(0, 3), (4, 7), (8, 9)]);
    }

    #[test]
    fn a_segment_of_a_huge_report_fits_one_dynamodb_item_unmerged_and_one_merge() {
        use crate::spec::{ReportScope, ReportTarget};
        let job = JobId::new_random();
        for prefix in [None, Some("r".to_string()), Some("p".repeat(512))] {
            let target =
                ReportTarget { bucket: "reports".into(), prefix: prefix.clone(), scope: ReportScope::AllTasks };
            let per = chunks_per_segment(&target, &job);
            // A billion tasks in chunks of a thousand, and one of 20 billion.
            for count in [1_000_000u64, 20_000_000] {
                let segments = segment_count(count, MAX_SEGMENTS, per);
                let largest = count.div_ceil(segments);
                assert!(largest <= MAX_CHUNKS_PER_SEGMENT, "{largest} chunks in a segment");
                // The segment recorded unmerged: two of the widest files per chunk.
                let file = ResultFile {
                    key: format!("{}/results/{}.csv", target.job_folder(&job), "0".repeat(40)),
                    status: "succeeded".into(),
                    md5: "0".repeat(32),
                    rows: u64::MAX,
                };
                let record = SegmentRecord { index: segments - 1, files: vec![file; 2 * largest as usize] };
                let bytes = serde_json::to_string(&record).unwrap().len();
                assert!(bytes < 400 * 1024, "{bytes} bytes, prefix of {:?} chars", prefix.as_ref().map(|p| p.len()));
            }
        }
        // Small reports keep their few segments.
        let target = ReportTarget { bucket: "b".into(), prefix: None, scope: ReportScope::AllTasks };
        assert_eq!(segment_count(1_203, MAX_SEGMENTS, chunks_per_segment(&target, &job)), MAX_SEGMENTS);
        assert_eq!(segment_count(1_000_000, MAX_SEGMENTS, chunks_per_segment(&target, &job)), 2_000);
    }
}
