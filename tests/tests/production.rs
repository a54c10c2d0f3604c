//! Running in production: `--unixsocket`, `--trustedproxy`, systemd socket activation and the
//! graceful shutdown, all on the real binary.

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;
use websocketd_tests::*;

/// Runs the binary to its exit with `args`; returns the code and what it printed.
async fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = within(
        STEP,
        tokio::process::Command::new(binary())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("run websocketd");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_unix_socket_alone_serves_with_its_mode_and_its_file_goes_on_exit() {
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let mut server =
        Server::start_unix(&sock, &["--unixsocket-mode=0660", &fixture("env.sh")]).await;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut ws = connect_unix(&sock, "/path?x=1", &[("Host", "example.org:8443")]).await;
    let env = child_env(&mut ws).await;
    // Host still names the server; an untrusted unix peer has no address.
    assert_eq!(var(&env, "SERVER_NAME"), Some("example.org"));
    assert_eq!(var(&env, "SERVER_PORT"), Some("8443"));
    assert_eq!(var(&env, "REMOTE_ADDR"), Some(""));
    assert_eq!(var(&env, "QUERY_STRING"), Some("x=1"));
    // No TCP listener was started beside it.
    let starts: Vec<String> =
        server.logs().into_iter().filter(|l| l.contains("Starting WebSocket server")).collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0].contains(&format!("unix:{sock}")), "{starts:?}");
    server.wait_log(|l| l.contains("remote:'unix'")).await;
    server.signal(Signal::SIGTERM);
    let status = server.wait().await;
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(&sock).exists(), "the socket file is left behind");
}

#[tokio::test]
async fn a_unix_socket_serves_beside_tcp() {
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let unix = format!("--unixsocket={sock}");
    let server =
        Server::start_with(&["--address=127.0.0.1", "--port=0", &unix], &["cat"], &[]).await;
    let mut over_unix = connect_unix(&sock, "/", &[]).await;
    let mut over_tcp = server.connect("/").await;
    send_text(&mut over_unix, "via unix").await;
    send_text(&mut over_tcp, "via tcp").await;
    assert_eq!(recv_text(&mut over_unix).await, "via unix");
    assert_eq!(recv_text(&mut over_tcp).await, "via tcp");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new();
    let sock = dir.path("stale.sock");
    // Bound, then closed without removing the file: what a killed server leaves.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::path::Path::new(&sock).exists());
    let server = Server::start_unix(&sock, &["cat"]).await;
    server.wait_log(|l| l.contains("Removed stale socket file")).await;
    let mut ws = connect_unix(&sock, "/", &[]).await;
    send_text(&mut ws, "fresh").await;
    assert_eq!(recv_text(&mut ws).await, "fresh");
}

