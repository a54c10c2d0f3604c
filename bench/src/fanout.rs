//! The shared-session scenario (`--broadcast`): one program printing stamped lines as fast as
//! it can, many clients receiving them all.
//!
//! The program is this benchmark's own executable, started as `--stamp-lines N`: it waits
//! for one line on stdin (so that every client is attached first), then prints N 64-byte
//! lines, each starting with the nanoseconds since the epoch at which it was printed.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::load::{self, Dial};

/// The flag that makes this executable the stamping program.
pub const STAMP_FLAG: &str = "--stamp-lines";

/// Every how many messages a client notes a delay (to keep the samples few).
const SAMPLE_EVERY: u64 = 16;

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The stamping program: after one line on stdin, `count` lines of 63 bytes and a newline,
/// `burst` at a time; with `every`, one burst per `every` (a steady rate), else as fast as it
/// can.
pub fn stamp_lines(count: u64, burst: u64, every: Option<Duration>) -> std::io::Result<()> {
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let start = Instant::now();
    let burst = burst.max(1);
    for i in 0..count {
        writeln!(out, "{:020} {:042}", now_ns(), i)?;
        if i % burst == burst - 1 {
            out.flush()?;
            if let Some(every) = every {
                let next = start + every * u32::try_from(i / burst + 1).unwrap_or(u32::MAX);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
    }
    out.flush()
}

/// What the clients received.
#[derive(Debug)]
pub struct Fanout {
    /// Messages received, summed over clients, per second from the start signal to the last.
    pub deliveries: f64,
    /// Print-to-receipt delays (sampled), in milliseconds.
    pub delays: Vec<f64>,
    /// Messages received, summed over clients.
    pub received: u64,
    /// Messages that did not arrive, summed over clients.
    pub lost: u64,
    /// The server's resident memory per client while all were attached, in KiB.
    pub rss_per_client: f64,
}

/// Connects `clients` clients, starts the program, and counts what each receives until all
/// have `lines` or none has received anything for a second.
pub async fn run(
    to: &Dial,
    clients: usize,
    lines: u64,
    rss_kib: impl Fn() -> u64,
) -> Result<Fanout> {
    let base = rss_kib();
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        sockets.push(load::connect(to, "/fanout").await?);
    }
    // Every client attached before the program starts (the server attaches right after the
    // handshake; a benchmark, not a test: a bounded settle only costs time).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_per_client = rss_kib().saturating_sub(base) as f64 / clients as f64;
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let mut first = sockets.remove(0);
    let started = Instant::now();
    // With its newline: websocat passes a message on as it is, websocketd adds one.
    first.send(Message::text("go\n")).await?;
    sockets.insert(0, first);
    let mut tasks = Vec::with_capacity(clients);
    for mut ws in sockets {
        let (received, last) = (Arc::clone(&received), Arc::clone(&last));
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::new();
            let mut got = 0u64;
            while got < lines {
                let next = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
                let Ok(Some(Ok(message))) = next else { break };
                if let Message::Text(text) = &message {
                    got += 1;
                    if got % SAMPLE_EVERY == 0 {
                        let stamp: u128 = text.get(..20).and_then(|s| s.parse().ok()).unwrap_or(0);
                        delays.push(now_ns().saturating_sub(stamp) as f64 / 1e6);
                    }
                }
            }
            received.fetch_add(got, Ordering::Relaxed);
            *last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            (got, delays)
        }));
    }
    let mut delays = Vec::new();
    let mut lost = 0;
    for task in tasks {
        let (got, mut d) = task.await?;
        lost += lines - got;
        delays.append(&mut d);
    }
    let end = *last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let took = end.duration_since(started).as_secs_f64();
    let received = received.load(Ordering::Relaxed);
    Ok(Fanout {
        deliveries: received as f64 / took.max(1e-9),
        delays,
        received,
        lost,
        rss_per_client,
    })
}
