//! A WebSocket spoken by hand, for frames a well-behaved client will not send.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wait::{STEP, within};

/// A WebSocket spoken by hand, for frames a well-behaved client will not send.
#[derive(Debug)]
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Performs the opening handshake on `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let mut stream = within(STEP, TcpStream::connect(addr)).await.expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        within(STEP, async {
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed during handshake");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWs { stream, buf: buf[end..].to_vec() }
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![(u8::from(fin) << 7) | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len < 65536 {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.stream.write_all(&frame).await;
    }

    /// Reads one frame: (opcode, payload). `None` when the connection ends.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        within(STEP, async {
            loop {
                if let Some((frame, used)) = parse_frame(&self.buf) {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                // On the heap: a 64 KiB array would make every future that awaits this one
                // as large, and a debug build's test thread overflows its stack.
                let mut chunk = vec![0u8; 65536];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
    }

    /// Reads frames until a Close and returns its code (None if the connection just ended).
    pub async fn read_close(&mut self) -> Option<u16> {
        while let Some((op, payload)) = self.read_frame().await {
            if op == 8 {
                return Some(if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                });
            }
        }
        None
    }
}

fn parse_frame(buf: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // servers do not mask, but be liberal
    }
    let payload = buf.get(at..at + len)?.to_vec();
    Some(((opcode, payload), at + len))
}

/// What a server answered to a request sent as raw bytes.
#[derive(Debug)]
pub enum Answer {
    /// 101: the WebSocket, its head read.
    Upgraded(RawWs),
    /// Anything else: the status, the head, the body its Content-Length announces, and the
    /// connection (to see whether the server closes it).
    Refused {
        /// The status code.
        status: u16,
        /// The response head, as text.
        head: String,
        /// The body.
        body: Vec<u8>,
        /// The connection.
        stream: TcpStream,
    },
}

impl Answer {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Upgraded(_) => 101,
            Answer::Refused { status, .. } => *status,
        }
    }
}

/// Sends `request` (a whole request head, and a body if any) as is, from a new connection,
/// and reads the answer's head (and body, when it is not a 101). Returns the client's port too.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> (Answer, u16) {
    let stream = within(STEP, TcpStream::connect(addr)).await.expect("connect");
    exchange_on(stream, request).await
}

/// As [`exchange`], from the local address `from`.
pub async fn exchange_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    request: &[u8],
) -> (Answer, u16) {
    exchange_on(crate::client::tcp_from(from, addr).await, request).await
}

async fn exchange_on(mut stream: TcpStream, request: &[u8]) -> (Answer, u16) {
    let port = stream.local_addr().expect("local addr").port();
    // A server may answer (and close) before it has read a large request: not an error here.
    let _ = within(STEP, stream.write_all(request)).await;
    let mut buf = Vec::new();
    let end = within(STEP, async {
        loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(at + 4);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|| panic!("no answer head: {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut rest = buf[end..].to_vec();
    if status == 101 {
        return (Answer::Upgraded(RawWs { stream, buf: rest }), port);
    }
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    within(STEP, async {
        while rest.len() < length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    (Answer::Refused { status, head, body: rest, stream }, port)
}

/// Waits (bounded) for the server to close `stream`; false if it sent more bytes instead.
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    within(STEP, async {
        let mut chunk = [0u8; 1024];
        matches!(stream.read(&mut chunk).await, Ok(0) | Err(_))
    })
    .await
}

impl RawWs {
    /// Reads the server's messages up to its Close: their payloads joined, and the close code.
    pub async fn payload_until_close(&mut self) -> (Vec<u8>, Option<u16>) {
        let mut data = Vec::new();
        while let Some((op, payload)) = self.read_frame().await {
            match op {
                8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return (data, code.or(Some(1005)));
                }
                0..=2 => data.extend_from_slice(&payload),
                _ => {}
            }
        }
        (data, None)
    }
}
