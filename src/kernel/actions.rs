//! Actions: what a principal can ask the kernel to do, and what it gets back.
//!
//! An [`Action`] is plain data. In scenes it is written the RON way
//! (`Transfer(to: "bob", amount: 30)`); agents send JSON with an `action` field
//! (`{"action": "transfer", "to": "bob", "amount": 30}`), converted by
//! [`Action::from_json`]. [`Kernel::act`] runs the pipeline of SPEC §4 (the actor is
//! not frozen → permission → can pay → execute → charge → events) and always returns
//! an [`ActionResult`]. Every action is a transaction ([`super::journal`]): one that
//! fails changes nothing but the measured resources it is charged, its events are
//! marked reverted, and it is logged as `ACTION_FAILED`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::activity::{Habit, Habits};
use super::exec::Charges;
use super::{
    ErrorCode, EventKind, Kernel, KernelError,
    artifacts::{EditSpec, WriteSpec},
    invoke::InvokeSpec,
    ledger::ResourceRef,
    positive,
    query::{self, QuerySpec},
};
use crate::kernel::Quota;
use crate::world::{
    components::{Frozen, LastAction, Loop, Service},
    config::Config,
    ids::ArtifactId,
    time::SimTime,
};

/// An integer amount from outside. Negative values parse (and are refused by the
/// kernel with a clear error, not a parse error); integral floats such as `30.0`
/// are accepted because JavaScript has only doubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Amount(pub i64);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer amount")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                i64::try_from(v).map(Amount).map_err(|_| E::custom(format!("amount {v} is too large")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Amount, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e18 {
                    Ok(Amount(v as i64))
                } else {
                    Err(E::custom(format!("amount {v} is not an integer")))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Move scrip or a resource (`amount`, `resource` defaulting to scrip), or ownership
/// of an artifact (`artifact`), to principal `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// Create a principal owned by the actor, fund it from the actor's holdings, and
/// optionally give it code and a loop: a new agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrip: Option<Amount>,
    /// Resource name → amount, moved from the actor to the new principal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, Amount>,
    /// Code for the new principal (its disk is borne by the actor, its owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<crate::world::components::Interface>,
    /// Whether the new principal runs its code's `step` on its own cadence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent: bool,
    /// The agent's cadence in simulated seconds (default: one step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<f64>,
}

/// Bid at the mint on an artifact the actor owns (bidding again raises the bid), or
/// withdraw the bid with `cancel: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidSpec {
    pub artifact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}

/// Everything a principal can ask of the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Action {
    Read { id: String },
    Write(WriteSpec),
    Edit(EditSpec),
    Delete { id: String },
    Invoke(InvokeSpec),
    Transfer(TransferSpec),
    Spawn(SpawnSpec),
    Query(QuerySpec),
    Bid(BidSpec),
    Noop,
}

/// The name of an action, for events and heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Read,
    Write,
    Edit,
    Delete,
    Invoke,
    Transfer,
    Spawn,
    Query,
    Bid,
    Noop,
}

impl ActionKind {
    pub const ALL: [ActionKind; 10] = [
        Self::Read,
        Self::Write,
        Self::Edit,
        Self::Delete,
        Self::Invoke,
        Self::Transfer,
        Self::Spawn,
        Self::Query,
        Self::Bid,
        Self::Noop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::Invoke => "invoke",
            Self::Transfer => "transfer",
            Self::Spawn => "spawn",
            Self::Query => "query",
            Self::Bid => "bid",
            Self::Noop => "noop",
        }
    }

    /// The variant name in the RON (externally tagged) form.
    fn variant(self) -> &'static str {
        match self {
            Self::Read => "Read",
            Self::Write => "Write",
            Self::Edit => "Edit",
            Self::Delete => "Delete",
            Self::Invoke => "Invoke",
            Self::Transfer => "Transfer",
            Self::Spawn => "Spawn",
            Self::Query => "Query",
            Self::Bid => "Bid",
            Self::Noop => "Noop",
        }
    }
}

