//! Creating, replacing, editing, deleting and reading artifacts.
//!
//! Disk is charged to the artifact's *owner*: a principal's `disk_used` is always the
//! byte total of the live artifacts it owns, counting every part they store (content,
//! code, description, metadata, interface), so no part is free storage. Growth needs
//! free allocation; shrinking and deleting give it back.
//!
//! Writing code also records what it imports ([`super::imports`]): the bytes charged
//! for an import are part of the importing artifact's size.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    ErrorCode, EventKind, Kernel, KernelError, Standing,
    contracts::{self, Permission},
    imports::PlannedImports,
    journal::{self, Undo},
    query, state,
};
use crate::world::{
    components::{
        AccessContract, Artifact, ArtifactDetails, Executable, Imports, Interface, Loop, Metadata, Pricing, Tombstone,
        stored_bytes,
    },
    ids::{self, ArtifactId},
    time::SimTime,
};

/// Create an artifact, or replace parts of an existing one. Fields left out of a
/// replacement keep their current value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// JavaScript source; makes the artifact executable and needs an interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<Interface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Id of the access contract (only the owner may change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Prices and resource policy (only the owner may change them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// Which text of an artifact an edit changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditField {
    #[default]
    Content,
    Code,
}

/// Replace the one occurrence of `old` with `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSpec {
    pub id: String,
    pub old: String,
    pub new: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub field: EditField,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// What a successful write, edit or delete did to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChange {
    pub id: ArtifactId,
    /// Bytes the artifact occupies now.
    pub bytes: u64,
    /// Change in the owner's disk usage (negative: freed).
    pub disk_delta: i64,
    pub charged_to: ArtifactId,
    /// The artifact did not exist before (a write that created it).
    pub created: bool,
}

