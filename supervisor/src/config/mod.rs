//! The daemon's configuration: typed, validated, with every path absolute.
//!
//! `load` reads a YAML file and either returns a [`Config`] or *every* problem
//! found, each with file, line, column and key path (`programs.web.numprocs`),
//! the way `taskmasterd --check` prints them. Relative paths are resolved
//! against the config file's directory, so a config means the same thing
//! whatever the daemon's working directory.

pub mod email;
pub mod graph;
pub mod ready;
#[cfg(test)]
mod ready_tests;
#[cfg(test)]
mod tests;
mod validate;
mod yaml;

pub use email::{EmailConfig, NotifyEvent, NotifyRule, PasswordSource, SmtpConfig, SmtpTls};
pub use ready::{
    DependCondition, DependsOn, HealthConfig, Hook, HttpUrl, LogPattern, Probe, ReadyConfig,
};
pub use yaml::{ALIAS_BUDGET, MAX_DEPTH};

use crate::sys::fsafe::{self, FileError};
use proto::{OutputStream, Signal};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `server.pidfile` when unset, next to the config file.
pub const DEFAULT_PIDFILE: &str = "taskmasterd.pid";

/// `log.file` when unset, next to the config file.
pub const DEFAULT_LOG_FILE: &str = "taskmasterd.log";

/// Directory, next to the config file, of the per-instance output files used
/// when a program sets no `stdout`/`stderr`.
pub const DEFAULT_LOGS_DIR: &str = "logs";

/// Largest accepted `numprocs`.
pub const MAX_NUMPROCS: u32 = 10_000;

/// `server.max_processes` when unset: the most instances (the sum of every
/// program's `numprocs`) a config may ask for.
pub const DEFAULT_MAX_PROCESSES: u32 = 100_000;

/// A larger config file is refused before it is read (16 MiB).
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute path of the file it was read from.
    pub file: PathBuf,
    /// The file's directory; relative paths in the file are relative to it.
    pub dir: PathBuf,
    pub programs: BTreeMap<String, Arc<ProgramConfig>>,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// `email:`; required when a program has `notify` rules.
    pub email: Option<EmailConfig>,
    /// What is valid but likely not meant (a `workingdir` that does not
    /// exist yet, `numprocs: 0`): `--check` prints these, start and reload
    /// log them, and nothing is refused for them.
    pub warnings: Vec<Problem>,
}

/// `server:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `host:port`; default `127.0.0.1:4242`.
    pub listen: String,
    /// Default `taskmasterd.token` next to the config.
    pub token_file: PathBuf,
    /// Listening on a non-loopback address needs this.
    pub allow_remote: bool,
    /// Default `taskmasterd.pid` next to the config.
    pub pidfile: PathBuf,
    /// The most instances the config may ask for in all (the sum of
    /// `numprocs`); default [`DEFAULT_MAX_PROCESSES`].
    pub max_processes: u32,
}

/// `log:` section: the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Default `taskmasterd.log` next to the config.
    pub file: PathBuf,
    pub level: LogLevel,
}

/// Event log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// When to restart a process that exited after reaching RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    Always,
    Never,
    /// Only when the exit code is not in `exitcodes`, or it died by a signal.
    Unexpected,
}

/// Where one output stream of an instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `null`: `/dev/null`.
    Discard,
    /// An explicit file, shared by all instances (opened in append mode).
    File(PathBuf),
    /// The default: `DIR/NAME-INDEX.stdout.log` (or `.stderr.log`), where DIR
    /// is `logs/` next to the config; the daemon creates DIR.
    InstanceFileIn(PathBuf),
}

