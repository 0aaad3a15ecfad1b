//! Moving scrip, resources and ownership; creating principals; the world's own acts.
//!
//! Each operation validates everything first (positive amount, known recipient,
//! sufficient holdings, no overflow) and only then mutates, so a failed operation
//! changes nothing. Scrip is conserved by every operation here except the explicit
//! grants, which are booked in [`Supply`].

use std::sync::Arc;

use bevy_ecs::prelude::*;

use super::{
    ErrorCode, EventKind, KERNEL_ID, Kernel, KernelError, Supply,
    activity::{self, Activity},
    contracts::BuiltinContract,
    events::FrozenAssets,
    positive, state,
};
use crate::world::{
    components::{AccessContract, Artifact, CreatedBy, Frozen, Quota, Standing},
    config::Config,
    ids::{ArtifactId, Ids},
};

/// A resource named by a caller, resolved against the world's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResourceRef {
    Scrip,
    LlmBudget,
    Disk,
    /// A stock resource declared by the scene.
    Stock(Arc<str>),
    /// A quota resource: a per-window rate or the memory allocation. What moves is
    /// part of the limit.
    Limit(Arc<str>),
}

impl ResourceRef {
    pub(crate) fn resolve(config: &Config, name: &str) -> Result<Self, KernelError> {
        Ok(match name {
            "scrip" => Self::Scrip,
            "llm_budget" => Self::LlmBudget,
            "disk" => Self::Disk,
            _ => {
                if let Some((key, _)) = config.stock_resources.get_key_value(name) {
                    Self::Stock(key.clone())
                } else if config.is_quota(name) {
                    Self::Limit(Arc::from(name))
                } else {
                    return Err(KernelError::invalid(format!("unknown resource {name:?}")).with("resource", name));
                }
            }
        })
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Scrip => "scrip",
            Self::LlmBudget => "llm_budget",
            Self::Disk => "disk",
            Self::Stock(name) | Self::Limit(name) => name,
        }
    }

    /// How much of a stock `standing` can give away (for disk: the free part).
    fn available(&self, standing: &Standing) -> u64 {
        match self {
            Self::Scrip => standing.scrip,
            Self::LlmBudget => standing.llm_budget_micro_usd,
            Self::Disk => standing.disk_free(),
            Self::Stock(name) => standing.stock(name),
            Self::Limit(_) => 0,
        }
    }

    /// The holding that a credit or debit changes.
    fn holding_mut<'a>(&self, standing: &'a mut Standing) -> Option<&'a mut u64> {
        match self {
            Self::Scrip => Some(&mut standing.scrip),
            Self::LlmBudget => Some(&mut standing.llm_budget_micro_usd),
            Self::Disk => Some(&mut standing.disk_quota),
            Self::Stock(name) => Some(standing.stock_mut(name)),
            Self::Limit(_) => None,
        }
    }

    fn holding(&self, standing: &Standing) -> u64 {
        match self {
            Self::Disk => standing.disk_quota,
            _ => self.available(standing),
        }
    }
}

fn insufficient(code: ErrorCode, who: &ArtifactId, resource: &str, needed: u64, available: u64) -> KernelError {
    KernelError::new(code, format!("{who} holds {available} {resource}, needs {needed}"))
        .with("principal", who.as_str())
        .with("resource", resource)
        .with("needed", needed)
        .with("available", available)
}

fn overflow(who: &ArtifactId, resource: &str) -> KernelError {
    KernelError::invalid(format!("crediting {resource} to {who} would overflow")).with("principal", who.as_str())
}

