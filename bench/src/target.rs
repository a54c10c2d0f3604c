//! A server under test: one websocketd binary (or websocat, through an adapter that takes
//! websocketd's argv) started on a loopback port with a command, measured (RSS, descriptors)
//! and stopped with everything it started.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A server to measure.
#[derive(Debug, Clone)]
pub struct Target {
    /// Short name for the report.
    pub name: &'static str,
    /// Its executable.
    pub binary: PathBuf,
    /// How it takes its arguments.
    pub flavor: Flavor,
    /// Whether it can listen on a unix socket (`--unixsocket`): websocketd 0.4.1 cannot.
    pub unix_socket: bool,
}

/// Where a server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// A free loopback TCP port.
    Tcp,
    /// This unix socket (`--unixsocket`).
    Unix(PathBuf),
}

/// How a target is told what to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// websocketd's flags (ours, and websocketd itself).
    Websocketd,
    /// websocat 1.x in its exec-per-connection mode, given websocketd's argv through
    /// [`websocat_argv`].
    Websocat,
}

/// websocat's arguments for what websocketd's `args` (flags, then the command) ask, on
/// `port`: `-E -t|-b --set-environment ws-u:tcp-l:127.0.0.1:PORT exec:CMD --exec-args …`.
/// With `--set-environment` the program gets `WEBSOCAT_URI` (the request target) where
/// websocketd gives `QUERY_STRING`. A flag it has no counterpart for is an error, so a
/// scenario it cannot run is reported as such.
pub fn websocat_argv(port: u16, args: &[&str]) -> Result<Vec<String>> {
    let mut mode = "-t";
    let mut tls = false;
    let mut broadcast = false;
    let mut rest = args;
    while let Some(flag) = rest.first().filter(|a| a.starts_with("--")) {
        match *flag {
            "--binary" => mode = "-b",
            // websocat does not limit connections unless told to.
            f if f.starts_with("--maxforks=") => {}
            "--ssl" => tls = true,
            // Its `broadcast:` overlay: one program for every client, 16 messages queued
            // for each (it has no setting for that).
            "--broadcast" => broadcast = true,
            f if f.starts_with("--clientqueue=") => {}
            // The run's certificate, which websocat takes as PKCS#12.
            f if f.starts_with("--sslcert=") || f.starts_with("--sslkey=") => {}
            other => bail!("websocat has no counterpart for {other}"),
        }
        rest = &rest[1..];
    }
    let Some((command, command_args)) = rest.split_first() else { bail!("no command") };
    let mut argv: Vec<String> = ["-E", mode, "--set-environment"].map(str::to_owned).to_vec();
    if tls {
        let files = crate::tls::files()?;
        let Some(p12) = &files.pkcs12 else { bail!("no PKCS#12 file (openssl missing?)") };
        argv.push("--pkcs12-der".to_owned());
        argv.push(p12.display().to_string());
        argv.push(format!("ws-u:ssl-listen:127.0.0.1:{port}"));
    } else {
        argv.push(format!("ws-u:tcp-l:127.0.0.1:{port}"));
    }
    argv.push(format!("{}exec:{command}", if broadcast { "broadcast:" } else { "" }));
    if !command_args.is_empty() {
        argv.push("--exec-args".to_owned());
        argv.extend(command_args.iter().map(|a| (*a).to_owned()));
    }
    Ok(argv)
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    pid: u32,
    /// Where it listens, on TCP (unspecified when it listens on a unix socket).
    pub addr: SocketAddr,
    /// Its unix socket, when it listens on one.
    pub unix: Option<PathBuf>,
}

impl Target {
    /// Starts the server on a free loopback port with `args` (flags, then the command).
    pub async fn start(&self, args: &[&str]) -> Result<Running> {
        self.start_on(args, &Listen::Tcp).await
    }

