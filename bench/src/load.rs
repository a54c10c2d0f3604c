//! The load generator: WebSocket clients (tokio-tungstenite) that drive one scenario each
//! and report what they measured. Writes are batched (many frames per flush) and reads run
//! in their own task, so the client is never the bottleneck (see `ceiling` in the report).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use tokio_util::either::Either;

/// A client connection: plain, or TLS.
pub type Ws = WebSocketStream<Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>>;

/// Where a client connects, and whether over TLS (with this client configuration).
#[derive(Debug, Clone)]
pub struct Dial {
    /// The server's address.
    pub addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
}

impl Dial {
    /// Plain `ws://`.
    pub fn plain(addr: SocketAddr) -> Dial {
        Dial { addr, tls: None }
    }

    /// `wss://`, with `config`: its session cache, if any, shared by every connection.
    pub fn tls(addr: SocketAddr, config: Arc<ClientConfig>) -> Dial {
        Dial { addr, tls: Some(config) }
    }

    /// The TLS client configuration, for `wss://`.
    pub fn tls_config(&self) -> Option<Arc<ClientConfig>> {
        self.tls.clone()
    }
}

/// Opens a WebSocket to `path`.
pub async fn connect(to: &Dial, path: &str) -> Result<Ws> {
    let addr = to.addr;
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
        .read_buffer_size(128 << 10)
        .write_buffer_size(128 << 10);
    let (stream, url) = match &to.tls {
        None => (Either::Left(tcp), format!("ws://{addr}{path}")),
        Some(tls) => {
            let name = rustls_pki_types::ServerName::from(addr.ip());
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
            let stream = connector.connect(name, tcp).await.context("TLS handshake")?;
            crate::tls::note(stream.get_ref().1);
            (Either::Right(stream), format!("wss://{addr}{path}"))
        }
    };
    let (ws, _) = client_async_with_config(url, stream, Some(config))
        .await
        .with_context(|| format!("handshake with {addr}{path}"))?;
    Ok(ws)
}

/// Whether `got` is the echo of the line `sent`: websocat keeps the line's `\n`, websocketd
/// does not.
pub fn is_echo(got: &str, sent: &str) -> bool {
    got.strip_suffix('\n').unwrap_or(got) == sent
}

/// A 64-byte text message.
pub fn line64() -> Message {
    Message::text("x".repeat(64))
}

/// Runs `tasks` loops side by side for `time`, each calling `round` over and over; a round
/// returns the time it measured. Returns rounds per second and every round's time.
async fn rounds<F, Fut>(tasks: usize, time: Duration, round: F) -> Result<(f64, Vec<Duration>)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Duration>> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + time;
    let mut loops = Vec::new();
    for _ in 0..tasks {
        let round = round.clone();
        loops.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < deadline {
                times.push(round().await?);
            }
            anyhow::Ok(times)
        }));
    }
    let mut times = Vec::new();
    for l in loops {
        times.extend(l.await??);
    }
    Ok((times.len() as f64 / start.elapsed().as_secs_f64(), times))
}

/// Connections per second with `clients` clients for `time`: each connection upgrades,
/// sends one message, waits for its echo and closes. Also returns, per connection, the time
/// from connecting to the echo (time to first message).
pub async fn connection_rate(
    to: &Dial,
    clients: usize,
    time: Duration,
) -> Result<(f64, Vec<Duration>)> {
    let to = to.clone();
    rounds(clients, time, move || {
        let to = to.clone();
        async move {
            let t0 = Instant::now();
            let mut ws = connect(&to, "/").await?;
            ws.send(Message::text("hello")).await?;
            let first = match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if is_echo(&t, "hello") => t0.elapsed(),
                other => bail!("no echo: {other:?}"),
            };
            let _ = ws.close(None).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            Ok(first)
        }
    })
    .await
}

/// Times from connecting to a finished handshake, one connection at a time for `time`.
pub async fn handshakes(addr: SocketAddr, time: Duration) -> Result<Vec<Duration>> {
    let (_, times) = rounds(1, time, move || async move {
        let t0 = Instant::now();
        let ws = connect(&Dial::plain(addr), "/").await?;
        let took = t0.elapsed();
        drop(ws);
        Ok(took)
    })
    .await?;
    Ok(times)
}

/// What an echo run counts and bounds: messages, or bytes (an echo may come back cut
/// differently from how it was sent).
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Every data message is one.
    Messages,
    /// Every byte of a data message is one.
    Bytes,
}

impl Unit {
    fn of(self, m: &Message) -> usize {
        match self {
            Unit::Messages => 1,
            Unit::Bytes => m.len(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Messages => "messages",
            Unit::Bytes => "bytes",
        }
    }
}

/// Units per second echoed on one connection: `msg` sent over and over, pipelined, with at
/// most `window` units in flight. Messages are queued and flushed only when the window is
/// full, as a busy client would batch them.
pub async fn echo(ws: Ws, msg: Message, unit: Unit, window: usize, time: Duration) -> Result<f64> {
    let (mut tx, mut rx) = ws.split();
    let credit = Arc::new(Semaphore::new(window));
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + time;
    let reader = {
        let credit = Arc::clone(&credit);
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if m.is_text() || m.is_binary() {
                    let n = unit.of(&m);
                    received.fetch_add(n as u64, Ordering::Relaxed);
                    credit.add_permits(n);
                }
            }
        })
    };
    let need = u32::try_from(unit.of(&msg))?;
    while Instant::now() < deadline {
        match credit.try_acquire_many(need) {
            Ok(permit) => permit.forget(),
            Err(_) => {
                tx.flush().await?;
                match tokio::time::timeout(Duration::from_secs(10), credit.acquire_many(need)).await
                {
                    Ok(Ok(permit)) => permit.forget(),
                    _ => bail!("echo stalled with {window} {} in flight", unit.name()),
                }
            }
        }
        tx.feed(msg.clone()).await?;
    }
    tx.flush().await?;
    let count = received.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    reader.abort();
    Ok(count as f64 / elapsed)
}

