//! Thinking (SPEC §9): the `llm` syscall and the `kernel_llm_gateway` service.
//!
//! Only code whose artifact has the `can_call_llm` capability may make the syscall;
//! the gateway, a world service that has it, lets anyone reach a model through an
//! ordinary invoke. Thinking costs LLM budget, not scrip, and the principal at the
//! root of the invoke chain pays (the frame's payer). A call goes:
//!
//! 1. **estimate** — prompt tokens from the request's size (four bytes a token) plus
//!    the completion tokens asked for, priced at the model's rates;
//! 2. **reserve** — the payer must hold the estimate (else `BUDGET_EXHAUSTED`, and an
//!    agent that cannot pay to think is frozen until someone brings it that much);
//!    its `llm_tokens` and `llm_calls` rates must have room; the estimate is taken
//!    from its budget;
//! 3. **call** — through the [`LlmBridge`];
//! 4. **settle** — the reservation comes back and the real cost, the usage the server
//!    reported × the model's price, is charged; the tokens are recorded against the
//!    payer's `llm_tokens` rate. A failed call costs nothing.
//!
//! An agent calling the gateway from its own step does not wait: its invoke returns
//! `{status: "thinking", request}` at once, the agent gets [`Thinking`] (it does not
//! step meanwhile), and the answer arrives in its inbox in the Ingest phase of a
//! later step, which wakes it. Code that calls a model from inside an invoke (the
//! syscall, or the gateway from code) waits for the answer: its caller is waiting
//! for its result. In `lockstep` mode a step does not start until every answer asked
//! for earlier is in, so results do not depend on latency.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ErrorCode, EventKind, EventLog, Kernel, KernelError, exec::Charges};
use crate::kernel::Standing;
use crate::{
    bridge::{
        LlmBridge,
        client::{Answer, FailureKind, Finished, excerpt},
        config::{ClockMode, LlmConfig},
    },
    world::{
        components::{Inbox, Loop, ModelChoice, Thinking},
        config::Config,
        ids::ArtifactId,
        time::SimClock,
    },
};

/// The capability that opens the `llm` syscall.
pub const CAN_CALL_LLM: &str = "can_call_llm";

/// Characters of an answer kept in its `THINKING` event.
pub const EXCERPT_CHARS: usize = 200;

/// A chat request, as code and agents write it (OpenAI's fields, minus the model's
/// API name, which the world fills in).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatArgs {
    /// A model of the world's price table; default: the caller's, else the world's.
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Value>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

/// A call to a model in flight.
#[derive(Debug, Clone)]
struct Pending {
    payer: Entity,
    payer_id: ArtifactId,
    /// Who asked (the actor of its events).
    caller: ArtifactId,
    /// The agent to deliver the answer to, when it did not wait.
    agent: Option<Entity>,
    model: String,
    reserved: u64,
}

/// What the world's thinking has cost, by model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUse {
    pub calls: u64,
    pub failed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micro_usd: u64,
    /// Why the first failed call failed (`reason: message`), so that a run whose
    /// thinking failed says so where it is summed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

impl LlmUse {
    fn fail(&mut self, why: &str) {
        self.failed += 1;
        self.first_failure.get_or_insert_with(|| why.to_owned());
    }

    fn add(&mut self, prompt: u64, completion: u64, cost: u64) {
        self.calls += 1;
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.cost_micro_usd += cost;
    }
}

/// Calls in flight and what thinking has cost so far.
#[derive(Resource, Debug, Default)]
pub struct Thoughts {
    next_request: u64,
    pending: BTreeMap<u64, Pending>,
    total: LlmUse,
    by_model: BTreeMap<String, LlmUse>,
    /// A replay asked for a call that was never recorded: the run cannot go on.
    fatal: Option<String>,
}

impl Thoughts {
    pub fn total(&self) -> &LlmUse {
        &self.total
    }
    pub fn by_model(&self) -> &BTreeMap<String, LlmUse> {
        &self.by_model
    }
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
    /// Why the run cannot go on, if it cannot.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }
    /// Requests issued so far (the next request's number).
    pub fn requests(&self) -> u64 {
        self.next_request
    }
    /// What the checksum covers: the request counter, the totals, and every call in
    /// flight with its payer and reservation.
    pub(crate) fn digest_view(&self) -> impl Serialize + '_ {
        let pending: Vec<(u64, &ArtifactId, &ArtifactId, &str, u64)> =
            self.pending.iter().map(|(id, p)| (*id, &p.payer_id, &p.caller, p.model.as_str(), p.reserved)).collect();
        (self.next_request, &self.total, &self.by_model, pending)
    }

    /// LLM budget held for calls in flight, by payer.
    pub fn reserved_by(&self) -> BTreeMap<ArtifactId, u64> {
        let mut held = BTreeMap::new();
        for pending in self.pending.values() {
            *held.entry(pending.payer_id.clone()).or_insert(0) += pending.reserved;
        }
        held
    }
}

