//! The world's settings, validated from a scene's `config` section.
//!
//! Every field has the default of SPEC §2 when the scene omits it; the scene module
//! does the parsing and reports errors with positions, so values here are trusted.

use std::{collections::BTreeMap, sync::Arc};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::time::SimTime;

/// Rate resources the kernel knows by name (per window). A scene may limit others
/// as well.
pub const BUILTIN_RATES: &[&str] = &["cpu", "llm_tokens", "llm_calls", "mcp_calls", "actions"];

/// Quota resources that are allocations, not rates: `memory`, the most heap one call
/// may use.
pub const BUILTIN_ALLOCATIONS: &[&str] = &["memory"];

/// The configuration of one world.
#[derive(Resource, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Seeds [`SimRng`](super::rng::SimRng); `ecology run --seed` overrides it.
    pub seed: u64,
    /// Simulated length of one step.
    pub dt: SimTime,
    /// Steps a run takes when neither `--steps` nor `--until` is given.
    pub steps: u64,
    /// Length of the rolling window of rate limits.
    pub window: SimTime,
    /// What a principal gets when the scene does not say.
    pub defaults: PrincipalDefaults,
    /// Extra stock resources (name → default holding per principal).
    pub stock_resources: BTreeMap<Arc<str>, u64>,
    /// Extra rate resources, beyond [`BUILTIN_RATES`].
    pub rate_resources: Vec<Arc<str>>,
    /// Events kept in memory for queries.
    pub event_ring: usize,
    /// How artifact code runs.
    pub sandbox: crate::sandbox::SandboxConfig,
    /// When an agent is frozen for running dry.
    pub freeze: FreezeRule,
    /// The mint's schedule and rules.
    pub mint: MintConfig,
    /// How often the health indicators are sampled.
    pub kpis: KpiConfig,
    /// The language models agents think with.
    pub llm: crate::bridge::config::LlmConfig,
    /// Outside tools: MCP servers.
    pub mcp: crate::bridge::mcp::McpConfig,
    /// How capability requests are decided.
    pub capabilities: CapabilityPolicy,
}

impl Config {
    /// The configuration as the scene declared it, without what was resolved on this
    /// machine (the absolute paths of MCP servers' commands and working directories)
    /// and without how its model servers are reached (address, key variable, timeout,
    /// concurrency, rate: the same answers make the same world wherever they came
    /// from), nor the run's length and clock mode: what a world's checksum sees, so
    /// that a run replays to the same checksum from any directory and machine, and a
    /// run saved in the window (realtime, open-ended) replays in a bounded lockstep run.
    pub(crate) fn portable(&self) -> Config {
        let mut portable = self.clone();
        // How many workers run the code is the machine's business: the same world
        // comes out with any number (tested with 1, 2 and 8).
        portable.sandbox.workers = 0;
        // How long a run goes is not what its world is: step 12 of a 600-step run is
        // the world a 12-step run ends with. Nor is how it waits for answers from
        // outside: what came, and when, is in its state and its events.
        portable.steps = 0;
        portable.llm.clock = crate::bridge::config::ClockMode::default();
        for server in portable.mcp.servers.values_mut() {
            server.command = server.declared_command.clone();
            server.cwd = server.declared_cwd.clone();
        }
        for endpoint in portable.llm.endpoints.values_mut() {
            *endpoint = crate::bridge::config::Endpoint {
                base_url: String::new(),
                api_key_env: None,
                requests_per_sec: None,
                timeout_ms: 0,
                max_concurrency: None,
            };
        }
        portable
    }
}

/// A standing decision on capability requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapabilityRule {
    /// A person decides (in the window or with `ecology capabilities`).
    #[default]
    Ask,
    /// Granted at once, with at most this much to spend through it (none: no limit).
    Approve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Refused at once.
    Deny,
}

/// How the world decides capability requests, and which it accepts at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityPolicy {
    pub rules: BTreeMap<String, CapabilityRule>,
    pub otherwise: CapabilityRule,
    /// Capabilities that may be requested besides `can_call_llm` and the MCP servers'.
    pub grantable: Vec<String>,
}

