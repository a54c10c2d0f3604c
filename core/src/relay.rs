//! The relay between a client and a program: two pumps that run side by side and never
//! wait on each other.
//!
//! - out: the program's [`Output`] is read in large chunks, cut into messages in place, and
//!   every message that is ready is queued on the socket before one flush, so many messages
//!   share a system call. When the client reads slowly the flush waits, the output is no
//!   longer read, and the program blocks on its pipe: memory stays bounded.
//! - in: client messages go to the program's [`Input`], a bounded backlog written as the
//!   program takes it. While the backlog is full no more messages are read; while the
//!   program is not reading, the relay still ends as soon as the client leaves.
//!
//! The relay is generic over both sides: the socket is any `Sink + Stream` of messages, the
//! program is anything that implements [`Output`] and [`Input`] (one child's pipes, in
//! [`pipe`](crate::pipe)), so a unit test can drive it with neither a network nor a process.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use websocketd_framing::Frame;

use crate::config::SessionConfig;
use crate::metrics::{Metrics, Moved};

/// What a fill of an [`Output`] brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// Some bytes (or messages).
    Data,
    /// Nothing yet: wait with [`Output::ready`].
    Nothing,
    /// The end (a read error, logged, counts as one).
    End,
}

/// The program side the client's messages come from: the program's output, cut into
/// messages.
pub trait Output: Send + Sync {
    /// Reads what has arrived, without waiting.
    fn fill(&mut self) -> Filled;

    /// Takes the next whole message out of what has been read, if there is one.
    fn take(&mut self) -> Result<Option<Message>, websocketd_framing::Error>;

    /// Takes what is left of what has been read, a last partial message included: at the
    /// end of the output, or when another output ended first.
    fn take_rest(&mut self) -> Result<Option<Message>, websocketd_framing::Error>;

    /// Waits until a fill may bring something. False when the output broke (logged): it is
    /// then at its end.
    fn ready(&self) -> impl Future<Output = bool> + Send;

    /// Whether what has been read holds the start of a message not yet whole (a line
    /// without its newline).
    fn has_partial(&self) -> bool {
        false
    }

    /// Takes the start of a message not yet whole as a message of its own (`--flushms`);
    /// what follows it is the start of the next one.
    fn take_partial(&mut self) -> Option<Message> {
        None
    }
}

/// The program side the client's messages go to: the program's input.
pub trait Input: Send {
    /// Whether it holds as much as it may: no more client messages are read until it has
    /// written some.
    fn is_full(&self) -> bool;

    /// Takes one client message.
    fn push(&mut self, frame: Frame);

    /// Whether it holds less than one write's worth: client messages that have already
    /// arrived are taken before it writes, so that many share a write (and the program one
    /// wake-up). False by default: each message is written as it comes.
    fn wants_more(&self) -> bool {
        false
    }

    /// Writes some of what it holds; never resolves while it holds nothing (or can no longer
    /// write, in which case what it is given is dropped). `nothing_back`: the program has
    /// sent the client nothing so far.
    fn write(&mut self, nothing_back: bool) -> impl Future<Output = ()> + Send;
}

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The program's output ended; everything was sent.
    OutputClosed,
    /// The program's output broke its framing.
    BadOutput(websocketd_framing::Error),
    /// The client left, in this way.
    ClientLeft(Gone),
    /// The server is shutting down (the session's verdict; a relay never ends so itself).
    Shutdown,
    /// No message went either way for `--idlems`.
    Idle,
    /// The session ran for `--maxsessionms`.
    TimeLimit,
}

/// How the client left.
#[derive(Debug)]
pub(crate) enum Gone {
    /// A Close frame, with its code if it had one (already answered by the protocol layer).
    Closed(Option<u16>),
    /// The connection ended or failed.
    Error(WsError),
    /// Nothing came from the client for twice the ping interval.
    Silent,
}

