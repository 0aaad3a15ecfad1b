//! From what a scene file says to a world that can be spawned.
//!
//! Validation resolves every reference (owners, `as` principals, contracts, files),
//! converts units (seconds to [`SimTime`], dollars to micro-dollars), applies the
//! defaults of SPEC §2 and checks the invariants the kernel relies on (unique valid
//! ids, executables with interfaces, disk allocations that cover what each principal
//! owns). The first problem found is reported with its path and position.

mod llm;
mod mcp;
use crate::world::components::Limits;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use super::{
    Scene, SceneError,
    error::{Anchor, SceneWarning, locate},
    raw::{
        CommonsSpec, ConfigSpec, DebtSpec, HistorySpec, InterventionSpec, MintSpec, PartsRef, PopulationSpec,
        PrincipalSpec, SCENE_VERSION, SandboxSpec,
    },
    timeline::{InterventionAct, ScheduledIntervention},
};
use crate::kernel::Quota;
use crate::{
    economy::{
        debt::{Debt, DebtStatus},
        governance::Commons,
    },
    kernel::{Action, InvocationCount, KERNEL_ID, activity::Habit, contracts::BuiltinContract},
    sandbox::SandboxConfig,
    world::{
        components::{Interface, Metadata, Pricing, Service, stored_bytes},
        config::{BUILTIN_ALLOCATIONS, BUILTIN_RATES, Config, FreezeRule, MintConfig, PrincipalDefaults},
        ids::ArtifactId,
        rng::SimRng,
        time::SimTime,
    },
};

/// A scene that passed validation: everything resolved, typed and checked.
#[derive(Debug, Clone)]
pub struct ValidScene {
    pub name: String,
    pub config: Config,
    pub principals: Vec<ValidPrincipal>,
    pub artifacts: Vec<ValidArtifact>,
    /// In time order.
    pub interventions: Vec<ScheduledIntervention>,
    /// What a saved world carried over from its run.
    pub history: Option<ValidHistory>,
    /// Probable mistakes that do not stop the scene from running.
    pub warnings: Vec<SceneWarning>,
}

#[derive(Debug, Clone)]
pub struct ValidPrincipal {
    pub id: ArtifactId,
    pub owner: ArtifactId,
    pub scrip: u64,
    pub llm_budget_micro_usd: u64,
    pub disk_bytes: u64,
    pub stocks: BTreeMap<Arc<str>, u64>,
    pub quota: Limits,
    pub capabilities: BTreeSet<String>,
    pub grants: BTreeMap<String, Option<u64>>,
    /// The model it thinks with by default.
    pub model: Option<String>,
    /// An agent's interval between steps; `None` for a principal without a loop.
    pub agent: Option<SimTime>,
    pub frozen: bool,
    pub commons: Option<Commons>,
    pub parts: ValidParts,
}

#[derive(Debug, Clone)]
pub struct ValidArtifact {
    pub id: ArtifactId,
    pub owner: ArtifactId,
    pub deleted: bool,
    pub capabilities: BTreeSet<String>,
    pub grants: BTreeMap<String, Option<u64>>,
    pub debt: Option<Debt>,
    pub parts: ValidParts,
}

/// A saved world's history (see [`HistorySpec`]), checked against the scene.
#[derive(Debug, Clone, Default)]
pub struct ValidHistory {
    pub minted: u64,
    pub granted: u64,
    /// (bidder, artifact, amount), in the order placed.
    pub bids: Vec<(ArtifactId, ArtifactId, u64)>,
    pub scored: BTreeSet<u128>,
    pub invocations: BTreeMap<ArtifactId, InvocationCount>,
    pub calls: BTreeMap<ArtifactId, BTreeSet<ArtifactId>>,
    pub met: Vec<(ArtifactId, ArtifactId)>,
    pub habits: BTreeMap<ArtifactId, BTreeMap<Habit, u32>>,
    /// Scrip moved, freezes, thaws, rescues.
    pub counts: (u64, u64, u64, u64),
    /// Scrip moved, freezes, thaws when the indicators' window began.
    pub window_start: (u64, u64, u64),
}

impl ValidHistory {
    /// Scrip held for the bids.
    pub fn held(&self) -> u64 {
        self.bids.iter().map(|(_, _, amount)| amount).sum()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ValidParts {
    pub content: String,
    pub description: String,
    pub metadata: Metadata,
    /// Shared by the members of a population.
    pub code: Option<Arc<str>>,
    pub interface: Option<Interface>,
    /// `None`: freeware.
    pub contract: Option<ArtifactId>,
    pub pricing: Option<Pricing>,
    /// What the code imports, with the bytes charged for each (its code's length).
    pub imports: BTreeMap<ArtifactId, u64>,
}

impl ValidParts {
    /// Disk bytes: everything the artifact stores (see [`stored_bytes`]) and the
    /// bytes charged for its imports.
    pub fn bytes(&self) -> u64 {
        stored_bytes(&self.content, self.code.as_deref(), &self.description, &self.metadata, self.interface.as_ref())
            + self.imports.values().sum::<u64>()
    }
}

/// Resource names the kernel reserves.
const RESERVED_RESOURCES: &[&str] =
    &["scrip", "llm_budget", "disk", "memory", "cpu", "llm_tokens", "llm_calls", "mcp_calls", "actions"];

struct Checker<'a> {
    scene: &'a Scene,
    /// Ids of the scene's artifacts with code: what a contract may name besides the
    /// built-in ones.
    executables: HashSet<&'a str>,
}

impl Checker<'_> {
    /// An error at `path`, located by searching for `anchors` in the source.
    fn err(&self, path: impl Into<String>, anchors: &[Anchor], message: impl Into<String>) -> SceneError {
        let at = self.scene.source().and_then(|source| locate(source, anchors));
        SceneError::Invalid { file: self.scene.name().to_owned(), at, path: path.into(), message: message.into() }
    }

    /// The population and member number (from 1) of principal `index`, counting
    /// the scene's own entries first; `None` for one of its own entries.
    fn member(&self, index: usize) -> Option<(usize, u64)> {
        let file = self.scene.file();
        let mut rest = index.checked_sub(file.principals.len())? as u64;
        for (k, population) in file.populations.iter().enumerate() {
            if rest < population.count {
                return Some((k, rest + 1));
            }
            rest -= population.count;
        }
        None
    }

    /// Anchors that find entry `index` of `section` (for a member of a population,
    /// the population's entry and in its template `field`).
    fn entry(&self, section: &str, index: usize, id: &str, field: Option<&str>) -> Vec<Anchor> {
        match self.member(index).filter(|_| section == "principals") {
            Some((k, _)) => {
                let mut anchors = vec![Anchor::from("populations:"), Anchor::Nth("id:", k + 1)];
                if let Some(field) = field {
                    anchors.extend([Anchor::from("template:"), Anchor::from(field)]);
                }
                anchors
            }
            None => entry(section, index, id, field),
        }
    }

