//! Shared sessions (`--broadcast`): every client of one URL shares one running program.
//!
//! An *instance* is one program and the clients attached to it, found by its key (the URL's
//! path and query). The first client of a key starts it; later ones join it. The program's
//! output is cut into messages and each message framed once, into a shared log (`framed`);
//! every client writes the same bytes from it at its own pace, through its own cursor.
//!
//! - **Nothing blocks the program.** The instance reads the program's output as it comes,
//!   whoever is attached. The log keeps the last `--clientqueue` bytes (and the last
//!   `--replay` messages); a client further behind than `--clientqueue` bytes is too slow:
//!   it gets Close 1013 (`--slowclient=close`), or skips to the live end and says how many
//!   messages it missed (`--slowclient=skip`). Memory stays bounded whatever the clients do.
//! - **Input** (`--broadcastinput=all`) goes through one queue to the program's stdin, a
//!   whole message at a time, in the order the instance receives them.
//! - **Replay**: a client that joins starts `--replay` messages back, taken under the log's
//!   lock, so the seam between replay and live output loses and doubles nothing.
//! - **Lifetime**: when the last client leaves, the program goes down the termination ladder
//!   after `--lingerms`; a client that joins meanwhile keeps it. When the program's output
//!   ends, every attached client gets what was framed, then the Close frame that reports the
//!   exit; the next client of the key starts a new program.
//!
//! A client writes frames through [`Socket::write_raw`]; while a frame is half written it
//! neither reads nor sends through the protocol layer (which could put a pong in the middle).

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;
use websocketd_framing::Frame;

use crate::close::{CLOSE_TIMEOUT, close_frame, close_whole, finish_close, going_away};
use crate::command::Command;
use crate::env::Vars;
use crate::framed::{Chunk, Log, Pending};
use crate::hosted::{
    self, Audience, Heard, INPUT_QUEUE, Limits, Pinged, Pings, Program, Registry, disconnect,
    reserve, write_all,
};
use crate::metrics::{Metrics, Outcome};
use crate::relay::{Flow, Inbound};
use crate::request::RequestInfo;
use crate::session::{Close, Ending, Exit, SessionConfig, Upgrade};
use crate::shutdown::Shutdown;
use crate::socket::Socket;

/// How long a client too slow to stay has to take the rest of its frame and its Close.
const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::hosted::Slot;

/// What clients' messages do in a shared session (`--broadcastinput`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastInput {
    /// Every client's messages reach the program's stdin, each whole.
    All,
    /// They are read and dropped (counted at DEBUG).
    None,
}

/// What happens to a client that falls too far behind (`--slowclient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowClient {
    /// Close 1013 `too slow`.
    Close,
    /// Skip to the live output, saying once per episode how many messages were missed.
    Skip,
}

/// How shared sessions run.
#[derive(Debug, Clone)]
pub struct BroadcastConfig {
    /// What clients' messages do.
    pub input: BroadcastInput,
    /// How many of the last messages a joining client gets first.
    pub replay: usize,
    /// How far (bytes) a client may fall behind before it is too slow.
    pub client_queue: usize,
    /// What happens to a client that is too slow.
    pub slow_client: SlowClient,
    /// How long a program with no client left keeps running for one to join.
    pub linger: Duration,
}

/// The running shared programs, by key.
#[derive(Debug, Clone)]
pub struct Broadcasts {
    instances: Registry<String, Instance>,
    config: Arc<BroadcastConfig>,
}

impl Broadcasts {
    /// No program running yet.
    pub fn new(config: BroadcastConfig) -> Broadcasts {
        Broadcasts { instances: Registry::default(), config: Arc::new(config) }
    }

    /// Whether a client of `key` would join a running program (and need no `--maxforks`
    /// slot).
    pub fn is_running(&self, key: &str) -> bool {
        self.instances.contains(key)
    }

