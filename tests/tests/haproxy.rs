//! websocketd behind a real HAProxy (Debian's `haproxy`) that health-checks each instance's
//! `/readyz` on its admin listener: an instance that begins a graceful shutdown is taken out
//! of the rotation at once, while its open sessions get 1001. Without HAProxy the test is
//! skipped, except under CI=true, where it fails.

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;
use websocketd_tests::*;

/// Where `server`'s admin listener listens, from its start-up line.
async fn admin_addr(server: &Server) -> SocketAddr {
    let line = server.wait_log(|l| l.contains("Starting admin server")).await;
    let at = line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("host:port");
    at.parse().unwrap_or_else(|_| panic!("no address in {line:?}"))
}

/// An instance whose program says `name`, echoes, and outlasts the first rungs of the ladder
/// (its shutdown takes a while: the window in which it is draining).
async fn instance(name: &str) -> (Server, Backend) {
    let program = format!(
        "trap '' INT TERM; echo {name}; while read -r line; do echo \"$line\"; done; sleep 30"
    );
    let server =
        Server::start(&["--adminaddress=127.0.0.1:0", "--closems=2000", "sh", "-c", &program])
            .await;
    let admin = admin_addr(&server).await;
    let backend = Backend { addr: server.addr, admin };
    (server, backend)
}

/// A client through `haproxy`, and the instance it landed on; `None` if the connection was
/// refused (an instance on its way out).
async fn client(haproxy: &Haproxy) -> Option<(Ws, String)> {
    let url = format!("ws://{}/", haproxy.addr);
    let (mut ws, _) = within(STEP, tokio_tungstenite::connect_async(url.as_str())).await.ok()?;
    let name = recv_text(&mut ws).await;
    Some((ws, name))
}

#[tokio::test]
async fn haproxy_takes_a_draining_instance_out_while_its_sessions_get_1001() {
    let (one, one_backend) = instance("one").await;
    let (_two, two_backend) = instance("two").await;
    let Some(haproxy) = Haproxy::start(&[one_backend, two_backend]).await else { return };
    // Both in the rotation: round robin puts clients on each.
    let mut on_one = Vec::new();
    let mut on_two = Vec::new();
    within(STEP, async {
        while on_one.len() < 2 || on_two.is_empty() {
            match client(&haproxy).await {
                Some((ws, name)) if name == "one" => on_one.push(ws),
                Some((ws, name)) if name == "two" => on_two.push(ws),
                Some((_, name)) => panic!("an instance named {name}"),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    one.signal(Signal::SIGTERM);
    one.wait_log(|l| l.contains("shutting down")).await;
    // Its open sessions are told it is going away.
    for mut ws in on_one {
        let (code, reason, _) = recv_close(&mut ws).await;
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    }
    // Once HAProxy's next check has seen the 503, every new client lands on the other.
    within(STEP, async {
        let mut in_a_row = 0;
        while in_a_row < 6 {
            match client(&haproxy).await {
                Some((ws, name)) if name == "two" => {
                    in_a_row += 1;
                    on_two.push(ws);
                }
                _ => in_a_row = 0,
            }
        }
    })
    .await;
    // The instance still draining says why, and the other's sessions go on.
    let readyz = raw_http(one_backend.admin, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    for ws in &mut on_two {
        send_text(ws, "still here").await;
        assert_eq!(recv_text(ws).await, "still here");
    }
}
