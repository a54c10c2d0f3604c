//! Length-prefixed records: message boundaries and types that survive the child exactly.
//!
//! Every message, in both directions, is a record: a 4-byte big-endian header, then the
//! payload. The header's low 31 bits are the payload's length; its top bit is set for a text
//! message and clear for a binary one. `cat` is therefore a perfect echo.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Error, Frame};

/// The header's top bit: the record is a text message.
const TEXT: u32 = 0x8000_0000;
/// The header's length bits.
const LENGTH: u32 = 0x7fff_ffff;

/// Reads and writes length-prefixed records.
///
/// As a decoder it yields a frame once its whole record has arrived. A record announcing more
/// than the maximum, a text record that is not UTF-8, or a record cut short by the end of the
/// stream is an error. Nothing is allocated for the announced length: the buffer grows only
/// as bytes arrive.
#[derive(Debug, Clone)]
pub struct LengthPrefixedCodec {
    max_length: usize,
}

impl LengthPrefixedCodec {
    /// A codec accepting records of at most `max_length` payload bytes.
    pub fn new(max_length: usize) -> Self {
        Self { max_length: max_length.min(LENGTH as usize) }
    }

    /// The longest payload this codec accepts.
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

impl Decoder for LengthPrefixedCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let Some(header) = buf.get(..4) else { return Ok(None) };
        let header = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let len = (header & LENGTH) as usize;
        if len > self.max_length {
            return Err(Error::TooLong { len, max: self.max_length });
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        let payload = buf.split_to(len).freeze();
        if header & TEXT == 0 {
            return Ok(Some(Frame::Binary(payload)));
        }
        if std::str::from_utf8(&payload).is_err() {
            return Err(Error::NotUtf8);
        }
        Ok(Some(Frame::Text(payload)))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(Error::Truncated { got: buf.len() }),
        }
    }
}

impl Encoder<Frame> for LengthPrefixedCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        let payload = frame.payload();
        if payload.len() > self.max_length {
            return Err(Error::TooLong { len: payload.len(), max: self.max_length });
        }
        // The length fits in 31 bits: max_length is capped at LENGTH.
        let mut header = payload.len() as u32;
        if frame.is_text() {
            header |= TEXT;
        }
        dst.reserve(4 + payload.len());
        dst.put_u32(header);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(text: bool, payload: &[u8]) -> Vec<u8> {
        let mut header = payload.len() as u32;
        if text {
            header |= TEXT;
        }
        let mut v = header.to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn records_keep_their_boundaries_and_types() {
        let mut c = LengthPrefixedCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&record(true, "héllo\nworld".as_bytes()));
        buf.extend_from_slice(&record(false, b"\x00\x01"));
        buf.extend_from_slice(&record(true, b""));
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Frame::Text(Bytes::from("héllo\nworld"))));
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Binary(Bytes::from_static(b"\x00\x01")))
        );
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Frame::Text(Bytes::new())));
        assert_eq!(c.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_record_over_the_limit_is_refused_from_its_header_alone() {
        let mut c = LengthPrefixedCodec::new(10);
        let mut buf = BytesMut::from(&0x7fff_ffffu32.to_be_bytes()[..]);
        assert!(matches!(c.decode(&mut buf), Err(Error::TooLong { len: 0x7fff_ffff, max: 10 })));
        assert!(buf.capacity() < 1024, "nothing is allocated for the announced length");
    }

    #[test]
    fn a_text_record_that_is_not_utf8_is_an_error() {
        let mut c = LengthPrefixedCodec::new(10);
        let mut buf = BytesMut::from(&record(true, b"\xff")[..]);
        assert!(matches!(c.decode(&mut buf), Err(Error::NotUtf8)));
    }

    #[test]
    fn a_record_cut_short_by_the_end_is_an_error() {
        let mut c = LengthPrefixedCodec::new(10);
        let mut buf = BytesMut::from(&record(false, b"abcd")[..5]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        assert!(matches!(c.decode_eof(&mut buf), Err(Error::Truncated { got: 5 })));
    }

    #[test]
    fn the_encoder_writes_what_the_decoder_reads() {
        let mut c = LengthPrefixedCodec::new(10);
        let mut wire = BytesMut::new();
        c.encode(Frame::Text(Bytes::from("hi")), &mut wire).unwrap();
        c.encode(Frame::Binary(Bytes::from_static(b"\n")), &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 0, 0, 2, b'h', b'i', 0, 0, 0, 1, b'\n']);
        assert!(c.encode(Frame::Binary(Bytes::from(vec![0; 11])), &mut wire).is_err());
    }
}
