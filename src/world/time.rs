//! Simulated time.
//!
//! Time is an integer number of milliseconds so that it adds up exactly and compares
//! exactly: a run must give the same world byte for byte, and floating-point sums of
//! `dt` drift. Scenes and reports speak seconds; [`SimTime`] converts at the edge.
//!
//! A step covers the half-open interval `[now, now + dt)`: everything in a step
//! happens at `now`, and the clock advances at the very end of the step.

use std::fmt;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

/// A point in (or span of) simulated time, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);

    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Converts seconds to simulated time, rounding to the millisecond. `None` for
    /// negative, non-finite or absurdly large values.
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        let ms = (secs * 1000.0).round();
        (secs.is_finite() && (0.0..9.0e15).contains(&ms)).then_some(Self(ms as u64))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn saturating_add(self, other: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.as_secs_f64())
    }
}

/// The simulation clock: the current time, the step count and the step length.
#[derive(Resource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClock {
    pub(crate) now: SimTime,
    pub(crate) step: u64,
    pub(crate) dt: SimTime,
}

impl SimClock {
    pub fn new(dt: SimTime) -> Self {
        Self { now: SimTime::ZERO, step: 0, dt }
    }
    /// The time everything in the current step happens at.
    pub fn now(&self) -> SimTime {
        self.now
    }
    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.step
    }
    pub fn dt(&self) -> SimTime {
        self.dt
    }
}

/// The last system of every step.
pub(crate) fn advance_clock(mut clock: ResMut<SimClock>) {
    clock.step += 1;
    clock.now = clock.now.saturating_add(clock.dt);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip() {
        assert_eq!(SimTime::from_secs_f64(1.5), Some(SimTime::from_millis(1500)));
        assert_eq!(SimTime::from_secs_f64(0.0004), Some(SimTime::ZERO));
        assert_eq!(SimTime::from_secs_f64(-1.0), None);
        assert_eq!(SimTime::from_secs_f64(f64::NAN), None);
        assert_eq!(SimTime::from_millis(2500).as_secs_f64(), 2.5);
    }
}
