//! The indices behind discovery: which artifacts are of each kind, owned by each
//! principal, offer each interface tool, or hold each capability.
//!
//! A query by any of these answers from a list of creation positions, so its cost
//! follows what it returns, not how many artifacts exist. The lists are sorted by
//! position — the same position `kernel.query` cursors count in — and new artifacts
//! have the highest position, so keeping them sorted is an append almost always.
//!
//! The index is derived, never saved: observers note every entity whose indexed
//! parts may have changed (an id, standing, a loop, code, an interface, a tombstone,
//! capabilities) and the few in-place edits that no observer sees (an ownership move,
//! a grant) say so through [`touch`]; the notes are applied when the next query
//! comes. Tombstoned artifacts are in no list: a query that includes them scans.

use bevy_ecs::{entity::EntityHashMap, prelude::*};
use bevy_platform::collections::HashMap;
use smol_str::SmolStr;

use super::{
    Standing,
    query::{ArtifactKind, kind_of},
};
use crate::world::{
    components::{Artifact, Capabilities, Executable, Grants, Interface, Loop, Service, Tombstone},
    ids::{ArtifactId, Ids},
};

/// What an artifact is indexed under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keys {
    kind: ArtifactKind,
    owner: ArtifactId,
    tools: Box<[SmolStr]>,
    capabilities: Box<[SmolStr]>,
}

/// Where an artifact sits in creation order, and what it is indexed under (none
/// while it is tombstoned or has no artifact part).
#[derive(Debug)]
struct Entry {
    position: u32,
    keys: Option<Keys>,
}

/// Creation positions of live artifacts, by kind, owner, tool and capability.
#[derive(Resource, Default)]
pub struct Discovery {
    entries: EntityHashMap<Entry>,
    /// Positions handed out so far (mirrors the length of [`Ids`]' creation order).
    created: u32,
    kinds: [Vec<u32>; ArtifactKind::ALL.len()],
    owners: HashMap<ArtifactId, Vec<u32>>,
    tools: HashMap<SmolStr, Vec<u32>>,
    capabilities: HashMap<SmolStr, Vec<u32>>,
    /// Entities whose keys may have changed since the last [`refresh`].
    dirty: Vec<Entity>,
    /// Positions no longer follow creation order (an entity left from the middle,
    /// as when a world is torn down): rebuild from scratch.
    stale: bool,
}

impl Discovery {
    /// Live artifacts of `kind`, by creation position.
    pub fn of_kind(&self, kind: ArtifactKind) -> &[u32] {
        &self.kinds[kind as usize]
    }

    /// Live artifacts owned by `owner`.
    pub fn owned_by(&self, owner: &str) -> &[u32] {
        self.owners.get(owner).map_or(&[], Vec::as_slice)
    }

    /// Live artifacts whose interface offers a tool named `tool`.
    pub fn offering(&self, tool: &str) -> &[u32] {
        self.tools.get(tool).map_or(&[], Vec::as_slice)
    }

    /// Live principals holding `capability` (from creation or granted).
    pub fn holding(&self, capability: &str) -> &[u32] {
        self.capabilities.get(capability).map_or(&[], Vec::as_slice)
    }

    fn note(&mut self, entity: Entity) {
        // Spawning inserts several indexed parts in a row: note the entity once.
        if self.dirty.last() != Some(&entity) {
            self.dirty.push(entity);
        }
    }

    fn unindex(&mut self, position: u32, keys: &Keys) {
        remove_sorted(&mut self.kinds[keys.kind as usize], position);
        remove_from(&mut self.owners, keys.owner.as_str(), position);
        for tool in &keys.tools {
            remove_from(&mut self.tools, tool, position);
        }
        for capability in &keys.capabilities {
            remove_from(&mut self.capabilities, capability, position);
        }
    }

    fn index(&mut self, position: u32, keys: &Keys) {
        insert_sorted(&mut self.kinds[keys.kind as usize], position);
        insert_sorted(self.owners.entry(keys.owner.clone()).or_default(), position);
        for tool in &keys.tools {
            insert_sorted(self.tools.entry(tool.clone()).or_default(), position);
        }
        for capability in &keys.capabilities {
            insert_sorted(self.capabilities.entry(capability.clone()).or_default(), position);
        }
    }

    /// Re-reads one entity's keys and moves it between lists if they changed.
    fn reindex(&mut self, world: &World, entity: Entity) {
        let keys = keys_of(world, entity);
        let Some(entry) = self.entries.get_mut(&entity) else { return };
        if entry.keys == keys {
            return;
        }
        let (position, old) = (entry.position, std::mem::replace(&mut entry.keys, keys.clone()));
        if let Some(old) = old {
            self.unindex(position, &old);
        }
        if let Some(keys) = keys {
            self.index(position, &keys);
        }
    }

