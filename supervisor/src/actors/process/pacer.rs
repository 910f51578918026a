//! The start pacer: automatic starts go out in small batches, so the control
//! plane answers during a mass start.
//!
//! Every actor runs on one thread. If the 10,000 instances of a fleet each
//! got their `Start` at once, 10,000 spawns (0.3–0.5 ms each, the clone waits
//! for the child's exec) would sit in the run queue ahead of any client:
//! `status` was silent for the whole 5.5 s start-up. The pacer sends a batch
//! of starts, then yields (`tokio::task::yield_now` defers its task until
//! after the I/O driver has been polled and the woken tasks have run), so a
//! waiting session is served after at most one batch of spawns. A client
//! request takes several hops (accept, hello, Session → Registry → Program),
//! each waiting for one batch, so the batch is sized by time, not count: it
//! halves when a turn took longer than [`TURN_BUDGET`] (a loaded host, where
//! a spawn waits for a CPU) and doubles, up to [`MAX_BATCH`], when it was
//! quick. The total start time is the same: the spawns are the work, the
//! yields cost nothing measurable.
//!
//! Paced: autostart at daemon start, and instances added by a reload
//! (new programs, scaling up). Operator commands (`start all`) are not: they
//! wait for their outcomes, and the operator asked for exactly that work.
//!
//! Not an actor: a shared queue and a drain task on the System thread
//! (`Rc`, no locks, like the status snapshots).

use super::{ProcessActor, Start};
use actix::Addr;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The most starts sent per turn of the scheduler (~10 ms of spawns on an
/// idle host).
pub const MAX_BATCH: usize = 32;

/// The fewest starts per turn. Smaller batches cost start-up time on a
/// loaded host: measured on 10,000 instances, batches allowed to shrink to 1
/// took the fleet 23.8 s to come up against 9.9 s unpaced.
pub const MIN_BATCH: usize = 8;

/// How long one turn (a batch of spawns and whatever else ran) should take.
pub const TURN_BUDGET: Duration = Duration::from_millis(4);

/// A handle on the daemon's one start queue; clones share it.
#[derive(Clone, Default)]
pub struct StartPacer {
    inner: Rc<RefCell<Queue>>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Addr<ProcessActor>>,
    /// A drain task is running (it ends when the queue is empty).
    draining: bool,
}

impl fmt::Debug for StartPacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.inner.borrow();
        f.debug_struct("StartPacer")
            .field("waiting", &queue.waiting.len())
            .field("draining", &queue.draining)
            .finish()
    }
}

impl StartPacer {
    /// Queues a `Start` for `instance`, sent within a few turns.
    pub fn start(&self, instance: Addr<ProcessActor>) {
        let mut queue = self.inner.borrow_mut();
        queue.waiting.push_back(instance);
        if !queue.draining {
            queue.draining = true;
            actix::spawn(self.clone().drain());
        }
    }

    /// Instances queued and not yet sent their `Start`.
    pub fn waiting(&self) -> usize {
        self.inner.borrow().waiting.len()
    }

    async fn drain(self) {
        let mut size = MAX_BATCH;
        loop {
            let batch: Vec<_> = {
                let mut queue = self.inner.borrow_mut();
                let n = queue.waiting.len().min(size);
                if n == 0 {
                    queue.draining = false;
                    return;
                }
                queue.waiting.drain(..n).collect()
            };
            let turn = Instant::now();
            for instance in batch {
                instance.do_send(Start);
            }
            tokio::task::yield_now().await;
            size = next_batch(size, turn.elapsed());
        }
    }
}

/// The next batch size after a turn that took `took`.
fn next_batch(size: usize, took: Duration) -> usize {
    if took > TURN_BUDGET {
        (size / 2).max(MIN_BATCH)
    } else if took < TURN_BUDGET / 2 {
        (size * 2).min(MAX_BATCH)
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_halves_on_slow_turns_and_grows_back_on_quick_ones() {
        let slow = TURN_BUDGET * 3;
        let quick = Duration::from_micros(100);
        assert_eq!(next_batch(32, slow), 16);
        assert_eq!(next_batch(MIN_BATCH, slow), MIN_BATCH);
        assert_eq!(next_batch(MIN_BATCH, quick), MIN_BATCH * 2);
        assert_eq!(next_batch(MAX_BATCH, quick), MAX_BATCH);
        assert_eq!(next_batch(8, TURN_BUDGET * 3 / 4), 8);
    }
}
