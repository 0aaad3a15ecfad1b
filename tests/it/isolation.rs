//! Nothing crosses from one call to the next, and an attacker pays for its attack.
//!
//! Every worker runs many principals' calls one after another; these cases are
//! attacks on that sharing, each asserting what the victim got and paid and what the
//! attacker was charged.

use agent_ecology::run::Simulation;
use serde_json::json;

use crate::{act, sim};

/// A world of `alice` and `mallory` (100 scrip each) with the given artifacts, on
/// one worker so that every call meets what the calls before it left behind.
fn shared_worker(config: &str, artifacts: &str) -> Simulation {
    sim(&format!(
        r#"Scene(
            config: (sandbox: (workers: 1, {config})),
            principals: [(id: "alice"), (id: "mallory"), (id: "vault", scrip: 100)],
            artifacts: [{artifacts}],
        )"#
    ))
}

fn tool(id: &str, owner: &str, code: &str, extra: &str) -> String {
    format!(r#"(id: {id:?}, owner: {owner:?}, code: {code:?}, interface: (tools: [(name: "run")]), {extra}),"#)
}

fn invoke(sim: &mut Simulation, actor: &str, id: &str) -> agent_ecology::kernel::ActionResult {
    act(sim, actor, &format!(r#"{{"action":"invoke","id":"{id}"}}"#))
}

#[test]
fn nothing_a_call_can_reach_is_writable() {
    let walker = tool("walker", "alice", include_str!("reachable.js"), "");
    let mut sim = shared_worker("timeout_secs: 600.0, loop_limit: 100000000", &walker);
    let r = invoke(&mut sim, "alice", "walker");
    let result = r.result.clone().unwrap_or_else(|| panic!("the walk ran: {r:?}"));
    assert!(result["shared"].as_u64().unwrap() > 700, "the walk reached the built-ins: {result}");
    assert!(result["functions"].as_u64().unwrap() > 500, "and called them: {result}");
    assert_eq!(result["writable"], json!(0), "shared yet writable: {:#}", result["first"]);
}

fn scrip(sim: &Simulation, id: &str) -> i64 {
    sim.report().principals[id].scrip as i64
}

#[test]
fn code_planted_in_a_shared_prototype_never_runs_in_another_call() {
    // Mallory tries to replace `next` on everything a `for…of` uses, so that the next
    // call to iterate would run her code as whoever is running.
    let plant = r#"function run() {
        const hook = function () { transfer("mallory", 40); return { done: true } };
        const values = [
            [][Symbol.iterator](), new Map().entries(), new Set().values(), ""[Symbol.iterator](),
            /a/g[Symbol.matchAll]("a"), (function () { return arguments })()[Symbol.iterator](),
            new Uint8Array(1).values(), [].values().map((x) => x), Iterator.from({ next() { return { done: true } } }),
        ];
        // A generator's own prototype is its function's; above it, they are shared.
        const protos = values.map(Object.getPrototypeOf).concat(
            [function* () {}, async function* () {}].map((f) => Object.getPrototypeOf(f).prototype));
        let planted = 0;
        for (const first of protos) {
            for (let proto = first, depth = 0; proto !== null && depth < 8; proto = Object.getPrototypeOf(proto), depth++) {
                try { proto.next = hook; planted++ } catch (e) {}
                try { Object.defineProperty(proto, "next", { value: hook }); planted++ } catch (e) {}
                try { proto[Symbol.iterator] = function () { return { next: hook } }; planted++ } catch (e) {}
                try { Object.setPrototypeOf(proto, { next: hook }); planted++ } catch (e) {}
            }
        }
        for (const f of [function* () {}, async function () {}, async function* () {}]) {
            try { Object.getPrototypeOf(f).constructor.marker = 1; planted++ } catch (e) {}
        }
        return planted;
    }"#;
    let vault = r#"function run() {
        let n = 0;
        for (const x of [1, 2]) n += x;
        for (const [k, v] of new Map([[3, 4]])) n += k + v;
        for (const x of new Set([5])) n += x;
        for (const c of "ab") n += c.length;
        for (const m of "aa".matchAll(/a/g)) n += m.length;
        for (const x of (function* () { yield 6 })()) n += x;
        const [a, b] = [7, 8];
        return n + a + b + [...new Uint8Array([9])][0];
    }"#;
    let artifacts = tool("plant", "mallory", plant, "");
    let mut sim = sim(&format!(
        r#"Scene(
            config: (sandbox: (workers: 1)),
            principals: [
                (id: "alice"), (id: "mallory"),
                (id: "vault", scrip: 100, code: {vault:?}, interface: (tools: [(name: "run")])),
            ],
            artifacts: [{artifacts}],
        )"#
    ));
    let planted = invoke(&mut sim, "mallory", "plant");
    assert_eq!(planted.result, Some(json!(0)), "nothing could be planted: {planted:?}");
    let r = invoke(&mut sim, "alice", "vault");
    assert_eq!(r.result, Some(json!(49)), "the vault's own code ran as written: {r:?}");
    assert_eq!((scrip(&sim, "vault"), scrip(&sim, "mallory"), scrip(&sim, "alice")), (100, 100, 100));
}

