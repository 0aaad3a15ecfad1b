//! Invoke (SPEC §5): calling a method of an executable artifact.
//!
//! In order: the depth limit; the target exists, is not deleted and has code; the
//! method is in its interface and the arguments match the method's `inputSchema`;
//! the target's contract allows the *immediate* caller; the caller can pay the price
//! (and any fee the contract asks); the code runs; on success the price moves to the
//! owner. Measured resources are charged whatever the outcome, to the frame's payer:
//! the owner under `owner_pays`, otherwise whoever pays for the calling frame — the
//! principal at the root of the chain.
//!
//! `describe` is answered by the kernel from the interface, without running code.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    ErrorCode, EventKind, InvocationStats, Invoked, Kernel, KernelError,
    activity::{self, Activity},
    contracts::Permission,
    exec::CodeCall,
    schemas::Schemas,
};
use crate::{
    sandbox::protocol::{CallMode, Entry},
    world::{
        components::{Artifact, CreatedBy, Executable, Interface, Pricing, ResourcePolicy, Service, Standing},
        ids::ArtifactId,
    },
};

/// The method name every executable answers without running code.
pub const DESCRIBE: &str = "describe";

/// `invoke`: call `method` of artifact `id` with `args`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeSpec {
    pub id: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub args: Value,
    /// The most scrip the caller accepts to pay (price plus contract fee): an owner
    /// cannot raise the price under a caller who already decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<u64>,
    /// The code the caller means to run (hex, from the artifact's metadata): a new
    /// owner cannot swap the code under a caller who checked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<String>,
}

/// What a caller insists on when it invokes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub max_price: Option<u64>,
    #[serde(default)]
    pub code_hash: Option<String>,
}

/// A code hash as shown in metadata.
pub fn code_hash_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

fn default_method() -> String {
    "run".to_owned()
}

/// What a successful invoke returned.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeResult {
    pub value: Value,
    /// Scrip paid to the owner (price plus any contract fee).
    pub paid: u64,
    /// Who was paid: the owner, or the seller of an artifact listed in escrow.
    pub paid_to: Option<ArtifactId>,
}

/// How an invoke went, for its event and the statistics: the result with the CPU and
/// memory it used, or the error and whether code ran.
type Outcome = Result<(InvokeResult, u64, u64), (KernelError, bool)>;

