//! Going to the background, the classic way, but only after every fallible
//! start-up step succeeded (config, event log, pidfile lock, token, bind).
//!
//! The launching process waits on a pipe until the daemon writes `ready`
//! (once its actors are up, see [`crate::run`]), then exits 0; if the pipe
//! closes first it prints what the daemon sent (or that it died) and exits 1.
//! So `taskmasterd -d && taskmasterctl status` always works.

use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;

/// Why detaching failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonizeError {
    #[error("cannot go to the background: {0}")]
    Sys(#[from] nix::Error),
    #[error("cannot go to the background: {0}")]
    Io(#[from] io::Error),
}

/// Forks. In the launcher this never returns: it waits for the daemon's
/// word and exits. In the daemon it returns the write end of the readiness
/// pipe. Must be called while the process has a single thread.
pub fn detach() -> Result<File, DaemonizeError> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: no other thread exists yet (no runtime has been built), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            crate::signals::restore_defaults();
            std::process::exit(wait_for_daemon(read_end));
        }
        ForkResult::Child => {
            drop(read_end);
            setsid()?;
            let null = File::options().read(true).write(true).open("/dev/null")?;
            dup2_stdin(&null)?;
            dup2_stdout(&null)?;
            dup2_stderr(&null)?;
            Ok(File::from(write_end))
        }
    }
}

fn wait_for_daemon(read_end: OwnedFd) -> i32 {
    let mut said = String::new();
    let _ = File::from(read_end).read_to_string(&mut said);
    if said.starts_with("ready") {
        0
    } else {
        let said = said.trim();
        if said.is_empty() {
            eprintln!("taskmasterd: the daemon exited during start-up; see the event log");
        } else {
            eprintln!("taskmasterd: {said}");
        }
        1
    }
}
