//! Queue messages, and how the chunker cuts a manifest into chunks.
//!
//! A chunk of a CSV manifest is a byte range of it holding whole lines; its message carries
//! only the range, so it stays tiny whatever the keys' length, and the executor reads the
//! range back (with the manifest's ETag as If-Match). Rows the chunker had to read itself
//! (gzip inventory files, listings) travel in the message: at most `chunk_size` rows and
//! [`MAX_ROW_BYTES`] of them, as gzip JSON. Chunk indexes are a function of the manifest, the
//! chunk size and where the invocations stopped, so a chunk cut again after a redelivery has
//! the same index both times.

use std::io::Write;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::inventory::InventoryFile;
use crate::job::{Checkpoint, JobId};
use crate::manifest::{decode_key, BadLine, ManifestEntry, ParsedLine};
use crate::ops::TaskTarget;
use crate::ports::Pass;
use crate::spec::ManifestField;

/// Uncompressed bytes of the rows one chunk message carries, at most: gzip and base64 keep
/// the message well under SQS's 256 KiB whatever the keys.
pub const MAX_ROW_BYTES: usize = 160 * 1024;

/// A message of the control queue, read by the manifest chunker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// A new job: validate the manifest and prepare it.
    Prepare { job_id: JobId },
    /// Go on reading the manifest from a checkpoint (the previous invocation ran out of time).
    Continue { job_id: JobId, checkpoint: Checkpoint },
    /// A confirmed job (Suspended -> Ready): cut its chunks and start it.
    Start { job_id: JobId },
    /// Read one data file of an inventory (one part of the manifest), from `at`.
    File { job_id: JobId, pass: Pass, part: u64, file: InventoryFile, fields: Vec<ManifestField>, at: FileCheckpoint },
}

/// Where the reading of one inventory file stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The next line to read (1-based); 0 before the file was checked.
    pub line: u64,
    pub next_chunk: u64,
    pub tasks: u64,
    /// The file's ETag once its MD5 was checked: later reads are If-Match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The index of chunk `n` of part `part`: parts are read in parallel, so each has its own
/// range of indexes.
pub fn part_chunk_index(part: u64, n: u64) -> u64 {
    (part << 32) | (n & 0xffff_ffff)
}

/// A message of the chunk queue, read by the task executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMessage {
    pub job_id: JobId,
    pub index: u64,
    /// Byte range `start..end` of the manifest, whole lines.
    pub start: u64,
    pub end: u64,
    /// Number of the range's first line.
    pub first_line: u64,
    /// Tasks (non-blank lines) in the range.
    pub tasks: u64,
    /// The part (inventory file) the rows come from; part of each task's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u64>,
    /// The rows themselves (see [`RowBatch`]), for sources that are not byte ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
}

/// A row as a chunk message carries it: `[line, bucket, encoded key, version]` for a task,
/// `[line, bucket, encoded key, version, reason]` for a line that cannot be one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireRow {
    Task(u64, String, String, Option<String>),
    Bad(u64, String, String, String, String),
}

/// Collects the rows of one chunk message.
#[derive(Debug)]
pub struct RowBatch {
    chunk_size: u64,
    json: Vec<u8>,
    rows: u64,
    first_line: u64,
}

impl RowBatch {
    pub fn new(chunk_size: u64) -> Self {
        RowBatch { chunk_size: chunk_size.max(1), json: Vec::with_capacity(16 * 1024), rows: 0, first_line: 0 }
    }

