//! The tokio driver: owns a UDP socket and an [`Endpoint`], receives on one
//! dedicated current-thread runtime shared by every socket in the process, and
//! hands events to the consumer in batches through an [`EventQueue`].
//!
//! A consumer with an event loop of its own (Node's libuv) can instead bind
//! with [`Socket::bind_external`]: it polls [`Socket::raw_fd`] for
//! readability and calls [`Socket::receive`] on its own thread, so received
//! datagrams cost no cross-thread wake-up; the runtime then only keeps time.
//!
//! Sends never hop to the runtime: `call`/`reply` frame under the endpoint lock
//! and send with a non-blocking `sendto` on the caller's thread (for Node, the
//! JavaScript thread), so a request costs no cross-thread wake-up on the way out.
//! The `queue_*` variants only frame into an [`Outbox`]; one [`Socket::flush`]
//! then sends the lot with a single `sendmmsg`.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket as RawSocket, Type};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::batch_io::{Inbox, Outbox};
use crate::endpoint::{Config, Endpoint, Incoming, Token};
use crate::error::Error;
use crate::events::EventBuf;
use crate::stats::{DropReason, Stats};
use crate::wire::{MsgId, MAX_DATAGRAM};

/// Told when the event queue goes from empty to non-empty; must not block.
pub trait Wake: Send + Sync + 'static {
    fn wake(&self);
}

#[derive(Clone, Debug)]
pub struct SocketOptions {
    pub endpoint: Config,
    /// SO_RCVBUF / SO_SNDBUF requested; the kernel may grant less (see [`SocketStats`]).
    pub recv_buffer: usize,
    pub send_buffer: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            endpoint: Config::default(),
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
        }
    }
}

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
}

/// Events waiting for the consumer. The consumer is woken only on the
/// empty -> non-empty edge, so one wake-up carries every event that arrived
/// while the consumer was busy.
pub struct EventQueue {
    buf: Mutex<EventBuf>,
    scheduled: AtomicBool,
    waker: Box<dyn Wake>,
    /// Told by `take`, for a driver that stopped reading because the backlog was full.
    drained: Notify,
}

/// Past this many bytes of events waiting for the consumer the driver stops
/// reading, so a flood backs up in the kernel's receive buffer (and is dropped
/// there) instead of growing this queue without bound.
const MAX_BACKLOG: usize = 4 << 20;

impl EventQueue {
    fn new(waker: Box<dyn Wake>) -> Self {
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

    fn push(&self, f: impl FnOnce(&mut EventBuf)) {
        f(&mut lock(&self.buf));
    }

    fn notify(&self) {
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

struct Shared {
    endpoint: Mutex<Endpoint>,
    events: Arc<EventQueue>,
    /// The socket itself, for non-blocking sends from any thread (and receives,
    /// when bound external). `close()` takes it, so the port is free at once.
    sender: RwLock<Option<StdUdpSocket>>,
    /// Which drops are reported as events (counting is separate and complete).
    drop_samples: DropSamples,
    /// Set by the driver once it has dropped its own handle on the socket.
    driver_done: (Mutex<bool>, Condvar),
    local: SocketAddr,
    /// Deadline the driver is sleeping towards, in ns since `epoch`; u64::MAX when none.
    armed: AtomicU64,
    epoch: Instant,
    rearm: Notify,
    shutdown: Notify,
    closed: AtomicBool,
    recv_buffer: usize,
    send_buffer: usize,
}

/// At most `PER_SECOND` dropped datagrams a second become events, so a
/// flood of garbage costs the consumer a few log lines, not one per datagram.
#[derive(Default)]
struct DropSamples(Mutex<Option<(Instant, u32)>>);

impl DropSamples {
    const PER_SECOND: u32 = 10;

    fn take(&self, now: Instant) -> bool {
        let mut window = lock(&self.0);
        match &mut *window {
            Some((start, n)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *n += 1;
                *n <= Self::PER_SECOND
            }
            _ => {
                *window = Some((now, 1));
                true
            }
        }
    }
}

/// A bound rpcudp socket. Dropping it without `close()` also stops the driver.
pub struct Socket {
    shared: Arc<Shared>,
    outbox: Mutex<Outbox>,
}

/// Past this many queued datagrams a queue_* call flushes by itself, so the outbox stays small.
const OUTBOX_LIMIT: usize = 256;

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these structures half-updated
    // in a way that matters more than stopping would, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one runtime every socket in the process shares: a current-thread
/// runtime on a dedicated thread (two cores: one for JavaScript, one for this).
fn runtime() -> Result<&'static Handle, Error> {
    static RT: OnceLock<Result<Handle, String>> = OnceLock::new();
    let r = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("rpcudp-io".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| e.to_string())?;
        Ok(handle)
    });
    r.as_ref().map_err(|e| Error::Io(io::Error::other(e.clone())))
}

