//! One session, from the WebSocket upgrade to the child reaped: its lifecycle.
//!
//! A session goes through five phases, each a function here, in this order:
//! 1. [`run`] names it (the log's association) and prepares the child's environment;
//! 2. `connect` waits for the upgrade to finish and says CONNECT;
//! 3. `start` spawns the child and hands its pipes to the [relay](crate::relay), which runs
//!    until the child's output ends, the client leaves, or the server shuts down;
//! 4. `end` settles the rest, the one who ended first deciding: if stdout closed, everything
//!    already read is sent, the child is reaped (through the termination ladder if it
//!    lingers) and a Close frame carries its exit status: 1000 for status 0, else 1011 with
//!    `exit status N` or `killed by signal S`. If the client left, the socket is closed at
//!    once and the child goes through the ladder while its remaining output is discarded. On
//!    a shutdown the client gets 1001 while the child goes through the ladder;
//! 5. `disconnect` frees the `--maxforks` slot and says DISCONNECT, with how the child ended.

use std::future::Future;
use std::pin::{Pin, pin};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use tokio::net::unix::pipe;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;

use crate::child::{self, Child, Ladder, Pipes, Spawn, Spawning};
use crate::close::{
    close_after, close_for_error, close_for_status, close_frame, close_now, going_away,
};
use crate::command::Command;
use crate::env::Vars;
use crate::metrics::Metrics;
use crate::pipe::{PipeInput, PipeOutput};
use crate::relay::{self, End, Flow, Gone};
use crate::request::RequestInfo;
use crate::shutdown::Shutdown;
use crate::slot::Slot;
use crate::socket::Socket;

/// How long the last stderr lines may take to be logged once the process group is gone (a
/// process that left the group may still hold the pipe): the session's last line,
/// DISCONNECT, comes after them.
const STDERR_GRACE: Duration = Duration::from_millis(500);

pub use crate::config::SessionConfig;

/// The socket of a session, still to come: the WebSocket upgrade, resolving to `None` if it
/// fails. Boxed, so that a session's future keeps a pointer to it, not the whole upgrade.
pub type Upgrade<S> = Pin<Box<dyn Future<Output = Option<S>> + Send>>;

/// Runs one session to its end: waits for the upgrade to finish, spawns the child with the
/// environment `env` (made from `req` by [`EnvSettings::cgi_env`](crate::env::EnvSettings::cgi_env), and checked), relays,
/// and sees the child dead and reaped. `slot` (a `--maxforks` permit) is released only after
/// that. When `shutdown` begins, the client gets Close 1001 and the child the termination
/// ladder.
pub fn run<S: Socket + 'static>(
    socket: Upgrade<S>,
    req: &RequestInfo,
    env: Vars,
    command: Arc<Command>,
    config: Arc<SessionConfig>,
    shutdown: Shutdown,
    slot: Slot,
) -> impl Future<Output = ()> + Send + use<S> {
    let span = span(req, &command);
    // The program starts now, on a launcher thread, while the 101 is written and read and
    // the client's first message is on its way: a program's start-up is most of a new
    // session's wait. (The request was admitted: this is the last step before the 101.)
    // A server that has begun to stop starts none.
    let spawning = (!shutdown.is_begun()).then(|| begin(&command, env, &config));
    // The request is needed only for the span: it stays out of every session's future.
    connect(socket, spawning, command, config, shutdown, slot).instrument(span)
}

/// The span a session's lines are logged in (their association): the request, the command,
/// and the pid and exit once known.
pub(crate) fn span(req: &RequestInfo, command: &Command) -> tracing::Span {
    tracing::info_span!(
        target: "session",
        "session",
        url = %req.url(),
        id = req.id,
        remote = %req.remote_label(),
        user = req.user_name(),
        command = %command.program.display(),
        origin = %req.origin(),
        pid = tracing::field::Empty,
        exit = tracing::field::Empty,
        duration = tracing::field::Empty,
        messages_in = tracing::field::Empty,
        bytes_in = tracing::field::Empty,
        messages_out = tracing::field::Empty,
        bytes_out = tracing::field::Empty,
        ended_by = tracing::field::Empty,
        close = tracing::field::Empty,
    )
}

