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
//! Failures (missing binary, not executable, bad working directory, log file
//! that cannot be opened) come back as a [`SpawnError`] naming the path and
//! the OS error; they never panic.

use super::output::OutputSink;
use crate::config::ProgramConfig;
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
    #[error("{program}: {source}")]
    Exec { program: String, source: io::Error },
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

/// Forks and execs `program`, its streams piped when a sink is given (the
/// sink's file is (re)opened first) and sent to `/dev/null` otherwise.
/// `hidden_env` names daemon variables the child does not inherit (secrets);
/// the program's own `env:` still applies.
pub fn spawn(
    program: &ProgramConfig,
    stdout: Option<&OutputSink>,
    stderr: Option<&OutputSink>,
    hidden_env: &[String],
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

    let mut cmd = Command::new(exe);
    for name in hidden_env {
        cmd.env_remove(name);
    }
    cmd.args(args)
        .envs(&program.env)
        .stdin(Stdio::null())
        .stdout(piped_or_null(stdout))
        .stderr(piped_or_null(stderr))
        .process_group(0);
    if let Some(dir) = &program.workingdir {
        cmd.current_dir(dir);
    }
    let umask = program.umask.map(|m| m as libc::mode_t);
    // SAFETY: the closure only calls async-signal-safe functions (umask,
    // rt_sigprocmask, rt_sigaction, close_range, getrlimit, fcntl) on values
    // copied in before the fork; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            reset_child(umask);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
        program: exe.clone(),
        source,
    })?;
    Ok(SpawnedChild {
        pid: child.id(),
        stdout: child.stdout.take().map(OwnedFd::from),
        stderr: child.stderr.take().map(OwnedFd::from),
    })
    // `child` is dropped here without waiting: the Reaper collects it.
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
