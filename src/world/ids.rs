//! Artifact ids and the index from id to entity.
//!
//! Every artifact, agent and principal shares one namespace of ids: 1–128 characters
//! of `[A-Za-z0-9_.:-]`. An id is validated once, where it enters the program
//! ([`ArtifactId::parse`]), and is an immutable component afterwards, so the [`Ids`]
//! index can be maintained entirely by observers: an id is indexed when it is inserted
//! and unindexed only when its entity loses it. Ids are never reused, not even after
//! deletion: a tombstoned artifact keeps its entity, its id and its place in the index.
//!
//! Memory matters here — a world may hold hundreds of thousands of artifacts — so ids
//! of up to 23 bytes are stored inline (no allocation, copies instead of reference
//! counts), and the index stores only entities, hashed by id: the id itself is read
//! from the entity when a lookup needs to confirm a match.

use std::{borrow::Borrow, fmt, hash::BuildHasher};

use bevy_ecs::prelude::*;
use bevy_platform::{collections::HashTable, hash::FixedHasher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

/// The longest id the kernel accepts, in bytes (ids are ASCII, so also characters).
pub const MAX_ID_LEN: usize = 128;

/// The stable name of an artifact. Cheap to clone (inline up to 23 bytes, shared
/// beyond), ordered by its text, which is the order every report and checksum uses.
#[derive(Component, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[component(immutable)]
pub struct ArtifactId(SmolStr);

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
        Ok(Self(SmolStr::new(s)))
    }

    /// An id the kernel itself names (built-in artifacts, ids already validated as
    /// part of a larger value). Checked in debug builds.
    pub(crate) fn trusted(s: &str) -> Self {
        debug_assert!(validate_id(s).is_ok(), "{s:?} is not a valid id");
        Self(SmolStr::new(s))
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
    if let Some(ch) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
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
/// (artifacts are tombstoned, not removed; an artifact whose creation is rolled back
/// was the newest) and costs one `Entity` per artifact, where a second, sorted index
/// would cost a tree node.
#[derive(Resource, Default)]
pub struct Ids {
    /// Entities, hashed by their id.
    by_id: HashTable<Entity>,
    order: Vec<Entity>,
}

fn hash_id(id: &str) -> u64 {
    FixedHasher.hash_one(id)
}

/// Whether `entity` carries `id`.
fn holds(world: &World, entity: Entity, id: &str) -> bool {
    world.get::<ArtifactId>(entity).is_some_and(|held| held.as_str() == id)
}

impl Ids {
    /// The entity of `id` in `world` (the world this index belongs to).
    pub fn get(&self, world: &World, id: &str) -> Option<Entity> {
        self.by_id.find(hash_id(id), |&e| holds(world, e, id)).copied()
    }

    /// The entity of `id` together with the id as stored on it.
    pub fn resolve<'w>(&self, world: &'w World, id: &str) -> Option<(&'w ArtifactId, Entity)> {
        let entity = self.get(world, id)?;
        Some((world.get::<ArtifactId>(entity)?, entity))
    }

    pub fn contains(&self, world: &World, id: &str) -> bool {
        self.get(world, id).is_some()
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

/// The entity of artifact `id` in `world`.
pub fn lookup(world: &World, id: &str) -> Option<Entity> {
    world.resource::<Ids>().get(world, id)
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
    let entity = insert.entity;
    let Ok(id) = query.get(entity) else { return };
    let same_id = |e: &Entity| query.get(*e).is_ok_and(|held| held == id);
    // A different entity may hold the id after a world reload: the newest wins.
    if let Some(slot) = ids.by_id.find_mut(hash_id(id.as_str()), same_id) {
        *slot = entity;
        return;
    }
    // Growing the table rehashes every entry, reading each id from its entity.
    let rehash = |e: &Entity| query.get(*e).map_or(0, |held| hash_id(held.as_str()));
    ids.by_id.insert_unique(hash_id(id.as_str()), entity, rehash);
}

fn unindex_id(discard: On<Discard<ArtifactId>>, query: Query<&ArtifactId>, mut ids: ResMut<Ids>) {
    let entity = discard.entity;
    let Ok(id) = query.get(entity) else { return };
    if let Ok(slot) = ids.by_id.find_entry(hash_id(id.as_str()), |e| *e == entity) {
        slot.remove();
    }
}

fn unorder_id(remove: On<Remove<ArtifactId>>, mut ids: ResMut<Ids>) {
    // Deleted artifacts are tombstoned, never removed. An entity goes only when a
    // world is torn down or reloaded, or when the action that created it is rolled
    // back — and then it is the newest (roll-backs undo newest first).
    let entity = remove.entity;
    if ids.order.last() == Some(&entity) {
        ids.order.pop();
    } else {
        ids.order.retain(|e| *e != entity);
    }
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
        let long = "l".repeat(100);
        let c = world.spawn(ArtifactId::parse(&long).unwrap()).id();
        // Enough entries to make the table grow (and rehash) several times.
        let many: Vec<Entity> =
            (0..1000).map(|i| world.spawn(ArtifactId::parse(&format!("m{i}")).unwrap()).id()).collect();
        assert_eq!(lookup(world, "a"), Some(a));
        assert_eq!(lookup(world, &long), Some(c));
        assert_eq!(lookup(world, "m999"), Some(many[999]));
        assert_eq!(lookup(world, "m1000"), None);
        assert_eq!(&world.resource::<Ids>().in_creation_order()[..3], &[a, b, c]);
        world.despawn(a);
        assert_eq!(lookup(world, "a"), None);
        assert_eq!(lookup(world, "b"), Some(b));
        assert_eq!(world.resource::<Ids>().in_creation_order()[0], b);
        assert_eq!(world.resource::<Ids>().len(), 1002);
    }
}