/// Relays between the client (`tx`, `rx`) and the program (`out`, with `err` beside it for
/// `--passstderr`, and `input`) until one of them ends; pings the client every `ping`, and
/// gives up on it when silent for twice as long; ends when no message went either way for
/// `idle`, and at the `time_limit` (`config`'s `--pingms`, `--idlems` and `--maxsessionms`).
/// Dropping `input` on the way out closes the program's input.
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
pub(crate) fn relay<'a, W, R, O, I>(
    tx: &'a mut W,
    rx: &'a mut R,
    mut out: O,
    mut err: Option<O>,
    mut input: I,
    config: &'a SessionConfig,
    flow: &'a Flow,
) -> impl Future<Output = End> + Send + 'a
where
    W: Sink<Message, Error = WsError> + Unpin + Send,
    R: Stream<Item = Result<Message, WsError>> + Unpin + Send,
    O: Output + 'a,
    I: Input + 'a,
{
    // Not an async fn: one would store its arguments twice in its future, once as they come
    // and once as its locals; a block that moves them in stores them once.
    async move {
        let stamps = Stamps::new(config);
        let mut out = pin!(pump_out(&mut out, &mut err, tx, config, flow, &stamps));
        let mut inp = pin!(pump_in(rx, &mut input, &stamps, flow));
        loop {
            tokio::select! {
                end = &mut out => return end,
                gone = &mut inp => return End::ClientLeft(gone),
                () = until(stamps.deadline(config)) => if let Some(end) = stamps.expired(config) {
                    return end;
                },
            }
        }
    }
}

