//! The bridge between one WebSocket and one child process.
//!
//! Two pumps run side by side in the session's task and never wait on each other:
//! - out: stdout is read in large chunks, cut into frames in place, and every frame that is
//!   ready is queued on the socket before one flush, so many frames share a system call. When
//!   the client reads slowly the flush waits, stdout is no longer read, and the child blocks
//!   on its pipe: memory stays bounded.
//! - in: client messages are encoded into a bounded backlog that is written to stdin as the
//!   child takes it. While the backlog is full no more messages are read; while the child is
//!   not reading, the session still ends as soon as the client leaves.
//!
//! Whoever ends first decides the rest. If stdout closes, everything already read is sent,
//! the child is reaped (through the termination ladder if it lingers) and a Close frame
//! carries its exit status: 1000 for status 0, else 1011 with `exit status N` or
//! `killed by signal S`. If the client leaves, the socket is closed at once and the child
//! goes through the ladder while its remaining output is discarded.

use std::future::Future;
use std::pin::{Pin, pin};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::codec::{Decoder, Encoder};
use tracing::Instrument;
use websocketd_framing::{Frame, FrameCodec, Framing};

use crate::child::{self, Child, Ladder, Pipes};
use crate::command::Command;
use crate::env::{EnvSettings, RequestInfo};

/// Most bytes of client messages held for a child that is not reading its stdin (one more
/// message may come on top).
const STDIN_BACKLOG: usize = 1024 * 1024;
/// A backlog buffer bigger than this is let go once it is empty.
const BACKLOG_KEEP: usize = 64 * 1024;
/// How long a close handshake may take before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the last stderr lines may take to be logged once the process group is gone (a
/// process that left the group may still hold the pipe): the session's last line,
/// DISCONNECT, comes after them.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// What every session of one endpoint shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How its stdio is cut into messages.
    pub framing: Framing,
    /// The largest message in either direction; longer output is sent in pieces.
    pub max_message: usize,
    /// Added to every wait of the termination ladder (`--closems`).
    pub closems: Duration,
    /// Server-wide environment inputs.
    pub env: EnvSettings,
    /// Send stderr lines to the client too, every line as JSON (`--passstderr`).
    pub pass_stderr: bool,
    /// Ping the client this often, and drop it when silent for twice as long (`--pingms`).
    pub ping: Option<Duration>,
    /// The server's shutdown: when it begins, the client gets Close 1001 and the child the
    /// termination ladder.
    pub shutdown: crate::Shutdown,
}

/// The client side of a session: a stream and sink of WebSocket messages.
pub trait Socket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin + Send
{
    /// Called after a Close that answers a broken message (too big, bad UTF-8, protocol
    /// error): ends our side and throws away what the client still sends, for a bounded time
    /// and in constant memory, so that dropping the connection does not reset it before the
    /// client has read the Close.
    fn linger(&mut self) -> impl Future<Output = ()> + Send;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for WebSocketStream<T> {
    async fn linger(&mut self) {
        let io = self.get_mut();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = io.shutdown().await;
            // On the heap: an array here would sit in every session's future.
            let mut scratch = vec![0u8; 4096];
            while let Ok(1..) = io.read(&mut scratch).await {}
        })
        .await;
    }
}

/// The socket of a session, still to come: the WebSocket upgrade, resolving to `None` if it
/// fails. Boxed, so that a session's future keeps a pointer to it, not the whole upgrade.
pub type Upgrade<S> = Pin<Box<dyn Future<Output = Option<S>> + Send>>;

/// Runs one session to its end: waits for the upgrade to finish, spawns the child, relays,
/// and sees the child dead and reaped. `slot` (a `--maxforks` permit) is released only after
/// that.
pub fn run<S: Socket + 'static>(
    socket: Upgrade<S>,
    req: &RequestInfo,
    command: Arc<Command>,
    config: Arc<SessionConfig>,
    slot: Option<OwnedSemaphorePermit>,
) -> impl Future<Output = ()> + Send + use<S> {
    let span = tracing::info_span!(
        target: "session",
        "session",
        url = %req.url(),
        id = req.id,
        remote = %req.remote_label(),
        command = %command.program.display(),
        origin = %req.origin(),
        pid = tracing::field::Empty,
        exit = tracing::field::Empty,
    );
    // What can be done now is done now: an async fn keeps its arguments for its whole life,
    // so the request (needed only for the environment) stays out of every session's future.
    let env = req.cgi_env(&config.env);
    lifetime(socket, env, command, config, slot).instrument(span)
}

