//! Same scene and seed, same world: byte for byte.

use std::sync::{Arc, Mutex};

use agent_ecology::{
    kernel::{Action, intents::ActionOutcome},
    run::Simulation,
    scene::Scene,
    world::ids::ArtifactId,
};
use bevy_ecs::message::Messages;

use crate::sim;

/// A `Write` that keeps what was written, for comparing event streams.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn default_run(seed: Option<u64>) -> (String, Vec<u8>) {
    let scene = Scene::embedded_default().unwrap();
    let mut sim = Simulation::new(&scene, seed).unwrap();
    let captured = Captured::default();
    sim.stream_events_to(Box::new(captured.clone()));
    sim.run_steps(300);
    sim.flush_events().unwrap();
    let events = captured.0.lock().unwrap().clone();
    (serde_json::to_string(&sim.report()).unwrap(), events)
}

#[test]
fn same_scene_and_seed_give_the_same_world_and_log() {
    let (report_a, events_a) = default_run(None);
    let (report_b, events_b) = default_run(None);
    assert_eq!(report_a, report_b);
    assert_eq!(events_a, events_b);
    let lines = events_a.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    let report: serde_json::Value = serde_json::from_str(&report_a).unwrap();
    assert_eq!(lines as u64, report["events"]["total"].as_u64().unwrap());
}

/// Three principals race to claim one id in the same step; who wins is up to the
/// seeded order of execution.
fn race(seed: u64) -> String {
    let mut sim = sim(r#"Scene(principals: [(id: "ann"), (id: "ben"), (id: "cat"), (id: "dan")])"#);
    sim.world_mut().insert_resource(agent_ecology::world::rng::SimRng::from_seed(seed));
    for who in ["ann", "ben", "cat", "dan"] {
        let action = Action::from_json_str(&format!(r#"{{"action":"write","id":"prize","content":"{who}"}}"#)).unwrap();
        sim.intend(&ArtifactId::parse(who).unwrap(), action);
    }
    sim.step();
    let outcomes: Vec<ActionOutcome> = sim.world_mut().resource_mut::<Messages<ActionOutcome>>().drain().collect();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes.iter().filter(|o| o.result.success).count(), 1, "exactly one claims it");
    agent_ecology::kernel::query::metadata(
        sim.world(),
        agent_ecology::world::ids::lookup(sim.world(), "prize").unwrap(),
    )["owner"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn intent_order_is_seeded() {
    let winners: Vec<String> = (0..16).map(race).collect();
    assert_eq!(winners, (0..16).map(race).collect::<Vec<_>>(), "the same seed picks the same winner");
    let distinct: std::collections::BTreeSet<_> = winners.iter().collect();
    assert!(distinct.len() > 1, "different seeds should not always favour one principal: {winners:?}");
}

#[test]
fn one_actors_intents_keep_their_order() {
    let mut sim = sim(r#"Scene(principals: [(id: "ann"), (id: "ben")])"#);
    let ann = ArtifactId::parse("ann").unwrap();
    sim.intend(&ann, Action::from_json_str(r#"{"action":"write","id":"d","content":"1"}"#).unwrap());
    sim.intend(&ann, Action::from_json_str(r#"{"action":"edit","id":"d","old":"1","new":"2"}"#).unwrap());
    sim.intend(&ann, Action::from_json_str(r#"{"action":"edit","id":"d","old":"2","new":"3"}"#).unwrap());
    sim.step();
    let outcomes: Vec<ActionOutcome> = sim.world_mut().resource_mut::<Messages<ActionOutcome>>().drain().collect();
    assert!(outcomes.iter().all(|o| o.result.success), "{outcomes:?}");
}

#[test]
fn a_different_seed_is_recorded() {
    let (report, _) = default_run(Some(7));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["seed"], 7);
}

/// The checksum after `steps` steps of `ron` with the code run by `workers` workers.
fn checksum_with_workers(ron: &str, workers: usize, steps: u64) -> String {
    let text = ron.replacen("sandbox: (", &format!("sandbox: (workers: {workers}, "), 1);
    let scene = Scene::from_ron_str("workers.ron", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Simulation::new(&scene, None).unwrap();
    sim.run_steps(steps);
    sim.checksum()
}

/// Code-run agents that discover and pay each other: the same world with 1, 2 or 8
/// workers, so a run on a many-core machine equals one on a laptop. (Worlds whose
/// code is invoked record each call's measured peak memory in its event and result;
/// that measurement depends on the worker's history, so those worlds keep their
/// number of workers — two unless the scene says otherwise, whatever the machine.)
#[test]
fn the_number_of_workers_does_not_change_the_world() {
    let traders = r#"Scene(config: (seed: 5, sandbox: (epoch_secs: 600.0)), populations: [(id: "t{n}", count: 300,
        template: (agent: true, scrip: 60, interval_secs: 2.0, code_file: "assets/agents/trader.js",
                   interface: (tools: [(name: "step")])))])"#
        .replace("assets/", &format!("{}/assets/", env!("CARGO_MANIFEST_DIR")));
    let one = checksum_with_workers(&traders, 1, 40);
    assert_eq!(checksum_with_workers(&traders, 2, 40), one, "2 workers");
    assert_eq!(checksum_with_workers(&traders, 8, 40), one, "8 workers");
}
