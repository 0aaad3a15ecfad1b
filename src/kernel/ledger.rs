//! The ledger: every principal's holdings, and the only code that changes them.
//!
//! [`Standing`] (scrip, LLM budget, disk, scene-declared stocks), [`Quota`] (rate
//! allocations), [`Held`] (scrip out of its owners' hands but still in existence: bids
//! at the mint, rewards of unsettled tasks) and [`Supply`] (where scrip came from) have
//! private fields, so the compiler refuses a write anywhere else. Holdings change only
//! through the operations named here: move (scrip, stocks, rates, ownership), hold and
//! release, mint and grant, use disk, reserve and settle LLM budget. That keeps the
//! books — balances + held = initial + minted + granted — in one place, and lets every
//! operation journal its own reversal while a transaction is open
//! ([`super::journal`]).
//!
//! Each operation validates everything first (positive amount, known recipient,
//! sufficient holdings, no overflow) and only then mutates, so a failed operation
//! changes nothing even outside a transaction. Scrip is conserved by every operation
//! here except minting and grants, which are booked in [`Supply`].

use std::{collections::BTreeMap, sync::Arc};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    ErrorCode, EventKind, KERNEL_ID, Kernel, KernelError,
    activity::{self, Activity},
    contracts::BuiltinContract,
    events::FrozenAssets,
    journal::{self, Undo},
    positive, state,
};
use crate::world::{
    components::{AccessContract, Artifact, CreatedBy, Frozen, LastAction, Limits},
    config::Config,
    ids::{ArtifactId, Ids},
    time::SimTime,
};

/// A principal's holdings: scrip and stock resources, all integers.
///
/// `disk_quota` is the principal's disk allocation in bytes and `disk_used` the bytes
/// of the live artifacts it owns; only the free part (`disk_quota - disk_used`) can be
/// spent on growth or traded away, so `disk_used <= disk_quota` always holds.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[require(Quota, LastAction)]
pub struct Standing {
    scrip: u64,
    llm_budget_micro_usd: u64,
    disk_quota: u64,
    disk_used: u64,
    /// Stock resources a scene declares beyond the built-in ones; boxed because most
    /// worlds declare none.
    #[expect(clippy::box_collection, reason = "8 bytes per principal instead of 24")]
    other: Option<Box<BTreeMap<Arc<str>, u64>>>,
}

impl Standing {
    /// What a principal starts a world with.
    pub(crate) fn new(scrip: u64, llm_budget_micro_usd: u64, disk_quota: u64) -> Self {
        Self { scrip, llm_budget_micro_usd, disk_quota, disk_used: 0, other: None }
    }

    /// A starting standing that already owns `disk_used` bytes of artifacts (a world
    /// being set up: the bytes are counted from what the scene gives it).
    pub(crate) fn owning(mut self, disk_used: u64) -> Self {
        self.disk_used = disk_used;
        self
    }

    /// A starting standing with scene-declared stocks.
    pub(crate) fn with_stocks(mut self, stocks: BTreeMap<Arc<str>, u64>) -> Self {
        self.other = (!stocks.is_empty()).then(|| Box::new(stocks));
        self
    }

    pub fn scrip(&self) -> u64 {
        self.scrip
    }
    pub fn llm_budget_micro_usd(&self) -> u64 {
        self.llm_budget_micro_usd
    }
    pub fn disk_quota(&self) -> u64 {
        self.disk_quota
    }
    pub fn disk_used(&self) -> u64 {
        self.disk_used
    }
    pub fn disk_free(&self) -> u64 {
        self.disk_quota - self.disk_used
    }
    /// Holding of a scene-declared stock resource.
    pub fn stock(&self, name: &str) -> u64 {
        self.other.as_ref().and_then(|m| m.get(name).copied()).unwrap_or(0)
    }
    /// Every scene-declared stock held, by name.
    pub fn stocks(&self) -> impl Iterator<Item = (&Arc<str>, u64)> {
        self.other.iter().flat_map(|m| m.iter().map(|(k, v)| (k, *v)))
    }
    fn stock_mut(&mut self, name: &Arc<str>) -> &mut u64 {
        self.other.get_or_insert_with(Default::default).entry(name.clone()).or_insert(0)
    }
}

