//! The typed `email:` section and per-program `notify:` rules.
//!
//! Parsing lives in `validate/email.rs`; this module holds what the daemon
//! keeps once a config is valid, and the one place that touches the SMTP
//! password. The password is never part of the config: the config names where
//! it is (`password_env` or `password_file`), and [`EmailConfig::password`]
//! reads it when the Notifier builds its transport, into a [`Secret`] whose
//! `Debug` shows nothing. `--check` therefore never reads a password, and an
//! environment without the variable (a developer's shell running `--check`)
//! is not a config error; the daemon logs it when it starts or reloads.

use crate::sys::fsafe::{self, FileError};
use lettre::Address;
use lettre::message::Mailbox;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `email.smtp.timeout` when unset.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `throttle` of a notify rule when unset.
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(300);

/// `email:` section: how to send, from whom, to whom by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub smtp: SmtpConfig,
    /// `From:` of every mail (`Name <addr>` or a bare address).
    pub from: Mailbox,
    /// Recipients of rules that name none; may be empty when every rule
    /// names its own.
    pub to: Vec<Address>,
}

/// `email.smtp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults by `tls`: 25 (none), 587 (starttls), 465 (tls).
    pub port: u16,
    pub tls: SmtpTls,
    /// With a password source, or neither.
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
    /// Bounds connecting and each SMTP exchange; also one send attempt.
    pub timeout: Duration,
    /// PEM certificates trusted besides the built-in (Mozilla) roots: a
    /// private CA's.
    pub ca_file: Option<PathBuf>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on localhost).
    None,
    /// Plain connection upgraded with STARTTLS; refused if the server cannot.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpTls {
    /// The conventional port of each mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// Where the SMTP password is, never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The daemon's environment variable of that name; it is removed from
    /// every child's environment.
    Env(String),
    /// A file readable by its owner only (mode 0600 or stricter).
    File(PathBuf),
}

/// A password in memory. `Debug` never shows it and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the one place that needs it (SMTP credentials).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A CA file larger than this is not a CA file.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// How messages name the CA file.
const CA_FILE: &str = "the CA file (email.smtp.ca_file)";

/// Why `email.smtp.ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// Missing, unreadable, a FIFO, a device, or too large.
    #[error("{0}")]
    Read(FileError),
    #[error("{} (email.smtp.ca_file) holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate { path: PathBuf },
}

/// Reads the CA file: a regular file (a symlink is followed, as for
/// certificates under /etc/ssl; never a FIFO) holding at least one PEM
/// certificate, at most 1 MiB. Its bytes, for lettre's `Certificate::from_pem`.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, CaFileError> {
    let (bytes, _) = fsafe::read_bounded(path, CA_FILE, fsafe::Follow::Yes, MAX_CA_FILE)
        .map_err(CaFileError::Read)?;
    if !bytes
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(CaFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Why the SMTP password could not be read. Messages name the source, never
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "environment variable {0} (email.smtp.password_env) is not set in taskmasterd's environment"
    )]
    EnvMissing(String),
    #[error("environment variable {0} (email.smtp.password_env) is empty")]
    EnvEmpty(String),
    #[error("cannot read password file {} (email.smtp.password_file): {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("password file {} (email.smtp.password_file) {why}", path.display())]
    Unsafe { path: PathBuf, why: String },
    /// A symlink, a FIFO, a device, or a file too large to be a password.
    #[error("{0}")]
    Refused(FileError),
}

impl EmailConfig {
    /// Reads the SMTP password from its source; `None` without credentials.
    pub fn password(&self) -> Result<Option<Secret>, PasswordError> {
        match &self.smtp.password {
            None => Ok(None),
            Some(PasswordSource::Env(name)) => match std::env::var_os(name) {
                None => Err(PasswordError::EnvMissing(name.clone())),
                Some(v) if v.is_empty() => Err(PasswordError::EnvEmpty(name.clone())),
                Some(v) => Ok(Some(Secret(v.to_string_lossy().into_owned()))),
            },
            Some(PasswordSource::File(path)) => read_password_file(path).map(Some),
        }
    }

    /// Environment variables holding a secret, to keep from children.
    pub fn secret_env(&self) -> Vec<String> {
        match &self.smtp.password {
            Some(PasswordSource::Env(name)) => vec![name.clone()],
            _ => Vec::new(),
        }
    }
}

/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// How messages name the password file.
const PASSWORD_FILE: &str = "the password file (email.smtp.password_file)";

