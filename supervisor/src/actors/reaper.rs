//! Reaper: the one owner of `waitpid` in the daemon.
//!
//! Every child is started by `clone` (`actors/process/vfork.rs`), with no
//! handle to wait on; no code in the daemon uses `tokio::process`. The Reaper
//! turns each SIGCHLD into a `waitpid(-1, WNOHANG)` loop and routes every exit
//! status, by pid, to the actor that registered the pid in the [`ChildTable`]
//! or, for a command run to completion without an actor of its own (a hook,
//! an `exec` probe: `actors/process/helper.rs`), to the oneshot channel
//! [`ChildTable::watch_once`] returned.
//! Statuses of pids nobody registered are grandchildren re-parented to us (the
//! daemon is a child subreaper), or children that failed before `execve`:
//! they are reaped and dropped, so no zombie
//! remains. Because a process actor registers its pid synchronously, in the
//! same handler that forked it, and the Reaper runs on the same single-threaded
//! arbiter, no exit can be reaped before its owner is known.
//!
//! Handles: the SIGCHLD stream. Sends: [`ChildExited`] to process actors
//! (or through a one-shot channel).
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
use tokio::sync::oneshot;

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
pub struct ChildTable(Arc<Mutex<HashMap<u32, Watcher>>>);

/// Who is told of one pid's exit.
enum Watcher {
    /// A process actor, for every child it spawns.
    Actor(Recipient<ChildExited>),
    /// One waiting future ([`ChildTable::watch_once`]).
    Once(oneshot::Sender<ChildExited>),
}

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
        self.lock().insert(pid, Watcher::Actor(recipient));
    }

    /// Registers `pid` for a future that waits for its exit once; call right
    /// after a successful spawn, before yielding. The status arrives on the
    /// receiver; dropping the receiver is fine (the child is still reaped).
    pub fn watch_once(&self, pid: u32) -> oneshot::Receiver<ChildExited> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(pid, Watcher::Once(tx));
        rx
    }

    /// True when `pid` is a watched child (an instance's leader, a helper
    /// command).
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

    fn take(&self, pid: u32) -> Option<Watcher> {
        self.lock().remove(&pid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Watcher>> {
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
        let exited = ChildExited { pid, status, at };
        match self.table.take(pid) {
            Some(Watcher::Actor(recipient)) => recipient.do_send(exited),
            // A receiver gone (its run was cancelled) needs nothing more.
            Some(Watcher::Once(tx)) => {
                let _ = tx.send(exited);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::process::spawn::{self, SpawnOptions};
    use crate::actors::process::tests::SERIAL;
    use crate::config::ProgramConfig;
    use actix::Actor;
    use std::time::Duration;

    fn spawn_sh(script: &str) -> Result<u32, Box<dyn std::error::Error>> {
        let program = ProgramConfig::with_defaults("once", "true", std::path::Path::new("/tmp"));
        let argv = ["sh".to_string(), "-c".into(), script.into()];
        let options = SpawnOptions {
            argv: Some(&argv),
            ..SpawnOptions::default()
        };
        Ok(spawn::spawn(&program, 0, None, None, &[], None, options)?.pid)
    }

    #[test]
    fn a_one_shot_watch_gets_the_status_from_the_reaper_and_a_dropped_one_is_still_reaped()
    -> Result<(), Box<dyn std::error::Error>> {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        actix_rt::System::new().block_on(async {
            let table = ChildTable::default();
            Reaper::new(table.clone())?.start();

            let pid = spawn_sh("exit 7")?;
            let exited = table.watch_once(pid);
            assert!(table.is_watched(pid));
            let exited = tokio::time::timeout(Duration::from_secs(10), exited).await??;
            assert_eq!((exited.pid, exited.status), (pid, ExitStatus::Code(7)));
            assert!(table.is_empty());

            // Nobody listens any more: the child is reaped all the same (no
            // zombie is left in /proc).
            let pid = spawn_sh("exit 0")?;
            drop(table.watch_once(pid));
            let deadline = Instant::now() + Duration::from_secs(10);
            while table.is_watched(pid) || crate::sys::procfs::stat(pid).is_some() {
                assert!(Instant::now() < deadline, "{pid} was not reaped");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
    }
}
