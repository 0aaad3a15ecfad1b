//! The event log: every action, cost and failure, in order.
//!
//! Each event gets the next sequence number and the simulated time of its step. The
//! log keeps a bounded ring in memory for queries, optionally streams every event as a
//! JSON line to a sink, counts events by type, and folds each event into a running
//! digest — so the run's checksum covers the *whole* log even after the ring has
//! forgotten the oldest events. The digest hashes a compact binary encoding (postcard),
//! not JSON, because it runs on the hot path of every kernel operation. It is a chain
//! (each event is hashed together with the digest before it) rather than a streaming
//! hasher, so that all of it is one `u128` a checkpoint can carry.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{self, Write},
};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_128;

use super::{
    ErrorCode,
    actions::ActionKind,
    error::{bound_text, bound_value},
};
use crate::economy::{
    kpis::KpiSample,
    mint::{RevealedBid, Winner},
};
use crate::world::{ids::ArtifactId, time::SimTime};

/// What a roll-back marked as undone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reverted {
    /// Events marked `reverted`.
    pub events: u64,
    /// Of those, purchases (see [`EventKind::is_purchase`]): their prices went back.
    pub purchases: u64,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(serialize_with = "as_secs", deserialize_with = "from_secs")]
    pub time: SimTime,
    /// The principal the kernel acted as (`kernel` for the world's own mechanisms).
    pub actor: ArtifactId,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Undone: the action or invoke this event was part of failed, and what the event
    /// says was done was rolled back with it (SPEC §5.6). Records of what was consumed
    /// (model and MCP calls, failures) are never marked: they stay true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverted: bool,
}

fn as_secs<S: Serializer>(t: &SimTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.as_secs_f64())
}

fn from_secs<'de, D: Deserializer<'de>>(d: D) -> Result<SimTime, D::Error> {
    let secs = f64::deserialize(d)?;
    SimTime::from_secs_f64(secs).ok_or_else(|| serde::de::Error::custom(format!("{secs} is not a time")))
}

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident $name:literal { $($field:ident : $ty:ty),* $(,)? } ),* $(,)?) => {
        /// What happened. Serialised adjacently tagged: `"type": "SCRIP_TRANSFER",
        /// "payload": {...}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "payload")]
        pub enum EventKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant { $($field: $ty),* }, )*
        }

        /// The type of an event, without its payload.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $variant, )*
        }

        impl EventKind {
            /// Every event type name, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            pub fn event_type(&self) -> EventType {
                match self {
                    $( EventKind::$variant { .. } => EventType::$variant, )*
                }
            }

            /// The `type` of the event, as written in the log.
            pub fn type_name(&self) -> &'static str {
                Self::TYPES[self.type_index()]
            }

            fn type_index(&self) -> usize {
                self.event_type() as usize
            }

            /// Whether the event records something a roll-back does not undo: what was
            /// consumed (a model's or an MCP server's answer, with its cost), a failure
            /// or refusal, a warning. Every other event inside a rolled-back action is
            /// marked `reverted`.
            pub fn is_record(&self) -> bool {
                matches!(
                    self,
                    EventKind::Thinking { .. }
                        | EventKind::ThinkingFailed { .. }
                        | EventKind::McpCall { .. }
                        | EventKind::McpCallFailed { .. }
                        | EventKind::ActionFailed { .. }
                        | EventKind::IntentRefused { .. }
                        | EventKind::InvokeFailure { .. }
                        | EventKind::InterventionFailed { .. }
                        | EventKind::ContractFallback { .. }
                        | EventKind::AgentFrozen { .. }
                        | EventKind::AgentError { .. }
                        | EventKind::AgentPaused { .. }
                        | EventKind::AgentThrottled { .. }
                        | EventKind::CapabilityExhausted { .. }
                        | EventKind::Query { .. }
                        | EventKind::Noop { .. }
                        | EventKind::KpiSampled { .. }
                )
            }

            /// Whether the actor got something it paid another for: a priced read or
            /// invoke (its answer), a purchase in escrow.
            fn is_purchase(&self) -> bool {
                match self {
                    EventKind::ArtifactRead { price, .. } | EventKind::InvokeSuccess { price, .. } => *price > 0,
                    EventKind::EscrowSold { .. } => true,
                    _ => false,
                }
            }

            /// Appends the compact encoding the log's digest hashes: the type's index and
            /// the fields in order (not the tagged form the stream writes, which spells
            /// the type out and costs twice as much to produce on every event).
            fn encode(&self, buf: Vec<u8>) -> postcard::Result<Vec<u8>> {
                match self {
                    $( EventKind::$variant { $($field),* } => {
                        postcard::to_extend(&(EventType::$variant as u8, $($field,)*), buf)
                    } )*
                }
            }

            /// Cuts every text field of the payload to [`MAX_TEXT_BYTES`], so that an
            /// event's size does not depend on how much text its actor supplied.
            fn bound(&mut self) {
                match self {
                    $( EventKind::$variant { $($field),* } => { $(Bounded::bound($field);)* } )*
                }
            }

            /// Whether `id` is one of the principals or artifacts the event is about
            /// (its actor aside): a recipient, a target, a winner …
            pub fn mentions(&self, id: &ArtifactId) -> bool {
                match self {
                    $( EventKind::$variant { $($field),* } => false $(|| Mentions::mentions($field, id))*, )*
                }
            }
        }
    };
}