/// Waits for the upgrade, says CONNECT, runs the session and says DISCONNECT. An upgrade
/// that fails drops `spawning`, and with it the program.
///
/// The phases that every idle session is suspended in are functions that return a block, not
/// async fns: an async fn stores its arguments twice in its future (as they come, and as its
/// locals), a block that moves them in stores them once.
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
fn connect<S: Socket + 'static>(
    socket: Upgrade<S>,
    spawning: Option<Spawning>,
    command: Arc<Command>,
    config: Arc<SessionConfig>,
    shutdown: Shutdown,
    slot: Slot,
) -> impl Future<Output = ()> + Send {
    async move {
        let Some(ws) = socket.await else { return };
        let (mut tx, mut rx) = ws.split();
        crate::access!(target: "session", "CONNECT");
        let connected = config.metrics.session();
        let flow = Flow::new(Arc::clone(&config.metrics));
        let exit = match spawning {
            // Admitted just as the server began to stop: no child is started any more.
            // (Boxed: it is rare, and would otherwise take room in every session's future.)
            None => {
                Box::pin(close_after(&mut tx, &mut rx, Some(going_away()))).await;
                Exit::NotStarted
            }
            // One that began to stop since sees it in the relay, and ends as every session.
            Some(spawning) => start(tx, rx, spawning, &command, &config, &shutdown, &flow).await,
        };
        flow.record(connected.elapsed());
        drop(connected);
        disconnect(slot, exit);
    }
}

/// Takes the child when its spawn is done and relays until the child's output ends, the
/// client leaves, or the server shuts down; then ends the session as that decides.
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
fn start<'a, S: Socket + 'a>(
    mut tx: SplitSink<S, Message>,
    mut rx: SplitStream<S>,
    spawning: Spawning,
    command: &'a Command,
    config: &'a SessionConfig,
    shutdown: &'a Shutdown,
    flow: &'a Flow,
) -> impl Future<Output = Exit> + Send + 'a {
    async move {
        let Some((mut child, pipes)) = launched(spawning, command, config).await else {
            let frame = close_frame(CloseCode::Error, "could not launch process");
            close_after(&mut tx, &mut rx, Some(frame)).await;
            return Exit::NotStarted;
        };
        tracing::Span::current().record("pid", child.pid());
        let Pipes { stdin, stdout, stderr } = pipes;
        let (passed_stderr, logging_stderr) = stderr_for(stderr, config.pass_stderr);
        let codec = config.framing.codec(config.max_message);
        let json = config.pass_stderr;
        let ended = {
            // The sides are made in the call, so that only the relay's future holds them.
            let mut relay = pin!(relay::relay(
                &mut tx,
                &mut rx,
                PipeOutput::new(&stdout, codec.clone(), "stdout", json),
                passed_stderr.as_ref().map(|e| PipeOutput::new(e, codec.clone(), "stderr", json)),
                PipeInput::new(stdin, codec),
                config,
                flow,
            ));
            let mut reaping = true;
            loop {
                tokio::select! {
                    end = &mut relay => break end,
                    () = shutdown.begun() => break End::Shutdown,
                    // Reap a child that exits while something else still holds its stdout.
                    _ = child.wait(), if reaping => reaping = false,
                }
            }
            // Leaving this block drops the relay, and with it the child's stdin.
        };
        // The ending is boxed: it runs once, and keeping it out of the relay's state keeps every
        // idle session's future small.
        Box::pin(end(ended, child, stdout, tx, rx, config, logging_stderr)).await
    }
}

