//! Which datagrams leave from the JavaScript thread itself and which are
//! handed to the runtime thread, per event-loop turn (a turn ends with
//! JavaScript's `commit()`).
//!
//! A lone datagram leaves at once: the first of a turn that follows a quiet
//! turn waits for no other thread, so one call in flight costs no thread hop.
//! Once turns carry more than one datagram, every datagram is handed over: on
//! loopback a send system call also does the receiver's delivery, most of a
//! datagram's kernel cost, and under load that is paid on the runtime's core.

use std::cell::Cell;

thread_local! {
    /// Datagrams queued on this thread in the current turn.
    static QUEUED: Cell<u32> = const { Cell::new(0) };
    /// The previous turn queued more than one.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Counts a datagram just queued; true if it should leave now, from this thread.
pub(crate) fn send_here() -> bool {
    let before = QUEUED.with(|q| q.replace(q.get().saturating_add(1)));
    before == 0 && !BUSY.with(Cell::get)
}

/// Ends the turn.
pub(crate) fn end() {
    let queued = QUEUED.with(|q| q.replace(0));
    BUSY.with(|b| b.set(queued > 1));
}