impl Action {
    /// What the action is about: the artifact it reads, writes, invokes, bids on or
    /// spawns, or the recipient of a transfer.
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Read { id } | Self::Delete { id } => Some(id),
            Self::Write(spec) => Some(&spec.id),
            Self::Edit(spec) => Some(&spec.id),
            Self::Invoke(spec) => Some(&spec.id),
            Self::Transfer(spec) => Some(&spec.to),
            Self::Spawn(spec) => Some(&spec.id),
            Self::Bid(spec) => Some(&spec.artifact),
            Self::Query(_) | Self::Noop => None,
        }
    }

    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Read { .. } => ActionKind::Read,
            Self::Write(_) => ActionKind::Write,
            Self::Edit(_) => ActionKind::Edit,
            Self::Delete { .. } => ActionKind::Delete,
            Self::Invoke(_) => ActionKind::Invoke,
            Self::Transfer(_) => ActionKind::Transfer,
            Self::Spawn(_) => ActionKind::Spawn,
            Self::Query(_) => ActionKind::Query,
            Self::Bid(_) => ActionKind::Bid,
            Self::Noop => ActionKind::Noop,
        }
    }

    /// Parses the JSON form agents use: an object whose `action` field names the
    /// action and whose other fields are its arguments. Errors name the bad field.
    pub fn from_json(value: Value) -> Result<Action, KernelError> {
        let Value::Object(mut fields) = value else {
            return Err(KernelError::invalid("an action is a JSON object with an \"action\" field"));
        };
        let name = match fields.remove("action") {
            Some(Value::String(name)) => name,
            Some(other) => return Err(KernelError::invalid(format!("\"action\" must be a string, got {other}"))),
            None => return Err(KernelError::invalid("an action needs an \"action\" field")),
        };
        let Some(kind) = ActionKind::ALL.into_iter().find(|k| k.as_str() == name) else {
            let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(KernelError::invalid(format!("unknown action {name:?}; expected one of {}", known.join(", ")))
                .with("field", "action"));
        };
        let tagged = if kind == ActionKind::Noop {
            if !fields.is_empty() {
                return Err(KernelError::invalid("noop takes no arguments"));
            }
            Value::String(kind.variant().to_owned())
        } else {
            json!({ kind.variant(): fields })
        };
        serde_json::from_value(tagged).map_err(|e| KernelError::invalid(format!("{name}: {e}")))
    }

    /// Parses an action from JSON text.
    pub fn from_json_str(text: &str) -> Result<Action, KernelError> {
        let value =
            serde_json::from_str(text).map_err(|e| KernelError::invalid(format!("an action must be JSON: {e}")))?;
        Self::from_json(value)
    }

    /// The JSON form agents use (inverse of [`Action::from_json`]).
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("action".into(), self.kind().as_str().into());
        if let Ok(Value::Object(tagged)) = serde_json::to_value(self)
            && let Some((_, Value::Object(fields))) = tagged.into_iter().next()
        {
            out.extend(fields);
        }
        Value::Object(out)
    }
}

/// Resources an action consumed, in natural units (SPEC §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcesConsumed {
    pub llm_tokens: u64,
    pub llm_cost_micro_usd: u64,
    pub cpu_us: u64,
    pub memory_bytes: u64,
    /// Change in disk usage; negative when the action freed disk.
    pub disk_bytes: i64,
}

/// What an action returns, success or failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<KernelError>,
    pub resources_consumed: ResourcesConsumed,
    /// The principal whose resources paid for the action.
    pub charged_to: Option<ArtifactId>,
}

impl ActionResult {
    pub fn failed(error: KernelError, charged_to: Option<ArtifactId>) -> Self {
        Self {
            success: false,
            result: None,
            error: Some(error),
            resources_consumed: ResourcesConsumed::default(),
            charged_to,
        }
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|e| e.code)
    }
}

/// A successful action before it is wrapped into an [`ActionResult`].
struct Done {
    result: Value,
    consumed: ResourcesConsumed,
    charged_to: ArtifactId,
}

