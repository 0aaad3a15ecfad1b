//! The scene file format: plain serde types, exactly as written in RON.
//!
//! Unknown fields are errors everywhere. Optional fields may be written without
//! `Some(..)`, and newtype variants without double parentheses (`Write(id: "x")`):
//! the loader turns on RON's `implicit_some` and `unwrap_variant_newtypes`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    bridge::config::ClockMode,
    economy::debt::DebtStatus,
    kernel::{Action, actions::Amount},
    world::components::{Interface, Metadata, Pricing},
};

/// The scene format version this build reads and writes.
pub const SCENE_VERSION: u32 = 1;

fn version() -> u32 {
    SCENE_VERSION
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A whole scene: settings, who exists, what exists, and what happens when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Scene")]
pub struct SceneFile {
    #[serde(default = "version")]
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub config: ConfigSpec,
    #[serde(default)]
    pub principals: Vec<PrincipalSpec>,
    /// Many similar principals at once, made after `principals`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub populations: Vec<PopulationSpec>,
    #[serde(default)]
    pub artifacts: Vec<ArtifactSpec>,
    #[serde(default)]
    pub interventions: Vec<InterventionSpec>,
    /// What a world saved as a scene carries over from its run (written by
    /// `--save-scene`; a scene written by hand has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySpec>,
}

/// `history: (...)`: what a world saved as a scene carries over from its run — the
/// counts and histories that agents read and the health indicators are made of,
/// the mint's sealed bids and what it has scored, and where its scrip came from — so
/// that the loaded world goes on like the one saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySpec {
    /// Scrip the mint created before the start (part of what principals hold).
    #[serde(default)]
    pub minted: u64,
    /// Scrip interventions granted before the start.
    #[serde(default)]
    pub granted: u64,
    /// Sealed bids at the mint, oldest first; their amounts are held from the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bids: Vec<BidSpec>,
    /// Fingerprints (hex) of what the mint has scored: a duplicate scores 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scored: Vec<String>,
    /// How each artifact's invocations went.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invocations: BTreeMap<String, crate::kernel::InvocationCount>,
    /// For each artifact, those its code invoked or imports (capital depth).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calls: BTreeMap<String, Vec<String>>,
    /// Pairs of agents that dealt with each other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub met: Vec<(String, String)>,
    /// How often each agent did each kind of thing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub habits: BTreeMap<String, BTreeMap<crate::kernel::activity::Habit, u32>>,
    /// Running counts: scrip moved between principals, freezes, thaws, rescues.
    #[serde(default)]
    pub counts: CountsSpec,
    /// The counts when the health indicators' current window began.
    #[serde(default)]
    pub window_start: CountsSpec,
}

/// Running counts of a world's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsSpec {
    #[serde(default)]
    pub scrip_moved: u64,
    #[serde(default)]
    pub freezes: u64,
    #[serde(default)]
    pub thaws: u64,
    #[serde(default)]
    pub rescues: u64,
}

/// A sealed bid carried over: `bidder` bid `amount` on `artifact`, which it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidSpec {
    pub bidder: String,
    pub artifact: String,
    pub amount: u64,
}

/// `config: (...)`. Every field is optional; SPEC §2 gives the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Simulated seconds per step (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt_secs: Option<f64>,
    /// Steps a run takes unless told otherwise (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Rolling window of rate limits, in simulated seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<DefaultsSpec>,
    /// Extra stock resources: name → what each principal holds by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u64>,
    /// Extra rate resources that quotas may limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<String>,
    /// Events kept in memory for queries (default 100 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ring: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mint: Option<MintSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpis: Option<KpiSpec>,
    /// The language models agents think with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    /// MCP servers the world starts, each a gateway artifact `mcp_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpSpec>,
    /// What becomes of capability requests: a person decides (default) or a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesSpec>,
}

/// `mcp: (...)`: outside tools over the Model Context Protocol (stdio servers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// Name → server; the gateway artifact is `mcp_<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, McpServerSpec>,
    /// Longest a call may take, in seconds, waiting for a restarting server included
    /// (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_secs: Option<f64>,
    /// Longest a server may take to start and list its tools (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_secs: Option<f64>,
}

