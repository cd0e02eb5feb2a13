//! A bound rpcudp socket: an [`Endpoint`] behind a lock, sends from the
//! caller's thread, and a driver task (see [`crate::driver`]) on the one
//! runtime all sockets share, which keeps time and hands events to the
//! consumer in batches through an [`EventQueue`].
//!
//! A consumer with an event loop of its own (Node's libuv) can instead bind
//! with [`Socket::bind_external`]: it polls [`Socket::raw_fd`] for
//! readability and calls [`Socket::receive`] on its own thread, so received
//! datagrams cost no cross-thread wake-up; the runtime then only keeps time.
//!
//! The `queue_*` calls frame under the endpoint lock into an [`Outbox`], and
//! one [`Socket::flush`] sends the lot with a single `sendmmsg` on the
//! caller's thread; or [`Socket::hand_over`] leaves them to the runtime thread
//! (see [`crate::handoff`]), which a [`commit`] wakes for every socket at once.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::batch_io::{Inbox, Outbox};
use crate::driver::{drive, receive_burst};
use crate::endpoint::{Endpoint, Token};
use crate::error::Error;
use crate::events::EventBuf;
pub use crate::handoff::commit;
use crate::handoff::{hand_over, REARM, SEND};
use crate::queue::{EventQueue, Wake};
use crate::runtime::runtime;
use crate::sampling::DropSamples;
use crate::stats::{DropReason, Stats};
use crate::sync::{lock, read, write};
use crate::udp::{open, SocketOptions};
use crate::wire::MsgId;

#[derive(Clone, Debug, Default)]
pub struct SocketStats {
    pub stats: Stats,
    pub outstanding: usize,
    /// Heap bytes of the outstanding-call table (see [`Endpoint::table_bytes`]).
    pub table_bytes: usize,
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// Sources the per-source rate limit tracks (bounded by its `max_sources`).
    pub sources_tracked: usize,
    /// Sources the reflection bound tracks (bounded by its max_sources).
    pub reflection_sources: usize,
}

/// What the socket and its driver share.
pub(crate) struct Shared {
    pub(crate) endpoint: Mutex<Endpoint>,
    pub(crate) events: Arc<EventQueue>,
    /// The socket itself, for non-blocking sends from any thread (and receives,
    /// when bound external). `close()` takes it.
    sender: RwLock<Option<StdUdpSocket>>,
    pub(crate) drop_samples: DropSamples,
    /// Set by the driver once it has let go of its own handle on the socket.
    pub(crate) driver_done: (Mutex<bool>, Condvar),
    local: SocketAddr,
    /// Deadline the driver is sleeping towards, in ns since `epoch`; u64::MAX when none.
    pub(crate) armed: AtomicU64,
    pub(crate) epoch: Instant,
    pub(crate) rearm: Notify,
    pub(crate) shutdown: Notify,
    closed: AtomicBool,
    pub(crate) outbox: Mutex<Outbox>,
    /// Work handed to the runtime and not yet taken by it ([`crate::handoff`] bits).
    pub(crate) handed_over: AtomicU8,
    recv_buffer: usize,
    send_buffer: usize,
}

/// A bound rpcudp socket. Dropping it without `close()` also stops the driver.
pub struct Socket {
    shared: Arc<Shared>,
}

/// Past this many queued datagrams a queue_* call flushes by itself, so the outbox stays small.
const OUTBOX_LIMIT: usize = 256;

/// How long `close()` waits for a receiving driver to let go of the socket,
/// so the port is free when it returns; the driver answers within one turn of
/// the runtime, and `close()` must never stall its caller for long.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

impl Socket {
    /// Binds and starts the driver, which receives on the runtime thread.
    /// `waker` is told when events are waiting in [`Socket::events`].
    pub fn bind(addr: SocketAddr, opts: SocketOptions, waker: impl Wake) -> Result<Socket, Error> {
        Self::start(addr, opts, waker, true)
    }

    /// Binds without receiving on the runtime: the caller polls [`Socket::raw_fd`]
    /// and calls [`Socket::receive`]. Timeouts still arrive through [`Socket::events`].
    pub fn bind_external(addr: SocketAddr, opts: SocketOptions, waker: impl Wake) -> Result<Socket, Error> {
        Self::start(addr, opts, waker, false)
    }

