//! One file descriptor kept in reserve, for a control connection when every
//! other is taken (a fleet that holds them all, its other instances failing
//! to spawn into BACKOFF).
//!
//! The Listener closes it when `accept` fails with EMFILE/ENFILE and accepts
//! again in the slot just freed; it is taken back at the next accept and
//! when a session ends (its socket's slot). A process-wide static because
//! the descriptor table is process-wide; the lock is never held across
//! anything else.

use std::fs::File;
use std::sync::{Mutex, MutexGuard, PoisonError};

static RESERVE: Mutex<Option<File>> = Mutex::new(None);

fn reserve() -> MutexGuard<'static, Option<File>> {
    RESERVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a descriptor back into the reserve, if it is empty and one is free.
/// (`/dev/null` is a device: its open never blocks.)
pub fn refill() {
    let mut reserve = reserve();
    if reserve.is_none() {
        *reserve = File::open("/dev/null").ok();
    }
}

/// Closes the reserve (its slot is free now); false if it was empty.
pub fn release() -> bool {
    reserve().take().is_some()
}

/// True while the reserve holds its descriptor.
pub fn is_full() -> bool {
    reserve().is_some()
}
