//! End-to-end tests of email notifications: the real daemon mails a real
//! SMTP server on loopback (`integration::smtp`), and the tests judge what
//! arrived, what the event log says, and that supervision never waits for
//! mail: with the server down or silent, a killed child is still restarted
//! within 50 ms.
//!
//! Every test has its own daemon and server; SMTP timeouts are 0.5 s so the
//! failing cases stay fast.

mod failures;
mod mails;
mod secrets;
mod shutdown;
mod tls;

use integration::SOON;
use integration::smtp::ReceivedMail;
use integration::{TestDaemon, TestResult, procfs, wait_until_every};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// SMTP timeout where the server answers: generous, for a loaded machine.
const ANSWERING: f64 = 5.0;
/// SMTP timeout where it is down or silent: short, to keep tests fast.
const FAILING: f64 = 0.5;

/// An `email:` section sending to 127.0.0.1:`port`, plain text.
fn email_section(port: u16, timeout: f64) -> String {
    format!(
        "email:\n  smtp: {{host: 127.0.0.1, port: {port}, tls: none, timeout: {timeout}}}\n  from: taskmaster@example.com\n  to: [ops@example.com]\n"
    )
}

/// The name the daemon gives this host in subjects.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// How many events a mail reports: 1, or N of a `NAME: N events` digest.
fn events_in(mail: &ReceivedMail) -> usize {
    let subject = mail.subject();
    subject
        .strip_suffix(" events")
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Held by tests while they fork storms of processes, and while restarts
/// are timed: a timing is about the daemon, not about a sibling test's load.
static BUSY: Mutex<()> = Mutex::new(());

/// Holds [`BUSY`].
fn busy() -> MutexGuard<'static, ()> {
    BUSY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SIGKILLs `name`'s child five times; the fastest time until a new child
/// existed. Each round must restart it.
fn fastest_restart(daemon: &TestDaemon, name: &str) -> TestResult<Duration> {
    let _quiet = busy();
    let mut best = Duration::MAX;
    for round in 0..5 {
        let old = daemon.running_pid(name)?;
        kill(Pid::from_raw(old as i32), Signal::SIGKILL)?;
        let killed = Instant::now();
        let mut new = None;
        let restarted = wait_until_every(Duration::from_secs(5), Duration::from_millis(1), || {
            new = procfs::live_children(daemon.pid())
                .into_iter()
                .map(|p| p.pid)
                .find(|p| *p != old && procfs::stat(*p).is_some_and(|s| s.comm == "sleep"));
            new.is_some()
        });
        let took = killed.elapsed();
        assert!(
            restarted,
            "round {round}: {name} not restarted after SIGKILL"
        );
        best = best.min(took);
        daemon.wait_for(name, SOON, "restarted", |p| {
            p.pid.is_some() && p.pid != Some(old)
        })?;
    }
    Ok(best)
}

/// The event log lines that contain every one of `words`.
fn log_lines(daemon: &TestDaemon, words: &[&str]) -> Vec<String> {
    daemon
        .event_log()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}
