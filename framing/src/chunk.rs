//! Raw chunks: websocketd's `--binary`.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::encode_raw;
use crate::{Error, Frame};

/// Passes on whatever the last read brought as one [`Frame::Binary`] of at most the maximum
/// length. Message boundaries follow pipe reads, as in websocketd.
///
/// As an encoder it writes a text frame followed by `\n` and a binary frame raw.
#[derive(Debug, Clone)]
pub struct ChunkCodec {
    max_length: usize,
}

impl ChunkCodec {
    /// A codec yielding chunks of at most `max_length` bytes (at least 1).
    pub fn new(max_length: usize) -> Self {
        Self { max_length: max_length.max(1) }
    }

    /// The longest frame this codec yields.
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

impl Decoder for ChunkCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if buf.is_empty() {
            return Ok(None);
        }
        let n = buf.len().min(self.max_length);
        Ok(Some(Frame::Binary(buf.split_to(n).freeze())))
    }
}

impl Encoder<Frame> for ChunkCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        encode_raw(&frame, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_one_frame_capped_at_max() {
        let mut c = ChunkCodec::new(3);
        let mut buf = BytesMut::from(&b"abcdefg"[..]);
        let mut got = Vec::new();
        while let Some(Frame::Binary(b)) = c.decode(&mut buf).unwrap() {
            got.push(b);
        }
        assert_eq!(got, vec![&b"abc"[..], &b"def"[..], &b"g"[..]]);
    }
}
