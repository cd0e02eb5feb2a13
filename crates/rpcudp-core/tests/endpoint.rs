//! The endpoint on simulated time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rpcudp_core::wire::{encode_error_body, frame, Kind, HEADER_LEN};
use rpcudp_core::{Config, DropReason, Endpoint, Error, Incoming, MsgId, Token};

const BODY: &[u8] = &[0x92, 0xa4, b'p', b'i', b'n', b'g', 0x90];
const MS: Duration = Duration::from_millis(1);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Sim {
    ep: Endpoint,
    t0: Instant,
    peer: SocketAddr,
}

impl Sim {
    fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Sim {
            ep: Endpoint::new(config, t0),
            t0,
            peer: addr("10.0.0.2:4000"),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Starts a call at `now` and returns the id it went out with.
    fn call(&mut self, now: Instant, timeout: Duration, token: Token) -> MsgId {
        let mut out = Vec::new();
        self.ep
            .start_call(now, self.peer, BODY, timeout, token, &mut out)
            .unwrap();
        assert_eq!(out[0], Kind::Request as u8);
        assert_eq!(&out[HEADER_LEN..], BODY);
        out[1..HEADER_LEN].try_into().unwrap()
    }

    fn respond(&mut self, id: &MsgId, from: SocketAddr) -> Option<Token> {
        let mut d = Vec::new();
        frame(Kind::Response, id, &[0x2a], &mut d);
        match self.ep.handle_datagram(self.t0, from, &d)? {
            Incoming::Response { token, body } => {
                assert_eq!(body, [0x2a]);
                Some(token)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn expire(&mut self, now: Instant) -> Vec<Token> {
        let mut out = Vec::new();
        self.ep.expire(now, &mut out);
        out
    }
}

#[test]
fn call_and_response() {
    let mut s = Sim::new(Config::default());
    let id = s.call(s.t0, 100 * MS, 77);
    assert_eq!(s.ep.outstanding(), 1);
    assert_eq!(s.respond(&id, s.peer), Some(77));
    assert_eq!(s.ep.outstanding(), 0);
    assert_eq!(s.ep.next_deadline(), None);
    let st = s.ep.stats();
    assert_eq!((st.requests_sent, st.responses_received, st.timeouts), (1, 1, 0));
}

#[test]
fn an_idle_endpoint_gives_its_call_table_back_after_a_wheel_span() {
    let mut s = Sim::new(Config::default());
    assert_eq!(
        (s.ep.table_bytes(), s.ep.release_deadline()),
        (0, None),
        "nothing before the first call"
    );
    let ids: Vec<MsgId> = (0..100).map(|t| s.call(s.t0, 100 * MS, t)).collect();
    assert!(s.ep.table_bytes() > 0);
    assert_eq!(s.ep.release_deadline(), None, "not while calls are outstanding");
    for (t, id) in ids.iter().enumerate() {
        assert_eq!(s.respond(id, s.peer), Some(t as Token));
    }
    let at = s.ep.release_deadline().expect("a wake-up to give the table back");
    assert_eq!(s.ep.next_deadline(), None, "no call to time out");
    assert!(s.expire(at - MS).is_empty());
    assert!(
        s.ep.table_bytes() > 0,
        "kept for a span: a busy socket between calls reallocates nothing"
    );
    assert!(s.expire(at).is_empty());
    assert_eq!((s.ep.table_bytes(), s.ep.release_deadline()), (0, None));
    // calls work as before
    let id = s.call(at, 100 * MS, 500);
    assert_eq!(s.ep.next_deadline(), Some(at + 100 * MS));
    assert_eq!(s.respond(&id, s.peer), Some(500));
    let id = s.call(at, 100 * MS, 501);
    assert_eq!(s.expire(at + 100 * MS), vec![501]);
    assert_eq!(s.respond(&id, s.peer), None);
}

#[test]
fn ids_are_random_and_distinct() {
    let mut s = Sim::new(Config::default());
    let a = s.call(s.t0, MS, 1);
    let b = s.call(s.t0, MS, 2);
    assert_ne!(a, b);
    assert_ne!(a, [0; 20]);
}

#[test]
fn duplicate_late_and_unknown_responses_are_unmatched() {
    let mut s = Sim::new(Config::default());
    let id = s.call(s.t0, 10 * MS, 1);
    assert_eq!(s.respond(&id, s.peer), Some(1));
    assert_eq!(s.respond(&id, s.peer), None);
    assert_eq!(s.respond(&[1; 20], s.peer), None);
    let late = s.call(s.t0, 10 * MS, 2);
    assert_eq!(s.expire(s.at(10)), vec![2]);
    assert_eq!(s.respond(&late, s.peer), None);
    assert_eq!(s.ep.stats().dropped(DropReason::UnmatchedResponse), 3);
    assert_eq!(s.ep.stats().responses_received, 1);
}

#[test]
fn wrong_sender_is_refused_and_the_call_stays_answerable() {
    let mut s = Sim::new(Config::default());
    let id = s.call(s.t0, 10 * MS, 5);
    assert_eq!(s.respond(&id, addr("10.0.0.3:4000")), None);
    assert_eq!(s.respond(&id, addr("10.0.0.2:4001")), None);
    assert_eq!(s.ep.stats().dropped(DropReason::WrongSender), 2);
    assert_eq!(s.ep.outstanding(), 1);
    // A dual-stack socket reports the same peer as an IPv4-mapped address.
    assert_eq!(s.respond(&id, addr("[::ffff:10.0.0.2]:4000")), Some(5));
}

#[test]
fn check_sender_off_accepts_anyone() {
    let mut s = Sim::new(Config {
        check_sender: false,
        ..Config::default()
    });
    let id = s.call(s.t0, 10 * MS, 5);
    assert_eq!(s.respond(&id, addr("192.0.2.1:1")), Some(5));
    assert_eq!(s.ep.stats().dropped_total(), 0);
}

#[test]
fn error_replies_settle_calls() {
    let mut s = Sim::new(Config::default());
    let id = s.call(s.t0, 10 * MS, 9);
    let mut body = Vec::new();
    encode_error_body("ERR_NOT_FOUND", "no such method", &mut body);
    let mut d = Vec::new();
    frame(Kind::Error, &id, &body, &mut d);
    let got = s.ep.handle_datagram(s.t0, s.peer, &d);
    assert_eq!(
        got,
        Some(Incoming::ErrorReply {
            token: 9,
            code: "ERR_NOT_FOUND",
            message: "no such method",
            body: &body
        })
    );
    assert_eq!(s.ep.handle_datagram(s.t0, s.peer, &d), None);
    assert_eq!(s.ep.stats().errors_received, 1);
    assert!(s.expire(s.at(1000)).is_empty());
}

#[test]
fn requests_are_handed_over_and_replies_framed() {
    let mut s = Sim::new(Config::default());
    let mut d = Vec::new();
    frame(Kind::Request, &[4; 20], BODY, &mut d);
    let Some(Incoming::Request { id, name, body }) = s.ep.handle_datagram(s.t0, s.peer, &d) else {
        panic!()
    };
    assert_eq!((id, name, body), ([4; 20], "ping", BODY));
    let mut out = Vec::new();
    s.ep.frame_reply(&id, s.peer, &[0xc0], &mut out).unwrap();
    assert_eq!(out[0], 1);
    assert_eq!(&out[1..21], &[4; 20]);
    assert_eq!(out[21..], [0xc0]);
    let st = s.ep.stats();
    assert_eq!((st.requests_received, st.responses_sent), (1, 1));
}

#[test]
fn dropped_datagrams_are_counted_by_reason() {
    let mut s = Sim::new(Config::default());
    assert_eq!(s.ep.handle_datagram(s.t0, s.peer, &[0; 21]), None);
    let mut d = Vec::new();
    frame(Kind::Request, &[4; 20], &[0x01], &mut d);
    assert_eq!(s.ep.handle_datagram(s.t0, s.peer, &d), None);
    s.ep.count_drop(DropReason::HandlersBusy);
    let st = s.ep.stats();
    assert_eq!(st.dropped(DropReason::TooShort), 1);
    assert_eq!(st.dropped(DropReason::BadRequest), 1);
    assert_eq!(st.dropped(DropReason::HandlersBusy), 1);
    assert_eq!(st.dropped_total(), 3);
    assert_eq!(st.requests_received, 0);
}

#[test]
fn body_limit() {
    let mut s = Sim::new(Config::default());
    let mut out = Vec::new();
    let ok = vec![0xc0; 8192];
    let big = vec![0xc0; 8193];
    s.ep.start_call(s.t0, s.peer, &ok, MS, 1, &mut out).unwrap();
    assert_eq!(out.len(), HEADER_LEN + 8192);
    let e = s.ep.start_call(s.t0, s.peer, &big, MS, 2, &mut out).unwrap_err();
    assert!(matches!(
        e,
        Error::BodyTooLarge {
            size: 8193,
            limit: 8192
        }
    ));
    assert_eq!(e.code(), "ERR_BODY_TOO_LARGE");
    assert_eq!(s.ep.outstanding(), 1);
    s.ep.frame_reply(&[0; 20], s.peer, &ok, &mut out).unwrap();
    assert!(matches!(
        s.ep.frame_reply(&[0; 20], s.peer, &big, &mut out),
        Err(Error::BodyTooLarge { .. })
    ));
    assert_eq!(s.ep.stats().requests_sent, 1);
    assert_eq!(s.ep.stats().responses_sent, 1);
}

#[test]
fn max_body_is_clamped_to_one_datagram() {
    let s = Sim::new(Config {
        max_body: usize::MAX,
        ..Config::default()
    });
    assert_eq!(s.ep.config().max_body, 65507 - HEADER_LEN);
}

#[test]
fn error_messages_are_cut_to_fit() {
    for max_body in [8192, 300, 40, 14] {
        for unit in ["x", "é", "€", "😀"] {
            let mut s = Sim::new(Config {
                max_body,
                ..Config::default()
            });
            let message = unit.repeat(10_000);
            let mut out = Vec::new();
            s.ep.frame_error(&[1; 20], s.peer, "ERR_HANDLER", &message, &mut out);
            assert!(out.len() - HEADER_LEN <= max_body, "{max_body} {unit}");
            let parsed = rpcudp_core::parse(&out, 32).unwrap();
            let rpcudp_core::Message::Error { code, message: m, .. } = parsed else {
                panic!()
            };
            assert_eq!(code, "ERR_HANDLER");
            assert!(message.starts_with(m));
            // Nothing more would have fitted.
            assert!(
                out.len() - HEADER_LEN + unit.len() + 2 > max_body,
                "{max_body} {unit} {}",
                m.len()
            );
        }
    }
    // Only an absurdly small limit cuts the code too.
    let mut s = Sim::new(Config {
        max_body: 10,
        ..Config::default()
    });
    let mut out = Vec::new();
    s.ep.frame_error(&[1; 20], s.peer, "ERR_HANDLER", "message", &mut out);
    assert_eq!(
        out[HEADER_LEN..],
        [0x92, 0xa7, b'E', b'R', b'R', b'_', b'H', b'A', b'N', 0xa0]
    );

    let mut s = Sim::new(Config::default());
    let mut out = Vec::new();
    s.ep.frame_error(&[1; 20], s.peer, "E", "short", &mut out);
    assert_eq!(
        out[HEADER_LEN..],
        [0x92, 0xa1, b'E', 0xa5, b's', b'h', b'o', b'r', b't']
    );
    assert_eq!(s.ep.stats().errors_sent, 1);
}

#[test]
fn outstanding_cap() {
    let mut s = Sim::new(Config {
        max_outstanding: 3,
        ..Config::default()
    });
    let ids: Vec<_> = (0..3).map(|t| s.call(s.t0, MS, t)).collect();
    let mut out = Vec::new();
    let e = s.ep.start_call(s.t0, s.peer, BODY, MS, 3, &mut out).unwrap_err();
    assert!(matches!(e, Error::TooManyOutstanding { limit: 3 }));
    assert_eq!(e.code(), "ERR_OVERLOADED");
    assert!(out.is_empty());
    s.respond(&ids[1], s.peer).unwrap();
    s.call(s.t0, MS, 4);
    assert_eq!(s.ep.outstanding(), 3);
}

#[test]
fn cancel_all_returns_every_token() {
    let mut s = Sim::new(Config::default());
    for (t, ms) in [(1, 5), (2, 50_000), (3, 0), (4, 200_000)] {
        s.call(s.t0, ms * MS, t);
    }
    let mut out = vec![99];
    s.ep.cancel_all(&mut out);
    out.sort_unstable();
    assert_eq!(out, [1, 2, 3, 4, 99]);
    assert_eq!(s.ep.outstanding(), 0);
    assert_eq!(s.ep.next_deadline(), None);
    assert!(s.expire(s.at(1_000_000)).is_empty());
    assert_eq!(s.ep.stats().timeouts, 0);
    // Usable afterwards.
    s.call(s.at(1_000_000), MS, 5);
    assert_eq!(s.expire(s.at(1_000_001)), [5]);
}

#[test]
fn timeouts_fire_in_deadline_order_never_early() {
    let mut s = Sim::new(Config::default());
    // (token, start ms, timeout ms), including deadlines beyond one wheel span.
    let calls = [
        (1, 0, 50),
        (2, 0, 10),
        (3, 5, 5),
        (4, 0, 100_000),
        (5, 1, 40_000),
        (6, 2, 10),
        (7, 3, 0),
        (8, 0, 40_000),
    ];
    let mut answered = None;
    for (token, start, timeout) in calls {
        let id = s.call(s.at(start), timeout * MS, token);
        if token == 6 {
            answered = Some(id);
        }
    }
    // An answered call never expires.
    assert_eq!(s.respond(&answered.unwrap(), s.peer), Some(6));
    assert_eq!(s.ep.next_deadline(), Some(s.at(3)));
    assert!(s.expire(s.at(2)).is_empty());
    assert_eq!(s.expire(s.at(3)), [7]);
    assert_eq!(s.ep.next_deadline(), Some(s.at(10)));
    assert!(s.expire(s.at(10) - Duration::from_nanos(1)).is_empty());
    assert_eq!(s.expire(s.at(10)), [2, 3]); // same tick: started first, first out
    assert_eq!(s.expire(s.at(39_999)), [1]);
    assert_eq!(s.ep.next_deadline(), Some(s.at(40_000)));
    assert_eq!(s.expire(s.at(40_000)), [8]); // 5 is due at 40 001
    assert_eq!(s.expire(s.at(1_000_000)), [5, 4]);
    assert_eq!(s.ep.stats().timeouts, 7);
    assert_eq!(s.ep.outstanding(), 0);
}

#[test]
fn sub_tick_deadlines_round_up() {
    let mut s = Sim::new(Config::default());
    let start = s.t0 + Duration::from_micros(300);
    s.call(start, Duration::from_micros(1500), 1); // due 1.8 ms, fires at the 2 ms tick
    assert_eq!(s.ep.next_deadline(), Some(s.at(2)));
    assert!(s.expire(s.t0 + Duration::from_micros(1999)).is_empty());
    assert_eq!(s.expire(s.at(2)), [1]);
}

#[test]
fn coarse_ticks() {
    let mut s = Sim::new(Config {
        tick: 10 * MS,
        ..Config::default()
    });
    s.call(s.at(1), MS, 1);
    assert_eq!(s.ep.next_deadline(), Some(s.at(10)));
    assert!(s.expire(s.at(9)).is_empty());
    assert_eq!(s.expire(s.at(10)), [1]);
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let mut s = Sim::new(Config::default());
    s.call(s.t0, Duration::MAX, 1);
    assert!(s.expire(s.at(10_000_000)).is_empty());
    assert_eq!(s.ep.outstanding(), 1);
    let _ = s.ep.next_deadline();
}

/// The wheel's span in 1 ms ticks (its slot count).
const SPAN: u64 = 2048;

/// Model check: random calls, answers and expiries against a plain list.
#[test]
fn randomized_against_a_model() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut s = Sim::new(Config::default());
    // token -> (id, due tick), in start order
    let mut model: Vec<(Token, MsgId, u64)> = Vec::new();
    let mut now_us = 0u64;
    let mut processed = 0u64; // first tick not yet expired
    for token in 0..3000 {
        now_us += next(3000);
        let now = s.t0 + Duration::from_micros(now_us);
        match next(10) {
            0..=5 => {
                // Mostly short timeouts, some far beyond one wheel span.
                let timeout_us = if next(5) == 0 { next(120_000_000) } else { next(50_000) };
                let id = s.call(now, Duration::from_micros(timeout_us), token);
                let due = (now_us + timeout_us).div_ceil(1000).max(processed);
                model.push((token, id, due));
            }
            6..=7 if !model.is_empty() => {
                let (t, id, _) = model.remove(next(model.len() as u64) as usize);
                assert_eq!(s.respond(&id, s.peer), Some(t));
            }
            _ => {
                let tick = now_us / 1000;
                let mut due: Vec<_> = model.iter().filter(|c| c.2 <= tick).map(|c| (c.2, c.0)).collect();
                due.sort_by_key(|&(d, _)| d); // stable: ties stay in start order
                model.retain(|c| c.2 > tick);
                let want: Vec<Token> = due.into_iter().map(|(_, t)| t).collect();
                assert_eq!(s.expire(now), want, "at {now_us} us");
                processed = processed.max(tick + 1);
            }
        }
        assert_eq!(s.ep.outstanding(), model.len());
        // The earliest deadline when it is within one wheel span of the first
        // unexpired tick, else a wake-up at the span's end (never later).
        let earliest = model.iter().map(|c| c.2).min();
        let want = earliest.map(|d| s.at(d.min(processed + SPAN)));
        assert_eq!(s.ep.next_deadline(), want, "at {now_us} us");
    }
    let rest: HashMap<Token, ()> = model.iter().map(|c| (c.0, ())).collect();
    let mut out = Vec::new();
    s.ep.cancel_all(&mut out);
    assert_eq!(out.len(), rest.len());
    assert!(out.iter().all(|t| rest.contains_key(t)));
}

#[test]
fn cancelled_calls_never_settle_and_their_answers_are_unmatched() {
    let mut s = Sim::new(Config::default());
    let id = s.call(s.t0, 100 * MS, 5);
    let kept = s.call(s.t0, 100 * MS, 6);
    assert!(s.ep.cancel(5));
    assert!(!s.ep.cancel(5));
    assert_eq!(s.ep.outstanding(), 1);
    assert_eq!(s.respond(&id, s.peer), None);
    assert_eq!(s.ep.stats().dropped(DropReason::UnmatchedResponse), 1);
    assert_eq!(s.expire(s.at(1000)), vec![6]);
    assert_eq!(s.respond(&kept, s.peer), None);
}

#[test]
fn requests_beyond_a_sources_rate_are_dropped_before_parsing() {
    use rpcudp_core::limits::RateConfig;
    let mut s = Sim::new(Config {
        per_source: Some(RateConfig {
            requests_per_second: 10.0,
            burst: 3.0,
            max_sources: 8,
        }),
        ..Config::default()
    });
    let mut d = Vec::new();
    frame(Kind::Request, &[4; 20], BODY, &mut d);
    let other = addr("10.0.0.3:4000");
    let admitted = (0..10)
        .filter(|_| s.ep.handle_datagram(s.t0, s.peer, &d).is_some())
        .count();
    assert_eq!(admitted, 3);
    assert!(
        s.ep.handle_datagram(s.t0, other, &d).is_some(),
        "another source is not limited"
    );
    // Garbage typed as a request costs a token too; answers to our calls are never limited.
    assert_eq!(s.ep.classify(s.t0, s.peer, &[0; 30]), Err(DropReason::RateLimited));
    let id = s.call(s.t0, 100 * MS, 1);
    assert_eq!(s.respond(&id, s.peer), Some(1));
    assert!(
        s.ep.handle_datagram(s.at(100), s.peer, &d).is_some(),
        "refilled at 10/s"
    );
    let st = s.ep.stats();
    assert_eq!(st.dropped(DropReason::RateLimited), 8);
    assert_eq!(st.requests_received, 5);
    assert_eq!(s.ep.limited_sources(), 2);
}

#[test]
fn replies_to_a_source_that_never_answered_stay_within_the_reflection_bound() {
    use rpcudp_core::reflection::ReflectionConfig;
    let mut s = Sim::new(Config {
        reflection: Some(ReflectionConfig {
            allowance: 1000,
            factor: 2.0,
            max_sources: 8,
        }),
        ..Config::default()
    });
    let mut request = Vec::new();
    frame(Kind::Request, &[4; 20], BODY, &mut request);
    let answer = [0xc4, 0xff].into_iter().chain([0; 255]).collect::<Vec<u8>>(); // bin 8, 255 bytes: 278 on the wire
    let mut out = Vec::new();
    let mut received = 0;
    for _ in 0..20 {
        let Some(Incoming::Request { id, .. }) = s.ep.handle_datagram(s.t0, s.peer, &request) else {
            panic!("request not classified")
        };
        received += request.len();
        s.ep.frame_reply(&id, s.peer, &answer, &mut out).unwrap();
    }
    let replies = out.len() / (HEADER_LEN + answer.len());
    assert!(out.len() <= 1000 + 2 * received, "{} > 1000 + 2 x {received}", out.len());
    assert!(
        out.len() + HEADER_LEN + answer.len() > 1000 + 2 * received,
        "held back only what did not fit: {replies} replies"
    );
    assert_eq!(s.ep.stats().responses_sent as usize, replies);
    assert_eq!(s.ep.stats().dropped(DropReason::Unverified) as usize, 20 - replies);
    // An error reply is held back the same way, and writes nothing.
    let before = out.len();
    s.ep.frame_error(&[4; 20], s.peer, "ERR", &"x".repeat(2000), &mut out);
    assert_eq!(out.len(), before);
    assert_eq!(s.ep.stats().errors_sent, 0);
    // Once the peer answers a call of ours, its replies flow.
    let id = s.call(s.t0, 100 * MS, 1);
    assert_eq!(s.respond(&id, s.peer), Some(1));
    s.ep.frame_reply(&[4; 20], s.peer, &answer, &mut out).unwrap();
    assert_eq!(out.len(), before + HEADER_LEN + answer.len());
    assert_eq!(s.ep.guarded_sources(), 1);
}
