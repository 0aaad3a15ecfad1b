//! Health indicators of the economy (SPEC §10), sampled every `config.kpis.every_steps`
//! steps as a `KPI_SAMPLE` event and kept as a time series.
//!
//! | indicator | definition |
//! |---|---|
//! | `gini` | Gini coefficient of scrip over all principals (0: equal, → 1: one holds all): `Σᵢ (2i − n − 1)·xᵢ / (n·Σx)` with `x` sorted ascending, `i` from 1 |
//! | `velocity` | scrip moved between principals in the last `config.kpis.window` / scrip supply |
//! | `capital_density` | mean successful invocations of the top 10 % (at least one) of live executable artifacts |
//! | `capital_depth` | longest chain of artifacts whose code invoked artifacts (1 if things are used but none builds on another) |
//! | `reuse` | share of live executable artifacts invoked successfully by someone other than their creator |
//! | `recovery_rate` | thaws in the last window / (principals frozen at its start + freezes in it): the share of those who were frozen at some point of the window that got going again (none when nobody was) |
//! | `specialisation` | 1 − mean pairwise cosine similarity of agents' action mixes (none with fewer than two agents that acted) |
//! | `coordination_density` | share of pairs of agents that ever dealt with each other (paid, transferred, invoked the other's artifact) |
//! | `frozen_share` | frozen agents / agents |
//! | `scrip_supply`, `minted_total` | scrip in existence (held by principals or by the mint for bids), scrip the mint created |
//!
//! Every indicator is computed from counters the kernel keeps as it acts
//! ([`Activity`](crate::kernel::activity::Activity), invocation statistics), so a
//! sample costs time in the size of the world, not of its history.

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernel::Standing;
use crate::{
    kernel::{
        EventKind, InvocationStats, Kernel, Supply,
        activity::{Activity, Habits},
        state,
    },
    world::{
        components::{Executable, Frozen, Loop, System, Tombstone},
        config::Config,
        ids::{ArtifactId, Ids},
        time::{SimClock, SimTime},
    },
};

/// One sample of every indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiSample {
    /// Steps completed when the sample was taken, and the simulated time.
    pub step: u64,
    pub time_secs: f64,
    pub gini: f64,
    pub velocity: f64,
    pub capital_density: f64,
    pub capital_depth: u64,
    pub reuse: f64,
    pub recovery_rate: Option<f64>,
    pub specialisation: Option<f64>,
    pub coordination_density: Option<f64>,
    pub frozen_share: f64,
    pub scrip_supply: u64,
    pub minted_total: u64,
    pub agents: u64,
    pub frozen_agents: u64,
    /// Live artifacts that are not part of the world's machinery.
    pub artifacts: u64,
    /// Successful invocations so far.
    pub invocations: u64,
}

impl KpiSample {
    /// Column names of [`KpiSample::csv_row`].
    pub const CSV_HEADER: &'static str = "step,time_secs,gini,velocity,capital_density,capital_depth,reuse,\
        recovery_rate,specialisation,coordination_density,frozen_share,scrip_supply,minted_total,agents,\
        frozen_agents,artifacts,invocations";

    /// An indicator by its column name in [`KpiSample::CSV_HEADER`] (`None`: no such
    /// column, or undefined in this sample).
    pub fn get(&self, name: &str) -> Option<f64> {
        serde_json::to_value(self).ok()?.get(name)?.as_f64()
    }

    /// The sample as a CSV row (an indicator that is undefined is an empty cell).
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        format!(
            "{},{},{:.6},{:.6},{:.6},{},{:.6},{},{},{},{:.6},{},{},{},{},{},{}",
            self.step,
            self.time_secs,
            self.gini,
            self.velocity,
            self.capital_density,
            self.capital_depth,
            self.reuse,
            opt(self.recovery_rate),
            opt(self.specialisation),
            opt(self.coordination_density),
            self.frozen_share,
            self.scrip_supply,
            self.minted_total,
            self.agents,
            self.frozen_agents,
            self.artifacts,
            self.invocations,
        )
    }
}

/// The counters at one sample, for the rolling indicators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    at: SimTime,
    scrip_moved: u64,
    freezes: u64,
    thaws: u64,
}

/// The samples taken so far.
#[derive(Resource, Debug, Clone, Serialize, Deserialize)]
pub struct Kpis {
    series: Vec<KpiSample>,
    /// Counters at past samples, reaching back one window (and the start of the run).
    marks: VecDeque<Mark>,
}

impl Default for Kpis {
    fn default() -> Self {
        Self { series: Vec::new(), marks: VecDeque::from([Mark::default()]) }
    }
}

