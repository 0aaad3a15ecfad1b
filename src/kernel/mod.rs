//! The kernel: the only writer of the ledger and of artifacts.
//!
//! Every operation is performed *as* a principal: [`Kernel::as_principal`] resolves the
//! caller once, and no operation takes "who is acting" as an argument, so nothing can
//! act as someone else. Operations check everything before they change anything, so a
//! failure leaves the world as it was (atomicity), and every change appends events.
//!
//! State queries ([`state`]) are public reads over `&World`.

pub mod actions;
pub mod activity;
pub mod artifacts;
pub mod contracts;
pub mod discovery;
pub mod error;
pub mod events;
pub(crate) mod exec;
pub mod imports;
pub mod intents;
pub mod invoke;
pub(crate) mod journal;
pub mod ledger;
pub mod llm;
pub mod mcp;
pub mod query;
pub mod quotas;
pub mod rates;
pub mod schemas;
pub mod state;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;

pub use actions::{Action, ActionKind, ActionResult, ResourcesConsumed};
pub use error::{ErrorCategory, ErrorCode, KernelError};
pub use events::{Event, EventKind, EventLog};
pub use ledger::{Held, Holder, Quota, Standing, Supply};

use crate::world::{
    StepSystems,
    components::{System, Tombstone},
    ids::{self, ArtifactId},
    time::{SimClock, SimTime},
};

/// The id of the principal the world's own mechanisms act as.
pub const KERNEL_ID: &str = "kernel";

/// How often each artifact was invoked and how that went: reputation from use
/// (SPEC §10).
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvocationStats {
    by_artifact: std::collections::BTreeMap<ArtifactId, InvocationCount>,
}

/// Invocations of one artifact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvocationCount {
    /// The code ran and returned a result.
    pub success: u64,
    /// The code ran and failed (threw, hit a limit, timed out).
    pub failure: u64,
    /// Refused before running (bad arguments, no permission, no funds, too deep).
    pub rejected: u64,
    /// Successes whose caller was not the artifact's creator: use by others.
    pub by_others: u64,
    /// CPU-microseconds of every run, successful or not.
    pub cpu_us: u64,
}

impl InvocationCount {
    /// Share of runs that succeeded; `None` before the first run.
    pub fn success_rate(&self) -> Option<f64> {
        let runs = self.success + self.failure;
        (runs > 0).then(|| self.success as f64 / runs as f64)
    }

    /// Mean CPU-microseconds per run.
    pub fn mean_cpu_us(&self) -> Option<f64> {
        let runs = self.success + self.failure;
        (runs > 0).then(|| self.cpu_us as f64 / runs as f64)
    }
}

/// How an invocation ended, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invoked {
    Succeeded { cpu_us: u64, by_other: bool },
    Failed { cpu_us: u64 },
    Rejected,
}

impl InvocationStats {
    pub(crate) fn record(&mut self, id: &ArtifactId, outcome: Invoked) {
        let count = self.by_artifact.entry(id.clone()).or_default();
        match outcome {
            Invoked::Succeeded { cpu_us, by_other } => {
                count.success += 1;
                count.cpu_us += cpu_us;
                count.by_others += u64::from(by_other);
            }
            Invoked::Failed { cpu_us } => {
                count.failure += 1;
                count.cpu_us += cpu_us;
            }
            Invoked::Rejected => count.rejected += 1,
        }
    }

    pub fn counts(&self, id: &str) -> InvocationCount {
        self.by_artifact.get(id).copied().unwrap_or_default()
    }

    /// Every artifact's counts, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&ArtifactId, &InvocationCount)> {
        self.by_artifact.iter()
    }

    /// Forgets an artifact whose creation was rolled back.
    pub(crate) fn forget(&mut self, id: &ArtifactId) {
        self.by_artifact.remove(id);
    }

    /// Counts carried over from a saved world.
    pub(crate) fn carried(by_artifact: std::collections::BTreeMap<ArtifactId, InvocationCount>) -> Self {
        Self { by_artifact }
    }

    /// All invocations of `id`, whatever their outcome.
    pub fn invocations(&self, id: &str) -> u64 {
        let count = self.counts(id);
        count.success + count.failure + count.rejected
    }
}

pub(crate) fn plugin(app: &mut App) {
    schemas::plugin(app);
    discovery::plugin(app);
    app.init_resource::<EventLog>()
        .init_resource::<Supply>()
        .init_resource::<Held>()
        .init_resource::<InvocationStats>()
        .init_resource::<activity::Activity>()
        .init_resource::<exec::Charges>()
        .init_resource::<exec::ContractBill>()
        .init_resource::<llm::Thoughts>()
        .init_resource::<crate::bridge::LlmBridge>()
        .init_resource::<mcp::McpCalls>()
        .init_resource::<crate::bridge::mcp::McpBridge>()
        .add_message::<intents::Intent>()
        .add_message::<intents::ActionOutcome>()
        .add_systems(
            Update,
            (enter_sandbox_epoch, llm::ingest_answers, mcp::list_gateway_tools, mcp::ingest_mcp_results)
                .chain()
                .in_set(StepSystems::Ingest),
        )
        .add_systems(Update, intents::execute_intents.in_set(StepSystems::Act))
        .add_systems(Update, events::flush_event_sink.in_set(StepSystems::Record));
    contracts::spawn_builtins(app.world_mut());
}

