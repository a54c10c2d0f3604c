//! How a session's connection is closed: the Close frame for each way a session ends, and
//! the two ways of sending it (waiting for the client's answer, or not), both bounded.

use std::process::ExitStatus;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long a close handshake may take before the connection is just dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A Close frame with `code` and `reason`.
pub(crate) fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame { code, reason: reason.to_owned().into() }
}

/// The Close frame of a server that shuts down.
pub(crate) fn going_away() -> CloseFrame {
    close_frame(CloseCode::Away, "server shutting down")
}

/// The Close frame that reports how the child ended.
pub(crate) fn close_for_status(status: Option<ExitStatus>) -> CloseFrame {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.success() => close_frame(CloseCode::Normal, ""),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => close_frame(CloseCode::Error, &format!("exit status {code}")),
            (None, Some(sig)) => close_frame(CloseCode::Error, &format!("killed by signal {sig}")),
            _ => close_frame(CloseCode::Error, "process ended"),
        },
        None => close_frame(CloseCode::Error, "process did not exit"),
    }
}

/// The Close frame that answers a failed read, if the client can still be told.
pub(crate) fn close_for_error(e: &WsError) -> Option<CloseFrame> {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match e {
        WsError::Utf8(_) => Some(close_frame(CloseCode::Invalid, "invalid UTF-8 in text message")),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some(close_frame(CloseCode::Size, "message too big"))
        }
        WsError::Capacity(_) => Some(close_frame(CloseCode::Size, "frame too big")),
        WsError::Protocol(p) => Some(close_frame(CloseCode::Protocol, &p.to_string())),
        _ => None,
    }
}

/// Sends `frame` (if any) and finishes the close without waiting for the client's answer.
pub(crate) async fn close_now<W>(tx: &mut W, frame: Option<CloseFrame>)
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if let Some(frame) = frame {
            tx.send(Message::Close(Some(frame))).await?;
        }
        tx.close().await
    })
    .await;
}

/// Sends `frame` and waits (bounded) for the client's Close in reply, dropping anything
/// else it still sends.
pub(crate) async fn close_after<W, R>(tx: &mut W, rx: &mut R, frame: Option<CloseFrame>)
where
    W: Sink<Message, Error = WsError> + Unpin,
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        tx.send(Message::Close(frame)).await?;
        until_close(rx).await;
        tx.close().await
    })
    .await;
}

/// [`close_after`] on a socket that is not split: sends `frame` (bounded), then waits
/// (bounded) for the client's Close in reply.
pub(crate) async fn close_whole<S>(ws: &mut S, frame: CloseFrame)
where
    S: Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin,
{
    let sent = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
    if matches!(sent, Ok(Ok(()))) {
        finish_close(ws).await;
    }
}

/// Waits (bounded) for the client's Close in reply to ours, already sent, dropping what else
/// it sends, then ends our side.
pub(crate) async fn finish_close<S>(ws: &mut S)
where
    S: Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        until_close(ws).await;
        ws.close().await
    })
    .await;
}

/// Reads until the client's Close, or the end of the stream.
async fn until_close<R>(rx: &mut R)
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(msg) = rx.next().await {
        if matches!(msg, Err(_) | Ok(Message::Close(_))) {
            break;
        }
    }
}
