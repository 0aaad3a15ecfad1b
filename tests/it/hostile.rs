//! Hostile code must not hurt the world.
//!
//! Each case runs in a world where four traders keep paying each other every step.
//! The hostile call is stopped with a clear error and charged, nobody's balance moves
//! because of it, the ledger still adds up, and the traders trade on — and the test
//! process, of course, survives.

use agent_ecology::{
    kernel::{ActionResult, ErrorCode, EventLog},
    run::{Simulation, audit},
};
use serde_json::json;

use crate::{act, sim};

const TRADER: &str = r#"function step(view) {
    const others = ["t0", "t1", "t2", "t3"].filter(id => id !== view.self);
    return [{action: "transfer", to: others[view.step % 3], amount: 1}];
}"#;

/// A trading world with `mallory` owning the hostile artifact `code`, invoked by
/// alice. Deadlines and loop limits are low so the suite stays quick (these tests
/// run unoptimised, where boa is far slower).
fn hostile_world(code: &str, extra: &str) -> Simulation {
    hostile_world_with(code, extra, "")
}

fn hostile_world_with(code: &str, extra: &str, more_artifacts: &str) -> Simulation {
    let traders: String = (0..4)
        .map(|i| format!(r#"(id: "t{i}", agent: true, code: {TRADER:?}, interface: (tools: [(name: "step")])),"#))
        .collect();
    sim(&format!(
        r#"Scene(
            config: (sandbox: (timeout_secs: 1.0, loop_limit: 200000)),
            principals: [
                {traders}
                (id: "alice"), (id: "mallory", disk_bytes: 1000000),
            ],
            artifacts: [
                {more_artifacts}
                (id: "evil", owner: "mallory", code: {code:?}, interface: (tools: [(name: "run")]), {extra}),
                (id: "honest", owner: "alice", code: "function run() {{ return 42 }}", interface: (tools: [(name: "run")])),
            ],
        )"#
    ))
}

fn trades(sim: &Simulation) -> u64 {
    sim.world().resource::<EventLog>().by_type().get("SCRIP_TRANSFER").copied().unwrap_or(0)
}

/// Runs the hostile call in the middle of a trading run and checks the world.
fn stopped(code: &str, expected: &[ErrorCode]) -> ActionResult {
    stopped_with(code, "", expected)
}

fn stopped_with(code: &str, extra: &str, expected: &[ErrorCode]) -> ActionResult {
    let mut sim = hostile_world(code, extra);
    sim.run_steps(3);
    let before = trades(&sim);
    let supply = sim.report().scrip_supply;
    let result = act(&mut sim, "alice", r#"{"action":"invoke","id":"evil"}"#);
    assert!(!result.success, "hostile code must not succeed: {result:?}");
    let error = result.error.clone().unwrap();
    assert!(expected.contains(&error.code), "expected one of {expected:?}, got {error:?}");
    assert!(!error.message.is_empty());
    assert!(result.resources_consumed.cpu_us > 0, "what it used is charged: {result:?}");
    assert_eq!(sim.report().principals["alice"].scrip, 100, "alice paid nothing for a failure");
    // The world goes on: the traders keep trading, the ledger adds up.
    sim.run_steps(3);
    assert_eq!(trades(&sim), before + 12, "four traders, three more steps");
    assert_eq!(sim.report().scrip_supply, supply);
    audit(sim.world()).unwrap();
    // And code runs again: a killed or crashed worker has been replaced.
    let honest = act(&mut sim, "t0", r#"{"action":"invoke","id":"honest"}"#);
    assert_eq!(honest.result, Some(json!(42)), "{honest:?}");
    result
}

const STOPPED: &[ErrorCode] = &[ErrorCode::ExecutionError, ErrorCode::Timeout];

#[test]
fn an_infinite_loop() {
    let r = stopped("function run() { while (true) {} }", &[ErrorCode::ExecutionError]);
    assert!(r.error.unwrap().message.contains("iteration"), "stopped by the loop limit, deterministically");
}

#[test]
fn exponential_recursion_without_loops() {
    let r = stopped(
        "function f(n) { return n <= 0 ? 1 : f(n - 1) + f(n - 1) } function run() { return f(60) }",
        &[ErrorCode::Timeout],
    );
    assert_eq!(r.resources_consumed.cpu_us, 1_000_000, "a call that had to be killed is charged its whole deadline");
}

#[test]
fn a_huge_string() {
    stopped("function run() { return 'x'.repeat(2 ** 31).length }", STOPPED);
}

#[test]
fn string_doubling() {
    stopped("function run() { let s = 'x'; while (true) s += s; }", STOPPED);
}

#[test]
fn a_huge_array() {
    stopped("function run() { return new Array(2 ** 30).fill(0).length }", STOPPED);
}

#[test]
fn a_catastrophic_regex() {
    stopped("function run() { return /^(a+)+$/.test('a'.repeat(40) + 'b') }", &[ErrorCode::Timeout]);
}

#[test]
fn a_hundred_thousand_nested_brackets() {
    let code = format!("function run() {{ return {}1{} }}", "(".repeat(100_000), ")".repeat(100_000));
    let mut sim = hostile_world("function run() { return 1 }", "");
    sim.run_steps(1);
    // Its owner can store it (it is only text)...
    let write = json!({"action": "write", "id": "evil", "code": code}).to_string();
    assert!(act(&mut sim, "mallory", &write).success);
    // ...but running it fails cleanly.
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"evil"}"#);
    assert!(STOPPED.contains(&r.error_code().unwrap()), "{r:?}");
    sim.run_steps(2);
    audit(sim.world()).unwrap();
}

#[test]
fn deeply_nested_arrays_through_string() {
    stopped(
        "function run() { let a = []; for (let i = 0; i < 900000; i++) a = [a]; return String(a).length }",
        STOPPED,
    );
}

#[test]
fn deeply_nested_objects_through_json() {
    stopped(
        "function run() { let o = {}; for (let i = 0; i < 900000; i++) o = {o}; return JSON.stringify(o).length }",
        STOPPED,
    );
}

#[test]
fn a_deep_proxy_chain() {
    // boa walks 50 000 proxies without harm; make the chain also unbounded in work.
    let code = "function run() { let p = {}; for (let i = 0; i < 50000; i++) p = new Proxy(p, {}); \
                let n = 0; while (true) { n += p.x === undefined ? 1 : 0 } }";
    stopped(code, STOPPED);
}

#[test]
fn eval_and_function_are_refused() {
    let r = stopped("function run() { return eval('1 + 1') }", &[ErrorCode::ExecutionError]);
    assert!(r.error.unwrap().message.contains("eval"));
    stopped("function run() { return new Function('return 1')() }", &[ErrorCode::ExecutionError]);
}

#[test]
fn an_invoke_cycle() {
    let r = stopped("function run() { return invoke('evil', 'run', {}) }", &[ErrorCode::ExecutionError]);
    let message = r.error.unwrap().message;
    assert!(message.contains("would nest 6 calls deep"), "the depth limit ended it: {message}");
}

#[test]
fn a_contract_that_throws_or_loops_denies() {
    for contract in
        ["function check_permission() { throw new Error('no') }", "function check_permission() { while (true) {} }"]
    {
        let gate = format!(
            r#"(id: "gate", owner: "mallory", code: {contract:?}, interface: (tools: [(name: "check_permission")])),"#
        );
        let mut sim = hostile_world_with("function run() { return 1 }", r#"contract: "gate""#, &gate);
        sim.run_steps(1);
        let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"evil"}"#);
        assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied), "{r:?}");
        sim.run_steps(2);
        audit(sim.world()).unwrap();
    }
}

