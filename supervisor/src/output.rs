//! Output capture: every child's stdout/stderr goes through a pipe that the
//! daemon always drains into the instance's log file.
//!
//! A foundation module, below the actors: process actors write through it,
//! the Notifier (a failed instance's stderr tail) and sessions (`tail -f`)
//! read from it, and none of them imports another for it.
//!
//! One [`OutputSink`] exists per instance and stream, shared (`Arc`) by every
//! run of the instance: it holds the log path, the open file, and a broadcast
//! channel of raw chunks for `tail -f` followers and `log:` probes, each
//! with its offset in the followed stream (a follower that falls behind
//! learns how much it missed from the next offset it sees) and the run (the
//! spawn) whose pipe it came from. Each spawn starts one reader
//! task per piped stream ([`OutputSink::pump`]) on the actor's arbiter; it
//! reads 64 KiB at a time and writes with a synchronous `write_all` (fast, and
//! a local file write does not block for long), never decoding: bytes are
//! bytes, invalid UTF-8 included.
//!
//! The child must never block because of us: when the file cannot be written
//! (disk full, I/O error) the bytes are dropped and counted, one error is
//! logged per failing episode, and the pipe keeps being drained; the next
//! write that succeeds ends the episode (logged with the bytes lost).
//!
//! A file deleted or moved away under the daemon (its directory removed, a
//! rotation tool) is noticed when output arrives, without any timer (an idle
//! daemon does no work): at most once per second per sink, the open file is
//! compared with what is at its path (its device and inode, noted when it
//! was opened, against a `stat` of the path). On a difference the file is reopened at its path, creating the
//! directory only when it is the daemon's own `logs/`. When that fails, a
//! deleted file (link count 0) is closed and output is dropped and counted,
//! a file moved elsewhere keeps receiving it; either way it is logged once,
//! and retried at most once per second while output arrives. SIGUSR2 reopens
//! at once ([`OutputSink::open`]).
//!
//! [`read_tail`] reads only the end of a file (seeking back block by block),
//! for `tail` and for the output shown with a failed start.

use crate::sys::fsafe::{self, FileError};
use bytes::Bytes;
use proto::OutputStream;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, broadcast};

/// Bytes read from a pipe per system call.
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// The one read buffer of the (single) actor thread, shared by every
    /// pipe reader: reads are synchronous `try_read`s, never held across an
    /// await.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHUNK]);
}
/// Chunks a slow `tail -f` follower may lag before it loses some.
const FOLLOW_BACKLOG: usize = 256;
/// `read_tail` never reads more than this from the end of a file.
const TAIL_MAX_BYTES: u64 = 1024 * 1024;
const TAIL_BLOCK: u64 = 8 * 1024;

/// The run of chunks no spawn wrote ([`OutputSink::append`]): runs of
/// pumped pipes count from 1.
pub const NOT_A_RUN: u64 = 0;

/// A piece of output for followers (`tail -f`, `log:` probes). `offset`
/// counts the bytes handed to followers before it, so a follower that finds
/// a gap (it lagged behind the channel, or dropped chunks itself) knows how
/// much it missed. `run` is the [`OutputSink::current_run`] of the pipe it
/// came from: a previous spawn's pipe may still be drained (a descendant
/// still writing to it, or unread bytes) after the next spawn.
#[derive(Debug, Clone)]
pub struct FollowedChunk {
    pub offset: u64,
    pub run: u64,
    pub bytes: Bytes,
}

/// Where one stream of one instance is written.
#[derive(Debug)]
pub struct OutputSink {
    stream: OutputStream,
    /// `programs.web stdout`, for messages.
    label: String,
    path: PathBuf,
    /// Created before each open (the per-instance logs directory).
    create_dir: Option<PathBuf>,
    file: Mutex<FileState>,
    /// Created by the first `tail -f`: a channel's slots cost ~12 KiB,
    /// which thousands of never-followed sinks should not pay.
    chunks: std::sync::OnceLock<broadcast::Sender<FollowedChunk>>,
    /// Bytes handed to followers so far: the next chunk's offset.
    followed: AtomicU64,
    /// Pipes pumped so far: the run of the latest one.
    runs: AtomicU64,
    /// Reader tasks still draining a pipe into this sink.
    active: AtomicUsize,
    idle: Notify,
    dropped: AtomicU64,
}

