//! Signals sent to the daemon: none may kill it by its default action.
//!
//! A signal whose default action is to terminate would take the whole fleet
//! with it (the children die of their parent-death signal). So [`install`]
//! runs first thing in `main`, before the config is read, leftovers are swept
//! or any child exists, and gives every such signal a handler:
//!
//! - SIGTERM/SIGINT (shutdown; a second one forces it), SIGHUP (reload) and
//!   SIGUSR2 (reopen the logs) mean something. One that arrives during
//!   start-up waits in a counter until [`dispatch`] applies it, once `main`
//!   has handed it to [`run`](crate::run) and the actors are up: a
//!   SIGHUP is a reload right after start-up, a SIGTERM ends the start-up
//!   cleanly before anything is spawned (`main` asks
//!   [`take_shutdown_request`]).
//! - Every other terminating signal (SIGUSR1, SIGQUIT, SIGALRM, SIGVTALRM,
//!   SIGPROF, SIGIO, SIGPWR, SIGSTKFLT, SIGXCPU, SIGXFSZ, the real-time
//!   signals) has no meaning here: it is logged with its sender's pid and
//!   ignored. SIGPIPE stays ignored, as the Rust runtime sets it (a closed
//!   socket is an `EPIPE`, not an event).
//! - Fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT)
//!   keep their default: they mean a bug, and a daemon that cannot trust its
//!   memory should die (the next start stops what it left).
//!
//! The handler only counts the signal, notes its sender and writes a byte to
//! a non-blocking pipe (async-signal-safe). The daemon's one thread waits on
//! that pipe in [`dispatch`], so no signal handler ever touches an actor.
//! Handlers, unlike `SIG_IGN`, do not survive `execve`, and the spawn code
//! resets every disposition and the mask in the child anyway.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Signal numbers go up to 64 on Linux (`SIGRTMAX`).
const SLOTS: usize = 65;

/// How many of each signal arrived and were not yet dispatched.
static PENDING: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// The last sender's pid of each signal (0: sent by the kernel, or unknown).
static SENDER: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// The write end of the wake-up pipe (-1 before [`install`]).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The read end, until [`dispatch`] takes it.
static WAKE_READ: Mutex<Option<OwnedFd>> = Mutex::new(None);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// What the daemon does with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Shutdown,
    Reload,
    ReopenLogs,
    Ignore,
}

/// The signals given a handler: the meaningful ones, then every other one
/// whose default action terminates the daemon (faults excepted, see above).
pub fn handled() -> Vec<(libc::c_int, Meaning)> {
    let mut all = vec![
        (libc::SIGTERM, Meaning::Shutdown),
        (libc::SIGINT, Meaning::Shutdown),
        (libc::SIGHUP, Meaning::Reload),
        (libc::SIGUSR2, Meaning::ReopenLogs),
    ];
    for sig in [
        libc::SIGUSR1,
        libc::SIGQUIT,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
    ] {
        all.push((sig, Meaning::Ignore));
    }
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        all.push((sig, Meaning::Ignore));
    }
    all
}