/// Whether a payload field names an artifact (see [`EventKind::mentions`]).
trait Mentions {
    fn mentions(&self, _id: &ArtifactId) -> bool {
        false
    }
}

impl Mentions for ArtifactId {
    fn mentions(&self, id: &ArtifactId) -> bool {
        self == id
    }
}

impl<T: Mentions> Mentions for Option<T> {
    fn mentions(&self, id: &ArtifactId) -> bool {
        self.as_ref().is_some_and(|v| v.mentions(id))
    }
}

impl<T: Mentions> Mentions for Vec<T> {
    fn mentions(&self, id: &ArtifactId) -> bool {
        self.iter().any(|v| v.mentions(id))
    }
}

impl Mentions for crate::economy::mint::Winner {
    fn mentions(&self, id: &ArtifactId) -> bool {
        &self.bidder == id || &self.artifact == id
    }
}

impl Mentions for crate::economy::mint::RevealedBid {
    fn mentions(&self, id: &ArtifactId) -> bool {
        &self.bidder == id || &self.artifact == id
    }
}

impl Mentions for u64 {}
impl Mentions for i64 {}
impl Mentions for u32 {}
impl Mentions for f64 {}
impl Mentions for bool {}
impl Mentions for String {}
impl Mentions for serde_json::Value {}
impl Mentions for ActionKind {}
impl Mentions for ErrorCode {}
impl Mentions for crate::world::components::EventFilter {}
impl<T> Mentions for Box<T> {}

/// A payload field whose text is cut to [`MAX_TEXT_BYTES`] (see [`EventKind::bound`]).
/// Ids are bounded where they are made, numbers need nothing.
trait Bounded {
    fn bound(&mut self) {}
}

impl Bounded for String {
    fn bound(&mut self) {
        bound_text(self);
    }
}

impl Bounded for serde_json::Value {
    fn bound(&mut self) {
        bound_value(self);
    }
}

impl<T: Bounded> Bounded for Option<T> {
    fn bound(&mut self) {
        if let Some(value) = self {
            value.bound();
        }
    }
}

impl<T: Bounded> Bounded for Vec<T> {
    fn bound(&mut self) {
        self.iter_mut().for_each(Bounded::bound);
    }
}

impl Bounded for ArtifactId {}
impl Bounded for Winner {}
impl Bounded for RevealedBid {}
impl Bounded for u64 {}
impl Bounded for i64 {}
impl Bounded for u32 {}
impl Bounded for f64 {}
impl Bounded for bool {}
impl Bounded for ActionKind {}
impl Bounded for ErrorCode {}
impl Bounded for crate::world::components::EventFilter {}
impl<T> Bounded for Box<T> {}

