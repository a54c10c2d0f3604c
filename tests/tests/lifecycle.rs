//! A process per connection and its written-down death: close codes that carry the exit
//! status, the termination ladder, process groups, and nothing left behind.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

#[tokio::test]
async fn exit_status_zero_closes_with_1000_after_all_output() {
    let server = Server::start(&["seq", "1", "10000"]).await;
    let mut ws = server.connect("/").await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1000, ""));
    let expected: Vec<String> = (1..=10000).map(|i| i.to_string()).collect();
    let got: Vec<String> = data.iter().map(|m| m.to_text().unwrap().to_owned()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_non_zero_exit_closes_with_1011_and_the_status() {
    let server = Server::start(&[&fixture("exit.sh"), "3"]).await;
    let mut ws = server.connect("/").await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1011, "exit status 3"));
    assert_eq!(data, [Message::text("bye")]);
}

#[tokio::test]
async fn a_child_killed_by_a_signal_closes_with_1011_and_the_signal() {
    let server = Server::start(&[&fixture("exit.sh"), "0", "KILL"]).await;
    let mut ws = server.connect("/").await;
    let (code, reason, _) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1011, "killed by signal 9"));
}

#[tokio::test]
async fn a_child_that_closes_stdout_but_lingers_is_stopped_and_reported() {
    // sh ignores SIGINT (and so does the sleep it becomes); SIGTERM ends it.
    let server =
        Server::start(&["sh", "-c", "echo hi; exec >&-; trap '' INT; exec sleep 1000"]).await;
    let mut ws = server.connect("/").await;
    let (code, reason, data) = recv_close(&mut ws).await;
    assert_eq!(data, [Message::text("hi")]);
    assert_eq!((code, reason.as_str()), (1011, "killed by signal 15"));
    server.wait_no_children().await;
}

#[tokio::test]
async fn each_connection_runs_its_own_process_in_its_own_group() {
    let server = Server::start(&["sh", "-c", "echo $$; exec cat"]).await;
    let mut a = server.connect("/").await;
    let mut b = server.connect("/").await;
    let pa: u32 = recv_text(&mut a).await.parse().unwrap();
    let pb: u32 = recv_text(&mut b).await.parse().unwrap();
    assert_ne!(pa, pb);
    let server_group = proc_stat(server.pid()).unwrap().pgrp;
    for pid in [pa, pb] {
        let p = proc_stat(pid).unwrap();
        assert_eq!(p.ppid, server.pid());
        assert_eq!(p.pgrp, pid, "the child leads its own process group");
        assert_ne!(p.pgrp, server_group);
    }
    send_text(&mut a, "to a").await;
    assert_eq!(recv_text(&mut a).await, "to a");
}

/// Reads the ladder fixture's event log: (event, ms since it started).
fn events(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(e, t)| (e.to_owned(), t.parse().unwrap()))
        .collect()
}

fn at(events: &[(String, u64)], name: &str) -> u64 {
    events
        .iter()
        .find(|(e, _)| e == name)
        .map(|e| e.1)
        .unwrap_or_else(|| panic!("no {name} in {events:?}"))
}

async fn ladder_gaps(closems: u64) -> (u64, u64) {
    let dir = TempDir::new();
    let log = dir.path("events");
    let closems_flag = format!("--closems={closems}");
    let server = Server::start(&[&closems_flag, &fixture("ignore_signals.py"), &log]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "ready");
    let pid: u32 = server.live_children()[0];
    within(STEP, ws.close(None)).await.unwrap();
    wait_dead(pid).await;
    let ev = events(&std::fs::read_to_string(&log).unwrap());
    let (eof, int, term) = (at(&ev, "EOF"), at(&ev, "SIGINT"), at(&ev, "SIGTERM"));
    assert!(eof <= int && int <= term, "{ev:?}");
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    (int - eof, term - int)
}

#[tokio::test]
async fn the_ladder_closes_stdin_then_sends_sigint_sigterm_and_sigkill() {
    let (to_int, to_term) = ladder_gaps(0).await;
    // 100 ms then 250 ms; generous upper bounds only absorb a loaded machine.
    assert!((95..1500).contains(&to_int), "stdin EOF to SIGINT: {to_int} ms");
    assert!((245..1500).contains(&to_term), "SIGINT to SIGTERM: {to_term} ms");
}