async fn lifetime<S: Socket>(
    socket: Upgrade<S>,
    env: Vec<(String, String)>,
    command: Arc<Command>,
    config: Arc<SessionConfig>,
    slot: Option<OwnedSemaphorePermit>,
) {
    let Some(ws) = socket.await else { return };
    let (mut tx, mut rx) = ws.split();
    crate::access!(target: "session", "CONNECT");
    let exit = if config.shutdown.is_begun() {
        // Upgraded just as the server began to stop: no child is started any more. (Boxed: it
        // is rare, and would otherwise take room in every session's future.)
        Box::pin(close_after(&mut tx, &mut rx, Some(going_away()))).await;
        Exit::NotStarted
    } else {
        session(tx, rx, env, &command, &config).await
    };
    // The child is reaped: its slot is free before anyone reads that the session is over.
    drop(slot);
    tracing::Span::current().record("exit", tracing::field::display(exit));
    crate::access!(target: "session", "DISCONNECT");
}

/// How the program ended, for the DISCONNECT line's `exit` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// No program was started (the spawn failed, or the server was shutting down).
    NotStarted,
    /// It was reaped with this status.
    Ended(ExitStatus),
    /// Not even SIGKILL ended it.
    Unknown,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Exit::NotStarted => f.write_str("not started"),
            Exit::Unknown => f.write_str("did not exit"),
            Exit::Ended(status) => match (status.code(), status.signal()) {
                (Some(code), _) => write!(f, "status {code}"),
                (None, Some(n)) => match nix::sys::signal::Signal::try_from(n) {
                    Ok(signal) => write!(f, "signal {n} ({})", signal.as_str()),
                    Err(_) => write!(f, "signal {n}"),
                },
                (None, None) => f.write_str("unknown"),
            },
        }
    }
}

/// How the relay ended.
enum End {
    /// The child closed stdout; everything was sent.
    StdoutClosed,
    /// The child's output broke its framing.
    BadOutput(websocketd_framing::Error),
    /// The client left, in this way.
    ClientLeft(Gone),
    /// The server is shutting down.
    Shutdown,
}

/// How the client left.
enum Gone {
    /// A Close frame (already answered by the protocol layer).
    Closed,
    /// The connection ended or failed.
    Error(WsError),
    /// Nothing came from the client for twice the ping interval.
    Silent,
}

