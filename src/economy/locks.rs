//! Locks: named, exclusive, and always temporary.
//!
//! Anyone may take a free lock for some simulated seconds; while it is held nobody
//! else can, and an attempt says who holds it and until when (an answer, not an
//! error: waiting is a normal outcome). The holder may take it again to renew it
//! (from now, for the seconds it asks), and release it early. A lock nobody released
//! runs out at its expiry time on the simulated clock — in the Settle phase of the
//! step that reaches it, or at once if someone asks for it in that step first — so a
//! holder that stops acting cannot hold anything forever, and two runs of a world
//! expire the same locks at the same moments.
//!
//! A name means nothing to the kernel: agents agree among themselves what it guards
//! (an artifact, a task, a turn).

use std::collections::{BTreeMap, BTreeSet};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services::{self, LOCKS_ID};
use crate::{
    kernel::{ErrorCode, EventKind, EventLog, KERNEL_ID, Kernel, KernelError, journal},
    world::{
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

/// Locks one holder may hold at once.
pub const MAX_LOCKS_PER_HOLDER: usize = 32;

/// The longest a lock may be taken for at once, in seconds (renewing extends it).
pub const MAX_LOCK_SECS: f64 = 86_400.0;

/// Every lock held, and when each runs out.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locks {
    held: BTreeMap<String, Lock>,
    /// The same locks by expiry time, so the Settle phase finds the due ones without
    /// looking at the rest.
    expiries: BTreeSet<(SimTime, String)>,
}

/// One held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub holder: ArtifactId,
    pub acquired_at: SimTime,
    pub expires_at: SimTime,
}

impl Locks {
    /// The lock `name`, if someone holds it (it may be due to expire this step).
    pub fn get(&self, name: &str) -> Option<&Lock> {
        self.held.get(name)
    }

    /// Locks held, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Lock)> {
        self.held.iter()
    }

    fn remove(&mut self, name: &str) -> Option<Lock> {
        let lock = self.held.remove(name)?;
        self.expiries.remove(&(lock.expires_at, name.to_owned()));
        Some(lock)
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Acquire {
        name: String,
        secs: f64,
    }
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    match method {
        "acquire" => {
            let a: Acquire = services::args(method, input)?;
            let secs = SimTime::from_secs_f64(a.secs)
                .filter(|t| t.millis() > 0 && a.secs <= MAX_LOCK_SECS)
                .ok_or_else(|| KernelError::invalid(format!("secs must be above 0 and at most {MAX_LOCK_SECS}")))?;
            kernel.acquire_lock(&a.name, secs)
        }
        "release" => kernel.release_lock(&services::args::<Name>(method, input)?.name),
        "status" => Ok(kernel.lock_status(&services::args::<Name>(method, input)?.name)),
        _ => Err(services::no_such_method(LOCKS_ID, method)),
    }
}

fn lock_json(name: &str, lock: Option<&Lock>) -> Value {
    match lock {
        Some(lock) => json!({
            "name": name,
            "held": true,
            "holder": lock.holder,
            "acquired_at": lock.acquired_at.as_secs_f64(),
            "expires_at": lock.expires_at.as_secs_f64(),
        }),
        None => json!({ "name": name, "held": false }),
    }
}

/// Lets go of the lock `name` if it has run out by `now`, saying so on the log.
fn expire_if_due(world: &mut World, name: &str, now: SimTime) {
    let due = world.resource::<Locks>().held.get(name).is_some_and(|lock| lock.expires_at <= now);
    if !due {
        return;
    }
    if let Some(lock) = world.resource_mut::<Locks>().remove(name) {
        let expired = EventKind::LockExpired { name: name.to_owned(), holder: lock.holder };
        world.resource_mut::<EventLog>().push(now, ArtifactId::trusted(KERNEL_ID), expired);
    }
}

/// Settle phase: locks whose time is up are let go, in expiry then name order.
pub(crate) fn expire_due_locks(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    loop {
        let next = world.resource::<Locks>().expiries.first().cloned();
        let Some((at, name)) = next.filter(|(at, _)| *at <= now) else { break };
        // The index always matches `held`; drop the entry regardless so a mismatch
        // could not loop.
        world.resource_mut::<Locks>().expiries.remove(&(at, name.clone()));
        if world.resource::<Locks>().held.get(&name).is_some_and(|l| l.expires_at == at) {
            expire_if_due(world, &name, now);
        }
    }
}