/// Per-window limits on renewable resources (`cpu`, `llm_tokens`, `llm_calls`, …),
/// keyed by resource name, and the memory allocation. A resource without an entry is
/// unlimited. An allocation is a holding like any other: it changes only here.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    limits: Limits,
}

impl Quota {
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }
    pub fn limit(&self, resource: &str) -> Option<u64> {
        self.limits.get(resource).copied()
    }
    pub fn limits(&self) -> &BTreeMap<Arc<str>, u64> {
        &self.limits
    }
    /// The shared map itself (so a restored world can share it again).
    pub(crate) fn shared(&self) -> &Limits {
        &self.limits
    }
    /// A starting quota with the limit of `resource` set (`None`: unlimited).
    pub(crate) fn with_limit(mut self, resource: &Arc<str>, limit: Option<u64>) -> Self {
        self.set(resource, limit);
        self
    }
    fn set(&mut self, resource: &Arc<str>, limit: Option<u64>) {
        if self.limit(resource) == limit {
            return;
        }
        let limits = Arc::make_mut(&mut self.limits);
        match limit {
            Some(limit) => limits.insert(resource.clone(), limit),
            None => limits.remove(resource),
        };
    }
}

/// Scrip that exists and where it came from; the ledger must always add up to it.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Scrip the scene gave principals at the start.
    initial: u64,
    /// Scrip created by the mint.
    minted: u64,
    /// Scrip created by interventions (grants).
    granted: u64,
}

impl Supply {
    /// A world whose principals start with `initial` scrip, `minted` and `granted` of
    /// it created before the start (a world saved and loaded again).
    pub(crate) fn starting(initial: u64, minted: u64, granted: u64) -> Self {
        Self { initial, minted, granted }
    }
    pub fn initial(&self) -> u64 {
        self.initial
    }
    pub fn minted(&self) -> u64 {
        self.minted
    }
    pub fn granted(&self) -> u64 {
        self.granted
    }
    /// What the sum of all balances and held scrip must be.
    pub fn expected_total(&self) -> u64 {
        self.initial + self.minted + self.granted
    }
}

/// Who holds scrip on its owners' behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// The mint: sealed bids until the auction resolves.
    Mint,
    /// The task board: rewards of tasks not yet settled.
    Tasks,
}

/// Scrip out of its owners' hands but still in existence (part of the supply). Who it
/// belongs to is in the holder's records (the mint's bids, the board's tasks).
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    mint: u64,
    tasks: u64,
}

impl Held {
    pub fn of(&self, holder: Holder) -> u64 {
        match holder {
            Holder::Mint => self.mint,
            Holder::Tasks => self.tasks,
        }
    }
    pub fn total(&self) -> u64 {
        self.mint + self.tasks
    }
    /// What a world starts with held for bids (carried over from a saved world).
    pub(crate) fn starting(mint: u64) -> Self {
        Self { mint, tasks: 0 }
    }

    /// A holder already holding `amount` (for tests of what it pays out).
    #[cfg(test)]
    pub(crate) fn holding(holder: Holder, amount: u64) -> Self {
        let mut held = Self::default();
        *held.slot(holder) = amount;
        held
    }
    fn slot(&mut self, holder: Holder) -> &mut u64 {
        match holder {
            Holder::Mint => &mut self.mint,
            Holder::Tasks => &mut self.tasks,
        }
    }
}

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
    pub(crate) fn available(&self, standing: &Standing) -> u64 {
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

/// Where created scrip came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    Minted,
    Granted,
}