    /// Starts the server listening where `listen` says, with `args`.
    pub async fn start_on(&self, args: &[&str], listen: &Listen) -> Result<Running> {
        // Both implementations are started the same way. websocketd 0.4.1 does not report the
        // port it got for --port=0, so a free one is picked here and the server polled until
        // it accepts (a benchmark, not a test: the poll is bounded and only costs start-up).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // Its log is kept (the last run of each server) for when a figure needs explaining.
        std::fs::create_dir_all("target/bench-logs")?;
        let log = std::fs::File::create(format!("target/bench-logs/{}.log", self.name))?;
        let argv = match (self.flavor, listen) {
            (_, Listen::Unix(_)) if !self.unix_socket => {
                bail!("{} cannot listen on a unix socket", self.name)
            }
            (Flavor::Websocketd, Listen::Tcp) => {
                let mut argv = vec!["--address=127.0.0.1".to_owned(), format!("--port={port}")];
                argv.extend(args.iter().map(|a| (*a).to_owned()));
                argv
            }
            (Flavor::Websocketd, Listen::Unix(path)) => {
                let _ = std::fs::remove_file(path);
                let mut argv = vec![format!("--unixsocket={}", path.display())];
                argv.extend(args.iter().map(|a| (*a).to_owned()));
                argv
            }
            (Flavor::Websocat, Listen::Tcp) => websocat_argv(port, args)?,
            (Flavor::Websocat, Listen::Unix(_)) => bail!("websocat on a unix socket: not set up"),
        };
        let unix = match listen {
            Listen::Tcp => None,
            Listen::Unix(path) => Some(path.clone()),
        };
        let child = tokio::process::Command::new(&self.binary)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let pid = child.id().context("server pid")?;
        let mut running = Running { child, pid, addr, unix };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = match &running.unix {
                None => tokio::net::TcpStream::connect(addr).await.is_ok(),
                Some(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
            };
            if up {
                return Ok(running);
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                bail!("{} exited at start-up: {status}", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} did not start listening", self.name);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Running {
    /// The server's resident memory in KiB (its children not counted).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the server has used so far, and its reaped children.
    pub fn cpu(&self) -> CpuTimes {
        CpuTimes::of(&self.pid.to_string())
    }

    /// How many descriptors the server has open.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }

    /// Stops the server and every process it started: SIGTERM to its group (websocketd
    /// 0.4.1's children are in it; ours stop their own), then SIGKILL to what is left.
    /// Returns how many of its children outlived it.
    pub async fn stop(mut self) -> usize {
        let children = children_of(self.pid);
        let group = Pid::from_raw(self.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        let _ = killpg(group, Signal::SIGKILL);
        // A child on its way out (our guardian, in a group of its own, leaves once the
        // server's end of its pipe closes) is given a moment before it counts as left over.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while children.iter().any(|&pid| is_live(pid)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut survivors = 0;
        for pid in children {
            if is_live(pid) {
                survivors += 1;
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        survivors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocat_gets_websocketd_s_flags_as_its_own() {
        let argv = websocat_argv(9, &["--binary", "--maxforks=0", "sh", "-c", "cat"]).unwrap();
        let want = "-E -b --set-environment ws-u:tcp-l:127.0.0.1:9 exec:sh --exec-args -c cat";
        assert_eq!(argv.join(" "), want);
        assert_eq!(
            websocat_argv(9, &["cat"]).unwrap().join(" "),
            "-E -t --set-environment ws-u:tcp-l:127.0.0.1:9 exec:cat"
        );
        assert!(websocat_argv(9, &["--passenv=X", "cat"]).is_err());
    }
}

/// The live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parent = parent.to_string();
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Some((state, ppid)) = stat(pid) else { continue };
        if ppid == parent && state != "Z" {
            out.push(pid);
        }
    }
    out
}

fn is_live(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != "Z")
}

/// A process's state and parent, from /proc.
fn stat(pid: i32) -> Option<(String, String)> {
    let mut fields = stat_fields(&pid.to_string())?.into_iter();
    Some((fields.next()?, fields.next()?))
}

/// The fields of `/proc/PID/stat` that follow the name; the state is the first.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may hold spaces and parentheses: the fields start after its last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_ascii_whitespace().map(str::to_owned).collect())
}

/// CPU times of one process so far, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    /// In user space.
    pub user: f64,
    /// In the kernel on its behalf.
    pub system: f64,
    /// Used by its children it has reaped (user and system): for a server that starts a
    /// child for every connection, mostly the cost of starting it.
    pub children: f64,
}

impl CpuTimes {
    /// Of the process `pid` (or `self`), read from `/proc/PID/stat` at once; zero if it is gone.
    fn of(pid: &str) -> CpuTimes {
        let Some(fields) = stat_fields(pid) else { return CpuTimes::default() };
        let seconds =
            |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz();
        // Counted from the state: utime, stime, cutime and cstime are fields 11 to 14.
        CpuTimes { user: seconds(11), system: seconds(12), children: seconds(13) + seconds(14) }
    }

    /// User and system together.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// CPU times of this process, the load generator.
pub fn own_cpu() -> CpuTimes {
    CpuTimes::of("self")
}

/// CPU time the whole machine has spent so far: busy (user, system, interrupts), and idle
/// or taken by the hypervisor (idle, I/O wait, steal), from the first line of `/proc/stat`.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| l.split_ascii_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let sum = |fields: &[usize]| fields.iter().filter_map(|&i| ticks.get(i)).sum::<f64>() / hz();
    // user nice system idle iowait irq softirq steal (guest time is within user already)
    (sum(&[0, 1, 2, 5, 6]), sum(&[3, 4, 7]))
}

/// Clock ticks per second.
fn hz() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64
}
