//! Resumable sessions (`--resumems`): a connection that drops reattaches to its running
//! program, and every message of the program reaches the client exactly once, in order, or
//! the client is told that it cannot.
//!
//! - **The client names its session** with a token of its own making and the number of
//!   messages it has had in it so far, as the query parameters [`SESSION_PARAM`] and
//!   [`SEEN_PARAM`]. [`Ticket::take`] takes both out of the query before anything else sees
//!   it: the token is a bearer capability, never logged and never in the program's
//!   environment.
//! - **Framed once, kept until sent, and a little longer.** The program's output is framed
//!   into a log (`framed`), as for a shared session. The program is read only while less
//!   than `--resumebuffer` bytes of it are unsent: a program whose client is away blocks on
//!   its stdout, and nothing is dropped. Messages already sent stay, oldest let go first,
//!   as long as the whole log is within the buffer, so that a client that lost the last of
//!   them in flight gets them again.
//! - **Detach, not death.** A connection that ends without the client's Close (end of
//!   stream, reset, ping timeout) leaves the program running for `--resumems`; a connection
//!   that comes with the token in that time takes the session over where its count says. A
//!   clean Close ends the session at once, as without `--resumems`.
//! - **Refusals** are Close frames after the 101 (a browser sees nothing of an HTTP
//!   status): [`CANNOT_RESUME`], [`NO_SUCH_SESSION`], and [`RESUMED_ELSEWHERE`] for the
//!   connection that a newer one took the session from.
//! - **The program's end** is kept like its output: a client that comes back in time gets
//!   the rest of the output, then the Close frame with the exit status.
//!
//! Client messages in flight when a connection drops may be lost: the browser's API gives
//! no way to know which ones the server had.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;
use websocketd_framing::Frame;

use crate::close::{CLOSE_TIMEOUT, close_frame, close_whole, going_away};
use crate::command::Command;
use crate::env::Vars;
use crate::framed::{Chunk, Log, Pending};
use crate::hosted::{
    self, Audience, Heard, INPUT_QUEUE, Limits, Pinged, Pings, Program, Registry, Slot, disconnect,
    reserve, until,
};
use crate::metrics::Metrics;
use crate::relay::{Flow, Inbound};
use crate::request::RequestInfo;
use crate::session::{Close, Ending, Exit, Expired, SessionConfig, Upgrade};
use crate::shutdown::Shutdown;
use crate::socket::Socket;

mod ticket;

pub use ticket::{BadTicket, SEEN_PARAM, SESSION_PARAM, TOKEN_MAX, TOKEN_MIN, Ticket, Token};

/// Close code: the session runs, but the messages after the client's count are no longer
/// kept, or the count is beyond what was sent.
pub const CANNOT_RESUME: u16 = 4000;
/// Close code: no session has this token, and the client says it has had messages of it.
pub const NO_SUCH_SESSION: u16 = 4001;
/// Close code, to the connection a newer one took the session from.
pub const RESUMED_ELSEWHERE: u16 = 4002;

/// How long a connection taking a session over waits for the one it replaces to leave.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// How resumable sessions run.
#[derive(Debug, Clone)]
pub struct ResumeConfig {
    /// How long a session with no connection keeps its program for the client to return.
    pub wait: Duration,
    /// Most bytes of framed output a session keeps: unsent, and sent while there is room.
    pub buffer: usize,
}

/// The resumable sessions, by token.
#[derive(Debug, Clone)]
pub struct Resumes {
    sessions: Registry<Token, Held>,
    config: Arc<ResumeConfig>,
}

impl Resumes {
    /// No session yet.
    pub fn new(config: ResumeConfig) -> Resumes {
        Resumes { sessions: Registry::default(), config: Arc::new(config) }
    }

