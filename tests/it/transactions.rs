//! Transactions (SPEC §5.6–5.7): every action is atomic, a failing invoke undoes its
//! whole chain while what it consumed stays charged, nested prices are paid by the
//! root caller (or, under `owner_pays`, by the owner of the calling code) within its
//! `max_price`, and every refusal is an event.

use agent_ecology::{
    kernel::{Event, EventKind, EventLog, Held, Holder, InvocationStats, state},
    run::{Simulation, audit, checksum::effects_checksum},
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{act, act_ok, scrip, sim};

fn tool(id: &str, owner: &str, code: &str, extra: &str) -> String {
    format!(r#"(id: "{id}", owner: "{owner}", code: {code:?}, interface: (tools: [(name: "run")]), {extra}),"#)
}

/// A principal with code (it holds scrip of its own, and pays what its code pays).
fn coded_principal(id: &str, scrip: u64, code: &str) -> String {
    format!(r#"(id: "{id}", scrip: {scrip}, code: {code:?}, interface: (tools: [(name: "run")])),"#)
}

fn invoke(sim: &mut Simulation, actor: &str, id: &str, args: Value) -> agent_ecology::kernel::ActionResult {
    act(sim, actor, &json!({"action": "invoke", "id": id, "args": args}).to_string())
}

/// Every event still in memory.
fn events(sim: &Simulation) -> Vec<Event> {
    sim.world().resource::<EventLog>().recent().cloned().collect()
}

fn exists(sim: &Simulation, id: &str) -> bool {
    agent_ecology::world::ids::lookup(sim.world(), id).is_some()
}

#[test]
fn a_failed_spawn_leaves_nothing_behind() {
    let mut sim = sim(r#"Scene(principals: [(id: "mallory", scrip: 100, disk_bytes: 2000)])"#);
    let before = effects_checksum(sim.world());
    // Funded, then its code cannot be written: the import names nothing.
    let spawn = json!({
        "action": "spawn", "id": "child", "scrip": 60, "resources": {"llm_budget": 1000},
        "code": "import { x } from \"artifact:nothing\";\nexport function step() { return [] }",
        "interface": {"tools": [{"name": "step"}]}, "agent": true,
    });
    let r = act(&mut sim, "mallory", &spawn.to_string());
    assert!(!r.success, "{r:?}");
    assert_eq!(effects_checksum(sim.world()), before, "a failed spawn changes nothing");
    assert_eq!(scrip(&sim, "mallory"), 100);
    assert!(!exists(&sim, "child"), "no principal is left by a failed spawn");
    // The stream shows what was done and undone.
    let log = events(&sim);
    let spawned = log.iter().find(|e| matches!(&e.kind, EventKind::PrincipalSpawned { id } if id == "child"));
    assert!(spawned.is_some_and(|e| e.reverted), "{log:#?}");
    assert!(log.iter().any(|e| matches!(e.kind, EventKind::ScripTransfer { amount: 60, .. }) && e.reverted));
    let failed = log.iter().find_map(|e| match &e.kind {
        EventKind::ActionFailed { reverted, .. } => Some(*reverted),
        _ => None,
    });
    assert!(failed.is_some_and(|n| n >= 3), "ACTION_FAILED says what it undid: {failed:?}");
    audit(sim.world()).unwrap();

    // Too big for the spawner's disk: the same.
    let big = json!({
        "action": "spawn", "id": "child", "scrip": 60,
        "code": format!("function step() {{ return [] }} // {}", "x".repeat(3000)),
        "interface": {"tools": [{"name": "step"}]},
    });
    act(&mut sim, "mallory", &big.to_string());
    assert_eq!(effects_checksum(sim.world()), before);
    // The id was never taken.
    act_ok(&mut sim, "mallory", r#"{"action":"spawn","id":"child","scrip":10}"#);
    assert_eq!(scrip(&sim, "child"), 10);
}

#[test]
fn a_spawn_bomb_creates_nothing() {
    let bomb = r#"function step(view) {
        const out = [];
        for (let i = 0; i < 16; i++) {
            out.push({action: "spawn", id: "c" + view.now + "_" + i, scrip: 60,
                      code: 'import { x } from "artifact:nope";\nexport function step() { return [] }',
                      interface: {tools: [{name: "step"}]}, agent: true});
        }
        return out;
    }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "mallory", scrip: 100, agent: true, code: {bomb:?},
                               interface: (tools: [(name: "step")]))])"#
    ));
    sim.run_steps(20);
    let principals = state::scrip_supply(sim.world());
    assert_eq!(principals, 100, "no scrip left the attacker for good");
    assert_eq!(scrip(&sim, "mallory"), 100);
    let log = events(&sim);
    let kept = log.iter().filter(|e| matches!(e.kind, EventKind::PrincipalSpawned { .. }) && !e.reverted).count();
    let undone = log.iter().filter(|e| matches!(e.kind, EventKind::PrincipalSpawned { .. }) && e.reverted).count();
    assert_eq!(kept, 0);
    assert!(undone >= 100, "the attempts were made and undone: {undone}");
    let report = sim.report();
    assert_eq!(report.principals.len(), 1, "{:?}", report.principals.keys());
    audit(sim.world()).unwrap();
}