event_kinds! {
    /// Scrip moved from the actor to `to`.
    ScripTransfer "SCRIP_TRANSFER" { to: ArtifactId, amount: u64 },
    /// A resource (stock or rate allocation) moved from the actor to `to`.
    ResourceTransfer "RESOURCE_TRANSFER" { to: ArtifactId, resource: String, amount: u64 },
    /// Ownership of `artifact` moved from the actor to `to`, with its disk usage.
    OwnershipTransfer "OWNERSHIP_TRANSFER" { artifact: ArtifactId, to: ArtifactId, disk_bytes: u64 },
    /// The actor created a new principal holding nothing.
    PrincipalSpawned "PRINCIPAL_SPAWNED" { id: ArtifactId },
    /// An artifact was created or replaced; `disk_delta` was charged to `charged_to`.
    ArtifactWritten "ARTIFACT_WRITTEN" { id: ArtifactId, created: bool, bytes: u64, disk_delta: i64, charged_to: ArtifactId },
    /// A unique substring of an artifact was replaced.
    ArtifactEdited "ARTIFACT_EDITED" { id: ArtifactId, bytes: u64, disk_delta: i64, charged_to: ArtifactId },
    /// An artifact was tombstoned; its bytes were returned to `charged_to`.
    ArtifactDeleted "ARTIFACT_DELETED" { id: ArtifactId, disk_freed: u64, charged_to: ArtifactId },
    /// The actor read an artifact; `paid_by` paid `price` scrip to `paid_to` (its
    /// owner, or its seller while it is listed in escrow). The payer is the actor, or
    /// for a read from code whoever pays for that code (SPEC §5.7).
    ArtifactRead "ARTIFACT_READ" { id: ArtifactId, price: u64, paid_to: Option<ArtifactId>, paid_by: Option<ArtifactId> },
    /// A discovery query and how many artifacts it returned.
    Query "QUERY" { results: u64 },
    /// The actor did nothing, on purpose.
    Noop "NOOP" {},
    /// An action failed: nothing it did stays but what it consumed; `reverted` events
    /// of it before this one were undone (and are marked so).
    ActionFailed "ACTION_FAILED" { action: ActionKind, code: ErrorCode, message: String, reverted: u64 },
    /// An agent's step returned an intent the kernel cannot carry out — an unknown
    /// action, malformed or missing fields, too many intents — so it was refused before
    /// anything happened; `intent` is what the step returned, cut short.
    IntentRefused "INTENT_REFUSED" { intent: String, code: ErrorCode, message: String },
    /// An outside hand (scene timeline, GUI, CLI) steered the world; the act follows.
    Intervention "INTERVENTION" { act: serde_json::Value },
    /// An intervention could not be carried out (its principal is missing, its act
    /// was refused); nothing changed.
    InterventionFailed "INTERVENTION_FAILED" { code: ErrorCode, message: String },
    /// Scrip created outside the mint by an intervention.
    ScripGranted "SCRIP_GRANTED" { to: ArtifactId, amount: u64 },
    /// A resource granted by an intervention.
    ResourceGranted "RESOURCE_GRANTED" { to: ArtifactId, resource: String, amount: u64 },
    /// A quota limit was set (`None`: unlimited).
    QuotaSet "QUOTA_SET" { principal: ArtifactId, resource: String, limit: Option<u64> },
    /// A principal stopped acting; its assets are listed for would-be rescuers.
    AgentFrozen "AGENT_FROZEN" { principal: ArtifactId, reason: String, assets: Box<FrozenAssets> },
    /// A frozen principal may act again.
    AgentUnfrozen "AGENT_UNFROZEN" { principal: ArtifactId, rescuer: Option<ArtifactId> },
    /// The actor invoked `method` of `artifact`, which ran and returned; `price` is
    /// the scrip `paid_by` paid to `paid_to` (price plus any contract fee). The payer
    /// is the actor at the top of a chain, and whoever pays for the calling code below
    /// it (SPEC §5.7).
    InvokeSuccess "INVOKE_SUCCESS" {
        artifact: ArtifactId,
        method: String,
        depth: u32,
        price: u64,
        paid_to: Option<ArtifactId>,
        paid_by: Option<ArtifactId>,
        cpu_us: u64,
        memory_bytes: u64,
    },
    /// An invoke by the actor failed; `cpu_us` is what it was charged anyway, and
    /// `reverted` events of its chain were undone (and are marked so).
    InvokeFailure "INVOKE_FAILURE" {
        artifact: ArtifactId,
        method: String,
        depth: u32,
        code: ErrorCode,
        cpu_us: u64,
        reverted: u64,
    },
    /// `artifact` names a contract that no longer exists; `freeware` rules applied.
    ContractFallback "CONTRACT_FALLBACK" { artifact: ArtifactId, contract: ArtifactId },
    /// An agent's step failed; it will wait twice as long before the next.
    AgentError "AGENT_ERROR" { principal: ArtifactId, message: String, errors_in_row: u32 },
    /// An agent failed too many steps in a row and stopped.
    AgentPaused "AGENT_PAUSED" { principal: ArtifactId, errors_in_row: u32 },
    /// A paused agent runs again (its code changed, or someone resumed it).
    AgentResumed "AGENT_RESUMED" { principal: ArtifactId },
    /// An agent was due but its quota of `resource` had no room for a step; it
    /// sleeps `retry_after` simulated seconds, until the window has turned.
    AgentThrottled "AGENT_THROTTLED" { principal: ArtifactId, resource: String, retry_after: f64 },
    /// The actor bid (sealed: no amount) on its artifact at the mint, or raised its bid.
    MintBid "MINT_BID" { artifact: ArtifactId, raised: bool },
    /// The actor withdrew its bid; the amount came back.
    MintBidCancelled "MINT_BID_CANCELLED" { artifact: ArtifactId, refunded: u64 },
    /// An auction resolved: every bid revealed, and what each winner paid and got.
    MintResolved "MINT_RESOLVED" { bids: u64, winners: Vec<Winner>, revealed: Vec<RevealedBid>, next_at: f64 },
    /// A winner's price shared out: `per_head` to each of `recipients` principals, and
    /// one more to each of `remainder_to`.
    UbiPaid "UBI_PAID" { from: ArtifactId, amount: u64, recipients: u64, per_head: u64, remainder_to: Vec<ArtifactId> },
    /// The actor listed `artifact` in escrow (ownership passed to escrow).
    EscrowListed "ESCROW_LISTED" { artifact: ArtifactId, price: u64, buyer: Option<ArtifactId> },
    /// The actor bought `artifact` from `seller` for `price`.
    EscrowSold "ESCROW_SOLD" { artifact: ArtifactId, seller: ArtifactId, price: u64 },
    /// The actor took its listing back.
    EscrowCancelled "ESCROW_CANCELLED" { artifact: ArtifactId },
    /// The actor offered `debtor` a loan; `id` is the debt note.
    DebtOffered "DEBT_OFFERED" { id: ArtifactId, debtor: ArtifactId, principal: u64, interest: u64, term_secs: f64 },
    /// The actor (the debtor) accepted; `holder` paid out the principal.
    DebtAccepted "DEBT_ACCEPTED" { id: ArtifactId, holder: ArtifactId, principal: u64, due_at: f64 },
    /// The actor paid `amount` toward debt `id`, to its holder.
    DebtRepaid "DEBT_REPAID" { id: ArtifactId, holder: ArtifactId, amount: u64, outstanding: u64 },
    /// The actor (the holder) collected `amount` of an overdue debt from `debtor`.
    DebtCollected "DEBT_COLLECTED" { id: ArtifactId, debtor: ArtifactId, amount: u64, outstanding: u64 },
    /// Debt `id` fell due with `outstanding` still owed.
    DebtDefaulted "DEBT_DEFAULTED" { id: ArtifactId, debtor: ArtifactId, holder: ArtifactId, outstanding: u64 },
    /// An offered loan was withdrawn or declined.
    DebtCancelled "DEBT_CANCELLED" { id: ArtifactId },
    /// The actor created commons `id`.
    CommonsCreated "COMMONS_CREATED" { id: ArtifactId, members: Vec<ArtifactId>, quorum_pct: u64, threshold_pct: u64, scrip: u64 },
    /// The actor proposed that `commons` perform `action` (none: a poll).
    ProposalOpened "PROPOSAL_OPENED" {
        proposal: String,
        commons: ArtifactId,
        description: String,
        action: Option<serde_json::Value>,
        closes_at: f64,
    },
    /// The actor voted.
    VoteCast "VOTE_CAST" { proposal: String, yes: bool },
    /// A proposal closed; if it passed, the commons' action follows as its own events.
    ProposalClosed "PROPOSAL_CLOSED" { proposal: String, passed: bool, yes: u64, no: u64, members: u64 },
    /// A language model answered the actor; `principal` (the root of the chain)
    /// paid `cost_micro_usd` of LLM budget for the tokens the server reported.
    Thinking "THINKING" {
        principal: ArtifactId,
        request: String,
        model: String,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_micro_usd: u64,
        latency_ms: u64,
        attempts: u32,
        excerpt: String,
    },
    /// A call to a language model failed (after its retries); it cost nothing.
    ThinkingFailed "THINKING_FAILED" {
        principal: ArtifactId,
        request: String,
        model: String,
        reason: String,
        message: String,
        attempts: u32,
    },
    /// An MCP server started and listed its tools: they are its gateway's interface.
    McpServerReady "MCP_SERVER_READY" { gateway: ArtifactId, server: String, tools: Vec<String> },
    /// An MCP server could not be started or did not list its tools; its gateway has none.
    McpServerFailed "MCP_SERVER_FAILED" { gateway: ArtifactId, server: String, message: String },
    /// An MCP tool answered the actor; `principal` (the root of the chain) paid.
    McpCall "MCP_CALL" {
        principal: ArtifactId,
        gateway: ArtifactId,
        request: String,
        tool: String,
        scrip: u64,
        cost_micro_usd: u64,
        is_error: bool,
        latency_ms: u64,
        excerpt: String,
    },
    /// A call to an MCP tool failed (the server was down, died, refused or was too
    /// slow); it cost nothing.
    McpCallFailed "MCP_CALL_FAILED" {
        principal: ArtifactId,
        gateway: ArtifactId,
        request: String,
        tool: String,
        reason: String,
        message: String,
    },
    /// `principal` asked for a capability; a person or the scene's policy decides.
    CapabilityRequested "CAPABILITY_REQUESTED" {
        request: String,
        principal: ArtifactId,
        capability: String,
        reason: String,
        limit: Option<u64>,
    },
    /// A capability request was granted, with at most `limit` to spend through it.
    CapabilityGranted "CAPABILITY_GRANTED" {
        request: String,
        principal: ArtifactId,
        capability: String,
        limit: Option<u64>,
        by: String,
    },
    /// A capability request was refused.
    CapabilityDenied "CAPABILITY_DENIED" {
        request: String,
        principal: ArtifactId,
        capability: String,
        by: String,
        note: String,
    },
    /// A grant was used up to its limit; the capability is gone until granted again.
    CapabilityExhausted "CAPABILITY_EXHAUSTED" { principal: ArtifactId, capability: String, spent: u64 },
    /// The actor subscribed to the events `filter` matches (see
    /// [`crate::economy::subscriptions`]); `subscription` is its id among the actor's.
    Subscribed "SUBSCRIBED" { subscription: String, filter: crate::world::components::EventFilter },
    /// The actor ended its subscription `subscription`.
    Unsubscribed "UNSUBSCRIBED" { subscription: String },
    /// The actor posted `task`; its `reward` is held by the task board from now on.
    TaskPosted "TASK_POSTED" { task: String, reward: u64, deadline_at: Option<f64>, description: String },
    /// The actor claimed `task`: only it may submit a result now.
    TaskClaimed "TASK_CLAIMED" { task: String, poster: ArtifactId },
    /// The actor gave up its claim on `task`, which is open again.
    TaskReleased "TASK_RELEASED" { task: String, poster: ArtifactId },
    /// The actor (the claimant) submitted a result for `task`, for its poster to judge.
    TaskSubmitted "TASK_SUBMITTED" { task: String, poster: ArtifactId, artifact: Option<ArtifactId> },
    /// The actor (the poster) accepted the result: `reward` went to `claimant`.
    TaskAccepted "TASK_ACCEPTED" { task: String, claimant: ArtifactId, reward: u64 },
    /// The actor (the poster) rejected the result; the task is open again, unless its
    /// deadline has passed (then `TASK_EXPIRED` follows).
    TaskRejected "TASK_REJECTED" { task: String, claimant: ArtifactId, reason: String, reopened: bool },
    /// The actor (the poster) withdrew an unclaimed task; the reward came back.
    TaskCancelled "TASK_CANCELLED" { task: String, refunded: u64 },
    /// `task` reached its deadline without an accepted result; the reward went back
    /// to `poster`.
    TaskExpired "TASK_EXPIRED" { task: String, poster: ArtifactId, claimant: Option<ArtifactId>, refunded: u64 },
    /// The actor took (or, `renewed`, extended) the lock `name` until `expires_at`.
    LockAcquired "LOCK_ACQUIRED" { name: String, expires_at: f64, renewed: bool },
    /// The actor let go of the lock `name`.
    LockReleased "LOCK_RELEASED" { name: String },
    /// The lock `name` held by `holder` ran out.
    LockExpired "LOCK_EXPIRED" { name: String, holder: ArtifactId },
    /// The health indicators, sampled.
    KpiSampled "KPI_SAMPLE" { kpis: Box<KpiSample> },
}