impl Kernel<'_> {
    /// Performs `action` as the caller.
    pub fn act(&mut self, action: Action) -> ActionResult {
        let kind = action.kind();
        let caller = self.caller_entity;
        let habit = self.habit_of(&action);
        let savepoint = super::journal::begin(self.world);
        let outcome = if self.world.get::<Frozen>(caller).is_some() {
            Err(KernelError::new(ErrorCode::Frozen, format!("{} is frozen until someone rescues it", self.caller))
                .with("principal", self.caller.as_str()))
        } else if let Err(limited) = self.take_rate(caller, "actions", 1) {
            Err(limited)
        } else {
            // The attempt counts, whatever becomes of it.
            self.perform(action)
        };
        let reverted = if outcome.is_err() { super::journal::roll_back(self.world, savepoint).events } else { 0 };
        let now = self.now;
        let mut entity = self.world.entity_mut(self.caller_entity);
        if let Some(mut last) = entity.get_mut::<LastAction>() {
            last.record(now, kind);
        }
        match entity.get_mut::<Habits>() {
            Some(mut habits) => habits.count(habit),
            None => {
                let mut habits = Habits::default();
                habits.count(habit);
                entity.insert(habits);
            }
        }
        // What code run for this action used, whether it succeeded or not.
        let charges = std::mem::take(&mut self.world.resource_mut::<Charges>().entries);
        let code_payer = charges.first().and_then(|c| self.world.get::<ArtifactId>(c.payer).cloned());
        let mut code_use = ResourcesConsumed::default();
        for charge in &charges {
            code_use.cpu_us += charge.cpu_us;
            code_use.memory_bytes = code_use.memory_bytes.max(charge.memory_bytes);
            code_use.llm_tokens += charge.llm_tokens;
            code_use.llm_cost_micro_usd += charge.llm_cost_micro_usd;
        }
        let result = match outcome {
            Ok(done) => ActionResult {
                success: true,
                result: Some(done.result),
                error: None,
                resources_consumed: ResourcesConsumed {
                    cpu_us: code_use.cpu_us,
                    memory_bytes: code_use.memory_bytes,
                    llm_tokens: code_use.llm_tokens,
                    llm_cost_micro_usd: code_use.llm_cost_micro_usd,
                    ..done.consumed
                },
                charged_to: Some(code_payer.unwrap_or(done.charged_to)),
            },
            Err(error) => {
                let failed = EventKind::ActionFailed {
                    action: kind,
                    code: error.code,
                    message: error.message.clone(),
                    reverted,
                };
                self.emit(failed);
                let mut failed = ActionResult::failed(error, Some(code_payer.unwrap_or_else(|| self.caller.clone())));
                failed.resources_consumed = code_use;
                failed
            }
        };
        super::journal::end(self.world, savepoint);
        result
    }

    fn perform(&mut self, action: Action) -> Result<Done, KernelError> {
        let nothing = |kernel: &Self, result: Value| Done {
            result,
            consumed: ResourcesConsumed::default(),
            charged_to: kernel.caller.clone(),
        };
        let disk = |change: super::artifacts::DiskChange, result: Value| Done {
            result,
            consumed: ResourcesConsumed { disk_bytes: change.disk_delta, ..Default::default() },
            charged_to: change.charged_to,
        };
        match action {
            Action::Read { id } => {
                let (value, _price) = self.read(&id)?;
                Ok(nothing(self, value))
            }
            Action::Write(spec) => {
                let change = self.write(spec)?;
                let result = json!({
                    "id": change.id, "bytes": change.bytes, "disk_delta": change.disk_delta, "created": change.created,
                });
                Ok(disk(change, result))
            }
            Action::Edit(spec) => {
                let change = self.edit(spec)?;
                let result = json!({ "id": change.id, "bytes": change.bytes, "disk_delta": change.disk_delta });
                Ok(disk(change, result))
            }
            Action::Delete { id } => {
                let change = self.delete(&id)?;
                let result = json!({ "id": change.id, "disk_freed": -change.disk_delta });
                Ok(disk(change, result))
            }
            Action::Invoke(spec) => {
                let expect = super::invoke::Expect { max_price: spec.max_price, code_hash: spec.code_hash };
                let invoked = self.invoke_expecting(&spec.id, &spec.method, spec.args, &expect)?;
                Ok(nothing(self, invoked.value))
            }
            Action::Transfer(spec) => {
                let result = self.transfer(&spec)?;
                Ok(nothing(self, result))
            }
            Action::Spawn(spec) => {
                self.spawn_funded(&spec)?;
                Ok(nothing(self, json!({ "id": spec.id })))
            }
            Action::Query(spec) => {
                let (value, results) = query::run(self.world, &spec, None)?;
                self.emit(EventKind::Query { results });
                Ok(nothing(self, value))
            }
            Action::Bid(spec) => {
                let result = match (spec.cancel, spec.amount) {
                    (true, None) => self.cancel_bid(&spec.artifact)?,
                    (false, Some(Amount(amount))) => self.bid(&spec.artifact, amount)?,
                    (true, Some(_)) => {
                        return Err(KernelError::invalid("a bid is either placed (amount) or cancelled"));
                    }
                    (false, None) => {
                        return Err(
                            KernelError::invalid("a bid needs an amount (or cancel: true)").with("field", "amount")
                        );
                    }
                };
                Ok(nothing(self, result))
            }
            Action::Noop => {
                self.emit(EventKind::Noop {});
                Ok(nothing(self, Value::Null))
            }
        }
    }

    /// What kind of thing `action` does, for the caller's habits. Using a world
    /// service counts as that service's habit, not as invoking a tool.
    fn habit_of(&self, action: &Action) -> Habit {
        match action {
            Action::Read { .. } => Habit::Read,
            Action::Write(_) => Habit::Write,
            Action::Edit(_) => Habit::Edit,
            Action::Delete { .. } => Habit::Delete,
            Action::Invoke(spec) => {
                let service =
                    crate::world::ids::lookup(self.world, &spec.id).and_then(|e| self.world.get::<Service>(e));
                match service {
                    Some(Service::Mint) => Habit::Bid,
                    Some(Service::Escrow) => Habit::Trade,
                    Some(Service::Debt) => Habit::Lend,
                    Some(Service::Governance) => Habit::Govern,
                    Some(Service::Auditor) => Habit::Query,
                    Some(Service::LlmGateway | Service::Mcp) => Habit::Think,
                    Some(Service::Capabilities) => Habit::Govern,
                    // Buying and selling work.
                    Some(Service::Tasks) => Habit::Trade,
                    Some(Service::Subscriptions | Service::Locks) => Habit::Coordinate,
                    None => Habit::Invoke,
                }
            }
            Action::Transfer(_) => Habit::Transfer,
            Action::Spawn(_) => Habit::Spawn,
            Action::Query(_) => Habit::Query,
            Action::Bid(_) => Habit::Bid,
            Action::Noop => Habit::Noop,
        }
    }

    fn transfer(&mut self, spec: &TransferSpec) -> Result<Value, KernelError> {
        match (&spec.artifact, spec.amount, &spec.resource) {
            (Some(artifact), None, None) => {
                self.transfer_ownership(artifact, &spec.to)?;
                Ok(json!({ "artifact": artifact, "to": spec.to }))
            }
            (Some(_), _, _) => {
                Err(KernelError::invalid("a transfer moves either an artifact or an amount of a resource, not both"))
            }
            (None, None, _) => {
                Err(KernelError::invalid("a transfer needs an amount (or an artifact)").with("field", "amount"))
            }
            (None, Some(Amount(amount)), resource) => {
                let resource = resource.as_deref().unwrap_or("scrip");
                if resource == "scrip" {
                    self.transfer_scrip(&spec.to, amount)?;
                } else {
                    self.transfer_resource(&spec.to, resource, amount)?;
                }
                Ok(json!({ "to": spec.to, "amount": amount, "resource": resource }))
            }
        }
    }

    /// Spawns a principal and funds it, all or nothing: every amount is checked
    /// against the actor's holdings before anything is created.
    fn spawn_funded(&mut self, spec: &SpawnSpec) -> Result<(), KernelError> {
        let mut funding: Vec<(String, i64)> = Vec::new();
        if let Some(Amount(scrip)) = spec.scrip {
            funding.push(("scrip".to_owned(), scrip));
        }
        funding.extend(spec.resources.iter().map(|(name, Amount(amount))| (name.clone(), *amount)));
        let mut needed: BTreeMap<String, u64> = BTreeMap::new();
        for (name, amount) in &funding {
            let resource = ResourceRef::resolve(self.world.resource::<Config>(), name)?;
            *needed.entry(resource.name().to_owned()).or_default() += positive(*amount, name)?;
        }
        for (name, amount) in &needed {
            let available = self.holding_of(name)?;
            if available < *amount {
                let code = if name == "scrip" { ErrorCode::InsufficientFunds } else { ErrorCode::InsufficientResource };
                return Err(KernelError::new(
                    code,
                    format!("{} holds {available} {name}, needs {amount} to fund {}", self.caller, spec.id),
                )
                .with("resource", name.as_str())
                .with("needed", *amount)
                .with("available", available));
            }
        }
        self.new_id(&spec.id)?;
        let interval = match (spec.agent, spec.interval_secs) {
            (false, _) => None,
            (true, None) => Some(self.world.resource::<crate::world::time::SimClock>().dt()),
            (true, Some(secs)) => Some(
                SimTime::from_secs_f64(secs)
                    .filter(|t| t.millis() > 0)
                    .ok_or_else(|| KernelError::invalid(format!("interval_secs {secs} is not an interval")))?,
            ),
        };
        if interval.is_some() && spec.code.is_none() {
            return Err(KernelError::invalid("an agent needs code: its loop runs it").with("field", "code"));
        }
        if let Some(interface) = &spec.interface {
            interface.validate().map_err(|e| KernelError::invalid(format!("interface: {e}")))?;
        }
        if spec.code.is_some() && spec.interface.is_none() {
            return Err(KernelError::invalid("code needs an interface").with("field", "interface"));
        }
        let entity = self.spawn_principal(&spec.id)?;
        for (name, amount) in funding {
            self.transfer_resource(&spec.id, &name, amount)?;
        }
        if spec.code.is_some() {
            // The actor owns the new principal, so it writes its code like any owner;
            // the bytes count against the actor's disk.
            let write = WriteSpec {
                id: spec.id.clone(),
                code: spec.code.clone(),
                interface: spec.interface.clone(),
                ..WriteSpec::default()
            };
            self.write(write)?;
        }
        if let Some(interval) = interval {
            let first_wake = self.now.saturating_add(interval);
            self.world.entity_mut(entity).insert(Loop::new(interval, first_wake));
        }
        Ok(())
    }

    /// What the caller could give away of `resource` right now.
    fn holding_of(&self, resource: &str) -> Result<u64, KernelError> {
        let resource = ResourceRef::resolve(self.world.resource::<Config>(), resource)?;
        if let ResourceRef::Limit(name) = &resource {
            return Ok(self.world.get::<Quota>(self.caller_entity).and_then(|q| q.limit(name)).unwrap_or(0));
        }
        super::state::get_resource(self.world, self.caller.as_str(), resource.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips() {
        let action = Action::from_json_str(r#"{"action":"transfer","to":"bob","amount":30}"#).unwrap();
        assert_eq!(
            action,
            Action::Transfer(TransferSpec {
                to: "bob".into(),
                amount: Some(Amount(30)),
                resource: None,
                artifact: None
            })
        );
        assert_eq!(Action::from_json(action.to_json()).unwrap(), action);
        assert_eq!(Action::from_json_str(r#"{"action":"noop"}"#).unwrap(), Action::Noop);
        assert_eq!(Action::Noop.to_json(), json!({"action": "noop"}));
    }

    #[test]
    fn json_errors_name_the_problem() {
        let err = Action::from_json_str(r#"{"action":"transfer","to":"bob","amount":1,"from":"carol"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgs);
        assert!(err.message.contains("from"), "{}", err.message);
        let err = Action::from_json_str(r#"{"action":"fly"}"#).unwrap_err();
        assert!(err.message.contains("unknown action"), "{}", err.message);
        let err = Action::from_json_str(r#"{"action":"transfer","to":"bob","amount":1.5}"#).unwrap_err();
        assert!(err.message.contains("not an integer"), "{}", err.message);
        assert_eq!(
            Action::from_json_str(r#"{"action":"transfer","to":"b","amount":3e9}"#).unwrap(),
            Action::Transfer(TransferSpec {
                to: "b".into(),
                amount: Some(Amount(3_000_000_000)),
                resource: None,
                artifact: None
            })
        );
        assert!(Action::from_json_str("[1]").is_err());
        assert!(Action::from_json_str("{").is_err());
    }
}
