//! Outside tools (SPEC §9's gateway pattern): MCP servers as gateway artifacts.
//!
//! Every server a scene lists becomes an artifact `mcp_<server>`, owned by the
//! kernel, whose interface is the server's tool list (listed in the first step, or
//! taken from the recording when replaying). Invoking a tool of it:
//!
//! 1. **may** — when the server names a capability, the payer (the root of the
//!    invoke chain) must hold it, from creation or granted on request, with enough of
//!    the grant's spending limit left for the call's price;
//! 2. **can pay** — the payer must hold the call's scrip and LLM-budget price, and
//!    have room in its `mcp_calls` rate, which the call takes;
//! 3. **call** — through the [`McpBridge`], asynchronously: an agent calling from its
//!    own step gets `{status: "pending", request}` at once and the result in its
//!    inbox in a later step (which wakes it), like an answer from a model; code
//!    inside an invoke waits for it;
//! 4. **settle** — a result is charged (the scrip to the kernel, the gateway's owner;
//!    the budget spent), up to what the payer still holds; a failed call (the server
//!    down, dead, refusing or too slow) costs nothing.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ErrorCode, EventKind, EventLog, KERNEL_ID, Kernel, KernelError};
use crate::kernel::Standing;
use crate::{
    bridge::{
        client::{FailureKind, excerpt},
        config::ClockMode,
        mcp::{McpBridge, McpFinished, McpServerConfig},
    },
    world::{
        components::{Artifact, Inbox, Interface, Loop, McpGateway, Service, System, Tool},
        config::Config,
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

/// Characters of a result kept in its `MCP_CALL` event.
pub const EXCERPT_CHARS: usize = 200;

/// The gateway artifact of server `name`.
pub fn gateway_id(name: &str) -> String {
    format!("mcp_{name}")
}

fn request_name(id: u64) -> String {
    format!("mcp-{id}")
}

/// A call in flight.
#[derive(Debug, Clone)]
struct Pending {
    payer: Entity,
    payer_id: ArtifactId,
    caller: ArtifactId,
    agent: Option<Entity>,
    gateway: ArtifactId,
    server: String,
    tool: String,
}

/// What one server's calls have come to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpUse {
    pub calls: u64,
    pub failed: u64,
    pub scrip: u64,
    pub cost_micro_usd: u64,
    /// Why the first failed call failed (`reason: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// Calls to MCP servers in flight, and what they have cost. Part of the world's state.
#[derive(Resource, Debug, Default)]
pub struct McpCalls {
    next_request: u64,
    pending: BTreeMap<u64, Pending>,
    by_server: BTreeMap<String, McpUse>,
    /// Servers that did not start or list their tools, and why.
    unavailable: BTreeMap<String, String>,
    /// A replay asked for a call that was never recorded: the run cannot go on.
    fatal: Option<String>,
}

impl McpCalls {
    pub fn by_server(&self) -> &BTreeMap<String, McpUse> {
        &self.by_server
    }
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
    /// Servers whose gateway has no tools because they did not start, and why.
    pub fn unavailable(&self) -> &BTreeMap<String, String> {
        &self.unavailable
    }
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }
    pub(crate) fn digest_view(&self) -> impl Serialize + '_ {
        let pending: Vec<(u64, &ArtifactId, &ArtifactId, &str)> =
            self.pending.iter().map(|(id, p)| (*id, &p.payer_id, &p.caller, p.tool.as_str())).collect();
        (self.next_request, &self.by_server, &self.unavailable, pending)
    }
}

#[derive(Serialize, Deserialize)]
struct PendingState {
    request: u64,
    payer: ArtifactId,
    caller: ArtifactId,
    agent: Option<ArtifactId>,
    gateway: ArtifactId,
    server: String,
    tool: String,
}

/// What a checkpoint keeps of [`McpCalls`].
#[derive(Serialize, Deserialize)]
pub(crate) struct McpCallsState {
    next_request: u64,
    pending: Vec<PendingState>,
    by_server: BTreeMap<String, McpUse>,
    #[serde(default)]
    unavailable: BTreeMap<String, String>,
    fatal: Option<String>,
}