impl Kernel<'_> {
    /// Creates artifact `spec.id` owned by the caller, or replaces parts of it if it
    /// exists and its contract lets the caller write.
    pub fn write(&mut self, spec: WriteSpec) -> Result<DiskChange, KernelError> {
        if let Some(contract) = &spec.contract
            && !contracts::is_attachable(self.world, contract)
        {
            return Err(KernelError::invalid(format!(
                "unknown contract {contract:?}: a contract is one of freeware, public, private and self_owned, \
                 or an artifact with code exporting check_permission"
            ))
            .with("contract", contract.as_str()));
        }
        if let Some(interface) = &spec.interface {
            interface.validate().map_err(|e| KernelError::invalid(format!("interface: {e}")))?;
        }
        match ids::lookup(self.world, &spec.id) {
            Some(entity) => self.replace(entity, spec),
            None => self.create(spec),
        }
    }

    fn create(&mut self, spec: WriteSpec) -> Result<DiskChange, KernelError> {
        let id = self.new_id(&spec.id)?;
        if spec.code.is_some() && spec.interface.is_none() {
            return Err(code_needs_interface(&spec.id));
        }
        let planned = match spec.code.as_deref() {
            Some(code) => self.plan_imports(id.as_str(), code, None)?,
            None => PlannedImports::default(),
        };
        let content = spec.content.unwrap_or_default();
        let bytes = stored_bytes(
            &content,
            spec.code.as_deref(),
            spec.description.as_deref().unwrap_or(""),
            spec.metadata.as_ref().unwrap_or(&Metadata::new()),
            spec.interface.as_ref(),
        ) + planned.imports.bytes();
        self.ensure_disk(self.caller_entity, bytes as i64)?;
        self.ensure_scrip_for_write(planned.price(), id.as_str())?;
        self.pay_for_imports(&planned)?;
        self.use_disk(self.caller_entity, bytes as i64)?;
        let mut artifact = Artifact {
            owner: self.caller.clone(),
            created_at: self.now,
            updated_at: self.now,
            content: content.into_boxed_str(),
            details: None,
        };
        artifact.set_details(spec.description, spec.metadata);
        let mut entity = self.world.spawn((id.clone(), artifact));
        if let Some(interface) = spec.interface {
            entity.insert(interface);
        }
        if let Some(code) = spec.code {
            entity.insert(Executable::new(code.into()));
        }
        if let Some(contract) = spec.contract.filter(|c| c != "freeware") {
            entity.insert(AccessContract(ArtifactId::trusted(&contract)));
        }
        if let Some(pricing) = spec.pricing {
            entity.insert(pricing);
        }
        let entity = entity.id();
        journal::record(self.world, Undo::Created(entity));
        self.record_imports(entity, &id, planned.imports);
        let charged_to = self.caller.clone();
        self.emit(EventKind::ArtifactWritten {
            id: id.clone(),
            created: true,
            bytes,
            disk_delta: bytes as i64,
            charged_to: charged_to.clone(),
        });
        Ok(DiskChange { id, bytes, disk_delta: bytes as i64, charged_to, created: true })
    }

    /// The bytes `entity` would occupy once `spec` is applied (parts it leaves out
    /// keep their current value).
    fn bytes_after(&self, entity: Entity, spec: &WriteSpec) -> u64 {
        let artifact = self.world.get::<Artifact>(entity);
        let details = artifact.and_then(|a| a.details.as_deref());
        let no_metadata = Metadata::new();
        stored_bytes(
            spec.content.as_deref().or(artifact.map(|a| &*a.content)).unwrap_or(""),
            spec.code.as_deref().or(self.world.get::<Executable>(entity).map(|x| &*x.code)),
            spec.description.as_deref().or(details.map(|d| d.description.as_str())).unwrap_or(""),
            spec.metadata.as_ref().or(details.map(|d| &d.metadata)).unwrap_or(&no_metadata),
            spec.interface.as_ref().or(self.world.get::<Interface>(entity)),
        )
    }

    fn replace(&mut self, entity: Entity, spec: WriteSpec) -> Result<DiskChange, KernelError> {
        if self.world.get::<Tombstone>(entity).is_some() {
            return Err(KernelError::deleted(&spec.id));
        }
        let fee = self.check_access(entity, Permission::Write, serde_json::json!({}))?;
        let (id, owner) = self.id_and_owner(entity)?;
        if (spec.contract.is_some() || spec.pricing.is_some()) && owner != self.caller {
            return Err(KernelError::new(
                ErrorCode::NotOwner,
                format!("only {owner} may change the contract or prices of {id}"),
            )
            .with("id", id.as_str())
            .with("owner", owner.as_str()));
        }
        let has_interface = self.world.get::<Interface>(entity).is_some_and(|i| !i.tools.is_empty());
        if spec.code.is_some() && spec.interface.is_none() && !has_interface {
            return Err(code_needs_interface(&spec.id));
        }
        // New code brings its imports; other writes keep the ones there are.
        let current_imports = self.world.get::<Imports>(entity).cloned();
        let planned = match spec.code.as_deref() {
            Some(code) => Some(self.plan_imports(id.as_str(), code, current_imports.as_ref())?),
            None => None,
        };
        let import_bytes = planned.as_ref().map(|p| &p.imports).or(current_imports.as_ref()).map_or(0, Imports::bytes);
        let import_price = planned.as_ref().map_or(0, PlannedImports::price);
        let old_bytes = state::artifact_bytes(self.world, entity);
        let content_only =
            spec.code.is_none() && spec.interface.is_none() && spec.description.is_none() && spec.metadata.is_none();
        let bytes = if content_only {
            // The most common write (an agent's memory): only the content's length moves.
            let old_content = self.world.get::<Artifact>(entity).map_or(0, |a| a.content.len() as u64);
            old_bytes - old_content + spec.content.as_ref().map_or(old_content, |c| c.len() as u64)
        } else {
            self.bytes_after(entity, &spec) + import_bytes
        };
        let disk_delta = bytes as i64 - old_bytes as i64;
        let owner_entity = self.owner_entity(&owner)?;
        self.ensure_disk(owner_entity, disk_delta)?;
        if import_price > 0 {
            // Both are paid before anything changes; the fee only by a writer who is
            // not the owner.
            let fee_due = if self.pays_itself(&owner) { 0 } else { fee };
            self.ensure_scrip_for_write(fee_due + import_price, id.as_str())?;
        }
        self.pay(fee, &owner, &id)?;
        if let Some(planned) = &planned {
            self.pay_for_imports(planned)?;
        }
        self.use_disk(owner_entity, disk_delta)?;

        let touched = Touched {
            code: spec.code.is_some(),
            interface: spec.interface.is_some(),
            contract: spec.contract.is_some(),
            pricing: spec.pricing.is_some(),
            tombstone: false,
        };
        let mut before = parts_before(self.world, entity, touched);
        let now = self.now;
        let mut target = self.world.entity_mut(entity);
        if let Some(mut artifact) = target.get_mut::<Artifact>() {
            let details = spec.description.is_some() || spec.metadata.is_some();
            if let Some(before) = before.as_mut() {
                before.keep_artifact(&artifact, details);
            }
            if let Some(content) = spec.content {
                let old = std::mem::replace(&mut artifact.content, content.into_boxed_str());
                if let Some(before) = before.as_mut() {
                    before.content = Some(old);
                }
            }
            artifact.set_details(spec.description, spec.metadata);
            artifact.updated_at = now;
        }
        if let Some(interface) = spec.interface {
            target.insert(interface);
        }
        let new_code = spec.code.is_some();
        if let Some(code) = spec.code {
            target.insert(Executable::new(code.into()));
        }
        match spec.contract.as_deref() {
            Some("freeware") => {
                target.remove::<AccessContract>();
            }
            Some(contract) => {
                target.insert(AccessContract(ArtifactId::trusted(contract)));
            }
            None => {}
        }
        if let Some(pricing) = spec.pricing {
            target.insert(pricing);
        }
        if let Some(planned) = planned {
            self.record_imports(entity, &id, planned.imports);
        }
        if new_code {
            // New code deserves a new chance.
            crate::agents::resume(self.world, entity, &self.caller.clone());
        }
        record_parts(self.world, entity, before);
        self.emit(EventKind::ArtifactWritten {
            id: id.clone(),
            created: false,
            bytes,
            disk_delta,
            charged_to: owner.clone(),
        });
        Ok(DiskChange { id, bytes, disk_delta, charged_to: owner, created: false })
    }

    /// Replaces the single occurrence of `spec.old`. Zero or several occurrences
    /// (overlapping ones included) are `INVALID_ARGS`: an edit must be unambiguous.
    pub fn edit(&mut self, spec: EditSpec) -> Result<DiskChange, KernelError> {
        let entity = self.live(&spec.id)?;
        let fee = self.check_access(entity, Permission::Edit, serde_json::json!({}))?;
        if spec.old.is_empty() {
            return Err(KernelError::invalid("the text to replace (old) is empty"));
        }
        let text: &str = match spec.field {
            EditField::Content => self.world.get::<Artifact>(entity).map_or("", |a| &a.content),
            EditField::Code => match self.world.get::<Executable>(entity) {
                Some(x) => &x.code,
                None => return Err(KernelError::invalid(format!("{} has no code to edit", spec.id))),
            },
        };
        let Some(at) = text.find(&spec.old) else {
            return Err(
                KernelError::invalid(format!("{:?} does not occur in {}", spec.old, spec.id)).with("occurrences", 0)
            );
        };
        let next = at + spec.old.chars().next().map_or(1, char::len_utf8);
        if text[next..].contains(&spec.old) {
            let occurrences = count_overlapping(text, &spec.old);
            return Err(KernelError::invalid(format!(
                "{:?} occurs {occurrences} times in {}; an edit must match exactly once",
                spec.old, spec.id
            ))
            .with("occurrences", occurrences));
        }
        let edited = [&text[..at], spec.new.as_str(), &text[at + spec.old.len()..]].concat();
        let (id, owner) = self.id_and_owner(entity)?;
        let current_imports = self.world.get::<Imports>(entity).cloned();
        let planned = match spec.field {
            EditField::Code => Some(self.plan_imports(id.as_str(), &edited, current_imports.as_ref())?),
            EditField::Content => None,
        };
        let import_delta = planned
            .as_ref()
            .map_or(0, |new| new.imports.bytes() as i64 - current_imports.as_ref().map_or(0, Imports::bytes) as i64);
        let import_price = planned.as_ref().map_or(0, PlannedImports::price);
        let disk_delta = spec.new.len() as i64 - spec.old.len() as i64 + import_delta;
        let owner_entity = self.owner_entity(&owner)?;
        self.ensure_disk(owner_entity, disk_delta)?;
        if import_price > 0 {
            // Both are paid before anything changes; the fee only by a writer who is
            // not the owner.
            let fee_due = if self.pays_itself(&owner) { 0 } else { fee };
            self.ensure_scrip_for_write(fee_due + import_price, id.as_str())?;
        }
        self.pay(fee, &owner, &id)?;
        if let Some(planned) = &planned {
            self.pay_for_imports(planned)?;
        }
        self.use_disk(owner_entity, disk_delta)?;
        let mut before =
            parts_before(self.world, entity, Touched { code: spec.field == EditField::Code, ..Touched::default() });
        let now = self.now;
        let mut target = self.world.entity_mut(entity);
        if let (Some(before), Some(artifact)) = (before.as_mut(), target.get::<Artifact>()) {
            before.keep_artifact(artifact, false);
        }
        match spec.field {
            EditField::Content => {
                if let Some(mut artifact) = target.get_mut::<Artifact>() {
                    let old = std::mem::replace(&mut artifact.content, edited.into_boxed_str());
                    if let Some(before) = before.as_mut() {
                        before.content = Some(old);
                    }
                }
            }
            EditField::Code => {
                target.insert(Executable::new(edited.into()));
            }
        }
        if let Some(planned) = planned {
            self.record_imports(entity, &id, planned.imports);
        }
        if spec.field == EditField::Code {
            crate::agents::resume(self.world, entity, &self.caller.clone());
        }
        let mut target = self.world.entity_mut(entity);
        if let Some(mut artifact) = target.get_mut::<Artifact>() {
            artifact.updated_at = now;
        }
        record_parts(self.world, entity, before);
        let bytes = state::artifact_bytes(self.world, entity);
        self.emit(EventKind::ArtifactEdited { id: id.clone(), bytes, disk_delta, charged_to: owner.clone() });
        Ok(DiskChange { id, bytes, disk_delta, charged_to: owner, created: false })
    }

    /// Tombstones an artifact and returns its bytes to the owner. The id stays taken.
    pub fn delete(&mut self, id: &str) -> Result<DiskChange, KernelError> {
        let entity = self.live(id)?;
        if self.world.get::<Standing>(entity).is_some() {
            return Err(KernelError::invalid(format!("{id} is a principal; principals cannot be deleted")));
        }
        let fee = self.check_access(entity, Permission::Delete, serde_json::json!({}))?;
        let (artifact_id, owner) = self.id_and_owner(entity)?;
        let bytes = state::artifact_bytes(self.world, entity);
        let owner_entity = self.owner_entity(&owner)?;
        self.pay(fee, &owner, &artifact_id)?;
        self.use_disk(owner_entity, -(bytes as i64))?;
        let tombstone = Tombstone { deleted_at: self.now, deleted_by: self.caller.clone() };
        let mut before =
            parts_before(self.world, entity, Touched { code: true, tombstone: true, ..Touched::default() });
        let now = self.now;
        let mut target = self.world.entity_mut(entity);
        // The bytes are freed, so they go: a tombstone keeps who and when, not what.
        if let Some(mut artifact) = target.get_mut::<Artifact>() {
            if let Some(before) = before.as_mut() {
                before.keep_artifact(&artifact, false);
            }
            let old = std::mem::replace(&mut artifact.content, Box::from(""));
            if let Some(before) = before.as_mut() {
                before.content = Some(old);
            }
            artifact.updated_at = now;
        }
        // Its imports' bytes were part of it, and are freed with it.
        target.remove::<(Executable, Imports)>();
        target.insert(tombstone);
        record_parts(self.world, entity, before);
        self.emit(EventKind::ArtifactDeleted { id: artifact_id.clone(), disk_freed: bytes, charged_to: owner.clone() });
        Ok(DiskChange { id: artifact_id, bytes: 0, disk_delta: -(bytes as i64), charged_to: owner, created: false })
    }

    /// Reads an artifact: its metadata plus content and code. A reader other than the
    /// owner pays the artifact's `read_price` in scrip to the owner.
    pub fn read(&mut self, id: &str) -> Result<(serde_json::Value, u64), KernelError> {
        let entity = self.live(id)?;
        let fee = self.check_access(entity, Permission::Read, serde_json::json!({}))?;
        let (artifact_id, owner) = self.id_and_owner(entity)?;
        // Earnings of an artifact listed in escrow go to its seller.
        let owner = crate::economy::escrow::beneficiary(self.world, &artifact_id, &owner);
        let read_price = self.world.get::<Pricing>(entity).map_or(0, |p| p.read_price);
        let price = if self.pays_itself(&owner) { 0 } else { read_price + fee };
        let paid_by = self.pay(price, &owner, &artifact_id)?;
        let mut value = query::metadata(self.world, entity);
        if let Some(fields) = value.as_object_mut() {
            let content = self.world.get::<Artifact>(entity).map_or("", |a| a.content()).to_owned();
            fields.insert("content".into(), content.into());
            if let Some(x) = self.world.get::<Executable>(entity) {
                fields.insert("code".into(), x.code().into());
            }
        }
        let price = if paid_by.is_some() { price } else { 0 };
        let paid_to = paid_by.is_some().then_some(owner);
        self.emit(EventKind::ArtifactRead { id: artifact_id, price, paid_to, paid_by });
        Ok((value, price))
    }

    fn id_and_owner(&self, entity: Entity) -> Result<(ArtifactId, ArtifactId), KernelError> {
        let id = self.world.get::<ArtifactId>(entity).cloned();
        let owner = self.world.get::<Artifact>(entity).map(|a| a.owner.clone());
        id.zip(owner).ok_or_else(|| KernelError::new(ErrorCode::NotFound, "artifact vanished"))
    }

    fn owner_entity(&self, owner: &ArtifactId) -> Result<Entity, KernelError> {
        self.principal(owner.as_str())
    }
}