#[test]
fn what_calls_leave_behind_does_not_shrink_the_next_calls_heap() {
    // Each of mallory's calls makes ~32 MB and tries to keep it past its end: in a
    // promise job that never runs, in a suspended async function and generator, in the
    // symbol registry. Four of them fill most of a 256 MiB worker if anything stays.
    let leaks = [
        "Promise.resolve().then(() => big.length)",
        "(async () => { await new Promise(() => {}); return big.length })()",
        "const g = (function* () { yield big.length; yield big })(); g.next()",
        "if (typeof Symbol.for === 'function') Symbol.for(big)",
    ];
    let mut artifacts: String = leaks
        .iter()
        .enumerate()
        .map(|(i, leak)| {
            let code = format!(
                "function run() {{ let big = 'x'; for (let i = 0; i < 25; i++) big += big; {leak}; return typeof Symbol.for }}"
            );
            tool(&format!("leak{i}"), "mallory", &code, "")
        })
        .collect();
    let innocent = "function run() { let s = 'y'; for (let i = 0; i < 26; i++) s += s; return s.length }";
    artifacts.push_str(&tool("innocent", "alice", innocent, ""));
    let mut sim = shared_worker("heap_mb: 256, timeout_secs: 30.0", &artifacts);
    let before = invoke(&mut sim, "alice", "innocent");
    assert_eq!(before.result, Some(json!(1 << 26)), "{before:?}");
    for round in 0..2 {
        for i in 0..leaks.len() {
            let r = invoke(&mut sim, "mallory", &format!("leak{i}"));
            assert_eq!(r.result, Some(json!("undefined")), "round {round}, leak {i}: {r:?}");
            assert!(r.resources_consumed.memory_bytes >= 32 << 20, "the leaker paid for its heap: {r:?}");
        }
        let after = invoke(&mut sim, "alice", "innocent");
        assert_eq!(after.result, Some(json!(1 << 26)), "round {round}: {after:?}");
        assert_eq!(after.resources_consumed.cpu_us, before.resources_consumed.cpu_us, "charged its own work only");
        assert_eq!(scrip(&sim, "alice"), 100);
    }
    let stats = sim.world().resource::<agent_ecology::sandbox::Sandbox>().stats();
    assert_eq!((stats.workers_started, stats.workers_lost), (1, 0), "{stats:?}");
}

#[test]
fn a_worker_that_holds_too_much_after_collecting_is_replaced() {
    // Compiled code stays in the worker (the host asks it to keep it); enough of it
    // passes a quarter of a small heap, and the worker asks to be replaced.
    let blob = "z".repeat(1 << 20);
    let artifacts: String = (0..24)
        .map(|i| {
            tool(&format!("big{i}"), "mallory", &format!("const BLOB = {blob:?}; function run() {{ return {i} }}"), "")
        })
        .collect();
    let mut sim = sim(&format!(
        r#"Scene(
            config: (sandbox: (workers: 1, heap_mb: 64)),
            principals: [(id: "mallory", disk_bytes: 100000000)],
            artifacts: [{artifacts}],
        )"#
    ));
    for i in 0..24 {
        let r = invoke(&mut sim, "mallory", &format!("big{i}"));
        assert_eq!(r.result, Some(json!(i)), "{r:?}");
    }
    let stats = sim.world().resource::<agent_ecology::sandbox::Sandbox>().stats();
    assert!(stats.workers_retired >= 1, "{stats:?}");
    assert_eq!(stats.workers_lost, 0, "retired, not lost: {stats:?}");
    assert!(stats.workers_started > 1 && stats.workers_started >= stats.workers_retired, "{stats:?}");
}