/// One MCP server: how to start it and what a call costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// The program: on `PATH`, or a path (relative ones from the scene's directory).
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (relative to the scene's directory; default: the world's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Scrip a call costs (default 0), paid to the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrip_per_call: Option<u64>,
    /// LLM budget a call costs, in µ$ (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_usd_per_call: Option<u64>,
    /// A capability the payer must hold (granted by a person or a policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
}

/// `capabilities: (...)`: how requests made to `kernel_capabilities` are decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesSpec {
    /// Capability → decision for requests of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy: BTreeMap<String, crate::world::config::CapabilityRule>,
    /// For requests no entry of `policy` covers (default `Ask`: a person decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<crate::world::config::CapabilityRule>,
    /// More capabilities that may be requested, besides `can_call_llm` and those of
    /// the MCP servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grantable: Vec<String>,
}

/// `llm: (...)`: endpoints, models and their prices, and how the world waits for them.
/// The presets (`openai`, `openrouter`, `ollama`, `vllm`, `llamacpp`) and a table of
/// common models are always there; entries here add to or replace them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSpec {
    /// `Lockstep` (default: a step waits for every answer asked for earlier) or
    /// `Realtime` (the world goes on; answers arrive when they arrive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockMode>,
    /// The model of requests and agents that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// Requests in flight at once (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Completion tokens a request asks for when it does not say (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, EndpointSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// A model that scores the mint's winners instead of the offline heuristic,
    /// paid from the mint's own LLM budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorer_model: Option<String>,
    /// The mint's LLM budget for scoring, in dollars (anyone may add to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorer_budget_usd: Option<f64>,
}

/// An OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Up to the version, e.g. `"http://localhost:11434/v1"`.
    pub base_url: String,
    /// The *name* of the environment variable holding the API key (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_sec: Option<f64>,
    /// Wall-clock limit of one attempt (default 120; 600 on this machine). A request
    /// that runs out of it is not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Requests in flight to this endpoint at once (default: no limit but the
    /// world's `max_concurrency`; a local llama.cpp server wants 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
}

/// A model and its price in dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub endpoint: String,
    /// The name the server knows it by, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_name: Option<String>,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// The price is notional (no list price): said in the run's summary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notional: bool,
}

/// Retries of failed calls: exponential backoff with jitter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// First wait in milliseconds, doubled each time (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ms: Option<u64>,
    /// Longest wait in milliseconds (default 30 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
}

/// `mint: (...)`: when the mint's auctions resolve and what winning pays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintSpec {
    /// When the first auction resolves, in simulated seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at_secs: Option<f64>,
    /// Seconds between resolutions (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_secs: Option<f64>,
    /// Winners per resolution (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    /// A winner is minted `score / mint_ratio` scrip (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mint_ratio: Option<u64>,
}

/// `kpis: (...)`: how often the health indicators are sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiSpec {
    /// Steps between samples (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<u64>,
    /// Window of the rolling indicators, in simulated seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<f64>,
}

/// `freeze: (...)`: when an agent runs dry and is frozen (it holds less than either).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// Default 1: an agent freezes when its LLM budget is exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_llm_budget_micro_usd: Option<u64>,
    /// Default 0: never for scrip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scrip: Option<u64>,
}

/// `sandbox: (...)`: how artifact code runs. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Worker processes (lanes); default 2. Keep it fixed across compared runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Wall-clock deadline of one top-level call and everything it invokes; default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Heap a worker may grow by, in MiB; default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_mb: Option<usize>,
    /// Iterations allowed per loop (some built-ins, such as `repeat`, count too); default
    /// 10 000 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_limit: Option<u64>,
    /// Iterations allowed per loop in a contract; default 100 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_loop_limit: Option<u64>,
    /// Deadline of a contract check, everything it invokes included; default 0.25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_timeout_secs: Option<f64>,
    /// CPU microseconds a contract check may charge the caller; the rest is charged to
    /// the contract's owner; default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_caller_cpu_us: Option<u64>,
    /// Nested JS function calls allowed; default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursion: Option<usize>,
    /// Largest result of a call, in KiB of JSON; default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_kb: Option<u64>,
    /// VM instructions per CPU-microsecond charged; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_per_cpu_us: Option<u64>,
    /// Nested invokes allowed; default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Nested contract checks allowed; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contract_depth: Option<u32>,
    /// Simulated seconds between replacements of the workers; default 600. Exact
    /// checkpoints are taken at these points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_secs: Option<f64>,
}

