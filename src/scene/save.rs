//! Writing a world back as a scene.
//!
//! The saved scene describes the world's current state as a new starting point:
//! holdings, quotas, artifacts (code inline), tombstones, and the interventions still
//! to come, shifted so that *now* becomes time zero. Timestamps and the event history
//! stay behind (that is what checkpoints are for). Loading the saved scene gives a
//! world equal to the one saved, which the round-trip tests check by checksum.

use std::collections::{BTreeMap, BTreeSet};

use bevy_ecs::prelude::*;

use super::{
    raw::{
        ArtifactSpec, CapabilitiesSpec, CommonsSpec, ConfigSpec, DebtSpec, DefaultsSpec, EndpointSpec, FreezeSpec,
        InterventionSpec, KpiSpec, LlmSpec, McpServerSpec, McpSpec, MintSpec, ModelSpec, PartsSpec, PrincipalSpec,
        RetrySpec, SCENE_VERSION, SandboxSpec, SceneFile,
    },
    timeline::{InterventionAct, Timeline},
};
use crate::bridge::{config::LlmConfig, mcp::McpConfig};
use crate::economy::{debt::Debt, escrow::Escrow, governance::Commons, mint::Mint};
use crate::world::{
    components::{
        AccessContract, Artifact, Capabilities, Executable, Frozen, Grants, Interface, Loop, ModelChoice, Pricing,
        Quota, Standing, System, Tombstone,
    },
    config::{CapabilityPolicy, Config},
    ids::{ArtifactId, Ids},
    time::{SimClock, SimTime},
};

