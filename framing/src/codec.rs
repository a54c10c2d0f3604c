//! One codec type for every framing, so a session holds a single value whatever the mode.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::{ChunkCodec, Error, Frame, LengthPrefixedCodec, LineCodec};

/// The codec of a [`Framing`](crate::Framing), chosen at run time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FrameCodec {
    /// See [`LineCodec`].
    Lines(LineCodec),
    /// See [`ChunkCodec`].
    Chunks(ChunkCodec),
    /// See [`LengthPrefixedCodec`].
    LengthPrefixed(LengthPrefixedCodec),
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match self {
            FrameCodec::Lines(c) => c.decode(buf),
            FrameCodec::Chunks(c) => c.decode(buf),
            FrameCodec::LengthPrefixed(c) => c.decode(buf),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match self {
            FrameCodec::Lines(c) => c.decode_eof(buf),
            FrameCodec::Chunks(c) => c.decode_eof(buf),
            FrameCodec::LengthPrefixed(c) => c.decode_eof(buf),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        match self {
            FrameCodec::Lines(c) => c.encode(frame, dst),
            FrameCodec::Chunks(c) => c.encode(frame, dst),
            FrameCodec::LengthPrefixed(c) => c.encode(frame, dst),
        }
    }
}