/// What a frozen principal holds: the "dinner bell" for whoever might rescue it.
/// (Boxed in its event: it is large, and rare.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenAssets {
    pub scrip: u64,
    pub resources: BTreeMap<String, u64>,
    pub owned_artifacts: Vec<ArtifactId>,
    /// Simulated seconds of its last action, if it ever acted.
    pub last_action_at: Option<f64>,
}

/// How many events the in-memory ring keeps unless the scene says otherwise.
pub const DEFAULT_RING_CAPACITY: usize = 100_000;

/// The log itself. Only the kernel appends to it.
#[derive(Resource)]
pub struct EventLog {
    ring: VecDeque<Event>,
    capacity: usize,
    next_seq: u64,
    by_type: Vec<u64>,
    /// The chain over every event so far (0 before the first).
    digest: u128,
    scratch: Vec<u8>,
    sink: Option<Box<dyn Write + Send + Sync>>,
    sink_error: Option<io::Error>,
    /// Events of an open transaction, numbered but not yet in the log: they go in when
    /// it ends, marked `reverted` where it rolled back (see [`super::journal`]).
    held: Vec<Event>,
    holds: u32,
    /// Events appended marked `reverted`.
    reverted: u64,
    /// The open transaction's undo journal (see [`super::journal`] for why it is here).
    journal: super::journal::Journal,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_RING_CAPACITY)
    }
}

