//! The economy: how scrip enters the world and flows through it.
//!
//! The world's services ([`services`]) are artifacts every world has: the mint's
//! auctions ([`mint`], scored by [`scorer`]), escrow ([`escrow`]), debt notes
//! ([`debt`]), commons governed by vote ([`governance`]), the auditor
//! ([`auditor`]), and the coordination primitives: event [`subscriptions`], a
//! [`tasks`] board and [`locks`]. Scheduled mechanisms run in the Settle phase, in
//! this order: the mint resolves, debts fall due, votes close, overdue tasks expire,
//! locks run out, and then agents that ran dry freeze — last, so that whatever the
//! mint and the others paid out in the step counts. The health indicators ([`kpis`])
//! are sampled in the Record phase.

pub mod auditor;
pub mod capabilities;
pub mod debt;
pub mod escrow;
pub mod governance;
pub mod kpis;
pub mod locks;
pub mod mint;
pub mod scorer;
pub mod services;
pub mod subscriptions;
pub mod tasks;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;

use crate::kernel::Standing;
use crate::{
    kernel::{ErrorCode, Kernel, KernelError, contracts::Permission},
    world::{
        StepSystems,
        components::{Artifact, Frozen, Loop, Thinking},
        config::Config,
        ids::ArtifactId,
    },
};

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<mint::Mint>()
        .init_resource::<scorer::MintScorer>()
        .init_resource::<escrow::Escrow>()
        .init_resource::<debt::Debts>()
        .init_resource::<governance::Governance>()
        .init_resource::<capabilities::CapabilityRequests>()
        .init_resource::<kpis::Kpis>()
        .init_resource::<tasks::TaskBoard>()
        .init_resource::<locks::Locks>()
        .add_systems(
            Update,
            (
                mint::resolve_due_auction,
                debt::mark_defaults,
                governance::close_due_proposals,
                tasks::expire_overdue_tasks,
                locks::expire_due_locks,
                freeze_dry_agents,
            )
                .chain()
                .in_set(StepSystems::Settle),
        )
        .add_systems(
            Update,
            kpis::sample_kpis.in_set(StepSystems::Record).before(crate::kernel::events::flush_event_sink),
        );
    services::spawn(app.world_mut());
}

/// Settle phase: agents that can no longer pay for a step (the scene's freeze rule)
/// are frozen, with their assets on the event for whoever might rescue them.
fn freeze_dry_agents(world: &mut World) {
    let rule = world.resource::<Config>().freeze;
    let mut dry: Vec<(ArtifactId, String)> = Vec::new();
    // An agent waiting for a model is not judged until the call is settled: its
    // reservation is not spent yet.
    let mut agents =
        world.query_filtered::<(&ArtifactId, &Standing), (With<Loop>, Without<Frozen>, Without<Thinking>)>();
    for (id, standing) in agents.iter(world) {
        if let Some(why) = rule.runs_dry(standing.scrip(), standing.llm_budget_micro_usd()) {
            dry.push((id.clone(), why));
        }
    }
    // In id order: the events come out the same every run.
    dry.sort();
    for (id, why) in dry {
        if let Ok(mut kernel) = Kernel::as_system(world) {
            let _ = kernel.freeze(id.as_str(), &why, true);
        }
    }
}

impl Kernel<'_> {
    /// `artifact`, if it is a live artifact of the world's users that the caller owns:
    /// what may be listed in escrow or bid on at the mint. `what` says which ("listed",
    /// "bid on") in the refusals.
    pub(crate) fn own_artifact(&self, artifact: &str, what: &str) -> Result<(Entity, ArtifactId), KernelError> {
        let entity = self.live(artifact)?;
        let id = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(artifact))?;
        if self.is_system(entity) {
            return Err(KernelError::invalid(format!("{artifact} is part of the world; it cannot be {what}")));
        }
        let owner = self.world.get::<Artifact>(entity).map(|a| a.owner().to_string()).unwrap_or_default();
        if owner != self.caller.as_str() {
            return Err(KernelError::new(
                ErrorCode::NotOwner,
                format!("{artifact} belongs to {owner}, not {}: only an owner's artifact can be {what}", self.caller),
            )
            .with("id", artifact)
            .with("owner", owner));
        }
        Ok((entity, id))
    }
}

/// Adds what the economy knows of an artifact to its public metadata: a listing's
/// price, a debt note's terms and state, a commons' members and rules.
pub(crate) fn describe(world: &World, entity: Entity, fields: &mut serde_json::Map<String, serde_json::Value>) {
    let Some(id) = world.get::<ArtifactId>(entity) else { return };
    if let Some(listing) = world.resource::<escrow::Escrow>().listing(id.as_str()) {
        fields.insert(
            "listing".into(),
            serde_json::json!({ "seller": listing.seller, "price": listing.price, "buyer": listing.buyer }),
        );
    }
    if let Some(debt) = world.get::<debt::Debt>(entity) {
        let owner = world.get::<Artifact>(entity).map(|a| a.owner().clone()).unwrap_or_else(|| id.clone());
        let holder = escrow::beneficiary(world, id, &owner);
        fields.insert("debt".into(), debt.to_json(&holder));
    }
    if let Some(commons) = world.get::<governance::Commons>(entity) {
        fields.insert("commons".into(), serde_json::to_value(commons).unwrap_or_default());
    }
}

/// Changes the economy forbids whatever an artifact's contract says: nothing listed
/// in escrow may change (a buyer gets what it inspected), and a debt note's terms are
/// the kernel's to keep (it may be deleted once settled).
pub(crate) fn check_locks(world: &World, target: Entity, permission: Permission) -> Result<(), KernelError> {
    if !matches!(permission, Permission::Write | Permission::Edit | Permission::Delete) {
        return Ok(());
    }
    let id = world.get::<ArtifactId>(target).map_or("the artifact", ArtifactId::as_str);
    if world.get::<Artifact>(target).is_some_and(|a| a.owner() == services::ESCROW_ID) {
        return Err(KernelError::new(
            ErrorCode::AccessDenied,
            format!("{id} is listed for sale in escrow and cannot change until it is sold or the listing cancelled"),
        )
        .with("id", id));
    }
    if let Some(debt) = world.get::<debt::Debt>(target)
        && (permission != Permission::Delete || !debt.settled())
    {
        return Err(KernelError::new(
            ErrorCode::AccessDenied,
            format!("{id} is a debt note; its terms are kept by the kernel (it may be deleted once settled)"),
        )
        .with("id", id));
    }
    Ok(())
}
