//! Running artifact code from the kernel, and answering the code's host calls.
//!
//! [`Kernel::run_code`] sends one call to the worker of the active chain (starting a
//! chain if none is active) and serves the worker until the call is done: each host
//! call the code makes is performed by a kernel acting *as the running artifact* —
//! never as anyone the code names — and may itself run code (a nested invoke, a
//! contract), on the same worker. What a call used is charged to its payer whatever
//! the outcome; a call whose worker had to be killed is charged the chain's whole
//! deadline, so that a timeout is never cheaper than finishing.

use bevy_ecs::prelude::*;
use serde_json::{Value, json};

use super::{ErrorCode, EventLog, Frame, Kernel, KernelError, artifacts::WriteSpec, query, state};
use crate::kernel::Standing;
use crate::{
    sandbox::{
        Sandbox, SandboxConfig, WorkerFailure,
        protocol::{CallMode, CallRequest, Entry, FailureKind, FromWorker, HostCall, ModuleSource, ToWorker},
    },
    world::{components::Executable, config::Config, ids::ArtifactId, rng::SimRng},
};

/// One call of artifact code, as the kernel asks for it.
pub(crate) struct CodeCall<'a> {
    /// The artifact whose code runs (and as whom its host calls act).
    pub entity: Entity,
    pub id: &'a ArtifactId,
    pub entry: Entry,
    /// First argument, JSON text.
    pub input: String,
    /// Second argument, JSON text.
    pub ctx: String,
    pub mode: CallMode,
    /// Where this call sits in its chain, and who pays for it.
    pub frame: Frame,
    pub loop_limit: u64,
}

/// What a finished call returned and used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CodeResult {
    pub json: String,
    pub cpu_us: u64,
    pub memory_bytes: u64,
}

/// Resources charged during the current action, payer by payer.
#[derive(Resource, Debug, Clone, Default)]
pub(crate) struct Charges {
    pub entries: Vec<Charge>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Charge {
    pub payer: Entity,
    pub cpu_us: u64,
    pub memory_bytes: u64,
    pub llm_tokens: u64,
    pub llm_cost_micro_usd: u64,
}

impl Default for Charge {
    fn default() -> Self {
        Self { payer: Entity::PLACEHOLDER, cpu_us: 0, memory_bytes: 0, llm_tokens: 0, llm_cost_micro_usd: 0 }
    }
}

/// While a contract check runs: how much more CPU its caller's payer may be charged
/// for it, and where the rest goes. Checks inside it share it, so a contract cannot
/// multiply the caller's bound by checking other contracts.
#[derive(Resource, Debug, Default)]
pub(crate) struct ContractBill(Option<Bill>);

#[derive(Debug)]
struct Bill {
    payer: Entity,
    owner: Entity,
    left_us: u64,
    owner_us: u64,
}

/// A kernel error for a call that failed, carrying what it used.
fn code_error(code: ErrorCode, message: String, cpu_us: u64) -> KernelError {
    KernelError::new(code, message).with("cpu_us", cpu_us)
}

fn worker_error(failure: &WorkerFailure) -> KernelError {
    match failure {
        WorkerFailure::Timeout => KernelError::new(ErrorCode::Timeout, failure.to_string()),
        WorkerFailure::Start(_) => KernelError::system(ErrorCode::ExecutionError, failure.to_string()),
        WorkerFailure::Died(_) | WorkerFailure::Protocol(_) => {
            KernelError::new(ErrorCode::ExecutionError, failure.to_string())
        }
    }
}

impl<'w> Kernel<'w> {
    /// The kernel acting as an artifact whose code is running (it need not be a
    /// principal: host calls that need standing check for it).
    pub(crate) fn for_code(world: &'w mut World, entity: Entity, id: &ArtifactId) -> Option<Self> {
        world.get_entity(entity).ok()?;
        let now = world.resource::<crate::world::time::SimClock>().now();
        Some(Self { world, caller: id.clone(), caller_entity: entity, now, frame: Frame::top(entity) })
    }
}

impl Kernel<'_> {
    /// Answers a host call from code that may only look (an agent's step).
    pub(crate) fn answer_look(
        &mut self,
        host_call: HostCall,
        args: &str,
        samples: &mut query::SampleSeeds,
    ) -> Result<Value, KernelError> {
        let id = self.caller.clone();
        let call = CodeCall {
            entity: self.caller_entity,
            id: &id,
            entry: Entry::Step,
            input: String::new(),
            ctx: String::new(),
            mode: CallMode::Look,
            frame: self.frame,
            loop_limit: 0,
        };
        self.answer_host_call(&call, host_call, args, samples)
    }

