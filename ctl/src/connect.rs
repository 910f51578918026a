//! Finding and reaching the daemon: the config's `server:` section, the token
//! file, the TCP connection, with errors that say what to fix.
//!
//! The client reads the daemon's own YAML file but only its `server:` section,
//! and leniently: a mistake in a program (unknown key, wrong type) is the
//! daemon's business and must not stop anyone from running `status` to look
//! at it. The token is re-read at every connection, so a shell survives a
//! daemon restart that wrote a new token.
//!
//! Why serde_yaml here when the daemon reads the same file with yaml-rust2:
//! the daemon needs every node's line and column for its problem reports,
//! which serde_yaml does not give, and its own reader over yaml-rust2 events
//! does. The client needs two scalars from one section, leniently, and must
//! not depend on the daemon's crate (it pulls actix, nix and lettre). Two
//! readers of one file is the lesser cost; both are YAML 1.2 readers, and the
//! client refuses a file that is not valid YAML at all.

use proto::{Client, ClientError};
use serde::Deserialize;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default config file, as for the daemon.
pub const DEFAULT_CONFIG: &str = "taskmaster.yaml";
/// Names the config when `-c` is not given (before [`DEFAULT_CONFIG`]).
pub const CONFIG_ENV: &str = "TASKMASTER_CONFIG";
/// The host-wide config, looked for after [`DEFAULT_CONFIG`].
pub const SYSTEM_CONFIG: &str = "/etc/taskmaster/taskmaster.yaml";

/// Bounds the connect and the handshake, not the commands (a waiting `start`
/// may legitimately take long).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the command line says about where the daemon is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `-c`; `None` means `$TASKMASTER_CONFIG`, else the first of
    /// [`DEFAULT_CONFIG`] (in the working directory) and [`SYSTEM_CONFIG`]
    /// that exists.
    pub config: Option<PathBuf>,
    /// `--server`, overrides `server.listen`.
    pub server: Option<String>,
    /// `--token-file`, overrides `server.token_file`.
    pub token_file: Option<PathBuf>,
}

/// Where to connect and with which token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub addr: String,
    pub token_file: PathBuf,
    /// When no config file was found: the places looked at, for the error
    /// that follows (`tried ./taskmaster.yaml, /etc/…`).
    pub searched: Option<String>,
}

