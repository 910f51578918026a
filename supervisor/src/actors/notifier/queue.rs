//! The bounded queue of mails waiting to be sent: the oldest is dropped
//! (and counted) when it is full, so a dead mail server costs memory for
//! [`QUEUE_CAPACITY`](super::QUEUE_CAPACITY) mails at most.

use super::mail::Mail;
use std::collections::VecDeque;

/// A mail and how often it was tried.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub(super) id: u64,
    pub(super) mail: Mail,
    pub(super) attempt: u32,
}

/// Mails waiting to be sent: at most `capacity`, the oldest dropped first.
#[derive(Debug)]
pub struct MailQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> MailQueue<T> {
    pub fn new(capacity: usize) -> Self {
        MailQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds `item`; returns the one dropped to make room, if any.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() >= self.capacity {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
