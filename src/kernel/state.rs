//! Public reads of kernel state: balances, resources, quotas, ownership.
//!
//! The ledger, quotas and heartbeats of every principal are public (SPEC §8), so these
//! take only `&World` and no caller.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;

use super::{KernelError, ledger::ResourceRef};
use crate::kernel::{Quota, Standing};
use crate::world::{
    components::{Artifact, Executable, Imports, Interface, LastAction, Metadata, Tombstone, stored_bytes},
    config::Config,
    ids::{self, ArtifactId, Ids},
    time::SimTime,
};

fn principal(world: &World, id: &str) -> Result<Entity, KernelError> {
    let entity = ids::lookup(world, id).ok_or_else(|| KernelError::not_a_principal(id))?;
    if world.get::<Standing>(entity).is_none() {
        return Err(KernelError::not_a_principal(id));
    }
    Ok(entity)
}

fn standing<'w>(world: &'w World, id: &str) -> Result<&'w Standing, KernelError> {
    principal(world, id).and_then(|e| world.get::<Standing>(e).ok_or_else(|| KernelError::not_a_principal(id)))
}

/// Scrip held by principal `id`.
pub fn balance(world: &World, id: &str) -> Result<u64, KernelError> {
    Ok(standing(world, id)?.scrip())
}

/// How much of a stock resource principal `id` holds (`disk`: the free allocation).
/// For a rate, use [`get_quota`].
pub fn get_resource(world: &World, id: &str, resource: &str) -> Result<u64, KernelError> {
    let resource = ResourceRef::resolve(world.resource::<Config>(), resource)?;
    let standing = standing(world, id)?;
    Ok(match resource {
        ResourceRef::Scrip => standing.scrip(),
        ResourceRef::LlmBudget => standing.llm_budget_micro_usd(),
        ResourceRef::Disk => standing.disk_free(),
        ResourceRef::Stock(name) => standing.stock(&name),
        ResourceRef::Limit(name) => {
            return Err(KernelError::invalid(format!("{name} is a rate; read its limit with get_quota")));
        }
    })
}

/// `get_resource(id, "llm_budget")`, in micro-dollars.
pub fn get_llm_budget(world: &World, id: &str) -> Result<u64, KernelError> {
    get_resource(world, id, "llm_budget")
}

/// Principal `id`'s per-window limit of a rate (`None`: unlimited), or its disk
/// allocation for `disk`.
pub fn get_quota(world: &World, id: &str, resource: &str) -> Result<Option<u64>, KernelError> {
    let entity = principal(world, id)?;
    match ResourceRef::resolve(world.resource::<Config>(), resource)? {
        ResourceRef::Limit(name) => Ok(world.get::<Quota>(entity).and_then(|q| q.limit(&name))),
        ResourceRef::Disk => Ok(world.get::<Standing>(entity).map(|s| s.disk_quota())),
        other => Err(KernelError::invalid(format!("{} is a holding, not a quota", other.name()))),
    }
}

/// Disk bytes an artifact occupies: what it stores (see [`stored_bytes`]) and the
/// bytes charged for its imports ([`Imports`]).
pub fn artifact_bytes(world: &World, entity: Entity) -> u64 {
    let Some(artifact) = world.get::<Artifact>(entity) else { return 0 };
    static NO_METADATA: Metadata = Metadata::new();
    let (description, metadata) = match artifact.details.as_deref() {
        Some(d) => (d.description.as_str(), &d.metadata),
        None => ("", &NO_METADATA),
    };
    stored_bytes(
        &artifact.content,
        world.get::<Executable>(entity).map(|x| &*x.code),
        description,
        metadata,
        world.get::<Interface>(entity),
    ) + world.get::<Imports>(entity).map_or(0, Imports::bytes)
}

/// Every resource a principal holds, by name: `llm_budget`, `disk` (free), `disk_used`
/// and scene-declared stocks.
pub fn resources_of(standing: &Standing) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::from([
        ("llm_budget".to_owned(), standing.llm_budget_micro_usd()),
        ("disk".to_owned(), standing.disk_free()),
        ("disk_used".to_owned(), standing.disk_used()),
    ]);
    out.extend(standing.stocks().map(|(k, v)| (k.to_string(), v)));
    out
}

/// Live artifacts owned by `owner`, in id order.
pub fn owned_artifacts(world: &World, owner: &ArtifactId) -> Vec<ArtifactId> {
    let ids = world.resource::<Ids>();
    let mut owned: Vec<ArtifactId> = ids
        .in_creation_order()
        .iter()
        .filter(|e| world.get::<Tombstone>(**e).is_none())
        .filter(|e| world.get::<Artifact>(**e).is_some_and(|a| &a.owner == owner))
        .filter_map(|e| world.get::<ArtifactId>(*e).cloned())
        .filter(|id| id != owner)
        .collect();
    owned.sort();
    owned
}

/// What a principal has, for the "dinner bell" of a freeze and for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetSummary {
    pub scrip: u64,
    pub resources: BTreeMap<String, u64>,
    pub owned_artifacts: Vec<ArtifactId>,
    pub last_action_at: Option<SimTime>,
}

pub fn asset_summary(world: &World, entity: Entity) -> AssetSummary {
    let standing = world.get::<Standing>(entity).cloned().unwrap_or_default();
    let owned_artifacts = world.get::<ArtifactId>(entity).map(|id| owned_artifacts(world, id)).unwrap_or_default();
    AssetSummary {
        scrip: standing.scrip(),
        resources: resources_of(&standing),
        owned_artifacts,
        last_action_at: world.get::<LastAction>(entity).and_then(|l| l.at()),
    }
}

/// All scrip in existence: what principals hold, and what is held for them.
pub fn scrip_supply(world: &World) -> u64 {
    let ids = world.resource::<Ids>();
    let owned: u64 =
        ids.in_creation_order().iter().filter_map(|&e| world.get::<Standing>(e)).map(Standing::scrip).sum();
    // Scrip bid at the mint is out of its bidders' hands until the auction resolves,
    // and a task's reward out of its poster's until the task is settled, but both
    // still exist.
    owned + world.get_resource::<super::ledger::Held>().map_or(0, super::ledger::Held::total)
}
