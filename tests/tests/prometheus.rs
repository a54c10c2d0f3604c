//! A real Prometheus (Debian's `prometheus`) scraping the admin listener on loopback, with a
//! temp configuration and storage of its own: the test asks Prometheus's HTTP API, and sees
//! the target up and the series move as sessions come and go. Without Prometheus the test is
//! skipped, except under CI=true, where it fails.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use websocketd_tests::*;

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: tokio::process::Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts one scraping `target` every 200 ms, and waits until it is ready.
    async fn start(target: SocketAddr) -> Option<Prometheus> {
        let Some(binary) = find_program("prometheus", &[]) else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "prometheus is missing on CI");
            eprintln!("note: no prometheus here; skipping");
            return None;
        };
        let dir = TempDir::new();
        let config = dir.path("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
                 scrape_configs:\n  - job_name: websocketd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        // Prometheus binds its own port: a free one, taken just before (it cannot be handed
        // a socket). If another process takes it meanwhile, the start fails loudly.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={config}"))
            .arg(format!("--storage.tsdb.path={}", dir.path("data")))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, addr, _dir: dir };
        within(STEP, async {
            loop {
                let answer = try_get(prometheus.addr, "/-/ready").await;
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        Some(prometheus)
    }

    /// The value of the instant query `expr`, if it has exactly one.
    async fn value(&self, expr: &str) -> Option<f64> {
        let query: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let answer = try_get(self.addr, &format!("/api/v1/query?query={query}")).await;
        let body = answer.split_once("\r\n\r\n")?.1;
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        let result = json["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Waits (bounded) until `expr` is `want`.
    async fn until(&self, expr: &str, want: f64) {
        within(STEP, async {
            while self.value(expr).await != Some(want) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A GET that may find nobody listening yet (then it is empty).
async fn try_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else { return String::new() };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = within(STEP, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn prometheus_scrapes_the_admin_listener_and_sees_sessions_come_and_go() {
    let server = Server::start(&["--adminaddress=127.0.0.1:0", "sh", "-c", "read x; exit 3"]).await;
    let line = server.wait_log(|l| l.contains("Starting admin server")).await;
    let admin: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("the admin address");
    let Some(prometheus) = Prometheus::start(admin).await else { return };
    prometheus.until("up{job=\"websocketd\"}", 1.0).await;
    prometheus.until("websocketd_sessions_active", 0.0).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(server.connect("/").await);
    }
    prometheus.until("websocketd_sessions_active", 5.0).await;
    prometheus.until("websocketd_programs_running", 5.0).await;
    for mut ws in clients {
        send_text(&mut ws, "bye").await;
        assert_eq!(recv_close(&mut ws).await.0, 1011, "exit status 3");
    }
    prometheus.until("websocketd_sessions_active", 0.0).await;
    prometheus.until("websocketd_program_exits_total{class=\"nonzero\"}", 5.0).await;
    prometheus.until("websocketd_close_codes_sent_total{code=\"1011\"}", 5.0).await;
    prometheus.until("websocketd_upgrades_total{outcome=\"accepted\"}", 5.0).await;
    prometheus.until("websocketd_session_duration_seconds_count", 5.0).await;
    prometheus.until("websocketd_programs_running", 0.0).await;
}