/// How often, at most, a sink checks that its file is still at its path
/// (and retries reopening it).
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct FileState {
    file: Option<File>,
    /// (device, inode) of `file`, read when it was opened: a spawn then
    /// checks the path with one `stat`.
    identity: Option<(u64, u64)>,
    /// A write failed and no write succeeded since: do not log again.
    failing: bool,
    /// `dropped` when the current failing episode began.
    dropped_before: u64,
    /// The file is no longer at its path and could not be reopened there;
    /// already logged.
    lost: bool,
    /// Last check of the file against its path.
    checked: Option<Instant>,
}

impl OutputSink {
    /// A sink writing `program`'s `stream` to `path`; `create_dir` is made
    /// (with parents, mode 0750) when an open finds it missing.
    pub fn new(
        program: &str,
        stream: OutputStream,
        path: PathBuf,
        create_dir: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(OutputSink {
            stream,
            label: fsafe::output_label(program, stream),
            path,
            create_dir,
            file: Mutex::new(FileState::default()),
            chunks: std::sync::OnceLock::new(),
            followed: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stream(&self) -> OutputStream {
        self.stream
    }

    /// Bytes lost to write errors so far.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `programs.web stdout`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The last `n` lines of the file ([`read_tail`]).
    pub fn tail(&self, n: usize) -> Result<Vec<String>, FileError> {
        read_tail(&self.path, &self.label, n)
    }

    /// (Re)opens the file (append, create, mode 0640), before each spawn and
    /// on SIGUSR2, so a rotated or deleted log is recreated. On failure the
    /// file already open, if any, stays in use. A symlink, FIFO or anything
    /// but a regular file at the path is refused ([`fsafe`]).
    pub fn open(&self) -> Result<(), FileError> {
        let opened = self.open_file()?;
        let mut state = self.lock();
        self.replace_file(&mut state, opened, "reopened");
        Ok(())
    }

    /// Makes sure the file is open at its path before a spawn: keeps the
    /// open one when it is still the file at the path (the common case of
    /// a restart: one `stat` instead of `open` and `close`), reopens it
    /// otherwise.
    pub fn ensure_open(&self) -> Result<(), FileError> {
        {
            let state = self.lock();
            if state.file.is_some() && !state.lost && !state.failing && self.still_at_path(&state) {
                return Ok(());
            }
        }
        self.open()
    }

    fn open_file(&self) -> Result<(File, std::fs::Metadata), FileError> {
        let open = || fsafe::open_append(&self.path, &self.label);
        match (open(), &self.create_dir) {
            // The directory only when it is missing: a `mkdir` per open
            // was measurable when 1000 instances start.
            (Err(e), Some(dir)) if e.is_not_found() => {
                fsafe::create_dir_all(dir).map_err(|source| FileError::Io {
                    what: format!("the directory of {}", self.label),
                    access: fsafe::Access::Write,
                    path: dir.clone(),
                    source,
                })?;
                open()
            }
            (result, _) => result,
        }
    }

    /// Installs a freshly opened file, ending any lost or failing episode
    /// (logged with what it cost).
    fn replace_file(
        &self,
        state: &mut FileState,
        (file, meta): (File, std::fs::Metadata),
        how: &str,
    ) {
        if state.lost || state.failing {
            let dropped = self.dropped_bytes() - state.dropped_before;
            tracing::info!(stream = %self.stream, path = %self.path.display(), dropped_bytes = dropped,
                "output file {how}; writing again");
        }
        use std::os::unix::fs::MetadataExt;
        state.identity = Some((meta.dev(), meta.ino()));
        state.file = Some(file);
        state.failing = false;
        state.lost = false;
    }

    /// Whether the open file is still the one at the path (and so linked).
    /// A symlink at the path is not (`lstat`): it is never followed.
    fn still_at_path(&self, state: &FileState) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (state.identity, std::fs::symlink_metadata(&self.path)) {
            (Some(open), Ok(there)) => open == (there.dev(), there.ino()),
            (Some(_), Err(_)) => false,
            // Could not tell when it was opened: do not churn.
            (None, _) => true,
        }
    }

    /// At most once per [`CHECK_EVERY`], while output arrives: reopens the
    /// file at its path if it was deleted or moved away (see the module doc).
    fn check_file(&self, state: &mut FileState, name: &str, now: Instant) {
        if state
            .checked
            .is_some_and(|at| now.saturating_duration_since(at) < CHECK_EVERY)
        {
            return;
        }
        state.checked = Some(now);
        let unlinked = match &state.file {
            Some(_) if self.still_at_path(state) => return,
            Some(f) => {
                use std::os::unix::fs::MetadataExt;
                f.metadata().is_ok_and(|m| m.nlink() == 0)
            }
            // Never opened, or lost: try again.
            None => true,
        };
        match self.open_file() {
            Ok(file) => {
                if !state.lost && state.file.is_some() {
                    tracing::warn!(process = %name, stream = %self.stream, path = %self.path.display(),
                        "output file was deleted or moved away; recreated it at its path");
                }
                self.replace_file(state, file, "recreated");
            }
            Err(_) if state.lost => {}
            Err(e) => {
                state.lost = true;
                state.dropped_before = self.dropped_bytes();
                if state.file.is_none() {
                    tracing::error!(process = %name, stream = %self.stream,
                        "{e}; dropping output until the file can be opened");
                } else if unlinked {
                    // Writing on would fill the disk with a file nobody sees.
                    state.file = None;
                    tracing::error!(process = %name, stream = %self.stream,
                        "output file was deleted and cannot be recreated ({e}); dropping output until it can be");
                } else {
                    tracing::warn!(process = %name, stream = %self.stream,
                        "output file was moved away and cannot be recreated at its path ({e}); still writing to the moved file");
                }
            }
        }
    }

    /// The run of the pipe pumped last ([`pump`](Self::pump) counts them
    /// from 1; 0 before any): right after a spawn, that spawn's.
    pub fn current_run(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// A follower of chunks written from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FollowedChunk> {
        self.chunks
            .get_or_init(|| broadcast::channel(FOLLOW_BACKLOG).0)
            .subscribe()
    }

    /// Starts draining `pipe` (the read end of a child's stream) into this
    /// sink, on the current arbiter. `name` labels the log lines.
    pub fn pump(self: &Arc<Self>, pipe: OwnedFd, name: &str) {
        // We made the pipe: no need for tokio's checks (an `fstat` and two
        // `fcntl`s), only non-blocking mode, on our end only.
        let receiver = match nix::fcntl::fcntl(
            &pipe,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(io::Error::from)
        .and_then(|_| pipe::Receiver::from_owned_fd_unchecked(pipe))
        {
            Ok(r) => r,
            Err(e) => {
                // The pipe is dropped: the child gets EPIPE instead of blocking.
                tracing::error!(process = %name, stream = %self.stream, error = %e,
                    "cannot read output pipe");
                return;
            }
        };
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        self.active.fetch_add(1, Ordering::SeqCst);
        let sink = Arc::clone(self);
        let name = name.to_string();
        actix::spawn(async move {
            sink.drain(receiver, &name, run).await;
            sink.active.fetch_sub(1, Ordering::SeqCst);
            sink.idle.notify_waiters();
        });
    }

    async fn drain(&self, receiver: pipe::Receiver, name: &str, run: u64) {
        loop {
            // Wait for data without holding a buffer: a 64 KiB buffer per
            // idle pipe was the whole daemon's RSS (125 MiB for 1000
            // instances). The read itself is synchronous, into the one
            // buffer of this thread, so no await happens while it is lent.
            if let Err(e) = receiver.readable().await {
                tracing::error!(process = %name, stream = %self.stream, error = %e,
                    "output pipe read failed; no longer capturing");
                return;
            }
            let read = READ_BUFFER.with_borrow_mut(|buf| match receiver.try_read(buf) {
                Ok(0) => Ok(false),
                Ok(n) => {
                    self.write(&buf[..n], name, run);
                    Ok(true)
                }
                Err(e) => Err(e),
            });
            match read {
                Ok(true) => {}
                Ok(false) => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    tracing::error!(process = %name, stream = %self.stream, error = %e,
                        "output pipe read failed; no longer capturing");
                    return;
                }
            }
        }
    }

    /// Appends output read elsewhere (a helper command's, which reads its
    /// own pipe to keep its last lines) like a pumped chunk: to the file
    /// and to followers, as no spawn's run ([`NOT_A_RUN`]), so a `log:`
    /// probe never matches a `before_start` hook's output.
    pub fn append(&self, chunk: &[u8], name: &str) {
        self.write(chunk, name, NOT_A_RUN);
    }

    /// Appends one chunk of `run`'s pipe to the file and hands it to
    /// followers.
    fn write(&self, chunk: &[u8], name: &str, run: u64) {
        self.write_at(chunk, name, run, Instant::now());
    }

    fn write_at(&self, chunk: &[u8], name: &str, run: u64, now: Instant) {
        {
            let mut state = self.lock();
            self.check_file(&mut state, name, now);
            let result = match state.file.as_mut() {
                Some(f) => f.write_all(chunk),
                None => Err(io::Error::other("log file is not open")),
            };
            match result {
                Ok(()) if state.failing => {
                    let dropped = self.dropped_bytes() - state.dropped_before;
                    tracing::info!(process = %name, stream = %self.stream,
                        path = %self.path.display(), dropped_bytes = dropped,
                        "output written again");
                    state.failing = false;
                }
                Ok(()) => {}
                Err(e) => {
                    if !state.failing && !state.lost {
                        state.failing = true;
                        state.dropped_before = self.dropped_bytes();
                        tracing::error!(process = %name, stream = %self.stream,
                            path = %self.path.display(), error = %e,
                            "cannot write output; dropping it until writes succeed again");
                    }
                    self.dropped
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
        }
        if let Some(chunks) = self.chunks.get()
            && chunks.receiver_count() > 0
        {
            let offset = self
                .followed
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            // No receiver left between the check and the send is harmless.
            let _ = chunks.send(FollowedChunk {
                offset,
                run,
                bytes: Bytes::copy_from_slice(chunk),
            });
        }
    }

    /// Waits (at most `limit`) until every reader has hit end of file, so a
    /// failed start's output is on disk before it is shown.
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Created before the check, so a wake-up in between is not lost.
            let idle = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, FileState> {
        // Only held for one write on one thread; a poisoned state is usable.
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The last `n` lines of the file at `path` (lossy UTF-8, oldest first),
/// reading at most 1 MiB from its end. Only a regular file, never through a
/// symlink (a program may have replaced its log with one, or with a FIFO
/// that would block the open); `what` names it in the error.
pub fn read_tail(path: &Path, what: &str, n: usize) -> Result<Vec<String>, FileError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let (file, meta) = fsafe::open_read(path, what, fsafe::Follow::No)?;
    read_tail_of(file, meta.len(), n).map_err(|source| FileError::Io {
        what: what.to_string(),
        access: fsafe::Access::Read,
        path: path.to_path_buf(),
        source,
    })
}

fn read_tail_of(mut file: File, len: u64, n: usize) -> io::Result<Vec<String>> {
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    // Until it holds n complete lines plus the newline before the first.
    while start > 0 && newlines(&tail) <= n && len - start < TAIL_MAX_BYTES {
        let from = start.saturating_sub(TAIL_BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&tail);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let lines: Vec<&str> = body.split('\n').collect();
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..]
        .iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Newlines in `buf`, not counting a final one (it ends the last line).
fn newlines(buf: &[u8]) -> usize {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    body.iter().filter(|b| **b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn tail_reads_the_last_lines_across_blocks() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text)?;
        let got = read_tail(&path, "x", 3)?;
        assert_eq!(got, vec!["line 4997", "line 4998", "line 4999"]);
        let got = read_tail(&path, "x", 2000)?;
        assert_eq!(got.len(), 2000);
        assert_eq!(got[0], "line 3000");
        assert!(read_tail(&path, "x", 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn tail_handles_short_empty_unterminated_and_invalid_utf8() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        std::fs::write(&path, b"")?;
        assert!(read_tail(&path, "x", 5)?.is_empty());
        std::fs::write(&path, b"a\r\nb\n\nc")?;
        assert_eq!(read_tail(&path, "x", 10)?, vec!["a", "b", "", "c"]);
        std::fs::write(&path, b"ok\nbad \xff\xfe end\n")?;
        assert_eq!(read_tail(&path, "x", 1)?, vec!["bad \u{fffd}\u{fffd} end"]);
        assert!(read_tail(&dir.path().join("missing"), "x", 1).is_err());
        Ok(())
    }

    #[test]
    fn tail_of_one_huge_line_is_bounded() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        std::fs::write(&path, vec![b'x'; 3 * 1024 * 1024])?;
        let got = read_tail(&path, "x", 1)?;
        assert_eq!(got.len(), 1);
        assert!(got[0].len() as u64 <= TAIL_MAX_BYTES + TAIL_BLOCK);
        Ok(())
    }

    #[test]
    fn open_creates_the_directory_and_a_0640_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("a/b");
        let sink = OutputSink::new(
            "t",
            OutputStream::Stdout,
            logs.join("x.log"),
            Some(logs.clone()),
        );
        sink.open()?;
        let mode = std::fs::metadata(sink.path())?.permissions().mode() & 0o777;
        // The daemon's umask may only remove bits.
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
        sink.write(b"hello\n", "t:0", 1);
        assert_eq!(std::fs::read(sink.path())?, b"hello\n");
        Ok(())
    }

    #[test]
    fn write_errors_drop_and_count_bytes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new(
            "t",
            OutputStream::Stderr,
            dir.path().join("nope/x.log"),
            None,
        );
        assert!(sink.open().is_err());
        sink.write(b"12345", "t:0", 1);
        sink.write(b"678", "t:0", 1);
        assert_eq!(sink.dropped_bytes(), 8);
        Ok(())
    }

    const SEC: Duration = Duration::from_secs(1);
    const HALF: Duration = Duration::from_millis(500);

    #[test]
    fn a_deleted_logs_directory_is_recreated_at_the_next_check() -> TestResult {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("logs");
        let sink = OutputSink::new(
            "t",
            OutputStream::Stdout,
            logs.join("x.log"),
            Some(logs.clone()),
        );
        sink.open()?;
        let t0 = Instant::now();
        sink.write_at(b"a\n", "t:0", 1, t0);
        std::fs::remove_dir_all(&logs)?;
        // Within the second: not checked yet (no path lookup per write).
        sink.write_at(b"b\n", "t:0", 1, t0 + HALF);
        assert!(!logs.exists());
        sink.write_at(b"c\n", "t:0", 1, t0 + SEC);
        assert_eq!(std::fs::read(sink.path())?, b"c\n");
        assert_eq!(sink.dropped_bytes(), 0);
        Ok(())
    }

    #[test]
    fn a_deleted_file_in_a_missing_directory_drops_output_until_it_exists() -> TestResult {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("out");
        std::fs::create_dir(&out)?;
        // Not the daemon's logs/: the sink must not create the directory.
        let sink = OutputSink::new("t", OutputStream::Stderr, out.join("x.log"), None);
        sink.open()?;
        let t0 = Instant::now();
        sink.write_at(b"a\n", "t:0", 1, t0);
        std::fs::remove_dir_all(&out)?;
        sink.write_at(b"12345", "t:0", 1, t0 + SEC);
        sink.write_at(b"678", "t:0", 1, t0 + SEC + HALF);
        assert!(!out.exists(), "the directory must not be recreated");
        assert_eq!(sink.dropped_bytes(), 8);
        std::fs::create_dir(&out)?;
        // Retried at most once per second.
        sink.write_at(b"9", "t:0", 1, t0 + SEC + HALF);
        assert!(!sink.path().exists());
        sink.write_at(b"back\n", "t:0", 1, t0 + 2 * SEC);
        assert_eq!(std::fs::read(sink.path())?, b"back\n");
        assert_eq!(sink.dropped_bytes(), 9);
        Ok(())
    }

    #[test]
    fn a_file_moved_away_is_reopened_at_its_path() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new("t", OutputStream::Stdout, dir.path().join("x.log"), None);
        sink.open()?;
        let t0 = Instant::now();
        sink.write_at(b"old\n", "t:0", 1, t0);
        let moved = dir.path().join("x.log.1");
        std::fs::rename(sink.path(), &moved)?;
        sink.write_at(b"new\n", "t:0", 1, t0 + SEC);
        assert_eq!(std::fs::read(&moved)?, b"old\n");
        assert_eq!(std::fs::read(sink.path())?, b"new\n");
        // A file that stays in place is left alone.
        sink.write_at(b"more\n", "t:0", 1, t0 + 3 * SEC);
        assert_eq!(std::fs::read(sink.path())?, b"new\nmore\n");
        Ok(())
    }

    #[test]
    fn a_full_disk_drops_and_counts_without_blocking() -> TestResult {
        // /dev/full behind the open file (a device is refused at a path):
        // every write fails with ENOSPC; the check sees the same file at its
        // path and does not churn.
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new("t", OutputStream::Stdout, dir.path().join("x.log"), None);
        sink.open()?;
        sink.lock().file = Some(File::options().write(true).open("/dev/full")?);
        let t0 = Instant::now();
        for i in 0..10u32 {
            sink.write_at(&[b'x'; 1000], "t:0", 1, t0 + i * SEC);
        }
        assert_eq!(sink.dropped_bytes(), 10_000);
        let state = sink.lock();
        assert!(state.failing && !state.lost, "{state:?}");
        Ok(())
    }

    #[test]
    fn a_symlink_or_fifo_put_in_place_of_the_file_is_never_written_through() -> TestResult {
        let dir = tempfile::tempdir()?;
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched\n")?;
        let sink = OutputSink::new("web", OutputStream::Stdout, dir.path().join("x.log"), None);
        sink.open()?;
        let t0 = Instant::now();
        sink.write_at(b"a\n", "web:0", 1, t0);
        std::fs::remove_file(sink.path())?;
        std::os::unix::fs::symlink(&victim, sink.path())?;
        sink.write_at(b"b\n", "web:0", 1, t0 + SEC);
        sink.write_at(b"c\n", "web:0", 1, t0 + 3 * SEC);
        assert_eq!(std::fs::read(&victim)?, b"untouched\n");
        assert_eq!(sink.dropped_bytes(), 4);
        let err = sink.open().err().ok_or("opened through a symlink")?;
        assert!(
            err.to_string()
                .starts_with("refusing to write programs.web stdout to a symlink"),
            "{err}"
        );
        assert!(sink.tail(1).is_err());
        // A FIFO: refused at once, never waited on.
        std::fs::remove_file(sink.path())?;
        nix::unistd::mkfifo(sink.path(), nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        sink.write_at(b"d\n", "web:0", 1, t0 + 5 * SEC);
        assert!(sink.open().is_err());
        assert!(sink.tail(1).is_err());
        assert_eq!(sink.dropped_bytes(), 6);
        Ok(())
    }

    #[test]
    fn pump_drains_a_pipe_into_file_and_followers() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new("t", OutputStream::Stdout, dir.path().join("x.log"), None);
        sink.open()?;
        let (read_end, write_end) = nix::unistd::pipe()?;
        let mut follower = sink.subscribe();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let expected_len = data.len();
        let sink2 = Arc::clone(&sink);
        actix_rt::System::new().block_on(async move {
            sink2.pump(read_end, "t:0");
            // A writer on another thread: the pipe must be drained while it
            // writes more than the pipe buffer holds.
            let writer = std::thread::spawn(move || {
                let mut f = File::from(write_end);
                f.write_all(&data)
            });
            let mut followed = 0usize;
            while followed < expected_len {
                match follower.recv().await {
                    Ok(chunk) => {
                        assert_eq!(chunk.offset, followed as u64);
                        followed += chunk.bytes.len();
                    }
                    Err(e) => panic!("follower: {e}"),
                }
            }
            assert!(matches!(writer.join(), Ok(Ok(()))));
            sink2.settle(Duration::from_secs(5)).await;
        });
        assert_eq!(sink.active.load(Ordering::SeqCst), 0, "reader finished");
        assert_eq!(std::fs::read(sink.path())?, expected);
        Ok(())
    }
}
