//! Output on time: `--pty` (the program's stdout a pseudo-terminal, so that real programs
//! flush each line themselves) and `--flushms` (a partial line sent once it has waited).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// Python 3 printing a line and waiting for the client's answer to each, without `-u` and
/// without a flush: with stdout a pipe its lines would sit in its buffer until it exits.
const TICKS: &str = "import sys, time\n\
for i in range(5):\n    print('tick', i)\n    sys.stdin.readline()\n    time.sleep(0.2)\n";

#[tokio::test]
async fn python_flushes_every_line_by_itself_on_a_pty() {
    let server = Server::start(&["--pty", "python3", "-c", TICKS]).await;
    let mut ws = server.connect("/").await;
    for i in 0..5 {
        assert_eq!(recv_text(&mut ws).await, format!("tick {i}"));
        send_text(&mut ws, "ok").await;
    }
    let (code, _, _) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    // Without --pty the same program says nothing while it waits: its line is in its buffer.
    let server = Server::start(&["python3", "-c", TICKS]).await;
    let mut ws = server.connect("/").await;
    let nothing = tokio::time::timeout(Duration::from_millis(700), ws.next()).await;
    assert!(nothing.is_err(), "a pipe's line arrived: {nothing:?}");
}

#[tokio::test]
async fn a_program_sees_a_terminal_on_stdout_only_and_term_dumb() {
    let probe = "import os, sys\n\
print(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty(), os.environ.get('TERM'))";
    let server = Server::start(&["--pty", "python3", "-c", probe]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "False True False dumb");
    let server = Server::start(&["--pty", "--setenv=TERM=xterm", "python3", "-c", probe]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "False True False xterm");
}

#[tokio::test]
async fn grep_in_a_pipeline_passes_each_match_on_at_once() {
    // cat passes each line on as it reads it, like `tail -f`; grep block-buffers a pipe.
    let server = Server::start(&["--pty", "sh", "-c", "cat | grep keep"]).await;
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "keep 1").await;
    assert_eq!(recv_text(&mut ws).await, "keep 1");
    send_text(&mut ws, "drop 2").await;
    send_text(&mut ws, "keep 3").await;
    assert_eq!(recv_text(&mut ws).await, "keep 3");
}

#[tokio::test]
async fn every_byte_value_survives_the_pty_in_binary_and_length_prefixed_framing() {
    let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let server = Server::start(&["--pty", "--binary", "cat"]).await;
    let mut ws = server.connect("/").await;
    within(STEP, ws.send(Message::binary(all.clone()))).await.unwrap();
    let mut got = Vec::new();
    while got.len() < all.len() {
        match recv(&mut ws).await {
            Message::Binary(data) => got.extend_from_slice(&data),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(got, all, "the terminal changed a byte");
    let server =
        Server::start(&["--pty", "--framing=length-prefixed", &fixture("lp_echo.py")]).await;
    let mut ws = server.connect("/").await;
    within(STEP, ws.send(Message::binary(all.clone()))).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::binary(all.clone()));
    send_text(&mut ws, "text\r\nwith\nnewlines").await;
    assert_eq!(recv_text(&mut ws).await, "TEXT\r\nWITH\nNEWLINES");
}

#[tokio::test]
async fn a_ten_megabyte_burst_comes_whole_over_the_pty() {
    let burst = "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 40000)\n";
    let server = Server::start(&["--pty", "--binary", "python3", "-c", burst]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    let got: Vec<u8> = data
        .into_iter()
        .flat_map(|m| match m {
            Message::Binary(data) => data.to_vec(),
            other => panic!("expected binary, got {other:?}"),
        })
        .collect();
    assert_eq!(got.len(), 256 * 40000);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8), "a byte changed");
}

#[tokio::test]
async fn exit_statuses_and_close_codes_are_those_of_a_pipe() {
    for script in ["echo hi; exit 0", "echo hi; exit 3", "echo hi; kill -9 $$"] {
        let mut seen = Vec::new();
        for pty in [false, true] {
            let mut args = vec!["sh", "-c", script];
            if pty {
                args.insert(0, "--pty");
            }
            let server = Server::start(&args).await;
            let mut ws = server.connect("/").await;
            let (code, reason, data) = recv_close(&mut ws).await;
            seen.push((code, reason, texts(data)));
            server.wait_no_children().await;
        }
        assert_eq!(seen[0], seen[1], "{script}");
        assert_eq!(seen[1].2, ["hi"], "{script}");
    }
}

#[tokio::test]
async fn flushms_sends_a_prompt_without_its_newline() {
    let prompt =
        "printf 'Password: '; read pw; echo \"got $pw\"; printf 'working'; sleep 0.3; echo ' done'";
    let server = Server::start(&["--flushms=100", "sh", "-c", prompt]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "Password: ");
    send_text(&mut ws, "s3cret").await;
    assert_eq!(recv_text(&mut ws).await, "got s3cret");
    // A partial line goes out once it has waited; the rest of the line is the next message.
    assert_eq!(recv_text(&mut ws).await, "working");
    assert_eq!(recv_text(&mut ws).await, " done");
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    // Without it, the prompt waits for its newline, as websocketd has it.
    let server = Server::start(&["sh", "-c", prompt]).await;
    let mut ws = server.connect("/").await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
    assert!(nothing.is_err(), "the prompt came without --flushms: {nothing:?}");
    let out = std::process::Command::new(binary())
        .args(["--flushms=100", "--binary", "cat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--flushms only applies to lines"));
}

#[tokio::test]
async fn flushms_and_pty_work_for_shared_and_resumable_programs_too() {
    let server =
        Server::start(&["--broadcast", "--flushms=100", "sh", "-c", "printf 'ready> '; exec cat"])
            .await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ready> ");
    send_text(&mut ws, "shared").await;
    assert_eq!(recv_text(&mut ws).await, "shared");
    let server = Server::start(&["--resumems=5000", "--pty", "python3", "-c", TICKS]).await;
    let mut ws = server.connect("/?wsd_session=output-0123456789abcdefghij").await;
    assert_eq!(recv_text(&mut ws).await, "tick 0");
    send_text(&mut ws, "ok").await;
    assert_eq!(recv_text(&mut ws).await, "tick 1");
}