/// One entry of `programs:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramConfig {
    pub name: String,
    /// The command as written.
    pub cmd: String,
    /// `cmd` split like a shell would; never empty.
    pub argv: Vec<String>,
    pub numprocs: u32,
    pub autostart: bool,
    pub autorestart: AutoRestart,
    pub exitcodes: Vec<i32>,
    pub starttime: Duration,
    pub startretries: u32,
    pub stopsignal: Signal,
    pub stoptime: Duration,
    pub stdout: OutputTarget,
    pub stderr: OutputTarget,
    /// Merged over the daemon's environment.
    pub env: BTreeMap<String, String>,
    /// Absolute; `None` keeps the daemon's.
    pub workingdir: Option<PathBuf>,
    /// `None` inherits the daemon's.
    pub umask: Option<u32>,
    /// `user:`, resolved when the config was loaded; `None` keeps the
    /// daemon's user.
    pub user: Option<RunAs>,
    pub maxrestarts: u32,
    pub restartwindow: Duration,
    /// Email notification rules; empty costs nothing.
    pub notify: Vec<NotifyRule>,
    /// `starttime` was written: with `ready`, RUNNING also waits for it.
    pub starttime_explicit: bool,
    /// `ready:`; `None`: alive for `starttime` is ready.
    pub ready: Option<ReadyConfig>,
    /// `health:`; liveness probing once RUNNING.
    pub health: Option<HealthConfig>,
    /// `watchdog:` (notify programs): the longest silence between two
    /// `WATCHDOG=1` before a restart.
    pub watchdog: Option<Duration>,
    /// `before_start:` (and `before_start_timeout:`).
    pub before_start: Option<Hook>,
    /// `depends_on:`.
    pub depends_on: DependsOn,
}

impl ProgramConfig {
    /// A program with supervisord's defaults, for tests and builders.
    pub fn with_defaults(name: &str, cmd: &str, logs_dir: &Path) -> Self {
        ProgramConfig {
            name: name.to_string(),
            cmd: cmd.to_string(),
            argv: shlex::split(cmd).unwrap_or_else(|| vec![cmd.to_string()]),
            numprocs: 1,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            exitcodes: vec![0],
            starttime: Duration::from_secs(1),
            startretries: 3,
            stopsignal: Signal::Term,
            stoptime: Duration::from_secs(10),
            stdout: OutputTarget::InstanceFileIn(logs_dir.to_path_buf()),
            stderr: OutputTarget::InstanceFileIn(logs_dir.to_path_buf()),
            env: BTreeMap::new(),
            workingdir: None,
            umask: None,
            user: None,
            maxrestarts: 3,
            restartwindow: Duration::from_secs(5),
            notify: Vec::new(),
            starttime_explicit: false,
            ready: None,
            health: None,
            watchdog: None,
            before_start: None,
            depends_on: DependsOn::new(),
        }
    }

    /// The file an instance's stream is written to; `None` when discarded.
    pub fn output_path(&self, stream: OutputStream, index: u32) -> Option<PathBuf> {
        let target = match stream {
            OutputStream::Stdout => &self.stdout,
            OutputStream::Stderr => &self.stderr,
        };
        match target {
            OutputTarget::Discard => None,
            OutputTarget::File(p) => Some(p.clone()),
            OutputTarget::InstanceFileIn(dir) => {
                Some(dir.join(format!("{}-{}.{}.log", self.name, index, stream)))
            }
        }
    }

    /// `NAME:INDEX`.
    pub fn instance_name(&self, index: u32) -> String {
        proto::Target::Instance(self.name.clone(), index).to_string()
    }
}

/// The account a program runs as (`user:`), resolved at load time so that
/// spawning never waits on a user database (NSS can mean a network lookup).
/// A reload resolves it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user name from the account database.
    pub name: String,
    pub uid: u32,
    /// The account's primary group.
    pub gid: u32,
    /// Supplementary groups (`getgrouplist`, the primary one included).
    pub groups: Vec<u32>,
    /// Given to the child as `HOME` unless `env` sets it.
    pub home: PathBuf,
}

/// What a reload must do to running instances when a program key changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyClass {
    /// Fixed when an instance is spawned: running instances must be restarted
    /// to pick up the change.
    Spawn,
    /// Read when deciding what to do next (restart, stop, give up): takes
    /// effect in place.
    Policy,
    /// `numprocs`: start or stop the difference.
    Scale,
    /// `autostart`: only matters when the daemon (or a new program) starts.
    Autostart,
}

