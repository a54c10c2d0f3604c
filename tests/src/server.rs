//! The real websocketd under test: where its binary is, starting it on a loopback port it
//! names in its start-up line, its log, its children, and stopping it; temp directories and
//! the programs the suites run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

use crate::client::{Ws, connect};
use crate::process::processes;
use crate::wait::{STEP, within};

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

/// Whether `pid` is a server's guardian (its `argv[0]` says so).
pub fn is_guardian(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.starts_with(b"websocketd-guardian\0"))
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
            .filter(|p| p.ppid == self.pid() && p.state != 'Z' && !is_guardian(p.pid))
            .map(|p| p.pid)
            .collect()
    }

    /// The server's guardian process, which ends its programs should it die.
    pub fn guardian(&self) -> Option<u32> {
        processes()
            .into_iter()
            .find(|p| p.ppid == self.pid() && p.state != 'Z' && is_guardian(p.pid))
            .map(|p| p.pid)
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
pub(crate) fn terminate(child: &mut tokio::process::Child, limit: Duration) {
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

/// `name` on PATH, or the first of `also` that exists.
pub fn find_program(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}
