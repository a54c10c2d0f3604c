//! What a running program holds for its whole life, until it is reaped: its `--maxforks`
//! slot and its client's `--maxforksperip` slot. Dropping it frees both.

use tokio::sync::OwnedSemaphorePermit;

/// A running program's slots; either is absent when there is no such limit.
#[derive(Debug, Default)]
pub struct Slot {
    _server: Option<OwnedSemaphorePermit>,
    /// Boxed: there is one only with `--maxforksperip`, and every session holds a slot.
    _client: Option<Box<OwnedSemaphorePermit>>,
}

impl Slot {
    /// Holds the server's slot (`--maxforks`) and the client's (`--maxforksperip`).
    pub fn new(server: Option<OwnedSemaphorePermit>, client: Option<OwnedSemaphorePermit>) -> Slot {
        Slot { _server: server, _client: client.map(Box::new) }
    }
}
