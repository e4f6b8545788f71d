//! The length-prefix framing: any byte stream is cut into frames of at most
//! `MAX_FRAME_LEN` bytes that account for exactly the bytes consumed, or refused; never a
//! panic, and never an allocation sized by an unchecked length.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stowage_protocol::MAX_FRAME_LEN;
use stowage_protocol::codec::length_codec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The stream arrives in pieces: the first byte says how large (1..=256).
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step) + 1;
    let mut codec = length_codec();
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    for piece in stream.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME_LEN);
                    let header = &stream[consumed..consumed + 4];
                    assert_eq!(header, (frame.len() as u32).to_be_bytes());
                    let start = consumed + 4;
                    assert_eq!(&frame[..], &stream[start..start + frame.len()]);
                    consumed += 4 + frame.len();
                }
                Ok(None) => break,
                // A refused length ends the stream, as the host's transport does.
                Err(_) => return,
            }
        }
    }
    // At EOF a partial frame is an error, a clean end is none, with one exception found by
    // this target: a length header alone (its payload never sent) also ends the stream
    // without an error, because tokio-util's codec has consumed the header by then (see
    // stowage-protocol's `a_frame_header_alone_at_eof_ends_the_stream_quietly`).
    match codec.decode_eof(&mut buf) {
        Ok(None) => {
            let left = stream.len() - consumed;
            assert!(left == 0 || left == 4, "{left} bytes left unreported");
        }
        Ok(Some(_)) => panic!("decode_eof found a frame decode had not"),
        Err(_) => assert!(consumed < stream.len()),
    }
});