    /// Adds a row; true when the batch is full (chunk size or bytes).
    pub fn push(&mut self, row: &ParsedLine) -> bool {
        let wire = match row {
            Ok(e) => WireRow::Task(e.line, e.target.bucket.clone(), e.encoded_key.clone(), e.target.version_id.clone()),
            Err(b) => {
                WireRow::Bad(b.line, b.bucket.clone(), b.encoded_key.clone(), b.version_id.clone(), b.reason.clone())
            }
        };
        let line = match row {
            Ok(e) => e.line,
            Err(b) => b.line,
        };
        if self.rows == 0 {
            self.first_line = line;
        }
        self.json.push(if self.rows == 0 { b'[' } else { b',' });
        serde_json::to_writer(&mut self.json, &wire).expect("rows serialize");
        self.rows += 1;
        self.rows >= self.chunk_size || self.json.len() >= MAX_ROW_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch as a chunk message (and empties it); `None` when it holds no row.
    pub fn take(&mut self, job_id: &JobId, index: u64, part: Option<u64>) -> Option<ChunkMessage> {
        if self.rows == 0 {
            return None;
        }
        self.json.push(b']');
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.json).expect("gzip to memory");
        let packed = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip to memory"));
        let msg = ChunkMessage {
            job_id: job_id.clone(),
            index,
            start: 0,
            end: 0,
            first_line: self.first_line,
            tasks: self.rows,
            part,
            rows: Some(packed),
        };
        self.json.clear();
        self.rows = 0;
        Some(msg)
    }
}

/// The rows a chunk message carries, read back.
pub fn decode_rows(packed: &str) -> Result<Vec<ParsedLine>, String> {
    let gz =
        base64::engine::general_purpose::STANDARD.decode(packed).map_err(|e| format!("rows are not base64: {e}"))?;
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json)
        .map_err(|e| format!("rows are not gzip: {e}"))?;
    let rows: Vec<WireRow> = serde_json::from_slice(&json).map_err(|e| format!("rows are not readable: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|r| match r {
            WireRow::Task(line, bucket, encoded_key, version_id) => match decode_key(&encoded_key) {
                Ok(key) => Ok(ManifestEntry { line, target: TaskTarget { bucket, key, version_id }, encoded_key }),
                Err(reason) => Err(BadLine {
                    line,
                    bucket,
                    encoded_key,
                    version_id: version_id.unwrap_or_default(),
                    reason: format!("line {line}: {reason}"),
                }),
            },
            WireRow::Bad(line, bucket, encoded_key, version_id, reason) => {
                Err(BadLine { line, bucket, encoded_key, version_id, reason })
            }
        })
        .collect())
}

/// A message of the finalize queue, read by the report finalizer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeMessage {
    pub job_id: JobId,
}

/// A line that holds nothing (empty, or only `\r`) is not a task: it names no object.
pub fn is_blank(line: &[u8]) -> bool {
    line.is_empty() || line == b"\r"
}

/// Cuts a stream of manifest bytes into chunks of `chunk_size` tasks, from a checkpoint.
/// Memory stays bounded by the longest line, whatever the manifest's size.
#[derive(Debug)]
pub struct ChunkCutter {
    job_id: JobId,
    chunk_size: u64,
    /// Position of the next byte to be fed.
    offset: u64,
    /// Line number of the line that starts at or before `offset` and is not finished.
    line: u64,
    /// Whether the current (unfinished) line has any byte other than `\r`.
    line_has_content: bool,
    line_len: u64,
    chunk_start: u64,
    chunk_first_line: u64,
    chunk_tasks: u64,
    next_index: u64,
    tasks: u64,
}

impl ChunkCutter {
    pub fn new(job_id: JobId, chunk_size: u64, from: &Checkpoint) -> Self {
        let line = from.line.max(1);
        ChunkCutter {
            job_id,
            chunk_size: chunk_size.max(1),
            offset: from.offset,
            line,
            line_has_content: false,
            line_len: 0,
            chunk_start: from.offset,
            chunk_first_line: line,
            chunk_tasks: 0,
            next_index: from.next_chunk,
            tasks: from.tasks,
        }
    }