/// Why the daemon cannot be reached (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read config {}: {source} (use -c CONFIG, or --server and --token-file)", path.display())]
    ConfigRead { path: PathBuf, source: io::Error },
    #[error("config {} is not valid YAML: {message}", path.display())]
    ConfigSyntax { path: PathBuf, message: String },
    #[error(
        "cannot read token file {}: {source} ({})",
        path.display(),
        searched.as_deref().map_or_else(
            || "is taskmasterd running with this config? use --token-file".to_string(),
            |s| format!("no config file found: {s}; use -c CONFIG or set ${CONFIG_ENV}, or --token-file")
        )
    )]
    Token {
        path: PathBuf,
        source: io::Error,
        searched: Option<String>,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The part of the daemon's config the client needs; every other key is ignored.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    server: Option<ServerSection>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerSection {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

impl ConnectOptions {
    /// Resolves the address and token file: flags first, then the config's
    /// `server:` section, then the defaults. A missing config file is fine
    /// when both flags are given, or when it was not named explicitly (the
    /// defaults then apply, relative to the working directory).
    pub fn settings(&self) -> Result<Settings, ConnectError> {
        self.settings_from(
            std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()),
            &[PathBuf::from(DEFAULT_CONFIG), PathBuf::from(SYSTEM_CONFIG)],
        )
    }

    /// [`Self::settings`] with the environment's `$TASKMASTER_CONFIG` and the
    /// default places given, so that tests need not change either.
    fn settings_from(
        &self,
        env: Option<std::ffi::OsString>,
        defaults: &[PathBuf],
    ) -> Result<Settings, ConnectError> {
        // `-c` and the variable name one file, which must then be readable:
        // silently using another daemon's config would steer the wrong fleet.
        let (path, named) = match (&self.config, env) {
            (Some(c), _) => (Some(c.clone()), true),
            (None, Some(e)) => (Some(PathBuf::from(e)), true),
            (None, None) => (defaults.iter().find(|p| p.exists()).cloned(), false),
        };
        let searched = match &path {
            None => Some(format!(
                "${CONFIG_ENV} is not set, tried {}",
                defaults
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(_) => None,
        };
        let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let section = if self.server.is_some() && self.token_file.is_some() {
            ServerSection::default()
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => parse_server_section(&path, &text)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !named => ServerSection::default(),
                Err(source) => return Err(ConnectError::ConfigRead { path, source }),
            }
        };
        let addr = self
            .server
            .clone()
            .or(section.listen)
            .unwrap_or_else(|| proto::DEFAULT_LISTEN.to_string());
        let token_file = match &self.token_file {
            Some(t) => t.clone(),
            None => {
                let t = section
                    .token_file
                    .unwrap_or_else(|| PathBuf::from(proto::DEFAULT_TOKEN_FILE));
                // As in the daemon: relative to the config file's directory.
                match path.parent() {
                    Some(dir) if t.is_relative() => dir.join(t),
                    _ => t,
                }
            }
        };
        // Absolute, so an error message names the file unambiguously.
        let token_file = std::path::absolute(&token_file).unwrap_or(token_file);
        Ok(Settings {
            addr,
            token_file,
            searched,
        })
    }
}

fn parse_server_section(path: &Path, text: &str) -> Result<ServerSection, ConnectError> {
    let syntax = |e: serde_yaml::Error| ConnectError::ConfigSyntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // Through `Value` first: a syntax error anywhere is reported, but a wrong
    // type outside `server:` never reaches a typed field.
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax)?;
    let server = match value {
        serde_yaml::Value::Mapping(mut m) => m.remove("server"),
        _ => None,
    };
    match server {
        None | Some(serde_yaml::Value::Null) => Ok(ServerSection::default()),
        Some(s) => {
            let file: FileConfig = serde_yaml::from_value(serde_yaml::Value::Mapping(
                serde_yaml::Mapping::from_iter([("server".into(), s)]),
            ))
            .map_err(|e| ConnectError::ConfigSyntax {
                path: path.to_path_buf(),
                message: format!("in server: {e}"),
            })?;
            Ok(file.server.unwrap_or_default())
        }
    }
}

impl Settings {
    /// Reads the token and connects.
    pub fn connect(&self) -> Result<Client, ConnectError> {
        let token =
            std::fs::read_to_string(&self.token_file).map_err(|source| ConnectError::Token {
                path: self.token_file.clone(),
                source,
                searched: self.searched.clone(),
            })?;
        Ok(Client::connect(&self.addr, token.trim(), CONNECT_TIMEOUT)?)
    }
}

/// A lazily (re)connected link to the daemon, shared by the commands of one
/// run (one-shot, a pipe, or a whole shell session).
#[derive(Debug)]
pub struct Session {
    options: ConnectOptions,
    client: Option<Client>,
}

impl Session {
    pub fn new(options: ConnectOptions) -> Self {
        Self {
            options,
            client: None,
        }
    }

    /// The open connection, connecting first if needed. The bool is true
    /// when the connection was just made (so a failure on it is not a stale
    /// connection worth retrying).
    pub fn client(&mut self) -> Result<(&mut Client, bool), ConnectError> {
        let fresh = self.client.is_none();
        if fresh {
            let client = self.options.settings()?.connect()?;
            self.client = Some(client);
        }
        match self.client.as_mut() {
            Some(c) => Ok((c, fresh)),
            None => Err(ConnectError::Client(ClientError::Closed)),
        }
    }

