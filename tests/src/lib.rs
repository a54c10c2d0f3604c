//! The harness for the black-box suites: the real `websocketd` binary started on
//! 127.0.0.1 with `--port=0` (the port read back from its start-up line, so no sleeping for
//! readiness), real WebSocket clients, fixtures that are real programs, and checks on the
//! processes the server leaves behind.
//!
//! The binary is the one `cargo test --workspace` builds next to the test executables
//! (`target/<profile>/websocketd`); `WEBSOCKETD_BIN` points elsewhere.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client connection as the suites use it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The default bound on any single awaited step.
pub const STEP: Duration = Duration::from_secs(20);

/// Fails the test if `fut` takes longer than `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}"),
    }
}

/// The websocketd binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WEBSOCKETD_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/websocketd
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("websocketd");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or build -p websocketd)",
        bin.display()
    );
    // `cargo test -p websocketd-tests` alone does not rebuild the binary: refuse a stale one
    // rather than test old code.
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).expect("binary mtime");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = ["framing", "core", "transport-ws", "cli"]
        .iter()
        .filter_map(|krate| newest_source(&root.join(krate)))
        .max();
    if let Some((changed, path)) = newest {
        assert!(
            changed <= built,
            "{} is older than {}: run `cargo build -p websocketd` or `cargo test --workspace`",
            bin.display(),
            path.display()
        );
    }
    bin
}

/// The most recently modified `.rs` or `Cargo.toml` under `dir`, its own tests left out.
fn newest_source(dir: &std::path::Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let found = if path.is_dir() {
            if name == "tests" {
                continue;
            }
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") || name == "Cargo.toml" {
            entry.metadata().and_then(|m| m.modified()).ok().map(|t| (t, path))
        } else {
            None
        };
        if let Some(found) = found {
            if newest.as_ref().is_none_or(|n| found.0 > n.0) {
                newest = Some(found);
            }
        }
    }
    newest
}

/// The absolute path of a fixture program in `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    assert!(path.exists(), "no fixture {}", path.display());
    path.to_string_lossy().into_owned()
}

/// A fresh temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Makes one.
    pub fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsd-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running websocketd.
#[derive(Debug)]
pub struct Server {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<(Mutex<Vec<String>>, Notify)>,
}

impl Server {
    /// Starts websocketd on 127.0.0.1, port 0, with `args` (flags then COMMAND).
    pub async fn start(args: &[&str]) -> Server {
        Server::start_with(&["--address=127.0.0.1", "--port=0"], args, &[]).await
    }

    /// Starts websocketd with `listen` flags, then `args`, with extra environment `env`.
    pub async fn start_with(listen: &[&str], args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.args(listen).args(args).envs(env.iter().copied());
        Server::launch(cmd).await
    }

    /// Starts websocketd listening only on the unix socket `path`, with `args`.
    pub async fn start_unix(path: &str, args: &[&str]) -> Server {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.arg(format!("--unixsocket={path}")).args(args);
        Server::launch(cmd).await
    }

    /// Runs `cmd` (websocketd, or something that execs it) and waits for its first start-up
    /// line; `addr` is the TCP address it names, or port 0 for a unix socket.
    pub async fn launch(cmd: tokio::process::Command) -> Server {
        Server::launch_within(cmd, STEP).await
    }

