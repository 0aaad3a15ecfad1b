//! Turning a validated scene into entities.
//!
//! Principals are spawned first, then artifacts, each in file order, so creation order
//! (what discovery paginates over) follows the file. Each group is spawned as one
//! batch of its common parts, which lets bevy size its tables exactly (a world of
//! 100 000 principals would otherwise carry up to twice the storage it needs); the
//! optional parts are inserted afterwards on the entities that have them. Disk usage
//! is not read from the file: it is computed from what each principal owns, which
//! keeps the kernel's invariant (`disk_used` = bytes of live owned artifacts) true
//! from the first step.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;

use super::{
    timeline::Timeline,
    validate::{ValidHistory, ValidParts, ValidScene},
};
use crate::kernel::{Quota, Standing};
use crate::{
    economy::{
        debt::{Debt, DebtStatus, Debts},
        governance::Commons,
        kpis::Kpis,
        mint::Mint,
    },
    kernel::{
        EventLog, Held, InvocationStats, Supply,
        activity::{Activity, Habits},
    },
    world::{
        components::{
            AccessContract, Artifact, ArtifactDetails, Capabilities, Executable, Frozen, Grant, Grants, Imports, Loop,
            ModelChoice, Tombstone,
        },
        config::FreezeRule,
        ids::ArtifactId,
        rng::SimRng,
        time::{SimClock, SimTime},
    },
};

/// The parts of an entry that only some entries have.
struct Extras {
    parts: ValidParts,
    capabilities: Option<Capabilities>,
    grants: Option<Grants>,
    model: Option<String>,
    agent: Option<SimTime>,
    frozen: bool,
    deleted: Option<ArtifactId>,
    debt: Option<Debt>,
    commons: Option<Commons>,
}

/// Sets up `world` (which must hold the ecology plugins and nothing else yet) as the
/// scene describes.
pub(crate) fn spawn_scene(world: &mut World, scene: ValidScene) {
    let config = scene.config;
    let freeze = config.freeze;
    world.insert_resource(SimClock::new(config.dt));
    world.insert_resource(SimRng::from_seed(config.seed));
    world.insert_resource(EventLog::with_capacity(config.event_ring));
    // A saved world's scrip is partly minted or granted before this start, and its
    // bids are held from the first moment.
    let held = scene.history.as_ref().map_or(0, ValidHistory::held);
    let total = scene.principals.iter().map(|p| p.scrip).sum::<u64>() + held;
    let (minted, granted) = scene.history.as_ref().map_or((0, 0), |h| (h.minted, h.granted));
    world.insert_resource(Supply::starting(total - minted - granted, minted, granted));
    world.insert_resource(Held::starting(held));
    world.insert_resource(Timeline::new(scene.interventions));
    // The mint pays its scorer from a budget of its own.
    if let Some(mint) = crate::world::ids::lookup(world, crate::economy::services::MINT_ID) {
        world.entity_mut(mint).insert(Standing::new(0, config.llm.scorer_budget_micro_usd, 0));
    }
    world.insert_resource(config);
    crate::kernel::mcp::spawn_gateways(world);

    let mut disk_used: BTreeMap<ArtifactId, u64> = BTreeMap::new();
    for p in &scene.principals {
        *disk_used.entry(p.owner.clone()).or_default() += p.parts.bytes();
    }
    for a in scene.artifacts.iter().filter(|a| !a.deleted) {
        *disk_used.entry(a.owner.clone()).or_default() += a.parts.bytes();
    }

    let mut extras = Vec::with_capacity(scene.principals.len());
    let principals = scene.principals.into_iter().map(|mut p| {
        let standing = Standing::new(p.scrip, p.llm_budget_micro_usd, p.disk_bytes)
            .owning(disk_used.get(&p.id).copied().unwrap_or(0))
            .with_stocks(p.stocks);
        let artifact = artifact(&p.owner, &mut p.parts);
        extras.push(Extras {
            parts: p.parts,
            capabilities: (!p.capabilities.is_empty()).then_some(Capabilities(p.capabilities)),
            grants: grants_of(p.grants),
            model: p.model,
            agent: p.agent,
            frozen: p.frozen,
            deleted: None,
            debt: None,
            commons: p.commons,
        });
        (p.id, artifact, standing, Quota::new(p.quota))
    });
    let entities: Vec<Entity> = world.spawn_batch(principals).collect();
    insert_extras(world, entities, extras, freeze);

    let mut extras = Vec::with_capacity(scene.artifacts.len());
    let artifacts = scene.artifacts.into_iter().map(|mut a| {
        let artifact = artifact(&a.owner, &mut a.parts);
        extras.push(Extras {
            parts: a.parts,
            capabilities: (!a.capabilities.is_empty()).then_some(Capabilities(a.capabilities)),
            grants: grants_of(a.grants),
            model: None,
            agent: None,
            frozen: false,
            deleted: a.deleted.then_some(a.owner),
            debt: a.debt,
            commons: None,
        });
        (a.id, artifact)
    });
    let entities: Vec<Entity> = world.spawn_batch(artifacts).collect();
    insert_extras(world, entities, extras, freeze);
    if let Some(history) = scene.history {
        carry_history(world, history);
    }
}

