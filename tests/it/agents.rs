//! Agent loops: cadence, views, intents, sleep, backoff, self-rewriting, spawning.

use agent_ecology::{
    kernel::{EventLog, state},
    run::{Simulation, audit},
    world::{components::Loop, ids},
};
use serde_json::Value;

use crate::{scrip, sim};

/// A scene with the given agents (id, code, extra fields) and plain principals.
fn agents(list: &[(&str, &str, &str)], others: &str) -> Simulation {
    let entries: Vec<String> = list
        .iter()
        .map(|(id, code, extra)| {
            format!(r#"(id: "{id}", agent: true, code: {code:?}, interface: (tools: [(name: "step")]), {extra}),"#)
        })
        .collect();
    sim(&format!("Scene(principals: [{} {others}])", entries.join("\n")))
}

fn memory(sim: &Simulation, id: &str) -> String {
    let entity = ids::lookup(sim.world(), id).unwrap();
    sim.world().get::<agent_ecology::world::components::Artifact>(entity).unwrap().content().to_owned()
}

fn agent(sim: &Simulation, id: &str) -> Loop {
    sim.world().get::<Loop>(ids::lookup(sim.world(), id).unwrap()).unwrap().clone()
}

fn events_of(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

/// Counts its wakes in its memory.
const COUNTER: &str = r#"function step(view) {
    const n = Number(view.memory || "0") + 1;
    return [{action: "write", id: view.self, content: String(n)}];
}"#;

#[test]
fn agents_step_on_their_cadence() {
    let mut sim = agents(&[("every", COUNTER, ""), ("slow", COUNTER, "interval_secs: 3.0")], "");
    sim.run_steps(10);
    // Intents run in the Act phase of the same step, so a wake's write is visible at
    // the next wake.
    assert_eq!(memory(&sim, "every"), "10");
    assert_eq!(memory(&sim, "slow"), "4", "woke at 0, 3, 6, 9");
    assert_eq!(agent(&sim, "every").steps(), 10);
    assert!(agent(&sim, "every").cpu_us() > 0);
}

#[test]
fn views_show_holdings_and_the_results_of_earlier_intents() {
    let code = r#"function step(view) {
        if (view.step === 0) return [{action: "transfer", to: "bob", amount: 30}, {action: "transfer", to: "nobody", amount: 1}];
        const seen = view.inbox.map(r => r.action + ":" + (r.success ? "ok" : r.error.code));
        return [{action: "write", id: view.self, content: JSON.stringify({scrip: view.scrip, seen, events: view.events.length,
                 disk: view.resources.disk > 0, quota: view.quota.cpu})}, {action: "sleep", secs: 100}];
    }"#;
    let mut sim = agents(&[("alice", code, "")], r#"(id: "bob")"#);
    sim.run_steps(2);
    let seen: Value = serde_json::from_str(&memory(&sim, "alice")).unwrap();
    assert_eq!(seen["scrip"], 70);
    assert_eq!(seen["seen"], serde_json::json!(["transfer:ok", "transfer:NOT_FOUND"]));
    assert!(seen["events"].as_u64().unwrap() >= 2, "events that concern it: its transfer, its failure");
    assert_eq!(seen["disk"], true);
    assert_eq!(seen["quota"], 5_000_000);
    assert_eq!(scrip(&sim, "bob"), 130);
}

#[test]
fn agents_sleep_until_a_time_or_an_event() {
    let sleeper = r#"function step(view) {
        const n = Number(view.memory || "0") + 1;
        return {actions: [{action: "write", id: view.self, content: String(n)}], sleep: {secs: 50}};
    }"#;
    // A rescuer waits for anyone to freeze, then sends that principal budget.
    let rescuer = r#"function step(view) {
        const frozen = view.events.filter(e => e.type === "AGENT_FROZEN");
        const acts = frozen.map(e => ({action: "transfer", to: e.payload.principal, amount: 1000, resource: "llm_budget"}));
        return acts.concat([{action: "sleep", on: {type: "AGENT_FROZEN"}}]);
    }"#;
    let mut sim = agents(&[("sleeper", sleeper, ""), ("rescuer", rescuer, "")], r#"(id: "dave", llm_budget_usd: 0.0)"#);
    sim.run_steps(40);
    assert_eq!(memory(&sim, "sleeper"), "1", "asleep until 50");
    assert_eq!(agent(&sim, "rescuer").steps(), 1, "asleep until someone freezes");
    let freeze = agent_ecology::scene::InterventionAct::System(agent_ecology::scene::raw::SystemAct::Freeze {
        principal: "dave".into(),
        reason: None,
    });
    agent_ecology::scene::timeline::apply(sim.world_mut(), freeze);
    sim.run_steps(20);
    assert_eq!(memory(&sim, "sleeper"), "2");
    assert_eq!(agent(&sim, "rescuer").steps(), 2, "the freeze woke it, once");
    assert_eq!(state::get_llm_budget(sim.world(), "dave").unwrap(), 1000);
}

