//! S3 Inventory manifests, read in parallel: the chunker reads `manifest.json` and sends one
//! `File` control message per data file; each file is checked against its MD5, decompressed
//! as it streams, and cut into chunks that carry their rows. A file that outlasts the time
//! budget continues in another invocation from the first line of its unfinished chunk (gzip
//! cannot be entered in the middle, so the continuation decompresses from the file's start
//! and skips the lines before it; chunk boundaries therefore never depend on where an
//! invocation stopped). When a file is done its counts are recorded once
//! ([`ChunkLedger::record_file`]); the chunker that records the last file ends the pass.
//!
//! [`ChunkLedger::record_file`]: crate::ports::ChunkLedger::record_file

use std::io::Write;
use tokio::time::Instant;

use futures::StreamExt;
use md5::{Digest, Md5};
use tracing::info;

use super::acting::{Acting, SEND_BATCH};
use crate::chunk::{file_chunk_index, is_blank, ControlMessage, FileCheckpoint, LineBatch};
use crate::inventory::{parse_manifest, InventoryFile, InventoryManifest};
use crate::job::{Job, JobFailure, JobId, JobStatus};
use crate::manifest::{ByteFinder, RowLayout};
use crate::pipeline::stage::{encode, modify, object_read_failure, read_failure};
use crate::ports::{read_all, ByteStream, FileRecord, ObjectRef, Pass, ReadOptions, RecordOutcome, Waiting};
use crate::spec::{ManifestField, ManifestRef};
use crate::Result;

/// Compressed bytes decompressed at a time.
const GUNZIP_STEP: usize = 16 * 1024;

/// The largest `manifest.json` read (it lists the data files; thousands fit in a few MiB).
const MAX_INVENTORY_MANIFEST: u64 = 64 * 1024 * 1024;

fn invalid(reason: impl Into<String>) -> JobFailure {
    JobFailure::new("InvalidManifestContent", reason)
}

/// Splits the decompressed bytes (the gzip decoder's output buffer) into numbered lines; what
/// was handed out is dropped, so only the unfinished last line stays.
struct Lines {
    /// Bytes of the buffer already handed out.
    consumed: usize,
    /// Number of the line starting at `consumed`.
    next: u64,
    breaks: ByteFinder,
}

impl Lines {
    /// The next complete line of `buf`, if it holds one.
    fn next_line(&mut self, buf: &[u8]) -> Option<(u64, std::ops::Range<usize>)> {
        let i = self.breaks.find(&buf[self.consumed..])?;
        let range = self.consumed..self.consumed + i;
        self.consumed += i + 1;
        self.next += 1;
        Some((self.next - 1, range))
    }

    /// Drops what was handed out, keeping the unfinished line.
    fn compact(&mut self, buf: &mut Vec<u8>) {
        buf.drain(..self.consumed);
        self.consumed = 0;
    }

    /// The last line when it has no terminator.
    fn last(&mut self, buf: &[u8]) -> Option<(u64, std::ops::Range<usize>)> {
        (self.consumed < buf.len()).then(|| {
            let r = self.consumed..buf.len();
            self.consumed = buf.len();
            self.next += 1;
            (self.next - 1, r)
        })
    }
}

/// One data file of an inventory to read, from where: what a `ControlMessage::File` names.
pub(crate) struct FileRead {
    pub pass: Pass,
    /// The file's index in the inventory's `manifest.json`.
    pub index: u64,
    pub file: InventoryFile,
    pub fields: Vec<ManifestField>,
    pub at: FileCheckpoint,
}

impl FileRead {
    /// The message that goes on reading the file from `at`.
    fn continued(&self, job_id: &JobId, at: FileCheckpoint) -> ControlMessage {
        let (pass, index, file, fields) = (self.pass, self.index, self.file.clone(), self.fields.clone());
        ControlMessage::File { job_id: job_id.clone(), pass, index, file, fields, at }
    }
}

/// The chunks a file's lines make, as they are read.
struct Cut<'a> {
    read: &'a FileRead,
    origin: &'a str,
    layout: RowLayout<'a>,
    batch: LineBatch,
    /// Chunks cut and not sent yet (a count pass keeps none).
    pending: Vec<Waiting>,
    tasks: u64,
    next_chunk: u64,
}

impl<'a> Cut<'a> {
    fn new(read: &'a FileRead, origin: &'a str, chunk_size: u64) -> Self {
        Cut {
            read,
            origin,
            layout: RowLayout::new(&read.fields),
            batch: LineBatch::new(chunk_size, origin, &read.fields),
            pending: Vec::new(),
            tasks: read.at.tasks,
            next_chunk: read.at.next_chunk,
        }
    }

