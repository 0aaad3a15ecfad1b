//! Writing a world back as a scene.
//!
//! The saved scene describes the world's current state as a new starting point —
//! time zero is *now*: what every principal holds, every artifact, the interventions
//! still to come (shifted), and in its `history` what agents and the health
//! indicators read of the past: how each artifact's invocations went, which code
//! calls which, who dealt with whom, each agent's habits, the activity counts and
//! where the indicators' window began, the mint's sealed bids and what it scored,
//! and where the scrip came from. So a world loaded from the saved scene goes on
//! like the one saved: the same indicators, the same prices by demand.
//!
//! Each part of a world, as [`super::state`] declares them, says here what a saved
//! scene keeps of it ([`SaveResource`], [`SavePart`]), and why when the answer is
//! nothing. Not kept, because a scene is a start and not a checkpoint: the clock and
//! the random stream (the scene starts at zero from its seed), rate windows,
//! heartbeats and inboxes, the event history, escrow listings (the artifacts go back
//! to their sellers), unsettled tasks (their rewards go back to their posters), open
//! proposals, locks, subscriptions, capability requests still waiting for a decision,
//! and calls to models and MCP servers in flight (their reservations go back).
//! Checkpoints keep all of it.

use std::collections::{BTreeMap, BTreeSet};

use bevy_ecs::prelude::*;

use super::{
    raw::{
        ArtifactSpec, BidSpec, CapabilitiesSpec, CommonsSpec, ConfigSpec, CountsSpec, DebtSpec, DefaultsSpec,
        EndpointSpec, FreezeSpec, HistorySpec, InterventionSpec, KpiSpec, LlmSpec, McpServerSpec, McpSpec, MintSpec,
        ModelSpec, PartsSpec, PrincipalSpec, RetrySpec, SCENE_VERSION, SandboxSpec, SceneFile,
    },
    state,
    timeline::{InterventionAct, Timeline},
};
use crate::{
    bridge::{LlmBridge, config::LlmConfig, mcp::McpBridge, mcp::McpConfig},
    economy::{
        capabilities::CapabilityRequests,
        debt::{Debt, Debts},
        escrow::Escrow,
        governance::{Commons, Governance},
        kpis::Kpis,
        locks::Locks,
        mint::Mint,
        subscriptions::Subscriptions,
        tasks::TaskBoard,
    },
    kernel::{
        EventLog, Held, InvocationStats, Quota, Standing, Supply,
        activity::{Activity, Habits},
        llm::Thoughts,
        mcp::McpCalls,
        rates::Usage,
    },
    world::{
        components::{
            AccessContract, Artifact, Capabilities, CreatedBy, Executable, Frozen, Grants, Imports, Inbox, Interface,
            LastAction, Loop, McpGateway, ModelChoice, Pricing, Service, System, Thinking, Tombstone,
        },
        config::{CapabilityPolicy, Config},
        ids::{ArtifactId, Ids},
        rng::SimRng,
        time::{SimClock, SimTime},
    },
};

/// What a resource of the world leaves in a saved scene.
pub(crate) trait SaveResource {
    fn save(&self, world: &World, out: &mut SavedWorld);
}

/// What a part of an entity leaves in a saved scene.
pub(crate) trait SavePart {
    fn save(&self, world: &World, entity: Entity, out: &mut SavedEntity);
}

/// The scene being written, and what the world's resources tell its entries.
#[derive(Default)]
pub(crate) struct SavedWorld {
    now: SimTime,
    config: ConfigSpec,
    interventions: Vec<InterventionSpec>,
    history: HistorySpec,
    /// Scrip to give back: the rewards of unsettled tasks, by poster.
    refunds: BTreeMap<ArtifactId, u64>,
    /// LLM budget to give back: reservations of calls in flight, by payer.
    reserved: BTreeMap<ArtifactId, u64>,
    /// Listed artifacts, by id, with their sellers (who own them again).
    sellers: BTreeMap<ArtifactId, ArtifactId>,
}

/// One entry being written: a principal if it has standing, else an artifact.
pub(crate) struct SavedEntity<'w> {
    world: &'w SavedWorld,
    id: ArtifactId,
    owner: Option<ArtifactId>,
    principal: Option<PrincipalSpec>,
    parts: PartsSpec,
    deleted: bool,
    capabilities: Vec<String>,
    grants: BTreeMap<String, Option<u64>>,
    model: Option<String>,
    agent: Option<f64>,
    frozen: bool,
    debt: Option<DebtSpec>,
    commons: Option<CommonsSpec>,
    quota: BTreeMap<String, Option<u64>>,
    habits: Option<BTreeMap<crate::kernel::activity::Habit, u32>>,
}

