//! Datagram framing, wire-compatible with Python rpcudp 5.x:
//! one type byte, a 20-byte message id, then one msgpack value.

use crate::msgpack;
use crate::stats::DropReason;
use crate::validate::validate;

pub const ID_LEN: usize = 20;
pub const HEADER_LEN: usize = 1 + ID_LEN;
/// Python rpcudp drops anything shorter: a body is at least one msgpack byte.
pub const MIN_DATAGRAM: usize = HEADER_LEN + 1;
pub const DEFAULT_MAX_BODY: usize = 8192;
/// Largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP header).
pub const MAX_DATAGRAM: usize = 65507;
pub const DEFAULT_MAX_DEPTH: usize = 32;

pub type MsgId = [u8; ID_LEN];

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request = 0,
    Response = 1,
    /// Our extension: a reply carrying `[code, message]`. Python ignores it.
    Error = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Request),
            1 => Some(Kind::Response),
            2 => Some(Kind::Error),
            _ => None,
        }
    }
}

/// Whether `buf` would be parsed as a request (or dropped as too short): the
/// type byte alone, so a limit can refuse it before the cost of validation.
pub fn is_request(buf: &[u8]) -> bool {
    buf.len() >= MIN_DATAGRAM && buf[0] == Kind::Request as u8
}

/// A parsed, fully validated datagram borrowing from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// `body` is the whole `[name, args]` msgpack value.
    Request {
        id: MsgId,
        name: &'a str,
        body: &'a [u8],
    },
    Response {
        id: MsgId,
        body: &'a [u8],
    },
    /// `body` is the whole `[code, message]` msgpack value.
    Error {
        id: MsgId,
        code: &'a str,
        message: &'a str,
        body: &'a [u8],
    },
}

/// Parses and validates a whole datagram; nothing past this point needs to
/// distrust the body's structure.
pub fn parse(buf: &[u8], max_depth: usize) -> Result<Message<'_>, DropReason> {
    if buf.len() < MIN_DATAGRAM {
        return Err(DropReason::TooShort);
    }
    let kind = Kind::from_byte(buf[0]).ok_or(DropReason::UnknownType)?;
    let mut id = [0; ID_LEN];
    id.copy_from_slice(&buf[1..HEADER_LEN]);
    let body = &buf[HEADER_LEN..];
    validate(body, max_depth)?;
    match kind {
        Kind::Request => {
            let name = request_name(body).ok_or(DropReason::BadRequest)?;
            Ok(Message::Request { id, name, body })
        }
        Kind::Response => Ok(Message::Response { id, body }),
        Kind::Error => {
            let (code, message) = error_fields(body).ok_or(DropReason::BadRequest)?;
            Ok(Message::Error {
                id,
                code,
                message,
                body,
            })
        }
    }
}

/// The name of a `[name: str, args: array]` request body.
pub(crate) fn request_name(body: &[u8]) -> Option<&str> {
    let (2, pos) = msgpack::read_array(body, 0)? else {
        return None;
    };
    let (name, pos) = msgpack::read_str(body, pos)?;
    msgpack::read_array(body, pos)?;
    Some(name)
}

/// Code and message of a `[code: str, message: str]` error body.
fn error_fields(body: &[u8]) -> Option<(&str, &str)> {
    let (2, pos) = msgpack::read_array(body, 0)? else {
        return None;
    };
    let (code, pos) = msgpack::read_str(body, pos)?;
    let (message, _) = msgpack::read_str(body, pos)?;
    Some((code, message))
}

/// Appends a datagram (header then `body`) to `out`.
pub fn frame(kind: Kind, id: &MsgId, body: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + body.len());
    out.push(kind as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(body);
}

/// Appends the msgpack error body `[code, message]` to `out`.
pub fn encode_error_body(code: &str, message: &str, out: &mut Vec<u8>) {
    out.push(0x92); // fixarray of two
    msgpack::write_str(code, out);
    msgpack::write_str(message, out);
}
