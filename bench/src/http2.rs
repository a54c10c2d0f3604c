//! `--http2`'s figure: WebSocket sessions over one HTTP/2 connection (RFC 8441 extended
//! CONNECT, the `h2` crate's client), against one TLS connection per session.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::{Method, Request};
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::load::Dial;

/// Sessions per second for `time`, `per_connection` at once on each HTTP/2 connection (one
/// connection at a time, each a full TLS handshake): each session's stream is opened,
/// echoes one message and closes. Also returns, per session, the time from asking for its
/// stream to the echo.
pub async fn session_rate(
    to: &Dial,
    per_connection: usize,
    time: Duration,
) -> Result<(f64, Vec<Duration>)> {
    let config = to.tls_config().context("HTTP/2 sessions need TLS")?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let start = Instant::now();
    let mut firsts = Vec::new();
    while start.elapsed() < time {
        let tcp = TcpStream::connect(to.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::from(to.addr.ip());
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&config)).connect(name, tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("the server did not choose h2");
        }
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(256 * 1024)
            .initial_connection_window_size(16 << 20)
            .handshake::<_, Bytes>(tls)
            .await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await?;
        // The server's SETTINGS must have allowed :protocol before the first CONNECT.
        let allowed = Instant::now();
        while !send.is_extended_connect_protocol_enabled() {
            if allowed.elapsed() > Duration::from_secs(2) {
                bail!("no SETTINGS_ENABLE_CONNECT_PROTOCOL");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            send = send.ready().await?;
        }
        let sessions = (0..per_connection).map(|_| session(send.clone(), to.addr.port()));
        for first in futures_util::future::join_all(sessions).await {
            firsts.push(first?);
        }
        drop(send);
        driver.abort();
    }
    Ok((firsts.len() as f64 / start.elapsed().as_secs_f64(), firsts))
}

/// One session on its own stream: open, echo once, close.
async fn session(send: h2::client::SendRequest<Bytes>, port: u16) -> Result<Duration> {
    let t0 = Instant::now();
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://localhost:{port}/"))
        .header("sec-websocket-version", "13")
        .body(())?;
    req.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
    let mut send = send.ready().await?;
    let (response, stream) = send.send_request(req, false)?;
    let response = response.await?;
    if response.status() != 200 {
        bail!("CONNECT answered {}", response.status());
    }
    let io = H2Io { send: stream, recv: response.into_body(), buf: Bytes::new() };
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    ws.send(Message::text("hello")).await?;
    let first = match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "hello" => t0.elapsed(),
        other => bail!("no echo: {other:?}"),
    };
    let _ = ws.close(None).await;
    Ok(first)
}

/// One HTTP/2 stream as a byte stream, flow control included.
#[derive(Debug)]
struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    buf: Bytes,
}

impl AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.buf.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.buf.len().min(out.remaining());
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(data.len());
        match ready!(self.send.poll_capacity(cx)) {
            Some(Ok(n)) => {
                let n = n.min(data.len());
                let chunk = Bytes::copy_from_slice(&data[..n]);
                self.send.send_data(chunk, false).map_err(io::Error::other)?;
                Poll::Ready(Ok(n))
            }
            Some(Err(e)) => Poll::Ready(Err(io::Error::other(e))),
            None => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