#[test]
fn pay_then_throw_reverts_the_payment_but_not_the_cpu() {
    let vault = r#"function run() {
        transfer("mallory", 40);
        write("vault_note", "paid");
        throw new Error("gotcha");
    }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "mallory", scrip: 0), {}])"#,
        coded_principal("vault", 50, vault)
    ));
    let before = effects_checksum(sim.world());
    let r = invoke(&mut sim, "alice", "vault", json!({}));
    assert!(!r.success);
    assert!(r.resources_consumed.cpu_us > 0, "what ran is charged: {r:?}");
    assert_eq!((scrip(&sim, "vault"), scrip(&sim, "mallory")), (50, 0));
    assert!(!exists(&sim, "vault_note"));
    assert_eq!(effects_checksum(sim.world()), before);
    let log = events(&sim);
    assert!(log.iter().any(|e| matches!(e.kind, EventKind::ScripTransfer { amount: 40, .. }) && e.reverted));
    assert!(
        log.iter()
            .any(|e| matches!(&e.kind, EventKind::ArtifactWritten { id, .. } if id == "vault_note") && e.reverted)
    );
    let failure = log.iter().find_map(|e| match &e.kind {
        EventKind::InvokeFailure { reverted, cpu_us, .. } => Some((*reverted, *cpu_us)),
        _ => None,
    });
    assert!(failure.is_some_and(|(reverted, cpu)| reverted == 2 && cpu > 0), "{failure:?}");
    // The failure still counts against the tool's reputation.
    assert_eq!(sim.world().resource::<InvocationStats>().counts("vault").failure, 1);
}

#[test]
fn a_caller_that_catches_a_failed_call_keeps_its_own_effects() {
    let outer = r#"function run() {
        transfer("carol", 5);
        let caught = null;
        try { invoke("inner", "run", {}); } catch (e) { caught = e.message; }
        return {caught, carol: kernel.balance("carol"), inner: kernel.balance("inner")};
    }"#;
    let inner =
        r#"function run() { transfer("carol", 7); write("inner_note", "x"); throw new Error("inner failed"); }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "carol", scrip: 0), {}{}])"#,
        coded_principal("outer", 50, outer),
        coded_principal("inner", 50, inner)
    ));
    let r = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"outer"}"#);
    let v = r.result.unwrap();
    assert!(v["caught"].as_str().unwrap().contains("inner failed"), "{v}");
    assert_eq!(v["carol"], 5, "the nested call's transfer was already undone when the caller went on");
    assert_eq!(v["inner"], 50);
    assert_eq!((scrip(&sim, "outer"), scrip(&sim, "inner"), scrip(&sim, "carol")), (45, 50, 5));
    assert!(!exists(&sim, "inner_note"));
    audit(sim.world()).unwrap();
}

