//! A real nginx in front of a server, as users deploy it: one worker, the upgrade headers,
//! `proxy_buffering off`, its own configuration and files in `target/bench-nginx/`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where nginx sends requests.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx on a free loopback port, proxying to `upstream`; `None` when nginx is not
    /// installed.
    pub async fn start(upstream: &Upstream) -> Result<Option<Nginx>> {
        let Some(nginx) =
            ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
        else {
            return Ok(None);
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = PathBuf::from("target/bench-nginx");
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        let server = match upstream {
            Upstream::Tcp(a) => a.to_string(),
            Upstream::Unix(p) => format!("unix:{}", p.display()),
        };
        let d = dir.display();
        let conf = format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
             upstream app {{ server {server}; }}\n    \
             server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            \
             proxy_pass http://app;\n            proxy_http_version 1.1;\n            \
             proxy_set_header Upgrade $http_upgrade;\n            \
             proxy_set_header Connection \"upgrade\";\n            \
             proxy_set_header Host $host;\n            proxy_buffering off;\n            \
             proxy_read_timeout 1h;\n        }}\n    }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = tokio::process::Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", nginx.display()))?;
        let mut nginx = Nginx { child, addr };
        // A benchmark, not a test: nginx is polled until it accepts (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Some(nginx));
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                bail!("nginx exited at start-up: {status} (see {}/error.log)", dir.display());
            }
            if Instant::now() > deadline {
                bail!("nginx did not start listening");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops nginx: SIGTERM, so that the master stops its worker first.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
