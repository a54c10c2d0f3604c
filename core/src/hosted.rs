//! A program whose life is not one connection's: shared by many clients (`broadcast`), or
//! kept for a client that comes back (`resume`). Its task spawns it, frames its output once
//! into a [`Log`](crate::framed::Log) that its [`Audience`] keeps, feeds it the clients'
//! messages through one queue, and ends it down the termination ladder when the audience is
//! gone, the server stops, or its output ends.
//!
//! Also here: what both kinds of client use to write frames from the log and to wait.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use websocketd_framing::Frame;

use crate::child::Pipes;
use crate::close::{CLOSE_TIMEOUT, close_for_error, close_for_status, close_frame, going_away};
use crate::command::Command;
use crate::env::Vars;
use crate::framed::{Chunk, Pending, TAKE_MAX, frame_into};
use crate::pipe::{PipeInput, PipeOutput};
use crate::relay::{Filled, Input, Output};
use crate::session::{Exit, Expired, SessionConfig};
use crate::shutdown::Shutdown;
use crate::socket::Socket;

pub use crate::slot::Slot;

/// How many client messages may wait for the program's stdin queue before clients are no
/// longer read.
pub(crate) const INPUT_QUEUE: usize = 256;

/// Who a hosted program's output is for: where it goes, when it may be read, and when
/// nobody needs it any more.
pub(crate) trait Audience: Send + Sync + 'static {
    /// The program has started as `pid`.
    fn started(&self, pid: u32);

    /// How many more bytes of output may be framed now (`usize::MAX`: no bound).
    fn room(&self) -> usize;

    /// Resolves when there may be room again (after [`room`](Self::room) said 0).
    fn roomier(&self) -> impl Future<Output = ()> + Send + '_;

    /// Adds framed messages to the log and wakes whoever reads it.
    fn publish(&self, chunk: Chunk);

    /// Resolves once nobody will read the output any more; the program is then stopped.
    fn abandoned(&self) -> impl Future<Output = ()> + Send + '_;

    /// The program stops: no client is given it from now on.
    fn retire(&self);

    /// Ends the log with `frame`, for every client once it has the rest.
    fn end(&self, frame: CloseFrame, exit: Exit);

    /// After the program is down (it ended as `exit`): resolves once what it left need be
    /// kept no longer. The program's slot is held until then.
    fn settle<'a>(
        &'a self,
        exit: Exit,
        shutdown: &'a Shutdown,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// A hosted program, before its task runs it.
pub(crate) struct Program<A> {
    pub(crate) audience: Arc<A>,
    pub(crate) command: Arc<Command>,
    pub(crate) env: Vars,
    pub(crate) config: Arc<SessionConfig>,
    /// The clients' messages (`None`: they are not passed on).
    pub(crate) input: Option<mpsc::Receiver<Frame>>,
    pub(crate) shutdown: Shutdown,
    pub(crate) slot: Slot,
}

/// Why a program stopped.
enum Stop {
    /// Its output ended.
    OutputEnded,
    /// Its output broke its framing.
    BadOutput,
    /// Nobody needs its output any more.
    Abandoned,
    /// The server is shutting down.
    Shutdown,
}

