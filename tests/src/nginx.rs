//! A real nginx in front of websocketd, started on a loopback port bound before it starts.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::server::{TempDir, find_program, fixture, terminate};
use crate::wait::{STEP, within};

/// A real nginx in front of websocketd: started by `tests/fixtures/bound.py` on a loopback
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
        let mut cmd = tokio::process::Command::new(fixture("bound.py"));
        cmd.arg(&dir.0)
            .arg(&template_path)
            .args(["nginx.conf", "NGINX=3;"])
            .arg(&nginx)
            .args(["-p", &dir.0.to_string_lossy(), "-c", "@CONF@", "-e"])
            .arg(dir.0.join("error.log"))
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
