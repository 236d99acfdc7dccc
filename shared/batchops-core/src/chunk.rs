//! Queue messages, and how the chunker cuts a manifest into chunks.
//!
//! A chunk of a CSV manifest is a byte range of it holding whole lines; its message carries
//! only the range, so it stays tiny whatever the keys' length, and the executor reads the
//! range back (with the manifest's ETag as If-Match). Lines the chunker had to decompress (gzip
//! inventory files) travel in the message as text after a JSON header line, each cut after the
//! last column a task needs ([`LineBatch`]): the chunker only finds line ends and that column,
//! and the executor reads them as it reads a manifest's. Rows of a listing travel as JSON
//! ([`RowBatch`]). Either way at most `chunk_size` tasks and [`MAX_ROW_BYTES`] of them (about
//! 80-100 bytes a row: 1,000 rows take two 64 KiB SQS billing units; compressing them cost the
//! chunker more than it saved). Chunk indexes are a function of the manifest, the chunk size
//! and where the invocations stopped, so a chunk cut again after a redelivery has the same
//! index both times.

use serde::{Deserialize, Serialize};

use crate::inventory::InventoryFile;
use crate::job::{Checkpoint, JobId};
use crate::manifest::{decode_key, lines, BadLine, ManifestEntry, ParsedLine, RowLayout, RowRef};
use crate::ops::TaskTarget;
use crate::ports::Pass;
use crate::spec::ManifestField;

/// Bytes of the rows one chunk message carries, at most: the message stays under SQS's
/// 256 KiB whatever the keys.
pub const MAX_ROW_BYTES: usize = 160 * 1024;

/// The rows of a chunk message: a JSON array of [`WireRow`]s, kept as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rows(Box<serde_json::value::RawValue>);

impl PartialEq for Rows {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Rows {}

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
    /// Run a dispatcher round (sent by a schedule, so chunks waiting are released even when
    /// nothing else happens).
    Dispatch,
    /// Read one data file of an inventory (its `index` in `manifest.json`: `part` on the
    /// wire, as messages in flight before the name changed carry it), from `at`.
    File {
        job_id: JobId,
        pass: Pass,
        #[serde(rename = "part")]
        index: u64,
        file: InventoryFile,
        fields: Vec<ManifestField>,
        at: FileCheckpoint,
    },
}

impl ControlMessage {
    /// The job the message is about (none for a dispatcher round).
    /// The step the message asks for, as logs and the health view name it.
    pub fn step(&self) -> &'static str {
        match self {
            ControlMessage::Prepare { .. } => "prepare",
            ControlMessage::Continue { .. } => "continue",
            ControlMessage::Start { .. } => "start",
            ControlMessage::Dispatch => "dispatch",
            ControlMessage::File { .. } => "file",
        }
    }

    pub fn job_id(&self) -> Option<&JobId> {
        match self {
            ControlMessage::Prepare { job_id }
            | ControlMessage::Continue { job_id, .. }
            | ControlMessage::Start { job_id }
            | ControlMessage::File { job_id, .. } => Some(job_id),
            ControlMessage::Dispatch => None,
        }
    }
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

/// The index of chunk `n` of inventory file `file`: files are read in parallel, so each has
/// its own range of indexes.
pub fn file_chunk_index(file: u64, n: u64) -> u64 {
    (file << 32) | (n & 0xffff_ffff)
}

/// A message of the chunk queue, read by the task executor. Read it with [`ChunkMessage::decode`]:
/// one that carries lines is a JSON header line followed by the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireChunk", into = "WireChunk")]
pub struct ChunkMessage {
    pub job_id: JobId,
    pub index: u64,
    /// Number of the chunk's first line.
    pub first_line: u64,
    /// Tasks (non-blank lines) in the chunk.
    pub tasks: u64,
    /// The inventory file the rows come from (its index; `part` on the wire); in each task's ID.
    pub file: Option<u64>,
    pub body: ChunkBody,
    /// Times the sweep sent the chunk again after it was dead-lettered
    /// ([`crate::pipeline::dead_letters`]); 0 on the wire when absent.
    pub redriven: u32,
}

impl ChunkMessage {
    /// The chunk's byte range of the manifest, when it is one.
    pub fn range(&self) -> Option<(u64, u64)> {
        match self.body {
            ChunkBody::Range { start, end } => Some((start, end)),
            ChunkBody::Rows(_) | ChunkBody::Lines(_) => None,
        }
    }

