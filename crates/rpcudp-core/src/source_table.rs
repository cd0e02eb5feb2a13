//! A table of per-source state (an IPv4 address, or the /64 prefix of an IPv6
//! one, since a single host usually holds a whole /64), bounded to
//! `max_sources` entries, forgetting the least recently seen source first.
//! The per-source rate limit (`limits`) and the reflection bound
//! (`reflection`) each keep one.
//!
//! A flood from spoofed sources cannot grow a table past its bound; it can
//! only push other sources out, and each user chooses what a source seen
//! afresh starts with so that being forgotten costs an honest peer nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// What a source is tracked as: the IPv4 address, or the IPv6 /64 prefix.
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

struct Entry<V> {
    key: SourceKey,
    value: V,
    // The recency list, most recent at `head`.
    prev: u32,
    next: u32,
}

pub struct SourceTable<V> {
    max_sources: usize,
    // SipHash with a random key: sources are chosen by peers, who must not be
    // able to crowd one bucket of the map.
    index: HashMap<SourceKey, u32>,
    entries: Vec<Entry<V>>,
    head: u32,
    tail: u32,
}

impl<V> SourceTable<V> {
    pub fn new(max_sources: usize) -> Self {
        SourceTable {
            // At most 2^32 - 1 slots fit the u32 links; nobody asks for more.
            max_sources: max_sources.clamp(1, NIL as usize - 1),
            index: HashMap::new(),
            entries: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// `from`'s entry, made the most recent; `fresh` makes a new one (then
    /// `true` is returned with it), in a new slot or the least recent one's.
    pub fn touch(&mut self, from: SocketAddr, fresh: impl FnOnce() -> V) -> (&mut V, bool) {
        let key = SourceKey::of(from);
        let (slot, new) = match self.index.get(&key) {
            Some(&slot) => {
                self.unlink(slot);
                (slot, false)
            }
            None => (self.insert(key, fresh()), true),
        };
        self.push_front(slot);
        (&mut self.entries[slot as usize].value, new)
    }

    /// Sources tracked now (never more than `max_sources`).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes held by the table (it is bounded by `max_sources`).
    pub fn heap_bytes(&self) -> usize {
        let buckets = (self.index.capacity() * 8 / 7).next_power_of_two();
        self.entries.capacity() * std::mem::size_of::<Entry<V>>()
            + buckets * (std::mem::size_of::<(SourceKey, u32)>() + 1)
    }

    fn insert(&mut self, key: SourceKey, value: V) -> u32 {
        let entry = Entry {
            key,
            value,
            prev: NIL,
            next: NIL,
        };
        let slot = if self.entries.len() < self.max_sources {
            self.entries.push(entry);
            (self.entries.len() - 1) as u32
        } else {
            let slot = self.tail;
            self.unlink(slot);
            self.index.remove(&self.entries[slot as usize].key);
            self.entries[slot as usize] = entry;
            slot
        };
        self.index.insert(key, slot);
        slot
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let e = &self.entries[slot as usize];
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let e = &mut self.entries[slot as usize];
            e.prev = NIL;
            e.next = old;
        }
        match old {
            NIL => self.tail = slot,
            o => self.entries[o as usize].prev = slot,
        }
        self.head = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), port)
    }

    #[test]
    fn ports_share_an_ipv4_entry_and_an_ipv6_64_is_one_source() {
        let mut t = SourceTable::new(16);
        assert!(t.touch(v4(1, 1), || 0).1);
        assert!(!t.touch(v4(1, 2), || 0).1);
        assert!(t.touch(v4(2, 1), || 0).1);
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.touch(SocketAddr::new(a.into(), 1), || 0).1);
        assert!(!t.touch(SocketAddr::new(b.into(), 1), || 0).1, "same /64");
        assert!(t.touch(SocketAddr::new(c.into(), 1), || 0).1, "another /64");
        let mapped = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().into(), 5);
        assert!(!t.touch(mapped, || 0).1, "an IPv4-mapped address is the IPv4 source");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn the_least_recently_seen_source_is_forgotten_first() {
        let mut t = SourceTable::new(3);
        for a in 1..=3 {
            *t.touch(v4(a, 1), || 0).0 = a;
        }
        t.touch(v4(1, 1), || 0);
        // 2 is now the oldest: the fourth source takes its slot.
        t.touch(v4(4, 1), || 0);
        assert_eq!(t.len(), 3);
        assert_eq!(t.touch(v4(1, 1), || 0), (&mut 1, false), "1 was kept, with its value");
        assert_eq!(t.touch(v4(2, 1), || 0), (&mut 0, true), "2 was forgotten");
    }

    #[test]
    fn a_million_spoofed_sources_stay_within_max_sources() {
        let mut t = SourceTable::new(1000);
        for i in 0..1_000_000u32 {
            t.touch(SocketAddr::new(Ipv4Addr::from(0x0a00_0000 + i).into(), 1), || 0u64);
        }
        assert_eq!(t.len(), 1000);
        assert!(t.entries.capacity() <= 1024);
        assert!(t.heap_bytes() < 200 * 1000, "{}", t.heap_bytes());
    }
}
