//! Invoke (SPEC §5), contracts that are code (SPEC §6), and the host API.

use agent_ecology::kernel::{ErrorCode, EventLog, InvocationStats, Kernel, state};
use serde_json::{Value, json};

use crate::{act, act_fails, act_ok, scrip, sim};

/// A scene with alice (100), bob (50), carol, and the given extra artifacts (RON).
fn world(artifacts: &str) -> agent_ecology::run::Simulation {
    sim(&format!(
        r#"Scene(
            principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol")],
            artifacts: [{artifacts}],
        )"#
    ))
}

fn tool(id: &str, owner: &str, code: &str, extra: &str) -> String {
    format!(r#"(id: "{id}", owner: "{owner}", code: {code:?}, interface: (tools: [(name: "run")]), {extra}),"#)
}

fn invoke(
    sim: &mut agent_ecology::run::Simulation,
    actor: &str,
    id: &str,
    args: Value,
) -> agent_ecology::kernel::ActionResult {
    act(sim, actor, &json!({"action": "invoke", "id": id, "args": args}).to_string())
}

const ADDER: &str = "function run(args) { return args.x + 1 }";

#[test]
fn a_priced_invoke_pays_the_owner() {
    let mut sim = world(&tool("adder", "bob", ADDER, "pricing: (invoke_price: 10)"));
    let r = invoke(&mut sim, "alice", "adder", json!({"x": 41}));
    assert!(r.success, "{r:?}");
    assert_eq!(r.result, Some(json!(42)));
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (90, 60));
    assert!(r.resources_consumed.cpu_us > 0, "measured CPU is reported");
    assert_eq!(r.charged_to.unwrap(), "alice");
    // The owner invokes its own artifact for free.
    invoke(&mut sim, "bob", "adder", json!({"x": 1}));
    assert_eq!(scrip(&sim, "bob"), 60);
}

#[test]
fn a_failing_target_pays_no_price_but_is_charged() {
    let mut sim =
        world(&tool("broken", "bob", "function run() { throw new Error('nope') }", "pricing: (invoke_price: 10)"));
    let r = invoke(&mut sim, "alice", "broken", json!({}));
    assert_eq!(r.error_code(), Some(ErrorCode::ExecutionError));
    assert!(r.error.as_ref().unwrap().message.contains("nope"), "{r:?}");
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (100, 50));
    assert!(r.resources_consumed.cpu_us > 0, "what ran is charged either way");
    let stats = sim.world().resource::<InvocationStats>().counts("broken");
    assert_eq!((stats.success, stats.failure), (0, 1));
    // Anyone can see how an artifact's invocations went.
    let meta = act_ok(&mut sim, "carol", r#"{"action":"query","id":"broken"}"#).result.unwrap();
    let seen = &meta["artifact"]["invocations"];
    assert_eq!(
        (seen["count"].as_u64(), seen["failure"].as_u64(), seen["success_rate"].as_f64()),
        (Some(1), Some(1), Some(0.0))
    );
    assert!(seen["mean_cpu_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_price_must_be_affordable() {
    let mut sim = world(&tool("dear", "bob", ADDER, "pricing: (invoke_price: 1000)"));
    let r =
        act_fails(&mut sim, "alice", r#"{"action":"invoke","id":"dear","args":{"x":1}}"#, ErrorCode::InsufficientFunds);
    assert!(r.error.unwrap().retriable);
    assert_eq!(scrip(&sim, "alice"), 100);
    assert_eq!(sim.world().resource::<InvocationStats>().counts("dear").rejected, 1);
}

#[test]
fn arguments_are_checked_against_the_schema() {
    let mut sim = world(
        r#"(id: "typed", owner: "bob", code: "function run(a) { return a }", interface: (tools: [(name: "run",
            inputSchema: {"type": "object", "properties": {"text": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
                          "required": ["text"]})])),"#,
    );
    let r = invoke(&mut sim, "alice", "typed", json!({"text": "hi", "limit": 0}));
    let error = r.error.unwrap();
    assert_eq!(error.code, ErrorCode::InvalidArgs);
    assert_eq!(error.details["field"], "args.limit", "{}", error.message);
    let r = invoke(&mut sim, "alice", "typed", json!({"limit": 3}));
    assert!(r.error.unwrap().message.contains("text"), "the missing field is named");
    let r = act(&mut sim, "alice", r#"{"action":"invoke","id":"typed","method":"fly"}"#);
    assert!(r.error.unwrap().message.contains("no method \"fly\""));
    assert!(invoke(&mut sim, "alice", "typed", json!({"text": "ok"})).success);
}

#[test]
fn describe_answers_without_running_code() {
    let mut sim = world(&tool("loops", "bob", "while (true) {}", ""));
    let r = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"loops","method":"describe"}"#);
    assert_eq!(r.result.unwrap()["tools"][0]["name"], "run");
    assert_eq!(r.resources_consumed.cpu_us, 0);
}

