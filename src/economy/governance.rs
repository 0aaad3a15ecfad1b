//! Commons: shared principals governed by their members' votes.
//!
//! A commons is a principal that owns itself and acts only when its members pass a
//! proposal. Anyone may create one, naming its members, its quorum (the share of
//! members who must vote) and its threshold (the share of the votes cast that must say
//! yes, strictly more than it). Give it a tool and the tool's earnings accrue to the
//! commons; its members then decide by vote what the commons does with its holdings
//! and its tools — an action, exactly as an agent would send it, performed as the
//! commons when the vote closes and passes.
//!
//! Members propose and vote; votes are public and may be changed until the vote
//! closes. A proposal closes at its deadline: it passes if
//! `votes × 100 ≥ quorum_pct × members` and `yes × 100 > threshold_pct × votes`.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services::{self, GOVERNANCE_ID};
use crate::kernel::Standing;
use crate::{
    kernel::{Action, ActionResult, ErrorCode, EventKind, Kernel, KernelError, journal},
    world::{
        ids::{self, ArtifactId},
        time::{SimClock, SimTime},
    },
};

/// Default voting time, in simulated seconds.
const DEFAULT_VOTING_SECS: f64 = 60.0;

/// Who governs a commons, and how.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commons {
    pub members: Vec<ArtifactId>,
    pub quorum_pct: u64,
    pub threshold_pct: u64,
}

impl Commons {
    fn is_member(&self, id: &ArtifactId) -> bool {
        self.members.contains(id)
    }
}

/// Every proposal, open or closed.
#[derive(Resource, Debug, Clone, Default, Serialize, Deserialize)]
pub struct Governance {
    next: u64,
    proposals: BTreeMap<String, Proposal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub commons: ArtifactId,
    pub proposer: ArtifactId,
    pub description: String,
    /// What the commons does if it passes (nothing: a poll).
    pub action: Option<Action>,
    pub opened_at: SimTime,
    pub closes_at: SimTime,
    pub votes: BTreeMap<ArtifactId, bool>,
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub passed: bool,
    pub yes: u64,
    pub no: u64,
    /// What performing the action returned, if it passed and had one.
    pub result: Option<ActionResult>,
}

