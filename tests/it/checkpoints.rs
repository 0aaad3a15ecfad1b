//! Checkpoints: a world stopped, saved, read back and run on ends where the world that
//! never stopped does; a damaged checkpoint is refused.

use agent_ecology::{
    run::{Checkpoint, CheckpointError, Simulation, checkpoint::VERSION},
    scene::Scene,
};

fn default_world() -> Simulation {
    Simulation::new(&Scene::embedded_default().unwrap(), None).unwrap()
}

#[test]
fn resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_does() {
    let mut straight = default_world();
    straight.run_steps(1300);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.checkpoint");
    let mut first = default_world();
    first.run_steps(600);
    assert!(first.at_exact_point(), "the step after 600 s begins a sandbox epoch");
    let saved = first.checksum();
    first.write_checkpoint(&path, serde_json::json!({"note": "kept"})).unwrap();
    drop(first);

    let checkpoint = Checkpoint::read(&path).unwrap();
    assert_eq!(checkpoint.info.step, 600);
    assert!(checkpoint.info.exact);
    assert_eq!(checkpoint.info.plan["note"], "kept");
    let mut resumed = Simulation::from_checkpoint(checkpoint).unwrap();
    assert_eq!(resumed.checksum(), saved, "the restored world is the saved one");
    resumed.run_steps(700);
    assert_eq!(resumed.checksum(), straight.checksum());
    assert_eq!(serde_json::to_value(resumed.report()).unwrap(), serde_json::to_value(straight.report()).unwrap());
}

/// `scenes/llm_market.ron` thinking with model `fake` on the fake server, with a
/// sandbox epoch every 7 s (so that there are exact points with calls in flight).
fn llm_market(url: &str) -> Scene {
    Scene::from_ron_str("scenes/llm_market.ron", &crate::llm_market_text(url, 7.0)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_replayed_llm_run_resumes_from_a_checkpoint_to_the_recorded_end() {
    use crate::fake_llm::{FakeLlm, Reply};
    use agent_ecology::bridge::BridgeOptions;

    let cache = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start();
    fake.set_latency(std::time::Duration::from_millis(1));
    fake.set_default(Reply::tool("query", serde_json::json!({"text": "tool"}), 300, 20));
    let scene = llm_market(&fake.base_url());
    let record = BridgeOptions { cache_dir: Some(cache.path().to_owned()), replay: false };
    let replay = BridgeOptions { cache_dir: Some(cache.path().to_owned()), replay: true };

    let mut live = Simulation::new(&scene, None).unwrap();
    live.use_bridge(record).unwrap();
    live.run_steps(150);
    live.end_thinking().unwrap();
    let recorded = live.checksum();
    assert!(live.report().llm.calls > 20, "the agents thought: {:?}", live.report().llm);
    drop(live);
    drop(fake);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.checkpoint");
    let mut first = Simulation::new(&scene, None).unwrap();
    first.use_bridge(replay.clone()).unwrap();
    // The first exact point with calls in flight: their answers go in the checkpoint.
    while !(first.at_exact_point() && first.report().llm.in_flight > 0) {
        first.step();
        assert!(first.steps_done() < 140, "no exact point with a call in flight");
    }
    let in_flight = first.report().llm.in_flight;
    first.write_checkpoint(&path, serde_json::Value::Null).unwrap();
    drop(first);

    let mut resumed = Simulation::from_checkpoint(Checkpoint::read(&path).unwrap()).unwrap();
    resumed.use_bridge(replay).unwrap();
    resumed.run_steps(150 - resumed.steps_done());
    resumed.end_thinking().unwrap();
    assert_eq!(resumed.fatal_error(), None);
    assert_eq!(resumed.checksum(), recorded, "resumed with {in_flight} calls in flight at the checkpoint");
}

#[test]
fn a_damaged_checkpoint_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.checkpoint");
    let mut sim = default_world();
    sim.run_steps(5);
    sim.write_checkpoint(&path, serde_json::Value::Null).unwrap();
    let good = std::fs::read(&path).unwrap();
    let name = path.display().to_string();

    let truncated = &good[..good.len() - 100];
    let err = Checkpoint::from_bytes(&name, truncated).err().unwrap();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&name) && err.to_string().contains("truncated"), "{err}");

    let mut altered = good.clone();
    let at = altered.len() - 50;
    altered[at] ^= 0x01;
    let err = Checkpoint::from_bytes(&name, &altered).err().unwrap();
    assert!(err.to_string().contains("do not match"), "{err}");

    let err = Checkpoint::from_bytes(&name, b"Scene(principals: [])\n").err().unwrap();
    assert!(matches!(err, CheckpointError::NotACheckpoint { .. }), "{err}");

    let newer =
        String::from_utf8(good.clone()).unwrap().replacen(&format!("\"version\":{VERSION}"), "\"version\":99", 1);
    let err = Checkpoint::from_bytes(&name, newer.as_bytes()).err().unwrap();
    assert!(matches!(err, CheckpointError::Version { found: 99, .. }), "{err}");

    let err = Checkpoint::read(&dir.path().join("missing")).err().unwrap();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");

    assert!(Checkpoint::from_bytes(&name, &good).is_ok(), "the file itself is fine");
}

#[test]
fn a_checkpoint_midway_through_an_epoch_says_it_is_not_exact() {
    let mut sim = default_world();
    sim.run_steps(300);
    assert!(!sim.at_exact_point(), "code ran since the epoch began");
    let bytes = sim.checkpoint(serde_json::Value::Null).unwrap();
    let checkpoint = Checkpoint::from_bytes("mid", &bytes).unwrap();
    assert!(!checkpoint.info.exact);
    // It still restores the world as it was.
    let restored = Simulation::from_checkpoint(checkpoint).unwrap();
    assert_eq!(restored.checksum(), sim.checksum());
}