async fn session<S: Socket>(
    mut tx: SplitSink<S, Message>,
    mut rx: SplitStream<S>,
    env: Vec<(String, String)>,
    command: &Command,
    config: &SessionConfig,
) -> Exit {
    let spawned = Child::spawn(command.program.clone(), command.args.clone(), env).await;
    let (mut child, pipes) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            tracing::error!(target: "process", "Could not launch process {} ({e})", command.line());
            let frame = close_frame(CloseCode::Error, "could not launch process");
            close_after(&mut tx, &mut rx, Some(frame)).await;
            return Exit::NotStarted;
        }
    };
    tracing::Span::current().record("pid", child.pid());
    let Pipes { stdin, stdout, stderr } = pipes;
    let (passed_stderr, logging_stderr) = if config.pass_stderr {
        (Some(stderr), None)
    } else {
        let drain = child::drain_stderr(stderr).instrument(tracing::Span::current());
        (None, Some(tokio::spawn(drain)))
    };

    let codec = config.framing.codec(config.max_message);
    let extras = Extras { stderr: passed_stderr.as_ref(), ping: config.ping };
    // When the client was last heard from, in milliseconds since `start`.
    let start = Instant::now();
    let heard = AtomicU64::new(0);
    let silence = config.ping.map(|every| every * 2);
    let end = {
        let mut out = pin!(pump_out(&stdout, codec.clone(), &mut tx, extras));
        let mut inp = pin!(pump_in(&mut rx, stdin, codec, (start, &heard)));
        let mut reaping = true;
        loop {
            let last_heard = start + Duration::from_millis(heard.load(Ordering::Relaxed));
            tokio::select! {
                end = &mut out => break end,
                gone = &mut inp => break End::ClientLeft(gone),
                () = config.shutdown.begun() => break End::Shutdown,
                // Reap a child that exits while something else still holds its stdout.
                _ = child.wait(), if reaping => reaping = false,
                () = until(silence.map(|s| last_heard + s)) => {
                    let last_heard = start + Duration::from_millis(heard.load(Ordering::Relaxed));
                    if silence.is_some_and(|s| last_heard.elapsed() >= s) {
                        break End::ClientLeft(Gone::Silent);
                    }
                }
            }
        }
        // Leaving this block drops the pumps, and with them the child's stdin.
    };

    // The ending is boxed: it runs once, and keeping it out of the relay's state keeps every
    // idle session's future small.
    Box::pin(ending(end, child, stdout, tx, rx, config, logging_stderr)).await
}

/// After the relay: report or stop the child, close the connection, end the group, and see
/// the last of its stderr logged.
async fn ending<S: Socket>(
    end: End,
    mut child: Child,
    stdout: pipe::Receiver,
    mut tx: SplitSink<S, Message>,
    mut rx: SplitStream<S>,
    config: &SessionConfig,
    logging_stderr: Option<tokio::task::JoinHandle<()>>,
) -> Exit {
    let mut ladder = child.ladder(config.closems);
    match end {
        End::StdoutClosed => {
            tracing::debug!(target: "process", "Process STDOUT closed");
            let status = child.reap(&mut ladder).await;
            close_after(&mut tx, &mut rx, Some(close_for_status(status))).await;
            drop((tx, rx));
            child.finish(&mut ladder).await;
        }
        End::BadOutput(e) => {
            // The child's error: tell the client while the child is stopped.
            tracing::error!(target: "process", "Unusable output from process: {e}");
            let frame = close_frame(CloseCode::Error, "invalid output from process");
            let goodbye = async move {
                close_after(&mut tx, &mut rx, Some(frame)).await;
            };
            tokio::join!(goodbye, stop(&mut child, &mut ladder, &stdout));
        }
        End::Shutdown => {
            tracing::debug!(target: "session", "Server shutting down: closing with 1001");
            let goodbye = async move {
                close_after(&mut tx, &mut rx, Some(going_away())).await;
            };
            tokio::join!(goodbye, stop(&mut child, &mut ladder, &stdout));
        }
        End::ClientLeft(gone) => {
            let reply = match gone {
                Gone::Closed => None,
                Gone::Silent => {
                    tracing::debug!(target: "websocket", "No answer to pings: disconnecting");
                    Some(close_frame(CloseCode::Away, "ping timeout"))
                }
                Gone::Error(e) => {
                    tracing::debug!(target: "websocket", "Cannot receive: {e}");
                    close_for_error(&e)
                }
            };
            // Tell the client (bounded) while the child is already on its way down.
            let broken = reply.is_some();
            let goodbye = async move {
                close_now(&mut tx, reply).await;
                if broken {
                    if let Ok(mut ws) = tx.reunite(rx) {
                        ws.linger().await;
                    }
                }
            };
            tokio::join!(goodbye, stop(&mut child, &mut ladder, &stdout));
        }
    }
    if let Some(mut drain) = logging_stderr {
        if tokio::time::timeout(STDERR_GRACE, &mut drain).await.is_err() {
            tracing::debug!(target: "process", "STDERR still open after the process group ended: no longer logged");
            drain.abort();
        }
    }
    match child.status() {
        Some(status) => Exit::Ended(status),
        None => Exit::Unknown,
    }
}