    /// The path of `field` (or, given "", the whole entry) of entry `index` of
    /// `section`, as errors name it.
    fn path(&self, section: &str, index: usize, id: &str, field: &str) -> String {
        match self.member(index).filter(|_| section == "principals") {
            Some((k, n)) if field.is_empty() => format!("populations[{k}] member {n} ({id})"),
            Some((k, n)) => format!("populations[{k}] member {n} ({id}).{field}"),
            None if field.is_empty() => format!("{section}[{index}] ({id})"),
            None => format!("{section}[{index}] ({id}).{field}"),
        }
    }

    /// A warning at `path`, located like an error.
    fn warn(&self, path: impl Into<String>, anchors: &[Anchor], message: impl Into<String>) -> SceneWarning {
        let at = self.scene.source().and_then(|source| locate(source, anchors));
        SceneWarning { file: self.scene.name().to_owned(), at, path: path.into(), message: message.into() }
    }
}

/// Capability names: lowercase letters, digits and `_`.
fn check_capabilities(
    check: &Checker,
    capabilities: &[String],
    path: &dyn Fn(&str) -> String,
    anchors: &dyn Fn(&str) -> Vec<Anchor>,
) -> Result<(), SceneError> {
    for capability in capabilities {
        if !valid_name(capability) {
            return Err(check.err(
                path("capabilities"),
                &anchors(&quoted(capability)),
                format!("{capability:?} is not a capability name (lowercase letters, digits, _)"),
            ));
        }
    }
    Ok(())
}

