//! Shared sessions (`--broadcast`): one program for every client of one URL.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// Waits until `n` clients are attached (each says CONNECT once attached).
async fn attached(server: &Server, n: usize) {
    server.wait_log_count(n, |l| l.contains("| CONNECT")).await;
}

/// The numbers of a client's text messages, which must all be numbers.
fn numbers(messages: Vec<Message>) -> Vec<u64> {
    texts(messages)
        .iter()
        .map(|t| t.parse().unwrap_or_else(|_| panic!("not a number: {t}")))
        .collect()
}

#[tokio::test]
async fn a_hundred_clients_receive_the_same_sequence_from_one_program() {
    let server = Server::start(&["--broadcast", "sh", "-c", "read go; seq 1 2000"]).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(server.connect("/feed").await);
    }
    attached(&server, 100).await;
    send_text(&mut clients[0], "go").await;
    let want: Vec<u64> = (1..=2000).collect();
    let mut reads = Vec::new();
    for mut ws in clients {
        reads.push(tokio::spawn(async move { recv_close(&mut ws).await }));
    }
    for read in reads {
        let (code, _, data) = read.await.unwrap();
        assert_eq!(code, 1000);
        assert_eq!(numbers(data), want);
    }
    let logs = server.logs();
    let started = logs.iter().filter(|l| l.contains("Started shared program")).count();
    assert_eq!(started, 1, "one program for all");
    let pid = logs
        .iter()
        .find_map(|l| l.split("Started shared program ").nth(1)?.split_whitespace().next())
        .expect("the program's pid");
    let named = format!("pid:'{pid}'");
    for line in logs.iter().filter(|l| l.contains("| CONNECT") || l.contains("| DISCONNECT")) {
        assert!(line.contains(&named), "every client's line names the program: {line}");
    }
    server.wait_no_children().await;
}

