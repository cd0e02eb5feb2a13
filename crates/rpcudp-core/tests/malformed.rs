//! Every way a datagram is dropped, on hand-written vectors, plus property
//! tests that arbitrary input never panics.

use proptest::prelude::*;
use rpcudp_core::wire::{frame, parse, Kind, DEFAULT_MAX_DEPTH, HEADER_LEN};
use rpcudp_core::{validate, DropReason};

use DropReason::*;

fn datagram(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut d = vec![kind];
    d.extend_from_slice(&[9; 20]);
    d.extend_from_slice(body);
    d
}

fn response(body: &[u8]) -> Result<(), DropReason> {
    parse(&datagram(1, body), DEFAULT_MAX_DEPTH).map(|_| ())
}

fn request(body: &[u8]) -> Result<(), DropReason> {
    parse(&datagram(0, body), DEFAULT_MAX_DEPTH).map(|_| ())
}

fn error(body: &[u8]) -> Result<(), DropReason> {
    parse(&datagram(2, body), DEFAULT_MAX_DEPTH).map(|_| ())
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x91; depth];
    v.push(0x01);
    v
}

#[test]
fn too_short() {
    assert_eq!(parse(&[], 32).unwrap_err(), TooShort);
    assert_eq!(parse(&datagram(0, &[]), 32).unwrap_err(), TooShort); // 21 bytes
    assert_eq!(parse(&datagram(7, &[]), 32).unwrap_err(), TooShort); // length checked first
    assert!(response(&[0xc0]).is_ok()); // 22 bytes is enough
}

#[test]
fn unknown_type() {
    for t in [3, 7, 0x80, 0xff] {
        assert_eq!(parse(&datagram(t, &[0xc0]), 32).unwrap_err(), UnknownType);
    }
}

#[test]
fn malformed() {
    let cases: &[&[u8]] = &[
        &[0xd9],                         // str8 without its length
        &[0xd9, 0x05, b'a', b'b'],       // str8 declaring more than present
        &[0xa3, b'a'],                   // fixstr truncated
        &[0xdb, 0xff, 0xff, 0xff, 0xff], // str32 of 4 GiB
        &[0xc4, 0x02, 0x00],             // bin8 truncated
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00],
        &[0xcd, 0x01],                               // uint16 truncated
        &[0xcb, 0, 0, 0, 0, 0, 0, 0],                // float64 truncated
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],       // array32 of 2^32 - 1 elements
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01], // map32 of 2^32 - 1 pairs
        &[0xdc, 0x00],                               // array16 header truncated
        &[0x92, 0x01],                               // array missing an element
        &[0x81, 0x01],                               // map missing a value
        &[0x82, 0x01, 0x01, 0x01],                   // map with one pair too few
        &[0xc1],                                     // never-used marker
        &[0x92, 0x01, 0xc1],
        &[0x01, 0x02], // trailing byte
        &[0x90, 0x00],
        &[0xc0, 0xc0],
    ];
    for body in cases {
        assert_eq!(response(body), Err(Malformed), "{body:02x?}");
        assert_eq!(validate(body, 32), Err(Malformed), "{body:02x?}");
    }
    // A request whose body is malformed is Malformed, not BadRequest.
    assert_eq!(
        request(&[0x92, 0xa1, b'f', 0xdd, 0xff, 0xff, 0xff, 0xff]),
        Err(Malformed)
    );
}

#[test]
fn bad_utf8() {
    assert_eq!(request(&[0x92, 0xa2, 0xff, 0xfe, 0x90]), Err(BadUtf8)); // in the name
    assert_eq!(request(&[0x92, 0xa1, b'f', 0x91, 0x91, 0xa2, 0xc3, 0x28]), Err(BadUtf8)); // nested
    assert_eq!(response(&[0x81, 0xa1, 0x80, 0x01]), Err(BadUtf8)); // a map key
    assert_eq!(error(&[0x92, 0xa1, b'E', 0xa3, 0xed, 0xa0, 0x80]), Err(BadUtf8)); // a surrogate
                                                                                  // The same bytes as bin are fine.
    assert!(response(&[0xc4, 0x02, 0xff, 0xfe]).is_ok());
}