/// Grants carried over from a saved world: capabilities this world lets be asked for,
/// each with something left to spend.
fn check_grants(
    check: &Checker,
    config: &Config,
    grants: &BTreeMap<String, Option<u64>>,
    path: &dyn Fn(&str) -> String,
    anchors: &dyn Fn(&str) -> Vec<Anchor>,
) -> Result<(), SceneError> {
    if grants.is_empty() {
        return Ok(());
    }
    let known = crate::economy::capabilities::requestable(config);
    for (capability, limit) in grants {
        if !known.contains(capability) {
            return Err(check.err(
                path("grants"),
                &anchors(&quoted(capability)),
                format!(
                    "{capability:?} cannot be granted in this world (these can: {}; declare others in \
                     config.capabilities.grantable)",
                    known.join(", ")
                ),
            ));
        }
        if *limit == Some(0) {
            return Err(check.err(
                path("grants"),
                &anchors(&quoted(capability)),
                format!("the grant of {capability:?} has nothing left to spend; leave it out"),
            ));
        }
    }
    Ok(())
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn usd_to_micro(usd: f64) -> Option<u64> {
    let micro = (usd * 1_000_000.0).round();
    (usd.is_finite() && (0.0..9.0e18).contains(&micro)).then_some(micro as u64)
}

pub(super) fn validate(scene: &Scene) -> Result<ValidScene, SceneError> {
    let file = scene.file();
    let has_code = |code: &Option<String>, code_file: &Option<String>| code.is_some() || code_file.is_some();
    let executables = file
        .principals
        .iter()
        .filter(|p| has_code(&p.code, &p.code_file))
        .map(|p| p.id.as_str())
        .chain(file.artifacts.iter().filter(|a| !a.deleted && has_code(&a.code, &a.code_file)).map(|a| a.id.as_str()))
        .collect();
    let check = Checker { scene, executables };
    if file.version != SCENE_VERSION {
        return Err(check.err(
            "version",
            &["version:".into()],
            format!("this build reads scene version {SCENE_VERSION}, not {}", file.version),
        ));
    }
    let config = validate_config(&check, &file.config)?;

    // Every id, principal or not, in one namespace, with the world's own reserved.
    let mut taken: HashSet<String> = BuiltinContract::ALL.iter().map(|c| c.id().to_owned()).collect();
    taken.insert(KERNEL_ID.to_owned());
    taken.extend(Service::ALL.iter().map(|s| s.id().to_owned()));
    taken.insert(crate::economy::services::HANDBOOK_ID.to_owned());
    let gateways: HashSet<String> =
        config.mcp.servers.keys().map(|name| crate::kernel::mcp::gateway_id(name)).collect();
    taken.extend(gateways.iter().cloned());
    // The world's own artifacts: a saved world's history may name them.
    let world_ids = taken.clone();
    let members = population_ids(&check)?;
    let principal_ids: HashSet<&str> =
        file.principals.iter().map(|p| p.id.as_str()).chain(members.iter().flatten().map(String::as_str)).collect();
    let mut id_of = |section: &str, index: usize, id: &str| -> Result<ArtifactId, SceneError> {
        let path = || check.path(section, index, id, "id");
        let anchors = || check.entry(section, index, id, None);
        let parsed = ArtifactId::parse(id).map_err(|e| check.err(path(), &anchors(), e.to_string()))?;
        if !taken.insert(id.to_owned()) {
            let why = if BuiltinContract::from_id(id).is_some()
                || id == KERNEL_ID
                || Service::from_id(id).is_some()
                || id == crate::economy::services::HANDBOOK_ID
                || gateways.contains(id)
            {
                "is reserved by the world"
            } else {
                "appears twice"
            };
            return Err(check.err(path(), &anchors(), format!("id {id:?} {why}")));
        }
        Ok(parsed)
    };

    let mut principals = Vec::with_capacity(file.principals.len() + members.iter().map(Vec::len).sum::<usize>());
    for (i, p) in file.principals.iter().enumerate() {
        let id = id_of("principals", i, &p.id)?;
        principals.push(validate_principal(&check, &config, p, i, id, &principal_ids)?);
    }
    for (k, (population, ids)) in file.populations.iter().zip(&members).enumerate() {
        let at = |what: &str| vec![Anchor::from("populations:"), Anchor::Nth("id:", k + 1), Anchor::from(what)];
        if !population.template.id.is_empty() {
            return Err(check.err(
                format!("populations[{k}].template.id"),
                &at("template:"),
                "a template has no id: the population's id pattern names its members",
            ));
        }
        let mut draws = Variation::new(&check, k, population, config.seed, &at)?;
        // The template is checked once, as the first member; the others are copies.
        let mut template: Option<ValidPrincipal> = None;
        for id in ids {
            let id = id_of("principals", principals.len(), id)?;
            let mut member = match &template {
                Some(template) => ValidPrincipal {
                    owner: if population.template.owner.is_none() { id.clone() } else { template.owner.clone() },
                    id,
                    ..template.clone()
                },
                None => {
                    let first = validate_principal(
                        &check,
                        &config,
                        &population.template,
                        principals.len(),
                        id,
                        &principal_ids,
                    )?;
                    template.insert(first).clone()
                }
            };
            draws.apply(&mut member);
            principals.push(member);
        }
    }

    let mut artifacts = Vec::with_capacity(file.artifacts.len());
    for (i, a) in file.artifacts.iter().enumerate() {
        let id = id_of("artifacts", i, &a.id)?;
        let anchors = |field: &str| entry("artifacts", i, &a.id, Some(field));
        if !principal_ids.contains(a.owner.as_str()) {
            return Err(check.err(
                format!("artifacts[{i}] ({}).owner", a.id),
                &anchors("owner"),
                format!("{:?} is not a principal of this scene", a.owner),
            ));
        }
        let parts = validate_parts(&check, "artifacts", i, &a.id, a.parts())?;
        let path = |field: &str| format!("artifacts[{i}] ({}).{field}", a.id);
        check_capabilities(&check, &a.capabilities, &path, &anchors)?;
        if !a.capabilities.is_empty() && parts.code.is_none() {
            return Err(check.err(path("capabilities"), &anchors("capabilities"), "only code has capabilities"));
        }
        check_grants(&check, &config, &a.grants, &path, &anchors)?;
        if a.deleted && (parts.bytes() > 0 || parts.interface.is_some()) {
            return Err(check.err(
                format!("artifacts[{i}] ({}).deleted", a.id),
                &anchors("deleted"),
                "a deleted artifact keeps only its id and owner",
            ));
        }
        let debt = match &a.debt {
            None => None,
            Some(_) if a.deleted => {
                return Err(check.err(
                    format!("artifacts[{i}] ({}).debt", a.id),
                    &anchors("debt"),
                    "a deleted artifact keeps only its id and owner",
                ));
            }
            Some(spec) => {
                let path = |field: &str| format!("artifacts[{i}] ({}).{field}", a.id);
                Some(validate_debt(&check, spec, &principal_ids, &path, &anchors)?)
            }
        };
        let capabilities = a.capabilities.iter().cloned().collect();
        artifacts.push(ValidArtifact {
            id,
            owner: ArtifactId::trusted(&a.owner),
            deleted: a.deleted,
            capabilities,
            grants: a.grants.clone(),
            debt,
            parts,
        });
    }

    let mut warnings = Vec::new();
    resolve_imports(&check, &mut principals, &mut artifacts, &mut warnings)?;
    check_disk(&check, &principals, &artifacts)?;
    let interventions = validate_interventions(&check, &file.interventions, &principal_ids, &mut warnings)?;
    let history = match &file.history {
        Some(history) => Some(validate_history(&check, history, &principals, &artifacts, &world_ids)?),
        None => None,
    };

    let name = if file.name.is_empty() { scene.name().to_owned() } else { file.name.clone() };
    Ok(ValidScene { name, config, principals, artifacts, interventions, history, warnings })
}

/// The most principals all populations of a scene may make together.
pub const MAX_POPULATION: u64 = 1_000_000;

/// The ids of every population's members, from its pattern.
fn population_ids(check: &Checker) -> Result<Vec<Vec<String>>, SceneError> {
    let mut total = 0u64;
    let mut out = Vec::new();
    for (k, population) in check.scene.file().populations.iter().enumerate() {
        let at = || vec![Anchor::from("populations:"), Anchor::Nth("id:", k + 1)];
        let path = || format!("populations[{k}].id");
        let pattern = &population.id;
        let (before, width, after) = split_pattern(pattern).ok_or_else(|| {
            check.err(
                path(),
                &at(),
                format!(
                    "{pattern:?} needs one {{n}} (or {{n:05}} for zero-padded numbers) where each member's number goes"
                ),
            )
        })?;
        total = total.saturating_add(population.count);
        if population.count == 0 || total > MAX_POPULATION {
            return Err(check.err(
                format!("populations[{k}].count"),
                &[at(), vec![Anchor::from("count:")]].concat(),
                format!(
                    "a population has 1 to {MAX_POPULATION} members (all populations together), not {}",
                    population.count
                ),
            ));
        }
        out.push((1..=population.count).map(|n| format!("{before}{n:0width$}{after}")).collect());
    }
    Ok(out)
}

/// `before{n}after` or `before{n:0W}after` → (before, W, after).
fn split_pattern(pattern: &str) -> Option<(&str, usize, &str)> {
    let open = pattern.find("{n")?;
    let close = open + pattern[open..].find('}')?;
    let (before, inner, after) = (&pattern[..open], &pattern[open + 2..close], &pattern[close + 1..]);
    if after.contains('{') || after.contains('}') || before.contains('{') || before.contains('}') {
        return None;
    }
    let width = match inner {
        "" => 0,
        _ => inner.strip_prefix(":0")?.parse::<usize>().ok().filter(|w| (1..=20).contains(w))?,
    };
    Some((before, width, after))
}

/// What a population varies among its members, and the stream it draws from.
struct Variation {
    rng: SimRng,
    ranges: Vec<(Varied, f64, f64)>,
}

#[derive(Clone, Copy)]
enum Varied {
    Scrip,
    DiskBytes,
    LlmBudgetUsd,
    IntervalSecs,
}

impl Variation {
    fn new(
        check: &Checker,
        k: usize,
        population: &PopulationSpec,
        scene_seed: u64,
        at: &dyn Fn(&str) -> Vec<Anchor>,
    ) -> Result<Self, SceneError> {
        let mut ranges = Vec::new();
        for (name, range) in &population.vary {
            let fail = |message: String| {
                let mut anchors = at("vary:");
                anchors.push(Anchor::Text(quoted(name)));
                check.err(format!("populations[{k}].vary.{name}"), &anchors, message)
            };
            let field = match name.as_str() {
                "scrip" => Varied::Scrip,
                "disk_bytes" => Varied::DiskBytes,
                "llm_budget_usd" => Varied::LlmBudgetUsd,
                "interval_secs" if population.template.agent => Varied::IntervalSecs,
                "interval_secs" => return Err(fail("only agents have an interval".into())),
                _ => {
                    return Err(fail(format!(
                        "{name:?} cannot vary; these can: scrip, disk_bytes, llm_budget_usd, interval_secs"
                    )));
                }
            };
            let (min, max) = (range.min, range.max);
            let positive = matches!(field, Varied::IntervalSecs);
            if !(min.is_finite() && max.is_finite() && min <= max && min >= 0.0 && max < 9.0e15)
                || (positive && min <= 0.0)
            {
                return Err(fail(format!(
                    "({min}, {max}) is not a range: min <= max, both {} and finite",
                    if positive { "above 0" } else { "0 or more" }
                )));
            }
            ranges.push((field, min, max));
        }
        let seed = population.seed.unwrap_or(scene_seed) ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Ok(Self { rng: SimRng::from_seed(seed), ranges })
    }

    fn apply(&mut self, member: &mut ValidPrincipal) {
        for &(field, min, max) in &self.ranges {
            let whole = |rng: &mut SimRng| {
                let (low, high) = (min.ceil() as u64, max.floor() as u64);
                if high <= low { low } else { low + rng.below(high - low + 1) }
            };
            let real = |rng: &mut SimRng| min + (max - min) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64);
            match field {
                Varied::Scrip => member.scrip = whole(&mut self.rng),
                Varied::DiskBytes => member.disk_bytes = whole(&mut self.rng),
                Varied::LlmBudgetUsd => {
                    member.llm_budget_micro_usd = (real(&mut self.rng) * 1_000_000.0).round() as u64
                }
                Varied::IntervalSecs => {
                    let secs = real(&mut self.rng);
                    member.agent = Some(SimTime::from_millis(((secs * 1000.0).round() as u64).max(1)));
                }
            }
        }
    }
}

