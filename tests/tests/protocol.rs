//! `--passstderr` and `--pingms`: stderr in the browser, and dead clients noticed.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

#[tokio::test]
async fn passstderr_sends_both_streams_as_json_lines() {
    let script =
        r#"echo out; echo 'err "q" \ back' >&2; printf 'tab\there\n'; printf 'no newline' >&2"#;
    let server = Server::start(&["--passstderr", "sh", "-c", script]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    let mut streams: Vec<(String, String)> = Vec::new();
    for m in data {
        let text = m.to_text().unwrap().to_owned();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{text}");
        streams.push((
            obj["stream"].as_str().unwrap().to_owned(),
            obj["data"].as_str().unwrap().to_owned(),
        ));
    }
    let of = |name: &str| -> Vec<String> {
        streams.iter().filter(|(s, _)| s == name).map(|(_, d)| d.clone()).collect()
    };
    assert_eq!(of("stdout"), ["out", "tab\there"]);
    assert_eq!(of("stderr"), [r#"err "q" \ back"#, "no newline"]);
}

#[tokio::test]
async fn passstderr_leaves_client_input_as_lines() {
    let server = Server::start(&["--passstderr", "cat"]).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, r#"{"stream":"stdout","data":"hi"}"#);
}

#[tokio::test]
async fn pingms_pings_and_drops_a_client_that_never_answers() {
    let server = Server::start(&["--pingms=100", "cat"]).await;
    let mut raw = RawWs::connect(server.addr, "/").await;
    let start = Instant::now();
    // This client reads but never answers: it sees pings, then the server's Close.
    let mut pings = 0;
    let close = loop {
        match raw.read_frame().await {
            Some((9, _)) => pings += 1,
            Some((8, payload)) => break u16::from_be_bytes([payload[0], payload[1]]),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "no ping before the close");
    assert_eq!(close, 1001);
    // Silent for 200 ms is the rule; well before that would be wrong.
    assert!(start.elapsed() >= Duration::from_millis(190), "dropped after {:?}", start.elapsed());
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn pingms_keeps_a_client_that_answers() {
    let server = Server::start(&["--pingms=100", "cat"]).await;
    let mut ws = server.connect("/").await;
    // Reading lets the client answer pings; nothing else arrives meanwhile.
    let listened = tokio::time::timeout(Duration::from_millis(700), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(listened.is_err(), "the connection did not stay quiet: {listened:?}");
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");
}