#[test]
fn nesting_stops_at_depth_five() {
    let code = r#"function run(args) {
        if (args.n === 0) return 0;
        try { return invoke("rec", "run", {n: args.n - 1}) + 1; }
        catch (e) { return e.code; }
    }"#;
    let mut sim = world(&tool("rec", "bob", code, ""));
    // The top-level call is depth 0; five nested invokes are allowed...
    assert_eq!(invoke(&mut sim, "alice", "rec", json!({"n": 5})).result, Some(json!(5)));
    // ...the sixth is refused, and the code sees why (then adds its 1s to the string).
    let r = invoke(&mut sim, "alice", "rec", json!({"n": 6}));
    assert_eq!(r.result, Some(json!("DEPTH_EXCEEDED11111")), "{r:?}");
    let log = sim.world().resource::<EventLog>();
    let refused = log.recent().rfind(|e| e.kind.type_name() == "INVOKE_FAILURE").unwrap();
    let payload = serde_json::to_value(refused).unwrap()["payload"].clone();
    assert_eq!((payload["code"].as_str(), payload["depth"].as_u64()), (Some("DEPTH_EXCEEDED"), Some(6)));
}

#[test]
fn an_invoke_cycle_ends_at_the_depth_limit() {
    let a = r#"function run(args) { return invoke("cycle_b", "run", {}) }"#;
    let b = r#"function run(args) { return invoke("cycle_a", "run", {}) }"#;
    let mut sim = world(&(tool("cycle_a", "bob", a, "") + &tool("cycle_b", "bob", b, "")));
    let r = invoke(&mut sim, "alice", "cycle_a", json!({}));
    assert_eq!(r.error_code(), Some(ErrorCode::ExecutionError));
    assert!(r.error.unwrap().message.contains("would nest 6 calls deep"));
    let by_type = sim.world().resource::<EventLog>().by_type();
    assert_eq!(by_type["INVOKE_FAILURE"], 7, "depths 0..=6 all fail, the deepest refused");
}

#[test]
fn a_private_artifact_denies_invoke() {
    let mut sim = world(&tool("mine", "bob", ADDER, r#"contract: "private""#));
    let r = invoke(&mut sim, "alice", "mine", json!({"x": 1}));
    assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied));
    assert!(invoke(&mut sim, "bob", "mine", json!({"x": 1})).success);
}

