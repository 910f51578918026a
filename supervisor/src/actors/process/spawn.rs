//! Building and starting one child of an instance.
//!
//! Never `tokio::process` nor a `Child` handle: the Reaper owns `waitpid`.
//! The child is started by `vfork::launch` (clone without copying the
//! daemon; see there for why and how). The argv is executed directly (no
//! shell), in a new process group whose id is the child's pid, so that stop
//! signals and SIGKILL escalation reach everything the program started.
//!
//! The child starts clean whatever state the daemon is in: stdin is
//! `/dev/null`, the signal mask is empty, every signal disposition is the
//! default (an ignored signal would otherwise survive `exec`), the configured
//! umask is applied, and it has no descriptor above 2 (see `vfork.rs`). Its
//! environment is the daemon's, then `user:`'s `HOME`,
//! `USER` and `LOGNAME`, then `env:`, then the tags below (which `env:`
//! cannot override), then the caller's [`SpawnOptions::env`] (a
//! `NOTIFY_SOCKET`).
//!
//! The same function starts what runs "like the program" beside it (a
//! `before_start` hook, an `exec` probe: see `helper.rs`): [`SpawnOptions`]
//! replaces the argv and can send stdout and stderr into one pipe.
//!
//! No orphans: the child asks the kernel for SIGKILL when the daemon dies
//! (`PR_SET_PDEATHSIG`; the parent-death signal follows the *thread* that
//! forked, and every spawn happens on the daemon's main thread, the actix
//! System's, which lives as long as the process), then checks that its
//! parent is still the daemon (it may have died before the `prctl`). Its
//! environment carries the daemon's tag and its instance name
//! ([`crate::leftovers`]), inherited by everything it starts, so that a
//! restarted daemon finds what a SIGKILLed one left behind.
//!
//! With `user:` (daemon running as root) the child drops to that account:
//! `setgroups`, `setgid`, `setuid`, in that order (groups and gid while
//! still root), from values resolved when the config was loaded, before it
//! enters the working directory. The parent-death signal is set after,
//! because a credential change clears it.
//!
//! Failures (missing binary, not executable, bad working directory, log file
//! that cannot be opened, no process left to fork) come back as a
//! [`SpawnError`] naming the path and the OS error; they never panic: the
//! instance goes to BACKOFF and retries.

use super::vfork::{self, Credentials, LaunchError, Plan, Stage};
use crate::config::ProgramConfig;
use crate::leftovers;
use crate::output::OutputSink;
use crate::sys::fsafe::FileError;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command")]
    EmptyCommand,
    #[error("working directory {}: {source}", dir.display())]
    WorkingDir { dir: PathBuf, source: io::Error },
    /// The message names the stream, the path and why (a symlink, a FIFO,
    /// an OS error).
    #[error("{0}")]
    Output(#[from] FileError),
    #[error("cannot create a process: {source} (the host's process or memory limit is reached)")]
    Fork { source: io::Error },
    #[error("cannot run as user {user}: {reason}")]
    User { user: String, reason: String },
    #[error("cannot prepare the child ({step}): {source}")]
    Setup {
        step: &'static str,
        source: io::Error,
    },
    #[error("{program}: {source}")]
    Exec { program: String, source: io::Error },
}

impl SpawnError {
    /// The error of creating the process or of its `execve`: EAGAIN (the
    /// process limit, also `execve`'s answer after a user switch over
    /// RLIMIT_NPROC) and ENOMEM are the host's limit, anything else the
    /// program's (not found, not executable, ...).
    pub fn from_spawn(program: &str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOMEM) => SpawnError::Fork { source },
            _ => SpawnError::Exec {
                program: program.to_string(),
                source,
            },
        }
    }
}

/// A child that exists; its exit will reach whoever watches `pid`.
#[derive(Debug)]
pub struct SpawnedChild {
    /// Also its process group id.
    pub pid: u32,
    /// Read end of its stdout pipe, unless stdout is discarded.
    pub stdout: Option<OwnedFd>,
    /// Read end of its stderr pipe, unless stderr is discarded.
    pub stderr: Option<OwnedFd>,
}

/// What a spawn changes from running the program itself; the default
/// changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpawnOptions<'a> {
    /// Run this instead of the program's `argv` (a hook, an `exec` probe).
    pub argv: Option<&'a [String]>,
    /// Variables set last, after `env:` and the tags (`NOTIFY_SOCKET`).
    pub env: &'a [(OsString, OsString)],
    /// One pipe for both stdout and stderr, returned as
    /// [`SpawnedChild::stdout`], whatever the sinks say (the sinks given
    /// are still opened first): the caller reads the output itself.
    pub merged_output: bool,
}