impl EventLog {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            by_type: vec![0; EventKind::TYPES.len()],
            digest: 0,
            scratch: Vec::with_capacity(256),
            sink: None,
            sink_error: None,
            held: Vec::new(),
            holds: 0,
            reverted: 0,
            journal: Default::default(),
        }
    }

    /// Streams every event appended from now on as one JSON line to `sink`.
    pub fn stream_to(&mut self, sink: Box<dyn Write + Send + Sync>) {
        self.sink = Some(sink);
    }

    /// Appends an event and returns its sequence number. Inside a transaction the
    /// event is numbered now and goes into the log when the transaction ends.
    pub fn push(&mut self, time: SimTime, actor: ArtifactId, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut kind = kind;
        kind.bound();
        let event = Event { seq, time, actor, kind, reverted: false };
        if self.holds > 0 {
            self.held.push(event);
        } else {
            self.append(event);
        }
        seq
    }

    fn append(&mut self, event: Event) {
        self.by_type[event.kind.type_index()] += 1;
        self.reverted += u64::from(event.reverted);
        self.fold_into_digest(&event);
        if let Some(sink) = &mut self.sink {
            let written =
                serde_json::to_writer(&mut *sink, &event).map_err(io::Error::from).and_then(|()| sink.write_all(b"\n"));
            if let Err(err) = written {
                self.stop_streaming(err);
            }
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(event);
    }

    pub(crate) fn journal(&self) -> &super::journal::Journal {
        &self.journal
    }

    pub(crate) fn journal_mut(&mut self) -> &mut super::journal::Journal {
        &mut self.journal
    }

    /// Holds events back until the matching [`EventLog::release`]; returns where the
    /// events from now on start among those held.
    pub(crate) fn hold(&mut self) -> usize {
        self.holds += 1;
        self.held.len()
    }

    /// Marks the held events from `mark` on as reverted, but for records (see
    /// [`EventKind::is_record`]); returns how many it marked.
    pub(crate) fn revert_since(&mut self, mark: usize) -> Reverted {
        let mut reverted = Reverted::default();
        for event in self.held.iter_mut().skip(mark).filter(|e| !e.reverted && !e.kind.is_record()) {
            event.reverted = true;
            reverted.events += 1;
            if event.kind.is_purchase() {
                reverted.purchases += 1;
            }
        }
        reverted
    }

    /// Ends one [`EventLog::hold`]; the last puts the held events into the log.
    pub(crate) fn release(&mut self) {
        self.holds = self.holds.saturating_sub(1);
        if self.holds == 0 && !self.held.is_empty() {
            // Taken and given back empty, so the buffer keeps its capacity.
            let mut held = std::mem::take(&mut self.held);
            for event in held.drain(..) {
                self.append(event);
            }
            self.held = held;
        }
    }

    fn fold_into_digest(&mut self, event: &Event) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&self.digest.to_le_bytes());
        let key = (event.seq, event.time, &event.actor);
        let encoded = postcard::to_extend(&key, buf).and_then(|buf| event.kind.encode(buf)).map(|mut buf| {
            // Only when set: most events are never marked.
            if event.reverted {
                buf.push(1);
            }
            buf
        });
        let mut buf = match encoded {
            Ok(buf) => buf,
            // Every event type is plain data; an encoding failure would be a bug in
            // this module, and hashing the JSON keeps the digest total regardless.
            Err(_) => {
                let mut buf = self.digest.to_le_bytes().to_vec();
                buf.extend_from_slice(serde_json::to_string(event).unwrap_or_default().as_bytes());
                buf
            }
        };
        self.digest = xxh3_128(&buf);
        buf.clear();
        self.scratch = buf;
    }

    /// Events still in memory, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Event> + ExactSizeIterator {
        self.ring.iter()
    }

    /// Events in memory with a sequence number greater than `seq`, oldest first.
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &Event> {
        let first = self.ring.front().map_or(seq + 1, |e| e.seq);
        let skip = (seq + 1).saturating_sub(first) as usize;
        self.ring.iter().skip(skip)
    }

    /// Events of the open transaction, numbered but not yet in the log (code reading
    /// events sees its own chain's as well).
    pub(crate) fn held(&self) -> impl Iterator<Item = &Event> {
        self.held.iter()
    }

    /// Events appended over the whole run.
    pub fn total(&self) -> u64 {
        self.next_seq - 1
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Counts of every event type that occurred, by type name.
    pub fn by_type(&self) -> BTreeMap<&'static str, u64> {
        EventKind::TYPES.iter().zip(&self.by_type).filter(|(_, n)| **n > 0).map(|(name, n)| (*name, *n)).collect()
    }

    /// Events whose effects a failure undid, over the whole run.
    pub fn reverted(&self) -> u64 {
        self.reverted
    }

    /// Refusals and failed actions over the whole run: `ACTION_FAILED` and
    /// `INTENT_REFUSED` events.
    pub fn refused(&self) -> u64 {
        self.by_type[EventType::ActionFailed as usize] + self.by_type[EventType::IntentRefused as usize]
    }

    /// Digest of every event appended so far.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// Pushes buffered event lines out to the sink.
    pub fn flush(&mut self) {
        if let Some(Err(err)) = self.sink.as_mut().map(|sink| sink.flush()) {
            self.stop_streaming(err);
        }
    }

    /// A failing sink must not stop the world: streaming stops, the error is kept
    /// for whoever runs the world to report when the run ends.
    fn stop_streaming(&mut self, err: io::Error) {
        self.sink = None;
        self.sink_error.get_or_insert(err);
    }

    /// Takes the first write error the sink hit, if any.
    pub fn take_sink_error(&mut self) -> Option<io::Error> {
        self.sink_error.take()
    }
}

