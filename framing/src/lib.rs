//! Codecs for a websocketd child's stdio: lines, chunks and length-prefixed records.
//!
//! A child speaks to its WebSocket client through byte pipes; a [`Framing`] says how those bytes
//! become messages and back. Each decoder here turns the child's stdout (or stderr) into
//! [`Frame`]s and each encoder turns a client message into the bytes written to the child's
//! stdin. Every decoder is bounded: no input makes it hold more than its maximum frame length
//! plus one read.
//!
//! The crate does no I/O and knows nothing of WebSocket: it works on `BytesMut` through
//! tokio-util's [`Decoder`](tokio_util::codec::Decoder) and [`Encoder`](tokio_util::codec::Encoder).

mod chunk;
mod codec;
mod frame;
mod length;
mod line;

pub use chunk::ChunkCodec;
pub use codec::FrameCodec;
pub use frame::{Frame, Framing};
pub use length::LengthPrefixedCodec;
pub use line::LineCodec;

/// What can go wrong while framing the child's stdio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipe failed underneath the codec.
    #[error("pipe i/o failed")]
    Io(#[from] std::io::Error),
    /// A length-prefixed record longer than the limit.
    #[error("record of {len} bytes is over the limit of {max}")]
    TooLong {
        /// The length announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length-prefixed text record that is not UTF-8.
    #[error("text record is not valid UTF-8")]
    NotUtf8,
    /// The stream ended inside a length-prefixed record.
    #[error("stream ended inside a record ({got} bytes of it)")]
    Truncated {
        /// How many bytes of the record had arrived.
        got: usize,
    },
}
