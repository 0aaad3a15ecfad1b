//! Code libraries: artifacts whose code imports other artifacts' code.
//!
//! What code imports is read ([`crate::sandbox::modules`]) whenever code is written,
//! checked — every dependency exists, is not deleted, has code and exports what is
//! imported by name, and no cycle results — and recorded as the artifact's
//! [`Imports`]. The first time an artifact imports a dependency, its owner is charged
//! the dependency's code bytes, which from then on count as part of the importing
//! artifact's size (so the ledger's disk invariant holds, and the bytes go wherever
//! the artifact goes). Each edge also goes into the world's code graph
//! ([`Activity`]), where capital depth is measured.
//!
//! An import is a read of the dependency's code, made once: whoever writes the import
//! needs the dependency's contract to let them read it, and pays its `read_price`
//! (with any fee the contract asks) when the import first appears. Otherwise private
//! code could be run by anyone, and code sold by the read given away.
//!
//! Before code runs, the kernel resolves its dependencies, direct and not, to their
//! current code ([`closure`]): a dependency deleted since the import was written
//! makes the call fail, naming it; one rewritten since is used in its new version.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use bevy_ecs::prelude::*;

use super::{ErrorCode, EventKind, Kernel, KernelError, activity::Activity, contracts::Permission};
use crate::{
    sandbox::modules::{self, SCHEME},
    world::{
        components::{Artifact, Executable, Imports, Pricing, Tombstone},
        ids::{self, ArtifactId},
    },
};

/// Most modules one piece of code may import, directly or not: each is sent to the
/// worker and may be evaluated on every call.
pub const MAX_MODULES: usize = 256;

/// A module a call needs: an artifact's current code.
#[derive(Debug, Clone)]
pub(crate) struct ModuleCode {
    pub id: ArtifactId,
    pub code: Arc<str>,
    pub code_hash: u64,
}

/// The imports code will have once written, and what the writer pays for the new ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlannedImports {
    pub imports: Imports,
    /// Each new import's read of its dependency's code.
    reads: Vec<ImportRead>,
}

/// A new import's read: the dependency, who is paid (if anyone) and how much.
#[derive(Debug, Clone)]
struct ImportRead {
    dep: ArtifactId,
    /// Who is paid (the dependency's owner, or its seller while it is listed).
    owner: ArtifactId,
    price: u64,
}

impl PlannedImports {
    /// Scrip the writer pays for reading the new imports' code.
    pub(crate) fn price(&self) -> u64 {
        self.reads.iter().map(|read| read.price).sum()
    }
}

/// Why an import graph cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GraphProblem {
    /// The importer would import itself, through the artifacts named: the first and
    /// last are the importer.
    Cycle(Vec<String>),
    /// More modules in all than [`MAX_MODULES`].
    TooMany(usize),
}

impl GraphProblem {
    /// What is wrong, for a message about `importer`.
    pub(crate) fn describe(&self, importer: &str) -> String {
        match self {
            Self::Cycle(path) => format!("the imports of {importer} would make a cycle: {}", path.join(" → ")),
            Self::TooMany(n) => {
                format!("{importer}'s code would import more than {n} modules in all; the limit is {MAX_MODULES}")
            }
        }
    }
}

/// Checks the import graph as it would be with `importer` importing `deps`, every
/// other artifact importing what `deps_of` says. Breadth first, so a cycle found is
/// a shortest one.
pub(crate) fn check_graph(
    importer: &str,
    deps: &[&str],
    deps_of: impl Fn(&str) -> Vec<String>,
) -> Result<(), GraphProblem> {
    // Who imports each artifact reached, on the path that reached it first.
    let mut reached_from: HashMap<String, String> = HashMap::new();
    let mut queue = VecDeque::new();
    for &dep in deps {
        if dep == importer {
            return Err(GraphProblem::Cycle(vec![importer.to_owned(), importer.to_owned()]));
        }
        if !reached_from.contains_key(dep) {
            reached_from.insert(dep.to_owned(), importer.to_owned());
            queue.push_back(dep.to_owned());
        }
    }
    while let Some(node) = queue.pop_front() {
        if reached_from.len() > MAX_MODULES {
            return Err(GraphProblem::TooMany(MAX_MODULES));
        }
        for next in deps_of(&node) {
            if next == importer {
                let mut path = vec![importer.to_owned()];
                let mut at = node.clone();
                while at != importer {
                    path.push(at.clone());
                    at = reached_from.get(&at).cloned().unwrap_or_else(|| importer.to_owned());
                }
                path[1..].reverse();
                path.push(importer.to_owned());
                return Err(GraphProblem::Cycle(path));
            }
            if !reached_from.contains_key(&next) {
                reached_from.insert(next.clone(), node.clone());
                queue.push_back(next);
            }
        }
    }
    Ok(())
}

