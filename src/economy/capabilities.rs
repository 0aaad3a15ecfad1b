//! Capability requests: asking for what only a person (or a policy) can grant.
//!
//! Some of the world's powers are capabilities rather than goods: the `llm` syscall
//! for code (`can_call_llm`), an MCP server that names one, any the scene declares
//! grantable. No amount of scrip buys them. A principal asks `kernel_capabilities`
//! (`request(capability, reason)`); the request is public (`list`, `status`, the
//! window, `ecology capabilities list`), and is decided by the scene's policy at once
//! or, under the default `Ask`, by a person: a button in the window, `ecology
//! capabilities approve ID` for a run started with `--control DIR`, or a scripted
//! `DecideCapability` intervention. Decisions are interventions, so they are applied
//! at the start of a step, logged, and saved with the run like any other.
//!
//! A grant may carry a spending limit: what may be spent through it (scrip plus µ$ of
//! LLM budget, for MCP gateways' prices; µ$ of LLM budget for `can_call_llm`). When it
//! is spent the grant is gone (`CAPABILITY_EXHAUSTED`) and may be asked for again. A
//! model's cost is known only once it answers, so the `llm` call that crosses the
//! limit completes and the next is refused.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services;
use crate::{
    kernel::{EventKind, EventLog, KERNEL_ID, Kernel, KernelError, journal, llm::CAN_CALL_LLM},
    world::{
        components::{Capabilities, Grant, Grants},
        config::{CapabilityRule, Config},
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

pub const CAPABILITIES_ID: &str = "kernel_capabilities";

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RequestStatus {
    Pending,
    Granted { limit: Option<u64>, by: String, at: SimTime },
    Denied { by: String, note: String, at: SimTime },
}

/// One request, as everyone may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityRequest {
    pub id: u64,
    pub principal: ArtifactId,
    pub capability: String,
    pub reason: String,
    /// The spending limit asked for, if any.
    pub limit: Option<u64>,
    pub at: SimTime,
    pub status: RequestStatus,
}

impl CapabilityRequest {
    pub fn is_pending(&self) -> bool {
        self.status == RequestStatus::Pending
    }

    /// The request as JSON, times in seconds.
    pub fn to_json(&self) -> Value {
        let mut json = json!({
            "id": self.id,
            "principal": self.principal,
            "capability": self.capability,
            "reason": self.reason,
            "limit": self.limit,
            "at_secs": self.at.as_secs_f64(),
        });
        match &self.status {
            RequestStatus::Pending => json["status"] = "pending".into(),
            RequestStatus::Granted { limit, by, at } => {
                json["status"] = "granted".into();
                json["granted_limit"] = json!(limit);
                json["by"] = by.as_str().into();
                json["decided_at_secs"] = at.as_secs_f64().into();
            }
            RequestStatus::Denied { by, note, at } => {
                json["status"] = "denied".into();
                json["by"] = by.as_str().into();
                json["note"] = note.as_str().into();
                json["decided_at_secs"] = at.as_secs_f64().into();
            }
        }
        json
    }
}

/// Every request of the run. Part of the world's state.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityRequests {
    next: u64,
    requests: BTreeMap<u64, CapabilityRequest>,
}

impl CapabilityRequests {
    pub fn get(&self, id: u64) -> Option<&CapabilityRequest> {
        self.requests.get(&id)
    }
    pub fn iter(&self) -> impl Iterator<Item = &CapabilityRequest> {
        self.requests.values()
    }
    pub fn pending(&self) -> impl Iterator<Item = &CapabilityRequest> {
        self.requests.values().filter(|r| r.is_pending())
    }
    /// Every request as JSON, for `ecology capabilities list` and the window.
    pub fn to_json(&self) -> Value {
        Value::Array(self.requests.values().map(CapabilityRequest::to_json).collect())
    }
}

/// A decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub approve: bool,
    /// For a grant: the most that may be spent through it (default: what was asked).
    pub limit: Option<u64>,
    pub note: Option<String>,
}