impl McpCalls {
    pub(crate) fn state(&self, world: &World) -> McpCallsState {
        let pending = self
            .pending
            .iter()
            .map(|(&request, p)| PendingState {
                request,
                payer: p.payer_id.clone(),
                caller: p.caller.clone(),
                agent: p.agent.and_then(|e| world.get::<ArtifactId>(e).cloned()),
                gateway: p.gateway.clone(),
                server: p.server.clone(),
                tool: p.tool.clone(),
            })
            .collect();
        McpCallsState {
            next_request: self.next_request,
            pending,
            by_server: self.by_server.clone(),
            unavailable: self.unavailable.clone(),
            fatal: self.fatal.clone(),
        }
    }

    pub(crate) fn from_state(state: McpCallsState, world: &World) -> Result<Self, String> {
        let entity = |id: &ArtifactId| {
            crate::world::ids::lookup(world, id.as_str())
                .ok_or(format!("{id}, waiting for a tool, is not in the world"))
        };
        let mut pending = BTreeMap::new();
        for p in state.pending {
            let agent = p.agent.as_ref().map(entity).transpose()?;
            let call = Pending {
                payer: entity(&p.payer)?,
                payer_id: p.payer,
                caller: p.caller,
                agent,
                gateway: p.gateway,
                server: p.server,
                tool: p.tool,
            };
            pending.insert(p.request, call);
        }
        Ok(Self {
            next_request: state.next_request,
            pending,
            by_server: state.by_server,
            unavailable: state.unavailable,
            fatal: state.fatal,
        })
    }
}

/// Spawns a gateway artifact per server of the world's configuration, owned by the
/// kernel, its interface empty until the server has listed its tools.
pub(crate) fn spawn_gateways(world: &mut World) {
    let servers = world.resource::<Config>().mcp.servers.clone();
    let kernel = ArtifactId::trusted(KERNEL_ID);
    let mut bytes = 0;
    for (name, server) in &servers {
        let about = about(name, server);
        let artifact = Artifact {
            owner: kernel.clone(),
            created_at: SimTime::ZERO,
            updated_at: SimTime::ZERO,
            content: Box::from(about.as_str()),
            details: None,
        };
        let interface = Interface { description: about, tools: Vec::new() };
        let gateway = McpGateway { server: name.clone(), listed: false };
        let entity = world
            .spawn((ArtifactId::trusted(&gateway_id(name)), artifact, interface, Service::Mcp, gateway, System))
            .id();
        bytes += super::state::artifact_bytes(world, entity);
    }
    if let Some(kernel) = crate::world::ids::lookup(world, KERNEL_ID) {
        super::ledger::allot_disk(world, kernel, bytes);
    }
}

fn about(name: &str, server: &McpServerConfig) -> String {
    let mut price = Vec::new();
    if server.scrip_per_call > 0 {
        price.push(format!("{} scrip", server.scrip_per_call));
    }
    if server.micro_usd_per_call > 0 {
        price.push(format!("{} µ$ of LLM budget", server.micro_usd_per_call));
    }
    let price = if price.is_empty() { "free".to_owned() } else { format!("{} per call", price.join(" and ")) };
    let capability = server
        .capability
        .as_ref()
        .map(|c| format!(" Needs the {c:?} capability (ask kernel_capabilities.request)."))
        .unwrap_or_default();
    format!(
        "MCP server {name}: its tools, called outside the world. A call from an agent's own step returns \
         {{status: \"pending\", request}} at once and the result arrives in its inbox; {price}, charged when the \
         result arrives, nothing for a failed call; one mcp_calls each.{capability}"
    )
}

