//! Datagrams handed to the runtime thread leave once a commit wakes it, and
//! close() sends whatever is still waiting: nothing queued is lost.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rpcudp_core::socket::{commit, Socket};
use rpcudp_core::{SocketOptions, Wake};

struct Ignore;

impl Wake for Ignore {
    fn wake(&self) {}
}

fn sink() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Counts up to `n` datagrams on a thread of its own, so the sink's receive buffer never overflows.
fn receive(s: UdpSocket, n: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..n).take_while(|_| s.recv_from(&mut buf).is_ok()).count()
    })
}

fn bound(external: bool) -> Socket {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    if external {
        Socket::bind_external(local, SocketOptions::default(), Ignore).unwrap()
    } else {
        Socket::bind(local, SocketOptions::default(), Ignore).unwrap()
    }
}

const REQUEST: [u8; 4] = [0x92, 0xa1, b'f', 0x90];

#[test]
fn handed_over_datagrams_leave_after_a_commit() {
    // Many sockets with a datagram each (the runtime sends them), and a few
    // with many each (the committing thread sends them itself).
    for (sockets, each) in [(60u64, 1u64), (2, 60)] {
        for external in [false, true] {
            let (rx, target) = sink();
            // Fewer than fill the sink's default receive buffer, which one sendmmsg could overflow.
            let received = receive(rx, (sockets * each) as usize);
            let bound: Vec<Socket> = (0..sockets).map(|_| bound(external)).collect();
            for (i, socket) in bound.iter().enumerate() {
                for token in 0..each {
                    socket
                        .queue_call(target, &REQUEST, Duration::from_secs(5), i as u64 * each + token)
                        .unwrap();
                    socket.hand_over();
                }
            }
            commit();
            assert_eq!(
                received.join().unwrap(),
                (sockets * each) as usize,
                "{sockets} sockets, {each} each, external: {external}"
            );
            bound.iter().for_each(|s| {
                s.close();
            });
        }
    }
}

#[test]
fn close_sends_what_was_handed_over() {
    for external in [false, true] {
        let (rx, target) = sink();
        let received = receive(rx, 10);
        let socket = bound(external);
        for token in 0..10u64 {
            socket
                .queue_call(target, &REQUEST, Duration::from_secs(5), token)
                .unwrap();
        }
        socket.hand_over();
        socket.close();
        assert_eq!(received.join().unwrap(), 10, "external: {external}");
    }
}