    /// As [`Server::launch`], waiting up to `limit` for the start-up line (for a command that
    /// builds the server first).
    pub async fn launch_within(mut cmd: tokio::process::Command, limit: Duration) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("start websocketd");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new((Mutex::new(Vec::<String>::new()), Notify::new()));
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.0.lock().unwrap().push(line);
                sink.1.notify_waiters();
            }
        });
        let mut server = Server { child, addr: "127.0.0.1:0".parse().unwrap(), log };
        let line = server.wait_log_within(limit, |l| l.contains("Starting WebSocket server")).await;
        // `ws://host:port/`, perhaps followed by the name of an inherited socket.
        let at = line.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
        if at.starts_with("unix:") {
            return server;
        }
        let (host, port) = at.rsplit_once(':').unwrap_or_else(|| panic!("no port in {line:?}"));
        let port: u16 = port.parse().unwrap_or_else(|_| panic!("no port in {line:?}"));
        let ip = if host == "[::1]" { "::1" } else { "127.0.0.1" };
        server.addr = SocketAddr::new(ip.parse().unwrap(), port);
        server
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server running")
    }

    /// `ws://host:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits (bounded) for a log line matching `pred` and returns it.
    pub async fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_log_within(STEP, pred).await
    }

    /// Waits up to `limit` for a log line matching `pred` and returns it.
    pub async fn wait_log_within(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        within(limit, async {
            loop {
                let notified = self.log.1.notified();
                if let Some(l) = self.log.0.lock().unwrap().iter().find(|l| pred(l)) {
                    return l.clone();
                }
                notified.await;
            }
        })
        .await
    }

    /// Waits (bounded) until `n` log lines match `pred`.
    pub async fn wait_log_count(&self, n: usize, pred: impl Fn(&str) -> bool) {
        within(STEP, async {
            loop {
                let notified = self.log.1.notified();
                if self.log.0.lock().unwrap().iter().filter(|l| pred(l)).count() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Opens a WebSocket to `path`.
    pub async fn connect(&self, path: &str) -> Ws {
        connect(&self.url(path)).await
    }

    /// The server's direct children that are alive (not zombies).
    pub fn live_children(&self) -> Vec<u32> {
        processes()
            .into_iter()
            .filter(|p| p.ppid == self.pid() && p.state != 'Z')
            .map(|p| p.pid)
            .collect()
    }

    /// Waits (bounded) until the server has no live child left.
    pub async fn wait_no_children(&self) {
        within(STEP, async {
            while !self.live_children().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Stops the server with SIGTERM and waits for it.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait().await
    }

    /// Sends the server `signal`.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// Waits (bounded) for the server to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        within(STEP, self.child.wait()).await.expect("wait for websocketd")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM lets the server take its children down with it; give it a bounded moment
        // before kill_on_drop's SIGKILL.
        terminate(&mut self.child, Duration::from_secs(3));
    }
}

/// Sends `child` SIGTERM and waits up to `limit` for it to exit (synchronously: for `Drop`).
fn terminate(child: &mut tokio::process::Child, limit: Duration) {
    let Some(pid) = child.id() else { return };
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connects a WebSocket client that accepts large messages.
pub async fn connect(url: &str) -> Ws {
    let config =
        WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
    let (ws, _) =
        within(STEP, tokio_tungstenite::connect_async_with_config(url, Some(config), true))
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

/// Connects a WebSocket client to `path` over the unix socket `socket`, with `headers`.
pub async fn connect_unix(
    socket: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<UnixStream> {
    let stream = within(STEP, UnixStream::connect(socket)).await.expect("connect unix socket");
    handshake(stream, &format!("ws://localhost:8080{path}"), headers).await
}

/// Connects a WebSocket client to `path` at `addr` over TCP from the local address `from`,
/// with `headers`.
pub async fn connect_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind the client's address");
    let stream = within(STEP, socket.connect(addr)).await.expect("connect");
    handshake(stream, &format!("ws://{addr}{path}"), headers).await
}

/// The client's WebSocket handshake for `url` on `stream`, with extra `headers`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    url: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<S> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("request");
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            name.parse().expect("header name");
        req.headers_mut().insert(name, value.parse().expect("header value"));
    }
    let (ws, _) = within(STEP, tokio_tungstenite::client_async(req, stream))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

/// The next data message (text or binary), skipping pings; panics on close or error.
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    within(STEP, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    })
    .await
}

/// The next message as text; panics if it is not text.
pub async fn recv_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match recv(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server's Close and returns its code and reason (1006 if the connection
/// ended without one). Data messages before it are returned too.
pub async fn recv_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> (u16, String, Vec<Message>) {
    within(STEP, async {
        let mut data = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string(), data);
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new(), data),
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => data.push(m),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (1006, String::new(), data),
            }
        }
    })
    .await
}