/// After the relay: report or stop the child, close the connection, end the group, and see
/// the last of its stderr logged.
async fn end<S: Socket>(
    ended: End,
    mut child: Child,
    stdout: pipe::Receiver,
    mut tx: SplitSink<S, Message>,
    mut rx: SplitStream<S>,
    config: &SessionConfig,
    logging_stderr: Option<tokio::task::JoinHandle<()>>,
) -> Exit {
    let mut ladder = child.ladder(config.closems);
    let how = Ending::of(&ended);
    match ended {
        End::OutputClosed => {
            tracing::debug!(target: "process", "Process STDOUT closed");
            let status = child.reap(&mut ladder).await;
            let frame = close_for_status(status);
            Ending { close: Close::Sent(u16::from(frame.code)), ..how }.record(&config.metrics);
            close_after(&mut tx, &mut rx, Some(frame)).await;
            drop((tx, rx));
            child.finish(&mut ladder).await;
        }
        End::BadOutput(e) => {
            // The child's error: tell the client while the child is stopped.
            tracing::error!(target: "process", "Unusable output from process: {e}");
            how.record(&config.metrics);
            let frame = close_frame(CloseCode::Error, "invalid output from process");
            let goodbye = async move {
                close_after(&mut tx, &mut rx, Some(frame)).await;
            };
            tokio::join!(goodbye, stop(&mut child, &mut ladder, &stdout));
        }
        End::Shutdown | End::Idle | End::TimeLimit => {
            let frame = match ended {
                End::Idle => Expired::Idle.close(config),
                End::TimeLimit => Expired::TimeLimit.close(config),
                _ => {
                    tracing::debug!(target: "session", "Server shutting down: closing with 1001");
                    going_away()
                }
            };
            how.record(&config.metrics);
            let goodbye = async move {
                close_after(&mut tx, &mut rx, Some(frame)).await;
            };
            tokio::join!(goodbye, stop(&mut child, &mut ladder, &stdout));
        }
        End::ClientLeft(gone) => {
            let reply = match gone {
                Gone::Closed(_) => None,
                Gone::Silent => {
                    config.metrics.ping_timeouts.inc();
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
            match &reply {
                Some(frame) => Ending { close: Close::Sent(u16::from(frame.code)), ..how },
                None => how,
            }
            .record(&config.metrics);
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
    last_stderr(logging_stderr).await;
    config.metrics.exited(child.status());
    match child.status() {
        Some(status) => Exit::Ended(status),
        None => Exit::Unknown,
    }
}

/// Which of a session's time limits ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// `--idlems`: no message either way for that long.
    Idle,
    /// `--maxsessionms`: the session ran that long.
    TimeLimit,
}

impl Expired {
    /// Says so, and gives the Close 1001 that tells the client.
    pub(crate) fn close(self, config: &SessionConfig) -> CloseFrame {
        match self {
            Expired::Idle => {
                let ms = config.idle.unwrap_or_default().as_millis();
                tracing::info!(target: "session", "No message either way for {ms} ms (--idlems): closing with 1001");
                close_frame(CloseCode::Away, "idle timeout")
            }
            Expired::TimeLimit => {
                let ms = config.time_limit.unwrap_or_default().as_millis();
                tracing::info!(target: "session", "Session ran {ms} ms (--maxsessionms): closing with 1001");
                close_frame(CloseCode::Away, "session time limit")
            }
        }
    }

    /// Who the summary says ended the session.
    pub(crate) fn by(self) -> &'static str {
        match self {
            Expired::Idle => "idle",
            Expired::TimeLimit => "timelimit",
        }
    }
}

/// How a session ended, for its summary and the close codes counted: who ended it, and the
/// Close frame that went either way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    pub(crate) by: &'static str,
    pub(crate) close: Close,
}

/// The Close frame of an ending.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Close {
    /// Sent, with this code.
    Sent(u16),
    /// Received, with this code (if it had one).
    Received(Option<u16>),
    /// None either way (the connection failed or went silent).
    None,
}

impl Ending {
    /// What the relay's end says; a program's end learns its code once it is reaped.
    fn of(ended: &End) -> Ending {
        let (by, close) = match ended {
            End::OutputClosed => ("program", Close::Sent(1000)),
            End::BadOutput(_) => ("program", Close::Sent(1011)),
            End::Shutdown => ("server", Close::Sent(1001)),
            End::Idle => ("idle", Close::Sent(1001)),
            End::TimeLimit => ("timelimit", Close::Sent(1001)),
            End::ClientLeft(Gone::Closed(code)) => ("client", Close::Received(*code)),
            End::ClientLeft(Gone::Silent) => ("connection", Close::None),
            End::ClientLeft(Gone::Error(_)) => ("connection", Close::None),
        };
        Ending { by, close }
    }

