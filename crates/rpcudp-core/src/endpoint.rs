//! The sans-IO protocol state, in the style of quinn-proto: it frames outgoing
//! datagrams into caller buffers, classifies incoming ones, owns the ids and
//! deadlines of outstanding calls and counts everything. It never touches a
//! socket or a clock; time is always an argument.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Error;
use crate::limits::{RateConfig, SourceLimiter};
use crate::msgpack;
use crate::reflection::{ReflectionConfig, ReflectionGuard};
use crate::stats::{DropReason, Stats};
use crate::table::{Call, Table};
use crate::wire::{self, Kind, Message, MsgId, DEFAULT_MAX_BODY, DEFAULT_MAX_DEPTH, HEADER_LEN, MAX_DATAGRAM};

/// Opaque value chosen by the caller of `start_call` and handed back with the
/// call's outcome.
pub type Token = u64;

#[derive(Clone, Debug)]
pub struct Config {
    /// Largest body (msgpack after the 21-byte header) sent or accepted as a
    /// reply; clamped to what fits in one UDP datagram.
    pub max_body: usize,
    /// Deepest container nesting accepted in a received body (clamped to
    /// `validate::DEPTH_LIMIT`).
    pub max_depth: usize,
    pub max_outstanding: usize,
    /// Accept a response only from the address its request was sent to.
    pub check_sender: bool,
    /// Granularity of deadlines; a timeout fires up to one tick late, never early.
    pub tick: Duration,
    /// Per-source token bucket applied to incoming requests; `None`: no limit.
    pub per_source: Option<RateConfig>,
    /// Bound on replies to sources that never answered a call of ours
    /// (`reflection`); `None`: no bound.
    pub reflection: Option<ReflectionConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body: DEFAULT_MAX_BODY,
            max_depth: DEFAULT_MAX_DEPTH,
            max_outstanding: 1_000_000,
            check_sender: true,
            tick: Duration::from_millis(1),
            per_source: None,
            reflection: None,
        }
    }
}

/// A received datagram worth handing to the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// `body` is the whole `[name, args]` msgpack value; reply with `id`.
    Request {
        id: MsgId,
        name: &'a str,
        body: &'a [u8],
    },
    Response {
        token: Token,
        body: &'a [u8],
    },
    /// `body` is the whole `[code, message]` msgpack value.
    ErrorReply {
        token: Token,
        code: &'a str,
        message: &'a str,
        body: &'a [u8],
    },
}

pub struct Endpoint {
    config: Config,
    table: Table,
    // Ids are what makes a response acceptable (and all of it when
    // `check_sender` is off), so they must be unpredictable to a peer that has
    // seen earlier ones: a CSPRNG, not SmallRng, whose state leaks through its
    // output. ChaCha costs nanoseconds per id.
    rng: StdRng,
    stats: Stats,
    limiter: Option<SourceLimiter>,
    guard: Option<ReflectionGuard>,
}

