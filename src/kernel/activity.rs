//! What principals do with each other, counted as it happens.
//!
//! The health indicators (SPEC §10) are ratios over the whole world — how fast scrip
//! moves, how many agent pairs ever dealt with each other, how deep artifacts build on
//! artifacts, how differently agents behave. Computing them from the event log would
//! cost time proportional to history; instead the kernel keeps these counters up to
//! date as it acts, and a sample costs time proportional to the world's size only.

use std::collections::{BTreeMap, BTreeSet};

use bevy_ecs::prelude::*;
use bevy_platform::collections::HashSet;
use serde::{Deserialize, Serialize};

use crate::world::{components::Loop, ids::ArtifactId};

/// Running counters of interaction. Part of the world's state (and its checksum).
#[derive(Resource, Debug, Clone, Default)]
pub struct Activity {
    /// Scrip that moved from one principal to another over the run: transfers, prices
    /// and fees, sales, UBI, loans and repayments. (Minting and escrowing are not
    /// movements between principals.)
    pub scrip_moved: u64,
    /// Agents frozen, and thawed, over the run.
    pub freezes: u64,
    pub thaws: u64,
    /// Thaws brought about by another principal (not by the experimenter).
    pub rescues: u64,
    /// Distinct unordered pairs of agents that dealt with each other.
    agent_pairs: HashSet<(Entity, Entity)>,
    /// For each artifact, the artifacts its code invoked successfully.
    calls: BTreeMap<ArtifactId, BTreeSet<ArtifactId>>,
}

impl Activity {
    /// Records that `a` and `b` dealt with each other, if both are agents.
    pub(crate) fn met(&mut self, world_agents: (bool, bool), a: Entity, b: Entity) {
        if a != b && world_agents.0 && world_agents.1 {
            self.agent_pairs.insert(if a < b { (a, b) } else { (b, a) });
        }
    }

    /// Records that the code of `caller` invoked (or imports) `callee`; whether that
    /// is new.
    pub(crate) fn called(&mut self, caller: &ArtifactId, callee: &ArtifactId) -> bool {
        if caller == callee {
            return false;
        }
        if let Some(callees) = self.calls.get_mut(caller) {
            if callees.contains(callee) {
                return false;
            }
            callees.insert(callee.clone());
        } else {
            self.calls.insert(caller.clone(), BTreeSet::from([callee.clone()]));
        }
        true
    }

    /// Forgets an artifact whose creation was rolled back: the code it called or was
    /// called by, and whom it met.
    pub(crate) fn forget(&mut self, entity: Entity, id: &ArtifactId) {
        self.calls.remove(id);
        self.calls.retain(|_, callees| {
            callees.remove(id);
            !callees.is_empty()
        });
        self.agent_pairs.retain(|&(a, b)| a != entity && b != entity);
    }

    /// Forgets an edge [`Activity::called`] added (its import was rolled back).
    pub(crate) fn forget_call(&mut self, caller: &ArtifactId, callee: &ArtifactId) {
        if let Some(callees) = self.calls.get_mut(caller) {
            callees.remove(callee);
            if callees.is_empty() {
                self.calls.remove(caller);
            }
        }
    }

    /// Distinct pairs of agents that ever dealt with each other.
    pub fn agent_pairs(&self) -> u64 {
        self.agent_pairs.len() as u64
    }

    /// Which artifacts each artifact's code has invoked.
    pub fn calls(&self) -> &BTreeMap<ArtifactId, BTreeSet<ArtifactId>> {
        &self.calls
    }

    /// The longest chain of artifacts invoking artifacts, counted in artifacts (a tool
    /// calling a tool is 2). A cycle counts each artifact in it once.
    pub fn longest_chain(&self) -> u64 {
        // Depth-first with memo; an artifact on the current path is a cycle, cut there.
        fn depth<'a>(
            calls: &'a BTreeMap<ArtifactId, BTreeSet<ArtifactId>>,
            node: &'a ArtifactId,
            on_path: &mut BTreeSet<&'a ArtifactId>,
            memo: &mut BTreeMap<&'a ArtifactId, u64>,
        ) -> u64 {
            if let Some(&known) = memo.get(node) {
                return known;
            }
            on_path.insert(node);
            let mut deepest = 0;
            for next in calls.get(node).into_iter().flatten() {
                if !on_path.contains(next) {
                    deepest = deepest.max(depth(calls, next, on_path, memo));
                }
            }
            on_path.remove(node);
            memo.insert(node, deepest + 1);
            deepest + 1
        }
        let mut memo = BTreeMap::new();
        let mut on_path = BTreeSet::new();
        self.calls.keys().map(|node| depth(&self.calls, node, &mut on_path, &mut memo)).max().unwrap_or(0)
    }

    /// What the checksum sees: everything but entity numbers.
    pub(crate) fn digest_view(&self) -> impl Serialize + '_ {
        (self.scrip_moved, self.freezes, self.thaws, self.agent_pairs.len() as u64, &self.calls)
    }
}

/// What a checkpoint keeps of [`Activity`]: its pairs by id, not by entity.
#[derive(Serialize, Deserialize)]
pub(crate) struct ActivityState<'a> {
    scrip_moved: u64,
    freezes: u64,
    thaws: u64,
    rescues: u64,
    agent_pairs: Vec<(ArtifactId, ArtifactId)>,
    calls: std::borrow::Cow<'a, BTreeMap<ArtifactId, BTreeSet<ArtifactId>>>,
}

