//! `ManifestGenerator` jobs: the chunker lists the source bucket page by page, filters each
//! object (see [`crate::generator`] for what each filter costs), and cuts chunks that carry
//! their rows. With `EnableManifestOutput` (or, for a job that waits for confirmation, in its
//! report folder) it also writes the generated manifest: gzip CSV data files of
//! [`FILE_CHUNKS`] chunks each, then a `manifest.json` in the inventory layout.
//!
//! A listing that outlasts the time budget continues from a checkpoint taken where a chunk
//! (with manifest output: a data file) ends: the page's token and how many of its entries
//! were read. So chunk boundaries and data files never depend on where an invocation stopped,
//! and a redelivered continuation cuts the same chunks again (not sent twice: `sent`).

use std::io::Write;
use tokio::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use tracing::info;

use super::acting::Acting;
use std::borrow::Cow;

use crate::chunk::RowBatch;
use crate::generator::{Generator, GENERATED_FORMAT};
use crate::inventory::{manifest_json, quoted, InventoryFile};
use crate::job::{iso8601, Checkpoint, GeneratedManifest, Job, JobFailure, JobId};
use crate::manifest::{encode_key, RowRef};
use crate::ops::replicate_object::{needs_tags, ReplicationRule};
use crate::ops::Operation;
use crate::ports::{ListPage, ListRequest, ListedObject, Pass, PutOptions, StorageError, Waiting};
use crate::spec::{OutputEncryption, ReportTarget};
use crate::Result;

/// Objects of a page whose filter requests (HEAD, tags) run at the same time.
const DECIDE_AT_ONCE: usize = 32;

/// Chunks per data file of a generated manifest.
pub(crate) const FILE_CHUNKS: u64 = 100;

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";
const SCHEMA_VERSIONED: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

/// Where this pass writes the generated manifest.
struct Output {
    bucket: String,
    folder: String,
    encryption: Option<OutputEncryption>,
    expected_owner: Option<String>,
    requested: bool,
}

impl Output {
    fn put_options(&self) -> PutOptions<'_> {
        PutOptions { encryption: self.encryption.as_ref(), expected_owner: self.expected_owner.as_deref() }
    }
}

fn output(g: &Generator, report: Option<&ReportTarget>, pass: Pass, job: &Job) -> Option<Output> {
    match (&g.output, report) {
        (Some(o), _) => Some(Output {
            bucket: o.bucket.clone(),
            folder: o.folder(&job.id),
            encryption: o.encryption.clone(),
            expected_owner: o.expected_owner.clone(),
            requested: true,
        }),
        // A job that waits for confirmation runs on what was listed before it: kept next to
        // its report.
        (None, Some(r)) if pass == Pass::Count => Some(Output {
            bucket: r.bucket.clone(),
            folder: format!("{}/generated-manifest", r.job_folder(&job.id)),
            encryption: None,
            expected_owner: None,
            requested: false,
        }),
        _ => None,
    }
}

/// The data file being written.
struct DataFile {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    rows: u64,
}

impl DataFile {
    fn new() -> Self {
        DataFile { gz: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()), rows: 0 }
    }

    fn push(&mut self, bucket: &str, encoded_key: &str, o: &ListedObject, versioned: bool) {
        let modified = o.last_modified.map(iso8601).unwrap_or_default();
        let mut cols = vec![quoted(bucket), quoted(encoded_key)];
        if versioned {
            cols.push(quoted(o.version_id.as_deref().unwrap_or("null")));
            cols.push(quoted(if o.is_latest { "true" } else { "false" }));
            cols.push(quoted("false"));
        }
        cols.extend([quoted(&o.size.to_string()), quoted(&modified), quoted(&o.etag), quoted(&o.storage_class)]);
        let line = cols.join(",") + "\n";
        if let Err(e) = self.gz.write_all(line.as_bytes()) {
            unreachable!("gzip into memory has no I/O to fail: {e}")
        }
        self.rows += 1;
    }

    /// The compressed file, and a fresh one in its place.
    fn take(&mut self) -> Vec<u8> {
        let full = std::mem::replace(self, DataFile::new());
        match full.gz.finish() {
            Ok(bytes) => bytes,
            Err(e) => unreachable!("gzip into memory has no I/O to fail: {e}"),
        }
    }
}

/// What became of one listed object.
enum Decision {
    Include,
    Skip,
    Fail(JobFailure),
}

fn generation_failed(bucket: &str, what: &str, e: &StorageError) -> JobFailure {
    JobFailure::new("ManifestGenerationFailed", format!("{what} s3://{bucket} failed: {} {}", e.code, e.message))
}

