//! Many datagrams per system call: `sendmmsg`/`recvmmsg` on Linux, a loop of
//! `send_to`/`recv_from` elsewhere. On loopback at high call rates the
//! per-syscall cost is a large share of a call's CPU time.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Datagrams framed back to back in one buffer, waiting for [`Outbox::flush`].
#[derive(Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    items: Vec<(usize, usize, SocketAddr)>,
    /// Turns in a row that used under a quarter of the buffers (see `clear`).
    quiet_turns: u8,
}

impl Outbox {
    /// Frames one datagram with `frame` (which appends to the buffer) and queues it for `dest`.
    pub fn push<E>(&mut self, dest: SocketAddr, frame: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = self.bytes.len();
        if let Err(e) = frame(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(e);
        }
        // A frame may write nothing (a reply the reflection bound holds back).
        if self.bytes.len() > start {
            self.items.push((start, self.bytes.len() - start, dest));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the outbox. Its buffers give back most of what a burst grew
    /// them to once QUIET_TURNS turns in a row used under a quarter of them: a
    /// process of 10 000 Kademlia nodes whose sockets each once answered a
    /// burst would otherwise hold every socket's peak (9 KB a node, measured),
    /// while a busy socket, whose turns vary in size, keeps its buffers.
    pub fn clear(&mut self) {
        let quiet = self.items.capacity() > 4 * self.items.len().max(MIN_ITEMS / 2)
            || self.bytes.capacity() > 4 * self.bytes.len().max(MIN_BYTES / 2);
        self.quiet_turns = if quiet { self.quiet_turns.saturating_add(1) } else { 0 };
        if self.quiet_turns >= QUIET_TURNS {
            self.quiet_turns = 0;
            fit(&mut self.items, MIN_ITEMS);
            fit(&mut self.bytes, MIN_BYTES);
        }
        self.bytes.clear();
        self.items.clear();
    }

    /// Sends everything queued; returns how many datagrams the kernel refused
    /// (full send buffer, unreachable route), which the caller counts.
    pub fn flush(&mut self, socket: &UdpSocket) -> usize {
        let failed = send_all(socket, &self.bytes, &self.items);
        self.clear();
        failed
    }
}

/// Capacity an outbox keeps however little it sends: a few answers' worth.
const MIN_ITEMS: usize = 8;
const MIN_BYTES: usize = 2048;
/// Quiet turns in a row before an outbox shrinks.
const QUIET_TURNS: u8 = 64;

/// Shrinks `v` to twice its length when it holds more than four times that (never below `floor`).
fn fit<T>(v: &mut Vec<T>, floor: usize) {
    let keep = (2 * v.len()).max(floor);
    if v.capacity() > 2 * keep {
        v.shrink_to(keep);
    }
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, bytes: &[u8], items: &[(usize, usize, SocketAddr)]) -> usize {
    use socket2::SockAddr;
    use std::os::fd::AsRawFd;
    const CHUNK: usize = 64;
    let mut failed = 0;
    for chunk in items.chunks(CHUNK) {
        let addrs: Vec<SockAddr> = chunk.iter().map(|&(_, _, a)| SockAddr::from(a)).collect();
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|&(off, len, _)| libc::iovec {
                iov_base: bytes[off..].as_ptr() as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: zeroed mmsghdr is a valid "empty" header; every pointer set below
        // points into `addrs`/`iovs`, which outlive the sendmmsg calls.
        let mut msgs: Vec<libc::mmsghdr> = (0..chunk.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = addrs[i].len();
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < msgs.len() {
            let rest = &mut msgs[sent..];
            // SAFETY: `rest` is a valid array of initialised headers of the given length.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent += n as usize;
            } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // The first unsent datagram failed on its own (bad route, full buffer): skip it.
                failed += 1;
                sent += 1;
            }
        }
    }
    failed
}

#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, bytes: &[u8], items: &[(usize, usize, SocketAddr)]) -> usize {
    items
        .iter()
        .filter(|&&(off, len, dest)| socket.send_to(&bytes[off..off + len], dest).is_err())
        .count()
}

/// Receive buffers for up to `BATCH` datagrams per system call.
pub struct Inbox {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    from: Vec<SocketAddr>,
    count: usize,
    /// Datagrams the last read took from the socket but could not keep (see `discarded`).
    discarded: usize,
}

impl Inbox {
    pub const BATCH: usize = 32;