impl<'w> SavedEntity<'w> {
    fn new(world: &'w SavedWorld, id: ArtifactId) -> Self {
        Self {
            world,
            id,
            owner: None,
            principal: None,
            parts: PartsSpec::default(),
            deleted: false,
            capabilities: Vec::new(),
            grants: BTreeMap::new(),
            model: None,
            agent: None,
            frozen: false,
            debt: None,
            commons: None,
            quota: BTreeMap::new(),
            habits: None,
        }
    }
}

/// The entries a saved entity becomes.
enum Entry {
    Principal(PrincipalSpec),
    Artifact(ArtifactSpec),
}

impl SavedEntity<'_> {
    fn finish(self) -> (Entry, Option<BTreeMap<crate::kernel::activity::Habit, u32>>) {
        let owner = self.owner.unwrap_or_else(|| self.id.clone());
        let entry = match self.principal {
            Some(mut spec) => {
                spec.id = self.id.to_string();
                spec.owner = (owner != self.id).then(|| owner.to_string());
                spec.quota = self.quota;
                spec.capabilities = self.capabilities;
                spec.grants = self.grants;
                spec.model = self.model;
                spec.agent = self.agent.is_some();
                spec.interval_secs = self.agent;
                spec.frozen = self.frozen;
                spec.commons = self.commons;
                spec.set_parts(self.parts);
                Entry::Principal(spec)
            }
            None => {
                let mut spec = ArtifactSpec {
                    id: self.id.to_string(),
                    owner: owner.to_string(),
                    deleted: self.deleted,
                    capabilities: self.capabilities,
                    grants: self.grants,
                    debt: self.debt,
                    ..ArtifactSpec::default()
                };
                if !self.deleted {
                    spec.set_parts(self.parts);
                }
                Entry::Artifact(spec)
            }
        };
        (entry, self.habits)
    }
}

pub(super) fn scene_from_world(world: &World, name: &str) -> SceneFile {
    let mut out = SavedWorld::default();
    state::save_resources(world, &mut out);
    let mut principals = Vec::new();
    let mut artifacts = Vec::new();
    let mut habits = BTreeMap::new();
    for &entity in world.resource::<Ids>().in_creation_order() {
        if world.get::<System>(entity).is_some() {
            continue;
        }
        let Some(id) = world.get::<ArtifactId>(entity) else { continue };
        let mut saved = SavedEntity::new(&out, id.clone());
        state::save_parts(world, entity, &mut saved);
        let (entry, saved_habits) = saved.finish();
        if let Some(counts) = saved_habits {
            habits.insert(id.to_string(), counts);
        }
        match entry {
            Entry::Principal(spec) => principals.push(spec),
            Entry::Artifact(spec) => artifacts.push(spec),
        }
    }
    out.history.habits = habits;
    let history = (out.history != HistorySpec::default()).then_some(out.history);
    SceneFile {
        version: SCENE_VERSION,
        name: name.to_owned(),
        description: String::new(),
        config: out.config,
        principals,
        // A saved world writes every principal out, members of populations too.
        populations: Vec::new(),
        artifacts,
        interventions: out.interventions,
        history,
    }
}

/// Seconds from `now` to `t` (a time already past is zero).
fn shifted(t: SimTime, now: SimTime) -> f64 {
    t.millis().saturating_sub(now.millis()) as f64 / 1000.0
}

// ----- the world's resources -----

impl SaveResource for SimClock {
    /// The saved scene starts at zero: now.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        out.now = self.now();
    }
}

impl SaveResource for SimRng {
    /// Not kept: the new start draws from its seed afresh.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for Config {
    fn save(&self, world: &World, out: &mut SavedWorld) {
        // The mint's LLM budget (what is left of it to pay its scorer) starts the new world.
        let mint_budget = crate::world::ids::lookup(world, crate::economy::services::MINT_ID)
            .and_then(|e| world.get::<Standing>(e))
            .map_or(0, Standing::llm_budget_micro_usd);
        out.config = config_spec(self, mint_budget);
    }
}

impl SaveResource for Supply {
    /// Where the scrip came from: what the mint and grants created is history; the
    /// rest counts as initial.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        out.history.minted = self.minted();
        out.history.granted = self.granted();
    }
}

impl SaveResource for Held {
    /// Nothing of its own: bids are kept with the mint's records, rewards of
    /// unsettled tasks go back to their posters.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for InvocationStats {
    fn save(&self, _: &World, out: &mut SavedWorld) {
        out.history.invocations = self.iter().map(|(id, count)| (id.to_string(), *count)).collect();
    }
}

