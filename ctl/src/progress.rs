//! What a long `stop` or `restart` is waiting for, told while it waits.
//!
//! The daemon answers a waiting `stop` only once the processes are gone,
//! which can take `stoptime` (or longer for a restart). A silent terminal
//! looks hung, so after a second the client says what it waits for
//! (`waiting for slow:0 (SIGKILL in 7s)`), then again every few seconds,
//! from a `status` asked on a connection of its own (the first one is busy
//! waiting for the reply). On Ctrl-C it says that the daemon goes on:
//! `interrupted; the daemon continues stopping slow:0`.

use crate::connect::ConnectOptions;
use proto::{Client, ProcessInfo, ProcessState, Request, Response, StatusRequest};
use std::io::Write;
use std::time::{Duration, Instant};

/// Silence before the first report.
const FIRST_REPORT: Duration = Duration::from_secs(1);
/// Between later reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The most a report's `status` may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The progress of one waiting request.
#[derive(Debug)]
pub struct Progress {
    options: ConnectOptions,
    targets: Vec<String>,
    started: Instant,
    next: Duration,
    client: Option<Client>,
    /// A failed `status` stops the reports (the main request will tell).
    broken: bool,
}

impl Progress {
    /// For a request that waits on `targets` (a `stop` or `restart`; see
    /// [`crate::run::Wait::Reported`]).
    pub fn new(targets: &[String], options: &ConnectOptions) -> Progress {
        Progress {
            options: options.clone(),
            targets: targets.to_vec(),
            started: Instant::now(),
            next: FIRST_REPORT,
            client: None,
            broken: false,
        }
    }

    /// Called while waiting: reports when one is due.
    pub fn tick(&mut self, err: &mut dyn Write) {
        if self.broken || self.started.elapsed() < self.next {
            return;
        }
        self.next += REPORT_EVERY;
        if let Some(waiting) = self.waiting() {
            if !waiting.is_empty() {
                let list: Vec<String> = waiting.iter().map(describe).collect();
                let _ = writeln!(err, "waiting for {}", list.join(", "));
            }
        }
    }

    /// The line to print on Ctrl-C (on a line of its own: the terminal
    /// shows `^C` where the cursor was).
    pub fn interrupted(&mut self) -> String {
        let stopping: Vec<String> = self
            .waiting()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.state == ProcessState::Stopping)
            .map(|p| p.name)
            .collect();
        if stopping.is_empty() {
            "interrupted; the daemon carries on with the request".into()
        } else {
            format!(
                "interrupted; the daemon continues stopping {}",
                stopping.join(", ")
            )
        }
    }

    /// The selected instances still on their way (stopping, or starting
    /// again for a restart); `None` if the daemon could not be asked.
    fn waiting(&mut self) -> Option<Vec<ProcessInfo>> {
        if self.client.is_none() {
            // Bounded: a daemon too busy to answer must not hang the wait
            // for the main reply (a timed-out read ends the reports).
            let client = self
                .options
                .settings()
                .ok()?
                .connect()
                .ok()
                .filter(|c| c.set_read_timeout(Some(STATUS_TIMEOUT)).is_ok());
            if client.is_none() {
                self.broken = true;
            }
            self.client = client;
        }
        let request = Request::Status(StatusRequest {
            targets: self.targets.clone(),
        });
        let reply = self.client.as_mut()?.call(&request);
        match reply {
            Ok(Response::Status(infos)) => Some(
                infos
                    .into_iter()
                    .filter(|p| matches!(p.state, ProcessState::Stopping | ProcessState::Starting))
                    .collect(),
            ),
            _ => {
                self.broken = true;
                self.client = None;
                None
            }
        }
    }
}

/// `slow:0 (SIGKILL in 7s)`, or `web:0 (STARTING)`.
fn describe(p: &ProcessInfo) -> String {
    let kill = p
        .description
        .rsplit(", ")
        .next()
        .filter(|d| d.starts_with("SIGKILL"));
    match kill {
        Some(kill) => format!("{} ({kill})", p.name),
        None => format!("{} ({})", p.name, p.state.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopping_instance_shows_its_sigkill_countdown() {
        let info = |state, description: &str| ProcessInfo {
            name: "slow:0".into(),
            program: "slow".into(),
            index: 0,
            state,
            pid: Some(7),
            uptime_s: 0.0,
            exitcode: None,
            restarts: 0,
            description: description.into(),
            ready: false,
            health: None,
            status_text: None,
        };
        assert_eq!(
            describe(&info(
                ProcessState::Stopping,
                "pid 7, stopping, SIGKILL in 7s"
            )),
            "slow:0 (SIGKILL in 7s)"
        );
        assert_eq!(
            describe(&info(ProcessState::Starting, "pid 8, uptime 0:00:00")),
            "slow:0 (STARTING)"
        );
    }
}
