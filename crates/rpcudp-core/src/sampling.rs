//! Which dropped datagrams are reported as events (counting is separate and complete).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// At most `PER_SECOND` dropped datagrams a second become events, so a
/// flood of garbage costs the consumer a few log lines, not one per datagram.
#[derive(Default)]
pub(crate) struct DropSamples(Mutex<Option<(Instant, u32)>>);

impl DropSamples {
    const PER_SECOND: u32 = 10;

    pub(crate) fn take(&self, now: Instant) -> bool {
        let mut window = lock(&self.0);
        match &mut *window {
            Some((start, n)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *n += 1;
                *n <= Self::PER_SECOND
            }
            _ => {
                *window = Some((now, 1));
                true
            }
        }
    }
}
