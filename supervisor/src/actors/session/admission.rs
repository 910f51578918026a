//! Admission of control sessions: how many are authenticated and which wait
//! for their hello, shared by the Listener (which admits and evicts) and
//! every Session (whose [`SessionSlot`] gives its place back on drop).
//!
//! It lives with the Session so that the Listener depends on the Session and
//! not the other way round: no module cycle between the two.

use super::Session;
use crate::sys::fd_reserve;
use actix::Addr;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Authenticated sessions allowed at once.
pub const MAX_SESSIONS: usize = 256;
/// Connections allowed to wait for their hello at once.
pub const MAX_UNAUTHENTICATED: usize = 32;

/// Who is connected, shared by the Listener and every session's
/// [`SessionSlot`] (all on the one System thread; the lock is never held
/// across anything else).
#[derive(Debug, Default)]
pub struct Admission {
    pub authenticated: usize,
    /// Sessions waiting for their hello, oldest first.
    pub waiting: VecDeque<(u64, Addr<Session>)>,
    pub next_id: u64,
}

/// Locks the shared admission (a poisoned lock is still usable: the
/// counts are updated in single statements).
pub fn admission(shared: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One admitted session: waiting for its hello, then authenticated. Its
/// place is given back when the session actor goes away.
#[derive(Debug)]
pub struct SessionSlot {
    admission: Arc<Mutex<Admission>>,
    id: u64,
    authenticated: bool,
}

impl SessionSlot {
    /// Place `id` of `admission`, not yet authenticated.
    pub fn new(admission: Arc<Mutex<Admission>>, id: u64) -> Self {
        SessionSlot {
            admission,
            id,
            authenticated: false,
        }
    }

    /// The session has authenticated: it no longer waits, and takes an
    /// authenticated place; false if they are all taken.
    pub fn authenticate(&mut self) -> bool {
        let mut admission = admission(&self.admission);
        // Absent when already evicted: the `Evict` on its way is ignored.
        admission.waiting.retain(|(id, _)| *id != self.id);
        if admission.authenticated >= MAX_SESSIONS {
            return false;
        }
        admission.authenticated += 1;
        self.authenticated = true;
        true
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        {
            let mut admission = admission(&self.admission);
            if self.authenticated {
                admission.authenticated -= 1;
            } else {
                admission.waiting.retain(|(id, _)| *id != self.id);
            }
        }
        // Once the session is gone its socket is closed: refill the reserve
        // with that slot. Deferred to the next turn (the socket closes with
        // the actor's context, after this field); no arbiter, no refill (the
        // daemon is exiting).
        if !fd_reserve::is_full()
            && let Some(arbiter) = actix::Arbiter::try_current()
        {
            arbiter.spawn(async { fd_reserve::refill() });
        }
    }
}
