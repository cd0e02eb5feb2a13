//! Hashed timing wheel over an intrusive slab, in integer ticks.
//!
//! Entries live in one `Vec` of nodes; every wheel slot is a doubly linked list
//! threaded through those nodes, and freed nodes form a free list. Insert and
//! remove are O(1) and, once the slab has grown to the peak load, allocate
//! nothing. A deadline more than one span (`SLOTS` ticks) ahead shares a slot
//! with nearer deadlines and waits out its rounds there.
//!
//! The slot arrays are allocated by the first insert: a process may hold
//! hundreds of sockets that never call, and each should cost next to nothing.
//! They are given back, with the slab, once the wheel has been empty for a
//! span: a socket that called once and went quiet (most of a DHT's nodes, most
//! of the time) holds nothing for it.

/// 2^11 ticks: with the default 1 ms tick a span is ~2 s, for 16 KiB of list
/// heads and tails per socket that calls. Longer timeouts wait out rounds, and
/// `next_deadline` then answers with a wake-up at the span's end rather than
/// scanning every entry.
pub(crate) const SLOTS: u64 = 1 << 11;
const MASK: u64 = SLOTS - 1;
const NIL: u32 = u32::MAX;

/// Index of a live entry, stable until the entry is removed.
pub(crate) type Key = u32;

struct Node<T> {
    value: T,
    deadline: u64,
    prev: u32,
    /// Next in the slot list, or in the free list once freed.
    next: u32,
}

pub(crate) struct Wheel<T> {
    nodes: Vec<Node<T>>,
    free: u32,
    heads: Box<[u32]>,
    tails: Box<[u32]>,
    /// One bit per slot, set while its list is non-empty, to skip empty slots
    /// 64 at a time.
    occupied: Box<[u64]>,
    /// First tick not yet expired; every live deadline is at or after it.
    now: u64,
    len: usize,
    /// Scratch for `expire`, kept to reuse its capacity: (deadline, order found, key).
    due: Vec<(u64, usize, Key)>,
    /// The cursor when the last entry left.
    idle_since: u64,
}

impl<T: Copy> Wheel<T> {
    pub(crate) fn new() -> Self {
        Wheel {
            nodes: Vec::new(),
            free: NIL,
            heads: Box::default(),
            tails: Box::default(),
            occupied: Box::default(),
            now: 0,
            len: 0,
            due: Vec::new(),
            idle_since: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) const NODE_SIZE: usize = std::mem::size_of::<Node<T>>();

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.nodes.capacity()
    }

