//! The reflection bound: bytes sent toward a source that has never shown it
//! can receive stay within `allowance + factor x` the bytes received from it.
//! A spoofed request names its victim as its source, so without this bound a
//! node answers a small request with a large reply at someone who never asked
//! (a Kademlia `find_node` answer is about ten times its request).
//!
//! A source shows it can receive by answering one of our calls: the answer
//! carries the call's 160-bit random id, which only the addressee saw. Our own
//! calls are always sent (the consumer chose the destination) but count
//! against the budget, so a reply cannot ride on them. The state lives in a
//! [`SourceTable`]: a source forgotten under a flood of others starts afresh
//! with only the allowance. Sans-IO. src/pure/reflection.ts is its twin.

use std::net::SocketAddr;

use crate::source_table::SourceTable;

#[derive(Clone, Debug, PartialEq)]
pub struct ReflectionConfig {
    /// Bytes any source may be sent before its own bytes count.
    pub allowance: u64,
    /// Bytes that may be sent per byte received, beyond the allowance.
    pub factor: f64,
    /// Sources tracked at once; beyond it the least recently seen is forgotten.
    pub max_sources: usize,
}

#[derive(Clone, Copy)]
struct Budget {
    received: u64,
    sent: u64,
    verified: bool,
}

const FRESH: Budget = Budget {
    received: 0,
    sent: 0,
    verified: false,
};

pub struct ReflectionGuard {
    config: ReflectionConfig,
    table: SourceTable<Budget>,
}

impl ReflectionGuard {
    pub fn new(config: ReflectionConfig) -> Self {
        let table = SourceTable::new(config.max_sources);
        ReflectionGuard { config, table }
    }

    /// A datagram of `bytes` arrived from `from` (whatever it turns out to be).
    pub fn received(&mut self, from: SocketAddr, bytes: usize) {
        let b = self.table.touch(from, || FRESH).0;
        b.received = b.received.saturating_add(bytes as u64);
    }

    /// `from` answered one of our calls: it can receive, and is no longer bounded.
    pub fn verified(&mut self, from: SocketAddr) {
        self.table.touch(from, || FRESH).0.verified = true;
    }

    /// Our own call of `bytes` to `dest`: always sent, always counted.
    pub fn called(&mut self, dest: SocketAddr, bytes: usize) {
        let b = self.table.touch(dest, || FRESH).0;
        b.sent = b.sent.saturating_add(bytes as u64);
    }

    /// Whether a reply of `bytes` may go to `dest`; if so it is counted as sent.
    pub fn may_reply(&mut self, dest: SocketAddr, bytes: usize) -> bool {
        let ReflectionConfig { allowance, factor, .. } = self.config;
        let b = self.table.touch(dest, || FRESH).0;
        if b.verified {
            return true;
        }
        let sent = b.sent.saturating_add(bytes as u64);
        if sent as f64 > allowance as f64 + factor * b.received as f64 {
            return false;
        }
        b.sent = sent;
        true
    }

    /// Sources tracked now (never more than `max_sources`).
    pub fn sources(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn guard(allowance: u64, max_sources: usize) -> ReflectionGuard {
        ReflectionGuard::new(ReflectionConfig {
            allowance,
            factor: 2.0,
            max_sources,
        })
    }

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), port)
    }

    #[test]
    fn an_unverified_source_gets_the_allowance_plus_twice_its_bytes() {
        let mut g = guard(1000, 16);
        let victim = v4(1, 1);
        // 10 requests of 80 bytes, each answered with 750: 800 in, 1000 + 1600 allowed out.
        let mut sent = 0;
        for _ in 0..10 {
            g.received(victim, 80);
            if g.may_reply(victim, 750) {
                sent += 750;
            }
        }
        assert_eq!(sent, 2250, "three replies fit 1000 + 2 x 800 = 2600");
        assert!(sent <= 1000 + 2 * 800);
        // Another port of the same host shares the budget.
        assert!(!g.may_reply(v4(1, 2), 750));
        // Small replies still fit the remainder.
        assert!(g.may_reply(victim, 350));
        assert!(!g.may_reply(victim, 1));
    }

    #[test]
    fn our_own_calls_count_but_are_never_refused() {
        let mut g = guard(100, 16);
        g.called(v4(1, 1), 90);
        assert!(!g.may_reply(v4(1, 1), 20), "90 + 20 > 100");
        assert!(g.may_reply(v4(1, 1), 10));
    }

    #[test]
    fn an_answer_to_our_call_lifts_the_bound() {
        let mut g = guard(0, 16);
        assert!(!g.may_reply(v4(1, 1), 1));
        g.verified(v4(1, 1));
        assert!((0..100).all(|_| g.may_reply(v4(1, 1), 8192)));
        assert!(!g.may_reply(v4(2, 1), 1), "another host is not verified");
    }

    #[test]
    fn a_victim_under_a_flood_of_other_sources_stays_bounded() {
        // The victim's entry is refreshed by every spoofed datagram, so the
        // other sources (a full table's worth, churning) evict each other, not it.
        let mut g = guard(8192, 1000);
        let victim = v4(1, 1);
        let (mut to_victim, mut from_victim) = (0u64, 0u64);
        for i in 0..100_000u32 {
            let other = SocketAddr::new(Ipv4Addr::from(0x0a00_0000 + i).into(), 1);
            g.received(other, 77);
            g.may_reply(other, 750);
            g.received(victim, 77);
            from_victim += 77;
            if g.may_reply(victim, 750) {
                to_victim += 750;
            }
        }
        assert_eq!(g.sources(), 1000);
        assert!(to_victim <= 8192 + 2 * from_victim, "{to_victim} > 8192 + 2 x {from_victim}");
        assert!(to_victim >= 2 * from_victim - 750, "the bound is not stricter than stated: {to_victim}");
    }
}
