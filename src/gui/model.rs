//! What the window knows of the world: everything the session has told it, kept
//! between frames.
//!
//! Updates carry only what is new (events, samples, resolutions) plus fresh tables,
//! so the model appends and replaces; a new world (its `generation` changes) starts
//! it afresh. The event list is a ring: the window holds at most [`MAX_EVENTS`].

use std::{collections::VecDeque, sync::Arc};

use crate::{
    economy::{capabilities::CapabilityRequest, mint::Resolution},
    kernel::Event,
    run::interview::Interview,
};

use super::session::{ArtifactRow, ChartPoint, Detail, Notice, PrincipalRow, Status, Update};

/// Events the window keeps (the newest).
pub const MAX_EVENTS: usize = 100_000;

/// Resolutions the mint panel keeps.
const MAX_RESOLUTIONS: usize = 10_000;

/// Status-bar lines kept.
const MAX_NOTICES: usize = 50;

/// Chart points kept: when full, every other one is dropped, so the charts cover the
/// whole run at half the resolution and a frame's cost stays bounded however long it
/// runs.
pub const MAX_CHART_POINTS: usize = 4096;

#[derive(Default)]
pub struct Model {
    pub status: Option<Status>,
    pub chart: Vec<ChartPoint>,
    pub events: VecDeque<Event>,
    /// Events the window never received (bursts larger than an update).
    pub events_skipped: u64,
    /// Counts every change of `events`, so panels can cache what they derive.
    pub events_version: u64,
    pub resolutions: VecDeque<Resolution>,
    pub principals: Arc<Vec<PrincipalRow>>,
    /// Counts every new principals table.
    pub principals_version: u64,
    pub artifacts: Arc<Vec<ArtifactRow>>,
    pub artifacts_version: u64,
    pub detail: Option<Box<Detail>>,
    pub notices: VecDeque<Notice>,
    /// Every capability request of the run, in id order.
    pub capabilities: Arc<Vec<CapabilityRequest>>,
    /// Every interview of this world, oldest first.
    pub interviews: Vec<Interview>,
}

impl Model {
    /// Takes in one update.
    pub fn apply(&mut self, update: Update) {
        let new_world = self.status.as_ref().is_none_or(|s| s.generation != update.status.generation);
        if new_world {
            let notices = std::mem::take(&mut self.notices);
            let versions = (self.events_version, self.principals_version, self.artifacts_version);
            *self = Self {
                notices,
                events_version: versions.0 + 1,
                principals_version: versions.1 + 1,
                artifacts_version: versions.2 + 1,
                ..Self::default()
            };
        }
        self.status = Some(update.status);
        self.push_chart(update.chart);
        if !update.events.is_empty() {
            self.events.extend(update.events);
            let excess = self.events.len().saturating_sub(MAX_EVENTS);
            self.events.drain(..excess);
            self.events_version += 1;
        }
        self.events_skipped += update.events_skipped;
        self.resolutions.extend(update.resolutions);
        let excess = self.resolutions.len().saturating_sub(MAX_RESOLUTIONS);
        self.resolutions.drain(..excess);
        if let Some(rows) = update.principals {
            self.principals = rows;
            self.principals_version += 1;
        }
        if let Some(rows) = update.artifacts {
            self.artifacts = rows;
            self.artifacts_version += 1;
        }
        self.detail = update.detail;
        if let Some(requests) = update.capabilities {
            self.capabilities = requests;
        }
        self.interviews.extend(update.interviews);
        self.notices.extend(update.messages);
        let excess = self.notices.len().saturating_sub(MAX_NOTICES);
        self.notices.drain(..excess);
    }

    /// Appends chart points, thinning the chart whenever it outgrows
    /// [`MAX_CHART_POINTS`].
    pub fn push_chart(&mut self, points: impl IntoIterator<Item = ChartPoint>) {
        for point in points {
            self.chart.push(point);
            if self.chart.len() > MAX_CHART_POINTS {
                thin(&mut self.chart);
            }
        }
    }

    /// Simulated seconds now (0 before the first update).
    pub fn now_secs(&self) -> f64 {
        self.status.as_ref().map_or(0.0, |s| s.now_secs)
    }
}

/// Halves `points`, keeping the first and the last.
fn thin<T>(points: &mut Vec<T>) {
    let last = points.len().saturating_sub(1);
    let mut index = 0;
    points.retain(|_| {
        let keep = index % 2 == 0 || index == last;
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_both_ends_and_halves_the_rest() {
        let mut points: Vec<u32> = (0..10).collect();
        thin(&mut points);
        assert_eq!(points, vec![0, 2, 4, 6, 8, 9]);
        let mut odd: Vec<u32> = (0..5).collect();
        thin(&mut odd);
        assert_eq!(odd, vec![0, 2, 4]);
    }
}