impl Proposal {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "commons": self.commons,
            "proposer": self.proposer,
            "description": self.description,
            "action": self.action.as_ref().map(Action::to_json),
            "opened_at": self.opened_at.as_secs_f64(),
            "closes_at": self.closes_at.as_secs_f64(),
            "votes": self.votes,
            "outcome": self.outcome,
        })
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Create {
        id: String,
        members: Vec<String>,
        quorum_pct: Option<u64>,
        threshold_pct: Option<u64>,
        scrip: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Propose {
        commons: String,
        description: Option<String>,
        action: Option<Value>,
        voting_secs: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Vote {
        proposal: String,
        yes: bool,
    }
    #[derive(Deserialize)]
    struct List {
        commons: Option<String>,
        open: Option<bool>,
    }
    match method {
        "create_commons" => {
            let a: Create = services::args(method, input)?;
            let rule = Commons {
                members: Vec::new(),
                quorum_pct: a.quorum_pct.unwrap_or(50),
                threshold_pct: a.threshold_pct.unwrap_or(50),
            };
            kernel.create_commons(&a.id, &a.members, rule, a.scrip.unwrap_or(0))
        }
        "propose" => {
            let a: Propose = services::args(method, input)?;
            let action = match a.action {
                None | Some(Value::Null) => None,
                Some(value) => Some(Action::from_json(value)?),
            };
            let voting = SimTime::from_secs_f64(a.voting_secs.unwrap_or(DEFAULT_VOTING_SECS))
                .filter(|t| t.millis() > 0)
                .ok_or_else(|| KernelError::invalid("voting_secs must be a positive time"))?;
            kernel.propose(&a.commons, a.description.unwrap_or_default(), action, voting)
        }
        "vote" => {
            let a: Vote = services::args(method, input)?;
            kernel.vote(&a.proposal, a.yes)
        }
        "proposals" => {
            let a: List = services::args(method, input)?;
            let governance = kernel.world().resource::<Governance>();
            let items: Vec<Value> = governance
                .proposals
                .values()
                .filter(|p| a.commons.as_deref().is_none_or(|c| p.commons == c))
                .filter(|p| a.open.is_none_or(|open| open == p.outcome.is_none()))
                .map(Proposal::to_json)
                .collect();
            Ok(json!({ "items": items }))
        }
        _ => Err(services::no_such_method(GOVERNANCE_ID, method)),
    }
}

impl Kernel<'_> {
    fn commons(&self, id: &str) -> Result<(Entity, Commons), KernelError> {
        let entity = self.live(id)?;
        let commons = self
            .world
            .get::<Commons>(entity)
            .cloned()
            .ok_or_else(|| KernelError::invalid(format!("{id} is not a commons")).with("id", id))?;
        Ok((entity, commons))
    }

    /// Creates commons `id` with `members`, funded with `scrip` from the caller.
    pub fn create_commons(
        &mut self,
        id: &str,
        members: &[String],
        mut rule: Commons,
        scrip: u64,
    ) -> Result<Value, KernelError> {
        if !(1..=100).contains(&rule.quorum_pct) || rule.threshold_pct > 99 {
            return Err(KernelError::invalid("quorum_pct must be 1–100 and threshold_pct 0–99"));
        }
        let mut seen = Vec::new();
        for member in members {
            let (member_id, _) = self.principal_with_id(member)?;
            if !seen.contains(&member_id) {
                seen.push(member_id);
            }
        }
        if seen.is_empty() {
            return Err(KernelError::invalid("a commons needs at least one member"));
        }
        seen.sort();
        rule.members = seen;
        if scrip > 0 {
            let held = self.world.get::<Standing>(self.caller_entity).map_or(0, Standing::scrip);
            if held < scrip {
                return Err(KernelError::new(
                    ErrorCode::InsufficientFunds,
                    format!("{} holds {held} scrip, cannot fund the commons with {scrip}", self.caller),
                ));
            }
        }
        // A commons belongs to no one but itself.
        let entity = self.spawn_self_owned_principal(id)?;
        let own_id = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(id))?;
        self.world.entity_mut(entity).insert(rule.clone());
        if scrip > 0 {
            self.move_scrip(self.caller_entity, entity, scrip, None)?;
        }
        self.emit(EventKind::CommonsCreated {
            id: own_id.clone(),
            members: rule.members.clone(),
            quorum_pct: rule.quorum_pct,
            threshold_pct: rule.threshold_pct,
            scrip,
        });
        Ok(json!({ "id": own_id, "members": rule.members }))
    }

    /// Journals proposal `id` as it is (or that there is none) and the proposal count,
    /// before a change.
    fn save_proposal(&mut self, id: &str) {
        let key = id.to_owned();
        journal::save_with::<Governance, _>(
            self.world,
            |g| (g.proposals.get(&key).cloned(), g.next, key.clone()),
            |g, (before, next, key)| {
                match before {
                    Some(proposal) => g.proposals.insert(key, proposal),
                    None => g.proposals.remove(&key),
                };
                g.next = next;
            },
        );
    }

    /// A member proposes that the commons perform `action`.
    pub fn propose(
        &mut self,
        commons: &str,
        description: String,
        action: Option<Action>,
        voting: SimTime,
    ) -> Result<Value, KernelError> {
        let (entity, rule) = self.commons(commons)?;
        if !rule.is_member(&self.caller) {
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("{} is not a member of {commons}", self.caller),
            ));
        }
        let commons_id =
            self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(commons))?;
        let id = format!("{commons_id}#{}", self.world.resource::<Governance>().next + 1);
        self.save_proposal(&id);
        let mut governance = self.world.resource_mut::<Governance>();
        governance.next += 1;
        let closes_at = self.now.saturating_add(voting);
        let proposal = Proposal {
            id: id.clone(),
            commons: commons_id.clone(),
            proposer: self.caller.clone(),
            description: description.clone(),
            action: action.clone(),
            opened_at: self.now,
            closes_at,
            votes: BTreeMap::new(),
            outcome: None,
        };
        governance.proposals.insert(id.clone(), proposal);
        self.emit(EventKind::ProposalOpened {
            proposal: id.clone(),
            commons: commons_id,
            description,
            action: action.as_ref().map(Action::to_json),
            closes_at: closes_at.as_secs_f64(),
        });
        Ok(json!({ "proposal": id, "closes_at": closes_at.as_secs_f64() }))
    }

    /// A member votes on an open proposal.
    pub fn vote(&mut self, proposal: &str, yes: bool) -> Result<Value, KernelError> {
        let Some(open) = self.world.resource::<Governance>().proposals.get(proposal).cloned() else {
            return Err(KernelError::new(ErrorCode::NotFound, format!("no proposal {proposal}")));
        };
        if open.outcome.is_some() {
            return Err(KernelError::invalid(format!("{proposal} is closed")));
        }
        let (_, rule) = self.commons(open.commons.as_str())?;
        if !rule.is_member(&self.caller) {
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("{} is not a member of {}", self.caller, open.commons),
            ));
        }
        let caller = self.caller.clone();
        self.save_proposal(proposal);
        if let Some(p) = self.world.resource_mut::<Governance>().proposals.get_mut(proposal) {
            p.votes.insert(caller, yes);
        }
        self.emit(EventKind::VoteCast { proposal: proposal.to_owned(), yes });
        Ok(json!({ "proposal": proposal, "yes": yes }))
    }
}

