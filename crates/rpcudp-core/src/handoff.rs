//! Work a socket hands to the runtime thread: datagrams to send
//! ([`crate::socket::Socket::hand_over`]), and a deadline earlier than the one
//! its driver sleeps towards.
//!
//! Handing over costs the caller an atomic swap and, once per socket, a push
//! onto one list; nothing wakes the runtime until [`commit`], so one wake-up
//! (a system call, and in a VM an interrupt to the other core) carries the work
//! of every socket touched since the last one. An event loop commits once per
//! turn; a caller without one commits after each call. When only a few
//! sockets are waiting, the committing thread sends them itself instead.
//!
//! Sending from the runtime keeps the send system call off the caller's core:
//! on loopback that call also does the receiver's delivery, most of a
//! datagram's kernel cost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use crate::batch_io::Outbox;
use crate::runtime::runtime;
use crate::socket::Shared;
use crate::sync::lock;

/// Bits of `Shared::handed_over`.
pub(crate) const SEND: u8 = 1;
pub(crate) const REARM: u8 = 2;

struct Handoff {
    /// Sockets with work waiting, each once, in the order they were handed over.
    pending: Mutex<Vec<Arc<Shared>>>,
    wake: Notify,
}

fn handoff() -> &'static Handoff {
    static HANDOFF: OnceLock<&'static Handoff> = OnceLock::new();
    HANDOFF.get_or_init(|| {
        let h: &'static Handoff = Box::leak(Box::new(Handoff {
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
        }));
        // A socket exists only once the runtime does, so this cannot fail here.
        if let Ok(rt) = runtime() {
            rt.spawn(run(h));
        }
        h
    })
}

/// Marks `work` (SEND, REARM) waiting on `shared`; the runtime sees it after the next [`commit`].
pub(crate) fn hand_over(shared: &Arc<Shared>, work: u8) {
    if shared.handed_over.fetch_or(work, Ordering::AcqRel) == 0 {
        lock(&handoff().pending).push(shared.clone());
    }
}

/// A commit that finds this many sockets or fewer waiting sends them from the
/// calling thread: a system call each, shared by all of a socket's datagrams,
/// costs less than waking another thread. Handing over pays when a turn
/// touched many sockets with a datagram or two each (DHT simulations,
/// multi-homed nodes): then one wake-up moves all their system calls.
const SEND_HERE_MAX_SOCKETS: usize = 4;

/// Ends a run of hand-overs: sends the waiting sockets from the calling thread
/// if they are few (see [`SEND_HERE_MAX_SOCKETS`]), and otherwise, or for a
/// driver's new deadline, wakes the runtime once for all of them.
pub fn commit() {
    let h = handoff();
    let mut taken = std::mem::take(&mut *lock(&h.pending));
    if taken.len() <= SEND_HERE_MAX_SOCKETS {
        taken.retain(|shared| {
            // Cleared before sending: a datagram queued after this hands the socket over again.
            let work = shared.handed_over.fetch_and(!SEND, Ordering::AcqRel);
            if work & SEND != 0 {
                shared.send(&mut lock(&shared.outbox));
            }
            // A socket here only for a driver's new deadline goes on to the runtime.
            work & !SEND != 0
        });
    }
    if !taken.is_empty() {
        lock(&h.pending).append(&mut taken);
        // Stores a permit if the task is busy: no system call unless it sleeps.
        h.wake.notify_one();
    }
}

async fn run(h: &'static Handoff) {
    let mut batch = Vec::new();
    // Swapped with each socket's outbox, so the socket can queue more while this sends.
    let mut sending = Outbox::default();
    loop {
        h.wake.notified().await;
        std::mem::swap(&mut batch, &mut *lock(&h.pending));
        for shared in batch.drain(..) {
            // Cleared before the work is taken: work handed over after this
            // point queues the socket again rather than waiting unseen.
            let work = shared.handed_over.swap(0, Ordering::AcqRel);
            if work & REARM != 0 {
                // On this thread: schedules the driver, no system call.
                shared.rearm.notify_one();
            }
            if work & SEND != 0 {
                std::mem::swap(&mut sending, &mut *lock(&shared.outbox));
                shared.send(&mut sending);
            }
        }
    }
}