/// How to reverse one change of holdings (see [`super::journal`]). A reversal that
/// would take back more than is there takes what is left (something measured, charged
/// at once, spent the rest), so the books still balance.
pub(crate) enum LedgerUndo {
    /// Scrip moved between principals (and was counted as moved).
    Scrip { from: Entity, to: Entity, amount: u64 },
    /// A stock (LLM budget, disk allocation, a declared stock) moved.
    Stock { from: Entity, to: Entity, stock: ResourceRef, amount: u64 },
    /// A rate limit as it was.
    Limit { entity: Entity, name: Arc<str>, before: Option<u64> },
    /// Disk use changed by `delta` bytes.
    DiskUse { entity: Entity, delta: i64 },
    /// Scrip went from a principal to a holder.
    Hold { entity: Entity, holder: Holder, amount: u64 },
    /// Scrip went from a holder to a principal (`moved`: counted as moved between
    /// principals, as a task's reward is).
    Release { holder: Holder, entity: Entity, amount: u64, moved: bool },
    /// Scrip or a stock was created for a principal.
    Create { entity: Entity, stock: ResourceRef, amount: u64, source: Created },
    /// An artifact's ownership moved, with its disk use.
    Owner {
        artifact: Entity,
        from: Entity,
        to: Entity,
        bytes: u64,
        owner: ArtifactId,
        updated_at: SimTime,
        created_by_added: bool,
    },
    /// A principal frozen by the rule was thawed.
    Thaw { entity: Entity, frozen: Frozen, rescue: bool },
    /// A disk allocation as it was.
    DiskQuota { entity: Entity, before: u64 },
}

fn record(world: &mut World, undo: LedgerUndo) {
    journal::record(world, Undo::Ledger(undo));
}

/// Applies the reversal of one change (the journal calls this, newest first).
pub(crate) fn undo(world: &mut World, undo: LedgerUndo) {
    match undo {
        LedgerUndo::Scrip { from, to, amount } => {
            let taken = take_back(world, to, &ResourceRef::Scrip, amount);
            give_back(world, from, &ResourceRef::Scrip, taken);
            let mut activity = world.resource_mut::<Activity>();
            activity.scrip_moved = activity.scrip_moved.saturating_sub(amount);
        }
        LedgerUndo::Stock { from, to, stock, amount } => {
            let taken = take_back(world, to, &stock, amount);
            give_back(world, from, &stock, taken);
        }
        LedgerUndo::Limit { entity, name, before } => {
            if let Some(mut quota) = world.get_mut::<Quota>(entity) {
                quota.set(&name, before);
            }
        }
        LedgerUndo::DiskUse { entity, delta } => {
            if let Some(mut standing) = world.get_mut::<Standing>(entity) {
                standing.disk_used = standing.disk_used.saturating_add_signed(-delta);
            }
        }
        LedgerUndo::Hold { entity, holder, amount } => {
            pay_out(world, holder, entity, amount);
        }
        LedgerUndo::Release { holder, entity, amount, moved } => {
            let taken = take_back(world, entity, &ResourceRef::Scrip, amount);
            *world.resource_mut::<Held>().slot(holder) += taken;
            if moved {
                let mut activity = world.resource_mut::<Activity>();
                activity.scrip_moved = activity.scrip_moved.saturating_sub(amount);
            }
        }
        LedgerUndo::Create { entity, stock, amount, source } => {
            let taken = take_back(world, entity, &stock, amount);
            if stock == ResourceRef::Scrip {
                let mut supply = world.resource_mut::<Supply>();
                match source {
                    Created::Minted => supply.minted -= taken.min(supply.minted),
                    Created::Granted => supply.granted -= taken.min(supply.granted),
                }
            }
        }
        LedgerUndo::Owner { artifact, from, to, bytes, owner, updated_at, created_by_added } => {
            if let Some(mut standing) = world.get_mut::<Standing>(to) {
                standing.disk_used = standing.disk_used.saturating_sub(bytes);
            }
            if let Some(mut standing) = world.get_mut::<Standing>(from) {
                standing.disk_used += bytes;
            }
            let Ok(mut moved) = world.get_entity_mut(artifact) else { return };
            if let Some(mut artifact) = moved.get_mut::<Artifact>() {
                artifact.owner = owner;
                artifact.updated_at = updated_at;
            }
            if created_by_added {
                moved.remove::<CreatedBy>();
            }
            super::discovery::touch(world, artifact);
        }
        LedgerUndo::Thaw { entity, frozen, rescue } => {
            if let Ok(mut principal) = world.get_entity_mut(entity) {
                principal.insert(frozen);
            }
            let mut activity = world.resource_mut::<Activity>();
            activity.thaws = activity.thaws.saturating_sub(1);
            activity.rescues = activity.rescues.saturating_sub(u64::from(rescue));
        }
        LedgerUndo::DiskQuota { entity, before } => {
            if let Some(mut standing) = world.get_mut::<Standing>(entity) {
                standing.disk_quota = before.max(standing.disk_used);
            }
        }
    }
}