/// Climbs the ladder to the end, draining stdout meanwhile so that a child blocked on it can
/// see stdin's end and exit.
async fn stop(child: &mut Child, ladder: &mut Ladder, stdout: &pipe::Receiver) {
    let mut ladder_done = pin!(async {
        child.reap(ladder).await;
        child.finish(ladder).await;
    });
    let mut drain = pin!(discard(stdout));
    let mut draining = true;
    loop {
        tokio::select! {
            () = &mut ladder_done => break,
            () = &mut drain, if draining => draining = false,
        }
    }
}

/// What the out pump sends besides stdout.
#[derive(Clone, Copy)]
struct Extras<'a> {
    /// With `--passstderr`: stderr, whose lines go to the client too, every line as JSON.
    stderr: Option<&'a pipe::Receiver>,
    /// With `--pingms`: how often to ping the client.
    ping: Option<Duration>,
}

/// stdout → socket. Returns when stdout closes (everything sent and flushed), the output
/// breaks the framing, or the client cannot be written to.
async fn pump_out<W>(
    stdout: &pipe::Receiver,
    codec: FrameCodec,
    tx: &mut W,
    extras: Extras<'_>,
) -> End
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    let json = extras.stderr.is_some();
    let mut out =
        Source { pipe: stdout, codec: codec.clone(), buf: BytesMut::new(), name: "stdout" };
    let mut err =
        extras.stderr.map(|pipe| Source { pipe, codec, buf: BytesMut::new(), name: "stderr" });
    let mut next_ping = extras.ping.map(|every| Instant::now() + every);
    let result: Result<(), End> = async {
        loop {
            out.send_ready(tx, json).await?;
            if let Some(err) = &mut err {
                err.send_ready(tx, json).await?;
            }
            if let (Some(at), Some(every)) = (next_ping, extras.ping) {
                if Instant::now() >= at {
                    tx.feed(Message::Ping(Bytes::new())).await.map_err(client_error)?;
                    next_ping = Some(Instant::now() + every);
                }
            }
            match out.fill() {
                Filled::Data => continue,
                Filled::End => break,
                Filled::Nothing => {}
            }
            if let Some(source) = &mut err {
                match source.fill() {
                    Filled::Data => continue,
                    Filled::End => {
                        source.send_rest(tx, json).await?;
                        err = None;
                        continue;
                    }
                    Filled::Nothing => {}
                }
            }
            // Nothing more to read now: send what is queued, then wait.
            tx.flush().await.map_err(client_error)?;
            let stderr = err.as_ref().map(|e| e.pipe);
            tokio::select! {
                ready = stdout.readable() => if let Err(e) = ready {
                    tracing::error!(target: "process", "Unexpected error while reading STDOUT from process: {e}");
                    break;
                },
                ready = readable(stderr), if stderr.is_some() => if ready.is_err() {
                    err = None;
                },
                () = until(next_ping) => {}
            }
        }
        out.send_rest(tx, json).await?;
        // What the child wrote to stderr before closing stdout is in the pipe by now.
        if let Some(mut source) = err {
            while let Filled::Data = source.fill() {}
            source.send_rest(tx, json).await?;
        }
        tx.flush().await.map_err(client_error)
    }
    .await;
    match result {
        Ok(()) => End::StdoutClosed,
        Err(end) => end,
    }
}

/// One of the child's output pipes, its codec and what has been read but not sent.
struct Source<'a> {
    pipe: &'a pipe::Receiver,
    codec: FrameCodec,
    buf: BytesMut,
    name: &'static str,
}

/// What one read brought.
enum Filled {
    /// Some bytes.
    Data,
    /// Nothing yet.
    Nothing,
    /// The end (or a read error, logged).
    End,
}

