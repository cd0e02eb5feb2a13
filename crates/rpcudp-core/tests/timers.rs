//! A call started right after the previous one timed out still times out.
//! The driver publishes the deadline it sleeps towards (`armed`) and a new
//! call wakes it only if its own deadline is earlier; published outside the
//! endpoint lock, a call landing in between saw a stale value and its timeout
//! never fired (JavaScript saw it as a call that hung forever).

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Duration;

use rpcudp_core::socket::Socket;
use rpcudp_core::{Event, EventBuf, SocketOptions, Wake};

struct Signal(Mutex<Sender<()>>);

impl Wake for Signal {
    fn wake(&self) {
        let _ = self.0.lock().unwrap().send(());
    }
}

#[test]
fn back_to_back_timeouts_all_fire() {
    // Bound and never read: calls to it are never answered.
    let black_hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = black_hole.local_addr().unwrap();
    let (tx, rx) = channel();
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let socket = Socket::bind(local, SocketOptions::default(), Signal(Mutex::new(tx))).unwrap();
    let events = socket.events();
    let request = [0x92, 0xa1, b'f', 0x90];
    for token in 0..1_000u64 {
        socket.call(target, &request, Duration::from_millis(1), token).unwrap();
        // Wait for this call's timeout, then start the next one at once (the racy moment).
        let mut fired = false;
        while !fired {
            rx.recv_timeout(Duration::from_secs(2))
                .unwrap_or_else(|_| panic!("the timeout of call {token} never fired"));
            let bytes = events.take();
            fired = EventBuf::iter(&bytes).any(|e| e == Event::Timeout { token });
        }
    }
    socket.close();
}
