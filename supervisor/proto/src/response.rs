//! What the daemon answers.

use crate::OutputStream;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One response frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    Welcome(Welcome),
    Status(Vec<ProcessInfo>),
    /// Result of `start`, `stop`, `restart` and `signal`: one entry per instance.
    Outcomes(Vec<Outcome>),
    Pids(Vec<PidEntry>),
    Tail(TailReply),
    /// A piece of followed output (`tail -f`), as it was written.
    TailChunk(TailChunk),
    Reload(ReloadSummary),
    Version(VersionInfo),
    /// A command that has nothing else to report (e.g. `shutdown` once done).
    Done(Done),
    /// The configured programs, by name.
    Avail(Vec<AvailEntry>),
    Error(ErrorReply),
}

impl Response {
    /// Shorthand for an error reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error(ErrorReply {
            kind,
            message: message.into(),
            details: Vec::new(),
        })
    }
}

/// The answer to a good [`crate::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub daemon_version: String,
    pub daemon_pid: u32,
}

/// A process instance's state, with supervisord's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProcessState {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
}

impl ProcessState {
    pub fn name(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
        }
    }

    /// True when a child process may exist.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            ProcessState::Starting | ProcessState::Running | ProcessState::Stopping
        )
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of `status`. The field names are the `--json` contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// `program:index`
    pub name: String,
    pub program: String,
    pub index: u32,
    pub state: ProcessState,
    /// Set while a child process exists.
    pub pid: Option<u32>,
    /// Seconds since the current child was spawned; 0 when none.
    pub uptime_s: f64,
    /// Exit code of the last exit, when it exited (not when killed by a signal).
    pub exitcode: Option<i32>,
    /// Automatic restarts since the daemon (or a user `start`) began it.
    pub restarts: u32,
    /// Human summary: `pid 1234, uptime 0:00:12`, `exit status 1`,
    /// `killed by SIGKILL`, or why it is FATAL.
    pub description: String,
    /// True once the instance is RUNNING and, when it has a `ready` probe,
    /// that probe has succeeded for the current spawn.
    #[serde(default)]
    pub ready: bool,
    /// The health check's verdict while RUNNING: `ok`, `failing` (the last
    /// probe failed), or none (no `health` configured, or not RUNNING).
    #[serde(default)]
    pub health: Option<String>,
    /// The last `STATUS=` text a `notify` program sent for this spawn.
    #[serde(default)]
    pub status_text: Option<String>,
}

/// How one instance fared in `start`/`stop`/`restart`/`signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    /// State when the outcome was decided.
    pub state: ProcessState,
    /// `started`, `stopped`, `already running`, or why it failed.
    pub message: String,
    /// On failure: the last lines the program printed (stderr, or stdout when
    /// stderr is discarded), oldest first.
    #[serde(default)]
    pub output_tail: Vec<String>,
}

/// `pid` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PidEntry {
    /// `taskmasterd` for the daemon, else `program:index`.
    pub name: String,
    pub pid: Option<u32>,
}

/// A configured program, as `avail` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailEntry {
    pub name: String,
    pub numprocs: u32,
    pub autostart: bool,
    /// The command as written in the config.
    pub cmd: String,
}

/// The first answer to `tail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailReply {
    pub name: String,
    pub stream: OutputStream,
    pub path: String,
    /// The last lines, oldest first.
    pub lines: Vec<String>,
}

/// Output appended since the previous chunk, as text: bytes that are not
/// UTF-8 become U+FFFD, but a character is never cut between two chunks.
/// When the client reads too slowly, the daemon skips output and says so in
/// the data, on a line of its own: `[… 2.3 MB skipped]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailChunk {
    pub data: String,
}

/// What a reload changed, program names in each class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub scaled: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Non-program sections applied or needing attention (e.g. a changed
    /// `server.listen` that needs a daemon restart).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub daemon_version: String,
    pub protocol_version: u32,
}

/// A plain acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// One line per problem, e.g. every config error of a rejected reload.
    #[serde(default)]
    pub details: Vec<String>,
}

/// Error classes a client can branch on (exit codes, retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Missing or wrong token; the connection is closed.
    Auth,
    /// The client speaks another protocol version; the connection is closed.
    Version,
    /// Not JSON, not a known request, or a request before `hello`.
    BadRequest,
    /// A line over the size cap; the connection is closed.
    TooLarge,
    /// Too many sessions; the connection is closed.
    Busy,
    /// A target names no program or instance.
    UnknownTarget,
    /// The request was valid but could not be carried out (e.g. the config
    /// file of a reload is invalid, a stream is discarded).
    Failed,
    /// The daemon is shutting down.
    ShuttingDown,
    /// A bug: the daemon could not answer.
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_matches_the_documented_fields() {
        let info = ProcessInfo {
            name: "web:0".into(),
            program: "web".into(),
            index: 0,
            state: ProcessState::Running,
            pid: Some(1234),
            uptime_s: 12.5,
            exitcode: None,
            restarts: 0,
            description: "pid 1234, uptime 0:00:12".into(),
            ready: true,
            health: Some("ok".into()),
            status_text: None,
        };
        let v = serde_json::to_value(&info).unwrap_or_default();
        assert_eq!(v["state"], "RUNNING");
        assert_eq!(v["pid"], 1234);
        assert!(v["exitcode"].is_null());
        assert_eq!(v["ready"], true);
        assert_eq!(v["health"], "ok");
        assert!(v["status_text"].is_null());
        assert_eq!(v.as_object().map(|o| o.len()), Some(12));
    }

    #[test]
    fn status_from_an_older_daemon_reads_without_the_readiness_fields() {
        let old = r#"{"name":"web:0","program":"web","index":0,"state":"RUNNING","pid":7,
            "uptime_s":1.0,"exitcode":null,"restarts":0,"description":"pid 7"}"#;
        let info: Result<ProcessInfo, _> = serde_json::from_str(old);
        let info = info.map_err(|e| e.to_string());
        assert_eq!(info.as_ref().map(|i| i.ready), Ok(false));
        assert_eq!(info.as_ref().map(|i| i.health.clone()), Ok(None));
        assert_eq!(info.map(|i| i.status_text), Ok(None));
    }

    #[test]
    fn error_kinds_are_snake_case() {
        let r = Response::error(ErrorKind::UnknownTarget, "no such program: x");
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert!(s.contains(r#""kind":"unknown_target""#), "{s}");
    }
}