    /// Takes line `n` (`text` when it is known to be UTF-8); true when it filled a chunk, which
    /// is then cut. The failure of the job when the line breaks a limit.
    fn line(
        &mut self,
        acting: &Acting<'_>,
        id: &JobId,
        n: u64,
        raw: &[u8],
        text: Option<&str>,
    ) -> std::result::Result<bool, JobFailure> {
        if let Some(failure) = acting.chunker.over_line_limit(raw.len() as u64, || format!("{} line {n}", self.origin))
        {
            return Err(failure);
        }
        if is_blank(raw) {
            let full = self.batch.blank();
            if full {
                self.chunk(id);
            }
            return Ok(full);
        }
        self.tasks += 1;
        if let Some(failure) = acting.chunker.over_task_limit(self.tasks) {
            return Err(failure);
        }
        let full = match text {
            Some(text) => self.batch.push(n, text, &self.layout),
            None => self.batch.push_raw(n, raw, &self.layout),
        };
        if full {
            self.chunk(id);
        }
        Ok(full)
    }

    /// Cuts the chunk of the lines taken so far, if any.
    fn chunk(&mut self, id: &JobId) {
        let index = file_chunk_index(self.read.index, self.next_chunk);
        if let Some(body) = self.batch.take(id, index, Some(self.read.index)) {
            self.next_chunk += 1;
            if self.read.pass == Pass::Cut {
                self.pending.push(Waiting { index, body });
            }
        }
    }
}

/// Lines read before a run of blank lines may end an invocation that is out of time.
pub(crate) const BLANK_RUN_LINES: u64 = 100_000;

/// How the reading of a file ended.
enum FileEnd {
    /// Every line read: the file's tasks and chunks.
    Read { tasks: u64, chunks: u64 },
    /// The time budget ran out: the file goes on from here.
    Paused(FileCheckpoint),
    /// The file fails the job.
    Failed(JobFailure),
}