/// The capabilities that may be asked for in `world`.
pub fn requestable(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = std::iter::once(CAN_CALL_LLM.to_owned())
        .chain(config.mcp.servers.values().filter_map(|s| s.capability.clone()))
        .chain(config.capabilities.grantable.iter().cloned())
        .chain(config.capabilities.rules.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What `entity` may still spend through `capability`: `None` if it lacks it,
/// `u64::MAX` if it holds it without a limit.
pub(crate) fn room(world: &World, entity: Entity, capability: &str) -> Option<u64> {
    if world.get::<Capabilities>(entity).is_some_and(|c| c.has(capability)) {
        return Some(u64::MAX);
    }
    world.get::<Grants>(entity).and_then(|g| g.get(capability)).map(Grant::remaining).filter(|&room| room > 0)
}

/// Counts `amount` spent through `capability` by `entity`; a grant spent to its
/// limit is gone.
pub(crate) fn spend(world: &mut World, entity: Entity, capability: &str, amount: u64) {
    if amount == 0 || world.get::<Capabilities>(entity).is_some_and(|c| c.has(capability)) {
        return;
    }
    let Some(mut grants) = world.get_mut::<Grants>(entity) else { return };
    let Some(grant) = grants.0.get_mut(capability) else { return };
    grant.spent = grant.spent.saturating_add(amount);
    if grant.remaining() > 0 {
        return;
    }
    let spent = grant.spent;
    grants.0.remove(capability);
    crate::kernel::discovery::touch(world, entity);
    let Some(principal) = world.get::<ArtifactId>(entity).cloned() else { return };
    let now = world.resource::<SimClock>().now();
    let event = EventKind::CapabilityExhausted { principal: principal.clone(), capability: capability.into(), spent };
    world.resource_mut::<EventLog>().push(now, principal, event);
}

/// The service's methods.
pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Request {
        capability: String,
        reason: String,
        limit: Option<u64>,
    }
    #[derive(Deserialize)]
    struct List {
        status: Option<String>,
        principal: Option<String>,
    }
    #[derive(Deserialize)]
    struct Status {
        id: u64,
    }
    match method {
        "request" => {
            let a: Request = services::args(method, input)?;
            kernel.request_capability(&a.capability, &a.reason, a.limit)
        }
        "list" => {
            let a: List = services::args(method, input)?;
            let requests = kernel.world.resource::<CapabilityRequests>();
            let listed: Vec<Value> = requests
                .iter()
                .filter(|r| a.principal.as_deref().is_none_or(|p| r.principal.as_str() == p))
                .map(CapabilityRequest::to_json)
                .filter(|r| a.status.as_deref().is_none_or(|s| r["status"] == s))
                .collect();
            let held = held_json(kernel.world, kernel.caller_entity);
            Ok(json!({
                "requests": listed,
                "requestable": requestable(kernel.world.resource::<Config>()),
                "yours": held,
            }))
        }
        "status" => {
            let a: Status = services::args(method, input)?;
            let requests = kernel.world.resource::<CapabilityRequests>();
            requests
                .get(a.id)
                .map(CapabilityRequest::to_json)
                .ok_or_else(|| KernelError::not_found(&format!("capability request {}", a.id)))
        }
        _ => Err(services::no_such_method(CAPABILITIES_ID, method)),
    }
}

/// The capabilities `entity` holds, with what is left of each grant.
fn held_json(world: &World, entity: Entity) -> Value {
    let mut held = serde_json::Map::new();
    for capability in world.get::<Capabilities>(entity).into_iter().flat_map(Capabilities::iter) {
        held.insert(capability.to_owned(), json!({"limit": null, "spent": 0}));
    }
    for (capability, grant) in world.get::<Grants>(entity).into_iter().flat_map(Grants::iter) {
        held.insert(capability.to_owned(), json!({"limit": grant.limit, "spent": grant.spent}));
    }
    Value::Object(held)
}

impl Kernel<'_> {
    /// The caller asks for `capability`; the scene's policy may decide at once.
    fn request_capability(&mut self, capability: &str, reason: &str, limit: Option<u64>) -> Result<Value, KernelError> {
        let config = self.world.resource::<Config>();
        let known = requestable(config);
        if !known.iter().any(|k| k == capability) {
            return Err(KernelError::invalid(format!(
                "no capability {capability:?} can be asked for in this world (these can: {})",
                known.join(", ")
            ))
            .with("capability", capability));
        }
        let rule = config.capabilities.rule(capability);
        if reason.trim().is_empty() {
            return Err(KernelError::invalid("say why you need it: a request needs a reason"));
        }
        let reason = crate::bridge::client::excerpt(reason, 500);
        journal::save_with::<CapabilityRequests, _>(
            self.world,
            |requests| requests.next,
            |requests, next| {
                requests.requests.retain(|id, _| *id <= next);
                requests.next = next;
            },
        );
        let id = {
            let mut requests = self.world.resource_mut::<CapabilityRequests>();
            if let Some(open) =
                requests.pending().find(|r| r.principal == self.caller && r.capability == capability).map(|r| r.id)
            {
                return Err(KernelError::new(
                    crate::kernel::ErrorCode::AlreadyExists,
                    format!("request {open} for {capability:?} is still waiting for a decision"),
                )
                .with("request", open));
            }
            requests.next += 1;
            let id = requests.next;
            let request = CapabilityRequest {
                id,
                principal: self.caller.clone(),
                capability: capability.to_owned(),
                reason: reason.clone(),
                limit,
                at: self.now,
                status: RequestStatus::Pending,
            };
            requests.requests.insert(id, request);
            id
        };
        let event = EventKind::CapabilityRequested {
            request: id.to_string(),
            principal: self.caller.clone(),
            capability: capability.to_owned(),
            reason,
            limit,
        };
        self.world.resource_mut::<EventLog>().push(self.now, self.caller.clone(), event);
        let decision = match rule {
            CapabilityRule::Ask => None,
            CapabilityRule::Approve { limit: policy_limit } => {
                // The policy's limit caps what was asked for.
                let limit = match (limit, policy_limit) {
                    (Some(asked), Some(cap)) => Some(asked.min(cap)),
                    (asked, cap) => asked.or(cap),
                };
                Some(Decision { approve: true, limit, note: None })
            }
            CapabilityRule::Deny => Some(Decision { approve: false, limit: None, note: Some("by policy".into()) }),
        };
        if let Some(decision) = decision {
            decide(self.world, id, decision, "policy").map_err(|e| e.with("request", id))?;
        }
        let request = self.world.resource::<CapabilityRequests>().get(id).map(CapabilityRequest::to_json);
        Ok(request.unwrap_or(Value::Null))
    }
}