/// Takes up to `amount` of `stock` from `entity` (no more than it can give); returns
/// what it took.
fn take_back(world: &mut World, entity: Entity, stock: &ResourceRef, amount: u64) -> u64 {
    let Some(mut standing) = world.get_mut::<Standing>(entity) else { return 0 };
    let taken = amount.min(stock.available(&standing));
    if let Some(held) = stock.holding_mut(&mut standing) {
        *held -= taken;
    }
    taken
}

fn give_back(world: &mut World, entity: Entity, stock: &ResourceRef, amount: u64) {
    if let Some(mut standing) = world.get_mut::<Standing>(entity)
        && let Some(held) = stock.holding_mut(&mut standing)
    {
        *held = held.saturating_add(amount);
    }
}

/// The world's machinery (services, gateways, the handbook) is owned by the `kernel`
/// principal, which is allotted exactly the bytes it stores.
pub(crate) fn allot_disk(world: &mut World, entity: Entity, bytes: u64) {
    if let Some(mut standing) = world.get_mut::<Standing>(entity) {
        standing.disk_quota += bytes;
        standing.disk_used += bytes;
    }
}

/// Reserves `amount` of `payer`'s LLM budget for a call to a model, or says how much
/// it holds if that is not enough. Measured use: never journaled.
pub(crate) fn reserve_llm_budget(world: &mut World, payer: Entity, amount: u64) -> Result<(), u64> {
    let Some(mut standing) = world.get_mut::<Standing>(payer) else { return Err(0) };
    if standing.llm_budget_micro_usd < amount {
        return Err(standing.llm_budget_micro_usd);
    }
    standing.llm_budget_micro_usd -= amount;
    Ok(())
}

/// Settles a call to a model: the reservation back, then `cost` charged (never more
/// than the payer holds: the reservation was an estimate). Returns what was charged.
pub(crate) fn settle_llm_budget(world: &mut World, payer: Entity, reserved: u64, cost: u64) -> u64 {
    let Some(mut standing) = world.get_mut::<Standing>(payer) else { return 0 };
    standing.llm_budget_micro_usd = standing.llm_budget_micro_usd.saturating_add(reserved);
    let charged = cost.min(standing.llm_budget_micro_usd);
    standing.llm_budget_micro_usd -= charged;
    charged
}

/// Charges up to `cost` of LLM budget for something consumed outside the world (an MCP
/// call); returns what was charged.
pub(crate) fn charge_llm_budget(world: &mut World, payer: Entity, cost: u64) -> u64 {
    settle_llm_budget(world, payer, 0, cost)
}

/// Charges up to `amount` of `payer`'s scrip for something consumed outside the world
/// (an MCP call), paid to the world's own principal `to`. Measured use: never
/// journaled, so it stays paid when the action that asked fails. Returns what was
/// charged (never more than the payer holds: it may have spent since it asked).
pub(crate) fn charge_scrip(world: &mut World, payer: Entity, to: Entity, amount: u64) -> u64 {
    let charged = world.get::<Standing>(payer).map_or(0, |s| amount.min(s.scrip));
    if charged == 0 || payer == to {
        return 0;
    }
    if let Some(mut standing) = world.get_mut::<Standing>(payer) {
        standing.scrip -= charged;
    }
    give_back(world, to, &ResourceRef::Scrip, charged);
    let mut activity = world.resource_mut::<Activity>();
    activity.scrip_moved = activity.scrip_moved.saturating_add(charged);
    charged
}

/// Scrip created by the mint for `entity`.
pub(crate) fn mint_scrip(world: &mut World, entity: Entity, amount: u64) {
    let Some(mut standing) = world.get_mut::<Standing>(entity) else { return };
    let Some(credited) = standing.scrip.checked_add(amount) else { return };
    standing.scrip = credited;
    world.resource_mut::<Supply>().minted += amount;
    record(world, LedgerUndo::Create { entity, stock: ResourceRef::Scrip, amount, source: Created::Minted });
}

/// Pays scrip a holder held back to a principal (a refund, or a winner's excess).
pub(crate) fn release_scrip(world: &mut World, holder: Holder, entity: Entity, amount: u64) {
    release(world, holder, entity, amount, false);
}

