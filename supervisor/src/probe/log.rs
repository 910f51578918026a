//! The `log:` probe: a line of the instance's stdout or stderr, written by
//! this spawn, matches the pattern.
//!
//! Lines are assembled per stream from the chunks the output readers hand
//! to followers ([`OutputSink::subscribe`]): a line split across chunks is
//! joined, and stdout and stderr never mix (each has its own
//! [`LineMatcher`]). Memory is bounded: a line longer than [`MAX_LINE`] is
//! matched on its first `MAX_LINE` bytes, and the rest of it is skipped
//! without being kept. A trailing `\r` is not part of the line; invalid
//! UTF-8 is matched with replacement characters.
//!
//! **Contract: only this spawn's output.** [`Follower::of`] must be called
//! right after the spawn, in the same actor handler (before anything can
//! yield): the broadcast only carries chunks written after it subscribed,
//! and the output readers run on the same thread, so nothing of this spawn
//! can have been missed. A previous spawn's pipe may still be drained after
//! that (its unread bytes, or a descendant of the old process still
//! writing to it); those chunks carry the old run and are ignored, like a
//! `before_start` hook's output ([`OutputSink::append`]).
//!
//! A follower that falls behind (the broadcast keeps 256 chunks) loses
//! chunks: the gap is seen from the next chunk's offset, the line it cut is
//! dropped, and matching resumes at the next whole line, so a fragment is
//! never matched as if it were a line.

use crate::config::ready::LogPattern;
use crate::output::{FollowedChunk, OutputSink};
use futures::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

/// The longest line matched whole.
pub const MAX_LINE: usize = 64 * 1024;

/// A line assembler for one stream that matches each complete line.
#[derive(Debug)]
pub struct LineMatcher {
    pattern: LogPattern,
    /// The current line so far, at most [`MAX_LINE`] bytes.
    partial: Vec<u8>,
    /// The rest of the current line is not matched: it passed the bound
    /// (and was matched on its start), or it began before a gap.
    skipping: bool,
    /// The offset the next chunk should have; another one is a gap.
    next: Option<u64>,
}

impl LineMatcher {
    pub fn new(pattern: LogPattern) -> Self {
        LineMatcher {
            pattern,
            partial: Vec::new(),
            skipping: false,
            next: None,
        }
    }

    /// Feeds the next chunk of the stream; true when a line completed by it
    /// (or the first [`MAX_LINE`] bytes of a longer one) matches.
    pub fn feed(&mut self, chunk: &FollowedChunk) -> bool {
        self.step_over(chunk);
        self.feed_bytes(&chunk.bytes)
    }

    /// Notes a chunk without matching it (another run's): only its offset
    /// counts, so that it is not taken for a gap.
    pub fn step_over(&mut self, chunk: &FollowedChunk) {
        if self.next.is_some_and(|next| next != chunk.offset) {
            // Bytes were lost: the line they cut cannot be matched.
            self.partial.clear();
            self.skipping = true;
        }
        self.next = Some(chunk.offset + chunk.bytes.len() as u64);
    }

    /// Feeds bytes that follow the previous ones; true when a line matched.
    pub fn feed_bytes(&mut self, mut bytes: &[u8]) -> bool {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&bytes[..end], &bytes[end + 1..]);
            bytes = rest;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let matched = if self.partial.is_empty() {
                // The common case: a whole line inside one chunk, no copy.
                self.matches(&line[..line.len().min(MAX_LINE)])
            } else {
                let room = MAX_LINE - self.partial.len();
                self.partial
                    .extend_from_slice(&line[..line.len().min(room)]);
                let line = std::mem::take(&mut self.partial);
                let matched = self.matches(&line);
                self.keep_buffer(line);
                matched
            };
            if matched {
                return true;
            }
        }
        if self.skipping || bytes.is_empty() {
            return false;
        }
        let room = MAX_LINE - self.partial.len();
        if bytes.len() < room {
            self.partial.extend_from_slice(bytes);
            return false;
        }
        // The bound: match what we have, skip the rest of the line.
        self.partial.extend_from_slice(&bytes[..room]);
        let line = std::mem::take(&mut self.partial);
        let matched = self.matches(&line);
        self.keep_buffer(line);
        self.skipping = true;
        matched
    }

    fn matches(&self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.pattern.is_match(&String::from_utf8_lossy(line))
    }

    /// Reuses a line's buffer for the next, unless a long line grew it: an
    /// instance that wrote one long line does not keep 64 KiB.
    fn keep_buffer(&mut self, mut line: Vec<u8>) {
        if line.capacity() <= 4096 {
            line.clear();
            self.partial = line;
        }
    }
}

