//! Quotas as kernel state (SPEC §2–§3): limits live on each principal's [`Quota`],
//! usage in its [`Usage`] windows, and the kernel checks before it acts and records
//! what was measured after.
//!
//! Rates are renewable per window: `cpu` (CPU-microseconds of sandbox calls),
//! `llm_tokens`, `llm_calls`, `actions` (one per action a principal performs) and any
//! rate a scene declares. `memory` is an allocation: the most heap one call charged to
//! the principal may use. A resource without a limit is unlimited and not tracked.
//!
//! Checks use an estimate (for CPU, one microsecond: a principal at its limit is
//! refused, one below it may run its call); the measured use is recorded after, so a
//! window can overshoot by the last call — the next check then waits.

use bevy_ecs::prelude::*;

use super::{
    ErrorCode, Kernel, KernelError,
    ledger::ResourceRef,
    positive,
    rates::{Usage, Window, bucket_width},
};
use crate::kernel::{Quota, Standing};
use crate::world::{
    config::Config,
    ids::{self, ArtifactId},
    time::{SimClock, SimTime},
};

/// The per-call allocation among the quota resources.
pub const MEMORY: &str = "memory";

fn window_of(world: &World) -> (SimTime, SimTime) {
    let window = world.resource::<Config>().window;
    (window, bucket_width(window, world.resource::<SimClock>().dt()))
}

fn quota_name(world: &World, resource: &str) -> Result<std::sync::Arc<str>, KernelError> {
    match ResourceRef::resolve(world.resource::<Config>(), resource)? {
        ResourceRef::Limit(name) => Ok(name),
        other => Err(KernelError::invalid(format!("{} is a holding, not a quota", other.name()))),
    }
}

fn principal(world: &World, id: &str) -> Result<Entity, KernelError> {
    ids::lookup(world, id)
        .filter(|&e| world.get::<Standing>(e).is_some())
        .ok_or_else(|| KernelError::not_a_principal(id))
}

/// Usage of `resource` by `entity` in the window ending now.
fn used(world: &World, entity: Entity, resource: &str) -> u64 {
    used_at(world, entity, resource, world.resource::<SimClock>().now())
}

/// Usage of `resource` by `entity` in the window ending at `now`.
pub(crate) fn used_at(world: &World, entity: Entity, resource: &str, now: SimTime) -> u64 {
    world.get::<Usage>(entity).and_then(|u| u.windows.get(resource)).map_or(0, |w| w.peek(now))
}

/// How much more of a rate `id` may use now (`None`: unlimited). For `memory`, the
/// allocation itself.
pub fn get_available_capacity(world: &World, id: &str, resource: &str) -> Result<Option<u64>, KernelError> {
    let name = quota_name(world, resource)?;
    let entity = principal(world, id)?;
    let Some(limit) = world.get::<Quota>(entity).and_then(|q| q.limit(&name)) else { return Ok(None) };
    if &*name == MEMORY {
        return Ok(Some(limit));
    }
    Ok(Some(limit.saturating_sub(used(world, entity, &name))))
}

/// Usage of a rate by `id` in the current window.
pub fn get_usage(world: &World, id: &str, resource: &str) -> Result<u64, KernelError> {
    let name = quota_name(world, resource)?;
    Ok(used(world, principal(world, id)?, &name))
}

/// Whether `amount` more of `resource` would exceed `id`'s quota now.
pub fn would_exceed_quota(world: &World, id: &str, resource: &str, amount: i64) -> Result<bool, KernelError> {
    if amount < 0 {
        return Err(KernelError::invalid(format!("an amount of {resource} cannot be negative, got {amount}")));
    }
    Ok(get_available_capacity(world, id, resource)?.is_some_and(|available| (amount as u64) > available))
}

/// Why `amount` more of a rate does not fit: what a `QUOTA_EXCEEDED` reports.
struct Shortfall<'a> {
    resource: &'a str,
    limit: u64,
    used: u64,
    amount: u64,
    /// Until it fits; `None` if it never will (more than the limit itself).
    wait: Option<SimTime>,
}