/// First of every step: the sandbox replaces its workers when the step begins a new
/// epoch (see [`Sandbox::enter_epoch`](crate::sandbox::Sandbox::enter_epoch)).
fn enter_sandbox_epoch(
    clock: Res<SimClock>,
    config: Res<crate::world::config::Config>,
    mut sandbox: ResMut<crate::sandbox::Sandbox>,
) {
    sandbox.enter_epoch(sandbox_epoch(&config, clock.now()));
}

/// The sandbox epoch that time `now` falls in.
pub fn sandbox_epoch(config: &crate::world::config::Config, now: SimTime) -> u64 {
    now.millis() / config.sandbox.epoch_ms.max(1)
}

/// Where a kernel operation sits in a chain of code calling code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Invokes above this one (0 at the top).
    pub depth: u32,
    /// Contract checks in progress above this one.
    pub contract_depth: u32,
    /// Who bears the resource costs of code run from here.
    pub payer: Entity,
    /// A deadline nearer than the chain's, for code run from here: that of the
    /// contract check this is part of.
    pub deadline: Option<std::time::Instant>,
}

impl Frame {
    pub(crate) fn top(payer: Entity) -> Self {
        Self { depth: 0, contract_depth: 0, payer, deadline: None }
    }

    /// The frame of an invoke made from this one.
    pub(crate) fn nested(self) -> Self {
        Self { depth: self.depth + 1, ..self }
    }
}

/// The kernel acting as one principal (or, for host calls, as the artifact whose
/// code is running).
pub struct Kernel<'w> {
    pub(crate) world: &'w mut World,
    pub(crate) caller: ArtifactId,
    pub(crate) caller_entity: Entity,
    pub(crate) now: SimTime,
    pub(crate) frame: Frame,
}

impl<'w> Kernel<'w> {
    /// The kernel acting as principal `id`; `NOT_FOUND` if there is no such principal.
    pub fn as_principal(world: &'w mut World, id: &str) -> Result<Self, KernelError> {
        let entity = ids::lookup(world, id).ok_or_else(|| KernelError::not_a_principal(id))?;
        let entity_ref = world.entity(entity);
        if !entity_ref.contains::<Standing>() {
            return Err(KernelError::not_a_principal(id));
        }
        let caller = entity_ref.get::<ArtifactId>().cloned().ok_or_else(|| KernelError::not_a_principal(id))?;
        let now = world.resource::<SimClock>().now();
        Ok(Self { world, caller, caller_entity: entity, now, frame: Frame::top(entity) })
    }

    /// The kernel acting for the world itself (grants, freezes, the mint).
    pub(crate) fn as_system(world: &'w mut World) -> Result<Self, KernelError> {
        Self::as_principal(world, KERNEL_ID)
    }

    /// Who the kernel is acting as.
    pub fn caller(&self) -> &ArtifactId {
        &self.caller
    }

    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Read access to the world, for state queries in the middle of a sequence of calls.
    pub fn world(&self) -> &World {
        self.world
    }

    pub(crate) fn emit(&mut self, kind: EventKind) -> u64 {
        let (now, actor) = (self.now, self.caller.clone());
        self.world.resource_mut::<EventLog>().push(now, actor, kind)
    }

    pub(crate) fn entity(&self, id: &str) -> Result<Entity, KernelError> {
        ids::lookup(self.world, id).ok_or_else(|| KernelError::not_found(id))
    }

    /// An artifact that exists and is not deleted.
    pub(crate) fn live(&self, id: &str) -> Result<Entity, KernelError> {
        let entity = self.entity(id)?;
        if self.world.get::<Tombstone>(entity).is_some() {
            return Err(KernelError::deleted(id));
        }
        Ok(entity)
    }

    /// A principal (an artifact with standing).
    pub(crate) fn principal(&self, id: &str) -> Result<Entity, KernelError> {
        let entity = ids::lookup(self.world, id).ok_or_else(|| KernelError::not_a_principal(id))?;
        if self.world.get::<Standing>(entity).is_none() {
            return Err(KernelError::not_a_principal(id));
        }
        Ok(entity)
    }

    pub(crate) fn standing(&self, entity: Entity) -> Result<&Standing, KernelError> {
        self.world.get::<Standing>(entity).ok_or_else(|| lost(entity))
    }

    pub(crate) fn is_system(&self, entity: Entity) -> bool {
        self.world.get::<System>(entity).is_some()
    }
}

/// An entity that was checked a moment ago has no standing: only possible if the
/// world was changed behind the kernel's back.
pub(crate) fn lost(entity: Entity) -> KernelError {
    KernelError::new(ErrorCode::NotFound, format!("entity {entity} has no standing"))
}

/// Checks that an amount coming from outside is a positive integer.
pub(crate) fn positive(amount: i64, what: &str) -> Result<u64, KernelError> {
    if amount <= 0 {
        return Err(KernelError::invalid(format!("{what} must be positive, got {amount}")).with("amount", amount));
    }
    Ok(amount as u64)
}
