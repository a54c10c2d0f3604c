//! The server's way out. One [`Shutdown`] is shared by every listener, connection and
//! session: when it begins, listeners stop accepting, idle HTTP connections close, and every
//! session tells its client Close 1001 (going away) while its child goes down the termination
//! ladder. The server then waits for [`Shutdown::finished`], within its own bound.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The signal every part of the server watches, and the tasks still to finish.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown not yet begun.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Begins the shutdown: everything watching [`begun`](Shutdown::begun) wakes up.
    pub fn begin(&self) {
        self.tracker.close();
        self.token.cancel();
    }

    /// Whether the shutdown has begun.
    pub fn is_begun(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has begun (at once if it has).
    pub fn begun(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Spawns a task the shutdown waits for: a connection or a session.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// How many of those tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Resolves once the shutdown has begun and every spawned task has ended.
    pub async fn finished(&self) {
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn finished_waits_for_every_spawned_task_after_begin() {
        let shutdown = Shutdown::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = shutdown.clone();
        shutdown.spawn(async move {
            watcher.begun().await;
            let _ = rx.await;
        });
        assert_eq!(shutdown.running(), 1);
        // Not begun: not finished, even with a task that could end.
        let early = tokio::time::timeout(Duration::from_millis(50), shutdown.finished()).await;
        assert!(early.is_err());
        shutdown.begin();
        assert!(shutdown.is_begun());
        let pending = tokio::time::timeout(Duration::from_millis(50), shutdown.finished()).await;
        assert!(pending.is_err(), "the task still waits for its channel");
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), shutdown.finished()).await.unwrap();
        assert_eq!(shutdown.running(), 0);
    }
}