    /// Whether a connection with `ticket` would need no `--maxforks` slot: its session runs,
    /// or it will be told there is none.
    pub fn needs_no_slot(&self, ticket: &Ticket) -> bool {
        ticket.seen > 0 || self.sessions.contains(&ticket.token)
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs one connection of a resumable session to its end: waits for the upgrade, then
    /// takes the session of `ticket` over, or starts it (`command` with `env`, made and
    /// checked as for any session, holding `slot`) when there is none and the client has
    /// seen nothing; relays until the connection or the program ends.
    #[expect(clippy::too_many_arguments, reason = "one connection's whole setting")]
    pub fn run<S: Socket + 'static>(
        &self,
        socket: Upgrade<S>,
        req: &RequestInfo,
        ticket: Ticket,
        env: Vars,
        command: Arc<Command>,
        config: Arc<SessionConfig>,
        shutdown: Shutdown,
        slot: Option<Slot>,
    ) -> impl Future<Output = ()> + Send + use<S> {
        let span = crate::session::span(req, &command);
        // The program's own lines (its stderr, its end) are named after the connection that
        // started it, in a span of their own: the program outlives the connection.
        let program_span = tracing::info_span!(parent: None, "session", url = %req.url(), id = req.id, remote = %req.remote_label(), user = req.user_name(), command = %command.program.display(), origin = %req.origin(), pid = tracing::field::Empty);
        let id = req.id;
        let resumes = self.clone();
        async move {
            let Some(mut ws) = socket.await else { return };
            if shutdown.is_begun() {
                crate::access!(target: "session", "CONNECT");
                Ending::sent("server", &going_away()).record(&config.metrics);
                close_whole(&mut ws, going_away()).await;
                return disconnect("not started");
            }
            let start = Start { id, command, env, config: &config, shutdown: &shutdown, program_span };
            let (held, cursor, kick) = match resumes.attach(&ticket, slot, start).await {
                Ok(attached) => attached,
                Err(refusal) => {
                    crate::access!(target: "session", "CONNECT");
                    Ending::sent("server", &refusal).record(&config.metrics);
                    close_whole(&mut ws, refusal).await;
                    return disconnect("not resumed");
                }
            };
            if let Some(pid) = held.started().await {
                tracing::Span::current().record("pid", pid);
            }
            crate::access!(target: "session", "CONNECT");
            let connected = config.metrics.session();
            let flow = Flow::new(Arc::clone(&config.metrics));
            if cursor > 0 || held.id != id {
                tracing::info!(target: "session", "Resumed session {} after {cursor} messages", held.id);
                config.metrics.resumed.inc();
            }
            let active = held.state().active;
            let mut attached = Attached {
                ws,
                held: &held,
                cursor,
                kick: Arc::clone(&kick),
                ping: config.ping,
                buffer: resumes.config.buffer,
                metrics: &config.metrics,
                flow: &flow,
                session: &config,
                limits: Limits::new(&config, held.started, active),
            };
            let left = attached.serve(&shutdown).await;
            held.state().active = attached.limits.last_active();
            drop(attached);
            if matches!(left, Left::Dropped) {
                config.metrics.detached.inc();
            }
            let exit = held.leave(&kick, &left).await;
            flow.record(connected.elapsed());
            drop(connected);
            disconnect(&exit);
        }
        .instrument(span)
    }

    /// Takes the session of `ticket` over (waiting for the connection it had to leave), or
    /// starts it; returns it, where the client's cursor starts, and the connection's kick.
    /// Refused: the Close frame that says why.
    async fn attach(
        &self,
        ticket: &Ticket,
        slot: Option<Slot>,
        start: Start<'_>,
    ) -> Result<(Arc<Held>, u64, Arc<Notify>), CloseFrame> {
        let mut slot = slot;
        let mut start = Some(start);
        let deadline = Instant::now() + TAKEOVER_TIMEOUT;
        loop {
            let found = {
                let mut sessions = self.sessions.lock();
                match sessions.get(&ticket.token).map(Arc::clone) {
                    Some(held) => Found::Kept(held),
                    None if ticket.seen > 0 => Found::Nothing,
                    None => match (slot.take(), start.take()) {
                        (Some(slot), Some(start)) => {
                            let (held, kick) = self.start(&mut sessions, ticket, slot, start);
                            Found::Started(held, kick)
                        }
                        _ => return Err(close_frame(CloseCode::Again, "too many programs")),
                    },
                }
            };
            let held = match found {
                Found::Kept(held) => held,
                Found::Started(held, kick) => return Ok((held, 0, kick)),
                Found::Nothing => {
                    tracing::info!(target: "session", "No such session to resume");
                    return Err(close_frame(CloseCode::from(NO_SUCH_SESSION), "no such session"));
                }
            };
            let mut presence = held.presence.subscribe();
            {
                let mut state = held.state();
                if state.gone {
                    continue;
                }
                let (base, sent) = (state.log.base, state.sent);
                match &state.attached {
                    // Taken over: the connection it has gets its Close, and this one waits
                    // for it to leave (it says first how far it got). Unless this one cannot
                    // resume whatever that says: then the session is left as it is.
                    Some(theirs) if ticket.seen >= base => theirs.notify_one(),
                    _ => {
                        if ticket.seen < base || ticket.seen > sent {
                            let why = if ticket.seen < base {
                                format!("message {} is no longer kept", ticket.seen + 1)
                            } else {
                                format!("only {sent} messages were sent")
                            };
                            tracing::info!(target: "session", "Cannot resume session {} after {} messages: {why}", held.id, ticket.seen);
                            return Err(close_frame(
                                CloseCode::from(CANNOT_RESUME),
                                "cannot resume",
                            ));
                        }
                        let kick = Arc::new(Notify::new());
                        state.attached = Some(Arc::clone(&kick));
                        state.detached = None;
                        // What the client lacks counts as unsent again: kept until it is
                        // written whole once more.
                        state.sent = ticket.seen;
                        drop(state);
                        held.presence.send_replace(());
                        return Ok((Arc::clone(&held), ticket.seen, kick));
                    }
                }
            }
            if tokio::time::timeout_at(deadline, presence.changed()).await.is_err() {
                tracing::info!(target: "session", "Session {} busy: its connection did not leave", held.id);
                return Err(close_frame(CloseCode::Again, "session busy"));
            }
        }
    }