/// Every key a program may have, and its class. The validator accepts
/// exactly these keys, so a key cannot exist without a reload class.
pub const PROGRAM_KEYS: &[(&str, KeyClass)] = &[
    ("cmd", KeyClass::Spawn),
    ("numprocs", KeyClass::Scale),
    ("autostart", KeyClass::Autostart),
    ("autorestart", KeyClass::Policy),
    ("exitcodes", KeyClass::Policy),
    ("starttime", KeyClass::Policy),
    ("startretries", KeyClass::Policy),
    ("stopsignal", KeyClass::Policy),
    ("stoptime", KeyClass::Policy),
    ("stdout", KeyClass::Spawn),
    ("stderr", KeyClass::Spawn),
    ("env", KeyClass::Spawn),
    ("workingdir", KeyClass::Spawn),
    ("umask", KeyClass::Spawn),
    ("user", KeyClass::Spawn),
    ("maxrestarts", KeyClass::Policy),
    ("restartwindow", KeyClass::Policy),
    ("notify", KeyClass::Policy),
    ("ready", KeyClass::Policy),
    ("health", KeyClass::Policy),
    ("watchdog", KeyClass::Policy),
    ("before_start", KeyClass::Spawn),
    ("before_start_timeout", KeyClass::Spawn),
    ("depends_on", KeyClass::Policy),
];

/// The class of a program key, `None` if it is not one.
pub fn key_class(key: &str) -> Option<KeyClass> {
    PROGRAM_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, class)| *class)
}