    /// Ended by `by`, with `close`.
    pub(crate) fn new(by: &'static str, close: Close) -> Ending {
        Ending { by, close }
    }

    /// Ended by `by`, who sent `frame`.
    pub(crate) fn sent(by: &'static str, frame: &CloseFrame) -> Ending {
        Ending { by, close: Close::Sent(u16::from(frame.code)) }
    }

    /// Records it in the session's span (its summary) and counts a code sent.
    pub(crate) fn record(self, metrics: &Metrics) {
        let span = tracing::Span::current();
        span.record("ended_by", self.by);
        let close = match self.close {
            Close::Sent(code) => {
                metrics.close_sent(code);
                format!("sent {code}")
            }
            Close::Received(Some(code)) => format!("received {code}"),
            Close::Received(None) => "received".to_owned(),
            Close::None => "none".to_owned(),
        };
        span.record("close", close.as_str());
    }
}

/// Spawns `command` with `env`, counted in `metrics`; a failure is logged and counted, and
/// gives `None`.
pub(crate) async fn launch(
    command: &Command,
    env: Vars,
    config: &SessionConfig,
) -> Option<(Child, Pipes)> {
    launched(begin(command, env, config), command, config).await
}

/// Starts spawning `command` with `env` (see [`Child::begin`]).
fn begin(command: &Command, env: Vars, config: &SessionConfig) -> Spawning {
    let how = Spawn { cwd: None, pty: config.pty };
    Child::begin(command.program.clone(), command.args.clone(), env, how)
}

/// The child of `spawning`, counted in `metrics`; a failure is logged and counted, and
/// gives `None`.
async fn launched(
    spawning: Spawning,
    command: &Command,
    config: &SessionConfig,
) -> Option<(Child, Pipes)> {
    let metrics = &config.metrics;
    match spawning.finish().await {
        Ok(spawned) => {
            metrics.spawned();
            Some(spawned)
        }
        Err(e) => {
            tracing::error!(target: "process", "Could not launch process {} ({e})", command.line());
            metrics.spawn_failures.inc();
            None
        }
    }
}

/// The child's stderr: passed on to the client (`--passstderr`, returned as the first), or
/// logged line by line by a task of its own (its handle the second).
pub(crate) fn stderr_for(
    stderr: pipe::Receiver,
    pass: bool,
) -> (Option<pipe::Receiver>, Option<tokio::task::JoinHandle<()>>) {
    if pass {
        return (Some(stderr), None);
    }
    let drain = child::drain_stderr(stderr).instrument(tracing::Span::current());
    (None, Some(tokio::spawn(drain)))
}

/// Lets the stderr logger finish its last lines, for [`STDERR_GRACE`] at most once the
/// process group is gone (a process that left the group may still hold the pipe).
pub(crate) async fn last_stderr(logging: Option<tokio::task::JoinHandle<()>>) {
    let Some(mut drain) = logging else { return };
    if tokio::time::timeout(STDERR_GRACE, &mut drain).await.is_err() {
        tracing::debug!(target: "process", "STDERR still open after the process group ended: no longer logged");
        drain.abort();
    }
}

/// The session is over: its slot is free before anyone reads that it is, and DISCONNECT
/// says how the child ended.
fn disconnect(slot: Slot, exit: Exit) {
    drop(slot);
    tracing::Span::current().record("exit", tracing::field::display(exit));
    crate::access!(target: "session", "DISCONNECT");
}