    /// Feeds the next bytes; returns the chunks they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ChunkMessage> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (line, ends) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            self.line_len += line.len() as u64;
            if !self.line_has_content && line.iter().any(|b| *b != b'\r') {
                self.line_has_content = true;
            }
            self.offset += line.len() as u64;
            rest = &rest[line.len()..];
            if ends {
                self.offset += 1;
                rest = &rest[1..];
                self.end_line(&mut out);
            }
        }
        out
    }

    /// Length of the line being read so far (lines longer than a limit fail the job).
    pub fn line_len(&self) -> u64 {
        self.line_len
    }

    /// Number of the line being read.
    pub fn line(&self) -> u64 {
        self.line
    }

    fn end_line(&mut self, out: &mut Vec<ChunkMessage>) {
        if self.line_has_content {
            self.chunk_tasks += 1;
            self.tasks += 1;
        }
        self.line += 1;
        self.line_has_content = false;
        self.line_len = 0;
        if self.chunk_tasks == self.chunk_size {
            out.push(self.cut());
        }
    }

    fn cut(&mut self) -> ChunkMessage {
        let msg = ChunkMessage {
            job_id: self.job_id.clone(),
            index: self.next_index,
            start: self.chunk_start,
            end: self.offset,
            first_line: self.chunk_first_line,
            tasks: self.chunk_tasks,
            part: None,
            rows: None,
        };
        self.next_index += 1;
        self.chunk_start = self.offset;
        self.chunk_first_line = self.line;
        self.chunk_tasks = 0;
        msg
    }

    /// Ends the manifest: a last line without `\n` counts; returns the last, partial chunk.
    pub fn finish(&mut self) -> Option<ChunkMessage> {
        if self.line_has_content {
            self.chunk_tasks += 1;
            self.tasks += 1;
            self.line_has_content = false;
        }
        (self.chunk_tasks > 0).then(|| self.cut())
    }

    /// Where to resume after the chunks cut so far: the start of the first uncut line.
    /// Only meaningful right after `feed` returned (at a chunk boundary the state is exact;
    /// elsewhere it rewinds to the current chunk's start, and the lines are read again).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            offset: self.chunk_start,
            line: self.chunk_first_line,
            next_chunk: self.next_index,
            tasks: self.tasks - self.chunk_tasks,
            ..Default::default()
        }
    }

    pub fn tasks(&self) -> u64 {
        self.tasks
    }

    pub fn chunks_cut(&self) -> u64 {
        self.next_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> JobId {
        JobId::parse("job-00001").unwrap()
    }

    fn cut_all(data: &[u8], size: u64, piece: usize) -> Vec<ChunkMessage> {
        let mut c = ChunkCutter::new(id(), size, &Checkpoint::default());
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            out.extend(c.feed(p));
        }
        out.extend(c.finish());
        out
    }

    #[test]
    fn chunks_cover_every_line_exactly_once_whatever_the_read_sizes() {
        let data: Vec<u8> = (0..25).map(|i| format!("b,key{i}\n")).collect::<String>().into_bytes();
        for piece in [1, 3, 7, 1000] {
            let chunks = cut_all(&data, 10, piece);
            assert_eq!(chunks.iter().map(|c| c.tasks).collect::<Vec<_>>(), vec![10, 10, 5]);
            assert_eq!(chunks[0].start, 0);
            for w in chunks.windows(2) {
                assert_eq!(w[0].end, w[1].start, "ranges are contiguous");
            }
            assert_eq!(chunks.last().unwrap().end, data.len() as u64);
            assert_eq!(chunks.iter().map(|c| c.first_line).collect::<Vec<_>>(), vec![1, 11, 21]);
            assert_eq!(chunks.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        }
    }

    #[test]
    fn blank_lines_are_not_tasks_but_keep_line_numbers() {
        let chunks = cut_all(b"b,a\n\nb,c\r\n\r\nb,d", 2, 4);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].tasks, chunks[0].first_line), (2, 1));
        assert_eq!((chunks[1].tasks, chunks[1].first_line), (1, 4));
        assert_eq!(&b"b,a\n\nb,c\r\n\r\nb,d"[chunks[1].start as usize..chunks[1].end as usize], b"\r\nb,d");
    }

    #[test]
    fn resuming_from_a_checkpoint_cuts_the_same_chunks() {
        let data: Vec<u8> = (0..23).map(|i| format!("b,k{i}\n")).collect::<String>().into_bytes();
        let whole = cut_all(&data, 5, 1000);
        // Stop after the second chunk, then resume from its checkpoint.
        let mut c = ChunkCutter::new(id(), 5, &Checkpoint::default());
        let mut first = Vec::new();
        let mut consumed = 0;
        for (i, b) in data.iter().enumerate() {
            first.extend(c.feed(&[*b]));
            if first.len() == 2 {
                consumed = i + 1;
                break;
            }
        }
        let cp = c.checkpoint();
        assert_eq!(cp.offset as usize, consumed);
        assert_eq!((cp.next_chunk, cp.tasks, cp.line), (2, 10, 11));
        let mut c2 = ChunkCutter::new(id(), 5, &cp);
        let mut rest = c2.feed(&data[cp.offset as usize..]);
        rest.extend(c2.finish());
        first.extend(rest);
        assert_eq!(first, whole);
        assert_eq!(c2.tasks(), 23);
    }

    #[test]
    fn rows_travel_in_the_message_and_read_back() {
        let fields = [ManifestField::Bucket, ManifestField::Key, ManifestField::VersionId];
        let lines = ["\"b\",\"a%20b\",\"v1\"", "\"b\",\"k\"", "\"b\",\"caf%C3%A9\",\"null\""];
        let parsed: Vec<ParsedLine> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| crate::manifest::parse_row("inventory file f.csv.gz", &fields, i as u64 + 1, l.as_bytes()))
            .collect();
        let mut batch = RowBatch::new(3);
        assert!(!batch.push(&parsed[0]));
        assert!(!batch.push(&parsed[1]));
        assert!(batch.push(&parsed[2]), "full at the chunk size");
        let msg = batch.take(&id(), part_chunk_index(2, 5), Some(2)).unwrap();
        assert!(batch.is_empty() && batch.take(&id(), 0, None).is_none());
        assert_eq!((msg.index, msg.tasks, msg.first_line), ((2 << 32) | 5, 3, 1));
        let back = decode_rows(msg.rows.as_deref().unwrap()).unwrap();
        assert_eq!(back, parsed);
        assert!(back[1].as_ref().unwrap_err().reason.starts_with("inventory file f.csv.gz line 2: expected 3 columns"));
        assert_eq!(back[2].as_ref().unwrap().target.key, "café");
    }

    #[test]
    fn a_batch_is_full_by_bytes_before_rows() {
        let long = format!("b,{}", "k".repeat(1000));
        let row = crate::manifest::parse_line(&[ManifestField::Bucket, ManifestField::Key], 1, long.as_bytes());
        let mut batch = RowBatch::new(100_000);
        let mut n = 0;
        while !batch.push(&row) {
            n += 1;
        }
        assert!((150..170).contains(&n), "{n} rows of 1 KB");
        let msg = batch.take(&id(), 0, None).unwrap();
        assert!(serde_json::to_string(&msg).unwrap().len() < 64 * 1024, "the same key compresses well");
    }

    #[test]
    fn an_empty_manifest_has_no_chunks() {
        assert!(cut_all(b"", 10, 10).is_empty());
        assert!(cut_all(b"\n\n", 10, 10).is_empty());
    }

    #[test]
    fn messages_round_trip_as_json() {
        let m = ControlMessage::Continue {
            job_id: id(),
            checkpoint: Checkpoint { offset: 5, line: 2, next_chunk: 1, tasks: 1, ..Default::default() },
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.contains("\"type\":\"continue\""), "{s}");
        assert_eq!(serde_json::from_str::<ControlMessage>(&s).unwrap(), m);
    }
}
