//! The scenarios: what each starts the server with, what it drives, what it measures, and
//! the target ratio against websocketd where the benchmark issue sets one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::load::{self, Dial};
use crate::proxy::Upstream;
use crate::stats::{millis, percentile};
use crate::target::{self, Listen, Running};
use crate::tls::{self, Handshakes};

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (rates).
    Higher,
    /// Less is better (latency, memory).
    Lower,
}

/// A ratio (ours / websocketd) the issue asks for.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// At least this ratio.
    AtLeast(f64),
    /// At most this ratio.
    AtMost(f64),
}

impl Goal {
    /// Whether `ratio` meets it.
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(g) => ratio >= g,
            Goal::AtMost(g) => ratio <= g,
        }
    }

    /// As the table shows it.
    pub fn label(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g}x"),
            Goal::AtMost(g) => format!("<= {g}x"),
        }
    }
}

/// One figure a scenario produced.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Its unit.
    pub unit: &'static str,
    /// The value.
    pub value: f64,
    /// Which way is better.
    pub better: Better,
    /// The target ratio, if any.
    pub goal: Option<Goal>,
    /// The target against websocat, where it is not the usual one.
    pub websocat: Option<Goal>,
}

fn metric(
    name: &'static str,
    unit: &'static str,
    value: f64,
    better: Better,
    goal: Option<Goal>,
) -> Metric {
    Metric { name, unit, value, better, goal, websocat: None }
}

/// What a scenario does.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Connection rate with this many concurrent clients.
    Connections(usize),
    /// Pipelined echo of 64-byte lines on one connection.
    Echo64,
    /// Server push of 64-byte lines.
    Push,
    /// Binary echo with chunks of this size.
    BinaryEcho(usize),
    /// Binary upload with chunks of this size.
    Upload(usize),
    /// Binary download with the child writing chunks of this size.
    Download(usize),
    /// This many idle connections.
    Idle(usize),
    /// Echo round trips on one connection while 100 others stream.
    RoundTripUnderLoad,
    /// One shared program (`--broadcast`) printing this many stamped lines as fast as it
    /// can, to this many clients.
    Broadcast { clients: usize, lines: u64, paced: Option<(u64, u64)> },
    /// Echo round trips on one connection, paced, while 100 others echo at a fixed total
    /// rate (messages per second).
    RoundTripModerate(usize),
    /// Thousands of messages in flight at once.
    DeepPipeline,
    /// WebSocket sessions over HTTP/2 (`--http2`), this many at once on each connection.
    Http2Sessions(usize),
}

/// Names that other parts of the report look figures up by.
pub mod names {
    /// The connection scenario with one client.
    pub const ONE_CLIENT: &str = "connections, 1 client";
    /// The connection scenario with 32 clients.
    pub const CLIENTS_32: &str = "connections, 32 clients";
    /// Connections per second.
    pub const RATE: &str = "connections";
    /// Time from connecting to the first echo, median.
    pub const FIRST_P50: &str = "first message p50";
    /// The machine's busy CPU time per connection.
    pub const BUSY: &str = "machine's busy CPU per connection";
    /// CPU time left idle or stolen by the hypervisor, per connection.
    pub const IDLE: &str = "  idle or stolen";
    /// The server's CPU per connection.
    pub const SERVER: &str = "server CPU per connection";
    /// The part of [`SERVER`] spent in the kernel.
    pub const SERVER_KERNEL: &str = "  of it in the kernel";
    /// The server's children's CPU per connection.
    pub const CHILDREN: &str = "children's CPU per connection";
    /// The load generator's own CPU per connection.
    pub const CLIENT: &str = "load generator CPU per connection";
    /// Connections through nginx to TCP, 32 clients.
    pub const NGINX_TCP_RATE: &str = "nginx -> TCP: connections, 32 clients";
    /// Echo through nginx to TCP.
    pub const NGINX_TCP_ECHO: &str = "nginx -> TCP: echo 64 B lines";
    /// Messages received by a shared program's clients, summed, per second.
    pub const DELIVERIES: &str = "deliveries";
    /// The shared-session scenario.
    pub const BROADCAST: &str = "broadcast: 1000 clients, one program";
    /// Download through nginx to TCP.
    pub const NGINX_TCP_DOWNLOAD: &str = "nginx -> TCP: binary download 64 KiB";
    /// The plain download scenarios.
    pub const DOWNLOADS: [&str; 2] = ["binary download 4 KiB", "binary download 64 KiB"];
    /// Their figure.
    pub const DOWNLOAD: &str = "download";
    /// Pipelined echo in a resumable session.
    pub const RESUME_ECHO: &str = "resume: echo 64 B lines, pipelined";
    /// Server push in a resumable session.
    pub const RESUME_PUSH: &str = "resume: server push 64 B lines";
}

