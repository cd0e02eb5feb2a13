//! `EventBuf`: the byte log of events the driver batches for its consumer
//! between two wake-ups. Format (little endian, see docs/DESIGN.md):
//!
//! ```text
//! request:   u8 0 | id[20] | addr | u32 body_len | body
//! response:  u8 1 | u64 token | u32 body_len | body
//! error:     u8 2 | u64 token | u32 body_len | body
//! timeout:   u8 3 | u64 token
//! dropped:   u8 4 | u8 reason (DropReason as u8) | addr   (sampled, for logging)
//! socket error: u8 5 | i32 errno   (the socket can no longer be polled)
//! addr:      u8 family (4|6) | ip (4|16 bytes) | u16 port | u32 scope_id (family 6 only)
//! ```

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::address;

use crate::endpoint::Token;
use crate::stats::DropReason;
use crate::wire::{MsgId, ID_LEN};

const REQUEST: u8 = 0;
const RESPONSE: u8 = 1;
const ERROR: u8 = 2;
const TIMEOUT: u8 = 3;
const DROPPED: u8 = 4;
const SOCKET_ERROR: u8 = 5;

#[derive(Default)]
pub struct EventBuf {
    bytes: Vec<u8>,
    events: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Request {
        id: MsgId,
        from: SocketAddr,
        body: &'a [u8],
    },
    Response {
        token: Token,
        body: &'a [u8],
    },
    ErrorReply {
        token: Token,
        body: &'a [u8],
    },
    Timeout {
        token: Token,
    },
    /// A datagram that was dropped (and counted); only a sample reaches the
    /// log, so the consumer can say what is being dropped without a line per datagram.
    Dropped {
        reason: DropReason,
        from: SocketAddr,
    },
    /// The consumer's poll of the socket failed with `errno`.
    SocketError {
        errno: i32,
    },
}

impl EventBuf {
    /// `from` is written as IPv4 when it is an IPv4-mapped IPv6 address, as a
    /// dual-stack socket reports IPv4 peers; an IPv6 sender keeps its scope id
    /// (a link-local peer's interface), not its flow info.
    pub fn push_request(&mut self, id: &MsgId, from: SocketAddr, body: &[u8]) {
        self.bytes.push(REQUEST);
        self.bytes.extend_from_slice(id);
        self.put_addr(from);
        self.put_body(body);
    }

    pub fn push_drop(&mut self, reason: DropReason, from: SocketAddr) {
        self.bytes.push(DROPPED);
        self.bytes.push(reason as u8);
        self.put_addr(from);
        self.events += 1;
    }

    fn put_addr(&mut self, from: SocketAddr) {
        match address::canonical(from) {
            SocketAddr::V4(v4) => {
                self.bytes.push(4);
                self.bytes.extend_from_slice(&v4.ip().octets());
                self.bytes.extend_from_slice(&v4.port().to_le_bytes());
            }
            SocketAddr::V6(v6) => {
                self.bytes.push(6);
                self.bytes.extend_from_slice(&v6.ip().octets());
                self.bytes.extend_from_slice(&v6.port().to_le_bytes());
                self.bytes.extend_from_slice(&v6.scope_id().to_le_bytes());
            }
        }
    }

    pub fn push_response(&mut self, token: Token, body: &[u8]) {
        self.bytes.push(RESPONSE);
        self.bytes.extend_from_slice(&token.to_le_bytes());
        self.put_body(body);
    }

    /// `body` is the whole `[code, message]` msgpack value.
    pub fn push_error(&mut self, token: Token, body: &[u8]) {
        self.bytes.push(ERROR);
        self.bytes.extend_from_slice(&token.to_le_bytes());
        self.put_body(body);
    }

    pub fn push_timeout(&mut self, token: Token) {
        self.bytes.push(TIMEOUT);
        self.bytes.extend_from_slice(&token.to_le_bytes());
        self.events += 1;
    }

    pub fn push_socket_error(&mut self, errno: i32) {
        self.bytes.push(SOCKET_ERROR);
        self.bytes.extend_from_slice(&errno.to_le_bytes());
        self.events += 1;
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Hands out the log, leaving `self` empty.
    pub fn take(&mut self) -> Vec<u8> {
        self.events = 0;
        std::mem::take(&mut self.bytes)
    }

    /// The log so far, for a consumer that copies it out and then calls `clear`
    /// (which keeps the allocation, unlike `take`).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn clear(&mut self) {
        self.events = 0;
        self.bytes.clear();
    }

    /// Decodes a log produced by `take`. Iteration stops early at anything
    /// that is not a whole record.
    pub fn iter(bytes: &[u8]) -> EventIter<'_> {
        EventIter { rest: bytes }
    }

    /// Splits a log into runs of whole records of at most `max` bytes each (a
    /// record larger than `max` is a run of its own), so a consumer can hand
    /// any log over through one buffer of `max` bytes. A malformed tail is
    /// handed over as it is, for the consumer's decoder to stop at.
    pub fn runs(bytes: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
        let mut rest = bytes;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let mut it = EventIter { rest };
            let mut len = 0;
            while !it.rest.is_empty() {
                let before = it.rest.len();
                if it.decode().is_none() {
                    len = rest.len();
                    break;
                }
                let record = before - it.rest.len();
                if len > 0 && len + record > max {
                    break;
                }
                len += record;
            }
            let (run, tail) = rest.split_at(len);
            rest = tail;
            Some(run)
        })
    }

    fn put_body(&mut self, body: &[u8]) {
        // Bodies come from (or go into) one UDP datagram, far below 4 GiB.
        let len = u32::try_from(body.len()).expect("body longer than any datagram");
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(body);
        self.events += 1;
    }
}

pub struct EventIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for EventIter<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let event = self.decode();
        if event.is_none() {
            self.rest = &[];
        }
        event
    }
}

impl<'a> EventIter<'a> {
    fn decode(&mut self) -> Option<Event<'a>> {
        match self.take::<1>()?[0] {
            REQUEST => {
                let id = self.take::<ID_LEN>()?;
                let from = self.addr()?;
                Some(Event::Request {
                    id,
                    from,
                    body: self.body()?,
                })
            }
            RESPONSE => {
                let token = self.token()?;
                Some(Event::Response {
                    token,
                    body: self.body()?,
                })
            }
            ERROR => {
                let token = self.token()?;
                Some(Event::ErrorReply {
                    token,
                    body: self.body()?,
                })
            }
            TIMEOUT => Some(Event::Timeout { token: self.token()? }),
            DROPPED => {
                let reason = *DropReason::ALL.get(usize::from(self.take::<1>()?[0]))?;
                Some(Event::Dropped {
                    reason,
                    from: self.addr()?,
                })
            }
            SOCKET_ERROR => Some(Event::SocketError {
                errno: i32::from_le_bytes(self.take()?),
            }),
            _ => None,
        }
    }

    fn addr(&mut self) -> Option<SocketAddr> {
        match self.take::<1>()?[0] {
            4 => {
                let ip = Ipv4Addr::from(self.take::<4>()?);
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_le_bytes(self.take()?))))
            }
            6 => {
                let ip = Ipv6Addr::from(self.take::<16>()?);
                let port = u16::from_le_bytes(self.take()?);
                let scope = u32::from_le_bytes(self.take()?);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
            }
            _ => None,
        }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn token(&mut self) -> Option<Token> {
        Some(u64::from_le_bytes(self.take()?))
    }

    fn body(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(u32::from_le_bytes(self.take()?)).ok()?;
        let (body, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(body)
    }
}
