//! Turning a validated scene into entities.
//!
//! Principals are spawned first, then artifacts, each in file order, so creation order
//! (what discovery paginates over) follows the file. Disk usage is not read from the
//! file: it is computed from what each principal owns, which keeps the kernel's
//! invariant (`disk_used` = bytes of live owned artifacts) true from the first step.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;

use super::{
    timeline::Timeline,
    validate::{ValidParts, ValidScene},
};
use crate::{
    kernel::{EventLog, Supply},
    world::{
        components::{
            AccessContract, Artifact, ArtifactDetails, Capabilities, Executable, Frozen, Loop, Quota, Standing,
            Tombstone,
        },
        ids::ArtifactId,
        rng::SimRng,
        time::{SimClock, SimTime},
    },
};

/// Sets up `world` (which must hold the ecology plugins and nothing else yet) as the
/// scene describes.
pub(crate) fn spawn_scene(world: &mut World, scene: &ValidScene) {
    let config = scene.config.clone();
    world.insert_resource(SimClock::new(config.dt));
    world.insert_resource(SimRng::from_seed(config.seed));
    world.insert_resource(EventLog::with_capacity(config.event_ring));
    world.insert_resource(Supply { initial: scene.principals.iter().map(|p| p.scrip).sum(), ..Supply::default() });
    world.insert_resource(Timeline::new(scene.interventions.clone()));
    world.insert_resource(config);

    let mut disk_used: BTreeMap<&ArtifactId, u64> = BTreeMap::new();
    for p in &scene.principals {
        *disk_used.entry(&p.owner).or_default() += p.parts.bytes();
    }
    for a in scene.artifacts.iter().filter(|a| !a.deleted) {
        *disk_used.entry(&a.owner).or_default() += a.parts.bytes();
    }

    for p in &scene.principals {
        let standing = Standing {
            scrip: p.scrip,
            llm_budget_micro_usd: p.llm_budget_micro_usd,
            disk_quota: p.disk_bytes,
            disk_used: disk_used.get(&p.id).copied().unwrap_or(0),
            other: p.stocks.clone(),
        };
        let mut entity = world.spawn((p.id.clone(), artifact(&p.owner, &p.parts), standing, Quota { limits: p.quota.clone() }));
        insert_parts(&mut entity, &p.parts);
        if !p.capabilities.is_empty() {
            entity.insert(Capabilities(p.capabilities.clone()));
        }
        if p.agent {
            entity.insert(Loop { wake_at: SimTime::ZERO });
        }
        if p.frozen {
            entity.insert(Frozen { since: SimTime::ZERO, reason: "frozen in the scene".into() });
        }
    }
    for a in &scene.artifacts {
        let mut entity = world.spawn((a.id.clone(), artifact(&a.owner, &a.parts)));
        insert_parts(&mut entity, &a.parts);
        if a.deleted {
            entity.insert(Tombstone { deleted_at: SimTime::ZERO, deleted_by: a.owner.clone() });
        }
    }
}

fn artifact(owner: &ArtifactId, parts: &ValidParts) -> Artifact {
    let has_details = !parts.description.is_empty() || !parts.metadata.is_empty();
    Artifact {
        owner: owner.clone(),
        created_by: owner.clone(),
        created_at: SimTime::ZERO,
        updated_at: SimTime::ZERO,
        content: parts.content.clone().into_boxed_str(),
        details: has_details.then(|| {
            Box::new(ArtifactDetails { description: parts.description.clone(), metadata: parts.metadata.clone() })
        }),
    }
}

fn insert_parts(entity: &mut EntityWorldMut, parts: &ValidParts) {
    if let Some(interface) = &parts.interface {
        entity.insert(interface.clone());
    }
    if let Some(code) = &parts.code {
        entity.insert(Executable::new(code.as_str().into()));
    }
    if let Some(contract) = &parts.contract {
        entity.insert(AccessContract(contract.clone()));
    }
    if let Some(pricing) = parts.pricing {
        entity.insert(pricing);
    }
}