#[tokio::test]
async fn every_clients_lines_reach_the_program_whole_and_every_client_sees_them_all() {
    let dir = TempDir::new();
    let got = dir.path("got");
    let server = Server::start(&["--broadcast", "sh", "-c", &format!("tee {got}")]).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(server.connect("/").await);
    }
    attached(&server, 10).await;
    let mut tasks = Vec::new();
    for (c, ws) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let send = async {
                for i in 0..1000 {
                    tx.feed(Message::text(format!("client{c}-line{i:04}"))).await.unwrap();
                }
                tx.flush().await.unwrap();
            };
            let read = async {
                let mut seen = Vec::new();
                while seen.len() < 10_000 {
                    match rx.next().await {
                        Some(Ok(Message::Text(t))) => seen.push(t.to_string()),
                        Some(Ok(_)) => {}
                        other => panic!("client {c}: {other:?} after {} lines", seen.len()),
                    }
                }
                seen
            };
            let ((), seen) = within(STEP, async { tokio::join!(send, read) }).await;
            (tx.reunite(rx).unwrap(), seen)
        }));
    }
    let mut sockets = Vec::new();
    for task in tasks {
        let (ws, seen) = task.await.unwrap();
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 10_000, "every line once");
        // Each sender's lines come in the order it sent them.
        for c in 0..10 {
            let own: Vec<&String> =
                seen.iter().filter(|l| l.starts_with(&format!("client{c}-"))).collect();
            let want: Vec<String> = (0..1000).map(|i| format!("client{c}-line{i:04}")).collect();
            assert_eq!(own, want.iter().collect::<Vec<_>>());
        }
        sockets.push(ws);
    }
    let text = within(STEP, async {
        loop {
            let text = std::fs::read_to_string(&got).unwrap_or_default();
            if text.lines().count() >= 10_000 {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    assert!(
        lines.iter().all(|l| l.len() == "client0-line0000".len() && l.starts_with("client")),
        "whole lines only"
    );
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_joining_client_gets_the_replay_then_the_live_output_with_no_seam() {
    // 1..100, then (on "more") 101..200.
    let script = "seq 1 100; read more; seq 101 200";
    let server = Server::start(&["--broadcast", "--replay=30", "sh", "-c", script]).await;
    let mut first = server.connect("/").await;
    for i in 1..=100 {
        assert_eq!(recv_text(&mut first).await, i.to_string());
    }
    let mut second = server.connect("/").await;
    for i in 71..=100 {
        assert_eq!(recv_text(&mut second).await, i.to_string(), "replay");
    }
    send_text(&mut second, "more").await;
    let (code, _, data) = recv_close(&mut second).await;
    assert_eq!(code, 1000);
    assert_eq!(numbers(data), (101..=200).collect::<Vec<_>>());
    let (code, _, data) = recv_close(&mut first).await;
    assert_eq!(code, 1000);
    assert_eq!(numbers(data), (101..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_client_joining_while_output_flows_gets_a_contiguous_tail() {
    let server =
        Server::start(&["--broadcast", "--replay=50", "sh", "-c", "seq 1 30000; sleep 1"]).await;
    let mut first = server.connect("/").await;
    // Join part-way through.
    loop {
        let n: u64 = recv_text(&mut first).await.parse().unwrap();
        if n >= 1000 {
            break;
        }
    }
    let mut second = server.connect("/").await;
    let (reads_first, reads_second) = tokio::join!(recv_close(&mut first), recv_close(&mut second));
    assert_eq!(reads_first.0, 1000);
    assert_eq!(reads_second.0, 1000);
    let got = numbers(reads_second.2);
    assert!(got.len() >= 50, "at least the replay: {}", got.len());
    assert!(got[0] > 1, "joined late");
    for pair in got.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "nothing lost or doubled");
    }
    assert_eq!(got.last(), Some(&30000));
}

/// 8 MiB of 1 KiB lines at about 6 MB/s (a client that reads keeps up with that, even in a
/// debug build), and an exit.
const FLOOD: &str = "i=0; while [ $i -lt 8192 ]; do printf '%01023d\\n' $i; i=$((i+1)); \
                     if [ $((i % 64)) -eq 0 ]; then sleep 0.01; fi; done";

/// A server flooding two clients (`--clientqueue` of 256 KiB, `extra` flags, `then` after the
/// flood in the program): one that takes in little at a time, one that reads; the flood has
/// begun.
async fn flooded(
    extra: &[&str],
    then: &str,
) -> (Server, tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, Ws) {
    let program = format!("read go; {FLOOD}{then}");
    let mut args = vec!["--broadcast", "--clientqueue=262144", "--maxframesize=65536"];
    args.extend_from_slice(extra);
    args.extend(["sh", "-c", &program]);
    let server = Server::start(&args).await;
    let slow = connect_small_window(server.addr, "/").await;
    let mut fast = server.connect("/").await;
    attached(&server, 2).await;
    send_text(&mut fast, "go").await;
    (server, slow, fast)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1013_and_slows_no_one() {
    let (server, mut slow, mut fast) = flooded(&[], "").await;
    // If the slow client held the program back, this would never end.
    let (code, _, data) = recv_close(&mut fast).await;
    assert_eq!(code, 1000);
    assert_eq!(data.len(), 8192);
    server.wait_log(|l| l.contains("Client too slow: closing with 1013")).await;
    // Now the slow client reads: whole frames, then the Close.
    let (code, reason, data) = recv_close(&mut slow).await;
    assert_eq!((code, reason.as_str()), (1013, "too slow"));
    assert!(data.len() < 8192, "it was cut off: {}", data.len());
    assert!(data.iter().all(|m| m.len() == 1023), "whole messages only");
    server.wait_no_children().await;
}

#[tokio::test]
async fn skip_drops_messages_for_the_slow_client_only_and_says_how_many() {
    let (server, mut slow, mut fast) = flooded(&["--slowclient=skip"], "; read done").await;
    for _ in 0..8192 {
        assert_eq!(recv(&mut fast).await.len(), 1023);
    }
    // The slow client reads what it can get; the program waits for "done" to end.
    let mut got = 0u64;
    let line = within(STEP, async {
        loop {
            tokio::select! {
                m = slow.next() => match m {
                    Some(Ok(Message::Text(t))) => { assert_eq!(t.len(), 1023); got += 1 }
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                },
                l = server.wait_log(|l| l.contains("skipped")) => break l,
            }
        }
    })
    .await;
    // Everything it did not get is counted.
    let skipped: u64 = line
        .split("skipped ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    let rest = within(STEP, async {
        let mut n = 0u64;
        while got + n + skipped < 8192 {
            match slow.next().await {
                Some(Ok(Message::Text(_))) => n += 1,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        n
    })
    .await;
    assert!(skipped > 0);
    assert_eq!(got + rest + skipped, 8192);
    let warns =
        server.logs().iter().filter(|l| l.contains("WARN") && l.contains("skipped")).count();
    assert_eq!(warns, 1, "one line per episode");
    send_text(&mut fast, "done").await;
    assert_eq!(recv_close(&mut slow).await.0, 1000);
    assert_eq!(recv_close(&mut fast).await.0, 1000);
}

#[tokio::test]
async fn a_program_lingers_for_a_new_client_and_ends_after_the_linger() {
    let server = Server::start(&[
        "--broadcast",
        "--replay=1",
        "--lingerms=1500",
        "sh",
        "-c",
        "echo $$; cat",
    ])
    .await;
    let mut ws = server.connect("/").await;
    let pid = recv_text(&mut ws).await;
    ws.close(None).await.unwrap();
    server.wait_log(|l| l.contains("DISCONNECT")).await;
    // Within the linger: the same program.
    let mut again = server.connect("/").await;
    assert_eq!(recv_text(&mut again).await, pid);
    again.close(None).await.unwrap();
    // After it: gone, and the next client starts a new one.
    server.wait_log(|l| l.contains("ended")).await;
    server.wait_no_children().await;
    let mut fresh = server.connect("/").await;
    assert_ne!(recv_text(&mut fresh).await, pid);
}

#[tokio::test]
async fn without_a_linger_the_program_ends_with_its_last_client_and_exit_starts_afresh() {
    let server = Server::start(&["--broadcast", "sh", "-c", "echo $$; read x; exit 3"]).await;
    let mut a = server.connect("/").await;
    let pid = recv_text(&mut a).await;
    let mut b = server.connect("/").await;
    send_text(&mut b, "bye").await;
    for ws in [&mut a, &mut b] {
        let (code, reason, _) = recv_close(ws).await;
        assert_eq!((code, reason.as_str()), (1011, "exit status 3"));
    }
    let mut c = server.connect("/").await;
    let fresh = recv_text(&mut c).await;
    assert_ne!(fresh, pid, "a new program after the exit");
    c.close(None).await.unwrap();
    server.wait_no_children().await;
    assert!(is_alive(server.pid()));
}

#[tokio::test]
async fn the_shared_program_never_sees_a_clients_headers_or_address() {
    let server = Server::start(&["--broadcast", "sh", "-c", "env; echo END; cat"]).await;
    let mut ws = connect_from(
        "127.0.0.1".parse().unwrap(),
        server.addr,
        "/room?x=1",
        &[("Cookie", "session=s3cr3t-cookie"), ("Authorization", "Basic dTpw")],
    )
    .await;
    let mut env = Vec::new();
    loop {
        let line = recv_text(&mut ws).await;
        if line == "END" {
            break;
        }
        env.push(line);
    }
    let all = env.join("\n");
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(!all.contains("dTpw"), "{all}");
    let private = ["REMOTE_", "HTTP_", "SSL_CLIENT_", "WEBSOCKET_SUBPROTOCOL="];
    for prefix in private {
        assert!(!env.iter().any(|l| l.starts_with(prefix)), "{prefix} in {all}");
    }
    let shared =
        ["QUERY_STRING=x=1", "SCRIPT_NAME=/", "REQUEST_URI=/room?x=1", "GATEWAY_INTERFACE=CGI/1.1"];
    for var in shared {
        assert!(env.iter().any(|l| l == var), "{var} missing from {all}");
    }
    assert!(env.iter().any(|l| l.starts_with("UNIQUE_ID=")), "{all}");
}

#[tokio::test]
async fn under_dir_each_script_and_query_is_its_own_program() {
    let dir = TempDir::new();
    for name in ["a.sh", "b.sh"] {
        let path = dir.path(name);
        std::fs::write(&path, "#!/bin/sh\necho $$\ncat\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let server =
        Server::start(&["--broadcast", "--replay=1", &format!("--dir={}", dir.0.display())]).await;
    let mut pids = HashSet::new();
    let mut keep = Vec::new();
    for url in ["/a.sh?x=1", "/a.sh?x=2", "/b.sh?x=1", "/b.sh?x=2"] {
        let mut first = server.connect(url).await;
        let pid = recv_text(&mut first).await;
        let mut second = server.connect(url).await;
        assert_eq!(recv_text(&mut second).await, pid, "{url}: one program for its clients");
        pids.insert(pid);
        keep.push((first, second));
    }
    assert_eq!(pids.len(), 4);
    assert_eq!(server.live_children().len(), 4);
}

#[tokio::test]
async fn a_shutdown_tells_every_client_1001_and_ends_the_program() {
    let mut server = Server::start(&["--broadcast", "cat"]).await;
    let mut a = server.connect("/").await;
    let mut b = server.connect("/").await;
    attached(&server, 2).await;
    send_text(&mut a, "hello").await;
    assert_eq!(recv_text(&mut a).await, "hello");
    assert_eq!(recv_text(&mut b).await, "hello");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    for ws in [&mut a, &mut b] {
        assert_eq!(recv_close(ws).await.0, 1001);
    }
    let status = server.wait().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn broadcast_settings_need_broadcast() {
    for flag in [
        "--replay=3",
        "--clientqueue=10",
        "--slowclient=skip",
        "--lingerms=5",
        "--broadcastinput=none",
    ] {
        let out = std::process::Command::new(binary()).args([flag, "cat"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("only applies with --broadcast"), "{flag}: {text}");
    }
}

#[tokio::test]
async fn maxforks_counts_programs_and_joining_needs_no_slot() {
    let server = Server::start(&["--broadcast", "--maxforks=1", "cat"]).await;
    let mut a = server.connect("/one").await;
    let mut b = server.connect("/one").await;
    attached(&server, 2).await;
    send_text(&mut a, "both").await;
    assert_eq!(recv_text(&mut b).await, "both");
    let refused = raw_http(
        server.addr,
        "GET /two HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    a.close(None).await.unwrap();
    b.close(None).await.unwrap();
    server.wait_no_children().await;
    // The slot is back once the program is gone.
    let mut c = server.connect("/two").await;
    send_text(&mut c, "again").await;
    assert_eq!(recv_text(&mut c).await, "again");
}

#[tokio::test]
async fn with_input_none_clients_messages_are_dropped_and_counted() {
    let dir = TempDir::new();
    let got = dir.path("got");
    let server = Server::start(&[
        "--broadcast",
        "--broadcastinput=none",
        "--loglevel=debug",
        "sh",
        "-c",
        &format!("echo ready; cat > {got}"),
    ])
    .await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    for _ in 0..3 {
        send_text(&mut ws, "ignored").await;
    }
    ws.close(None).await.unwrap();
    server.wait_log(|l| l.contains("Dropped 3 client messages")).await;
    server.wait_no_children().await;
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "", "nothing reached the program");
}

#[tokio::test]
async fn passstderr_and_pings_work_for_shared_clients() {
    let server = Server::start(&[
        "--broadcast",
        "--passstderr",
        "--pingms=100",
        "sh",
        "-c",
        "echo out; echo err >&2; cat",
    ])
    .await;
    let mut ws = server.connect("/").await;
    let mut got = vec![recv_text(&mut ws).await, recv_text(&mut ws).await];
    got.sort();
    assert_eq!(got, [r#"{"stream":"stderr","data":"err"}"#, r#"{"stream":"stdout","data":"out"}"#]);
    // Pings come while the client is idle.
    let ping = within(STEP, async {
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return true;
            }
        }
    })
    .await;
    assert!(ping);
}

#[tokio::test]
async fn output_that_breaks_its_framing_ends_the_program_for_every_client_with_1011() {
    // A length-prefixed record of 4096 bytes where at most 1024 may come.
    let server = Server::start(&[
        "--broadcast",
        "--framing=length-prefixed",
        "--maxframesize=1024",
        "--clientqueue=1024",
        "sh",
        "-c",
        r"printf '\000\000\000\002ok'; read go; printf '\000\000\020\000'; sleep 30",
    ])
    .await;
    let mut a = server.connect("/").await;
    assert_eq!(recv(&mut a).await, Message::binary(b"ok".to_vec()));
    // A record's bytes reach stdin as they are: the newline is `read`'s.
    send_text(&mut a, "go\n").await;
    let (code, reason, _) = recv_close(&mut a).await;
    assert_eq!((code, reason.as_str()), (1011, "invalid output from process"));
    server.wait_log(|l| l.contains("Unusable output from process")).await;
    server.wait_no_children().await;
}
