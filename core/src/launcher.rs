//! The threads that fork and exec children: a pool that grows with a burst of connections,
//! shrinks when idle, and never goes below one thread.
//!
//! `posix_spawn` suspends the calling thread until the child has exec'd, so it must not run
//! on a runtime worker. tokio's blocking pool would do, but its idle threads all exit and it
//! panics when a spawn then finds none and the system cannot make one ("OS can't spawn
//! worker thread": a cgroup's `pids.max`, systemd's `TasksMax`, `RLIMIT_NPROC`). Here the
//! first thread is made at start-up ([`start`]) and the last one never exits, so a spawn
//! always has one to run on; a thread that cannot be added only means waiting for a busy
//! one. When even the fork fails, that is the spawn's error, answered like any other.
//!
//! The pool grows as tokio's does, a thread for each spawn that finds none idle, because a
//! burst's spawns then get their share of the CPU beside the accepts and handshakes: with
//! 4,000 connections opened at once, capping it at 16 threads left the programs starting
//! seconds after their upgrades.

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// The most launcher threads: beyond that, spawns wait their turn.
const MAX_THREADS: usize = 256;

/// How long a thread beyond the first waits idle before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Work for a launcher thread: it does the work and returns how to deliver the result, which
/// the thread does once it has counted itself free again (so that a caller who at once asks
/// for more finds it idle).
type Job = Box<dyn FnOnce() -> Reply + Send>;

/// Delivers a job's result.
type Reply = Box<dyn FnOnce() + Send>;

/// The launcher threads and their queue.
struct Pool {
    state: Mutex<State>,
    wake: Condvar,
    /// How long a thread beyond the last waits idle before it exits.
    keep_alive: Duration,
}

/// Everything under the pool's one lock.
#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work that no job has been promised.
    idle: usize,
    /// Wake-ups sent to idle threads and not yet taken (a waiting thread tells one from a
    /// spurious wake-up or a time-out by this).
    woken: usize,
}

/// The process's launcher.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(KEEP_ALIVE))
}

/// Makes the first launcher thread, if there is none yet: at start-up, so that spawning
/// never depends on making a thread later.
pub(crate) fn start() -> io::Result<()> {
    pool().start()
}

/// Hands `work` to a launcher thread at once, before any await: on an idle thread, else on
/// a new one, else (none can be made) on the next to finish. The receiver gets what it
/// returns ([`answer`]); a receiver dropped unawaited drops that on the launcher thread.
/// Fails only if there is no launcher thread and none can be made.
pub(crate) fn submit<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<oneshot::Receiver<T>> {
    pool().submit(work)
}

/// What a [`submit`]ted job returned.
pub(crate) async fn answer<T>(rx: oneshot::Receiver<T>) -> io::Result<T> {
    rx.await.map_err(|_| io::Error::other("the launcher dropped a spawn"))
}

/// A job that does `work` and answers `tx` with what it returns; or, when nobody waits for
/// the answer any more by the time a thread takes it up, does nothing: a spawn queued in a
/// burst for a connection that has gone since starts no program only to kill it.
fn job<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    tx: oneshot::Sender<T>,
) -> Job {
    Box::new(move || -> Reply {
        if tx.is_closed() {
            return Box::new(|| ());
        }
        let result = work();
        Box::new(move || drop(tx.send(result)))
    })
}

impl Pool {
    fn new(keep_alive: Duration) -> Pool {
        Pool { state: Mutex::new(State::default()), wake: Condvar::new(), keep_alive }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the state whole: a panic cannot happen inside one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&'static self) -> io::Result<()> {
        let mut state = self.state();
        if state.threads == 0 {
            self.add_thread(&mut state, true)?;
        }
        Ok(())
    }