/// Checks one principal entry (`p`, the `i`-th principal of the scene, whose id is
/// `id`: its own, or a population member's).
fn validate_principal(
    check: &Checker,
    config: &Config,
    p: &PrincipalSpec,
    i: usize,
    id: ArtifactId,
    principal_ids: &HashSet<&str>,
) -> Result<ValidPrincipal, SceneError> {
    let path = |field: &str| check.path("principals", i, id.as_str(), field);
    let anchors = |field: &str| check.entry("principals", i, id.as_str(), Some(field));
    let owner = match &p.owner {
        None => id.clone(),
        // The owner may come later in the list, its id not yet checked.
        Some(owner) if principal_ids.contains(owner.as_str()) => {
            ArtifactId::parse(owner).map_err(|e| check.err(path("owner"), &anchors("owner"), e.to_string()))?
        }
        Some(owner) => {
            return Err(check.err(
                path("owner"),
                &anchors("owner"),
                format!("{owner:?} is not a principal of this scene"),
            ));
        }
    };
    let defaults = &config.defaults;
    let llm_budget_micro_usd = budget(check, p.llm_budget_usd, p.llm_budget_micro_usd, &path, &anchors)?
        .unwrap_or(defaults.llm_budget_micro_usd);
    let mut stocks: BTreeMap<Arc<str>, u64> = config.stock_resources.clone();
    for (name, amount) in &p.resources {
        let Some((key, _)) = config.stock_resources.get_key_value(name.as_str()) else {
            return Err(check.err(
                path("resources"),
                &anchors(&quoted(name)),
                format!("{name:?} is not a resource of this scene; declare it in config.resources"),
            ));
        };
        stocks.insert(key.clone(), *amount);
    }
    // Shares the defaults unless this principal overrides them.
    let mut quota = Quota::new(defaults.quota.clone());
    for (name, limit) in &p.quota {
        if !config.is_quota(name) {
            return Err(check.err(path("quota"), &anchors(&quoted(name)), unknown_rate(&config, name)));
        }
        quota = quota.with_limit(&Arc::from(name.as_str()), *limit);
    }
    let quota = quota.shared().clone();
    check_capabilities(check, &p.capabilities, &path, &anchors)?;
    check_grants(check, &config, &p.grants, &path, &anchors)?;
    if let Some(model) = &p.model {
        config.llm.model(Some(model)).map_err(|why| check.err(path("model"), &anchors("model"), why))?;
    }
    let parts = validate_parts(check, "principals", i, id.as_str(), p.parts())?;
    if p.agent && parts.code.is_none() {
        return Err(check.err(path("agent"), &anchors("agent"), "an agent needs code: its loop runs it"));
    }
    let agent = match (p.agent, p.interval_secs) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(check.err(path("interval_secs"), &anchors("interval_secs"), "only an agent has an interval"));
        }
        (true, None) => Some(config.dt),
        (true, Some(secs)) => Some(SimTime::from_secs_f64(secs).filter(|t| t.millis() > 0).ok_or_else(|| {
            check.err(
                path("interval_secs"),
                &anchors("interval_secs"),
                format!("{secs} is not an interval (seconds > 0)"),
            )
        })?),
    };
    let commons = match &p.commons {
        None => None,
        Some(spec) => Some(validate_commons(check, spec, principal_ids, &path, &anchors)?),
    };
    Ok(ValidPrincipal {
        id,
        owner,
        scrip: p.scrip.unwrap_or(defaults.scrip),
        llm_budget_micro_usd,
        disk_bytes: p.disk_bytes.unwrap_or(defaults.disk_bytes),
        stocks,
        quota,
        capabilities: p.capabilities.iter().cloned().collect(),
        grants: p.grants.clone(),
        model: p.model.clone(),
        agent,
        frozen: p.frozen,
        commons,
        parts,
    })
}

/// Checks a saved world's history against the scene: every id it names is declared,
/// every bid is its bidder's on an artifact the bidder owns, the fingerprints are
/// fingerprints, and no more scrip was created than there is.
fn validate_history(
    check: &Checker,
    history: &HistorySpec,
    principals: &[ValidPrincipal],
    artifacts: &[ValidArtifact],
    world_ids: &HashSet<String>,
) -> Result<ValidHistory, SceneError> {
    let at = |field: &str| vec![Anchor::from("history:"), Anchor::Text(format!("{field}:"))];
    let err = |field: &str, message: String| check.err(format!("history.{field}"), &at(field), message);
    let owners: HashMap<&str, (&ArtifactId, bool)> = principals
        .iter()
        .map(|p| (p.id.as_str(), (&p.owner, false)))
        .chain(artifacts.iter().map(|a| (a.id.as_str(), (&a.owner, a.deleted))))
        .collect();
    let known = |field: &str, id: &str| -> Result<ArtifactId, SceneError> {
        if owners.contains_key(id) || world_ids.contains(id) {
            Ok(ArtifactId::trusted(id))
        } else {
            Err(err(field, format!("{id:?} is not in this scene")))
        }
    };
    let is_principal = |id: &str| principals.iter().any(|p| p.id == id);
    let mut bids = Vec::with_capacity(history.bids.len());
    let mut seen = HashSet::new();
    for bid in &history.bids {
        let bidder = known("bids", &bid.bidder)?;
        let artifact = known("bids", &bid.artifact)?;
        if !is_principal(&bid.bidder) {
            return Err(err("bids", format!("{} is not a principal: only principals bid", bid.bidder)));
        }
        let (owner, deleted) = owners[bid.artifact.as_str()];
        if *owner != bidder || deleted {
            return Err(err(
                "bids",
                format!("{} does not own {} (a bid is on one's own artifact)", bid.bidder, bid.artifact),
            ));
        }
        if bid.amount == 0 {
            return Err(err(
                "bids",
                format!("the bid of {} on {} is 0; a bid is at least 1", bid.bidder, bid.artifact),
            ));
        }
        if !seen.insert((bid.bidder.as_str(), bid.artifact.as_str())) {
            return Err(err("bids", format!("{} bids on {} twice", bid.bidder, bid.artifact)));
        }
        bids.push((bidder, artifact, bid.amount));
    }
    let mut scored = BTreeSet::new();
    for hex in &history.scored {
        let fingerprint = u128::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == 32)
            .ok_or_else(|| err("scored", format!("{hex:?} is not a fingerprint (32 hex digits)")))?;
        scored.insert(fingerprint);
    }
    let mut invocations = BTreeMap::new();
    for (id, count) in &history.invocations {
        invocations.insert(known("invocations", id)?, *count);
    }
    let mut calls = BTreeMap::new();
    for (caller, callees) in &history.calls {
        let callees = callees.iter().map(|c| known("calls", c)).collect::<Result<BTreeSet<_>, _>>()?;
        calls.insert(known("calls", caller)?, callees);
    }
    let mut met = Vec::with_capacity(history.met.len());
    for (a, b) in &history.met {
        let (a, b) = (known("met", a)?, known("met", b)?);
        if !is_principal(a.as_str()) || !is_principal(b.as_str()) {
            return Err(err("met", format!("{a} and {b} are not both principals")));
        }
        met.push((a, b));
    }
    let mut habits = BTreeMap::new();
    for (id, counts) in &history.habits {
        if !is_principal(id) {
            return Err(err("habits", format!("{id:?} is not a principal of this scene")));
        }
        habits.insert(ArtifactId::trusted(id), counts.clone());
    }
    let valid = ValidHistory {
        minted: history.minted,
        granted: history.granted,
        bids,
        scored,
        invocations,
        calls,
        met,
        habits,
        counts: (history.counts.scrip_moved, history.counts.freezes, history.counts.thaws, history.counts.rescues),
        window_start: (history.window_start.scrip_moved, history.window_start.freezes, history.window_start.thaws),
    };
    let exists = principals.iter().map(|p| p.scrip).sum::<u64>() + valid.held();
    if history.minted.saturating_add(history.granted) > exists {
        return Err(err(
            "minted",
            format!(
                "{} scrip minted and {} granted is more than the {exists} there is",
                history.minted, history.granted
            ),
        ));
    }
    Ok(valid)
}

