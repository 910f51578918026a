//! Test harness for the end-to-end tests: the real `taskmasterd` and
//! `taskmasterctl`, real processes, real signals, real sockets.
//!
//! - [`bins`] builds and locates the binaries once per test process.
//! - [`TestDaemon`] runs one daemon in its own temporary directory (config,
//!   token, event log and `logs/` all live there), finds its control address
//!   on stderr, talks to it, and on `Drop` SIGKILLs it and *every* process it
//!   started, even when the test panicked.
//! - [`procfs`] reads `/proc`, so tests judge processes by what the kernel
//!   says rather than by what the daemon reports.
//! - [`wait_until`] is the only way tests wait: poll a condition against a
//!   deadline, never sleep for a guessed duration.
//! - [`smtp`] is a real SMTP server on loopback (answering, silent, or a
//!   closed port), for the email notification tests.

pub mod bench;
pub mod bins;
mod cmd;
mod daemon;
pub mod procfs;
pub mod smtp;

pub use cmd::{CmdOutput, run_with_timeout};
pub use daemon::{
    CONFIG_FILE, DaemonBuilder, EVENT_LOG_FILE, TestDaemon, line_mentions, remove_daemon_cgroups,
};

use std::path::Path;
use std::time::{Duration, Instant};

/// What went wrong in the harness (not in the test's assertions).
///
/// `Debug` shows the message (with real newlines), because a test returning
/// `Err` is reported with `Debug`, and captured stderr must stay readable.
#[derive(thiserror::Error)]
pub enum HarnessError {
    #[error("{0}")]
    Build(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("taskmasterd did not come up: {reason}\n--- captured stderr ---\n{stderr}")]
    DaemonStart { reason: String, stderr: String },
    #[error(transparent)]
    Client(#[from] proto::ClientError),
    #[error("taskmasterd answered an error: {0}")]
    Daemon(String),
    #[error("taskmasterd answered something unexpected: {0}")]
    Unexpected(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

impl std::fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl HarnessError {
    /// An IO error with what we were doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}

/// How long tests wait for what should happen at once (a start, a
/// restart, a reply): generous, for a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

/// The error type tests return: anything, reported with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Polls `condition` every 5 ms until it holds (true) or `timeout` passed
/// (false). The condition is always evaluated at least once, and once more at
/// the deadline.
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    wait_until_every(timeout, Duration::from_millis(5), condition)
}

/// [`wait_until`] with a chosen polling interval (e.g. 1 ms to time a
/// restart; zero spins with a yield).
pub fn wait_until_every(
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if interval.is_zero() {
            std::thread::yield_now();
        } else {
            std::thread::sleep(interval.min(deadline - now));
        }
    }
}

/// Runs `taskmasterd --check -c PATH` (10 s deadline).
pub fn check_config(path: &Path) -> Result<CmdOutput, HarnessError> {
    let mut cmd = std::process::Command::new(bins::taskmasterd()?);
    cmd.arg("--check").arg("-c").arg(path);
    run_with_timeout(cmd, Duration::from_secs(10))
}

/// The workspace root (where `examples/` lives).
pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_reports_success_and_timeout() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(1), || {
            n += 1;
            n == 3
        }));
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(30), || false));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