/// A proxy in front of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// nginx, to the server's TCP port.
    NginxTcp,
    /// nginx, to the server's unix socket (`--unixsocket`).
    NginxUnix,
}

/// A named scenario and how the server is started for it.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name in the report.
    pub name: String,
    /// What it does.
    pub kind: Kind,
    /// Over TLS (`--ssl`), with these handshakes; plain `ws://` when `None`.
    pub tls: Option<Handshakes>,
    /// Behind a proxy; clients straight to the server when `None`.
    pub via: Option<Via>,
    /// Resumable sessions (`--resumems`, and every client names its session): what resuming
    /// costs the hot path. Ours only.
    pub resume: bool,
}

/// A 64-byte line for `yes`: 63 characters and its newline.
fn yes_line() -> String {
    "y".repeat(63)
}

impl Scenario {
    /// Every scenario, in report order.
    pub fn all() -> Vec<Scenario> {
        use Kind::*;
        let kinds = [
            (names::ONE_CLIENT, Connections(1)),
            (names::CLIENTS_32, Connections(32)),
            ("echo 64 B lines, pipelined", Echo64),
            ("server push 64 B lines", Push),
            ("binary echo 4 KiB", BinaryEcho(4096)),
            ("binary echo 64 KiB", BinaryEcho(65536)),
            ("binary upload 4 KiB", Upload(4096)),
            ("binary upload 64 KiB", Upload(65536)),
            ("binary download 4 KiB", Download(4096)),
            ("binary download 64 KiB", Download(65536)),
            ("1000 idle connections", Idle(1000)),
            ("4000 idle connections", Idle(4000)),
            ("echo latency, 100 streaming", RoundTripUnderLoad),
            ("echo latency, 100 echo 30k msg/s", RoundTripModerate(30_000)),
            ("deep pipelining", DeepPipeline),
            (names::BROADCAST, Broadcast { clients: 1000, lines: 5000, paced: None }),
            // 1600 lines a second in bursts of 16 every 10 ms: 1.6M deliveries a second, a
            // steady load above the 1.5M target, for the delay a steady stream sees.
            (
                "broadcast: 1000 clients, 1600 lines/s",
                Broadcast { clients: 1000, lines: 4000, paced: Some((16, 10)) },
            ),
        ];
        let plain = kinds.into_iter().map(|(name, kind)| (name, kind, None, None));
        let full = Some(Handshakes::Full);
        let wss = [
            ("wss: connections, 32 clients", Connections(32), full),
            ("wss: connections, 32 clients, resumed", Connections(32), Some(Handshakes::Resumed)),
            ("wss: echo 64 B lines, pipelined", Echo64, full),
            ("wss: binary download 64 KiB", Download(65536), full),
            ("wss: connections, 100 clients", Connections(100), full),
            ("wss over HTTP/2: 100 sessions per connection", Http2Sessions(100), full),
        ]
        .map(|(name, kind, tls)| (name, kind, tls, None));
        let (unix, tcp) = (Some(Via::NginxUnix), Some(Via::NginxTcp));
        let nginx = [
            ("nginx -> unix socket: connections, 32 clients", Connections(32), unix),
            ("nginx -> unix socket: echo 64 B lines", Echo64, unix),
            ("nginx -> unix socket: binary download 64 KiB", Download(65536), unix),
            (names::NGINX_TCP_RATE, Connections(32), tcp),
            (names::NGINX_TCP_ECHO, Echo64, tcp),
            (names::NGINX_TCP_DOWNLOAD, Download(65536), tcp),
        ]
        .map(|(name, kind, via)| (name, kind, None, via));
        let resumable = [(names::RESUME_ECHO, Echo64), (names::RESUME_PUSH, Push)];
        plain
            .chain(wss)
            .chain(nginx)
            .map(|(name, kind, tls, via)| Scenario {
                name: name.to_owned(),
                kind,
                tls,
                via,
                resume: false,
            })
            .chain(resumable.into_iter().map(|(name, kind)| Scenario {
                name: name.to_owned(),
                kind,
                tls: None,
                via: None,
                resume: true,
            }))
            .collect()
    }

