//! Events waiting for the consumer, and how the consumer is told of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::events::EventBuf;
use crate::sync::lock;

/// Told when the event queue goes from empty to non-empty; must not block.
pub trait Wake: Send + Sync + 'static {
    fn wake(&self);
}

/// Past this many bytes of events waiting for the consumer the driver stops
/// reading, so a flood backs up in the kernel's receive buffer (and is dropped
/// there) instead of growing this queue without bound.
pub(crate) const MAX_BACKLOG: usize = 4 << 20;

/// The consumer is woken only on the empty -> non-empty edge, so one wake-up
/// carries every event that arrived while the consumer was busy.
pub struct EventQueue {
    pub(crate) buf: Mutex<EventBuf>,
    scheduled: AtomicBool,
    waker: Box<dyn Wake>,
    /// Told by `take`, for a driver that stopped reading because the backlog was full.
    pub(crate) drained: Notify,
}

impl EventQueue {
    pub(crate) fn new(waker: Box<dyn Wake>) -> Self {
        EventQueue {
            buf: Mutex::new(EventBuf::default()),
            scheduled: AtomicBool::new(false),
            waker,
            drained: Notify::new(),
        }
    }

    /// All queued events (see [`EventBuf::iter`]); empty when there are none.
    pub fn take(&self) -> Vec<u8> {
        // Clear the flag before taking: an event pushed in between schedules
        // another wake-up (which may find nothing) instead of being stranded.
        self.scheduled.store(false, Ordering::SeqCst);
        let events = lock(&self.buf).take();
        self.drained.notify_one();
        events
    }

    pub(crate) fn backlogged(&self) -> bool {
        lock(&self.buf).byte_len() >= MAX_BACKLOG
    }

    pub(crate) fn push(&self, f: impl FnOnce(&mut EventBuf)) {
        f(&mut lock(&self.buf));
    }

    pub(crate) fn notify(&self) {
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}
