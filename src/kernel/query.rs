//! Discovery: finding artifacts without knowing their ids.
//!
//! A query lists artifacts in creation order, filtered by kind, owner, interface
//! tool, capability, excluded ids and a case-insensitive text search over id,
//! description and interface, one page at a time — or draws a seeded random sample
//! of the matches. The cursor is a position in creation order, which never changes
//! meaning because artifacts are never removed, only tombstoned — and tombstones are
//! hidden unless asked for. Kind, owner, tool and capability are indexed
//! ([`super::discovery`]): a query naming one looks only through that index's list,
//! so it costs what it returns (a text search looks through the list it is given).

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KernelError, contracts::BuiltinContract, discovery::Discovery};
use crate::kernel::{Quota, Standing};
use crate::world::{
    components::{
        AccessContract, Artifact, Capabilities, Executable, Frozen, Grants, Interface, LastAction, Loop, Pricing,
        Service, Tombstone, created_by,
    },
    ids::{ArtifactId, Ids},
    rng::SimRng,
};
use bevy_platform::collections::HashMap;

/// Page size when a query does not say.
pub const DEFAULT_LIMIT: u64 = 50;
/// The largest page a query may ask for.
pub const MAX_LIMIT: u64 = 500;

/// What an artifact is, from the parts it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Content only.
    Data,
    /// Has code that can be invoked.
    Executable,
    /// Answers permission questions (a built-in contract, or code exporting
    /// `check_permission`).
    Contract,
    /// Has standing, no loop.
    Principal,
    /// Has standing and a loop.
    Agent,
    /// One of the world's services (the mint, escrow, …): methods the kernel answers.
    Service,
}

impl ArtifactKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [ArtifactKind; 6] = [
        ArtifactKind::Data,
        ArtifactKind::Executable,
        ArtifactKind::Contract,
        ArtifactKind::Principal,
        ArtifactKind::Agent,
        ArtifactKind::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Executable => "executable",
            Self::Contract => "contract",
            Self::Principal => "principal",
            Self::Agent => "agent",
            Self::Service => "service",
        }
    }
}

pub fn kind_of(world: &World, entity: Entity) -> ArtifactKind {
    if world.get::<Service>(entity).is_some() {
        return ArtifactKind::Service;
    }
    if world.get::<Loop>(entity).is_some() {
        return ArtifactKind::Agent;
    }
    if world.get::<Standing>(entity).is_some() {
        return ArtifactKind::Principal;
    }
    let builtin = world.get::<ArtifactId>(entity).is_some_and(|id| BuiltinContract::from_id(id.as_str()).is_some());
    let exports_check = world.get::<Interface>(entity).is_some_and(|i| i.tool("check_permission").is_some());
    if builtin || (exports_check && world.get::<Executable>(entity).is_some()) {
        return ArtifactKind::Contract;
    }
    if world.get::<Executable>(entity).is_some() {
        return ArtifactKind::Executable;
    }
    ArtifactKind::Data
}

/// A discovery request. With `id`, the metadata of that one artifact; otherwise a
/// page of artifacts matching every filter given, or a random sample of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// One kind, or any of several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kinds>,
    /// Offers a tool of this name in its interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Holds this capability (from creation or granted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// Case-insensitive substring of the id, description or interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Ids left out of the answer (the asker itself, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_deleted: bool,
    /// Where the page starts: the `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Instead of a page: up to this many matches drawn at random (seeded), every
    /// match equally likely.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<u64>,
    /// Only these fields of each item (`["id"]` when only ids are needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// One kind or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Kinds {
    One(ArtifactKind),
    Any(Vec<ArtifactKind>),
}

impl<'de> Deserialize<'de> for Kinds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Named {
            One(String),
            Any(Vec<String>),
        }
        let parse = |name: &str| {
            ArtifactKind::ALL.into_iter().find(|k| k.as_str() == name).ok_or_else(|| {
                let known: Vec<&str> = ArtifactKind::ALL.iter().map(|k| k.as_str()).collect();
                serde::de::Error::custom(format!("unknown kind {name:?}; expected one of {}", known.join(", ")))
            })
        };
        match Named::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("kind is a kind's name or a list of them"))?
        {
            Named::One(name) => parse(&name).map(Kinds::One),
            Named::Any(names) => names.iter().map(|n| parse(n)).collect::<Result<_, _>>().map(Kinds::Any),
        }
    }
}

impl Kinds {
    fn as_slice(&self) -> &[ArtifactKind] {
        match self {
            Self::One(kind) => std::slice::from_ref(kind),
            Self::Any(kinds) => kinds,
        }
    }
}

impl From<ArtifactKind> for Kinds {
    fn from(kind: ArtifactKind) -> Self {
        Self::One(kind)
    }
}

/// The most ids a query may exclude.
pub const MAX_EXCLUDE: usize = 100;

