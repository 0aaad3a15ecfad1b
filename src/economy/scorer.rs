//! Scoring the mint's winners.
//!
//! The mint asks a [`Scorer`] for a score from 0 to 100. The default,
//! [`OfflineScorer`], is deterministic and needs nothing outside the world. When the
//! scene names a `config.llm.scorer_model`, [`llm_score`] asks that model instead,
//! through the kernel's gateway as the mint (`kernel_mint` pays from its own LLM
//! budget); the answer is recorded and replayed like any other call.
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

/// How the mint's LLM scorer is asked: a rubric, the artifact, and one tool to answer.
const RUBRIC: &str = "You are the judge of the mint of an economy of software agents. Score the artifact you \
    are shown from 0 to 100 for its value to the economy: how useful it is to other agents, how original, how \
    well made (clear interface, working code), and the evidence that others use it. Trivial, broken or \
    padded artifacts score low. Answer by calling `score` once.";

/// Scores `entity` with `model` through the kernel, as the mint: the call is paid
/// from the mint's own LLM budget. Any failure (no budget, no answer, an answer that
/// is not a score) is a scoring failure, and the winner is refunded.
pub fn llm_score(world: &mut World, entity: Entity, model: &str) -> Result<u64, String> {
    let artifact = world.get::<Artifact>(entity).ok_or("the artifact is gone")?;
    let id = world.get::<ArtifactId>(entity).map(ToString::to_string).unwrap_or_default();
    let mut shown = format!("Artifact {id}, owned by {}.\n", artifact.owner());
    let description = artifact.description();
    if !description.is_empty() {
        shown.push_str(&format!("Description: {description}\n"));
    }
    shown.push_str(&format!("Content ({} bytes):\n{}\n", artifact.content().len(), head(artifact.content(), 4096)));
    if let Some(code) = world.get::<Executable>(entity).map(|x| x.code()) {
        shown.push_str(&format!("Code ({} bytes):\n{}\n", code.len(), head(code, 8192)));
    }
    if let Some(interface) = world.get::<Interface>(entity) {
        shown.push_str(&format!("Interface: {}\n", serde_json::to_string(interface).unwrap_or_default()));
    }
    let counts = world.resource::<InvocationStats>().counts(&id);
    shown.push_str(&format!(
        "Use: {} successful invocations ({} by others than its creator), {} failed.\n",
        counts.success, counts.by_others, counts.failure
    ));
    let score_tool = serde_json::json!({
        "type": "function",
        "function": {
            "name": "score",
            "description": "The artifact's score.",
            "parameters": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 0, "maximum": 100},
                    "reason": {"type": "string"},
                },
                "required": ["score"],
            },
        },
    });
    let args = crate::kernel::llm::ChatArgs {
        model: Some(model.to_owned()),
        messages: vec![
            serde_json::json!({"role": "system", "content": RUBRIC}),
            serde_json::json!({"role": "user", "content": shown}),
        ],
        tools: Some(vec![score_tool]),
        tool_choice: Some(serde_json::json!({"type": "function", "function": {"name": "score"}})),
        max_tokens: Some(300),
        temperature: Some(0.0),
    };
    // The Settle phase is outside any action: what the call is charged must not be
    // folded into the next action's result.
    let charges_before = world.resource::<crate::kernel::exec::Charges>().entries.len();
    let answer = crate::kernel::Kernel::as_principal(world, super::services::MINT_ID)
        .and_then(|mut mint| mint.think(args, false))
        .map_err(|e| format!("the LLM scorer failed: {}", e.message));
    world.resource_mut::<crate::kernel::exec::Charges>().entries.truncate(charges_before);
    let answer = answer?;
    parse_score(&answer).ok_or_else(|| {
        format!("the LLM scorer gave no score: {}", crate::bridge::client::excerpt(&answer.to_string(), 200))
    })
}

/// The score in an answer: the `score` tool's argument, else the first whole number
/// of the text.
fn parse_score(answer: &serde_json::Value) -> Option<u64> {
    let from_tool = answer["tool_calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c["name"] == "score"))
        .and_then(|call| call["args"]["score"].as_f64());
    let from_text = || {
        answer["content"].as_str().and_then(|text| {
            text.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).and_then(|w| w.parse::<f64>().ok())
        })
    };
    from_tool.or_else(from_text).filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s.round() as u64).min(100))
}

/// At most `bytes` of `text`, cut at a character boundary.
fn head(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    fn reads_a_score_from_a_tool_call_or_text() {
        let tool = serde_json::json!({"tool_calls": [{"name": "score", "args": {"score": 73}}], "content": null});
        assert_eq!(parse_score(&tool), Some(73));
        assert_eq!(parse_score(&serde_json::json!({"tool_calls": [], "content": "I'd say 140/100"})), Some(100));
        assert_eq!(parse_score(&serde_json::json!({"tool_calls": [], "content": "no idea"})), None);
    }

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
