//! The task that keeps a socket's time (and, unless the consumer polls the
//! socket itself, receives its datagrams) on the shared runtime.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::batch_io::Inbox;
use crate::endpoint::Incoming;
use crate::events::EventBuf;
use crate::socket::Shared;
use crate::stats::DropReason;
use crate::sync::lock;
use crate::wire::MAX_DATAGRAM;

thread_local! {
    /// Receive buffers for every driver on this runtime thread: drivers run one
    /// at a time there, so one set serves them all, however many sockets exist.
    static INBOX: RefCell<Option<Inbox>> = const { RefCell::new(None) };
}

/// Runs until the socket is closed, then lets go of its handle on the socket
/// (`io`) and tells `close()`, which waits for that to free the port.
pub(crate) async fn drive(shared: Arc<Shared>, io: Option<UdpSocket>) {
    run(&shared, io.as_ref()).await;
    drop(io);
    let (done, cv) = &shared.driver_done;
    *lock(done) = true;
    cv.notify_all();
}

async fn run(shared: &Shared, io: Option<&UdpSocket>) {
    let mut expired = Vec::new();
    loop {
        // Time advances every turn, whatever woke the driver: timers fire on
        // time while a flood keeps the socket readable, and the wheel's cursor
        // never lags (a lagging cursor makes every deadline look a span away).
        let next = {
            let mut ep = lock(&shared.endpoint);
            ep.expire(Instant::now(), &mut expired);
            let next = ep.next_deadline().or_else(|| ep.release_deadline());
            let at = next.map_or(u64::MAX, |d| {
                d.saturating_duration_since(shared.epoch)
                    .as_nanos()
                    .min(u64::MAX as u128 - 1) as u64
            });
            // Published under the endpoint lock: a call started after this
            // lock is released compares its deadline with this value (and
            // wakes the driver if earlier); one started before it is in
            // `next` already. Stored after the lock, a call landing between
            // the two saw the stale, earlier value, did not wake the driver,
            // and its timeout never fired.
            shared.armed.store(at, Ordering::Release);
            next
        };
        if !expired.is_empty() {
            shared
                .events
                .push(|ev| expired.drain(..).for_each(|t| ev.push_timeout(t)));
            shared.events.notify();
        }
        let backlogged = shared.events.backlogged();
        let sleep = async {
            match next {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.shutdown.notified() => return,
            _ = sleep => {}
            _ = shared.rearm.notified() => {}
            _ = shared.events.drained.notified(), if backlogged => {}
            r = readable(io), if !backlogged => {
                if r.is_err() {
                    return;
                }
                let io = io.expect("readable only with a socket");
                let got = INBOX.with(|cell| {
                    let mut inbox = cell.borrow_mut();
                    let inbox = inbox.get_or_insert_with(|| Inbox::new(MAX_DATAGRAM + 1));
                    receive_burst(shared, &mut lock(&shared.events.buf), inbox, |i| i.recv(io))
                });
                if got {
                    shared.events.notify();
                }
            }
        }
    }
}

async fn readable(io: Option<&UdpSocket>) -> io::Result<()> {
    match io {
        Some(io) => io.readable().await,
        None => std::future::pending().await,
    }
}

/// Reads until the socket is empty (bounded, so timers and the consumer get
/// their turn), a batch of datagrams per system call, classifying each with
/// the endpoint. Returns whether any event was added to `out`.
pub(crate) fn receive_burst(
    shared: &Shared,
    out: &mut EventBuf,
    inbox: &mut Inbox,
    mut recv: impl FnMut(&mut Inbox) -> io::Result<usize>,
) -> bool {
    const ROUNDS: usize = 8;
    let mut delivered = false;
    for _ in 0..ROUNDS {
        // A short batch means the socket is empty: skip the read that would only say so.
        let drained = match recv(inbox) {
            Ok(n) => Inbox::emptied_by(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // ICMP errors for earlier sends surface here on Linux; the socket is fine.
            Err(_) => continue,
        };
        let now = Instant::now();
        let mut ep = lock(&shared.endpoint);
        (0..inbox.discarded()).for_each(|_| ep.count_drop(DropReason::Oversize));
        for (datagram, from) in inbox.iter() {
            let from = crate::address::canonical(from);
            let incoming = match ep.classify(now, from, datagram) {
                Ok(incoming) => incoming,
                Err(reason) => {
                    if shared.drop_samples.take(now) {
                        out.push_drop(reason, from);
                        delivered = true;
                    }
                    continue;
                }
            };
            match incoming {
                Incoming::Request { id, body, .. } => out.push_request(&id, from, body),
                Incoming::Response { token, body } => out.push_response(token, body),
                Incoming::ErrorReply { token, body, .. } => out.push_error(token, body),
            }
            delivered = true;
        }
        if drained {
            break;
        }
    }
    delivered
}