/// Starts instance `index` of `program`, its streams piped when a sink is
/// given (the sink's file is (re)opened first) and sent to `/dev/null`
/// otherwise. `hidden_env` names daemon variables the child does not
/// inherit (secrets); the program's own `env:` still applies. With
/// `cgroup_procs` (an open `cgroup.procs`), the child joins that cgroup
/// before anything else. `options` changes what runs (see [`SpawnOptions`]).
pub fn spawn(
    program: &ProgramConfig,
    index: u32,
    stdout: Option<&OutputSink>,
    stderr: Option<&OutputSink>,
    hidden_env: &[String],
    cgroup_procs: Option<RawFd>,
    options: SpawnOptions<'_>,
) -> Result<SpawnedChild, SpawnError> {
    let argv = options.argv.unwrap_or(&program.argv);
    let Some(exe) = argv.first() else {
        return Err(SpawnError::EmptyCommand);
    };
    for sink in [stdout, stderr].into_iter().flatten() {
        sink.ensure_open()?;
    }
    let credentials = credentials(program)?;
    let null = vfork::dev_null().map_err(|source| SpawnError::Setup {
        step: "open /dev/null",
        source,
    })?;
    let pipe = |wanted: bool| -> Result<Option<(OwnedFd, OwnedFd)>, SpawnError> {
        if !wanted {
            return Ok(None);
        }
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map(Some)
            .map_err(|e| SpawnError::from_spawn(exe, io::Error::from(e)))
    };
    let (out, err) = if options.merged_output {
        (pipe(true)?, None)
    } else {
        (pipe(stdout.is_some())?, pipe(stderr.is_some())?)
    };

    let (inherited, set) = environment(program, index, hidden_env, options.env);
    // The PATH the child will have decides where its program is found.
    let path = match set.iter().find(|(k, _)| k == "PATH") {
        Some((_, v)) => Some(v.as_os_str()),
        None => daemon_env()
            .iter()
            .find(|(k, _)| k == "PATH")
            .and_then(|(_, entry)| entry.to_bytes().strip_prefix(b"PATH="))
            .map(OsStr::from_bytes),
    };
    let mut plan = Plan::new(argv, inherited, &set, path).map_err(|e| SpawnError::Setup {
        step: e.what,
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let write_end =
        |p: &Option<(OwnedFd, OwnedFd)>| p.as_ref().map_or(null, |(_, w)| w.as_raw_fd());
    let stderr_end = if options.merged_output {
        write_end(&out)
    } else {
        write_end(&err)
    };
    plan.stdio = [null, write_end(&out), stderr_end];
    plan.cwd =
        match &program.workingdir {
            Some(dir) => Some(CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
                SpawnError::WorkingDir {
                    dir: dir.clone(),
                    source: io::Error::from_raw_os_error(libc::EINVAL),
                }
            })?),
            None => None,
        };
    plan.umask = program.umask.map(|m| m as libc::mode_t);
    plan.credentials = credentials;
    plan.cgroup_procs = cgroup_procs;

    let pid = vfork::launch(&plan).map_err(|e| match e {
        LaunchError::Slots(source) => SpawnError::Setup {
            step: "stdio slots",
            source,
        },
        LaunchError::Clone(source) => SpawnError::from_spawn(exe, source),
        LaunchError::Child { stage, error } => match stage {
            Stage::Exec => SpawnError::from_spawn(exe, error),
            Stage::WorkingDir => SpawnError::WorkingDir {
                dir: program.workingdir.clone().unwrap_or_default(),
                source: error,
            },
            Stage::Credentials => SpawnError::User {
                user: program
                    .user
                    .as_ref()
                    .map_or_else(String::new, |u| u.name.clone()),
                reason: error.to_string(),
            },
            Stage::ProcessGroup => SpawnError::Setup {
                step: "setpgid",
                source: error,
            },
            Stage::Stdio => SpawnError::Setup {
                step: "dup2",
                source: error,
            },
            Stage::ParentDeathSignal => SpawnError::Setup {
                step: "prctl(PR_SET_PDEATHSIG)",
                source: error,
            },
            Stage::DaemonGone => SpawnError::Setup {
                step: "the daemon exited",
                source: error,
            },
            Stage::Cgroup => SpawnError::Setup {
                step: "join the instance's cgroup",
                source: error,
            },
        },
    })?;
    // The write ends are the child's now; ours close here.
    Ok(SpawnedChild {
        pid,
        stdout: out.map(|(r, _)| r),
        stderr: err.map(|(r, _)| r),
    })
}

/// Reserves the descriptors every spawn hands the child's stdio through.
/// Call once at start-up, before the daemon opens much else: each child
/// briefly keeps every descriptor numbered below them (see `vfork.rs`).
pub fn reserve_stdio_slots() -> io::Result<()> {
    vfork::reserve_stdio_slots()
}

/// The daemon's environment as `NAME=VALUE` entries, read once (the daemon
/// never changes it), with their names.
fn daemon_env() -> &'static [(OsString, CString)] {
    static DAEMON_ENV: OnceLock<Vec<(OsString, CString)>> = OnceLock::new();
    DAEMON_ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut entry = k.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                Some((k, CString::new(entry).ok()?))
            })
            .collect()
    })
}

