//! The event log: every supervision event as one line, in a file and, in the
//! foreground, on stderr.
//!
//! Events are ordinary `tracing` events with structured fields
//! (`process = "web:0"`, `pid = 1234`); this module only decides where they go.
//! The file is opened in append mode before anything can fail later (never
//! through a symlink, and only if it is a regular file), can be
//! reopened (SIGUSR2, a changed `log.file` on reload) without losing a line,
//! and the level can be changed in place.

use crate::config::{LogConfig, LogLevel};
use crate::sys::fsafe::{self, FileError};
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

/// Control over the installed event log.
#[derive(Clone)]
pub struct EventLog {
    file: LogFile,
    level: reload::Handle<LevelFilter, Registry>,
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
        let stderr_layer = stderr.then(|| {
            tracing_subscriber::fmt::layer()
                .with_ansi(io::stderr().is_terminal())
                .with_target(false)
                .with_writer(io::stderr)
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(file_layer)
            .with(stderr_layer)
            .try_init()
            .map_err(|e| EventLogError::Install(e.to_string()))?;
        Ok(EventLog { file, level })
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