/// A call in flight as a checkpoint keeps it: by ids, not entities.
#[derive(Serialize, Deserialize)]
struct PendingState {
    request: u64,
    payer: ArtifactId,
    caller: ArtifactId,
    agent: Option<ArtifactId>,
    model: String,
    reserved: u64,
}

/// What a checkpoint keeps of [`Thoughts`].
#[derive(Serialize, Deserialize)]
pub(crate) struct ThoughtsState {
    next_request: u64,
    pending: Vec<PendingState>,
    total: LlmUse,
    by_model: BTreeMap<String, LlmUse>,
    fatal: Option<String>,
}

impl Thoughts {
    pub(crate) fn state(&self, world: &World) -> ThoughtsState {
        let pending = self
            .pending
            .iter()
            .map(|(&request, p)| PendingState {
                request,
                payer: p.payer_id.clone(),
                caller: p.caller.clone(),
                agent: p.agent.and_then(|e| world.get::<ArtifactId>(e).cloned()),
                model: p.model.clone(),
                reserved: p.reserved,
            })
            .collect();
        ThoughtsState {
            next_request: self.next_request,
            pending,
            total: self.total.clone(),
            by_model: self.by_model.clone(),
            fatal: self.fatal.clone(),
        }
    }

    /// The calls a checkpoint kept, their payers and agents found again in `world`.
    pub(crate) fn from_state(state: ThoughtsState, world: &World) -> Result<Self, String> {
        let entity = |id: &ArtifactId| {
            crate::world::ids::lookup(world, id.as_str()).ok_or(format!("{id}, who is thinking, is not in the world"))
        };
        let mut pending = BTreeMap::new();
        for p in state.pending {
            let agent = p.agent.as_ref().map(entity).transpose()?;
            let call = Pending {
                payer: entity(&p.payer)?,
                payer_id: p.payer,
                caller: p.caller,
                agent,
                model: p.model,
                reserved: p.reserved,
            };
            pending.insert(p.request, call);
        }
        Ok(Self {
            next_request: state.next_request,
            pending,
            total: state.total,
            by_model: state.by_model,
            fatal: state.fatal,
        })
    }
}

/// The request id as agents see it.
fn request_name(id: u64) -> String {
    format!("llm-{id}")
}

