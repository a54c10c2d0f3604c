//! A trivial WebSocket server in the benchmark's own process, with no child processes: what
//! the load generator reaches against it is its ceiling, which must be well above the
//! figures of the servers it measures.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

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

/// The most a download relay can move here: a bare relay on a thread of its own that starts
/// `dd if=/dev/zero bs=CHUNK` per connection, reads its pipe with blocking reads (grown to
/// the 256 KiB our server grows a full one to) and sends what each read brought as one
/// binary message with one `writev`, as `--binary` does, with nothing else in the way: no
/// event loop, no HTTP, no logging, no protocol layer. Its figure bounds what any server
/// that sends a message per read reaches with the same program and client. One connection
/// at a time; it runs until the process ends.
pub fn bare_relay(chunk: usize) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = relay_one(stream, chunk);
        }
    });
    Ok(addr)
}

fn relay_one(stream: std::net::TcpStream, chunk: usize) -> Result<()> {
    use std::io::{IoSlice, Read, Write};
    use std::process::{Command, Stdio};
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::tungstenite::accept(stream)?;
    let mut child = Command::new("dd")
        .args(["if=/dev/zero", &format!("bs={chunk}"), "status=none"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().context("dd's stdout")?;
    let _ = nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_SETPIPE_SZ(256 * 1024));
    let socket = ws.get_mut();
    let mut buf = vec![0u8; 64 * 1024];
    let result = (|| -> std::io::Result<()> {
        loop {
            let n = out.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            // A server's frame: final, not masked (tungstenite's own header, as the
            // server's shared sessions frame theirs). Writing into a Vec cannot fail.
            let mut header = Vec::with_capacity(10);
            let _ = FrameHeader { opcode: OpCode::Data(Data::Binary), ..FrameHeader::default() }
                .format(n as u64, &mut header);
            let (mut head, mut body) = (&header[..], &buf[..n]);
            while !head.is_empty() || !body.is_empty() {
                let w = socket.write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
                if w == 0 {
                    return Ok(());
                }
                let from_head = w.min(head.len());
                head = &head[from_head..];
                body = &body[w - from_head..];
            }
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    // The client leaving is how every run ends.
    match result {
        Err(e)
            if e.kind() != std::io::ErrorKind::BrokenPipe
                && e.kind() != std::io::ErrorKind::ConnectionReset =>
        {
            Err(e.into())
        }
        _ => Ok(()),
    }
}
