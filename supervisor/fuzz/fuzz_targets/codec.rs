//! Fuzz target: the control protocol's JSON-lines framing
//! (`proto::JsonLinesCodec`), both ways: the daemon decoding `Request`s
//! (from the hello on) and the client decoding `Response`s.
//!
//! Input: one byte choosing how the stream is cut into reads, two bytes
//! choosing the line cap (small, so the cap is reached), then the stream.
//! Checked, besides "no panic":
//! - the frames decoded do not depend on how the stream was cut into reads
//!   (fed whole, or in chunks with a decode after each);
//! - the buffer a decoder leaves waiting never exceeds the cap: a client
//!   cannot grow the daemon by sending a line without end;
//! - a `Request` decoded is encoded (as the client does) and decoded back
//!   unchanged.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use proto::{JsonLinesCodec, Request, Response};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio_util::codec::{Decoder, Encoder};

/// What a decoder yielded: frames (a bad line as `None`), then whether the
/// stream ended on a framing error.
type Frames<T> = (Vec<Option<T>>, bool);

fn decode_all<T: DeserializeOwned>(stream: &[u8], chunk: usize, max: usize) -> Frames<T> {
    let mut codec = JsonLinesCodec::<T, ()>::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.ok()),
                Ok(None) => {
                    assert!(
                        buf.len() <= max,
                        "{} bytes held past a {max} cap",
                        buf.len()
                    );
                    break;
                }
                Err(_) => return (frames, true),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame.ok()),
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

fn same_frames_however_cut<T: DeserializeOwned + PartialEq + Debug>(
    stream: &[u8],
    chunk: usize,
    max: usize,
) -> Vec<Option<T>> {
    let whole = decode_all::<T>(stream, stream.len().max(1), max);
    let cut = decode_all::<T>(stream, chunk, max);
    assert_eq!(whole, cut, "framing depends on the reads (chunk {chunk})");
    whole.0
}

fuzz_target!(|data: &[u8]| {
    let [cut, a, b, stream @ ..] = data else {
        return;
    };
    let chunk = 1 + usize::from(*cut) % 64;
    let max = 1 + usize::from(u16::from_le_bytes([*a, *b])) % 512;

    for request in same_frames_however_cut::<Request>(stream, chunk, max)
        .into_iter()
        .flatten()
    {
        let mut client = JsonLinesCodec::<Response, Request>::new(proto::MAX_LINE);
        let mut line = BytesMut::new();
        if client.encode(request.clone(), &mut line).is_err() {
            panic!("a decoded request does not encode: {request:?}");
        }
        let mut server = JsonLinesCodec::<Request, Response>::new(usize::MAX);
        match server.decode(&mut line) {
            Ok(Some(Ok(again))) => assert_eq!(again, request, "request changed on its way back"),
            other => panic!("a decoded request does not decode again: {request:?} → {other:?}"),
        }
    }
    same_frames_however_cut::<Response>(stream, chunk, max);
});