impl Kernel<'_> {
    /// The `llm` syscall, for code whose artifact has `can_call_llm`.
    pub(crate) fn llm_syscall(&mut self, args: Value) -> Result<Value, KernelError> {
        // Held from creation, or granted on request.
        let allowed = crate::economy::capabilities::room(self.world, self.caller_entity, CAN_CALL_LLM).is_some();
        if !allowed {
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("{} lacks the {CAN_CALL_LLM} capability; invoke kernel_llm_gateway instead", self.caller),
            )
            .with("capability", CAN_CALL_LLM));
        }
        let args: ChatArgs = serde_json::from_value(args).map_err(|e| KernelError::invalid(format!("llm: {e}")))?;
        let answer = self.think(args, false)?;
        // A granted capability with a limit counts what its calls cost. The call that
        // crosses the limit completes (its cost was not known before); failed calls
        // cost nothing and count nothing.
        let cost = answer["cost_micro_usd"].as_u64().unwrap_or(0);
        crate::economy::capabilities::spend(self.world, self.caller_entity, CAN_CALL_LLM, cost);
        Ok(answer)
    }

    /// Calls a model for the caller, charging the frame's payer. With `deliver`, an
    /// agent acting from its own step does not wait: the answer goes to its inbox.
    pub(crate) fn think(&mut self, args: ChatArgs, deliver: bool) -> Result<Value, KernelError> {
        let config = self.world.resource::<Config>().llm.clone();
        let payer = self.frame.payer;
        let payer_id = self.world.get::<ArtifactId>(payer).cloned().unwrap_or_else(|| self.caller.clone());
        let chosen =
            args.model.clone().or_else(|| self.model_choice(self.caller_entity)).or_else(|| self.model_choice(payer));
        let (model_name, model) = config.model(chosen.as_deref()).map_err(KernelError::invalid)?;
        let (model_name, model) = (model_name.to_owned(), model.clone());
        if args.messages.is_empty() {
            return Err(KernelError::invalid("a chat needs at least one message"));
        }
        let max_tokens = args.max_tokens.unwrap_or(config.max_tokens).max(1);
        let body = request_body(&args, model.api_name.as_deref().unwrap_or(&model_name), max_tokens);

        // Estimate, then check the payer can bear it before anything changes.
        let prompt_estimate = (body.len() as u64).div_ceil(4);
        let estimate = model.cost_micro_usd(prompt_estimate, max_tokens);
        let held = self.world.get::<Standing>(payer).map_or(0, Standing::llm_budget_micro_usd);
        if held < estimate {
            let message = format!(
                "{payer_id} holds {held} µ$ of LLM budget; a call to {model_name} may cost up to {estimate} µ$"
            );
            self.freeze_for_thinking(payer, &payer_id, &message, estimate);
            return Err(KernelError::new(ErrorCode::BudgetExhausted, message)
                .with("principal", payer_id.as_str())
                .with("needed", estimate)
                .with("available", held)
                .with("model", model_name));
        }
        self.admit(payer, "llm_tokens", prompt_estimate + max_tokens)?;
        self.take_rate(payer, "llm_calls", 1)?;

        let id = {
            let mut thoughts = self.world.resource_mut::<Thoughts>();
            thoughts.next_request += 1;
            thoughts.next_request
        };
        if super::ledger::reserve_llm_budget(self.world, payer, estimate).is_err() {
            return Err(KernelError::system(ErrorCode::ExecutionError, "the LLM budget changed while checking it"));
        }
        let submitted = self
            .world
            .resource_scope(|_, mut bridge: Mut<LlmBridge>| bridge.submit(&config, id, &model.endpoint, body));
        if let Err(e) = submitted {
            super::ledger::settle_llm_budget(self.world, payer, estimate, 0);
            return Err(KernelError::system(ErrorCode::ExecutionError, e));
        }
        let agent = deliver.then_some(self.caller_entity);
        let pending = Pending {
            payer,
            payer_id,
            caller: self.caller.clone(),
            agent,
            model: model_name.clone(),
            reserved: estimate,
        };
        self.world.resource_mut::<Thoughts>().pending.insert(id, pending);
        if let Some(agent) = agent {
            self.world.entity_mut(agent).insert(Thinking { request: id, since: self.now });
            return Ok(json!({
                "status": "thinking",
                "request": request_name(id),
                "model": model_name,
                "reserved_micro_usd": estimate,
            }));
        }
        let waiting = std::time::Instant::now();
        let finished = self.world.resource_mut::<LlmBridge>().wait(id);
        // Time spent waiting for the model is not the code's: the chain's deadline
        // (meant for runaway code) moves on by as much.
        if let Some(chain) = self.world.resource_mut::<crate::sandbox::Sandbox>().active.as_mut() {
            chain.deadline += waiting.elapsed();
        }
        let (_, settled) = settle(self.world, id, finished).ok_or_else(|| {
            KernelError::system(ErrorCode::ExecutionError, format!("{} was settled twice", request_name(id)))
        })?;
        settled
    }

    fn model_choice(&self, entity: Entity) -> Option<String> {
        self.world.get::<ModelChoice>(entity).map(|m| m.0.clone())
    }

    /// An agent that cannot pay to think is frozen until someone brings it enough.
    fn freeze_for_thinking(&mut self, payer: Entity, payer_id: &ArtifactId, why: &str, needs: u64) {
        if self.world.get::<Loop>(payer).is_none() || self.is_system(payer) {
            return;
        }
        if let Ok(mut system) = Kernel::as_system(self.world) {
            let _ = system.freeze_needing(payer_id.as_str(), why, true, needs);
        }
    }
}

/// The body sent to the endpoint: keys in a fixed order (the cache hashes it).
pub(crate) fn request_body(args: &ChatArgs, api_name: &str, max_tokens: u64) -> String {
    let mut body = Map::new();
    body.insert("model".into(), api_name.into());
    body.insert("messages".into(), Value::Array(args.messages.clone()));
    body.insert("max_tokens".into(), max_tokens.into());
    body.insert("stream".into(), false.into());
    if let Some(tools) = args.tools.as_ref().filter(|t| !t.is_empty()) {
        body.insert("tools".into(), Value::Array(tools.clone()));
        if let Some(choice) = &args.tool_choice {
            body.insert("tool_choice".into(), choice.clone());
        }
    }
    if let Some(temperature) = args.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    Value::Object(body).to_string()
}

