//! The throttle, pure: which events of one `notify:` rule are mailed at
//! once and which are batched into a digest sent when the rule's window
//! ends. [`schedule`] runs it as a function of events and times (for the
//! tests); the actor runs the same [`Throttle`] with a timer per window.

use std::time::{Duration, Instant};

/// Events listed in one digest; more are counted, not kept.
pub const DIGEST_MAX_EVENTS: usize = 100;
/// Longest throttle window honoured (a timer cannot wait for centuries).
const MAX_THROTTLE: Duration = Duration::from_secs(366 * 24 * 3600);

/// Events of one rule batched into one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest<E> {
    /// At most [`DIGEST_MAX_EVENTS`], oldest first.
    pub events: Vec<E>,
    /// Events beyond those, counted only.
    pub omitted: usize,
}

/// What to do with an event offered to a [`Throttle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<E> {
    /// A quiet period: mail it now.
    Now(E),
    /// Batched into the open window; `arm` is set for the first event of a
    /// window's batch: flush at that instant.
    Batched { arm: Option<Instant> },
}

/// One rule's throttle: the first event after a quiet period is mailed at
/// once and opens a window of `throttle`; events within the window are
/// batched and flushed as one digest when it ends, which opens the next
/// window. A window that ends with nothing batched ends the cycle.
#[derive(Debug)]
pub struct Throttle<E> {
    window_end: Option<Instant>,
    pending: Vec<E>,
    omitted: usize,
}

impl<E> Default for Throttle<E> {
    fn default() -> Self {
        Throttle {
            window_end: None,
            pending: Vec::new(),
            omitted: 0,
        }
    }
}

impl<E> Throttle<E> {
    pub fn offer(&mut self, event: E, now: Instant, throttle: Duration) -> Offer<E> {
        match self.window_end {
            Some(end) if now < end => {
                if self.pending.len() < DIGEST_MAX_EVENTS {
                    self.pending.push(event);
                } else {
                    self.omitted += 1;
                }
                let first = self.pending.len() + self.omitted == 1;
                Offer::Batched {
                    arm: first.then_some(end),
                }
            }
            _ => {
                self.window_end = Some(window_end(now, throttle));
                Offer::Now(event)
            }
        }
    }

    /// The window has ended: the batch as a digest (and a new window), or
    /// `None` when nothing was batched.
    pub fn flush(&mut self, now: Instant, throttle: Duration) -> Option<Digest<E>> {
        if self.pending.is_empty() && self.omitted == 0 {
            return None;
        }
        self.window_end = Some(window_end(now, throttle));
        Some(Digest {
            events: std::mem::take(&mut self.pending),
            omitted: std::mem::take(&mut self.omitted),
        })
    }
}

fn window_end(now: Instant, throttle: Duration) -> Instant {
    let throttle = throttle.min(MAX_THROTTLE);
    now.checked_add(throttle).unwrap_or(now)
}

/// The mails one rule sends for `events` (time offsets, in order), as
/// (send offset, digest): the throttle as a pure function of events and
/// times. The actor runs the same [`Throttle`], with a timer per window.
pub fn schedule<E: Clone>(
    throttle: Duration,
    events: &[(Duration, E)],
) -> Vec<(Duration, Digest<E>)> {
    let base = Instant::now();
    let mut rule = Throttle::default();
    let mut timer: Option<Instant> = None;
    let mut mails = Vec::new();
    let fire = |rule: &mut Throttle<E>, at: Instant, mails: &mut Vec<(Duration, Digest<E>)>| {
        if let Some(digest) = rule.flush(at, throttle) {
            mails.push((at - base, digest));
        }
    };
    for (offset, event) in events {
        let now = base + *offset;
        if let Some(at) = timer.filter(|at| *at <= now) {
            timer = None;
            fire(&mut rule, at, &mut mails);
        }
        match rule.offer(event.clone(), now, throttle) {
            Offer::Now(e) => mails.push((
                *offset,
                Digest {
                    events: vec![e],
                    omitted: 0,
                },
            )),
            Offer::Batched { arm: Some(at) } => timer = Some(at),
            Offer::Batched { arm: None } => {}
        }
    }
    if let Some(at) = timer {
        fire(&mut rule, at, &mut mails);
    }
    mails
}