    /// Reads a message body: JSON, or a JSON header line followed by the chunk's lines.
    pub fn decode(body: &str) -> Result<ChunkMessage, String> {
        let (head, text) = match body.split_once('\n') {
            Some((head, text)) => (head, Some(text)),
            None => (body, None),
        };
        let mut wire: WireChunk = serde_json::from_str(head).map_err(|e| e.to_string())?;
        if let Some(text) = text {
            match wire.lines.as_mut() {
                Some(lines) => lines.text = Some(text.to_string()),
                None => return Err("text after the header of a chunk that carries no lines".into()),
            }
        }
        ChunkMessage::try_from(wire)
    }

    /// `body` (a message as [`ChunkMessage::decode`] reads it) counted as redriven once more,
    /// written as it came: a header line keeps its lines after it, rows stay as written.
    pub fn redriven_body(body: &str) -> Result<String, String> {
        let (head, text) = match body.split_once('\n') {
            Some((head, text)) => (head, Some(text)),
            None => (body, None),
        };
        let mut wire: WireChunk = serde_json::from_str(head).map_err(|e| e.to_string())?;
        wire.redriven += 1;
        let mut out = serde_json::to_string(&wire).map_err(|e| e.to_string())?;
        if let Some(text) = text {
            out.push('\n');
            out.push_str(text);
        }
        Ok(out)
    }
}

/// Where a chunk's lines are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkBody {
    /// Bytes `start..end` of the CSV manifest, whole lines.
    Range { start: u64, end: u64 },
    /// The rows themselves (see [`RowBatch`]), for sources that are not byte ranges.
    Rows(Rows),
    /// Lines of an inventory file (see [`LineBatch`]).
    Lines(Box<Lines>),
}

/// Lines of an inventory file as the chunker decompressed them: line `i` of `text` is line
/// `first_line + i` of the file, cut after the last column a task needs when it is a plain
/// quoted row. A line the text cannot carry (not UTF-8, or characters an SQS message cannot
/// hold) is empty there and travels in `rows`, read, as [`RowBatch`] writes rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    /// What the lines are (`inventory file <key>`): their failures name it.
    pub origin: String,
    pub fields: Vec<ManifestField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Rows>,
    /// In a JSON message; a framed one carries it after the header line instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Lines {
    /// The chunk's rows in line order: its lines read as a manifest's (the columns after the
    /// last one wanted may be cut), and the rows carried as such.
    pub fn parse(&self, first_line: u64) -> Result<Vec<ParsedLine>, String> {
        let layout = RowLayout::new(&self.fields).prefixes();
        let text = self.text.as_deref().unwrap_or_default();
        let mut rows: Vec<ParsedLine> = lines(text.as_bytes(), first_line)
            .filter(|(_, l)| !is_blank(l))
            .map(|(n, l)| layout.parse(&self.origin, n, l))
            .collect();
        if let Some(carried) = &self.rows {
            rows.extend(decode_rows(carried)?);
            rows.sort_by_key(|r| match r {
                Ok(e) => e.line,
                Err(b) => b.line,
            });
        }
        Ok(rows)
    }
}

/// Whether a message can carry `text` as it is: SQS refuses control characters other than
/// tab and line ends, and U+FFFE and U+FFFF. Decided without branching per byte (vectorizes).
pub fn carriable(text: &str) -> bool {
    let b = text.as_bytes();
    let controls = b.iter().fold(0u8, |acc, &c| {
        let allowed = u8::from(c == b'\t') | u8::from(c == b'\n') | u8::from(c == b'\r');
        acc | (u8::from(c < 0x20) & !allowed)
    });
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF (ASCII text, the usual, has neither).
    controls == 0
        && (b.is_ascii() || memchr::memmem::find_iter(b, b"\xEF\xBF").all(|i| b.get(i + 2).is_none_or(|c| *c < 0xBE)))
}

/// The lines of one inventory file's chunk, written as the chunker reads them (see
/// [`Lines`]): each line is copied once, cut after its last wanted column, and nothing else
/// is written per line. The text is checked for what a message cannot carry once, when the
/// message is taken (only what is copied matters).
pub struct LineBatch {
    chunk_size: u64,
    origin: String,
    fields: Vec<ManifestField>,
    /// `"origin":..,"fields":..`, written once.
    about: String,
    text: String,
    /// The lines the text cannot carry.
    carried: RowBatch,
    tasks: u64,
    first_line: u64,
}