    fn rebuild(&mut self, world: &World) {
        let order = world.resource::<Ids>().in_creation_order();
        *self = Self { created: order.len() as u32, ..Self::default() };
        for (position, &entity) in order.iter().enumerate() {
            let keys = keys_of(world, entity);
            if let Some(keys) = &keys {
                // Positions come in increasing order: every insert is an append.
                self.index(position as u32, keys);
            }
            self.entries.insert(entity, Entry { position: position as u32, keys });
        }
    }
}

/// Brings the index up to date with the world (before a query reads it).
pub fn refresh(world: &mut World) {
    world.resource_scope(|world, mut discovery: Mut<Discovery>| {
        // A world filled without the observers (or torn down in part) is reindexed
        // whole; so is one where most of it changed, which is cheaper in one pass.
        let ids = world.resource::<Ids>().in_creation_order().len();
        let out_of_step = discovery.entries.len() != ids || discovery.created as usize != ids;
        if discovery.stale || out_of_step || discovery.dirty.len() > ids / 2 + 64 {
            discovery.rebuild(world);
            return;
        }
        let mut dirty = std::mem::take(&mut discovery.dirty);
        for &entity in &dirty {
            discovery.reindex(world, entity);
        }
        dirty.clear();
        discovery.dirty = dirty;
    });
}

/// Notes an in-place change of what `entity` is indexed under (an owner, a grant)
/// that no observer sees.
pub(crate) fn touch(world: &mut World, entity: Entity) {
    if let Some(mut discovery) = world.get_resource_mut::<Discovery>() {
        discovery.note(entity);
    }
}

fn keys_of(world: &World, entity: Entity) -> Option<Keys> {
    if world.get::<Tombstone>(entity).is_some() {
        return None;
    }
    let artifact = world.get::<Artifact>(entity)?;
    let tools = world
        .get::<Interface>(entity)
        .map(|i| {
            let mut names: Vec<SmolStr> = i.tools.iter().map(|t| SmolStr::new(&t.name)).collect();
            names.sort();
            names.dedup();
            names.into_boxed_slice()
        })
        .unwrap_or_default();
    let mut capabilities: Vec<SmolStr> = world
        .get::<Capabilities>(entity)
        .into_iter()
        .flat_map(|c| c.iter())
        .chain(world.get::<Grants>(entity).into_iter().flat_map(|g| g.iter().map(|(name, _)| name)))
        .map(SmolStr::new)
        .collect();
    capabilities.sort();
    capabilities.dedup();
    Some(Keys {
        kind: kind_of(world, entity),
        owner: artifact.owner().clone(),
        tools,
        capabilities: capabilities.into_boxed_slice(),
    })
}

fn insert_sorted(list: &mut Vec<u32>, position: u32) {
    match list.last() {
        Some(&last) if last >= position => {
            if let Err(at) = list.binary_search(&position) {
                list.insert(at, position);
            }
        }
        _ => list.push(position),
    }
}

fn remove_sorted(list: &mut Vec<u32>, position: u32) {
    if let Ok(at) = list.binary_search(&position) {
        list.remove(at);
    }
}

fn remove_from(
    map: &mut HashMap<impl std::borrow::Borrow<str> + Eq + std::hash::Hash, Vec<u32>>,
    key: &str,
    position: u32,
) {
    if let Some(list) = map.get_mut(key) {
        remove_sorted(list, position);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// Registers the index and the observers that keep it in step with the world.
pub(crate) fn plugin(app: &mut bevy_app::App) {
    app.init_resource::<Discovery>().add_observer(place_new).add_observer(forget_gone);
    watch::<Artifact>(app);
    watch::<Tombstone>(app);
    watch::<Standing>(app);
    watch::<Loop>(app);
    watch::<Service>(app);
    watch::<Executable>(app);
    watch::<Interface>(app);
    watch::<Capabilities>(app);
    watch::<Grants>(app);
}

/// Notes entities that gain, replace or lose a `T`.
fn watch<T: Component>(app: &mut bevy_app::App) {
    app.add_observer(|insert: On<Insert<T>>, mut discovery: ResMut<Discovery>| discovery.note(insert.entity))
        .add_observer(|remove: On<Remove<T>>, mut discovery: ResMut<Discovery>| discovery.note(remove.entity));
}

/// A new id takes the next creation position, as in [`Ids`].
fn place_new(add: On<Add<ArtifactId>>, mut discovery: ResMut<Discovery>) {
    let position = discovery.created;
    discovery.created += 1;
    discovery.entries.insert(add.entity, Entry { position, keys: None });
    discovery.note(add.entity);
}

/// An entity leaves: only the newest can without shifting every later position
/// (roll-backs undo newest first); anything else calls for a rebuild.
fn forget_gone(remove: On<Remove<ArtifactId>>, mut discovery: ResMut<Discovery>) {
    let Some(entry) = discovery.entries.remove(&remove.entity) else { return };
    if let Some(keys) = &entry.keys {
        discovery.unindex(entry.position, keys);
    }
    if entry.position + 1 == discovery.created {
        discovery.created -= 1;
    } else {
        discovery.stale = true;
    }
}