    #[cfg(test)]
    async fn run<T: Send + 'static>(
        &'static self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        answer(self.submit(work)?).await
    }

    fn submit<T: Send + 'static>(
        &'static self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<oneshot::Receiver<T>> {
        let (tx, rx) = oneshot::channel();
        let job = job(work, tx);
        {
            let mut state = self.state();
            state.jobs.push_back(job);
            if state.idle > 0 {
                state.idle -= 1;
                state.woken += 1;
                self.wake.notify_one();
            } else if state.threads < MAX_THREADS {
                if let Err(e) = self.add_thread(&mut state, false) {
                    // The system will not give a thread now: a busy one will do, if any.
                    if state.threads == 0 {
                        state.jobs.pop_back();
                        return Err(e);
                    }
                }
            }
        }
        Ok(rx)
    }

    /// Adds a thread, which takes the queue's jobs until it has been idle for [`KEEP_ALIVE`]
    /// (the last thread, never): `idle`, counted as waiting from the start (at start-up);
    /// otherwise it goes for the job that made it.
    fn add_thread(&'static self, state: &mut State, idle: bool) -> io::Result<()> {
        std::thread::Builder::new()
            .name("websocketd-launch".to_owned())
            // A spawn needs little stack: posix_spawn's child borrows it only until exec.
            .stack_size(256 * 1024)
            .spawn(move || self.serve(idle))?;
        state.threads += 1;
        if idle {
            state.idle += 1;
        }
        Ok(())
    }

    /// A thread's life: jobs, one after another, and waits in between, until it has been
    /// idle for [`KEEP_ALIVE`] and is not the last.
    fn serve(&'static self, idle: bool) {
        let mut state = self.state();
        if idle {
            match self.wait(state) {
                Some(next) => state = next,
                None => return,
            }
        }
        loop {
            let Some(job) = state.jobs.pop_front() else {
                state.idle += 1;
                match self.wait(state) {
                    Some(next) => state = next,
                    None => return,
                }
                continue;
            };
            drop(state);
            // A job that panics takes its answer along (the caller sees an error), not the
            // thread.
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            state = self.state();
            let Ok(reply) = reply else { continue };
            if !state.jobs.is_empty() {
                drop(state);
                reply();
                state = self.state();
                continue;
            }
            // Free before the caller hears back: counted idle, then answered.
            state.idle += 1;
            drop(state);
            reply();
            match self.wait(self.state()) {
                Some(next) => state = next,
                None => return,
            }
        }
    }

    /// Waits, counted idle, until a job is promised to this thread (its guard back), or
    /// until it has waited [`KEEP_ALIVE`] and may end, not being the last (`None`).
    fn wait<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Option<MutexGuard<'a, State>> {
        loop {
            if state.woken > 0 {
                state.woken -= 1;
                return Some(state);
            }
            let (next, waited) = self
                .wake
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if waited.timed_out() && state.woken == 0 && state.threads > 1 {
                state.idle -= 1;
                state.threads -= 1;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_answer_nobody_awaits_does_not_do_its_work() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let done = Arc::new(AtomicUsize::new(0));
        let work = |done: &Arc<AtomicUsize>| {
            let done = Arc::clone(done);
            move || done.fetch_add(1, Ordering::SeqCst) + 1
        };
        // Awaited: the work is done and its result answered.
        let (tx, mut rx) = oneshot::channel();
        let reply = job(work(&done), tx)();
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert!(rx.try_recv().is_err(), "answered only by the reply, after the work");
        reply();
        assert_eq!(rx.try_recv().unwrap(), 1);
        // Given up before a thread took the job: nothing is done, nothing answered.
        let (tx, rx) = oneshot::channel::<usize>();
        drop(rx);
        let reply = job(work(&done), tx)();
        reply();
        assert_eq!(done.load(Ordering::SeqCst), 1, "the abandoned job's work did not run");
    }

    #[tokio::test]
    async fn work_runs_on_a_launcher_thread_and_its_result_comes_back() {
        // A pool of its own, so that other tests' spawns do not change its counts.
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(Duration::from_millis(100))));
        pool.start().unwrap();
        let name = pool.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(name.as_deref(), Some("websocketd-launch"));
        assert_eq!(pool.state().threads, 1, "one thread is enough for one job at a time");
        // Many at once, each holding its thread a while: threads are added up to the most,
        // and every job is answered.
        let slow = |i: i32| {
            pool.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                i * 2
            })
        };
        let all = futures_util::future::join_all((0..40).map(slow)).await;
        let got: Vec<i32> = all.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        {
            let state = pool.state();
            assert_eq!(state.threads, 40, "a thread for each job that found none idle");
            // Everything is done: every thread is idle again, no job waits, no wake-up is owed.
            assert_eq!((state.idle, state.woken, state.jobs.len()), (40, 0, 0));
        }
        // Idle, the pool shrinks back, but never below one thread.
        let shrunk = async {
            while pool.state().threads > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), shrunk).await.expect("the pool shrinks");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counts = |s: &State| (s.threads, s.idle);
        assert_eq!(counts(&pool.state()), (1, 1));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "the last thread still serves");
    }
}
