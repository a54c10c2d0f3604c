//! No orphans ever: when the server dies however it dies (SIGKILL here), its guardian ends
//! every program it started within a second, also programs that ignore stdin, never write
//! and ignore SIGTERM; and launcher threads that retire never take a program with them.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use websocketd_tests::*;

/// A program that ignores stdin, SIGINT and SIGTERM, and never writes.
const STUBBORN: &str = "trap '' INT TERM HUP; while :; do sleep 1; done";

/// Waits until `n` programs run, and returns their pids.
async fn programs(server: &Server, n: usize) -> Vec<u32> {
    within(STEP, async {
        loop {
            let pids = server.live_children();
            if pids.len() >= n {
                return pids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn sigkill_of_the_server_takes_every_program_along_even_old_ones() {
    let server = Server::start(&["sh", "-c", STUBBORN]).await;
    // Four at once: the launcher adds threads for them, which retire 10 s after.
    let mut early = Vec::new();
    for _ in 0..4 {
        early.push(server.connect("/").await);
    }
    let old = programs(&server, 4).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(old.iter().all(|&pid| is_alive(pid)), "a retired launcher thread took a program");
    // The sessions still work after the threads that spawned them are gone.
    for ws in &mut early {
        ws.send(tokio_tungstenite::tungstenite::Message::Ping("x".into())).await.unwrap();
    }
    let mut late = Vec::new();
    for _ in 0..20 {
        late.push(server.connect("/").await);
    }
    let all = programs(&server, 24).await;
    let guardian = server.guardian().expect("the guardian runs");
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    within(STEP, async {
        while all.iter().any(|&pid| is_alive(pid)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let took = killed.elapsed();
    eprintln!("24 programs gone {took:?} after the server's SIGKILL");
    assert!(took < Duration::from_secs(1), "the programs outlived the server by {took:?}");
    wait_dead(guardian).await;
    drop((early, late));
}

use futures_util::SinkExt;

#[tokio::test]
async fn a_graceful_shutdown_leaves_no_guardian_behind() {
    let mut server = Server::start(&["sh", "-c", STUBBORN]).await;
    let _ws = server.connect("/").await;
    let program = programs(&server, 1).await[0];
    let guardian = server.guardian().expect("the guardian runs");
    assert!(!server.live_children().contains(&guardian));
    server.signal(Signal::SIGTERM);
    assert!(server.wait().await.success());
    wait_dead(program).await;
    wait_dead(guardian).await;
}
