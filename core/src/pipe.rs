//! The child's pipes: reading them without waiting and without holding memory while idle,
//! and the two sides of a relay made of them, [`PipeOutput`] (stdout, or stderr with
//! `--passstderr`, cut into messages) and [`PipeInput`] (client messages encoded onto
//! stdin through a bounded backlog).

use std::io;
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BytesMut};
use nix::fcntl::{FcntlArg, fcntl};
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
/// Client messages that have already arrived are gathered up to this much (what a pipe of
/// the default size holds) before a write to the program's stdin.
const WRITE_BATCH: usize = DEFAULT_PIPE;
/// Linux's default pipe size (16 pages of 4 KiB): a read of this much found the pipe full.
const DEFAULT_PIPE: usize = 64 * 1024;
/// What a program's output pipe grows to once it is seen full: the program writes faster
/// than one read a wake-up takes, and with Linux's default 64 KiB it would stop at every
/// read for the server to catch up. Measured on the 64 KiB download (A/B in both orders):
/// 256 KiB moved about 30% more than 64 KiB, and 12-14% more than 1 MiB.
const GROWN_PIPE: usize = 256 * 1024;
/// How many times a program's stdin is found full, with nothing come back from it yet,
/// before it grows to [`GROWN_PIPE`]: a program that only takes input (an upload into
/// `tar x`, `cat > file`) then takes it in larger reads. One that answers keeps the default:
/// with a large stdin pipe an echoing program's one read takes in all the client has in
/// flight, and reading, echoing and sending stop overlapping (measured: the 64 KiB binary
/// echo lost 20-26%, while the upload gained about 80%).
const STDIN_FULL_BEFORE_GROWTH: u8 = 4;
/// Most pipes grown at once in the whole server, however much the kernel allows.
const GROWN_MOST: usize = 256;
/// How many pipes are grown now.
static GROWN: AtomicUsize = AtomicUsize::new(0);

/// How many pipes may be grown at once. The kernel counts every pipe's size against
/// its user's `fs.pipe-user-pages-soft` (16384 pages, 64 MiB, by default); past it, every
/// new pipe of an unprivileged user gets two pages. Growth takes at most a quarter of that
/// (85 pipes by default), at most [`GROWN_MOST`], and as many when there is no limit.
fn most_grown() -> usize {
    static MOST: OnceLock<usize> = OnceLock::new();
    *MOST.get_or_init(|| {
        let soft = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        share_of(soft)
    })
}

/// [`most_grown`] for a soft limit of `pages` (0: none; `None`: not known).
fn share_of(pages: Option<usize>) -> usize {
    match pages {
        None | Some(0) => GROWN_MOST,
        // Pages of 4 KiB: with larger pages the default pipe is already this big, and
        // nothing grows.
        Some(pages) => {
            (pages.saturating_mul(4096) / 4 / (GROWN_PIPE - DEFAULT_PIPE)).clamp(1, GROWN_MOST)
        }
    }
}

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
    growth: Growth,
}

/// Whether a pipe (output, or stdin) has grown to [`GROWN_PIPE`].
#[derive(Debug)]
enum Growth {
    /// Not yet: it has not been seen full.
    Not,
    /// It has, and holds one of the [`most_grown`] places until the output is dropped.
    Grown,
    /// It could not or need not (it is that big already, the server's places were taken,
    /// the kernel refused, or it is a terminal); not tried again.
    Refused,
}

