//! End-to-end tests of the core daemon: the real `taskmasterd` binary, real
//! child processes, real signals, judged through `/proc` and the event log.
//!
//! One test binary, one module per topic. Every test runs its own daemon in
//! its own temporary directory on port 0, so they run in parallel; every
//! daemon and every process it started is SIGKILLed by `TestDaemon`'s `Drop`,
//! even when the test fails.

mod check;
mod restart;
mod spawn;
mod stop;

use integration::SOON;
use integration::{HarnessError, TestDaemon};
use proto::{ProcessInfo, ProcessState};

/// Waits until `name` is RUNNING.
fn running(daemon: &TestDaemon, name: &str) -> Result<ProcessInfo, HarnessError> {
    daemon.wait_for_state(name, ProcessState::Running, SOON)
}

/// Waits until the file at `path` contains `needle`; returns its text.
fn file_containing(
    path: &std::path::Path,
    needle: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut text = String::new();
    let found = integration::wait_until(SOON, || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    if found {
        Ok(text)
    } else {
        Err(HarnessError::Timeout(format!(
            "{} never contained {needle:?}; it has:\n{text}",
            path.display()
        ))
        .into())
    }
}