/// The program keys whose values differ between `old` and `new`, in
/// [`PROGRAM_KEYS`] order. `argv` counts as `cmd`; `name` is not a key.
pub fn changed_keys(old: &ProgramConfig, new: &ProgramConfig) -> Vec<&'static str> {
    // Both sides are destructured with every field named and no `..`: adding a
    // field to `ProgramConfig` fails to compile here until it is given a key
    // (and so a class in `PROGRAM_KEYS`) and compared below.
    let ProgramConfig {
        name: _,
        cmd: old_cmd,
        argv: old_argv,
        numprocs: old_numprocs,
        autostart: old_autostart,
        autorestart: old_autorestart,
        exitcodes: old_exitcodes,
        starttime: old_starttime,
        startretries: old_startretries,
        stopsignal: old_stopsignal,
        stoptime: old_stoptime,
        stdout: old_stdout,
        stderr: old_stderr,
        env: old_env,
        workingdir: old_workingdir,
        umask: old_umask,
        user: old_user,
        maxrestarts: old_maxrestarts,
        restartwindow: old_restartwindow,
        notify: old_notify,
        starttime_explicit: old_starttime_explicit,
        ready: old_ready,
        health: old_health,
        watchdog: old_watchdog,
        before_start: old_before_start,
        depends_on: old_depends_on,
    } = old;
    let ProgramConfig {
        name: _,
        cmd,
        argv,
        numprocs,
        autostart,
        autorestart,
        exitcodes,
        starttime,
        startretries,
        stopsignal,
        stoptime,
        stdout,
        stderr,
        env,
        workingdir,
        umask,
        user,
        maxrestarts,
        restartwindow,
        notify,
        starttime_explicit,
        ready,
        health,
        watchdog,
        before_start,
        depends_on,
    } = new;
    // `before_start_timeout` lives in the hook: without a hook there is no
    // timeout to change.
    let hook_command = |h: &Option<Hook>| h.as_ref().map(|h| (h.cmd.clone(), h.argv.clone()));
    let hook_timeout = |h: &Option<Hook>| h.as_ref().map(|h| h.timeout);
    let checks = [
        ("cmd", old_cmd != cmd || old_argv != argv),
        ("numprocs", old_numprocs != numprocs),
        ("autostart", old_autostart != autostart),
        ("autorestart", old_autorestart != autorestart),
        ("exitcodes", old_exitcodes != exitcodes),
        (
            "starttime",
            old_starttime != starttime || old_starttime_explicit != starttime_explicit,
        ),
        ("startretries", old_startretries != startretries),
        ("stopsignal", old_stopsignal != stopsignal),
        ("stoptime", old_stoptime != stoptime),
        ("stdout", old_stdout != stdout),
        ("stderr", old_stderr != stderr),
        ("env", old_env != env),
        ("workingdir", old_workingdir != workingdir),
        ("umask", old_umask != umask),
        ("user", old_user != user),
        ("maxrestarts", old_maxrestarts != maxrestarts),
        ("restartwindow", old_restartwindow != restartwindow),
        ("notify", old_notify != notify),
        ("ready", old_ready != ready),
        ("health", old_health != health),
        ("watchdog", old_watchdog != watchdog),
        (
            "before_start",
            hook_command(old_before_start) != hook_command(before_start),
        ),
        (
            "before_start_timeout",
            hook_timeout(old_before_start).is_some()
                && hook_timeout(before_start).is_some()
                && hook_timeout(old_before_start) != hook_timeout(before_start),
        ),
        ("depends_on", old_depends_on != depends_on),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (e.g. unreadable file).
    pub line: usize,
    pub col: usize,
    /// Dotted key path, e.g. `programs.web.numprocs`; empty for the document.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: String },
    /// Not a regular file (a FIFO, a device), or larger than
    /// [`MAX_CONFIG_BYTES`]; the message names the path and the limit.
    #[error("{0}")]
    File(FileError),
    #[error("{} problem(s) in {}:\n{}", problems.len(), file.display(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl Config {
    /// Creates `logs/` next to the config when some program writes a file in
    /// it (the per-instance defaults, or an explicit `stdout: logs/x.log`,
    /// which `--check` accepts for that reason). Other directories must
    /// already exist.
    pub fn prepare_logs_dir(&self) -> std::io::Result<()> {
        let logs = self.dir.join(DEFAULT_LOGS_DIR);
        let needed = self.programs.values().any(|p| {
            [OutputStream::Stdout, OutputStream::Stderr]
                .into_iter()
                .any(|stream| {
                    p.output_path(stream, 0)
                        .is_some_and(|path| path.parent() == Some(logs.as_path()))
                })
        });
        if needed {
            // 0750 whatever the umask: programs running as another user
            // must not be able to replace their files.
            fsafe::create_dir_all(&logs)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// One line per problem, as `--check` prints them.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } | ConfigError::Unsafe { .. } | ConfigError::File(_) => {
                vec![self.to_string()]
            }
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(|p| p.to_string()).collect()
            }
        }
    }
}

/// Reads and validates the config file at `path`. As root, a file (or
/// directory) that another user could change is refused: its `cmd`s run as
/// root. Only a regular file of at most [`MAX_CONFIG_BYTES`] is read: a FIFO
/// (which would block the daemon's one thread in `open`), a device such as
/// `/dev/zero`, or a huge file is refused at once.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file_error = |e: FileError| match e {
        FileError::Io { source, .. } => read_error(source),
        other => ConfigError::File(other),
    };
    // A symlinked config is the operator's choice (and, as root, the file
    // it leads to is judged below), so it is followed.
    let (file, meta) =
        fsafe::open_read(path, "the config file", fsafe::Follow::Yes).map_err(file_error)?;
    if nix::unistd::geteuid().is_root() {
        // Judged on the opened file, so the file read is the file checked.
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let dir_meta = dir.as_deref().map(std::fs::metadata).transpose();
        let dir_meta = dir_meta.map_err(read_error)?;
        if let Err(why) = trusted_by_root(path, &meta, dir.as_deref().zip(dir_meta.as_ref())) {
            return Err(ConfigError::Unsafe {
                path: path.to_path_buf(),
                why,
            });
        }
    }
    let bytes = fsafe::read_all_bounded(file, &meta, path, "the config file", MAX_CONFIG_BYTES)
        .map_err(file_error)?;
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse_bytes(&bytes, &file)
}