impl Kernel<'_> {
    /// The caller invokes `method` of artifact `target` with `args`.
    pub fn invoke(&mut self, target: &str, method: &str, args: Value) -> Result<InvokeResult, KernelError> {
        self.invoke_expecting(target, method, args, &Expect::default())
    }

    /// [`Kernel::invoke`], refusing if the price or the code is not what the caller
    /// expects.
    pub fn invoke_expecting(
        &mut self,
        target: &str,
        method: &str,
        args: Value,
        expect: &Expect,
    ) -> Result<InvokeResult, KernelError> {
        // Leaving the arguments out means passing none.
        let args = if args.is_null() { Value::Object(Default::default()) } else { args };
        let config = self.sandbox_config();
        let entity = self.live(target)?;
        let target_id = self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(target))?;
        if let Some(&service) = self.world.get::<Service>(entity) {
            let outcome = self.invoke_service(entity, &target_id, service, method, args, expect, &config);
            return self.record_invocation(&target_id, entity, method, outcome);
        }
        if self.world.get::<Executable>(entity).is_none() {
            return Err(KernelError::invalid(format!("{target} has no code to invoke")).with("id", target));
        }
        if method == DESCRIBE && self.world.get::<Interface>(entity).is_none_or(|i| i.tool(DESCRIBE).is_none()) {
            let interface = self.world.get::<Interface>(entity).cloned().unwrap_or_default();
            let value = serde_json::to_value(interface).unwrap_or(Value::Null);
            return Ok(InvokeResult { value, paid: 0, paid_to: None });
        }
        // One chain for the contract check and the call itself, on the target's lane.
        let lane = self.world.resource::<crate::sandbox::Sandbox>().lane_for(target_id.as_str(), &config);
        let outcome = match self.in_chain(lane, &config, |kernel| {
            Ok(kernel.invoke_checked(entity, &target_id, method, args, expect, &config))
        }) {
            Ok(outcome) => outcome,
            Err(error) => Err((error, false)),
        };
        self.record_invocation(&target_id, entity, method, outcome)
    }

    /// Logs an invocation, counts it in the statistics and in the world's activity,
    /// and hands back its result.
    fn record_invocation(
        &mut self,
        target_id: &ArtifactId,
        entity: bevy_ecs::entity::Entity,
        method: &str,
        outcome: Outcome,
    ) -> Result<InvokeResult, KernelError> {
        let (event, stats) = match &outcome {
            Ok((result, cpu_us, memory_bytes)) => (
                EventKind::InvokeSuccess {
                    artifact: target_id.clone(),
                    method: method.to_owned(),
                    depth: self.frame.depth,
                    price: result.paid,
                    paid_to: result.paid_to.clone(),
                    cpu_us: *cpu_us,
                    memory_bytes: *memory_bytes,
                },
                Invoked::Succeeded { cpu_us: *cpu_us, by_other: !self.is_creator_of(entity) },
            ),
            Err((error, ran)) => {
                let cpu_us = error.details.get("cpu_us").and_then(Value::as_u64).unwrap_or(0);
                (
                    EventKind::InvokeFailure {
                        artifact: target_id.clone(),
                        method: method.to_owned(),
                        depth: self.frame.depth,
                        code: error.code,
                        cpu_us,
                    },
                    if *ran { Invoked::Failed { cpu_us } } else { Invoked::Rejected },
                )
            }
        };
        self.world.resource_mut::<InvocationStats>().record(target_id, stats);
        if outcome.is_ok() {
            self.note_use_of(target_id, entity);
        }
        self.emit(event);
        outcome.map(|(result, _, _)| result).map_err(|(error, _)| error)
    }

    /// Whether the caller created the artifact on `entity`.
    fn is_creator_of(&self, entity: bevy_ecs::entity::Entity) -> bool {
        let creator = self
            .world
            .get::<CreatedBy>(entity)
            .map(|c| &c.0)
            .or_else(|| self.world.get::<Artifact>(entity).map(|a| &a.owner));
        creator == Some(&self.caller)
    }

    /// A successful invoke in the world's activity: code that calls code builds on
    /// it, and an agent using another agent's artifact has dealt with it.
    fn note_use_of(&mut self, target_id: &ArtifactId, entity: bevy_ecs::entity::Entity) {
        let called_from_code = self.frame.depth > 0;
        let owner = self.world.get::<Artifact>(entity).map(|a| a.owner.clone());
        let owner_entity = owner.and_then(|o| crate::world::ids::lookup(self.world, o.as_str()));
        let agents = owner_entity
            .map(|o| (activity::is_agent(self.world, self.caller_entity), activity::is_agent(self.world, o)));
        let caller = self.caller.clone();
        let (caller_entity, mut activity) = (self.caller_entity, self.world.resource_mut::<Activity>());
        if called_from_code {
            activity.called(&caller, target_id);
        }
        if let (Some(owner_entity), Some(agents)) = (owner_entity, agents) {
            activity.met(agents, caller_entity, owner_entity);
        }
    }

    /// A world service: its method answered by the kernel, as the caller.
    #[allow(clippy::too_many_arguments)]
    fn invoke_service(
        &mut self,
        entity: bevy_ecs::entity::Entity,
        target: &ArtifactId,
        service: Service,
        method: &str,
        args: Value,
        expect: &Expect,
        config: &crate::sandbox::SandboxConfig,
    ) -> Outcome {
        let rejected = |error: KernelError| (error, false);
        let interface = self.world.get::<Interface>(entity).cloned().unwrap_or_default();
        if method == DESCRIBE {
            let value = serde_json::to_value(interface).unwrap_or(Value::Null);
            return Ok((InvokeResult { value, paid: 0, paid_to: None }, 0, 0));
        }
        if expect.code_hash.is_some() {
            return Err(rejected(KernelError::invalid(format!("{target} is a world service; it has no code hash"))));
        }
        if self.frame.depth > config.max_depth {
            return Err(rejected(KernelError::new(
                ErrorCode::DepthExceeded,
                format!(
                    "invoking {target} would nest {} calls deep; the limit is {}",
                    self.frame.depth, config.max_depth
                ),
            )));
        }
        if interface.tool(method).is_none() {
            let methods: Vec<&str> = interface.tools.iter().map(|t| t.name.as_str()).collect();
            return Err(rejected(
                KernelError::invalid(format!("{target} has no method {method:?} (it has: {})", methods.join(", ")))
                    .with("method", method),
            ));
        }
        self.world.resource::<Schemas>().check(entity, method, &args).map_err(rejected)?;
        // A service's refusals are decided before anything changes: nothing ran.
        let value = if service == Service::Mcp {
            super::mcp::serve(self, entity, target, method, &args)
        } else {
            crate::economy::services::serve(self, service, method, &args)
        }
        .map_err(rejected)?;
        Ok((InvokeResult { value, paid: 0, paid_to: None }, 0, 0))
    }

    /// Everything after the target is known. The error side says whether code ran.
    #[allow(clippy::type_complexity)]
    fn invoke_checked(
        &mut self,
        entity: bevy_ecs::entity::Entity,
        target: &ArtifactId,
        method: &str,
        args: Value,
        expect: &Expect,
        config: &crate::sandbox::SandboxConfig,
    ) -> Result<(InvokeResult, u64, u64), (KernelError, bool)> {
        let rejected = |error: KernelError| (error, false);
        if let Some(expected) = &expect.code_hash {
            let actual = self.world.get::<Executable>(entity).map(|x| code_hash_hex(x.code_hash())).unwrap_or_default();
            if *expected != actual {
                return Err(rejected(
                    KernelError::invalid(format!("{target}'s code is {actual}, not the {expected} the caller expects"))
                        .with("code_hash", actual),
                ));
            }
        }
        if self.frame.depth > config.max_depth {
            return Err(rejected(
                KernelError::new(
                    ErrorCode::DepthExceeded,
                    format!(
                        "invoking {target} would nest {} calls deep; the limit is {}",
                        self.frame.depth, config.max_depth
                    ),
                )
                .with("depth", self.frame.depth),
            ));
        }
        let interface = self.world.get::<Interface>(entity);
        if interface.and_then(|i| i.tool(method)).is_none() {
            let methods: Vec<&str> =
                interface.map(|i| i.tools.iter().map(|t| t.name.as_str()).collect()).unwrap_or_default();
            return Err(rejected(
                KernelError::invalid(format!("{target} has no method {method:?} (it has: {})", methods.join(", ")))
                    .with("method", method),
            ));
        }
        self.world.resource::<Schemas>().check(entity, method, &args).map_err(rejected)?;

        let context = json!({ "method": method, "args": args });
        let fee = self.check_access(entity, Permission::Invoke, context).map_err(rejected)?;
        let owner = self
            .world
            .get::<Artifact>(entity)
            .map(|a| a.owner.clone())
            .ok_or_else(|| rejected(KernelError::not_found(target.as_str())))?;
        // What an artifact earns, and what it costs under `owner_pays`, belong to its
        // seller while it is listed in escrow.
        let owner = crate::economy::escrow::beneficiary(self.world, target, &owner);
        let pricing = self.world.get::<Pricing>(entity).copied().unwrap_or_default();
        let price = if owner == self.caller { 0 } else { pricing.invoke_price };
        let due = price + fee;
        if let Some(max_price) = expect.max_price
            && due > max_price
        {
            return Err(rejected(
                KernelError::invalid(format!(
                    "invoking {target} costs {due} scrip, more than the {max_price} the caller accepts"
                ))
                .with("price", due)
                .with("max_price", max_price),
            ));
        }
        self.ensure_can_pay(due, target).map_err(rejected)?;

        let payer = match pricing.resource_policy {
            ResourcePolicy::OwnerPays => self.principal(owner.as_str()).map_err(rejected)?,
            ResourcePolicy::CallerPays => self.frame.payer,
        };
        let ctx = json!({
            "caller": self.caller,
            "artifact": target,
            "method": method,
            "owner": owner,
            "depth": self.frame.depth,
            "now": self.now.as_secs_f64(),
        });
        let call = CodeCall {
            entity,
            id: target,
            entry: Entry::Run,
            input: args.to_string(),
            ctx: ctx.to_string(),
            mode: CallMode::Act,
            frame: super::Frame { payer, ..self.frame },
            loop_limit: config.loop_limit,
        };
        let ran = self.run_code(call).map_err(|e| (e, true))?;
        let value: Value = serde_json::from_str(&ran.json).map_err(|e| {
            (KernelError::new(ErrorCode::ExecutionError, format!("{target} returned bad JSON: {e}")), true)
        })?;
        // The code may have changed balances while it ran: check again, then pay.
        self.pay(due, &owner, target).map_err(|e| (e.with("cpu_us", ran.cpu_us), true))?;
        let paid_to = (due > 0 && owner != self.caller).then_some(owner);
        let paid = if paid_to.is_some() { due } else { 0 };
        Ok((InvokeResult { value, paid, paid_to }, ran.cpu_us, ran.memory_bytes))
    }

    /// Refuses early if the caller cannot pay `due` scrip.
    fn ensure_can_pay(&self, due: u64, target: &ArtifactId) -> Result<(), KernelError> {
        if due == 0 {
            return Ok(());
        }
        let held = self.world.get::<Standing>(self.caller_entity).map(Standing::scrip);
        match held {
            Some(held) if held >= due => Ok(()),
            held => Err(KernelError::new(
                ErrorCode::InsufficientFunds,
                format!("invoking {target} costs {due} scrip; {} holds {}", self.caller, held.unwrap_or(0)),
            )
            .with("needed", due)
            .with("available", held.unwrap_or(0))),
        }
    }

    /// Moves `due` scrip from the caller to `owner` (a price or a contract's fee).
    pub(crate) fn pay(&mut self, due: u64, owner: &ArtifactId, target: &ArtifactId) -> Result<(), KernelError> {
        if due == 0 || *owner == self.caller {
            return Ok(());
        }
        self.ensure_can_pay(due, target)?;
        let owner_entity = self.principal(owner.as_str())?;
        self.move_scrip(self.caller_entity, owner_entity, due, None)
    }
}
