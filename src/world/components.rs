//! The parts an artifact can have (SPEC §1), one component each.
//!
//! What an artifact *is* follows from the parts it has: [`Standing`] makes it a
//! principal, [`Executable`] gives it code (and requires an [`Interface`]), [`Loop`]
//! makes it an agent. Fields are `pub(crate)`: outside the crate the world is read-only.
//! Holdings — [`Standing`](crate::kernel::ledger::Standing) and
//! [`Quota`](crate::kernel::ledger::Quota) — are declared by the ledger, which alone
//! can change them.

use std::{collections::BTreeMap, collections::BTreeSet, sync::Arc};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ids::ArtifactId, time::SimTime};

/// Free-form key/value metadata of an artifact (informational only).
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// The disk bytes an artifact occupies: everything it stores — content, code, and the
/// description, metadata and interface (as compact JSON) — so no part of an artifact
/// is free storage.
pub fn stored_bytes(
    content: &str,
    code: Option<&str>,
    description: &str,
    metadata: &Metadata,
    interface: Option<&Interface>,
) -> u64 {
    let metadata_bytes = if metadata.is_empty() { 0 } else { json_len(metadata) };
    (content.len() + code.map_or(0, str::len) + description.len()) as u64
        + metadata_bytes
        + interface.map_or(0, json_len)
}

/// Length of `value` as compact JSON, without building the string.
fn json_len<T: Serialize + ?Sized>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing plain data into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What every artifact has: content, ownership and bookkeeping.
///
/// `owner` is the principal that may write and delete the artifact, receives its
/// prices and bears its disk usage. Who created it is informational: the creator is
/// the first owner, so it is only stored ([`CreatedBy`]) once ownership has moved.
#[derive(Component, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub(crate) owner: ArtifactId,
    pub(crate) created_at: SimTime,
    pub(crate) updated_at: SimTime,
    pub(crate) content: Box<str>,
    /// Boxed because most artifacts have neither, and every byte per artifact counts
    /// when a world holds hundreds of thousands of them.
    pub(crate) details: Option<Box<ArtifactDetails>>,
}

/// The optional, informational parts of an artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactDetails {
    pub(crate) description: String,
    pub(crate) metadata: Metadata,
}

impl Artifact {
    pub fn owner(&self) -> &ArtifactId {
        &self.owner
    }
    pub fn created_at(&self) -> SimTime {
        self.created_at
    }
    pub fn updated_at(&self) -> SimTime {
        self.updated_at
    }
    pub fn content(&self) -> &str {
        &self.content
    }
    pub fn description(&self) -> &str {
        self.details.as_deref().map_or("", |d| d.description.as_str())
    }
    pub fn metadata(&self) -> Option<&Metadata> {
        self.details.as_deref().map(|d| &d.metadata).filter(|m| !m.is_empty())
    }

    pub(crate) fn set_details(&mut self, description: Option<String>, metadata: Option<Metadata>) {
        if description.is_none() && metadata.is_none() {
            return;
        }
        let details = self.details.get_or_insert_with(Default::default);
        if let Some(description) = description {
            details.description = description;
        }
        if let Some(metadata) = metadata {
            details.metadata = metadata;
        }
        if details.description.is_empty() && details.metadata.is_empty() {
            self.details = None;
        }
    }
}

/// The creator of an artifact that no longer belongs to it. Absent: the owner
/// created it.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedBy(pub(crate) ArtifactId);

/// Who created the artifact on `entity`.
pub fn created_by(world: &World, entity: Entity) -> Option<&ArtifactId> {
    match world.get::<CreatedBy>(entity) {
        Some(creator) => Some(&creator.0),
        None => world.get::<Artifact>(entity).map(Artifact::owner),
    }
}

/// A principal's heartbeat: when it last acted, and how. Public, like the ledger, so
/// others can tell an idle principal from a busy one.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAction {
    /// Meaningful only once `action` is set (kept flat: this is on every principal).
    at: SimTime,
    action: Option<crate::kernel::ActionKind>,
}

impl LastAction {
    pub(crate) fn record(&mut self, at: SimTime, action: crate::kernel::ActionKind) {
        *self = Self { at, action: Some(action) };
    }
    pub fn at(&self) -> Option<SimTime> {
        self.action.map(|_| self.at)
    }
    pub fn action(&self) -> Option<crate::kernel::ActionKind> {
        self.action
    }
}

/// Per-window limits by rate name. Shared copy-on-write: most principals have the
/// scene's default limits, and a world of 100 000 principals should hold them once,
/// not 100 000 times.
pub type Limits = Arc<BTreeMap<Arc<str>, u64>>;

/// JavaScript code, with the hash under which compiled forms are cached.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[require(Interface)]
pub struct Executable {
    pub(crate) code: Arc<str>,
    pub(crate) code_hash: u64,
}

