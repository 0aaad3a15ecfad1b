//! The end-of-run report (`ecology run --report`) and the ledger audit.
//!
//! The report is plain JSON a researcher can load anywhere: who holds what, what
//! exists, what happened, and the checksum that identifies the final world. Maps are
//! ordered by id so that equal worlds give byte-equal reports.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::checksum::world_checksum;
use crate::kernel::{Quota, Standing};
use crate::{
    economy::{
        escrow::Escrow,
        kpis::{self, KpiSample, Kpis},
        mint::Mint,
        tasks::{TaskBoard, TaskCounts},
    },
    kernel::{
        EventLog, InvocationStats, Supply,
        activity::Activity,
        llm::{LlmUse, Thoughts},
        query, state,
    },
    scene::Timeline,
    world::{
        components::{Artifact, Executable, Frozen, LastAction, System, Tombstone},
        ids::{ArtifactId, Ids},
        time::SimClock,
    },
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scene: String,
    pub seed: u64,
    pub steps: u64,
    pub sim_time_secs: f64,
    /// Steps the agents ran, all of them together (an agent asleep does not step).
    #[serde(default)]
    pub agent_steps: u64,
    pub principals: BTreeMap<String, PrincipalReport>,
    pub artifacts: BTreeMap<String, ArtifactReport>,
    pub events: EventsReport,
    pub interventions: InterventionsReport,
    /// Sum of every principal's scrip.
    pub scrip_supply: u64,
    /// Scrip created by the mint over the run.
    pub minted_total: u64,
    /// Scrip created by interventions over the run.
    pub granted_total: u64,
    /// What the economy did: the mint, use by others, freezes and rescues, and the
    /// health indicators at the end of the run.
    pub economy: EconomyReport,
    /// What thinking cost: calls to language models, tokens and micro-dollars.
    pub llm: LlmReport,
    /// What outside tools cost, by MCP server: calls, failures, scrip and µ$.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp: BTreeMap<String, crate::kernel::mcp::McpUse>,
    /// MCP servers that did not start (their gateways had no tools), and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_unavailable: BTreeMap<String, String>,
    /// Hex digest of the final world state and the whole event log.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalReport {
    pub scrip: u64,
    /// Scrip the mint holds for this principal's sealed bids (part of the supply).
    pub bids_held: u64,
    /// `llm_budget` (micro-dollars), `disk` (free bytes), `disk_used`, and any
    /// scene-declared stocks.
    pub resources: BTreeMap<String, u64>,
    /// Per-window limits of rates that are limited.
    pub quota: BTreeMap<String, u64>,
    pub frozen: bool,
    pub owned_artifacts: Vec<String>,
    /// Simulated seconds of its last action, if it ever acted.
    pub last_action_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactReport {
    pub owner: String,
    pub kind: query::ArtifactKind,
    pub deleted: bool,
    pub invoke_count: u64,
    /// Successful invocations by principals other than the artifact's creator.
    pub invoked_by_others: u64,
    pub content_bytes: u64,
    pub code_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EconomyReport {
    /// Mint auctions resolved, and sealed bids still waiting.
    pub mint_resolutions: u64,
    pub mint_bids_open: u64,
    /// Successful invocations of artifacts by someone other than their creator.
    pub invocations_by_others: u64,
    /// Agents frozen; thawed (by anyone, the experimenter included); rescued by
    /// another principal bringing them back above the freeze rule.
    pub freezes: u64,
    pub thaws: u64,
    pub rescues: u64,
    /// Artifacts listed for sale in escrow at the end.
    pub escrow_listings: u64,
    /// The task board: tasks posted and how they ended, rewards paid and still held.
    #[serde(default)]
    pub tasks: TaskCounts,
    /// Health indicators of the final world (see `economy::kpis`).
    pub kpis: KpiSample,
    /// Samples taken during the run (`config.kpis.every_steps`).
    pub kpi_samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmReport {
    /// `lockstep` or `realtime`.
    pub clock: String,
    /// Answered calls, failed calls (which cost nothing), and calls still in flight.
    pub calls: u64,
    pub failed: u64,
    pub in_flight: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micro_usd: u64,
    pub by_model: BTreeMap<String, LlmUse>,
    /// Why the run's first failed call failed, whatever its model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    /// The price of each model used (µ$ per million tokens; `notional` when it has
    /// no list price).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, crate::bridge::config::Model>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsReport {
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    /// Actions and intents the kernel refused or that failed (`ACTION_FAILED` and
    /// `INTENT_REFUSED`): every one is an event, an LLM agent's mistakes included.
    #[serde(default)]
    pub refused: u64,
    /// Events whose effects a failure undid (marked `reverted`).
    #[serde(default)]
    pub reverted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterventionsReport {
    pub applied: u64,
    pub failed: u64,
    pub pending: u64,
}

/// Builds the report of `world`. The world's own machinery (the `kernel` principal,
/// the built-in contracts) is the same in every world and is left out.
pub fn build_report(world: &World, scene: &str) -> Report {
    let ids = world.resource::<Ids>();
    let stats = world.resource::<InvocationStats>();
    let mut owned: BTreeMap<&ArtifactId, Vec<String>> = BTreeMap::new();
    let mut artifacts = BTreeMap::new();
    let user_entities = ids.in_creation_order().iter().copied().filter(|&e| world.get::<System>(e).is_none());
    for entity in user_entities.clone() {
        let (Some(id), Some(artifact)) = (world.get::<ArtifactId>(entity), world.get::<Artifact>(entity)) else {
            continue;
        };
        let deleted = world.get::<Tombstone>(entity).is_some();
        if !deleted && artifact.owner() != id {
            owned.entry(artifact.owner()).or_default().push(id.to_string());
        }
        artifacts.insert(
            id.to_string(),
            ArtifactReport {
                owner: artifact.owner().to_string(),
                kind: query::kind_of(world, entity),
                deleted,
                invoke_count: stats.invocations(id.as_str()),
                invoked_by_others: stats.counts(id.as_str()).by_others,
                content_bytes: artifact.content().len() as u64,
                code_bytes: world.get::<Executable>(entity).map_or(0, |x| x.code().len() as u64),
            },
        );
    }
    let mut principals = BTreeMap::new();
    let bids = world.resource::<Mint>().held_by();
    for entity in user_entities {
        let (Some(id), Some(standing)) = (world.get::<ArtifactId>(entity), world.get::<Standing>(entity)) else {
            continue;
        };
        let mut owned_artifacts = owned.remove(id).unwrap_or_default();
        owned_artifacts.sort();
        principals.insert(
            id.to_string(),
            PrincipalReport {
                scrip: standing.scrip(),
                bids_held: bids.get(id).copied().unwrap_or(0),
                resources: state::resources_of(standing),
                quota: world
                    .get::<Quota>(entity)
                    .map(|q| q.limits().iter().map(|(k, v)| (k.to_string(), *v)).collect())
                    .unwrap_or_default(),
                frozen: world.get::<Frozen>(entity).is_some(),
                owned_artifacts,
                last_action_at: world.get::<LastAction>(entity).and_then(|l| l.at()).map(|t| t.as_secs_f64()),
            },
        );
    }
    let clock = world.resource::<SimClock>();
    let log = world.resource::<EventLog>();
    let supply = world.resource::<Supply>();
    let timeline = world.resource::<Timeline>();
    let scrip_supply = state::scrip_supply(world);
    let activity = world.resource::<Activity>();
    let economy = EconomyReport {
        mint_resolutions: world.resource::<Mint>().resolutions(),
        mint_bids_open: world.resource::<Mint>().open_bids() as u64,
        invocations_by_others: artifacts.values().map(|a: &ArtifactReport| a.invoked_by_others).sum(),
        freezes: activity.freezes,
        thaws: activity.thaws,
        rescues: activity.rescues,
        escrow_listings: world.resource::<Escrow>().listings().count() as u64,
        tasks: world.resource::<TaskBoard>().counts(),
        kpis: kpis::compute(world),
        kpi_samples: world.resource::<Kpis>().series().len() as u64,
    };
    let thoughts = world.resource::<Thoughts>();
    let total = thoughts.total();
    let models = &world.resource::<crate::world::config::Config>().llm.models;
    let prices = thoughts.by_model().keys().filter_map(|m| Some((m.clone(), models.get(m)?.clone()))).collect();
    let llm = LlmReport {
        clock: world.resource::<crate::world::config::Config>().llm.clock.as_str().to_owned(),
        calls: total.calls,
        failed: total.failed,
        in_flight: thoughts.in_flight() as u64,
        prompt_tokens: total.prompt_tokens,
        completion_tokens: total.completion_tokens,
        cost_micro_usd: total.cost_micro_usd,
        by_model: thoughts.by_model().clone(),
        first_failure: total.first_failure.clone(),
        prices,
    };
    Report {
        scene: scene.to_owned(),
        seed: world.resource::<crate::world::config::Config>().seed,
        steps: clock.step(),
        sim_time_secs: clock.now().as_secs_f64(),
        agent_steps: ids
            .in_creation_order()
            .iter()
            .filter_map(|&e| world.get::<crate::world::components::Loop>(e))
            .map(|l| l.steps)
            .sum(),
        principals,
        artifacts,
        events: EventsReport {
            total: log.total(),
            by_type: log.by_type().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            refused: log.refused(),
            reverted: log.reverted(),
        },
        interventions: InterventionsReport {
            applied: timeline.applied(),
            failed: timeline.failed(),
            pending: timeline.pending().count() as u64,
        },
        scrip_supply,
        minted_total: supply.minted(),
        granted_total: supply.granted(),
        economy,
        llm,
        mcp: world.resource::<crate::kernel::mcp::McpCalls>().by_server().clone(),
        mcp_unavailable: world.resource::<crate::kernel::mcp::McpCalls>().unavailable().clone(),
        checksum: world_checksum(world),
    }
}

/// A broken invariant of the ledger. Any of these is a bug in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("scrip does not add up: principals hold {held}, but {expected} was created (initial + minted + granted)")]
    ScripNotConserved { held: u64, expected: u64 },
    #[error("{principal} is charged {charged} bytes of disk but owns {owned} bytes of live artifacts")]
    DiskMismatch { principal: String, charged: u64, owned: u64 },
    #[error("{principal} uses {used} bytes of disk with an allocation of {quota}")]
    DiskOverAllocation { principal: String, used: u64, quota: u64 },
}

/// Checks the ledger's invariants: scrip is conserved, and every principal's disk
/// usage is exactly the bytes of the live artifacts it owns, within its allocation.
pub fn audit(world: &World) -> Result<(), AuditError> {
    let ids = world.resource::<Ids>();
    let held = state::scrip_supply(world);
    let mut owned_bytes: BTreeMap<&ArtifactId, u64> = BTreeMap::new();
    for &entity in ids.in_creation_order() {
        if world.get::<Tombstone>(entity).is_some() {
            continue;
        }
        if let Some(artifact) = world.get::<Artifact>(entity) {
            *owned_bytes.entry(artifact.owner()).or_default() += state::artifact_bytes(world, entity);
        }
    }
    let expected = world.resource::<Supply>().expected_total();
    if held != expected {
        return Err(AuditError::ScripNotConserved { held, expected });
    }
    for &entity in ids.in_creation_order() {
        let (Some(id), Some(standing)) = (world.get::<ArtifactId>(entity), world.get::<Standing>(entity)) else {
            continue;
        };
        let owned = owned_bytes.get(id).copied().unwrap_or(0);
        if standing.disk_used() != owned {
            return Err(AuditError::DiskMismatch { principal: id.to_string(), charged: standing.disk_used(), owned });
        }
        if standing.disk_used() > standing.disk_quota() {
            return Err(AuditError::DiskOverAllocation {
                principal: id.to_string(),
                used: standing.disk_used(),
                quota: standing.disk_quota(),
            });
        }
    }
    Ok(())
}
