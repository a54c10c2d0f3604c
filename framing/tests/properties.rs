//! Properties every codec keeps, whatever the input and however reads split it.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};
use websocketd_framing::{Frame, Framing};

/// Feeds `input` to a fresh codec in pieces cut at `cuts`, then ends the stream.
fn decode_split(framing: Framing, max: usize, input: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut codec = framing.codec(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for point in points {
        buf.extend_from_slice(&input[at..point.max(at)]);
        at = point.max(at);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
        out.push(frame);
    }
    out
}

fn payloads(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.payload().to_vec()).collect()
}

proptest! {
    #[test]
    fn lines_do_not_depend_on_read_splits(
        input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max in 4usize..64,
    ) {
        let whole = decode_split(Framing::Lines, max, &input, &[]);
        let split = decode_split(Framing::Lines, max, &input, &cuts);
        prop_assert!(whole.iter().all(|f| f.is_text() && f.payload().len() <= max));
        // Pieces of overlong lines may be cut at different places, but never differently
        // when no line is over the limit.
        if input.split(|&b| b == b'\n').all(|l| l.len() <= max) {
            prop_assert_eq!(&whole, &split);
        }
        prop_assert!(split.iter().all(|f| f.payload().len() <= max));
    }

    #[test]
    fn lines_round_trip_through_the_encoder(
        lines in proptest::collection::vec("[^\r\n]{0,16}", 0..50),
    ) {
        let mut codec = Framing::Lines.codec(64);
        let mut wire = BytesMut::new();
        for line in &lines {
            codec.encode(Frame::Text(Bytes::from(line.clone())), &mut wire).unwrap();
        }
        let decoded = decode_split(Framing::Lines, 64, &wire, &[]);
        let expected: Vec<Frame> = lines.iter().map(|l| Frame::Text(Bytes::from(l.clone()))).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn chunks_carry_every_byte_in_order_within_the_limit(
        input in proptest::collection::vec(any::<u8>(), 0..5000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max in 1usize..512,
    ) {
        let frames = decode_split(Framing::Chunks, max, &input, &cuts);
        prop_assert!(frames.iter().all(|f| !f.is_text() && !f.payload().is_empty() && f.payload().len() <= max));
        prop_assert_eq!(payloads(&frames), input);
    }

    #[test]
    fn line_pieces_keep_every_byte_but_newlines_and_one_cr(
        input in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..3000),
        max in 4usize..128,
    ) {
        let frames = decode_split(Framing::Lines, max, &input, &[]);
        let kept: usize = frames.iter().map(|f| f.payload().len()).sum();
        prop_assert!(kept <= input.len());
        let newlines = input.iter().filter(|&&b| b == b'\n').count();
        prop_assert!(kept + 2 * newlines >= input.len());
    }
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    prop_oneof![
        "\\PC{0,40}".prop_map(|s| Frame::Text(Bytes::from(s))),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(|v| Frame::Binary(Bytes::from(v))),
    ]
}

proptest! {
    #[test]
    fn length_prefixed_records_round_trip_through_any_read_splits(
        frames in proptest::collection::vec(frame_strategy(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut codec = Framing::LengthPrefixed.codec(200);
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut wire).unwrap();
        }
        let decoded = decode_split(Framing::LengthPrefixed, 200, &wire, &cuts);
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn length_prefixed_decoding_never_panics_and_keeps_its_limit(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        max in 0usize..64,
    ) {
        let mut codec = Framing::LengthPrefixed.codec(max);
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
            prop_assert!(frame.payload().len() <= max);
            if frame.is_text() {
                prop_assert!(std::str::from_utf8(frame.payload()).is_ok());
            }
        }
    }
}
