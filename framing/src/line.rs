//! Newline-delimited text: websocketd's default framing.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::encode_raw;
use crate::{Error, Frame};

/// Cuts a byte stream into lines, each a [`Frame::Text`].
///
/// One trailing `\n`, then at most one `\r` before it, is removed (`a\r\n` gives `a`,
/// `c\r\r\n` gives `c\r`). A line longer than the maximum is passed on in pieces of at most
/// the maximum, each cut where a UTF-8 sequence ends when one ends near the cut, so a valid
/// multi-byte character is never split. At the end of the stream a final line without `\n`
/// is still yielded.
///
/// As an encoder it writes a text frame followed by `\n` and a binary frame raw.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_length: usize,
    /// How far the buffer has already been searched for `\n`.
    next_index: usize,
}

impl LineCodec {
    /// A codec yielding lines of at most `max_length` bytes (at least 4).
    pub fn new(max_length: usize) -> Self {
        Self { max_length: max_length.max(4), next_index: 0 }
    }

    /// The longest frame this codec yields.
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

impl Decoder for LineCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let search_end = buf.len().min(self.max_length.saturating_add(1));
        let start = self.next_index.min(search_end);
        if let Some(pos) = memchr::memchr(b'\n', &buf[start..search_end]) {
            let newline = start + pos;
            self.next_index = 0;
            let mut line = buf.split_to(newline + 1);
            line.truncate(newline);
            if line.last() == Some(&b'\r') {
                line.truncate(newline - 1);
            }
            return Ok(Some(Frame::Text(line.freeze())));
        }
        if buf.len() > self.max_length {
            // No newline within reach: pass a piece on rather than hold the line.
            self.next_index = 0;
            let cut = utf8_cut(&buf[..self.max_length]);
            return Ok(Some(Frame::Text(buf.split_to(cut).freeze())));
        }
        self.next_index = buf.len();
        Ok(None)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        self.next_index = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        let line = buf.split_to(buf.len());
        Ok(Some(Frame::Text(line.freeze())))
    }
}

impl Encoder<Frame> for LineCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        encode_raw(&frame, dst);
        Ok(())
    }
}

/// Where to cut `piece` (the first `max` bytes of a longer run) so that a UTF-8 sequence
/// that starts in its last three bytes is not split. Bytes that are not UTF-8 are cut anywhere.
pub(crate) fn utf8_cut(piece: &[u8]) -> usize {
    let len = piece.len();
    // Look back at most 3 bytes for the start of a multi-byte sequence.
    for back in 1..=3.min(len - 1) {
        let b = piece[len - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: keep looking for the lead
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return len, // ASCII or not a lead byte: nothing is split here
        };
        return if needed > back { len - back } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(s: &[u8]) -> Frame {
        Frame::Text(Bytes::copy_from_slice(s))
    }

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn one_trailing_cr_is_trimmed() {
        let mut c = LineCodec::new(1024);
        let got = decode_all(&mut c, b"a\r\nb\nc\r\r\n\n  x  \n");
        assert_eq!(got, vec![text(b"a"), text(b"b"), text(b"c\r"), text(b""), text(b"  x  ")]);
    }

    #[test]
    fn final_line_without_newline_is_yielded_at_eof() {
        let mut c = LineCodec::new(1024);
        assert_eq!(decode_all(&mut c, b"one\nlast"), vec![text(b"one"), text(b"last")]);
    }

    #[test]
    fn long_line_comes_in_pieces_of_at_most_max() {
        let mut c = LineCodec::new(4);
        let got = decode_all(&mut c, b"abcdefghij\nk\n");
        assert_eq!(got, vec![text(b"abcd"), text(b"efgh"), text(b"ij"), text(b"k")]);
    }

    #[test]
    fn a_line_exactly_max_long_is_one_frame() {
        let mut c = LineCodec::new(4);
        assert_eq!(decode_all(&mut c, b"abcd\n"), vec![text(b"abcd")]);
    }

    #[test]
    fn pieces_do_not_split_a_multibyte_character() {
        // "aé€" = 61 c3a9 e282ac; a cut after 4 bytes would split the euro sign.
        let mut c = LineCodec::new(4);
        let got = decode_all(&mut c, "aé€x\n".as_bytes());
        assert_eq!(got, vec![text("aé".as_bytes()), text("€x".as_bytes())]);
    }

    #[test]
    fn encoder_appends_newline_to_text_only() {
        let mut c = LineCodec::new(16);
        let mut dst = BytesMut::new();
        c.encode(text(b"hi"), &mut dst).unwrap();
        c.encode(Frame::Binary(Bytes::from_static(b"\x00\x01")), &mut dst).unwrap();
        assert_eq!(&dst[..], b"hi\n\x00\x01");
    }
}
