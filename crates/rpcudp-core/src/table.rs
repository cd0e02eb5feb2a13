//! Outstanding calls: id -> wheel entry, and the clock that turns `Instant`s
//! into wheel ticks.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::endpoint::Token;
use crate::stats::DropReason;
use crate::wheel::{Key, Wheel};
use crate::wire::MsgId;

#[derive(Clone, Copy)]
pub(crate) struct Call {
    pub(crate) id: MsgId,
    pub(crate) token: Token,
    pub(crate) dest: SocketAddr,
}

pub(crate) struct Table {
    clock: Clock,
    wheel: Wheel<Call>,
    ids: HashMap<MsgId, Key, BuildHasherDefault<IdHasher>>,
    // For `cancel`: the caller knows its calls by token, not by id.
    tokens: HashMap<Token, Key, BuildHasherDefault<TokenHasher>>,
}

impl Table {
    pub(crate) fn new(origin: Instant, tick: Duration) -> Self {
        Table {
            clock: Clock::new(origin, tick),
            wheel: Wheel::new(),
            ids: HashMap::default(),
            tokens: HashMap::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }

    pub(crate) fn contains(&self, id: &MsgId) -> bool {
        self.ids.contains_key(id)
    }

    /// Registers `call` (whose id must not be outstanding) to time out at
    /// `now + timeout`. False when the slab has run out of keys.
    pub(crate) fn insert(&mut self, now: Instant, timeout: Duration, call: Call) -> bool {
        let Some(key) = self.wheel.insert(self.clock.deadline(now, timeout), call) else {
            return false;
        };
        self.ids.insert(call.id, key);
        self.tokens.insert(call.token, key);
        true
    }

    /// Removes the call `id` answered from `from` and returns its token. With
    /// `check_sender`, only the address the call went to may answer it; anyone
    /// else is refused and the call stays outstanding.
    pub(crate) fn answer(&mut self, id: &MsgId, from: SocketAddr, check_sender: bool) -> Result<Token, DropReason> {
        let &key = self.ids.get(id).ok_or(DropReason::UnmatchedResponse)?;
        if check_sender && !same_peer(self.wheel.get(key).dest, from) {
            return Err(DropReason::WrongSender);
        }
        self.ids.remove(id);
        let token = self.wheel.remove(key).token;
        forget_token(&mut self.tokens, token, key);
        Ok(token)
    }

    /// Removes the outstanding call started with `token` (the latest, if the
    /// caller reused a token). False if there is none.
    pub(crate) fn cancel(&mut self, token: Token) -> bool {
        let Some(key) = self.tokens.remove(&token) else {
            return false;
        };
        let call = self.wheel.remove(key);
        self.ids.remove(&call.id);
        true
    }

    /// Removes the calls due by `now`, appending their tokens in deadline order.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Token>) {
        let tick = self.clock.tick_of(now);
        let (ids, tokens) = (&mut self.ids, &mut self.tokens);
        self.wheel.expire(tick, |call| {
            if let Some(key) = ids.remove(&call.id) {
                forget_token(tokens, call.token, key);
            }
            out.push(call.token);
        });
        if self.wheel.release_if_idle(tick) {
            // idle for a span: the maps, which grew to the peak in flight, go with the wheel
            self.ids = HashMap::default();
            self.tokens = HashMap::default();
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.clock.instant(self.wheel.next_deadline()?)
    }

    pub(crate) fn release_deadline(&self) -> Option<Instant> {
        self.clock.instant(self.wheel.idle_release_at()?)
    }

    pub(crate) fn cancel_all(&mut self, out: &mut Vec<Token>) {
        self.wheel.drain(|call| out.push(call.token));
        self.ids.clear();
        self.tokens.clear();
    }

    /// Heap bytes held by the table: the wheel's slab and slots, and the id map
    /// (hashbrown: one control byte per bucket besides the entry).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.wheel.heap_bytes() + map_bytes::<MsgId>(self.ids.capacity()) + map_bytes::<Token>(self.tokens.capacity())
    }

    #[cfg(test)]
    pub(crate) fn capacities(&self) -> (usize, usize, usize) {
        (self.wheel.capacity(), self.ids.capacity(), self.tokens.capacity())
    }
}

/// Drops `token`'s entry only if it still points at `key`: a reused token may
/// point at a later call.
fn forget_token(tokens: &mut HashMap<Token, Key, BuildHasherDefault<TokenHasher>>, token: Token, key: Key) {
    if tokens.get(&token) == Some(&key) {
        tokens.remove(&token);
    }
}