impl Acting<'_> {
    async fn decide(
        &self,
        g: &Generator,
        rules: &[ReplicationRule],
        versioned: bool,
        all_versions: bool,
        o: &ListedObject,
    ) -> Result<Decision> {
        let f = &g.filter;
        if o.is_delete_marker || (versioned && !all_versions && !o.is_latest) || !f.matches_listing(o) {
            return Ok(Decision::Skip);
        }
        let version = if versioned { o.version_id.as_deref() } else { None };
        if f.eligible_for_replication {
            let tags = if needs_tags(rules) {
                match self.objects.tags(&g.source_bucket, &o.key, version).await {
                    Ok(t) => t,
                    Err(e) if e.http_status == 404 => return Ok(Decision::Skip),
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => return Ok(Decision::Fail(generation_failed(&g.source_bucket, "Reading tags in", &e))),
                }
            } else {
                Vec::new()
            };
            if !f.eligible(rules, &o.key, &tags) {
                return Ok(Decision::Skip);
            }
        }
        if f.needs_head() {
            let head = match self.objects.head(&g.source_bucket, &o.key, version).await {
                Ok(h) => Some(h),
                // An SSE-C object answers a HEAD without its key with 400.
                Err(e) if e.http_status == 400 => None,
                Err(e) if e.http_status == 404 => return Ok(Decision::Skip),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return Ok(Decision::Fail(generation_failed(&g.source_bucket, "HeadObject in", &e))),
            };
            if !f.matches_head(head.as_ref()) {
                return Ok(Decision::Skip);
            }
        }
        Ok(Decision::Include)
    }

    async fn write_data_file(&self, out: &Output, index: u64, body: Vec<u8>) -> Result<()> {
        let md5 = hex::encode(Md5::digest(&body));
        let key = format!("{}/data/{index:06}-{md5}.csv.gz", out.folder);
        self.objects.put_with(&out.bucket, &key, Bytes::from(body), "application/gzip", &out.put_options()).await?;
        Ok(())
    }

    /// Writes `manifest.json` (and `manifest.checksum`) over the data files written.
    async fn write_manifest(&self, out: &Output, g: &Generator, versioned: bool) -> Result<GeneratedManifest> {
        let prefix = format!("{}/data/", out.folder);
        let mut files: Vec<(u64, InventoryFile)> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req =
                ListRequest { bucket: &out.bucket, prefix: &prefix, token: token.as_deref(), ..Default::default() };
            let page = self.objects.list(&req).await?;
            for o in page.objects {
                // A store may answer keys outside the prefix (or cut inside a character).
                let Some(name) = o.key.strip_prefix(prefix.as_str()) else { continue };
                let name = name.trim_end_matches(".csv.gz").to_string();
                let Some((index, md5)) = name.split_once('-') else { continue };
                let Ok(index) = index.parse::<u64>() else { continue };
                // Two files of one index: a listing that changed between two deliveries.
                if files.iter().any(|(i, _)| *i == index) {
                    tracing::warn!(key = %o.key, "a second data file of the same index: not listed");
                    continue;
                }
                files.push((
                    index,
                    InventoryFile { bucket: out.bucket.clone(), key: o.key, size: o.size, md5: md5.into() },
                ));
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        files.sort_by_key(|(i, _)| *i);
        let files: Vec<InventoryFile> = files.into_iter().map(|(_, f)| f).collect();
        let schema = if versioned { SCHEMA_VERSIONED } else { SCHEMA };
        let json =
            manifest_json(&g.source_bucket, &out.bucket, schema, &files, crate::pipeline::stage::now(), "2021-11-30");
        let key = format!("{}/manifest.json", out.folder);
        let opts = out.put_options();
        let checksum = hex::encode(Md5::digest(json.as_bytes()));
        let etag = self.objects.put_with(&out.bucket, &key, Bytes::from(json), "application/json", &opts).await?;
        let sum_key = format!("{}/manifest.checksum", out.folder);
        self.objects.put_with(&out.bucket, &sum_key, Bytes::from(checksum), "text/plain", &opts).await?;
        info!(bucket = %out.bucket, key = %key, files = files.len(), format = GENERATED_FORMAT, "generated manifest written");
        Ok(GeneratedManifest { bucket: out.bucket.clone(), key, etag, requested: out.requested })
    }

    /// Lists the source bucket from the job's checkpoint and cuts (or counts) its chunks.
    pub(crate) async fn list_pass(
        &self,
        job: Job,
        op: &Operation,
        g: &Generator,
        report: Option<&ReportTarget>,
        pass: Pass,
        deadline: Instant,
    ) -> Result<()> {
        let bucket = g.source_bucket.as_str();
        let (versioned, rules) = match self.bucket_facts(g).await? {
            Ok(facts) => facts,
            Err(f) => return self.chunker.fail(&job.id, f).await,
        };
        // Batch Replication replicates every version; other operations act on the current one.
        let all_versions = versioned && op.name() == "S3ReplicateObject";
        let out = output(g, report, pass, &job);
        let mut l = Listing::new(&job, bucket, pass, versioned, out, self.chunker.ports.settings.chunk_size);
        let prefixes = g.filter.list_prefixes();
        while (l.pos.prefix as usize) < prefixes.len() {
            let req = ListRequest {
                bucket,
                prefix: &prefixes[l.pos.prefix as usize],
                versions: versioned,
                token: l.pos.token.as_deref(),
                expected_owner: g.expected_owner.as_deref(),
            };
            let page = match self.objects.list(&req).await {
                Ok(p) => p,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return self.chunker.fail(&l.id, generation_failed(bucket, "Listing", &e)).await,
            };
            let mut step = self.take_page(&mut l, g, &rules, all_versions, &page, deadline).await?;
            if let Step::Next = step {
                l.pos.offset = 0;
                match page.next {
                    Some(t) => l.pos.token = Some(t),
                    None => {
                        l.pos.token = None;
                        l.pos.prefix += 1;
                    }
                }
                // A listing that matches little must hand on too: between pages, when nothing
                // listed is waiting in a chunk or a data file.
                if Instant::now() >= deadline && l.batch.is_empty() && l.data.rows == 0 && l.pos.listed > l.from.listed
                {
                    step = Step::HandOn(Checkpoint { sent: l.from.sent.max(l.pos.next_chunk), ..l.pos.clone() });
                }
            }
            match step {
                Step::Next => {}
                Step::Failed(f) => return self.chunker.fail(&l.id, f).await,
                Step::HandOn(at) => {
                    self.chunker.send(&l.id, &mut l.pending).await?;
                    return self.chunker.continue_later(job, l.from, at).await;
                }
            }
        }
        self.end_listing(l, g).await
    }

    /// Whether the source bucket keeps versions, and its replication rules when the filter
    /// asks for them; a bucket that cannot be read fails the job (`Ok(Err(failure))`).
    async fn bucket_facts(
        &self,
        g: &Generator,
    ) -> Result<std::result::Result<(bool, Vec<ReplicationRule>), JobFailure>> {
        let bucket = g.source_bucket.as_str();
        let versioned = match self.objects.versioned(bucket).await {
            Ok(v) => v,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return Ok(Err(generation_failed(bucket, "Reading the versioning of", &e))),
        };
        if !g.filter.eligible_for_replication {
            return Ok(Ok((versioned, Vec::new())));
        }
        match self.objects.replication_rules(bucket).await {
            Ok(rules) => Ok(Ok((versioned, rules))),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => Ok(Err(generation_failed(bucket, "Reading the replication of", &e))),
        }
    }

    /// Takes one page's objects from the checkpoint's offset: they are decided together (HEAD
    /// and tag requests, [`DECIDE_AT_ONCE`] at a time), then taken in listing order.
    async fn take_page(
        &self,
        l: &mut Listing<'_>,
        g: &Generator,
        rules: &[ReplicationRule],
        all_versions: bool,
        page: &ListPage,
        deadline: Instant,
    ) -> Result<Step> {
        let rest = page.objects.get(l.pos.offset as usize..).unwrap_or_default();
        let deciding: Vec<_> = rest.iter().map(|o| self.decide(g, rules, l.versioned, all_versions, o)).collect();
        let decisions: Vec<Result<Decision>> = futures::stream::iter(deciding).buffered(DECIDE_AT_ONCE).collect().await;
        for ((i, o), decision) in page.objects.iter().enumerate().skip(l.pos.offset as usize).zip(decisions) {
            l.pos.listed += 1;
            match decision? {
                Decision::Skip => continue,
                Decision::Fail(f) => return Ok(Step::Failed(f)),
                Decision::Include => {}
            }
            l.pos.tasks += 1;
            if let Some(f) = self.chunker.over_task_limit(l.pos.tasks) {
                return Ok(Step::Failed(f));
            }
            // Time is looked at where a unit of chunks (and its data file) is complete.
            if self.take_object(l, o).await? && Instant::now() >= deadline {
                let sent = l.from.sent.max(l.pos.next_chunk);
                return Ok(Step::HandOn(Checkpoint { offset: i as u64 + 1, sent, ..l.pos.clone() }));
            }
        }
        Ok(Step::Next)
    }

    /// Adds one object to the chunk being cut (and to the data file being written); true when
    /// that completed a unit: [`FILE_CHUNKS`] chunks with a data file, or one chunk.
    async fn take_object(&self, l: &mut Listing<'_>, o: &ListedObject) -> Result<bool> {
        let encoded_key = encode_key(&o.key);
        if l.out.is_some() {
            l.data.push(l.bucket, &encoded_key, o, l.versioned);
        }
        let row = RowRef {
            line: l.pos.tasks,
            bucket: Cow::Borrowed(l.bucket),
            encoded_key: Cow::Owned(encoded_key),
            version_id: if l.versioned { o.version_id.as_deref().map(Cow::Borrowed) } else { None },
            decoded: None,
        };
        if !l.batch.push(&Ok(row)) {
            return Ok(false);
        }
        let index = l.pos.next_chunk;
        let Some(msg) = l.batch.take(&l.id, index, None) else {
            unreachable!("push answered that the batch is full, so it takes a chunk")
        };
        l.pos.next_chunk += 1;
        if l.pass == Pass::Cut && index >= l.from.sent {
            l.pending.push(Waiting { index, body: msg });
            if l.pending.len() >= super::acting::SEND_BATCH {
                self.chunker.send(&l.id, &mut l.pending).await?;
            }
        }
        if !l.pos.next_chunk.is_multiple_of(l.unit) {
            return Ok(false);
        }
        if let Some(out) = &l.out {
            self.write_data_file(out, l.pos.files, l.data.take()).await?;
            l.pos.files += 1;
        }
        Ok(true)
    }

    /// The listing's end: the last chunk and data file, the generated manifest, the pass's
    /// totals on the job.
    async fn end_listing(&self, mut l: Listing<'_>, g: &Generator) -> Result<()> {
        let index = l.pos.next_chunk;
        if let Some(msg) = l.batch.take(&l.id, index, None) {
            l.pos.next_chunk += 1;
            if l.pass == Pass::Cut && index >= l.from.sent {
                l.pending.push(Waiting { index, body: msg });
            }
        }
        self.chunker.send(&l.id, &mut l.pending).await?;
        let generated = match &l.out {
            Some(out) => {
                if l.data.rows > 0 {
                    self.write_data_file(out, l.pos.files, l.data.take()).await?;
                }
                Some(self.write_manifest(out, g, l.versioned).await?)
            }
            None => None,
        };
        let (tasks, listed, bucket) = (l.pos.tasks, l.pos.listed, l.bucket);
        if tasks == 0 {
            info!(job_id = %l.id, listed, "the manifest generator matched no object");
        }
        self.chunker
            .finish(&l.id, l.pass, tasks, l.pos.next_chunk, |j| {
                j.generated_manifest = generated.clone();
                j.checkpoint.listed = listed;
                if tasks == 0 {
                    j.status_update_reason = Some(format!(
                        "The manifest generator matched none of the {listed} objects listed in s3://{bucket}: no tasks to run"
                    ));
                }
            })
            .await
    }
}

