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
mod error;
mod frame;
mod length;
mod line;

pub use chunk::ChunkCodec;
pub use codec::FrameCodec;
pub use error::Error;
pub use frame::{Frame, Framing};
pub use length::LengthPrefixedCodec;
pub use line::LineCodec;