impl Executable {
    pub(crate) fn new(code: Arc<str>) -> Self {
        let code_hash = xxhash_rust::xxh3::xxh3_64(code.as_bytes());
        Self { code, code_hash }
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn code_hash(&self) -> u64 {
        self.code_hash
    }
}

/// The artifacts an executable's code imports (`import … from "artifact:<id>"`), each
/// with the bytes of its code that this artifact's owner was charged when the import
/// first appeared. Those bytes are part of this artifact's size: they go with it when
/// it is sold, and are freed when it is deleted or its code stops importing them.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imports(pub(crate) BTreeMap<ArtifactId, u64>);

impl Imports {
    /// The imported artifacts, by id.
    pub fn ids(&self) -> impl Iterator<Item = &ArtifactId> {
        self.0.keys()
    }

    /// Bytes charged for the import of `id`, if imported.
    pub fn charged(&self, id: &str) -> Option<u64> {
        self.0.get(id).copied()
    }

    /// Bytes charged for all of them.
    pub fn bytes(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An MCP-style tool schema: what an executable artifact offers and how to call it.
#[derive(Component, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tools: Vec<Tool>,
}

/// One method of an [`Interface`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema object describing the arguments.
    #[serde(rename = "inputSchema", default = "empty_object_schema")]
    pub input_schema: serde_json::Value,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({ "type": "object" })
}

impl Interface {
    /// Checks the shape SPEC §1 requires of an executable's interface.
    pub fn validate(&self) -> Result<(), String> {
        if self.tools.is_empty() {
            return Err("an interface needs at least one tool".into());
        }
        let mut seen = BTreeSet::new();
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.name.is_empty() {
                return Err(format!("tools[{i}].name is empty"));
            }
            if !seen.insert(tool.name.as_str()) {
                return Err(format!("tools[{i}].name {:?} appears twice", tool.name));
            }
            if !tool.input_schema.is_object() {
                return Err(format!("tools[{i}].inputSchema must be a JSON object"));
            }
            if let Err(e) = crate::kernel::schemas::compile(&tool.input_schema) {
                return Err(format!("tools[{i}].inputSchema is not a valid JSON Schema: {e}"));
            }
        }
        Ok(())
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

/// The artifact that answers permission questions about this one. An artifact without
/// this component is governed by the built-in `freeware` contract.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessContract(pub(crate) ArtifactId);

impl AccessContract {
    pub fn id(&self) -> &ArtifactId {
        &self.0
    }
}

/// Who bears the measured resource cost of invoking an artifact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourcePolicy {
    #[default]
    CallerPays,
    OwnerPays,
}

/// Scrip prices paid to the owner, and the resource policy. Absent means free.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    pub invoke_price: u64,
    pub read_price: u64,
    pub resource_policy: ResourcePolicy,
}

/// The artifact runs autonomously: it is an agent. Its `step(view)` runs when
/// `wake_at` comes (every `interval` unless it asks to sleep longer), or earlier
/// when an event matching `wake_on` happens.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[require(Inbox)]
pub struct Loop {
    pub(crate) interval: SimTime,
    pub(crate) wake_at: SimTime,
    /// An event that wakes the agent before `wake_at`.
    pub(crate) wake_on: Option<EventFilter>,
    /// Failed steps in a row; each doubles the wait, and enough of them pause it.
    pub(crate) errors_in_row: u32,
    /// Stopped after too many failures, until its code changes or someone resumes it.
    pub(crate) paused: bool,
    /// The last event the agent has been shown.
    pub(crate) seen_seq: u64,
    /// The last event already checked against `wake_on` (so a sleeper's events are
    /// looked at once, not every step).
    pub(crate) checked_seq: u64,
    /// Steps run so far, and the CPU they took.
    pub(crate) steps: u64,
    pub(crate) cpu_us: u64,
}

impl Loop {
    pub fn new(interval: SimTime, first_wake: SimTime) -> Self {
        Self {
            interval,
            wake_at: first_wake,
            wake_on: None,
            errors_in_row: 0,
            paused: false,
            seen_seq: 0,
            checked_seq: 0,
            steps: 0,
            cpu_us: 0,
        }
    }
    pub fn interval(&self) -> SimTime {
        self.interval
    }
    pub fn wake_at(&self) -> SimTime {
        self.wake_at
    }
    pub fn wake_on(&self) -> Option<&EventFilter> {
        self.wake_on.as_ref()
    }
    pub fn errors_in_row(&self) -> u32 {
        self.errors_in_row
    }
    pub fn paused(&self) -> bool {
        self.paused
    }
    pub fn steps(&self) -> u64 {
        self.steps
    }
    pub fn cpu_us(&self) -> u64 {
        self.cpu_us
    }
}

/// Which events wake a sleeping agent: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Event type, e.g. `AGENT_FROZEN`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// An artifact or principal named anywhere in the event's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// What became of an agent's intents, waiting to be shown in its next view.
#[derive(Component, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inbox(pub(crate) Vec<serde_json::Value>);