/// What a checkpoint keeps of the log: everything but where it streams to.
#[derive(Serialize, Deserialize)]
pub(crate) struct LogState<'a> {
    ring: std::borrow::Cow<'a, VecDeque<Event>>,
    capacity: usize,
    next_seq: u64,
    by_type: BTreeMap<String, u64>,
    digest: u128,
    #[serde(default)]
    reverted: u64,
}

impl EventLog {
    pub(crate) fn state(&self) -> LogState<'_> {
        LogState {
            ring: std::borrow::Cow::Borrowed(&self.ring),
            capacity: self.capacity,
            next_seq: self.next_seq,
            by_type: self.by_type().into_iter().map(|(name, n)| (name.to_owned(), n)).collect(),
            digest: self.digest,
            reverted: self.reverted,
        }
    }

    /// The log a checkpoint kept; it streams nowhere until told to.
    pub(crate) fn from_state(state: LogState<'_>) -> Result<Self, String> {
        let mut log = Self::with_capacity(state.capacity);
        for (name, n) in state.by_type {
            let index = EventKind::TYPES.iter().position(|t| *t == name).ok_or(format!("no event type {name:?}"))?;
            log.by_type[index] = n;
        }
        log.ring = state.ring.into_owned();
        log.next_seq = state.next_seq;
        log.digest = state.digest;
        log.reverted = state.reverted;
        Ok(log)
    }
}

