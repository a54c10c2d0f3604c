//! Output framed once for many readers: a program's messages as WebSocket frames, kept in
//! chunks with their message numbers and byte positions, and taken by each reader's cursor.
//!
//! [`Log`] holds the frames (and lets go of the oldest that are no longer needed),
//! [`Pending`] is what one reader has taken and not yet written (so that a stream never
//! breaks off inside a frame), [`frame_into`] makes a server frame.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

use crate::metrics::Moved;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Most bytes a reader takes from the log at once: what one write may carry.
pub(crate) const TAKE_MAX: usize = 256 * 1024;
/// What a message costs the log beyond its frame: the entry that says where it ends.
const MESSAGE_COST: usize = size_of::<usize>();
/// What a chunk costs the log beyond its frames: itself, and its two allocations' overhead.
const CHUNK_COST: usize = size_of::<Chunk>() + 64;

/// The framed output of one program: chunks of whole frames back to back, kept for as long
/// as the slowest client allowed (`--clientqueue`) or replay needs.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) chunks: VecDeque<Chunk>,
    /// The first message still kept.
    pub(crate) base: u64,
    /// The next message to come.
    pub(crate) head: u64,
    /// Bytes ever framed; the end of the last message.
    pub(crate) head_bytes: u64,
    /// Bytes kept.
    pub(crate) kept: usize,
}

/// Messages framed together (one read's worth).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Its first message.
    pub(crate) first: u64,
    /// Where it starts among all bytes ever framed.
    pub(crate) start: u64,
    pub(crate) bytes: Bytes,
    /// Where each of its messages ends in `bytes`.
    pub(crate) ends: Vec<usize>,
}

impl Chunk {
    /// The end of the chunk, as a message number.
    pub(crate) fn next(&self) -> u64 {
        self.first + self.ends.len() as u64
    }

    /// Where message `seq` (one of this chunk's) starts in `bytes`.
    pub(crate) fn offset(&self, seq: u64) -> usize {
        match usize::try_from(seq - self.first) {
            Ok(0) | Err(_) => 0,
            Ok(i) => self.ends[i - 1],
        }
    }
}

impl Log {
    /// Appends `chunk` (its `first` and `start` are set here), then lets go of the oldest
    /// chunks that neither the last `keep_bytes` bytes nor the last `keep_messages` messages
    /// need.
    pub(crate) fn push(&mut self, mut chunk: Chunk, keep_bytes: usize, keep_messages: usize) {
        chunk.first = self.head;
        chunk.start = self.head_bytes;
        self.head = chunk.next();
        self.head_bytes += chunk.bytes.len() as u64;
        self.kept += chunk.bytes.len();
        self.chunks.push_back(chunk);
        while let Some(front) = self.chunks.front() {
            let bytes_after = self.kept - front.bytes.len();
            let messages_after = self.head - front.next();
            if bytes_after < keep_bytes || messages_after < keep_messages as u64 {
                break;
            }
            self.pop();
        }
    }

    /// Lets go of the oldest chunks whose messages are all before `sent`, as long as the log
    /// weighs more than `most` bytes (a resumable session keeps what it has sent only as far
    /// as its buffer allows).
    pub(crate) fn let_go_sent(&mut self, sent: u64, most: usize) {
        while self.weight_from(self.base) > most
            && self.chunks.front().is_some_and(|front| front.next() <= sent)
        {
            self.pop();
        }
    }

    /// The memory that messages from `seq` on take in the log: their frames, and what
    /// indexes them (for a log of tiny messages, as much again as the frames).
    pub(crate) fn weight_from(&self, seq: u64) -> usize {
        let Some(at) = self.position(seq) else { return self.weight_from(self.base) };
        let chunks = self.chunks.len() - self.chunks.partition_point(|c| c.next() <= seq);
        let messages = usize::try_from(self.head - seq).unwrap_or(usize::MAX);
        let bytes = usize::try_from(self.head_bytes - at).unwrap_or(usize::MAX);
        bytes
            .saturating_add(messages.saturating_mul(MESSAGE_COST))
            .saturating_add(chunks * CHUNK_COST)
    }