/// Heap bytes of a hashbrown map from `K` to `Key` with `capacity`: it keeps
/// 1/8 of its buckets empty and spends a control byte on each.
fn map_bytes<K>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0; // an empty map allocates nothing
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<(K, Key)>() + 1)
}

/// A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses, so
/// addresses are compared in canonical form; flow info and scope are ignored.
fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Converts between `Instant`s and ticks counted from the endpoint's creation.
struct Clock {
    origin: Instant,
    tick_ns: u128,
}

impl Clock {
    fn new(origin: Instant, tick: Duration) -> Self {
        Clock {
            origin,
            tick_ns: tick.as_nanos().max(1),
        }
    }

    /// The tick `now` falls in. Everything due in it or before may expire.
    fn tick_of(&self, now: Instant) -> u64 {
        saturate(self.elapsed_ns(now) / self.tick_ns)
    }

    /// The first tick boundary at or after `now + timeout`, so that expiring at
    /// `tick_of(t) >= deadline` is never early.
    fn deadline(&self, now: Instant, timeout: Duration) -> u64 {
        let ns = self.elapsed_ns(now).saturating_add(timeout.as_nanos());
        saturate(ns.div_ceil(self.tick_ns))
    }

    /// The start of `tick`; `None` past what `Instant` can represent.
    fn instant(&self, tick: u64) -> Option<Instant> {
        let ns = u128::from(tick).checked_mul(self.tick_ns)?;
        self.origin.checked_add(Duration::from_nanos(u64::try_from(ns).ok()?))
    }

    fn elapsed_ns(&self, now: Instant) -> u128 {
        now.saturating_duration_since(self.origin).as_nanos()
    }
}

fn saturate(ticks: u128) -> u64 {
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Our ids are uniformly random, so their first 8 bytes already are a good
/// hash. Peers can only look ids up, never insert them, so they cannot crowd
/// one bucket however they pick the ids they send.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Tokens are chosen by our own caller (often a counter), never by a peer:
/// a multiplicative hash spreads them well enough.
#[derive(Default)]
pub(crate) struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rounds_deadlines_up_and_time_down() {
        let t0 = Instant::now();
        let c = Clock::new(t0, Duration::from_millis(1));
        assert_eq!(c.deadline(t0, Duration::ZERO), 0);
        assert_eq!(c.deadline(t0, Duration::from_micros(1)), 1);
        assert_eq!(c.deadline(t0, Duration::from_millis(1)), 1);
        assert_eq!(c.deadline(t0 + Duration::from_micros(300), Duration::from_millis(2)), 3);
        assert_eq!(c.tick_of(t0 + Duration::from_micros(2999)), 2);
        assert_eq!(c.tick_of(t0 + Duration::from_millis(3)), 3);
        assert_eq!(c.instant(3), Some(t0 + Duration::from_millis(3)));
        assert_eq!(c.deadline(t0, Duration::MAX), u64::MAX);
    }

    #[test]
    fn memory_per_call_stays_under_200_bytes() {
        let t0 = Instant::now();
        let mut table = Table::new(t0, Duration::from_millis(1));
        let dest: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        for n in 1..=100_000u64 {
            let mut id = [0; 20];
            id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            assert!(table.insert(t0, Duration::from_secs(5), Call { id, token: n, dest }));
        }
        let (nodes, ids, tokens) = table.capacities();
        let maps = map_bytes::<MsgId>(ids) + map_bytes::<Token>(tokens);
        let per_call = (nodes * Wheel::<Call>::NODE_SIZE + maps) / table.len();
        assert!(per_call <= 200, "{per_call} bytes per call");
    }

    #[test]
    fn cancel_forgets_a_call_by_token() {
        let t0 = Instant::now();
        let mut table = Table::new(t0, Duration::from_millis(1));
        let dest: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let call = |n: u8| Call {
            id: [n; 20],
            token: u64::from(n),
            dest,
        };
        assert!(table.insert(t0, Duration::from_secs(1), call(1)));
        assert!(table.insert(t0, Duration::from_secs(1), call(2)));
        assert!(table.cancel(1));
        assert!(!table.cancel(1), "only once");
        assert_eq!(table.answer(&[1; 20], dest, true), Err(DropReason::UnmatchedResponse));
        assert_eq!(table.answer(&[2; 20], dest, true), Ok(2));
        assert!(!table.cancel(2), "answered already");
        assert_eq!(table.len(), 0);
        let mut out = Vec::new();
        table.expire(t0 + Duration::from_secs(2), &mut out);
        assert!(out.is_empty(), "a cancelled call never times out");
    }
}