/// Ingest phase, until every gateway has its tools: lists each server's tools (starting
/// it, or reading the recording) into its gateway's interface.
pub(crate) fn list_gateway_tools(world: &mut World) {
    let mut unlisted = world.query::<(Entity, &ArtifactId, &McpGateway)>();
    let mut todo: Vec<(Entity, ArtifactId, String)> = unlisted
        .iter(world)
        .filter(|(_, _, g)| !g.listed)
        .map(|(e, id, g)| (e, id.clone(), g.server.clone()))
        .collect();
    if todo.is_empty() {
        return;
    }
    todo.sort_by(|a, b| a.1.cmp(&b.1));
    let config = world.resource::<Config>().mcp.clone();
    let now = world.resource::<SimClock>().now();
    let timeout = std::time::Duration::from_millis(config.start_timeout_ms);
    for (entity, gateway, name) in todo {
        let Some(server) = config.servers.get(&name) else { continue };
        let listed = world.resource_mut::<McpBridge>().list_tools(&name, server, timeout);
        if let Some(mut g) = world.get_mut::<McpGateway>(entity) {
            g.listed = true;
        }
        let event = match listed {
            Ok(tools) => {
                let names = tools.iter().map(|t| t.name.clone()).collect();
                let tools: Vec<Tool> = tools
                    .into_iter()
                    .map(|t| Tool { name: t.name, description: t.description, input_schema: t.input_schema })
                    .collect();
                let description = world.get::<Interface>(entity).map(|i| i.description.clone()).unwrap_or_default();
                // The kernel owns the gateway and bears its bytes, the tool list's too.
                let before = super::state::artifact_bytes(world, entity);
                world.entity_mut(entity).insert(Interface { description, tools });
                let grown = super::state::artifact_bytes(world, entity).saturating_sub(before);
                if let Some(kernel) = crate::world::ids::lookup(world, KERNEL_ID) {
                    super::ledger::allot_disk(world, kernel, grown);
                }
                EventKind::McpServerReady { gateway: gateway.clone(), server: name, tools: names }
            }
            Err(message) => {
                let mut calls = world.resource_mut::<McpCalls>();
                if message.starts_with("replay:") {
                    calls.fatal.get_or_insert_with(|| message.clone());
                }
                calls.unavailable.insert(name.clone(), message.clone());
                EventKind::McpServerFailed { gateway: gateway.clone(), server: name, message }
            }
        };
        world.resource_mut::<EventLog>().push(now, ArtifactId::trusted(KERNEL_ID), event);
    }
}

impl Kernel<'_> {
    /// What the payer may still spend through `capability`: `None` if it lacks it.
    fn capability_room(&self, payer: Entity, capability: &str) -> Option<u64> {
        crate::economy::capabilities::room(self.world, payer, capability)
    }
}

/// A gateway's methods: every tool of its server.
pub(crate) fn serve(
    kernel: &mut Kernel,
    gateway: Entity,
    gateway_id: &ArtifactId,
    tool: &str,
    input: &Value,
) -> Result<Value, KernelError> {
    let Some(server_name) = kernel.world.get::<McpGateway>(gateway).map(|g| g.server.clone()) else {
        return Err(KernelError::invalid(format!("{gateway_id} is not an MCP gateway")));
    };
    let config = kernel.world.resource::<Config>().mcp.clone();
    let Some(server) = config.servers.get(&server_name).cloned() else {
        return Err(KernelError::invalid(format!("{gateway_id}: no server {server_name:?} in this world")));
    };
    let payer = kernel.frame.payer;
    let payer_id = kernel.world.get::<ArtifactId>(payer).cloned().unwrap_or_else(|| kernel.caller.clone());
    let price = server.scrip_per_call.saturating_add(server.micro_usd_per_call);
    if let Some(capability) = &server.capability {
        match kernel.capability_room(payer, capability) {
            None => {
                return Err(KernelError::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "{payer_id} lacks the {capability:?} capability that {gateway_id} needs; ask for it with \
                         kernel_capabilities.request"
                    ),
                )
                .with("capability", capability.as_str()));
            }
            Some(room) if room < price => {
                return Err(KernelError::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "{payer_id}'s grant of {capability:?} has {room} left of its spending limit; a call to \
                         {gateway_id} costs {price}"
                    ),
                )
                .with("capability", capability.as_str())
                .with("remaining", room));
            }
            Some(_) => {}
        }
    }
    let standing = kernel.world.get::<Standing>(payer);
    let (scrip, budget) = standing.map_or((0, 0), |s| (s.scrip(), s.llm_budget_micro_usd()));
    if scrip < server.scrip_per_call {
        return Err(KernelError::new(
            ErrorCode::InsufficientFunds,
            format!("{payer_id} holds {scrip} scrip; a call to {gateway_id} costs {}", server.scrip_per_call),
        )
        .with("needed", server.scrip_per_call)
        .with("available", scrip));
    }
    if budget < server.micro_usd_per_call {
        return Err(KernelError::new(
            ErrorCode::BudgetExhausted,
            format!(
                "{payer_id} holds {budget} µ$ of LLM budget; a call to {gateway_id} costs {}",
                server.micro_usd_per_call
            ),
        )
        .with("needed", server.micro_usd_per_call)
        .with("available", budget));
    }
    kernel.take_rate(payer, "mcp_calls", 1)?;

    let id = {
        let mut calls = kernel.world.resource_mut::<McpCalls>();
        calls.next_request += 1;
        calls.next_request
    };
    let timeout = std::time::Duration::from_millis(config.call_timeout_ms);
    let arguments = if input.is_null() { json!({}) } else { input.clone() };
    kernel
        .world
        .resource_scope(|_, mut bridge: Mut<McpBridge>| {
            bridge.submit(id, &server_name, &server, timeout, tool, arguments)
        })
        .map_err(|e| KernelError::system(ErrorCode::ExecutionError, e))?;
    // An agent acting from its own step goes on without waiting.
    let deliver = kernel.frame.depth == 0
        && kernel.frame.payer == kernel.caller_entity
        && kernel.world.get::<Loop>(kernel.caller_entity).is_some();
    let agent = deliver.then_some(kernel.caller_entity);
    let pending = Pending {
        payer,
        payer_id,
        caller: kernel.caller.clone(),
        agent,
        gateway: gateway_id.clone(),
        server: server_name.clone(),
        tool: tool.to_owned(),
    };
    kernel.world.resource_mut::<McpCalls>().pending.insert(id, pending);
    if agent.is_some() {
        return Ok(json!({"status": "pending", "request": request_name(id), "gateway": gateway_id, "tool": tool}));
    }
    let waiting = std::time::Instant::now();
    let finished = kernel.world.resource_mut::<McpBridge>().wait(id);
    // Time spent waiting for the server is not the code's (see `Kernel::think`).
    if let Some(chain) = kernel.world.resource_mut::<crate::sandbox::Sandbox>().active.as_mut() {
        chain.deadline += waiting.elapsed();
    }
    let (_, settled) = settle(kernel.world, id, finished).ok_or_else(|| {
        KernelError::system(ErrorCode::ExecutionError, format!("{} was settled twice", request_name(id)))
    })?;
    settled
}

