//! Scarcity as physics: quotas over rolling windows, enforcement, freeze and rescue.

use agent_ecology::{
    kernel::{ErrorCode, EventLog, Kernel, quotas, state},
    run::{Simulation, audit},
};
use serde_json::{Value, json};

use crate::{act, act_fails, act_ok, scrip, sim};

/// A world where alice and bob have a `units` rate limited as given, over `window`.
fn units(window: f64, alice: u64, bob: u64) -> Simulation {
    sim(&format!(
        r#"Scene(config: (rates: ["units"], window_secs: {window:.1}),
            principals: [(id: "alice", quota: {{"units": {alice}}}), (id: "bob", quota: {{"units": {bob}}})])"#
    ))
}

fn consume(sim: &mut Simulation, who: &str, amount: i64) -> Result<(), agent_ecology::kernel::KernelError> {
    Kernel::as_principal(sim.world_mut(), who).unwrap().consume_quota("units", amount)
}

fn available(sim: &Simulation, who: &str) -> u64 {
    quotas::get_available_capacity(sim.world(), who, "units").unwrap().unwrap()
}

#[test]
fn usage_adds_up_within_the_limit() {
    let mut sim = units(60.0, 100, 0);
    consume(&mut sim, "alice", 50).unwrap();
    consume(&mut sim, "alice", 10).unwrap();
    assert_eq!(quotas::get_usage(sim.world(), "alice", "units").unwrap(), 60);
    assert_eq!(available(&sim, "alice"), 40);
    assert!(!quotas::would_exceed_quota(sim.world(), "alice", "units", 40).unwrap());
    assert!(quotas::would_exceed_quota(sim.world(), "alice", "units", 41).unwrap());
    // Zero always fits; negative is invalid; an unset limit is unlimited.
    consume(&mut sim, "alice", 0).unwrap();
    assert_eq!(consume(&mut sim, "alice", -1).unwrap_err().code, ErrorCode::InvalidArgs);
    assert_eq!(quotas::get_available_capacity(sim.world(), "alice", "llm_tokens").unwrap(), None);
    // Only rates are consumed: not holdings, not the memory allocation, not unknowns.
    let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").unwrap();
    for resource in ["scrip", "disk", "memory", "gold"] {
        let error = kernel.consume_quota(resource, 1).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgs, "{resource}: {error}");
    }
    // A first use larger than the limit is refused before any window exists.
    let error = Kernel::as_principal(sim.world_mut(), "bob").unwrap().consume_quota("units", 1).unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded);
    assert_eq!(error.retry_after, None, "more than the limit never fits");
}

#[test]
fn over_the_limit_is_refused_with_when_to_retry() {
    let mut sim = units(60.0, 100, 0);
    consume(&mut sim, "alice", 95).unwrap();
    sim.run_steps(20);
    let error = consume(&mut sim, "alice", 10).unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded);
    assert_eq!(error.category, agent_ecology::kernel::ErrorCategory::Resource);
    assert!(error.retriable);
    assert_eq!(error.retry_after, Some(40.0), "the 95 recorded at t=0 leave the window at t=60");
    assert_eq!(quotas::get_usage(sim.world(), "alice", "units").unwrap(), 95, "a refusal records nothing");
    sim.run_steps(40);
    consume(&mut sim, "alice", 10).unwrap();
}

#[test]
fn a_window_frees_capacity_when_it_has_passed() {
    let mut sim = units(10.0, 100, 0);
    consume(&mut sim, "alice", 100).unwrap();
    sim.run_steps(9);
    assert_eq!(available(&sim, "alice"), 0);
    sim.run_steps(1);
    assert_eq!(available(&sim, "alice"), 100, "a 10-second window frees capacity after 10 simulated seconds");
}

#[test]
fn usage_leaves_the_window_piece_by_piece() {
    let mut sim = units(30.0, 10, 0);
    consume(&mut sim, "alice", 3).unwrap();
    sim.run_steps(20);
    consume(&mut sim, "alice", 4).unwrap();
    sim.run_steps(15);
    assert_eq!(quotas::get_usage(sim.world(), "alice", "units").unwrap(), 4);
    assert_eq!(available(&sim, "alice"), 6);
}