/// What an answer looks like to the code or agent that asked.
fn answer_json(id: u64, model: &str, answer: &Answer, cost: u64, latency_ms: Option<u64>) -> Value {
    let tool_calls: Vec<Value> = answer
        .tool_calls
        .iter()
        .map(|call| {
            let mut entry = json!({ "id": call.id, "name": call.name, "arguments": call.arguments });
            match serde_json::from_str::<Value>(&call.arguments) {
                Ok(args) => entry["args"] = args,
                Err(e) => entry["error"] = format!("the arguments are not valid JSON: {e}").into(),
            }
            entry
        })
        .collect();
    let mut json = json!({
        "request": request_name(id),
        "model": model,
        "content": answer.content,
        "tool_calls": tool_calls,
        "finish_reason": answer.finish_reason,
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "reported": answer.usage_reported,
        },
        "cost_micro_usd": cost,
    });
    if let Some(latency_ms) = latency_ms {
        json["latency_ms"] = latency_ms.into();
    }
    json
}

/// A few words of what the model said, for the event.
fn answer_excerpt(answer: &Answer) -> String {
    let calls: Vec<String> =
        answer.tool_calls.iter().map(|c| format!("{}({})", c.name, excerpt(&c.arguments, 60))).collect();
    let text = match (&answer.content, calls.is_empty()) {
        (Some(content), true) => content.clone(),
        (Some(content), false) if !content.trim().is_empty() => format!("{content} → {}", calls.join(", ")),
        _ => format!("→ {}", calls.join(", ")),
    };
    excerpt(&text, EXCERPT_CHARS)
}

