//! `--maxforks`: how many programs may run at once, WebSocket sessions and CGI scripts
//! together. Each holds a slot from the moment its request is accepted until its process is
//! reaped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots, shared by the endpoint and CGI.
#[derive(Debug, Clone)]
pub struct Forks(Option<Arc<Semaphore>>);

/// A slot: `None` when there is no limit.
pub type Slot = Option<OwnedSemaphorePermit>;

impl Forks {
    /// At most `max` programs at once; 0: no limit.
    pub fn new(max: usize) -> Forks {
        Forks((max > 0).then(|| Arc::new(Semaphore::new(max))))
    }

    /// Whether every slot is taken (never, without a limit).
    pub fn is_full(&self) -> bool {
        self.0.as_ref().is_some_and(|forks| forks.available_permits() == 0)
    }

    /// A slot, or `None` when none is left.
    pub fn take(&self) -> Option<Slot> {
        match &self.0 {
            None => Some(None),
            Some(forks) => Arc::clone(forks).try_acquire_owned().ok().map(Some),
        }
    }
}