impl<A: Audience> Program<A> {
    /// Runs the program to its end, and holds its slot until its audience has settled.
    pub(crate) async fn run(self) {
        let Program { audience, command, env, config, input, shutdown, slot } = self;
        let Some((mut child, pipes)) = crate::session::launch(&command, env, &config).await else {
            audience.retire();
            audience
                .end(close_frame(CloseCode::Error, "could not launch process"), Exit::NotStarted);
            audience.settle(Exit::NotStarted, &shutdown).await;
            drop(slot);
            return;
        };
        audience.started(child.pid());
        let Pipes { stdin, stdout, stderr } = pipes;
        let (passed_stderr, logging_stderr) =
            crate::session::stderr_for(stderr, config.pass_stderr);
        let codec = config.framing.codec(config.max_message);
        let json = config.pass_stderr;
        let mut out = PipeOutput::new(&stdout, codec.clone(), "stdout", json);
        let mut err =
            passed_stderr.as_ref().map(|e| PipeOutput::new(e, codec.clone(), "stderr", json));
        let mut stdin = PipeInput::new(stdin, codec);
        let audience = &*audience;
        let mut scratch = Scratch::default();
        // Since when the output has held a partial line, with `--flushms`.
        let mut partial_since: Option<Instant> = None;
        // Whether the program's output has been readable yet (its stdin may grow until then).
        let mut heard = false;
        let stop = {
            let mut input = input;
            let mut abandoned = pin!(audience.abandoned());
            loop {
                // Output is read only while there is room for it (a resumable session whose
                // client is away blocks its program rather than drop output).
                let room = audience.room();
                let flush_at = match config.flush.filter(|_| out.has_partial()) {
                    Some(after) => Some(*partial_since.get_or_insert_with(Instant::now) + after),
                    None => {
                        partial_since = None;
                        None
                    }
                };
                tokio::select! {
                    biased;
                    () = shutdown.begun() => break Stop::Shutdown,
                    () = &mut abandoned => break Stop::Abandoned,
                    frame = recv(&mut input), if !stdin.is_full() => stdin.push(frame),
                    () = stdin.write(!heard) => {}
                    () = audience.roomier(), if room == 0 => {}
                    () = until(flush_at), if room > 0 => {
                        partial_since = None;
                        if let Some(message) = out.take_partial() {
                            scratch.frame(&message);
                            scratch.publish(audience, true);
                        }
                    }
                    ready = out.ready(), if room > 0 => {
                        heard = true;
                        match if ready { drain(&mut out, audience, room, &mut scratch) } else { Drained::Ended } {
                            Drained::Open => {}
                            Drained::Ended => break Stop::OutputEnded,
                            Drained::Broken => break Stop::BadOutput,
                        }
                    }
                    ready = ready_opt(err.as_ref()), if err.is_some() && room > 0 => {
                        let drained = match err.as_mut() {
                            Some(e) if ready => drain(e, audience, room, &mut scratch),
                            _ => Drained::Ended,
                        };
                        match drained {
                            Drained::Open => {}
                            Drained::Ended => {
                                if let Some(e) = err.as_mut() {
                                    publish_rest(e, audience, &mut scratch);
                                }
                                err = None;
                            }
                            Drained::Broken => break Stop::BadOutput,
                        }
                    }
                }
            }
        };
        drop(stdin);
        let mut ladder = child.ladder(config.closems);
        match stop {
            Stop::OutputEnded => {
                audience.retire();
                publish_rest(&mut out, audience, &mut scratch);
                if let Some(e) = err.as_mut() {
                    while let Filled::Data = e.fill() {}
                    publish_rest(e, audience, &mut scratch);
                }
                let status = child.reap(&mut ladder).await;
                let exit = status.map_or(Exit::Unknown, Exit::Ended);
                audience.end(close_for_status(status), exit);
                child.finish(&mut ladder).await;
            }
            Stop::BadOutput => {
                // The clients get what was framed before, then 1011, once the program is down.
                audience.retire();
                crate::session::stop(&mut child, &mut ladder, &stdout).await;
                let frame = close_frame(CloseCode::Error, "invalid output from process");
                audience.end(frame, child.status().map_or(Exit::Unknown, Exit::Ended));
            }
            Stop::Abandoned | Stop::Shutdown => {
                audience.retire();
                audience.end(going_away(), Exit::Unknown);
                crate::session::stop(&mut child, &mut ladder, &stdout).await;
            }
        }
        crate::session::last_stderr(logging_stderr).await;
        config.metrics.exited(child.status());
        let exit = child.status().map_or(Exit::Unknown, Exit::Ended);
        audience.settle(exit, &shutdown).await;
        drop(slot);
    }
}

