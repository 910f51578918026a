//! Building and forking one child of an instance.
//!
//! `std::process::Command`, never `tokio::process`: the Reaper owns
//! `waitpid`, so the std `Child` is dropped right after its pipes are taken
//! (dropping neither waits nor kills). The argv is executed directly (no
//! shell), in a new process group whose id is the child's pid, so that stop
//! signals and SIGKILL escalation reach everything the program started.
//!
//! The child starts clean whatever state the daemon is in: stdin is
//! `/dev/null`, the signal mask is empty, every signal disposition is the
//! default (an ignored signal would otherwise survive `exec`), the configured
//! umask is applied, and every inherited descriptor above 2 is marked
//! close-on-exec (marked, not closed: std's exec-error pipe must stay open
//! until `exec`). That code runs in `pre_exec`, between `fork` and `exec`, so
//! it only makes async-signal-safe system calls: no allocation, no locks, no
//! logging. Using `pre_exec` makes std fork instead of `posix_spawn`, which is
//! fine for a daemon this small.
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
//! With `user:` (daemon running as root) the child drops to that account in
//! `pre_exec`: `setgroups`, `setgid`, `setuid`, in that order (groups and
//! gid while still root), from values resolved when the config was loaded.
//! The parent-death signal is set after, because a credential change clears
//! it. `HOME`, `USER` and `LOGNAME` are the account's unless `env` sets them.
//!
//! Failures (missing binary, not executable, bad working directory, log file
//! that cannot be opened, no process left to fork) come back as a
//! [`SpawnError`] naming the path and the OS error; they never panic: the
//! instance goes to BACKOFF and retries.

use super::output::OutputSink;
use crate::config::ProgramConfig;
use crate::leftovers;
use proto::OutputStream;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command")]
    EmptyCommand,
    #[error("working directory {}: {source}", dir.display())]
    WorkingDir { dir: PathBuf, source: io::Error },
    #[error("cannot open {stream} log {}: {source}", path.display())]
    Output {
        stream: OutputStream,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot create a process: {source} (the host's process or memory limit is reached)")]
    Fork { source: io::Error },
    #[error("cannot run as user {user}: {reason}")]
    User { user: String, reason: String },
    #[error("{program}: {source}")]
    Exec { program: String, source: io::Error },
}

impl SpawnError {
    /// `Command::spawn`'s error for `program`: a failed fork (EAGAIN: the
    /// process limit; ENOMEM) is the host's limit, anything else the
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

/// The credentials a child switches to, prepared before the fork.
#[derive(Debug)]
struct Credentials {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
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

/// Forks and execs instance `index` of `program`, its streams piped when a
/// sink is given (the sink's file is (re)opened first) and sent to
/// `/dev/null` otherwise.
pub fn spawn(
    program: &ProgramConfig,
    index: u32,
    stdout: Option<&OutputSink>,
    stderr: Option<&OutputSink>,
) -> Result<SpawnedChild, SpawnError> {
    let Some((exe, args)) = program.argv.split_first() else {
        return Err(SpawnError::EmptyCommand);
    };
    if let Some(dir) = &program.workingdir {
        // Checked here because a failed chdir in the child reports a bare
        // ENOENT that would blame the program instead.
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(SpawnError::WorkingDir {
                    dir: dir.clone(),
                    source: io::Error::from_raw_os_error(libc::ENOTDIR),
                });
            }
            Err(source) => {
                return Err(SpawnError::WorkingDir {
                    dir: dir.clone(),
                    source,
                });
            }
        }
    }
    for sink in [stdout, stderr].into_iter().flatten() {
        sink.open().map_err(|source| SpawnError::Output {
            stream: sink.stream(),
            path: sink.path().to_path_buf(),
            source,
        })?;
    }

    let credentials = credentials(program)?;
    let mut cmd = Command::new(exe);
    if let Some(user) = &program.user {
        // Before `env`, which may override them.
        cmd.env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd.envs(&program.env);
    // After `env`: a program cannot take another's tag.
    if let Some(tag) = leftovers::installed() {
        cmd.env(leftovers::SUPERVISOR_ENV, tag.as_str());
    }
    cmd.env(leftovers::INSTANCE_ENV, program.instance_name(index));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(piped_or_null(stdout))
        .stderr(piped_or_null(stderr))
        .process_group(0);
    if let Some(dir) = &program.workingdir {
        cmd.current_dir(dir);
    }
    let umask = program.umask.map(|m| m as libc::mode_t);
    let daemon = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (umask,
    // rt_sigprocmask, rt_sigaction, close_range, getrlimit, fcntl,
    // setgroups, setgid, setuid, prctl, getppid) on values moved in before
    // the fork; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            reset_child(umask);
            if let Some(c) = &credentials {
                switch_user(c)?;
            }
            die_with_parent(daemon)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|source| SpawnError::from_spawn(exe, source))?;
    Ok(SpawnedChild {
        pid: child.id(),
        stdout: child.stdout.take().map(OwnedFd::from),
        stderr: child.stderr.take().map(OwnedFd::from),
    })
    // `child` is dropped here without waiting: the Reaper collects it.
}

/// What the child must switch to, decided before the fork: only root
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

/// In the child: supplementary groups and gid while still root, then uid.
fn switch_user(c: &Credentials) -> io::Result<()> {
    // SAFETY: plain system calls on data prepared before the fork.
    unsafe {
        if libc::setgroups(c.groups.len(), c.groups.as_ptr()) != 0
            || libc::setgid(c.gid) != 0
            || libc::setuid(c.uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In the child, last (a credential change clears it): SIGKILL when the
/// daemon dies; if it died already, fail the exec instead of running
/// unsupervised.
fn die_with_parent(daemon: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != daemon {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

fn piped_or_null(sink: Option<&OutputSink>) -> Stdio {
    if sink.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// `sizeof(sigset_t)` for the kernel: 64 signals.
const KERNEL_SIGSET_BYTES: libc::size_t = 8;

/// Runs in the forked child before `exec`: async-signal-safe calls only.
fn reset_child(umask: Option<libc::mode_t>) {
    // SAFETY: plain system calls on local values; errors are ignored because
    // there is nothing safe to do about them here.
    unsafe {
        if let Some(mask) = umask {
            libc::umask(mask);
        }
        // The raw system call here too: glibc's sigprocmask silently keeps
        // its reserved signals (32, 33) blocked if the daemon had them so.
        let empty_set = 0u64;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty_set as *const u64,
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_BYTES,
        );
        // The raw system call, because glibc's wrappers refuse the signals
        // it reserves (32, 33), and an inherited SIG_IGN on those survives
        // exec too. All-zero is SIG_DFL, no flags, empty mask in every
        // kernel `struct sigaction` layout, whatever its size up to 32 bytes.
        let default_action = [0u64; 4];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<libc::c_void>(),
                    KERNEL_SIGSET_BYTES,
                );
            }
        }
        let marked = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
        if marked != 0 {
            // Kernels before 5.11: mark them one by one.
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(65536) as libc::c_int
            } else {
                1024
            };
            for fd in 3..max {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
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
}
