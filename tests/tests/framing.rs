//! `--framing`: length-prefixed records keep message boundaries and types through the child,
//! and a child that breaks the framing is stopped with a 1011 close.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

fn messages() -> Vec<Message> {
    vec![
        Message::text("héllo\nworld"),
        Message::binary(Bytes::from_static(b"\x00\x01\n\x02")),
        Message::text(""),
        Message::binary(vec![7u8; 100_000]),
        Message::text("last"),
    ]
}

async fn echo_through(args: &[&str], expect: impl Fn(Message) -> Message) {
    let server = Server::start(args).await;
    let mut ws = server.connect("/").await;
    for m in messages() {
        ws.send(m).await.unwrap();
    }
    for m in messages() {
        assert_eq!(recv(&mut ws).await, expect(m));
    }
}

#[tokio::test]
async fn cat_is_a_perfect_echo_of_length_prefixed_records() {
    echo_through(&["--framing=length-prefixed", "cat"], |m| m).await;
}

#[tokio::test]
async fn a_python_child_reads_and_writes_records() {
    let upper = |m: Message| match m {
        Message::Text(t) => Message::text(t.to_uppercase()),
        other => other,
    };
    echo_through(&["--framing=length-prefixed", &fixture("lp_echo.py")], upper).await;
}

#[tokio::test]
async fn a_shell_child_reads_and_writes_records() {
    echo_through(&["--framing=length-prefixed", &fixture("lp_echo.sh")], |m| m).await;
}

#[tokio::test]
async fn chunks_is_binary_mode() {
    let server = Server::start(&["--framing=chunks", "cat"]).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "abc").await;
    assert_eq!(recv(&mut ws).await, Message::binary(Bytes::from_static(b"abc\n")));
}

/// Starts a child that writes `output` (printf format) and then waits, and checks that the
/// client gets 1011 and the child is stopped.
async fn bad_output_is_refused(output: &str) {
    let script = format!("printf '{output}'; echo $$ >&2; exec sleep 1000");
    let server = Server::start(&["--framing=length-prefixed", "sh", "-c", &script]).await;
    let mut ws = server.connect("/").await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1011, "invalid output from process"), "{data:?}");
    server.wait_log(|l| l.contains("Unusable output from process")).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_record_over_the_limit_closes_with_1011_and_stops_the_child() {
    // Announces 2 GiB - 1: refused from the header alone, nothing allocated for it.
    bad_output_is_refused(r"\177\377\377\377").await;
}

#[tokio::test]
async fn a_text_record_that_is_not_utf8_closes_with_1011() {
    bad_output_is_refused(r"\200\000\000\002\377\376").await;
}

#[tokio::test]
async fn a_record_cut_short_by_the_end_of_output_closes_with_1011() {
    let server =
        Server::start(&["--framing=length-prefixed", "printf", r"\000\000\000\005ab"]).await;
    let mut ws = server.connect("/").await;
    let (code, _, _) = recv_close(&mut ws).await;
    assert_eq!(code, 1011);
}

#[tokio::test]
async fn records_from_the_child_arrive_whole_even_when_written_in_pieces() {
    // The header and the payload come in separate writes, a moment apart.
    let script = r"printf '\200\000\000\005he'; sleep 0.2; printf 'llo'";
    let server = Server::start(&["--framing=length-prefixed", "sh", "-c", script]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(data, [Message::text("hello")]);
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn maxframesize_bounds_what_the_client_may_send() {
    let server = Server::start(&["--maxframesize=1000", "cat"]).await;
    let mut ws = server.connect("/").await;
    let fits = "f".repeat(999);
    send_text(&mut ws, &fits).await;
    assert_eq!(recv_text(&mut ws).await, fits);
    let _ = ws.send(Message::text("x".repeat(1001))).await;
    assert_eq!(recv_close(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn maxframesize_splits_longer_output() {
    let script = "head -c 2500 /dev/zero | tr '\\0' q";
    let server = Server::start(&["--maxframesize=1000", "sh", "-c", script]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    let sizes: Vec<usize> = data.iter().map(Message::len).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[tokio::test]
async fn maxframesize_refuses_a_longer_length_prefixed_record() {
    let script = r"printf '\000\000\000\013eleven byte'; exec sleep 1000";
    let server =
        Server::start(&["--maxframesize=10", "--framing=length-prefixed", "sh", "-c", script])
            .await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_close(&mut ws).await.0, 1011);
    server.wait_no_children().await;
}

#[tokio::test]
async fn maxframesize_zero_means_no_limit() {
    let server = Server::start(&["--maxframesize=0", "cat"]).await;
    let mut ws = server.connect("/").await;
    let big = "z".repeat(3 << 20);
    send_text(&mut ws, &big).await;
    assert_eq!(recv_text(&mut ws).await.len(), big.len());
}