    pub(crate) fn sandbox_config(&self) -> SandboxConfig {
        self.world.resource::<Config>().sandbox.clone()
    }

    /// Runs one call of artifact code to completion.
    pub(crate) fn run_code(&mut self, call: CodeCall) -> Result<CodeResult, KernelError> {
        let config = self.sandbox_config();
        let lane = self.world.resource::<Sandbox>().lane_for(call.id.as_str(), &config);
        self.in_chain(lane, &config, |kernel| kernel.drive(&call, &config))
    }

    /// Runs `work` inside a chain on `lane`, starting one if none is active (and
    /// then ending it afterwards). Everything run inside uses the chain's worker, so
    /// an operation that runs several pieces of code (a contract, then the target)
    /// keeps them on one warm worker.
    pub(crate) fn in_chain<T>(
        &mut self,
        lane: usize,
        config: &SandboxConfig,
        work: impl FnOnce(&mut Self) -> Result<T, KernelError>,
    ) -> Result<T, KernelError> {
        let root = self.world.resource_mut::<Sandbox>().begin_chain(lane, config).map_err(|e| worker_error(&e))?;
        let result = work(self);
        if root {
            self.world.resource_mut::<Sandbox>().end_chain();
        }
        result
    }

    fn drive(&mut self, call: &CodeCall, config: &SandboxConfig) -> Result<CodeResult, KernelError> {
        let Some(executable) = self.world.get::<Executable>(call.entity) else {
            return Err(KernelError::invalid(format!("{} has no code", call.id)));
        };
        let (code, code_hash) = (executable.code.clone(), executable.code_hash());
        // Every module it imports, as they are now; a broken import fails the call.
        let modules = super::imports::closure(self.world, call.entity, call.id)?;
        // A payer already at its CPU limit is refused before anything runs.
        self.admit(call.frame.payer, "cpu", 1)?;
        let seed = self.world.resource_mut::<SimRng>().next_u64();
        let now_ms = self.now.millis();
        let mut sandbox = self.world.resource_mut::<Sandbox>();
        let id = sandbox.next_call_id();
        let Some(chain) = sandbox.active.as_mut() else {
            return Err(KernelError::system(ErrorCode::ExecutionError, "no sandbox chain is active"));
        };
        let Some(worker) = chain.worker.as_mut() else {
            let failure = chain.failure.clone().unwrap_or(WorkerFailure::Died("gone".into()));
            return Err(worker_error(&failure));
        };
        let (code, mut forget) = worker.code_to_send(code_hash, &code);
        let modules = modules
            .iter()
            .map(|module| {
                let (code, evicted) = worker.code_to_send(module.code_hash, &module.code);
                forget.extend(evicted);
                ModuleSource { id: module.id.to_string(), code_hash: module.code_hash, code }
            })
            .collect();
        let request = CallRequest {
            id,
            code_hash,
            code,
            forget,
            modules,
            entry: call.entry,
            input: call.input.clone(),
            ctx: call.ctx.clone(),
            now_ms,
            seed,
            loop_limit: call.loop_limit,
            result_limit: config.result_bytes,
            mode: call.mode,
        };
        if let Err(failure) = worker.send(&ToWorker::Call(request)) {
            chain.worker = None;
            chain.failure = Some(failure.clone());
            return Err(worker_error(&failure));
        }
        chain.open_calls += 1;
        let mut samples = query::SampleSeeds::new(seed);

        loop {
            let received = {
                let mut sandbox = self.world.resource_mut::<Sandbox>();
                let Some(chain) = sandbox.active.as_mut() else {
                    return Err(KernelError::system(ErrorCode::ExecutionError, "the sandbox chain ended early"));
                };
                let deadline = call.frame.deadline.map_or(chain.deadline, |d| d.min(chain.deadline));
                match chain.worker.as_mut() {
                    Some(worker) => worker.receive(deadline),
                    None => Err(chain.failure.clone().unwrap_or(WorkerFailure::Died("gone".into()))),
                }
            };
            match received {
                Ok(FromWorker::Rpc { call: host_call, args }) => {
                    let reply = match self.answer_host_call(call, host_call, &args, &mut samples) {
                        Ok(value) => Ok(value.to_string()),
                        Err(error) => Err(serde_json::to_string(&error).unwrap_or_default()),
                    };
                    let mut sandbox = self.world.resource_mut::<Sandbox>();
                    let Some(chain) = sandbox.active.as_mut() else {
                        return Err(KernelError::system(ErrorCode::ExecutionError, "the sandbox chain ended early"));
                    };
                    // A nested call may have lost the worker; then this call is lost too.
                    let sent = match chain.worker.as_mut() {
                        Some(worker) => worker.send(&ToWorker::Reply(reply)),
                        None => Err(chain.failure.clone().unwrap_or(WorkerFailure::Died("gone".into()))),
                    };
                    if let Err(failure) = sent {
                        return Err(self.lose_worker(call, failure, config));
                    }
                }
                Ok(FromWorker::Done(result)) => {
                    if let Some(chain) = self.world.resource_mut::<Sandbox>().active.as_mut() {
                        chain.open_calls = chain.open_calls.saturating_sub(1);
                        if let Some(worker) = chain.worker.as_mut() {
                            worker.note_result(&result);
                        }
                    }
                    let cpu_us = config.cpu_us(result.instructions);
                    self.charge(call.frame.payer, cpu_us, result.peak_bytes);
                    if let Err(error) = self.check_memory(call.frame.payer, result.peak_bytes) {
                        return Err(error.with("cpu_us", cpu_us));
                    }
                    return match result.outcome {
                        Ok(json) => Ok(CodeResult { json, cpu_us, memory_bytes: result.peak_bytes }),
                        Err(failed) => {
                            let what = match failed.kind {
                                FailureKind::Limit => "stopped by a limit",
                                FailureKind::Compile => "does not compile",
                                FailureKind::NoEntry => "has no such entry point",
                                FailureKind::NotJson => "returned something that is not JSON",
                                FailureKind::TooLarge => "returned too much",
                                FailureKind::Thrown => "threw",
                            };
                            let message = format!("{} {what}: {}", call.id, failed.message);
                            Err(code_error(ErrorCode::ExecutionError, message, cpu_us))
                        }
                    };
                }
                Ok(other) => {
                    let failure = WorkerFailure::Protocol(format!("unexpected {other:?}"));
                    return Err(self.lose_worker(call, failure, config));
                }
                Err(failure) => return Err(self.lose_worker(call, failure, config)),
            }
        }
    }