impl Kernel<'_> {
    /// Journals the lock `name` as it is (or that nobody holds it), before a change.
    fn save_lock(&mut self, name: &str) {
        let key = name.to_owned();
        journal::save_with::<Locks, _>(
            self.world,
            |locks| locks.held.get(&key).cloned().map(|lock| (key.clone(), lock)).ok_or(key.clone()),
            |locks, before| match before {
                Ok((key, lock)) => {
                    locks.remove(&key);
                    locks.expiries.insert((lock.expires_at, key.clone()));
                    locks.held.insert(key, lock);
                }
                Err(key) => {
                    locks.remove(&key);
                }
            },
        );
    }

    /// Takes the lock `name` for `secs`, or renews it for its holder; if someone else
    /// holds it, says who and until when.
    pub fn acquire_lock(&mut self, name: &str, secs: SimTime) -> Result<Value, KernelError> {
        let now = self.now;
        // A lock past its time is free, whether or not the Settle phase has let go of
        // it yet; nothing changes until every check has passed.
        let current = self.world.resource::<Locks>().held.get(name).filter(|l| l.expires_at > now).cloned();
        let renewed = match &current {
            Some(lock) if lock.holder != self.caller => {
                let mut answer = lock_json(name, Some(lock));
                answer["acquired"] = false.into();
                return Ok(answer);
            }
            Some(_) => true,
            None => {
                let locks = self.world.resource::<Locks>();
                let held = locks.held.values().filter(|l| l.holder == self.caller && l.expires_at > now).count();
                if held >= MAX_LOCKS_PER_HOLDER {
                    return Err(KernelError::invalid(format!(
                        "{} holds {held} locks, the most one holder may; release one first",
                        self.caller
                    ))
                    .with("limit", MAX_LOCKS_PER_HOLDER as u64));
                }
                false
            }
        };
        self.save_lock(name);
        expire_if_due(self.world, name, now);
        let expires_at = now.saturating_add(secs);
        let acquired_at = current.map_or(now, |lock| lock.acquired_at);
        let mut locks = self.world.resource_mut::<Locks>();
        locks.remove(name);
        let lock = Lock { holder: self.caller.clone(), acquired_at, expires_at };
        locks.expiries.insert((expires_at, name.to_owned()));
        locks.held.insert(name.to_owned(), lock.clone());
        self.emit(EventKind::LockAcquired { name: name.to_owned(), expires_at: expires_at.as_secs_f64(), renewed });
        let mut answer = lock_json(name, Some(&lock));
        answer["acquired"] = true.into();
        answer["renewed"] = renewed.into();
        Ok(answer)
    }

    /// Lets go of the lock `name`, which the caller must hold.
    pub fn release_lock(&mut self, name: &str) -> Result<Value, KernelError> {
        let now = self.now;
        let lock = self.world.resource::<Locks>().held.get(name).filter(|l| l.expires_at > now).cloned();
        let Some(lock) = lock else {
            return Err(
                KernelError::new(ErrorCode::NotFound, format!("nobody holds the lock {name:?}")).with("name", name)
            );
        };
        if lock.holder != self.caller {
            return Err(KernelError::new(
                ErrorCode::NotOwner,
                format!("the lock {name:?} is held by {}; only its holder may release it", lock.holder),
            )
            .with("name", name)
            .with("holder", lock.holder.as_str()));
        }
        self.save_lock(name);
        self.world.resource_mut::<Locks>().remove(name);
        self.emit(EventKind::LockReleased { name: name.to_owned() });
        Ok(json!({ "name": name, "released": true }))
    }

    /// Who holds the lock `name` and until when (a lock past its time is free).
    pub fn lock_status(&self, name: &str) -> Value {
        let lock = self.world.resource::<Locks>().held.get(name).filter(|l| l.expires_at > self.now);
        lock_json(name, lock)
    }
}