impl Inbox {
    pub fn entries(&self) -> &[serde_json::Value] {
        &self.0
    }
}

/// Privileges such as `can_call_llm` and `can_mint`.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(pub(crate) BTreeSet<String>);

impl Capabilities {
    pub fn has(&self, capability: &str) -> bool {
        self.0.contains(capability)
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// The model a principal thinks with when its requests name none.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice(pub(crate) String);

impl ModelChoice {
    pub fn model(&self) -> &str {
        &self.0
    }
}

/// An agent waiting for a language model's answer: it does not step until the answer
/// is in (it arrives in its inbox, and wakes it).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thinking {
    pub(crate) request: u64,
    pub(crate) since: SimTime,
}

impl Thinking {
    pub fn request(&self) -> u64 {
        self.request
    }
    pub fn since(&self) -> SimTime {
        self.since
    }
}

/// A deleted artifact. The entity stays so the id is never reused and history stays
/// readable; reads and invokes fail with `DELETED`.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub(crate) deleted_at: SimTime,
    pub(crate) deleted_by: ArtifactId,
}

impl Tombstone {
    pub fn deleted_at(&self) -> SimTime {
        self.deleted_at
    }
    pub fn deleted_by(&self) -> &ArtifactId {
        &self.deleted_by
    }
}

/// A principal that may not act until rescued; it keeps its holdings.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub(crate) since: SimTime,
    pub(crate) reason: String,
    /// Frozen by the world's freeze rule (it ran dry), so a transfer that brings it
    /// back thaws it; otherwise frozen by an intervention, until one unfreezes it.
    pub(crate) by_rule: bool,
    /// LLM budget it needs to be thawed, beyond the rule's minimum: what its last
    /// call to a model was estimated to cost (0 when it froze for another reason).
    pub(crate) needs_llm_budget_micro_usd: u64,
}

impl Frozen {
    pub(crate) fn new(since: SimTime, reason: String, by_rule: bool) -> Self {
        Self { since, reason, by_rule, needs_llm_budget_micro_usd: 0 }
    }
    pub fn needs_llm_budget_micro_usd(&self) -> u64 {
        self.needs_llm_budget_micro_usd
    }
    pub fn since(&self) -> SimTime {
        self.since
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn by_rule(&self) -> bool {
        self.by_rule
    }
}

/// One of the world's services: a system artifact whose methods the kernel answers
/// itself instead of running code. They are invoked like any artifact.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// `kernel_mint`: sealed bids on the mint's auctions.
    Mint,
    /// `kernel_escrow`: trustless sale of artifacts.
    Escrow,
    /// `kernel_debt`: loans as artifacts.
    Debt,
    /// `kernel_governance`: commons governed by their members' votes.
    Governance,
    /// `system_auditor`: the story of the run so far, and the health indicators.
    Auditor,
    /// `kernel_llm_gateway`: language models, paid from the caller's LLM budget.
    LlmGateway,
    /// `kernel_capabilities`: requests for capabilities, decided by a person or a policy.
    Capabilities,
    /// `mcp_<server>`: an MCP server's tools (one per server the scene lists, with an
    /// [`McpGateway`]).
    Mcp,
    /// `kernel_subscriptions`: standing orders to be woken by matching events.
    Subscriptions,
    /// `kernel_tasks`: a board of paid tasks, rewards held until settled.
    Tasks,
    /// `kernel_locks`: named exclusive locks that expire on the simulated clock.
    Locks,
}

/// The MCP server behind an `mcp_<server>` gateway.
#[derive(Component, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpGateway {
    pub(crate) server: String,
    /// Whether the server's tools have been listed into the gateway's interface.
    pub(crate) listed: bool,
}

impl McpGateway {
    pub fn server(&self) -> &str {
        &self.server
    }
}

/// A capability granted on request, and what has been spent through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The request it answered.
    pub request: u64,
    /// Most that may be spent through it (scrip plus µ$ of LLM budget); none: no limit.
    pub limit: Option<u64>,
    pub spent: u64,
}

impl Grant {
    /// What may still be spent through it (`u64::MAX` without a limit).
    pub fn remaining(&self) -> u64 {
        self.limit.map_or(u64::MAX, |limit| limit.saturating_sub(self.spent))
    }
}

/// Capabilities granted to a principal on request (beside the ones it was created
/// with, in [`Capabilities`]).
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants(pub(crate) BTreeMap<String, Grant>);

impl Grants {
    pub fn get(&self, capability: &str) -> Option<&Grant> {
        self.0.get(capability)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Grant)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Part of the world's machinery (the `kernel` principal, the built-in contracts):
/// present in every world, not saved into scenes, excluded from UBI.
#[derive(Component, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct System;