    /// The chain's worker is gone: every open call on it fails, and this one is
    /// charged the whole deadline.
    fn lose_worker(&mut self, call: &CodeCall, failure: WorkerFailure, config: &SandboxConfig) -> KernelError {
        let mut first = true;
        if let Some(chain) = self.world.resource_mut::<Sandbox>().active.as_mut() {
            if let Some(mut worker) = chain.worker.take() {
                worker.kill();
            }
            first = chain.failure.is_none();
            chain.failure.get_or_insert(failure.clone());
            chain.open_calls = chain.open_calls.saturating_sub(1);
        }
        // The deadline is charged once per lost worker, to the call that lost it; the
        // calls it was nested in fail with it, already paid for. Inside a contract check
        // that is the check's own deadline.
        let deadline_ms = if call.frame.deadline.is_some() { config.contract_timeout_ms } else { config.timeout_ms };
        let cpu_us = if first { deadline_ms * 1000 } else { 0 };
        self.charge(call.frame.payer, cpu_us, 0);
        worker_error(&failure).with("cpu_us", cpu_us)
    }

    /// Opens the bill of a contract check unless one is open; true when it opened it.
    pub(crate) fn open_contract_bill(&mut self, payer: Entity, owner: Entity, caller_bound_us: u64) -> bool {
        let mut bill = self.world.resource_mut::<ContractBill>();
        if bill.0.is_some() {
            return false;
        }
        bill.0 = Some(Bill { payer, owner, left_us: caller_bound_us, owner_us: 0 });
        true
    }