    fn pop(&mut self) {
        if let Some(front) = self.chunks.pop_front() {
            self.kept -= front.bytes.len();
            self.base = front.next();
        }
    }

    /// Where message `seq` starts among all bytes ever framed, if it is still kept (or is
    /// the next to come).
    pub(crate) fn position(&self, seq: u64) -> Option<u64> {
        if seq == self.head {
            return Some(self.head_bytes);
        }
        let chunk = self.chunk_of(seq)?;
        Some(chunk.start + chunk.offset(seq) as u64)
    }

    pub(crate) fn chunk_of(&self, seq: u64) -> Option<&Chunk> {
        if seq < self.base || seq >= self.head {
            return None;
        }
        let i = self.chunks.partition_point(|c| c.next() <= seq);
        self.chunks.get(i)
    }

    /// The first of the last `replay` messages, or the first message that is at most
    /// `queue` bytes behind the live end if that comes later.
    pub(crate) fn replay_start(&self, replay: usize, queue: usize) -> u64 {
        let (mut low, mut high) =
            (self.head.saturating_sub(replay as u64).max(self.base), self.head);
        // `behind` only shrinks as the message number grows: the first one within `queue`.
        while low < high {
            let mid = low + (high - low) / 2;
            if self.behind(mid).is_some_and(|b| b <= queue as u64) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        low
    }

    /// How many bytes lie between `seq` and the live end; `None` if `seq` is no longer kept.
    pub(crate) fn behind(&self, seq: u64) -> Option<u64> {
        self.position(seq).map(|at| self.head_bytes - at)
    }

    /// Moves whole messages from `cursor` on into `pending`, up to [`TAKE_MAX`] bytes (at
    /// least one message).
    pub(crate) fn take(&self, cursor: &mut u64, pending: &mut Pending) {
        let mut budget = TAKE_MAX;
        while *cursor < self.head && budget > 0 {
            let Some(chunk) = self.chunk_of(*cursor) else { return };
            let from = chunk.offset(*cursor);
            let Ok(first) = usize::try_from(*cursor - chunk.first) else { return };
            let mut last = first;
            // Whole messages up to the budget, at least one.
            while last + 1 < chunk.ends.len() && chunk.ends[last + 1] - from <= budget {
                last += 1;
            }
            let to = chunk.ends[last];
            let ends = chunk.ends[first..=last].iter().map(|e| e - from);
            pending.push(chunk.bytes.slice(from..to), ends);
            budget = budget.saturating_sub(to - from);
            *cursor = chunk.first + last as u64 + 1;
        }
    }
}

/// What a client has taken from the log and not yet written: runs of whole frames, and where
/// each frame ends.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) runs: VecDeque<Bytes>,
    /// Where each frame not yet fully written ends, counted from the first byte ever taken.
    pub(crate) ends: VecDeque<u64>,
    /// Bytes ever taken.
    pub(crate) total: u64,
    /// Bytes ever written.
    pub(crate) written: u64,
    /// Where the last fully written frame ended.
    pub(crate) frame_start: u64,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.written == self.total
    }

    pub(crate) fn unwritten(&self) -> u64 {
        self.total - self.written
    }

    /// Adds `run`, whose frames end at `ends` (relative to its start).
    pub(crate) fn push(&mut self, run: Bytes, ends: impl Iterator<Item = usize>) {
        let base = self.total;
        self.ends.extend(ends.map(|e| base + e as u64));
        self.total += run.len() as u64;
        self.runs.push_back(run);
    }

    pub(crate) fn slices(&self) -> Vec<IoSlice<'_>> {
        self.runs.iter().take(64).map(|r| IoSlice::new(r)).collect()
    }

    /// `n` more bytes were written; returns the messages whose frames that completed.
    pub(crate) fn advance(&mut self, mut n: usize) -> Moved {
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.runs.front_mut() else { break };
            if front.len() <= n {
                n -= front.len();
                self.runs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        let mut done = Moved::default();
        while let Some(end) = self.ends.front().copied().filter(|&e| e <= self.written) {
            self.ends.pop_front();
            done.add(payload_of(end - self.frame_start));
            self.frame_start = end;
        }
        done
    }

    /// Keeps only the rest of a half-written frame (the stream must not break off inside
    /// one); returns how many frames were dropped.
    pub(crate) fn cut(&mut self) -> u64 {
        let keep_to = if self.written > self.frame_start {
            self.ends.front().copied().unwrap_or(self.written)
        } else {
            self.written
        };
        let kept_frames = u64::from(keep_to > self.written);
        let dropped = self.ends.len() as u64 - kept_frames;
        let mut left = usize::try_from(keep_to - self.written).unwrap_or(usize::MAX);
        let mut runs = VecDeque::new();
        for mut run in self.runs.drain(..) {
            if left == 0 {
                break;
            }
            run.truncate(left);
            left -= run.len();
            runs.push_back(run);
        }
        self.runs = runs;
        self.ends.truncate(usize::from(kept_frames == 1));
        self.total = keep_to;
        dropped
    }
}