    /// How many programs run.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether no program runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs one client of `key` to its end: waits for the upgrade, joins the program running
    /// for `key` or starts one (`command` with `env`, made by
    /// [`EnvSettings::shared_env`](crate::env::EnvSettings::shared_env) and checked, holding
    /// `slot`), and relays until it or the program ends. A client that joins gives `slot`
    /// back at once; one that must start a program and has none (`slot` is `None`) is told
    /// 1013.
    #[expect(clippy::too_many_arguments, reason = "one client's whole setting")]
    pub fn run<S: Socket + 'static>(
        &self,
        socket: Upgrade<S>,
        req: &RequestInfo,
        key: String,
        env: Vars,
        command: Arc<Command>,
        config: Arc<SessionConfig>,
        shutdown: Shutdown,
        slot: Option<Slot>,
    ) -> impl Future<Output = ()> + Send + use<S> {
        let span = crate::session::span(req, &command);
        let broadcasts = self.clone();
        // Attached now, before the 101 goes out: a client that comes right after finds the
        // program and joins it (with no slot needed), even before this upgrade completes.
        let attached = if shutdown.is_begun() {
            None
        } else {
            span.in_scope(|| broadcasts.attach(key, req.id, env, command, &config, &shutdown, slot))
        };
        async move {
            let Some(mut ws) = socket.await else {
                if let Some((instance, _)) = attached {
                    instance.detach();
                }
                return;
            };
            let Some((instance, cursor)) = attached else {
                crate::access!(target: "session", "CONNECT");
                let frame = if shutdown.is_begun() {
                    going_away()
                } else {
                    close_frame(CloseCode::Again, "too many programs")
                };
                close_whole(&mut ws, frame).await;
                return disconnect("not started");
            };
            // Said once the client is attached (from here on it misses nothing) and the
            // program has started, so that the line names it.
            let known = instance.started().await;
            if let Some(pid) = known {
                tracing::Span::current().record("pid", pid);
            }
            crate::access!(target: "session", "CONNECT");
            let connected = config.metrics.session();
            let flow = Flow::new(Arc::clone(&config.metrics));
            let client = Client {
                ws,
                instance: &instance,
                cursor,
                config: &broadcasts.config,
                ping: config.ping,
                metrics: &config.metrics,
                flow: &flow,
                session: &config,
            };
            config.metrics.shared_clients.inc();
            let (ended, farewell) = client.serve(&shutdown).await;
            config.metrics.shared_clients.dec();
            instance.detach();
            if let Some(farewell) = farewell {
                farewell.send().await;
            }
            if let (None, Some(pid)) = (known, instance.pid.get()) {
                tracing::Span::current().record("pid", pid);
            }
            flow.record(connected.elapsed());
            drop(connected);
            disconnect(&ended);
        }
        .instrument(span)
    }

    /// Attaches a client to the program of `key`, starting one if none runs (with `slot`);
    /// returns it and the client's cursor. `None` if a program must start and there is no
    /// slot for it.
    #[expect(clippy::too_many_arguments, reason = "what a program needs to start")]
    fn attach(
        &self,
        key: String,
        id: u64,
        env: Vars,
        command: Arc<Command>,
        config: &Arc<SessionConfig>,
        shutdown: &Shutdown,
        slot: Option<Slot>,
    ) -> Option<(Arc<Instance>, u64)> {
        let mut instances = self.instances.lock();
        if let Some(instance) = instances.get(&key) {
            if let Some(cursor) = instance.join(self.config.replay, self.config.client_queue) {
                return Some((Arc::clone(instance), cursor));
            }
        }
        let slot = slot?;
        let (input, input_rx) = match self.config.input {
            BroadcastInput::All => {
                let (tx, rx) = mpsc::channel(INPUT_QUEUE);
                (Some(tx), Some(rx))
            }
            BroadcastInput::None => (None, None),
        };
        let instance = Arc::new(Instance {
            key: key.clone(),
            state: Mutex::new(State {
                log: Log::default(),
                clients: 1,
                joinable: true,
                ending: None,
            }),
            changed: watch::Sender::new(()),
            left: Notify::new(),
            input,
            pid: OnceLock::new(),
        });
        instances.insert(key, Arc::clone(&instance));
        drop(instances);
        let metrics = Arc::clone(&config.metrics);
        let audience =
            Shared { instance: Arc::clone(&instance), broadcasts: self.clone(), metrics };
        let program = Program {
            audience: Arc::new(audience),
            command,
            env,
            config: Arc::clone(config),
            input: input_rx,
            shutdown: shutdown.clone(),
            slot,
        };
        // Not inside the starting client's span: the program is no one client's.
        let span = tracing::info_span!(target: "broadcast", parent: None, "broadcast", key = %instance.key, id = id);
        shutdown.spawn(program.run().instrument(span));
        Some((instance, 0))
    }

    /// Takes `instance` out of the registry if it is still there: no client joins it from now
    /// on. With `only_if_abandoned`, only if no client is attached (checked under the same
    /// locks that joining takes). Returns whether it is out.
    fn retire(&self, instance: &Arc<Instance>, only_if_abandoned: bool) -> bool {
        let mut instances = self.instances.lock();
        let mut state = instance.state();
        if only_if_abandoned && state.clients > 0 {
            return false;
        }
        state.joinable = false;
        hosted::remove_if_same(&mut instances, &instance.key, instance);
        true
    }
}