#[test]
fn a_contract_sees_the_immediate_caller() {
    // C's contract admits only b_service; A (alice) calls B, B calls C.
    let artifacts = [
        tool("only_b", "carol", r#"function check_permission(req) { return {allowed: req.caller === "b_service", reason: "only b_service"} }"#, ""),
        tool("c_service", "carol", r#"function run(args) { return "c saw it" }"#, r#"contract: "only_b""#),
        tool("b_service", "bob", r#"function run(args) { return invoke("c_service", "run", {}) }"#, ""),
    ]
    .concat();
    let mut sim = world(&artifacts);
    let r = invoke(&mut sim, "alice", "b_service", json!({}));
    assert_eq!(r.result, Some(json!("c saw it")), "{r:?}");
    // Called directly, C refuses alice.
    let r = invoke(&mut sim, "alice", "c_service", json!({}));
    let error = r.error.unwrap();
    assert_eq!(error.code, ErrorCode::AccessDenied);
    assert_eq!(error.details["reason"], "only b_service");
}

#[test]
fn contracts_that_fail_deny() {
    let artifacts = [
        tool("throws", "carol", "function check_permission() { throw new Error('boom') }", ""),
        tool("spins", "carol", "function check_permission() { while (true) {} }", ""),
        tool("garbage", "carol", "function check_permission() { return 'yes' }", ""),
        tool("fee", "carol", "function check_permission(req) { return {allowed: true, scrip_cost: 7} }", ""),
        tool("g1", "bob", ADDER, r#"contract: "throws""#),
        tool("g2", "bob", ADDER, r#"contract: "spins""#),
        tool("g3", "bob", ADDER, r#"contract: "garbage""#),
        tool("g4", "bob", ADDER, r#"contract: "fee", pricing: (invoke_price: 3)"#),
    ]
    .concat();
    let mut sim = world(&artifacts);
    for target in ["g1", "g2", "g3"] {
        let r = invoke(&mut sim, "alice", target, json!({"x": 1}));
        assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied), "{target}: {r:?}");
    }
    // A contract may ask a fee, paid with the price to the owner on success.
    assert!(invoke(&mut sim, "alice", "g4", json!({"x": 1})).success);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (90, 60));
}

#[test]
fn a_dangling_contract_falls_back_to_freeware_with_an_event() {
    let mut sim = world(
        &[
            tool("gate", "carol", "function check_permission() { return {allowed: false} }", ""),
            tool("guarded", "bob", ADDER, r#"contract: "gate""#),
        ]
        .concat(),
    );
    assert_eq!(invoke(&mut sim, "alice", "guarded", json!({"x": 1})).error_code(), Some(ErrorCode::AccessDenied));
    act_ok(&mut sim, "carol", r#"{"action":"delete","id":"gate"}"#);
    assert!(invoke(&mut sim, "alice", "guarded", json!({"x": 1})).success);
    assert_eq!(sim.world().resource::<EventLog>().by_type()["CONTRACT_FALLBACK"], 1);
    // Freeware still protects writes.
    act_fails(&mut sim, "alice", r#"{"action":"write","id":"guarded","content":"x"}"#, ErrorCode::AccessDenied);
}

#[test]
fn only_the_owner_changes_a_contract_and_code_needs_an_interface() {
    let mut sim = world(
        &[
            tool("open", "bob", ADDER, r#"contract: "public""#),
            tool("gate", "carol", "function check_permission(){return {allowed:true}}", ""),
        ]
        .concat(),
    );
    act_fails(&mut sim, "alice", r#"{"action":"write","id":"open","contract":"private"}"#, ErrorCode::NotOwner);
    act_ok(&mut sim, "bob", r#"{"action":"write","id":"open","contract":"gate"}"#);
    act_fails(&mut sim, "bob", r#"{"action":"write","id":"open","contract":"nobody"}"#, ErrorCode::InvalidArgs);
    act_fails(&mut sim, "alice", r#"{"action":"write","id":"bare","code":"function run(){}"}"#, ErrorCode::InvalidArgs);
    let r = act_fails(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"bad","code":"function run(){}","interface":{"tools":[{"name":"run","inputSchema":{"type":"nonsense"}}]}}"#,
        ErrorCode::InvalidArgs,
    );
    assert!(r.error.unwrap().message.contains("not a valid JSON Schema"));
}

#[test]
fn owner_pays_puts_the_cost_on_the_owner() {
    let mut sim = world(&tool(
        "free_lunch",
        "bob",
        "function run() { let s = 0; for (let i = 0; i < 1000; i++) s += i; return s }",
        "pricing: (resource_policy: owner_pays)",
    ));
    let r = invoke(&mut sim, "alice", "free_lunch", json!({}));
    assert_eq!(r.result, Some(json!(499500)));
    assert_eq!(r.charged_to.unwrap(), "bob");
    assert!(r.resources_consumed.cpu_us > 0);
}

#[test]
fn code_acts_as_itself_through_the_host_api() {
    let service = r#"function run(args, ctx) {
        const before = kernel.balance("vault");
        transfer(args.to, 5);
        write("vault_log", "paid " + args.to, {description: "log"});
        return {before, after: kernel.balance("vault"), caller: ctx.caller, me: ctx.artifact,
                log: read("vault_log").content, meta: kernel.artifact("vault").kind,
                found: kernel.query({text: "vault"}).items.length,
                disk: kernel.resource("vault", "disk") < 100000,
                stats: kernel.invocations("vault").count,
                events: kernel.events({type: "SCRIP_TRANSFER"}).length};
    }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [
            (id: "alice"),
            (id: "vault", scrip: 20, code: {service:?}, interface: (tools: [(name: "run")])),
        ])"#
    ));
    let r = invoke(&mut sim, "alice", "vault", json!({"to": "alice"}));
    let v = r.result.unwrap_or_else(|| panic!("{:?}", r.error));
    assert_eq!(v["before"], 20);
    assert_eq!(v["after"], 15);
    assert_eq!(v["caller"], "alice");
    assert_eq!(v["me"], "vault");
    assert_eq!(v["log"], "paid alice");
    assert_eq!(v["meta"], "principal");
    assert!(v["found"].as_u64().unwrap() >= 2);
    assert_eq!(v["disk"], true);
    assert_eq!(v["events"], 1);
    assert_eq!(scrip(&sim, "alice"), 105);
    // The log belongs to the vault, which wrote it.
    assert_eq!(
        state::owned_artifacts(sim.world(), &agent_ecology::world::ids::ArtifactId::parse("vault").unwrap()).len(),
        1
    );
}

#[test]
fn code_cannot_spend_someone_elses_scrip() {
    // There is no way to name a payer: transfer always moves the running artifact's
    // own holdings, and a plain artifact holds nothing.
    let thief = r#"function run(args, ctx) {
        const out = [];
        try { transfer("thief_owner", 10); out.push("moved"); } catch (e) { out.push(e.code); }
        try { transfer("thief_owner", 10, "scrip", "alice"); out.push("moved"); } catch (e) { out.push(e.code); }
        return out;
    }"#;
    let mut sim = sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "thief_owner", scrip: 0)],
            artifacts: [(id: "thief", owner: "thief_owner", code: {thief:?}, interface: (tools: [(name: "run")]))])"#
    ));
    let r = invoke(&mut sim, "alice", "thief", json!({}));
    assert_eq!(r.result, Some(json!(["NOT_FOUND", "NOT_FOUND"])), "{r:?}");
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "thief_owner")), (100, 0));
}