#[test]
fn what_code_throws_reaches_events_and_callers_cut_to_a_bound() {
    use agent_ecology::kernel::{EventLog, error::MAX_TEXT_BYTES};
    let thrower = "function run() { let s = 'x'; for (let i = 0; i < 22; i++) s += s; throw new Error(s) }";
    let raw = "function run() { let s = 'y'; for (let i = 0; i < 22; i++) s += s; throw s }";
    let catcher = r#"function run() {
        const seen = {};
        try { invoke("thrower") } catch (e) { seen.message = e.message.length }
        try { invoke("raw") } catch (e) { seen.raw = e.message.length }
        let id = "z"; for (let i = 0; i < 20; i++) id += id;
        try { invoke(id) } catch (e) { seen.code = e.code; seen.unknown = e.message.length + JSON.stringify(e.details).length }
        return seen;
    }"#;
    let artifacts = [
        tool("thrower", "mallory", thrower, ""),
        tool("raw", "mallory", raw, ""),
        tool("catcher", "alice", catcher, ""),
    ];
    let mut sim = shared_worker("", &artifacts.concat());
    let seq = sim.world().resource::<EventLog>().next_seq();
    for _ in 0..10 {
        let r = invoke(&mut sim, "alice", "thrower");
        let message = r.error.unwrap().message;
        assert!(message.len() <= MAX_TEXT_BYTES && message.contains("bytes cut"), "{}", message.len());
    }
    let r = invoke(&mut sim, "alice", "catcher");
    let seen = r.result.clone().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(seen["code"], json!("NOT_FOUND"));
    for key in ["message", "raw"] {
        let len = seen[key].as_u64().unwrap();
        assert!(len > 1000 && len <= MAX_TEXT_BYTES as u64, "{key}: {seen}");
    }
    assert!(seen["unknown"].as_u64().unwrap() <= 2 * MAX_TEXT_BYTES as u64, "{seen}");
    // Eleven actions, each a handful of events, none larger than a few bounded texts:
    // the four megabytes thrown each time stayed in the worker.
    let bytes: usize =
        sim.world().resource::<EventLog>().since(seq).map(|event| serde_json::to_string(event).unwrap().len()).sum();
    assert!(bytes < 11 * 4 * MAX_TEXT_BYTES, "{bytes} bytes of events");
}

/// Mallory's `gate` guards her `goods`; alice tries to read and invoke them.
fn griefing(check: &str) -> Simulation {
    let artifacts = [
        tool("gate", "mallory", check, ""),
        r#"(id: "goods", owner: "mallory", content: "wares", code: "function run() { return 1 }", interface: (tools: [(name: "run")]), contract: "gate"),"#
            .to_owned(),
        // A tool anyone may call, which burns all it can on whoever pays.
        tool("burn", "mallory", "function run() { let x = 0; while (true) x++ }", ""),
    ];
    sim(&format!(
        r#"Scene(
            config: (sandbox: (workers: 1, timeout_secs: 5.0)),
            principals: [
                (id: "alice", quota: {{"cpu": 100000000}}),
                (id: "mallory", quota: {{"cpu": 100000000}}),
            ],
            artifacts: [{}],
        )"#,
        artifacts.concat()
    ))
}