/// An import refused or broken, naming the specifier and the importer.
fn import_error(code: ErrorCode, importer: &str, dep: &str, why: impl std::fmt::Display) -> KernelError {
    KernelError::new(code, format!("import \"{SCHEME}{dep}\" in {importer}: {why}"))
        .with("import", format!("{SCHEME}{dep}"))
        .with("importer", importer)
}

/// The modules the code of `entity` (artifact `id`) needs to run: its dependencies,
/// direct and not, each once, in breadth-first order, with their current code.
pub(crate) fn closure(world: &World, entity: Entity, id: &ArtifactId) -> Result<Vec<ModuleCode>, KernelError> {
    let Some(imports) = world.get::<Imports>(entity) else { return Ok(Vec::new()) };
    let mut queue: VecDeque<(ArtifactId, ArtifactId)> = imports.ids().map(|dep| (id.clone(), dep.clone())).collect();
    let mut seen: HashSet<ArtifactId> = HashSet::from([id.clone()]);
    let mut out = Vec::new();
    while let Some((importer, dep)) = queue.pop_front() {
        if !seen.insert(dep.clone()) {
            continue;
        }
        let broken = |why: String| import_error(ErrorCode::ExecutionError, importer.as_str(), dep.as_str(), why);
        let Some(dep_entity) = ids::lookup(world, dep.as_str()) else {
            return Err(broken(format!("there is no artifact {dep}")));
        };
        if world.get::<Tombstone>(dep_entity).is_some() {
            return Err(broken(format!("{dep} was deleted")));
        }
        let Some(executable) = world.get::<Executable>(dep_entity) else {
            return Err(broken(format!("{dep} has no code")));
        };
        if out.len() == MAX_MODULES {
            return Err(KernelError::new(
                ErrorCode::ExecutionError,
                GraphProblem::TooMany(MAX_MODULES).describe(id.as_str()),
            ));
        }
        out.push(ModuleCode { id: dep.clone(), code: executable.code.clone(), code_hash: executable.code_hash() });
        if let Some(imports) = world.get::<Imports>(dep_entity) {
            queue.extend(imports.ids().map(|next| (dep.clone(), next.clone())));
        }
    }
    Ok(out)
}

/// What `id` imports in `world`, by id.
fn recorded_imports(world: &World, id: &str) -> Vec<String> {
    ids::lookup(world, id)
        .and_then(|e| world.get::<Imports>(e))
        .map(|imports| imports.ids().map(ToString::to_string).collect())
        .unwrap_or_default()
}