/// Where a listing pass is: its checkpoint then and now, the chunk being cut, the data file
/// being written and the chunks waiting to be pushed.
struct Listing<'a> {
    id: JobId,
    bucket: &'a str,
    pass: Pass,
    versioned: bool,
    /// Where the generated manifest goes, when one is written.
    out: Option<Output>,
    /// Chunks per hand-on point: a data file's worth when one is written, else one.
    unit: u64,
    from: Checkpoint,
    pos: Checkpoint,
    batch: RowBatch,
    data: DataFile,
    pending: Vec<Waiting>,
}

impl<'a> Listing<'a> {
    fn new(job: &Job, bucket: &'a str, pass: Pass, versioned: bool, out: Option<Output>, chunk_size: u64) -> Self {
        Listing {
            id: job.id.clone(),
            bucket,
            pass,
            versioned,
            unit: if out.is_some() { FILE_CHUNKS } else { 1 },
            out,
            from: job.checkpoint.clone(),
            pos: job.checkpoint.clone(),
            batch: RowBatch::new(chunk_size),
            data: DataFile::new(),
            pending: Vec::new(),
        }
    }
}

/// What a page of the listing came to.
enum Step {
    /// On to the next page.
    Next,
    /// The job fails.
    Failed(JobFailure),
    /// Time is up: hand on from this checkpoint.
    HandOn(Checkpoint),
}