    /// Starts the session of `ticket` (not kept yet) with its program, attached to the
    /// connection that asked.
    fn start(
        &self,
        sessions: &mut HashMap<Token, Arc<Held>>,
        ticket: &Ticket,
        slot: Slot,
        start: Start<'_>,
    ) -> (Arc<Held>, Arc<Notify>) {
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        let kick = Arc::new(Notify::new());
        let held = Arc::new(Held {
            token: ticket.token.clone(),
            id: start.id,
            state: Mutex::new(State {
                log: Log::default(),
                sent: 0,
                attached: Some(Arc::clone(&kick)),
                detached: None,
                closed: false,
                ending: None,
                delivered: false,
                exit: None,
                gone: false,
                full: false,
                active: Instant::now(),
            }),
            changed: watch::Sender::new(()),
            presence: watch::Sender::new(()),
            room: Notify::new(),
            input,
            pid: OnceLock::new(),
            started: Instant::now(),
        });
        sessions.insert(ticket.token.clone(), Arc::clone(&held));
        let metrics = Arc::clone(&start.config.metrics);
        let audience = Kept { held: Arc::clone(&held), resumes: self.clone(), metrics };
        let program = Program {
            audience: Arc::new(audience),
            command: start.command,
            env: start.env,
            config: Arc::clone(start.config),
            input: Some(input_rx),
            shutdown: start.shutdown.clone(),
            slot,
        };
        start.shutdown.spawn(program.run().instrument(start.program_span));
        (held, kick)
    }

    /// Takes `held` out of the registry, if it is still there.
    fn remove(&self, held: &Arc<Held>) {
        let mut sessions = self.sessions.lock();
        held.state().gone = true;
        hosted::remove_if_same(&mut sessions, &held.token, held);
    }
}

/// What a connection's token finds.
enum Found {
    /// A kept session.
    Kept(Arc<Held>),
    /// None: this one, started for it, with the connection's kick.
    Started(Arc<Held>, Arc<Notify>),
    /// None, and the client has seen messages of it.
    Nothing,
}

/// What a new session's program needs.
struct Start<'a> {
    /// The id of the connection that starts it: how the log names the session.
    id: u64,
    command: Arc<Command>,
    env: Vars,
    config: &'a Arc<SessionConfig>,
    shutdown: &'a Shutdown,
    program_span: tracing::Span,
}

/// One resumable session.
#[derive(Debug)]
struct Held {
    token: Token,
    /// The id of the connection that started it.
    id: u64,
    state: Mutex<State>,
    /// Bumped on new output and on the end.
    changed: watch::Sender<()>,
    /// Bumped when a connection comes or goes, and when the program is down.
    presence: watch::Sender<()>,
    /// Told when messages were sent (there may be room for more output).
    room: Notify,
    /// The program's stdin queue.
    input: mpsc::Sender<Frame>,
    pid: OnceLock<u32>,
    /// When it started (`--maxsessionms` counts from here).
    started: Instant,
}

