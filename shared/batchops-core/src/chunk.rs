//! Queue messages, and how the chunker cuts a manifest into chunks.
//!
//! A chunk is a byte range of the manifest holding whole lines; its message carries only the
//! range, so it stays tiny whatever the keys' length, and the executor reads the range back
//! (with the manifest's ETag as If-Match). Chunk indexes are a function of the manifest and
//! the chunk size, so a chunk cut twice (after a redelivery) has the same index both times.

use serde::{Deserialize, Serialize};

use crate::job::{Checkpoint, JobId};

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
        for &b in bytes {
            self.offset += 1;
            if b == b'\n' {
                self.end_line(&mut out);
            } else {
                self.line_len += 1;
                if b != b'\r' {
                    self.line_has_content = true;
                }
            }
        }
        out
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
    fn an_empty_manifest_has_no_chunks() {
        assert!(cut_all(b"", 10, 10).is_empty());
        assert!(cut_all(b"\n\n", 10, 10).is_empty());
    }

    #[test]
    fn messages_round_trip_as_json() {
        let m = ControlMessage::Continue {
            job_id: id(),
            checkpoint: Checkpoint { offset: 5, line: 2, next_chunk: 1, tasks: 1 },
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.contains("\"type\":\"continue\""), "{s}");
        assert_eq!(serde_json::from_str::<ControlMessage>(&s).unwrap(), m);
    }
}