/// Output → socket. Returns when the output ends (everything sent and flushed), breaks its
/// framing, or the client cannot be written to. With `err`, its messages go out beside the
/// output's, and what it has when the output ends goes out too. With `--flushms`, a partial
/// message of the output that has waited that long goes out as it is.
async fn pump_out<W, O>(
    out: &mut O,
    err: &mut Option<O>,
    tx: &mut W,
    config: &SessionConfig,
    flow: &Flow,
    stamps: &Stamps,
) -> End
where
    W: Sink<Message, Error = WsError> + Unpin,
    O: Output,
{
    let mut next_ping = config.ping.map(|every| Instant::now() + every);
    // Since when the output has held a partial message, with `--flushms`.
    let mut partial_since: Option<Instant> = None;
    // Counted per message here, and added to the session's and the server's counts once
    // flushed.
    let mut batch = Moved::default();
    let result: Result<(), End> = async {
        loop {
            send_ready(out, tx, &mut batch).await?;
            if let Some(err) = err.as_mut() {
                send_ready(err, tx, &mut batch).await?;
            }
            if let (Some(at), Some(every)) = (next_ping, config.ping) {
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
            if let Some(source) = err.as_mut() {
                match source.fill() {
                    Filled::Data => continue,
                    Filled::End => {
                        send_rest(source, tx, &mut batch).await?;
                        *err = None;
                        continue;
                    }
                    Filled::Nothing => {}
                }
            }
            // Nothing more to read now: send what is queued, then wait.
            tx.flush().await.map_err(client_error)?;
            if batch.messages > 0 {
                stamps.active();
            }
            flow.moved_out(std::mem::take(&mut batch));
            let flush_at = match config.flush.filter(|_| out.has_partial()) {
                Some(after) => Some(*partial_since.get_or_insert_with(Instant::now) + after),
                None => {
                    partial_since = None;
                    None
                }
            };
            tokio::select! {
                ready = out.ready() => if !ready {
                    break;
                },
                ready = ready(err.as_ref()), if err.is_some() => if !ready {
                    *err = None;
                },
                () = until(next_ping) => {}
                () = until(flush_at) => {
                    partial_since = None;
                    if let Some(message) = out.take_partial() {
                        batch.add(message.len());
                        tx.feed(message).await.map_err(client_error)?;
                    }
                }
            }
        }
        send_rest(out, tx, &mut batch).await?;
        // What the program wrote to its other output before this one ended is there by now.
        if let Some(source) = err.as_mut() {
            while let Filled::Data = source.fill() {}
            send_rest(source, tx, &mut batch).await?;
        }
        tx.flush().await.map_err(client_error)?;
        flow.moved_out(std::mem::take(&mut batch));
        Ok(())
    }
    .await;
    match result {
        Ok(()) => End::OutputClosed,
        Err(end) => end,
    }
}

/// Queues every message of `source` that is whole, counting them in `batch`.
async fn send_ready<W, O>(source: &mut O, tx: &mut W, batch: &mut Moved) -> Result<(), End>
where
    W: Sink<Message, Error = WsError> + Unpin,
    O: Output,
{
    while let Some(message) = source.take().map_err(End::BadOutput)? {
        // Writes are buffered and reads do not wait, so a busy program could keep this task
        // running indefinitely: each message costs a unit of the task's budget, and other
        // sessions get their turn when it runs out.
        tokio::task::consume_budget().await;
        batch.add(message.len());
        tx.feed(message).await.map_err(client_error)?;
    }
    Ok(())
}

/// Queues what is left of `source`, a last partial message included, counting in `batch`.
async fn send_rest<W, O>(source: &mut O, tx: &mut W, batch: &mut Moved) -> Result<(), End>
where
    W: Sink<Message, Error = WsError> + Unpin,
    O: Output,
{
    while let Some(message) = source.take_rest().map_err(End::BadOutput)? {
        batch.add(message.len());
        tx.feed(message).await.map_err(client_error)?;
    }
    Ok(())
}

async fn ready<O: Output>(source: Option<&O>) -> bool {
    match source {
        Some(source) => source.ready().await,
        None => std::future::pending().await,
    }
}

/// Socket → input. Returns when the client leaves. If the program stops taking its input,
/// later messages are dropped while the session goes on.
async fn pump_in<R, I>(rx: &mut R, input: &mut I, stamps: &Stamps, flow: &Flow) -> Gone
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
    I: Input,
{
    // Counted per message, and added to the counts when the program's stdin takes a write,
    // every few messages, or when the pump ends or is dropped (the session ended on the
    // program's side).
    let mut batch = Inbound::new(flow);
    loop {
        // What has already arrived is taken before the write, without waiting: a client that
        // sends many small messages at once has them written together.
        while input.wants_more() {
            tokio::task::consume_budget().await;
            // Polled with a waker that does nothing: when nothing is there, the select below
            // polls again with the task's own before the task sleeps.
            let Some(msg) = rx.next().now_or_never() else { break };
            if let Err(gone) = take(msg, input, &mut batch, stamps) {
                return gone;
            }
        }
        tokio::select! {
            // Written first: what was taken above goes to the program before more is read.
            biased;
            () = input.write(flow.nothing_out()) => batch.flush(),
            msg = async { tokio::task::consume_budget().await; rx.next().await }, if !input.is_full() => {
                if let Err(gone) = take(msg, input, &mut batch, stamps) {
                    return gone;
                }
            }
        }
    }
}

/// Gives one item of the client's stream to `input`, counting it in `batch`; how the client
/// left when it is not a message.
fn take<I: Input>(
    msg: Option<Result<Message, WsError>>,
    input: &mut I,
    batch: &mut Inbound<'_>,
    stamps: &Stamps,
) -> Result<(), Gone> {
    if matches!(msg, Some(Ok(_))) {
        stamps.heard();
    }
    let frame = match msg {
        None => return Err(Gone::Error(WsError::ConnectionClosed)),
        Some(Err(e)) => return Err(Gone::Error(e)),
        Some(Ok(Message::Close(frame))) => {
            return Err(Gone::Closed(frame.map(|f| u16::from(f.code))));
        }
        Some(Ok(Message::Text(text))) => Frame::Text(text.into()),
        Some(Ok(Message::Binary(data))) => Frame::Binary(data),
        Some(Ok(_)) => return Ok(()),
    };
    batch.add(frame.payload().len());
    stamps.active();
    input.push(frame);
    Ok(())
}

/// Client messages counted but not yet added to the session's and the server's counts: added
/// on [`flush`](Inbound::flush), every [`INBOUND_BATCH`] messages, and when dropped.
pub(crate) struct Inbound<'a> {
    flow: &'a Flow,
    batch: Moved,
}

/// How many client messages are counted before they are added to the counts.
const INBOUND_BATCH: u64 = 64;

