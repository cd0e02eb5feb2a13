//! Opening the operating system's UDP socket with the options asked for.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};

use socket2::{Domain, Protocol, Socket as RawSocket, Type};

use crate::endpoint::Config;

#[derive(Clone, Debug)]
pub struct SocketOptions {
    pub endpoint: Config,
    /// SO_RCVBUF / SO_SNDBUF requested; the kernel may grant less (see [`crate::socket::SocketStats`]).
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

/// A bound non-blocking socket, with the buffer sizes the kernel granted (receive, send).
pub(crate) fn open(addr: SocketAddr, opts: &SocketOptions) -> io::Result<(StdUdpSocket, usize, usize)> {
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
