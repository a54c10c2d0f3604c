//! Reaping children without a descriptor apiece.
//!
//! tokio's process support opens a pidfd for every child on Linux, a fifth descriptor per
//! session beside the socket and the three pipes; with thousands of sessions that is what
//! runs a server into its descriptor limit. Here one SIGCHLD listener serves every child:
//! on each signal it asks the kernel which children have exited (`waitid` with `WNOWAIT`,
//! so nothing is reaped blindly), reaps them one by one, and hands each status to whoever
//! waits for it.
//!
//! A child can exit before its spawner has registered it. While any spawn is under way, an
//! exited child nobody has registered is left alone (it is that spawn's, or one the C
//! library reaps itself when exec fails), and every spawner looks again once it has
//! registered its child. With no spawn under way, such a child is nobody's and is reaped so
//! that it is no zombie. Spawns themselves run in parallel: the lock covers only the table.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// Who waits for which child.
type Waiting = HashMap<u32, oneshot::Sender<ExitStatus>>;

fn waiting() -> MutexGuard<'static, Waiting> {
    static WAITING: OnceLock<Mutex<Waiting>> = OnceLock::new();
    // Every critical section is a single map operation or a spawn: never left half-done.
    WAITING.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns `cmd` and registers the child; the receiver gets its exit status once reaped.
pub(crate) fn spawn(
    cmd: &mut std::process::Command,
) -> io::Result<(std::process::Child, oneshot::Receiver<ExitStatus>)> {
    listen()?;
    let (tx, rx) = oneshot::channel();
    SPAWNING.fetch_add(1, Ordering::SeqCst);
    let spawned = cmd.spawn();
    if let Ok(child) = &spawned {
        waiting().insert(child.id(), tx);
    }
    SPAWNING.fetch_sub(1, Ordering::SeqCst);
    // Catch up on an exit the reaper left alone while spawns were under way. The reaper
    // defers only while holding the table lock, so before this spawn's insert and decrement:
    // whichever spawn decrements next sees the flag.
    if DEFERRED.swap(false, Ordering::SeqCst) {
        reap_exited();
    }
    Ok((spawned?, rx))
}

/// How many spawns are under way.
static SPAWNING: AtomicUsize = AtomicUsize::new(0);
/// Whether the reaper left an exit for a spawner to pick up.
static DEFERRED: AtomicBool = AtomicBool::new(false);

/// Starts the SIGCHLD listener once, on a thread of its own so that it does not depend on
/// (or die with) the runtime of whoever spawned first. A failure is not kept: the next call
/// tries again.
pub(crate) fn listen() -> io::Result<()> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *started {
        return Ok(());
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new().name("websocketd-reaper".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
        };
        runtime.block_on(async move {
            let mut sigchld = match signal(SignalKind::child()) {
                Ok(s) => s,
                Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
            };
            let _ = ready_tx.send(Ok(()));
            // A signal may stand for several exits, so each one reaps all there are.
            loop {
                reap_exited();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
    });
    let ready = match thread {
        Ok(_) => ready_rx.recv().unwrap_or_else(|_| Err("reaper thread ended".into())),
        Err(e) => Err(e.to_string()),
    };
    match ready {
        Ok(()) => {
            *started = true;
            Ok(())
        }
        Err(e) => Err(io::Error::other(format!("cannot watch children: {e}"))),
    }
}

/// Reaps every child that has exited and tells its waiter.
fn reap_exited() {
    let mut waiting = waiting();
    loop {
        let exited =
            waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT);
        let pid = match exited {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => pid,
            // Nothing has exited (StillAlive), no children (ECHILD), or an interruption.
            Ok(_) | Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let registered = u32::try_from(pid.as_raw()).is_ok_and(|p| waiting.contains_key(&p));
        if !registered {
            DEFERRED.store(true, Ordering::SeqCst);
            if SPAWNING.load(Ordering::SeqCst) > 0 {
                // Perhaps a spawn's own child, not registered yet: its spawner looks again.
                return;
            }
            DEFERRED.store(false, Ordering::SeqCst);
        }
        let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => ExitStatus::from_raw((code & 0xff) << 8),
            Ok(WaitStatus::Signaled(_, sig, core)) => {
                ExitStatus::from_raw(sig as i32 | if core { 0x80 } else { 0 })
            }
            _ => continue,
        };
        let Ok(raw) = u32::try_from(pid.as_raw()) else { continue };
        if let Some(tx) = waiting.remove(&raw) {
            let _ = tx.send(status);
        }
    }
}
