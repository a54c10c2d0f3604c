//! Resumable sessions (`--resumems`): a connection that drops without a Close reattaches to
//! its running program with its token and count, and gets every message exactly once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// A fresh token: 32 hex digits, different for every test and run.
fn token() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let salt = u128::from(std::process::id()) << 64;
    format!("{:032x}", nanos ^ salt ^ u128::from(rand_u64()))
}

/// A number that differs from call to call (no crate for it: the clock and a counter).
fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let mut x = COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ u64::from(nanos);
    // xorshift64*: spreads the bits.
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The path that names session `token` with `seen` messages had.
fn at(token: &str, seen: usize) -> String {
    format!("/?wsd_session={token}&wsd_seen={seen}")
}

/// A program that prints 1..=n, one line every `every` seconds.
fn counter(n: u32, every: &str) -> String {
    format!("i=1; while [ $i -le {n} ]; do echo $i; i=$((i+1)); sleep {every}; done")
}

/// The numbers of text messages, which must all be numbers.
fn numbers(messages: Vec<Message>) -> Vec<u64> {
    texts(messages)
        .iter()
        .map(|t| t.parse().unwrap_or_else(|_| panic!("not a number: {t}")))
        .collect()
}

/// A program that says `ready`, notes the signals of the ladder in `events`, and waits.
fn waiter(events: &str) -> String {
    format!(
        "trap 'echo INT >> {events}; exit 0' INT; trap 'echo TERM >> {events}; exit 0' TERM; \
         echo ready; while :; do sleep 0.05; done"
    )
}

/// A [`waiter`] session with `--resumems=MS`, its connection dropped once the program is
/// ready: the server, the session's token, and the events file (in the temp directory).
async fn left_waiting(resumems: &str) -> (Server, String, String, TempDir) {
    let dir = TempDir::new();
    let events = dir.path("events");
    let server = Server::start(&[resumems, "sh", "-c", &waiter(&events)]).await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    (server, token, events, dir)
}

#[tokio::test]
async fn ten_drops_at_random_points_lose_and_double_nothing() {
    let server = Server::start(&["--resumems=10000", "sh", "-c", &counter(400, "0.005")]).await;
    let token = token();
    let seed = rand_u64();
    let mut rng = seed;
    let mut next = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..10 {
        let mut ws = server.connect(&at(&token, got.len())).await;
        for _ in 0..2 + next(25) {
            let text = recv_text(&mut ws).await;
            got.push(text.parse().unwrap_or_else(|_| panic!("not a number: {text}")));
        }
        // Messages keep coming meanwhile: some are in flight when the connection goes.
        tokio::time::sleep(Duration::from_millis(next(40))).await;
        abort(ws);
    }
    let mut ws = server.connect(&at(&token, got.len())).await;
    let (code, _, rest) = recv_close(&mut ws).await;
    got.extend(numbers(rest));
    let want: Vec<u64> = (1..=400).collect();
    assert_eq!(got, want, "every message exactly once, in order (seed {seed})");
    assert_eq!(code, 1000, "then the program's exit");
    // Each connection left detached, or was taken over when its successor came first.
    server.wait_log_count(11, |l| l.contains("| DISCONNECT")).await;
    let logs = server.logs();
    let left =
        |l: &&String| l.contains("exit:'detached'") || l.contains("exit:'resumed elsewhere'");
    assert_eq!(logs.iter().filter(left).count(), 10, "{logs:#?}");
    let started = logs.iter().filter(|l| l.contains("| CONNECT")).count();
    assert_eq!(started, 11);
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_session_nobody_comes_back_to_goes_down_the_ladder_and_is_gone() {
    let (server, token, events, _dir) = left_waiting("--resumems=300").await;
    server.wait_log(|l| l.contains("expired: no connection came back within 300 ms")).await;
    wait_file(&events, "INT").await;
    server.wait_no_children().await;
    let mut ws = server.connect(&at(&token, 1)).await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4001, "no such session"));
    assert!(data.is_empty());
    // Seen nothing: the token starts a new session.
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_clean_close_ends_the_session_at_once() {
    let dir = TempDir::new();
    let events = dir.path("events");
    let server = Server::start(&["--resumems=60000", "sh", "-c", &waiter(&events)]).await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    ws.close(None).await.unwrap();
    wait_file(&events, "INT").await;
    let line = server.wait_log(|l| l.contains("| DISCONNECT")).await;
    assert!(line.contains("exit:'status 0'"), "the program's end: {line}");
    let mut ws = server.connect(&at(&token, 1)).await;
    assert_eq!(recv_close(&mut ws).await.0, 4001);
}