    /// How much longer than four times its measuring time a run may take before it counts
    /// as timed out: opening thousands of idle connections takes long, the rest does not (a
    /// server that stops answering under a scenario's load costs a round no more than that).
    pub fn margin(&self) -> Duration {
        match self.kind {
            Kind::Idle(_) | Kind::Broadcast { .. } => Duration::from_secs(40),
            _ => Duration::from_secs(15),
        }
    }

    /// Whether the scenario leaves the server `target` out: websocketd has no shared
    /// programs (it would start one per client, which is not the same thing).
    pub fn skips(&self, target: &str) -> bool {
        (matches!(self.kind, Kind::Broadcast { .. }) && target == "websocketd")
            || ((self.resume || matches!(self.kind, Kind::Http2Sessions(_))) && target != "ours")
    }

    /// Where the server listens in this scenario.
    pub fn listen(&self) -> Result<Listen> {
        Ok(match self.via {
            Some(Via::NginxUnix) => {
                let dir = std::path::PathBuf::from("target/bench-sock");
                std::fs::create_dir_all(&dir)?;
                Listen::Unix(dir.canonicalize()?.join("server.sock"))
            }
            _ => Listen::Tcp,
        })
    }

    /// What a proxy in front of `server` forwards to, when there is one.
    pub fn upstream(&self, server: &Running) -> Option<Upstream> {
        match (self.via?, &server.unix) {
            (Via::NginxUnix, Some(path)) => Some(Upstream::Unix(path.clone())),
            _ => Some(Upstream::Tcp(server.addr)),
        }
    }

    /// How clients reach the server, or its proxy, at `addr`.
    fn dial(&self, addr: SocketAddr) -> Result<Dial> {
        Ok(match self.tls {
            None => Dial::plain(addr),
            // A configuration per run: a resumed run starts with an empty session cache.
            Some(handshakes) => Dial::tls(addr, tls::client(handshakes)?),
        })
    }

    /// The server's flags and command.
    pub fn server_args(&self) -> Result<Vec<String>> {
        let mut args = Vec::new();
        if self.tls.is_some() {
            let files = tls::files()?;
            args.push("--ssl".to_owned());
            args.push(format!("--sslcert={}", files.cert.display()));
            args.push(format!("--sslkey={}", files.key.display()));
        }
        if self.resume {
            args.push("--resumems=30000".to_owned());
        }
        if let Kind::Http2Sessions(_) = self.kind {
            args.push("--http2".to_owned());
        }
        args.extend(self.command_args());
        Ok(args)
    }

