//! Test doubles for the session's sides: a client made of channels.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::socket::Socket;

/// A socket made of two channels: what the test sends comes out of the stream, what the
/// session sends goes into `sent`.
pub(crate) struct ChannelSocket {
    incoming: mpsc::UnboundedReceiver<Result<Message, WsError>>,
    sent: mpsc::UnboundedSender<Message>,
}

/// The test's end of a [`ChannelSocket`]: what to send the session, and what it sent.
pub(crate) type Client =
    (mpsc::UnboundedSender<Result<Message, WsError>>, mpsc::UnboundedReceiver<Message>);

/// A socket and the test's end of it.
pub(crate) fn channel_socket() -> (ChannelSocket, Client) {
    let (to_session, incoming) = mpsc::unbounded_channel();
    let (sent, from_session) = mpsc::unbounded_channel();
    (ChannelSocket { incoming, sent }, (to_session, from_session))
}

/// The next message the session sent (bounded).
pub(crate) async fn next(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.unwrap().unwrap()
}

impl Stream for ChannelSocket {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.sent.send(item).map_err(|_| WsError::ConnectionClosed)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }
}

impl Socket for ChannelSocket {
    async fn linger(&mut self) {}

    async fn write_raw(&mut self, _: &[std::io::IoSlice<'_>]) -> Result<usize, WsError> {
        // It carries messages, not bytes: shared sessions are tested over real sockets.
        Err(WsError::ConnectionClosed)
    }
}