/// A debt note's terms: parties of this scene, a term, and a state that adds up.
fn validate_debt(
    check: &Checker,
    spec: &DebtSpec,
    principal_ids: &HashSet<&str>,
    path: &dyn Fn(&str) -> String,
    anchors: &dyn Fn(&str) -> Vec<Anchor>,
) -> Result<Debt, SceneError> {
    let party = |who: &str, field: &str| -> Result<ArtifactId, SceneError> {
        if principal_ids.contains(who) {
            ArtifactId::parse(who)
                .map_err(|e| check.err(path(&format!("debt.{field}")), &anchors(field), e.to_string()))
        } else {
            let message = format!("{who:?} is not a principal of this scene");
            Err(check.err(path(&format!("debt.{field}")), &anchors(field), message))
        }
    };
    let (debtor, creditor) = (party(&spec.debtor, "debtor")?, party(&spec.creditor, "creditor")?);
    if spec.principal == 0 {
        return Err(check.err(path("debt.principal"), &anchors("principal"), "a loan lends at least 1 scrip"));
    }
    let time = |secs: f64, field: &str, what: &str| {
        SimTime::from_secs_f64(secs)
            .ok_or_else(|| check.err(path(&format!("debt.{field}")), &anchors(field), format!("{secs} is not {what}")))
    };
    let term = time(spec.term_secs, "term_secs", "a term (seconds > 0)")?;
    if term.millis() == 0 {
        return Err(check.err(path("debt.term_secs"), &anchors("term_secs"), "a term is longer than zero"));
    }
    let offered_at = time(spec.offered_at_secs, "offered_at_secs", "a time (seconds ≥ 0)")?;
    let due_at = spec.due_at_secs.map(|secs| time(secs, "due_at_secs", "a time (seconds ≥ 0)")).transpose()?;
    let accepted = !matches!(spec.status, DebtStatus::Offered | DebtStatus::Cancelled);
    if accepted != due_at.is_some() {
        let why = if accepted { "an accepted loan has a due time" } else { "a loan not accepted has no due time" };
        return Err(check.err(path("debt.due_at_secs"), &anchors("status"), why));
    }
    let debt = Debt {
        debtor,
        creditor,
        principal: spec.principal,
        interest: spec.interest,
        term,
        offered_at,
        due_at,
        repaid: spec.repaid,
        status: spec.status,
    };
    // An accepted loan is repaid exactly when nothing is outstanding.
    let settled = debt.outstanding() == 0;
    let inconsistent = accepted && settled != (spec.status == DebtStatus::Repaid);
    if spec.repaid > debt.owed() || inconsistent {
        return Err(check.err(
            path("debt.repaid"),
            &anchors("repaid"),
            format!("{} repaid of {} owed does not fit status {:?}", spec.repaid, debt.owed(), spec.status),
        ));
    }
    Ok(debt)
}

/// A commons' members (principals of this scene) and rules.
fn validate_commons(
    check: &Checker,
    spec: &CommonsSpec,
    principal_ids: &HashSet<&str>,
    path: &dyn Fn(&str) -> String,
    anchors: &dyn Fn(&str) -> Vec<Anchor>,
) -> Result<Commons, SceneError> {
    if spec.members.is_empty() {
        return Err(check.err(path("commons.members"), &anchors("members"), "a commons has at least one member"));
    }
    let mut members = Vec::with_capacity(spec.members.len());
    for member in &spec.members {
        if !principal_ids.contains(member.as_str()) {
            return Err(check.err(
                path("commons.members"),
                &anchors(&quoted(member)),
                format!("{member:?} is not a principal of this scene"),
            ));
        }
        members.push(ArtifactId::trusted(member));
    }
    if !(1..=100).contains(&spec.quorum_pct) {
        return Err(check.err(path("commons.quorum_pct"), &anchors("quorum_pct"), "a quorum is 1 to 100 percent"));
    }
    if spec.threshold_pct > 99 {
        return Err(check.err(
            path("commons.threshold_pct"),
            &anchors("threshold_pct"),
            "a threshold is 0 to 99 percent (a proposal needs strictly more yes votes)",
        ));
    }
    Ok(Commons { members, quorum_pct: spec.quorum_pct, threshold_pct: spec.threshold_pct })
}

/// An LLM budget given in dollars or in micro-dollars (not both), in micro-dollars.
fn budget(
    check: &Checker,
    usd: Option<f64>,
    micro: Option<u64>,
    path: &dyn Fn(&str) -> String,
    anchors: &dyn Fn(&str) -> Vec<Anchor>,
) -> Result<Option<u64>, SceneError> {
    match (usd, micro) {
        (Some(_), Some(_)) => Err(check.err(
            path("llm_budget_micro_usd"),
            &anchors("llm_budget_micro_usd"),
            "give llm_budget_usd or llm_budget_micro_usd, not both",
        )),
        (Some(usd), None) => usd_to_micro(usd).map(Some).ok_or_else(|| {
            check.err(path("llm_budget_usd"), &anchors("llm_budget_usd"), format!("{usd} is not an amount of dollars"))
        }),
        (None, micro) => Ok(micro),
    }
}

fn unknown_rate(config: &Config, name: &str) -> String {
    let mut rates: Vec<&str> = BUILTIN_RATES.to_vec();
    rates.extend(config.rate_resources.iter().map(|r| &**r));
    rates.extend(BUILTIN_ALLOCATIONS);
    let hint = if name == "disk" { "; a disk allocation is set with disk_bytes" } else { "" };
    format!("{name:?} is not a rate of this scene (rates: {}){hint}", rates.join(", "))
}