#[test]
fn too_deep() {
    assert!(response(&nested(32)).is_ok());
    assert_eq!(response(&nested(33)), Err(TooDeep));
    assert_eq!(validate(&nested(3), 2), Err(TooDeep));
    assert_eq!(validate(&[0x91, 0x90], 1), Err(TooDeep)); // an empty container still counts
    assert_eq!(validate(&[0x81, 0x90, 0x01], 1), Err(TooDeep)); // so does a map key
    assert_eq!(validate(&[0x01], 0), Ok(()));
    // Depth beyond the stack's size is clamped, never a panic.
    assert_eq!(validate(&nested(1000), usize::MAX), Err(TooDeep));
    // Arguments sit two levels down in a request.
    let mut req = vec![0x92, 0xa1, b'f'];
    req.extend(nested(31));
    assert!(request(&req).is_ok());
    req.insert(3, 0x91);
    assert_eq!(request(&req), Err(TooDeep));
}

/// At one container header the count is checked against the bytes before the
/// depth; the TypeScript decoder (src/codec.ts) checks in the same order, so
/// both backends count such a datagram the same way (__test__/hostile.spec.ts).
#[test]
fn short_count_beats_depth() {
    let mut v = vec![0x91; 33]; // the 33rd array claims an element that is not there
    assert_eq!(response(&v), Err(Malformed));
    v.truncate(32);
    v.push(0x81); // a map at depth 33 claiming a pair that is not there
    assert_eq!(response(&v), Err(Malformed));
    v.push(0x01); // still short: one byte for a pair
    assert_eq!(response(&v), Err(Malformed));
    v.push(0x01); // the bytes are there: now it is the depth
    assert_eq!(response(&v), Err(TooDeep));
}

#[test]
fn unsupported_type() {
    let cases: &[&[u8]] = &[
        &[0xc7, 0x01, 0x05, 0x00],
        &[0xc8, 0x00, 0x01, 0x05, 0x00],
        &[0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00],
        &[0xd4, 0x01, 0x00],
        &[0xd5, 0x01, 0x00, 0x00],
        &[0xd6, 0xff, 0, 0, 0, 0], // the timestamp extension
        &[0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x91, 0xd4, 0x01, 0x00],
    ];
    for body in cases {
        assert_eq!(response(body), Err(UnsupportedType), "{body:02x?}");
    }
}

#[test]
fn bad_request_shape() {
    let requests: &[&[u8]] = &[
        &[0x01],                               // not an array
        &[0x91, 0xa1, b'f'],                   // one element
        &[0x93, 0xa1, b'f', 0x90, 0x90],       // three elements
        &[0x92, 0x01, 0x90],                   // name not a str
        &[0x92, 0xc4, 0x01, b'f', 0x90],       // name as bin
        &[0x92, 0xa1, b'f', 0x80],             // args a map
        &[0x92, 0xa1, b'f', 0x01],             // args a scalar
        &[0x82, 0xa1, b'f', 0x90, 0x01, 0x01], // a map of two pairs
    ];
    for body in requests {
        assert_eq!(request(body), Err(BadRequest), "{body:02x?}");
    }
    let errors: &[&[u8]] = &[
        &[0xa1, b'E'],
        &[0x91, 0xa1, b'E'],
        &[0x92, 0x01, 0xa1, b'm'],
        &[0x92, 0xa1, b'E', 0x01],
        &[0x93, 0xa1, b'E', 0xa1, b'm', 0xc0],
    ];
    for body in errors {
        assert_eq!(error(body), Err(BadRequest), "{body:02x?}");
    }
    // Anything well-formed is a valid response.
    for body in requests.iter().chain(errors) {
        assert!(response(body).is_ok(), "{body:02x?}");
    }
}