/// The next client message for the program (never resolves without an input queue).
async fn recv(input: &mut Option<mpsc::Receiver<Frame>>) -> Frame {
    match input {
        // The audience holds a sender as long as the program runs: `None` cannot come.
        Some(rx) => match rx.recv().await {
            Some(frame) => frame,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Waits for an optional output to be readable.
async fn ready_opt(out: Option<&PipeOutput<'_>>) -> bool {
    match out {
        Some(out) => out.ready().await,
        None => std::future::pending().await,
    }
}

/// What a drain of the program's output found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// More may come.
    Open,
    /// The output has ended.
    Ended,
    /// The output broke its framing (logged): the program is stopped.
    Broken,
}

/// Where output is framed before it goes into the log: reused, so that each chunk is
/// allocated once at its size (framing straight into a growing buffer would leave the log
/// holding up to twice what it needs, and holes in the heap).
#[derive(Default)]
struct Scratch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Scratch {
    /// Frames `message`.
    fn frame(&mut self, message: &Message) {
        self.ends.push(frame_into(message, &mut self.buf));
    }

    /// Publishes what was framed, if anything, and starts again; `idle` when the program
    /// has nothing more for now (the buffers are let go then: an idle program holds none).
    fn publish(&mut self, audience: &impl Audience, idle: bool) {
        if !self.ends.is_empty() {
            let bytes = Bytes::copy_from_slice(&self.buf);
            audience.publish(Chunk { first: 0, start: 0, bytes, ends: self.ends.clone() });
        }
        self.buf.clear();
        self.ends.clear();
        // Nor is a giant message's room kept for the rest of the program's life.
        if idle || self.buf.capacity() > 2 * TAKE_MAX {
            *self = Scratch::default();
        }
    }
}

/// Reads what `out` has, up to about `room` bytes, and publishes the messages it makes.
fn drain(
    out: &mut PipeOutput<'_>,
    audience: &impl Audience,
    room: usize,
    scratch: &mut Scratch,
) -> Drained {
    let mut drained = Drained::Open;
    let mut idle = false;
    let most = room.min(TAKE_MAX);
    loop {
        match out.fill() {
            Filled::Data => {}
            Filled::Nothing => {
                idle = true;
                break;
            }
            Filled::End => {
                drained = Drained::Ended;
                break;
            }
        }
        loop {
            match out.take() {
                Ok(Some(message)) => scratch.frame(&message),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(target: "process", "Unusable output from process: {e}");
                    drained = Drained::Broken;
                    break;
                }
            }
        }
        if drained != Drained::Open || scratch.buf.len() >= most {
            break;
        }
    }
    scratch.publish(audience, idle || drained != Drained::Open);
    drained
}

/// Publishes what is left in `out` once it has ended (a last line without a newline).
fn publish_rest(out: &mut PipeOutput<'_>, audience: &impl Audience, scratch: &mut Scratch) {
    while let Ok(Some(message)) = out.take_rest() {
        scratch.frame(&message);
    }
    scratch.publish(audience, true);
}

/// Writes what is pending (until the connection fails).
pub(crate) async fn write_all<S: Socket>(ws: &mut S, pending: &mut Pending) {
    while !pending.is_empty() {
        let slices = pending.slices();
        match ws.write_raw(&slices).await {
            Ok(n) if n > 0 => {
                drop(slices);
                pending.advance(n);
            }
            _ => break,
        }
    }
}

/// Writes what is pending, within [`CLOSE_TIMEOUT`]; returns whether all of it went.
pub(crate) async fn finish<S: Socket>(ws: &mut S, pending: &mut Pending) -> bool {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, write_all(ws, pending)).await;
    pending.is_empty()
}

/// Room in the program's input queue (never resolves without one).
pub(crate) async fn reserve(
    input: Option<&mpsc::Sender<Frame>>,
) -> Option<mpsc::Permit<'_, Frame>> {
    match input {
        Some(tx) => tx.reserve().await.ok(),
        None => std::future::pending().await,
    }
}

/// Resolves at `at`, or never.
pub(crate) async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What came from a client, as a hosted program's client takes it.
pub(crate) enum Heard {
    /// A message for the program.
    Message(Frame),
    /// Nothing to act on (a ping, a pong).
    Nothing,
    /// Its Close, with the code if it had one.
    Closed(Option<u16>),
    /// The connection ended without a Close (end of stream, reset).
    Gone,
    /// A message that breaks the protocol: answered with this Close, then the connection is
    /// ended.
    Broken(CloseFrame),
}

/// What `msg`, the next item from a client, is.
pub(crate) fn heard(msg: Option<Result<Message, WsError>>) -> Heard {
    match msg {
        Some(Ok(Message::Text(text))) => Heard::Message(Frame::Text(text.into())),
        Some(Ok(Message::Binary(data))) => Heard::Message(Frame::Binary(data)),
        Some(Ok(Message::Close(frame))) => Heard::Closed(frame.map(|f| u16::from(f.code))),
        Some(Ok(_)) => Heard::Nothing,
        None | Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
            Heard::Gone
        }
        Some(Err(e)) => {
            tracing::debug!(target: "websocket", "Cannot receive: {e}");
            match close_for_error(&e) {
                Some(frame) => Heard::Broken(frame),
                None => Heard::Gone,
            }
        }
    }
}

/// The hosted programs of one kind, by key: found, joined and retired under one lock.
#[derive(Debug)]
pub(crate) struct Registry<K, V>(Arc<Mutex<HashMap<K, Arc<V>>>>);

impl<K, V> Clone for Registry<K, V> {
    fn clone(&self) -> Self {
        Registry(Arc::clone(&self.0))
    }
}