/// A binary message of `size` bytes.
pub fn binary(size: usize) -> Message {
    Message::Binary(Bytes::from(vec![b'b'; size]))
}

/// Bytes per second sent in binary messages of `chunk` bytes to a child that discards them.
pub async fn upload(mut ws: Ws, chunk: usize, time: Duration) -> Result<f64> {
    let payload = Bytes::from(vec![b'u'; chunk]);
    let start = Instant::now();
    let deadline = start + time;
    let mut sent = 0u64;
    while Instant::now() < deadline {
        for _ in 0..16 {
            ws.feed(Message::Binary(payload.clone())).await?;
            sent += chunk as u64;
        }
    }
    ws.flush().await?;
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}

/// Messages and bytes per second read from a child that writes as fast as it can.
pub async fn download(mut ws: Ws, time: Duration) -> Result<(f64, f64)> {
    let start = Instant::now();
    let deadline = start + time;
    let (mut messages, mut bytes) = (0u64, 0u64);
    while Instant::now() < deadline {
        // Check the clock every so often, not for every message.
        for _ in 0..256 {
            match ws.next().await {
                Some(Ok(m)) => {
                    messages += 1;
                    bytes += m.len() as u64;
                }
                other => bail!("stream ended: {other:?}"),
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((messages as f64 / elapsed, bytes as f64 / elapsed))
}

/// Sends `count` 64-byte messages without waiting and reads them all back. Returns the time
/// taken, or an error if they do not all come back within `limit`.
pub async fn deep_pipeline(ws: Ws, count: usize, limit: Duration) -> Result<Duration> {
    let (mut tx, mut rx) = ws.split();
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while got < count {
            match rx.next().await {
                Some(Ok(m)) if m.is_text() => got += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        got
    });
    let writer = async move {
        for _ in 0..count {
            tx.feed(line64()).await?;
        }
        tx.flush().await?;
        anyhow::Ok(tx)
    };
    let outcome = tokio::time::timeout(limit, async {
        let tx = writer.await?;
        let got = reader.await?;
        anyhow::Ok((tx, got))
    })
    .await;
    match outcome {
        Ok(Ok((_tx, got))) if got == count => Ok(start.elapsed()),
        Ok(Ok((_, got))) => bail!("connection ended after {got} of {count} echoes"),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!("hung: not all {count} echoes back within {limit:?}"),
    }
}

/// Round-trip times of single echoes on `probe` for `time`, back to back.
pub async fn round_trips(probe: Ws, time: Duration) -> Result<Vec<Duration>> {
    paced_round_trips(probe, Duration::ZERO, time).await
}

/// Echoes at a fixed pace until aborted: `per_tick` 64-byte lines every `tick`, first after
/// `offset` (so that many connections spread their ticks), counting what comes back.
pub async fn paced_echo(
    ws: Ws,
    per_tick: usize,
    tick: Duration,
    offset: Duration,
    echoed: Arc<AtomicU64>,
) -> Result<()> {
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if m.is_text() {
                echoed.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = async {
        loop {
            ticks.tick().await;
            for _ in 0..per_tick {
                tx.feed(line64()).await?;
            }
            tx.flush().await?;
        }
    }
    .await;
    reader.abort();
    outcome
}

/// Round trips of single echoes on `probe` for `time`, one every `every` at most (a probe
/// that takes longer is followed at once by the next).
pub async fn paced_round_trips(
    mut probe: Ws,
    every: Duration,
    time: Duration,
) -> Result<Vec<Duration>> {
    let deadline = Instant::now() + time;
    let mut rtts = Vec::new();
    let msg = line64();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        probe.send(msg.clone()).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), probe.next()).await {
                Ok(Some(Ok(m))) if m.is_text() => break,
                Ok(Some(Ok(_))) => {}
                other => bail!("probe lost: {other:?}"),
            }
        }
        rtts.push(t0.elapsed());
        if !every.is_zero() {
            tokio::time::sleep_until((t0 + every).into()).await;
        }
    }
    Ok(rtts)
}

/// Reads and counts whatever a streaming connection brings until it is aborted.
pub async fn drain(mut ws: Ws, counter: Arc<AtomicU64>) {
    while let Some(Ok(m)) = ws.next().await {
        counter.fetch_add(m.len() as u64, Ordering::Relaxed);
    }
}

/// The ceiling of what a server of processes can do here, with no network at all: `tasks`
/// loops that each start `cat`, echo one line through it and wait for it to exit. Returns
/// processes per second and, per process, the time from spawning to the echo.
pub async fn process_churn(tasks: usize, time: Duration) -> Result<(f64, Vec<Duration>)> {
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    rounds(tasks, time, || async {
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let mut stdout = child.stdout.take().context("stdout")?;
        stdin.write_all(b"hello\n").await?;
        let mut line = [0u8; 6];
        stdout.read_exact(&mut line).await?;
        let first = t0.elapsed();
        drop(stdin);
        child.wait().await?;
        Ok(first)
    })
    .await
}
