//! Artifact ids and the index from id to entity.
//!
//! Every artifact, agent and principal shares one namespace of ids: 1–128 characters
//! of `[A-Za-z0-9_.:-]`. An id is validated once, where it enters the program
//! ([`ArtifactId::parse`]), and is an immutable component afterwards, so the [`Ids`]
//! index can be maintained entirely by observers: an id is indexed when it is inserted
//! and unindexed only when its entity loses it. Ids are never reused, not even after
//! deletion: a tombstoned artifact keeps its entity, its id and its place in the index.

use std::{borrow::Borrow, fmt, sync::Arc};

use bevy_ecs::prelude::*;
use bevy_platform::collections::HashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest id the kernel accepts, in bytes (ids are ASCII, so also characters).
pub const MAX_ID_LEN: usize = 128;

/// The stable name of an artifact. Cheap to clone (a shared string), ordered by its
/// text, which is the order every report and checksum uses.
#[derive(Component, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[component(immutable)]
pub struct ArtifactId(Arc<str>);

/// Why a string is not a valid artifact id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an artifact id cannot be empty")]
    Empty,
    #[error("artifact id is {len} characters long; the limit is {MAX_ID_LEN}")]
    TooLong { len: usize },
    #[error("artifact id {id:?} contains {ch:?}; ids use only A-Z a-z 0-9 _ . : -")]
    BadChar { id: String, ch: char },
}

impl ArtifactId {
    /// Validates `s` against the id rules and makes an id of it.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        validate_id(s)?;
        Ok(Self(Arc::from(s)))
    }

    /// An id the kernel itself names (built-in artifacts, ids already validated as
    /// part of a larger value). Checked in debug builds.
    pub(crate) fn trusted(s: &str) -> Self {
        debug_assert!(validate_id(s).is_ok(), "{s:?} is not a valid id");
        Self(Arc::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the id rules without allocating.
pub fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.chars().count() });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(IdError::BadChar { id: s.to_owned(), ch });
    }
    Ok(())
}

impl Borrow<str> for ArtifactId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ArtifactId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ArtifactId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ArtifactId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for ArtifactId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ArtifactId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ArtifactId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Index from id to entity, plus the order in which artifacts were created.
///
/// Creation order is what discovery paginates over: it is deterministic, append-only
/// (artifacts are tombstoned, not removed) and costs one `Entity` per artifact, where a
/// second, sorted index would cost a tree node.
#[derive(Resource, Default)]
pub struct Ids {
    by_id: HashMap<ArtifactId, Entity>,
    order: Vec<Entity>,
}

impl Ids {
    pub fn get(&self, id: &str) -> Option<Entity> {
        self.by_id.get(id).copied()
    }

    /// The entity of `id` together with the shared id itself (cloning it is cheap).
    pub fn resolve(&self, id: &str) -> Option<(&ArtifactId, Entity)> {
        self.by_id.get_key_value(id).map(|(id, entity)| (id, *entity))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Number of artifacts ever created that still have an entity (tombstones included).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every artifact entity, oldest first.
    pub fn in_creation_order(&self) -> &[Entity] {
        &self.order
    }
}

/// Registers the observers that keep [`Ids`] in sync with the world.
pub(crate) fn plugin(app: &mut bevy_app::App) {
    app.init_resource::<Ids>()
        .add_observer(order_new_id)
        .add_observer(index_id)
        .add_observer(unindex_id)
        .add_observer(unorder_id);
}

fn order_new_id(add: On<Add<ArtifactId>>, mut ids: ResMut<Ids>) {
    ids.order.push(add.entity);
}

fn index_id(insert: On<Insert<ArtifactId>>, query: Query<&ArtifactId>, mut ids: ResMut<Ids>) {
    if let Ok(id) = query.get(insert.entity) {
        ids.by_id.insert(id.clone(), insert.entity);
    }
}

fn unindex_id(discard: On<Discard<ArtifactId>>, query: Query<&ArtifactId>, mut ids: ResMut<Ids>) {
    if let Ok(id) = query.get(discard.entity) {
        // Only forget the mapping if it still points here; a different entity may
        // legitimately hold the id after a world reload.
        if ids.by_id.get(id.as_str()) == Some(&discard.entity) {
            ids.by_id.remove(id.as_str());
        }
    }
}

fn unorder_id(remove: On<Remove<ArtifactId>>, mut ids: ResMut<Ids>) {
    // Removal only happens when a world is torn down or reloaded, never in a run:
    // deleted artifacts are tombstoned. A linear scan is fine for that.
    let entity = remove.entity;
    ids.order.retain(|e| *e != entity);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        assert!(ArtifactId::parse("alice").is_ok());
        assert!(ArtifactId::parse("a.b:c-d_e9").is_ok());
        assert_eq!(ArtifactId::parse(""), Err(IdError::Empty));
        assert!(matches!(ArtifactId::parse("a b"), Err(IdError::BadChar { ch: ' ', .. })));
        assert!(matches!(ArtifactId::parse("é"), Err(IdError::BadChar { .. })));
        assert!(ArtifactId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(ArtifactId::parse(&"x".repeat(129)), Err(IdError::TooLong { len: 129 }));
    }

    #[test]
    fn index_follows_spawn_and_despawn() {
        let mut app = bevy_app::App::new();
        plugin(&mut app);
        let world = app.world_mut();
        let a = world.spawn(ArtifactId::parse("a").unwrap()).id();
        let b = world.spawn(ArtifactId::parse("b").unwrap()).id();
        assert_eq!(world.resource::<Ids>().get("a"), Some(a));
        assert_eq!(world.resource::<Ids>().in_creation_order(), &[a, b]);
        world.despawn(a);
        assert_eq!(world.resource::<Ids>().get("a"), None);
        assert_eq!(world.resource::<Ids>().in_creation_order(), &[b]);
    }
}