impl Endpoint {
    pub fn new(mut config: Config, now: Instant) -> Self {
        config.max_body = config.max_body.min(MAX_DATAGRAM - HEADER_LEN);
        let table = Table::new(now, config.tick);
        let limiter = config.per_source.clone().map(SourceLimiter::new);
        let guard = config.reflection.clone().map(ReflectionGuard::new);
        Endpoint {
            config,
            table,
            rng: StdRng::from_entropy(),
            stats: Stats::default(),
            limiter,
            guard,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Registers a call and appends its framed request datagram to `out`.
    /// `body` is the whole `[name, args]` msgpack value. The call's outcome is
    /// reported with `token`: a response or error reply from `handle_datagram`,
    /// or a timeout from `expire` at or after `now + timeout`.
    pub fn start_call(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        body: &[u8],
        timeout: Duration,
        token: Token,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.check_body(body.len())?;
        let limit = self.config.max_outstanding;
        if self.table.len() >= limit {
            return Err(Error::TooManyOutstanding { limit });
        }
        let id = self.fresh_id();
        if !self.table.insert(now, timeout, Call { id, token, dest }) {
            return Err(Error::TooManyOutstanding { limit });
        }
        wire::frame(Kind::Request, &id, body, out);
        if let Some(guard) = &mut self.guard {
            guard.called(dest, HEADER_LEN + body.len());
        }
        self.stats.requests_sent += 1;
        Ok(())
    }

    /// Appends the response datagram for request `id` from `dest` to `out`,
    /// unless the reflection bound holds it back: then nothing is appended,
    /// the drop is counted as `Unverified` and false is returned.
    pub fn frame_reply(&mut self, id: &MsgId, dest: SocketAddr, body: &[u8], out: &mut Vec<u8>) -> Result<bool, Error> {
        self.check_body(body.len())?;
        if !self.may_reply(dest, HEADER_LEN + body.len()) {
            return Ok(false);
        }
        wire::frame(Kind::Response, id, body, out);
        self.stats.responses_sent += 1;
        Ok(true)
    }

    /// Appends the error-reply datagram for request `id` from `dest` to `out`,
    /// unless the reflection bound holds it back, as `frame_reply`. The message
    /// (and, only if absurdly long, the code) is cut at a char boundary so the
    /// body fits `max_body`.
    pub fn frame_error(&mut self, id: &MsgId, dest: SocketAddr, code: &str, message: &str, out: &mut Vec<u8>) -> bool {
        // The body is a one-byte array header then two strs.
        let budget = self.config.max_body.saturating_sub(1);
        let code = fit(code, budget.saturating_sub(msgpack::str_header_len(0)));
        let message = fit(
            message,
            budget.saturating_sub(msgpack::str_header_len(code.len()) + code.len()),
        );
        let start = out.len();
        out.push(Kind::Error as u8);
        out.extend_from_slice(id);
        wire::encode_error_body(code, message, out);
        if !self.may_reply(dest, out.len() - start) {
            out.truncate(start);
            return false;
        }
        self.stats.errors_sent += 1;
        true
    }

    /// Classifies one received datagram. `None` means it was dropped, and
    /// counted under its `DropReason`. A matched response or error reply
    /// settles its call at once, so a duplicate of it is unmatched.
    ///
    /// A matched answer shows its sender can receive (`Config::reflection`).
    /// A request beyond its source's rate (`Config::per_source`) is dropped as
    /// `RateLimited` before it is parsed, with no reply: a reply would amplify.
    /// Otherwise time plays no part: a call past its deadline that `expire` has
    /// not reported yet may still be answered, and then never times out.
    pub fn handle_datagram<'a>(&mut self, now: Instant, from: SocketAddr, buf: &'a [u8]) -> Option<Incoming<'a>> {
        self.classify(now, from, buf).ok()
    }

