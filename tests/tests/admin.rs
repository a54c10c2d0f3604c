//! The admin listener (`--adminaddress`): `/metrics`, `/healthz` and `/readyz` on an address
//! of their own, the metrics checked by `promtool`, and readiness through a shutdown. A real
//! Prometheus scraping it is in `prometheus.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocketd_tests::*;

/// Where the server's admin listener listens, from its start-up line.
async fn admin_addr(server: &Server) -> SocketAddr {
    let line = server.wait_log(|l| l.contains("Starting admin server")).await;
    let at = line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("host:port");
    at.parse().unwrap_or_else(|_| panic!("no address in {line:?}"))
}

/// `GET path` on `addr`: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = raw_http(addr, &format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n")).await;
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Waits (bounded) until the sample `name` is `want` (a count is added just after the write
/// it counts, which the client may see first), and returns the metrics then.
async fn until_sample(admin: SocketAddr, name: &str, want: f64) -> String {
    within(STEP, async {
        loop {
            let (_, text) = get(admin, "/metrics").await;
            if sample(&text, name) == Some(want) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The value of the sample `name` (with its labels as written) in the text `metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_admin_listener_answers_health_readiness_and_metrics_apart_from_the_public_port() {
    let server = Server::start(&["--adminaddress=127.0.0.1:0", "cat"]).await;
    let admin = admin_addr(&server).await;
    assert_ne!(admin.port(), server.addr.port());
    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(admin, "/readyz").await, (200, "ready\n".to_owned()));
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, "hi");
    let metrics = until_sample(admin, "websocketd_messages_total{direction=\"out\"}", 1.0).await;
    assert_eq!(get(admin, "/metrics").await.0, 200);
    assert_eq!(sample(&metrics, "websocketd_sessions_active"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "websocketd_programs_running"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "websocketd_upgrades_total{outcome=\"accepted\"}"), Some(1.0));
    assert!(metrics.contains("websocketd_build_info{version=\""), "{metrics}");
    // "hi" each way, counted once the batch was flushed.
    assert_eq!(sample(&metrics, "websocketd_messages_total{direction=\"in\"}"), Some(1.0));
    assert_eq!(sample(&metrics, "websocketd_messages_total{direction=\"out\"}"), Some(1.0));
    assert_eq!(sample(&metrics, "websocketd_payload_bytes_total{direction=\"out\"}"), Some(2.0));
    ws.close(None).await.unwrap();
    server.wait_no_children().await;
    let metrics = until_sample(admin, "websocketd_sessions_active", 0.0).await;
    assert_eq!(sample(&metrics, "websocketd_programs_running"), Some(0.0), "{metrics}");
    assert_eq!(sample(&metrics, "websocketd_program_spawns_total"), Some(1.0), "{metrics}");
    assert!(
        sample(&metrics, "websocketd_program_exits_total{class=\"signal\"}").is_some()
            || sample(&metrics, "websocketd_program_exits_total{class=\"status0\"}").is_some()
    );
    assert_eq!(sample(&metrics, "websocketd_session_duration_seconds_count"), Some(1.0));
    // The client closed: no Close of ours counted. A 426 below sends none either.
    assert!(!metrics.contains("websocketd_close_codes_sent_total{"), "{metrics}");
    // Refusals are counted by their status; the public port has no admin paths.
    let refused = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 426"), "{refused}");
    let (_, metrics) = get(admin, "/metrics").await;
    assert_eq!(sample(&metrics, "websocketd_upgrades_total{outcome=\"426\"}"), Some(1.0));
    assert_eq!(get(server.addr, "/metrics").await.0, 404);
    assert_eq!(get(admin, "/nothing").await.0, 404);
    let post =
        raw_http(admin, "POST /metrics HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

#[tokio::test]
async fn the_metrics_pass_promtool_and_prometheus_gets_openmetrics() {
    let Some(promtool) = find_program("promtool", &[]) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "promtool is missing on CI");
        eprintln!("note: no promtool here; skipping");
        return;
    };
    let server = Server::start(&["--adminaddress=127.0.0.1:0", "--broadcast", "cat"]).await;
    let admin = admin_addr(&server).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, "hi");
    let (_, text) = get(admin, "/metrics").await;
    let mut check = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    check.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let out = within(STEP, check.wait_with_output()).await.unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool: {said}\n{text}");
    assert_eq!(sample(&text, "websocketd_shared_programs"), Some(1.0), "{text}");
    let open = raw_http(
        admin,
        "GET /metrics HTTP/1.1\r\nHost: admin\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.4\r\n\r\n",
    )
    .await;
    assert!(
        open.to_ascii_lowercase().contains("content-type: application/openmetrics-text"),
        "{open}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    // A shared program's client: its messages count too, its inbound ones at the latest when
    // it leaves.
    assert_eq!(sample(&text, "websocketd_shared_clients"), Some(1.0), "{text}");
    until_sample(admin, "websocketd_messages_total{direction=\"out\"}", 1.0).await;
    ws.close(None).await.unwrap();
    let text = until_sample(admin, "websocketd_shared_clients", 0.0).await;
    assert_eq!(sample(&text, "websocketd_messages_total{direction=\"in\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "websocketd_payload_bytes_total{direction=\"in\"}"), Some(2.0));
}

#[tokio::test]
async fn readyz_says_503_from_the_start_of_a_shutdown_and_healthz_stays_200() {
    // A program that ignores the first rungs of the ladder keeps the shutdown going.
    let server = Server::start(&[
        "--adminaddress=127.0.0.1:0",
        "--closems=3000",
        "sh",
        "-c",
        "trap '' INT TERM; echo ready; while :; do sleep 0.05; done",
    ])
    .await;
    let admin = admin_addr(&server).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    server.signal(Signal::SIGTERM);
    server.wait_log(|l| l.contains("shutting down")).await;
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "not ready: shutting down\n"));
    assert_eq!(get(admin, "/healthz").await.0, 200);
    assert_eq!(recv_close(&mut ws).await.0, 1001);
}

#[tokio::test]
async fn with_notreadywhenfull_readyz_says_503_while_maxforks_is_full() {
    let server =
        Server::start(&["--adminaddress=127.0.0.1:0", "--maxforks=1", "--notreadywhenfull", "cat"])
            .await;
    let admin = admin_addr(&server).await;
    assert_eq!(get(admin, "/readyz").await.0, 200);
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, "hi");
    assert_eq!(get(admin, "/readyz").await, (503, "not ready: at --maxforks\n".to_owned()));
    ws.close(None).await.unwrap();
    server.wait_no_children().await;
    within(STEP, async {
        while get(admin, "/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_admin_listener_can_be_a_unix_socket() {
    let dir = TempDir::new();
    let sock = dir.path("admin.sock");
    let server = Server::start(&[&format!("--adminaddress={sock}"), "cat"]).await;
    server.wait_log(|l| l.contains("Starting admin server") && l.contains(&sock)).await;
    let mut stream = tokio::net::UnixStream::connect(&sock).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    within(STEP, stream.read_to_string(&mut answer)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer}");
}

#[tokio::test]
async fn admin_settings_are_checked_at_start() {
    for (args, says) in [
        (&["--notreadywhenfull", "cat"][..], "only applies with --adminaddress"),
        (&["--adminaddress=9100", "cat"][..], "give HOST:PORT"),
    ] {
        let out = std::process::Command::new(binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn access_control_decisions_are_counted() {
    let dir = TempDir::new();
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, "tok_counted_0123456789 reader\n").unwrap();
    let server =
        Server::start(&["--adminaddress=127.0.0.1:0", &format!("--tokens={tokens}"), "cat"]).await;
    let admin = admin_addr(&server).await;
    let upgrade = |query: &str| {
        format!(
            "GET /{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    assert_eq!(exchange(server.addr, upgrade("").as_bytes()).await.0.status(), 401);
    assert_eq!(
        exchange(server.addr, upgrade("?wsd_token=tok_wrong").as_bytes()).await.0.status(),
        401
    );
    let ok = exchange(server.addr, upgrade("?wsd_token=tok_counted_0123456789").as_bytes()).await;
    assert_eq!(ok.0.status(), 101);
    let text = until_sample(
        admin,
        "websocketd_access_checks_total{method=\"bearer\",outcome=\"allowed\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(&text, "websocketd_access_checks_total{method=\"bearer\",outcome=\"denied\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "websocketd_access_checks_total{method=\"none\",outcome=\"denied\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "websocketd_upgrades_total{outcome=\"401\"}"), Some(2.0));
}