#[test]
fn a_tool_without_scrip_calls_a_priced_tool_and_the_root_caller_pays() {
    let wrapper = r#"function run(args) { return invoke("adder", "run", {x: args.x}) + 100 }"#;
    let world = || {
        sim(&format!(
            r#"Scene(principals: [(id: "alice"), (id: "bob", scrip: 0), (id: "carol", scrip: 0)], artifacts: [{}{}])"#,
            tool("wrapper", "bob", wrapper, "pricing: (invoke_price: 2)"),
            tool("adder", "carol", "function run(args) { return args.x + 1 }", "pricing: (invoke_price: 3)"),
        ))
    };
    let mut sim = world();
    let r = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"wrapper","args":{"x":1},"max_price":5}"#);
    assert_eq!(r.result, Some(json!(102)));
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob"), scrip(&sim, "carol")), (95, 2, 3));
    let nested = events(&sim).into_iter().find_map(|e| match e.kind {
        EventKind::InvokeSuccess { artifact, depth: 1, paid_by, price, .. } if artifact == "adder" => {
            Some((paid_by, price))
        }
        _ => None,
    });
    assert_eq!(nested.map(|(by, price)| (by.unwrap().to_string(), price)), Some(("alice".into(), 3)));

    // The root's max_price bounds the whole call: 2 + 3 is more than 4.
    let mut sim = world();
    let before = effects_checksum(sim.world());
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"wrapper","args":{"x":1},"max_price":4}"#);
    assert!(!r.success);
    assert!(r.error.unwrap().message.contains("max_price"));
    assert_eq!(effects_checksum(sim.world()), before, "nothing was paid");
}

#[test]
fn under_owner_pays_the_owner_of_the_calling_code_pays_its_nested_prices() {
    let wrapper = r#"function run(args) { return invoke("adder", "run", {x: args.x}) }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "bob", scrip: 10), (id: "carol", scrip: 0)], artifacts: [{}{}])"#,
        tool("wrapper", "bob", wrapper, "pricing: (invoke_price: 5, resource_policy: owner_pays)"),
        tool("adder", "carol", "function run(args) { return args.x + 1 }", "pricing: (invoke_price: 3)"),
    ));
    act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"wrapper","args":{"x":1},"max_price":5}"#);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob"), scrip(&sim, "carol")), (95, 12, 3));
}

#[test]
fn a_failed_chain_gives_nested_prices_back() {
    let wrapper = r#"function run() { invoke("adder", "run", {x: 1}); throw new Error("after paying") }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "carol", scrip: 0)], artifacts: [{}{}])"#,
        tool("wrapper", "alice", wrapper, ""),
        tool("adder", "carol", "function run(args) { return args.x + 1 }", "pricing: (invoke_price: 3)"),
    ));
    let r = invoke(&mut sim, "alice", "wrapper", json!({}));
    assert!(!r.success);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "carol")), (100, 0));
    let paid = events(&sim).into_iter().find(|e| matches!(e.kind, EventKind::InvokeSuccess { depth: 1, .. }));
    assert!(paid.is_some_and(|e| e.reverted), "the nested call's price is marked undone");
}

#[test]
fn an_id_freed_by_a_roll_back_starts_clean() {
    // Code that writes a tool, uses it, and fails: the tool never existed.
    let maker = r#"function run() {
        write("fresh", null, {code: "function run() { return 2 }", interface: {tools: [{name: "run"}]}});
        invoke("fresh", "run", {});
        throw new Error("undone");
    }"#;
    let mut sim = sim(&format!(r#"Scene(principals: [(id: "alice"), {}])"#, coded_principal("maker", 50, maker)));
    assert!(!invoke(&mut sim, "alice", "maker", json!({})).success);
    assert!(!exists(&sim, "fresh"));
    let stats = sim.world().resource::<InvocationStats>();
    assert_eq!(stats.invocations("fresh"), 0, "what was counted of it went with it");
    // Its id is free, and what takes it starts with nothing against it.
    act_ok(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"fresh","code":"function run() { return 3 }","interface":{"tools":[{"name":"run"}]}}"#,
    );
    assert_eq!(sim.world().resource::<InvocationStats>().invocations("fresh"), 0);
    audit(sim.world()).unwrap();
}