fn validate_config(check: &Checker, spec: &ConfigSpec) -> Result<Config, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from(field)];
    let mut config = Config::default();
    if let Some(seed) = spec.seed {
        config.seed = seed;
    }
    if let Some(dt) = spec.dt_secs {
        config.dt = SimTime::from_secs_f64(dt).filter(|t| t.millis() > 0).ok_or_else(|| {
            check.err("config.dt_secs", &at("dt_secs"), format!("a step must last at least 0.001 s, not {dt}"))
        })?;
    }
    if let Some(steps) = spec.steps {
        config.steps = steps;
    }
    if let Some(window) = spec.window_secs {
        config.window = SimTime::from_secs_f64(window).filter(|t| t.millis() > 0).ok_or_else(|| {
            check.err(
                "config.window_secs",
                &at("window_secs"),
                format!("a window must last at least 0.001 s, not {window}"),
            )
        })?;
    }
    if let Some(ring) = spec.event_ring {
        if ring == 0 {
            return Err(check.err(
                "config.event_ring",
                &at("event_ring"),
                "the event ring must hold at least one event",
            ));
        }
        config.event_ring = ring;
    }
    for rate in &spec.rates {
        if !valid_name(rate) || RESERVED_RESOURCES.contains(&rate.as_str()) {
            return Err(check.err("config.rates", &at(&quoted(rate)), resource_name_problem(rate)));
        }
        config.rate_resources.push(Arc::from(rate.as_str()));
    }
    for (name, default) in &spec.resources {
        if !valid_name(name) || RESERVED_RESOURCES.contains(&name.as_str()) || spec.rates.contains(name) {
            return Err(check.err("config.resources", &at(&quoted(name)), resource_name_problem(name)));
        }
        config.stock_resources.insert(Arc::from(name.as_str()), *default);
    }
    if let Some(sandbox) = &spec.sandbox {
        config.sandbox = validate_sandbox(check, sandbox)?;
    }
    if let Some(freeze) = &spec.freeze {
        let defaults = FreezeRule::default();
        config.freeze = FreezeRule {
            min_llm_budget_micro_usd: freeze.min_llm_budget_micro_usd.unwrap_or(defaults.min_llm_budget_micro_usd),
            min_scrip: freeze.min_scrip.unwrap_or(defaults.min_scrip),
        };
    }
    if let Some(mint) = &spec.mint {
        config.mint = validate_mint(check, mint)?;
    }
    if let Some(llm) = &spec.llm {
        config.llm = llm::validate_llm(check, llm)?;
    }
    if let Some(mcp) = &spec.mcp {
        config.mcp = mcp::validate_mcp(check, mcp)?;
    }
    if let Some(capabilities) = &spec.capabilities {
        config.capabilities = mcp::validate_capabilities(check, capabilities)?;
    }
    if let Some(kpis) = &spec.kpis {
        let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("kpis:"), Anchor::from(field)];
        if let Some(every) = kpis.every_steps {
            if every == 0 {
                return Err(check.err("config.kpis.every_steps", &at("every_steps"), "every_steps must be at least 1"));
            }
            config.kpis.every_steps = every;
        }
        if let Some(secs) = kpis.window_secs {
            config.kpis.window = seconds(check, secs, "config.kpis.window_secs", &at("window_secs"))?;
        }
    }
    if let Some(defaults) = &spec.defaults {
        let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("defaults:"), Anchor::from(field)];
        let mut out = PrincipalDefaults::default();
        if let Some(scrip) = defaults.scrip {
            out.scrip = scrip;
        }
        let path = |field: &str| format!("config.defaults.{field}");
        if let Some(micro) = budget(check, defaults.llm_budget_usd, defaults.llm_budget_micro_usd, &path, &at)? {
            out.llm_budget_micro_usd = micro;
        }
        if let Some(disk) = defaults.disk_bytes {
            out.disk_bytes = disk;
        }
        if let Some(quota) = &defaults.quota {
            let mut limits = BTreeMap::new();
            for (name, limit) in quota {
                if !config.is_quota(name) {
                    return Err(check.err("config.defaults.quota", &at(&quoted(name)), unknown_rate(&config, name)));
                }
                if let Some(limit) = limit {
                    limits.insert(Arc::from(name.as_str()), *limit);
                }
            }
            out.quota = Arc::new(limits);
        }
        config.defaults = out;
    }
    Ok(config)
}

/// A span of simulated seconds that must be positive.
fn seconds(check: &Checker, secs: f64, path: &str, at: &[Anchor]) -> Result<SimTime, SceneError> {
    SimTime::from_secs_f64(secs)
        .filter(|t| t.millis() > 0)
        .ok_or_else(|| check.err(path, at, format!("{secs} is not a span of time (seconds, at least 0.001)")))
}

fn validate_mint(check: &Checker, spec: &MintSpec) -> Result<MintConfig, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("mint:"), Anchor::from(field)];
    let mut out = MintConfig::default();
    if let Some(secs) = spec.first_at_secs {
        // The first resolution may be at time zero: it then happens in the first step.
        out.first_at = SimTime::from_secs_f64(secs).ok_or_else(|| {
            check.err("config.mint.first_at_secs", &at("first_at_secs"), format!("{secs} is not a time (seconds ≥ 0)"))
        })?;
    }
    if let Some(secs) = spec.period_secs {
        out.period = seconds(check, secs, "config.mint.period_secs", &at("period_secs"))?;
    }
    if let Some(slots) = spec.slots {
        if slots == 0 {
            return Err(check.err("config.mint.slots", &at("slots"), "an auction needs at least one slot"));
        }
        out.slots = slots;
    }
    if let Some(ratio) = spec.mint_ratio {
        if ratio == 0 {
            return Err(check.err("config.mint.mint_ratio", &at("mint_ratio"), "mint_ratio must be at least 1"));
        }
        out.mint_ratio = ratio;
    }
    Ok(out)
}

fn validate_sandbox(check: &Checker, spec: &SandboxSpec) -> Result<SandboxConfig, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("sandbox:"), Anchor::from(field)];
    let positive = |value: u64, field: &str| {
        if value == 0 {
            Err(check.err(format!("config.sandbox.{field}"), &at(field), format!("{field} must be at least 1")))
        } else {
            Ok(value)
        }
    };
    let mut out = SandboxConfig::default();
    if let Some(workers) = spec.workers {
        out.workers = positive(workers as u64, "workers")? as usize;
    }
    let deadline = |secs: f64, field: &str| {
        SimTime::from_secs_f64(secs).map(|t| t.millis()).filter(|ms| *ms > 0).ok_or_else(|| {
            check.err(format!("config.sandbox.{field}"), &at(field), format!("{secs} is not a deadline (seconds > 0)"))
        })
    };
    if let Some(secs) = spec.timeout_secs {
        out.timeout_ms = deadline(secs, "timeout_secs")?;
    }
    if let Some(secs) = spec.contract_timeout_secs {
        out.contract_timeout_ms = deadline(secs, "contract_timeout_secs")?;
    }
    if let Some(us) = spec.contract_caller_cpu_us {
        out.contract_caller_cpu_us = us;
    }
    if let Some(mb) = spec.heap_mb {
        out.heap_bytes = positive(mb as u64, "heap_mb")? as usize * (1 << 20);
    }
    if let Some(limit) = spec.loop_limit {
        out.loop_limit = positive(limit, "loop_limit")?;
    }
    if let Some(limit) = spec.contract_loop_limit {
        out.contract_loop_limit = positive(limit, "contract_loop_limit")?;
    }
    if let Some(recursion) = spec.recursion {
        out.recursion = positive(recursion as u64, "recursion")? as usize;
    }
    if let Some(kb) = spec.result_kb {
        out.result_bytes = positive(kb, "result_kb")? * 1024;
    }
    if let Some(rate) = spec.instructions_per_cpu_us {
        out.instructions_per_cpu_us = positive(rate, "instructions_per_cpu_us")?;
    }
    if let Some(depth) = spec.max_depth {
        out.max_depth = depth;
    }
    if let Some(depth) = spec.max_contract_depth {
        out.max_contract_depth = depth;
    }
    if let Some(secs) = spec.epoch_secs {
        out.epoch_ms = SimTime::from_secs_f64(secs).map(|t| t.millis()).filter(|ms| *ms > 0).ok_or_else(|| {
            check.err(
                "config.sandbox.epoch_secs",
                &at("epoch_secs"),
                format!("{secs} is not a length of time (seconds > 0)"),
            )
        })?;
    }
    Ok(out)
}