impl Acting<'_> {
    /// Reads and checks an inventory's `manifest.json`; `None` when it failed the job.
    pub(crate) async fn read_inventory(&self, id: &JobId, m: &ManifestRef) -> Result<Option<InventoryManifest>> {
        let options =
            ReadOptions { end: Some(MAX_INVENTORY_MANIFEST + 1), if_match: Some(&m.etag), ..Default::default() };
        let read = match self.objects.read(&m.object(), options).await {
            Ok(stream) => read_all(stream).await,
            Err(e) => Err(e),
        };
        let json = match read {
            Ok(json) => json,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                self.chunker.fail(id, read_failure(m, &e)).await?;
                return Ok(None);
            }
        };
        if json.len() as u64 > MAX_INVENTORY_MANIFEST {
            let reason = format!("The inventory manifest s3://{}/{} is larger than 64 MiB", m.bucket, m.key);
            self.chunker.fail(id, JobFailure::new("ManifestTooLarge", reason)).await?;
            return Ok(None);
        }
        match parse_manifest(&json, &m.bucket) {
            Ok(inv) => Ok(Some(inv)),
            Err(reason) => {
                self.chunker.fail(id, invalid(format!("{reason} (s3://{}/{})", m.bucket, m.key))).await?;
                Ok(None)
            }
        }
    }

    /// Sends one `File` message per data file of the inventory (an empty one ends at once).
    pub(crate) async fn fan_out(&self, id: &JobId, pass: Pass, inventory: InventoryManifest) -> Result<()> {
        let n = inventory.files.len() as u64;
        let set = modify(&*self.chunker.ports.store, id, |j| {
            j.being_prepared() && {
                j.progress.files_total = Some(n);
                true
            }
        })
        .await?;
        if set.is_none() {
            info!(job_id = %id, "job no longer prepared: inventory files not sent");
            return Ok(());
        }
        if n == 0 {
            info!(job_id = %id, "the inventory has no data files: no tasks");
            return self.chunker.finish(id, pass, 0, 0, |_| {}).await;
        }
        let messages: Vec<String> = inventory
            .files
            .into_iter()
            .enumerate()
            .map(|(index, file)| {
                encode(&ControlMessage::File {
                    job_id: id.clone(),
                    pass,
                    index: index as u64,
                    file,
                    fields: inventory.fields.clone(),
                    at: FileCheckpoint::default(),
                })
            })
            .collect::<Result<_>>()?;
        for batch in messages.chunks(SEND_BATCH) {
            self.chunker.control.send(batch.to_vec()).await?;
        }
        info!(job_id = %id, files = n, "inventory files sent to the chunkers");
        Ok(())
    }

    /// Checks a data file against the MD5 in `manifest.json`: from its ETag when that is the
    /// MD5 (a single-part upload), else by reading it. Returns the ETag, or the failure.
    async fn verify(&self, file: &InventoryFile) -> Result<std::result::Result<String, JobFailure>> {
        let head = match self.objects.head(&file.bucket, &file.key, None).await {
            Ok(h) => h,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return Ok(Err(object_read_failure(&file.bucket, &file.key, &e))),
        };
        let mismatch = |actual: &str| {
            Err(JobFailure::new(
                "ManifestChecksumMismatch",
                format!(
                    "The inventory file s3://{}/{} has MD5 {actual}, not the {} its manifest.json gives",
                    file.bucket, file.key, file.md5
                ),
            ))
        };
        if !head.etag.contains('-') && head.server_side_encryption.as_deref() != Some("aws:kms") {
            return Ok(if head.etag.eq_ignore_ascii_case(&file.md5) { Ok(head.etag) } else { mismatch(&head.etag) });
        }
        let options = ReadOptions { if_match: Some(&head.etag), ..Default::default() };
        let mut stream = match self.objects.read(&ObjectRef::new(&file.bucket, &file.key), options).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return Ok(Err(object_read_failure(&file.bucket, &file.key, &e))),
        };
        let mut md5 = Md5::new();
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(p) => md5.update(&p),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return Ok(Err(object_read_failure(&file.bucket, &file.key, &e))),
            }
        }
        let actual = hex::encode(md5.finalize());
        Ok(if actual == file.md5 { Ok(head.etag) } else { mismatch(&actual) })
    }

    /// Reads one data file from where `read` says and cuts its chunks.
    pub(crate) async fn file(&self, job: Job, mut read: FileRead, deadline: Instant) -> Result<()> {
        let id = &job.id;
        let expected = match read.pass {
            Pass::Count => job.status == JobStatus::Preparing,
            Pass::Cut => job.being_prepared(),
        };
        if !expected {
            info!(job_id = %id, file = read.index, status = %job.status, "inventory file of a job no longer prepared: skipped");
            return Ok(());
        }
        let file = &read.file;
        let etag = match read.at.etag.clone() {
            Some(e) => e,
            None => match self.verify(file).await? {
                Ok(e) => {
                    read.at.etag = Some(e.clone());
                    read.at.line = 1;
                    e
                }
                Err(failure) => return self.chunker.fail(id, failure).await,
            },
        };
        let options = ReadOptions { if_match: Some(&etag), ..Default::default() };
        let stream = match self.objects.read(&ObjectRef::new(&file.bucket, &file.key), options).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return self.chunker.fail(id, object_read_failure(&file.bucket, &file.key, &e)).await,
        };
        match self.cut_file(id, &read, stream, deadline).await? {
            FileEnd::Failed(failure) => self.chunker.fail(id, failure).await,
            FileEnd::Paused(at) => {
                info!(job_id = %id, file = read.index, line = at.line, "time budget used: the file continues");
                self.chunker.control.send(vec![encode(&read.continued(id, at))?]).await
            }
            FileEnd::Read { tasks, chunks } => {
                self.file_read(id, FileRecord { pass: read.pass, file: read.index, tasks, chunks }).await
            }
        }
    }

    /// Decompresses the file's `stream` and cuts its lines from `read.at` into chunks, sending
    /// them on as they fill, until the file ends or the time budget does.
    async fn cut_file(
        &self,
        id: &JobId,
        read: &FileRead,
        mut stream: ByteStream,
        deadline: Instant,
    ) -> Result<FileEnd> {
        let (file, at) = (&read.file, &read.at);
        let origin = format!("inventory file {}", file.key);
        let mut gunzip = flate2::write::MultiGzDecoder::new(Vec::with_capacity(256 * 1024));
        let mut lines = Lines { consumed: 0, next: 1, breaks: ByteFinder::new(b'\n') };
        let mut cut = Cut::new(read, &origin, self.chunker.ports.settings.chunk_size);
        let mut ended = false;
        let bad_gzip = |e: std::io::Error| {
            FileEnd::Failed(invalid(format!(
                "The inventory file s3://{}/{} is not valid gzip: {e}",
                file.bucket, file.key
            )))
        };
        // Compressed bytes not yet decompressed: fed GUNZIP_STEP at a time, so what is
        // decompressed at once stays small whatever the size of the pieces S3 hands over.
        let mut input = bytes::Bytes::new();
        while !ended {
            if input.is_empty() {
                match stream.next().await {
                    Some(Ok(piece)) => input = piece,
                    Some(Err(e)) if e.is_transient() => return Err(e.into()),
                    Some(Err(e)) => return Ok(FileEnd::Failed(object_read_failure(&file.bucket, &file.key, &e))),
                    None => {
                        if let Err(e) = gunzip.try_finish() {
                            return Ok(bad_gzip(e));
                        }
                        ended = true;
                    }
                }
            }
            if !input.is_empty() {
                let step = input.split_to(input.len().min(GUNZIP_STEP));
                if let Err(e) = gunzip.write_all(&step) {
                    return Ok(bad_gzip(e));
                }
            }
            let buf = gunzip.get_mut();
            // The complete lines are checked as UTF-8 at once (a block that is not falls back to
            // line by line, so one bad line fails only its task).
            let block_end = if ended { buf.len() } else { memchr::memrchr(b'\n', buf).map_or(0, |i| i + 1) };
            let block = std::str::from_utf8(&buf[..block_end]).ok();
            loop {
                let next = match lines.next_line(buf) {
                    Some(l) => Some(l),
                    None if ended => lines.last(buf),
                    None => None,
                };
                let Some((n, range)) = next else { break };
                if n < at.line {
                    continue;
                }
                let text = block.filter(|_| range.end <= block_end).map(|t| &t[range.clone()]);
                let filled = match cut.line(self, id, n, &buf[range], text) {
                    Err(failure) => return Ok(FileEnd::Failed(failure)),
                    Ok(filled) => filled,
                };
                if let Some(paused) = self.after_line(id, &mut cut, n, filled, deadline).await? {
                    return Ok(FileEnd::Paused(paused));
                }
            }
            lines.compact(buf);
            if !buf.is_empty() {
                if let Some(failure) =
                    self.chunker.over_line_limit(buf.len() as u64, || format!("{origin} line {}", lines.next))
                {
                    return Ok(FileEnd::Failed(failure));
                }
            }
        }
        cut.chunk(id);
        self.chunker.send(id, &mut cut.pending).await?;
        Ok(FileEnd::Read { tasks: cut.tasks, chunks: cut.next_chunk })
    }

    /// After line `n`: sends the chunks cut when there are enough, and where a checkpoint is
    /// exact and the time is up, the checkpoint to go on from. A checkpoint is exact where no
    /// chunk is begun: after one is cut, or on blank lines before a chunk's first task (a file
    /// of blank gigabytes pauses too, once BLANK_RUN_LINES of it are read: a tiny budget still
    /// moves on by that much).
    async fn after_line(
        &self,
        id: &JobId,
        cut: &mut Cut<'_>,
        n: u64,
        filled: bool,
        deadline: Instant,
    ) -> Result<Option<FileCheckpoint>> {
        let at = &cut.read.at;
        if !(filled || (cut.batch.is_empty() && n >= at.line + BLANK_RUN_LINES)) {
            return Ok(None);
        }
        let out_of_time = Instant::now() >= deadline;
        if cut.pending.len() >= SEND_BATCH || out_of_time {
            self.chunker.send(id, &mut cut.pending).await?;
        }
        let (tasks, next_chunk, etag) = (cut.tasks, cut.next_chunk, at.etag.clone());
        Ok(out_of_time.then_some(FileCheckpoint { line: n + 1, next_chunk, tasks, etag }))
    }

    /// Records a file read; the last file of the pass finishes it.
    async fn file_read(&self, id: &JobId, record: FileRecord) -> Result<()> {
        match self.chunker.ports.store.record_file(id, &record).await? {
            // Read again (the sweep's Prepare, a redelivery): the pass may still need its end,
            // if the delivery that recorded the last file died before it.
            RecordOutcome::Recorded | RecordOutcome::AlreadyRecorded => {}
            other => {
                info!(job_id = %id, file = record.file, outcome = ?other, "inventory file already recorded or job closed");
                return Ok(());
            }
        }
        let job = self.chunker.ports.store.get(id).await?;
        let counts = match record.pass {
            Pass::Count => &job.progress.counted,
            Pass::Cut => &job.progress.cut,
        };
        info!(job_id = %id, file = record.file, tasks = record.tasks, files_done = counts.files, "inventory file read");
        if let Some(failure) = self.chunker.over_task_limit(counts.tasks) {
            return self.chunker.fail(id, failure).await;
        }
        if Some(counts.files) == job.progress.files_total {
            let (tasks, chunks) = (counts.tasks, counts.chunks);
            return self.chunker.finish(id, record.pass, tasks, chunks, |_| {}).await;
        }
        Ok(())
    }
}