impl SaveResource for Activity {
    fn save(&self, world: &World, out: &mut SavedWorld) {
        out.history.counts = CountsSpec {
            scrip_moved: self.scrip_moved,
            freezes: self.freezes,
            thaws: self.thaws,
            rescues: self.rescues,
        };
        out.history.calls = self
            .calls()
            .iter()
            .map(|(caller, callees)| (caller.to_string(), callees.iter().map(ToString::to_string).collect()))
            .collect();
        out.history.met = self.pairs(world).into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    }
}

impl SaveResource for Mint {
    /// Sealed bids (held from the start, in the order placed), what it has scored,
    /// and the next resolution in its place on the shifted clock.
    fn save(&self, world: &World, out: &mut SavedWorld) {
        out.history.bids = self
            .bids_in_order()
            .map(|(bidder, artifact, amount)| BidSpec {
                bidder: bidder.to_string(),
                artifact: artifact.to_string(),
                amount,
            })
            .collect();
        out.history.scored = self.scored_hex();
        let config = &world.resource::<Config>().mint;
        if let Some(mint) = out.config.mint.as_mut() {
            mint.first_at_secs = Some(shifted(self.next_at(config), out.now));
        }
    }
}

impl SaveResource for Escrow {
    /// Not kept: listed artifacts go back to their sellers.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        out.sellers = self.listings().map(|(artifact, listing)| (artifact.clone(), listing.seller.clone())).collect();
    }
}

impl SaveResource for Debts {
    /// Nothing of its own: the due-time index is rebuilt from the notes.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for Governance {
    /// Not kept: open proposals are votes of a run, not holdings.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for TaskBoard {
    /// Not kept: the rewards of unsettled tasks go back to their posters.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        for (poster, reward) in self.held_by() {
            *out.refunds.entry(poster.clone()).or_default() += reward;
        }
    }
}

impl SaveResource for Locks {
    /// Not kept: locks are promises about a run, not holdings.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for Kpis {
    /// Where the indicators' current window began, so the rolling ones go on.
    fn save(&self, world: &World, out: &mut SavedWorld) {
        let window = world.resource::<Config>().kpis.window;
        let (scrip_moved, freezes, thaws) = self.window_start(out.now, window);
        out.history.window_start = CountsSpec { scrip_moved, freezes, thaws, rescues: 0 };
    }
}

impl SaveResource for Timeline {
    /// The interventions still to come, shifted so that now is zero.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        let now = out.now;
        out.interventions = self
            .pending()
            .map(|scheduled| {
                let at = shifted(scheduled.at, now);
                match &scheduled.act {
                    InterventionAct::As { actor, action } => InterventionSpec {
                        at,
                        actor: Some(actor.to_string()),
                        action: Some(action.clone()),
                        system: None,
                    },
                    InterventionAct::System(act) => {
                        InterventionSpec { at, actor: None, action: None, system: Some(act.clone()) }
                    }
                }
            })
            .collect();
    }
}

impl SaveResource for Thoughts {
    /// Not kept: calls to models in flight; their reservations go back to the payers.
    fn save(&self, _: &World, out: &mut SavedWorld) {
        out.reserved = self.reserved_by();
    }
}

impl SaveResource for CapabilityRequests {
    /// Not kept: requests still waiting (their principals ask again); grants are kept
    /// with their holders.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for McpCalls {
    /// Not kept: calls to MCP servers in flight cost nothing until they settle.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for LlmBridge {
    /// Not the world's: the recording's request counts.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for McpBridge {
    /// Not the world's: the recording's request counts.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

impl SaveResource for EventLog {
    /// Not kept: a saved scene is a start; the history that matters is in `history`.
    fn save(&self, _: &World, _: &mut SavedWorld) {}
}

// ----- the parts of entities -----

impl SavePart for System {
    /// The world's own machinery is in every world and never saved.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Artifact {
    /// Its owner (a listed artifact's seller), content, description and metadata.
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        let owner = out.world.sellers.get(&out.id).unwrap_or(self.owner());
        out.owner = Some(owner.clone());
        out.parts.content = (!self.content().is_empty()).then(|| self.content().to_owned());
        out.parts.description = self.description().to_owned();
        out.parts.metadata = self.metadata().cloned().unwrap_or_default();
    }
}

impl SavePart for CreatedBy {
    /// Not kept: who created an artifact is informational; the scene names its owner.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Standing {
    /// Its holdings, with refunds and reservations given back.
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        let refund = out.world.refunds.get(&out.id).copied().unwrap_or(0);
        let budget = self.llm_budget_micro_usd().saturating_add(out.world.reserved.get(&out.id).copied().unwrap_or(0));
        out.principal = Some(PrincipalSpec {
            scrip: Some(self.scrip().saturating_add(refund)),
            llm_budget_usd: as_usd(budget),
            llm_budget_micro_usd: as_micro(budget),
            disk_bytes: Some(self.disk_quota()),
            resources: self.stocks().map(|(k, v)| (k.to_string(), v)).collect(),
            ..PrincipalSpec::default()
        });
    }
}

