//! Transactions: every action is atomic, and an invoke undoes its whole chain when it
//! fails (SPEC §5.6).
//!
//! While a transaction is open the kernel keeps an undo journal. Every change that is
//! an *effect* in the world — holdings moved, artifacts created, written or deleted,
//! records of the mint, escrow, task board and the other services — pushes the entry
//! that reverses it. What is *measured* — CPU and memory recorded in rate windows,
//! LLM and MCP costs, rate-limited calls, invocation statistics, heartbeats — pushes
//! nothing, and so stays charged whatever becomes of the action.
//!
//! A [`Savepoint`] is the journal's length when it was taken. Rolling back to it pops
//! the entries above it, newest first, and applies each; savepoints nest, so code that
//! catches a failed nested invoke loses only that call's effects and goes on. Events
//! emitted inside a transaction are held by the [`EventLog`] until the outermost
//! savepoint ends; those of a rolled-back part (but for records of what was consumed)
//! are marked `reverted`, so the event stream, the report and the window agree with
//! the ledger.
//!
//! Why a journal rather than a copy of the world or a staged write set: an action that
//! succeeds — nearly all of them — then costs a few pushes of small records and a
//! length check, reads see the world as it is with no second lookup, and a failure
//! costs in proportion to what it had done.
//!
//! A reversal is exact unless something measured consumed part of what it would take
//! back (a principal paid an LLM or MCP cost, charged at once, out of scrip or budget
//! it received inside the failing chain): then it takes back what is left, and the
//! books still balance.
//!
//! The journal also keeps the price limits of open invokes (`max_price`, SPEC §5.7):
//! what the payer has paid in each, so a nested price that would take the total past
//! the limit is refused, and a refunded price no longer counts.
//!
//! The journal lives in the [`EventLog`], which holds the transaction's events: an
//! action begins and ends both at once, and finding a resource in the world costs
//! more than the rest of beginning and ending, so one lookup serves both.

use bevy_ecs::prelude::*;

use super::{EventLog, events::Reverted, ledger::LedgerUndo};

/// The entry that reverses one change.
pub(crate) enum Undo {
    /// A change to holdings, reversed by the ledger.
    Ledger(LedgerUndo),
    /// An entity created inside the transaction: it goes, and its id is free again.
    Created(Entity),
    /// An artifact's content as it was, and when it was last updated (the common
    /// write: nothing else changed, so nothing else is kept).
    Content { entity: Entity, content: Box<str>, updated_at: crate::world::time::SimTime },
    /// Anything else: a closure that puts back what was there (a component as it was,
    /// a service's record as it was).
    Restore(Box<dyn FnOnce(&mut World) + Send + Sync>),
    /// A price paid by `payer` (for the open price limits).
    Price { payer: Entity, amount: u64 },
}

/// The price limit of one open invoke: `payer` may pay at most `limit` scrip of
/// prices while it is open.
#[derive(Debug, Clone, Copy)]
struct PriceScope {
    payer: Entity,
    limit: u64,
    spent: u64,
    /// The journal's length when the scope opened: prices recorded below it are not
    /// the scope's.
    from: usize,
}

/// The undo journal of the open transactions (kept by the [`EventLog`]).
#[derive(Default)]
pub(crate) struct Journal {
    entries: Vec<Undo>,
    /// Savepoints open (0: no transaction, nothing is recorded).
    open: u32,
    scopes: Vec<PriceScope>,
}

/// Where a transaction (or a part of one) began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a savepoint must be ended"]
pub(crate) struct Savepoint {
    entries: usize,
    events: usize,
    scopes: usize,
}

/// Opens a savepoint (the first one opens the transaction).
pub(crate) fn begin(world: &mut World) -> Savepoint {
    let mut log = world.resource_mut::<EventLog>();
    let events = log.hold();
    let journal = log.journal_mut();
    journal.open += 1;
    Savepoint { entries: journal.entries.len(), events, scopes: journal.scopes.len() }
}

/// Undoes everything done since `savepoint` (which stays open) and marks the events
/// emitted since then as reverted. Says what that marked.
pub(crate) fn roll_back(world: &mut World, savepoint: Savepoint) -> Reverted {
    loop {
        let entry = {
            let mut log = world.resource_mut::<EventLog>();
            let journal = log.journal_mut();
            if journal.entries.len() <= savepoint.entries {
                break;
            }
            let at = journal.entries.len() - 1;
            let entry = journal.entries.pop();
            if let Some(Undo::Price { payer, amount }) = &entry {
                for scope in journal.scopes.iter_mut().filter(|s| s.payer == *payer && s.from <= at) {
                    scope.spent = scope.spent.saturating_sub(*amount);
                }
            }
            entry
        };
        match entry {
            Some(Undo::Ledger(undo)) => super::ledger::undo(world, undo),
            Some(Undo::Created(entity)) => {
                // What was counted of it goes too: its id may be given to another.
                if let Some(id) = world.get::<crate::world::ids::ArtifactId>(entity).cloned() {
                    world.resource_mut::<super::InvocationStats>().forget(&id);
                    world.resource_mut::<super::activity::Activity>().forget(entity, &id);
                }
                // Despawning unindexes the id (observers) and drops its schemas.
                if let Ok(created) = world.get_entity_mut(entity) {
                    created.despawn();
                }
            }
            Some(Undo::Content { entity, content, updated_at }) => {
                super::artifacts::restore_content(world, entity, content, updated_at);
            }
            Some(Undo::Restore(restore)) => restore(world),
            Some(Undo::Price { .. }) | None => {}
        }
    }
    world.resource_mut::<EventLog>().revert_since(savepoint.events)
}