impl Source<'_> {
    /// Reads what the pipe has, without waiting.
    fn fill(&mut self) -> Filled {
        match child::try_fill(self.pipe, &mut self.buf) {
            Ok(Some(0)) => Filled::End,
            Ok(Some(_)) => Filled::Data,
            Ok(None) => Filled::Nothing,
            Err(e) => {
                let name = self.name.to_uppercase();
                tracing::error!(target: "process", "Unexpected error while reading {name} from process: {e}");
                Filled::End
            }
        }
    }

    /// Queues every frame that is complete.
    async fn send_ready<W>(&mut self, tx: &mut W, json: bool) -> Result<(), End>
    where
        W: Sink<Message, Error = WsError> + Unpin,
    {
        while let Some(frame) = self.codec.decode(&mut self.buf).map_err(End::BadOutput)? {
            // Writes are buffered and reads do not wait, so a busy child could keep this
            // task running indefinitely: each frame costs a unit of the task's budget, and
            // other sessions get their turn when it runs out.
            tokio::task::consume_budget().await;
            tx.feed(self.message(frame, json)).await.map_err(client_error)?;
        }
        Ok(())
    }

    /// Queues the frames left at the end of the stream, a last partial line included.
    async fn send_rest<W>(&mut self, tx: &mut W, json: bool) -> Result<(), End>
    where
        W: Sink<Message, Error = WsError> + Unpin,
    {
        while let Some(frame) = self.codec.decode_eof(&mut self.buf).map_err(End::BadOutput)? {
            tx.feed(self.message(frame, json)).await.map_err(client_error)?;
        }
        Ok(())
    }

    fn message(&self, frame: Frame, json: bool) -> Message {
        if json {
            Message::Text(json_line(self.name, frame.payload()).into())
        } else {
            message(frame)
        }
    }
}

/// `{"stream":"<stream>","data":"<line>"}`, the line made valid UTF-8 and escaped for JSON.
fn json_line(stream: &str, line: &[u8]) -> String {
    use std::fmt::Write;
    let data = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(data.len() + 32);
    out.push_str("{\"stream\":\"");
    out.push_str(stream);
    out.push_str("\",\"data\":\"");
    for c in data.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}

async fn readable(pipe: Option<&pipe::Receiver>) -> std::io::Result<()> {
    match pipe {
        Some(pipe) => pipe.readable().await,
        None => std::future::pending().await,
    }
}

/// Waits until `deadline`, or forever. The timer is boxed: it exists only with `--pingms`,
/// and inline it would make every session's future bigger.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => Box::pin(tokio::time::sleep_until(at)).await,
        None => std::future::pending().await,
    }
}

/// Socket → stdin. Returns when the client leaves. If the child stops taking stdin, later
/// messages are dropped while the session goes on.
async fn pump_in<R>(
    rx: &mut R,
    stdin: pipe::Sender,
    mut codec: FrameCodec,
    (start, heard): (Instant, &AtomicU64),
) -> Gone
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut stdin = Some(stdin);
    let mut backlog = BytesMut::new();
    loop {
        let writing = stdin.is_some() && !backlog.is_empty();
        tokio::select! {
            written = write_some(stdin.as_mut(), &backlog), if writing => match written {
                Ok(n) => {
                    backlog.advance(n);
                    if backlog.is_empty() && backlog.capacity() > BACKLOG_KEEP {
                        backlog = BytesMut::new();
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "process", "Cannot write to STDIN: {e}; dropping input");
                    stdin = None;
                    backlog = BytesMut::new();
                }
            },
            msg = async { tokio::task::consume_budget().await; rx.next().await }, if backlog.len() < STDIN_BACKLOG => {
                if matches!(msg, Some(Ok(_))) {
                    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    heard.store(ms, Ordering::Relaxed);
                }
                let frame = match msg {
                    None => return Gone::Error(WsError::ConnectionClosed),
                    Some(Err(e)) => return Gone::Error(e),
                    Some(Ok(Message::Close(_))) => return Gone::Closed,
                    Some(Ok(Message::Text(text))) => Frame::Text(text.into()),
                    Some(Ok(Message::Binary(data))) => Frame::Binary(data),
                    Some(Ok(_)) => continue,
                };
                if stdin.is_some() {
                    // Cannot fail: the protocol layer holds messages to the same limit as the
                    // length-prefixed encoder, and the others never fail.
                    let _ = codec.encode(frame, &mut backlog);
                }
            }
        }
    }
}