/// Climbs the ladder to the end, draining stdout meanwhile so that a child blocked on it can
/// see stdin's end and exit.
pub(crate) async fn stop(child: &mut Child, ladder: &mut Ladder, stdout: &pipe::Receiver) {
    let mut ladder_done = pin!(async {
        child.reap(ladder).await;
        child.finish(ladder).await;
    });
    let mut drain = pin!(crate::pipe::discard(stdout));
    let mut draining = true;
    loop {
        tokio::select! {
            () = &mut ladder_done => break,
            () = &mut drain, if draining => draining = false,
        }
    }
}

/// How the program ended, for the DISCONNECT line's `exit` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use tokio_tungstenite::WebSocketStream;
    use websocketd_framing::Framing;

    use super::*;
    use crate::env::EnvSettings;
    use crate::testing::{ChannelSocket, Client, channel_socket, next};

    fn start(program: &str, args: &[&str]) -> (Client, tokio::task::JoinHandle<()>) {
        start_with(Shutdown::new(), program, args)
    }

    fn start_with(
        shutdown: Shutdown,
        program: &str,
        args: &[&str],
    ) -> (Client, tokio::task::JoinHandle<()>) {
        let (socket, client) = channel_socket();
        let command =
            Command { program: program.into(), args: args.iter().map(OsString::from).collect() };
        let config = Arc::new(config());
        let req = request();
        let env = config.env.cgi_env(&req);
        let session =
            run(ready(socket), &req, env, Arc::new(command), config, shutdown, Slot::default());
        (client, tokio::spawn(session))
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
            metrics: Arc::default(),
            idle: None,
            time_limit: None,
            pty: false,
            flush: None,
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
            path_info: b"/".to_vec(),
            subprotocol: None,
            client_subject: None,
            user: None,
        }
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
        let shutdown = Shutdown::new();
        // The child would echo forever; only the shutdown ends the session.
        let ((tx, mut rx), task) = start_with(shutdown.clone(), "/bin/cat", &[]);
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
        use tokio_tungstenite::tungstenite::Error as WsError;
        tx.send(Err(WsError::Capacity(too_long))).unwrap();
        let Message::Close(Some(frame)) = next(&mut rx).await else { panic!("expected a Close") };
        assert_eq!(frame.code, CloseCode::Size);
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_upgrade_that_fails_takes_the_program_started_meanwhile_along() {
        // The program starts before the upgrade is done; here it is running (it has written
        // its pid) when the upgrade fails.
        let file = std::env::temp_dir().join(format!("wsd-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let script = r#"echo $$ > "$0.new" && mv "$0.new" "$0" && exec sleep 30"#;
        let command = Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into(), file.clone().into()],
        };
        let config = Arc::new(config());
        let env = config.env.cgi_env(&request());
        let seen = file.clone();
        let upgrade: Upgrade<ChannelSocket> = Box::pin(async move {
            while !seen.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        });
        let session = run(
            upgrade,
            &request(),
            env,
            Arc::new(command),
            config,
            Shutdown::new(),
            Slot::default(),
        );
        tokio::time::timeout(Duration::from_secs(10), session).await.expect("the session ended");
        let pid: i32 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
        std::fs::remove_file(&file).unwrap();
        // Killed, and reaped by the reaper (a zombie would still answer signal 0).
        let gone = async {
            while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone).await.expect("the program is gone");
    }

    #[tokio::test]
    async fn an_idle_session_costs_little_memory() {
        // Every connection holds its session's future: it must stay small (it was 8 KiB
        // before the ending was boxed and the arguments were trimmed; watching for the
        // shutdown added 72 bytes to 2024; the phases that store their arguments once took
        // it to 1992; the relay's stamps, kept once for both pumps, to 1968 with the time
        // limits).
        let (a, _b) = tokio::io::duplex(64);
        let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
        let ws = WebSocketStream::from_raw_socket(a, role, None).await;
        let command = Command { program: "/bin/cat".into(), args: vec![] };
        let (config, shutdown) = (Arc::new(config()), Shutdown::new());
        let env = config.env.cgi_env(&request());
        let fut =
            run(ready(ws), &request(), env, Arc::new(command), config, shutdown, Slot::default());
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2176, "a session's future takes {size} bytes");
    }
}
