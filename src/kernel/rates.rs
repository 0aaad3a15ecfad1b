//! Rolling windows: how much of a renewable resource a principal used lately.
//!
//! Strict allocation, no burst, no debt (SPEC §3): an amount fits if the usage in the
//! last window plus the amount stays within the limit. A [`Window`] is a ring of
//! buckets with a running total, so checking and recording are O(1) (amortised over
//! the buckets that expire) and its memory does not grow with traffic. Buckets are
//! one step wide when the window spans at most [`MAX_BUCKETS`] steps — every action
//! happens at the start of a step, so expiry is then exact — and otherwise
//! `window / MAX_BUCKETS` wide, when usage leaves the window within one bucket of
//! the exact time.
//!
//! A window exists only for a (principal, resource) pair that is limited and has been
//! used: an idle principal costs nothing here.

use std::{collections::BTreeMap, sync::Arc};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The ring slots of the `count` buckets after the newest, oldest first, as at
    /// most two contiguous runs.
    fn after_head(&self, count: u64) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let len = self.buckets.len();
        let start = ((self.head + 1) % self.len()) as usize;
        let end = start + count as usize;
        if end <= len { (start..end, 0..0) } else { (start..len, 0..end - len) }
    }

    /// Drops what has left the window by `now`. The expired buckets are cleared as
    /// contiguous runs, so a long idle gap costs a short memset, not a loop.
    fn advance(&mut self, now: SimTime) {
        let bucket = now.millis() / self.width_ms;
        if bucket <= self.head {
            return;
        }
        let expired = (bucket - self.head).min(self.len());
        if expired == self.len() {
            self.buckets.fill(0);
            self.total = 0;
        } else {
            let (a, b) = self.after_head(expired);
            for run in [a, b] {
                let run = &mut self.buckets[run];
                self.total -= run.iter().sum::<u64>();
                run.fill(0);
            }
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
        let (a, b) = self.after_head(expired);
        self.total - self.buckets[a].iter().sum::<u64>() - self.buckets[b].iter().sum::<u64>()
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
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

    proptest::proptest! {
        /// Against a plain list of records: exact when buckets are one step wide,
        /// within one bucket of the exact answer when they are coarser.
        #[test]
        fn agrees_with_a_list_of_records(
            window_steps in 1u64..600,
            dt in 1u64..2_000,
            ops in proptest::collection::vec((0u64..40, 0u64..1_000), 1..300),
        ) {
            let window = SimTime::from_millis(window_steps * dt);
            let width = bucket_width(window, SimTime::from_millis(dt));
            let mut w = Window::new(window, width);
            let mut records: Vec<(u64, u64)> = Vec::new();
            let mut now = 0u64;
            for (steps, amount) in ops {
                now += steps * dt;
                let within = |from: u64| records.iter().filter(|(t, _)| t + from > now).map(|(_, a)| a).sum::<u64>();
                let seen = w.peek(SimTime::from_millis(now));
                proptest::prop_assert_eq!(seen, w.usage(SimTime::from_millis(now)));
                if width.millis() == dt {
                    proptest::prop_assert_eq!(seen, within(window.millis()));
                    // The wait is until the oldest records that make room have left.
                    let (need, limit) = (amount / 2 + 1, 1_500u64);
                    let usage_at = |at: u64| records.iter().filter(|(t, _)| t + window.millis() > at).map(|(_, a)| a).sum::<u64>();
                    let expected = std::iter::once(now)
                        .chain(records.iter().map(|(t, _)| t + window.millis()).filter(|&at| at > now))
                        .find(|&at| usage_at(at) + need <= limit)
                        .map(|at| SimTime::from_millis(at - now));
                    proptest::prop_assert_eq!(w.wait_for(SimTime::from_millis(now), need, limit), expected);
                } else {
                    let (early, late) = (window.millis() - width.millis(), window.millis() + width.millis());
                    proptest::prop_assert!(within(early) <= seen && seen <= within(late));
                }
                w.record(SimTime::from_millis(now), amount);
                records.push((now, amount));
            }
        }
    }

    #[test]
    fn long_windows_use_coarser_buckets() {
        assert_eq!(bucket_width(secs(60), secs(1)), secs(1));
        assert_eq!(bucket_width(secs(3600), secs(1)), SimTime::from_millis(14_063));
        assert_eq!(Window::new(secs(3600), bucket_width(secs(3600), secs(1))).buckets.len(), 256);
    }
}