impl Kpis {
    pub fn series(&self) -> &[KpiSample] {
        &self.series
    }

    pub fn latest(&self) -> Option<&KpiSample> {
        self.series.last()
    }

    /// The series as CSV with a header row, ending with `last` (the final state) if
    /// the last sample is older.
    pub fn csv(&self, last: &KpiSample) -> String {
        let mut csv = String::with_capacity(160 * (self.series.len() + 2));
        csv.push_str(KpiSample::CSV_HEADER);
        csv.push('\n');
        for sample in self.series.iter().chain((self.series.last().is_none_or(|s| s.step != last.step)).then_some(last))
        {
            csv.push_str(&sample.csv_row());
            csv.push('\n');
        }
        csv
    }

    /// A world carried over from a saved one: its indicators' current window began
    /// with these counts (scrip moved, freezes, thaws).
    pub(crate) fn starting(window_start: (u64, u64, u64)) -> Self {
        let (scrip_moved, freezes, thaws) = window_start;
        Self { series: Vec::new(), marks: VecDeque::from([Mark { at: SimTime::ZERO, scrip_moved, freezes, thaws }]) }
    }

    /// The counts (scrip moved, freezes, thaws) where the window ending at `now`
    /// begins.
    pub(crate) fn window_start(&self, now: SimTime, window: SimTime) -> (u64, u64, u64) {
        let mark = self.baseline(now, window);
        (mark.scrip_moved, mark.freezes, mark.thaws)
    }

    /// The counters as they were one window before `now` (or at the start).
    fn baseline(&self, now: SimTime, window: SimTime) -> Mark {
        let from = now.millis().saturating_sub(window.millis());
        self.marks.iter().rev().find(|m| m.at.millis() <= from).or(self.marks.front()).copied().unwrap_or_default()
    }

    fn remember(&mut self, mark: Mark, window: SimTime) {
        self.marks.push_back(mark);
        // Keep the newest mark at least a window old, and everything after it.
        let from = mark.at.millis().saturating_sub(window.millis());
        while self.marks.len() > 1 && self.marks.get(1).is_some_and(|m| m.at.millis() <= from) {
            self.marks.pop_front();
        }
    }
}