/// Settle phase: proposals whose time is up are tallied; a passed action is performed
/// as the commons.
pub(crate) fn close_due_proposals(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    let due: Vec<String> = world
        .resource::<Governance>()
        .proposals
        .values()
        .filter(|p| p.outcome.is_none() && p.closes_at <= now)
        .map(|p| p.id.clone())
        .collect();
    for id in due {
        let Some(proposal) = world.resource::<Governance>().proposals.get(&id).cloned() else { continue };
        let rule = ids::lookup(world, proposal.commons.as_str()).and_then(|e| world.get::<Commons>(e)).cloned();
        let members = rule.as_ref().map_or(0, |r| r.members.len() as u64);
        // Votes of members only (membership does not change, but be exact).
        let counted: Vec<bool> = proposal
            .votes
            .iter()
            .filter(|(voter, _)| rule.as_ref().is_some_and(|r| r.is_member(voter)))
            .map(|(_, yes)| *yes)
            .collect();
        let cast = counted.len() as u64;
        let yes = counted.iter().filter(|y| **y).count() as u64;
        let passed = rule
            .as_ref()
            .is_some_and(|r| members > 0 && cast * 100 >= r.quorum_pct * members && yes * 100 > r.threshold_pct * cast);
        if let Ok(mut kernel) = Kernel::as_system(world) {
            kernel.emit(EventKind::ProposalClosed { proposal: id.clone(), passed, yes, no: cast - yes, members });
        }
        // The commons acts after the result is on the record; what it does (or why it
        // could not) follows as its own events.
        let result = match (&proposal.action, passed) {
            (Some(action), true) => Kernel::as_principal(world, proposal.commons.as_str())
                .ok()
                .map(|mut commons| commons.act(action.clone())),
            _ => None,
        };
        if let Some(p) = world.resource_mut::<Governance>().proposals.get_mut(&id) {
            p.outcome = Some(Outcome { passed, yes, no: cast - yes, result });
        }
    }
}
