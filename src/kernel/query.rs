//! Discovery: finding artifacts without knowing their ids.
//!
//! A query lists artifacts in creation order, filtered by owner, kind and a
//! case-insensitive text search over id, description and interface, one page at a
//! time. The cursor is a position in creation order, which never changes meaning
//! because artifacts are never removed, only tombstoned — and tombstones are hidden
//! unless asked for.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KernelError, contracts::BuiltinContract};
use crate::kernel::{Quota, Standing};
use crate::world::{
    components::{
        AccessContract, Artifact, Executable, Frozen, Interface, LastAction, Loop, Pricing, Service, Tombstone,
        created_by,
    },
    ids::{ArtifactId, Ids},
};

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
/// page of artifacts matching every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ArtifactKind>,
    /// Case-insensitive substring of the id, description or interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_deleted: bool,
    /// Where the page starts: the `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Everything about an artifact except its content and code.
pub fn metadata(world: &World, entity: Entity) -> Value {
    let id = world.get::<ArtifactId>(entity).map_or("", |id| id.as_str());
    let Some(artifact) = world.get::<Artifact>(entity) else {
        return json!({ "id": id });
    };
    let mut out = json!({
        "id": id,
        "kind": kind_of(world, entity),
        "owner": artifact.owner(),
        "created_by": created_by(world, entity),
        "created_at": artifact.created_at().as_secs_f64(),
        "updated_at": artifact.updated_at().as_secs_f64(),
        "description": artifact.description(),
        "content_bytes": artifact.content().len(),
        "contract": world.get::<AccessContract>(entity).map_or("freeware", |c| c.id().as_str()),
        "has_standing": world.get::<Standing>(entity).is_some(),
        "deleted": world.get::<Tombstone>(entity).is_some(),
    });
    let Some(fields) = out.as_object_mut() else { return out };
    if let Some(x) = world.get::<Executable>(entity) {
        fields.insert("code_bytes".into(), x.code().len().into());
        fields.insert("code_hash".into(), super::invoke::code_hash_hex(x.code_hash()).into());
        fields.insert("invocations".into(), invocation_stats(world, id));
    }
    if let Some(imports) = world.get::<crate::world::components::Imports>(entity) {
        let ids: Vec<&str> = imports.ids().map(ArtifactId::as_str).collect();
        fields.insert("imports".into(), ids.into());
    }
    if let Some(interface) = world.get::<Interface>(entity).filter(|i| !i.tools.is_empty()) {
        fields.insert("interface".into(), serde_json::to_value(interface).unwrap_or(Value::Null));
    }
    if let Some(pricing) = world.get::<Pricing>(entity) {
        fields.insert("pricing".into(), serde_json::to_value(pricing).unwrap_or(Value::Null));
    }
    if let Some(metadata) = artifact.metadata() {
        fields.insert("metadata".into(), serde_json::to_value(metadata).unwrap_or(Value::Null));
    }
    if let Some(tombstone) = world.get::<Tombstone>(entity) {
        fields.insert("deleted_at".into(), tombstone.deleted_at().as_secs_f64().into());
        fields.insert("deleted_by".into(), tombstone.deleted_by().as_str().into());
    }
    if world.get::<Frozen>(entity).is_some() {
        fields.insert("frozen".into(), true.into());
    }
    crate::economy::describe(world, entity, fields);
    if let Some(standing) = world.get::<Standing>(entity) {
        // The ledger, quotas and heartbeat of every principal are public (SPEC §8).
        fields.insert("scrip".into(), standing.scrip().into());
        fields
            .insert("resources".into(), serde_json::to_value(super::state::resources_of(standing)).unwrap_or_default());
        fields.insert("quota".into(), quota_json(world, entity, id));
        let last = world.get::<LastAction>(entity).and_then(|l| l.at()).map(|t| t.as_secs_f64());
        fields.insert("last_action_at".into(), last.into());
    }
    out
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

/// Runs a query. Returns the JSON result and the number of artifacts in it.
pub fn run(world: &World, spec: &QuerySpec) -> Result<(Value, u64), KernelError> {
    let ids = world.resource::<Ids>();
    if let Some(id) = &spec.id {
        let entity = ids.get(world, id).ok_or_else(|| KernelError::not_found(id))?;
        if world.get::<Tombstone>(entity).is_some() && !spec.include_deleted {
            return Err(KernelError::deleted(id));
        }
        return Ok((json!({ "artifact": metadata(world, entity) }), 1));
    }
    let limit = spec.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(KernelError::invalid(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    let order = ids.in_creation_order();
    let start = spec.cursor.unwrap_or(0).min(order.len() as u64) as usize;
    let mut items = Vec::new();
    let mut next_cursor = None;
    for (position, &entity) in order.iter().enumerate().skip(start) {
        if items.len() as u64 == limit {
            next_cursor = Some(position as u64);
            break;
        }
        if matches(world, entity, spec) {
            items.push(metadata(world, entity));
        }
    }
    let count = items.len() as u64;
    Ok((json!({ "items": items, "next_cursor": next_cursor }), count))
}

fn matches(world: &World, entity: Entity, spec: &QuerySpec) -> bool {
    if !spec.include_deleted && world.get::<Tombstone>(entity).is_some() {
        return false;
    }
    let Some(artifact) = world.get::<Artifact>(entity) else { return false };
    if spec.owner.as_deref().is_some_and(|owner| artifact.owner() != owner) {
        return false;
    }
    if spec.kind.is_some_and(|kind| kind_of(world, entity) != kind) {
        return false;
    }
    let Some(text) = spec.text.as_deref() else { return true };
    let id = world.get::<ArtifactId>(entity).map_or("", |id| id.as_str());
    contains_ignore_case(id, text)
        || contains_ignore_case(artifact.description(), text)
        || world.get::<Interface>(entity).is_some_and(|i| {
            contains_ignore_case(&i.description, text)
                || i.tools
                    .iter()
                    .any(|t| contains_ignore_case(&t.name, text) || contains_ignore_case(&t.description, text))
        })
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