async fn write_some(stdin: Option<&mut pipe::Sender>, data: &[u8]) -> std::io::Result<usize> {
    match stdin {
        Some(stdin) => stdin.write(data).await,
        None => std::future::pending().await,
    }
}

/// Reads stdout to its end and throws it away.
async fn discard(stdout: &pipe::Receiver) {
    let mut buf = BytesMut::new();
    while let Ok(n) = child::read_some(stdout, &mut buf).await {
        if n == 0 {
            break;
        }
        buf.clear();
    }
}

/// A frame from the child as a WebSocket message; text is made valid UTF-8.
fn message(frame: Frame) -> Message {
    match frame {
        Frame::Binary(data) => Message::Binary(data),
        Frame::Text(data) => Message::Text(utf8(&data)),
    }
}

/// The bytes as UTF-8, without a copy when they are valid; invalid sequences become U+FFFD.
fn utf8(data: &Bytes) -> Utf8Bytes {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => text,
        Err(_) => String::from_utf8_lossy(data).into_owned().into(),
    }
}

fn client_error(e: WsError) -> End {
    End::ClientLeft(Gone::Error(e))
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame { code, reason: reason.to_owned().into() }
}

/// The Close frame of a server that shuts down.
fn going_away() -> CloseFrame {
    close_frame(CloseCode::Away, "server shutting down")
}

/// The Close frame that reports how the child ended.
fn close_for_status(status: Option<ExitStatus>) -> CloseFrame {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.success() => close_frame(CloseCode::Normal, ""),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => close_frame(CloseCode::Error, &format!("exit status {code}")),
            (None, Some(sig)) => close_frame(CloseCode::Error, &format!("killed by signal {sig}")),
            _ => close_frame(CloseCode::Error, "process ended"),
        },
        None => close_frame(CloseCode::Error, "process did not exit"),
    }
}

/// The Close frame that answers a failed read, if the client can still be told.
fn close_for_error(e: &WsError) -> Option<CloseFrame> {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match e {
        WsError::Utf8(_) => Some(close_frame(CloseCode::Invalid, "invalid UTF-8 in text message")),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some(close_frame(CloseCode::Size, "message too big"))
        }
        WsError::Capacity(_) => Some(close_frame(CloseCode::Size, "frame too big")),
        WsError::Protocol(p) => Some(close_frame(CloseCode::Protocol, &p.to_string())),
        _ => None,
    }
}

/// Sends `frame` (if any) and finishes the close without waiting for the client's answer.
async fn close_now<W>(tx: &mut W, frame: Option<CloseFrame>)
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if let Some(frame) = frame {
            tx.send(Message::Close(Some(frame))).await?;
        }
        tx.close().await
    })
    .await;
}