    /// Closes the bill of a contract check; returns the CPU charged to its owner.
    pub(crate) fn close_contract_bill(&mut self) -> u64 {
        self.world.resource_mut::<ContractBill>().0.take().map_or(0, |bill| bill.owner_us)
    }

    /// Books what a call used: against the payer's CPU window, and in the action's
    /// charges (for its result). Inside a contract check, CPU past the caller's bound
    /// is booked to the contract's owner instead (and not in the action's charges: the
    /// caller did not spend it).
    fn charge(&mut self, payer: Entity, cpu_us: u64, memory_bytes: u64) {
        let mut cpu_us = cpu_us;
        let mut beyond = None;
        if let Some(bill) = self.world.resource_mut::<ContractBill>().0.as_mut().filter(|b| b.payer == payer) {
            let paid = cpu_us.min(bill.left_us);
            bill.left_us -= paid;
            bill.owner_us += cpu_us - paid;
            beyond = Some((bill.owner, cpu_us - paid));
            cpu_us = paid;
        }
        if let Some((owner, owner_us)) = beyond {
            self.record_usage(owner, "cpu", owner_us);
        }
        self.record_usage(payer, "cpu", cpu_us);
        self.world.resource_mut::<Charges>().entries.push(Charge { payer, cpu_us, memory_bytes, ..Default::default() });
    }

    /// Whether calls are still waiting on the active chain's worker (so a failure
    /// now cannot be contained: their JS frames are on that worker).
    pub(crate) fn chain_has_open_calls(&self) -> bool {
        self.world.resource::<Sandbox>().active.as_ref().is_some_and(|c| c.open_calls > 0)
    }