#[test]
fn bids_tasks_listings_and_locks_of_a_failed_chain_are_undone() {
    let vault = r#"function run(args) {
        invoke("kernel_mint", "bid", {artifact: "vault_doc", amount: 10});
        invoke("kernel_tasks", "post", {description: "do it", reward: 5});
        invoke("kernel_escrow", "deposit", {artifact: "vault_tool", price: 3});
        invoke("kernel_locks", "acquire", {name: "door", secs: 10});
        invoke("kernel_debt", "offer", {debtor: "alice", principal: 4, interest: 1, term_secs: 60});
        if (args.fail) throw new Error("and now, nothing happened");
        return "ok";
    }"#;
    let scene = format!(
        r#"Scene(principals: [(id: "alice"), {}], artifacts: [
            (id: "vault_doc", owner: "vault", content: "a document"),
            {}
        ])"#,
        coded_principal("vault", 50, vault),
        tool("vault_tool", "vault", "function run() { return 1 }", ""),
    );
    let mut sim = sim(&scene);
    let before = effects_checksum(sim.world());
    let r = invoke(&mut sim, "alice", "vault", json!({"fail": true}));
    assert!(!r.success);
    assert_eq!(effects_checksum(sim.world()), before);
    assert_eq!(sim.world().resource::<Held>().total(), 0);
    assert_eq!(scrip(&sim, "vault"), 50);
    // The same chain, succeeding, does all of it.
    let r = invoke(&mut sim, "alice", "vault", json!({"fail": false}));
    assert!(r.success, "{r:?}");
    assert_eq!(sim.world().resource::<Held>().of(Holder::Mint), 10);
    assert_eq!(sim.world().resource::<Held>().of(Holder::Tasks), 5);
    assert_eq!(scrip(&sim, "vault"), 35);
    audit(sim.world()).unwrap();
}

#[test]
fn an_agents_malformed_intents_are_events_and_counted() {
    let code = r#"function step() {
        return [{action: "transfr", to: "bob", amount: 1}, {action: "transfer", to: 5}, {action: "noop"}];
    }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "bob"), (id: "sloppy", agent: true, code: {code:?},
                               interface: (tools: [(name: "step")]))])"#
    ));
    sim.step();
    let refused: Vec<(String, String)> = events(&sim)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::IntentRefused { intent, message, .. } => {
                assert_eq!(e.actor, "sloppy");
                Some((intent, message))
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].0.contains("transfr") && refused[0].1.contains("unknown action"), "{refused:?}");
    assert!(refused[1].0.contains("\"to\":5"), "{refused:?}");
    let report = sim.report();
    assert_eq!(report.events.refused, 2);
    assert_eq!(report.events.by_type.get("INTENT_REFUSED"), Some(&2));
}

#[test]
fn describing_a_tool_is_logged_but_not_a_use() {
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "bob")], artifacts: [{}])"#,
        tool("adder", "bob", "function run(args) { return args.x + 1 }", "")
    ));
    let r = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"adder","method":"describe"}"#);
    assert_eq!(r.result.unwrap()["tools"][0]["name"], "run");
    let described = events(&sim).into_iter().any(|e| {
        matches!(&e.kind, EventKind::InvokeSuccess { artifact, method, .. } if artifact == "adder" && method == "describe")
    });
    assert!(described);
    assert_eq!(sim.world().resource::<InvocationStats>().invocations("adder"), 0);
}

/// The code of every tool of the property test: it does what `ops` says, in order.
const RUNNER: &str = r#"function run(args) {
    for (const op of args.ops) {
        if (op.t === "pay") transfer(op.to, op.n);
        else if (op.t === "write") write(op.id, "x".repeat(op.n));
        else if (op.t === "bid") invoke("kernel_mint", "bid", {artifact: op.id, amount: op.n});
        else if (op.t === "post") invoke("kernel_tasks", "post", {description: "a job", reward: op.n});
        else if (op.t === "list") invoke("kernel_escrow", "deposit", {artifact: op.id, price: op.n});
        else if (op.t === "lend") invoke("kernel_debt", "offer", {debtor: op.to, principal: op.n, interest: 1, term_secs: 30});
        else if (op.t === "throw") throw new Error("boom");
        else if (op.t === "call") {
            if (op.catch) { try { invoke(op.id, "run", {ops: op.ops}); } catch (e) {} }
            else invoke(op.id, "run", {ops: op.ops});
        }
    }
    return 1;
}"#;

const TOOLS: [&str; 3] = ["t0", "t1", "t2"];
const PEOPLE: [&str; 3] = ["p0", "p1", "p2"];

fn op(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        (0..3usize, 1..40u64).prop_map(|(to, n)| json!({"t": "pay", "to": PEOPLE[to], "n": n})),
        (0..4u32, 1..3000u64).prop_map(|(k, n)| json!({"t": "write", "id": format!("note{k}"), "n": n})),
        (0..3usize, 1..20u64).prop_map(|(k, n)| json!({"t": "bid", "id": format!("doc{k}"), "n": n})),
        (1..30u64).prop_map(|n| json!({"t": "post", "n": n})),
        (0..3usize, 0..20u64).prop_map(|(k, n)| json!({"t": "list", "id": format!("doc{k}"), "n": n})),
        (0..3usize, 1..30u64).prop_map(|(to, n)| json!({"t": "lend", "to": PEOPLE[to], "n": n})),
        Just(json!({"t": "throw"})),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => (0..3usize, any::<bool>(), prop::collection::vec(op(depth - 1), 0..4))
            .prop_map(|(k, catch, ops)| json!({"t": "call", "id": TOOLS[k], "catch": catch, "ops": ops})),
    ]
    .boxed()
}