impl Kernel<'_> {
    /// Refuses with `QUOTA_EXCEEDED` (and when to retry) unless `amount` more of the
    /// rate `resource` fits `payer`'s limit now.
    pub(crate) fn admit(&mut self, payer: Entity, resource: &str, amount: u64) -> Result<(), KernelError> {
        let Some(limit) = self.world.get::<Quota>(payer).and_then(|q| q.limit(resource)) else { return Ok(()) };
        let now = self.now;
        let (used, wait) = match self.world.get_mut::<Usage>(payer) {
            Some(mut usage) => match usage.windows.get_mut(resource) {
                Some(rate) => (rate.usage(now), rate.wait_for(now, amount, limit)),
                None => (0, (amount <= limit).then_some(SimTime::ZERO)),
            },
            None => (0, (amount <= limit).then_some(SimTime::ZERO)),
        };
        match wait {
            Some(SimTime::ZERO) => Ok(()),
            wait => Err(self.over(payer, Shortfall { resource, limit, used, amount, wait })),
        }
    }

    /// The `QUOTA_EXCEEDED` refusal of `payer`'s `shortfall`.
    fn over(&self, payer: Entity, shortfall: Shortfall) -> KernelError {
        let who = self.world.get::<ArtifactId>(payer).cloned().unwrap_or_else(|| self.caller.clone());
        let Shortfall { resource, limit, used, amount, wait } = shortfall;
        let error = KernelError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "{who} has used {used} of its {limit} {resource} in the last {} s; {amount} more does not fit{}",
                window_of(self.world).0.as_secs_f64(),
                match wait {
                    Some(wait) => format!(" for {} s", wait.as_secs_f64()),
                    None => ", ever: it is more than the limit".to_owned(),
                }
            ),
        )
        .with("principal", who.as_str())
        .with("resource", resource)
        .with("limit", limit)
        .with("used", used)
        .with("needed", amount);
        match wait {
            Some(wait) => error.with_retry_after(wait.as_secs_f64()),
            None => error,
        }
    }

    /// Records `amount` of the rate `resource` used by `payer` now (nothing is kept
    /// for an unlimited rate).
    pub(crate) fn record_usage(&mut self, payer: Entity, resource: &str, amount: u64) {
        if amount == 0 {
            return;
        }
        let Some(name) =
            self.world.get::<Quota>(payer).and_then(|q| q.limits().get_key_value(resource)).map(|(k, _)| k.clone())
        else {
            return;
        };
        let now = self.now;
        let (window, width) = window_of(self.world);
        let mut entity = self.world.entity_mut(payer);
        if !entity.contains::<Usage>() {
            entity.insert(Usage::default());
        }
        if let Some(mut usage) = entity.get_mut::<Usage>() {
            usage.windows.entry(name).or_insert_with(|| Window::new(window, width)).record(now, amount);
        }
    }

    /// Checks a call's measured peak heap against its payer's memory allocation.
    pub(crate) fn check_memory(&self, payer: Entity, peak_bytes: u64) -> Result<(), KernelError> {
        let Some(limit) = self.world.get::<Quota>(payer).and_then(|q| q.limit(MEMORY)) else { return Ok(()) };
        if peak_bytes <= limit {
            return Ok(());
        }
        let who = self.world.get::<ArtifactId>(payer).cloned().unwrap_or_else(|| self.caller.clone());
        Err(KernelError::new(
            ErrorCode::QuotaExceeded,
            format!("the call needed {peak_bytes} bytes of memory; {who}'s allocation is {limit}"),
        )
        .with("principal", who.as_str())
        .with("resource", MEMORY)
        .with("limit", limit)
        .with("needed", peak_bytes))
    }

    /// Checks and records in one pass: `amount` of the rate `resource` is used by
    /// `payer` now if it fits, and refused with `QUOTA_EXCEEDED` otherwise.
    pub(crate) fn take_rate(&mut self, payer: Entity, resource: &str, amount: u64) -> Result<(), KernelError> {
        let now = self.now;
        let Some(limit) = self.world.get::<Quota>(payer).and_then(|q| q.limit(resource)) else { return Ok(()) };
        if amount == 0 {
            return Ok(());
        }
        let refused = match self.world.get_mut::<Usage>(payer) {
            Some(mut usage) => match usage.windows.get_mut(resource) {
                Some(rate) => match rate.wait_for(now, amount, limit) {
                    Some(SimTime::ZERO) => {
                        rate.record(now, amount);
                        return Ok(());
                    }
                    wait => Some((rate.usage(now), wait)),
                },
                None => None,
            },
            None => None,
        };
        let (used, wait) = match refused {
            Some(refused) => refused,
            // No window yet: the first use opens one.
            None if amount <= limit => {
                self.record_usage(payer, resource, amount);
                return Ok(());
            }
            None => (0, None),
        };
        Err(self.over(payer, Shortfall { resource, limit, used, amount, wait }))
    }

    /// Records `amount` of a rate as used by the caller, if it fits its limit.
    pub fn consume_quota(&mut self, resource: &str, amount: i64) -> Result<(), KernelError> {
        let config = self.world.resource::<Config>();
        if !config.is_rate(resource) {
            if resource == MEMORY {
                return Err(KernelError::invalid("memory is an allocation per call, not consumed over a window"));
            }
            // Not a rate: the same error as for every other quota read.
            quota_name(self.world, resource)?;
            return Err(KernelError::invalid(format!("{resource} is not a rate")));
        }
        if amount < 0 {
            return Err(KernelError::invalid(format!("an amount of {resource} cannot be negative, got {amount}")));
        }
        self.take_rate(self.caller_entity, resource, amount as u64)
    }

    /// Moves `amount` of the caller's limit of a quota resource to `to`.
    pub fn transfer_quota(&mut self, to: &str, resource: &str, amount: i64) -> Result<(), KernelError> {
        quota_name(self.world, resource)?;
        positive(amount, "amount")?;
        self.transfer_resource(to, resource, amount)
    }
}
