//! The report's pieces, whatever the job's size: how recorded chunks are cut into segments,
//! where a report's files are found, and [`PartWriter`], which writes one object from pieces
//! (a multipart upload past one part). [`super::merge`] merges segments with them.

use bytes::Bytes;
use md5::{Digest, Md5};
use tracing::warn;

use crate::chunk::Merge;
use crate::job::JobId;
use crate::ports::{ChunkLedger, ObjectStore, ReportLedger, ResultFile, StorageError};
use crate::spec::ReportTarget;
use crate::Result;

/// Bytes of `manifest.json` per part when it is uploaded in parts (S3's minimum is 5 MiB).
pub const REPORT_PART_BYTES: usize = 8 * 1024 * 1024;

/// A report has this many segments, each one result file per status (the default and the
/// largest `Settings::report_segments`), unless a segment would hold more than
/// [`chunks_per_segment`] chunks.
pub const MAX_SEGMENTS: u64 = 500;

/// The most chunks a segment holds: a merge reads their files (two each) and writes them out
/// in well under a minute of one invocation's five.
pub const MAX_CHUNKS_PER_SEGMENT: u64 = 500;

/// Bytes a segment record may take: DynamoDB's item limit is 400 KB, with room for the keys.
pub(crate) const RECORD_BUDGET: usize = 360 * 1024;

/// Result files a merge asks for ahead of the one it writes (their requests start as each
/// body before them ends, so most first-byte waits overlap).
pub const READ_AHEAD: usize = 8;

/// How long one call records segments unmerged.
pub(crate) const UNMERGED_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

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
    pub async fn of(store: &(impl ReportLedger + ?Sized), id: &JobId) -> Result<ReportSource> {
        Ok(match store.segments_after(id, None, 1).await?.is_empty() {
            true => ReportSource::Chunks,
            false => ReportSource::Segments,
        })
    }

    /// The report's result files in order, a page at a time: `(index, files)` of the
    /// records with an index above `after`. The store is any that keeps both ledgers (an
    /// `&dyn JobStore` does).
    pub async fn files_after(
        self,
        store: &(impl ChunkLedger + ReportLedger + ?Sized),
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
pub async fn report_files(store: &(impl ChunkLedger + ReportLedger + ?Sized), id: &JobId) -> Result<Vec<ResultFile>> {
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
pub async fn failed_files(store: &(impl ChunkLedger + ReportLedger + ?Sized), id: &JobId) -> Result<Vec<ResultFile>> {
    let files = report_files(store, id).await?;
    Ok(files.into_iter().filter(|f| f.status == "failed" && f.rows > 0).collect())
}

/// Writes one object from pieces: one PutObject when it stays under a part, else a multipart
/// upload of [`REPORT_PART_BYTES`] parts, so memory stays at one part whatever the size.
pub(crate) struct PartWriter<'a> {
    objects: &'a dyn ObjectStore,
    bucket: &'a str,
    key: &'a str,
    content_type: &'static str,
    buf: Vec<u8>,
    upload: Option<(String, Vec<(i32, String)>)>,
    md5: Md5,
}

impl<'a> PartWriter<'a> {
    pub(crate) fn new(objects: &'a dyn ObjectStore, bucket: &'a str, key: &'a str, content_type: &'static str) -> Self {
        PartWriter { objects, bucket, key, content_type, buf: Vec::new(), upload: None, md5: Md5::new() }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), StorageError> {
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
    pub(crate) async fn finish(mut self) -> std::result::Result<String, StorageError> {
        let result = match self.upload.is_some() {
            false => {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                self.objects.put(self.bucket, self.key, body, self.content_type).await
            }
            true => {
                async {
                    self.part().await?;
                    let Some((id, parts)) = self.upload.as_ref() else {
                        unreachable!("part() starts the upload before it writes the first part")
                    };
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
    pub(crate) async fn abort(&self) {
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
    use crate::ports::SegmentRecord;

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
