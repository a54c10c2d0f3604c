//! A real HAProxy in front of websocketd instances, started on a loopback port bound before
//! it starts, health-checking each instance's `/readyz` on its admin listener.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::server::{TempDir, find_program, fixture, terminate};
use crate::wait::{STEP, within};

/// A real HAProxy: started by `tests/fixtures/bound.py` with its own configuration in a temp
/// directory.
#[derive(Debug)]
pub struct Haproxy {
    child: tokio::process::Child,
    /// Where its frontend listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// One backend server: where it serves, and where its `/readyz` is.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// The public listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

impl Haproxy {
    /// Starts HAProxy balancing over `backends` (round robin), each checked every 100 ms with
    /// `GET /readyz` on its admin port: out after one failed check, back after one good one.
    /// `None` when HAProxy is not installed, which fails the test under `CI=true`.
    pub async fn start(backends: &[Backend]) -> Option<Haproxy> {
        let Some(haproxy) = find_program("haproxy", &["/usr/sbin/haproxy"]) else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "haproxy is missing on CI");
            eprintln!("note: no haproxy here; skipping the load balancer test");
            return None;
        };
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    "    server s{i} {} check port {} inter 100ms fall 1 rise 1\n",
                    b.addr,
                    b.admin.port()
                )
            })
            .collect();
        let dir = TempDir::new();
        let template = dir.path("haproxy.cfg.in");
        std::fs::write(&template, HAPROXY_CONF.replace("@SERVERS@", &servers))
            .expect("write the haproxy template");
        let mut cmd = tokio::process::Command::new(fixture("bound.py"));
        cmd.arg(&dir.0)
            .arg(&template)
            .args(["haproxy.cfg", "-"])
            .arg(&haproxy)
            .args(["-db", "-f", "@CONF@"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start haproxy");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = within(STEP, lines.next_line()).await.expect("read").expect("haproxy's port");
        let port: u16 = line.strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("port");
        Some(Haproxy { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: dir })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// HAProxy's configuration for the load balancer tests: the README's, with the frontend on
/// the socket handed over (`fd@3`) and any number of servers (`@SERVERS@`).
const HAPROXY_CONF: &str = "\
global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h

frontend websocketd
    bind fd@3
    default_backend websocketd

backend websocketd
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
@SERVERS@";
