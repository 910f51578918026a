//! The readiness keys of a program, as loaded: `ready`, `health`,
//! `watchdog`, `before_start` and `depends_on`.
//!
//! These are plain values; `config/validate` builds them from the YAML and
//! `probe/` and the actors act on them. A probe is written the same way for
//! `ready` and `health` (exactly one of `tcp`, `http`, `exec`, `log`,
//! `notify`), so one [`Probe`] type serves both.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Default seconds between two `ready` probes.
pub const READY_INTERVAL: Duration = Duration::from_millis(100);
/// Default time an instance has to become ready before its start failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default seconds between two `health` probes.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Default budget of one `health` probe.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Default consecutive `health` failures that restart an instance.
pub const HEALTH_FAILURES: u32 = 3;
/// Default time `before_start` may run.
pub const BEFORE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// One way to check an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect to `host:port` succeeds. `host` is a name or an address
    /// (IPv6 in brackets when written so); resolved off the actor thread.
    Tcp { host: String, port: u16 },
    /// A plain-http GET answers 2xx, or exactly `status` when set.
    Http { url: HttpUrl, status: Option<u16> },
    /// The command exits 0 within the probe's budget; run like the program
    /// (its user, workingdir and env) in its own process group.
    Exec { cmd: String, argv: Vec<String> },
    /// A line of the instance's stdout or stderr, captured since this spawn,
    /// matches.
    Log(LogPattern),
    /// `READY=1` (ready) or `WATCHDOG=1` (liveness) on the instance's own
    /// `NOTIFY_SOCKET`, the systemd notification protocol.
    Notify,
}

impl Probe {
    /// The kind as written in the config: `tcp`, `http`, `exec`, `log`, `notify`.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp { .. } => "tcp",
            Probe::Http { .. } => "http",
            Probe::Exec { .. } => "exec",
            Probe::Log(_) => "log",
            Probe::Notify => "notify",
        }
    }
}

/// How a probe is named in a status line or a failure reason:
/// `tcp 127.0.0.1:5433`, `http http://127.0.0.1:8080/healthz`,
/// `exec ./check.sh`, `log /listening on/`, `notify`.
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Probe::Http { url, .. } => write!(f, "http {}", url.text),
            Probe::Exec { cmd, .. } => write!(f, "exec {cmd}"),
            Probe::Log(p) => write!(f, "log /{}/", p.as_str()),
            Probe::Notify => f.write_str("notify"),
        }
    }
}

/// A plain `http://` URL, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// As written.
    pub text: String,
    /// A name or an address, without IPv6 brackets.
    pub host: String,
    /// 80 when not written.
    pub port: u16,
    /// Path and query, `/` when empty.
    pub path: String,
}

/// A compiled `log:` pattern; equal when the pattern text is.
#[derive(Debug, Clone)]
pub struct LogPattern(pub regex::Regex);

impl LogPattern {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, line: &str) -> bool {
        self.0.is_match(line)
    }
}

impl PartialEq for LogPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for LogPattern {}

/// `ready:`: how STARTING becomes RUNNING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyConfig {
    pub probe: Probe,
    /// Between two probes (default 0.1 s).
    pub interval: Duration,
    /// From the spawn to the moment the start failed (default 60 s).
    pub timeout: Duration,
}

/// `health:`: liveness once RUNNING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub probe: Probe,
    /// Between two probes (default 10 s).
    pub interval: Duration,
    /// One probe's budget (default 1 s).
    pub timeout: Duration,
    /// Consecutive failures that restart the instance (default 3, ≥ 1).
    pub failures: u32,
}

/// `before_start:`: a command run to completion before every spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// As written.
    pub cmd: String,
    /// Split like `cmd`; never empty.
    pub argv: Vec<String>,
    /// `before_start_timeout` (default 60 s).
    pub timeout: Duration,
}

/// What a dependency must reach before its dependent is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DependCondition {
    /// RUNNING.
    Started,
    /// RUNNING after its ready probe (same as `Started` without one).
    Ready,
    /// EXITED with an expected code (one-shot jobs).
    Completed,
}

impl DependCondition {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DependCondition::Started => "started",
            DependCondition::Ready => "ready",
            DependCondition::Completed => "completed",
        }
    }
}

impl fmt::Display for DependCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `depends_on:`: program name → condition.
pub type DependsOn = BTreeMap<String, DependCondition>;