    /// Heap bytes held (allocated capacity, not just what is in use).
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<Node<T>>()
            + (self.heads.len() + self.tails.len()) * size_of::<u32>()
            + self.occupied.len() * size_of::<u64>()
            + self.due.capacity() * size_of::<(u64, usize, Key)>()
    }

    /// Adds an entry due at tick `deadline` (a past deadline becomes due at the
    /// next expiry). `None` when the slab has run out of keys.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> Option<Key> {
        if self.heads.is_empty() {
            self.heads = vec![NIL; SLOTS as usize].into_boxed_slice();
            self.tails = vec![NIL; SLOTS as usize].into_boxed_slice();
            self.occupied = vec![0; (SLOTS / 64) as usize].into_boxed_slice();
        }
        let node = Node {
            value,
            deadline: deadline.max(self.now),
            prev: NIL,
            next: NIL,
        };
        let key = if self.free != NIL {
            let key = self.free;
            let slot = &mut self.nodes[key as usize];
            self.free = slot.next;
            *slot = node;
            key
        } else {
            let key = u32::try_from(self.nodes.len()).ok().filter(|&k| k != NIL)?;
            self.nodes.push(node);
            key
        };
        self.link(key);
        self.len += 1;
        Some(key)
    }

    pub(crate) fn get(&self, key: Key) -> &T {
        &self.nodes[key as usize].value
    }

    pub(crate) fn remove(&mut self, key: Key) -> T {
        self.unlink(key);
        self.release(key)
    }

    /// Removes every entry due at or before tick `upto`, passing them to `f`
    /// in deadline order, entries due in the same tick in insertion order.
    pub(crate) fn expire(&mut self, upto: u64, mut f: impl FnMut(T)) {
        if upto < self.now {
            return;
        }
        let end = upto.saturating_add(1);
        // Within one round a slot holds at most one due tick; beyond it, due
        // entries of several rounds are found slot by slot and need sorting.
        let several_rounds = end - self.now > SLOTS;
        let scan_end = end.min(self.now.saturating_add(SLOTS));
        let mut due = std::mem::take(&mut self.due);
        let mut tick = self.now;
        while let Some(t) = self.next_occupied(tick, scan_end) {
            let mut key = self.heads[(t & MASK) as usize];
            while key != NIL {
                let node = &self.nodes[key as usize];
                let (next, deadline) = (node.next, node.deadline);
                if deadline <= upto {
                    self.unlink(key);
                    due.push((deadline, due.len(), key));
                }
                key = next;
            }
            tick = t + 1;
        }
        if several_rounds {
            // (deadline, order found) is unique, and ties share a slot whose list
            // is in insertion order, so this keeps ties in insertion order.
            due.sort_unstable();
        }
        self.now = end;
        for &(_, _, key) in &due {
            f(self.release(key));
        }
        due.clear();
        self.due = due;
    }

    /// The tick from which `release_if_idle` gives the memory back, once the
    /// wheel has been empty for a span; `None` while entries are live or
    /// nothing is held.
    pub(crate) fn idle_release_at(&self) -> Option<u64> {
        (self.len == 0 && !self.heads.is_empty()).then(|| self.idle_since.saturating_add(SLOTS))
    }

    /// Frees the slot arrays and the slab if the wheel has been empty for a
    /// span by tick `upto`, keeping the cursor; true if it did.
    pub(crate) fn release_if_idle(&mut self, upto: u64) -> bool {
        if !self.idle_release_at().is_some_and(|at| upto >= at) {
            return false;
        }
        *self = Wheel {
            now: self.now,
            ..Wheel::new()
        };
        true
    }

    /// When to expire next: the earliest deadline when it lies within one span
    /// of the cursor; otherwise the span's end, which is never later than the
    /// earliest deadline (an entry that is not due in the current round of its
    /// slot is a whole span away or more). `None` when empty. Never a scan of
    /// every entry: at most one slot list per occupied slot of one span.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let end = self.now.saturating_add(SLOTS);
        let mut tick = self.now;
        while let Some(t) = self.next_occupied(tick, end) {
            // Deadlines in this slot are t, or whole rounds later.
            if self.slot_deadlines(t).any(|d| d == t) {
                return Some(t);
            }
            tick = t + 1;
        }
        Some(end)
    }

    /// Removes every entry, passing them to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(T)) {
        let end = self.now.saturating_add(SLOTS);
        let mut tick = self.now;
        while let Some(t) = self.next_occupied(tick, end) {
            let slot = (t & MASK) as usize;
            let mut key = std::mem::replace(&mut self.heads[slot], NIL);
            self.tails[slot] = NIL;
            self.occupied[slot / 64] &= !(1 << (slot % 64));
            while key != NIL {
                let next = self.nodes[key as usize].next;
                f(self.release(key));
                key = next;
            }
            tick = t + 1;
        }
    }

    /// First tick in `[from, end)` whose slot is non-empty; `end - from <= SLOTS`.
    fn next_occupied(&self, from: u64, end: u64) -> Option<u64> {
        if self.occupied.is_empty() {
            return None;
        }
        let mut t = from;
        while t < end {
            let slot = t & MASK;
            // Slot words are aligned to 64 ticks, so bit i of the shifted word is tick t + i.
            let bits = self.occupied[(slot / 64) as usize] >> (slot % 64);
            if bits != 0 {
                let found = t + u64::from(bits.trailing_zeros());
                return (found < end).then_some(found);
            }
            t = (t | 63).checked_add(1)?;
        }
        None
    }

    fn slot_deadlines(&self, tick: u64) -> impl Iterator<Item = u64> + '_ {
        let head = self.heads[(tick & MASK) as usize];
        std::iter::successors((head != NIL).then_some(head), |&k| {
            let next = self.nodes[k as usize].next;
            (next != NIL).then_some(next)
        })
        .map(|k| self.nodes[k as usize].deadline)
    }

    /// Appends `key` to its slot's list.
    fn link(&mut self, key: Key) {
        let slot = (self.nodes[key as usize].deadline & MASK) as usize;
        let tail = self.tails[slot];
        self.nodes[key as usize].prev = tail;
        if tail == NIL {
            self.heads[slot] = key;
            self.occupied[slot / 64] |= 1 << (slot % 64);
        } else {
            self.nodes[tail as usize].next = key;
        }
        self.tails[slot] = key;
    }

    fn unlink(&mut self, key: Key) {
        let Node {
            deadline, prev, next, ..
        } = self.nodes[key as usize];
        let slot = (deadline & MASK) as usize;
        match prev {
            NIL => self.heads[slot] = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tails[slot] = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        if self.heads[slot] == NIL {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
    }

    /// Puts an unlinked node on the free list and returns its value.
    fn release(&mut self, key: Key) -> T {
        let node = &mut self.nodes[key as usize];
        node.next = self.free;
        self.free = key;
        self.len -= 1;
        if self.len == 0 {
            self.idle_since = self.now;
        }
        node.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expire(w: &mut Wheel<u32>, upto: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.expire(upto, |v| out.push(v));
        out
    }

    #[test]
    fn expires_in_deadline_then_insertion_order() {
        let mut w = Wheel::new();
        for (v, d) in [(0, 5), (1, 3), (2, 5), (3, 1), (4, 3)] {
            w.insert(d, v).unwrap();
        }
        assert_eq!(w.next_deadline(), Some(1));
        assert_eq!(expire(&mut w, 0), Vec::<u32>::new());
        assert_eq!(expire(&mut w, 4), vec![3, 1, 4]);
        assert_eq!(w.next_deadline(), Some(5));
        assert_eq!(expire(&mut w, 10), vec![0, 2]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn rounds_keep_order_across_a_long_jump() {
        let mut w = Wheel::new();
        // Same slot, three different rounds, inserted latest first.
        w.insert(2 * SLOTS + 7, 2).unwrap();
        w.insert(SLOTS + 7, 1).unwrap();
        w.insert(7, 0).unwrap();
        w.insert(SLOTS + 7, 10).unwrap();
        w.insert(9, 3).unwrap();
        assert_eq!(w.next_deadline(), Some(7));
        assert_eq!(expire(&mut w, 3 * SLOTS), vec![0, 3, 1, 10, 2]);
    }

    #[test]
    fn far_deadline_waits_out_its_rounds() {
        let mut w = Wheel::new();
        let far = 5 * SLOTS + 3;
        w.insert(far, 1).unwrap();
        // Rounds away: a wake-up at the span's end, never later than the deadline.
        assert_eq!(w.next_deadline(), Some(SLOTS));
        let mut wakeups = 0;
        while let Some(at) = w.next_deadline().filter(|&at| at < far) {
            assert!(expire(&mut w, at).is_empty(), "fired early at {at}");
            wakeups += 1;
        }
        assert_eq!(wakeups, 4, "a wake-up per span until the deadline is within one");
        assert!(expire(&mut w, far - 1).is_empty());
        assert_eq!(w.next_deadline(), Some(far));
        assert_eq!(expire(&mut w, far), vec![1]);
    }

    #[test]
    fn past_deadline_is_due_at_next_expiry() {
        let mut w = Wheel::new();
        assert!(expire(&mut w, 100).is_empty());
        w.insert(3, 1).unwrap();
        assert_eq!(w.next_deadline(), Some(101));
        assert_eq!(expire(&mut w, 101), vec![1]);
    }

    #[test]
    fn removed_entries_never_fire_and_keys_are_reused() {
        let mut w = Wheel::new();
        let a = w.insert(4, 1).unwrap();
        let b = w.insert(4, 2).unwrap();
        let c = w.insert(4, 3).unwrap();
        assert_eq!(w.remove(b), 2);
        assert_eq!(*w.get(a), 1);
        let d = w.insert(4, 4).unwrap();
        assert_eq!(d, b);
        assert_eq!(w.remove(a), 1);
        assert_eq!(w.remove(c), 3);
        assert_eq!(expire(&mut w, 4), vec![4]);
    }

    #[test]
    fn unused_wheel_allocates_nothing() {
        let mut w: Wheel<u32> = Wheel::new();
        assert_eq!(w.heap_bytes(), 0);
        assert!(expire(&mut w, 1_000).is_empty());
        assert_eq!(w.next_deadline(), None);
        w.drain(|_| unreachable!());
        w.insert(1_001, 1).unwrap();
        assert!(w.heap_bytes() > 0);
    }

    #[test]
    fn an_idle_wheel_gives_its_memory_back_after_a_span() {
        let mut w: Wheel<u32> = Wheel::new();
        let k = w.insert(500, 1).unwrap();
        assert_eq!(w.idle_release_at(), None, "not while an entry is live");
        assert!(expire(&mut w, 100).is_empty());
        w.remove(k);
        // empty since tick 101: kept through the span, so a busy socket between calls reallocates nothing
        assert_eq!(w.idle_release_at(), Some(101 + SLOTS));
        assert!(expire(&mut w, 100 + SLOTS).is_empty());
        assert!(!w.release_if_idle(100 + SLOTS));
        assert!(w.heap_bytes() > 0);
        assert!(expire(&mut w, 101 + SLOTS).is_empty());
        assert!(w.release_if_idle(101 + SLOTS));
        assert_eq!(w.heap_bytes(), 0);
        assert!(!w.release_if_idle(u64::MAX), "nothing held, nothing to release");
        assert_eq!(w.idle_release_at(), None);
        // and it works again from where it was
        w.insert(200 + SLOTS, 2).unwrap();
        assert_eq!(w.next_deadline(), Some(200 + SLOTS));
        assert_eq!(expire(&mut w, 200 + SLOTS), vec![2]);
        // emptied by expiry: the span counts from there
        assert_eq!(w.idle_release_at(), Some(201 + 2 * SLOTS));
    }

    #[test]
    fn drain_empties() {
        let mut w = Wheel::new();
        for i in 0..10 {
            w.insert(u64::from(i) * 10_000, i).unwrap();
        }
        let mut out = Vec::new();
        w.drain(|v| out.push(v));
        out.sort_unstable();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
        assert!(expire(&mut w, u64::MAX - 1).is_empty());
    }
}
