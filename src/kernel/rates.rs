//! Rolling windows: how much of a renewable resource a principal used lately.
//!
//! Strict allocation, no burst, no debt (SPEC §3): an amount fits if the usage in the
//! last window plus the amount stays within the limit. A [`Window`] is a ring of
//! buckets with a running total, so checking and recording are O(1) (amortised over
//! the buckets that expire) and its memory does not grow with traffic. Buckets are
//! one step wide when the window spans at most [`MAX_BUCKETS`] steps — every action
//! happens at the start of a step, so expiry is then exact — and otherwise
//! `window / MAX_BUCKETS` wide, when usage may leave the window up to one bucket
//! early.
//!
//! A window exists only for a (principal, resource) pair that is limited and has been
//! used: an idle principal costs nothing here.

use std::{collections::BTreeMap, sync::Arc};

use bevy_ecs::prelude::*;
use serde::Serialize;

use crate::world::time::SimTime;

/// Buckets in a window, at most.
pub const MAX_BUCKETS: u64 = 256;

/// The width of one bucket for a window of `window`, stepping by `dt`.
pub fn bucket_width(window: SimTime, dt: SimTime) -> SimTime {
    let (window, dt) = (window.millis().max(1), dt.millis().max(1));
    if window.div_ceil(dt) <= MAX_BUCKETS {
        SimTime::from_millis(dt)
    } else {
        SimTime::from_millis(window.div_ceil(MAX_BUCKETS))
    }
}

/// Usage of one resource over a rolling window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    buckets: Box<[u64]>,
    width_ms: u64,
    /// Absolute index (time / width) of the newest bucket.
    head: u64,
    total: u64,
}

impl Window {
    pub fn new(window: SimTime, width: SimTime) -> Self {
        let width_ms = width.millis().max(1);
        let len = window.millis().div_ceil(width_ms).max(1) as usize;
        Self { buckets: vec![0; len].into_boxed_slice(), width_ms, head: 0, total: 0 }
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// Drops what has left the window by `now`.
    fn advance(&mut self, now: SimTime) {
        let bucket = now.millis() / self.width_ms;
        if bucket <= self.head {
            return;
        }
        let expired = (bucket - self.head).min(self.len());
        for i in 1..=expired {
            let slot = ((self.head + i) % self.len()) as usize;
            self.total -= self.buckets[slot];
            self.buckets[slot] = 0;
        }
        self.head = bucket;
    }

    /// Usage within the window ending at `now`, without changing the window (for
    /// public reads).
    pub fn peek(&self, now: SimTime) -> u64 {
        let bucket = now.millis() / self.width_ms;
        if bucket <= self.head {
            return self.total;
        }
        let expired = (bucket - self.head).min(self.len());
        let gone: u64 = (1..=expired).map(|i| self.buckets[((self.head + i) % self.len()) as usize]).sum();
        self.total - gone
    }

    /// Usage within the window ending at `now`.
    pub fn usage(&mut self, now: SimTime) -> u64 {
        self.advance(now);
        self.total
    }

    /// Records `amount` used at `now`.
    pub fn record(&mut self, now: SimTime, amount: u64) {
        self.advance(now);
        let slot = (self.head % self.len()) as usize;
        self.buckets[slot] = self.buckets[slot].saturating_add(amount);
        self.total = self.total.saturating_add(amount);
    }

    /// How long until `amount` more fits under `limit` (zero if it fits now; `None` if
    /// it never will, because it is larger than the limit itself).
    pub fn wait_for(&mut self, now: SimTime, amount: u64, limit: u64) -> Option<SimTime> {
        if amount > limit {
            return None;
        }
        self.advance(now);
        let mut over = (self.total + amount).saturating_sub(limit);
        if over == 0 {
            return Some(SimTime::ZERO);
        }
        // Oldest bucket first: the bucket k steps older than the newest leaves the
        // window `len - k` buckets from the start of the newest.
        for age in (0..self.len()).rev() {
            let slot = ((self.head + self.len() - age) % self.len()) as usize;
            let freed = self.buckets[slot];
            if freed == 0 {
                continue;
            }
            over = over.saturating_sub(freed);
            if over == 0 {
                let leaves_at = (self.head + self.len() - age) * self.width_ms;
                return Some(SimTime::from_millis(leaves_at.saturating_sub(now.millis())));
            }
        }
        None
    }
}

/// A principal's windows, by resource. Added the first time it uses a limited rate.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub(crate) windows: BTreeMap<Arc<str>, Window>,
}

impl Usage {
    /// Usage of `resource` in the window ending at `now` (0 if never used).
    pub fn of(&mut self, resource: &str, now: SimTime) -> u64 {
        self.windows.get_mut(resource).map_or(0, |w| w.usage(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> SimTime {
        SimTime::from_millis(s * 1000)
    }

    #[test]
    fn usage_expires_exactly_after_the_window() {
        let mut w = Window::new(secs(10), secs(1));
        w.record(secs(0), 7);
        assert_eq!(w.usage(secs(9)), 7);
        assert_eq!(w.usage(secs(10)), 0, "a 10-second window frees capacity after 10 seconds");
    }

    #[test]
    fn partial_expiry() {
        let mut w = Window::new(secs(30), secs(1));
        w.record(secs(0), 3);
        w.record(secs(20), 4);
        assert_eq!(w.usage(secs(35)), 4);
        assert_eq!(10 - w.usage(secs(35)), 6);
    }

    #[test]
    fn retry_after_is_when_enough_leaves() {
        let mut w = Window::new(secs(60), secs(1));
        w.record(secs(0), 50);
        w.record(secs(30), 45);
        // 95 used; 10 more needs 5 to leave: the 50 from t=0 leave at t=60.
        assert_eq!(w.wait_for(secs(40), 10, 100), Some(secs(20)));
        assert_eq!(w.wait_for(secs(40), 5, 100), Some(SimTime::ZERO));
        assert_eq!(w.wait_for(secs(40), 101, 100), None, "more than the limit never fits");
        // 55 more overshoots by 50: the 50 from t=0 are enough.
        assert_eq!(w.wait_for(secs(40), 55, 100), Some(secs(20)));
        // 56 more overshoots by 51: both records must go; the 45 leave at t=90.
        assert_eq!(w.wait_for(secs(40), 56, 100), Some(secs(50)));
    }

    #[test]
    fn memory_is_independent_of_traffic() {
        let mut w = Window::new(secs(60), secs(1));
        for t in 0..10_000u64 {
            w.record(SimTime::from_millis(t * 7), 1);
        }
        assert_eq!(w.buckets.len(), 60);
        // At t = 70 s the window holds buckets 11..=70: records from t = 11 s on.
        let expected = (0..10_000u64).filter(|k| k * 7 >= 11_000).count() as u64;
        assert_eq!(w.usage(SimTime::from_millis(70_000)), expected);
    }

    #[test]
    fn long_windows_use_coarser_buckets() {
        assert_eq!(bucket_width(secs(60), secs(1)), secs(1));
        assert_eq!(bucket_width(secs(3600), secs(1)), SimTime::from_millis(14_063));
        assert_eq!(Window::new(secs(3600), bucket_width(secs(3600), secs(1))).buckets.len(), 256);
    }
}