    fn start(addr: SocketAddr, opts: SocketOptions, waker: impl Wake, drive_io: bool) -> Result<Socket, Error> {
        let rt = runtime()?;
        let (sender, recv_buffer, send_buffer) = open(addr, &opts)?;
        let local = sender.local_addr()?;
        let io = if drive_io {
            let _guard = rt.enter();
            Some(UdpSocket::from_std(sender.try_clone()?)?)
        } else {
            None
        };
        let now = Instant::now();
        let shared = Arc::new(Shared {
            endpoint: Mutex::new(Endpoint::new(opts.endpoint.clone(), now)),
            events: Arc::new(EventQueue::new(Box::new(waker))),
            sender: RwLock::new(Some(sender)),
            driver_done: (Mutex::new(io.is_none()), Condvar::new()),
            drop_samples: DropSamples::default(),
            local,
            armed: AtomicU64::new(u64::MAX),
            epoch: now,
            rearm: Notify::new(),
            shutdown: Notify::new(),
            closed: AtomicBool::new(false),
            outbox: Mutex::new(Outbox::default()),
            handed_over: AtomicU8::new(0),
            recv_buffer,
            send_buffer,
        });
        rt.spawn(drive(shared.clone(), io));
        Ok(Socket { shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The socket's descriptor, to poll for readability; -1 once closed.
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        read(&self.shared.sender).as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// For [`Socket::bind_external`]: reads what is waiting (a bounded number of
    /// batches) into `inbox`, which may be shared by every socket the caller
    /// polls, and appends the resulting events to `out`. Returns whether any were added.
    pub fn receive(&self, inbox: &mut Inbox, out: &mut EventBuf) -> bool {
        let socket = read(&self.shared.sender);
        let Some(socket) = socket.as_ref() else { return false };
        receive_burst(&self.shared, out, inbox, |i| i.recv_std(socket))
    }

    pub fn events(&self) -> Arc<EventQueue> {
        self.shared.events.clone()
    }

    /// Starts a call and sends it at once; its answer, error reply or timeout
    /// comes back as an event carrying `token`.
    pub fn call(&self, dest: SocketAddr, body: &[u8], timeout: Duration, token: Token) -> Result<(), Error> {
        self.queue_call(dest, body, timeout, token)?;
        self.flush();
        commit();
        Ok(())
    }

    /// Answers request `id` from `dest` with `body` (a msgpack value), at once.
    /// False when the reflection bound held it back (counted).
    pub fn reply(&self, id: &MsgId, dest: SocketAddr, body: &[u8]) -> Result<bool, Error> {
        let sent = self.queue_reply(id, dest, body)?;
        self.flush();
        commit();
        Ok(sent)
    }

    /// Sends an error reply (type 0x02, ignored by Python peers) at once; false as `reply`.
    pub fn reply_error(&self, id: &MsgId, dest: SocketAddr, code: &str, message: &str) -> Result<bool, Error> {
        let sent = self.queue_error(id, dest, code, message)?;
        self.flush();
        commit();
        Ok(sent)
    }

    /// Like [`Socket::call`], but the datagram waits for [`Socket::flush`] and
    /// [`commit`] (which also tells the driver of the new deadline).
    pub fn queue_call(&self, dest: SocketAddr, body: &[u8], timeout: Duration, token: Token) -> Result<(), Error> {
        let dest = self.route(dest)?;
        let now = Instant::now();
        self.queue(dest, |out| {
            lock(&self.shared.endpoint).start_call(now, dest, body, timeout, token, out)
        })?;
        // The driver needs telling only if this deadline comes before the one it
        // sleeps towards; it is told at the next commit (timeouts are coarse).
        // Saturating: any Duration is a valid timeout, however far away.
        let at = now
            .saturating_duration_since(self.shared.epoch)
            .saturating_add(timeout)
            .as_nanos()
            .min(u64::MAX as u128 - 1) as u64;
        if at < self.shared.armed.load(Ordering::Acquire) {
            self.shared.armed.store(at, Ordering::Release);
            hand_over(&self.shared, REARM);
        }
        Ok(())
    }

    /// False when the reflection bound held the reply back (see [`Endpoint::frame_reply`]).
    pub fn queue_reply(&self, id: &MsgId, dest: SocketAddr, body: &[u8]) -> Result<bool, Error> {
        let dest = self.route(dest)?;
        let mut sent = false;
        self.queue(dest, |out| {
            sent = lock(&self.shared.endpoint).frame_reply(id, dest, body, out)?;
            Ok(())
        })?;
        Ok(sent)
    }

    pub fn queue_error(&self, id: &MsgId, dest: SocketAddr, code: &str, message: &str) -> Result<bool, Error> {
        let dest = self.route(dest)?;
        let mut sent = false;
        self.queue(dest, |out| {
            sent = lock(&self.shared.endpoint).frame_error(id, dest, code, message, out);
            Ok(())
        })?;
        Ok(sent)
    }

    fn queue(&self, dest: SocketAddr, frame: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>) -> Result<(), Error> {
        let mut outbox = lock(&self.shared.outbox);
        outbox.push(dest, frame)?;
        if outbox.len() >= OUTBOX_LIMIT {
            self.shared.send(&mut outbox);
        }
        Ok(())
    }

    /// Sends every queued datagram now, from the caller's thread (one `sendmmsg` per 64 on Linux).
    pub fn flush(&self) {
        let mut outbox = lock(&self.shared.outbox);
        if !outbox.is_empty() {
            self.shared.send(&mut outbox);
        }
    }

    /// Leaves the queued datagrams to the runtime thread, which sends them
    /// once [`commit`] wakes it: the caller pays no system call.
    pub fn hand_over(&self) {
        if !lock(&self.shared.outbox).is_empty() {
            hand_over(&self.shared, SEND);
        }
    }

    pub fn stats(&self) -> SocketStats {
        let ep = lock(&self.shared.endpoint);
        SocketStats {
            stats: ep.stats().clone(),
            outstanding: ep.outstanding(),
            table_bytes: ep.table_bytes(),
            recv_buffer: self.shared.recv_buffer,
            send_buffer: self.shared.send_buffer,
            sources_tracked: ep.limited_sources(),
            reflection_sources: ep.guarded_sources(),
        }
    }

    /// See [`Endpoint::cancel`].
    pub fn cancel(&self, token: Token) -> bool {
        lock(&self.shared.endpoint).cancel(token)
    }

    /// Sends what is queued, stops the driver, closes the socket (the port is free when this
    /// returns, unless the runtime thread is stalled past [`CLOSE_WAIT`]) and
    /// forgets every outstanding call, returning their tokens.
    pub fn close(&self) -> Vec<Token> {
        let mut tokens = Vec::new();
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            lock(&self.shared.endpoint).cancel_all(&mut tokens);
            // What was queued before close() leaves, even if handed to a runtime that has not got to it.
            self.flush();
            if self.shared.handed_over.load(Ordering::Acquire) != 0 {
                // So the runtime lets go of this socket now, not at some later commit.
                commit();
            }
            self.shared.shutdown.notify_one();
            drop(write(&self.shared.sender).take());
            let (done, cv) = &self.shared.driver_done;
            let guard = lock(done);
            let _ = cv.wait_timeout_while(guard, CLOSE_WAIT, |done| !*done);
        }
        tokens
    }

    /// IPv4 peers are reached from a dual-stack IPv6 socket through their mapped address.
    fn route(&self, dest: SocketAddr) -> Result<SocketAddr, Error> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        match (self.shared.local, dest) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => Ok(SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())),
            (SocketAddr::V4(_), SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Ok(SocketAddr::new(v4.into(), v6.port())),
                None => Err(Error::InvalidAddress(format!(
                    "cannot reach IPv6 peer {dest} from an IPv4 socket"
                ))),
            },
            _ => Ok(dest),
        }
    }
}

impl Shared {
    /// Sends and empties `outbox`; UDP may drop anyway, so a full send buffer
    /// or an unreachable route is counted, never raised.
    pub(crate) fn send(&self, outbox: &mut Outbox) {
        let failed = match read(&self.sender).as_ref() {
            Some(socket) => outbox.flush(socket),
            None => {
                let n = outbox.len();
                outbox.clear();
                n
            }
        };
        if failed > 0 {
            let mut ep = lock(&self.endpoint);
            (0..failed).for_each(|_| ep.count_drop(DropReason::SendFailed));
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}
