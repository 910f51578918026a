//! End-to-end tests of the daemon's life and robustness: going to the
//! background, no orphans (even after `kill -9` of the daemon), output that
//! never blocks a child, `user:`, signals during shutdown, log rotation, and
//! a crash-loop soak.
//!
//! Each test runs real daemons in temporary directories on port 0 and cleans
//! up every process it started (`TestDaemon`'s `Drop`, or [`daemonize`]'s
//! guard for detached daemons). Slow variants are `#[ignore]`d and run by
//! `integration/soak.sh`; the default run does a short version of each.

mod daemonize;
mod escapes;
mod hardening_files;
mod orphans;
mod output;
mod signals;
mod soak;
mod user;

use integration::SOON;
use integration::{HarnessError, TestResult, procfs, wait_until};
use std::path::Path;

/// The environment variable with the daemon's tag (see `supervisor::leftovers`).
const SUPERVISOR_ENV: &str = "TASKMASTER_SUPERVISOR";

/// The daemon tag `pid` (one of its children) carries.
fn tag_of(pid: u32) -> TestResult<String> {
    procfs::environ_var(pid, SUPERVISOR_ENV)
        .ok_or_else(|| format!("pid {pid} has no {SUPERVISOR_ENV} in its environment").into())
}

/// Waits until the file at `path` satisfies `pred`; returns its bytes.
fn file_until(path: &Path, what: &str, mut pred: impl FnMut(&[u8]) -> bool) -> TestResult<Vec<u8>> {
    let mut bytes = Vec::new();
    if wait_until(SOON, || {
        bytes = std::fs::read(path).unwrap_or_default();
        pred(&bytes)
    }) {
        return Ok(bytes);
    }
    Err(HarnessError::Timeout(format!(
        "{} never {what}; it has {} bytes, ending {:?}",
        path.display(),
        bytes.len(),
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(200)..])
    ))
    .into())
}

/// The number in a file a test program rewrites as it progresses (0 while
/// missing or half-written).
fn counter(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}