/// Opens the password file as only a safe one is: a regular file (not a
/// symlink, never a FIFO that would block the open) with no permission bit
/// for group or others.
fn open_password_file(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), PasswordError> {
    let (file, meta) =
        fsafe::open_read(path, PASSWORD_FILE, fsafe::Follow::No).map_err(|e| match e {
            FileError::Io { source, .. } => PasswordError::File {
                path: path.to_path_buf(),
                source,
            },
            refused => PasswordError::Refused(refused),
        })?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PasswordError::Unsafe {
            path: path.to_path_buf(),
            why: format!(
                "is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    Ok((file, meta))
}

/// Why a password file is unsafe to use, if it is: not a regular file (a
/// symlink, a FIFO), or any permission bit for group or others.
pub fn password_file_problem(path: &Path) -> Result<(), PasswordError> {
    open_password_file(path).map(|_| ())
}

/// The first line of a safe password file, without its line end.
fn read_password_file(path: &Path) -> Result<Secret, PasswordError> {
    let (file, meta) = open_password_file(path)?;
    let bytes = fsafe::read_all_bounded(file, &meta, path, PASSWORD_FILE, MAX_PASSWORD_FILE)
        .map_err(|e| match e {
            FileError::Io { source, .. } => PasswordError::File {
                path: path.to_path_buf(),
                source,
            },
            refused => PasswordError::Refused(refused),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| PasswordError::Unsafe {
        path: path.to_path_buf(),
        why: "is not UTF-8 text".into(),
    })?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(PasswordError::Unsafe {
            path: path.to_path_buf(),
            why: "is empty".into(),
        });
    }
    Ok(Secret(first.to_string()))
}

/// What happened to an instance, as a notify rule's `on:` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// Entered FATAL (gave up).
    Fatal,
    /// The child exited on its own with a status not in `exitcodes`, or was
    /// killed by a signal (not during a stop).
    UnexpectedExit,
    /// Entered BACKOFF (a failed start, retrying).
    Backoff,
    /// Entered EXITED (an exit that is not restarted).
    Exited,
    /// Entered RUNNING.
    Started,
    /// Entered STOPPED.
    Stopped,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::Fatal,
        NotifyEvent::UnexpectedExit,
        NotifyEvent::Backoff,
        NotifyEvent::Exited,
        NotifyEvent::Started,
        NotifyEvent::Stopped,
    ];

    /// The name in `on:`.
    pub fn key(self) -> &'static str {
        match self {
            NotifyEvent::Fatal => "fatal",
            NotifyEvent::UnexpectedExit => "unexpected_exit",
            NotifyEvent::Backoff => "backoff",
            NotifyEvent::Exited => "exited",
            NotifyEvent::Started => "started",
            NotifyEvent::Stopped => "stopped",
        }
    }

    /// The name in a mail's subject.
    pub fn title(self) -> &'static str {
        match self {
            NotifyEvent::Fatal => "FATAL",
            NotifyEvent::UnexpectedExit => "UNEXPECTED EXIT",
            NotifyEvent::Backoff => "BACKOFF",
            NotifyEvent::Exited => "EXITED",
            NotifyEvent::Started => "STARTED",
            NotifyEvent::Stopped => "STOPPED",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.key() == key)
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// One entry of a program's `notify:` list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotifyRule {
    /// Never empty.
    pub on: BTreeSet<NotifyEvent>,
    /// Never empty: the rule's own `to`, or `email.to`.
    pub to: Vec<Address>,
    /// Events within this long after a mail are batched into one digest.
    pub throttle: Duration,
}

impl NotifyRule {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.on.contains(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn with_source(source: Option<PasswordSource>) -> Result<EmailConfig, String> {
        Ok(EmailConfig {
            smtp: SmtpConfig {
                host: "localhost".into(),
                port: 25,
                tls: SmtpTls::None,
                username: source.as_ref().map(|_| "user".to_string()),
                password: source,
                ca_file: None,
                timeout: DEFAULT_SMTP_TIMEOUT,
            },
            from: "tm@example.com".parse().map_err(|e| format!("{e}"))?,
            to: Vec::new(),
        })
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret = Secret::new("hunter2".into());
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn password_files_must_be_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-value\nignored\n")?;
        let config = with_source(Some(PasswordSource::File(path.clone())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
        let err = config.password().err().map(|e| e.to_string());
        let err = err.ok_or("a 0640 file was accepted")?;
        assert!(
            err.contains("mode 0640") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let secret = config.password()?.ok_or("no password")?;
        assert_eq!(secret.expose(), "s3cret-value");
        // The config itself never holds it.
        assert!(!format!("{config:?}").contains("s3cret"));
        Ok(())
    }

    #[test]
    fn a_password_file_that_is_a_symlink_a_fifo_or_huge_is_refused_at_once()
    -> Result<(), Box<dyn std::error::Error>> {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir()?;
        let real = dir.path().join("real");
        std::fs::write(&real, "s3cret-value\n")?;
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600))?;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link)?;
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'x'; 64 * 1024 + 1])?;
        std::fs::set_permissions(&huge, std::fs::Permissions::from_mode(0o600))?;
        for (path, words) in [
            (&link, "from a symlink"),
            (&fifo, "from a FIFO"),
            (&huge, "larger than 64 KiB"),
        ] {
            let config = with_source(Some(PasswordSource::File(path.clone())))?;
            let err = config.password().err().ok_or("accepted")?.to_string();
            assert!(err.contains(words), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert!(password_file_problem(&fifo).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        Ok(())
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() -> Result<(), String> {
        let name = "TASKMASTER_TEST_SURELY_UNSET_VARIABLE";
        let config = with_source(Some(PasswordSource::Env(name.into())))?;
        let err = config.password().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(name) && e.contains("not set")));
        assert_eq!(config.secret_env(), vec![name.to_string()]);
        assert!(with_source(None)?.password().is_ok_and(|p| p.is_none()));
        Ok(())
    }

    #[test]
    fn event_names_round_trip() {
        for event in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::from_key(event.key()), Some(event));
        }
        assert_eq!(NotifyEvent::from_key("crashed"), None);
    }
}