/// Everything under a session's lock.
#[derive(Debug)]
struct State {
    log: Log,
    /// How many messages the client has for sure: written whole to its connection, or as
    /// many as it said it had when it came back.
    sent: u64,
    /// The attached connection's kick (`None`: detached).
    attached: Option<Arc<Notify>>,
    /// Since when no connection has been attached, unless the client closed.
    detached: Option<Instant>,
    /// The client closed: the session ends.
    closed: bool,
    /// Once the program's output has ended and it is reaped: the Close frame the client
    /// gets after the rest of the log, and how the program ended.
    ending: Option<(CloseFrame, Exit)>,
    /// The client has had the ending: nothing is left to keep.
    delivered: bool,
    /// How the program ended, once it is down.
    exit: Option<Exit>,
    /// Out of the registry.
    gone: bool,
    /// The buffer is full: the program is not read.
    full: bool,
    /// When a message last went either way, as of the last connection's leaving
    /// (`--idlems`).
    active: Instant,
}

/// How a connection's time with its session ended.
enum Left {
    /// It dropped without a Close: the session waits for the client.
    Dropped,
    /// The client closed (or broke the protocol): the session ends.
    Closed,
    /// A newer connection took the session over.
    Kicked,
    /// It had the program's end.
    Ended(Exit),
    /// The server is shutting down.
    Shutdown,
}

impl Held {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole: a panic cannot happen inside one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the program has been started (or could not be), and returns its pid.
    async fn started(&self) -> Option<u32> {
        hosted::started(&self.pid, &self.changed, || self.state().ending.is_some()).await
    }

    /// `sent` messages have been written whole: older ones may go to make room.
    fn sent(&self, sent: u64, buffer: usize) {
        let mut state = self.state();
        if sent > state.sent {
            state.sent = sent;
            state.log.let_go_sent(sent, buffer);
            drop(state);
            self.room.notify_one();
        }
    }

    /// The connection with `kick` leaves as `left`; returns the DISCONNECT line's `exit`.
    async fn leave(&self, kick: &Arc<Notify>, left: &Left) -> String {
        {
            let mut state = self.state();
            if state.attached.as_ref().is_some_and(|k| Arc::ptr_eq(k, kick)) {
                state.attached = None;
                match left {
                    Left::Dropped | Left::Kicked => state.detached = Some(Instant::now()),
                    Left::Closed => state.closed = true,
                    Left::Ended(_) => state.delivered = true,
                    Left::Shutdown => {}
                }
            }
        }
        self.presence.send_replace(());
        match left {
            Left::Dropped => "detached".to_owned(),
            Left::Kicked => "resumed elsewhere".to_owned(),
            Left::Ended(exit) => exit.to_string(),
            Left::Shutdown => "server shutting down".to_owned(),
            Left::Closed => {
                // The session ends now: DISCONNECT says how the program did.
                let mut presence = self.presence.subscribe();
                loop {
                    if let Some(exit) = self.state().exit {
                        break exit.to_string();
                    }
                    if presence.changed().await.is_err() {
                        break Exit::Unknown.to_string();
                    }
                }
            }
        }
    }

    /// Resolves when `done` holds, or the session has been detached for `wait` (true then).
    async fn lapse(&self, wait: Duration, done: impl Fn(&State) -> bool) -> bool {
        let mut presence = self.presence.subscribe();
        loop {
            let deadline = {
                let state = self.state();
                if done(&state) {
                    return false;
                }
                state.detached.map(|since| since + wait)
            };
            match deadline {
                Some(at) if Instant::now() >= at => return true,
                _ => {}
            }
            tokio::select! {
                changed = presence.changed() => if changed.is_err() { return false },
                () = until(deadline) => {}
            }
        }
    }
}

/// A session as its program's audience: with the registry it is taken out of.
struct Kept {
    held: Arc<Held>,
    resumes: Resumes,
    metrics: Arc<Metrics>,
}

impl Kept {
    fn expired(&self) {
        let wait = self.resumes.config.wait.as_millis();
        tracing::info!(target: "session", "Session {} expired: no connection came back within {wait} ms", self.held.id);
        self.metrics.expired.inc();
    }
}

impl Audience for Kept {
    fn started(&self, pid: u32) {
        let _ = self.held.pid.set(pid);
        tracing::Span::current().record("pid", pid);
        self.held.changed.send_replace(());
    }

    fn room(&self) -> usize {
        let mut state = self.held.state();
        let unsent = state.log.weight_from(state.sent);
        let room = self.resumes.config.buffer.saturating_sub(unsent);
        if (room == 0) != state.full {
            state.full = room == 0;
            if state.full {
                let kept = state.log.weight_from(state.log.base);
                tracing::debug!(target: "session", "Session {} full: its program waits for the client ({unsent} bytes unsent, {kept} kept)", self.held.id);
            }
        }
        room
    }