impl<'a> Inbound<'a> {
    pub(crate) fn new(flow: &'a Flow) -> Inbound<'a> {
        Inbound { flow, batch: Moved::default() }
    }

    /// One more message of `bytes`.
    pub(crate) fn add(&mut self, bytes: usize) {
        self.batch.add(bytes);
        if self.batch.messages >= INBOUND_BATCH {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        self.flow.moved_in(std::mem::take(&mut self.batch));
    }
}

impl Drop for Inbound<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What one session moved each way, for its DISCONNECT line: added a batch at a time, to
/// the server's counters as well.
#[derive(Debug)]
pub(crate) struct Flow {
    counts: [[AtomicU64; 2]; 2],
    metrics: Arc<Metrics>,
}

impl Flow {
    /// Nothing moved yet; batches also count in `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Flow {
        Flow { counts: Default::default(), metrics }
    }

    /// A batch went from the client to the program.
    pub(crate) fn moved_in(&self, batch: Moved) {
        self.add(0, batch);
        self.metrics.moved_in(batch);
    }

    /// A batch went from the program to the client.
    pub(crate) fn moved_out(&self, batch: Moved) {
        self.add(1, batch);
        self.metrics.moved_out(batch);
    }

    /// Whether nothing has gone from the program to the client yet.
    pub(crate) fn nothing_out(&self) -> bool {
        self.counts[1][1].load(Ordering::Relaxed) == 0
    }

    fn add(&self, way: usize, batch: Moved) {
        self.counts[way][0].fetch_add(batch.messages, Ordering::Relaxed);
        self.counts[way][1].fetch_add(batch.bytes, Ordering::Relaxed);
    }

    /// What moved in, and what moved out.
    pub(crate) fn totals(&self) -> [Moved; 2] {
        self.counts.each_ref().map(|[messages, bytes]| Moved {
            messages: messages.load(Ordering::Relaxed),
            bytes: bytes.load(Ordering::Relaxed),
        })
    }

    /// Records the totals in the current span (the DISCONNECT line's summary).
    pub(crate) fn record(&self, since: Duration) {
        let [inward, outward] = self.totals();
        let span = tracing::Span::current();
        span.record(
            "duration",
            tracing::field::display(format_args!("{:.3}s", since.as_secs_f64())),
        );
        span.record("messages_in", inward.messages);
        span.record("bytes_in", inward.bytes);
        span.record("messages_out", outward.messages);
        span.record("bytes_out", outward.bytes);
    }
}

/// When the client was last heard from (`--pingms`), and when a message last went either
/// way (`--idlems`), in milliseconds since the relay started; the relay's deadlines follow
/// from them. One for both pumps, which each hold a reference: it is in every session's
/// future, so it stays small.
struct Stamps {
    start: Instant,
    heard: AtomicU64,
    active: AtomicU64,
    idle: bool,
}

impl Stamps {
    fn new(config: &SessionConfig) -> Stamps {
        let (heard, active) = (AtomicU64::new(0), AtomicU64::new(0));
        Stamps { start: Instant::now(), heard, active, idle: config.idle.is_some() }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The client was heard from now.
    fn heard(&self) {
        self.heard.store(self.now(), Ordering::Relaxed);
    }

    /// A message went now.
    fn active(&self) {
        if self.idle {
            self.active.store(self.now(), Ordering::Relaxed);
        }
    }

    fn at(&self, stamp: &AtomicU64) -> Instant {
        self.start + Duration::from_millis(stamp.load(Ordering::Relaxed))
    }

    /// The next time something may have run out: silence (twice the ping interval),
    /// idleness, or the session's time.
    fn deadline(&self, config: &SessionConfig) -> Option<Instant> {
        let silent = config.ping.map(|every| self.at(&self.heard) + every * 2);
        let idle = config.idle.map(|idle| self.at(&self.active) + idle);
        let ends = config.time_limit.map(|limit| self.start + limit);
        [silent, idle, ends].into_iter().flatten().min()
    }

    /// How the relay ends now, if something has run out.
    fn expired(&self, config: &SessionConfig) -> Option<End> {
        let past = |at: Instant| Instant::now() >= at;
        if config.ping.is_some_and(|every| past(self.at(&self.heard) + every * 2)) {
            return Some(End::ClientLeft(Gone::Silent));
        }
        if config.time_limit.is_some_and(|limit| past(self.start + limit)) {
            return Some(End::TimeLimit);
        }
        if config.idle.is_some_and(|idle| past(self.at(&self.active) + idle)) {
            return Some(End::Idle);
        }
        None
    }
}

/// Waits until `deadline`, or forever. The timer is boxed: it exists only with `--pingms`,
/// `--idlems` or `--maxsessionms`, and inline it would make every session's future bigger.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => Box::pin(tokio::time::sleep_until(at)).await,
        None => std::future::pending().await,
    }
}