/// `defaults: (...)`: what every principal gets unless it says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrip: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_budget_usd: Option<f64>,
    /// The same in exact integer micro-dollars (instead of `llm_budget_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_budget_micro_usd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Per-window limits (rate name → limit, `None` for unlimited). Replaces the
    /// built-in default (`cpu`: 5 000 000 µs) when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<BTreeMap<String, Option<u64>>>,
}

/// The parts every artifact entry can have, owned (for building entries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartsSpec {
    pub content: Option<String>,
    pub content_file: Option<String>,
    pub description: String,
    pub metadata: Metadata,
    pub code: Option<String>,
    pub code_file: Option<String>,
    pub interface: Option<Interface>,
    pub contract: Option<String>,
    pub pricing: Option<Pricing>,
}

/// The parts of an entry, borrowed (for validating it).
#[derive(Debug, Clone, Copy)]
pub struct PartsRef<'a> {
    pub content: Option<&'a str>,
    pub content_file: Option<&'a str>,
    pub description: &'a str,
    pub metadata: &'a Metadata,
    pub code: Option<&'a str>,
    pub code_file: Option<&'a str>,
    pub interface: Option<&'a Interface>,
    pub contract: Option<&'a str>,
    pub pricing: Option<&'a Pricing>,
}

/// Declares an entry struct with its own fields followed by the artifact parts.
/// (serde's `flatten` would do this, but it cannot be combined with
/// `deny_unknown_fields` and loses RON's error positions.)
macro_rules! entry_with_parts {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub content: Option<String>,
            /// Path of a file whose text is the content.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub content_file: Option<String>,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub description: String,
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub metadata: Metadata,
            /// JavaScript source, inline.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub code: Option<String>,
            /// Path of a JavaScript file (relative to the scene file, or under `assets/`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub code_file: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub interface: Option<Interface>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub contract: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pricing: Option<Pricing>,
        }

        impl $name {
            pub fn parts(&self) -> PartsRef<'_> {
                PartsRef {
                    content: self.content.as_deref(),
                    content_file: self.content_file.as_deref(),
                    description: &self.description,
                    metadata: &self.metadata,
                    code: self.code.as_deref(),
                    code_file: self.code_file.as_deref(),
                    interface: self.interface.as_ref(),
                    contract: self.contract.as_deref(),
                    pricing: self.pricing.as_ref(),
                }
            }

            pub fn set_parts(&mut self, parts: PartsSpec) {
                self.content = parts.content;
                self.content_file = parts.content_file;
                self.description = parts.description;
                self.metadata = parts.metadata;
                self.code = parts.code;
                self.code_file = parts.code_file;
                self.interface = parts.interface;
                self.contract = parts.contract;
                self.pricing = parts.pricing;
            }
        }
    };
}

entry_with_parts! {
    /// An entry of `principals: [...]`: an artifact with standing.
    pub struct PrincipalSpec {
        /// Required, except in a population's template (its pattern names members).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub id: String,
        /// Who owns this principal's artifact (default: itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrip: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub llm_budget_usd: Option<f64>,
        /// The same in exact integer micro-dollars (instead of `llm_budget_usd`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub llm_budget_micro_usd: Option<u64>,
        /// Disk allocation in bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub disk_bytes: Option<u64>,
        /// Holdings of scene-declared stock resources.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub resources: BTreeMap<String, u64>,
        /// Per-window limits overriding the defaults (`None`: unlimited).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub quota: BTreeMap<String, Option<u64>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub capabilities: Vec<String>,
        /// Capabilities granted on request, each with what may still be spent through
        /// it (`None`: no limit).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub grants: BTreeMap<String, Option<u64>>,
        /// The model it thinks with when its requests name none (one of
        /// `config.llm`'s models; default: the world's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// Runs autonomously: its code's `step(view)` is called on its own cadence.
        #[serde(default, skip_serializing_if = "is_false")]
        pub agent: bool,
        /// An agent's cadence: simulated seconds between steps (default: one step).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interval_secs: Option<f64>,
        #[serde(default, skip_serializing_if = "is_false")]
        pub frozen: bool,
        /// A commons: a principal that acts by its members' vote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub commons: Option<CommonsSpec>,
    }
}