/// Everything about an artifact except its content and code.
pub fn metadata(world: &World, entity: Entity) -> Value {
    let id = world.get::<ArtifactId>(entity).map_or("", |id| id.as_str());
    let Some(artifact) = world.get::<Artifact>(entity) else {
        return json!({ "id": id });
    };
    let mut fields = serde_json::Map::new();
    for name in CHEAP_FIELDS {
        if let Some(Some(value)) = cheap_field(world, entity, name) {
            fields.insert(name.to_owned(), value);
        }
    }
    fields.insert("created_by".into(), created_by(world, entity).map(ArtifactId::as_str).into());
    fields
        .insert("contract".into(), world.get::<AccessContract>(entity).map_or("freeware", |c| c.id().as_str()).into());
    if let Some(x) = world.get::<Executable>(entity) {
        fields.insert("code_bytes".into(), x.code().len().into());
        fields.insert("code_hash".into(), super::invoke::code_hash_hex(x.code_hash()).into());
        fields.insert("invocations".into(), invocation_stats(world, id));
    }
    if let Some(imports) = world.get::<crate::world::components::Imports>(entity) {
        let ids: Vec<&str> = imports.ids().map(ArtifactId::as_str).collect();
        fields.insert("imports".into(), ids.into());
    }
    if let Some(metadata) = artifact.metadata() {
        fields.insert("metadata".into(), serde_json::to_value(metadata).unwrap_or(Value::Null));
    }
    if let Some(tombstone) = world.get::<Tombstone>(entity) {
        fields.insert("deleted_at".into(), tombstone.deleted_at().as_secs_f64().into());
        fields.insert("deleted_by".into(), tombstone.deleted_by().as_str().into());
    }
    crate::economy::describe(world, entity, &mut fields);
    if let Some(standing) = world.get::<Standing>(entity) {
        // The ledger, quotas and heartbeat of every principal are public (SPEC §8).
        fields
            .insert("resources".into(), serde_json::to_value(super::state::resources_of(standing)).unwrap_or_default());
        fields.insert("quota".into(), quota_json(world, entity, id));
        let last = world.get::<LastAction>(entity).and_then(|l| l.at()).map(|t| t.as_secs_f64());
        fields.insert("last_action_at".into(), last.into());
    }
    Value::Object(fields)
}

/// Each limited quota resource of a principal: `{limit, used, available}` (`used` and
/// `available` over the current window, for rates).
fn quota_json(world: &World, entity: Entity, id: &str) -> Value {
    let Some(quota) = world.get::<Quota>(entity) else { return json!({}) };
    let entries: serde_json::Map<String, Value> = quota
        .limits()
        .iter()
        .map(|(name, limit)| {
            let used = super::quotas::get_usage(world, id, name).unwrap_or(0);
            let entry = if name.as_ref() == super::quotas::MEMORY {
                json!({ "limit": limit })
            } else {
                json!({ "limit": limit, "used": used, "available": limit.saturating_sub(used) })
            };
            (name.to_string(), entry)
        })
        .collect();
    Value::Object(entries)
}

/// How an artifact's invocations went: reputation from use, public to all.
pub fn invocation_stats(world: &World, id: &str) -> Value {
    let counts = world.resource::<super::InvocationStats>().counts(id);
    json!({
        "count": counts.success + counts.failure + counts.rejected,
        "success": counts.success,
        "failure": counts.failure,
        "rejected": counts.rejected,
        "success_rate": counts.success_rate(),
        "mean_cpu_us": counts.mean_cpu_us(),
    })
}

/// The fields of [`metadata`] that [`cheap_field`] answers on its own.
const CHEAP_FIELDS: [&str; 13] = [
    "id",
    "kind",
    "owner",
    "description",
    "created_at",
    "updated_at",
    "content_bytes",
    "has_standing",
    "deleted",
    "frozen",
    "scrip",
    "interface",
    "pricing",
];

/// Fields of [`metadata`] answered without building the rest: what discovery asks
/// for most (and where [`metadata`] takes them from). `None`: not one of them;
/// `Some(None)`: one of them, absent here.
fn cheap_field(world: &World, entity: Entity, name: &str) -> Option<Option<Value>> {
    let artifact = world.get::<Artifact>(entity)?;
    let standing = world.get::<Standing>(entity);
    let value = match name {
        "id" => Some(world.get::<ArtifactId>(entity).map_or("", |id| id.as_str()).into()),
        "kind" => serde_json::to_value(kind_of(world, entity)).ok(),
        "owner" => Some(artifact.owner().as_str().into()),
        "description" => Some(artifact.description().into()),
        "created_at" => Some(artifact.created_at().as_secs_f64().into()),
        "updated_at" => Some(artifact.updated_at().as_secs_f64().into()),
        "content_bytes" => Some(artifact.content().len().into()),
        "has_standing" => Some(standing.is_some().into()),
        "deleted" => Some(world.get::<Tombstone>(entity).is_some().into()),
        "frozen" => world.get::<Frozen>(entity).map(|_| true.into()),
        "scrip" => standing.map(|s| s.scrip().into()),
        "interface" => world
            .get::<Interface>(entity)
            .filter(|i| !i.tools.is_empty())
            .map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
        "pricing" => world.get::<Pricing>(entity).map(|p| serde_json::to_value(p).unwrap_or(Value::Null)),
        _ => return None,
    };
    Some(value)
}