/// Record phase: push buffered event lines out once per step.
pub(crate) fn flush_event_sink(mut log: ResMut<EventLog>) {
    log.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ArtifactId {
        ArtifactId::parse(s).unwrap()
    }

    #[test]
    fn ring_is_bounded_but_totals_and_digest_cover_everything() {
        let mut small = EventLog::with_capacity(2);
        let mut large = EventLog::with_capacity(10);
        for n in 1..=5 {
            let kind = EventKind::ScripTransfer { to: id("b"), amount: n };
            small.push(SimTime::ZERO, id("a"), kind.clone());
            large.push(SimTime::ZERO, id("a"), kind);
        }
        assert_eq!(small.recent().len(), 2);
        assert_eq!(small.recent().next().unwrap().seq, 4);
        assert_eq!(small.total(), 5);
        assert_eq!(small.by_type()["SCRIP_TRANSFER"], 5);
        assert_eq!(small.digest(), large.digest());
        assert_eq!(large.since(3).map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(small.since(0).map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn digest_depends_on_content() {
        let mut a = EventLog::default();
        let mut b = EventLog::default();
        a.push(SimTime::ZERO, id("a"), EventKind::ScripTransfer { to: id("b"), amount: 1 });
        b.push(SimTime::ZERO, id("a"), EventKind::ScripTransfer { to: id("b"), amount: 2 });
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn json_line_shape() {
        let event = Event {
            seq: 3,
            time: SimTime::from_millis(1500),
            actor: id("alice"),
            kind: EventKind::ScripTransfer { to: id("bob"), amount: 30 },
            reverted: false,
        };
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"seq": 3, "time": 1.5, "actor": "alice", "type": "SCRIP_TRANSFER",
                "payload": {"to": "bob", "amount": 30}})
        );
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, event, "a line of the event stream reads back as the event");
        let noop = Event { kind: EventKind::Noop {}, ..event };
        assert_eq!(serde_json::to_value(&noop).unwrap()["type"], "NOOP");
    }
}