fn resource_name_problem(name: &str) -> String {
    if RESERVED_RESOURCES.contains(&name) {
        format!("{name:?} is a built-in resource")
    } else if valid_name(name) {
        format!("{name:?} is declared both as a stock resource and as a rate")
    } else {
        format!("{name:?} is not a resource name (lowercase letters, digits, _; starting with a letter)")
    }
}

fn validate_parts(
    check: &Checker,
    section: &str,
    index: usize,
    id: &str,
    parts: PartsRef,
) -> Result<ValidParts, SceneError> {
    let path = |field: &str| check.path(section, index, id, field);
    let anchors = |field: &str| check.entry(section, index, id, Some(field));
    let content = match (parts.content, parts.content_file) {
        (Some(_), Some(_)) => {
            return Err(check.err(
                path("content_file"),
                &anchors("content_file"),
                "give content or content_file, not both",
            ));
        }
        (Some(text), None) => text.to_owned(),
        (None, Some(file)) => {
            check.scene.read_file(file).map_err(|e| check.err(path("content_file"), &anchors("content_file"), e))?
        }
        (None, None) => String::new(),
    };
    let code = match (parts.code, parts.code_file) {
        (Some(_), Some(_)) => {
            return Err(check.err(path("code_file"), &anchors("code_file"), "give code or code_file, not both"));
        }
        (Some(text), None) => Some(Arc::from(text)),
        (None, Some(file)) => Some(Arc::from(
            check.scene.read_file(file).map_err(|e| check.err(path("code_file"), &anchors("code_file"), e))?,
        )),
        (None, None) => None,
    };
    if let Some(interface) = parts.interface {
        interface.validate().map_err(|e| check.err(path("interface"), &anchors("interface"), e))?;
    } else if code.is_some() {
        let field = if parts.code_file.is_some() { "code_file" } else { "code" };
        return Err(check.err(
            path("interface"),
            &anchors(field),
            "code needs an interface: every executable declares its tools",
        ));
    }
    let contract = match parts.contract {
        None | Some("freeware") => None,
        Some(name) if BuiltinContract::from_id(name).is_some() || check.executables.contains(name) => Some(
            ArtifactId::parse(name).map_err(|e| check.err(path("contract"), &anchors("contract"), e.to_string()))?,
        ),
        Some(name) => {
            return Err(check.err(
                path("contract"),
                &anchors("contract"),
                format!(
                    "unknown contract {name:?}: a contract is one of freeware, public, private and self_owned, \
                     or an artifact of this scene with code"
                ),
            ));
        }
    };
    Ok(ValidParts {
        content,
        description: parts.description.to_owned(),
        metadata: parts.metadata.clone(),
        code,
        interface: parts.interface.cloned(),
        contract,
        pricing: parts.pricing.copied(),
        imports: BTreeMap::new(),
    })
}

/// What each entry's code imports: artifacts of this scene with code that export what
/// is imported by name, with no cycle among them. Each import is charged its
/// dependency's code bytes, as a write of the code would be. An import of an artifact
/// the scene marks deleted is kept with a warning: that is how a saved world whose
/// library was deleted looks, and its importer fails when called, as it did there.
fn resolve_imports(
    check: &Checker,
    principals: &mut [ValidPrincipal],
    artifacts: &mut [ValidArtifact],
    warnings: &mut Vec<SceneWarning>,
) -> Result<(), SceneError> {
    use crate::{kernel::imports, sandbox::modules};
    let file = check.scene.file();
    // Every entry: where it is, its id, its code (if any and not deleted), and
    // whether that code is written in the scene itself.
    let deleted: HashSet<&str> = artifacts.iter().filter(|a| a.deleted).map(|a| a.id.as_str()).collect();
    let inline = |i: usize| match check.member(i) {
        Some((k, _)) => file.populations[k].template.code.is_some(),
        None => file.principals.get(i).is_some_and(|p| p.code.is_some()),
    };
    let entries: Vec<(&str, usize, &str, Option<&str>, bool)> = principals
        .iter()
        .enumerate()
        .map(|(i, p)| ("principals", i, p.id.as_str(), p.parts.code.as_deref(), inline(i)))
        .chain(artifacts.iter().enumerate().map(|(i, a)| {
            let code = if a.deleted { None } else { a.parts.code.as_deref() };
            ("artifacts", i, a.id.as_str(), code, file.artifacts[i].code.is_some())
        }))
        .collect();
    let by_id: HashMap<&str, Option<&str>> = entries.iter().map(|e| (e.2, e.3)).collect();
    // A population's members share their code: each text is read once.
    let mut by_text: HashMap<&str, std::rc::Rc<modules::Module>> = HashMap::new();
    let mut parsed: HashMap<&str, std::rc::Rc<modules::Module>> = HashMap::new();
    for &(section, index, id, code, inline) in &entries {
        if let Some(code) = code {
            let module = match by_text.get(code) {
                Some(module) => module.clone(),
                None => {
                    let field = if inline { "code" } else { "code_file" };
                    let module = modules::parse(code).map_err(|e| {
                        check.err(
                            check.path(section, index, id, field),
                            &check.entry(section, index, id, Some(field)),
                            format!("the code cannot be read as a module: {e}"),
                        )
                    })?;
                    by_text.entry(code).or_insert(std::rc::Rc::new(module)).clone()
                }
            };
            parsed.insert(id, module);
        }
    }
    let mut planned: Vec<(&str, usize, BTreeMap<ArtifactId, u64>)> = Vec::new();
    for &(section, index, id, code, inline) in &entries {
        let (Some(_), Some(module)) = (code, parsed.get(id)) else { continue };
        if module.imports.is_empty() {
            continue;
        }
        let field = if inline { "code" } else { "code_file" };
        let path = check.path(section, index, id, field);
        let at = |dep: &str| {
            let mut anchors = check.entry(section, index, id, Some(field));
            // Inline code holds the specifier itself, which is the better place to point.
            if inline {
                anchors.push(Anchor::Text(format!("{}{dep}", modules::SCHEME)));
            }
            anchors
        };
        let why = |dep: &str, why: String| format!("import \"{}{dep}\" in {id}: {why}", modules::SCHEME);
        let refuse = |dep: &str, message: String| check.err(path.clone(), &at(dep), why(dep, message));
        let mut imports = BTreeMap::new();
        for dep in module.dependencies() {
            if deleted.contains(dep) {
                let message = format!("{dep} is deleted, so calls of {id} fail until it imports something else");
                warnings.push(check.warn(path.clone(), &at(dep), why(dep, message)));
                imports.insert(ArtifactId::trusted(dep), 0);
                continue;
            }
            let dep_code = match by_id.get(dep) {
                None => return Err(refuse(dep, format!("there is no artifact {dep} in this scene"))),
                Some(None) => return Err(refuse(dep, format!("{dep} has no code to import"))),
                Some(Some(code)) => *code,
            };
            let exported = parsed.get(dep);
            for import in module.imports.iter().filter(|i| i.id == dep) {
                if let Some((name, _)) =
                    import.names.iter().find(|(name, _)| !exported.is_some_and(|m| m.exports_name(name)))
                {
                    return Err(refuse(dep, format!("{dep} does not export {name}")));
                }
            }
            imports.insert(ArtifactId::trusted(dep), dep_code.len() as u64);
        }
        let deps = module.dependencies();
        let deps_of = |node: &str| {
            parsed.get(node).map(|m| m.dependencies().into_iter().map(str::to_owned).collect()).unwrap_or_default()
        };
        if let Err(problem) = imports::check_graph(id, &deps, deps_of) {
            let first = match &problem {
                imports::GraphProblem::Cycle(path) => path.get(1).cloned().unwrap_or_default(),
                imports::GraphProblem::TooMany(_) => deps.first().map(|d| (*d).to_owned()).unwrap_or_default(),
            };
            return Err(check.err(path.clone(), &at(&first), problem.describe(id)));
        }
        planned.push((section, index, imports));
    }
    for (section, index, imports) in planned {
        let parts = if section == "principals" { &mut principals[index].parts } else { &mut artifacts[index].parts };
        parts.imports = imports;
    }
    Ok(())
}