/// Gives every signal of [`handled`] its handler and unblocks it (a parent
/// may have blocked some; a blocked SIGTERM would never be applied).
/// Idempotent; `main` calls it first, before the config is read or any
/// child exists ([`run`](crate::run) does not: its caller owns the signals).
pub fn install() -> io::Result<()> {
    INSTALLED
        .get_or_init(|| install_once().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

fn install_once() -> io::Result<()> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(io::Error::from)?;
    // The write end lives as long as the process: handlers may run any time.
    WAKE_FD.store(std::os::fd::IntoRawFd::into_raw_fd(write), Ordering::SeqCst);
    *WAKE_READ.lock().unwrap_or_else(PoisonError::into_inner) = Some(read);
    for (sig, _) in handled() {
        // SAFETY: the action is async-signal-safe: atomics and write(2).
        unsafe { signal_hook_registry::register_sigaction(sig, on_signal) }?;
    }
    // By number: real-time signals have no `nix` `Signal` variant.
    // SAFETY: sigset manipulation and sigprocmask on our own thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (sig, _) in handled() {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The handler: count, note the sender, wake the dispatcher.
fn on_signal(info: &libc::siginfo_t) {
    let sig = info.si_signo;
    let Ok(slot) = usize::try_from(sig) else {
        return;
    };
    if slot >= SLOTS {
        return;
    }
    // Only signals sent by a process (kill, sigqueue, tgkill) carry a pid.
    let sender = if matches!(
        info.si_code,
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL
    ) {
        // SAFETY: for these codes the kernel filled in the sender's pid.
        unsafe { info.si_pid() }
    } else {
        0
    };
    SENDER[slot].store(sender, Ordering::SeqCst);
    PENDING[slot].fetch_add(1, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // Non-blocking: a full pipe already holds a wake-up.
        // SAFETY: write(2) is async-signal-safe; one byte from our stack.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// Takes the count and last sender of `sig` received since the last call.
fn take(sig: libc::c_int) -> Option<(u32, i32)> {
    let slot = usize::try_from(sig).ok().filter(|&s| s < SLOTS)?;
    let count = PENDING[slot].swap(0, Ordering::SeqCst);
    (count > 0).then(|| (count, SENDER[slot].load(Ordering::SeqCst)))
}

/// True (once) if SIGTERM or SIGINT arrived and was not yet dispatched:
/// `main` asks before spawning anything, so a shutdown requested during
/// start-up ends it cleanly.
pub fn take_shutdown_request() -> Option<&'static str> {
    let term = take(libc::SIGTERM);
    let int = take(libc::SIGINT);
    match (term, int) {
        (Some(_), _) => Some("SIGTERM"),
        (None, Some(_)) => Some("SIGINT"),
        (None, None) => None,
    }
}

/// Puts back the default action of every handled signal. The `-d`
/// launcher calls it after the fork: it is an ordinary command (Ctrl-C ends
/// it) and its handlers would count signals nobody reads.
pub fn restore_defaults() {
    for (sig, _) in handled() {
        // SAFETY: plain disposition change in this process.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A signal's name for the log (`SIGUSR1`, `SIGRTMIN+3`).
pub fn name(sig: libc::c_int) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if sig == libc::SIGRTMIN() => "SIGRTMIN".to_string(),
        Err(_) if sig > libc::SIGRTMIN() => format!("SIGRTMIN+{}", sig - libc::SIGRTMIN()),
        Err(_) => format!("signal {sig}"),
    }
}

/// What arrived since the last call, meaningful signals first in a fixed
/// order (a reload queued during start-up is applied before a shutdown),
/// each with its count and last sender.
pub fn drain() -> Vec<(libc::c_int, Meaning, u32, i32)> {
    handled()
        .into_iter()
        .filter_map(|(sig, meaning)| take(sig).map(|(n, pid)| (sig, meaning, n, pid)))
        .collect()
}

/// Calls `apply` with every signal received (those of start-up first), then
/// again each time more arrive, until the runtime ends. Must run on the
/// System's runtime (it waits on the wake-up pipe with tokio).
pub async fn dispatch(mut apply: impl FnMut(libc::c_int, Meaning, u32)) -> io::Result<()> {
    install()?;
    let read = WAKE_READ
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| io::Error::other("the signal dispatcher is already running"))?;
    let fd = read.as_raw_fd();
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(read)?;
    let mut buf = [0u8; 64];
    loop {
        for (sig, meaning, count, sender) in drain() {
            if meaning == Meaning::Ignore {
                log_ignored(sig, count, sender);
            } else {
                apply(sig, meaning, count);
            }
        }
        pipe.readable().await?;
        // Empty the pipe; the counters, not the bytes, say what arrived.
        loop {
            match pipe.try_read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("signal pipe {fd}: {e}"))),
            }
        }
    }
}

fn log_ignored(sig: libc::c_int, count: u32, sender: i32) {
    let name = name(sig);
    let times = if count > 1 {
        format!(" ({count} times)")
    } else {
        String::new()
    };
    if sender > 0 {
        tracing::warn!("ignoring {name} from pid {sender}{times}");
    } else {
        tracing::warn!("ignoring {name}{times}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminating_signal_but_the_faults_is_handled() {
        let handled: Vec<_> = handled().into_iter().map(|(s, _)| s).collect();
        for sig in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGTERM,
            libc::SIGSTKFLT,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGIO,
            libc::SIGPWR,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(handled.contains(&sig), "{} is not handled", name(sig));
        }
        assert_eq!(name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(name(libc::SIGUSR1), "SIGUSR1");
    }
}
