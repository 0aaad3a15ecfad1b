//! Arbitrary JSON as actions, performed by principals of a small world: every input
//! either is refused as invalid or performed, and the ledger always adds up.
#![no_main]

use std::sync::OnceLock;

use agent_ecology::{
    kernel::{Action, Kernel},
    run::{Simulation, audit},
    scene::{Scene, ValidScene},
};
use libfuzzer_sys::fuzz_target;

const SCENE: &str = r#"Scene(
    config: (resources: {"gold": 5}, rates: ["api"], defaults: (quota: {"cpu": 1000, "api": 3})),
    principals: [(id: "a", disk_bytes: 300), (id: "b", scrip: 3), (id: "c", frozen: true)],
    artifacts: [
        (id: "doc", owner: "a", content: "hello hello"),
        (id: "secret", owner: "b", content: "s", contract: "private", pricing: (read_price: 2)),
        (id: "tool", owner: "a", code: "function run(){}", interface: (tools: [(name: "run")])),
    ],
)"#;

fn scene() -> &'static ValidScene {
    static SCENE_ONCE: OnceLock<ValidScene> = OnceLock::new();
    SCENE_ONCE.get_or_init(|| Scene::from_ron_str("fuzz", SCENE).and_then(|s| s.validate()).expect("valid"))
}

fuzz_target!(|data: &[u8]| {
    let mut sim = Simulation::from_valid(scene().clone());
    // Each line is one action; the first byte of a line picks who acts.
    for line in data.split(|b| *b == b'\n').take(16) {
        let Some((who, json)) = line.split_first() else { continue };
        let actor = ["a", "b", "c", "kernel"][(*who % 4) as usize];
        let Ok(action) = Action::from_json_str(&String::from_utf8_lossy(json)) else { continue };
        let result = Kernel::as_principal(sim.world_mut(), actor).expect("principal").act(action);
        serde_json::to_string(&result).expect("results serialise");
        audit(sim.world()).expect("the ledger adds up after any action");
    }
    let _ = sim.report();
});