#[tokio::test]
async fn a_live_socket_or_another_file_refuses_start_up_with_exit_3() {
    let dir = TempDir::new();
    let live = dir.path("live.sock");
    let _other_server = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let (code, out) = run_to_exit(&[&format!("--unixsocket={live}"), "cat"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("another server is listening on it"), "{out}");
    assert!(std::path::Path::new(&live).exists(), "the live server's file was removed");

    let file = dir.path("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let (code, out) = run_to_exit(&[&format!("--unixsocket={file}"), "cat"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not a socket"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn bad_unix_socket_and_proxy_flags_exit_1() {
    let dir = TempDir::new();
    let sock = dir.path("x.sock");
    let unix = format!("--unixsocket={sock}");
    for (args, says) in [
        (vec![unix.as_str(), "--unixsocket-mode=0999", "cat"], "invalid --unixsocket-mode"),
        (vec![unix.as_str(), "--unixsocket-mode=rw", "cat"], "invalid --unixsocket-mode"),
        (vec!["--unixsocket-mode=0600", "cat"], "please specify --unixsocket"),
        (vec!["--trustedproxy=10.0.0.0/33", "cat"], "invalid --trustedproxy entry '10.0.0.0/33'"),
        (vec!["--trustedproxy=nginx", "cat"], "invalid --trustedproxy entry 'nginx'"),
    ] {
        let (code, out) = run_to_exit(&args).await;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
    assert!(!std::path::Path::new(&sock).exists());
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_the_scheme() {
    let server =
        Server::start(&["--trustedproxy=127.0.0.1", "--sameorigin", &fixture("env.sh")]).await;
    let headers = [
        ("X-Forwarded-For", "198.51.100.7, 203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("Origin", &format!("https://{}", server.addr)),
    ];
    let from = "127.0.0.1".parse().unwrap();
    let mut ws = connect_from(from, server.addr, "/", &headers).await;
    let env = child_env(&mut ws).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("203.0.113.9"));
    assert_eq!(var(&env, "REMOTE_HOST"), Some("203.0.113.9"));
    assert_eq!(var(&env, "REMOTE_PORT"), Some(""), "X-Forwarded-For carries no port");
    assert_eq!(var(&env, "HTTPS"), Some("on"));
    server.wait_log(|l| l.contains("remote:'203.0.113.9'") && l.contains("https://")).await;
    // --sameorigin judges by the scheme the proxy saw.
    let resp = raw_http(server.addr, &https_origin_upgrade()).await;
    assert!(resp.starts_with("HTTP/1.1 101"), "{resp}");
}

#[tokio::test]
async fn a_trusted_proxy_forwarded_header_gives_the_client_port_too() {
    let server = Server::start(&["--trustedproxy=127.0.0.0/8", &fixture("env.sh")]).await;
    let from = "127.0.0.1".parse().unwrap();
    let forwarded = [("Forwarded", r#"for="[2001:db8::7]:4711";proto=https, for=127.0.0.9"#)];
    let mut ws = connect_from(from, server.addr, "/", &forwarded).await;
    let env = child_env(&mut ws).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("2001:db8::7"));
    assert_eq!(var(&env, "REMOTE_PORT"), Some("4711"));
    assert_eq!(var(&env, "HTTPS"), Some("on"));
}

#[tokio::test]
async fn an_untrusted_peer_cannot_spoof_its_address_or_scheme() {
    let server =
        Server::start(&["--trustedproxy=10.0.0.0/8,unix", "--sameorigin", &fixture("env.sh")])
            .await;
    let from = "127.0.0.1".parse().unwrap();
    let origin = format!("http://{}", server.addr);
    let spoofed = [
        ("Origin", origin.as_str()),
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9;proto=https"),
        ("X-Forwarded-Proto", "https"),
    ];
    let mut ws = connect_from(from, server.addr, "/", &spoofed).await;
    let env = child_env(&mut ws).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_ne!(var(&env, "REMOTE_PORT"), Some(""));
    assert_eq!(var(&env, "HTTPS"), None);
    // The headers themselves still reach the child, as any header does.
    assert_eq!(var(&env, "HTTP_X_FORWARDED_FOR"), Some("203.0.113.9"));
    // --sameorigin judges by the connection's real scheme: plain http here.
    let resp = raw_http(server.addr, &https_origin_upgrade()).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
}

/// An upgrade whose Origin is `https://example.org` with `Host: example.org`: the same origin
/// only if the request came over https (443 against 443, not 80).
fn https_origin_upgrade() -> String {
    "GET / HTTP/1.1\r\nHost: example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
     Origin: https://example.org\r\nX-Forwarded-Proto: https\r\n\r\n"
        .to_owned()
}

/// `sh` printing its pid, then becoming `cat`.
const PID_THEN_CAT: &str = "echo $$; exec cat";

#[tokio::test]
async fn shutdown_sends_1001_stops_every_child_and_removes_the_socket() {
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let events = dir.path("events");
    let unix = format!("--unixsocket={sock}");
    let mut server = Server::start_with(
        &["--address=127.0.0.1", "--port=0", &unix],
        &[&fixture("ignore_signals.py"), &events],
        &[],
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = server.connect("/").await;
        assert_eq!(recv_text(&mut ws).await, "ready");
        clients.push(ws);
    }
    let mut over_unix = connect_unix(&sock, "/", &[]).await;
    assert_eq!(recv_text(&mut over_unix).await, "ready");
    let children = server.live_children();
    assert_eq!(children.len(), 4, "{children:?}");
    server.signal(Signal::SIGTERM);
    for ws in &mut clients {
        let (code, reason, _) = recv_close(ws).await;
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    }
    let (code, _, _) = recv_close(&mut over_unix).await;
    assert_eq!(code, 1001);
    let status = server.wait().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    for pid in children {
        assert!(!is_alive(pid), "child {pid} outlived the server");
    }
    assert!(!std::path::Path::new(&sock).exists(), "the socket file is left behind");
    // The children went down the ladder: stdin closed first, then SIGINT (which the fixture
    // ignores), then SIGTERM, which ends it.
    let text = wait_file(&events, "SIGTERM").await;
    assert!(text.contains("EOF") && text.contains("SIGINT"), "{text}");
    assert!(server.logs().iter().any(|l| l.contains("Received SIGTERM: shutting down")));
}

#[tokio::test]
async fn a_hangup_does_not_stop_the_server_or_orphan_its_children() {
    let server = Server::start(&["sh", "-c", PID_THEN_CAT]).await;
    let mut ws = server.connect("/").await;
    let child: u32 = recv_text(&mut ws).await.parse().unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_log(|l| l.contains("Received SIGHUP: nothing to reload")).await;
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");
    assert!(is_alive(child));
}

/// A server with `shutdown` (a `--shutdownms` flag) whose one child ignores SIGINT and
/// SIGTERM, and whose ladder (`--closems`) would take minutes; with a client and that
/// child's pid.
async fn stubborn(shutdown: &str) -> (Server, Ws, u32) {
    let sh = "trap '' INT TERM; echo $$; exec sleep 100000";
    let server = Server::start(&[shutdown, "--closems=60000", "sh", "-c", sh]).await;
    let mut ws = server.connect("/").await;
    let child: u32 = recv_text(&mut ws).await.parse().unwrap();
    (server, ws, child)
}

#[tokio::test]
async fn shutdown_is_bounded_by_shutdownms() {
    // Only the bound ends this shutdown.
    let (mut server, mut ws, child) = stubborn("--shutdownms=300").await;
    server.signal(Signal::SIGINT);
    let (code, _, _) = recv_close(&mut ws).await;
    assert_eq!(code, 1001);
    let status = server.wait().await;
    assert_eq!(status.code(), Some(0));
    wait_dead(child).await;
    assert!(server.logs().iter().any(|l| l.contains("Shutdown took longer than 300 ms")));
}

#[tokio::test]
async fn a_second_signal_kills_the_children_and_exits_at_once() {
    let (mut server, mut ws, child) = stubborn("--shutdownms=600000").await;
    server.signal(Signal::SIGTERM);
    server.wait_log(|l| l.contains("Received SIGTERM: shutting down")).await;
    let (code, _, _) = recv_close(&mut ws).await;
    assert_eq!(code, 1001);
    assert!(is_alive(child), "the ladder should still be waiting");
    server.signal(Signal::SIGINT);
    let status = server.wait().await;
    assert_eq!(status.code(), Some(0));
    wait_dead(child).await;
    assert!(server.logs().iter().any(|l| l.contains("Received SIGINT again")));
}

#[tokio::test]
async fn socket_activation_serves_the_inherited_tcp_and_unix_sockets() {
    let dir = TempDir::new();
    let sock = dir.path("activated.sock");
    let mut cmd = tokio::process::Command::new(fixture("activate.py"));
    cmd.arg("web=tcp")
        .arg(format!("local=unix:{sock}"))
        .arg("--")
        .arg(binary())
        // Ignored, with a warning: the sockets come from the service manager.
        .arg("--port=1")
        .arg("--trustedproxy=unix")
        .args(["sh", "-c", PID_THEN_CAT]);
    let mut server = Server::launch(cmd).await;
    server.wait_log(|l| l.contains("Socket activation: ignoring --port")).await;
    let line = server.wait_log(|l| l.contains(&format!("unix:{sock}"))).await;
    assert!(line.contains("(socket local)"), "{line}");
    let mut over_tcp = server.connect("/").await;
    let mut over_unix = connect_unix(&sock, "/", &[("X-Forwarded-For", "192.0.2.1")]).await;
    let tcp_child: u32 = recv_text(&mut over_tcp).await.parse().unwrap();
    let unix_child: u32 = recv_text(&mut over_unix).await.parse().unwrap();
    send_text(&mut over_tcp, "tcp").await;
    send_text(&mut over_unix, "unix").await;
    assert_eq!(recv_text(&mut over_tcp).await, "tcp");
    assert_eq!(recv_text(&mut over_unix).await, "unix");
    server.wait_log(|l| l.contains("remote:'192.0.2.1'")).await;
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait().await.code(), Some(0));
    wait_dead(tcp_child).await;
    wait_dead(unix_child).await;
    // The file belongs to whoever made the socket (systemd): it stays.
    assert!(std::path::Path::new(&sock).exists());
}

#[tokio::test]
async fn an_inherited_socket_named_redirect_serves_the_redirects() {
    let mut cmd = tokio::process::Command::new(fixture("activate.py"));
    cmd.args(["web=tcp", "redirect=tcp", "--"]).arg(binary()).arg("cat");
    let server = Server::launch(cmd).await;
    server
        .wait_log(|l| l.contains("Starting redirect server") && l.contains("(socket redirect)"))
        .await;
    // activate.py printed each port before it exec'd the server.
    let line = server.wait_log(|l| l.starts_with("PORT redirect ")).await;
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let redirect = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let resp = raw_http(redirect, "GET /a?b=1 HTTP/1.1\r\nHost: example.org\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    let location = format!("location: http://example.org:{}/a?b=1", server.addr.port());
    assert!(resp.to_ascii_lowercase().contains(&location), "{resp}");
    // The main socket serves WebSockets.
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "main").await;
    assert_eq!(recv_text(&mut ws).await, "main");
}

#[tokio::test]
async fn an_inherited_descriptor_that_is_no_listening_socket_exits_3() {
    // LISTEN_PID is the shell's pid, which exec keeps; descriptor 3 is a plain file.
    let script = format!("LISTEN_PID=$$ LISTEN_FDS=1 exec {} cat 3</dev/null", binary().display());
    let out = within(STEP, tokio::process::Command::new("sh").args(["-c", &script]).output())
        .await
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("inherited file descriptor 3: not a TCP or unix stream socket"),
        "{text}"
    );
}

#[tokio::test]
async fn listen_variables_for_another_process_are_ignored() {
    // LISTEN_PID names some other process: the server binds as usual.
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &["cat"],
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
    )
    .await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "bound").await;
    assert_eq!(recv_text(&mut ws).await, "bound");
}
