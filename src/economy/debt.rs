//! Debt as artifacts (SPEC §2: no balance ever goes negative, so borrowing is a
//! contract, not an overdraft).
//!
//! A creditor offers a loan — principal, interest, term — to a debtor. The offer is a
//! new artifact, the debt note, owned by the creditor and readable by anyone. When the
//! debtor accepts, the principal moves from the note's holder to the debtor and the
//! debt falls due `term` later. Whoever holds the note then is owed principal plus
//! interest: the note is an asset like any other, and can be transferred or sold in
//! escrow, and repayments follow it. Anyone may repay; after the due time the holder
//! may collect what the debtor has, up to what is owed. A debt not paid in full when
//! it falls due is in default: the kernel says so on the event log (`DEBT_DEFAULTED`),
//! and `query` shows every note's state.
//!
//! The kernel keeps the note's terms and state in its [`Debt`] component; the note
//! cannot be rewritten, and can be deleted only once settled.

use std::collections::BTreeSet;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    escrow::beneficiary,
    services::{self, DEBT_ID},
};
use crate::kernel::Standing;
use crate::{
    kernel::{ErrorCode, EventKind, Kernel, KernelError, artifacts::WriteSpec, journal},
    world::{
        components::Artifact,
        ids::{self, ArtifactId},
        time::{SimClock, SimTime},
    },
};

/// The terms and state of a debt note.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debt {
    pub debtor: ArtifactId,
    /// Who offered the loan (the note may since have changed hands).
    pub creditor: ArtifactId,
    pub principal: u64,
    pub interest: u64,
    pub term: SimTime,
    pub offered_at: SimTime,
    /// Set when the debtor accepts.
    pub due_at: Option<SimTime>,
    pub repaid: u64,
    pub status: DebtStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DebtStatus {
    /// Offered, not yet accepted.
    Offered,
    /// Accepted; not yet due, or due and paid on time.
    Active,
    /// Paid in full.
    Repaid,
    /// Due and not paid in full; still owed.
    Defaulted,
    /// Withdrawn or declined before acceptance.
    Cancelled,
}

impl Debt {
    /// Principal plus interest.
    pub fn owed(&self) -> u64 {
        self.principal.saturating_add(self.interest)
    }

    pub fn outstanding(&self) -> u64 {
        self.owed().saturating_sub(self.repaid)
    }

    /// Whether the note may be deleted: nothing is or will be owed on it.
    pub fn settled(&self) -> bool {
        matches!(self.status, DebtStatus::Repaid | DebtStatus::Cancelled)
    }

    pub fn to_json(&self, holder: &ArtifactId) -> Value {
        json!({
            "debtor": self.debtor,
            "creditor": self.creditor,
            "holder": holder,
            "principal": self.principal,
            "interest": self.interest,
            "term_secs": self.term.as_secs_f64(),
            "offered_at": self.offered_at.as_secs_f64(),
            "due_at": self.due_at.map(SimTime::as_secs_f64),
            "repaid": self.repaid,
            "outstanding": self.outstanding(),
            "status": self.status,
        })
    }
}

/// Debts by due time, so defaults are found without scanning every note.
#[derive(Resource, Debug, Clone, Default, Serialize, Deserialize)]
pub struct Debts {
    next: u64,
    due: BTreeSet<(SimTime, ArtifactId)>,
}