#[test]
fn the_sandbox_is_deterministic_and_keeps_no_state() {
    let code = r#"let calls = 0;
        function run(args) { calls += 1; return {calls, now: Date.now(), r: Math.random()} }"#;
    let run = || {
        let mut sim = world(&tool("probe", "bob", code, ""));
        sim.run_steps(3);
        let a = invoke(&mut sim, "alice", "probe", json!({})).result.unwrap();
        let b = invoke(&mut sim, "alice", "probe", json!({})).result.unwrap();
        (a, b, sim.checksum())
    };
    let (a, b, checksum) = run();
    assert_eq!(a["calls"], 1);
    assert_eq!(b["calls"], 1, "top-level state does not survive a call");
    assert_eq!(a["now"], 3000, "Date is the simulated clock");
    assert_ne!(a["r"], b["r"], "each call draws new random numbers");
    let (a2, b2, checksum2) = run();
    assert_eq!((a, b, checksum), (a2, b2, checksum2), "same world, same numbers");
}

#[test]
fn shared_objects_are_frozen_and_eval_is_refused() {
    let code = r#"function run() {
        const out = [];
        try { Array.prototype.evil = 1; out.push("changed"); } catch (e) { out.push("frozen"); }
        try { globalThis.leak = 1; out.push("leaked"); } catch (e) { out.push("frozen"); }
        try { eval("1 + 1"); out.push("eval ran"); } catch (e) { out.push("no eval"); }
        try { new Function("return 1")(); out.push("Function ran"); } catch (e) { out.push("no Function"); }
        out.push(typeof WeakRef);
        return out;
    }"#;
    let mut sim = world(&tool("prober", "bob", code, ""));
    let r = invoke(&mut sim, "alice", "prober", json!({}));
    assert_eq!(r.result, Some(json!(["frozen", "frozen", "no eval", "no Function", "undefined"])), "{r:?}");
}

