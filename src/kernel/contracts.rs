//! Access contracts: who may do what to an artifact (SPEC §6).
//!
//! Every world holds the four built-in contracts as artifacts owned by the `kernel`
//! principal, so they can be read and discovered like anything else; their rules are
//! native code. Any executable artifact whose code exports
//! `check_permission(request)` can be a contract too: it runs in the sandbox, may look
//! at the world and invoke other code but not transfer or write, and answers
//! `{allowed, reason, scrip_cost}`. Throwing, running out of time or answering
//! anything else denies. A contract that no longer exists falls back to `freeware`,
//! and says so in a `CONTRACT_FALLBACK` event. Checks nest at most
//! `max_contract_depth` deep.
//!
//! An artifact names its contract with [`AccessContract`]; one without it is
//! `freeware`. The kernel asks the contract of the *target* about the *immediate
//! caller*.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ErrorCode, EventKind, KERNEL_ID, Kernel, KernelError, exec::CodeCall};
use crate::kernel::{Quota, Standing};
use crate::{
    sandbox::{
        Sandbox,
        protocol::{CallMode, Entry},
    },
    world::{
        components::{AccessContract, Artifact, Executable, System, Tombstone},
        ids::{self, ArtifactId},
        time::SimTime,
    },
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
    let standing = Standing::new(0, 0, disk_used).owning(disk_used);
    world.spawn((kernel.clone(), artifact(about), standing, Quota::default(), System));
}

/// Applies a built-in contract's rule: may `caller` do `permission` to `target`?
fn check_builtin(
    world: &World,
    contract: BuiltinContract,
    caller: &ArtifactId,
    target: Entity,
    permission: Permission,
) -> Result<(), KernelError> {
    let Some(artifact) = world.get::<Artifact>(target) else {
        return Err(KernelError::new(ErrorCode::NotFound, "no such artifact"));
    };
    let target_id = world.get::<ArtifactId>(target);
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

/// Whether `id` names a contract that can be attached: a built-in, or an artifact
/// with code that is not deleted.
pub fn is_attachable(world: &World, id: &str) -> bool {
    BuiltinContract::from_id(id).is_some()
        || ids::lookup(world, id)
            .is_some_and(|e| world.get::<Executable>(e).is_some() && world.get::<Tombstone>(e).is_none())
}

/// What a contract's `check_permission` answered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    allowed: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    scrip_cost: Option<u64>,
}

fn denied(contract: &str, permission: Permission, caller: &ArtifactId, target: &str, reason: &str) -> KernelError {
    let verb = serde_json::to_value(permission).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    KernelError::new(
        ErrorCode::AccessDenied,
        format!("contract {contract} does not let {caller} {verb} {target}: {reason}"),
    )
    .with("contract", contract)
    .with("permission", verb)
    .with("id", target)
    .with("reason", reason)
}

impl Kernel<'_> {
    /// Asks the contract of `target` whether the caller may do `permission` to it.
    /// Returns the fee in scrip the contract asks for (always 0 for built-ins),
    /// which the caller pays to the target's owner when the action succeeds.
    pub(crate) fn check_access(
        &mut self,
        target: Entity,
        permission: Permission,
        context: Value,
    ) -> Result<u64, KernelError> {
        crate::economy::check_locks(self.world, target, permission)?;
        let contract_id = self.world.get::<AccessContract>(target).map(|c| c.0.clone());
        let Some(contract_id) = contract_id else {
            return check_builtin(self.world, BuiltinContract::Freeware, &self.caller, target, permission).map(|()| 0);
        };
        if let Some(builtin) = BuiltinContract::from_id(contract_id.as_str()) {
            return check_builtin(self.world, builtin, &self.caller, target, permission).map(|()| 0);
        }
        let target_id = self.world.get::<ArtifactId>(target).cloned().unwrap_or_else(|| contract_id.clone());
        let contract_entity = ids::lookup(self.world, contract_id.as_str())
            .filter(|&e| self.world.get::<Executable>(e).is_some() && self.world.get::<Tombstone>(e).is_none());
        let Some(contract_entity) = contract_entity else {
            self.emit(EventKind::ContractFallback { artifact: target_id, contract: contract_id });
            return check_builtin(self.world, BuiltinContract::Freeware, &self.caller, target, permission).map(|()| 0);
        };
        let config = self.sandbox_config();
        if self.frame.contract_depth >= config.max_contract_depth {
            let reason = format!("contract checks nest deeper than {}", config.max_contract_depth);
            return Err(denied(contract_id.as_str(), permission, &self.caller, target_id.as_str(), &reason));
        }
        let owner = self.world.get::<Artifact>(target).map(|a| a.owner.clone());
        let request = json!({
            "caller": self.caller,
            "action": permission,
            "target": target_id,
            "owner": owner,
            "context": context,
        });
        // The check has a deadline of its own (within any its caller already has),
        // and what it costs its caller's payer is bounded: the rest is billed to the
        // owner of the contract (of the outermost check, for checks inside checks).
        let own_deadline = std::time::Instant::now() + std::time::Duration::from_millis(config.contract_timeout_ms);
        let deadline = Some(self.frame.deadline.map_or(own_deadline, |d| d.min(own_deadline)));
        let frame = super::Frame { contract_depth: self.frame.contract_depth + 1, deadline, ..self.frame };
        let contract_owner = self
            .world
            .get::<Artifact>(contract_entity)
            .and_then(|a| ids::lookup(self.world, a.owner.as_str()))
            .unwrap_or(contract_entity);
        let outermost = self.open_contract_bill(frame.payer, contract_owner, config.contract_caller_cpu_us);
        let call = CodeCall {
            entity: contract_entity,
            id: &contract_id,
            entry: Entry::CheckPermission,
            input: request.to_string(),
            ctx: "{}".to_owned(),
            mode: CallMode::Check,
            frame,
            loop_limit: config.contract_loop_limit,
        };
        let caller = self.caller.clone();
        let ran = self.run_code(call);
        let owner_cpu_us = if outermost { self.close_contract_bill() } else { 0 };
        let deny = |reason: String| {
            let error = denied(contract_id.as_str(), permission, &caller, target_id.as_str(), &reason);
            if owner_cpu_us > 0 { error.with("cpu_us_charged_to_contract_owner", owner_cpu_us) } else { error }
        };
        match ran {
            Ok(result) => match serde_json::from_str::<Decision>(&result.json) {
                Ok(Decision { allowed: true, scrip_cost, .. }) => Ok(scrip_cost.unwrap_or(0)),
                Ok(Decision { allowed: false, reason, .. }) => Err(deny(reason.unwrap_or_else(|| "denied".into()))),
                Err(_) => Err(deny(format!("it answered {}, not {{allowed, reason, scrip_cost}}", result.json))),
            },
            // A contract that lost its worker while calls wait on that worker cannot
            // be contained: those calls fail too. Otherwise a failing contract denies.
            Err(error) if self.chain_has_open_calls() && self.world.resource::<Sandbox>().chain_lost() => Err(error),
            Err(error) => Err(deny(format!("it failed: {}", error.message))),
        }
    }
}

/// True for the world's own artifacts, which scenes do not save.
pub fn is_system(world: &World, entity: Entity) -> bool {
    world.get::<System>(entity).is_some()
}
