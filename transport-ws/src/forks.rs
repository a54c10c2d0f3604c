//! `--maxforks` and `--maxforksperip`: how many programs may run at once, WebSocket sessions
//! and CGI scripts together, in all and for one client address. Each program holds its
//! [`Slot`] from the moment its request is accepted until its process is reaped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;
pub use websocketd_core::Slot;

use crate::limits::ClientKey;

/// The slots, shared by the endpoint and CGI.
#[derive(Debug, Clone)]
pub struct Forks {
    server: Option<Arc<Semaphore>>,
    clients: Option<Arc<PerClient>>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every `--maxforks` slot is taken.
    Server,
    /// This client's address (or IPv6 /64) has `--maxforksperip` programs running.
    Client(ClientKey),
}

/// The slots of each client address that runs programs.
#[derive(Debug)]
struct PerClient {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    slots: HashMap<ClientKey, Arc<Semaphore>>,
    /// At this many entries, those of addresses with nothing running are let go.
    prune_at: usize,
}

/// The table is pruned no earlier than at this many addresses.
const PRUNE_MIN: usize = 64;

impl Forks {
    /// At most `max` programs at once, and at most `per_client` for one client address; 0:
    /// no such limit.
    pub fn new(max: usize, per_client: usize) -> Forks {
        let clients = (per_client > 0).then(|| {
            let table = Table { slots: HashMap::new(), prune_at: PRUNE_MIN };
            Arc::new(PerClient { max: per_client, table: Mutex::new(table) })
        });
        Forks { server: (max > 0).then(|| Arc::new(Semaphore::new(max))), clients }
    }

    /// Whether every `--maxforks` slot is taken (never, without a limit).
    pub fn is_full(&self) -> bool {
        self.server.as_ref().is_some_and(|forks| forks.available_permits() == 0)
    }

    /// A slot for a program of the client at `ip` (`None`: a unix-socket peer no trusted
    /// proxy named, which `--maxforksperip` does not count), or why there is none.
    pub fn take(&self, ip: Option<IpAddr>) -> Result<Slot, Full> {
        let server = match &self.server {
            None => None,
            Some(forks) => Some(Arc::clone(forks).try_acquire_owned().map_err(|_| Full::Server)?),
        };
        let client = match (&self.clients, ip) {
            (Some(clients), Some(ip)) => Some(clients.take(ClientKey::of(ip))?),
            _ => None,
        };
        Ok(Slot::new(server, client))
    }
}

impl PerClient {
    fn take(&self, key: ClientKey) -> Result<tokio::sync::OwnedSemaphorePermit, Full> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if !table.slots.contains_key(&key) && table.slots.len() >= table.prune_at {
            // An address's semaphore is shared only with its permits: alone, nothing runs.
            table.slots.retain(|_, slots| Arc::strong_count(slots) > 1);
            table.prune_at = (table.slots.len() * 2).max(PRUNE_MIN);
        }
        let slots = table.slots.entry(key).or_insert_with(|| Arc::new(Semaphore::new(self.max)));
        Arc::clone(slots).try_acquire_owned().map_err(|_| Full::Client(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn each_address_has_its_own_slots_and_ipv6_counts_by_64() {
        let forks = Forks::new(0, 2);
        let a = [forks.take(ip("127.0.0.2")).unwrap(), forks.take(ip("127.0.0.2")).unwrap()];
        assert!(matches!(forks.take(ip("127.0.0.2")), Err(Full::Client(_))));
        let _b = forks.take(ip("127.0.0.3")).unwrap();
        drop(a);
        let _again = forks.take(ip("127.0.0.2")).unwrap();
        let _v6 = [forks.take(ip("2001:db8::1")).unwrap(), forks.take(ip("2001:db8::2")).unwrap()];
        assert!(matches!(forks.take(ip("2001:db8::ffff:1")), Err(Full::Client(_))));
        let _other = forks.take(ip("2001:db8:0:1::1")).unwrap();
        // A unix-socket peer with no address is not counted per client.
        let _unix =
            [forks.take(None).unwrap(), forks.take(None).unwrap(), forks.take(None).unwrap()];
    }

    #[test]
    fn the_server_limit_comes_first_and_a_refusal_gives_its_slot_back() {
        let forks = Forks::new(2, 1);
        let _a = forks.take(ip("127.0.0.2")).unwrap();
        assert_eq!(
            forks.take(ip("127.0.0.2")).unwrap_err(),
            Full::Client(ClientKey::of("127.0.0.2".parse().unwrap()))
        );
        let _b = forks.take(ip("127.0.0.3")).unwrap();
        assert!(forks.is_full());
        assert_eq!(forks.take(ip("127.0.0.4")).unwrap_err(), Full::Server);
    }

    #[test]
    fn addresses_with_nothing_running_are_let_go() {
        let forks = Forks::new(0, 1);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            drop(forks.take(Some(ip)).unwrap());
        }
        let held: Vec<Slot> = (0..10u32)
            .map(|i| {
                forks.take(Some(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)))).unwrap()
            })
            .collect();
        let len = forks.clients.as_ref().unwrap().table.lock().unwrap().slots.len();
        assert!(len <= 2 * PRUNE_MIN, "{len} addresses kept");
        drop(held);
    }
}