/// Each principal's disk allocation must cover the artifacts it owns.
fn check_disk(check: &Checker, principals: &[ValidPrincipal], artifacts: &[ValidArtifact]) -> Result<(), SceneError> {
    let allocation: BTreeMap<&str, u64> = principals.iter().map(|p| (p.id.as_str(), p.disk_bytes)).collect();
    let mut used: BTreeMap<&str, u64> = BTreeMap::new();
    let owned = principals.iter().enumerate().map(|(i, p)| ("principals", i, &p.id, &p.owner, p.parts.bytes())).chain(
        artifacts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.deleted)
            .map(|(i, a)| ("artifacts", i, &a.id, &a.owner, a.parts.bytes())),
    );
    for (section, index, id, owner, bytes) in owned {
        let total = used.entry(owner.as_str()).or_default();
        *total += bytes;
        let limit = allocation.get(owner.as_str()).copied().unwrap_or(0);
        if *total > limit {
            return Err(check.err(
                check.path(section, index, id.as_str(), ""),
                &check.entry(section, index, id.as_str(), None),
                format!(
                    "{owner} owns {total} bytes of artifacts up to and including {id}, but its disk allocation is {limit} bytes (disk_bytes)"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_interventions(
    check: &Checker,
    specs: &[InterventionSpec],
    principal_ids: &HashSet<&str>,
    warnings: &mut Vec<SceneWarning>,
) -> Result<Vec<ScheduledIntervention>, SceneError> {
    let mut timed: Vec<(SimTime, usize, &InterventionSpec)> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let at = SimTime::from_secs_f64(spec.at).ok_or_else(|| {
            check.err(
                format!("interventions[{i}].at"),
                &nth_entry(i),
                format!("{} is not a time (seconds ≥ 0)", spec.at),
            )
        })?;
        timed.push((at, i, spec));
    }
    // Stable: interventions due at the same time keep their file order.
    timed.sort_by_key(|(at, i, _)| (*at, *i));

    // Whether a principal will exist when an intervention comes due cannot be known
    // before running (a spawn may fail; agents may spawn principals), so naming one
    // that is neither declared nor spawned earlier in the timeline is a warning — most
    // likely a typo — and the intervention fails cleanly at run time if it still does
    // not exist.
    let mut known: HashSet<String> = principal_ids.iter().map(|s| (*s).to_owned()).collect();
    let mut unknown = |field: &str, i: usize, who: &str, known: &HashSet<String>| {
        if !known.contains(who) {
            let mut anchors = nth_entry(i);
            anchors.push(quoted(who).into());
            warnings.push(check.warn(
                format!("interventions[{i}].{field}"),
                &anchors,
                format!(
                    "{who:?} is not a principal of this scene, nor spawned by an earlier intervention; \
                     unless it exists by then, this intervention will fail"
                ),
            ));
        }
    };
    let mut out = Vec::with_capacity(timed.len());
    for (at, i, spec) in timed {
        let path = |field: &str| format!("interventions[{i}].{field}");
        let anchors = nth_entry(i);
        let act = match (&spec.actor, &spec.action, &spec.system) {
            (Some(actor), Some(action), None) => {
                let actor_id = ArtifactId::parse(actor).map_err(|e| check.err(path("as"), &anchors, e.to_string()))?;
                unknown("as", i, actor, &known);
                if let Action::Spawn(spawn) = action {
                    known.insert(spawn.id.clone());
                }
                InterventionAct::As { actor: actor_id, action: action.clone() }
            }
            (None, None, Some(system)) => {
                if let Some(subject) = system.subject() {
                    unknown("system", i, subject, &known);
                }
                InterventionAct::System(system.clone())
            }
            (None, Some(_), _) => {
                return Err(check.err(path("as"), &anchors, "`do` needs `as`: the principal who acts"));
            }
            (Some(_), None, None) => {
                return Err(check.err(path("do"), &anchors, "`as` needs `do`: the action to perform"));
            }
            (_, Some(_), Some(_)) | (Some(_), None, Some(_)) => {
                return Err(check.err(
                    path("system"),
                    &anchors,
                    "an intervention is either `as` + `do` or `system`, not both",
                ));
            }
            (None, None, None) => {
                return Err(check.err(path("do"), &anchors, "an intervention needs `as` + `do`, or `system`"));
            }
        };
        out.push(ScheduledIntervention { at, act });
    }
    Ok(out)
}

/// Anchors that find entry `index` of `section` (by counting `id:` fields) and in it
/// the quoted `id`, then `field` if given. Built only when an error is reported.
fn entry(section: &str, index: usize, id: &str, field: Option<&str>) -> Vec<Anchor> {
    let mut anchors =
        vec![Anchor::Text(format!("{section}:")), Anchor::Nth("id:", index + 1), Anchor::Text(quoted(id))];
    anchors.extend(field.map(Anchor::from));
    anchors
}

/// Anchors that find entry `i` of `interventions` (by counting `at:` fields).
fn nth_entry(i: usize) -> Vec<Anchor> {
    vec!["interventions:".into(), Anchor::Nth("at:", i + 1)]
}