pub(super) fn scene_from_world(world: &World, name: &str) -> SceneFile {
    let config = world.resource::<Config>();
    let now = world.resource::<SimClock>().now();
    // Sealed bids, escrow listings and tasks do not carry over to a new start: the
    // bids and the rewards of unsettled tasks go back to their bidders' and posters'
    // scrip, and listed artifacts back to their sellers. (Locks and subscriptions
    // are left behind too: they are promises about a run, not holdings. Granted
    // capabilities carry over with what is left of their limits; requests still
    // waiting for a decision do not, and are asked again in the new world.)
    let mut refunds = world.resource::<Mint>().held_by();
    for (poster, reward) in world.resource::<crate::economy::tasks::TaskBoard>().held_by() {
        *refunds.entry(poster).or_default() += reward;
    }
    // Calls to models in flight are not carried over either: their reservations
    // go back to their payers.
    let reserved = world.resource::<crate::kernel::llm::Thoughts>().reserved_by();
    let escrow = world.resource::<Escrow>();
    let mut principals = Vec::new();
    let mut artifacts = Vec::new();
    for &entity in world.resource::<Ids>().in_creation_order() {
        if world.get::<System>(entity).is_some() {
            continue;
        }
        let (Some(id), Some(artifact)) = (world.get::<ArtifactId>(entity), world.get::<Artifact>(entity)) else {
            continue;
        };
        let parts = parts_of(world, entity, artifact);
        if let Some(standing) = world.get::<Standing>(entity) {
            let budget = standing.llm_budget_micro_usd().saturating_add(reserved.get(id).copied().unwrap_or(0));
            let mut spec = PrincipalSpec {
                id: id.to_string(),
                owner: (artifact.owner() != id).then(|| owner_of(escrow, id, artifact).to_string()),
                scrip: Some(standing.scrip().saturating_add(refunds.get(id).copied().unwrap_or(0))),
                llm_budget_usd: as_usd(budget),
                llm_budget_micro_usd: as_micro(budget),
                disk_bytes: Some(standing.disk_quota()),
                resources: standing.stocks().map(|(k, v)| (k.to_string(), v)).collect(),
                quota: quota_overrides(config, world.get::<Quota>(entity)),
                capabilities: world
                    .get::<Capabilities>(entity)
                    .map(|c| c.iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
                grants: grants_of(world, entity),
                model: world.get::<ModelChoice>(entity).map(|m| m.model().to_owned()),
                agent: world.get::<Loop>(entity).is_some(),
                interval_secs: world.get::<Loop>(entity).map(|l| l.interval().as_secs_f64()),
                frozen: world.get::<Frozen>(entity).is_some(),
                commons: world.get::<Commons>(entity).map(|c| CommonsSpec {
                    members: c.members.iter().map(ToString::to_string).collect(),
                    quorum_pct: c.quorum_pct,
                    threshold_pct: c.threshold_pct,
                }),
                ..PrincipalSpec::default()
            };
            spec.set_parts(parts);
            principals.push(spec);
        } else {
            let deleted = world.get::<Tombstone>(entity).is_some();
            let mut spec = ArtifactSpec {
                id: id.to_string(),
                owner: owner_of(escrow, id, artifact).to_string(),
                deleted,
                capabilities: world
                    .get::<Capabilities>(entity)
                    .map(|c| c.iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
                grants: grants_of(world, entity),
                debt: world.get::<Debt>(entity).map(|d| debt_spec(d, now)),
                ..ArtifactSpec::default()
            };
            if !deleted {
                spec.set_parts(parts);
            }
            artifacts.push(spec);
        }
    }
    let interventions = world
        .resource::<Timeline>()
        .pending()
        .map(|scheduled| {
            let at = scheduled.at.millis().saturating_sub(now.millis()) as f64 / 1000.0;
            match &scheduled.act {
                InterventionAct::As { actor, action } => {
                    InterventionSpec { at, actor: Some(actor.to_string()), action: Some(action.clone()), system: None }
                }
                InterventionAct::System(act) => {
                    InterventionSpec { at, actor: None, action: None, system: Some(act.clone()) }
                }
            }
        })
        .collect();
    // The mint's LLM budget (what is left of it to pay its scorer) starts the new world.
    let mint_budget = crate::world::ids::lookup(world, crate::economy::services::MINT_ID)
        .and_then(|e| world.get::<Standing>(e))
        .map_or(0, Standing::llm_budget_micro_usd);
    let mut config_out = config_spec(config, mint_budget);
    if let Some(mint) = config_out.mint.as_mut() {
        // The next resolution keeps its place on the shifted clock.
        let next = world.resource::<Mint>().next_at(&config.mint);
        mint.first_at_secs = Some(next.millis().saturating_sub(now.millis()) as f64 / 1000.0);
    }
    SceneFile {
        version: SCENE_VERSION,
        name: name.to_owned(),
        description: String::new(),
        config: config_out,
        principals,
        artifacts,
        interventions,
    }
}

/// A note's terms with its times shifted so that `now` is zero (a time already past
/// becomes zero).
fn debt_spec(debt: &Debt, now: SimTime) -> DebtSpec {
    let shifted = |t: SimTime| t.millis().saturating_sub(now.millis()) as f64 / 1000.0;
    DebtSpec {
        debtor: debt.debtor.to_string(),
        creditor: debt.creditor.to_string(),
        principal: debt.principal,
        interest: debt.interest,
        term_secs: debt.term.as_secs_f64(),
        offered_at_secs: shifted(debt.offered_at),
        due_at_secs: debt.due_at.map(shifted),
        repaid: debt.repaid,
        status: debt.status,
    }
}

/// The owner to save: a listed artifact's seller rather than the escrow service.
fn owner_of<'a>(escrow: &'a Escrow, id: &ArtifactId, artifact: &'a Artifact) -> &'a ArtifactId {
    escrow.listing(id.as_str()).map_or(artifact.owner(), |listing| &listing.seller)
}

fn parts_of(world: &World, entity: Entity, artifact: &Artifact) -> PartsSpec {
    PartsSpec {
        content: (!artifact.content().is_empty()).then(|| artifact.content().to_owned()),
        content_file: None,
        description: artifact.description().to_owned(),
        metadata: artifact.metadata().cloned().unwrap_or_default(),
        code: world.get::<Executable>(entity).map(|x| x.code().to_owned()),
        code_file: None,
        interface: world.get::<Interface>(entity).cloned(),
        contract: world.get::<AccessContract>(entity).map(|c| c.id().to_string()),
        pricing: world.get::<Pricing>(entity).copied(),
    }
}

/// The quota entries where a principal differs from the scene's defaults.
fn quota_overrides(config: &Config, quota: Option<&Quota>) -> BTreeMap<String, Option<u64>> {
    let defaults = &config.defaults.quota;
    let own = quota.map(|q| q.limits().clone()).unwrap_or_default();
    let names: BTreeSet<_> = defaults.keys().chain(own.keys()).cloned().collect();
    names
        .into_iter()
        .filter(|name| own.get(name) != defaults.get(name))
        .map(|name| (name.to_string(), own.get(&name).copied()))
        .collect()
}

/// Dollars, when they convert back to exactly `micro` (readable)...
fn as_usd(micro: u64) -> Option<f64> {
    let usd = micro as f64 / 1_000_000.0;
    ((usd * 1_000_000.0).round() == micro as f64 && micro < (1 << 53)).then_some(usd)
}

/// ...or else exact micro-dollars.
fn as_micro(micro: u64) -> Option<u64> {
    as_usd(micro).is_none().then_some(micro)
}

fn config_spec(config: &Config, mint_budget: u64) -> ConfigSpec {
    ConfigSpec {
        seed: Some(config.seed),
        dt_secs: Some(config.dt.as_secs_f64()),
        steps: Some(config.steps),
        window_secs: Some(config.window.as_secs_f64()),
        defaults: Some(DefaultsSpec {
            scrip: Some(config.defaults.scrip),
            llm_budget_usd: as_usd(config.defaults.llm_budget_micro_usd),
            llm_budget_micro_usd: as_micro(config.defaults.llm_budget_micro_usd),
            disk_bytes: Some(config.defaults.disk_bytes),
            quota: Some(config.defaults.quota.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect()),
        }),
        resources: config.stock_resources.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        rates: config.rate_resources.iter().map(|r| r.to_string()).collect(),
        event_ring: Some(config.event_ring),
        sandbox: Some(sandbox_spec(&config.sandbox)),
        freeze: Some(FreezeSpec {
            min_llm_budget_micro_usd: Some(config.freeze.min_llm_budget_micro_usd),
            min_scrip: Some(config.freeze.min_scrip),
        }),
        mint: Some(MintSpec {
            first_at_secs: Some(config.mint.first_at.as_secs_f64()),
            period_secs: Some(config.mint.period.as_secs_f64()),
            slots: Some(config.mint.slots),
            mint_ratio: Some(config.mint.mint_ratio),
        }),
        kpis: Some(KpiSpec {
            every_steps: Some(config.kpis.every_steps),
            window_secs: Some(config.kpis.window.as_secs_f64()),
        }),
        llm: Some(llm_spec(&config.llm, mint_budget)),
        mcp: (!config.mcp.servers.is_empty()).then(|| mcp_spec(&config.mcp)),
        capabilities: (config.capabilities != CapabilityPolicy::default()).then(|| CapabilitiesSpec {
            policy: config.capabilities.rules.clone(),
            otherwise: Some(config.capabilities.otherwise),
            grantable: config.capabilities.grantable.clone(),
        }),
    }
}

fn mcp_spec(mcp: &McpConfig) -> McpSpec {
    let servers = mcp
        .servers
        .iter()
        .map(|(name, s)| {
            let spec = McpServerSpec {
                command: s.command.clone(),
                args: s.args.clone(),
                env: s.env.clone(),
                cwd: s.cwd.as_ref().map(|d| d.display().to_string()),
                scrip_per_call: Some(s.scrip_per_call),
                micro_usd_per_call: Some(s.micro_usd_per_call),
                capability: s.capability.clone(),
            };
            (name.clone(), spec)
        })
        .collect();
    McpSpec {
        servers,
        call_timeout_secs: Some(mcp.call_timeout_ms as f64 / 1000.0),
        start_timeout_secs: Some(mcp.start_timeout_ms as f64 / 1000.0),
    }
}

/// The world's models: its settings, and the endpoints and models that differ from
/// the presets.
fn llm_spec(llm: &LlmConfig, mint_budget: u64) -> LlmSpec {
    let presets = LlmConfig::default();
    let endpoints = llm
        .endpoints
        .iter()
        .filter(|(name, endpoint)| presets.endpoints.get(*name) != Some(endpoint))
        .map(|(name, e)| {
            let spec = EndpointSpec {
                base_url: e.base_url.clone(),
                api_key_env: e.api_key_env.clone(),
                requests_per_sec: e.requests_per_sec,
                timeout_secs: Some(e.timeout_ms as f64 / 1000.0),
            };
            (name.clone(), spec)
        })
        .collect();
    let models = llm
        .models
        .iter()
        .filter(|(name, model)| presets.models.get(*name) != Some(model))
        .map(|(name, m)| {
            let spec = ModelSpec {
                endpoint: m.endpoint.clone(),
                api_name: m.api_name.clone(),
                input_usd_per_mtok: m.input_micro_usd_per_mtok as f64 / 1e6,
                output_usd_per_mtok: m.output_micro_usd_per_mtok as f64 / 1e6,
            };
            (name.clone(), spec)
        })
        .collect();
    LlmSpec {
        clock: Some(llm.clock),
        default_model: llm.default_model.clone(),
        max_concurrency: Some(llm.max_concurrency),
        max_tokens: Some(llm.max_tokens),
        endpoints,
        models,
        retry: Some(RetrySpec {
            max_attempts: Some(llm.retry.max_attempts),
            base_ms: Some(llm.retry.base_ms),
            max_ms: Some(llm.retry.max_ms),
        }),
        scorer_model: llm.scorer_model.clone(),
        scorer_budget_usd: Some(mint_budget as f64 / 1e6),
    }
}

fn sandbox_spec(sandbox: &crate::sandbox::SandboxConfig) -> SandboxSpec {
    SandboxSpec {
        workers: Some(sandbox.workers),
        timeout_secs: Some(sandbox.timeout_ms as f64 / 1000.0),
        heap_mb: Some(sandbox.heap_bytes >> 20),
        loop_limit: Some(sandbox.loop_limit),
        contract_loop_limit: Some(sandbox.contract_loop_limit),
        recursion: Some(sandbox.recursion),
        result_kb: Some(sandbox.result_bytes / 1024),
        instructions_per_cpu_us: Some(sandbox.instructions_per_cpu_us),
        max_depth: Some(sandbox.max_depth),
        max_contract_depth: Some(sandbox.max_contract_depth),
        epoch_secs: Some(sandbox.epoch_ms as f64 / 1000.0),
    }
}

/// Granted capabilities, each with what is left to spend through it.
fn grants_of(world: &World, entity: Entity) -> BTreeMap<String, Option<u64>> {
    let Some(grants) = world.get::<Grants>(entity) else { return BTreeMap::new() };
    grants.iter().map(|(capability, grant)| (capability.to_owned(), grant.limit.map(|_| grant.remaining()))).collect()
}