    /// The flags and command of what the scenario runs, TLS aside.
    fn command_args(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        match self.kind {
            Kind::Connections(_)
            | Kind::Http2Sessions(_)
            | Kind::Echo64
            | Kind::DeepPipeline
            | Kind::RoundTripModerate(_) => s(&["cat"]),
            // Ours limits processes to 1024 by default; websocketd 0.4.1 does not limit them.
            Kind::Idle(_) => s(&["--maxforks=0", "cat"]),
            Kind::Push => vec!["yes".to_owned(), yes_line()],
            Kind::BinaryEcho(_) => s(&["--binary", "cat"]),
            // The shell keeps stdout open while cat discards stdin (`dd of=/dev/null` would
            // reopen stdout on /dev/null, which ends the session).
            Kind::Upload(_) => s(&["--binary", "sh", "-c", "cat >/dev/null; echo done"]),
            Kind::Download(n) => {
                vec![
                    "--binary".into(),
                    "dd".into(),
                    "if=/dev/zero".into(),
                    format!("bs={n}"),
                    "status=none".into(),
                ]
            }
            Kind::Broadcast { lines, paced, .. } => {
                let me = std::env::current_exe().map(|p| p.display().to_string());
                let mut args = vec![
                    "--broadcast".into(),
                    // Room for the whole output: the figure is what clients can take, with
                    // no one closed as too slow.
                    "--clientqueue=8388608".into(),
                    me.unwrap_or_else(|_| "websocketd-bench".into()),
                    crate::fanout::STAMP_FLAG.into(),
                    lines.to_string(),
                ];
                if let Some((burst, every_ms)) = paced {
                    args.extend([burst.to_string(), every_ms.to_string()]);
                }
                args
            }
            Kind::RoundTripUnderLoad => vec![
                "sh".into(),
                "-c".into(),
                // websocat gives the target as WEBSOCAT_URI where websocketd has QUERY_STRING.
                format!(
                    "case \"$QUERY_STRING $WEBSOCAT_URI\" in *stream*) exec yes {};; *) exec cat;; esac",
                    yes_line()
                ),
            ],
        }
    }

