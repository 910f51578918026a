//! `JsonLinesCodec`: one JSON value per `\n`-terminated line, with a length cap.
//!
//! A line that fails to parse is yielded as an `Err` *item*, so the reader can
//! answer it and go on; only a line over the cap (or an IO error) ends the
//! stream, because after it the framing is lost. Bytes, not `String`s, are
//! decoded, so invalid UTF-8 is just a parse error.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

/// A fatal framing error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("line longer than {max} bytes")]
    TooLarge { max: usize },
    #[error("cannot encode frame: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes `In` lines and encodes `Out` lines.
#[derive(Debug)]
pub struct JsonLinesCodec<In, Out> {
    max: usize,
    /// Where to resume the newline search, so a slow sender costs O(n) total.
    scanned: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> JsonLinesCodec<In, Out> {
    /// A codec that rejects lines longer than `max` bytes (newline excluded).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            scanned: 0,
            _types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonLinesCodec<In, Out> {
    type Item = Result<In, serde_json::Error>;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        loop {
            let Some(offset) = buf[self.scanned..].iter().position(|b| *b == b'\n') else {
                self.scanned = buf.len();
                if buf.len() > self.max {
                    return Err(CodecError::TooLarge { max: self.max });
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            self.scanned = 0;
            if end > self.max {
                return Err(CodecError::TooLarge { max: self.max });
            }
            let line = buf.split_to(end + 1);
            let line = trim(&line[..end]);
            if line.is_empty() {
                continue; // blank lines are keep-alives for hand-typed sessions
            }
            return Ok(Some(serde_json::from_slice(line)));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // A last line without newline (`printf '...' | nc`) still counts.
        self.scanned = 0;
        let rest = buf.split();
        let line = trim(&rest);
        if line.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(line)))
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonLinesCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        let json = serde_json::to_vec(&item)?;
        dst.reserve(json.len() + 1);
        dst.put_slice(&json);
        dst.put_u8(b'\n');
        Ok(())
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let mut line = line;
    while let [rest @ .., b'\r' | b' ' | b'\t'] = line {
        line = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Response};

    type ServerCodec = JsonLinesCodec<Request, Response>;

    #[test]
    fn splits_lines_and_skips_blanks() {
        let mut c = ServerCodec::new(1024);
        let mut buf = BytesMut::from(&b"\r\n{\"type\":\"version\"}\r\n{\"type\":\"rel"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Request::Version)))));
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"oad\"}\n");
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Request::Reload)))));
    }

    #[test]
    fn bad_json_and_bad_utf8_are_items_not_stream_errors() {
        let mut c = ServerCodec::new(1024);
        let mut buf = BytesMut::from(&b"nope\n\xff\xfe\n{\"type\":\"version\"}\n"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Err(_)))));
        assert!(matches!(c.decode(&mut buf), Ok(Some(Err(_)))));
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Request::Version)))));
    }

    #[test]
    fn overlong_line_is_fatal_even_without_newline() {
        let mut c = ServerCodec::new(16);
        let mut buf = BytesMut::from(&[b'a'; 17][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(CodecError::TooLarge { max: 16 })
        ));
        let mut c = ServerCodec::new(16);
        let mut buf = BytesMut::from(&b"aaaaaaaaaaaaaaaaaaaaa\n"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn last_line_without_newline_counts_at_eof() {
        let mut c = ServerCodec::new(64);
        let mut buf = BytesMut::from(&b"{\"type\":\"version\"}"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        assert!(matches!(
            c.decode_eof(&mut buf),
            Ok(Some(Ok(Request::Version)))
        ));
    }

    #[test]
    fn encodes_one_line() {
        let mut c = ServerCodec::new(64);
        let mut buf = BytesMut::new();
        assert!(
            c.encode(Response::error(crate::ErrorKind::Busy, "x"), &mut buf)
                .is_ok()
        );
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