impl Kernel<'_> {
    /// A principal other than the world itself, by id, with its shared id. The
    /// `kernel` principal holds nothing and can be given nothing.
    pub(crate) fn principal_with_id(&self, id: &str) -> Result<(ArtifactId, Entity), KernelError> {
        let (key, entity) =
            self.world.resource::<Ids>().resolve(self.world, id).ok_or_else(|| KernelError::not_a_principal(id))?;
        let key = key.clone();
        if self.world.get::<Standing>(entity).is_none() {
            return Err(KernelError::not_a_principal(id));
        }
        if self.is_system(entity) {
            return Err(KernelError::invalid(format!("{id} is the world itself; it holds nothing")).with("id", id));
        }
        Ok((key, entity))
    }

    /// Moves `amount` scrip from the caller to `to`. Transfer to self succeeds and
    /// changes nothing.
    pub fn transfer_scrip(&mut self, to: &str, amount: i64) -> Result<(), KernelError> {
        let amount = positive(amount, "amount")?;
        let (to_id, to_entity) = self.principal_with_id(to)?;
        self.move_scrip(self.caller_entity, to_entity, amount, Some(EventKind::ScripTransfer { to: to_id, amount }))
    }

    /// Moves `amount` scrip between two principals, or refuses (`INSUFFICIENT_FUNDS`,
    /// overflow) and changes nothing. Every movement of scrip from one principal to
    /// another goes through here: it is counted for the health indicators, `event`
    /// (what the movement was) is emitted, and then a recipient frozen for want of
    /// scrip is rescued.
    pub(crate) fn move_scrip(
        &mut self,
        from: Entity,
        to: Entity,
        amount: u64,
        event: Option<EventKind>,
    ) -> Result<(), KernelError> {
        let held = self.standing(from)?.scrip;
        if held < amount {
            let who = self.world.get::<ArtifactId>(from).cloned().unwrap_or_else(|| self.caller.clone());
            return Err(insufficient(ErrorCode::InsufficientFunds, &who, "scrip", amount, held));
        }
        if amount == 0 || from == to {
            if let Some(event) = event {
                self.emit(event);
            }
            return Ok(());
        }
        let credited = self.standing(to)?.scrip.checked_add(amount);
        let Some(credited) = credited else {
            let who = self.world.get::<ArtifactId>(to).cloned().unwrap_or_else(|| self.caller.clone());
            return Err(overflow(&who, "scrip"));
        };
        self.standing_mut(from)?.scrip = held - amount;
        self.standing_mut(to)?.scrip = credited;
        let agents = (activity::is_agent(self.world, from), activity::is_agent(self.world, to));
        let mut activity = self.world.resource_mut::<Activity>();
        activity.scrip_moved = activity.scrip_moved.saturating_add(amount);
        activity.met(agents, from, to);
        if let Some(event) = event {
            self.emit(event);
        }
        if let Some(id) = self.world.get::<ArtifactId>(to).cloned() {
            self.thaw_if_rescued(to, &id);
        }
        Ok(())
    }

    /// Moves `amount` of any resource from the caller to `to`: `scrip`, a stock
    /// (`llm_budget` in micro-dollars, free `disk` allocation in bytes, scene-declared
    /// stocks) or a rate allocation (part of the caller's per-window limit).
    pub fn transfer_resource(&mut self, to: &str, resource: &str, amount: i64) -> Result<(), KernelError> {
        let resource = ResourceRef::resolve(self.world.resource::<Config>(), resource)?;
        if resource == ResourceRef::Scrip {
            return self.transfer_scrip(to, amount);
        }
        let amount = positive(amount, "amount")?;
        let (to_id, to_entity) = self.principal_with_id(to)?;
        match &resource {
            ResourceRef::Limit(name) => self.move_rate(name, to_entity, &to_id, amount)?,
            stock => {
                let available = stock.available(self.standing(self.caller_entity)?);
                if available < amount {
                    return Err(insufficient(
                        ErrorCode::InsufficientResource,
                        &self.caller,
                        stock.name(),
                        amount,
                        available,
                    ));
                }
                if to_entity != self.caller_entity {
                    let credited = stock
                        .holding(self.standing(to_entity)?)
                        .checked_add(amount)
                        .ok_or_else(|| overflow(&to_id, stock.name()))?;
                    let mut from = self.standing_mut(self.caller_entity)?;
                    if let Some(held) = stock.holding_mut(&mut from) {
                        *held -= amount;
                    }
                    let mut to = self.standing_mut(to_entity)?;
                    if let Some(held) = stock.holding_mut(&mut to) {
                        *held = credited;
                    }
                }
            }
        }
        let resource = resource.name().to_owned();
        self.emit(EventKind::ResourceTransfer { to: to_id.clone(), resource, amount });
        self.thaw_if_rescued(to_entity, &to_id);
        Ok(())
    }

    fn move_rate(
        &mut self,
        name: &Arc<str>,
        to_entity: Entity,
        to_id: &ArtifactId,
        amount: u64,
    ) -> Result<(), KernelError> {
        let limit_of = |kernel: &Self, entity: Entity| kernel.world.get::<Quota>(entity).and_then(|q| q.limit(name));
        let Some(from_limit) = limit_of(self, self.caller_entity) else {
            return Err(KernelError::invalid(format!(
                "{}'s {name} is unlimited; only a finite allocation can be divided",
                self.caller
            )));
        };
        if from_limit < amount {
            return Err(insufficient(ErrorCode::InsufficientResource, &self.caller, name, amount, from_limit));
        }
        if to_entity == self.caller_entity {
            return Ok(());
        }
        let Some(to_limit) = limit_of(self, to_entity) else {
            return Err(KernelError::invalid(format!(
                "{to_id}'s {name} is unlimited; an allocation given to it would be lost"
            )));
        };
        let credited = to_limit.checked_add(amount).ok_or_else(|| overflow(to_id, name))?;
        if let Some(mut quota) = self.world.get_mut::<Quota>(self.caller_entity) {
            quota.set(name, Some(from_limit - amount));
        }
        if let Some(mut quota) = self.world.get_mut::<Quota>(to_entity) {
            quota.set(name, Some(credited));
        }
        Ok(())
    }

    /// `transfer_resource(to, "llm_budget", amount)`, in micro-dollars.
    pub fn transfer_llm_budget(&mut self, to: &str, amount_micro_usd: i64) -> Result<(), KernelError> {
        self.transfer_resource(to, "llm_budget", amount_micro_usd)
    }

    /// Creates principal `id`, owned by the caller, holding nothing: no scrip, no
    /// stocks, and a zero allocation of every rate the world limits. The caller funds
    /// it with transfers. Its contract is `self_owned`, so both its owner and the new
    /// principal itself may write it (an agent keeps its memory in its own content).
    pub fn spawn_principal(&mut self, id: &str) -> Result<Entity, KernelError> {
        let new_id = self.new_id(id)?;
        let limits = Arc::new(self.world.resource::<Config>().defaults.quota.keys().map(|k| (k.clone(), 0)).collect());
        let artifact = Artifact {
            owner: self.caller.clone(),
            created_at: self.now,
            updated_at: self.now,
            content: Box::from(""),
            details: None,
        };
        let contract = AccessContract(ArtifactId::trusted(BuiltinContract::SelfOwned.id()));
        let entity =
            self.world.spawn((new_id.clone(), artifact, Standing::default(), Quota::new(limits), contract)).id();
        self.emit(EventKind::PrincipalSpawned { id: new_id });
        Ok(entity)
    }

    /// A fresh id: valid, and never used before in this world.
    pub(crate) fn new_id(&self, id: &str) -> Result<ArtifactId, KernelError> {
        let new_id = ArtifactId::parse(id).map_err(|e| KernelError::invalid(e.to_string()).with("id", id))?;
        if self.world.resource::<Ids>().contains(self.world, id) {
            return Err(KernelError::new(ErrorCode::AlreadyExists, format!("{id:?} already exists")).with("id", id));
        }
        Ok(new_id)
    }

    /// Gives an artifact the caller owns to principal `to`. Its disk usage moves with
    /// it, so `to` needs that much free disk.
    pub fn transfer_ownership(&mut self, artifact: &str, to: &str) -> Result<(), KernelError> {
        let artifact_entity = self.live(artifact)?;
        let Some(current) = self.world.get::<Artifact>(artifact_entity) else {
            return Err(KernelError::not_found(artifact));
        };
        if current.owner != self.caller {
            return Err(KernelError::new(ErrorCode::NotOwner, format!("{artifact:?} is owned by {}", current.owner))
                .with("id", artifact)
                .with("owner", current.owner.as_str()));
        }
        let artifact_id =
            self.world.get::<ArtifactId>(artifact_entity).cloned().ok_or_else(|| KernelError::not_found(artifact))?;
        let (to_id, to_entity) = self.principal_with_id(to)?;
        let bytes = state::artifact_bytes(self.world, artifact_entity);
        if to_entity != self.caller_entity {
            let free = self.standing(to_entity)?.disk_free();
            if free < bytes {
                return Err(insufficient(ErrorCode::InsufficientResource, &to_id, "disk", bytes, free));
            }
            self.standing_mut(self.caller_entity)?.disk_used -= bytes;
            self.standing_mut(to_entity)?.disk_used += bytes;
            let mut moved = self.world.entity_mut(artifact_entity);
            if !moved.contains::<CreatedBy>() {
                // The creator was the first owner; now that it is leaving, keep it.
                moved.insert(CreatedBy(self.caller.clone()));
            }
            if let Some(mut artifact) = moved.get_mut::<Artifact>() {
                artifact.owner = to_id.clone();
                artifact.updated_at = self.now;
            }
        }
        self.emit(EventKind::OwnershipTransfer { artifact: artifact_id, to: to_id, disk_bytes: bytes });
        Ok(())
    }

    pub(crate) fn require_system(&self) -> Result<(), KernelError> {
        if self.caller != KERNEL_ID {
            return Err(KernelError::new(ErrorCode::AccessDenied, "only the world itself may do this"));
        }
        Ok(())
    }

    /// Creates `amount` scrip for `to` outside the mint (an intervention), booked as
    /// granted supply.
    pub(crate) fn grant_scrip(&mut self, to: &str, amount: i64) -> Result<(), KernelError> {
        self.require_system()?;
        let amount = positive(amount, "amount")?;
        let (to_id, to_entity) = self.principal_with_id(to)?;
        let credited = self.standing(to_entity)?.scrip.checked_add(amount).ok_or_else(|| overflow(&to_id, "scrip"))?;
        self.standing_mut(to_entity)?.scrip = credited;
        self.world.resource_mut::<Supply>().granted += amount;
        self.emit(EventKind::ScripGranted { to: to_id.clone(), amount });
        self.thaw_if_rescued(to_entity, &to_id);
        Ok(())
    }

    /// Adds `amount` of a resource to `to`'s holdings (for a rate: to its limit).
    pub(crate) fn grant_resource(&mut self, to: &str, resource: &str, amount: i64) -> Result<(), KernelError> {
        self.require_system()?;
        let resource = ResourceRef::resolve(self.world.resource::<Config>(), resource)?;
        if resource == ResourceRef::Scrip {
            return self.grant_scrip(to, amount);
        }
        let amount = positive(amount, "amount")?;
        let (to_id, to_entity) = self.principal_with_id(to)?;
        match &resource {
            ResourceRef::Limit(name) => {
                let mut quota =
                    self.world.get_mut::<Quota>(to_entity).ok_or_else(|| KernelError::not_a_principal(to))?;
                // Granting to an unlimited rate changes nothing: it stays unlimited.
                if let Some(limit) = quota.limit(name) {
                    let raised = limit.checked_add(amount).ok_or_else(|| overflow(&to_id, name))?;
                    quota.set(name, Some(raised));
                }
            }
            stock => {
                let mut standing = self.standing_mut(to_entity)?;
                if let Some(held) = stock.holding_mut(&mut standing) {
                    *held = held.checked_add(amount).ok_or_else(|| overflow(&to_id, stock.name()))?;
                }
            }
        }
        let resource = resource.name().to_owned();
        self.emit(EventKind::ResourceGranted { to: to_id.clone(), resource, amount });
        self.thaw_if_rescued(to_entity, &to_id);
        Ok(())
    }

    /// Sets a principal's per-window limit of a rate (`None`: unlimited), or its disk
    /// allocation (which cannot drop below what it already uses).
    pub(crate) fn set_quota(&mut self, principal: &str, resource: &str, limit: Option<u64>) -> Result<(), KernelError> {
        self.require_system()?;
        let resource = ResourceRef::resolve(self.world.resource::<Config>(), resource)?;
        let (id, entity) = self.principal_with_id(principal)?;
        match &resource {
            ResourceRef::Limit(name) => {
                let mut quota =
                    self.world.get_mut::<Quota>(entity).ok_or_else(|| KernelError::not_a_principal(principal))?;
                quota.set(name, limit);
            }
            ResourceRef::Disk => {
                let Some(limit) = limit else {
                    return Err(KernelError::invalid("a disk allocation must be a number of bytes"));
                };
                let used = self.standing(entity)?.disk_used;
                if limit < used {
                    return Err(KernelError::invalid(format!(
                        "{id} already uses {used} bytes of disk; the allocation cannot be {limit}"
                    ))
                    .with("disk_used", used));
                }
                self.standing_mut(entity)?.disk_quota = limit;
            }
            other => {
                return Err(KernelError::invalid(format!(
                    "{} is a holding, not a quota; grant or transfer it",
                    other.name()
                )));
            }
        }
        let resource = resource.name().to_owned();
        self.emit(EventKind::QuotaSet { principal: id, resource, limit });
        Ok(())
    }

    /// Stops a principal from acting. It keeps everything it holds; the event lists
    /// its assets for whoever might rescue it. Freezing a frozen principal does
    /// nothing. `by_rule`: it ran dry (and thaws when someone brings it back).
    pub(crate) fn freeze(&mut self, principal: &str, reason: &str, by_rule: bool) -> Result<(), KernelError> {
        self.freeze_needing(principal, reason, by_rule, 0)
    }

    /// [`Kernel::freeze`] a principal that needs `llm_budget_micro_usd` of LLM budget
    /// (beyond the freeze rule) before it is thawed.
    pub(crate) fn freeze_needing(
        &mut self,
        principal: &str,
        reason: &str,
        by_rule: bool,
        llm_budget_micro_usd: u64,
    ) -> Result<(), KernelError> {
        self.require_system()?;
        let (id, entity) = self.principal_with_id(principal)?;
        if self.world.get::<Frozen>(entity).is_some() {
            return Ok(());
        }
        let summary = state::asset_summary(self.world, entity);
        let mut frozen = Frozen::new(self.now, reason.to_owned(), by_rule);
        frozen.needs_llm_budget_micro_usd = llm_budget_micro_usd;
        self.world.entity_mut(entity).insert(frozen);
        self.world.resource_mut::<Activity>().freezes += 1;
        self.emit(EventKind::AgentFrozen {
            principal: id,
            reason: reason.to_owned(),
            assets: Box::new(FrozenAssets {
                scrip: summary.scrip,
                resources: summary.resources,
                owned_artifacts: summary.owned_artifacts,
                last_action_at: summary.last_action_at.map(|t| t.as_secs_f64()),
            }),
        });
        Ok(())
    }

    /// Thaws an agent frozen for running dry once it no longer does: whoever made
    /// that so (the caller) is named as its rescuer.
    pub(crate) fn thaw_if_rescued(&mut self, entity: Entity, id: &ArtifactId) {
        let rule = self.world.resource::<Config>().freeze;
        let (frozen_by_rule, needs) =
            self.world.get::<Frozen>(entity).map_or((false, 0), |f| (f.by_rule, f.needs_llm_budget_micro_usd));
        let dry = self
            .world
            .get::<Standing>(entity)
            .is_none_or(|s| rule.runs_dry(s).is_some() || s.llm_budget_micro_usd < needs);
        if frozen_by_rule && !dry {
            self.world.entity_mut(entity).remove::<Frozen>();
            // UBI or a grant from the world's machinery thaws too, but only another
            // principal's help counts as a rescue.
            let by_principal = !self.is_system(self.caller_entity);
            let mut activity = self.world.resource_mut::<Activity>();
            activity.thaws += 1;
            activity.rescues += u64::from(by_principal);
            let rescuer = Some(self.caller.clone());
            self.emit(EventKind::AgentUnfrozen { principal: id.clone(), rescuer });
        }
    }

    /// Lets a frozen principal act again. Unfreezing one that is not frozen does nothing.
    pub(crate) fn unfreeze(&mut self, principal: &str, rescuer: Option<ArtifactId>) -> Result<(), KernelError> {
        self.require_system()?;
        let (id, entity) = self.principal_with_id(principal)?;
        if self.world.entity_mut(entity).take::<Frozen>().is_some() {
            self.world.resource_mut::<Activity>().thaws += 1;
            self.emit(EventKind::AgentUnfrozen { principal: id, rescuer });
        }
        Ok(())
    }
}