#[tokio::test]
async fn without_a_token_a_dropped_connection_ends_its_program_as_before() {
    let dir = TempDir::new();
    let events = dir.path("events");
    let server = Server::start(&["--resumems=60000", "sh", "-c", &waiter(&events)]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    abort(ws);
    wait_file(&events, "INT").await;
    server.wait_no_children().await;
    assert!(!server.logs().iter().any(|l| l.contains("detached")));
}

#[tokio::test]
async fn a_count_past_what_is_kept_or_what_was_sent_cannot_resume() {
    let server = Server::start(&[
        "--resumems=60000",
        "--resumebuffer=1000",
        "sh",
        "-c",
        "seq 1 2000; exec cat",
    ])
    .await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    for i in 1..=2000 {
        assert_eq!(recv_text(&mut ws).await, i.to_string());
    }
    // A stale connection (an old tab) that cannot resume does not take the session from
    // the one that has it.
    let mut stale = server.connect(&at(&token, 5)).await;
    let (code, reason, data) = recv_close(&mut stale).await;
    assert_eq!((code, reason.as_str()), (4000, "cannot resume"));
    assert!(data.is_empty(), "nothing else: {data:?}");
    server.wait_log(|l| l.contains("message 6 is no longer kept")).await;
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let mut ws = server.connect(&at(&token, 2002)).await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4000, "cannot resume"));
    assert!(data.is_empty(), "nothing else: {data:?}");
    server.wait_log(|l| l.contains("only 2001 messages were sent")).await;
    // The session is still there, for the count that is right.
    let mut ws = server.connect(&at(&token, 2001)).await;
    send_text(&mut ws, "back").await;
    assert_eq!(recv_text(&mut ws).await, "back");
    ws.close(None).await.unwrap();
    server.wait_no_children().await;
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("resumed elsewhere")), "{logs:#?}");
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() {
    let server = Server::start(&["--resumems=60000", "sh", "-c", &counter(60, "0.02")]).await;
    let token = token();
    let mut old = server.connect(&at(&token, 0)).await;
    for i in 1..=3 {
        assert_eq!(recv_text(&mut old).await, i.to_string());
    }
    let mut new = server.connect(&at(&token, 3)).await;
    let (code, reason, _) = recv_close(&mut old).await;
    assert_eq!((code, reason.as_str()), (4002, "resumed elsewhere"));
    let (code, _, data) = recv_close(&mut new).await;
    assert_eq!(code, 1000);
    assert_eq!(numbers(data), (4..=60).collect::<Vec<u64>>());
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("exit:'resumed elsewhere'")), "{logs:#?}");
}

#[tokio::test]
async fn the_programs_end_while_detached_is_delivered_on_reattach() {
    let server =
        Server::start(&["--resumems=60000", "sh", "-c", "echo one; sleep 0.3; echo two; exit 3"])
            .await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "one");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    server.wait_log(|l| l.contains("ended: status 3")).await;
    server.wait_no_children().await;
    let mut ws = server.connect(&at(&token, 1)).await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!(texts(data), ["two"]);
    assert_eq!((code, reason.as_str()), (1011, "exit status 3"));
    server.wait_log_count(2, |l| l.contains("| DISCONNECT")).await;
    // Delivered: nothing is kept any more.
    let mut ws = server.connect(&at(&token, 2)).await;
    assert_eq!(recv_close(&mut ws).await.0, 4001);
}

/// A process's bytes written so far (`wchar` of /proc/PID/io).
fn written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A process's resident memory, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