/// Sends a text message.
pub async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    within(STEP, ws.send(Message::text(text))).await.expect("send");
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// Its process group.
    pub pgrp: u32,
    /// R, S, Z, …
    pub state: char,
}

/// All processes on the machine.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Some(p) = proc_stat(pid) {
            out.push(p);
        }
    }
    out
}

/// One process's state, if it exists.
pub fn proc_stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Proc { pid, ppid, pgrp, state })
}

/// Whether `pid` is a live (non-zombie) process.
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|p| p.state != 'Z' && p.state != 'X')
}

/// Waits (bounded) until `pid` is no longer a live process.
pub async fn wait_dead(pid: u32) {
    within(STEP, async {
        while is_alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Waits (bounded) until `path` exists with content containing `needle`, and returns it.
pub async fn wait_file(path: &str, needle: &str) -> String {
    within(STEP, async {
        loop {
            if let Ok(s) = std::fs::read_to_string(path) {
                if s.contains(needle) {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A raw HTTP exchange: sends `request` as is and returns one whole response (its head, and
/// the body its Content-Length announces), or what came before the server closed.
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut stream = within(STEP, TcpStream::connect(addr)).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    within(STEP, async {
        loop {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let body_len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if out.len() >= end + 4 + body_len {
                    return;
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A WebSocket spoken by hand, for frames a well-behaved client will not send.
#[derive(Debug)]
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Performs the opening handshake on `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let mut stream = within(STEP, TcpStream::connect(addr)).await.expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        within(STEP, async {
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed during handshake");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWs { stream, buf: buf[end..].to_vec() }
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![(u8::from(fin) << 7) | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len < 65536 {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.stream.write_all(&frame).await;
    }

    /// Reads one frame: (opcode, payload). `None` when the connection ends.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        within(STEP, async {
            loop {
                if let Some((frame, used)) = parse_frame(&self.buf) {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                let mut chunk = [0u8; 65536];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
    }

    /// Reads frames until a Close and returns its code (None if the connection just ended).
    pub async fn read_close(&mut self) -> Option<u16> {
        while let Some((op, payload)) = self.read_frame().await {
            if op == 8 {
                return Some(if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                });
            }
        }
        None
    }
}

fn parse_frame(buf: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // servers do not mask, but be liberal
    }
    let payload = buf.get(at..at + len)?.to_vec();
    Some(((opcode, payload), at + len))
}

/// A real nginx in front of websocketd: started by `tests/fixtures/nginx.py` on a loopback
/// port bound before it starts, with its own configuration and files in a temp directory.
#[derive(Debug)]
pub struct Nginx {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx proxying WebSocket and HTTP requests to the unix sockets `upstreams`
    /// (round robin), with the usual upgrade and forwarding headers. `None` when nginx is
    /// not installed, which fails the test under `CI=true`.
    pub async fn start(upstreams: &[&str]) -> Option<Nginx> {
        let servers: String =
            upstreams.iter().map(|u| format!("        server unix:{u};\n")).collect();
        Nginx::start_with(&NGINX_CONF.replace("@UPSTREAMS@", &servers)).await
    }

    /// Starts nginx with the configuration `template`, in which `@PORT@` is the loopback port
    /// it is to listen on (bound before it starts) and `@DIR@` a temp directory of its own.
    /// `None` when nginx is not installed, which fails the test under `CI=true`.
    pub async fn start_with(template: &str) -> Option<Nginx> {
        let Some(nginx) = find_program("nginx", &["/usr/sbin/nginx"]) else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "nginx is missing on CI");
            eprintln!("note: no nginx here; skipping the proxy test");
            return None;
        };
        let dir = TempDir::new();
        let template_path = dir.path("nginx.conf.in");
        std::fs::write(&template_path, nginx_instance(template)).expect("write the nginx template");
        let mut cmd = tokio::process::Command::new(fixture("nginx.py"));
        cmd.arg(&nginx)
            .arg(&dir.0)
            .arg(&template_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start nginx");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = within(STEP, lines.next_line()).await.expect("read").expect("nginx's port");
        let port: u16 = line.strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("port");
        Some(Nginx { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir })
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its worker first; SIGKILL would orphan the worker.
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// nginx's configuration for the proxy tests: the README's, over plain HTTP and with any
/// number of upstreams (`@UPSTREAMS@`).
const NGINX_CONF: &str = r#"
events { worker_connections 512; }
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    upstream websocketd {
@UPSTREAMS@    }
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass http://websocketd;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
        }
    }
}
"#;

/// What a throwaway nginx needs besides a configuration written for a real one: to stay in
/// the foreground, run its workers as the user running the test, and keep its files in its
/// own directory. Added to the main context.
const NGINX_MAIN: &str = "daemon off;\nuser root;\nworker_processes 1;\npid @DIR@/nginx.pid;\n\
                          error_log @DIR@/error.log info;\n";
/// The same, added at the top of the `http` block.
const NGINX_HTTP: &str = "\n    access_log off;\n    client_body_temp_path @DIR@/body;\n    \
                          proxy_temp_path @DIR@/proxy;\n    fastcgi_temp_path @DIR@/fastcgi;\n    \
                          uwsgi_temp_path @DIR@/uwsgi;\n    scgi_temp_path @DIR@/scgi;\n";

/// A complete nginx configuration made fit for a throwaway instance (see [`NGINX_MAIN`]).
fn nginx_instance(conf: &str) -> String {
    let at = conf.find("http {").expect("an http block") + "http {".len();
    format!("{NGINX_MAIN}{}{NGINX_HTTP}{}", &conf[..at], &conf[at..])
}

/// `name` on PATH, or the first of `also` that exists.
pub fn find_program(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// A wss client connection as the suites use it.
pub type Wss = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Which server certificates a TLS client accepts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Those that chain to one of these CA certificates (PEM), for the name connected to.
    Roots(&'a str),
    /// Exactly this certificate (PEM), as a browser does once told to accept a self-signed
    /// one. (webpki refuses a self-signed certificate marked as a CA, as `openssl req -x509`
    /// makes them, as a server's own; the handshake signatures are still checked.)
    Exactly(&'a str),
}

/// A wss client for `wss://localhost:<port><path>` over `tcp`, accepting what `trust` says;
/// an error when the TLS or WebSocket handshake fails.
pub async fn wss_over(tcp: TcpStream, trust: Trust<'_>, port: u16, path: &str) -> io::Result<Wss> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let config = match trust {
        Trust::Roots(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem) {
                roots.add(cert).map_err(io::Error::other)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Exactly(pem) => {
            let expected = certificates(pem).into_iter().next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no certificate in the PEM")
            })?;
            let pinned = Pinned { expected, provider };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth()
        }
    };
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = within(STEP, connector.connect(name, tcp)).await?;
    let url = format!("wss://localhost:{port}{path}");
    let (ws, _) =
        within(STEP, tokio_tungstenite::client_async(url, tls)).await.map_err(io::Error::other)?;
    Ok(ws)
}

/// The certificates in a PEM text.
fn certificates(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Accepts exactly one certificate, and checks the handshake's signatures with its key.
#[derive(Debug)]
struct Pinned {
    expected: rustls_pki_types::CertificateDer<'static>,
    provider: Arc<tokio_rustls::rustls::crypto::CryptoProvider>,
}

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        if end_entity.as_ref() != self.expected.as_ref() {
            return Err(tokio_rustls::rustls::Error::General("not the pinned certificate".into()));
        }
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        let algorithms = &self.provider.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        let algorithms = &self.provider.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