    /// The path of a scenario's one connection: a new resumable session's, when it is one.
    fn path(&self) -> String {
        if !self.resume {
            return "/".to_owned();
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("/?wsd_session=bench-{nanos:024}&wsd_seen=0")
    }

    /// Runs the scenario against `server`, reached at `addr` (its own, or its proxy's), for
    /// about `time`.
    pub async fn run(
        &self,
        server: &Running,
        addr: SocketAddr,
        time: Duration,
    ) -> Result<Vec<Metric>> {
        use Better::*;
        let to = self.dial(addr)?;
        Ok(match self.kind {
            Kind::Connections(clients) => {
                let cpu = || {
                    let (busy, idle) = target::machine_cpu_seconds();
                    let (ours, own) = (server.cpu(), target::own_cpu());
                    [busy, idle, ours.total(), ours.system, ours.children, own.total()]
                };
                let before = cpu();
                let (rate, firsts) = load::connection_rate(&to, clients, time).await?;
                let after = cpu();
                let [busy_ms, idle_ms, server_ms, kernel_ms, children_ms, client_ms] =
                    std::array::from_fn(|i| {
                        (after[i] - before[i]) * 1000.0 / firsts.len().max(1) as f64
                    });
                let ms = millis(&firsts);
                let rate_goal = match self.tls {
                    Some(_) => Some(Goal::AtLeast(1.4)),
                    None => (clients == 32).then_some(Goal::AtLeast(1.3)),
                };
                let first_goal =
                    (self.tls.is_none() && self.via.is_none()).then_some(Goal::AtMost(0.8));
                vec![
                    metric(names::RATE, "conn/s", rate, Higher, rate_goal),
                    metric(names::FIRST_P50, "ms", percentile(&ms, 50.0), Lower, first_goal),
                    metric("first message p99", "ms", percentile(&ms, 99.0), Lower, None),
                    metric(names::BUSY, "ms", busy_ms, Lower, None),
                    metric(names::IDLE, "ms", idle_ms, Lower, None),
                    metric(names::SERVER, "ms", server_ms, Lower, None),
                    metric(names::SERVER_KERNEL, "ms", kernel_ms, Lower, None),
                    metric(names::CHILDREN, "ms", children_ms, Lower, None),
                    metric(names::CLIENT, "ms", client_ms, Lower, None),
                ]
            }
            Kind::Http2Sessions(per_connection) => {
                let cpu = || {
                    let ours = server.cpu();
                    [ours.total(), ours.children]
                };
                let before = cpu();
                let (rate, firsts) = crate::http2::session_rate(&to, per_connection, time).await?;
                let after = cpu();
                let per = |i: usize| (after[i] - before[i]) * 1000.0 / firsts.len().max(1) as f64;
                let ms = millis(&firsts);
                vec![
                    metric("sessions", "sessions/s", rate, Higher, None),
                    metric(names::FIRST_P50, "ms", percentile(&ms, 50.0), Lower, None),
                    metric(names::SERVER, "ms", per(0), Lower, None),
                    metric(names::CHILDREN, "ms", per(1), Lower, None),
                ]
            }
            Kind::Echo64 => {
                let ws = load::connect(&to, &self.path()).await?;
                // 1000 lines in flight stays under the ~150 KiB at which websocketd 0.4.1 hangs.
                let rate = load::echo(ws, load::line64(), load::Unit::Messages, 1000, time).await?;
                vec![metric("echo", "msg/s", rate, Higher, Some(Goal::AtLeast(4.0)))]
            }
            Kind::Push => {
                let ws = load::connect(&to, &self.path()).await?;
                let (msgs, bytes) = load::download(ws, time).await?;
                vec![
                    metric("push", "msg/s", msgs, Higher, Some(Goal::AtLeast(8.0))),
                    metric("push", "MB/s", bytes / 1e6, Higher, None),
                ]
            }
            Kind::BinaryEcho(chunk) => {
                let ws = load::connect(&to, "/").await?;
                // Two chunks (or 64 KiB) in flight: under websocketd 0.4.1's deadlock point.
                let window = (2 * chunk).max(64 << 10);
                let rate =
                    load::echo(ws, load::binary(chunk), load::Unit::Bytes, window, time).await?;
                let goal = (chunk == 65536).then_some(Goal::AtLeast(2.0));
                vec![metric("binary echo", "MB/s", rate / 1e6, Higher, goal)]
            }
            Kind::Upload(chunk) => {
                let ws = load::connect(&to, "/").await?;
                let rate = load::upload(ws, chunk, time).await?;
                vec![metric("upload", "MB/s", rate / 1e6, Higher, None)]
            }
            Kind::Download(chunk) => {
                let ws = load::connect(&to, "/").await?;
                let (messages, bytes) = load::download(ws, time).await?;
                // Behind nginx the target is a share of the proxy path's own ceiling (see the
                // ceiling's lines), not a ratio to websocketd.
                let goal = (chunk == 65536 && self.via.is_none()).then_some(Goal::AtLeast(1.5));
                // Messages follow the server's pipe reads: one that reads later finds more
                // of the program's writes waiting and sends fewer, larger messages.
                let mean = bytes / messages.max(f64::MIN_POSITIVE) / 1024.0;
                vec![
                    metric("download", "MB/s", bytes / 1e6, Higher, goal),
                    metric("mean message", "KiB", mean, Higher, None),
                ]
            }
            Kind::Idle(n) => idle(server, n).await?,
            Kind::RoundTripUnderLoad => {
                let bytes = Arc::new(AtomicU64::new(0));
                let mut streams = Vec::new();
                for _ in 0..100 {
                    let ws = load::connect(&to, "/?stream").await?;
                    streams.push(tokio::spawn(load::drain(ws, Arc::clone(&bytes))));
                }
                let probe = load::connect(&to, "/").await?;
                let rtts = load::round_trips(probe, time).await;
                for s in &streams {
                    s.abort();
                }
                let ms = millis(&rtts?);
                vec![
                    metric("echo round trip p50", "ms", percentile(&ms, 50.0), Lower, None),
                    metric(
                        "echo round trip p99",
                        "ms",
                        percentile(&ms, 99.0),
                        Lower,
                        Some(Goal::AtMost(0.7)),
                    ),
                ]
            }
            Kind::RoundTripModerate(total) => {
                // 100 connections, each a few lines every 10 ms (tokio's timers have 1 ms
                // resolution), their ticks spread over the 10 ms.
                let tick = Duration::from_millis(10);
                let per_tick = (total / 100 / 100).max(1);
                let echoed = Arc::new(AtomicU64::new(0));
                let mut loads = Vec::new();
                for i in 0..100u32 {
                    let ws = load::connect(&to, "/").await?;
                    let offset = tick * i / 100;
                    let echoed = Arc::clone(&echoed);
                    loads.push(tokio::spawn(load::paced_echo(ws, per_tick, tick, offset, echoed)));
                }
                let probe = load::connect(&to, "/").await?;
                let start = Instant::now();
                let before = echoed.load(std::sync::atomic::Ordering::Relaxed);
                // A probe every millisecond at most: the 0.3 ms of the harness is
                // below what tokio's timers can pace.
                let rtts = load::paced_round_trips(probe, Duration::from_millis(1), time).await;
                let carried = (echoed.load(std::sync::atomic::Ordering::Relaxed) - before) as f64
                    / start.elapsed().as_secs_f64();
                for l in &loads {
                    l.abort();
                }
                let ms = millis(&rtts?);
                let goal = Some(Goal::AtMost(0.8));
                vec![
                    metric("echo round trip p50", "ms", percentile(&ms, 50.0), Lower, goal),
                    metric("echo round trip p99", "ms", percentile(&ms, 99.0), Lower, goal),
                    metric("load echoed meanwhile", "msg/s", carried, Higher, None),
                ]
            }
            Kind::Broadcast { clients, lines, .. } => {
                let cpu = || (server.cpu().total(), target::own_cpu().total());
                let before = cpu();
                let got = crate::fanout::run(&to, clients, lines, || server.rss_kib()).await?;
                let after = cpu();
                // CPU seconds per million deliveries: what bounds the figure on two cores.
                let per_million = |spent: f64| match got.received {
                    0 => f64::NAN,
                    n => spent / (n as f64 / 1e6),
                };
                let websocat = Some(Goal::AtLeast(3.0));
                let deliveries = metric(names::DELIVERIES, "msg/s", got.deliveries, Higher, None);
                vec![
                    Metric { websocat, ..deliveries },
                    metric("delay p50", "ms", percentile(&got.delays, 50.0), Lower, None),
                    metric("delay p99", "ms", percentile(&got.delays, 99.0), Lower, None),
                    metric("lost", "msgs", got.lost as f64, Lower, None),
                    metric("server RSS per client", "KiB", got.rss_per_client, Lower, None),
                    metric(
                        "server CPU per 1M deliveries",
                        "s",
                        per_million(after.0 - before.0),
                        Lower,
                        None,
                    ),
                    metric(
                        "load generator CPU per 1M",
                        "s",
                        per_million(after.1 - before.1),
                        Lower,
                        None,
                    ),
                ]
            }
            Kind::DeepPipeline => {
                let ws = load::connect(&to, "/").await?;
                let limit = time.max(Duration::from_secs(3));
                let took = load::deep_pipeline(ws, 20_000, limit).await?;
                vec![metric(
                    "20,000 in flight, all back",
                    "ms",
                    took.as_secs_f64() * 1000.0,
                    Lower,
                    None,
                )]
            }
        })
    }
}

/// Opens `n` connections, echoes once on each, and measures what they cost the server.
async fn idle(server: &Running, n: usize) -> Result<Vec<Metric>> {
    use Better::*;
    let to = Dial::plain(server.addr);
    let (rss0, fds0) = (server.rss_kib(), server.fds());
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    // 64 at a time, as a burst of users would arrive.
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let opened =
            futures_util::future::join_all(batch.iter().map(|_| load::connect(&to, "/"))).await;
        for ws in opened {
            conns.push(ws?);
        }
    }
    let open_ms = start.elapsed().as_secs_f64() * 1000.0;
    let echo_start = Instant::now();
    let echoed = futures_util::future::join_all(conns.iter_mut().map(|ws| async move {
        ws.send(Message::text("ping")).await?;
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if load::is_echo(&t, "ping") => anyhow::Ok(()),
            other => bail!("no echo: {other:?}"),
        }
    }))
    .await;
    let echo_ms = echo_start.elapsed().as_secs_f64() * 1000.0;
    let failed: Vec<&anyhow::Error> = echoed.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        bail!("{} of {n} connections did not echo; the first: {first:#}", failed.len());
    }
    let (rss, fds) = (server.rss_kib(), server.fds());
    drop(conns);
    let per = |now: f64, before: f64| (now - before) / n as f64;
    Ok(vec![
        metric(
            "server RSS per connection",
            "KiB",
            per(rss as f64, rss0 as f64),
            Lower,
            Some(Goal::AtMost(0.4)),
        ),
        metric("fds per connection", "fds", per(fds as f64, fds0 as f64), Lower, None),
        metric("time to open all", "ms", open_ms, Lower, None),
        metric("echo on every one", "ms", echo_ms, Lower, None),
    ])
}
