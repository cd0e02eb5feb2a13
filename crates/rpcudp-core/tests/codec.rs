//! Framing and parsing round trips, and byte-exact agreement with what Python
//! rpcudp (umsgpack) puts on the wire.

use rpcudp_core::wire::{self, encode_error_body, frame, parse, Kind, Message, DEFAULT_MAX_DEPTH, HEADER_LEN};
use rpcudp_core::{value, MsgId};
use serde::{Deserialize, Serialize};

const ID: MsgId = [7; 20];

fn datagram(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame(kind, &ID, body, &mut out);
    out
}

#[test]
fn frame_layout_is_type_id_body() {
    let d = datagram(Kind::Response, &[0xc0]);
    assert_eq!(d.len(), HEADER_LEN + 1);
    assert_eq!(d[0], 1);
    assert_eq!(&d[1..21], &ID);
    assert_eq!(d[21], 0xc0);
    // frame appends rather than overwrites
    let mut out = vec![0xaa];
    frame(Kind::Error, &ID, &[1], &mut out);
    assert_eq!(out[..2], [0xaa, 2]);
}

#[test]
fn python_request_bytes() {
    // umsgpack.packb(["sum", [1, 2]])
    let body = [0x92, 0xa3, b's', b'u', b'm', 0x92, 0x01, 0x02];
    assert_eq!(value::encode_request("sum", &(1, 2)).unwrap(), body);
    assert_eq!(value::encode_request("sum", &vec![1u8, 2]).unwrap(), body);
    let d = datagram(Kind::Request, &body);
    assert_eq!(
        parse(&d, DEFAULT_MAX_DEPTH),
        Ok(Message::Request {
            id: ID,
            name: "sum",
            body: &body
        })
    );
}

#[test]
fn python_value_bytes_parse_as_responses() {
    let cases: &[&[u8]] = &[
        &[0xc0],                               // None
        &[0xc3],                               // True
        &[0x03],                               // 3
        &[0xff],                               // -1
        &[0xd0, 0xdf],                         // -33
        &[0xcd, 0x01, 0x00],                   // 256
        &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], // 1.5
        &[0xa2, b'h', b'i'],                   // "hi"
        &[0xc4, 0x01, 0x01],                   // b"\x01"
        &[0x81, 0xa1, b'a', 0x01],             // {"a": 1}
        &[0x92, 0x90, 0x80],                   // [[], {}]
        &[
            0xd9, 0x20, b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x',
            b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x',
        ], // "x" * 32
    ];
    for body in cases {
        let d = datagram(Kind::Response, body);
        assert_eq!(
            parse(&d, DEFAULT_MAX_DEPTH),
            Ok(Message::Response { id: ID, body }),
            "{body:02x?}"
        );
    }
    assert_eq!(value::encode_value(&1.5f64).unwrap(), cases[6]);
    assert_eq!(value::encode_value(&"x".repeat(32)).unwrap(), cases[11]);
}

#[test]
fn error_reply_round_trip() {
    let mut body = Vec::new();
    encode_error_body("ERR_X", "went wrong: é", &mut body);
    assert_eq!(body[..7], [0x92, 0xa5, b'E', b'R', b'R', b'_', b'X']);
    let d = datagram(Kind::Error, &body);
    assert_eq!(
        parse(&d, DEFAULT_MAX_DEPTH),
        Ok(Message::Error {
            id: ID,
            code: "ERR_X",
            message: "went wrong: é",
            body: &body
        })
    );
    let (code, message): (String, String) = value::decode_value(&body).unwrap();
    assert_eq!((code.as_str(), message.as_str()), ("ERR_X", "went wrong: é"));
}

#[test]
fn long_error_strings_use_wider_headers() {
    for len in [31, 32, 255, 256, 65_535, 65_536] {
        let message = "m".repeat(len);
        let mut body = Vec::new();
        encode_error_body("c", &message, &mut body);
        let (code, decoded): (String, String) = value::decode_value(&body).unwrap();
        assert_eq!((code.as_str(), decoded.len()), ("c", len));
        let d = datagram(Kind::Error, &body);
        assert!(matches!(parse(&d, DEFAULT_MAX_DEPTH), Ok(Message::Error { message: m, .. }) if m.len() == len));
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    label: String,
    tags: Vec<String>,
    weight: Option<f64>,
}

#[test]
fn rmp_serde_bodies_parse_and_round_trip() {
    let p = Point {
        x: -5,
        label: "p".into(),
        tags: vec!["a".into(), "b".into()],
        weight: Some(0.25),
    };
    let body = value::encode_request("store", &(&p, 42u64, "k")).unwrap();
    let d = datagram(Kind::Request, &body);
    let Ok(Message::Request { name, body: parsed, .. }) = parse(&d, DEFAULT_MAX_DEPTH) else {
        panic!("request did not parse");
    };
    assert_eq!(name, "store");
    let (n, (q, k, s)): (String, (Point, u64, String)) = value::decode_value(parsed).unwrap();
    assert_eq!((n.as_str(), &q, k, s.as_str()), ("store", &p, 42, "k"));

    // structs travel as arrays, as Python expects positional fields
    assert_eq!(value::encode_value(&p).unwrap()[0], 0x94);
    let reply = value::encode_value(&p).unwrap();
    let d = datagram(Kind::Response, &reply);
    assert!(matches!(parse(&d, DEFAULT_MAX_DEPTH), Ok(Message::Response { .. })));
    assert_eq!(value::decode_value::<Point>(&reply).unwrap(), p);
}

#[test]
fn value_errors_are_typed() {
    // rmp-serde writes () as nil, which no peer accepts as arguments.
    assert_eq!(value::encode_request("ping", &()).unwrap_err().code(), "ERR_ENCODE");
    assert_eq!(value::encode_request("ping", &5).unwrap_err().code(), "ERR_ENCODE");
    let e = value::decode_value::<String>(&[0x01]).unwrap_err();
    assert_eq!(e.code(), "ERR_DECODE");
    let e = value::decode_value::<u8>(&[]).unwrap_err();
    assert_eq!(e.code(), "ERR_DECODE");
}

#[test]
fn the_whole_datagram_is_borrowed_not_copied() {
    let body = value::encode_request("ping", &[0u8; 0]).unwrap();
    assert_eq!(body, [0x92, 0xa4, b'p', b'i', b'n', b'g', 0x90]);
    assert_eq!(value::encode_request("ping", &Vec::<u8>::new()).unwrap(), body);
    let d = datagram(Kind::Request, &body);
    let Ok(Message::Request { body: b, .. }) = wire::parse(&d, DEFAULT_MAX_DEPTH) else {
        panic!()
    };
    assert!(std::ptr::eq(b, &d[HEADER_LEN..]));
}