    async fn roomier(&self) {
        self.held.room.notified().await;
    }

    fn publish(&self, chunk: Chunk) {
        let mut state = self.held.state();
        let sent = state.sent;
        state.log.push(chunk, usize::MAX, 0);
        state.log.let_go_sent(sent, self.resumes.config.buffer);
        drop(state);
        self.held.changed.send_replace(());
    }

    /// Resolves when the client closed, or no connection came back in time.
    async fn abandoned(&self) {
        if self.held.lapse(self.resumes.config.wait, |state| state.closed).await {
            self.expired();
        }
        self.resumes.remove(&self.held);
    }

    fn retire(&self) {}

    fn end(&self, frame: CloseFrame, exit: Exit) {
        self.held.state().ending = Some((frame, exit));
        self.held.changed.send_replace(());
    }

    /// Keeps the rest of the output and the ending until the client has had them, or closed,
    /// or did not come back in time (or the server stops).
    async fn settle(&self, exit: Exit, shutdown: &Shutdown) {
        if let Some(pid) = self.held.pid.get() {
            tracing::info!(target: "session", "Program {pid} of session {} ended: {exit}", self.held.id);
        }
        self.held.state().exit = Some(exit);
        self.held.presence.send_replace(());
        let wait = self.resumes.config.wait;
        let expired = tokio::select! {
            expired = self.held.lapse(wait, |s| s.gone || s.closed || s.delivered) => expired,
            () = shutdown.begun() => false,
        };
        if expired {
            self.expired();
        }
        self.resumes.remove(&self.held);
    }
}

/// The connection attached to a session.
struct Attached<'a, S> {
    ws: S,
    held: &'a Held,
    /// The next message of the log to take.
    cursor: u64,
    /// Told when a newer connection takes the session over.
    kick: Arc<Notify>,
    ping: Option<Duration>,
    /// `--resumebuffer`.
    buffer: usize,
    metrics: &'a Metrics,
    /// What the connection moved each way.
    flow: &'a Flow,
    /// `--idlems` and `--maxsessionms`, for the session.
    session: &'a SessionConfig,
    limits: Limits,
}

/// What the connection takes from the log when it has nothing left to write.
enum Taken {
    /// Frames to write.
    Frames,
    /// Nothing new yet.
    Nothing,
    /// The program has ended and the client has everything: this Close comes next.
    Ended(CloseFrame, Exit),
}

