//! Invoke (SPEC §5): calling a method of an executable artifact.
//!
//! In order: the depth limit; the target exists, is not deleted and has code; the
//! method is in its interface and the arguments match the method's `inputSchema`;
//! the target's contract allows the *immediate* caller; the payer can pay the price
//! (and any fee the contract asks) within every `max_price` open above it; the code
//! runs; on success the price moves to the owner.
//!
//! Who pays (SPEC §5.7): the *frame's payer* — at the top of a chain the caller;
//! below it, whoever pays for the code making the call: the root caller when that
//! code's artifact is `caller_pays`, its owner when it is `owner_pays`. The same payer
//! bears the measured resources of the code. So a tool that holds no scrip can call
//! priced tools, and a caller's `max_price` bounds every price its call leads to.
//!
//! Every invoke is a transaction ([`super::journal`]): if it fails, everything its
//! chain did in the world is undone — transfers, writes, spawns, bids, nested prices
//! — while what the code consumed stays charged. A failed nested invoke that the
//! calling code catches loses only its own effects.
//!
//! `describe` is answered by the kernel from the interface, without running code; it
//! is logged like any invoke but is not a use (it counts in no statistics).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    ErrorCode, EventKind, InvocationStats, Invoked, Kernel, KernelError,
    activity::{self, Activity},
    contracts::Permission,
    exec::CodeCall,
    journal,
    schemas::Schemas,
};
use crate::kernel::Standing;
use crate::{
    sandbox::protocol::{CallMode, Entry},
    world::{
        components::{Artifact, CreatedBy, Executable, Interface, Pricing, ResourcePolicy, Service},
        ids::ArtifactId,
    },
};

/// The error of a failed invoke whose roll-back refunded `purchases` things its chain
/// bought (priced reads and invokes, escrow purchases): its message and details, which
/// the failing code could have filled with what it bought, are withheld, so that a
/// failure on purpose is not a way to get an answer and the money back. The code and
/// the CPU charged stay.
fn withhold_if_bought(error: KernelError, target: &ArtifactId, purchases: u64) -> KernelError {
    if purchases == 0 {
        return error;
    }
    let cpu_us = error.details.get("cpu_us").cloned().unwrap_or(Value::from(0));
    KernelError {
        message: format!(
            "{target} failed after its chain bought {purchases} thing(s) from others, refunded with the rest; its \
             message is withheld so that what was bought does not leave with the refund"
        ),
        details: serde_json::Map::from_iter([("cpu_us".to_owned(), cpu_us), ("withheld".to_owned(), true.into())]),
        ..error
    }
}

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
    /// Who paid: the caller at the top of a chain, below it whoever pays for the
    /// calling code.
    pub paid_by: Option<ArtifactId>,
}

/// How an invoke went, for its event and the statistics: the result with the CPU and
/// memory it used, or the error and whether code ran.
type Outcome = Result<(InvokeResult, u64, u64), (KernelError, bool)>;