fn open(addr: SocketAddr, opts: &SocketOptions) -> io::Result<(StdUdpSocket, usize, usize)> {
    let sock = RawSocket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual-stack: an IPv6 socket on `::` also answers IPv4 peers.
        sock.set_only_v6(false)?;
    }
    // Best effort: the kernel caps these at rmem_max/wmem_max, so ask, then report what was granted.
    let _ = sock.set_recv_buffer_size(opts.recv_buffer);
    let _ = sock.set_send_buffer_size(opts.send_buffer);
    force_buffers(&sock, opts);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    let granted = (
        sock.recv_buffer_size().unwrap_or(0),
        sock.send_buffer_size().unwrap_or(0),
    );
    Ok((sock.into(), granted.0, granted.1))
}

/// With CAP_NET_ADMIN the caps can be exceeded (SO_RCVBUFFORCE); without it this quietly does nothing.
#[cfg(target_os = "linux")]
fn force_buffers(sock: &RawSocket, opts: &SocketOptions) {
    use std::os::fd::AsRawFd;
    let set = |opt: libc::c_int, size: usize| {
        let v = size.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: a valid fd and a pointer to a c_int of the stated length.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    if sock.recv_buffer_size().unwrap_or(0) < opts.recv_buffer {
        set(libc::SO_RCVBUFFORCE, opts.recv_buffer);
    }
    if sock.send_buffer_size().unwrap_or(0) < opts.send_buffer {
        set(libc::SO_SNDBUFFORCE, opts.send_buffer);
    }
}

#[cfg(not(target_os = "linux"))]
fn force_buffers(_: &RawSocket, _: &SocketOptions) {}

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
            recv_buffer,
            send_buffer,
        });
        rt.spawn(drive(shared.clone(), io));
        Ok(Socket {
            shared,
            outbox: Mutex::new(Outbox::default()),
        })
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
    /// batches) and appends the resulting events to `out`. Returns whether any were added.
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
        Ok(())
    }

    /// Answers request `id` from `dest` with `body` (a msgpack value), at once.
    pub fn reply(&self, id: &MsgId, dest: SocketAddr, body: &[u8]) -> Result<(), Error> {
        self.queue_reply(id, dest, body)?;
        self.flush();
        Ok(())
    }

    /// Sends an error reply (type 0x02, ignored by Python peers) at once.
    pub fn reply_error(&self, id: &MsgId, dest: SocketAddr, code: &str, message: &str) -> Result<(), Error> {
        self.queue_error(id, dest, code, message)?;
        self.flush();
        Ok(())
    }

    /// Like [`Socket::call`], but the datagram waits for [`Socket::flush`].
    pub fn queue_call(&self, dest: SocketAddr, body: &[u8], timeout: Duration, token: Token) -> Result<(), Error> {
        let dest = self.route(dest)?;
        let now = Instant::now();
        self.queue(dest, |out| {
            lock(&self.shared.endpoint).start_call(now, dest, body, timeout, token, out)
        })?;
        // Wake the driver only if this deadline comes before the one it sleeps towards.
        let at = (now + timeout)
            .saturating_duration_since(self.shared.epoch)
            .as_nanos()
            .min(u64::MAX as u128 - 1) as u64;
        if at < self.shared.armed.load(Ordering::Acquire) {
            self.shared.armed.store(at, Ordering::Release);
            self.shared.rearm.notify_one();
        }
        Ok(())
    }

    pub fn queue_reply(&self, id: &MsgId, dest: SocketAddr, body: &[u8]) -> Result<(), Error> {
        let dest = self.route(dest)?;
        self.queue(dest, |out| lock(&self.shared.endpoint).frame_reply(id, body, out))
    }

    pub fn queue_error(&self, id: &MsgId, dest: SocketAddr, code: &str, message: &str) -> Result<(), Error> {
        let dest = self.route(dest)?;
        self.queue(dest, |out| {
            lock(&self.shared.endpoint).frame_error(id, code, message, out);
            Ok(())
        })
    }

    fn queue(&self, dest: SocketAddr, frame: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>) -> Result<(), Error> {
        let mut outbox = lock(&self.outbox);
        outbox.push(dest, frame)?;
        if outbox.len() >= OUTBOX_LIMIT {
            self.send_queued(&mut outbox);
        }
        Ok(())
    }

    /// Sends every queued datagram (one `sendmmsg` per 64 on Linux).
    pub fn flush(&self) {
        let mut outbox = lock(&self.outbox);
        if !outbox.is_empty() {
            self.send_queued(&mut outbox);
        }
    }

    fn send_queued(&self, outbox: &mut Outbox) {
        // UDP may drop anyway; a full send buffer or an unreachable route is counted, never raised.
        let failed = match read(&self.shared.sender).as_ref() {
            Some(socket) => outbox.flush(socket),
            None => {
                let n = outbox.len();
                outbox.clear();
                n
            }
        };
        if failed > 0 {
            let mut ep = lock(&self.shared.endpoint);
            (0..failed).for_each(|_| ep.count_drop(DropReason::SendFailed));
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
        }
    }

    /// See [`Endpoint::cancel`].
    pub fn cancel(&self, token: Token) -> bool {
        lock(&self.shared.endpoint).cancel(token)
    }

    /// Stops the driver, closes the socket (the port is free when this returns)
    /// and forgets every outstanding call, returning their tokens.
    pub fn close(&self) -> Vec<Token> {
        let mut tokens = Vec::new();
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            lock(&self.shared.endpoint).cancel_all(&mut tokens);
            self.shared.shutdown.notify_one();
            drop(self.shared.sender.write().unwrap_or_else(|e| e.into_inner()).take());
            // The driver holds a second handle on the socket; wait (briefly) until it has let go.
            let (done, cv) = &self.shared.driver_done;
            let guard = lock(done);
            let _ = cv.wait_timeout_while(guard, Duration::from_secs(2), |done| !*done);
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

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

async fn drive(shared: Arc<Shared>, io: Option<UdpSocket>) {
    // Receive buffers only for a driver that receives (not with bind_external).
    let mut inbox = io.as_ref().map(|_| Inbox::new(MAX_DATAGRAM + 1));
    let mut expired = Vec::new();
    loop {
        let backlogged = lock(&shared.events.buf).byte_len() >= MAX_BACKLOG;
        let next = lock(&shared.endpoint).next_deadline();
        let at = next.map_or(u64::MAX, |d| {
            d.saturating_duration_since(shared.epoch).as_nanos() as u64
        });
        shared.armed.store(at, Ordering::Release);
        let sleep = async {
            match next {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.shutdown.notified() => {
                drop(io);
                let (done, cv) = &shared.driver_done;
                *lock(done) = true;
                cv.notify_all();
                return;
            }
            _ = shared.events.drained.notified(), if backlogged => {}
            r = readable(&io), if !backlogged => {
                if r.is_err() {
                    return;
                }
                let (Some(io), Some(inbox)) = (io.as_ref(), inbox.as_mut()) else {
                    unreachable!("readable only with a socket")
                };
                let mut events = lock(&shared.events.buf);
                let got = receive_burst(&shared, &mut events, inbox, |i| i.recv(io));
                drop(events);
                if got {
                    shared.events.notify();
                }
            }
            _ = sleep => {
                lock(&shared.endpoint).expire(Instant::now(), &mut expired);
                if !expired.is_empty() {
                    shared.events.push(|ev| expired.drain(..).for_each(|t| ev.push_timeout(t)));
                    shared.events.notify();
                }
            }
            _ = shared.rearm.notified() => {}
        }
    }
}

async fn readable(io: &Option<UdpSocket>) -> io::Result<()> {
    match io {
        Some(io) => io.readable().await,
        None => std::future::pending().await,
    }
}

/// Reads until the socket is empty (bounded, so timers and the consumer get
/// their turn), a batch of datagrams per system call, classifying each with
/// the endpoint. Returns whether any event was added to `out`.
fn receive_burst(
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
        for (datagram, from) in inbox.iter() {
            let from = SocketAddr::new(from.ip().to_canonical(), from.port());
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