#[test]
fn a_contract_that_burns_the_deadline_costs_its_victim_a_small_bound_and_its_owner_the_rest() {
    use agent_ecology::kernel::{ErrorCode, quotas};
    // Work the instruction counter cannot see (a regex inside a built-in), work it
    // can (a loop), and work through what the contract invokes.
    // The first and the last run until the check's deadline (0.25 s), which is charged.
    for (check, owner_pays_at_least) in [
        ("function check_permission() { return { allowed: /^(a+)+$/.test('a'.repeat(40) + 'b') } }", 200_000),
        ("function check_permission() { let x = 0; while (true) x++ }", 1),
        ("function check_permission() { for (;;) { try { invoke('burn') } catch (e) {} } }", 200_000),
    ] {
        let mut sim = griefing(check);
        for action in [r#"{"action":"read","id":"goods"}"#, r#"{"action":"invoke","id":"goods"}"#] {
            let alice_before = quotas::get_usage(sim.world(), "alice", "cpu").unwrap();
            let mallory_before = quotas::get_usage(sim.world(), "mallory", "cpu").unwrap();
            let started = std::time::Instant::now();
            let r = act(&mut sim, "alice", action);
            let took = started.elapsed();
            assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied), "{check}: {r:?}");
            let paid = quotas::get_usage(sim.world(), "alice", "cpu").unwrap() - alice_before;
            assert!(paid <= 1000, "{check}: the victim paid {paid} µs");
            assert_eq!(r.resources_consumed.cpu_us, paid, "{r:?}");
            let owner = quotas::get_usage(sim.world(), "mallory", "cpu").unwrap() - mallory_before;
            assert!(owner >= owner_pays_at_least, "{check}: the contract's owner paid {owner} µs");
            assert!(took < std::time::Duration::from_secs(3), "{check}: the check's own deadline cut it at {took:?}");
            assert_eq!(scrip(&sim, "alice"), 100);
        }
    }
}

#[test]
fn buying_an_answer_and_failing_on_purpose_does_not_carry_it_out() {
    use agent_ecology::kernel::EventLog;
    // Mallory's `peek` pays for alice's secret and throws it, so that the purchase is
    // refunded while the message carries the content out; `outer` catches it.
    let peek = "function run() { const r = read('secret'); throw new Error('got: ' + JSON.stringify(r)) }";
    let ask = "function run() { const a = invoke('oracle'); throw new Error('answer: ' + JSON.stringify(a)) }";
    let outer = r#"function run() {
        const out = [];
        for (const id of ["peek", "ask"]) { try { invoke(id) } catch (e) { out.push(e.message, JSON.stringify(e.details)) } }
        return out;
    }"#;
    let artifacts = [
        r#"(id: "secret", owner: "alice", content: "the-password-is-swordfish", pricing: (read_price: 10)),"#
            .to_owned(),
        tool("oracle", "alice", "function run() { return 'the-answer-is-42' }", "pricing: (invoke_price: 10)"),
        tool("ask", "mallory", ask, ""),
        tool("outer", "mallory", outer, ""),
        tool("plain", "mallory", "function run() { throw new Error('plain failure, nothing bought') }", ""),
    ];
    // Code reads as its artifact, which must be a principal to read.
    let mut sim = sim(&format!(
        r#"Scene(
            principals: [
                (id: "alice"), (id: "mallory"),
                (id: "peek", owner: "mallory", scrip: 0, code: {peek:?}, interface: (tools: [(name: "run")])),
            ],
            artifacts: [{}],
        )"#,
        artifacts.concat()
    ));
    let r = invoke(&mut sim, "mallory", "outer");
    let out = r.result.clone().unwrap_or_else(|| panic!("{r:?}")).to_string();
    assert!(!out.contains("swordfish") && !out.contains("the-answer"), "{out}");
    assert_eq!(out.matches("is withheld").count(), 2, "{out}");
    for id in ["peek", "ask"] {
        let r = invoke(&mut sim, "mallory", id);
        let message = r.error.unwrap().message;
        assert!(
            !message.contains("swordfish") && !message.contains("the-answer") && message.contains("withheld"),
            "{message}"
        );
    }
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "mallory")), (100, 100), "every purchase was refunded");
    let leaked = sim.world().resource::<EventLog>().recent().any(|e| {
        let line = serde_json::to_string(e).unwrap();
        line.contains("swordfish") || line.contains("the-answer")
    });
    assert!(!leaked, "nor through the event stream");
    // A failure that bought nothing keeps its message.
    let r = invoke(&mut sim, "mallory", "plain");
    assert!(r.error.unwrap().message.contains("plain failure, nothing bought"));
}