/// Puts what a saved world carried over into this one: the mint's bids and scores,
/// invocation counts, the code graph, who met whom, habits, the activity counts and
/// where the indicators' window began.
fn carry_history(world: &mut World, history: ValidHistory) {
    world.insert_resource(Mint::carried(history.bids, history.scored, SimTime::ZERO));
    world.insert_resource(InvocationStats::carried(history.invocations));
    world.insert_resource(Kpis::starting(history.window_start));
    // The code graph of the saved world, and what this world's imports add.
    let mut calls = history.calls;
    for (caller, callees) in world.resource::<Activity>().calls() {
        calls.entry(caller.clone()).or_default().extend(callees.iter().cloned());
    }
    // Validation found every agent of a pair in the scene, so this cannot fail.
    if let Ok(activity) = Activity::carried(history.counts, calls, &history.met, world) {
        world.insert_resource(activity);
    }
    for (id, counts) in &history.habits {
        if let Some(entity) = crate::world::ids::lookup(world, id.as_str()) {
            world.entity_mut(entity).insert(Habits::carried(counts));
        }
    }
}

/// Grants carried over from a saved world. They answered requests of that world,
/// so they name none of this one's (request 0), and start with nothing spent.
fn grants_of(grants: BTreeMap<String, Option<u64>>) -> Option<Grants> {
    (!grants.is_empty()).then(|| {
        Grants(
            grants.into_iter().map(|(capability, limit)| (capability, Grant { request: 0, limit, spent: 0 })).collect(),
        )
    })
}

/// The `Artifact` component of an entry; takes the content, description and
/// metadata out of `parts` rather than copying them.
fn artifact(owner: &ArtifactId, parts: &mut ValidParts) -> Artifact {
    let description = std::mem::take(&mut parts.description);
    let metadata = std::mem::take(&mut parts.metadata);
    let has_details = !description.is_empty() || !metadata.is_empty();
    Artifact {
        owner: owner.clone(),
        created_at: SimTime::ZERO,
        updated_at: SimTime::ZERO,
        content: std::mem::take(&mut parts.content).into_boxed_str(),
        details: has_details.then(|| Box::new(ArtifactDetails { description, metadata })),
    }
}

fn insert_extras(world: &mut World, entities: Vec<Entity>, extras: Vec<Extras>, rule: FreezeRule) {
    let mut due_dates = Vec::new();
    // Imports feed the world's code graph, as they do when code is written.
    let mut imported: Vec<(Entity, Vec<ArtifactId>)> = Vec::new();
    for (entity, extra) in entities.into_iter().zip(extras) {
        let parts = extra.parts;
        let plain = parts.interface.is_none()
            && parts.imports.is_empty()
            && parts.code.is_none()
            && parts.contract.is_none()
            && parts.pricing.is_none()
            && extra.capabilities.is_none()
            && extra.grants.is_none()
            && extra.agent.is_none()
            && !extra.frozen
            && extra.deleted.is_none()
            && extra.debt.is_none()
            && extra.commons.is_none();
        if plain {
            continue;
        }
        let mut entity = world.entity_mut(entity);
        if let Some(interface) = parts.interface {
            entity.insert(interface);
        }
        if let Some(code) = parts.code {
            entity.insert(Executable::new(code.into()));
        }
        if !parts.imports.is_empty() {
            imported.push((entity.id(), parts.imports.keys().cloned().collect::<Vec<_>>()));
            entity.insert(Imports(parts.imports));
        }
        if let Some(contract) = parts.contract {
            entity.insert(AccessContract(contract));
        }
        if let Some(pricing) = parts.pricing {
            entity.insert(pricing);
        }
        if let Some(capabilities) = extra.capabilities {
            entity.insert(capabilities);
        }
        if let Some(grants) = extra.grants {
            entity.insert(grants);
        }
        if let Some(model) = extra.model {
            entity.insert(ModelChoice(model));
        }
        if let Some(interval) = extra.agent {
            entity.insert(Loop::new(interval, SimTime::ZERO));
        }
        if extra.frozen {
            // One that the freeze rule would freeze anyway (a saved world's agent that
            // ran dry) is thawed by a rescue, as it was before; otherwise only an
            // `Unfreeze` lifts it.
            let by_rule =
                entity.get::<Standing>().is_some_and(|s| rule.runs_dry(s.scrip(), s.llm_budget_micro_usd()).is_some());
            entity.insert(Frozen::new(SimTime::ZERO, "frozen in the scene".into(), by_rule));
        }
        if let Some(owner) = extra.deleted {
            entity.insert(Tombstone { deleted_at: SimTime::ZERO, deleted_by: owner });
        }
        if let Some(commons) = extra.commons {
            entity.insert(commons);
        }
        if let Some(debt) = extra.debt {
            if let (DebtStatus::Active, Some(due), Some(id)) = (debt.status, debt.due_at, entity.get::<ArtifactId>()) {
                due_dates.push((due, id.clone()));
            }
            entity.insert(debt);
        }
    }
    let mut debts = world.resource_mut::<Debts>();
    for (due, id) in due_dates {
        debts.schedule(due, id);
    }
    for (entity, deps) in imported {
        let Some(id) = world.get::<ArtifactId>(entity).cloned() else { continue };
        let mut activity = world.resource_mut::<Activity>();
        for dep in &deps {
            activity.called(&id, dep);
        }
    }
}
