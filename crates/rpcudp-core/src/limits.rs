//! Per-source inbound rate limit: a token bucket per source (an IPv4 address,
//! or the /64 prefix of an IPv6 one, since a single host usually holds a whole
//! /64), in a table bounded to `max_sources` entries that forgets the least
//! recently seen source first. Sans-IO: time is always an argument.
//!
//! A flood from spoofed sources cannot grow the table past its bound; it can
//! only push honest sources out, and a source seen afresh starts with a full
//! bucket, so that costs an honest peer nothing. src/pure/limits.ts is the
//! TypeScript twin of this module and must keep the same numbers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

#[derive(Clone, Debug, PartialEq)]
pub struct RateConfig {
    /// Tokens added per second to each source's bucket.
    pub requests_per_second: f64,
    /// A bucket's capacity (and its content when a source is first seen).
    pub burst: f64,
    /// Sources tracked at once; beyond it the least recently seen is forgotten.
    pub max_sources: usize,
}

/// What a source is limited as: the IPv4 address, or the IPv6 /64 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(u32),
    V6Prefix(u64),
}

impl SourceKey {
    pub fn of(from: SocketAddr) -> SourceKey {
        match from.ip().to_canonical() {
            IpAddr::V4(ip) => SourceKey::V4(u32::from(ip)),
            IpAddr::V6(ip) => SourceKey::V6Prefix((u128::from(ip) >> 64) as u64),
        }
    }
}

const NIL: u32 = u32::MAX;

struct Bucket {
    key: SourceKey,
    tokens: f64,
    last: Instant,
    // The recency list, most recent at `head`.
    prev: u32,
    next: u32,
}

pub struct SourceLimiter {
    config: RateConfig,
    // SipHash with a random key: sources are chosen by peers, who must not be
    // able to crowd one bucket of the map.
    index: HashMap<SourceKey, u32>,
    buckets: Vec<Bucket>,
    head: u32,
    tail: u32,
}

impl SourceLimiter {
    pub fn new(mut config: RateConfig) -> Self {
        // At most 2^32 - 1 slots fit the u32 links; nobody asks for more.
        config.max_sources = config.max_sources.clamp(1, NIL as usize - 1);
        SourceLimiter {
            config,
            index: HashMap::new(),
            buckets: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Takes a token from `from`'s bucket; false when it is empty (drop the request).
    pub fn admit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let key = SourceKey::of(from);
        let slot = match self.index.get(&key) {
            Some(&slot) => {
                self.unlink(slot);
                let b = &mut self.buckets[slot as usize];
                let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * self.config.requests_per_second).min(self.config.burst);
                b.last = now;
                slot
            }
            None => self.insert(now, key),
        };
        self.push_front(slot);
        let b = &mut self.buckets[slot as usize];
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sources tracked now (never more than `max_sources`).
    pub fn sources(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes held by the table (it is bounded by `max_sources`).
    pub fn heap_bytes(&self) -> usize {
        let buckets = (self.index.capacity() * 8 / 7).next_power_of_two();
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + buckets * (std::mem::size_of::<(SourceKey, u32)>() + 1)
    }

    /// A fresh full bucket for `key`, in a new slot or the least recent one's.
    fn insert(&mut self, now: Instant, key: SourceKey) -> u32 {
        let bucket = Bucket {
            key,
            tokens: self.config.burst,
            last: now,
            prev: NIL,
            next: NIL,
        };
        let slot = if self.buckets.len() < self.config.max_sources {
            self.buckets.push(bucket);
            (self.buckets.len() - 1) as u32
        } else {
            let slot = self.tail;
            self.unlink(slot);
            self.index.remove(&self.buckets[slot as usize].key);
            self.buckets[slot as usize] = bucket;
            slot
        };
        self.index.insert(key, slot);
        slot
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let b = &self.buckets[slot as usize];
            (b.prev, b.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.buckets[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.buckets[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let b = &mut self.buckets[slot as usize];
            b.prev = NIL;
            b.next = old;
        }
        match old {
            NIL => self.tail = slot,
            o => self.buckets[o as usize].prev = slot,
        }
        self.head = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn limiter(rate: f64, burst: f64, max_sources: usize) -> SourceLimiter {
        SourceLimiter::new(RateConfig {
            requests_per_second: rate,
            burst,
            max_sources,
        })
    }

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), port)
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = limiter(10.0, 5.0, 16);
        let admitted = (0..20).filter(|_| l.admit(t0, v4(1, 1000))).count();
        assert_eq!(admitted, 5);
        // 10 per second: one token per 100 ms, none before.
        assert!(!l.admit(t0 + Duration::from_millis(99), v4(1, 1000)));
        assert!(l.admit(t0 + Duration::from_millis(200), v4(1, 1000)));
        // A long pause refills to the burst, no further.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| l.admit(later, v4(1, 1000))).count(), 5);
    }

    #[test]
    fn sustained_rate_matches_the_configuration() {
        let t0 = Instant::now();
        let mut l = limiter(200.0, 400.0, 16);
        // 50x the rate for 10 simulated seconds: burst + 10 s of tokens get through.
        let mut admitted = 0;
        for i in 0..100_000u64 {
            if l.admit(t0 + Duration::from_micros(i * 100), v4(9, 1)) {
                admitted += 1;
            }
        }
        assert!((2399..=2401).contains(&admitted), "{admitted}");
    }

    #[test]
    fn ports_share_an_ipv4_bucket_and_an_ipv6_64_is_one_source() {
        let t0 = Instant::now();
        let mut l = limiter(1.0, 2.0, 16);
        assert!(l.admit(t0, v4(1, 1)));
        assert!(l.admit(t0, v4(1, 2)));
        assert!(!l.admit(t0, v4(1, 3)));
        assert!(l.admit(t0, v4(2, 1)), "another address has its own bucket");
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.admit(t0, SocketAddr::new(a.into(), 1)));
        assert!(l.admit(t0, SocketAddr::new(b.into(), 1)));
        assert!(!l.admit(t0, SocketAddr::new(a.into(), 1)), "same /64");
        assert!(l.admit(t0, SocketAddr::new(c.into(), 1)), "another /64");
        // An IPv4-mapped address is the IPv4 source.
        let mapped = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().into(), 5);
        assert!(!l.admit(t0, mapped));
    }

    #[test]
    fn the_table_forgets_the_least_recently_seen_source() {
        let t0 = Instant::now();
        let mut l = limiter(1.0, 1.0, 3);
        for a in 1..=3 {
            assert!(l.admit(t0, v4(a, 1)));
        }
        // 1 is seen again (and refused: its bucket is empty), so 2 is now the oldest.
        assert!(!l.admit(t0, v4(1, 1)));
        assert!(l.admit(t0, v4(4, 1)));
        assert_eq!(l.sources(), 3);
        assert!(l.admit(t0, v4(2, 1)), "2 was forgotten, so it starts full");
        assert!(!l.admit(t0, v4(1, 1)), "1 was kept, still empty");
    }

    #[test]
    fn a_million_spoofed_sources_stay_within_max_sources() {
        let t0 = Instant::now();
        let mut l = limiter(1.0, 1.0, 1000);
        for i in 0..1_000_000u32 {
            let from = SocketAddr::new(Ipv4Addr::from(0x0a00_0000 + i).into(), 1);
            assert!(l.admit(t0, from));
        }
        assert_eq!(l.sources(), 1000);
        assert!(l.buckets.capacity() <= 1024);
        assert!(l.heap_bytes() < 200 * 1000, "{}", l.heap_bytes());
    }
}