impl LineBatch {
    pub fn new(chunk_size: u64, origin: &str, fields: &[ManifestField]) -> Self {
        let mut about = String::from("\"origin\":");
        push_json_str(&mut about, origin);
        about.push_str(",\"fields\":");
        about.push_str(&serde_json::to_string(fields).unwrap_or_else(|_| "[]".into()));
        LineBatch {
            chunk_size: chunk_size.max(1),
            origin: origin.to_string(),
            fields: fields.to_vec(),
            about,
            text: String::with_capacity(128 * 1024),
            carried: RowBatch::new(u64::MAX),
            tasks: 0,
            first_line: 0,
        }
    }

    /// Starts the chunk at `line` if it has none yet.
    fn start(&mut self, line: u64) {
        if self.tasks == 0 {
            self.first_line = line;
            self.text.clear();
        }
    }

    /// Ends a line of the text.
    fn line_break(&mut self) {
        self.text.push('\n');
    }

    /// Whether no line of a chunk is taken yet.
    pub fn is_empty(&self) -> bool {
        self.tasks == 0
    }

    /// A blank line: no task, but it keeps the numbering of the lines after it (none is
    /// written before a chunk's first task); true when the batch is full (blank lines between
    /// tasks count in bytes, so a chunk message stays within SQS's size however many there are).
    pub fn blank(&mut self) -> bool {
        if self.tasks > 0 {
            self.line_break();
        }
        self.tasks > 0 && self.full()
    }

    /// A line of UTF-8 text; true when the batch is full.
    pub fn push(&mut self, line: u64, text: &str, layout: &RowLayout<'_>) -> bool {
        self.start(line);
        match layout.prefix_end(text) {
            Some(end) => self.text.push_str(&text[..end]),
            None => self.text.push_str(text),
        }
        self.line_break();
        self.tasks += 1;
        self.full()
    }

    /// Any line: text when it is UTF-8, else carried as its failed row.
    pub fn push_raw(&mut self, line: u64, raw: &[u8], layout: &RowLayout<'_>) -> bool {
        match std::str::from_utf8(raw) {
            Ok(text) => self.push(line, text, layout),
            Err(_) => {
                self.start(line);
                self.line_break();
                self.carried.push(&layout.read_bytes(&self.origin, line, raw));
                self.tasks += 1;
                self.full()
            }
        }
    }

    /// Moves the lines of the text a message cannot carry into the carried rows, read, and
    /// leaves them empty in the text (rare: S3 writes inventories as URL-encoded text).
    fn carry_uncarriable(&mut self) {
        let layout = RowLayout::new(&self.fields).prefixes();
        let mut text = String::with_capacity(self.text.len());
        for (n, line) in self.text.trim_end_matches('\n').split('\n').enumerate() {
            if !carriable(line) {
                let line_no = self.first_line + n as u64;
                self.carried.push(&layout.read(&self.origin, line_no, line));
            } else {
                text.push_str(line);
            }
            text.push('\n');
        }
        self.text = text;
    }

    fn full(&self) -> bool {
        self.tasks >= self.chunk_size || self.text.len() + self.carried.json.len() >= MAX_ROW_BYTES
    }

    /// The batch as a chunk message (and empties it): its JSON header, a line break, the
    /// text. `None` when it holds no task.
    pub fn take(&mut self, job_id: &JobId, index: u64, part: Option<u64>) -> Option<String> {
        if self.tasks == 0 {
            return None;
        }
        if !carriable(&self.text) {
            self.carry_uncarriable();
        }
        let capacity = self.text.len() + self.carried.json.len() + self.about.len() + 200;
        let mut body = header(job_id, index, self.first_line, self.tasks, part, capacity);
        body.push_str(",\"lines\":{");
        body.push_str(&self.about);
        if let Some(rows) = self.carried.take_rows() {
            body.push_str(",\"rows\":");
            body.push_str(&rows);
        }
        body.push_str("}}\n");
        body.push_str(&self.text);
        self.text.clear();
        self.tasks = 0;
        Some(body)
    }
}