#[tokio::test]
async fn a_detached_program_that_prints_forever_blocks_within_the_buffer() {
    const BUFFER: u64 = 8 << 20;
    // What a session works with besides its buffer while output flows: the buffer it frames
    // in (up to 512 KiB) and the pipe's read buffer, with the allocator's overhead.
    const WORKING: u64 = 3 << 19;
    let dir = TempDir::new();
    let go = dir.path("go");
    let server = Server::start(&[
        "--resumems=60000",
        &format!("--resumebuffer={BUFFER}"),
        "sh",
        "-c",
        &format!("echo ready; while [ ! -e {go} ]; do sleep 0.01; done; exec seq 1 1000000000"),
    ])
    .await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let pid = *server.live_children().first().expect("the program runs");
    // The session is set up and detached; from here on only its output grows.
    let before = rss(server.pid());
    std::fs::write(&go, "").unwrap();
    // It blocks on its stdout: what it has written stops growing.
    let blocked = within(STEP, async {
        let mut last = written(pid);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = written(pid);
            if now == last && now > 1 << 20 {
                return now;
            }
            last = now;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(written(pid), blocked, "still blocked");
    assert!(is_alive(pid), "blocked, not ended");
    let grown = rss(server.pid()).saturating_sub(before);
    eprintln!("the server grew by {grown} bytes for a {BUFFER}-byte buffer");
    assert!(
        grown <= BUFFER + WORKING,
        "the server grew by {grown} bytes for a {BUFFER}-byte buffer"
    );
}

#[tokio::test]
async fn the_token_is_in_no_log_line_environment_or_query() {
    let server = Server::start(&[
        "--resumems=60000",
        "sh",
        "-c",
        "echo \"Q=$QUERY_STRING\"; echo \"U=$REQUEST_URI\"; echo \"N=$(env | grep -c wsd_)\"",
    ])
    .await;
    let token = token();
    let mut ws = server.connect(&format!("/p?a=1&wsd_session={token}&wsd_seen=0&b=2")).await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(texts(data), ["Q=a=1&b=2", "U=/p?a=1&b=2", "N=0"]);
    assert_eq!(code, 1000);
    // A token with an odd character, or too short, is refused before anything starts.
    for bad in ["BADTOKEN!!BADTOKEN!!BADTOKEN", "BADTOKEN", &format!("{token}&wsd_seen=x")] {
        let answer = raw_http(
            server.addr,
            &format!(
                "GET /?wsd_session={bad} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad}: {answer}");
    }
    server.wait_log_count(3, |l| l.contains("BAD REQUEST")).await;
    let logs = server.logs();
    assert_eq!(logs.iter().filter(|l| l.contains("| CONNECT")).count(), 1, "{logs:#?}");
    for line in &logs {
        assert!(!line.contains(&token) && !line.contains("BADTOKEN"), "{line}");
    }
}

#[tokio::test]
async fn detached_sessions_hold_their_slot_and_resuming_needs_none() {
    let server =
        Server::start(&["--resumems=60000", "--maxforks=1", "sh", "-c", &counter(5, "0.01")]).await;
    let token = token();
    let mut ws = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut ws).await, "1");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let refused = raw_http(
        server.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    let mut ws = server.connect(&at(&token, 1)).await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!((code, numbers(data)), (1000, vec![2, 3, 4, 5]));
}

#[tokio::test]
async fn shutdown_ends_detached_sessions_too() {
    let (server, _token, events, _dir) = left_waiting("--resumems=60000").await;
    let pid = *server.live_children().first().expect("the program runs");
    let status = server.stop().await;
    assert!(status.success(), "{status}");
    wait_file(&events, "INT").await;
    wait_dead(pid).await;
}

#[tokio::test]
async fn resume_settings_are_checked_at_start() {
    for (args, says) in [
        (&["--resumebuffer=10", "cat"][..], "only applies with --resumems"),
        (
            &["--resumems=100", "--broadcast", "cat"][..],
            "--resumems does not work with --broadcast",
        ),
    ] {
        let out = std::process::Command::new(binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn a_session_resumes_through_nginx_when_the_client_side_drops() {
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let server =
        Server::start_unix(&sock, &["--resumems=10000", "sh", "-c", &counter(200, "0.005")]).await;
    let Some(nginx) = Nginx::start(&[&sock]).await else { return };
    let token = token();
    let mut got: Vec<u64> = Vec::new();
    for round in 0..5 {
        let url = format!("ws://{}{}", nginx.addr, at(&token, got.len()));
        let mut ws = connect(&url).await;
        for _ in 0..10 + round {
            match recv(&mut ws).await {
                Message::Text(t) => got.push(t.parse().unwrap()),
                other => panic!("{other:?}\n{}\n{:#?}", nginx.error_log(), server.logs()),
            }
        }
        abort(ws);
    }
    let mut ws = connect(&format!("ws://{}{}", nginx.addr, at(&token, got.len()))).await;
    let (code, _, rest) = recv_close(&mut ws).await;
    got.extend(numbers(rest));
    assert_eq!(got, (1..=200).collect::<Vec<u64>>(), "{}\n{:#?}", nginx.error_log(), server.logs());
    assert_eq!(code, 1000);
    assert!(server.logs().iter().filter(|l| l.contains("Resumed session")).count() >= 5);
}

#[tokio::test]
async fn a_client_silent_to_pings_is_dropped_without_a_close_and_can_come_back() {
    let dir = TempDir::new();
    let events = dir.path("events");
    let server =
        Server::start(&["--resumems=60000", "--pingms=100", "sh", "-c", &waiter(&events)]).await;
    let token = token();
    let mut old = server.connect(&at(&token, 0)).await;
    assert_eq!(recv_text(&mut old).await, "ready");
    // Not read meanwhile: the pings go unanswered.
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let (code, _, data) = recv_close(&mut old).await;
    assert_eq!(code, 1006, "dropped without a Close, so that the client comes back");
    assert!(data.is_empty());
    let mut ws = server.connect(&at(&token, 1)).await;
    server.wait_log(|l| l.contains("Resumed session") && l.contains("after 1 messages")).await;
    ws.close(None).await.unwrap();
    wait_file(&events, "INT").await;
}