/// Which parts of an artifact a change may touch, besides its `Artifact` (content,
/// details, timestamps), which every change touches.
#[derive(Debug, Clone, Copy, Default)]
struct Touched {
    /// Its code, with the imports it records and the loop that new code resumes.
    code: bool,
    interface: bool,
    contract: bool,
    pricing: bool,
    tombstone: bool,
}

/// The parts a change touches, as they were, so a roll-back can put them back. What
/// the change replaces of the `Artifact` itself is moved here rather than copied;
/// the other parts (`None`: not touched; `Some(None)`: absent) are boxed, since a
/// plain write touches none of them.
struct Parts {
    content: Option<Box<str>>,
    details: Option<Option<Box<ArtifactDetails>>>,
    updated_at: Option<SimTime>,
    others: Option<Box<OtherParts>>,
}

struct OtherParts {
    executable: Option<Option<Executable>>,
    imports: Option<Option<Imports>>,
    looping: Option<Option<Loop>>,
    interface: Option<Option<Interface>>,
    contract: Option<Option<AccessContract>>,
    pricing: Option<Option<Pricing>>,
    tombstone: Option<Option<Tombstone>>,
}

impl Parts {
    /// Keeps what a change of `artifact` does not move out itself: its time, and its
    /// details when they are about to change.
    fn keep_artifact(&mut self, artifact: &Artifact, details: bool) {
        self.updated_at = Some(artifact.updated_at);
        if details {
            self.details = Some(artifact.details.clone());
        }
    }
}