/// [`parse`] of a file's bytes: invalid UTF-8 is a problem at its position.
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // Valid UTF-8 by construction.
            let before = String::from_utf8_lossy(valid);
            let (line, col) = line_col(&before, before.len());
            Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                problems: vec![Problem {
                    file: file.to_path_buf(),
                    line,
                    col,
                    key: String::new(),
                    message: format!(
                        "invalid UTF-8 (byte 0x{:02x}); a config file is UTF-8 text",
                        bytes[e.valid_up_to()]
                    ),
                }],
            })
        }
    }
}

/// Control characters (other than tab, line feed and carriage return) are
/// refused before parsing: the YAML parser silently stops at a NUL, so a
/// damaged file would lose every program after it. At most this many are
/// listed.
const MAX_CONTROL_PROBLEMS: usize = 10;

fn control_characters(text: &str, file: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut found = 0usize;
    let (mut line, mut col) = (1usize, 1usize);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            col = 1;
            continue;
        }
        if c.is_control() && c != '\t' && c != '\r' {
            found += 1;
            if problems.len() < MAX_CONTROL_PROBLEMS {
                problems.push(Problem {
                    file: file.to_path_buf(),
                    line,
                    col,
                    key: String::new(),
                    message: format!(
                        "control character U+{:04X}{} is not allowed in a config file (the file may be damaged)",
                        u32::from(c),
                        if c == '\0' { " (NUL)" } else { "" }
                    ),
                });
            }
        }
        col += 1;
    }
    if found > problems.len()
        && let Some(last) = problems.last_mut()
    {
        last.message.push_str(&format!(
            "; {} more control characters follow",
            found - MAX_CONTROL_PROBLEMS
        ));
    }
    problems
}

/// 1-based line and column (in characters) of byte offset `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Whether root may run what the file at `path` says: it and its directory
/// must be owned by root and not writable by a non-root group or by others
/// (a sticky directory, like `/tmp`, cannot have the file replaced).
fn trusted_by_root(
    path: &Path,
    file: &std::fs::Metadata,
    dir: Option<(&Path, &std::fs::Metadata)>,
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let fix = "taskmasterd runs as root and would run whatever its programs say: \
               make it owned by root and not writable by others (chown root; chmod go-w)";
    let judge = |what: &str, p: &Path, m: &std::fs::Metadata| -> Result<(), String> {
        match unsafe_for_root(m.uid(), m.gid(), m.mode(), m.is_dir()) {
            None => Ok(()),
            Some(why) => Err(format!("refusing {what} {}: {why}; {fix}", p.display())),
        }
    };
    judge("config file", path, file)?;
    match dir {
        Some((d, m)) => judge("the config file's directory", d, m),
        None => Ok(()),
    }
}

/// Why someone other than root could change a file with this owner, group
/// and mode, or `None` if nobody can.
fn unsafe_for_root(uid: u32, gid: u32, mode: u32, is_dir: bool) -> Option<String> {
    if uid != 0 {
        return Some(format!("it is owned by uid {uid}, not root"));
    }
    let sticky_dir = is_dir && mode & 0o1000 != 0;
    if sticky_dir {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some(format!(
            "it is writable by everyone (mode {:o})",
            mode & 0o7777
        ));
    }
    if mode & 0o020 != 0 && gid != 0 {
        return Some(format!(
            "it is writable by group {gid} (mode {:o})",
            mode & 0o7777
        ));
    }
    None
}

/// Validates config text as if read from `file` (which should be absolute;
/// a relative one is made absolute against the current directory).
///
/// Reports every problem found, sorted by position, rather than the first.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let control = control_characters(text, file);
    if !control.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            problems: control,
        });
    }
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    validate::validate(text, file, &absolute, &dir).map_err(|problems| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    })
}
