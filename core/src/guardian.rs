//! The server's death takes its programs with it, however it dies.
//!
//! At start-up the server starts a second copy of its own binary as the guardian (its
//! `argv[0]` is [`ARGV0`]), in a process group of its own, reading a pipe from the server:
//! `+PGID` when a program's group starts, `-PGID` when the server is done with it. When the
//! server ends, the kernel closes its end of the pipe, whatever ended it (SIGKILL and the OOM
//! killer too). The guardian then sends SIGTERM to every group still listed, SIGKILL
//! [`GRACE`] later to what is left of them, and exits. A normal shutdown has stopped every
//! program already, so the guardian finds its list empty and just exits.
//!
//! Why not the kernel's parent-death signal (`PR_SET_PDEATHSIG`): it needs code between fork
//! and exec (`unsafe`, and it makes the standard library fork instead of `posix_spawn`, which
//! costs every connection), it reaches only the direct child (a program's own children would
//! live on), and Linux sends it when the *thread* that spawned the child exits, which the
//! launcher's idle threads do. The guardian kills whole groups, and only groups of the
//! server's session: a group id that was reused by then for something else is left alone.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The guardian's `argv[0]`, by which the binary knows it is to be the guardian.
pub const ARGV0: &str = "websocketd-guardian";

/// How long the programs get between SIGTERM and SIGKILL once the server is gone.
pub const GRACE: Duration = Duration::from_millis(300);

/// The server's end of the pipe.
struct Link {
    pipe: std::fs::File,
    /// Whether an update could not be written (warned once).
    broken: AtomicBool,
}

static LINK: OnceLock<Link> = OnceLock::new();

/// Starts the guardian (once): the server's own binary, from `/proc/self/exe` so that a
/// binary replaced on disk since (an upgrade) still starts as itself.
pub fn start() -> io::Result<()> {
    if LINK.get().is_some() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0(ARGV0)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own group: a Ctrl-C at the terminal, or a signal to the server's group, does
        // not take it first.
        .process_group(0);
    // Reaped like a program, should it end first; its status is of no interest.
    let (mut child, _exit) = crate::reaper::spawn(&mut cmd)?;
    let stdin: OwnedFd = child.stdin.take().ok_or_else(|| io::Error::other("no pipe"))?.into();
    // Written from runtime threads: an update never waits for the guardian to read.
    fcntl(&stdin, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    let link = Link { pipe: std::fs::File::from(stdin), broken: AtomicBool::new(false) };
    let _ = LINK.set(link);
    Ok(())
}

/// The group `pgid` of a program has started.
pub(crate) fn watch(pgid: u32) {
    send(b'+', pgid);
}

/// The server is done with the group `pgid` (its program is reaped, the group ended).
pub(crate) fn release(pgid: u32) {
    send(b'-', pgid);
}

fn send(op: u8, pgid: u32) {
    let Some(link) = LINK.get() else { return };
    let mut line = Vec::with_capacity(12);
    line.push(op);
    line.extend_from_slice(pgid.to_string().as_bytes());
    line.push(b'\n');
    // Shorter than PIPE_BUF: written whole or not at all.
    if (&link.pipe).write(&line).is_err() && !link.broken.swap(true, Ordering::Relaxed) {
        tracing::warn!(target: "server", "The guardian is not listening: programs may outlive a crash of the server");
    }
}

/// The guardian's life: reads the server's updates until the server is gone, then ends
/// the groups still listed. Returns the process's exit code.
pub fn serve() -> u8 {
    let mut groups = HashSet::new();
    for line in io::stdin().lock().split(b'\n') {
        let Ok(line) = line else { break };
        let Some((&op, pgid)) = line.split_first() else { continue };
        let Some(pgid) = std::str::from_utf8(pgid).ok().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        match op {
            b'+' => groups.insert(pgid),
            b'-' => groups.remove(&pgid),
            _ => continue,
        };
    }
    if groups.is_empty() {
        return 0;
    }
    let Ok(session) = nix::unistd::getsid(None) else { return 1 };
    let ours = |groups: &HashSet<u32>| {
        let live = crate::groups::live_groups_of(Some(session.as_raw()));
        groups.iter().copied().filter(|g| live.contains(g)).collect::<Vec<u32>>()
    };
    let kill = |listed: &[u32], signal: Signal| {
        for &pgid in listed {
            if let Ok(raw) = i32::try_from(pgid) {
                let _ = killpg(Pid::from_raw(raw), signal);
            }
        }
    };
    kill(&ours(&groups), Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    loop {
        let left = ours(&groups);
        if left.is_empty() {
            return 0;
        }
        if Instant::now() >= deadline {
            kill(&left, Signal::SIGKILL);
            return 0;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
