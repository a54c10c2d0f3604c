//! The unit a codec yields or takes, and the choice of codec.

use bytes::Bytes;

/// How the child's stdio is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framing {
    /// Each `\n`-terminated stdout line is one text message (websocketd's default).
    #[default]
    Lines,
    /// Each read from stdout is one binary message (websocketd's `--binary`).
    Chunks,
    /// Length-prefixed records both ways: boundaries and types survive exactly.
    LengthPrefixed,
}

/// One message crossing between the child and its client.
///
/// A decoder yields `Text` with the payload exactly as the child wrote it, which need not be
/// UTF-8: making it valid is the session's business, not the codec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Frame {
    /// The payload, whatever the kind.
    pub fn payload(&self) -> &Bytes {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Frame::Text(_))
    }
}

/// Writes a client message as websocketd does, whatever the framing: a text message followed
/// by `\n`, a binary message raw.
pub(crate) fn encode_raw(frame: &Frame, dst: &mut bytes::BytesMut) {
    match frame {
        Frame::Text(payload) => {
            dst.reserve(payload.len() + 1);
            dst.extend_from_slice(payload);
            dst.extend_from_slice(b"\n");
        }
        Frame::Binary(payload) => dst.extend_from_slice(payload),
    }
}

impl Framing {
    /// The codec for this framing, yielding frames of at most `max_length` bytes.
    pub fn codec(self, max_length: usize) -> crate::FrameCodec {
        match self {
            Framing::Lines => crate::FrameCodec::Lines(crate::LineCodec::new(max_length)),
            Framing::Chunks => crate::FrameCodec::Chunks(crate::ChunkCodec::new(max_length)),
            Framing::LengthPrefixed => {
                crate::FrameCodec::LengthPrefixed(crate::LengthPrefixedCodec::new(max_length))
            }
        }
    }
}