/// One stream of one spawn, subscribed to.
#[derive(Debug)]
pub struct Follower {
    run: u64,
    chunks: broadcast::Receiver<FollowedChunk>,
}

impl Follower {
    /// Follows `sink` from now on, for the spawn whose pipe it pumped last:
    /// call it right after the spawn (see the module doc).
    pub fn of(sink: &OutputSink) -> Self {
        Follower {
            run: sink.current_run(),
            chunks: sink.subscribe(),
        }
    }
}

/// Resolves when a line of any of `followers` (the instance's stdout and/or
/// stderr) matches `pattern`. It has no time limit of its own: the caller
/// bounds it (the `ready` timeout) or drops it (the instance stopped). An
/// error only when there is nothing (left) to follow.
pub async fn log(pattern: &LogPattern, followers: Vec<Follower>) -> Result<(), String> {
    if followers.is_empty() {
        return Err("neither stdout nor stderr is captured".into());
    }
    let streams = followers.into_iter().map(|follower| {
        let matcher = LineMatcher::new(pattern.clone());
        Box::pin(futures::stream::unfold(
            (follower, matcher),
            |(mut follower, mut matcher)| async move {
                loop {
                    match follower.chunks.recv().await {
                        Ok(chunk) if chunk.run != follower.run => matcher.step_over(&chunk),
                        Ok(chunk) => {
                            if matcher.feed(&chunk) {
                                return Some(((), (follower, matcher)));
                            }
                        }
                        // The next chunk's offset shows the gap.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    });
    match futures::stream::select_all(streams).next().await {
        Some(()) => Ok(()),
        None => Err("the output ended without a matching line".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proto::OutputStream;
    use std::fs::File;
    use std::io::Write;
    use std::pin::pin;
    use std::sync::Arc;
    use std::time::Duration;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn pattern(re: &str) -> Result<LogPattern, regex::Error> {
        Ok(LogPattern(regex::Regex::new(re)?))
    }

    /// Feeds `chunks` as consecutive pieces of one stream; the index of the
    /// first chunk that completed a matching line.
    fn first_match(re: &str, chunks: &[&[u8]]) -> Result<Option<usize>, regex::Error> {
        let mut m = LineMatcher::new(pattern(re)?);
        let mut offset = 0;
        for (i, bytes) in chunks.iter().enumerate() {
            let chunk = FollowedChunk {
                offset,
                run: 1,
                bytes: Bytes::copy_from_slice(bytes),
            };
            offset += bytes.len() as u64;
            if m.feed(&chunk) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    #[test]
    fn a_line_split_across_chunks_is_joined_and_matched_when_complete() -> TestResult {
        let chunks: &[&[u8]] = &[b"starting\nlisten", b"ing on ", b"8080", b"\nmore\n"];
        assert_eq!(first_match("^listening on 8080$", chunks)?, Some(3));
        // A fragment is not a line: `^on` never matches the middle of one.
        assert_eq!(first_match("^ing on", chunks)?, None);
        Ok(())
    }

    #[test]
    fn a_line_without_its_newline_yet_is_not_matched() -> TestResult {
        assert_eq!(first_match("ready", &[b"ready"])?, None);
        assert_eq!(first_match("ready", &[b"ready", b"\n"])?, Some(1));
        Ok(())
    }

    #[test]
    fn a_carriage_return_before_the_newline_is_not_part_of_the_line() -> TestResult {
        assert_eq!(first_match("^ready$", &[b"ready\r\n"])?, Some(0));
        Ok(())
    }

    #[test]
    fn invalid_utf8_is_matched_with_replacement_characters() -> TestResult {
        assert_eq!(
            first_match("^\u{fffd} ready$", &[b"\xff ready\n"])?,
            Some(0)
        );
        Ok(())
    }

    #[test]
    fn a_line_over_the_bound_is_matched_on_its_start_and_the_rest_skipped() -> TestResult {
        let long = vec![b'x'; 3 * MAX_LINE];
        // What lies past the bound is never seen...
        let mut tail_then_ready = long.clone();
        tail_then_ready.extend_from_slice(b"ready\n");
        assert_eq!(first_match("ready", &[&tail_then_ready])?, None);
        // ...while the next line is, and the start matches at the bound,
        // before the line's end arrived.
        assert_eq!(
            first_match("ready", &[&tail_then_ready, b"ready\n"])?,
            Some(1)
        );
        assert_eq!(
            first_match("^x{65536}$", &[&long[..MAX_LINE / 2], &long])?,
            Some(1)
        );
        // A line of exactly the bound is matched whole, once.
        assert_eq!(
            first_match("^x{65536}$", &[&long[..MAX_LINE], b"\n"])?,
            Some(0)
        );
        Ok(())
    }

    #[test]
    fn a_stream_without_newlines_keeps_at_most_the_bound() -> TestResult {
        let mut m = LineMatcher::new(pattern("never")?);
        let piece = Bytes::from(vec![b'a'; 60 * 1024]);
        for i in 0..200u64 {
            let chunk = FollowedChunk {
                offset: i * piece.len() as u64,
                run: 1,
                bytes: piece.clone(),
            };
            assert!(!m.feed(&chunk));
            assert!(m.partial.len() < MAX_LINE);
            assert!(m.partial.capacity() <= 2 * MAX_LINE);
        }
        Ok(())
    }

    #[test]
    fn the_line_cut_by_lost_chunks_is_not_matched_and_the_next_one_is() -> TestResult {
        let mut m = LineMatcher::new(pattern("^dy$")?);
        let chunk = |offset, bytes: &'static [u8]| FollowedChunk {
            offset,
            run: 1,
            bytes: Bytes::from_static(bytes),
        };
        assert!(!m.feed(&chunk(0, b"rea")));
        // Bytes 3..100 were lost: "dy" ends some line we did not see whole.
        assert!(!m.feed(&chunk(100, b"dy\n")));
        assert!(m.feed(&chunk(103, b"dy\n")));
        Ok(())
    }

    fn sink(dir: &std::path::Path, name: &str) -> Result<Arc<OutputSink>, FileError> {
        let sink = OutputSink::new("t", OutputStream::Stdout, dir.join(name), None);
        sink.open()?;
        Ok(sink)
    }

    /// A pipe whose read end `sink` drains (a spawn's stream): its write end.
    fn pumped(sink: &Arc<OutputSink>) -> nix::Result<File> {
        let (read_end, write_end) = nix::unistd::pipe()?;
        sink.pump(read_end, "t:0");
        Ok(File::from(write_end))
    }

    use crate::sys::fsafe::FileError;

    #[actix_rt::test]
    async fn only_the_current_spawns_output_is_matched_not_an_old_spawns_or_a_hooks() -> TestResult
    {
        let dir = tempfile::tempdir()?;
        let out = sink(dir.path(), "out.log")?;
        let mut old_run = pumped(&out)?;
        let mut new_run = pumped(&out)?;
        // Subscribed right after the (second) spawn, as the contract says.
        let ready = pattern("^ready$")?;
        let mut probe = pin!(log(&ready, vec![Follower::of(&out)]));
        let mut raw = out.subscribe();
        // The previous spawn's pipe still has a writer (a descendant).
        old_run.write_all(b"ready\n")?;
        let seen = tokio::time::timeout(Duration::from_secs(10), raw.recv()).await??;
        assert_eq!(&seen.bytes[..], b"ready\n");
        // A `before_start` hook's output, written to the same sink.
        out.append(b"ready\n", "t:0");
        assert_eq!(&raw.recv().await?.bytes[..], b"ready\n");
        // The probe has both chunks in its channel too: one poll reads them.
        assert!(futures::poll!(probe.as_mut()).is_pending());
        new_run.write_all(b"ready\n")?;
        tokio::time::timeout(Duration::from_secs(10), probe).await??;
        Ok(())
    }

    #[actix_rt::test]
    async fn stdout_and_stderr_are_separate_lines_and_either_may_match() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (out, err) = (sink(dir.path(), "out.log")?, sink(dir.path(), "err.log")?);
        let (mut stdout, mut stderr) = (pumped(&out)?, pumped(&err)?);
        let ready = pattern("^ready$")?;
        let mut probe = pin!(log(&ready, vec![Follower::of(&out), Follower::of(&err)]));
        let (mut raw_out, mut raw_err) = (out.subscribe(), err.subscribe());
        stdout.write_all(b"rea")?;
        stderr.write_all(b"dy\n")?;
        let limit = Duration::from_secs(10);
        tokio::time::timeout(limit, raw_out.recv()).await??;
        tokio::time::timeout(limit, raw_err.recv()).await??;
        assert!(futures::poll!(probe.as_mut()).is_pending());
        stderr.write_all(b"ready\n")?;
        tokio::time::timeout(limit, probe).await??;
        Ok(())
    }

    #[tokio::test]
    async fn nothing_to_follow_is_an_error_at_once() -> TestResult {
        let result = log(&pattern("x")?, Vec::new()).await;
        assert_eq!(result, Err("neither stdout nor stderr is captured".into()));
        Ok(())
    }
}