/// The text of a tool result's text blocks, joined.
fn result_text(result: &Value) -> String {
    let blocks = result.get("content").and_then(Value::as_array);
    let texts: Vec<&str> = blocks
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    texts.join("\n")
}

/// Settles call `id`: charges a result, logs the event. Returns the call and what its
/// caller gets.
fn settle(world: &mut World, id: u64, finished: McpFinished) -> Option<(Pending, Result<Value, KernelError>)> {
    let pending = world.resource_mut::<McpCalls>().pending.remove(&id)?;
    let now = world.resource::<SimClock>().now();
    let server = world.resource::<Config>().mcp.servers.get(&pending.server).cloned().unwrap_or_default();
    let result = match finished.outcome.and_then(|text| {
        serde_json::from_str::<Value>(&text).map_err(|e| crate::bridge::client::Failure {
            kind: FailureKind::Unavailable,
            message: format!("the server's result is not JSON: {e}"),
        })
    }) {
        Ok(result) => {
            // Never more than the payer still holds: it may have spent since it asked.
            let scrip = match crate::world::ids::lookup(world, KERNEL_ID) {
                Some(kernel) => super::ledger::charge_scrip(world, pending.payer, kernel, server.scrip_per_call),
                None => 0,
            };
            let cost = super::ledger::charge_llm_budget(world, pending.payer, server.micro_usd_per_call);
            if let Some(capability) = &server.capability {
                crate::economy::capabilities::spend(world, pending.payer, capability, scrip + cost);
            }
            let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
            let text = result_text(&result);
            let usage = world.resource_mut::<McpCalls>().by_server.entry(pending.server.clone()).or_default().clone();
            let usage = McpUse {
                calls: usage.calls + 1,
                scrip: usage.scrip + scrip,
                cost_micro_usd: usage.cost_micro_usd + cost,
                ..usage
            };
            world.resource_mut::<McpCalls>().by_server.insert(pending.server.clone(), usage);
            // In lockstep a live run is reproducible when the servers answer alike:
            // the wall-clock latency is left out of the world.
            let lockstep = world.resource::<Config>().llm.clock == ClockMode::Lockstep;
            let latency_ms = if lockstep { 0 } else { finished.latency_ms };
            let event = EventKind::McpCall {
                principal: pending.payer_id.clone(),
                gateway: pending.gateway.clone(),
                request: request_name(id),
                tool: pending.tool.clone(),
                scrip,
                cost_micro_usd: cost,
                is_error,
                latency_ms,
                excerpt: excerpt(&text, EXCERPT_CHARS),
            };
            world.resource_mut::<EventLog>().push(now, pending.caller.clone(), event);
            let mut answer = json!({
                "request": request_name(id),
                "gateway": pending.gateway,
                "tool": pending.tool,
                "is_error": is_error,
                "text": text,
                "content": result.get("content").cloned().unwrap_or(Value::Array(Vec::new())),
                "scrip": scrip,
                "cost_micro_usd": cost,
            });
            if let Some(structured) = result.get("structuredContent") {
                answer["structured"] = structured.clone();
            }
            // In lockstep the world must not depend on latency, so code is not told it.
            if !lockstep {
                answer["latency_ms"] = latency_ms.into();
            }
            Ok(answer)
        }
        Err(failure) => {
            let reason = serde_json::to_value(failure.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
            let reason = reason.unwrap_or_default();
            let mut calls = world.resource_mut::<McpCalls>();
            let usage = calls.by_server.entry(pending.server.clone()).or_default();
            usage.failed += 1;
            usage.first_failure.get_or_insert_with(|| format!("{reason}: {}", failure.message));
            if failure.kind == FailureKind::ReplayMiss {
                calls.fatal.get_or_insert_with(|| failure.message.clone());
            }
            let event = EventKind::McpCallFailed {
                principal: pending.payer_id.clone(),
                gateway: pending.gateway.clone(),
                request: request_name(id),
                tool: pending.tool.clone(),
                reason: reason.clone(),
                message: failure.message.clone(),
            };
            world.resource_mut::<EventLog>().push(now, pending.caller.clone(), event);
            let code =
                if failure.kind == FailureKind::Timeout { ErrorCode::Timeout } else { ErrorCode::ExecutionError };
            let mut error = KernelError::system(code, format!("{} failed: {}", request_name(id), failure.message))
                .with("request", request_name(id))
                .with("reason", reason);
            error.retriable = matches!(failure.kind, FailureKind::Timeout | FailureKind::Unavailable);
            Err(error)
        }
    };
    Some((pending, result))
}

/// Ingest phase: results that are in (in `lockstep`, every result asked for so far)
/// are settled and delivered, in request order.
pub(crate) fn ingest_mcp_results(world: &mut World) {
    if world.resource::<McpCalls>().pending.is_empty() {
        return;
    }
    let lockstep = world.resource::<Config>().llm.clock == ClockMode::Lockstep;
    let results = world.resource_mut::<McpBridge>().collect(lockstep);
    for (id, finished) in results {
        deliver(world, id, finished);
    }
}

/// Settles a result and hands it to the agent that asked, waking it.
fn deliver(world: &mut World, id: u64, finished: McpFinished) {
    let Some((pending, result)) = settle(world, id, finished) else { return };
    let Some(agent) = pending.agent else { return };
    let now = world.resource::<SimClock>().now();
    let mut entry = json!({
        "action": "invoke",
        "id": pending.gateway,
        "method": pending.tool,
        "request": request_name(id),
    });
    match result {
        Ok(answer) => {
            entry["success"] = true.into();
            entry["result"] = answer;
        }
        Err(error) => {
            entry["success"] = false.into();
            entry["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
        }
    }
    let mut entity = world.entity_mut(agent);
    if let Some(mut inbox) = entity.get_mut::<Inbox>() {
        crate::agents::push_bounded(&mut inbox, entry);
    }
    if let Some(mut agent) = entity.get_mut::<Loop>() {
        agent.wake_at = agent.wake_at.min(now);
    }
}

/// Gives up on every call in flight (the run is over): nothing is charged, and each
/// ends with `MCP_CALL_FAILED`.
pub fn cancel_mcp_calls(world: &mut World) {
    world.resource_mut::<McpBridge>().cancel_all();
    let pending: Vec<u64> = world.resource::<McpCalls>().pending.keys().copied().collect();
    for id in pending {
        let finished = McpFinished {
            outcome: Err(crate::bridge::client::Failure {
                kind: FailureKind::Cancelled,
                message: "the run ended first".into(),
            }),
            latency_ms: 0,
        };
        deliver(world, id, finished);
    }
}