/// An entry of `populations: [...]`: `count` principals made from one template.
///
/// ```ron
/// (id: "trader_{n:05}", count: 10000,
///  template: (agent: true, scrip: 100, code_file: "assets/agents/trader.js",
///             interface: (tools: [(name: "step")])),
///  vary: {"scrip": (min: 50, max: 150), "interval_secs": (min: 3.0, max: 7.0)})
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationSpec {
    /// The members' ids: `{n}` is the member's number, 1 to `count`; `{n:05}` pads
    /// it with zeros to five digits.
    pub id: String,
    pub count: u64,
    /// What every member is: a principal entry without an id.
    pub template: PrincipalSpec,
    /// Parameters drawn for each member, uniformly between `min` and `max`
    /// (whole numbers for `scrip` and `disk_bytes`; also `llm_budget_usd`,
    /// `interval_secs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vary: BTreeMap<String, RangeSpec>,
    /// Seeds the draws (default: the scene's seed), so a population is the same
    /// every time the scene is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `(min: a, max: b)`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub min: f64,
    pub max: f64,
}

entry_with_parts! {
    /// An entry of `artifacts: [...]`.
    pub struct ArtifactSpec {
        pub id: String,
        pub owner: String,
        /// A tombstone: the id stays taken, nothing else remains.
        #[serde(default, skip_serializing_if = "is_false")]
        pub deleted: bool,
        /// Privileges of its code, e.g. `can_call_llm` (the `llm` syscall).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub capabilities: Vec<String>,
        /// Capabilities its code was granted on request, each with what may still be
        /// spent through it (`None`: no limit).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub grants: BTreeMap<String, Option<u64>>,
        /// A debt note: its terms and state, kept by the kernel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub debt: Option<DebtSpec>,
    }
}

/// The terms and state of a debt note (see `kernel_debt`). Times are seconds from
/// the scene's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebtSpec {
    pub debtor: String,
    /// Who offered the loan; the note's owner is who is owed.
    pub creditor: String,
    pub principal: u64,
    #[serde(default)]
    pub interest: u64,
    pub term_secs: f64,
    #[serde(default)]
    pub offered_at_secs: f64,
    /// When it falls due; set once the debtor accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_secs: Option<f64>,
    #[serde(default)]
    pub repaid: u64,
    /// `offered`, `active`, `repaid`, `defaulted` or `cancelled`.
    pub status: DebtStatus,
}

/// Who governs a commons, and how (see `kernel_governance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonsSpec {
    pub members: Vec<String>,
    /// Share of members who must vote, in percent.
    #[serde(default = "half")]
    pub quorum_pct: u64,
    /// Share of votes that must say yes, in percent (strictly more than this).
    #[serde(default = "half")]
    pub threshold_pct: u64,
}

fn half() -> u64 {
    50
}

/// An entry of `interventions: [...]`: at `at` seconds, either `do` an action `as` a
/// principal, or perform a `system` act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterventionSpec {
    pub at: f64,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(rename = "do", default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemAct>,
}

/// What the world itself can be made to do from outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SystemAct {
    /// Create scrip for a principal (outside the mint; booked as granted).
    GrantScrip {
        to: String,
        amount: Amount,
    },
    /// Add to a principal's holding of a resource (or to its limit of a rate).
    GrantResource {
        to: String,
        resource: String,
        amount: Amount,
    },
    /// Set a per-window limit (`None`: unlimited), or the disk allocation.
    SetQuota {
        principal: String,
        resource: String,
        limit: Option<u64>,
    },
    Freeze {
        principal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unfreeze {
        principal: String,
    },
    /// Lets an agent paused after repeated failures run again.
    Resume {
        principal: String,
    },
    /// Decides a capability request made to `kernel_capabilities`: grants it (with at
    /// most `limit` to spend through it) or refuses it.
    DecideCapability {
        request: u64,
        approve: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

impl SystemAct {
    /// The principal the act is about, if it names one.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::GrantScrip { to, .. } | Self::GrantResource { to, .. } => Some(to),
            Self::SetQuota { principal, .. }
            | Self::Freeze { principal, .. }
            | Self::Unfreeze { principal }
            | Self::Resume { principal } => Some(principal),
            Self::DecideCapability { .. } => None,
        }
    }
}
