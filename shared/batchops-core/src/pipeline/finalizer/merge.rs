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

use futures::StreamExt;
use md5::Digest;
use sha1::Sha1;
use tracing::{info, warn};

use super::report::{chunks_per_segment, cut, segment_count, PartWriter, READ_AHEAD, UNMERGED_BUDGET};
use super::Finalizer;
use crate::chunk::{FinalizeMessage, Merge};
use crate::job::{Job, JobId, JobStatus};
use crate::pipeline::stage::{encode, request_finalize};
use crate::ports::{ObjectRef, ObjectStore, ReadOptions, ResultFile, SegmentRecord, StorageError};
use crate::spec::ReportTarget;
use crate::Result;

impl Finalizer {
    /// True when the report can be listed: the job needs no segments, or all are recorded.
    /// Otherwise sends a merge for each segment not recorded (again, when this runs twice:
    /// a segment is recorded once however often it is merged).
    pub(crate) async fn segments_ready(&self, job: &Job) -> Result<bool> {
        let missing = self.missing_segments(job).await?;
        if missing.is_empty() {
            return Ok(true);
        }
        info!(job_id = %job.id, segments = missing.len(), "merging the report's result files");
        let bodies = missing
            .iter()
            .map(|m| encode(&FinalizeMessage { job_id: job.id.clone(), merge: Some(*m) }))
            .collect::<Result<Vec<_>>>()?;
        self.ports.finalize.send(bodies).await?;
        Ok(false)
    }

    /// The segments of the job's report not recorded yet (none when it needs none).
    async fn missing_segments(&self, job: &Job) -> Result<Vec<Merge>> {
        if job.progress.chunks_done <= self.ports.settings.report_segments {
            return Ok(Vec::new());
        }
        // No plan (never the case for a job intake accepted): the job ends without a report.
        let Some(target) = job.plan().ok().and_then(|p| p.report.clone()) else { return Ok(Vec::new()) };
        let (mut indexes, mut after) = (Vec::new(), None);
        loop {
            let page = self.ports.store.chunks_after(&job.id, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            indexes.extend(page.iter().map(|c| c.index));
        }
        let count = indexes.len() as u64;
        let segments = segment_count(count, self.ports.settings.report_segments, chunks_per_segment(&target, &job.id));
        let recorded: std::collections::HashSet<u64> =
            self.ports.store.segment_indexes(&job.id).await?.into_iter().collect();
        Ok(cut(indexes, count, segments).into_iter().filter(|m| !recorded.contains(&m.segment)).collect())
    }

    /// Records the segments still missing with their chunks' files as they are (the sweep's
    /// last resort when merges do not get through): the report is then not consolidated
    /// there, and lists every row once. At most [`UNMERGED_BUDGET`] of work per call (a huge
    /// job's segments are many items of up to 360 KB on one partition): the recorded segments
    /// count as the job moving, and the sweep comes back for the rest. Returns how many it
    /// recorded.
    pub(crate) async fn record_unmerged(&self, job: &Job) -> Result<usize> {
        let until = tokio::time::Instant::now() + UNMERGED_BUDGET;
        let mut recorded = 0;
        for m in self.missing_segments(job).await? {
            if tokio::time::Instant::now() >= until {
                break;
            }
            let files = self.segment_sources(&job.id, &m).await?;
            if self.ports.store.record_segment(&job.id, &SegmentRecord { index: m.segment, files }).await? {
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
    pub(crate) async fn merge(&self, job: &Job, m: &Merge) -> Result<()> {
        if !matches!(job.status, JobStatus::Completing | JobStatus::Failing | JobStatus::Cancelling) {
            return Ok(());
        }
        if !self.segment_recorded(&job.id, m.segment).await? {
            self.merge_once(job, m).await?;
        }
        if self.ports.store.segments_recorded(&job.id).await? >= m.of {
            request_finalize(&*self.ports.finalize, &job.id).await?;
        }
        Ok(())
    }

    /// Writes the segment's files, records it (once), and deletes what no record lists.
    async fn merge_once(&self, job: &Job, m: &Merge) -> Result<()> {
        let Some(target) = job.plan()?.report.clone() else { return Ok(()) };
        let sources = self.segment_sources(&job.id, m).await?;
        let ports = match self.ports.roles.assume(&job.id, job.role_arn()).await {
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
        let written = self.ports.store.record_segment(&job.id, &record).await?;
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
            let page = self.ports.store.chunks_after(id, after, 1000).await?;
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
        let page = self.ports.store.segments_after(id, segment.checked_sub(1), 1).await?;
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
                let names: Vec<ObjectRef> = parts.iter().map(|f| ObjectRef::new(&target.bucket, &f.key)).collect();
                let opened: Vec<_> = names.iter().map(|o| objects.read(o, ReadOptions::default())).collect();
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