/// The child's environment (see the module doc for the order): the
/// daemon's entries it keeps, and the variables set for it.
fn environment(
    program: &ProgramConfig,
    index: u32,
    hidden_env: &[String],
    extra: &[(OsString, OsString)],
) -> (Vec<&'static CStr>, Vec<(OsString, OsString)>) {
    let mut set: Vec<(OsString, OsString)> =
        Vec::with_capacity(program.env.len() + extra.len() + 5);
    let mut put = |k: OsString, v: OsString| match set.iter_mut().find(|(key, _)| *key == k) {
        Some(entry) => entry.1 = v,
        None => set.push((k, v)),
    };
    if let Some(user) = &program.user {
        put("HOME".into(), user.home.clone().into_os_string());
        put("USER".into(), user.name.clone().into());
        put("LOGNAME".into(), user.name.clone().into());
    }
    for (k, v) in &program.env {
        put(k.into(), v.into());
    }
    // After `env`: a program cannot take another's tag.
    if let Some(tag) = leftovers::installed() {
        put(leftovers::SUPERVISOR_ENV.into(), tag.as_str().into());
    }
    put(
        leftovers::INSTANCE_ENV.into(),
        program.instance_name(index).into(),
    );
    for (k, v) in extra {
        put(k.clone(), v.clone());
    }
    let inherited = daemon_env()
        .iter()
        .filter(|(k, _)| !set.iter().any(|(key, _)| key == k))
        .filter(|(k, _)| !hidden_env.iter().any(|h| k == h.as_str()))
        .map(|(_, entry)| entry.as_c_str())
        .collect();
    (inherited, set)
}

/// What the child must switch to, decided before the clone: only root
/// switches; a daemon that is not root runs programs as itself, and a
/// `user:` naming someone else is refused (the validator says so first).
fn credentials(program: &ProgramConfig) -> Result<Option<Credentials>, SpawnError> {
    let Some(user) = &program.user else {
        return Ok(None);
    };
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Ok(Some(Credentials {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
        }));
    }
    if user.uid == euid.as_raw() {
        return Ok(None);
    }
    Err(SpawnError::User {
        user: user.name.clone(),
        reason: format!("taskmasterd runs as uid {euid}, not root"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::process::state::{Event, Machine, Policy};
    use proto::ProcessState;
    use std::time::Instant;

    #[test]
    fn a_failed_fork_is_the_hosts_limit_and_backs_off() {
        for errno in [libc::EAGAIN, libc::ENOMEM] {
            let e = SpawnError::from_spawn("web", io::Error::from_raw_os_error(errno));
            assert!(matches!(e, SpawnError::Fork { .. }), "{e:?}");
            assert!(e.to_string().contains("limit"), "{e}");
        }
        let e = SpawnError::from_spawn("nope", io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(e, SpawnError::Exec { .. }), "{e:?}");
        assert!(e.to_string().starts_with("nope: "), "{e}");

        // What the actor does with it: the spawn failure is a failed
        // attempt, BACKOFF with a retry timer, never a crash.
        let program = ProgramConfig::with_defaults("web", "web", std::path::Path::new("/tmp"));
        let policy = Policy::of(&program);
        let mut machine = Machine::new();
        let now = Instant::now();
        let _ = machine.on_event(Event::Start, &policy, now);
        let fork = SpawnError::from_spawn("web", io::Error::from_raw_os_error(libc::EAGAIN));
        let _ = machine.on_event(
            Event::SpawnFailed {
                error: fork.to_string(),
            },
            &policy,
            now,
        );
        assert_eq!(machine.state(), ProcessState::Backoff);
    }

    #[test]
    fn the_callers_variables_come_last_and_override_env_and_the_tags() {
        let mut program = ProgramConfig::with_defaults("web", "web", std::path::Path::new("/tmp"));
        program
            .env
            .insert("NOTIFY_SOCKET".into(), "from env".into());
        program.env.insert("KEEP".into(), "kept".into());
        let extra = [
            (OsString::from("NOTIFY_SOCKET"), OsString::from("/run/x")),
            (
                OsString::from(leftovers::INSTANCE_ENV),
                OsString::from("other"),
            ),
        ];
        let (_, set) = environment(&program, 0, &[], &extra);
        let get = |k: &str| set.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("NOTIFY_SOCKET"), Some("/run/x".into()));
        assert_eq!(get("KEEP"), Some("kept".into()));
        assert_eq!(get(leftovers::INSTANCE_ENV), Some("other".into()));
        // Without extra variables, the tag is the instance's own.
        let (_, set) = environment(&program, 0, &[], &[]);
        let tag = set.iter().find(|(k, _)| k == leftovers::INSTANCE_ENV);
        assert_eq!(
            tag.map(|(_, v)| v.clone()),
            Some(program.instance_name(0).into())
        );
    }
}
