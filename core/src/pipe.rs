//! The child's pipes: reading them without waiting and without holding memory while idle,
//! and the two sides of a relay made of them, [`PipeOutput`] (stdout, or stderr with
//! `--passstderr`, cut into messages) and [`PipeInput`] (client messages encoded onto
//! stdin through a bounded backlog).

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{Decoder, Encoder};
use websocketd_framing::{Frame, FrameCodec};

use crate::relay::{self, Filled};

/// How much one read from a child's pipe may bring.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Most bytes of client messages held for a child that is not reading its stdin (one more
/// message may come on top).
const STDIN_BACKLOG: usize = 1024 * 1024;
/// A backlog buffer bigger than this is let go once it is empty.
const BACKLOG_KEEP: usize = 64 * 1024;

/// One of the child's output pipes as a relay's output: its codec, and what has been read
/// but not sent.
#[derive(Debug)]
pub(crate) struct PipeOutput<'a> {
    pipe: &'a pipe::Receiver,
    codec: FrameCodec,
    buf: BytesMut,
    /// `stdout` or `stderr`, for the logs and `--passstderr`'s JSON.
    name: &'static str,
    /// Whether every line goes out as `--passstderr`'s JSON.
    json: bool,
}

impl<'a> PipeOutput<'a> {
    /// The pipe `name` (`stdout`, `stderr`) cut by `codec`; every line as JSON if `json`.
    pub(crate) fn new(
        pipe: &'a pipe::Receiver,
        codec: FrameCodec,
        name: &'static str,
        json: bool,
    ) -> Self {
        PipeOutput { pipe, codec, buf: BytesMut::new(), name, json }
    }

    /// Logs that the pipe failed: its output ends here.
    fn broke(&self, e: &io::Error) {
        let name = self.name.to_uppercase();
        tracing::error!(target: "process", "Unexpected error while reading {name} from process: {e}");
    }

    fn message(&self, frame: Frame) -> Message {
        if self.json { relay::json_line(self.name, frame.payload()) } else { relay::message(frame) }
    }
}

impl relay::Output for PipeOutput<'_> {
    fn fill(&mut self) -> Filled {
        match try_fill(self.pipe, &mut self.buf) {
            Ok(Some(0)) => Filled::End,
            Ok(Some(_)) => Filled::Data,
            Ok(None) => Filled::Nothing,
            Err(e) => {
                self.broke(&e);
                Filled::End
            }
        }
    }

    fn take(&mut self) -> Result<Option<Message>, websocketd_framing::Error> {
        Ok(self.codec.decode(&mut self.buf)?.map(|frame| self.message(frame)))
    }

    fn take_rest(&mut self) -> Result<Option<Message>, websocketd_framing::Error> {
        Ok(self.codec.decode_eof(&mut self.buf)?.map(|frame| self.message(frame)))
    }

    fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    fn take_partial(&mut self) -> Option<Message> {
        // Line mode only (`--flushms` is refused with the others): the rest is one line.
        self.codec.decode_eof(&mut self.buf).ok().flatten().map(|frame| self.message(frame))
    }

    async fn ready(&self) -> bool {
        match self.pipe.readable().await {
            Ok(()) => true,
            Err(e) => {
                self.broke(&e);
                false
            }
        }
    }
}

/// The child's stdin as a relay's input: client messages encoded into a backlog of at most
/// [`STDIN_BACKLOG`] bytes (and one message), written as the child takes it. Once a write
/// fails, the child takes no more input and what comes is dropped.
#[derive(Debug)]
pub(crate) struct PipeInput {
    stdin: Option<pipe::Sender>,
    codec: FrameCodec,
    backlog: BytesMut,
}

impl PipeInput {
    /// `stdin`, with client messages encoded by `codec`.
    pub(crate) fn new(stdin: pipe::Sender, codec: FrameCodec) -> PipeInput {
        PipeInput { stdin: Some(stdin), codec, backlog: BytesMut::new() }
    }
}

impl relay::Input for PipeInput {
    fn is_full(&self) -> bool {
        self.backlog.len() >= STDIN_BACKLOG
    }

    fn push(&mut self, frame: Frame) {
        if self.stdin.is_some() {
            // Cannot fail: the protocol layer holds messages to the same limit as the
            // length-prefixed encoder, and the others never fail.
            let _ = self.codec.encode(frame, &mut self.backlog);
        }
    }

    async fn write(&mut self) {
        let Some(stdin) = self.stdin.as_mut().filter(|_| !self.backlog.is_empty()) else {
            return std::future::pending().await;
        };
        match stdin.write(&self.backlog).await {
            Ok(n) => {
                self.backlog.advance(n);
                if self.backlog.is_empty() && self.backlog.capacity() > BACKLOG_KEEP {
                    self.backlog = BytesMut::new();
                }
            }
            Err(e) => {
                tracing::debug!(target: "process", "Cannot write to STDIN: {e}; dropping input");
                self.stdin = None;
                self.backlog = BytesMut::new();
            }
        }
    }
}

/// Reads what the pipe has into `buf` without waiting: `Ok(Some(0))` at end of file,
/// `Ok(None)` when nothing is there yet (wait with `readable()` and call again).
///
/// The buffer grows only when a read is about to happen, and an empty one is let go when
/// the pipe runs dry, so an idle pipe holds no memory.
pub(crate) fn try_fill(rx: &pipe::Receiver, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        match rx.try_read_buf(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    *buf = BytesMut::new();
                }
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A pseudo-terminal's master (`--pty`) says so when no one holds the slave any
            // more: the end of the output. A pipe never does.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EIO as i32) => {
                return Ok(Some(0));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads into `buf`, waiting until there is something. Returns 0 at end of file.
pub async fn read_some(rx: &pipe::Receiver, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        if let Some(n) = try_fill(rx, buf)? {
            return Ok(n);
        }
        rx.readable().await?;
    }
}

/// Reads the pipe to its end and throws what comes away.
pub(crate) async fn discard(rx: &pipe::Receiver) {
    let mut buf = BytesMut::new();
    while let Ok(n) = read_some(rx, &mut buf).await {
        if n == 0 {
            break;
        }
        buf.clear();
    }
}
