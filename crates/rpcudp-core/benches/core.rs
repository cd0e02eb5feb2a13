//! Micro-benchmarks of the sans-IO core: `cargo bench -p rpcudp-core`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use divan::{black_box, Bencher};
use rpcudp_core::wire::{frame, parse, Kind, DEFAULT_MAX_DEPTH, HEADER_LEN};
use rpcudp_core::{validate, value, Config, Endpoint, MsgId};

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_typical_request(bencher: Bencher) {
    let body = value::encode_request(
        "store",
        &("some-key-0123456789", vec![1u32, 2, 3], "a value of a few dozen bytes"),
    )
    .unwrap();
    let mut d = Vec::new();
    frame(Kind::Request, &[7; 20], &body, &mut d);
    bencher.bench(|| parse(black_box(&d), DEFAULT_MAX_DEPTH).is_ok());
}

/// About 1 KiB of nested arrays and maps of strs, ints and floats.
fn nested_value() -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Leaf(u32, f64, String, Vec<i64>);
    let leaves: Vec<Vec<Leaf>> = (0..11)
        .map(|i| {
            (0..3)
                .map(|j| Leaf(i * j, 1.5, format!("leaf-{i}-{j}"), vec![-1, 300, 70_000]))
                .collect()
        })
        .collect();
    value::encode_value(&leaves).unwrap()
}

#[divan::bench]
fn validate_1k_nested(bencher: Bencher) {
    let v = nested_value();
    assert!((900..1200).contains(&v.len()), "{} bytes", v.len());
    bencher.bench(|| validate(black_box(&v), DEFAULT_MAX_DEPTH).is_ok());
}

#[divan::bench]
fn start_call_and_handle_response(bencher: Bencher) {
    let now = Instant::now();
    let mut ep = Endpoint::new(Config::default(), now);
    let peer: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let body = value::encode_request("ping", &[0u8; 0]).unwrap();
    let (mut out, mut reply) = (Vec::new(), Vec::new());
    let mut token = 0;
    bencher.bench_local(|| {
        out.clear();
        ep.start_call(now, peer, &body, Duration::from_secs(5), token, &mut out)
            .unwrap();
        token += 1;
        let id = MsgId::try_from(&out[1..HEADER_LEN]).unwrap();
        reply.clear();
        frame(Kind::Response, &id, &[0xc0], &mut reply);
        ep.handle_datagram(now, peer, &reply).is_some()
    });
}

/// 1 000 calls started per simulated millisecond with 1 to 50 ms timeouts,
/// none answered: one iteration starts a millisecond's calls and expires.
#[divan::bench]
fn expire_churn(bencher: Bencher) {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::default(), t0);
    let peer: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let body = value::encode_request("ping", &[0u8; 0]).unwrap();
    let (mut out, mut expired) = (Vec::new(), Vec::new());
    let mut ms = 0u64;
    bencher.bench_local(|| {
        let now = t0 + Duration::from_millis(ms);
        for i in 0..1000u64 {
            out.clear();
            ep.start_call(now, peer, &body, Duration::from_millis(1 + i % 50), i, &mut out)
                .unwrap();
        }
        expired.clear();
        ep.expire(now, &mut expired);
        ms += 1;
        expired.len()
    });
}
