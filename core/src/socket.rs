//! The client side of a session: any stream and sink of WebSocket messages, so that the
//! session knows nothing of TCP, TLS or HTTP, and a unit test can be the client.

use std::future::Future;
use std::io::IoSlice;

use futures_util::{Sink, SinkExt, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::close::CLOSE_TIMEOUT;

/// The client side of a session: a stream and sink of WebSocket messages.
pub trait Socket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin + Send
{
    /// Called after a Close that answers a broken message (too big, bad UTF-8, protocol
    /// error): ends our side and throws away what the client still sends, for a bounded time
    /// and in constant memory, so that dropping the connection does not reset it before the
    /// client has read the Close.
    fn linger(&mut self) -> impl Future<Output = ()> + Send;

    /// Writes some of `bufs`, whole WebSocket frames already encoded (a shared session frames
    /// each message once for all its clients), after what the protocol layer itself has
    /// queued (a pong, a ping); returns how many bytes went. Cancel-safe: when it does not
    /// complete, nothing of `bufs` was written. The caller writes no message through the
    /// sink, and reads nothing, while a frame is half written.
    fn write_raw(
        &mut self,
        bufs: &[IoSlice<'_>],
    ) -> impl Future<Output = Result<usize, WsError>> + Send;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for WebSocketStream<T> {
    async fn linger(&mut self) {
        let io = self.get_mut();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = io.shutdown().await;
            // On the heap: an array here would sit in every session's future.
            let mut scratch = vec![0u8; 4096];
            while let Ok(1..) = io.read(&mut scratch).await {}
        })
        .await;
    }

    async fn write_raw(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, WsError> {
        SinkExt::<Message>::flush(self).await?;
        Ok(self.get_mut().write_vectored(bufs).await?)
    }
}
