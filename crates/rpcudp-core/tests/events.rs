use std::net::SocketAddr;

use rpcudp_core::{Event, EventBuf};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn round_trip() {
    let mut buf = EventBuf::default();
    assert!(buf.is_empty());
    buf.push_request(&[1; 20], addr("192.0.2.7:5000"), &[0x92, 0xa1, b'f', 0x90]);
    buf.push_response(u64::MAX, &[0xc0]);
    buf.push_error(7, &[0x92, 0xa1, b'E', 0xa0]);
    buf.push_timeout(8);
    buf.push_request(&[2; 20], addr("[2001:db8::5]:65535"), &[]);
    buf.push_request(&[3; 20], addr("[::ffff:198.51.100.1]:1"), &[0x01]);
    assert_eq!(buf.len(), 6);
    assert_eq!(
        buf.byte_len(),
        (1 + 20 + 7 + 4 + 4) + (1 + 8 + 4 + 1) + (1 + 8 + 4 + 4) + 9 + (1 + 20 + 23 + 4) + (1 + 20 + 7 + 4 + 1)
    );

    let bytes = buf.take();
    assert!(buf.is_empty());
    assert_eq!(buf.byte_len(), 0);
    let events: Vec<_> = EventBuf::iter(&bytes).collect();
    assert_eq!(
        events,
        [
            Event::Request {
                id: [1; 20],
                from: addr("192.0.2.7:5000"),
                body: &[0x92, 0xa1, b'f', 0x90]
            },
            Event::Response {
                token: u64::MAX,
                body: &[0xc0]
            },
            Event::ErrorReply {
                token: 7,
                body: &[0x92, 0xa1, b'E', 0xa0]
            },
            Event::Timeout { token: 8 },
            Event::Request {
                id: [2; 20],
                from: addr("[2001:db8::5]:65535"),
                body: &[]
            },
            Event::Request {
                id: [3; 20],
                from: addr("198.51.100.1:1"),
                body: &[0x01]
            },
        ]
    );
}

#[test]
fn exact_layout() {
    let mut buf = EventBuf::default();
    buf.push_request(&[0xab; 20], addr("1.2.3.4:258"), &[0xc3]);
    buf.push_timeout(0x0102);
    let bytes = buf.take();
    let mut want = vec![0];
    want.extend([0xab; 20]);
    want.extend([4, 1, 2, 3, 4, 0x02, 0x01, 1, 0, 0, 0, 0xc3]);
    want.extend([3, 0x02, 0x01, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes, want);
}

#[test]
fn truncated_or_foreign_logs_stop_iteration() {
    let mut buf = EventBuf::default();
    buf.push_response(1, &[1, 2, 3]);
    buf.push_timeout(2);
    let bytes = buf.take();
    for cut in 0..bytes.len() {
        let n = EventBuf::iter(&bytes[..cut]).count();
        assert!(n <= 1, "cut {cut}");
    }
    assert_eq!(EventBuf::iter(&[9, 0, 0]).count(), 0);
    assert_eq!(EventBuf::iter(&[0; 22]).count(), 0); // address family 0
}

#[test]
fn ipv6_sender_keeps_its_scope_id() {
    let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
        "fe80::1".parse().unwrap(),
        7,
        0x0102_0304,
        3,
    ));
    let mut buf = EventBuf::default();
    buf.push_request(&[4; 20], scoped, &[0xc0]);
    let bytes = buf.take();
    // Flow info is not part of a peer's identity; the scope id (its interface) is.
    let want = SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 7, 0, 3));
    let from = match EventBuf::iter(&bytes).next() {
        Some(Event::Request { from, .. }) => from,
        other => panic!("{other:?}"),
    };
    assert_eq!((from, bytes.len()), (want, 1 + 20 + 23 + 4 + 1));
    if let SocketAddr::V6(v6) = from {
        assert_eq!(v6.scope_id(), 3);
    }
}

#[test]
fn runs_split_at_record_boundaries_within_the_limit() {
    let mut buf = EventBuf::default();
    let big = vec![0xc4; 100];
    for t in 0..10 {
        buf.push_response(t, &big); // 113 bytes each
    }
    buf.push_timeout(99);
    buf.push_socket_error(-9);
    let bytes = buf.take();
    let runs: Vec<&[u8]> = EventBuf::runs(&bytes, 250).collect();
    assert!(runs.iter().all(|r| r.len() <= 250));
    assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), bytes.len());
    let rejoined: Vec<Event> = runs.iter().flat_map(|r| EventBuf::iter(r)).collect();
    assert_eq!(rejoined, EventBuf::iter(&bytes).collect::<Vec<_>>());
    assert_eq!(rejoined.len(), 12);
    assert_eq!(rejoined[11], Event::SocketError { errno: -9 });
    // A record larger than the limit is a run of its own.
    let runs: Vec<&[u8]> = EventBuf::runs(&bytes, 50).collect();
    assert_eq!(runs[0].len(), 113);
    assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), bytes.len());
}
