//! Access contracts: who may do what to an artifact (SPEC §6).
//!
//! Every world holds the four built-in contracts as artifacts owned by the `kernel`
//! principal, so they can be read and discovered like anything else. Their rules are
//! native code. An artifact names its contract with [`AccessContract`]; one without it
//! is `freeware`. The kernel asks the contract of the *target* about the *immediate
//! caller*.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ErrorCode, KERNEL_ID, KernelError};
use crate::world::{
    components::{AccessContract, Artifact, Quota, Standing, System},
    ids::ArtifactId,
    time::SimTime,
};

/// What a caller wants to do to an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    Write,
    Edit,
    Delete,
    Invoke,
}

/// The contracts every world has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinContract {
    /// Anyone reads and invokes; only the owner writes, edits and deletes.
    Freeware,
    /// Anyone does anything.
    Public,
    /// Only the owner does anything.
    Private,
    /// Only the artifact itself and its owner do anything.
    SelfOwned,
}

impl BuiltinContract {
    pub const ALL: [BuiltinContract; 4] = [Self::Freeware, Self::Public, Self::Private, Self::SelfOwned];

    pub fn id(self) -> &'static str {
        match self {
            Self::Freeware => "freeware",
            Self::Public => "public",
            Self::Private => "private",
            Self::SelfOwned => "self_owned",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Freeware => "Anyone may read and invoke; only the owner may write, edit or delete.",
            Self::Public => "Anyone may read, invoke, write, edit and delete.",
            Self::Private => "Only the owner may read, invoke, write, edit or delete.",
            Self::SelfOwned => "Only the artifact itself and its owner may read, invoke, write, edit or delete.",
        }
    }

    fn allows(self, permission: Permission, is_owner: bool, is_self: bool) -> bool {
        match self {
            Self::Freeware => is_owner || matches!(permission, Permission::Read | Permission::Invoke),
            Self::Public => true,
            Self::Private => is_owner,
            Self::SelfOwned => is_owner || is_self,
        }
    }
}

/// Spawns the `kernel` principal and the built-in contracts. Part of every world.
pub(crate) fn spawn_builtins(world: &mut World) {
    let kernel = ArtifactId::trusted(KERNEL_ID);
    let artifact = |content: &str| Artifact {
        owner: kernel.clone(),
        created_at: SimTime::ZERO,
        updated_at: SimTime::ZERO,
        content: Box::from(content),
        details: None,
    };
    let mut disk_used = 0;
    for contract in BuiltinContract::ALL {
        disk_used += contract.rule().len() as u64;
        world.spawn((ArtifactId::trusted(contract.id()), artifact(contract.rule()), System));
    }
    // The kernel owns the contracts and itself, so it bears their bytes like any owner
    // would; its allocation is exactly that, leaving it nothing to trade.
    let about = "The world itself: owner of the built-in contracts, actor of its mechanisms.";
    disk_used += about.len() as u64;
    let standing = Standing { disk_quota: disk_used, disk_used, ..Standing::default() };
    world.spawn((kernel.clone(), artifact(about), standing, Quota::default(), System));
}

/// Asks the contract of `target` whether `caller` may do `permission` to it.
pub(crate) fn check(
    world: &World,
    caller: &ArtifactId,
    target: Entity,
    permission: Permission,
) -> Result<(), KernelError> {
    let Some(artifact) = world.get::<Artifact>(target) else {
        return Err(KernelError::new(ErrorCode::NotFound, "no such artifact"));
    };
    let target_id = world.get::<ArtifactId>(target);
    let contract_id = world.get::<AccessContract>(target).map_or("freeware", |c| c.0.as_str());
    // Only built-in contracts can be attached (the kernel refuses others), so an
    // unknown id can only be a contract that no longer exists: freeware rules apply.
    let contract = BuiltinContract::from_id(contract_id).unwrap_or(BuiltinContract::Freeware);
    let is_owner = &artifact.owner == caller;
    let is_self = target_id == Some(caller);
    if contract.allows(permission, is_owner, is_self) {
        return Ok(());
    }
    let what = target_id.map_or("the artifact", |id| id.as_str());
    let verb = serde_json::to_value(permission).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Err(KernelError::new(
        ErrorCode::AccessDenied,
        format!("contract {} does not let {caller} {verb} {what}: {}", contract.id(), contract.rule()),
    )
    .with("contract", contract.id())
    .with("permission", verb)
    .with("id", what))
}

/// Whether an id names a contract the kernel can attach.
pub fn is_attachable(id: &str) -> bool {
    BuiltinContract::from_id(id).is_some()
}

/// True for the world's own artifacts, which scenes do not save.
pub fn is_system(world: &World, entity: Entity) -> bool {
    world.get::<System>(entity).is_some()
}