    pub fn new(max_datagram: usize) -> Self {
        Inbox {
            // Zeroed allocations are mapped lazily, so unused capacity costs address space, not memory.
            bufs: (0..Self::BATCH).map(|_| vec![0u8; max_datagram]).collect(),
            lens: vec![0; Self::BATCH],
            from: vec![SocketAddr::from(([0, 0, 0, 0], 0)); Self::BATCH],
            count: 0,
            discarded: 0,
        }
    }

    /// Whether a read that returned `n` datagrams has emptied the socket: with
    /// recvmmsg, any batch short of BATCH did (it takes all that is waiting).
    pub fn emptied_by(n: usize) -> bool {
        cfg!(target_os = "linux") && n < Self::BATCH
    }

    /// How many datagrams the last read consumed but left out of `iter`: cut
    /// short by the kernel (larger than the buffer) or from an address the
    /// socket API cannot express. The caller counts them as drops.
    pub fn discarded(&self) -> usize {
        self.discarded
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.count).map(|i| (&self.bufs[i][..self.lens[i]], self.from[i]))
    }

    /// Reads what is waiting (up to BATCH datagrams) without blocking; WouldBlock when nothing is
    /// (which also clears tokio's readiness, so the driver sleeps until more arrives).
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &tokio::net::UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        socket.try_io(tokio::io::Interest::READABLE, || self.recv_raw(socket.as_raw_fd()))
    }

    /// The same, on a non-blocking std socket polled by someone else's event loop.
    #[cfg(target_os = "linux")]
    pub fn recv_std(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.recv_raw(socket.as_raw_fd())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv_std(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let (len, from) = socket.recv_from(&mut self.bufs[0])?;
        self.lens[0] = len;
        self.from[0] = from;
        self.count = 1;
        Ok(1)
    }

    #[cfg(target_os = "linux")]
    fn recv_raw(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        use socket2::SockAddr;
        // SAFETY: zeroed storage/headers are valid; pointers reference `storage`, `iovs`
        // and `self.bufs`, all alive for the call.
        let mut storage: Vec<libc::sockaddr_storage> =
            (0..Self::BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..Self::BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = &mut storage[i] as *mut _ as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: valid fd and header array of BATCH entries.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                Self::BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            self.discarded = 0;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let mut kept = 0;
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            // SAFETY: the kernel filled `storage[i]` with `msg_namelen` bytes of address.
            let addr = unsafe { SockAddr::new(storage[i], msgs[i].msg_hdr.msg_namelen) }.as_socket();
            // A datagram that filled the buffer may have been cut short (the
            // buffer is one byte longer than any datagram this protocol accepts).
            let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len >= self.bufs[i].len();
            if let (Some(addr), false) = (addr, truncated) {
                self.bufs.swap(kept, i);
                self.lens[kept] = len;
                self.from[kept] = addr;
                kept += 1;
            }
        }
        self.count = kept;
        self.discarded = n - kept;
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &tokio::net::UdpSocket) -> io::Result<usize> {
        let (len, from) = socket.try_recv_from(&mut self.bufs[0])?;
        self.lens[0] = len;
        self.from[0] = from;
        self.count = 1;
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(o: &mut Outbox, n: usize) {
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..n {
            o.push::<()>(dest, |b| Ok(b.extend_from_slice(&[0u8; 100]))).unwrap();
        }
    }

    #[test]
    fn a_burst_keeps_its_buffers_while_the_load_lasts_and_gives_them_back_after_quiet_turns() {
        let mut o = Outbox::default();
        queue(&mut o, 256);
        o.clear();
        let (bytes, items) = (o.bytes.capacity(), o.items.capacity());
        assert!(bytes >= 256 * 100 && items >= 256);
        // the same load again: nothing reallocated
        queue(&mut o, 200);
        o.clear();
        assert_eq!((o.bytes.capacity(), o.items.capacity()), (bytes, items));
        // quiet turns, then busy again: nothing reallocated
        for _ in 0..QUIET_TURNS - 1 {
            queue(&mut o, 1);
            o.clear();
        }
        queue(&mut o, 200);
        o.clear();
        assert_eq!((o.bytes.capacity(), o.items.capacity()), (bytes, items));
        // quiet for long enough: back to a few answers' worth
        for _ in 0..QUIET_TURNS {
            queue(&mut o, 1);
            o.clear();
        }
        assert!(
            o.bytes.capacity() <= MIN_BYTES && o.items.capacity() <= MIN_ITEMS,
            "{} {}",
            o.bytes.capacity(),
            o.items.capacity()
        );
        assert!(o.is_empty());
    }
}