#[tokio::test]
async fn closems_lengthens_every_step_of_the_ladder() {
    let (to_int, to_term) = ladder_gaps(300).await;
    assert!((395..2000).contains(&to_int), "stdin EOF to SIGINT: {to_int} ms");
    assert!((545..2000).contains(&to_term), "SIGINT to SIGTERM: {to_term} ms");
}

#[tokio::test]
async fn grandchildren_die_with_the_session() {
    let server = Server::start(&[&fixture("grandchild.sh")]).await;
    let mut ws = server.connect("/").await;
    let grandchild: u32 = recv_text(&mut ws).await.parse().unwrap();
    assert!(is_alive(grandchild));
    within(STEP, ws.close(None)).await.unwrap();
    // It ignores SIGINT and SIGTERM, so only the group's SIGKILL ends it.
    wait_dead(grandchild).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn two_hundred_concurrent_connections_each_get_a_process_and_leave_none() {
    let server = Server::start(&["sh", "-c", "echo $$; exec cat"]).await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(server.connect("/").await);
    }
    let mut pids = HashSet::new();
    for ws in &mut clients {
        pids.insert(recv_text(ws).await.parse::<u32>().unwrap());
    }
    assert_eq!(pids.len(), 200);
    assert!(pids.iter().all(|&p| is_alive(p)));
    for (i, ws) in clients.iter_mut().enumerate() {
        let msg = format!("echo {i}");
        send_text(ws, &msg).await;
        assert_eq!(recv_text(ws).await, msg);
    }
    for mut ws in clients {
        within(STEP, ws.close(None)).await.unwrap();
    }
    server.wait_log_count(200, |l| l.ends_with("| DISCONNECT")).await;
    server.wait_no_children().await;
    assert!(pids.iter().all(|&p| !is_alive(p)));
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn zombie_children(pid: u32) -> Vec<u32> {
    processes().into_iter().filter(|p| p.ppid == pid && p.state == 'Z').map(|p| p.pid).collect()
}

#[tokio::test]
async fn sessions_leave_no_zombies_and_no_open_descriptors() {
    let server = Server::start(&[&fixture("exit.sh"), "0"]).await;
    // One session first, so the runtime's own lazily opened descriptors are counted.
    let mut ws = server.connect("/").await;
    recv_close(&mut ws).await;
    drop(ws);
    server.wait_log_count(1, |l| l.ends_with("| DISCONNECT")).await;
    let before = fd_count(server.pid());
    for _ in 0..50 {
        let mut ws = server.connect("/").await;
        assert_eq!(recv_close(&mut ws).await.0, 1000);
    }
    server.wait_log_count(51, |l| l.ends_with("| DISCONNECT")).await;
    within(STEP, async {
        while fd_count(server.pid()) > before || !zombie_children(server.pid()).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(zombie_children(server.pid()).is_empty());
}

#[tokio::test]
async fn a_program_that_cannot_start_closes_with_1011() {
    let dir = TempDir::new();
    let script = dir.path("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    set_mode(&script, 0o755);
    let server = Server::start(&[&script]).await;
    set_mode(&script, 0o644);
    let mut ws = server.connect("/").await;
    let (code, reason, _) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1011, "could not launch process"));
    server
        .wait_log(|l| l.contains("| ERROR  | process") && l.contains("Could not launch process"))
        .await;
}

fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn stopping_the_server_stops_every_child() {
    let server = Server::start(&["sh", "-c", "echo $$; trap '' INT; exec sleep 1000"]).await;
    let mut ws = server.connect("/").await;
    let child: u32 = recv_text(&mut ws).await.parse().unwrap();
    assert!(is_alive(child));
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    wait_dead(child).await;
    let _ = ws.send(Message::text("gone")).await;
}

#[tokio::test]
async fn a_client_slow_to_take_its_close_does_not_delay_the_ladder() {
    let dir = TempDir::new();
    let log = dir.path("events");
    let server = Server::start(&[&fixture("ignore_signals.py"), &log]).await;
    let mut raw = RawWs::connect(server.addr, "/").await;
    assert_eq!(raw.read_frame().await, Some((1, b"ready".to_vec())));
    // Too big: the server answers 1009 and waits up to a second for this client to go,
    // which it does not. The child's ladder must run meanwhile.
    raw.send_frame(true, 2, &vec![0u8; (1 << 20) + 1]).await;
    let text = wait_file(&log, "SIGINT").await;
    let ev = events(&text);
    let to_int = at(&ev, "SIGINT") - at(&ev, "EOF");
    assert!(to_int < 700, "SIGINT came {to_int} ms after stdin closed");
    drop(raw);
}
