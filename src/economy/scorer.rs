//! Scoring the mint's winners.
//!
//! The mint asks a [`Scorer`] for a score from 0 to 100. The default,
//! [`OfflineScorer`], is deterministic and needs nothing outside the world; an LLM
//! scorer plugs in through the same trait when the world has a language model.
//!
//! The offline score is the sum of four parts, in integers so that it is the same on
//! every machine:
//!
//! | part | points | how |
//! |---|---|---|
//! | substance | 0–30 | `6 × log2(1 + bytes / 32)`, bytes of content + code, at most 30 (≈ 1 KiB for 30) |
//! | variety | 0–20 | `20 × distinct words / words` over the first 4 KiB; fewer than 8 words count as 8 |
//! | interface | 0–15 | code: 5, +5 if every tool is described, +5 if every tool's schema declares properties |
//! | use | 0–35 | `12 × log2(1 + successful invocations by others than the creator)`, at most 35 |
//!
//! and 10 points off if the code failed more than half of at least 4 runs. Data scores
//! on substance and variety alone (at most 50): what earns most is code that others
//! use.

use bevy_ecs::prelude::*;

use crate::{
    kernel::InvocationStats,
    world::{
        components::{Artifact, Executable, Interface},
        ids::ArtifactId,
    },
};

/// Scores an artifact for the mint.
pub trait Scorer: Send + Sync {
    /// A score from 0 to 100, or why the artifact could not be scored (the winner is
    /// then refunded).
    fn score(&self, world: &World, artifact: Entity) -> Result<u64, String>;
}

/// The scorer the mint uses.
#[derive(Resource)]
pub struct MintScorer(pub Box<dyn Scorer>);

impl Default for MintScorer {
    fn default() -> Self {
        Self(Box::new(OfflineScorer))
    }
}

impl MintScorer {
    pub fn score(&self, world: &World, artifact: Entity) -> Result<u64, String> {
        self.0.score(world, artifact).map(|s| s.min(100))
    }
}

/// The deterministic heuristic of the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineScorer;

impl Scorer for OfflineScorer {
    fn score(&self, world: &World, entity: Entity) -> Result<u64, String> {
        let Some(artifact) = world.get::<Artifact>(entity) else {
            return Err("the artifact is gone".into());
        };
        let code = world.get::<Executable>(entity).map(|x| x.code());
        let bytes = (artifact.content().len() + code.map_or(0, str::len)) as u64;
        let substance = (6 * ilog2_plus_one(bytes / 32)).min(30);

        let text = [artifact.content(), code.unwrap_or("")].join("\n");
        let variety = variety_points(&text);

        let interface = match (code, world.get::<Interface>(entity)) {
            (Some(_), Some(interface)) if !interface.tools.is_empty() => {
                let described = interface.tools.iter().all(|t| !t.description.trim().is_empty());
                let typed = interface.tools.iter().all(|t| {
                    t.input_schema.get("properties").and_then(|p| p.as_object()).is_some_and(|p| !p.is_empty())
                });
                5 + if described { 5 } else { 0 } + if typed { 5 } else { 0 }
            }
            (Some(_), _) => 5,
            (None, _) => 0,
        };

        let counts = world
            .get::<ArtifactId>(entity)
            .map(|id| world.resource::<InvocationStats>().counts(id.as_str()))
            .unwrap_or_default();
        let usage = (12 * ilog2_plus_one(counts.by_others)).min(35);
        let runs = counts.success + counts.failure;
        let unreliable = runs >= 4 && counts.failure * 2 > runs;

        Ok((substance + variety + interface + usage).saturating_sub(if unreliable { 10 } else { 0 }))
    }
}

/// `log2(1 + n)`, rounded down, in integers.
fn ilog2_plus_one(n: u64) -> u64 {
    u64::from(n.saturating_add(1).ilog2())
}

/// `20 × distinct / total` words over the first 4 KiB, with at least 8 words.
fn variety_points(text: &str) -> u64 {
    let mut end = text.len().min(4096);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let words: Vec<String> =
        text[..end].split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let distinct = words.iter().collect::<std::collections::BTreeSet<_>>().len() as u64;
    20 * distinct / (words.len() as u64).max(8)
}

/// What makes two artifacts the same for the mint: content and code, lower-cased,
/// with runs of whitespace as one space. Hashed to 128 bits.
pub fn fingerprint(world: &World, entity: Entity) -> u128 {
    let mut hasher = blake3::Hasher::new();
    let content = world.get::<Artifact>(entity).map_or("", |a| a.content());
    let code = world.get::<Executable>(entity).map_or("", |x| x.code());
    for part in [content, code] {
        for word in part.split_whitespace() {
            hasher.update(word.to_lowercase().as_bytes());
            hasher.update(b" ");
        }
        hasher.update(&[0]);
    }
    let hash = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.as_bytes()[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_as_documented() {
        assert_eq!(ilog2_plus_one(0), 0);
        assert_eq!(ilog2_plus_one(1), 1);
        assert_eq!(ilog2_plus_one(3), 2);
        assert_eq!(ilog2_plus_one(u64::MAX), 63);
        assert_eq!(variety_points(""), 0);
        assert_eq!(variety_points("spam spam spam spam spam spam spam spam spam spam"), 2);
        assert_eq!(variety_points("one two three four five six seven eight"), 20);
    }
}
