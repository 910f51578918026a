//! The event log: every supervision event as one line, in a file and, in the
//! foreground, on stderr.
//!
//! Events are ordinary `tracing` events with structured fields
//! (`process = "web:0"`, `pid = 1234`); this module only decides where they go.
//! The file is opened in append mode before anything can fail later (never
//! through a symlink, and only if it is a regular file), can be
//! reopened (SIGUSR2, a changed `log.file` on reload) without losing a line,
//! and the level can be changed in place.
//!
//! Stderr is lossy: a pipe nobody reads, or a terminal paused with Ctrl-S,
//! must not freeze the daemon's one thread (it did after 817 lines). Lines
//! go through a bounded queue ([`STDERR_QUEUE`]) to a writer thread, which
//! alone blocks; a line that finds the queue full is dropped and counted,
//! and once the writer gets through again it says how many (`N lines
//! dropped`). The file keeps every line.

use crate::config::{LogConfig, LogLevel};
use crate::sys::fsafe::{self, FileError};
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

/// Why the event log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// Names the path and why (a symlink, a FIFO, an OS error).
    #[error("{0}")]
    Open(#[from] FileError),
    #[error("cannot install the event log: {0}")]
    Install(String),
}

/// Lines waiting for stderr at most; more are dropped and counted.
pub const STDERR_QUEUE: usize = 1024;

/// Control over the installed event log.
#[derive(Clone)]
pub struct EventLog {
    file: LogFile,
    level: reload::Handle<LevelFilter, Registry>,
    stderr: Option<StderrQueue>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.file.path())
            .finish()
    }
}

impl EventLog {
    /// Opens the log file and installs the global subscriber. With `stderr`,
    /// events are also written there (foreground mode).
    pub fn install(config: &LogConfig, stderr: bool) -> Result<Self, EventLogError> {
        let file = LogFile::open(&config.file)?;
        let (filter, level) = reload::Layer::new(level_filter(config.level));
        let file_layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .with_writer(file.clone());
        let queue = if stderr {
            Some(StderrQueue::start().map_err(|e| {
                EventLogError::Install(format!("cannot start the stderr writer: {e}"))
            })?)
        } else {
            None
        };
        let stderr_layer = queue.clone().map(|queue| {
            tracing_subscriber::fmt::layer()
                .with_ansi(io::stderr().is_terminal())
                .with_target(false)
                .with_writer(queue)
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(file_layer)
            .with(stderr_layer)
            .try_init()
            .map_err(|e| EventLogError::Install(e.to_string()))?;
        Ok(EventLog {
            file,
            level,
            stderr: queue,
        })
    }

    /// Waits at most `timeout` for the lines queued for stderr to be
    /// written (at exit: the last lines say why the daemon stopped).
    pub fn flush_stderr(&self, timeout: Duration) {
        if let Some(queue) = &self.stderr {
            queue.flush(timeout);
        }
    }

    /// Applies a new `log:` section in place: level, and file if it moved.
    pub fn apply(&self, config: &LogConfig) -> Result<(), EventLogError> {
        if let Err(e) = self.level.reload(level_filter(config.level)) {
            return Err(EventLogError::Install(e.to_string()));
        }
        if config.file != self.file.path() {
            self.file.reopen_at(&config.file)?;
        }
        Ok(())
    }

    /// Reopens the file at its path (after logrotate moved it away).
    pub fn reopen(&self) -> Result<(), EventLogError> {
        let path = self.file.path();
        self.file.reopen_at(&path)
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// An append-mode file that can be swapped under the writers.
#[derive(Clone)]
struct LogFile(Arc<Mutex<(PathBuf, File)>>);

impl LogFile {
    fn open(path: &Path) -> Result<Self, EventLogError> {
        Ok(LogFile(Arc::new(Mutex::new((
            path.to_path_buf(),
            open_append(path)?,
        )))))
    }

    fn path(&self) -> PathBuf {
        self.lock().0.clone()
    }

    fn reopen_at(&self, path: &Path) -> Result<(), EventLogError> {
        // Open first: on failure the old file keeps receiving events.
        let file = open_append(path)?;
        *self.lock() = (path.to_path_buf(), file);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, (PathBuf, File)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Never through a symlink, never a FIFO or device ([`fsafe`]).
fn open_append(path: &Path) -> Result<File, EventLogError> {
    Ok(fsafe::open_append(path, "the event log")?.0)
}

/// One event's writer: buffers the formatted line, writes it whole on drop,
/// so lines from different events never interleave.
struct LineWriter {
    file: LogFile,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // A full disk must not take the daemon down: the line is lost.
        let _ = self.file.lock().1.write_all(&self.buf);
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            file: self.clone(),
            buf: Vec::with_capacity(160),
        }
    }
}

/// What the stderr writer thread is sent.
enum ToStderr {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(SyncSender<()>),
}

/// The non-blocking side of the stderr writer: a bounded queue and the
/// count of lines it refused.
#[derive(Clone)]
struct StderrQueue {
    tx: SyncSender<ToStderr>,
    dropped: Arc<AtomicU64>,
}

impl StderrQueue {
    fn start() -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(STDERR_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || write_stderr(&rx, &counted, &mut io::stderr()))?;
        Ok(StderrQueue { tx, dropped })
    }

    fn push(&self, line: Vec<u8>) {
        match self.tx.try_send(ToStderr::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (it cannot be, short of a panic): nothing
            // to write to.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn flush(&self, timeout: Duration) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.tx.try_send(ToStderr::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

/// The writer thread: the only place that may block on stderr. After each
/// line it gets through, it reports the lines dropped meanwhile.
fn write_stderr(rx: &Receiver<ToStderr>, dropped: &AtomicU64, out: &mut impl Write) {
    let mut batch = Vec::new();
    let mut flushed = Vec::new();
    while let Ok(first) = rx.recv() {
        // One write for what arrived together (an event often logs several
        // lines at once): fewer system calls and wake-ups.
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next {
            match message {
                ToStderr::Line(line) => batch.extend_from_slice(&line),
                ToStderr::Flush(done) => flushed.push(done),
            }
            taken += 1;
            // At most a queue's worth: the batch stays bounded.
            next = (taken < STDERR_QUEUE).then(|| rx.try_recv().ok()).flatten();
        }
        // A closed stderr loses the lines, nothing else.
        if out.write_all(&batch).is_ok() {
            let n = dropped.swap(0, Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "taskmasterd: {n} lines dropped: stderr was not being read \
                     (the event log file has every line)"
                );
            }
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One event's line for stderr, queued whole on drop.
struct StderrLine {
    queue: StderrQueue,
    buf: Vec<u8>,
}

impl Write for StderrLine {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        self.queue.push(std::mem::take(&mut self.buf));
    }
}

impl<'a> MakeWriter<'a> for StderrQueue {
    type Writer = StderrLine;

    fn make_writer(&'a self) -> Self::Writer {
        StderrLine {
            queue: self.clone(),
            buf: Vec::with_capacity(160),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_stderr_queue_drops_and_counts_and_the_writer_reports_the_count() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let queue = StderrQueue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for i in 0..5 {
            queue.push(format!("line {i}\n").into_bytes());
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 3);
        drop(queue.tx);
        let mut out = Vec::new();
        write_stderr(&rx, &queue.dropped, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "line 0\nline 1\ntaskmasterd: 3 lines dropped: stderr was not being read \
             (the event log file has every line)\n"
        );
    }
}
