//! The taskmaster control protocol, shared by `taskmasterd` and `taskmasterctl`.
//!
//! # Wire format
//!
//! One JSON object per line (`\n`-terminated, at most [`MAX_LINE`] bytes), so
//! that `nc` and `jq` can script the daemon. Every object is tagged:
//! `{"type": "status", "data": {"targets": ["web"]}}`.
//!
//! # Sequence
//!
//! 1. The client sends [`Request::Hello`] with [`PROTOCOL_VERSION`] and the
//!    token read from the daemon's token file. The daemon answers
//!    [`Response::Welcome`], or [`Response::Error`] (kind `auth`, after a
//!    fixed delay) and closes. Nothing else is executed before that.
//! 2. Then any number of requests, each answered by exactly one response, in
//!    order. The one exception is `tail` with `follow: true`: it is answered by
//!    a [`Response::Tail`] followed by [`Response::TailChunk`]s until the client
//!    closes the connection.
//!
//! A line that is not valid JSON or not a known request gets an error reply of
//! kind `bad_request`; the connection stays open. A line longer than
//! [`MAX_LINE`] gets an error reply of kind `too_large` and the connection is
//! closed, because the stream can no longer be framed.

mod client;
mod codec;
mod request;
mod response;
mod signal;
mod target;

pub use client::{Client, ClientError};
pub use codec::{CodecError, JsonLinesCodec};
pub use request::*;
pub use response::*;
pub use signal::{Signal, UnknownSignal};
pub use target::{BadTarget, Target};

/// Bumped only on breaking wire changes, never with the crate version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted line, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// Version of the taskmaster suite, reported by `version` on both sides.
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the daemon listens when the config has no `server.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4242";

/// Token file name, next to the config file, when `server.token_file` is unset.
pub const DEFAULT_TOKEN_FILE: &str = "taskmasterd.token";