/// Sends `frame` and waits (bounded) for the client's Close in reply, dropping anything
/// else it still sends.
async fn close_after<W, R>(tx: &mut W, rx: &mut R, frame: Option<CloseFrame>)
where
    W: Sink<Message, Error = WsError> + Unpin,
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        tx.send(Message::Close(frame)).await?;
        while let Some(msg) = rx.next().await {
            if matches!(msg, Err(_) | Ok(Message::Close(_))) {
                break;
            }
        }
        tx.close().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    use super::*;

    /// A socket made of two channels: what the test sends comes out of the stream, what the
    /// session sends goes into `sent`.
    struct ChannelSocket {
        incoming: mpsc::UnboundedReceiver<Result<Message, WsError>>,
        sent: mpsc::UnboundedSender<Message>,
    }

    impl Stream for ChannelSocket {
        type Item = Result<Message, WsError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx)
        }
    }

    impl Sink<Message> for ChannelSocket {
        type Error = WsError;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
            self.sent.send(item).map_err(|_| WsError::ConnectionClosed)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Socket for ChannelSocket {
        async fn linger(&mut self) {}
    }

    type Client =
        (mpsc::UnboundedSender<Result<Message, WsError>>, mpsc::UnboundedReceiver<Message>);

    fn start(program: &str, args: &[&str]) -> (Client, tokio::task::JoinHandle<()>) {
        start_with(config(), program, args)
    }

    fn start_with(
        config: SessionConfig,
        program: &str,
        args: &[&str],
    ) -> (Client, tokio::task::JoinHandle<()>) {
        let (to_session, incoming) = mpsc::unbounded_channel();
        let (sent, from_session) = mpsc::unbounded_channel();
        let socket = ChannelSocket { incoming, sent };
        let command =
            Command { program: program.into(), args: args.iter().map(OsString::from).collect() };
        let task =
            tokio::spawn(run(ready(socket), &request(), Arc::new(command), Arc::new(config), None));
        ((to_session, from_session), task)
    }

    fn ready<S: Socket + 'static>(socket: S) -> Upgrade<S> {
        Box::pin(std::future::ready(Some(socket)))
    }

    fn config() -> SessionConfig {
        SessionConfig {
            framing: Framing::Lines,
            max_message: 1 << 20,
            closems: Duration::ZERO,
            env: EnvSettings::default(),
            pass_stderr: false,
            ping: None,
            shutdown: crate::Shutdown::new(),
        }
    }

    fn request() -> RequestInfo {
        RequestInfo {
            id: 1,
            remote_addr: None,
            remote_port: None,
            remote_host: None,
            method: http::Method::GET,
            uri: http::Uri::from_static("/"),
            version: http::Version::HTTP_11,
            headers: http::HeaderMap::new(),
            tls: false,
            script_name: "/".into(),
            path_info: "/".into(),
            subprotocol: None,
            client_subject: None,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn lines_go_both_ways_over_any_socket() {
        let ((tx, mut rx), task) = start("/bin/cat", &[]);
        tx.send(Ok(Message::text("one\ntwo"))).unwrap();
        assert_eq!(next(&mut rx).await, Message::text("one"));
        assert_eq!(next(&mut rx).await, Message::text("two"));
        tx.send(Ok(Message::Close(None))).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_exit_status_is_the_close_code() {
        let ((tx, mut rx), task) = start("/bin/sh", &["-c", "echo out; exit 7"]);
        assert_eq!(next(&mut rx).await, Message::text("out"));
        let Message::Close(Some(frame)) = next(&mut rx).await else { panic!("expected a Close") };
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Error, "exit status 7"));
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_shutdown_sends_1001_and_stops_the_child() {
        let config = config();
        let shutdown = config.shutdown.clone();
        // The child would echo forever; only the shutdown ends the session.
        let ((tx, mut rx), task) = start_with(config, "/bin/cat", &[]);
        tx.send(Ok(Message::text("before"))).unwrap();
        assert_eq!(next(&mut rx).await, Message::text("before"));
        shutdown.begin();
        let Message::Close(Some(frame)) = next(&mut rx).await else { panic!("expected a Close") };
        assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Away, "server shutting down"));
        tx.send(Ok(Message::Close(None))).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_oversized_message_error_is_answered_with_1009() {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        let ((tx, mut rx), task) = start("/bin/cat", &[]);
        let too_long = CapacityError::MessageTooLong { size: 2 << 20, max_size: 1 << 20 };
        tx.send(Err(WsError::Capacity(too_long))).unwrap();
        let Message::Close(Some(frame)) = next(&mut rx).await else { panic!("expected a Close") };
        assert_eq!(frame.code, CloseCode::Size);
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_idle_session_costs_little_memory() {
        // Every connection holds its session's future: it must stay small (it was 8 KiB
        // before the ending was boxed and the arguments were trimmed; watching for the
        // shutdown added 72 bytes to 2024).
        let (a, _b) = tokio::io::duplex(64);
        let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
        let ws = WebSocketStream::from_raw_socket(a, role, None).await;
        let command = Command { program: "/bin/cat".into(), args: vec![] };
        let config = config();
        let fut = run(ready(ws), &request(), Arc::new(command), Arc::new(config), None);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2176, "a session's future takes {size} bytes");
    }
}