impl CapabilityPolicy {
    pub fn rule(&self, capability: &str) -> CapabilityRule {
        self.rules.get(capability).copied().unwrap_or(self.otherwise)
    }
}

/// The mint's schedule and rules (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintConfig {
    /// When the first auction resolves.
    pub first_at: SimTime,
    /// Time between resolutions.
    pub period: SimTime,
    /// Winners per resolution: the top `slots` bids win, each paying the next bid.
    pub slots: u32,
    /// A winner is minted `score / mint_ratio` scrip.
    pub mint_ratio: u64,
}

impl Default for MintConfig {
    fn default() -> Self {
        Self { first_at: SimTime::from_millis(60_000), period: SimTime::from_millis(60_000), slots: 1, mint_ratio: 10 }
    }
}

/// How often the health indicators are sampled, and over what window the rolling
/// ones (velocity, recovery rate) are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiConfig {
    pub every_steps: u64,
    pub window: SimTime,
}

impl Default for KpiConfig {
    fn default() -> Self {
        Self { every_steps: 10, window: SimTime::from_millis(60_000) }
    }
}

/// When an agent can no longer pay for its next step and is frozen (SPEC §8). It is
/// frozen when it holds less than either minimum, and thawed by whoever brings it
/// back to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeRule {
    /// LLM budget below which an agent freezes (default 1: it freezes at zero).
    pub min_llm_budget_micro_usd: u64,
    /// Scrip below which an agent freezes (default 0: never for scrip).
    pub min_scrip: u64,
}

impl Default for FreezeRule {
    fn default() -> Self {
        Self { min_llm_budget_micro_usd: 1, min_scrip: 0 }
    }
}

impl FreezeRule {
    /// Why a principal holding this much cannot pay for another step, if it cannot.
    pub fn runs_dry(&self, scrip: u64, llm_budget_micro_usd: u64) -> Option<String> {
        if llm_budget_micro_usd < self.min_llm_budget_micro_usd {
            return Some(format!(
                "llm_budget {llm_budget_micro_usd} µ$ is below the {} µ$ a step needs",
                self.min_llm_budget_micro_usd
            ));
        }
        if scrip < self.min_scrip {
            return Some(format!("scrip {scrip} is below the {} a step needs", self.min_scrip));
        }
        None
    }
}

/// Default holdings and limits of a principal declared in a scene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalDefaults {
    pub scrip: u64,
    pub llm_budget_micro_usd: u64,
    pub disk_bytes: u64,
    /// Per-window limits; a rate without an entry is unlimited.
    pub quota: super::components::Limits,
}

impl Default for PrincipalDefaults {
    fn default() -> Self {
        Self {
            scrip: 100,
            llm_budget_micro_usd: 2_000_000,
            disk_bytes: 100_000,
            quota: Arc::new(BTreeMap::from([(Arc::from("cpu"), 5_000_000)])),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            dt: SimTime::from_millis(1000),
            steps: 600,
            window: SimTime::from_millis(60_000),
            defaults: PrincipalDefaults::default(),
            stock_resources: BTreeMap::new(),
            rate_resources: Vec::new(),
            event_ring: crate::kernel::events::DEFAULT_RING_CAPACITY,
            sandbox: crate::sandbox::SandboxConfig::default(),
            freeze: FreezeRule::default(),
            mint: MintConfig::default(),
            kpis: KpiConfig::default(),
            llm: crate::bridge::config::LlmConfig::default(),
            mcp: crate::bridge::mcp::McpConfig::default(),
            capabilities: CapabilityPolicy::default(),
        }
    }
}

impl Config {
    /// Whether `name` is a rate resource in this world.
    pub fn is_rate(&self, name: &str) -> bool {
        BUILTIN_RATES.contains(&name) || self.rate_resources.iter().any(|r| &**r == name)
    }

    /// Whether `name` is limited by quotas: a rate or an allocation.
    pub fn is_quota(&self, name: &str) -> bool {
        self.is_rate(name) || BUILTIN_ALLOCATIONS.contains(&name)
    }
}
