//! Moving bytes: stdout lines and chunks to messages, messages to stdin, limits, and a relay
//! that cannot deadlock.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

#[tokio::test]
async fn each_stdout_line_is_one_text_message_with_one_cr_trimmed() {
    let server = Server::start(&["printf", r"a\r\nb\nc\r\r\n\n  x  \nlast-without-newline"]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(texts(data), ["a", "b", "c\r", "", "  x  ", "last-without-newline"]);
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn client_text_gets_a_newline_and_binary_goes_raw_in_text_mode() {
    // The child dumps the first six bytes of its stdin in hex.
    let server = Server::start(&["sh", "-c", "head -c 6 | od -An -tx1 -v"]).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "hi").await;
    ws.send(Message::binary(vec![0u8, 1, b'b'])).await.unwrap();
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    let all: String = data.iter().map(|m| m.to_text().unwrap().to_owned()).collect();
    assert_eq!(all.split_whitespace().collect::<Vec<_>>(), ["68", "69", "0a", "00", "01", "62"]);
}

#[tokio::test]
async fn invalid_utf8_from_the_child_becomes_replacement_characters() {
    let server = Server::start(&["printf", r"ok\377\376end\n"]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ok\u{FFFD}\u{FFFD}end");
}

#[tokio::test]
async fn invalid_utf8_from_the_client_closes_with_1007_before_reaching_the_child() {
    let server = Server::start(&["cat"]).await;
    let mut raw = RawWs::connect(server.addr, "/").await;
    raw.send_frame(true, 1, b"fine").await;
    assert_eq!(raw.read_frame().await, Some((1, b"fine".to_vec())));
    raw.send_frame(true, 1, b"bad \xff\xfe").await;
    assert_eq!(raw.read_close().await, Some(1007));
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_message_over_one_mebibyte_closes_with_1009_and_nothing_reaches_the_child() {
    let dir = TempDir::new();
    let out = dir.path("got");
    let server = Server::start(&["sh", "-c", &format!("cat > {out}")]).await;
    let mut ws = server.connect("/").await;
    // The server may close before the whole message is out; the Close must still arrive.
    let _ = ws.send(Message::binary(vec![b'a'; (1 << 20) + 1])).await;
    let (code, _, _) = recv_close(&mut ws).await;
    assert_eq!(code, 1009);
    server.wait_no_children().await;
    assert_eq!(std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0), 0);
}

#[tokio::test]
async fn a_one_mebibyte_message_echoes_whole_in_text_mode() {
    let server = Server::start(&["cat"]).await;
    let mut ws = server.connect("/").await;
    let line: String = (0..(1 << 20)).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    send_text(&mut ws, &line).await;
    assert_eq!(recv_text(&mut ws).await, line);
}

#[tokio::test]
async fn a_one_mebibyte_message_echoes_whole_in_binary_mode() {
    let server = Server::start(&["--binary", "cat"]).await;
    let mut ws = server.connect("/").await;
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(data.clone())).await.unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match recv(&mut ws).await {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(got, data);
}

#[tokio::test]
async fn binary_mode_sends_reads_as_binary_and_text_messages_keep_their_newline() {
    let server = Server::start(&["--binary", "cat"]).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "abc").await;
    let mut got = Vec::new();
    while got.len() < 4 {
        match recv(&mut ws).await {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(got, b"abc\n");
}

#[tokio::test]
async fn two_hundred_thousand_lines_in_one_message_come_back_as_as_many_messages() {
    let server = Server::start(&["cat"]).await;
    let mut ws = server.connect("/").await;
    // 200,000 lines of 4 bytes plus newlines fit in the 1 MiB message limit.
    let n = 200_000;
    let mut big = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            big.push('\n');
        }
        big.push_str(&format!("{:04}", i % 10_000));
    }
    send_text(&mut ws, &big).await;
    within(Duration::from_secs(60), async {
        for i in 0..n {
            let got = recv_text(&mut ws).await;
            assert_eq!(got, format!("{:04}", i % 10_000));
        }
    })
    .await;
}

#[tokio::test]
async fn a_child_that_never_reads_stdin_still_ends_when_the_client_leaves() {
    let server = Server::start(&["sleep", "1000"]).await;
    let mut ws = server.connect("/").await;
    let chunk = "z".repeat(1000);
    for _ in 0..300 {
        send_text(&mut ws, &chunk).await;
    }
    within(STEP, ws.close(None)).await.unwrap();
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_blocks_the_child_instead_of_growing_memory() {
    let dir = TempDir::new();
    let progress = dir.path("progress");
    let server = Server::start(&[&fixture("progress.py"), &progress]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await.len(), 1023);
    // Stop reading. The child must come to a halt: its byte count stops moving.
    let written = within(Duration::from_secs(30), async {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = std::fs::read_to_string(&progress).unwrap_or_default();
            if !now.is_empty() && now == last {
                return now.parse::<u64>().unwrap();
            }
            last = now;
        }
    })
    .await;
    // Pipe, socket buffers and our bounded buffers: a few MiB, not the gigabytes a child
    // printing this fast would reach if the server kept reading.
    assert!(written < 64 << 20, "child wrote {written} bytes while nobody read");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let rss_kb: u64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss_kb < 64 * 1024, "server RSS {rss_kb} KiB");
    // Reading again lets it go on.
    for _ in 0..100 {
        assert_eq!(recv_text(&mut ws).await.len(), 1023);
    }
}

#[tokio::test]
async fn an_endless_line_is_sent_in_pieces_of_at_most_one_mebibyte() {
    let server = Server::start(&["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' 'q'"]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    let sizes: Vec<usize> = data.iter().map(|m| m.len()).collect();
    assert!(sizes.iter().all(|&s| s <= 1 << 20), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 3_000_000);
    assert!(sizes.len() >= 3);
}
