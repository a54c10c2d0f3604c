//! The processes on the machine, as /proc shows them: what the server leaves behind.

use std::time::Duration;

use crate::wait::{STEP, within};

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// Its process group.
    pub pgrp: u32,
    /// R, S, Z, …
    pub state: char,
}

/// All processes on the machine.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Some(p) = proc_stat(pid) {
            out.push(p);
        }
    }
    out
}

/// One process's state, if it exists.
pub fn proc_stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Proc { pid, ppid, pgrp, state })
}

/// Whether `pid` is a live (non-zombie) process.
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|p| p.state != 'Z' && p.state != 'X')
}

/// Waits (bounded) until `pid` is no longer a live process.
pub async fn wait_dead(pid: u32) {
    within(STEP, async {
        while is_alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