    /// Performs a host call made by the code of `call`, as that artifact.
    fn answer_host_call(
        &mut self,
        call: &CodeCall,
        host_call: HostCall,
        args: &str,
        samples: &mut query::SampleSeeds,
    ) -> Result<Value, KernelError> {
        if !host_call.allowed_in(call.mode) {
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("{} is not available here", host_call.name()),
            ));
        }
        let args: Vec<Value> = serde_json::from_str(args).map_err(|e| KernelError::invalid(e.to_string()))?;
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
        let text = |i: usize, what: &str| -> Result<String, KernelError> {
            args.get(i).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                KernelError::invalid(format!("{}: argument {} ({what}) must be a string", host_call.name(), i + 1))
            })
        };
        let now = self.now;
        // The running artifact acts; its frame carries depth and payer on.
        let mut actor = Kernel {
            world: &mut *self.world,
            caller: call.id.clone(),
            caller_entity: call.entity,
            now,
            frame: call.frame,
        };
        match host_call {
            HostCall::Invoke => {
                let target = text(0, "artifact id")?;
                let method = args.get(1).and_then(Value::as_str).unwrap_or("run").to_owned();
                let expect: super::invoke::Expect = match arg(3) {
                    Value::Null => Default::default(),
                    options => serde_json::from_value(options)
                        .map_err(|e| KernelError::invalid(format!("invoke options: {e}")))?,
                };
                let nested = actor.frame.nested();
                actor.frame = nested;
                actor.invoke_expecting(&target, &method, arg(2), &expect).map(|r| r.value)
            }
            HostCall::Transfer => {
                actor.require_standing()?;
                let to = text(0, "recipient")?;
                let amount = arg(1)
                    .as_f64()
                    .filter(|a| a.fract() == 0.0)
                    .map(|a| a as i64)
                    .ok_or_else(|| KernelError::invalid("transfer: argument 2 (amount) must be an integer"))?;
                let resource = args.get(2).and_then(Value::as_str).unwrap_or("scrip").to_owned();
                actor.atomically(|actor| actor.transfer_resource(&to, &resource, amount))?;
                Ok(json!({ "to": to, "amount": amount, "resource": resource }))
            }
            HostCall::Write => {
                actor.require_standing()?;
                let id = text(0, "artifact id")?;
                let mut options = match arg(2) {
                    Value::Null => serde_json::Map::new(),
                    Value::Object(options) => options,
                    _ => return Err(KernelError::invalid("write: argument 3 (options) must be an object")),
                };
                options.insert("id".into(), id.into());
                let mut spec: WriteSpec = serde_json::from_value(Value::Object(options))
                    .map_err(|e| KernelError::invalid(format!("write options: {e}")))?;
                if let Some(content) = args.get(1).filter(|c| !c.is_null()) {
                    spec.content = Some(match content {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                let change = actor.atomically(|actor| actor.write(spec))?;
                Ok(
                    json!({ "id": change.id, "bytes": change.bytes, "disk_delta": change.disk_delta, "created": change.created }),
                )
            }
            HostCall::Read => {
                actor.require_standing()?;
                let id = text(0, "artifact id")?;
                actor.atomically(|actor| actor.read(&id)).map(|(value, _price)| value)
            }
            HostCall::Balance => Ok(state::balance(actor.world, &text(0, "principal id")?)?.into()),
            HostCall::Resource => {
                let id = text(0, "principal id")?;
                let name = text(1, "resource")?;
                Ok(state::get_resource(actor.world, &id, &name)?.into())
            }
            HostCall::Artifact => {
                let id = text(0, "artifact id")?;
                let entity = crate::world::ids::lookup(actor.world, &id).ok_or_else(|| KernelError::not_found(&id))?;
                Ok(query::metadata(actor.world, entity))
            }
            HostCall::Query => {
                let spec: query::QuerySpec = match arg(0) {
                    Value::Null => query::QuerySpec::default(),
                    spec => serde_json::from_value(spec).map_err(|e| KernelError::invalid(format!("query: {e}")))?,
                };
                query::run(actor.world, &spec, Some(samples.next_seed())).map(|(value, _)| value)
            }
            HostCall::Events => events_json(actor.world, &arg(0)),
            HostCall::Llm => actor.llm_syscall(arg(0)),
            HostCall::Invocations => Ok(query::invocation_stats(actor.world, &text(0, "artifact id")?)),
            HostCall::Quota => {
                let id = text(0, "principal id")?;
                let resource = text(1, "resource")?;
                let limit = state::get_quota(actor.world, &id, &resource)?;
                let available = super::quotas::get_available_capacity(actor.world, &id, &resource)?;
                let used = super::quotas::get_usage(actor.world, &id, &resource).unwrap_or(0);
                Ok(json!({ "limit": limit, "used": used, "available": available }))
            }
        }
    }

    /// Host calls that move holdings need the running artifact to have some.
    fn require_standing(&self) -> Result<(), KernelError> {
        if self.world.get::<Standing>(self.caller_entity).is_none() {
            return Err(KernelError::not_a_principal(self.caller.as_str())
                .with("hint", "only artifacts with standing can hold, pay or own"));
        }
        Ok(())
    }
}

/// `kernel.events({since, type, actor, limit})`: recent events from the in-memory log.
fn events_json(world: &World, filter: &Value) -> Result<Value, KernelError> {
    let since = filter.get("since").and_then(Value::as_u64).unwrap_or(0);
    let kind = filter.get("type").and_then(Value::as_str);
    let actor = filter.get("actor").and_then(Value::as_str);
    let limit = filter.get("limit").and_then(Value::as_u64).unwrap_or(50).clamp(1, 500) as usize;
    let log = world.resource::<EventLog>();
    let matching: Vec<&super::Event> = log
        .since(since)
        .chain(log.held().filter(|e| e.seq > since))
        .filter(|e| kind.is_none_or(|k| e.kind.type_name() == k))
        .filter(|e| actor.is_none_or(|a| e.actor == a))
        .collect();
    // The most recent `limit`, oldest first.
    let start = matching.len().saturating_sub(limit);
    serde_json::to_value(&matching[start..]).map_err(|e| KernelError::invalid(e.to_string()))
}