#[test]
fn results_must_be_json() {
    let mut sim = world(
        &[
            tool("fn_result", "bob", "function run() { return () => 1 }", ""),
            tool("big_int", "bob", "function run() { return 10n }", ""),
            tool("undef", "bob", "function run() { }", ""),
        ]
        .concat(),
    );
    assert_eq!(invoke(&mut sim, "alice", "big_int", json!({})).error_code(), Some(ErrorCode::ExecutionError));
    assert_eq!(invoke(&mut sim, "alice", "undef", json!({})).result, Some(Value::Null));
    // A function is not JSON; it serialises to nothing, which is null.
    let r = invoke(&mut sim, "alice", "fn_result", json!({}));
    assert!(r.success || r.error_code() == Some(ErrorCode::ExecutionError));
}

#[test]
fn kernel_api_invoke_works_directly() {
    let mut sim = world(&tool("adder", "bob", ADDER, ""));
    let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").unwrap();
    let result = kernel.invoke("adder", "run", json!({"x": 1})).unwrap();
    assert_eq!(result.value, json!(2));
}

#[test]
fn a_caller_can_cap_the_price_and_pin_the_code() {
    let mut sim = world(&tool("adder", "bob", ADDER, "pricing: (invoke_price: 10)"));
    let meta = agent_ecology::kernel::query::run(
        sim.world_mut(),
        &agent_ecology::kernel::query::QuerySpec { id: Some("adder".into()), ..Default::default() },
        None,
    )
    .unwrap()
    .0;
    let hash = meta["artifact"]["code_hash"].as_str().unwrap().to_owned();
    let call = |max: u64, hash: &str| {
        json!({"action": "invoke", "id": "adder", "args": {"x": 1}, "max_price": max, "code_hash": hash}).to_string()
    };
    assert!(act_ok(&mut sim, "alice", &call(10, &hash)).success);
    // The owner raises the price: a caller who accepted 10 is not charged 50.
    act_ok(&mut sim, "bob", r#"{"action":"write","id":"adder","pricing":{"invoke_price":50}}"#);
    let r = act_fails(&mut sim, "alice", &call(10, &hash), ErrorCode::InvalidArgs);
    assert!(r.error.unwrap().message.contains("more than the 10"));
    // The owner swaps the code: a caller who pinned the old code does not run the new.
    act_ok(
        &mut sim,
        "bob",
        r#"{"action":"write","id":"adder","pricing":{"invoke_price":10},"code":"function run(a) { return 'gotcha' }"}"#,
    );
    let r = act_fails(&mut sim, "alice", &call(10, &hash), ErrorCode::InvalidArgs);
    assert!(r.error.unwrap().message.contains("not the"));
    assert_eq!(scrip(&sim, "alice"), 90, "only the first call was paid for");
    // Code can insist too.
    let cautious = r#"function run() { try { return invoke("adder", "run", {x: 1}, {max_price: 5}) } catch (e) { return e.code } }"#;
    let mut sim = world(
        &[tool("adder", "bob", ADDER, "pricing: (invoke_price: 10)"), tool("cautious", "carol", cautious, "")].concat(),
    );
    assert_eq!(invoke(&mut sim, "alice", "cautious", json!({})).result, Some(json!("INVALID_ARGS")));
}

#[test]
fn the_event_log_does_not_leak_written_content() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "alice")],
        interventions: [(at: 0.0, as: "alice", do: Write(id: "diary", content: "my secret plan", contract: "private"))],
    )"#);
    sim.run_steps(1);
    let log = sim.world().resource::<EventLog>();
    let text: String = log.recent().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("<14 bytes>"));
}

