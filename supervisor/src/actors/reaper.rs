//! Reaper: the one owner of `waitpid` in the daemon.
//!
//! Every child is started by `clone` (`actors/process/vfork.rs`), with no
//! handle to wait on; no code in the daemon uses `tokio::process`. The Reaper
//! turns each SIGCHLD into a `waitpid(-1, WNOHANG)` loop and routes every exit
//! status, by pid, to the actor that registered the pid in the [`ChildTable`].
//! Statuses of pids nobody registered are grandchildren re-parented to us (the
//! daemon is a child subreaper), or children that failed before `execve`:
//! they are reaped and dropped, so no zombie
//! remains. Because a process actor registers its pid synchronously, in the
//! same handler that forked it, and the Reaper runs on the same single-threaded
//! arbiter, no exit can be reaped before its owner is known.
//!
//! Handles: the SIGCHLD stream. Sends: [`ChildExited`] to process actors.
//! Stops: never (with the System).

use crate::sys::exit::ExitStatus;
use actix::{Actor, AsyncContext, Context, Message, Recipient, StreamHandler};
use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};

/// A watched child has ended; sent to the recipient registered for its pid.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub pid: u32,
    pub status: ExitStatus,
    /// When the Reaper collected it.
    pub at: Instant,
}

/// pid → who wants its exit status. Cloned into every process actor.
#[derive(Clone, Default)]
pub struct ChildTable(Arc<Mutex<HashMap<u32, Recipient<ChildExited>>>>);

impl fmt::Debug for ChildTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildTable")
            .field("watched", &self.len())
            .finish()
    }
}

impl ChildTable {
    /// Registers `pid`; call right after a successful spawn, before yielding.
    pub fn watch(&self, pid: u32, recipient: Recipient<ChildExited>) {
        self.lock().insert(pid, recipient);
    }

    /// True when `pid` is a watched child (an instance's leader).
    pub fn is_watched(&self, pid: u32) -> bool {
        self.lock().contains_key(&pid)
    }

    /// Number of watched pids.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no pid is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, pid: u32) -> Option<Recipient<ChildExited>> {
        self.lock().remove(&pid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Recipient<ChildExited>>> {
        // Only ever held for a map operation on one thread; a poisoned map is
        // still a valid map.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reaping actor. Create it before spawning any child.
pub struct Reaper {
    table: ChildTable,
    sigchld: Option<SignalStream>,
    orphans_reaped: u64,
}

impl fmt::Debug for Reaper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper")
            .field("orphans_reaped", &self.orphans_reaped)
            .finish()
    }
}

impl Reaper {
    /// Installs the SIGCHLD handler now, so no exit is missed between here
    /// and the actor's start. Must run inside the System's runtime.
    pub fn new(table: ChildTable) -> std::io::Result<Self> {
        let sigchld = signal(SignalKind::child())?;
        Ok(Reaper {
            table,
            sigchld: Some(sigchld),
            orphans_reaped: 0,
        })
    }

    /// Collects every exited child and routes its status.
    fn reap_all(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.route(pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, core_dumped)) => self.route(
                    pid,
                    ExitStatus::Signaled {
                        signal: sig as i32,
                        core_dumped,
                    },
                ),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Ok(_) => continue, // stop/continue reports: not requested, not exits
                Err(e) => {
                    tracing::error!(error = %e, "waitpid failed");
                    break;
                }
            }
        }
    }

    fn route(&mut self, pid: Pid, status: ExitStatus) {
        let pid = pid.as_raw() as u32;
        let at = Instant::now();
        match self.table.take(pid) {
            Some(recipient) => recipient.do_send(ChildExited { pid, status, at }),
            None => {
                self.orphans_reaped += 1;
                tracing::debug!(pid, %status, "reaped re-parented descendant");
            }
        }
    }
}

impl Actor for Reaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(sigchld) = self.sigchld.take() {
            let stream = futures::stream::unfold(sigchld, |mut s| async move {
                s.recv().await.map(|()| ((), s))
            });
            ctx.add_stream(stream);
        }
        // Children that ended before the stream was polled.
        self.reap_all();
    }
}

/// Each item means "at least one SIGCHLD arrived".
impl StreamHandler<()> for Reaper {
    fn handle(&mut self, _: (), _: &mut Self::Context) {
        self.reap_all();
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The signal stream never ends while the runtime lives; keep running.
    }
}