impl Kernel<'_> {
    /// The imports `importer`'s code will have once it is `code`, checked against the
    /// world. An import `current` already has keeps the bytes charged for it; a new
    /// one is charged the dependency's code bytes.
    pub(crate) fn plan_imports(
        &mut self,
        importer: &str,
        code: &str,
        current: Option<&Imports>,
    ) -> Result<PlannedImports, KernelError> {
        let current = current.cloned();
        let module = modules::parse(code).map_err(|e| {
            KernelError::invalid(format!("the code of {importer} cannot be read as a module: {e}"))
                .with("field", "code")
                .with("line", e.line)
                .with("col", e.col)
        })?;
        let refused = |dep: &str, why: String| import_error(ErrorCode::InvalidArgs, importer, dep, why);
        let mut planned = BTreeMap::new();
        let mut reads = Vec::new();
        for dep in module.dependencies() {
            let dep_id = ArtifactId::parse(dep).map_err(|e| refused(dep, e.to_string()))?;
            if dep == importer {
                return Err(refused(dep, GraphProblem::Cycle(vec![dep.to_owned(), dep.to_owned()]).describe(importer))
                    .with("cycle", vec![dep, dep]));
            }
            let entity =
                ids::lookup(self.world, dep).ok_or_else(|| refused(dep, format!("there is no artifact {dep}")))?;
            if self.world.get::<Tombstone>(entity).is_some() {
                return Err(refused(dep, format!("{dep} was deleted")));
            }
            let Some(executable) = self.world.get::<Executable>(entity) else {
                return Err(refused(dep, format!("{dep} has no code to import")));
            };
            let exported = modules::parse(executable.code())
                .map_err(|e| refused(dep, format!("{dep}'s code cannot be read as a module: {e}")))?;
            for import in module.imports.iter().filter(|i| i.id == dep) {
                if let Some((name, _)) = import.names.iter().find(|(name, _)| !exported.exports_name(name)) {
                    return Err(refused(dep, format!("{dep} does not export {name}")).with("name", name.as_str()));
                }
            }
            let code_bytes = executable.code().len() as u64;
            if let Some(bytes) = current.as_ref().and_then(|c| c.charged(dep)) {
                planned.insert(dep_id, bytes);
                continue;
            }
            // A new import reads the code: asked and paid for as a read is.
            let fee =
                self.check_access(entity, Permission::Read, serde_json::json!({ "import_into": importer })).map_err(
                    |e| KernelError { message: format!("import \"{SCHEME}{dep}\" in {importer}: {}", e.message), ..e },
                )?;
            let owner = self
                .world
                .get::<Artifact>(entity)
                .map(|a| a.owner.clone())
                .ok_or_else(|| refused(dep, format!("{dep} has no owner")))?;
            let owner = crate::economy::escrow::beneficiary(self.world, &dep_id, &owner);
            let read_price = self.world.get::<Pricing>(entity).map_or(0, |p| p.read_price);
            let price = if self.pays_itself(&owner) { 0 } else { fee + read_price };
            if price > 0 {
                self.principal(owner.as_str())?;
            }
            reads.push(ImportRead { dep: dep_id.clone(), owner, price });
            planned.insert(dep_id, code_bytes);
        }
        let deps: Vec<&str> = planned.keys().map(ArtifactId::as_str).collect();
        check_graph(importer, &deps, |id| recorded_imports(self.world, id)).map_err(|problem| {
            let error = KernelError::invalid(problem.describe(importer));
            match problem {
                GraphProblem::Cycle(path) => error.with("cycle", path),
                GraphProblem::TooMany(_) => error,
            }
        })?;
        Ok(PlannedImports { imports: Imports(planned), reads })
    }

    /// Refuses early if the payer cannot pay `due` scrip for a write and its imports.
    pub(crate) fn ensure_scrip_for_write(&self, due: u64, id: &str) -> Result<(), KernelError> {
        let target = ArtifactId::parse(id).map_err(|e| KernelError::invalid(e.to_string()))?;
        self.ensure_can_pay(due, &target).map_err(|e| KernelError {
            message: format!("writing {id} needs its contract's fee and its imports' read prices: {}", e.message),
            ..e
        })
    }

    /// Pays for the reads of the new imports, each an `ARTIFACT_READ` of the dependency.
    pub(crate) fn pay_for_imports(&mut self, planned: &PlannedImports) -> Result<(), KernelError> {
        for read in &planned.reads {
            let paid_by = self.pay(read.price, &read.owner, &read.dep)?;
            let price = if paid_by.is_some() { read.price } else { 0 };
            let paid_to = paid_by.is_some().then(|| read.owner.clone());
            self.emit(EventKind::ArtifactRead { id: read.dep.clone(), price, paid_to, paid_by });
        }
        Ok(())
    }

    /// Puts `imports` on `entity` (artifact `id`), and its edges into the world's code graph.
    pub(crate) fn record_imports(&mut self, entity: Entity, id: &ArtifactId, imports: Imports) {
        let mut activity = self.world.resource_mut::<Activity>();
        let new: Vec<ArtifactId> = imports.ids().filter(|dep| activity.called(id, dep)).cloned().collect();
        if !new.is_empty() {
            let importer = id.clone();
            super::journal::record(
                self.world,
                super::journal::Undo::Restore(Box::new(move |world: &mut World| {
                    let mut activity = world.resource_mut::<Activity>();
                    for dep in &new {
                        activity.forget_call(&importer, dep);
                    }
                })),
            );
        }
        let mut target = self.world.entity_mut(entity);
        if imports.is_empty() {
            target.remove::<Imports>();
        } else {
            target.insert(imports);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> impl Fn(&str) -> Vec<String> {
        let edges: Vec<(String, String)> = edges.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        move |node: &str| edges.iter().filter(|(a, _)| a == node).map(|(_, b)| b.clone()).collect()
    }

    #[test]
    fn cycles_are_named_from_the_importer() {
        let world = graph(&[("a", "b"), ("b", "c")]);
        assert_eq!(check_graph("d", &["a"], &world), Ok(()));
        assert_eq!(
            check_graph("c", &["a"], &world),
            Err(GraphProblem::Cycle(vec!["c".into(), "a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(
            check_graph("c", &["a"], &world).unwrap_err().describe("c"),
            "the imports of c would make a cycle: c → a → b → c"
        );
        assert_eq!(check_graph("a", &["a"], &world), Err(GraphProblem::Cycle(vec!["a".into(), "a".into()])));
        // A diamond is no cycle.
        let diamond = graph(&[("b", "d"), ("c", "d")]);
        assert_eq!(check_graph("a", &["b", "c"], &diamond), Ok(()));
    }

    #[test]
    fn graphs_are_bounded() {
        let chain = |node: &str| vec![format!("{node}x")];
        assert_eq!(check_graph("a", &["b"], chain), Err(GraphProblem::TooMany(MAX_MODULES)));
    }
}