/// Computes every indicator for the world as it is now.
pub fn compute(world: &World) -> KpiSample {
    let clock = world.resource::<SimClock>();
    let now = clock.now();
    let window = world.resource::<Config>().kpis.window;
    let activity = world.resource::<Activity>();
    let stats = world.resource::<InvocationStats>();

    let mut balances = Vec::new();
    let mut agents = 0u64;
    let mut frozen_agents = 0u64;
    let mut habits: Vec<[f64; crate::kernel::activity::Habit::COUNT]> = Vec::new();
    let mut used = Vec::new();
    let mut reused = 0u64;
    let mut executables = 0u64;
    let mut artifacts = 0u64;
    let mut invocations = 0u64;
    for &entity in world.resource::<Ids>().in_creation_order() {
        if world.get::<System>(entity).is_some() || world.get::<Tombstone>(entity).is_some() {
            continue;
        }
        artifacts += 1;
        if let Some(standing) = world.get::<Standing>(entity) {
            balances.push(standing.scrip());
        }
        if world.get::<Loop>(entity).is_some() {
            agents += 1;
            if world.get::<Frozen>(entity).is_some() {
                frozen_agents += 1;
            }
            if let Some(h) = world.get::<Habits>(entity) {
                habits.push(h.counts().map(f64::from));
            }
        }
        if world.get::<Executable>(entity).is_some()
            && let Some(id) = world.get::<ArtifactId>(entity)
        {
            let counts = stats.counts(id.as_str());
            executables += 1;
            invocations += counts.success;
            used.push(counts.success);
            if counts.by_others > 0 {
                reused += 1;
            }
        }
    }

    let supply = state::scrip_supply(world);
    let base = world.get_resource::<Kpis>().map(|k| k.baseline(now, window)).unwrap_or_default();
    let moved = activity.scrip_moved.saturating_sub(base.scrip_moved);
    let freezes = activity.freezes.saturating_sub(base.freezes);
    let thaws = activity.thaws.saturating_sub(base.thaws);

    let chain = activity.longest_chain();
    let capital_depth = if chain == 0 && invocations > 0 { 1 } else { chain };

    KpiSample {
        step: clock.step(),
        time_secs: now.as_secs_f64(),
        gini: gini(&mut balances),
        velocity: if supply == 0 { 0.0 } else { moved as f64 / supply as f64 },
        capital_density: top_decile_mean(&mut used),
        capital_depth,
        reuse: ratio(reused, executables),
        recovery_rate: {
            let frozen_at_start = base.freezes.saturating_sub(base.thaws);
            let were_frozen = frozen_at_start + freezes;
            (were_frozen > 0).then(|| (thaws as f64 / were_frozen as f64).min(1.0))
        },
        specialisation: specialisation(&habits),
        coordination_density: (agents >= 2).then(|| activity.agent_pairs() as f64 / (agents * (agents - 1) / 2) as f64),
        frozen_share: ratio(frozen_agents, agents),
        scrip_supply: supply,
        minted_total: world.resource::<Supply>().minted(),
        agents,
        frozen_agents,
        artifacts,
        invocations,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Gini coefficient of `values` (sorted in place).
pub fn gini(values: &mut [u64]) -> f64 {
    let n = values.len() as f64;
    let total: u128 = values.iter().map(|&v| u128::from(v)).sum();
    if values.is_empty() || total == 0 {
        return 0.0;
    }
    values.sort_unstable();
    let weighted: f64 = values.iter().enumerate().map(|(i, &v)| (2.0 * (i as f64 + 1.0) - n - 1.0) * v as f64).sum();
    weighted / (n * total as f64)
}

/// Mean of the top 10 % (at least one) of `values`.
fn top_decile_mean(values: &mut [u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let k = values.len().div_ceil(10);
    let split = values.len() - k;
    values.select_nth_unstable(split);
    values[split..].iter().sum::<u64>() as f64 / k as f64
}

/// `1 − mean cosine similarity` over all pairs of action mixes. With unit vectors
/// `u`, the sum of all pairwise dot products is `(|Σu|² − m) / 2`, so this is linear
/// in the number of agents.
fn specialisation(mixes: &[[f64; crate::kernel::activity::Habit::COUNT]]) -> Option<f64> {
    let units: Vec<_> = mixes
        .iter()
        .filter_map(|mix| {
            let norm = mix.iter().map(|x| x * x).sum::<f64>().sqrt();
            (norm > 0.0).then(|| mix.map(|x| x / norm))
        })
        .collect();
    let m = units.len() as f64;
    if units.len() < 2 {
        return None;
    }
    let mut sum = [0.0; crate::kernel::activity::Habit::COUNT];
    for unit in &units {
        for (s, x) in sum.iter_mut().zip(unit) {
            *s += x;
        }
    }
    let squared: f64 = sum.iter().map(|x| x * x).sum();
    let mean_similarity = (squared - m) / (m * (m - 1.0));
    Some((1.0 - mean_similarity).clamp(0.0, 1.0))
}

/// Record phase: every `every_steps` steps, a sample goes into the series and onto the
/// event log.
pub(crate) fn sample_kpis(world: &mut World) {
    let config = world.resource::<Config>().kpis;
    let completed = world.resource::<SimClock>().step() + 1;
    if !completed.is_multiple_of(config.every_steps) {
        return;
    }
    let mut sample = compute(world);
    sample.step = completed;
    let activity = world.resource::<Activity>();
    let mark = Mark {
        at: world.resource::<SimClock>().now(),
        scrip_moved: activity.scrip_moved,
        freezes: activity.freezes,
        thaws: activity.thaws,
    };
    let mut kpis = world.resource_mut::<Kpis>();
    kpis.remember(mark, config.window);
    kpis.series.push(sample.clone());
    if let Ok(mut kernel) = Kernel::as_system(world) {
        kernel.emit(EventKind::KpiSampled { kpis: Box::new(sample) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_known_distributions() {
        assert_eq!(gini(&mut []), 0.0);
        assert_eq!(gini(&mut [5, 5, 5, 5]), 0.0);
        // One of four holds everything: (n − 1) / n.
        assert!((gini(&mut [0, 0, 0, 100]) - 0.75).abs() < 1e-12);
        assert!((gini(&mut [1, 2, 3, 4]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn specialisation_is_zero_for_clones_and_one_for_strangers() {
        let mut a = [0.0; crate::kernel::activity::Habit::COUNT];
        let mut b = a;
        a[0] = 3.0;
        b[1] = 5.0;
        assert_eq!(specialisation(&[a]), None);
        assert!(specialisation(&[a, a, a]).unwrap().abs() < 1e-12);
        assert!((specialisation(&[a, b]).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn top_decile_takes_at_least_one() {
        assert_eq!(top_decile_mean(&mut []), 0.0);
        assert_eq!(top_decile_mean(&mut [3, 9, 1]), 9.0);
        let mut twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(top_decile_mean(&mut twenty), 19.5);
    }
}