impl SavePart for Quota {
    /// The limits where it differs from the scene's defaults.
    fn save(&self, world: &World, _: Entity, out: &mut SavedEntity) {
        out.quota = quota_overrides(world.resource::<Config>(), self);
    }
}

impl SavePart for LastAction {
    /// Not kept: heartbeats start afresh.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Usage {
    /// Not kept: rate windows start empty.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Executable {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.parts.code = Some(self.code().to_owned());
    }
}

impl SavePart for Imports {
    /// Found again in the code when the scene is loaded.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Interface {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.parts.interface = Some(self.clone());
    }
}

impl SavePart for AccessContract {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.parts.contract = Some(self.id().to_string());
    }
}

impl SavePart for Pricing {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.parts.pricing = Some(*self);
    }
}

impl SavePart for Loop {
    /// That it is an agent, and its interval (it wakes at the start).
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.agent = Some(self.interval().as_secs_f64());
    }
}

impl SavePart for Inbox {
    /// Not kept: results of a run's intents.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Capabilities {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.capabilities = self.iter().map(str::to_owned).collect();
    }
}

impl SavePart for ModelChoice {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.model = Some(self.model().to_owned());
    }
}

impl SavePart for Thinking {
    /// Not kept: the call in flight is not carried over (its reservation is given back).
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Tombstone {
    /// A tombstone keeps the id taken; nothing else of the artifact remains.
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.deleted = true;
    }
}

impl SavePart for Frozen {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.frozen = true;
    }
}

impl SavePart for Service {
    /// Services are the world's own (never saved).
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Habits {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.habits = Some(self.by_habit().filter(|(_, n)| *n > 0).collect());
    }
}

impl SavePart for Debt {
    /// The note's terms, its times shifted.
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.debt = Some(debt_spec(self, out.world.now));
    }
}

impl SavePart for Commons {
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.commons = Some(CommonsSpec {
            members: self.members.iter().map(ToString::to_string).collect(),
            quorum_pct: self.quorum_pct,
            threshold_pct: self.threshold_pct,
        });
    }
}

impl SavePart for McpGateway {
    /// Gateways are the world's own (made again from the configuration).
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

impl SavePart for Grants {
    /// Granted capabilities, each with what is left to spend through it.
    fn save(&self, _: &World, _: Entity, out: &mut SavedEntity) {
        out.grants = self
            .iter()
            .map(|(capability, grant)| (capability.to_owned(), grant.limit.map(|_| grant.remaining())))
            .collect();
    }
}

impl SavePart for Subscriptions {
    /// Not kept: standing orders of a run; agents subscribe again.
    fn save(&self, _: &World, _: Entity, _: &mut SavedEntity) {}
}

/// A note's terms with its times shifted so that `now` is zero (a time already past
/// becomes zero).
fn debt_spec(debt: &Debt, now: SimTime) -> DebtSpec {
    let shifted = |t: SimTime| shifted(t, now);
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

/// The quota entries where a principal differs from the scene's defaults.
fn quota_overrides(config: &Config, quota: &Quota) -> BTreeMap<String, Option<u64>> {
    let defaults = &config.defaults.quota;
    let own = quota.limits();
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
/// Writes into `spec` the model `llm` thinks with by default, its price and where it
/// is served, when they differ from the presets: a scene's own section with the
/// command line's `--llm-model`/`--llm-endpoint` made part of it.
pub(crate) fn put_default_model(llm: &LlmConfig, spec: &mut LlmSpec) {
    let Some(name) = &llm.default_model else { return };
    let mut full = llm_spec(llm, 0);
    spec.default_model = Some(name.clone());
    if let Some(model) = full.models.remove(name) {
        if let Some(endpoint) = full.endpoints.remove(&model.endpoint) {
            spec.endpoints.insert(model.endpoint.clone(), endpoint);
        }
        spec.models.insert(name.clone(), model);
    }
}

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
                max_concurrency: e.max_concurrency,
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
                notional: m.notional,
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
        contract_timeout_secs: Some(sandbox.contract_timeout_ms as f64 / 1000.0),
        contract_caller_cpu_us: Some(sandbox.contract_caller_cpu_us),
        recursion: Some(sandbox.recursion),
        result_kb: Some(sandbox.result_bytes / 1024),
        instructions_per_cpu_us: Some(sandbox.instructions_per_cpu_us),
        max_depth: Some(sandbox.max_depth),
        max_contract_depth: Some(sandbox.max_contract_depth),
        epoch_secs: Some(sandbox.epoch_ms as f64 / 1000.0),
    }
}
