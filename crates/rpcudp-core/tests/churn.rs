//! Steady-state churn allocates nothing: the slab, the id map and the expiry
//! scratch reuse their capacity once warmed up. A counting allocator (its own
//! test binary, counting per thread) checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rpcudp_core::wire::{frame, Kind, HEADER_LEN};
use rpcudp_core::{Config, Endpoint, Incoming, MsgId};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// 100 000 calls, 1 000 a round: two thirds answered, a third left to expire
/// after 1 to 30 ms while time moves 10 ms a round.
#[test]
fn churn_allocates_nothing_after_warm_up() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::default(), t0);
    let peer: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let body = [0x92, 0xa1, b'f', 0x90];
    let (mut out, mut expired, mut reply) = (Vec::new(), Vec::new(), Vec::new());
    let mut ids: Vec<MsgId> = Vec::with_capacity(1000);
    let mut now = t0;
    let mut token = 0;
    let mut warm = 0;
    let mut timeouts = 0;
    for round in 0..100 {
        if round == 20 {
            warm = allocations();
        }
        ids.clear();
        for i in 0..1000u64 {
            out.clear();
            let timeout = Duration::from_millis(1 + i % 30);
            ep.start_call(now, peer, &body, timeout, token, &mut out).unwrap();
            token += 1;
            let mut id = [0; 20];
            id.copy_from_slice(&out[1..HEADER_LEN]);
            ids.push(id);
        }
        for (i, id) in ids.iter().enumerate() {
            if i % 3 != 0 {
                reply.clear();
                frame(Kind::Response, id, &[0xc0], &mut reply);
                assert!(matches!(
                    ep.handle_datagram(now, peer, &reply),
                    Some(Incoming::Response { .. })
                ));
            }
        }
        now += Duration::from_millis(10);
        expired.clear();
        ep.expire(now, &mut expired);
        timeouts += expired.len();
        let _ = ep.next_deadline();
    }
    let after = allocations();
    expired.clear();
    ep.expire(now + Duration::from_secs(1), &mut expired);
    timeouts += expired.len();
    assert_eq!(after - warm, 0, "allocations after warm-up");
    assert_eq!(ep.outstanding(), 0);
    let st = ep.stats();
    assert_eq!(st.requests_sent, 100_000);
    assert_eq!(st.responses_received, 66_600);
    assert_eq!(st.timeouts as usize, timeouts);
    assert_eq!(st.responses_received + st.timeouts, 100_000);
    assert_eq!(st.dropped_total(), 0);
}
