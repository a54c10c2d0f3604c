//! The threads that fork and exec children, which never go away.
//!
//! `posix_spawn` suspends the calling thread until the child has exec'd, so it must not run
//! on a runtime worker. tokio's blocking pool would do, but it lets idle threads exit and
//! panics when a spawn finds none and the system cannot make one ("OS can't spawn worker
//! thread": a cgroup's `pids.max`, systemd's `TasksMax`, `RLIMIT_NPROC`). Here the first
//! thread is made at start-up ([`start`]) and every thread stays, so a spawn always has one
//! to run on; one that cannot be added only means waiting for a busy one. When even the
//! fork fails, that is the spawn's error, answered like any other.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::oneshot;

/// The most launcher threads: beyond that, spawns wait their turn.
const MAX_THREADS: usize = 16;

/// Work for a launcher thread.
type Job = Box<dyn FnOnce() + Send>;

/// The launcher threads' queue.
struct Pool {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    threads: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel();
        Pool {
            jobs: tx,
            queue: Arc::new(Mutex::new(rx)),
            threads: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    })
}

/// Makes the first launcher thread, if there is none yet: at start-up, so that spawning
/// never depends on making a thread later.
pub(crate) fn start() -> io::Result<()> {
    let pool = pool();
    if pool.threads.load(Ordering::SeqCst) > 0 {
        return Ok(());
    }
    add_thread(pool)
}

/// Runs `work` on a launcher thread and returns what it returns. Fails only if there is no
/// launcher thread and none can be made.
pub(crate) async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let pool = pool();
    if pool.idle.load(Ordering::SeqCst) == 0 && pool.threads.load(Ordering::SeqCst) < MAX_THREADS {
        // Busy or none yet: one more, if the system allows; if not, a busy one will do.
        if let Err(e) = add_thread(pool) {
            if pool.threads.load(Ordering::SeqCst) == 0 {
                return Err(e);
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    if pool.jobs.send(job).is_err() {
        return Err(io::Error::other("the launcher is gone"));
    }
    rx.await.map_err(|_| io::Error::other("the launcher dropped a spawn"))
}

/// Adds a launcher thread, which serves the queue for the rest of the process's life.
fn add_thread(pool: &'static Pool) -> io::Result<()> {
    let queue = Arc::clone(&pool.queue);
    let idle = Arc::clone(&pool.idle);
    let n = pool.threads.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name(format!("websocketd-launch-{n}"))
        // A spawn needs little stack: posix_spawn's child borrows it only until exec.
        .stack_size(256 * 1024)
        .spawn(move || {
            loop {
                idle.fetch_add(1, Ordering::SeqCst);
                let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                idle.fetch_sub(1, Ordering::SeqCst);
                match job {
                    // A job that panics takes its answer along (the caller sees an error), not
                    // the thread.
                    Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                    Err(_) => return,
                }
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            pool.threads.fetch_sub(1, Ordering::SeqCst);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_launcher_thread_and_its_result_comes_back() {
        start().unwrap();
        let name = run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("websocketd-launch-")));
        // Many at once: all answered, whether threads were added or not.
        let all = futures_util::future::join_all((0..40).map(|i| run(move || i * 2))).await;
        let got: Vec<i32> = all.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        assert!(pool().threads.load(Ordering::SeqCst) <= MAX_THREADS);
    }
}
