//! The benchmark suite behind `cargo run --release -p integration --bin bench`
//! (issue 7): taskmaster and supervisord side by side, on the same
//! scenarios, measured from outside like a user would.
//!
//! - [`fleet`] describes the programs of a scenario once and renders them as
//!   either daemon's config.
//! - [`Daemon`] is what a scenario may do to a running supervisor: read every
//!   instance's state through its API (in-process, cheap), time its control
//!   client (`taskmasterctl` / `supervisorctl`, a real process), start a
//!   program, apply a new config. [`taskmaster`] and [`supervisord`]
//!   implement it; both kill every process they started on `Drop`.
//! - [`sys`] reads the kernel's view: CPU ticks, RSS, fds, children.
//! - [`scenarios`] runs the measurements and prints one JSON line each;
//!   [`report`] turns them into the Markdown table with our targets.

pub mod fleet;
pub mod report;
pub mod scenarios;
pub mod supervisord;
pub mod sys;
pub mod taskmaster;

use crate::HarnessError;
use std::fmt;
use std::time::Duration;

/// Why a measurement could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error(transparent)]
    Client(#[from] proto::ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Which supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    Taskmaster,
    Supervisord,
}

impl Impl {
    pub fn as_str(self) -> &'static str {
        match self {
            Impl::Taskmaster => "taskmaster",
            Impl::Supervisord => "supervisord",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub program: String,
    pub index: u32,
    /// supervisord's state names, which taskmaster shares (`RUNNING`, ...).
    pub state: String,
    pub pid: Option<u32>,
}

impl Instance {
    pub fn running(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// A running supervisor. Dropping it kills it and everything it started.
pub trait Daemon {
    /// The daemon's pid, for `/proc`.
    fn pid(&self) -> u32;
    /// Every instance, through the daemon's API from this process (no
    /// client process started).
    fn status(&self) -> Result<Vec<Instance>, BenchError>;
    /// `status` of one target through the API, for probing how quickly the
    /// control plane answers while the daemon is busy; `None` where the
    /// daemon has no such cheap query in this harness (supervisord).
    fn status_of(&self, _target: &str) -> Option<Result<(), BenchError>> {
        None
    }
    /// Asks for every instance of `program` to start, without waiting.
    fn start_program(&self, program: &str) -> Result<(), BenchError>;
    /// `taskmasterctl status --json` / `supervisorctl status`, timed.
    fn cli_status(&self) -> Result<crate::CmdOutput, BenchError>;
    /// `taskmasterctl ARGS`, timed; `None` for a daemon whose client this
    /// harness only drives through the fixed commands (supervisord).
    fn cli(&self, _args: &[&str]) -> Option<Result<crate::CmdOutput, BenchError>> {
        None
    }
    /// `taskmasterctl stop all` / `supervisorctl stop all`, timed.
    fn cli_stop_all(&self) -> Result<crate::CmdOutput, BenchError>;
    /// Writes `fleet` as the config and makes the daemon apply it: SIGHUP
    /// for taskmaster, `supervisorctl update` for supervisord (its SIGHUP
    /// restarts every process). Returns once the trigger is sent (taskmaster)
    /// or the command returned (supervisord).
    fn reload(&mut self, fleet: &fleet::Fleet) -> Result<(), BenchError>;
    /// The last `n` lines of the daemon's own log, to explain a failure.
    fn log_tail(&self, n: usize) -> String;
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts a supervisor on a fleet.
pub trait Launcher {
    fn kind(&self) -> Impl;
    /// Starts the daemon on `fleet` and returns once its API answers, which
    /// may take a while: both daemons spawn their fleet before answering.
    fn launch(
        &self,
        fleet: &fleet::Fleet,
        up_within: Duration,
    ) -> Result<Box<dyn Daemon>, BenchError>;
}

/// How long a daemon may take to answer its API after launch.
pub const LAUNCH_DEADLINE: Duration = Duration::from_secs(120);

/// Generous bound for one client command or API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
