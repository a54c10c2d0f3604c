//! Reading a WebSocket's bytes in large gulps only while they flow.
//!
//! tungstenite reads at most its `read_buffer_size` per call, and keeps a buffer of that
//! size for the life of the connection. A small one keeps idle sessions cheap (thousands of
//! them sit in a server), but cuts a 64 KiB message into sixteen system calls. [`ReadAhead`]
//! sits under it: while every read fills the caller's buffer (more is waiting in the
//! socket), it reads a large chunk at once and hands it out from memory; the chunk is let go
//! as soon as it is used up, or when the socket has nothing to give, so an idle session
//! holds no extra buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much one read ahead asks for.
const CHUNK: usize = 64 * 1024;

/// An I/O object whose reads go ahead in large chunks while data keeps coming.
#[derive(Debug)]
pub struct ReadAhead<T> {
    io: T,
    /// Read but not yet handed out; empty (without an allocation) when nothing is.
    ahead: BytesMut,
    /// Whether the last read from `io` filled all the room it was given.
    flowing: bool,
}

impl<T> ReadAhead<T> {
    /// Wraps `io`.
    pub fn new(io: T) -> ReadAhead<T> {
        ReadAhead { io, ahead: BytesMut::new(), flowing: false }
    }

    /// Hands out what was read ahead; frees the chunk once it is all handed out.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.ahead.len().min(buf.remaining());
        buf.put_slice(&self.ahead[..n]);
        self.ahead.advance(n);
        if self.ahead.is_empty() {
            self.ahead = BytesMut::new();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ahead.is_empty() {
            this.hand_out(buf);
            return Poll::Ready(Ok(()));
        }
        let room = buf.remaining();
        if this.flowing && room < CHUNK {
            this.ahead.reserve(CHUNK);
            let polled = tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.ahead);
            let n = match polled {
                Poll::Ready(Ok(n)) => n,
                other => {
                    // Waiting (or failed) with nothing in hand: no buffer is kept meanwhile.
                    this.ahead = BytesMut::new();
                    this.flowing = false;
                    return other.map_ok(|_| ());
                }
            };
            this.flowing = n > room;
            this.hand_out(buf);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.flowing = room > 0 && buf.filled().len() - before == room;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    /// Reads once into a buffer with room for `room` bytes.
    async fn read_once<T: AsyncRead + Unpin>(r: &mut ReadAhead<T>, room: usize) -> Vec<u8> {
        let mut space = vec![0u8; room];
        let mut buf = ReadBuf::new(&mut space);
        poll_fn(|cx| Pin::new(&mut *r).poll_read(cx, &mut buf)).await.expect("read");
        buf.filled().to_vec()
    }

    #[tokio::test]
    async fn small_reads_go_straight_through_without_a_buffer() {
        let (mut far, near) = duplex(1 << 20);
        let mut r = ReadAhead::new(near);
        far.write_all(b"ping").await.unwrap();
        assert_eq!(read_once(&mut r, 4096).await, b"ping");
        assert!(!r.flowing);
        assert_eq!(r.ahead.capacity(), 0);
    }

    #[tokio::test]
    async fn a_full_read_makes_the_next_one_read_ahead_and_hand_out_in_order() {
        let (mut far, near) = duplex(1 << 20);
        let mut r = ReadAhead::new(near);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        far.write_all(&data).await.unwrap();
        let mut got = read_once(&mut r, 4096).await;
        assert_eq!(got.len(), 4096);
        assert!(r.flowing, "a read that filled the buffer means more is waiting");
        got.extend(read_once(&mut r, 4096).await);
        assert!(r.ahead.len() > 4096, "the second read went ahead: {}", r.ahead.len());
        while got.len() < data.len() {
            got.extend(read_once(&mut r, 4096).await);
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn nothing_is_kept_while_waiting_and_the_end_comes_through() {
        let (mut far, near) = duplex(1 << 20);
        let mut r = ReadAhead::new(near);
        far.write_all(&[7u8; 3 * CHUNK]).await.unwrap();
        let mut total = 0;
        while total < 3 * CHUNK {
            total += read_once(&mut r, 4096).await.len();
        }
        assert_eq!(r.ahead.capacity(), 0, "the chunk is let go once used up");
        // Nothing more to read: the read waits, holding no buffer.
        let mut space = [0u8; 4096];
        let mut buf = ReadBuf::new(&mut space);
        let waker = std::task::Waker::noop();
        let polled = Pin::new(&mut r).poll_read(&mut Context::from_waker(waker), &mut buf);
        assert!(polled.is_pending());
        assert_eq!(r.ahead.capacity(), 0);
        assert!(!r.flowing);
        far.write_all(b"last").await.unwrap();
        drop(far);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"last");
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (mut far, near) = duplex(1024);
        let mut r = ReadAhead::new(near);
        r.write_all(b"hello").await.unwrap();
        r.flush().await.unwrap();
        let mut got = [0u8; 5];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }
}
