//! A trivial WebSocket server in the benchmark's own process, with no child processes: what
//! the load generator reaches against it is its ceiling, which must be well above the
//! figures of the servers it measures.

use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

// tungstenite's handshake callback type fixes the closure's large error type.
#[allow(clippy::result_large_err)]
/// Starts the server; it runs until the runtime ends. Paths: `/` echoes, `/push` sends 64-byte
/// text lines, `/download4k` and `/download64k` send binary chunks, `/sink` discards.
pub async fn start() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut path = String::new();
                let callback = |req: &Request, resp: Response| {
                    path = req.uri().path().to_owned();
                    Ok(resp)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                match path.as_str() {
                    "/push" => {
                        let line = Message::text("x".repeat(64));
                        loop {
                            for _ in 0..1024 {
                                if tx.feed(line.clone()).await.is_err() {
                                    return;
                                }
                            }
                            if tx.flush().await.is_err() {
                                return;
                            }
                        }
                    }
                    "/download4k" | "/download64k" => {
                        let size = if path == "/download4k" { 4096 } else { 65536 };
                        let chunk = Bytes::from(vec![0u8; size]);
                        while tx.send(Message::Binary(chunk.clone())).await.is_ok() {}
                    }
                    "/sink" => while let Some(Ok(_)) = rx.next().await {},
                    _ => {
                        // Echo, flushing only when no further message is ready.
                        loop {
                            let next = match rx.next().now_or_never() {
                                Some(next) => next,
                                None => {
                                    if tx.flush().await.is_err() {
                                        return;
                                    }
                                    rx.next().await
                                }
                            };
                            let Some(Ok(m)) = next else { break };
                            if m.is_close() {
                                break;
                            }
                            if (m.is_text() || m.is_binary()) && tx.feed(m).await.is_err() {
                                return;
                            }
                        }
                        let _ = tx.close().await;
                    }
                }
            });
        }
    });
    Ok(addr)
}