/// How an invocation counts.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    /// A use: in the statistics and the world's activity; a failure undid
    /// `reverted` events.
    Used { reverted: u64 },
    /// Only logged (a `describe` the kernel answered: reading an interface is not
    /// using a tool).
    Logged,
}

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
        let service = self.world.get::<Service>(entity).copied();
        if service.is_none() && self.world.get::<Executable>(entity).is_none() {
            return Err(KernelError::invalid(format!("{target} has no code to invoke")).with("id", target));
        }
        let has_describe = self.world.get::<Interface>(entity).is_some_and(|i| i.tool(DESCRIBE).is_some());
        if method == DESCRIBE && (service.is_some() || !has_describe) {
            let interface = self.world.get::<Interface>(entity).cloned().unwrap_or_default();
            let value = serde_json::to_value(interface).unwrap_or(Value::Null);
            let described = Ok((InvokeResult { value, paid: 0, paid_to: None, paid_by: None }, 0, 0));
            return self.record_invocation(&target_id, entity, method, described, Recorded::Logged);
        }
        let savepoint = journal::begin(self.world);
        let outcome = match service {
            Some(service) => self.invoke_service(entity, &target_id, service, method, args, expect, &config),
            None => {
                // One chain for the contract check and the call itself, on the target's lane.
                let lane = self.world.resource::<crate::sandbox::Sandbox>().lane_for(target_id.as_str(), &config);
                match self.in_chain(lane, &config, |kernel| {
                    Ok(kernel.invoke_checked(entity, &target_id, method, args, expect, &config))
                }) {
                    Ok(outcome) => outcome,
                    Err(error) => Err((error, false)),
                }
            }
        };
        let mut reverted = 0;
        let outcome = match outcome {
            Err((error, ran)) => {
                let undone = journal::roll_back(self.world, savepoint);
                reverted = undone.events;
                Err((withhold_if_bought(error, &target_id, undone.purchases), ran))
            }
            ok => ok,
        };
        journal::end(self.world, savepoint);
        self.record_invocation(&target_id, entity, method, outcome, Recorded::Used { reverted })
    }

    /// Logs an invocation, counts it in the statistics and in the world's activity
    /// (a `describe` answered by the kernel is not a use: it is only logged), and
    /// hands back its result. `reverted`: events a failure undid.
    fn record_invocation(
        &mut self,
        target_id: &ArtifactId,
        entity: bevy_ecs::entity::Entity,
        method: &str,
        outcome: Outcome,
        recorded: Recorded,
    ) -> Result<InvokeResult, KernelError> {
        let reverted = match recorded {
            Recorded::Used { reverted } => reverted,
            Recorded::Logged => 0,
        };
        let (event, stats) = match &outcome {
            Ok((result, cpu_us, memory_bytes)) => (
                EventKind::InvokeSuccess {
                    artifact: target_id.clone(),
                    method: method.to_owned(),
                    depth: self.frame.depth,
                    price: result.paid,
                    paid_to: result.paid_to.clone(),
                    paid_by: result.paid_by.clone(),
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
                        reverted,
                    },
                    if *ran { Invoked::Failed { cpu_us } } else { Invoked::Rejected },
                )
            }
        };
        if let Recorded::Used { .. } = recorded {
            self.world.resource_mut::<InvocationStats>().record(target_id, stats);
            if outcome.is_ok() {
                self.note_use_of(target_id, entity);
            }
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
        Ok((InvokeResult { value, paid: 0, paid_to: None, paid_by: None }, 0, 0))
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
        let due = if self.pays_itself(&owner) { 0 } else { pricing.invoke_price + fee };
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
        // The price is booked now against every limit above, so the call's own
        // nested prices are counted after it; it moves when the call succeeds.
        self.book_price(due, target).map_err(rejected)?;
        if let Some(max_price) = expect.max_price {
            journal::limit_prices(self.world, self.frame.payer, max_price, due);
        }

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
        let paid_by = self.transfer_price(due, &owner).map_err(|e| (e.with("cpu_us", ran.cpu_us), true))?;
        let paid_to = paid_by.is_some().then_some(owner);
        let paid = if paid_to.is_some() { due } else { 0 };
        Ok((InvokeResult { value, paid, paid_to, paid_by }, ran.cpu_us, ran.memory_bytes))
    }

    /// Whether using an artifact of `owner` is free for this frame: its owner calling
    /// it, or the payer owning it (nobody pays itself).
    pub(crate) fn pays_itself(&self, owner: &ArtifactId) -> bool {
        *owner == self.caller || self.world.get::<ArtifactId>(self.frame.payer) == Some(owner)
    }

    /// Refuses early if the frame's payer cannot pay `due` scrip.
    pub(crate) fn ensure_can_pay(&self, due: u64, target: &ArtifactId) -> Result<(), KernelError> {
        if due == 0 {
            return Ok(());
        }
        let payer = self.frame.payer;
        let held = self.world.get::<Standing>(payer).map(Standing::scrip);
        match held {
            Some(held) if held >= due => Ok(()),
            held => {
                let who = self.world.get::<ArtifactId>(payer).unwrap_or(&self.caller);
                Err(KernelError::new(
                    ErrorCode::InsufficientFunds,
                    format!("using {target} costs {due} scrip; {who}, who pays, holds {}", held.unwrap_or(0)),
                )
                .with("needed", due)
                .with("available", held.unwrap_or(0))
                .with("payer", who.as_str()))
            }
        }
    }

    /// Books `due` scrip of prices against the `max_price` limits open above this
    /// frame, or refuses if one does not allow it.
    fn book_price(&mut self, due: u64, target: &ArtifactId) -> Result<(), KernelError> {
        journal::spend_on_prices(self.world, self.frame.payer, due).map_err(|(limit, total)| {
            KernelError::invalid(format!(
                "using {target} for {due} scrip would bring the prices of this call to {total}, more than the \
                 max_price of {limit} it was made with"
            ))
            .with("price", due)
            .with("max_price", limit)
            .with("total", total)
        })
    }

    /// Moves `due` scrip, already booked, from the frame's payer to `owner`; returns
    /// who paid (`None` if nothing was due).
    fn transfer_price(&mut self, due: u64, owner: &ArtifactId) -> Result<Option<ArtifactId>, KernelError> {
        if due == 0 || self.pays_itself(owner) {
            return Ok(None);
        }
        let owner_entity = self.principal(owner.as_str())?;
        let payer = self.frame.payer;
        // (Refused with INSUFFICIENT_FUNDS if the code spent what was checked before.)
        self.move_scrip(payer, owner_entity, due, None)?;
        Ok(self.world.get::<ArtifactId>(payer).cloned())
    }

    /// Pays `due` scrip of a price (a read price, a contract's fee) for using
    /// `target`, from the frame's payer to `owner`, within the open `max_price`
    /// limits; returns who paid (`None` if nothing was due).
    pub(crate) fn pay(
        &mut self,
        due: u64,
        owner: &ArtifactId,
        target: &ArtifactId,
    ) -> Result<Option<ArtifactId>, KernelError> {
        if due == 0 || self.pays_itself(owner) {
            return Ok(None);
        }
        self.ensure_can_pay(due, target)?;
        self.book_price(due, target)?;
        self.transfer_price(due, owner)
    }
}