/// A chunk message as it travels: `start`/`end` are 0 when it carries `rows` (the shape
/// [`RowBatch::take`] writes without serde).
#[derive(Serialize, Deserialize)]
struct WireChunk {
    job_id: JobId,
    index: u64,
    start: u64,
    end: u64,
    first_line: u64,
    tasks: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rows: Option<Rows>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lines: Option<Box<Lines>>,
    /// Absent (0) unless the sweep sent the chunk again: [`header`] never writes it.
    #[serde(default, skip_serializing_if = "is_zero")]
    redriven: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TryFrom<WireChunk> for ChunkMessage {
    type Error = String;

    fn try_from(w: WireChunk) -> Result<Self, String> {
        let body = match (w.rows, w.lines) {
            (Some(rows), None) => ChunkBody::Rows(rows),
            (None, Some(lines)) => ChunkBody::Lines(lines),
            (Some(_), Some(_)) => return Err("a chunk carries rows or lines, not both".into()),
            (None, None) if w.end < w.start => return Err(format!("byte range {}..{} runs backwards", w.start, w.end)),
            (None, None) => ChunkBody::Range { start: w.start, end: w.end },
        };
        Ok(ChunkMessage {
            job_id: w.job_id,
            index: w.index,
            first_line: w.first_line,
            tasks: w.tasks,
            file: w.part,
            body,
            redriven: w.redriven,
        })
    }
}

impl From<ChunkMessage> for WireChunk {
    fn from(m: ChunkMessage) -> WireChunk {
        let ((start, end), rows, lines) = match m.body {
            ChunkBody::Range { start, end } => ((start, end), None, None),
            ChunkBody::Rows(rows) => ((0, 0), Some(rows), None),
            ChunkBody::Lines(lines) => ((0, 0), None, Some(lines)),
        };
        WireChunk {
            job_id: m.job_id,
            index: m.index,
            start,
            end,
            first_line: m.first_line,
            tasks: m.tasks,
            part: m.file,
            rows,
            lines,
            redriven: m.redriven,
        }
    }
}

/// A row as a chunk message carries it: `[line, bucket, encoded key, version]` for a task,
/// `[line, bucket, encoded key, version, reason]` for a line that cannot be one.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireRow {
    Task(u64, String, String, Option<String>),
    Bad(u64, String, String, String, String),
}

/// Writes `n` in decimal (as `write!` would, without its formatting machinery).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|d| *d as char));
}

/// Writes `s` as a JSON string (what serde_json writes, without its per-call overhead: rows
/// are written by the million).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Nearly every key needs no escape: decided without branching per byte (vectorizes).
    let plain = !s.bytes().fold(false, |acc, b| acc | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            use std::fmt::Write;
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Collects the rows of one chunk message.
#[derive(Debug)]
pub struct RowBatch {
    chunk_size: u64,
    json: String,
    rows: u64,
    first_line: u64,
}

impl RowBatch {
    pub fn new(chunk_size: u64) -> Self {
        RowBatch { chunk_size: chunk_size.max(1), json: String::with_capacity(16 * 1024), rows: 0, first_line: 0 }
    }

    /// Adds a row; true when the batch is full (chunk size or bytes).
    pub fn push(&mut self, row: &Result<RowRef<'_>, BadLine>) -> bool {
        let line = match row {
            Ok(r) => r.line,
            Err(b) => b.line,
        };
        if self.rows == 0 {
            self.first_line = line;
        }
        let out = &mut self.json;
        out.push_str(if self.rows == 0 { "[[" } else { ",[" });
        push_u64(out, line);
        out.push(',');
        match row {
            Ok(r) => {
                push_json_str(out, &r.bucket);
                out.push(',');
                push_json_str(out, &r.encoded_key);
                out.push(',');
                match &r.version_id {
                    Some(v) => push_json_str(out, v),
                    None => out.push_str("null"),
                }
            }
            Err(b) => {
                for (i, s) in [&b.bucket, &b.encoded_key, &b.version_id, &b.reason].into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_str(out, s);
                }
            }
        }
        out.push(']');
        self.rows += 1;
        self.rows >= self.chunk_size || self.json.len() >= MAX_ROW_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch as the body of a [`ChunkMessage`] (and empties it); `None` when it holds no
    /// row. Written here rather than through serde, so the rows are not parsed again.
    pub fn take(&mut self, job_id: &JobId, index: u64, part: Option<u64>) -> Option<String> {
        let (first_line, tasks) = (self.first_line, self.rows);
        let rows = self.take_rows()?;
        let mut body = header(job_id, index, first_line, tasks, part, rows.len() + 200);
        body.push_str(",\"rows\":");
        body.push_str(&rows);
        body.push('}');
        Some(body)
    }

    /// The rows as a JSON array (and empties the batch); `None` when it holds none.
    fn take_rows(&mut self) -> Option<String> {
        if self.rows == 0 {
            return None;
        }
        let mut rows = std::mem::take(&mut self.json);
        rows.push(']');
        self.rows = 0;
        Some(rows)
    }
}

/// A chunk message written without serde, up to its body's member: `{"job_id":..,"tasks":..`.
fn header(job_id: &JobId, index: u64, first_line: u64, tasks: u64, part: Option<u64>, capacity: usize) -> String {
    use std::fmt::Write;
    let mut body = String::with_capacity(capacity);
    body.push_str("{\"job_id\":");
    push_json_str(&mut body, job_id.as_str());
    let _ = write!(body, ",\"index\":{index},\"start\":0,\"end\":0,\"first_line\":{first_line},\"tasks\":{tasks}");
    if let Some(p) = part {
        let _ = write!(body, ",\"part\":{p}");
    }
    body
}

/// The rows a chunk message carries, read back.
pub fn decode_rows(packed: &Rows) -> Result<Vec<ParsedLine>, String> {
    let rows: Vec<WireRow> = serde_json::from_str(packed.0.get()).map_err(|e| format!("rows are not readable: {e}"))?;
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

/// One segment to merge: the recorded chunks `first..=last` (by index), segment `segment`
/// of `of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    pub segment: u64,
    pub of: u64,
    pub first: u64,
    pub last: u64,
}

/// A message of the finalize queue, read by the report finalizer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeMessage {
    pub job_id: JobId,
    /// A segment of a big report to merge, instead of finalizing the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
}