fn valid_datagrams() -> Vec<Vec<u8>> {
    let bodies: [(Kind, &[u8]); 4] = [
        (Kind::Request, &[0x92, 0xa3, b's', b'u', b'm', 0x92, 0x01, 0x02]),
        (
            Kind::Response,
            &[
                0x82, 0xa1, b'a', 0x92, 0xcd, 0x01, 0x00, 0xc4, 0x01, 0xff, 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (
            Kind::Error,
            &[0x92, 0xa5, b'E', b'R', b'R', b'_', b'X', 0xd9, 0x02, b'h', b'i'],
        ),
        (
            Kind::Request,
            &[0x92, 0xa1, b'f', 0x93, 0x91, 0x91, 0x90, 0xdc, 0x00, 0x01, 0xc0, 0xa0],
        ),
    ];
    bodies
        .iter()
        .map(|(kind, body)| {
            let mut d = Vec::new();
            frame(*kind, &[3; 20], body, &mut d);
            assert!(parse(&d, DEFAULT_MAX_DEPTH).is_ok());
            d
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Any msgpack value, to check `validate` accepts whatever a real encoder writes.
#[derive(Debug, Clone)]
enum V {
    Nil,
    Bool(bool),
    I(i64),
    U(u64),
    F32(f32),
    F64(f64),
    S(String),
    B(Vec<u8>),
    A(Vec<V>),
    M(Vec<(V, V)>),
}

impl serde::Serialize for V {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            V::Nil => s.serialize_unit(),
            V::Bool(b) => s.serialize_bool(*b),
            V::I(i) => s.serialize_i64(*i),
            V::U(u) => s.serialize_u64(*u),
            V::F32(f) => s.serialize_f32(*f),
            V::F64(f) => s.serialize_f64(*f),
            V::S(x) => s.serialize_str(x),
            V::B(b) => s.serialize_bytes(b),
            V::A(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                items.iter().try_for_each(|v| seq.serialize_element(v))?;
                seq.end()
            }
            V::M(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                pairs.iter().try_for_each(|(k, v)| map.serialize_entry(k, v))?;
                map.end()
            }
        }
    }
}

fn value() -> impl Strategy<Value = V> {
    let leaf = prop_oneof![
        Just(V::Nil),
        any::<bool>().prop_map(V::Bool),
        any::<i64>().prop_map(V::I),
        any::<u64>().prop_map(V::U),
        any::<f32>().prop_map(V::F32),
        any::<f64>().prop_map(V::F64),
        ".{0,40}".prop_map(V::S),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(V::B),
        (0usize..70_000).prop_map(|n| V::S("s".repeat(n))),
    ];
    leaf.prop_recursive(8, 64, 10, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(V::A),
            proptest::collection::vec((inner.clone(), inner), 0..5).prop_map(V::M),
        ]
    })
}

/// `validate` accepting a body means a real decoder can read it too.
fn check(d: &[u8]) {
    let parsed = parse(d, DEFAULT_MAX_DEPTH);
    if parsed.is_ok() {
        rmp_serde::from_slice::<serde::de::IgnoredAny>(&d[HEADER_LEN..]).expect("validated body must decode");
    }
}

proptest! {
    #[test]
    fn encoded_values_are_valid(v in value()) {
        let body = rmp_serde::to_vec(&v).unwrap();
        prop_assert_eq!(validate(&body, DEFAULT_MAX_DEPTH), Ok(()));
        prop_assert!(parse(&datagram(1, &body), DEFAULT_MAX_DEPTH).is_ok());
        let request = rpcudp_core::value::encode_request("f", &(&v,)).unwrap();
        prop_assert!(parse(&datagram(0, &request), DEFAULT_MAX_DEPTH).is_ok());
        // Cut short anywhere, it is never accepted.
        let cut = body.len() / 2;
        prop_assert_eq!(validate(&body[..cut], DEFAULT_MAX_DEPTH), Err(Malformed));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
        let _ = validate(&bytes, 8);
    }

    #[test]
    fn random_bodies_never_panic(kind in 0u8..3, body in proptest::collection::vec(any::<u8>(), 1..128)) {
        check(&datagram(kind, &body));
    }

    #[test]
    fn mutated_datagrams_never_panic(which in 0usize..4, mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut d = valid_datagrams().swap_remove(which);
        for m in mutations {
            let len = d.len().max(1);
            match m {
                Mutation::Set(i, b) => if !d.is_empty() { d[i % len] = b },
                Mutation::Insert(i, b) => d.insert(i % (d.len() + 1), b),
                Mutation::Remove(i) => if !d.is_empty() { d.remove(i % len); },
                Mutation::Truncate(i) => d.truncate(i % len),
            }
        }
        check(&d);
    }
}