/// The `fields` of [`metadata`] only, built without the rest where they allow.
pub fn metadata_fields(world: &World, entity: Entity, fields: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    let mut full: Option<Value> = None;
    for name in fields {
        let value = match cheap_field(world, entity, name) {
            Some(value) => value,
            None => full.get_or_insert_with(|| metadata(world, entity)).get(name).cloned(),
        };
        if let Some(value) = value {
            out.insert(name.clone(), value);
        }
    }
    Value::Object(out)
}

fn describe(world: &World, entity: Entity, fields: Option<&[String]>) -> Value {
    match fields {
        Some(fields) => metadata_fields(world, entity, fields),
        None => metadata(world, entity),
    }
}

/// Runs a query. Returns the JSON result and the number of artifacts in it. A
/// sample draws from `seed` when given (a host call derives one from its call's
/// seed, so the answer does not depend on which worker asked first), else from the
/// world's stream.
pub fn run(world: &mut World, spec: &QuerySpec, seed: Option<u64>) -> Result<(Value, u64), KernelError> {
    let fields = spec.fields.as_deref();
    if let Some(id) = &spec.id {
        let entity = world.resource::<Ids>().get(world, id).ok_or_else(|| KernelError::not_found(id))?;
        if world.get::<Tombstone>(entity).is_some() && !spec.include_deleted {
            return Err(KernelError::deleted(id));
        }
        return Ok((json!({ "artifact": describe(world, entity, fields) }), 1));
    }
    let limit = spec.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(KernelError::invalid(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    if spec.exclude.len() > MAX_EXCLUDE {
        return Err(KernelError::invalid(format!("exclude names at most {MAX_EXCLUDE} ids")));
    }
    let sample = match spec.sample {
        Some(k) if k == 0 || k > MAX_LIMIT => {
            return Err(KernelError::invalid(format!("sample must be between 1 and {MAX_LIMIT}, got {k}")));
        }
        Some(_) if spec.cursor.is_some() => {
            return Err(KernelError::invalid("a sample has no pages: give sample or cursor, not both"));
        }
        Some(k) => Some((k, seed.unwrap_or_else(|| world.resource_mut::<SimRng>().next_u64()))),
        None => None,
    };
    super::discovery::refresh(world);
    let world = &*world;
    let source = Source::for_spec(world, spec);
    let order = world.resource::<Ids>().in_creation_order();
    let wanted = |position: u32| order.get(position as usize).copied().filter(|&e| matches(world, e, spec));
    let mut items = Vec::new();
    let mut next_cursor = None;
    match sample {
        Some((k, seed)) => {
            // A partial Fisher–Yates shuffle of the candidates, drawn until `k` match:
            // the first k matches of a uniform random order are a uniform sample.
            let mut rng = SimRng::from_seed(seed);
            let n = source.len() as u64;
            let mut swapped: HashMap<u64, u64> = HashMap::new();
            for i in 0..n {
                if items.len() as u64 == k {
                    break;
                }
                let j = i + rng.below(n - i);
                let pick = swapped.get(&j).copied().unwrap_or(j);
                swapped.insert(j, swapped.get(&i).copied().unwrap_or(i));
                if let Some(entity) = wanted(source.nth(pick as usize)) {
                    items.push(describe(world, entity, fields));
                }
            }
        }
        None => {
            let start = spec.cursor.unwrap_or(0).min(u32::MAX as u64) as u32;
            for position in source.from(start) {
                if items.len() as u64 == limit {
                    next_cursor = Some(position as u64);
                    break;
                }
                if let Some(entity) = wanted(position) {
                    items.push(describe(world, entity, fields));
                }
            }
        }
    }
    let count = items.len() as u64;
    Ok((json!({ "items": items, "next_cursor": next_cursor }), count))
}

/// Seeds for the samples of one call's queries, one after another, derived from the
/// call's own seed (itself drawn from the world's stream in a fixed order).
#[derive(Debug, Clone, Copy)]
pub struct SampleSeeds(u64);

impl SampleSeeds {
    pub fn new(call_seed: u64) -> Self {
        // Apart from the call's Math.random stream, which starts from the same seed.
        Self(call_seed ^ 0x5a4d_504c_4553_5151)
    }

    /// The next seed (SplitMix64).
    pub fn next_seed(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The creation positions a query looks through: the shortest index list its
/// filters name (one per kind when it names several kinds; kinds do not overlap),
/// or every artifact when it names none or includes tombstones.
enum Source<'w> {
    Lists(Vec<&'w [u32]>),
    All(u32),
}

impl<'w> Source<'w> {
    fn for_spec(world: &'w World, spec: &QuerySpec) -> Self {
        let everything = Source::All(world.resource::<Ids>().in_creation_order().len() as u32);
        if spec.include_deleted {
            return everything;
        }
        let index = world.resource::<Discovery>();
        let mut choices: Vec<Vec<&[u32]>> = Vec::new();
        if let Some(kinds) = &spec.kind {
            let mut kinds = kinds.as_slice().to_vec();
            kinds.sort_by_key(|k| *k as usize);
            kinds.dedup();
            choices.push(kinds.into_iter().map(|k| index.of_kind(k)).collect());
        }
        if let Some(owner) = &spec.owner {
            choices.push(vec![index.owned_by(owner)]);
        }
        if let Some(tool) = &spec.tool {
            choices.push(vec![index.offering(tool)]);
        }
        if let Some(capability) = &spec.capability {
            choices.push(vec![index.holding(capability)]);
        }
        let total = |lists: &Vec<&[u32]>| lists.iter().map(|l| l.len()).sum::<usize>();
        choices.into_iter().min_by_key(total).map_or(everything, Source::Lists)
    }

    fn len(&self) -> usize {
        match self {
            Self::Lists(lists) => lists.iter().map(|l| l.len()).sum(),
            Self::All(n) => *n as usize,
        }
    }

    /// The position at `rank` (lists taken one after another).
    fn nth(&self, mut rank: usize) -> u32 {
        match self {
            Self::All(_) => rank as u32,
            Self::Lists(lists) => {
                for list in lists {
                    if let Some(&position) = list.get(rank) {
                        return position;
                    }
                    rank -= list.len();
                }
                u32::MAX
            }
        }
    }

    /// Positions from `start` on, in creation order.
    fn from(&self, start: u32) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Self::All(n) => Box::new(start..*n),
            Self::Lists(lists) => {
                let mut heads: Vec<&[u32]> = lists.iter().map(|l| &l[l.partition_point(|&p| p < start)..]).collect();
                Box::new(std::iter::from_fn(move || {
                    let (at, _) = heads
                        .iter()
                        .enumerate()
                        .filter_map(|(i, l)| l.first().map(|&p| (i, p)))
                        .min_by_key(|&(_, p)| p)?;
                    let (&position, rest) = heads[at].split_first()?;
                    heads[at] = rest;
                    Some(position)
                }))
            }
        }
    }
}

fn matches(world: &World, entity: Entity, spec: &QuerySpec) -> bool {
    if !spec.include_deleted && world.get::<Tombstone>(entity).is_some() {
        return false;
    }
    let Some(artifact) = world.get::<Artifact>(entity) else { return false };
    if spec.owner.as_deref().is_some_and(|owner| artifact.owner() != owner) {
        return false;
    }
    if spec.kind.as_ref().is_some_and(|kinds| !kinds.as_slice().contains(&kind_of(world, entity))) {
        return false;
    }
    if spec.tool.as_deref().is_some_and(|tool| !world.get::<Interface>(entity).is_some_and(|i| i.tool(tool).is_some()))
    {
        return false;
    }
    if spec.capability.as_deref().is_some_and(|capability| !holds_capability(world, entity, capability)) {
        return false;
    }
    let id = world.get::<ArtifactId>(entity).map_or("", |id| id.as_str());
    if spec.exclude.iter().any(|excluded| excluded == id) {
        return false;
    }
    let Some(text) = spec.text.as_deref() else { return true };
    contains_ignore_case(id, text)
        || contains_ignore_case(artifact.description(), text)
        || world.get::<Interface>(entity).is_some_and(|i| {
            contains_ignore_case(&i.description, text)
                || i.tools
                    .iter()
                    .any(|t| contains_ignore_case(&t.name, text) || contains_ignore_case(&t.description, text))
        })
}

fn holds_capability(world: &World, entity: Entity, capability: &str) -> bool {
    world.get::<Capabilities>(entity).is_some_and(|c| c.has(capability))
        || world.get::<Grants>(entity).is_some_and(|g| g.get(capability).is_some())
}

/// ASCII case-insensitive substring search, without allocating per artifact.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::contains_ignore_case;

    #[test]
    fn text_search_ignores_ascii_case() {
        assert!(contains_ignore_case("Text_Tools", "text"));
        assert!(contains_ignore_case("abc", ""));
        assert!(!contains_ignore_case("ab", "abc"));
    }
}