    /// [`Endpoint::handle_datagram`], saying why a dropped datagram was dropped
    /// (it is counted either way).
    pub fn classify<'a>(&mut self, now: Instant, from: SocketAddr, buf: &'a [u8]) -> Result<Incoming<'a>, DropReason> {
        // Every byte counts toward what `from` may be sent, whatever it turns out to be.
        if let Some(guard) = &mut self.guard {
            guard.received(from, buf.len());
        }
        if let Some(limiter) = &mut self.limiter {
            if wire::is_request(buf) && !limiter.admit(now, from) {
                self.stats.count_drop(DropReason::RateLimited);
                return Err(DropReason::RateLimited);
            }
        }
        let incoming = match wire::parse(buf, self.config.max_depth) {
            Ok(Message::Request { id, name, body }) => {
                self.stats.requests_received += 1;
                Ok(Incoming::Request { id, name, body })
            }
            Ok(Message::Response { id, body }) => self.answer(&id, from).map(|token| {
                self.stats.responses_received += 1;
                Incoming::Response { token, body }
            }),
            Ok(Message::Error {
                id,
                code,
                message,
                body,
            }) => self.answer(&id, from).map(|token| {
                self.stats.errors_received += 1;
                Incoming::ErrorReply {
                    token,
                    code,
                    message,
                    body,
                }
            }),
            Err(reason) => Err(reason),
        };
        incoming.inspect_err(|&reason| self.stats.count_drop(reason))
    }

    /// Appends the tokens of the calls whose deadline is at or before `now`,
    /// earliest first (same tick: in the order the calls were started).
    pub fn expire(&mut self, now: Instant, expired: &mut Vec<Token>) {
        let before = expired.len();
        self.table.expire(now, expired);
        self.stats.timeouts += (expired.len() - before) as u64;
    }

    /// When to call `expire` next: never later than the earliest deadline
    /// (rounded up to the tick), and exactly it when it is within one wheel
    /// span (~2 s) of the last expiry; a farther one gets a wake-up per span on
    /// the way, which expires nothing. `None` when nothing is outstanding.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    /// When an `expire` would give back the memory of the call table, which
    /// grew to the peak in flight: once nothing has been outstanding for a
    /// wheel span. `None` while calls are outstanding or nothing is held. A
    /// driver with nothing else to wake for sleeps until then, so the sockets
    /// of a process of 10 000 DHT nodes hold ~24 KB each only while calling.
    pub fn release_deadline(&self) -> Option<Instant> {
        self.table.release_deadline()
    }

    /// Forgets the outstanding call `token` (the caller gave up on it): an answer
    /// to it is then `UnmatchedResponse` and it never times out. False if it
    /// was not outstanding (answered, expired or cancelled already).
    pub fn cancel(&mut self, token: Token) -> bool {
        self.table.cancel(token)
    }

    /// Removes every outstanding call (on close), appending their tokens.
    pub fn cancel_all(&mut self, out: &mut Vec<Token>) {
        self.table.cancel_all(out);
    }

    pub fn outstanding(&self) -> usize {
        self.table.len()
    }

    /// Heap bytes the table of outstanding calls holds (for memory accounting:
    /// this memory is invisible to a JavaScript heap snapshot).
    pub fn table_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sources the per-source limiter tracks now (0 without one); bounded by `max_sources`.
    pub fn limited_sources(&self) -> usize {
        self.limiter.as_ref().map_or(0, SourceLimiter::sources)
    }

    /// Sources the reflection bound tracks now (0 without one); bounded by its `max_sources`.
    pub fn guarded_sources(&self) -> usize {
        self.guard.as_ref().map_or(0, ReflectionGuard::sources)
    }

    /// For drops only the driver sees (send failures, busy handlers).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }

    fn check_body(&self, size: usize) -> Result<(), Error> {
        let limit = self.config.max_body;
        if size > limit {
            return Err(Error::BodyTooLarge { size, limit });
        }
        Ok(())
    }

    fn answer(&mut self, id: &MsgId, from: SocketAddr) -> Result<Token, DropReason> {
        let token = self.table.answer(id, from, self.config.check_sender)?;
        if let Some(guard) = &mut self.guard {
            guard.verified(from);
        }
        Ok(token)
    }

    fn may_reply(&mut self, dest: SocketAddr, bytes: usize) -> bool {
        let Some(guard) = &mut self.guard else { return true };
        if guard.may_reply(dest, bytes) {
            return true;
        }
        self.stats.count_drop(DropReason::Unverified);
        false
    }

    fn fresh_id(&mut self) -> MsgId {
        loop {
            let id: MsgId = self.rng.gen();
            // 160 random bits: a collision with a live id is astronomically
            // unlikely, but it would misroute an answer, so it is checked.
            if !self.table.contains(&id) {
                return id;
            }
        }
    }
}

/// The longest prefix of `s`, cut at a char boundary, whose msgpack str
/// encoding fits in `budget` bytes (possibly empty).
fn fit(s: &str, budget: usize) -> &str {
    let mut len = s.len().min(budget.saturating_sub(1));
    while len > 0 && msgpack::str_header_len(len) + len > budget {
        len -= 1;
    }
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    &s[..len]
}