impl<S: Socket> Attached<'_, S> {
    /// Relays until the connection, the session or the server ends.
    async fn serve(&mut self, shutdown: &Shutdown) -> Left {
        let buffer = self.buffer;
        let mut changed = self.held.changed.subscribe();
        let mut pending = Pending::default();
        let mut inbound: Option<Frame> = None;
        let mut pings = Pings::new(self.ping);
        let mut received = Inbound::new(self.flow);
        loop {
            if pending.is_empty() {
                match self.take(&mut pending) {
                    Taken::Frames | Taken::Nothing => {}
                    Taken::Ended(frame, exit) => {
                        self.ended(Ending::sent("program", &frame));
                        close_whole(&mut self.ws, frame).await;
                        return Left::Ended(exit);
                    }
                }
            }
            if !pending.is_empty() {
                // Writing: nothing is read, nothing else is sent, until the frames are out.
                let slices = pending.slices();
                tokio::select! {
                    biased;
                    () = shutdown.begun() => {
                        drop(slices);
                        self.finish(&mut pending, buffer).await;
                        self.ended(Ending::sent("server", &going_away()));
                        close_whole(&mut self.ws, going_away()).await;
                        return Left::Shutdown;
                    }
                    () = self.kick.notified() => {
                        drop(slices);
                        if self.finish(&mut pending, buffer).await {
                            self.ended(Ending::sent("server", &taken_over()));
                            close_whole(&mut self.ws, taken_over()).await;
                        } else {
                            self.ended(Ending::new("server", Close::None));
                        }
                        return Left::Kicked;
                    }
                    expired = self.limits.due() => {
                        drop(slices);
                        self.finish(&mut pending, buffer).await;
                        return self.expired(expired).await;
                    }
                    written = self.ws.write_raw(&slices) => {
                        drop(slices);
                        match written {
                            Ok(n) if n > 0 => {
                                let moved = pending.advance(n);
                                if moved.messages > 0 {
                                    self.limits.active();
                                }
                                self.flow.moved_out(moved);
                                pings.heard();
                                self.held.sent(self.sent_whole(&pending), buffer);
                            }
                            // Nothing taken of what there was to write: the connection is gone.
                            Ok(_) | Err(_) => return self.dropped(),
                        }
                    }
                }
                continue;
            }
            // Nothing to write: wait for output, a client message, room for it, a ping.
            tokio::select! {
                biased;
                () = shutdown.begun() => {
                    self.ended(Ending::sent("server", &going_away()));
                    close_whole(&mut self.ws, going_away()).await;
                    return Left::Shutdown;
                }
                () = self.kick.notified() => {
                    self.ended(Ending::sent("server", &taken_over()));
                    close_whole(&mut self.ws, taken_over()).await;
                    return Left::Kicked;
                }
                _ = changed.changed() => {}
                permit = reserve(Some(&self.held.input)), if inbound.is_some() => {
                    if let (Some(permit), Some(frame)) = (permit, inbound.take()) {
                        permit.send(frame);
                    }
                }
                msg = self.ws.next(), if inbound.is_none() => {
                    pings.heard();
                    match hosted::heard(msg) {
                        Heard::Message(frame) => {
                            received.add(frame.payload().len());
                            self.limits.active();
                            inbound = hosted::offer(&self.held.input, frame);
                        }
                        Heard::Nothing => {}
                        Heard::Closed(code) => {
                            self.ended(Ending::new("client", Close::Received(code)));
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.close()).await;
                            return Left::Closed;
                        }
                        Heard::Gone => return self.dropped(),
                        Heard::Broken(frame) => {
                            self.ended(Ending::sent("client", &frame));
                            close_whole(&mut self.ws, frame).await;
                            self.ws.linger().await;
                            return Left::Closed;
                        }
                    }
                }
                expired = self.limits.due() => return self.expired(expired).await,
                () = pings.due() => match pings.ping(&mut self.ws).await {
                    Pinged::Sent => {}
                    Pinged::Silent => {
                        // Dropped without a Close: a client that is still there sees an
                        // abnormal closure, and comes back.
                        tracing::debug!(target: "websocket", "No answer to pings: detaching");
                        self.metrics.ping_timeouts.inc();
                        return self.dropped();
                    }
                    Pinged::Failed => return self.dropped(),
                },
            }
        }
    }

    /// A time limit ran out: the client is told 1001, and the session ends as if it closed.
    async fn expired(&mut self, expired: Expired) -> Left {
        let frame = expired.close(self.session);
        self.ended(Ending::sent(expired.by(), &frame));
        close_whole(&mut self.ws, frame).await;
        Left::Closed
    }

    /// Says in the summary, and counts, how the connection's time ended.
    fn ended(&self, ending: Ending) {
        ending.record(self.metrics);
    }

    /// The connection is gone without a Close: the session detaches.
    fn dropped(&self) -> Left {
        self.ended(Ending::new("connection", Close::None));
        Left::Dropped
    }

    /// How many messages have been written whole.
    fn sent_whole(&self, pending: &Pending) -> u64 {
        self.cursor - pending.ends.len() as u64
    }

    /// Takes what is new from the log (see [`Taken`]).
    fn take(&mut self, pending: &mut Pending) -> Taken {
        let state = self.held.state();
        if self.cursor < state.log.head {
            state.log.take(&mut self.cursor, pending);
            return Taken::Frames;
        }
        match &state.ending {
            Some((frame, exit)) => Taken::Ended(frame.clone(), *exit),
            None => Taken::Nothing,
        }
    }

    /// Writes the rest of a half-written frame (within [`CLOSE_TIMEOUT`]) and lets the rest
    /// of what is pending go; says how far the client got. Returns whether the stream is
    /// at a frame boundary, where a Close may follow.
    async fn finish(&mut self, pending: &mut Pending, buffer: usize) -> bool {
        let whole = self.sent_whole(pending);
        pending.cut();
        let half = pending.ends.len() as u64;
        let done = hosted::finish(&mut self.ws, pending).await;
        self.held.sent(whole + if done { half } else { 0 }, buffer);
        done
    }
}

/// The Close frame of a connection whose session a newer one took over.
fn taken_over() -> CloseFrame {
    close_frame(CloseCode::from(RESUMED_ELSEWHERE), "resumed elsewhere")
}