#[test]
fn quotas_trade_atomically() {
    let mut sim = units(60.0, 10, 5);
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_quota("bob", "units", 3).unwrap();
    let limit = |sim: &Simulation, who| state::get_quota(sim.world(), who, "units").unwrap();
    assert_eq!((limit(&sim, "alice"), limit(&sim, "bob")), (Some(7), Some(8)));
    let error = Kernel::as_principal(sim.world_mut(), "bob").unwrap().transfer_quota("alice", "units", 10).unwrap_err();
    assert_eq!(error.code, ErrorCode::InsufficientResource);
    assert_eq!((limit(&sim, "alice"), limit(&sim, "bob")), (Some(7), Some(8)), "nothing moved");
    // From code and as an action, the same way.
    act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"alice","amount":2,"resource":"units"}"#);
    assert_eq!((limit(&sim, "alice"), limit(&sim, "bob")), (Some(9), Some(6)));
}

/// An agent that tries to write its memory every step.
const BUSY: &str = r#"function step(view) { return [{action: "write", id: view.self, content: String(view.step)}] }"#;

fn busy_pair() -> Simulation {
    sim(&format!(
        r#"Scene(config: (window_secs: 10.0), principals: [
            (id: "slow", agent: true, code: {BUSY:?}, interface: (tools: [(name: "step")]), quota: {{"actions": 1}}),
            (id: "fast", agent: true, code: {BUSY:?}, interface: (tools: [(name: "step")]), quota: {{"actions": 10}}),
        ])"#
    ))
}

fn writes_by(sim: &Simulation, who: &str) -> usize {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == "ARTIFACT_WRITTEN" && e.actor == who).count()
}

#[test]
fn a_tighter_quota_means_fewer_actions() {
    let mut sim = busy_pair();
    sim.run_steps(60);
    let (slow, fast) = (writes_by(&sim, "slow"), writes_by(&sim, "fast"));
    assert_eq!(slow, 6, "one action per 10-second window, over 60 seconds");
    assert!(fast > 5 * slow, "slow {slow}, fast {fast}");
    // The slow agent is told when to retry and sleeps until then: it does not spin.
    let refused = sim
        .world()
        .resource::<EventLog>()
        .recent()
        .filter(|e| e.kind.type_name() == "ACTION_FAILED" && e.actor == "slow")
        .count();
    assert!(refused <= 6, "at most one refusal per window, got {refused}");
}

#[test]
fn quota_given_to_a_blocked_agent_lets_it_act() {
    let mut sim = busy_pair();
    sim.run_steps(2);
    assert_eq!(writes_by(&sim, "slow"), 1);
    // fast gives slow room for more actions; slow was sleeping until its window
    // turned, but an action admitted now goes through.
    act_ok(&mut sim, "fast", r#"{"action":"transfer","to":"slow","amount":5,"resource":"actions"}"#);
    act_ok(&mut sim, "slow", r#"{"action":"write","id":"slow","content":"thanks"}"#);
    assert_eq!(writes_by(&sim, "slow"), 2);
}

#[test]
fn code_is_held_to_its_payers_cpu_quota() {
    let mut sim = sim(r#"Scene(
        config: (window_secs: 60.0),
        principals: [(id: "alice", quota: {"cpu": 2000}), (id: "bob")],
        artifacts: [
            (id: "spin", owner: "bob", code: "function run(a) { let s = 0; for (let i = 0; i < 20000; i++) s += i; return s }", interface: (tools: [(name: "run")])),
            (id: "outer", owner: "bob", code: "function run() { return invoke('spin') }", interface: (tools: [(name: "run")])),
        ],
    )"#);
    let first = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"spin"}"#);
    let cost = first.resources_consumed.cpu_us;
    assert!(cost > 100, "{cost}");
    // Keep calling until the window is spent: the next call is refused before it runs.
    let mut calls = 1;
    loop {
        let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"spin"}"#);
        if !r.success {
            let error = r.error.unwrap();
            assert_eq!(error.code, ErrorCode::QuotaExceeded);
            assert!(error.retry_after.unwrap() > 0.0);
            assert_eq!(r.resources_consumed.cpu_us, 0, "refused before running");
            break;
        }
        calls += 1;
        assert!(calls < 100);
    }
    assert!(quotas::get_usage(sim.world(), "alice", "cpu").unwrap() >= 2000);
    // The same limit holds for nested calls, charged to the chain's payer.
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"outer"}"#);
    assert_eq!(r.error_code(), Some(ErrorCode::QuotaExceeded));
    // bob pays for nothing of it.
    assert_eq!(quotas::get_usage(sim.world(), "bob", "cpu").unwrap(), 0);
}