impl Growth {
    /// Grows `pipe` if it is smaller, a place is free and the kernel allows it.
    fn grow(pipe: impl AsFd) -> Growth {
        // A pipe of larger pages (or one a program grew itself) may be this big already.
        match fcntl(&pipe, FcntlArg::F_GETPIPE_SZ) {
            Ok(size) if usize::try_from(size).is_ok_and(|size| size < GROWN_PIPE) => {}
            _ => return Growth::Refused,
        }
        let most = most_grown();
        let taken = GROWN
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < most).then_some(n + 1));
        if taken.is_err() {
            return Growth::Refused;
        }
        #[expect(clippy::cast_possible_wrap, reason = "256 KiB fits")]
        match fcntl(pipe, FcntlArg::F_SETPIPE_SZ(GROWN_PIPE as i32)) {
            Ok(_) => Growth::Grown,
            Err(e) => {
                // An unprivileged user past its pipe pages (EPERM), or a pseudo-terminal.
                tracing::debug!(target: "process", "Pipe not grown: {e}");
                GROWN.fetch_sub(1, Ordering::Relaxed);
                Growth::Refused
            }
        }
    }
}

impl Drop for Growth {
    fn drop(&mut self) {
        if matches!(self, Growth::Grown) {
            GROWN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<'a> PipeOutput<'a> {
    /// The pipe `name` (`stdout`, `stderr`) cut by `codec`; every line as JSON if `json`.
    pub(crate) fn new(
        pipe: &'a pipe::Receiver,
        codec: FrameCodec,
        name: &'static str,
        json: bool,
    ) -> Self {
        PipeOutput { pipe, codec, buf: BytesMut::new(), name, json, growth: Growth::Not }
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
            Ok(Some(n)) => {
                // A read this big found the pipe full (at its default size): the program
                // has been waiting for us.
                if n >= DEFAULT_PIPE && matches!(self.growth, Growth::Not) {
                    self.growth = Growth::grow(self.pipe);
                }
                Filled::Data
            }
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
    growth: Growth,
    /// How many writes found stdin full while the program had sent nothing back.
    full: u8,
}

impl PipeInput {
    /// `stdin`, with client messages encoded by `codec`.
    pub(crate) fn new(stdin: pipe::Sender, codec: FrameCodec) -> PipeInput {
        PipeInput {
            stdin: Some(stdin),
            codec,
            backlog: BytesMut::new(),
            growth: Growth::Not,
            full: 0,
        }
    }
}

impl relay::Input for PipeInput {
    fn is_full(&self) -> bool {
        self.backlog.len() >= STDIN_BACKLOG
    }

    fn wants_more(&self) -> bool {
        self.stdin.is_some() && self.backlog.len() < WRITE_BATCH
    }

    fn push(&mut self, frame: Frame) {
        if self.stdin.is_some() {
            // Cannot fail: the protocol layer holds messages to the same limit as the
            // length-prefixed encoder, and the others never fail.
            let _ = self.codec.encode(frame, &mut self.backlog);
        }
    }

    async fn write(&mut self, nothing_back: bool) {
        let Some(stdin) = self.stdin.as_mut().filter(|_| !self.backlog.is_empty()) else {
            return std::future::pending().await;
        };
        match stdin.write(&self.backlog).await {
            Ok(n) => {
                // Less taken than offered: the pipe is full, and the program busy.
                if n < self.backlog.len() && nothing_back && matches!(self.growth, Growth::Not) {
                    self.full += 1;
                    if self.full >= STDIN_FULL_BEFORE_GROWTH {
                        self.growth = Growth::grow(&*stdin);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{Input, Output};
    use websocketd_framing::ChunkCodec;

    fn size(rx: &pipe::Receiver) -> i32 {
        fcntl(rx, FcntlArg::F_GETPIPE_SZ).unwrap()
    }

    #[tokio::test]
    async fn an_output_pipe_grows_once_it_is_seen_full() {
        let (mut tx, rx) = pipe::pipe().unwrap();
        let default = size(&rx);
        let mut out =
            PipeOutput::new(&rx, FrameCodec::Chunks(ChunkCodec::new(READ_CHUNK)), "stdout", false);
        // A little at a time: the program is not waiting for us.
        tx.write_all(&[1; 1000]).await.unwrap();
        assert!(out.ready().await);
        assert_eq!(out.fill(), Filled::Data);
        assert_eq!(out.take().unwrap().unwrap().len(), 1000);
        assert_eq!(size(&rx), default);
        // A full pipe: it grows, and the program can write four times as much before it
        // waits.
        tx.write_all(&vec![2; READ_CHUNK]).await.unwrap();
        assert!(out.ready().await);
        assert_eq!(out.fill(), Filled::Data);
        assert_eq!(out.take().unwrap().unwrap().len(), READ_CHUNK);
        assert_eq!(size(&rx), GROWN_PIPE as i32);
        assert!(matches!(out.growth, Growth::Grown));
        let mut written = 0;
        while let Ok(n) = nix::unistd::write(&tx, &[3; READ_CHUNK]) {
            written += n;
        }
        assert_eq!(written, GROWN_PIPE);
        // Seen full again: nothing more is tried.
        assert_eq!(out.fill(), Filled::Data);
        assert!(matches!(out.growth, Growth::Grown));
        drop(out);
        // Its place is given back (other tests may hold some meanwhile).
        assert!(GROWN.load(Ordering::Relaxed) < GROWN_MOST);
    }

    /// Writes a message of twice the default pipe to `input` (first half, found full, then
    /// the rest), `rx` drained in between as a program would; the pipe's size afterwards.
    async fn upload_one(input: &mut PipeInput, rx: &pipe::Receiver, nothing_back: bool) -> i32 {
        input.push(Frame::Binary(vec![7; 2 * DEFAULT_PIPE].into()));
        while !input.backlog.is_empty() {
            input.write(nothing_back).await;
            let mut buf = vec![0; GROWN_PIPE];
            while nix::unistd::read(rx, &mut buf).is_ok_and(|n| n > 0) {}
        }
        size(rx)
    }

    #[tokio::test]
    async fn stdin_grows_when_found_full_while_the_program_sends_nothing_back() {
        let (tx, rx) = pipe::pipe().unwrap();
        let default = size(&rx);
        let mut input = PipeInput::new(tx, FrameCodec::Chunks(ChunkCodec::new(READ_CHUNK)));
        for _ in 1..STDIN_FULL_BEFORE_GROWTH {
            assert_eq!(upload_one(&mut input, &rx, true).await, default);
        }
        assert_eq!(upload_one(&mut input, &rx, true).await, GROWN_PIPE as i32);
        assert!(matches!(input.growth, Growth::Grown));
    }

    #[tokio::test]
    async fn stdin_keeps_its_size_once_the_program_answers() {
        let (tx, rx) = pipe::pipe().unwrap();
        let default = size(&rx);
        let mut input = PipeInput::new(tx, FrameCodec::Chunks(ChunkCodec::new(READ_CHUNK)));
        for _ in 0..2 * STDIN_FULL_BEFORE_GROWTH {
            assert_eq!(upload_one(&mut input, &rx, false).await, default);
        }
        assert!(matches!(input.growth, Growth::Not));
    }

    #[tokio::test]
    async fn a_pipe_already_that_big_is_left_as_it_is() {
        let (_tx, rx) = pipe::pipe().unwrap();
        fcntl(&rx, FcntlArg::F_SETPIPE_SZ(1 << 20)).unwrap();
        assert!(matches!(Growth::grow(&rx), Growth::Refused));
        assert_eq!(size(&rx), 1 << 20);
    }

    #[test]
    fn growth_takes_a_quarter_of_the_kernels_pipe_pages() {
        // The default 16384 pages (64 MiB): 16 MiB of growth, 192 KiB a pipe.
        assert_eq!(share_of(Some(16384)), 85);
        assert_eq!(share_of(Some(1)), 1);
        assert_eq!(share_of(Some(usize::MAX)), GROWN_MOST);
        assert_eq!(share_of(Some(0)), GROWN_MOST);
        assert_eq!(share_of(None), GROWN_MOST);
    }

    #[tokio::test]
    async fn a_terminal_is_not_grown() {
        let (master, _slave) = crate::pty::open_raw().unwrap();
        let master = pipe::Receiver::from_owned_fd_unchecked(master).unwrap();
        assert!(matches!(Growth::grow(&master), Growth::Refused));
    }
}