#[test]
fn spending_someone_elses_scrip_or_posing_as_another_caller() {
    let code = r#"function run(args, ctx) {
        const tried = [];
        for (const attempt of [
            () => transfer("mallory", 50),                       // evil holds nothing
            () => transfer("mallory", 50, "scrip", "alice"),     // there is no "from"
            () => invoke("vault", "run", {caller: "alice"}),     // the caller is not an argument
        ]) { try { tried.push(attempt()); } catch (e) { tried.push(e.code || String(e)); } }
        throw new Error(JSON.stringify(tried));
    }"#;
    let r = stopped(code, &[ErrorCode::ExecutionError]);
    let message = r.error.unwrap().message;
    assert!(message.contains("NOT_FOUND"), "{message}");
}

#[test]
fn a_hundred_megabyte_result() {
    let r = stopped("function run() { return 'x'.repeat(100 * 1000 * 1000) }", STOPPED);
    let message = r.error.unwrap().message;
    assert!(message.contains("limit") || message.contains("died") || message.contains("deadline"), "{message}");
}

#[test]
fn a_result_over_the_limit_is_refused_by_size() {
    let r = stopped(
        "function run() { let s = 'x'; for (let i = 0; i < 21; i++) s += s; return s }",
        &[ErrorCode::ExecutionError],
    );
    let message = r.error.unwrap().message;
    assert!(message.contains("the limit is 1048576"), "{message}");
}