/// Decides request `id`, as `by` ("a person", "policy"): a grant goes to its
/// principal at once. Every decision is an event.
pub fn decide(world: &mut World, id: u64, decision: Decision, by: &str) -> Result<(), KernelError> {
    let now = world.resource::<SimClock>().now();
    let Some(request) = world.resource::<CapabilityRequests>().get(id).cloned() else {
        return Err(KernelError::not_found(&format!("capability request {id}")));
    };
    if !request.is_pending() {
        return Err(KernelError::invalid(format!("capability request {id} was already decided")).with("request", id));
    }
    let entity = crate::world::ids::lookup(world, request.principal.as_str());
    let before = request.clone();
    journal::save_with::<CapabilityRequests, _>(
        world,
        |_| before,
        move |requests, before| {
            requests.requests.insert(id, before);
        },
    );
    let (status, event) = if decision.approve {
        let Some(entity) = entity else {
            return Err(KernelError::not_found(request.principal.as_str()));
        };
        let limit = decision.limit.or(request.limit);
        let grant = Grant { request: id, limit, spent: 0 };
        journal::save_component::<Grants>(world, entity);
        let mut principal = world.entity_mut(entity);
        match principal.get_mut::<Grants>() {
            Some(mut grants) => {
                grants.0.insert(request.capability.clone(), grant);
            }
            None => {
                principal.insert(Grants(BTreeMap::from([(request.capability.clone(), grant)])));
            }
        }
        crate::kernel::discovery::touch(world, entity);
        let event = EventKind::CapabilityGranted {
            request: id.to_string(),
            principal: request.principal.clone(),
            capability: request.capability.clone(),
            limit,
            by: by.to_owned(),
        };
        (RequestStatus::Granted { limit, by: by.to_owned(), at: now }, event)
    } else {
        let note = decision.note.unwrap_or_default();
        let event = EventKind::CapabilityDenied {
            request: id.to_string(),
            principal: request.principal.clone(),
            capability: request.capability.clone(),
            by: by.to_owned(),
            note: note.clone(),
        };
        (RequestStatus::Denied { by: by.to_owned(), note, at: now }, event)
    };
    if let Some(stored) = world.resource_mut::<CapabilityRequests>().requests.get_mut(&id) {
        stored.status = status;
    }
    world.resource_mut::<EventLog>().push(now, ArtifactId::trusted(KERNEL_ID), event);
    Ok(())
}