/// Settles call `id`: the reservation back, the real cost charged, the events. Returns
/// the call and what its caller gets: the answer, or why there is none.
fn settle(world: &mut World, id: u64, finished: Finished) -> Option<(Pending, Result<Value, KernelError>)> {
    let pending = world.resource_mut::<Thoughts>().pending.remove(&id)?;
    let now = world.resource::<SimClock>().now();
    let result = match finished.outcome {
        Ok(answer) => {
            let price = world.resource::<Config>().llm.models.get(&pending.model).cloned();
            let cost = price.map_or(0, |m| m.cost_micro_usd(answer.prompt_tokens, answer.completion_tokens));
            // Never more than it holds: the reservation was an estimate.
            let charged = super::ledger::settle_llm_budget(world, pending.payer, pending.reserved, cost);
            let tokens = answer.prompt_tokens + answer.completion_tokens;
            if let Some(mut kernel) = Kernel::for_code(world, pending.payer, &pending.payer_id) {
                kernel.record_usage(pending.payer, "llm_tokens", tokens);
            }
            if pending.agent.is_none() {
                world.resource_mut::<Charges>().entries.push(super::exec::Charge {
                    payer: pending.payer,
                    llm_tokens: tokens,
                    llm_cost_micro_usd: charged,
                    ..Default::default()
                });
            }
            let mut thoughts = world.resource_mut::<Thoughts>();
            thoughts.total.add(answer.prompt_tokens, answer.completion_tokens, charged);
            thoughts.by_model.entry(pending.model.clone()).or_default().add(
                answer.prompt_tokens,
                answer.completion_tokens,
                charged,
            );
            let event = EventKind::Thinking {
                principal: pending.payer_id.clone(),
                request: request_name(id),
                model: pending.model.clone(),
                prompt_tokens: answer.prompt_tokens,
                completion_tokens: answer.completion_tokens,
                cost_micro_usd: charged,
                latency_ms: finished.latency_ms,
                attempts: finished.attempts,
                excerpt: answer_excerpt(&answer),
            };
            world.resource_mut::<EventLog>().push(now, pending.caller.clone(), event);
            // In lockstep the world must not depend on latency, so code is not told it.
            let lockstep = world.resource::<Config>().llm.clock == ClockMode::Lockstep;
            let latency_ms = (!lockstep).then_some(finished.latency_ms);
            Ok(answer_json(id, &pending.model, &answer, charged, latency_ms))
        }
        Err(failure) => {
            // A failed call costs nothing.
            super::ledger::settle_llm_budget(world, pending.payer, pending.reserved, 0);
            let reason = serde_json::to_value(failure.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
            let why = format!("{}: {}", reason.as_deref().unwrap_or_default(), failure.message);
            let mut thoughts = world.resource_mut::<Thoughts>();
            thoughts.total.fail(&why);
            thoughts.by_model.entry(pending.model.clone()).or_default().fail(&why);
            if failure.kind == FailureKind::ReplayMiss {
                thoughts.fatal.get_or_insert_with(|| failure.message.clone());
            }
            let event = EventKind::ThinkingFailed {
                principal: pending.payer_id.clone(),
                request: request_name(id),
                model: pending.model.clone(),
                reason: reason.clone().unwrap_or_default(),
                message: failure.message.clone(),
                attempts: finished.attempts,
            };
            world.resource_mut::<EventLog>().push(now, pending.caller.clone(), event);
            let code =
                if failure.kind == FailureKind::Timeout { ErrorCode::Timeout } else { ErrorCode::ExecutionError };
            let mut error = KernelError::system(code, format!("{} failed: {}", request_name(id), failure.message))
                .with("request", request_name(id))
                .with("reason", reason.unwrap_or_default())
                .with("attempts", finished.attempts);
            // Nothing a retry could change.
            error.retriable = matches!(failure.kind, FailureKind::Timeout | FailureKind::Unavailable);
            Err(error)
        }
    };
    Some((pending, result))
}

/// Ingest phase: answers that are in (in `lockstep`, every answer asked for so far)
/// are settled and delivered, in request order.
pub(crate) fn ingest_answers(world: &mut World) {
    if world.resource::<Thoughts>().pending.is_empty() {
        return;
    }
    let lockstep = world.resource::<Config>().llm.clock == ClockMode::Lockstep;
    let answers = world.resource_mut::<LlmBridge>().collect(lockstep);
    for (id, finished) in answers {
        deliver(world, id, finished);
    }
}

/// Settles an answer and hands it to the agent that asked, waking it.
fn deliver(world: &mut World, id: u64, finished: Finished) {
    let Some((pending, result)) = settle(world, id, finished) else { return };
    let Some(agent) = pending.agent else { return };
    let now = world.resource::<SimClock>().now();
    let mut entry = json!({
        "action": "invoke",
        "id": crate::economy::services::GATEWAY_ID,
        "method": "chat",
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
    if entity.get::<Thinking>().is_some_and(|t| t.request == id) {
        entity.remove::<Thinking>();
    }
    if let Some(mut inbox) = entity.get_mut::<Inbox>() {
        crate::agents::push_bounded(&mut inbox, entry);
    }
    if let Some(mut agent) = entity.get_mut::<Loop>() {
        agent.wake_at = agent.wake_at.min(now);
    }
}

/// Gives up on every call in flight (the run is over): reservations come back, no
/// cost is charged, and each ends with `THINKING_FAILED`.
pub fn cancel_thinking(world: &mut World) {
    let ids = world.resource_mut::<LlmBridge>().cancel_all();
    let pending: Vec<u64> = world.resource::<Thoughts>().pending.keys().copied().collect();
    for id in pending {
        let why = if ids.contains(&id) { "the run ended first" } else { "the request was lost" };
        deliver(world, id, Finished::failed(FailureKind::Cancelled, why));
    }
}

/// The gateway's methods.
pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    match method {
        "chat" => {
            let args: ChatArgs = crate::economy::services::args(method, input)?;
            // An agent acting from its own step goes on without waiting.
            let deliver = kernel.frame.depth == 0
                && kernel.frame.payer == kernel.caller_entity
                && kernel.world.get::<Loop>(kernel.caller_entity).is_some();
            kernel.think(args, deliver)
        }
        "models" => Ok(models_json(&kernel.world.resource::<Config>().llm, kernel.model_choice(kernel.caller_entity))),
        _ => Err(crate::economy::services::no_such_method(crate::economy::services::GATEWAY_ID, method)),
    }
}

/// The price table, for `models`.
fn models_json(config: &LlmConfig, own: Option<String>) -> Value {
    let models: Map<String, Value> = config
        .models
        .iter()
        .map(|(name, model)| {
            let entry = json!({
                "endpoint": model.endpoint,
                "input_micro_usd_per_mtok": model.input_micro_usd_per_mtok,
                "output_micro_usd_per_mtok": model.output_micro_usd_per_mtok,
            });
            (name.clone(), entry)
        })
        .collect();
    json!({
        "default_model": config.default_model,
        "your_model": own.or_else(|| config.default_model.clone()),
        "max_tokens": config.max_tokens,
        "models": models,
    })
}