/// The DISCONNECT line's `exit` of a client that left a program running.
const LEFT_RUNNING: &str = "still running";

/// One shared program and what its clients share.
#[derive(Debug)]
struct Instance {
    key: String,
    state: Mutex<State>,
    /// Bumped on new output and on the end.
    changed: watch::Sender<()>,
    /// Told when the last client leaves.
    left: Notify,
    /// The program's stdin queue (`--broadcastinput=all`).
    input: Option<mpsc::Sender<Frame>>,
    pid: OnceLock<u32>,
}

/// Everything under an instance's lock.
#[derive(Debug)]
struct State {
    log: Log,
    clients: usize,
    /// Whether a new client may join (the program still runs and takes clients).
    joinable: bool,
    /// Once the program's output has ended and it is reaped: the Close frame every client
    /// gets after the rest of the log, and how the program ended.
    ending: Option<(CloseFrame, Exit)>,
}

impl Instance {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole: a panic cannot happen inside one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client joins, if the program still takes clients: its cursor is `replay` messages
    /// back, as far as the log goes and no further than `queue` bytes (a client that started
    /// further behind would be too slow at once).
    fn join(&self, replay: usize, queue: usize) -> Option<u64> {
        let mut state = self.state();
        if !state.joinable {
            return None;
        }
        state.clients += 1;
        Some(state.log.replay_start(replay, queue))
    }

    /// Waits until the program has been started (or could not be), and returns its pid.
    async fn started(&self) -> Option<u32> {
        hosted::started(&self.pid, &self.changed, || self.state().ending.is_some()).await
    }

    /// A client leaves.
    fn detach(&self) {
        let mut state = self.state();
        state.clients -= 1;
        if state.clients == 0 {
            self.left.notify_one();
        }
    }

    /// Ends the log with `frame`, for every client once it has the rest.
    fn end(&self, frame: CloseFrame, exit: Exit) {
        self.state().ending = Some((frame, exit));
        self.changed.send_replace(());
    }
}

/// An instance as its program's audience: with the registry it is retired from.
struct Shared {
    instance: Arc<Instance>,
    broadcasts: Broadcasts,
    metrics: Arc<Metrics>,
}

impl Audience for Shared {
    fn started(&self, pid: u32) {
        let _ = self.instance.pid.set(pid);
        tracing::info!(target: "broadcast", "Started shared program {pid} for {}", self.instance.key);
        self.metrics.shared_programs.inc();
        self.instance.changed.send_replace(());
    }

    fn room(&self) -> usize {
        usize::MAX
    }

    async fn roomier(&self) {
        std::future::pending::<()>().await;
    }

    fn publish(&self, chunk: Chunk) {
        let config = &self.broadcasts.config;
        self.instance.state().log.push(chunk, config.client_queue, config.replay);
        self.instance.changed.send_replace(());
    }

    /// Resolves once no client has been attached for `--lingerms` and the instance is
    /// retired.
    async fn abandoned(&self) {
        let instance = &self.instance;
        loop {
            let left = instance.left.notified();
            let mut left = pin!(left);
            left.as_mut().enable();
            if instance.state().clients > 0 {
                left.await;
                continue;
            }
            tokio::time::sleep(self.broadcasts.config.linger).await;
            if self.broadcasts.retire(instance, true) {
                return;
            }
        }
    }

    fn retire(&self) {
        self.broadcasts.retire(&self.instance, false);
    }

    fn end(&self, frame: CloseFrame, exit: Exit) {
        self.instance.end(frame, exit);
    }

    async fn settle(&self, exit: Exit, _: &Shutdown) {
        if let Some(pid) = self.instance.pid.get() {
            self.metrics.shared_programs.dec();
            tracing::info!(target: "broadcast", "Shared program {pid} for {} ended: {exit}", self.instance.key);
        }
    }
}

/// One client of an instance.
struct Client<'a, S> {
    ws: S,
    instance: &'a Instance,
    /// The next message of the log to take.
    cursor: u64,
    config: &'a BroadcastConfig,
    ping: Option<Duration>,
    metrics: &'a Metrics,
    /// What the client moved each way.
    flow: &'a Flow,
    /// `--idlems` and `--maxsessionms`, for this client.
    session: &'a SessionConfig,
}

