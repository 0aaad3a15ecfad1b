//! Integration tests: one binary, one module per area.

mod agents;
mod artifacts;
mod batch;
mod capabilities;
mod checkpoints;
mod cli;
mod coordination;
mod determinism;
mod economy;
#[path = "../support/fake_llm.rs"]
mod fake_llm;
#[cfg(feature = "gui")]
mod gui;
mod hostile;
mod invoke;
mod isolation;
mod ledger;
mod libraries;
mod llm;
mod llm_agents;
mod llm_scorer;
mod local_model;
mod mcp;
mod mint;
mod props;
mod query;
mod quotas;
mod scenes;
mod transactions;

use agent_ecology::{
    kernel::{Action, ActionResult, ErrorCode, Kernel},
    run::Simulation,
    scene::Scene,
};

/// A world from inline scene text (panics with the scene error, which is what a test wants).
pub fn sim(ron: &str) -> Simulation {
    let scene = Scene::from_ron_str("test.ron", ron).unwrap_or_else(|e| panic!("{e}"));
    Simulation::new(&scene, None).unwrap_or_else(|e| panic!("{e}"))
}

/// A world with principals alice (100), bob (50) and carol (default 100).
pub fn three() -> Simulation {
    sim(r#"Scene(principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol")])"#)
}

/// Performs `action` (in its JSON form) as `actor`, through the whole action pipeline.
pub fn act(sim: &mut Simulation, actor: &str, json: &str) -> ActionResult {
    let action = Action::from_json_str(json).unwrap_or_else(|e| panic!("{e}"));
    Kernel::as_principal(sim.world_mut(), actor).unwrap_or_else(|e| panic!("{e}")).act(action)
}

/// Like [`act`], but the action must fail with `code`.
pub fn act_fails(sim: &mut Simulation, actor: &str, json: &str, code: ErrorCode) -> ActionResult {
    let result = act(sim, actor, json);
    assert!(!result.success, "{json} as {actor} should fail with {code}, got {result:?}");
    assert_eq!(result.error_code(), Some(code), "{json} as {actor}: {result:?}");
    result
}

/// Like [`act`], but the action must succeed.
pub fn act_ok(sim: &mut Simulation, actor: &str, json: &str) -> ActionResult {
    let result = act(sim, actor, json);
    assert!(result.success, "{json} as {actor} should succeed, got {result:?}");
    result
}

/// The text of `scenes/<name>` with sandbox epochs of `epoch_secs` and its asset
/// paths absolute, so that it can be written anywhere and run from there.
pub fn repo_scene_text(name: &str, epoch_secs: f64) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(std::path::Path::new(root).join("scenes").join(name)).unwrap();
    assert!(text.contains("config: ("), "{name} has a config to add the epoch to");
    text.replacen("config: (", &format!("config: (\n    sandbox: (epoch_secs: {epoch_secs:?}),"), 1)
        .replace("\"assets/", &format!("\"{root}/assets/"))
}

/// `scenes/llm_market.ron` (as [`repo_scene_text`] gives it) thinking with model
/// `fake` on the server at `url`.
pub fn llm_market_text(url: &str, epoch_secs: f64) -> String {
    repo_scene_text("llm_market.ron", epoch_secs).replacen(
        r#"default_model: "llama3.2","#,
        &format!(
            r#"default_model: "fake", endpoints: {{"local": (base_url: {url:?})}},
               models: {{"fake": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}},"#
        ),
        1,
    )
}

pub fn scrip(sim: &Simulation, id: &str) -> u64 {
    agent_ecology::kernel::state::balance(sim.world(), id).unwrap()
}