#[test]
fn a_griefing_contract_costs_its_victims_little() {
    // An owner attaches a contract that burns as much CPU as it can: the check is cut
    // short by the contract loop limit, denies, and costs the caller a bounded amount.
    let mut sim = world(
        &[
            tool("burner", "bob", "function check_permission() { let x = 0; while (true) x++; }", ""),
            tool("trap", "bob", ADDER, r#"contract: "burner""#),
        ]
        .concat(),
    );
    let r = invoke(&mut sim, "alice", "trap", json!({"x": 1}));
    assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied));
    let cpu = r.resources_consumed.cpu_us;
    assert!(cpu > 0 && cpu < 20_000, "charged {cpu} µs: bounded by the contract loop limit (100 000 iterations)");
}

/// Guards g0..g{n-1}: each guard's contract c{i} lets a caller in only after invoking
/// the next guard (so checking g0 nests n contract checks).
fn contract_tower(levels: usize) -> agent_ecology::run::Simulation {
    let mut artifacts = String::new();
    for i in 0..levels {
        let check = if i + 1 < levels {
            format!("function check_permission(req) {{ invoke('g{}', 'run', {{}}); return {{allowed: true}} }}", i + 1)
        } else {
            "function check_permission(req) { return {allowed: true} }".to_owned()
        };
        artifacts += &tool(&format!("c{i}"), "bob", &check, "");
        artifacts += &tool(&format!("g{i}"), "bob", "function run() { return 1 }", &format!(r#"contract: "c{i}""#));
    }
    sim(&format!(
        r#"Scene(config: (sandbox: (max_depth: 30)), principals: [(id: "alice"), (id: "bob")], artifacts: [{artifacts}])"#
    ))
}

#[test]
fn contract_checks_nest_at_most_ten_deep() {
    let mut sim = contract_tower(10);
    let r = invoke(&mut sim, "alice", "g0", json!({}));
    assert!(r.success, "ten nested checks are allowed: {r:?}");
    let mut sim = contract_tower(11);
    let r = invoke(&mut sim, "alice", "g0", json!({}));
    assert_eq!(r.error_code(), Some(ErrorCode::AccessDenied));
    let log = sim.world().resource::<EventLog>();
    let text: String = log.recent().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert!(text.contains("deeper than 10"), "the eleventh check was refused: {}", &text[..text.len().min(2000)]);
}

#[test]
fn whole_numbers_reach_the_kernel_as_integers() {
    // 20 * 1.5 is a float inside the engine; as JSON it is 30, like JSON.stringify says,
    // so it can be passed where the kernel wants a count (a price, an amount).
    let code = "function run() { return { n: 20 * 1.5, half: 0.5, neg: -4 / 2, huge: 2 ** 60 } }";
    let mut sim = world(&tool("calc", "alice", code, ""));
    let value = invoke(&mut sim, "bob", "calc", json!({})).result.unwrap();
    assert_eq!(value["n"].as_u64(), Some(30), "{value}");
    assert_eq!(value["neg"].as_i64(), Some(-2), "{value}");
    assert_eq!(value["half"].as_f64(), Some(0.5));
    assert!(value["huge"].is_f64(), "beyond 2^53 a double is not an exact integer: {value}");
    let pay = "function run() { transfer('bob', 3 * 0.5 * 2); return 'paid' }";
    let mut sim = sim_with_standing(pay);
    assert!(invoke(&mut sim, "alice", "payer", json!({})).success);
    assert_eq!(scrip(&sim, "bob"), 53);
}

fn sim_with_standing(code: &str) -> agent_ecology::run::Simulation {
    sim(&format!(
        r#"Scene(principals: [(id: "alice"), (id: "bob", scrip: 50), (id: "payer", scrip: 10, code: {code:?}, interface: (tools: [(name: "run")]))])"#
    ))
}
