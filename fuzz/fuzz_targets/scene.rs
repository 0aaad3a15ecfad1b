//! Arbitrary text as a scene: parsing, validating, spawning and a few steps must
//! either succeed or fail with an error — never panic, never hang.
#![no_main]

use agent_ecology::{
    run::{Simulation, audit},
    scene::Scene,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(scene) = Scene::from_ron_str("fuzz.ron", text) else { return };
    let Ok(valid) = scene.validate() else { return };
    // Keep runs short: the fuzzer is after crashes, not long simulations.
    if valid.config.dt.millis() == 0 {
        return;
    }
    let mut sim = Simulation::from_valid(valid);
    let until = sim.now().saturating_add(agent_ecology::world::time::SimTime::from_millis(20_000));
    let steps = sim.steps_until(until).min(50);
    sim.run_steps(steps);
    audit(sim.world()).expect("the ledger adds up after any valid scene");
    let _ = sim.report();
    let saved = sim.save_scene().to_ron_string().expect("a world can always be saved");
    Scene::from_ron_str("saved.ron", &saved).expect("a saved scene parses").validate().expect("a saved scene is valid");
});