/// What the client takes from the log when it has nothing left to write.
enum Taken {
    /// Frames to write.
    Frames,
    /// Nothing new yet.
    Nothing,
    /// It fell too far behind: this many messages are out of its reach.
    TooSlow(u64),
    /// The program has ended and the client has everything: this Close comes next.
    Ended(CloseFrame, Exit),
}

impl<S: Socket> Client<'_, S> {
    /// Relays until the client or the program ends; returns the DISCONNECT line's `exit`,
    /// and for a client too slow to stay, what it still gets once detached.
    async fn serve(mut self, shutdown: &Shutdown) -> (String, Option<Farewell<S>>) {
        let mut changed = self.instance.changed.subscribe();
        let mut pending = Pending::default();
        let mut inbound: Option<Frame> = None;
        let mut skipped = 0u64;
        let mut pings = Pings::new(self.ping);
        let now = tokio::time::Instant::now();
        let mut limits = Limits::new(self.session, now, now);
        let mut received = Inbound::new(self.flow);
        let dropped_input = &mut 0u64;
        let queue = self.config.client_queue as u64;
        let ended = loop {
            if pending.is_empty() {
                match self.take(&mut pending, queue) {
                    Taken::Frames => {}
                    Taken::Nothing => {
                        if skipped > 0 {
                            tracing::warn!(target: "broadcast", "Client too slow: skipped {skipped} messages");
                            self.slow("skipped");
                            skipped = 0;
                        }
                    }
                    Taken::TooSlow(missed) => match self.config.slow_client {
                        SlowClient::Close => return self.too_slow(pending),
                        SlowClient::Skip => {
                            skipped += missed;
                            continue;
                        }
                    },
                    Taken::Ended(frame, exit) => {
                        self.ended(Ending::sent("program", &frame));
                        close_whole(&mut self.ws, frame).await;
                        break exit.to_string();
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
                        pending.cut();
                        hosted::finish(&mut self.ws, &mut pending).await;
                        self.ended(Ending::sent("server", &going_away()));
                        close_whole(&mut self.ws, going_away()).await;
                        break "server shutting down".to_owned();
                    }
                    written = self.ws.write_raw(&slices) => {
                        drop(slices);
                        match written {
                            Ok(n) if n > 0 => {
                                let moved = pending.advance(n);
                                if moved.messages > 0 {
                                    limits.active();
                                }
                                self.flow.moved_out(moved);
                                pings.heard();
                            }
                            // Nothing taken of what there was to write: the connection is gone.
                            Ok(_) | Err(_) => {
                                self.ended(Ending::new("connection", Close::None));
                                break LEFT_RUNNING.to_owned();
                            }
                        }
                    }
                    expired = limits.due() => {
                        drop(slices);
                        pending.cut();
                        hosted::finish(&mut self.ws, &mut pending).await;
                        let frame = expired.close(self.session);
                        self.ended(Ending::sent(expired.by(), &frame));
                        close_whole(&mut self.ws, frame).await;
                        break LEFT_RUNNING.to_owned();
                    }
                    _ = changed.changed() => {
                        drop(slices);
                        if self.is_too_slow(&pending, queue) {
                            match self.config.slow_client {
                                SlowClient::Close => return self.too_slow(pending),
                                SlowClient::Skip => {
                                    skipped += pending.cut();
                                    let head = self.instance.state().log.head;
                                    skipped += head - self.cursor;
                                    self.cursor = head;
                                }
                            }
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
                    break "server shutting down".to_owned();
                }
                _ = changed.changed() => {}
                permit = reserve(self.instance.input.as_ref()), if inbound.is_some() => {
                    if let (Some(permit), Some(frame)) = (permit, inbound.take()) {
                        permit.send(frame);
                    }
                }
                msg = self.ws.next(), if inbound.is_none() => {
                    pings.heard();
                    match hosted::heard(msg) {
                        Heard::Message(frame) => {
                            received.add(frame.payload().len());
                            limits.active();
                            inbound = self.input(frame, dropped_input);
                        }
                        Heard::Nothing => {}
                        Heard::Closed(code) => {
                            self.ended(Ending::new("client", Close::Received(code)));
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.close()).await;
                            break LEFT_RUNNING.to_owned();
                        }
                        Heard::Gone => {
                            self.ended(Ending::new("connection", Close::None));
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.close()).await;
                            break LEFT_RUNNING.to_owned();
                        }
                        Heard::Broken(frame) => {
                            self.ended(Ending::sent("client", &frame));
                            close_whole(&mut self.ws, frame).await;
                            self.ws.linger().await;
                            break LEFT_RUNNING.to_owned();
                        }
                    }
                }
                expired = limits.due() => {
                    let frame = expired.close(self.session);
                    self.ended(Ending::sent(expired.by(), &frame));
                    close_whole(&mut self.ws, frame).await;
                    break LEFT_RUNNING.to_owned();
                }
                () = pings.due() => match pings.ping(&mut self.ws).await {
                    Pinged::Sent => {}
                    Pinged::Silent => {
                        tracing::debug!(target: "websocket", "No answer to pings: disconnecting");
                        self.metrics.ping_timeouts.inc();
                        let frame = close_frame(CloseCode::Away, "ping timeout");
                        self.ended(Ending::sent("connection", &frame));
                        close_whole(&mut self.ws, frame).await;
                        break LEFT_RUNNING.to_owned();
                    }
                    Pinged::Failed => {
                        self.ended(Ending::new("connection", Close::None));
                        break LEFT_RUNNING.to_owned();
                    }
                },
            }
        };
        if skipped > 0 {
            tracing::warn!(target: "broadcast", "Client too slow: skipped {skipped} messages");
            self.slow("skipped");
        }
        if *dropped_input > 0 {
            tracing::debug!(target: "broadcast", "Dropped {} client messages (--broadcastinput=none)", *dropped_input);
        }
        (ended, None)
    }

    /// Takes what is new from the log (see [`Taken`]); a client too slow is moved to the
    /// live end at once.
    fn take(&mut self, pending: &mut Pending, queue: u64) -> Taken {
        let state = self.instance.state();
        let log = &state.log;
        if log.behind(self.cursor).is_none_or(|behind| behind > queue) {
            let missed = log.head.saturating_sub(self.cursor);
            self.cursor = log.head;
            return Taken::TooSlow(missed);
        }
        if self.cursor < log.head {
            log.take(&mut self.cursor, pending);
            return Taken::Frames;
        }
        match &state.ending {
            Some((frame, exit)) => Taken::Ended(frame.clone(), *exit),
            None => Taken::Nothing,
        }
    }

    /// Whether what the client holds and what it has not taken yet is over `queue` bytes.
    fn is_too_slow(&self, pending: &Pending, queue: u64) -> bool {
        match self.instance.state().log.behind(self.cursor) {
            None => true,
            Some(behind) => behind + pending.unwritten() > queue,
        }
    }

    /// What a client message does: queued for the program (returned if the queue is full),
    /// or dropped and counted.
    fn input(&self, frame: Frame, dropped: &mut u64) -> Option<Frame> {
        match &self.instance.input {
            Some(input) => hosted::offer(input, frame),
            None => {
                *dropped += 1;
                None
            }
        }
    }

    /// Says in the summary, and counts, how the client's time ended.
    fn ended(&self, ending: Ending) {
        ending.record(self.metrics);
    }

    /// Counts a too-slow client's episode as `what` (`closed` or `skipped`).
    fn slow(&self, what: &'static str) {
        self.metrics.slow_clients.get_or_create(&Outcome { outcome: what }).inc();
    }

    /// A client that fell too far behind: it is detached at once, and gets the rest of the
    /// frame it is in the middle of and Close 1013 afterwards.
    fn too_slow(self, mut pending: Pending) -> (String, Option<Farewell<S>>) {
        pending.cut();
        tracing::warn!(target: "broadcast", "Client too slow: closing with 1013");
        self.slow("closed");
        let frame = close_frame(CloseCode::Again, "too slow");
        self.ended(Ending::sent("server", &frame));
        let farewell = Farewell { ws: self.ws, pending, frame };
        ("still running".to_owned(), Some(farewell))
    }
}

/// What a client too slow to stay still gets, detached: the rest of its half-written frame
/// and a Close frame, for as long as [`SLOW_CLOSE_TIMEOUT`] allows (it is not reading, and
/// may start again).
struct Farewell<S> {
    ws: S,
    pending: Pending,
    frame: CloseFrame,
}

impl<S: Socket> Farewell<S> {
    async fn send(mut self) {
        let _ = tokio::time::timeout(SLOW_CLOSE_TIMEOUT, async {
            write_all(&mut self.ws, &mut self.pending).await;
            let _ = self.ws.send(Message::Close(Some(self.frame))).await;
        })
        .await;
        finish_close(&mut self.ws).await;
    }
}