impl Activity {
    /// The pairs of agents that dealt with each other, by id, sorted.
    pub(crate) fn pairs(&self, world: &World) -> Vec<(ArtifactId, ArtifactId)> {
        let id = |e: Entity| world.get::<ArtifactId>(e).cloned();
        let mut agent_pairs: Vec<(ArtifactId, ArtifactId)> = self
            .agent_pairs
            .iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (id(a)?, id(b)?);
                Some(if a < b { (a, b) } else { (b, a) })
            })
            .collect();
        agent_pairs.sort();
        agent_pairs
    }

    pub(crate) fn state(&self, world: &World) -> ActivityState<'_> {
        let agent_pairs = self.pairs(world);
        ActivityState {
            scrip_moved: self.scrip_moved,
            freezes: self.freezes,
            thaws: self.thaws,
            rescues: self.rescues,
            agent_pairs,
            calls: std::borrow::Cow::Borrowed(&self.calls),
        }
    }

    /// What a saved world carried over: its counts, which code calls which, and who
    /// dealt with whom (found again in `world`).
    pub(crate) fn carried(
        counts: (u64, u64, u64, u64),
        calls: BTreeMap<ArtifactId, BTreeSet<ArtifactId>>,
        pairs: &[(ArtifactId, ArtifactId)],
        world: &World,
    ) -> Result<Self, String> {
        let (scrip_moved, freezes, thaws, rescues) = counts;
        let state = ActivityState {
            scrip_moved,
            freezes,
            thaws,
            rescues,
            agent_pairs: pairs.to_vec(),
            calls: std::borrow::Cow::Owned(calls),
        };
        Self::from_state(state, world)
    }

    /// The counters a checkpoint kept, with pairs found again in `world`.
    pub(crate) fn from_state(state: ActivityState<'_>, world: &World) -> Result<Self, String> {
        let entity = |id: &ArtifactId| {
            crate::world::ids::lookup(world, id.as_str()).ok_or(format!("agent {id} of a pair is not in the world"))
        };
        let mut agent_pairs = HashSet::default();
        for (a, b) in &state.agent_pairs {
            let (a, b) = (entity(a)?, entity(b)?);
            agent_pairs.insert(if a < b { (a, b) } else { (b, a) });
        }
        Ok(Self {
            scrip_moved: state.scrip_moved,
            freezes: state.freezes,
            thaws: state.thaws,
            rescues: state.rescues,
            agent_pairs,
            calls: state.calls.into_owned(),
        })
    }
}

/// Whether an entity runs a loop (is an agent).
pub(crate) fn is_agent(world: &World, entity: Entity) -> bool {
    world.get::<Loop>(entity).is_some()
}

/// What kind of thing an action did, for telling agents' habits apart. The world's
/// services are invoked like any artifact, but using the mint is a different habit
/// from using a tool, so each service is a kind of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Habit {
    Read,
    Write,
    Edit,
    Delete,
    Invoke,
    Transfer,
    Spawn,
    Query,
    Noop,
    Bid,
    Trade,
    Lend,
    Govern,
    Think,
    /// Subscribing to events, taking locks.
    Coordinate,
}

impl Habit {
    pub const COUNT: usize = 15;
    /// Every kind, in the order of [`Habits::counts`].
    pub const ALL: [Habit; Habit::COUNT] = [
        Habit::Read,
        Habit::Write,
        Habit::Edit,
        Habit::Delete,
        Habit::Invoke,
        Habit::Transfer,
        Habit::Spawn,
        Habit::Query,
        Habit::Noop,
        Habit::Bid,
        Habit::Trade,
        Habit::Lend,
        Habit::Govern,
        Habit::Think,
        Habit::Coordinate,
    ];
}

/// How often a principal did each kind of thing. Added on its first action.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Habits(pub(crate) [u32; Habit::COUNT]);

impl Habits {
    pub(crate) fn count(&mut self, habit: Habit) {
        let slot = &mut self.0[habit as usize];
        *slot = slot.saturating_add(1);
    }

    pub fn counts(&self) -> &[u32; Habit::COUNT] {
        &self.0
    }

    /// Each kind of thing with how often it was done.
    pub fn by_habit(&self) -> impl Iterator<Item = (Habit, u32)> + '_ {
        Habit::ALL.iter().copied().zip(self.0.iter().copied())
    }

    /// Counts carried over from a saved world.
    pub(crate) fn carried(counts: &BTreeMap<Habit, u32>) -> Self {
        let mut habits = Self::default();
        for (&habit, &n) in counts {
            habits.0[habit as usize] = n;
        }
        habits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ArtifactId {
        ArtifactId::parse(s).unwrap()
    }

    #[test]
    fn chains_are_counted_in_artifacts_and_cycles_once() {
        let mut activity = Activity::default();
        assert_eq!(activity.longest_chain(), 0);
        activity.called(&id("a"), &id("b"));
        assert_eq!(activity.longest_chain(), 2);
        activity.called(&id("b"), &id("c"));
        activity.called(&id("x"), &id("c"));
        assert_eq!(activity.longest_chain(), 3);
        activity.called(&id("c"), &id("a"));
        assert_eq!(activity.longest_chain(), 3, "a cycle a→b→c→a counts each once");
        activity.called(&id("a"), &id("a"));
        assert_eq!(activity.calls()[&id("a")].len(), 1, "calling itself is no dependency");
    }
}
