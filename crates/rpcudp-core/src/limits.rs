//! Per-source inbound rate limit: a token bucket per source, in a
//! [`SourceTable`] bounded to `max_sources`. A source seen afresh starts with
//! a full bucket, so being forgotten costs an honest peer nothing. Sans-IO:
//! time is always an argument. src/pure/limits.ts is the TypeScript twin of
//! this module and must keep the same numbers.

use std::net::SocketAddr;
use std::time::Instant;

use crate::source_table::SourceTable;

#[derive(Clone, Debug, PartialEq)]
pub struct RateConfig {
    /// Tokens added per second to each source's bucket.
    pub requests_per_second: f64,
    /// A bucket's capacity (and its content when a source is first seen).
    pub burst: f64,
    /// Sources tracked at once; beyond it the least recently seen is forgotten.
    pub max_sources: usize,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct SourceLimiter {
    config: RateConfig,
    table: SourceTable<Bucket>,
}

impl SourceLimiter {
    pub fn new(config: RateConfig) -> Self {
        let table = SourceTable::new(config.max_sources);
        SourceLimiter { config, table }
    }

    /// Takes a token from `from`'s bucket; false when it is empty (drop the request).
    pub fn admit(&mut self, now: Instant, from: SocketAddr) -> bool {
        let RateConfig { requests_per_second, burst, .. } = self.config;
        let (b, fresh) = self.table.touch(from, || Bucket { tokens: burst, last: now });
        if !fresh {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * requests_per_second).min(burst);
            b.last = now;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sources tracked now (never more than `max_sources`).
    pub fn sources(&self) -> usize {
        self.table.len()
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

}