#[test]
fn failing_steps_back_off_and_pause() {
    let mut sim = agents(&[("flaky", "function step(view) { throw new Error('bad day') }", "")], "");
    sim.run_steps(200);
    let errors = events_of(&sim, "AGENT_ERROR");
    assert_eq!(errors.len(), 5);
    let times: Vec<f64> = errors.iter().map(|e| e["time"].as_f64().unwrap()).collect();
    // Waits of 2, 4, 8, 16 seconds between failures (interval 1 s, doubling).
    assert_eq!(times, vec![0.0, 2.0, 6.0, 14.0, 30.0]);
    assert!(errors[0]["payload"]["message"].as_str().unwrap().contains("bad day"));
    assert_eq!(events_of(&sim, "AGENT_PAUSED").len(), 1);
    assert!(agent(&sim, "flaky").paused());
    // New code deserves a new chance.
    let fixed = serde_json::json!({"action": "write", "id": "flaky", "code": COUNTER}).to_string();
    crate::act_ok(&mut sim, "flaky", &fixed);
    sim.run_steps(3);
    assert!(!agent(&sim, "flaky").paused());
    assert_eq!(memory(&sim, "flaky"), "3");
    assert_eq!(events_of(&sim, "AGENT_RESUMED").len(), 1);
}

#[test]
fn agents_rewrite_themselves_and_spawn_agents() {
    let v2 = r#"function step(view) { return [{action: "write", id: view.self, content: "v2 running"}] }"#;
    let child =
        r#"function step(view) { return [{action: "write", id: view.self, content: "child of " + view.scrip}] }"#;
    let parent = format!(
        r#"function step(view) {{
            if (view.step > 0) return [];
            return [
                {{action: "spawn", id: "kid", scrip: 25, resources: {{disk: 1000, llm_budget: 100000, cpu: 100000}}, agent: true,
                  code: {child:?}, interface: {{tools: [{{name: "step"}}]}}}},
                {{action: "write", id: view.self, code: {v2:?}}},
            ];
        }}"#
    );
    let mut sim = agents(&[("parent", &parent, "")], "");
    sim.run_steps(1);
    assert_eq!(memory(&sim, "parent"), "");
    sim.run_steps(2);
    assert_eq!(memory(&sim, "parent"), "v2 running", "its own new code ran from the next wake");
    assert_eq!(memory(&sim, "kid"), "child of 25", "the spawned agent runs its own code");
    let report = sim.report();
    assert_eq!(report.principals["parent"].scrip, 75);
    assert!(report.principals["parent"].owned_artifacts.contains(&"kid".to_owned()));
    audit(sim.world()).unwrap();
}

#[test]
fn a_step_may_only_look() {
    let code = r#"function step(view) {
        const balance = kernel.balance(view.self);
        transfer("bob", 10);
        return [];
    }"#;
    let mut sim = agents(&[("grabby", code, "")], r#"(id: "bob")"#);
    sim.run_steps(1);
    let errors = events_of(&sim, "AGENT_ERROR");
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["payload"]["message"].as_str().unwrap().contains("may only look"), "{errors:?}");
    assert_eq!(scrip(&sim, "bob"), 100);
}

#[test]
fn bad_intents_are_refused_into_the_inbox() {
    let code = r#"function step(view) {
        if (view.step === 0) return [{action: "fly"}, {action: "transfer", to: "bob", amount: 1, from: "bob"}];
        return [{action: "write", id: view.self, content: JSON.stringify(view.inbox.map(r => r.error.code))}, {action: "sleep", secs: 99}];
    }"#;
    let mut sim = agents(&[("oops", code, "")], r#"(id: "bob")"#);
    sim.run_steps(2);
    assert_eq!(memory(&sim, "oops"), r#"["INVALID_ARGS","INVALID_ARGS"]"#);
    assert!(events_of(&sim, "AGENT_ERROR").is_empty(), "the step itself succeeded");
}

#[test]
fn frozen_agents_do_not_step() {
    let mut sim = agents(&[("ice", COUNTER, "frozen: true")], "");
    sim.run_steps(5);
    assert_eq!(memory(&sim, "ice"), "");
}

#[test]
fn a_trading_world_is_deterministic() {
    let trader = r#"function step(view) {
        const others = kernel.query({kind: "agent"}).items.map(a => a.id).filter(id => id !== view.self);
        const to = others[Math.floor(Math.random() * others.length)];
        return [{action: "transfer", to, amount: 1 + Math.floor(Math.random() * 5)}];
    }"#;
    let run = || {
        let list: Vec<(String, &str, &str)> = (0..12).map(|i| (format!("t{i:02}"), trader, "")).collect();
        let list: Vec<(&str, &str, &str)> = list.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        let mut sim = agents(&list, "");
        sim.run_steps(50);
        audit(sim.world()).unwrap();
        (sim.report(), sim.checksum())
    };
    let (report, checksum) = run();
    assert_eq!(report.events.by_type["SCRIP_TRANSFER"], 12 * 50);
    let balances: Vec<u64> = report.principals.values().map(|p| p.scrip).collect();
    assert!(balances.iter().any(|b| *b != 100), "money moved");
    assert_eq!(balances.iter().sum::<u64>(), 1200);
    assert_eq!(checksum, run().1);
}
