//! An HTTP/2 client for the suites (the `h2` crate): WebSockets as extended CONNECT streams
//! of one connection (RFC 8441), over TLS with ALPN `h2` or in cleartext with prior
//! knowledge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::{Method, Request};
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::wait::{STEP, within};

/// A WebSocket over one HTTP/2 stream.
pub type H2Ws = WebSocketStream<H2Io>;

/// One HTTP/2 connection's request side.
#[derive(Clone)]
pub struct H2 {
    send: h2::client::SendRequest<Bytes>,
}

impl std::fmt::Debug for H2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H2")
    }
}

impl H2 {
    /// The HTTP/2 handshake on `io` (the connection is driven by a task of its own).
    pub async fn handshake<T>(io: T) -> H2
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Windows as a browser has them (Chromium: 6 MiB a stream, 15 MiB in all): a stream
        // whose reader stalls holds its window only, not the connection's.
        let builder = h2::client::Builder::new()
            .initial_window_size(256 * 1024)
            .initial_connection_window_size(16 << 20)
            .clone();
        let (send, connection) =
            within(STEP, builder.handshake(io)).await.expect("the HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        H2 { send }
    }

    /// Whether the server announced SETTINGS_ENABLE_CONNECT_PROTOCOL (waiting a second at
    /// most for its SETTINGS).
    pub async fn connect_protocol_enabled(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let ready = within(STEP, self.send.clone().ready()).await.expect("ready");
            self.send = ready;
            if self.send.is_extended_connect_protocol_enabled() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// How many streams at once the server's SETTINGS allow.
    pub fn max_streams(&self) -> usize {
        self.send.current_max_send_streams()
    }

    /// The request side, once it may send (`None` when the connection is gone).
    pub async fn ready_sender(self) -> Option<h2::client::SendRequest<Bytes>> {
        self.send.ready().await.ok()
    }

    /// `GET path` on `authority`: the status and the body as text.
    pub async fn get(&mut self, authority: &str, path: &str) -> (u16, String) {
        let req =
            Request::builder().uri(format!("http://{authority}{path}")).body(()).expect("request");
        let mut ready = within(STEP, self.send.clone().ready()).await.expect("ready");
        let (response, _) = ready.send_request(req, true).expect("send the request");
        let response = within(STEP, response).await.expect("a response");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = within(STEP, body.data()).await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        (status, String::from_utf8_lossy(&text).into_owned())
    }

    /// Opens a WebSocket on a new stream: `CONNECT` with `:protocol websocket` to `path` on
    /// `authority`, with `headers`. The status, and the WebSocket when it is 200.
    pub async fn websocket(
        &mut self,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Option<H2Ws>) {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("https://{authority}{path}"))
            .header("sec-websocket-version", "13");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(()).expect("request");
        req.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
        // The client sends a :protocol only once the server's SETTINGS have allowed it.
        self.connect_protocol_enabled().await;
        let mut ready = within(STEP, self.send.clone().ready()).await.expect("ready");
        let (response, send) = ready.send_request(req, false).expect("send the request");
        let response = within(STEP, response).await.expect("a response");
        let status = response.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let io = H2Io { send, recv: response.into_body(), buf: Bytes::new() };
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        (status, Some(ws))
    }
}

/// One HTTP/2 stream as a byte stream, flow control included.
#[derive(Debug)]
pub struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    buf: Bytes,
}

impl H2Io {
    /// Resets the stream (RST_STREAM CANCEL), as a client that gives up does.
    pub fn reset(&mut self) {
        self.send.send_reset(h2::Reason::CANCEL);
    }
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
                self.send
                    .send_data(Bytes::copy_from_slice(&data[..n]), false)
                    .map_err(io::Error::other)?;
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