/// Ends `savepoint`, keeping what was done since (unless it was rolled back). When
/// the outermost ends, the transaction is over: the journal empties and the held
/// events go into the log.
pub(crate) fn end(world: &mut World, savepoint: Savepoint) {
    let mut log = world.resource_mut::<EventLog>();
    let journal = log.journal_mut();
    journal.open = journal.open.saturating_sub(1);
    journal.scopes.truncate(savepoint.scopes);
    if journal.open == 0 {
        journal.entries.clear();
    }
    log.release();
}

/// Whether changes are being recorded (a transaction is open).
pub(crate) fn recording(world: &World) -> bool {
    world.get_resource::<EventLog>().is_some_and(|log| log.journal().open > 0)
}

/// Records how to reverse a change just made, if a transaction is open.
pub(crate) fn record(world: &mut World, undo: Undo) {
    if let Some(mut log) = world.get_resource_mut::<EventLog>() {
        let journal = log.journal_mut();
        if journal.open > 0 {
            journal.entries.push(undo);
        }
    }
}

/// Records the reversal `make` gives, if a transaction is open (`make` is not called
/// otherwise, so a record that costs something to build costs nothing outside one).
pub(crate) fn record_with(world: &mut World, make: impl FnOnce() -> Undo) {
    if let Some(mut log) = world.get_resource_mut::<EventLog>() {
        let journal = log.journal_mut();
        if journal.open > 0 {
            journal.entries.push(make());
        }
    }
}

/// Records the state of component `T` on `entity` before a change, so a roll-back
/// puts it back (or removes it, if it was absent).
pub(crate) fn save_component<T: Component + Clone>(world: &mut World, entity: Entity) {
    if !recording(world) {
        return;
    }
    let before = world.get::<T>(entity).cloned();
    record(
        world,
        Undo::Restore(Box::new(move |world: &mut World| {
            let Ok(mut target) = world.get_entity_mut(entity) else { return };
            match before {
                Some(part) => {
                    target.insert(part);
                }
                None => {
                    target.remove::<T>();
                }
            }
        })),
    );
}

/// Records the state of resource `R` before a change that `restore` knows how to put
/// back: `capture` takes what the change will touch, `restore` puts it back.
pub(crate) fn save_with<R, S: Send + Sync + 'static>(
    world: &mut World,
    capture: impl FnOnce(&R) -> S,
    restore: impl FnOnce(&mut R, S) + Send + Sync + 'static,
) where
    R: Resource + Component<Mutability = bevy_ecs::component::Mutable>,
{
    if !recording(world) {
        return;
    }
    let saved = capture(world.resource::<R>());
    record(
        world,
        Undo::Restore(Box::new(move |world: &mut World| {
            if let Some(mut resource) = world.get_resource_mut::<R>() {
                restore(&mut resource, saved);
            }
        })),
    );
}

/// Opens a price limit: until the savepoint it was opened in ends, `payer` may pay at
/// most `limit` scrip of prices, `already` of it promised (the price of the call
/// that opens it, booked by [`spend_on_prices`] just before).
pub(crate) fn limit_prices(world: &mut World, payer: Entity, limit: u64, already: u64) {
    let mut log = world.resource_mut::<EventLog>();
    let journal = log.journal_mut();
    let from = journal.entries.len();
    journal.scopes.push(PriceScope { payer, limit, spent: already, from });
}

/// Books a price of `amount` that `payer` is to pay, or refuses it — returning the
/// limit and what the prices would come to — if an open limit does not allow it.
pub(crate) fn spend_on_prices(world: &mut World, payer: Entity, amount: u64) -> Result<(), (u64, u64)> {
    let mut log = world.resource_mut::<EventLog>();
    let journal = log.journal_mut();
    if journal.open == 0 || amount == 0 {
        return Ok(());
    }
    let mut scopes = journal.scopes.iter().filter(|s| s.payer == payer);
    if let Some(over) = scopes.find(|s| s.spent.saturating_add(amount) > s.limit) {
        return Err((over.limit, over.spent.saturating_add(amount)));
    }
    for scope in journal.scopes.iter_mut().filter(|s| s.payer == payer) {
        scope.spent += amount;
    }
    journal.entries.push(Undo::Price { payer, amount });
    Ok(())
}

impl super::Kernel<'_> {
    /// Runs `work` as one step that happens whole or not at all: if it fails, what it
    /// did is undone (a host call that code may catch, a service's method).
    pub(crate) fn atomically<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, super::KernelError>,
    ) -> Result<T, super::KernelError> {
        let savepoint = begin(self.world);
        let result = work(self);
        if result.is_err() {
            roll_back(self.world, savepoint);
        }
        end(self.world, savepoint);
        result
    }
}
