//! Output capture: every child's stdout/stderr goes through a pipe that the
//! daemon always drains into the instance's log file.
//!
//! One [`OutputSink`] exists per instance and stream, shared (`Arc`) by every
//! run of the instance: it holds the log path, the open file, and a broadcast
//! channel of raw chunks for `tail -f` followers. Each spawn starts one reader
//! task per piped stream ([`OutputSink::pump`]) on the actor's arbiter; it
//! reads 64 KiB at a time and writes with a synchronous `write_all` (fast, and
//! a local file write does not block for long), never decoding: bytes are
//! bytes, invalid UTF-8 included.
//!
//! The child must never block because of us: when the file cannot be written
//! the bytes are dropped and counted, one error is logged per failing
//! episode, and the pipe keeps being drained.
//!
//! [`read_tail`] reads only the end of a file (seeking back block by block),
//! for `tail` and for the output shown with a failed start.

use bytes::Bytes;
use proto::OutputStream;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{Notify, broadcast};

/// Bytes read from a pipe per system call.
const CHUNK: usize = 64 * 1024;
/// Chunks a slow `tail -f` follower may lag before it loses some.
const FOLLOW_BACKLOG: usize = 256;
/// `read_tail` never reads more than this from the end of a file.
const TAIL_MAX_BYTES: u64 = 1024 * 1024;
const TAIL_BLOCK: u64 = 8 * 1024;

/// Where one stream of one instance is written.
#[derive(Debug)]
pub struct OutputSink {
    stream: OutputStream,
    path: PathBuf,
    /// Created before each open (the per-instance logs directory).
    create_dir: Option<PathBuf>,
    file: Mutex<FileState>,
    chunks: broadcast::Sender<Bytes>,
    /// Reader tasks still draining a pipe into this sink.
    active: AtomicUsize,
    idle: Notify,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct FileState {
    file: Option<File>,
    /// A write failed and no write succeeded since: do not log again.
    failing: bool,
}

impl OutputSink {
    /// A sink writing to `path`; `create_dir` is made (with parents) before
    /// every open.
    pub fn new(stream: OutputStream, path: PathBuf, create_dir: Option<PathBuf>) -> Arc<Self> {
        let (chunks, _) = broadcast::channel(FOLLOW_BACKLOG);
        Arc::new(OutputSink {
            stream,
            path,
            create_dir,
            file: Mutex::new(FileState::default()),
            chunks,
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

    /// (Re)opens the file (append, create, mode 0640), before each spawn, so
    /// a rotated or deleted log is recreated.
    pub fn open(&self) -> io::Result<()> {
        if let Some(dir) = &self.create_dir {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)?;
        let mut state = self.lock();
        state.file = Some(file);
        state.failing = false;
        Ok(())
    }

    /// A follower of chunks written from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.chunks.subscribe()
    }

    /// Starts draining `pipe` (the read end of a child's stream) into this
    /// sink, on the current arbiter. `name` labels the log lines.
    pub fn pump(self: &Arc<Self>, pipe: OwnedFd, name: &str) {
        let receiver = match pipe::Receiver::from_owned_fd(pipe) {
            Ok(r) => r,
            Err(e) => {
                // The pipe is dropped: the child gets EPIPE instead of blocking.
                tracing::error!(process = %name, stream = %self.stream, error = %e,
                    "cannot read output pipe");
                return;
            }
        };
        self.active.fetch_add(1, Ordering::SeqCst);
        let sink = Arc::clone(self);
        let name = name.to_string();
        actix::spawn(async move {
            sink.drain(receiver, &name).await;
            sink.active.fetch_sub(1, Ordering::SeqCst);
            sink.idle.notify_waiters();
        });
    }

    async fn drain(&self, mut receiver: pipe::Receiver, name: &str) {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match receiver.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => self.write(&buf[..n], name),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(process = %name, stream = %self.stream, error = %e,
                        "output pipe read failed; no longer capturing");
                    return;
                }
            }
        }
    }

    /// Appends one chunk to the file and hands it to followers.
    fn write(&self, chunk: &[u8], name: &str) {
        {
            let mut state = self.lock();
            let result = match state.file.as_mut() {
                Some(f) => f.write_all(chunk),
                None => Err(io::Error::other("log file is not open")),
            };
            match result {
                Ok(()) => state.failing = false,
                Err(e) => {
                    self.dropped
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if !state.failing {
                        state.failing = true;
                        tracing::error!(process = %name, stream = %self.stream,
                            path = %self.path.display(), error = %e,
                            "cannot write output; dropping it until writes succeed again");
                    }
                }
            }
        }
        if self.chunks.receiver_count() > 0 {
            // No receiver left between the check and the send is harmless.
            let _ = self.chunks.send(Bytes::copy_from_slice(chunk));
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
/// reading at most 1 MiB from its end.
pub fn read_tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
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
        let got = read_tail(&path, 3)?;
        assert_eq!(got, vec!["line 4997", "line 4998", "line 4999"]);
        let got = read_tail(&path, 2000)?;
        assert_eq!(got.len(), 2000);
        assert_eq!(got[0], "line 3000");
        assert!(read_tail(&path, 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn tail_handles_short_empty_unterminated_and_invalid_utf8() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        std::fs::write(&path, b"")?;
        assert!(read_tail(&path, 5)?.is_empty());
        std::fs::write(&path, b"a\r\nb\n\nc")?;
        assert_eq!(read_tail(&path, 10)?, vec!["a", "b", "", "c"]);
        std::fs::write(&path, b"ok\nbad \xff\xfe end\n")?;
        assert_eq!(read_tail(&path, 1)?, vec!["bad \u{fffd}\u{fffd} end"]);
        assert!(read_tail(&dir.path().join("missing"), 1).is_err());
        Ok(())
    }

    #[test]
    fn tail_of_one_huge_line_is_bounded() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        std::fs::write(&path, vec![b'x'; 3 * 1024 * 1024])?;
        let got = read_tail(&path, 1)?;
        assert_eq!(got.len(), 1);
        assert!(got[0].len() as u64 <= TAIL_MAX_BYTES + TAIL_BLOCK);
        Ok(())
    }

    #[test]
    fn open_creates_the_directory_and_a_0640_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("a/b");
        let sink = OutputSink::new(OutputStream::Stdout, logs.join("x.log"), Some(logs.clone()));
        sink.open()?;
        let mode = std::fs::metadata(sink.path())?.permissions().mode() & 0o777;
        // The daemon's umask may only remove bits.
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
        sink.write(b"hello\n", "t:0");
        assert_eq!(std::fs::read(sink.path())?, b"hello\n");
        Ok(())
    }

    #[test]
    fn write_errors_drop_and_count_bytes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new(OutputStream::Stderr, dir.path().join("nope/x.log"), None);
        assert!(sink.open().is_err());
        sink.write(b"12345", "t:0");
        sink.write(b"678", "t:0");
        assert_eq!(sink.dropped_bytes(), 8);
        Ok(())
    }

    #[test]
    fn pump_drains_a_pipe_into_file_and_followers() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = OutputSink::new(OutputStream::Stdout, dir.path().join("x.log"), None);
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
                    Ok(chunk) => followed += chunk.len(),
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