/// A line that holds nothing (empty, or only `\r`s) is not a task: it names no object. The
/// cutter counts tasks by the same rule (a line `\r\r` was no task to it but a failed row to
/// the executor, one row more than the counters).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| *b == b'\r')
}

/// The most bytes of manifest a CSV chunk spans (tasks of the longest lines, or blank lines
/// between them): what an executor reads at once.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;

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
    max_bytes: u64,
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
            max_bytes: MAX_CHUNK_BYTES,
        }
    }

    /// The same, cutting chunks at `max_bytes` of manifest instead of [`MAX_CHUNK_BYTES`].
    pub fn with_max_bytes(self, max_bytes: u64) -> Self {
        ChunkCutter { max_bytes: max_bytes.max(1), ..self }
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
        if self.chunk_tasks == 0 {
            // Blank lines before a chunk's first task are in no chunk: the checkpoint moves
            // past them, so a manifest of blank gigabytes still makes progress a hand-on keeps.
            self.chunk_start = self.offset;
            self.chunk_first_line = self.line;
        } else if self.chunk_tasks == self.chunk_size || self.offset - self.chunk_start >= self.max_bytes {
            // Blank lines between tasks are counted in bytes: an executor reads its chunk's
            // range whole, so a range is cut at MAX_CHUNK_BYTES whatever its tasks.
            out.push(self.cut());
        }
    }

    fn cut(&mut self) -> ChunkMessage {
        let msg = ChunkMessage {
            job_id: self.job_id.clone(),
            index: self.next_index,
            first_line: self.chunk_first_line,
            tasks: self.chunk_tasks,
            file: None,
            body: ChunkBody::Range { start: self.chunk_start, end: self.offset },
            redriven: 0,
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
            assert_eq!(chunks[0].range().unwrap().0, 0);
            for w in chunks.windows(2) {
                assert_eq!(w[0].range().unwrap().1, w[1].range().unwrap().0, "ranges are contiguous");
            }
            assert_eq!(chunks.last().unwrap().range().unwrap().1, data.len() as u64);
            assert_eq!(chunks.iter().map(|c| c.first_line).collect::<Vec<_>>(), vec![1, 11, 21]);
            assert_eq!(chunks.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        }
    }

    #[test]
    fn blank_lines_are_not_tasks_but_keep_line_numbers() {
        let chunks = cut_all(b"b,a\n\nb,c\r\n\r\nb,d", 2, 4);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].tasks, chunks[0].first_line), (2, 1));
        // Blank lines before a chunk's first task are in no chunk.
        assert_eq!((chunks[1].tasks, chunks[1].first_line), (1, 5));
        assert_eq!(
            &b"b,a\n\nb,c\r\n\r\nb,d"[chunks[1].range().unwrap().0 as usize..chunks[1].range().unwrap().1 as usize],
            b"b,d"
        );
        // A line of `\r`s is blank to the executor too (it was a task to neither count alike).
        assert!(is_blank(b"\r\r\r") && !is_blank(b"\r \r"));
    }

    #[test]
    fn blank_gigabytes_move_the_checkpoint_and_cut_chunks_by_bytes() {
        // Blank lines only: no chunk, but the checkpoint moves past them (the hand-on's progress).
        let mut c = ChunkCutter::new(id(), 10, &Checkpoint::default());
        assert!(c.feed(&[b'\n'; 5000]).is_empty());
        assert_eq!((c.checkpoint().offset, c.checkpoint().line), (5000, 5001));
        // Between tasks, a chunk is cut at its byte bound whatever its tasks.
        let mut data = b"b,a\n".to_vec();
        data.extend([b'\n'; 3000]);
        data.extend(b"b,c\nb,d\n");
        let mut c = ChunkCutter::new(id(), 10, &Checkpoint::default()).with_max_bytes(1000);
        let mut chunks = c.feed(&data);
        chunks.extend(c.finish());
        assert_eq!(chunks.iter().map(|c| (c.tasks, c.first_line)).collect::<Vec<_>>(), vec![(1, 1), (2, 3002)]);
        assert_eq!(chunks[0].range(), Some((0, 1000)));
        assert_eq!(chunks[1].range(), Some((3004, data.len() as u64)));
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
        let origin = "inventory file f.csv.gz";
        let read = |i: usize| RowLayout::new(&fields).read_bytes(origin, i as u64 + 1, lines[i].as_bytes());
        let parsed: Vec<ParsedLine> =
            (0..3).map(|i| crate::manifest::parse_row(origin, &fields, i as u64 + 1, lines[i].as_bytes())).collect();
        let mut batch = RowBatch::new(3);
        assert!(!batch.push(&read(0)));
        assert!(!batch.push(&read(1)));
        assert!(batch.push(&read(2)), "full at the chunk size");
        let msg = ChunkMessage::decode(&batch.take(&id(), file_chunk_index(2, 5), Some(2)).unwrap()).unwrap();
        assert!(batch.is_empty() && batch.take(&id(), 0, None).is_none());
        assert_eq!((msg.index, msg.tasks, msg.first_line), ((2 << 32) | 5, 3, 1));
        let ChunkBody::Rows(rows) = &msg.body else { panic!("rows expected: {msg:?}") };
        let back = decode_rows(rows).unwrap();
        assert_eq!(back, parsed);
        assert!(back[1].as_ref().unwrap_err().reason.starts_with("inventory file f.csv.gz line 2: expected 3 columns"));
        assert_eq!(back[2].as_ref().unwrap().target.key, "café");
    }

    #[test]
    fn inventory_lines_travel_as_text_cut_after_the_last_wanted_column() {
        // GIVEN lines of an inventory: plain quoted rows, one with a doubled quote, blank lines,
        // one not UTF-8, one with a control character and one with U+FFFF (neither of which an
        // SQS message can carry), one short of the version column
        use ManifestField::*;
        let fields = [Bucket, Key, VersionId, Ignore, Ignore];
        let origin = "inventory file f.csv.gz";
        let lines: Vec<Vec<u8>> = vec![
            b"\"b\",\"a%20b\",\"v1\",\"true\",\"12\"".to_vec(),
            b"".to_vec(),
            b"\"b\",\"say \"\"hi\"\"\",\"v2\",\"true\",\"12\"".to_vec(),
            b"\"b\",\"bad\xff\",\"v3\",\"true\",\"12\"".to_vec(),
            b"\"b\",\"tab\x01key\",\"v4\",\"true\",\"12\"".to_vec(),
            "\"b\",\"odd\u{FFFF}\",\"v5\",\"true\",\"12\"".as_bytes().to_vec(),
            b"\"b\",\"short\"".to_vec(),
            b"\"b\",\"caf%C3%A9\",\"v7\",\"false\",\"1\"\r".to_vec(),
        ];
        let layout = RowLayout::new(&fields);
        let mut batch = LineBatch::new(100, origin, &fields);
        // WHEN the chunker hands them over (a blank line first: not written), from line 4
        assert!(!batch.blank());
        for (i, l) in lines.iter().enumerate() {
            let n = 4 + i as u64;
            match (l.is_empty(), std::str::from_utf8(l)) {
                (true, _) => assert!(!batch.blank()),
                (false, Ok(text)) => assert!(!batch.push(n, text, &layout)),
                (false, Err(_)) => assert!(!batch.push_raw(n, l, &layout)),
            }
        }
        let body = batch.take(&id(), 9, Some(1)).unwrap();
        assert!(batch.take(&id(), 10, Some(1)).is_none(), "taking empties it");
        // THEN the message is a JSON header and the text, plain rows cut after the version
        let (head, text) = body.split_once('\n').unwrap();
        assert!(
            head.starts_with("{\"job_id\":\"job-00001\",\"index\":9,") && head.contains("\"lines\":{\"origin\""),
            "{head}"
        );
        assert!(
            text.starts_with("\"b\",\"a%20b\",\"v1\"\n\n\"b\",\"say \"\"hi\"\"\",\"v2\",\"true\",\"12\"\n\n\n\n"),
            "{text:?}"
        );
        assert!(carriable(text) && !carriable("a\u{1}") && !carriable("\u{FFFE}") && carriable("tab\tcr\r\u{FFFD}"));
        // AND it reads back as each whole line reads (the short one: it lacks the version)
        let msg = ChunkMessage::decode(&body).unwrap();
        assert_eq!((msg.first_line, msg.tasks, msg.file), (4, 7, Some(1)));
        let ChunkBody::Lines(carried) = &msg.body else { panic!("lines expected: {msg:?}") };
        let back = carried.parse(msg.first_line).unwrap();
        let expected: Vec<ParsedLine> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| layout.parse(origin, 4 + i as u64, l))
            .collect();
        assert_eq!(back, expected);
        assert_eq!(back[0].as_ref().unwrap().target.key, "a b");
        assert_eq!(back[1].as_ref().unwrap().target.key, "say \"hi\"");
        assert!(back[2].as_ref().unwrap_err().reason.ends_with("line 7: is not UTF-8"));
        assert_eq!(back[3].as_ref().unwrap().target.key, "tab\u{1}key");
        assert!(back[5].as_ref().unwrap_err().reason.contains("line 10: expected 5 columns"), "{:?}", back[5]);
        assert_eq!(back[6].as_ref().unwrap().target.version_id.as_deref(), Some("v7"));
        // AND the same message as plain JSON reads the same
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(ChunkMessage::decode(&json).unwrap(), msg);
        assert!(ChunkMessage::decode(&format!(
            "{}\nstray text",
            serde_json::to_string(&ChunkMessage { body: ChunkBody::Range { start: 0, end: 1 }, ..msg }).unwrap()
        ))
        .is_err());
    }

    #[test]
    fn a_line_batch_is_full_by_tasks_or_by_bytes() {
        let fields = [ManifestField::Bucket, ManifestField::Key];
        let layout = RowLayout::new(&fields);
        let mut batch = LineBatch::new(3, "inventory file f", &fields);
        assert!(!batch.push(1, "\"b\",\"k1\"", &layout));
        assert!(!batch.blank());
        assert!(!batch.push(3, "\"b\",\"k2\"", &layout));
        assert!(batch.push(4, "\"b\",\"k3\"", &layout), "three tasks");
        let msg = ChunkMessage::decode(&batch.take(&id(), 0, None).unwrap()).unwrap();
        assert_eq!((msg.first_line, msg.tasks), (1, 3));
        let long = format!("\"b\",\"{}\"", "k".repeat(40 * 1024));
        let mut big = LineBatch::new(1000, "inventory file f", &fields);
        let full: Vec<bool> = (0..4).map(|i| big.push(i + 1, &long, &layout)).collect();
        assert_eq!(full, [false, false, false, true], "160 KiB of text");
        // Blank lines between tasks count too: 200,000 of them fill a batch (they filled a
        // chunk message past SQS's 256 KiB, and a gigabyte of them the chunker's memory).
        let mut blanks = LineBatch::new(1000, "inventory file f", &fields);
        assert!(!blanks.push(1, "\"b\",\"k1\"", &layout));
        let filled = (0..200_000).position(|_| blanks.blank()).expect("full by bytes");
        assert!((150_000..170_000).contains(&filled), "{filled}");
        let body = blanks.take(&id(), 0, None).unwrap();
        assert!(body.len() < 200 * 1024, "{}", body.len());
    }

    #[test]
    fn rows_are_written_as_serde_json_writes_them() {
        for s in ["plain/key%20x", "quo\"te", "back\\slash", "nl\ncr\rtab\t", "\u{1}\u{1f}", "ünï €"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn a_batch_is_full_by_bytes_before_rows() {
        let long = format!("b,{}", "k".repeat(1000));
        let row =
            RowLayout::new(&[ManifestField::Bucket, ManifestField::Key]).read_bytes("manifest", 1, long.as_bytes());
        let mut batch = RowBatch::new(100_000);
        let mut n = 0;
        while !batch.push(&row) {
            n += 1;
        }
        assert!((150..170).contains(&n), "{n} rows of 1 KB");
        let body = batch.take(&id(), 0, None).unwrap();
        assert!(body.len() < 200 * 1024, "under SQS's 256 KiB: {}", body.len());
        let msg = ChunkMessage::decode(&body).unwrap();
        assert_eq!((msg.tasks, msg.file), (n + 1, None));
        assert_eq!(serde_json::to_string(&msg).unwrap(), body, "serde writes the same body");
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

    #[test]
    fn a_chunk_message_is_a_byte_range_or_rows_on_the_same_wire() {
        let id = JobId::parse("job-12345").unwrap();
        let range = ChunkMessage {
            job_id: id.clone(),
            index: 3,
            first_line: 7,
            tasks: 2,
            file: None,
            body: ChunkBody::Range { start: 10, end: 40 },
            redriven: 0,
        };
        let wire = serde_json::to_string(&range).unwrap();
        assert_eq!(wire, r#"{"job_id":"job-12345","index":3,"start":10,"end":40,"first_line":7,"tasks":2}"#);
        assert_eq!(serde_json::from_str::<ChunkMessage>(&wire).unwrap(), range);
        let mut batch = RowBatch::new(10);
        let row = crate::manifest::RowRef {
            line: 1,
            bucket: "b".into(),
            encoded_key: "k".into(),
            version_id: None,
            decoded: None,
        };
        batch.push(&Ok(row));
        let carried = ChunkMessage::decode(&batch.take(&id, 4, Some(2)).unwrap()).unwrap();
        assert!(matches!(carried.body, ChunkBody::Rows(_)), "{carried:?}");
        assert_eq!((carried.file, carried.range()), (Some(2), None));
        let backwards = r#"{"job_id":"job-12345","index":3,"start":40,"end":10,"first_line":7,"tasks":2}"#;
        assert!(serde_json::from_str::<ChunkMessage>(backwards).unwrap_err().to_string().contains("runs backwards"));
    }

    #[test]
    fn a_redriven_chunk_keeps_its_body_and_counts_the_redrive() {
        let fields = [ManifestField::Bucket, ManifestField::Key];
        let layout = RowLayout::new(&fields);
        let mut lines = LineBatch::new(10, "inventory file f", &fields);
        lines.push(1, "\"b\",\"k1\"", &layout);
        lines.push(2, "\"b\",\"k2\"", &layout);
        let mut rows = RowBatch::new(10);
        rows.push(&Ok(crate::manifest::RowRef {
            line: 1,
            bucket: "b".into(),
            encoded_key: "k".into(),
            version_id: None,
            decoded: None,
        }));
        let range = r#"{"job_id":"job-12345","index":3,"start":10,"end":40,"first_line":7,"tasks":2}"#;
        for body in [lines.take(&id(), 5, Some(1)).unwrap(), rows.take(&id(), 4, None).unwrap(), range.to_string()] {
            let msg = ChunkMessage::decode(&body).unwrap();
            assert_eq!(msg.redriven, 0, "a message written without the field: {body}");
            let once = ChunkMessage::redriven_body(&body).unwrap();
            let twice = ChunkMessage::redriven_body(&once).unwrap();
            assert_eq!(ChunkMessage::decode(&once).unwrap(), ChunkMessage { redriven: 1, ..msg.clone() });
            assert_eq!(ChunkMessage::decode(&twice).unwrap(), ChunkMessage { redriven: 2, ..msg });
            // The lines stay after the header line, as written.
            assert_eq!(twice.split_once('\n').map(|(_, t)| t), body.split_once('\n').map(|(_, t)| t));
        }
        assert!(ChunkMessage::redriven_body("not a chunk").is_err());
    }

    #[test]
    fn an_inventory_file_message_keeps_its_wire_name_for_messages_in_flight() {
        let file = InventoryFile { bucket: "b".into(), key: "k.csv.gz".into(), size: 1, md5: "00".into() };
        let at = FileCheckpoint::default();
        let msg = ControlMessage::File { job_id: id(), pass: Pass::Cut, index: 4, file, fields: vec![], at };
        let wire = serde_json::to_value(&msg).unwrap();
        assert_eq!(wire["part"], 4, "{wire}");
        assert_eq!(serde_json::from_value::<ControlMessage>(wire).unwrap(), msg);
    }
}