    /// Where this session connects (for a second connection).
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Forgets the connection; the next command reconnects.
    pub fn disconnect(&mut self) {
        self.client = None;
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(config: &Path) -> ConnectOptions {
        ConnectOptions {
            config: Some(config.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn reads_only_the_server_section_and_resolves_the_token_next_to_the_config()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("t.yaml");
        std::fs::write(
            &cfg,
            "server:\n  listen: 127.0.0.1:9999\n  token_file: run/tok\n  allow_remote: false\n\
             programs:\n  web:\n    cmd: 12\n    bogus_key: [1, 2]\n    numprocs: many\n",
        )?;
        let s = opts(&cfg).settings()?;
        assert_eq!(s.addr, "127.0.0.1:9999");
        assert_eq!(s.token_file, dir.path().join("run/tok"));
        Ok(())
    }

    #[test]
    fn defaults_apply_without_a_server_section() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("t.yaml");
        std::fs::write(&cfg, "programs: {}\n")?;
        let s = opts(&cfg).settings()?;
        assert_eq!(s.addr, proto::DEFAULT_LISTEN);
        assert_eq!(s.token_file, dir.path().join(proto::DEFAULT_TOKEN_FILE));
        std::fs::write(&cfg, "")?;
        assert_eq!(opts(&cfg).settings()?.addr, proto::DEFAULT_LISTEN);
        Ok(())
    }

    #[test]
    fn flags_override_and_absolute_token_paths_stay() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("t.yaml");
        std::fs::write(&cfg, "server:\n  token_file: /abs/tok\n")?;
        assert_eq!(opts(&cfg).settings()?.token_file, PathBuf::from("/abs/tok"));
        let o = ConnectOptions {
            config: Some(dir.path().join("missing.yaml")),
            server: Some("127.0.0.1:1".into()),
            token_file: Some("/x/tok".into()),
        };
        let s = o.settings()?;
        assert_eq!(
            (s.addr.as_str(), s.token_file.as_path()),
            ("127.0.0.1:1", Path::new("/x/tok"))
        );
        Ok(())
    }

    #[test]
    fn syntax_errors_and_missing_explicit_configs_are_reported()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("t.yaml");
        std::fs::write(&cfg, "server: [unclosed\n")?;
        let e = opts(&cfg).settings().err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("not valid YAML")),
            "{e:?}"
        );
        std::fs::write(&cfg, "server:\n  listen: [1]\n")?;
        let e = opts(&cfg).settings().err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("in server")),
            "{e:?}"
        );
        let e = opts(&dir.path().join("nope.yaml"))
            .settings()
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("cannot read config")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn without_c_the_variable_then_the_local_then_the_system_config_is_read()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let local = dir.path().join("local.yaml");
        let system = dir.path().join("system.yaml");
        let from_env = dir.path().join("env.yaml");
        std::fs::write(&system, "server: {listen: 127.0.0.1:3}\n")?;
        std::fs::write(&from_env, "server: {listen: 127.0.0.1:1}\n")?;
        let none = ConnectOptions::default();
        let defaults = [local.clone(), system.clone()];
        // Only the system one exists.
        let s = none.settings_from(None, &defaults)?;
        assert_eq!((s.addr.as_str(), s.searched), ("127.0.0.1:3", None));
        // The local one comes first.
        std::fs::write(&local, "server: {listen: 127.0.0.1:2}\n")?;
        assert_eq!(none.settings_from(None, &defaults)?.addr, "127.0.0.1:2");
        // The variable comes before both, and -c before the variable.
        let s = none.settings_from(Some(from_env.clone().into()), &defaults)?;
        assert_eq!(s.addr, "127.0.0.1:1");
        let s = opts(&system).settings_from(Some(from_env.into()), &defaults)?;
        assert_eq!(s.addr, "127.0.0.1:3");
        // A variable naming a missing file is an error, not a fall-through.
        let e = none
            .settings_from(Some(dir.path().join("nope.yaml").into()), &defaults)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("cannot read config")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn with_no_config_anywhere_the_token_error_says_where_it_looked()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let defaults = [dir.path().join("a.yaml"), dir.path().join("b.yaml")];
        let s = ConnectOptions::default().settings_from(None, &defaults)?;
        assert_eq!(s.addr, proto::DEFAULT_LISTEN);
        let e = s.connect().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("cannot read token file "), "{e}");
        let tried = format!(
            "no config file found: $TASKMASTER_CONFIG is not set, tried {}, {}",
            defaults[0].display(),
            defaults[1].display()
        );
        assert!(e.contains(&tried), "{e}");
        assert!(e.contains("use -c CONFIG"), "{e}");
        Ok(())
    }

    #[test]
    fn missing_token_file_says_how_to_fix_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let s = Settings {
            addr: "127.0.0.1:1".into(),
            token_file: dir.path().join("taskmasterd.token"),
            searched: None,
        };
        let e = s.connect().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("cannot read token file "), "{e}");
        assert!(e.contains("use --token-file"), "{e}");
        Ok(())
    }
}
