//! Probes: the mechanisms that tell whether an instance is ready or healthy
//! (`ready:` and `health:` in the config), as async functions the process
//! actor runs on its own (single) thread.
//!
//! Each one is bounded: in time (a budget, or the caller's timeout for the
//! waiting kinds), in memory (no buffer a program can grow without limit),
//! and it never blocks the thread (name resolution goes to tokio's blocking
//! pool; sockets are non-blocking). Failures are short human strings that do
//! not repeat the probe (`connection refused`, `HTTP 503`, `timed out after
//! 1s`): the caller prefixes the probe's own name (`tcp 127.0.0.1:5433:
//! connection refused`).
//!
//! - [`tcp()`]: a TCP connect succeeds.
//! - [`http()`]: a plain-http GET answers 2xx, or an exact status.
//! - `log`: a line of the instance's output, from this spawn on, matches.
//! - `notify`: the instance's own `NOTIFY_SOCKET` (the systemd
//!   notification protocol) and the notifications its processes send.
//!
//! `exec` probes are not here: they run a command like the program, which is
//! the process actor's helper (`actors/process/helper.rs`).

pub mod http;
pub mod log;
pub mod notify;
pub mod tcp;

pub use http::http;
pub use log::log;
pub use tcp::tcp;

use std::future::Future;
use std::io;
use std::time::Duration;

/// Runs `probe` within `budget`; past it, the probe is dropped (its socket
/// closed) and the error says how long it had.
pub(crate) async fn within<F>(budget: Duration, probe: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(budget, probe).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {}", secs(budget))),
    }
}

/// `1s`, `0.5s`: durations as the config writes them.
pub(crate) fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// An I/O error as a short lowercase phrase: `connection refused`, not
/// `Connection refused (os error 111)`.
pub(crate) fn describe(e: &io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_short_lowercase_phrases() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&e), "connection refused");
        assert_eq!(describe(&io::Error::other("Odd")), "odd");
    }

    #[test]
    fn budgets_are_written_like_the_config() {
        assert_eq!(secs(Duration::from_secs(1)), "1s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5s");
    }
}
