//! The world: ids, components, simulated time, randomness and the step's phases.
//!
//! One `app.update()` is one step of `dt` simulated seconds, run as five chained
//! phases ([`StepSystems`]). Domain plugins only place their systems in a phase; the
//! order of phases is declared here, once.

pub mod components;
pub mod config;
pub mod ids;
pub mod rng;
pub mod time;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;

/// The phases of a step, in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepSystems {
    /// Results from outside (LLM answers, tool results) and commands (GUI, CLI, scene
    /// interventions) come in.
    Ingest,
    /// Agents whose time has come decide what to do. Nothing in the ledger changes.
    Decide,
    /// The kernel executes intents one at a time, in a seeded order.
    Act,
    /// Scheduled mechanisms: mint, freeze detection, expiry.
    Settle,
    /// Events flushed, indicators sampled; the clock advances last.
    Record,
}

pub(crate) fn plugin(app: &mut App) {
    app.configure_sets(
        Update,
        (
            StepSystems::Ingest,
            StepSystems::Decide,
            StepSystems::Act,
            StepSystems::Settle,
            StepSystems::Record,
            AdvanceClock,
        )
            .chain(),
    )
    .add_systems(Update, time::advance_clock.in_set(AdvanceClock));
    let config = config::Config::default();
    app.insert_resource(time::SimClock::new(config.dt))
        .insert_resource(rng::SimRng::from_seed(config.seed))
        .insert_resource(config);
    ids::plugin(app);
}

/// Serde for maps whose keys are not strings (JSON's only keys): as a list of pairs.
pub(crate) mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?.into_iter().collect())
    }
}

/// After every phase: the step is over, time moves on.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AdvanceClock;