fn action() -> impl Strategy<Value = (usize, Value)> {
    let invoke = (0..3usize, prop::collection::vec(op(3), 0..5))
        .prop_map(|(k, ops)| json!({"action": "invoke", "id": TOOLS[k], "args": {"ops": ops}}));
    let spawn = (0..1000u32, 0..150u64, 0..3000u64, any::<bool>()).prop_map(|(n, scrip, pad, broken)| {
        let import = if broken { "import { x } from \"artifact:nothing\";\n" } else { "" };
        let mut spec = json!({
            "action": "spawn", "id": format!("kid{n}"),
            "code": format!("{import}export function run() {{ return 1 }} // {}", "x".repeat(pad as usize)),
            "interface": {"tools": [{"name": "run"}]},
        });
        if scrip > 0 {
            spec["scrip"] = scrip.into();
        }
        spec
    });
    let transfer =
        (0..3usize, 1..150u64).prop_map(|(to, n)| json!({"action": "transfer", "to": PEOPLE[to], "amount": n}));
    // Buying what the tools listed, accepting what they lent: at random prices and
    // ids, so mostly refused — and changing nothing when refused.
    let buy = (0..3usize, 0..20u64).prop_map(|(k, n)| {
        json!({"action": "invoke", "id": "kernel_escrow", "method": "buy", "args": {"artifact": format!("doc{k}"), "price": n}})
    });
    let accept = (0..3usize, 0..4u32).prop_map(|(k, n)| {
        json!({"action": "invoke", "id": "kernel_debt", "method": "accept", "args": {"id": format!("debt_t{k}_{n}")}})
    });
    (0..3usize, prop_oneof![4 => invoke, 1 => spawn, 1 => transfer, 1 => buy, 1 => accept])
}

fn property_world() -> Simulation {
    let tools: String = TOOLS
        .iter()
        .enumerate()
        .map(|(k, id)| {
            format!(
                r#"(id: "{id}", owner: "{}", scrip: 60, disk_bytes: 8000, code: {RUNNER:?},
                    interface: (tools: [(name: "run")]), pricing: (invoke_price: {k})),"#,
                PEOPLE[k]
            )
        })
        .collect();
    let docs: String = (0..3).map(|k| format!(r#"(id: "doc{k}", owner: "t{k}", content: "document {k}"),"#)).collect();
    sim(&format!(
        r#"Scene(
            config: (sandbox: (workers: 1)),
            principals: [(id: "p0", disk_bytes: 8000), (id: "p1", disk_bytes: 8000), (id: "p2", disk_bytes: 8000), {tools}],
            artifacts: [{docs}],
        )"#
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random actions — invokes whose code pays, writes, bids, posts tasks, lists in
    /// escrow, offers loans, calls other tools (caught or not) and throws at random
    /// depths; spawns with random funding and disk; transfers — keep the books: scrip
    /// conserved, disk accounted; and every action that fails leaves every holding,
    /// artifact and record as it was.
    #[test]
    fn failed_actions_change_nothing_and_the_books_always_balance(
        actions in prop::collection::vec(action(), 1..10)
    ) {
        let mut sim = property_world();
        let principals_before = sim.report().principals.len();
        let mut spawned = 0;
        for (who, action) in actions {
            let before = effects_checksum(sim.world());
            let result = act(&mut sim, PEOPLE[who], &action.to_string());
            if result.success {
                spawned += usize::from(action["action"] == "spawn");
            } else {
                prop_assert_eq!(effects_checksum(sim.world()), before, "{} failed: {:?}", action, result.error);
            }
            audit(sim.world()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let supply = sim.world().resource::<agent_ecology::kernel::Supply>().expected_total();
            prop_assert_eq!(state::scrip_supply(sim.world()), supply);
        }
        prop_assert_eq!(sim.report().principals.len(), principals_before + spawned);
    }
}