#[test]
fn a_call_may_not_use_more_memory_than_its_payer_has() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "alice", quota: {"memory": 100000}), (id: "bob", quota: {"memory": 100000000})],
        artifacts: [(id: "hog", owner: "bob", code: "function run() { const a = []; for (let i = 0; i < 20000; i++) a.push({i}); return a.length }", interface: (tools: [(name: "run")]))],
    )"#);
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"hog"}"#);
    let error = r.error.unwrap();
    assert_eq!(error.code, ErrorCode::QuotaExceeded);
    assert_eq!(error.details["resource"], "memory");
    assert!(r.resources_consumed.cpu_us > 0, "it ran, and is charged");
    assert_eq!(act(&mut sim, "bob", r#"{"action":"invoke","id":"hog"}"#).result, Some(json!(20000)));
}

#[test]
fn an_agent_that_runs_dry_freezes_and_is_rescued() {
    // Each step the spender pays 10 scrip for a tool; it freezes below 20.
    let spender = r#"function step(view) { return [{action: "invoke", id: "toll"}] }"#;
    let mut sim = sim(&format!(
        r#"Scene(config: (freeze: (min_scrip: 20)),
            principals: [
                (id: "spender", scrip: 50, agent: true, code: {spender:?}, interface: (tools: [(name: "step")])),
                (id: "owner"), (id: "friend"),
            ],
            artifacts: [(id: "toll", owner: "owner", code: "function run() {{ return 1 }}", interface: (tools: [(name: "run")]), pricing: (invoke_price: 10))],
        )"#
    ));
    sim.run_steps(10);
    assert_eq!(scrip(&sim, "spender"), 10, "paid 40, then froze at 10 < 20");
    let frozen: Vec<Value> = sim
        .world()
        .resource::<EventLog>()
        .recent()
        .filter(|e| e.kind.type_name() == "AGENT_FROZEN")
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(frozen.len(), 1, "one freeze, not one per step");
    let payload = &frozen[0]["payload"];
    assert_eq!(payload["principal"], "spender");
    assert_eq!(payload["assets"]["scrip"], 10);
    assert!(payload["reason"].as_str().unwrap().contains("scrip 10 is below the 20"));
    assert!(payload["assets"]["last_action_at"].as_f64().is_some(), "its heartbeat is on the dinner bell");
    // Frozen, it does nothing.
    sim.run_steps(5);
    assert_eq!(scrip(&sim, "spender"), 10);
    // A friend brings it back over the line: it thaws, and the event names the rescuer.
    act_ok(&mut sim, "friend", r#"{"action":"transfer","to":"spender","amount":30}"#);
    let unfrozen = sim
        .world()
        .resource::<EventLog>()
        .recent()
        .rev()
        .find(|e| e.kind.type_name() == "AGENT_UNFROZEN")
        .map(|e| serde_json::to_value(e).unwrap())
        .unwrap();
    assert_eq!(unfrozen["payload"]["rescuer"], "friend");
    sim.run_steps(2);
    assert_eq!(scrip(&sim, "spender"), 20, "it acts again (and will freeze again soon)");
    audit(sim.world()).unwrap();
}

#[test]
fn a_too_small_rescue_does_not_thaw() {
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "broke", llm_budget_usd: 0.0, agent: true, code: {BUSY:?}, interface: (tools: [(name: "step")])), (id: "friend")])"#
    ));
    sim.run_steps(1);
    assert!(sim.report().principals["broke"].frozen, "no budget, frozen by the default rule");
    // Scrip does not help: the rule is about LLM budget.
    act_ok(&mut sim, "friend", r#"{"action":"transfer","to":"broke","amount":30}"#);
    assert!(sim.report().principals["broke"].frozen);
    act_ok(&mut sim, "friend", r#"{"action":"transfer","to":"broke","amount":1,"resource":"llm_budget"}"#);
    assert!(!sim.report().principals["broke"].frozen);
}

#[test]
fn llm_budget_trades_like_any_resource() {
    let mut sim = sim(r#"Scene(principals: [(id: "rich", llm_budget_usd: 2.0), (id: "idea", llm_budget_usd: 2.0)])"#);
    act_ok(&mut sim, "rich", r#"{"action":"transfer","to":"idea","amount":500000,"resource":"llm_budget"}"#);
    assert_eq!(state::get_llm_budget(sim.world(), "rich").unwrap(), 1_500_000);
    assert_eq!(state::get_llm_budget(sim.world(), "idea").unwrap(), 2_500_000);
    act_fails(
        &mut sim,
        "rich",
        r#"{"action":"transfer","to":"idea","amount":2000000,"resource":"llm_budget"}"#,
        ErrorCode::InsufficientResource,
    );
}

#[test]
fn holdings_quotas_and_heartbeats_are_public() {
    let mut sim = units(60.0, 100, 0);
    consume(&mut sim, "alice", 30).unwrap();
    act_ok(&mut sim, "alice", r#"{"action":"noop"}"#);
    let meta = act_ok(&mut sim, "bob", r#"{"action":"query","id":"alice"}"#).result.unwrap();
    let alice = &meta["artifact"];
    assert_eq!(alice["scrip"], 100);
    assert_eq!(alice["resources"]["llm_budget"], 2_000_000);
    assert_eq!(alice["quota"]["units"], json!({"limit": 100, "used": 30, "available": 70}));
    assert_eq!(alice["quota"]["cpu"]["limit"], 5_000_000);
    assert_eq!(alice["last_action_at"], 0.0);
}

#[test]
fn the_scarcity_scene_freezes_and_rescues() {
    let scene = agent_ecology::scene::Scene::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenes/scarcity.ron"
    )))
    .unwrap();
    let mut sim = Simulation::new(&scene, None).unwrap();
    sim.run_steps(240);
    let log = sim.world().resource::<EventLog>();
    let count =
        |kind: &str, actor: &str| log.recent().filter(|e| e.kind.type_name() == kind && e.actor == actor).count();
    assert!(count("AGENT_FROZEN", "kernel") >= 10, "buyers run dry again and again");
    assert_eq!(
        count("AGENT_UNFROZEN", "pat"),
        count("AGENT_FROZEN", "kernel") - sim.report().principals.values().filter(|p| p.frozen).count()
    );
    // cyd's CPU window holds it to a fraction of what the others buy.
    let bought = |who: &str| log.recent().filter(|e| e.kind.type_name() == "INVOKE_SUCCESS" && e.actor == who).count();
    assert!(bought("cyd") * 4 < bought("ann"), "cyd {} vs ann {}", bought("cyd"), bought("ann"));
    // Each wait is on the record, and cyd does not step again before it is over.
    let throttled: Vec<_> = log.recent().filter(|e| e.kind.type_name() == "AGENT_THROTTLED").collect();
    assert!(!throttled.is_empty());
    for event in throttled {
        assert_eq!(event.actor, "cyd");
        let payload = serde_json::to_value(&event.kind).unwrap()["payload"].clone();
        assert_eq!(payload["resource"], "cpu");
        let until = event.time.as_secs_f64() + payload["retry_after"].as_f64().unwrap();
        let next =
            log.recent().find(|e| e.seq > event.seq && e.actor == "cyd" && e.kind.type_name() != "AGENT_THROTTLED");
        assert!(next.is_none_or(|e| e.time.as_secs_f64() >= until), "cyd acted before its window turned");
    }
    audit(sim.world()).unwrap();
}