/// What a write, edit or delete is about to change of `entity`; the change fills in
/// what it moves out of the `Artifact`, and [`record_parts`] journals the lot as one
/// record if a transaction is open (asked there, once: finding the journal costs more
/// than this copy of what a plain write touches).
fn parts_before(world: &World, entity: Entity, touched: Touched) -> Option<Parts> {
    fn part<T: Component + Clone>(world: &World, entity: Entity, touched: bool) -> Option<Option<T>> {
        touched.then(|| world.get::<T>(entity).cloned())
    }
    let any = touched.code || touched.interface || touched.contract || touched.pricing || touched.tombstone;
    let others = any.then(|| {
        Box::new(OtherParts {
            executable: part(world, entity, touched.code),
            imports: part(world, entity, touched.code),
            looping: part(world, entity, touched.code),
            interface: part(world, entity, touched.interface),
            contract: part(world, entity, touched.contract),
            pricing: part(world, entity, touched.pricing),
            tombstone: part(world, entity, touched.tombstone),
        })
    });
    Some(Parts { content: None, details: None, updated_at: None, others })
}

fn record_parts(world: &mut World, entity: Entity, parts: Option<Parts>) {
    let Some(parts) = parts else { return };
    journal::record_with(world, move || match parts {
        // Only the content and the time changed (most writes): kept as it is.
        Parts { content: Some(content), details: None, updated_at: Some(updated_at), others: None } => {
            Undo::Content { entity, content, updated_at }
        }
        parts => Undo::Restore(Box::new(move |world: &mut World| restore_parts(world, entity, parts))),
    });
}

