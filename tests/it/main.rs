//! Integration tests: one binary, one module per area.

mod agents;
mod artifacts;
mod batch;
mod checkpoints;
mod cli;
mod determinism;
mod economy;
#[path = "../support/fake_llm.rs"]
mod fake_llm;
#[cfg(feature = "gui")]
mod gui;
mod hostile;
mod invoke;
mod ledger;
mod llm;
mod llm_agents;
mod llm_scorer;
mod mint;
mod props;
mod query;
mod quotas;
mod scenes;

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

pub fn scrip(sim: &Simulation, id: &str) -> u64 {
    agent_ecology::kernel::state::balance(sim.world(), id).unwrap()
}
