//! WebSocket and HTTP clients as the suites use them: over TCP (from any loopback address)
//! or a unix socket, reading messages and Close frames under a bound.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::wait::{STEP, within};

/// A client connection as the suites use it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects a WebSocket client that accepts large messages.
pub async fn connect(url: &str) -> Ws {
    let config =
        WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
    let (ws, _) =
        within(STEP, tokio_tungstenite::connect_async_with_config(url, Some(config), true))
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

/// Connects a WebSocket client to `path` over the unix socket `socket`, with `headers`.
pub async fn connect_unix(
    socket: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<UnixStream> {
    let stream = within(STEP, UnixStream::connect(socket)).await.expect("connect unix socket");
    handshake(stream, &format!("ws://localhost:8080{path}"), headers).await
}

/// Connects a WebSocket client to `path` at `addr` over TCP from the local address `from`,
/// with `headers`.
pub async fn connect_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<TcpStream> {
    let stream = tcp_from(from, addr).await;
    handshake(stream, &format!("ws://{addr}{path}"), headers).await
}

/// A TCP connection to `addr` from the local address `from` (any port).
pub async fn tcp_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind the client's address");
    within(STEP, socket.connect(addr)).await.expect("connect")
}

/// The text of each message; panics on one that is not text.
pub fn texts(messages: Vec<Message>) -> Vec<String> {
    messages
        .into_iter()
        .map(|m| match m {
            Message::Text(t) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

/// The client's WebSocket handshake for `url` on `stream`, with extra `headers`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    url: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<S> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("request");
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            name.parse().expect("header name");
        req.headers_mut().insert(name, value.parse().expect("header value"));
    }
    let (ws, _) = within(STEP, tokio_tungstenite::client_async(req, stream))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

/// The next data message (text or binary), skipping pings; panics on close or error.
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    within(STEP, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    })
    .await
}

/// The next message as text; panics if it is not text.
pub async fn recv_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match recv(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server's Close and returns its code and reason (1006 if the connection
/// ended without one). Data messages before it are returned too.
pub async fn recv_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> (u16, String, Vec<Message>) {
    within(STEP, async {
        let mut data = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string(), data);
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new(), data),
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => data.push(m),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (1006, String::new(), data),
            }
        }
    })
    .await
}

/// The environment a child printed (`env.sh`: one `NAME=value` a message) up to its Close,
/// which must be 1000.
pub async fn child_env<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Vec<(String, String)> {
    let (code, _, data) = recv_close(ws).await;
    assert_eq!(code, 1000);
    data.iter()
        .filter_map(|m| m.to_text().ok())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of `name` in an environment [`child_env`] read.
pub fn var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Sends a text message.
pub async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    within(STEP, ws.send(Message::text(text))).await.expect("send");
}

/// A raw HTTP exchange: sends `request` as is and returns one whole response (its head, and
/// the body its Content-Length announces), or what came before the server closed.
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut stream = within(STEP, TcpStream::connect(addr)).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    within(STEP, async {
        loop {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let body_len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if out.len() >= end + 4 + body_len {
                    return;
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects a WebSocket client to `path` at `addr` whose socket takes in little at a time
/// (a 4 KiB receive buffer): a client that stops reading is felt by the server at once.
pub async fn connect_small_window(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let stream = within(STEP, socket.connect(addr)).await.expect("connect");
    handshake(stream, &format!("ws://{addr}{path}"), &[]).await
}

/// Drops the connection of `ws` without a Close, as abortively as TCP can: a reset
/// (`SO_LINGER` 0), as when a network goes away or a proxy is killed.
pub fn abort(ws: Ws) {
    if let MaybeTlsStream::Plain(stream) = ws.get_ref() {
        stream.set_zero_linger().expect("SO_LINGER 0");
    }
    drop(ws);
}