impl<K, V> Default for Registry<K, V> {
    fn default() -> Self {
        Registry(Arc::default())
    }
}

impl<K: Eq + Hash, V> Registry<K, V> {
    /// The map, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<V>>> {
        // Every critical section is one map operation: never left half-done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` has a program.
    pub(crate) fn contains<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.lock().contains_key(key)
    }

    /// How many programs there are.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Takes `value` out of `map` if it is still the one at `key` (a newer one may have taken
/// its place).
pub(crate) fn remove_if_same<K: Eq + Hash, V>(
    map: &mut HashMap<K, Arc<V>>,
    key: &K,
    value: &Arc<V>,
) {
    if map.get(key).is_some_and(|v| Arc::ptr_eq(v, value)) {
        map.remove(key);
    }
}

/// Waits until a hosted program has been started and returns its `pid`; `None` if it could
/// not be (`ended` then says so). `changed` is bumped when either happens.
pub(crate) async fn started(
    pid: &OnceLock<u32>,
    changed: &watch::Sender<()>,
    ended: impl Fn() -> bool,
) -> Option<u32> {
    let mut changed = changed.subscribe();
    loop {
        if let Some(&pid) = pid.get() {
            return Some(pid);
        }
        if ended() || changed.changed().await.is_err() {
            return pid.get().copied();
        }
    }
}

/// Says DISCONNECT with how the client's time with a hosted program ended.
pub(crate) fn disconnect(exit: &str) {
    tracing::Span::current().record("exit", exit);
    crate::access!(target: "session", "DISCONNECT");
}

/// Offers a client's message to the program's stdin queue: returned if the queue is full
/// (the client is not read until there is room), dropped if the program takes no more.
pub(crate) fn offer(input: &mpsc::Sender<Frame>, frame: Frame) -> Option<Frame> {
    match input.try_send(frame) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        Err(mpsc::error::TrySendError::Full(frame)) => Some(frame),
    }
}

/// A client's time limits (`--idlems`, `--maxsessionms`): when it was last active, and when
/// its time is up.
pub(crate) struct Limits {
    idle: Option<Duration>,
    active: Instant,
    ends: Option<Instant>,
}

impl Limits {
    /// The limits of `config` for a session that started at `started` and was last active
    /// at `active`.
    pub(crate) fn new(config: &SessionConfig, started: Instant, active: Instant) -> Limits {
        Limits { idle: config.idle, active, ends: config.time_limit.map(|limit| started + limit) }
    }

    /// A message went either way now.
    pub(crate) fn active(&mut self) {
        if self.idle.is_some() {
            self.active = Instant::now();
        }
    }

    /// When it was last active.
    pub(crate) fn last_active(&self) -> Instant {
        self.active
    }

    /// Resolves when a limit runs out (never without limits); it is checked again when a
    /// message has come in the meantime.
    pub(crate) async fn due(&self) -> Expired {
        let idle_at = self.idle.map(|idle| self.active + idle);
        let at = match (idle_at, self.ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        until(at).await;
        if self.ends.is_some_and(|ends| Instant::now() >= ends) {
            Expired::TimeLimit
        } else {
            Expired::Idle
        }
    }
}

/// A client's pings (`--pingms`): when the next is due, and whether it has been silent too
/// long (twice the interval since it was last heard from).
pub(crate) struct Pings {
    every: Option<Duration>,
    heard: Instant,
    next: Option<Instant>,
}

/// What a ping that was due came to.
pub(crate) enum Pinged {
    /// Sent.
    Sent,
    /// Not sent: the client has not answered for too long.
    Silent,
    /// Not sent: the connection failed.
    Failed,
}

impl Pings {
    /// Pings every `every`, if at all.
    pub(crate) fn new(every: Option<Duration>) -> Pings {
        let now = Instant::now();
        Pings { every, heard: now, next: every.map(|e| now + e) }
    }

    /// The client was heard from (or taken bytes from).
    pub(crate) fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Resolves when a ping is due (never without pings).
    pub(crate) async fn due(&self) {
        until(self.next).await;
    }

    /// Sends the ping that is due, unless the client has been silent too long.
    pub(crate) async fn ping<S: Socket>(&mut self, ws: &mut S) -> Pinged {
        let now = Instant::now();
        if self.every.is_some_and(|every| now >= self.heard + every * 2) {
            return Pinged::Silent;
        }
        if ws.send(Message::Ping(Bytes::new())).await.is_err() {
            return Pinged::Failed;
        }
        self.next = self.every.map(|every| Instant::now() + every);
        Pinged::Sent
    }
}