/// Puts back an artifact's content and time (a roll-back of a plain write).
pub(crate) fn restore_content(world: &mut World, entity: Entity, content: Box<str>, updated_at: SimTime) {
    if let Some(mut artifact) = world.get_mut::<Artifact>(entity) {
        artifact.content = content;
        artifact.updated_at = updated_at;
    }
}

fn restore_parts(world: &mut World, entity: Entity, parts: Parts) {
    fn put<T: Component>(target: &mut EntityWorldMut, part: Option<Option<T>>) {
        match part {
            Some(Some(part)) => {
                target.insert(part);
            }
            Some(None) => {
                target.remove::<T>();
            }
            None => {}
        }
    }
    let Ok(mut target) = world.get_entity_mut(entity) else { return };
    if let Some(mut artifact) = target.get_mut::<Artifact>() {
        if let Some(content) = parts.content {
            artifact.content = content;
        }
        if let Some(details) = parts.details {
            artifact.details = details;
        }
        if let Some(updated_at) = parts.updated_at {
            artifact.updated_at = updated_at;
        }
    }
    if let Some(others) = parts.others {
        put(&mut target, others.executable);
        put(&mut target, others.imports);
        put(&mut target, others.looping);
        put(&mut target, others.interface);
        put(&mut target, others.contract);
        put(&mut target, others.pricing);
        put(&mut target, others.tombstone);
    }
}

fn code_needs_interface(id: &str) -> KernelError {
    KernelError::invalid(format!("{id} has code but no interface; every executable needs one"))
        .with("id", id)
        .with("field", "interface")
}

fn count_overlapping(text: &str, needle: &str) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find(needle) {
        count += 1;
        from += at + needle.chars().next().map_or(1, char::len_utf8);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::count_overlapping;

    #[test]
    fn overlapping_occurrences_count() {
        assert_eq!(count_overlapping("aaa", "aa"), 2);
        assert_eq!(count_overlapping("abcabc", "abc"), 2);
        assert_eq!(count_overlapping("héhé", "é"), 2);
        assert_eq!(count_overlapping("x", "y"), 0);
    }
}
