//! Limits per client address: who a client is for them ([`ClientKey`]: its address after
//! `--trustedproxy`, an IPv6 address grouped by its /64, which one host or one customer of a
//! provider usually has whole), and `--ratelimit`, how often one may ask for a WebSocket.
//! (`--maxforksperip`, how many programs one may run at once, is in [`forks`](crate::forks).)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A client address as the limits count it: an IPv4 address, or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as the IPv4 one).
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// `--ratelimit` and `--rateburst`: a token bucket for every client address. Each WebSocket
/// request takes a token; a bucket holds at most `burst` and gains `rate` a second.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    each: HashMap<ClientKey, Bucket>,
    /// Shared by the addresses that find the table full of busy ones: they are limited
    /// together rather than not at all.
    overflow: Bucket,
    /// When full buckets were last let go.
    pruned: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Most addresses the table keeps: about 3 MiB.
const MAX_ADDRESSES: usize = 65_536;

impl RateLimit {
    /// `rate` requests a second per address (more than 0), in bursts of up to `burst` (at
    /// least 1).
    pub fn new(rate: f64, burst: u32) -> RateLimit {
        let burst = f64::from(burst.max(1));
        let now = Instant::now();
        let buckets = Buckets {
            each: HashMap::new(),
            overflow: Bucket { tokens: burst, at: now },
            pruned: now,
        };
        RateLimit { rate, burst, buckets: Mutex::new(buckets) }
    }

    /// Takes a token for a request of the client at `ip`, or says how long until there is one
    /// (whole seconds, at least 1: `Retry-After`). A client without an address (a unix-socket
    /// peer no trusted proxy named) is not limited.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        let key = ClientKey::of(ip);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Buckets { each, overflow, pruned } = &mut *buckets;
        if each.len() >= MAX_ADDRESSES
            && !each.contains_key(&key)
            && now.duration_since(*pruned) >= Duration::from_secs(1)
        {
            // A bucket that has filled up again is as good as none.
            let full = Duration::from_secs_f64(self.burst / self.rate);
            each.retain(|_, bucket| now.duration_since(bucket.at) < full);
            *pruned = now;
        }
        let bucket = if each.len() < MAX_ADDRESSES || each.contains_key(&key) {
            each.entry(key).or_insert(Bucket { tokens: self.burst, at: now })
        } else {
            overflow
        };
        let gained = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + gained).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err((wait.ceil() as u64).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientKey::of("2001:db8:1:2:3:4:5:6".parse().unwrap());
        assert_eq!(a, ClientKey::of("2001:db8:1:2::9".parse().unwrap()));
        assert_ne!(a, ClientKey::of("2001:db8:1:3::9".parse().unwrap()));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientKey::of("::ffff:127.0.0.2".parse().unwrap());
        assert_eq!(mapped, ClientKey::of("127.0.0.2".parse().unwrap()));
        assert_eq!(mapped.to_string(), "127.0.0.2");
    }

    #[test]
    fn a_burst_is_allowed_then_one_request_per_interval() {
        let limit = RateLimit::new(1.0, 3);
        for _ in 0..3 {
            assert_eq!(limit.check(ip("127.0.0.2")), Ok(()));
        }
        assert_eq!(limit.check(ip("127.0.0.2")), Err(1));
        // Another address has its own bucket; one without an address is not limited.
        assert_eq!(limit.check(ip("127.0.0.3")), Ok(()));
        for _ in 0..10 {
            assert_eq!(limit.check(None), Ok(()));
        }
        let slow = RateLimit::new(0.1, 1);
        assert_eq!(slow.check(ip("127.0.0.2")), Ok(()));
        assert_eq!(slow.check(ip("127.0.0.2")), Err(10));
    }

    #[test]
    fn the_table_is_bounded_and_busy_strangers_share_a_bucket() {
        let limit = RateLimit::new(0.001, 1);
        for i in 0..MAX_ADDRESSES as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(limit.check(Some(ip)), Ok(()));
        }
        assert_eq!(limit.check(ip("192.0.2.1")), Ok(()), "the overflow bucket's token");
        assert!(limit.check(ip("192.0.2.2")).is_err(), "shared with the first stranger");
        assert_eq!(limit.buckets.lock().unwrap().each.len(), MAX_ADDRESSES);
    }
}