#[test]
fn a_dead_worker_is_replaced() {
    // One lane: every call goes to the same worker, until it dies.
    let mut sim = sim(r#"Scene(
        config: (sandbox: (workers: 1, timeout_secs: 1.0)),
        principals: [(id: "alice")],
        artifacts: [
            (id: "bomb", owner: "alice", code: "function run() { return 'x'.repeat(2 ** 31) }", interface: (tools: [(name: "run")])),
            (id: "honest", owner: "alice", code: "function run() { return 42 }", interface: (tools: [(name: "run")])),
        ],
    )"#);
    let sandbox = |sim: &Simulation| sim.world().resource::<agent_ecology::sandbox::Sandbox>().worker_pid(0);
    assert_eq!(act(&mut sim, "alice", r#"{"action":"invoke","id":"honest"}"#).result, Some(json!(42)));
    let first = sandbox(&sim).expect("a worker is running");
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"bomb"}"#);
    assert_eq!(r.error_code(), Some(ErrorCode::ExecutionError));
    assert!(r.error.unwrap().message.contains("died"));
    assert_eq!(sandbox(&sim), None, "the dead worker left its lane");
    assert_eq!(act(&mut sim, "alice", r#"{"action":"invoke","id":"honest"}"#).result, Some(json!(42)));
    let second = sandbox(&sim).expect("a new worker");
    assert_ne!(first, second);
    let stats = sim.world().resource::<agent_ecology::sandbox::Sandbox>().stats();
    assert_eq!((stats.workers_started, stats.workers_lost), (2, 1));
}

#[test]
fn a_worker_lost_deep_in_a_chain_is_charged_once() {
    let mut sim = sim(r#"Scene(
        config: (sandbox: (timeout_secs: 1.0)),
        principals: [(id: "alice")],
        artifacts: [
            (id: "outer", owner: "alice", code: "function run() { return invoke('middle') }", interface: (tools: [(name: "run")])),
            (id: "middle", owner: "alice", code: "function run() { return invoke('regex') }", interface: (tools: [(name: "run")])),
            (id: "regex", owner: "alice", code: "function run() { return /^(a+)+$/.test('a'.repeat(40) + 'b') }", interface: (tools: [(name: "run")])),
        ],
    )"#);
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"outer"}"#);
    assert_eq!(r.error_code(), Some(ErrorCode::Timeout));
    assert_eq!(r.resources_consumed.cpu_us, 1_000_000, "one deadline for one lost worker: {r:?}");
    let failures = sim.world().resource::<EventLog>().by_type()["INVOKE_FAILURE"];
    assert_eq!(failures, 3, "every call of the chain failed with it");
}
