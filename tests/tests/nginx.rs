//! websocketd behind a real nginx (Debian's nginx-light), over unix sockets, as the README
//! shows it: clients connect through nginx, from a loopback address of their own
//! (127.0.0.2), so the address the child sees tells whether it came through the trusted
//! proxy's header or not. Without nginx these tests are skipped, except under CI=true, where
//! they fail.

use websocketd_tests::*;

/// The client's own address: not 127.0.0.1, so that it cannot be mistaken for nginx's.
fn client_ip() -> std::net::IpAddr {
    "127.0.0.2".parse().unwrap()
}

/// `sh` printing who it is and where the client is, then echoing.
fn whoami(instance: &str) -> String {
    format!("echo \"{instance} $REMOTE_ADDR $HTTPS $SERVER_NAME\"; exec cat")
}

#[tokio::test]
async fn nginx_over_a_unix_socket_passes_the_real_client_address() {
    let dir = TempDir::new();
    let sock = dir.path("one.sock");
    let _server = Server::start_unix(
        &sock,
        &["--unixsocket-mode=0660", "--trustedproxy=unix", "sh", "-c", &whoami("one")],
    )
    .await;
    let Some(nginx) = Nginx::start(&[&sock]).await else { return };
    let mut ws = connect_from(client_ip(), nginx.addr, "/", &[("Host", "chat.example")]).await;
    assert_eq!(recv_text(&mut ws).await, "one 127.0.0.2  chat.example", "{}", nginx.error_log());
    send_text(&mut ws, "through nginx").await;
    assert_eq!(recv_text(&mut ws).await, "through nginx");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_through_nginx_changes_nothing() {
    let dir = TempDir::new();
    let sock = dir.path("one.sock");
    let _server =
        Server::start_unix(&sock, &["--trustedproxy=unix", "sh", "-c", &whoami("one")]).await;
    let Some(nginx) = Nginx::start(&[&sock]).await else { return };
    // nginx appends the real address to what the client claims; the claim is left of it.
    let spoof = [("X-Forwarded-For", "203.0.113.66"), ("Forwarded", "for=203.0.113.67")];
    let mut ws = connect_from(client_ip(), nginx.addr, "/", &spoof).await;
    let line = recv_text(&mut ws).await;
    assert!(line.starts_with("one 127.0.0.2 "), "{line}");
}

#[tokio::test]
async fn without_trustedproxy_nginx_forwarding_headers_are_not_believed() {
    let dir = TempDir::new();
    let sock = dir.path("one.sock");
    let _server = Server::start_unix(&sock, &["sh", "-c", &whoami("one")]).await;
    let Some(nginx) = Nginx::start(&[&sock]).await else { return };
    let spoof = [("X-Forwarded-For", "203.0.113.66")];
    let mut ws = connect_from(client_ip(), nginx.addr, "/", &spoof).await;
    // The peer is nginx on the unix socket, which has no address, and it is not trusted.
    let line = recv_text(&mut ws).await;
    assert!(line.starts_with("one  "), "{line}");
}

#[tokio::test]
async fn nginx_spreads_clients_over_two_instances() {
    let dir = TempDir::new();
    let (a, b) = (dir.path("a.sock"), dir.path("b.sock"));
    let _one = Server::start_unix(&a, &["--trustedproxy=unix", "sh", "-c", &whoami("one")]).await;
    let _two = Server::start_unix(&b, &["--trustedproxy=unix", "sh", "-c", &whoami("two")]).await;
    let Some(nginx) = Nginx::start(&[&a, &b]).await else { return };
    let mut seen = Vec::new();
    let mut clients = Vec::new();
    // Round robin: four clients, two on each.
    for i in 0..4 {
        let mut ws = connect_from(client_ip(), nginx.addr, "/", &[]).await;
        let line = recv_text(&mut ws).await;
        assert!(line.ends_with(" 127.0.0.2  127.0.0.1"), "{line}");
        seen.push(line.split(' ').next().unwrap_or_default().to_owned());
        send_text(&mut ws, &format!("client {i}")).await;
        assert_eq!(recv_text(&mut ws).await, format!("client {i}"));
        clients.push(ws);
    }
    seen.sort();
    assert_eq!(seen, ["one", "one", "two", "two"]);
}