/// Pays up to `amount` of what `holder` holds to `entity`; returns what it paid.
fn pay_out(world: &mut World, holder: Holder, entity: Entity, amount: u64) -> u64 {
    let amount = {
        let mut held = world.resource_mut::<Held>();
        let slot = held.slot(holder);
        let amount = amount.min(*slot);
        *slot -= amount;
        amount
    };
    give_back(world, entity, &ResourceRef::Scrip, amount);
    amount
}

fn release(world: &mut World, holder: Holder, entity: Entity, amount: u64, moved: bool) -> u64 {
    let amount = pay_out(world, holder, entity, amount);
    if moved {
        let mut activity = world.resource_mut::<Activity>();
        activity.scrip_moved = activity.scrip_moved.saturating_add(amount);
    }
    record(world, LedgerUndo::Release { holder, entity, amount, moved });
    amount
}

/// Shares out `per_head` scrip held by `holder` to every principal but `except` and
/// the world's own, one more to those `one_more` picks (UBI). Returns what it paid.
pub(crate) fn release_shares(
    world: &mut World,
    holder: Holder,
    except: Entity,
    per_head: u64,
    one_more: impl Fn(Entity) -> bool,
) -> u64 {
    let mut paid = 0u64;
    let mut standings = world
        .query_filtered::<(Entity, &mut Standing), (With<ArtifactId>, Without<crate::world::components::System>)>();
    for (entity, mut standing) in standings.iter_mut(world) {
        if entity != except {
            let share = per_head + u64::from(one_more(entity));
            standing.scrip = standing.scrip.saturating_add(share);
            paid += share;
        }
    }
    {
        let mut held = world.resource_mut::<Held>();
        let slot = held.slot(holder);
        *slot = slot.saturating_sub(paid);
    }
    let mut activity = world.resource_mut::<Activity>();
    activity.scrip_moved = activity.scrip_moved.saturating_add(paid);
    paid
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
        record(self.world, LedgerUndo::Scrip { from, to, amount });
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

    fn standing_mut(&mut self, entity: Entity) -> Result<Mut<'_, Standing>, KernelError> {
        self.world.get_mut::<Standing>(entity).ok_or_else(|| super::lost(entity))
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
                    let undo =
                        LedgerUndo::Stock { from: self.caller_entity, to: to_entity, stock: stock.clone(), amount };
                    record(self.world, undo);
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
        self.set_limit(self.caller_entity, name, Some(from_limit - amount));
        self.set_limit(to_entity, name, Some(credited));
        Ok(())
    }

    /// Sets a rate limit, journaling the one it replaces.
    fn set_limit(&mut self, entity: Entity, name: &Arc<str>, limit: Option<u64>) {
        let Some(mut quota) = self.world.get_mut::<Quota>(entity) else { return };
        let before = quota.limit(name);
        quota.set(name, limit);
        record(self.world, LedgerUndo::Limit { entity, name: name.clone(), before });
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
        self.spawn_owned(id, None)
    }

    /// [`Kernel::spawn_principal`], but owned by itself (a commons belongs to no one).
    pub(crate) fn spawn_self_owned_principal(&mut self, id: &str) -> Result<Entity, KernelError> {
        let own = self.new_id(id)?;
        self.spawn_owned(id, Some(own))
    }

    fn spawn_owned(&mut self, id: &str, owner: Option<ArtifactId>) -> Result<Entity, KernelError> {
        let new_id = self.new_id(id)?;
        let limits = Arc::new(self.world.resource::<Config>().defaults.quota.keys().map(|k| (k.clone(), 0)).collect());
        let artifact = Artifact {
            owner: owner.unwrap_or_else(|| self.caller.clone()),
            created_at: self.now,
            updated_at: self.now,
            content: Box::from(""),
            details: None,
        };
        let contract = AccessContract(ArtifactId::trusted(BuiltinContract::SelfOwned.id()));
        let entity =
            self.world.spawn((new_id.clone(), artifact, Standing::default(), Quota::new(limits), contract)).id();
        journal::record(self.world, Undo::Created(entity));
        self.emit(EventKind::PrincipalSpawned { id: new_id });
        Ok(entity)
    }

    /// A fresh id: valid, and not in use in this world.
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
            self.move_ownership(artifact_entity, self.caller_entity, to_entity, &to_id)?;
        }
        self.emit(EventKind::OwnershipTransfer { artifact: artifact_id, to: to_id, disk_bytes: bytes });
        Ok(())
    }

    /// Moves `artifact`, and the disk it occupies, from its owner `from` to principal
    /// `to`, which needs that much free disk. The creator is kept when ownership first
    /// leaves it.
    pub(crate) fn move_ownership(
        &mut self,
        artifact: Entity,
        from: Entity,
        to: Entity,
        to_id: &ArtifactId,
    ) -> Result<(), KernelError> {
        let bytes = state::artifact_bytes(self.world, artifact);
        let free = self.standing(to)?.disk_free();
        if free < bytes {
            return Err(insufficient(ErrorCode::InsufficientResource, to_id, "disk", bytes, free)
                .with("hint", format!("{to_id} has {free} bytes of disk free; the artifact needs {bytes}")));
        }
        let Some(current) = self.world.get::<Artifact>(artifact) else {
            return Err(super::lost(artifact));
        };
        let (owner, updated_at) = (current.owner.clone(), current.updated_at);
        self.standing_mut(from)?.disk_used -= bytes;
        self.standing_mut(to)?.disk_used += bytes;
        let now = self.now;
        let mut moved = self.world.entity_mut(artifact);
        let created_by_added = !moved.contains::<CreatedBy>();
        if created_by_added {
            // The creator was the first owner; now that it is leaving, keep it.
            moved.insert(CreatedBy(owner.clone()));
        }
        if let Some(mut artifact) = moved.get_mut::<Artifact>() {
            artifact.owner = to_id.clone();
            artifact.updated_at = now;
        }
        super::discovery::touch(self.world, artifact);
        record(self.world, LedgerUndo::Owner { artifact, from, to, bytes, owner, updated_at, created_by_added });
        Ok(())
    }

    /// Changes `owner`'s disk usage by `delta` bytes (an artifact it owns grew, shrank
    /// or went), refusing growth beyond its free allocation.
    pub(crate) fn use_disk(&mut self, owner: Entity, delta: i64) -> Result<(), KernelError> {
        if delta == 0 {
            return Ok(());
        }
        self.ensure_disk(owner, delta)?;
        let mut standing = self.standing_mut(owner)?;
        standing.disk_used = standing.disk_used.saturating_add_signed(delta);
        record(self.world, LedgerUndo::DiskUse { entity: owner, delta });
        Ok(())
    }

    /// Refuses growth of `delta` bytes beyond `principal`'s free allocation.
    pub(crate) fn ensure_disk(&self, principal: Entity, delta: i64) -> Result<(), KernelError> {
        let standing = self.standing(principal)?;
        let grow = delta.max(0) as u64;
        if grow > standing.disk_free() {
            let who = self.world.get::<ArtifactId>(principal).map_or_else(String::new, ToString::to_string);
            return Err(KernelError::new(
                ErrorCode::InsufficientResource,
                format!("{who} has {} bytes of disk free, needs {grow}", standing.disk_free()),
            )
            .with("principal", who)
            .with("resource", "disk")
            .with("needed", grow)
            .with("available", standing.disk_free()));
        }
        Ok(())
    }

    /// Moves `amount` scrip from `entity` into `holder`'s keeping (a bid, a task's
    /// reward), or refuses with `INSUFFICIENT_FUNDS` and changes nothing.
    pub(crate) fn hold_scrip(&mut self, entity: Entity, holder: Holder, amount: u64) -> Result<(), KernelError> {
        let held = self.standing(entity)?.scrip;
        if held < amount {
            let who = self.world.get::<ArtifactId>(entity).cloned().unwrap_or_else(|| self.caller.clone());
            return Err(insufficient(ErrorCode::InsufficientFunds, &who, "scrip", amount, held));
        }
        let total = self.world.resource::<Held>().of(holder).checked_add(amount);
        let Some(total) = total else {
            return Err(KernelError::invalid(format!("holding {amount} more scrip would overflow")));
        };
        self.standing_mut(entity)?.scrip = held - amount;
        *self.world.resource_mut::<Held>().slot(holder) = total;
        record(self.world, LedgerUndo::Hold { entity, holder, amount });
        Ok(())
    }

    /// Gives scrip `holder` held back to `entity` (a cancelled bid, a refunded
    /// reward), then thaws it if that was what it lacked.
    pub(crate) fn release_scrip(&mut self, holder: Holder, entity: Entity, amount: u64) {
        release(self.world, holder, entity, amount, false);
        if let Some(id) = self.world.get::<ArtifactId>(entity).cloned() {
            self.thaw_if_rescued(entity, &id);
        }
    }

    /// Pays scrip `holder` held for `from` to `to` (a task's reward to its worker): a
    /// movement between the two, counted as such.
    pub(crate) fn pay_from_held(&mut self, holder: Holder, from: Entity, to: Entity, amount: u64) {
        let paid = release(self.world, holder, to, amount, true);
        let agents = (activity::is_agent(self.world, from), activity::is_agent(self.world, to));
        self.world.resource_mut::<Activity>().met(agents, from, to);
        if paid > 0
            && let Some(id) = self.world.get::<ArtifactId>(to).cloned()
        {
            self.thaw_if_rescued(to, &id);
        }
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
        let undo =
            LedgerUndo::Create { entity: to_entity, stock: ResourceRef::Scrip, amount, source: Created::Granted };
        record(self.world, undo);
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
                let limit = self.world.get::<Quota>(to_entity).ok_or_else(|| KernelError::not_a_principal(to))?;
                // Granting to an unlimited rate changes nothing: it stays unlimited.
                if let Some(limit) = limit.limit(name) {
                    let raised = limit.checked_add(amount).ok_or_else(|| overflow(&to_id, name))?;
                    self.set_limit(to_entity, name, Some(raised));
                }
            }
            stock => {
                let mut standing = self.standing_mut(to_entity)?;
                if let Some(held) = stock.holding_mut(&mut standing) {
                    *held = held.checked_add(amount).ok_or_else(|| overflow(&to_id, stock.name()))?;
                }
                let undo =
                    LedgerUndo::Create { entity: to_entity, stock: stock.clone(), amount, source: Created::Granted };
                record(self.world, undo);
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
                if self.world.get::<Quota>(entity).is_none() {
                    return Err(KernelError::not_a_principal(principal));
                }
                self.set_limit(entity, name, limit);
            }
            ResourceRef::Disk => {
                let Some(limit) = limit else {
                    return Err(KernelError::invalid("a disk allocation must be a number of bytes"));
                };
                let standing = self.standing(entity)?;
                let (used, before) = (standing.disk_used, standing.disk_quota);
                if limit < used {
                    return Err(KernelError::invalid(format!(
                        "{id} already uses {used} bytes of disk; the allocation cannot be {limit}"
                    ))
                    .with("disk_used", used));
                }
                self.standing_mut(entity)?.disk_quota = limit;
                record(self.world, LedgerUndo::DiskQuota { entity, before });
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
    /// (beyond the freeze rule) before it is thawed. A freeze is the world's answer to
    /// a principal running dry, which is measured, not an effect of an action: a
    /// roll-back does not thaw it.
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
        // Nearly every credit goes to a principal that is not frozen: ask that first.
        let Some((frozen_by_rule, needs)) =
            self.world.get::<Frozen>(entity).map(|f| (f.by_rule, f.needs_llm_budget_micro_usd))
        else {
            return;
        };
        let rule = self.world.resource::<Config>().freeze;
        let dry = self
            .world
            .get::<Standing>(entity)
            .is_none_or(|s| rule.runs_dry(s.scrip, s.llm_budget_micro_usd).is_some() || s.llm_budget_micro_usd < needs);
        if frozen_by_rule
            && !dry
            && let Some(frozen) = self.world.entity_mut(entity).take::<Frozen>()
        {
            // UBI or a grant from the world's machinery thaws too, but only another
            // principal's help counts as a rescue.
            let rescue = !self.is_system(self.caller_entity);
            record(self.world, LedgerUndo::Thaw { entity, frozen, rescue });
            let mut activity = self.world.resource_mut::<Activity>();
            activity.thaws += 1;
            activity.rescues += u64::from(rescue);
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