fn client_error(e: WsError) -> End {
    End::ClientLeft(Gone::Error(e))
}

/// A frame from the program as a WebSocket message; text is made valid UTF-8.
pub(crate) fn message(frame: Frame) -> Message {
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

/// `{"stream":"<stream>","data":"<line>"}`, the line made valid UTF-8 and escaped for JSON:
/// how `--passstderr` sends every line.
pub(crate) fn json_line(stream: &str, line: &[u8]) -> Message {
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
    Message::Text(out.into())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use bytes::BytesMut;
    use futures_util::StreamExt;
    use tokio::sync::{Notify, mpsc};
    use tokio_util::codec::Decoder;
    use websocketd_framing::{FrameCodec, Framing};

    use super::*;
    use crate::testing::{channel_socket, next};

    /// A session's settings with pings every `ping`.
    fn config(ping: Option<Duration>) -> SessionConfig {
        SessionConfig {
            framing: Framing::Lines,
            max_message: 1 << 20,
            closems: Duration::ZERO,
            env: crate::EnvSettings::default(),
            pass_stderr: false,
            ping,
            metrics: Arc::default(),
            idle: None,
            time_limit: None,
            pty: false,
            flush: None,
        }
    }

    /// A program's output made of chunks the test hands over; `None` ends it.
    struct Scripted {
        chunks: Arc<Mutex<VecDeque<Option<&'static [u8]>>>>,
        more: Arc<Notify>,
        codec: FrameCodec,
        buf: BytesMut,
    }

    /// Where the test puts the output's chunks.
    #[derive(Clone)]
    struct Feed {
        chunks: Arc<Mutex<VecDeque<Option<&'static [u8]>>>>,
        more: Arc<Notify>,
    }

    impl Feed {
        fn send(&self, chunk: Option<&'static [u8]>) {
            self.chunks.lock().unwrap().push_back(chunk);
            self.more.notify_waiters();
        }
    }

    fn scripted() -> (Scripted, Feed) {
        let feed = Feed { chunks: Arc::default(), more: Arc::default() };
        let codec = Framing::Lines.codec(1 << 20);
        let out = Scripted {
            chunks: Arc::clone(&feed.chunks),
            more: Arc::clone(&feed.more),
            codec,
            buf: BytesMut::new(),
        };
        (out, feed)
    }

    impl Output for Scripted {
        fn fill(&mut self) -> Filled {
            match self.chunks.lock().unwrap().pop_front() {
                Some(Some(chunk)) => {
                    self.buf.extend_from_slice(chunk);
                    Filled::Data
                }
                Some(None) => Filled::End,
                None => Filled::Nothing,
            }
        }

        fn take(&mut self) -> Result<Option<Message>, websocketd_framing::Error> {
            Ok(self.codec.decode(&mut self.buf)?.map(message))
        }

        fn take_rest(&mut self) -> Result<Option<Message>, websocketd_framing::Error> {
            Ok(self.codec.decode_eof(&mut self.buf)?.map(message))
        }

        async fn ready(&self) -> bool {
            loop {
                let more = self.more.notified();
                if !self.chunks.lock().unwrap().is_empty() {
                    return true;
                }
                more.await;
            }
        }
    }

    /// A program's input that hands every message to the test.
    struct Collect(mpsc::UnboundedSender<Frame>);

    impl Input for Collect {
        fn is_full(&self) -> bool {
            false
        }

        fn push(&mut self, frame: Frame) {
            let _ = self.0.send(frame);
        }

        async fn write(&mut self, _: bool) {
            std::future::pending::<()>().await;
        }
    }

    /// A program's input that gathers up to `batch` messages and tells the test how many
    /// each write carried.
    struct Gather {
        held: usize,
        batch: usize,
        writes: mpsc::UnboundedSender<usize>,
    }

    impl Input for Gather {
        fn is_full(&self) -> bool {
            false
        }

        fn wants_more(&self) -> bool {
            self.held < self.batch
        }

        fn push(&mut self, _: Frame) {
            self.held += 1;
        }

        async fn write(&mut self, _: bool) {
            if self.held == 0 {
                return std::future::pending().await;
            }
            let _ = self.writes.send(std::mem::take(&mut self.held));
        }
    }

    #[tokio::test]
    async fn messages_that_have_arrived_share_a_write_and_a_lone_one_is_not_held() {
        let (socket, (client, _sent)) = channel_socket();
        let (mut tx, mut rx) = socket.split();
        let (out, _feed) = scripted();
        let (writes, mut written) = mpsc::unbounded_channel();
        // Five messages are there before the relay starts; it gathers at most three.
        for n in 0..5 {
            client.send(Ok(Message::text(format!("m{n}")))).unwrap();
        }
        let input = Gather { held: 0, batch: 3, writes };
        let flow = Arc::new(Flow::new(Arc::default()));
        let counted = Arc::clone(&flow);
        let _relay = tokio::spawn(async move {
            relay(&mut tx, &mut rx, out, None, input, &config(None), &counted).await
        });
        let wait = Duration::from_secs(10);
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(tokio::time::timeout(wait, written.recv()).await.unwrap().unwrap());
        }
        assert_eq!(got, [3, 2]);
        // One that comes alone is written at once.
        client.send(Ok(Message::text("alone"))).unwrap();
        assert_eq!(tokio::time::timeout(wait, written.recv()).await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn the_relay_runs_with_no_process_at_all() {
        let (socket, (client, mut sent)) = channel_socket();
        let (mut tx, mut rx) = socket.split();
        let (out, feed) = scripted();
        let (input, mut received) = mpsc::unbounded_channel();
        let flow = Arc::new(Flow::new(Arc::default()));
        let counted = Arc::clone(&flow);
        let relay = tokio::spawn(async move {
            relay(&mut tx, &mut rx, out, None, Collect(input), &config(None), &counted).await
        });
        client.send(Ok(Message::text("to the program"))).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.unwrap();
        assert_eq!(got, Some(Frame::Text(Bytes::from_static(b"to the program"))));
        // A line in two pieces, then one more without its newline, then the end.
        feed.send(Some(b"one\ntw"));
        assert_eq!(next(&mut sent).await, Message::text("one"));
        feed.send(Some(b"o\nlast"));
        assert_eq!(next(&mut sent).await, Message::text("two"));
        feed.send(None);
        assert_eq!(next(&mut sent).await, Message::text("last"));
        let end = tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
        assert!(matches!(end, End::OutputClosed), "{end:?}");
        // What moved, each way: one message of 14 bytes in, three of 10 out.
        let [inward, outward] = flow.totals();
        assert_eq!((inward.messages, inward.bytes), (1, 14));
        assert_eq!((outward.messages, outward.bytes), (3, 10));
    }

    #[tokio::test]
    async fn the_relay_ends_when_the_client_closes_or_falls_silent() {
        let (socket, (client, _sent)) = channel_socket();
        let (mut tx, mut rx) = socket.split();
        let (out, _feed) = scripted();
        let (input, _received) = mpsc::unbounded_channel();
        client.send(Ok(Message::Close(None))).unwrap();
        let flow = Flow::new(Arc::default());
        let end = relay(&mut tx, &mut rx, out, None, Collect(input), &config(None), &flow).await;
        assert!(matches!(end, End::ClientLeft(Gone::Closed(None))), "{end:?}");

        let (socket, (_client, mut sent)) = channel_socket();
        let (mut tx, mut rx) = socket.split();
        let (out, _feed) = scripted();
        let (input, _received) = mpsc::unbounded_channel();
        let ping = Some(Duration::from_millis(20));
        let end = relay(&mut tx, &mut rx, out, None, Collect(input), &config(ping), &flow).await;
        assert!(matches!(end, End::ClientLeft(Gone::Silent)), "{end:?}");
        assert_eq!(next(&mut sent).await, Message::Ping(Bytes::new()), "it was pinged first");
    }
}