impl Debts {
    /// Watches note `id`, accepted and due at `due`, for default (a scene's notes).
    pub(crate) fn schedule(&mut self, due: SimTime, id: ArtifactId) {
        self.due.insert((due, id));
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Offer {
        debtor: String,
        principal: u64,
        interest: u64,
        term_secs: f64,
        id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    #[derive(Deserialize)]
    struct Repay {
        id: String,
        amount: Option<u64>,
    }
    match method {
        "offer" => {
            let a: Offer = services::args(method, input)?;
            let term = SimTime::from_secs_f64(a.term_secs)
                .filter(|t| t.millis() > 0)
                .ok_or_else(|| KernelError::invalid(format!("term_secs {} is not a term", a.term_secs)))?;
            kernel.offer_loan(a.id.as_deref(), &a.debtor, a.principal, a.interest, term)
        }
        "accept" => kernel.accept_loan(&services::args::<Id>(method, input)?.id),
        "cancel" => kernel.cancel_loan(&services::args::<Id>(method, input)?.id),
        "repay" => {
            let a: Repay = services::args(method, input)?;
            kernel.repay_debt(&a.id, a.amount)
        }
        "collect" => kernel.collect_debt(&services::args::<Id>(method, input)?.id),
        "status" => {
            let id = services::args::<Id>(method, input)?.id;
            let (_, debt, holder) = kernel.debt(&id)?;
            Ok(debt.to_json(&holder))
        }
        _ => Err(services::no_such_method(DEBT_ID, method)),
    }
}

impl Kernel<'_> {
    /// A debt note by id: its entity, its terms, and who holds it.
    fn debt(&self, id: &str) -> Result<(Entity, Debt, ArtifactId), KernelError> {
        let entity = self.live(id)?;
        let Some(debt) = self.world.get::<Debt>(entity).cloned() else {
            return Err(KernelError::invalid(format!("{id} is not a debt")).with("id", id));
        };
        let owner =
            self.world.get::<Artifact>(entity).map(|a| a.owner.clone()).ok_or_else(|| KernelError::not_found(id))?;
        let note = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        Ok((entity, debt, beneficiary(self.world, &note, &owner)))
    }

    fn set_debt(&mut self, entity: Entity, debt: Debt) {
        journal::save_component::<Debt>(self.world, entity);
        self.world.entity_mut(entity).insert(debt);
    }

    /// Puts a debt in the due-time index (or takes it out), journaling the change.
    fn index_due(&mut self, due: SimTime, note: ArtifactId, present: bool) {
        let key = (due, note);
        let saved = key.clone();
        let probe = key.clone();
        journal::save_with::<Debts, _>(
            self.world,
            |debts| debts.due.contains(&probe),
            move |debts, was| {
                if was {
                    debts.due.insert(saved);
                } else {
                    debts.due.remove(&saved);
                }
            },
        );
        let mut debts = self.world.resource_mut::<Debts>();
        if present {
            debts.due.insert(key);
        } else {
            debts.due.remove(&key);
        }
    }

    /// The caller offers `debtor` a loan; returns the note's id.
    pub fn offer_loan(
        &mut self,
        id: Option<&str>,
        debtor: &str,
        principal: u64,
        interest: u64,
        term: SimTime,
    ) -> Result<Value, KernelError> {
        if self.world.get::<Standing>(self.caller_entity).is_none() {
            return Err(KernelError::not_a_principal(self.caller.as_str()).with("hint", "only principals can lend"));
        }
        if principal == 0 {
            return Err(KernelError::invalid("a loan's principal must be at least 1"));
        }
        let (debtor_id, _) = self.principal_with_id(debtor)?;
        if debtor_id == self.caller {
            return Err(KernelError::invalid("a principal cannot lend to itself"));
        }
        let id = match id {
            // A note is always a new artifact. `write` below would otherwise replace an
            // existing one the creditor may write (a tool, its memory, the creditor
            // itself) and the Debt component would then lock it for good.
            Some(id) => self.new_id(id)?.to_string(),
            None => {
                let mut n = self.world.resource::<Debts>().next;
                loop {
                    let candidate = format!("debt_{}_{n}", self.caller);
                    n += 1;
                    if ids::lookup(self.world, &candidate).is_none() {
                        journal::save_with::<Debts, _>(self.world, |d| d.next, |d, next| d.next = next);
                        self.world.resource_mut::<Debts>().next = n;
                        break candidate;
                    }
                }
            }
        };
        let terms = format!(
            "Debt note: {debtor_id} owes the holder of this note {} scrip ({principal} principal + {interest} \
             interest), due {} s after acceptance. Offered by {}.",
            principal.saturating_add(interest),
            term.as_secs_f64(),
            self.caller,
        );
        let note = WriteSpec {
            id: id.clone(),
            content: Some(terms),
            description: Some(format!("debt note: {debtor_id} → holder, {principal} + {interest}")),
            ..Default::default()
        };
        let written = self.write(note)?;
        let entity = self.live(&id)?;
        let debt = Debt {
            debtor: debtor_id.clone(),
            creditor: self.caller.clone(),
            principal,
            interest,
            term,
            offered_at: self.now,
            due_at: None,
            repaid: 0,
            status: DebtStatus::Offered,
        };
        self.set_debt(entity, debt);
        self.emit(EventKind::DebtOffered {
            id: written.id.clone(),
            debtor: debtor_id,
            principal,
            interest,
            term_secs: term.as_secs_f64(),
        });
        Ok(json!({ "id": written.id }))
    }

    /// The debtor accepts an offered loan: the holder pays out the principal.
    pub fn accept_loan(&mut self, id: &str) -> Result<Value, KernelError> {
        let (entity, mut debt, holder) = self.debt(id)?;
        if debt.status != DebtStatus::Offered {
            return Err(KernelError::invalid(format!("{id} is {:?}, not an open offer", debt.status)));
        }
        if debt.debtor != self.caller {
            return Err(KernelError::new(ErrorCode::AccessDenied, format!("{id} is offered to {}", debt.debtor)));
        }
        let (_, holder_entity) = self.principal_with_id(holder.as_str())?;
        let note = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        let accepted = EventKind::DebtAccepted {
            id: note.clone(),
            holder: holder.clone(),
            principal: debt.principal,
            due_at: self.now.saturating_add(debt.term).as_secs_f64(),
        };
        self.move_scrip(holder_entity, self.caller_entity, debt.principal, Some(accepted)).map_err(|e| {
            KernelError::new(e.code, format!("{holder} cannot pay out the loan: {}", e.message)).with("id", id)
        })?;
        let due_at = self.now.saturating_add(debt.term);
        debt.status = DebtStatus::Active;
        debt.due_at = Some(due_at);
        self.set_debt(entity, debt.clone());
        self.index_due(due_at, note, true);
        Ok(debt.to_json(&holder))
    }

    /// The holder withdraws, or the debtor declines, an offer not yet accepted.
    pub fn cancel_loan(&mut self, id: &str) -> Result<Value, KernelError> {
        let (entity, mut debt, holder) = self.debt(id)?;
        if debt.status != DebtStatus::Offered {
            return Err(KernelError::invalid(format!(
                "{id} is {:?}; only an open offer can be cancelled",
                debt.status
            )));
        }
        if self.caller != holder && self.caller != debt.debtor {
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("only {holder} or {} may cancel {id}", debt.debtor),
            ));
        }
        debt.status = DebtStatus::Cancelled;
        self.set_debt(entity, debt.clone());
        let note = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        self.emit(EventKind::DebtCancelled { id: note });
        Ok(debt.to_json(&holder))
    }

    /// Pays `amount` (default: all that is owed) toward a debt, to its holder.
    pub fn repay_debt(&mut self, id: &str, amount: Option<u64>) -> Result<Value, KernelError> {
        let (entity, mut debt, holder) = self.debt(id)?;
        if !matches!(debt.status, DebtStatus::Active | DebtStatus::Defaulted) {
            return Err(KernelError::invalid(format!("{id} is {:?}; nothing is owed on it", debt.status)));
        }
        let outstanding = debt.outstanding();
        let amount = amount.unwrap_or(outstanding);
        if amount == 0 || amount > outstanding {
            return Err(KernelError::invalid(format!("{outstanding} is owed on {id}; cannot pay {amount}"))
                .with("outstanding", outstanding));
        }
        let (_, holder_entity) = self.principal_with_id(holder.as_str())?;
        let note = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        let repaid = EventKind::DebtRepaid {
            id: note.clone(),
            holder: holder.clone(),
            amount,
            outstanding: outstanding - amount,
        };
        self.move_scrip(self.caller_entity, holder_entity, amount, Some(repaid))?;
        debt.repaid += amount;
        self.settle_if_paid(&note, &mut debt);
        self.set_debt(entity, debt.clone());
        Ok(debt.to_json(&holder))
    }

    /// The holder of an overdue debt takes what the debtor has, up to what is owed.
    pub fn collect_debt(&mut self, id: &str) -> Result<Value, KernelError> {
        let (entity, mut debt, holder) = self.debt(id)?;
        if holder != self.caller {
            return Err(KernelError::new(ErrorCode::NotOwner, format!("{id} is held by {holder}")).with("id", id));
        }
        let overdue = match debt.status {
            DebtStatus::Defaulted => true,
            DebtStatus::Active => debt.due_at.is_some_and(|due| due <= self.now),
            _ => false,
        };
        if !overdue {
            let due = debt.due_at.map_or_else(|| "never".to_owned(), |d| format!("at {} s", d.as_secs_f64()));
            return Err(KernelError::invalid(format!("{id} is {:?} and due {due}; nothing to collect", debt.status)));
        }
        let (_, debtor) = self.principal_with_id(debt.debtor.as_str())?;
        let take = debt.outstanding().min(self.standing(debtor)?.scrip());
        if take == 0 {
            return Err(KernelError::new(
                ErrorCode::InsufficientFunds,
                format!("{} holds no scrip to collect", debt.debtor),
            ));
        }
        let note = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        let collected = EventKind::DebtCollected {
            id: note.clone(),
            debtor: debt.debtor.clone(),
            amount: take,
            outstanding: debt.outstanding() - take,
        };
        self.move_scrip(debtor, self.caller_entity, take, Some(collected))?;
        debt.repaid += take;
        self.settle_if_paid(&note, &mut debt);
        self.set_debt(entity, debt.clone());
        Ok(debt.to_json(&holder))
    }

    fn settle_if_paid(&mut self, note: &ArtifactId, debt: &mut Debt) {
        if debt.outstanding() == 0 {
            debt.status = DebtStatus::Repaid;
            if let Some(due) = debt.due_at {
                self.index_due(due, note.clone(), false);
            }
        }
    }
}

/// Settle phase: debts that fell due unpaid are in default, for all to see.
pub(crate) fn mark_defaults(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    let mut fallen = Vec::new();
    {
        let mut debts = world.resource_mut::<Debts>();
        while let Some(first) = debts.due.first().cloned() {
            if first.0 > now {
                break;
            }
            debts.due.pop_first();
            fallen.push(first.1);
        }
    }
    for note in fallen {
        let Some(entity) = ids::lookup(world, note.as_str()) else { continue };
        let Some(mut debt) = world.get::<Debt>(entity).cloned() else { continue };
        if debt.status != DebtStatus::Active || debt.outstanding() == 0 {
            continue;
        }
        debt.status = DebtStatus::Defaulted;
        let owner = world.get::<Artifact>(entity).map(|a| a.owner.clone());
        let holder = owner.map(|o| beneficiary(world, &note, &o));
        let outstanding = debt.outstanding();
        let debtor = debt.debtor.clone();
        world.entity_mut(entity).insert(debt);
        if let (Ok(mut kernel), Some(holder)) = (Kernel::as_system(world), holder) {
            kernel.emit(EventKind::DebtDefaulted { id: note, debtor, holder, outstanding });
        }
    }
}
