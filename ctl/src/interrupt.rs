//! Ctrl-C in the shell: interrupt the running command, not the shell.
//!
//! In one-shot and piped modes the default SIGINT (die) is right. In the
//! shell, a `tail -f` or a long `start` must stop on Ctrl-C and give the
//! prompt back, so the shell installs a handler that only raises a flag, and
//! blocked reads poll it (see `run::recv`). While reedline edits a line the
//! terminal is in raw mode and Ctrl-C is a key, not a signal.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT raise the flag instead of killing the process.
pub fn install() -> io::Result<()> {
    // SAFETY: `sigaction` is given a zeroed, then filled, `struct sigaction`
    // whose handler only performs an atomic store; no Rust state is shared
    // beyond that static atomic.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether Ctrl-C was pressed since the last call; clears the flag.
pub fn take() -> bool {
    INTERRUPTED.swap(false, Ordering::SeqCst)
}