/// The payload length of a server frame (unmasked) that is `frame` bytes long: its header is
/// 2 bytes below 126 bytes of payload, 4 below 64 KiB, 10 above.
fn payload_of(frame: u64) -> usize {
    let payload = match frame {
        0..=127 => frame.saturating_sub(2),
        128..=65539 => frame - 4,
        _ => frame - 10,
    };
    usize::try_from(payload).unwrap_or(usize::MAX)
}

/// Frames `message` into `out`, as a server frame (final, not masked).
pub(crate) fn frame_into(message: &Message, out: &mut Vec<u8>) -> usize {
    let (opcode, payload): (_, &[u8]) = match message {
        Message::Text(text) => (Data::Text, text.as_bytes()),
        Message::Binary(data) => (Data::Binary, data),
        _ => return out.len(),
    };
    let header = FrameHeader { opcode: OpCode::Data(opcode), ..FrameHeader::default() };
    let mut head = Vec::with_capacity(10);
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut head);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(messages: &[&[u8]]) -> Chunk {
        let mut buf = Vec::new();
        let ends = messages
            .iter()
            .map(|m| frame_into(&Message::Binary(Bytes::copy_from_slice(m)), &mut buf))
            .collect();
        Chunk { first: 0, start: 0, bytes: buf.into(), ends }
    }

    fn written(pending: &mut Pending) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(run) = pending.runs.front().cloned() {
            out.extend_from_slice(&run);
            pending.advance(run.len());
        }
        out
    }

    #[test]
    fn a_cursor_takes_every_message_once_in_order_across_chunks() {
        let mut log = Log::default();
        log.push(chunk(&[b"a", b"bb"]), 1 << 20, 0);
        log.push(chunk(&[b"ccc"]), 1 << 20, 0);
        let (mut cursor, mut pending) = (1, Pending::default());
        log.take(&mut cursor, &mut pending);
        assert_eq!(cursor, 3);
        assert_eq!(pending.ends, [4, 9], "where each frame taken ends");
        assert_eq!(written(&mut pending), [0x82, 2, b'b', b'b', 0x82, 3, b'c', b'c', b'c']);
        assert!(pending.is_empty());
        log.take(&mut cursor, &mut pending);
        assert!(pending.is_empty(), "nothing new");
    }

    #[test]
    fn the_log_keeps_the_last_bytes_and_the_replay_and_lets_the_rest_go() {
        let mut log = Log::default();
        for _ in 0..10 {
            log.push(chunk(&[&[0u8; 98]]), 250, 0);
        }
        // Each chunk is one 100-byte frame: 250 bytes need the last three.
        assert_eq!((log.base, log.head, log.kept), (7, 10, 300));
        assert_eq!(log.behind(7), Some(300));
        assert_eq!(log.behind(6), None, "let go: too far behind");
        let mut log = Log::default();
        for _ in 0..10 {
            log.push(chunk(&[&[0u8; 98]]), 0, 5);
        }
        assert_eq!((log.base, log.head), (5, 10));
    }

    #[test]
    fn sent_messages_go_oldest_first_and_only_past_the_bound() {
        let mut log = Log::default();
        for _ in 0..10 {
            log.push(chunk(&[&[0u8; 98]]), usize::MAX, 0);
        }
        // Each chunk: a 100-byte frame, its end, the chunk itself.
        let each = 100 + MESSAGE_COST + CHUNK_COST;
        assert_eq!(log.weight_from(0), 10 * each);
        assert_eq!(log.weight_from(7), 3 * each);
        log.let_go_sent(4, 2 * each + 50);
        assert_eq!((log.base, log.kept), (4, 600), "only what was sent goes");
        log.let_go_sent(10, 2 * each + 50);
        assert_eq!((log.base, log.kept), (8, 200), "down to the bound, not below");
        log.let_go_sent(10, 0);
        assert_eq!((log.base, log.head, log.kept), (10, 10, 0));
        assert_eq!(log.behind(10), Some(0), "the next to come is still known");
    }

    #[test]
    fn replay_goes_back_as_far_as_asked_within_the_queue() {
        let mut log = Log::default();
        for _ in 0..10 {
            log.push(chunk(&[&[0u8; 98]]), 1 << 20, 0);
        }
        assert_eq!(log.replay_start(3, 1 << 20), 7);
        assert_eq!(log.replay_start(100, 1 << 20), 0, "as far as the log goes");
        // 100-byte frames: 250 bytes reach back two messages.
        assert_eq!(log.replay_start(5, 250), 8);
        assert_eq!(log.replay_start(0, 250), 10, "no replay: the live end");
    }

    #[test]
    fn cutting_keeps_a_half_written_frame_whole_and_counts_the_rest() {
        let mut log = Log::default();
        log.push(chunk(&[b"xxxx", b"yyyy", b"zzzz"]), 1 << 20, 0);
        let (mut cursor, mut pending) = (0, Pending::default());
        log.take(&mut cursor, &mut pending);
        pending.advance(3);
        assert_eq!(pending.cut(), 2);
        assert_eq!(written(&mut pending), b"xxx");
        assert!(pending.is_empty());
        // At a frame boundary nothing is kept.
        let (mut cursor, mut pending) = (0, Pending::default());
        log.take(&mut cursor, &mut pending);
        pending.advance(6);
        assert_eq!(pending.cut(), 2);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_write_says_which_messages_it_completed_and_their_payload() {
        let mut log = Log::default();
        let big = vec![0u8; 300];
        let huge = vec![0u8; 70_000];
        log.push(chunk(&[b"xxxx", &big, &huge, &[]]), usize::MAX, 0);
        let (mut cursor, mut pending) = (0, Pending::default());
        log.take(&mut cursor, &mut pending);
        assert_eq!(pending.advance(3), Moved::default(), "a frame half written is not done");
        assert_eq!(pending.advance(3), Moved { messages: 1, bytes: 4 });
        let rest = usize::try_from(pending.unwritten()).unwrap();
        assert_eq!(pending.advance(rest), Moved { messages: 3, bytes: 70_300 });
    }

    #[test]
    fn frames_are_final_unmasked_with_the_right_length_form() {
        let mut buf = Vec::new();
        frame_into(&Message::Text("hi".into()), &mut buf);
        assert_eq!(&buf[..], [0x81, 2, b'h', b'i']);
        let mut buf = Vec::new();
        frame_into(&Message::Binary(Bytes::from(vec![7u8; 300])), &mut buf);
        assert_eq!(&buf[..4], [0x82, 126, 1, 44]);
        assert_eq!(buf.len(), 304);
    }
}
