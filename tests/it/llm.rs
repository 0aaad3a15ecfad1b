//! Thinking (SPEC §9) against a real HTTP server: the kernel's gateway, the `llm`
//! syscall, who pays, budgets running out, retries, the record/replay cache, the API
//! key staying secret, and the two clocks. The server is `tests/support/fake_llm.rs`,
//! an OpenAI-compatible HTTP/1.1 server on a random local port.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use agent_ecology::{
    bridge::BridgeOptions,
    kernel::{ErrorCode, EventLog, state},
    run::{Simulation, audit},
    scene::Scene,
    world::{
        components::{Frozen, Thinking},
        ids,
    },
};
use serde_json::{Value, json};

use crate::{
    act, act_ok,
    fake_llm::{FakeLlm, Reply},
    sim,
};

// ---------------------------------------------------------------------------------
// Scenes
// ---------------------------------------------------------------------------------

/// `config.llm` for a world thinking with model `fake` on the fake server: 1 µ$ a
/// prompt token, 2 µ$ a completion token, 100 completion tokens asked for, quick
/// retries (3 attempts), a short timeout.
fn llm_section(base_url: &str, key_env: Option<&str>, extra: &str) -> String {
    let key = key_env.map(|k| format!("api_key_env: {k:?},")).unwrap_or_default();
    format!(
        r#"llm: (
            default_model: "fake", max_tokens: 100,
            retry: (max_attempts: 3, base_ms: 10, max_ms: 50),
            endpoints: {{"local": (base_url: {base_url:?}, timeout_secs: 5.0, {key})}},
            models: {{"fake": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}},
            {extra}
        )"#
    )
}

/// Asks the model `LIMIT` times, one question at a time, and keeps in its memory
/// every answer it was handed (entries with a `request`) and every failed action.
const THINKER: &str = r#"function step(view) {
    const mem = view.memory ? JSON.parse(view.memory) : {asked: 0, answers: [], failed: []};
    for (const r of view.inbox) {
        if (r.request !== undefined) mem.answers.push(r);
        else if (!r.success) mem.failed.push(r.error);
    }
    const acts = [];
    if (mem.asked < LIMIT) {
        mem.asked += 1;
        acts.push({action: "invoke", id: "kernel_llm_gateway", method: "chat",
                   args: {messages: [{role: "system", content: "You are an agent."},
                                     {role: "user", content: PROMPT + " #" + mem.asked}]}});
    }
    acts.unshift({action: "write", id: view.self, content: JSON.stringify(mem)});
    if (mem.asked >= LIMIT && acts.length === 1) return {actions: acts, sleep: {secs: 1000000}};
    return acts;
}"#;

/// An agent entry of `principals`, thinking `limit` times about `prompt`.
fn thinker(id: &str, limit: u32, prompt: &str, extra: &str) -> String {
    let code = THINKER.replace("LIMIT", &limit.to_string()).replace("PROMPT", &format!("{prompt:?}"));
    format!(
        r#"(id: {id:?}, agent: true, code: {code:?}, interface: (tools: [(name: "step")]), disk_bytes: 1000000, {extra}),"#
    )
}

/// Scene text: the given principal entries and artifact entries, thinking on `fake`.
fn scene_text(
    base_url: &str,
    key_env: Option<&str>,
    principals: &str,
    artifacts: &str,
    llm_extra: &str,
    config_extra: &str,
) -> String {
    format!(
        "Scene(\n  config: ({config_extra} {}),\n  principals: [{principals}],\n  artifacts: [{artifacts}],\n)",
        llm_section(base_url, key_env, llm_extra)
    )
}

fn world(fake: &FakeLlm, principals: &str, artifacts: &str) -> Simulation {
    sim(&scene_text(&fake.base_url(), None, principals, artifacts, "", ""))
}

/// A world with one agent, `agent`, thinking `limit` times with `budget` µ$.
fn one_thinker(fake: &FakeLlm, limit: u32, budget: u64) -> Simulation {
    world(fake, &thinker("agent", limit, "hello", &format!("llm_budget_micro_usd: {budget}")), "")
}

// ---------------------------------------------------------------------------------
// Looking at a world
// ---------------------------------------------------------------------------------

fn budget(sim: &Simulation, id: &str) -> u64 {
    state::get_llm_budget(sim.world(), id).unwrap()
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn memory(sim: &Simulation, id: &str) -> Value {
    let entity = ids::lookup(sim.world(), id).unwrap();
    let text = sim.world().get::<agent_ecology::world::components::Artifact>(entity).unwrap().content().to_owned();
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")) }
}

fn thinking(sim: &Simulation, id: &str) -> bool {
    sim.world().get::<Thinking>(ids::lookup(sim.world(), id).unwrap()).is_some()
}

fn frozen(sim: &Simulation, id: &str) -> bool {
    sim.world().get::<Frozen>(ids::lookup(sim.world(), id).unwrap()).is_some()
}

/// The cost of `prompt` + `completion` tokens of model `fake`.
fn cost(prompt: u64, completion: u64) -> u64 {
    prompt + 2 * completion
}

// ---------------------------------------------------------------------------------
// Paying for thought
// ---------------------------------------------------------------------------------

#[test]
fn thinking_costs_exactly_the_reported_usage_at_the_model_price() {
    let fake = FakeLlm::start();
    fake.push(Reply::tool("transfer", json!({"to": "bob", "amount": 3}), 100, 20));
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.step();
    // Asked: the estimate is held while the call is in flight.
    assert!(thinking(&sim, "agent"));
    let reserved = 10_000 - budget(&sim, "agent");
    assert!(reserved > cost(100, 20), "the estimate covers 100 completion tokens at least: {reserved}");
    sim.run_steps(2);
    assert!(!thinking(&sim, "agent"));

    let report = sim.report();
    assert_eq!(report.principals["agent"].resources["llm_budget"], 10_000 - 140);
    assert_eq!(budget(&sim, "agent"), 10_000 - 140);
    assert_eq!((report.llm.calls, report.llm.failed, report.llm.in_flight), (1, 0, 0));
    assert_eq!((report.llm.prompt_tokens, report.llm.completion_tokens, report.llm.cost_micro_usd), (100, 20, 140));
    assert_eq!(report.llm.by_model["fake"].cost_micro_usd, 140);

    let thought = &events(&sim, "THINKING")[0];
    assert_eq!(thought["actor"], "agent");
    let payload = &thought["payload"];
    assert_eq!(payload["principal"], "agent");
    assert_eq!(payload["request"], "llm-1");
    assert_eq!((payload["cost_micro_usd"].as_u64(), payload["attempts"].as_u64()), (Some(140), Some(1)));

    // What the server was sent, and what the agent was handed.
    let sent = &fake.requests()[0].body;
    assert_eq!(sent["model"], "fake");
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["messages"][1]["content"], "hello #1");
    let answer = &memory(&sim, "agent")["answers"][0];
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["id"], "kernel_llm_gateway");
    assert_eq!(answer["request"], "llm-1");
    let result = &answer["result"];
    assert_eq!(result["cost_micro_usd"], 140);
    assert_eq!(result["usage"]["prompt_tokens"], 100);
    assert_eq!(result["tool_calls"][0]["name"], "transfer");
    assert_eq!(result["tool_calls"][0]["args"], json!({"to": "bob", "amount": 3}));
    assert_eq!(result["tool_calls"][0]["arguments"], r#"{"amount":3,"to":"bob"}"#);
    audit(sim.world()).unwrap();
}

/// `olga` owns two tools that call `llm(...)` from `run()`: one has `can_call_llm`.
fn syscall_world(fake: &FakeLlm) -> Simulation {
    let code = r#"function run(args) {
        try { return llm({messages: [{role: "user", content: "think for me"}]}); }
        catch (e) { return {error: e.code, message: String(e.message)}; }
    }"#;
    world(
        fake,
        r#"(id: "alice", llm_budget_micro_usd: 10000), (id: "olga", llm_budget_micro_usd: 10000),"#,
        &format!(
            r#"(id: "plain", owner: "olga", code: {code:?}, interface: (tools: [(name: "run")])),
               (id: "able", owner: "olga", code: {code:?}, interface: (tools: [(name: "run")]), capabilities: ["can_call_llm"]),"#
        ),
    )
}

#[test]
fn the_llm_syscall_needs_the_capability_and_its_invoker_pays() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("a thought", 100, 20));
    let mut sim = syscall_world(&fake);

    let denied = act_ok(&mut sim, "alice", r#"{"action": "invoke", "id": "plain", "method": "run", "args": {}}"#);
    assert_eq!(denied.result.as_ref().unwrap()["error"], "ACCESS_DENIED", "{denied:?}");
    assert!(denied.result.unwrap()["message"].as_str().unwrap().contains("can_call_llm"));
    assert_eq!(fake.request_count(), 0, "nothing was sent");
    assert_eq!((budget(&sim, "alice"), budget(&sim, "olga")), (10_000, 10_000));

    let done = act_ok(&mut sim, "alice", r#"{"action": "invoke", "id": "able", "method": "run", "args": {}}"#);
    let answer = done.result.as_ref().unwrap();
    assert_eq!(answer["content"], "a thought", "{answer}");
    assert_eq!(answer["cost_micro_usd"], 140);
    assert_eq!(fake.request_count(), 1);
    assert_eq!(budget(&sim, "alice"), 10_000 - 140, "the invoker pays");
    assert_eq!(budget(&sim, "olga"), 10_000, "the owner of the tool does not");
    assert_eq!(done.resources_consumed.llm_cost_micro_usd, 140);
    assert_eq!(done.resources_consumed.llm_tokens, 120);
    assert_eq!(events(&sim, "THINKING")[0]["payload"]["principal"], "alice");
    audit(sim.world()).unwrap();
}

#[test]
fn a_granted_llm_capability_is_spent_down_to_its_limit_by_what_the_calls_cost() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("a thought", 100, 20));
    // A tool without `can_call_llm` asks for it; the policy grants 200 µ$ of calls.
    let code = r#"function run(args, ctx) {
        if (ctx.method === "ask") {
            return invoke("kernel_capabilities", "request", {capability: "can_call_llm", reason: "to summarise"});
        }
        try { return llm({messages: [{role: "user", content: "think for me"}]}); }
        catch (e) { return {error: e.code, message: String(e.message)}; }
    }"#;
    let mut sim = sim(&scene_text(
        &fake.base_url(),
        None,
        r#"(id: "alice", llm_budget_micro_usd: 10000), (id: "olga"),"#,
        &format!(
            r#"(id: "asker", owner: "olga", code: {code:?}, interface: (tools: [(name: "ask"), (name: "run")])),"#
        ),
        "",
        r#"capabilities: (policy: {"can_call_llm": Approve(limit: 200)}),"#,
    ));
    let run = r#"{"action": "invoke", "id": "asker", "method": "run", "args": {}}"#;
    let refused = act_ok(&mut sim, "alice", run);
    assert_eq!(refused.result.as_ref().unwrap()["error"], "ACCESS_DENIED", "{refused:?}");
    let asked = act_ok(&mut sim, "alice", r#"{"action": "invoke", "id": "asker", "method": "ask", "args": {}}"#);
    assert_eq!(asked.result.as_ref().unwrap()["status"], "granted", "{asked:?}");

    // 140 µ$ a call: the first leaves 60 µ$ of the grant, the second crosses the limit
    // and completes, the third is refused and nothing more is sent.
    for _ in 0..2 {
        let done = act_ok(&mut sim, "alice", run);
        assert_eq!(done.result.as_ref().unwrap()["content"], "a thought", "{done:?}");
    }
    let third = act_ok(&mut sim, "alice", run);
    assert_eq!(third.result.as_ref().unwrap()["error"], "ACCESS_DENIED", "{third:?}");
    assert_eq!(fake.request_count(), 2);
    assert_eq!(budget(&sim, "alice"), 10_000 - 280);
    let exhausted = events(&sim, "CAPABILITY_EXHAUSTED");
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["payload"]["principal"], "asker");
    assert_eq!(exhausted[0]["payload"]["spent"], 280);
    audit(sim.world()).unwrap();
}

#[test]
fn the_root_of_the_invoke_chain_pays_for_a_tool_calling_the_gateway() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("summary", 100, 20));
    let code = r#"function run(args) {
        const answer = invoke("kernel_llm_gateway", "chat", {messages: [{role: "user", content: "summarise " + args.text}]});
        return {said: answer.content, cost: answer.cost_micro_usd};
    }"#;
    let mut sim = world(
        &fake,
        r#"(id: "alice", llm_budget_micro_usd: 10000), (id: "olga", llm_budget_micro_usd: 10000),"#,
        &format!(r#"(id: "summariser", owner: "olga", code: {code:?}, interface: (tools: [(name: "run")])),"#),
    );
    let done = act_ok(
        &mut sim,
        "alice",
        r#"{"action": "invoke", "id": "summariser", "method": "run", "args": {"text": "the news"}}"#,
    );
    assert_eq!(done.result, Some(json!({"said": "summary", "cost": 140})));
    assert_eq!(budget(&sim, "alice"), 10_000 - 140);
    assert_eq!(budget(&sim, "olga"), 10_000);
    assert_eq!(done.resources_consumed.llm_cost_micro_usd, 140);
    assert_eq!(done.charged_to.as_ref().map(|id| id.as_str()), Some("alice"));
    assert_eq!(fake.requests()[0].body["messages"][0]["content"], "summarise the news");
    let thought = &events(&sim, "THINKING")[0];
    assert_eq!((&thought["actor"], &thought["payload"]["principal"]), (&json!("summariser"), &json!("alice")));

    // A principal that is not an agent, calling the gateway itself, waits for it too.
    let direct = act_ok(
        &mut sim,
        "olga",
        r#"{"action": "invoke", "id": "kernel_llm_gateway", "method": "chat", "args": {"messages": [{"role": "user", "content": "hi"}]}}"#,
    );
    assert_eq!(direct.result.unwrap()["content"], "summary");
    assert_eq!(budget(&sim, "olga"), 10_000 - 140);
    assert_eq!(sim.report().llm.calls, 2);
    audit(sim.world()).unwrap();
}

#[test]
fn an_agent_that_cannot_pay_to_think_is_frozen_until_brought_enough() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("at last", 100, 20));
    let principals = format!(
        "{} (id: \"bank\", llm_budget_micro_usd: 1000000),",
        thinker("agent", 1, "hello", "llm_budget_micro_usd: 50")
    );
    let mut sim = world(&fake, &principals, "");
    sim.run_steps(2);
    assert_eq!(fake.request_count(), 0, "nothing was sent");
    assert!(frozen(&sim, "agent"));
    let frozen_events = events(&sim, "AGENT_FROZEN");
    assert_eq!(frozen_events.len(), 1);
    assert_eq!(frozen_events[0]["payload"]["principal"], "agent");
    let failed = events(&sim, "ACTION_FAILED");
    assert_eq!(failed[0]["payload"]["code"], "BUDGET_EXHAUSTED", "{failed:?}");
    assert_eq!(budget(&sim, "agent"), 50, "a refused call reserves nothing");

    // Less than the call may cost does not thaw it.
    act_ok(&mut sim, "bank", r#"{"action": "transfer", "to": "agent", "amount": 10, "resource": "llm_budget"}"#);
    sim.run_steps(2);
    assert!(frozen(&sim, "agent"), "60 µ$ is still not enough to think");
    assert!(events(&sim, "AGENT_UNFROZEN").is_empty());

    act_ok(&mut sim, "bank", r#"{"action": "transfer", "to": "agent", "amount": 10000, "resource": "llm_budget"}"#);
    assert!(!frozen(&sim, "agent"));
    let thawed = events(&sim, "AGENT_UNFROZEN");
    assert_eq!(thawed.len(), 1);
    assert_eq!(thawed[0]["payload"]["rescuer"], "bank");
    sim.run_steps(3);
    // Thawed, it saw why it had failed, and thought.
    let mem = memory(&sim, "agent");
    assert_eq!(mem["failed"][0]["code"], "BUDGET_EXHAUSTED", "{mem}");
    assert!(mem["failed"][0]["message"].as_str().unwrap().contains("LLM budget"), "{mem}");
    // Its one question was the refused one: it does not ask again by itself.
    assert_eq!(mem["asked"], 1);
    assert_eq!(budget(&sim, "agent"), 10_060);
    audit(sim.world()).unwrap();
}

#[test]
fn an_agent_whose_whole_budget_is_held_for_a_call_is_not_frozen_for_it() {
    // An agent that can just afford a call has (almost) nothing left while it is in
    // flight; the reservation comes back when the answer does.
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("ok", 10, 5));
    // Find the estimate of the first call with a rich agent, then give a poor agent
    // exactly that much.
    let mut probe = one_thinker(&fake, 1, 1_000_000);
    probe.step();
    let estimate = 1_000_000 - budget(&probe, "agent");
    drop(probe);
    let mut sim = one_thinker(&fake, 1, estimate);
    sim.step();
    assert_eq!(budget(&sim, "agent"), 0, "the whole budget is held");
    sim.run_steps(2);
    assert_eq!(events(&sim, "THINKING").len(), 1, "{:?}", events(&sim, "AGENT_FROZEN"));
    assert_eq!(budget(&sim, "agent"), estimate - cost(10, 5));
    assert!(!frozen(&sim, "agent"), "frozen while its budget was only reserved: {:?}", events(&sim, "AGENT_FROZEN"));
}

// ---------------------------------------------------------------------------------
// A server at its worst
// ---------------------------------------------------------------------------------

#[test]
fn a_429_then_an_answer_is_one_charge_after_two_attempts() {
    let fake = FakeLlm::start();
    fake.push(Reply::status(429, Some(0)));
    fake.push(Reply::text("finally", 100, 20));
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 2);
    let thoughts = events(&sim, "THINKING");
    assert_eq!(thoughts.len(), 1);
    assert_eq!(thoughts[0]["payload"]["attempts"], 2);
    assert!(events(&sim, "THINKING_FAILED").is_empty());
    assert_eq!(budget(&sim, "agent"), 10_000 - 140);
    assert_eq!(sim.report().llm.calls, 1);
    assert_eq!(memory(&sim, "agent")["answers"][0]["result"]["content"], "finally");
}

#[test]
fn a_retry_after_is_honoured_up_to_the_retry_cap() {
    let fake = FakeLlm::start();
    fake.push(Reply::status(429, Some(1)));
    fake.push(Reply::text("finally", 100, 20));
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(events(&sim, "THINKING")[0]["payload"]["attempts"], 2);
    // Retry-After: 1 s, capped at max_ms (50 ms): the second attempt came well before
    // the second the server asked for.
    let requests = fake.requests();
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(gap < Duration::from_millis(800), "{gap:?}");
    assert_eq!(budget(&sim, "agent"), 10_000 - 140);
}

#[test]
fn a_server_that_keeps_failing_costs_nothing_and_the_agent_is_told() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::Status {
        code: 500,
        retry_after: None,
        body: Reply::error_body(500, "The server had an error"),
    });
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 3, "max_attempts");
    assert!(events(&sim, "THINKING").is_empty());
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!(failed.len(), 1);
    let payload = &failed[0]["payload"];
    assert_eq!((&payload["reason"], &payload["attempts"]), (&json!("unavailable"), &json!(3)));
    assert!(payload["message"].as_str().unwrap().contains("The server had an error"), "{payload}");
    assert_eq!(budget(&sim, "agent"), 10_000, "a failed call is not charged");
    let report = sim.report();
    assert_eq!((report.llm.calls, report.llm.failed, report.llm.cost_micro_usd), (0, 1, 0));
    let answer = &memory(&sim, "agent")["answers"][0];
    assert_eq!(answer["success"], false, "{answer}");
    assert_eq!(answer["request"], "llm-1");
    assert!(answer["error"]["message"].as_str().unwrap().contains("llm-1 failed"), "{answer}");
    assert_eq!(answer["error"]["retriable"], true);
    audit(sim.world()).unwrap();
}

#[test]
fn a_refusal_is_not_retried() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::status(400, None));
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 1);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!((&failed[0]["payload"]["reason"], &failed[0]["payload"]["attempts"]), (&json!("refused"), &json!(1)));
    assert_eq!(memory(&sim, "agent")["answers"][0]["error"]["retriable"], false);
    assert_eq!(budget(&sim, "agent"), 10_000);
}

#[test]
fn garbage_and_resets_are_retried_and_a_good_answer_then_succeeds() {
    let fake = FakeLlm::start();
    fake.push(Reply::Raw("not json".into()));
    fake.push(Reply::Reset);
    fake.push(Reply::text("sane", 100, 20));
    // And for the second question: a 200 that is JSON but not a completion, then an answer.
    fake.push(Reply::Raw(r#"{"choices": []}"#.into()));
    fake.push(Reply::text("sane again", 100, 20));
    let mut sim = one_thinker(&fake, 2, 10_000);
    sim.run_steps(4);
    assert_eq!(fake.request_count(), 5);
    let attempts: Vec<Value> = events(&sim, "THINKING").iter().map(|e| e["payload"]["attempts"].clone()).collect();
    assert_eq!(attempts, vec![json!(3), json!(2)]);
    assert_eq!(budget(&sim, "agent"), 10_000 - 2 * 140);
    let answers = memory(&sim, "agent")["answers"].clone();
    assert_eq!(answers[0]["result"]["content"], "sane");
    assert_eq!(answers[1]["result"]["content"], "sane again");
}

#[test]
fn a_server_that_only_talks_garbage_fails_the_call() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::Raw("<html>502 Bad Gateway</html>".into()));
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 3);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["payload"]["message"].as_str().unwrap().contains("not JSON"), "{failed:?}");
    assert_eq!(budget(&sim, "agent"), 10_000);

    // Resets only: the same.
    let fake = FakeLlm::start();
    fake.set_default(Reply::Reset);
    let mut sim = one_thinker(&fake, 1, 10_000);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 3);
    assert_eq!(events(&sim, "THINKING_FAILED")[0]["payload"]["reason"], "unavailable");
    assert_eq!(memory(&sim, "agent")["answers"][0]["success"], false);
}

#[test]
fn a_server_that_is_gone_fails_the_call() {
    // Nothing listens on port 1: every attempt is refused a connection.
    let url = "http://127.0.0.1:1/v1";
    let mut sim = sim(&scene_text(url, None, &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"), "", "", ""));
    sim.run_steps(3);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["payload"]["attempts"], 3);
    assert_eq!(budget(&sim, "agent"), 10_000);
}

#[test]
fn a_request_that_times_out_is_not_sent_again() {
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(400));
    let text =
        scene_text(&fake.base_url(), None, &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"), "", "", "")
            .replace("timeout_secs: 5.0", "timeout_secs: 0.05");
    let mut sim = sim(&text);
    sim.run_steps(3);
    // The attempt gave up after 50 ms rather than waiting out the server's 400 (it
    // would have had its answer), and was not sent again — not even once the server
    // was done: it may still be generating, and a second request would only double
    // its work.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(fake.request_count(), 1);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!((&failed[0]["payload"]["reason"], &failed[0]["payload"]["attempts"]), (&json!("timeout"), &json!(1)));
    let answer = &memory(&sim, "agent")["answers"][0];
    assert_eq!(
        (&answer["error"]["code"], &answer["error"]["retriable"]),
        (&json!("TIMEOUT"), &json!(true)),
        "{answer}"
    );
    assert!(answer["error"]["message"].as_str().unwrap().contains("timeout_secs"), "{answer}");
    assert_eq!(budget(&sim, "agent"), 10_000);
}

#[test]
fn an_endpoint_that_takes_one_request_at_a_time_gets_one() {
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(300));
    let principals: String =
        (0..4).map(|i| thinker(&format!("t{i}"), 1, "hello", "llm_budget_micro_usd: 10000")).collect();
    // A timeout shorter than the queue (4 × 300 ms): each request's clock starts when
    // it is sent, not when it is queued.
    let text = scene_text(&fake.base_url(), None, &principals, "", "", "")
        .replace("timeout_secs: 5.0", "timeout_secs: 1.0, max_concurrency: 1");
    let mut sim = sim(&text);
    sim.run_steps(2);
    assert_eq!(fake.peak_concurrency(), 1);
    assert_eq!((sim.report().llm.calls, sim.report().llm.failed), (4, 0));
}

#[test]
fn no_more_requests_are_open_at_once_than_max_concurrency() {
    let run = |concurrency: &str| {
        let fake = FakeLlm::start();
        fake.set_latency(Duration::from_millis(60));
        let principals: String =
            (0..6).map(|i| thinker(&format!("t{i}"), 1, "hello", "llm_budget_micro_usd: 10000")).collect();
        let mut sim = sim(&scene_text(&fake.base_url(), None, &principals, "", concurrency, ""));
        let started = Instant::now();
        sim.run_steps(2);
        assert_eq!(sim.report().llm.calls, 6);
        (fake.peak_concurrency(), started.elapsed())
    };
    let (peak, took) = run("max_concurrency: 2,");
    assert_eq!(peak, 2);
    assert!(took >= Duration::from_millis(3 * 60), "three rounds of two: {took:?}");
    let (peak, _) = run("");
    assert_eq!(peak, 6, "the default cap (64) lets all six through at once");
}

// ---------------------------------------------------------------------------------
// Record and replay
// ---------------------------------------------------------------------------------

/// Two agents thinking three times each; every answer differs (the fake numbers them).
fn recorded_scene(url: &str, prompt: &str) -> Simulation {
    let principals = format!(
        "{}{}",
        thinker("ann", 3, prompt, "llm_budget_micro_usd: 100000"),
        thinker("ben", 3, "same question", "llm_budget_micro_usd: 100000")
    );
    sim(&scene_text(url, None, &principals, "", "", ""))
}

#[test]
fn a_recorded_run_replays_offline_to_the_same_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(5));
    for i in 0..6 {
        fake.push(Reply::text(format!("answer {i}"), 50 + i, 10 + i));
    }
    let url = fake.base_url();
    let mut live = recorded_scene(&url, "what next?");
    live.use_bridge(BridgeOptions { cache_dir: Some(dir.path().to_owned()), replay: false }).unwrap();
    live.run_steps(6);
    assert_eq!(fake.request_count(), 6);
    assert_eq!(live.report().llm.calls, 6);
    live.end_thinking().unwrap();
    let checksum = live.checksum();
    let cost = live.report().llm.cost_micro_usd;
    drop(live);
    drop(fake);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 6, "one file per call");

    let mut replay = recorded_scene(&url, "what next?");
    replay.use_bridge(BridgeOptions { cache_dir: Some(dir.path().to_owned()), replay: true }).unwrap();
    replay.run_steps(6);
    replay.end_thinking().unwrap();
    assert_eq!(replay.fatal_error(), None);
    assert_eq!(replay.report().llm.cost_micro_usd, cost);
    assert_eq!(replay.checksum(), checksum, "a replay is the recorded run, to the byte");

    // A different question was never recorded: the run cannot go on, and says which.
    let mut other = recorded_scene(&url, "something else entirely");
    other.use_bridge(BridgeOptions { cache_dir: Some(dir.path().to_owned()), replay: true }).unwrap();
    other.run_steps(2);
    let fatal = other.fatal_error().expect("a replay miss is fatal");
    assert!(fatal.contains("never recorded"), "{fatal}");
    assert!(fatal.contains("something else entirely #1"), "names the request: {fatal}");
    assert!(fatal.contains("model fake"), "{fatal}");

    // Replaying needs the directory.
    let mut missing = recorded_scene(&url, "what next?");
    let gone = dir.path().join("nope");
    assert!(missing.use_bridge(BridgeOptions { cache_dir: Some(gone), replay: true }).is_err());
}

#[test]
fn recording_serves_answers_already_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let options = BridgeOptions { cache_dir: Some(dir.path().to_owned()), replay: false };
    let fake = FakeLlm::start();
    let mut first = recorded_scene(&fake.base_url(), "q");
    first.use_bridge(options.clone()).unwrap();
    first.run_steps(5);
    assert_eq!(fake.request_count(), 6);
    let checksum = first.checksum();
    let mut second = recorded_scene(&fake.base_url(), "q");
    second.use_bridge(options).unwrap();
    second.run_steps(5);
    assert_eq!(fake.request_count(), 6, "every call came from the recording");
    assert_eq!(second.checksum(), checksum);
}

// ---------------------------------------------------------------------------------
// The API key
// ---------------------------------------------------------------------------------

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(every_file(&path)) } else { files.push(path) }
    }
    files
}

/// A scene file in `dir` whose agent asks `asks` times over `steps` steps, with its
/// key read from `var`.
fn keyed_scene(dir: &Path, fake: &FakeLlm, var: &str, asks: u32, steps: u32) -> PathBuf {
    let scene = dir.join("keyed.ron");
    let text = scene_text(
        &fake.base_url(),
        Some(var),
        &thinker("agent", asks, "hello", "llm_budget_micro_usd: 100000"),
        "",
        "",
        &format!("steps: {steps},"),
    );
    std::fs::write(&scene, text).unwrap();
    scene
}

#[test]
fn the_api_key_is_sent_to_the_server_and_written_nowhere() {
    let random = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    };
    let key = format!("sk-test-{random:016x}");
    let var = "ECOLOGY_TEST_KEY_LLM_RS_CLI";
    let fake = FakeLlm::start();
    // The server quotes the key back in an error (as OpenAI does for a wrong key)…
    let quoted = Reply::error_body(401, &format!("Incorrect API key provided: {key}. You can find your API key at …"));
    fake.push(Reply::Status { code: 401, retry_after: None, body: quoted });
    // …and in a 500 that is retried until the call gives up.
    let quoted = Reply::error_body(500, &format!("upstream rejected {key}"));
    for _ in 0..3 {
        fake.push(Reply::Status { code: 500, retry_after: None, body: quoted.clone() });
    }
    fake.set_default(Reply::text("fine", 100, 20));

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let scene = keyed_scene(dir.path(), &fake, var, 4, 8);
    let out = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .args(["run", scene.to_str().unwrap(), "--report", "-"])
        .arg("--events")
        .arg(out_dir.join("events.jsonl"))
        .arg("--llm-cache")
        .arg(out_dir.join("cache"))
        .arg("--save-scene")
        .arg(out_dir.join("saved.ron"))
        .arg("--metrics")
        .arg(out_dir.join("metrics.csv"))
        .env(var, &key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");

    // The key went where it belongs.
    let requests = fake.requests();
    // A 401 is not retried; the 500s are, three times; then two good answers.
    assert_eq!(requests.len(), 1 + 3 + 2);
    for request in &requests {
        assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {key}").as_str()));
    }
    // And nowhere else.
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!((report["llm"]["calls"].as_u64(), report["llm"]["failed"].as_u64()), (Some(2), Some(2)), "{report}");
    assert!(!stdout.contains(&key) && !stderr.contains(&key), "the key leaked to the console");
    let files = every_file(&out_dir);
    assert!(files.len() >= 3 + 4, "events, scene, metrics and four recorded calls: {files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&key), "the key leaked into {}", file.display());
    }
    let events = std::fs::read_to_string(out_dir.join("events.jsonl")).unwrap();
    assert!(events.contains("[redacted]"), "the quoted key was scrubbed, not dropped");
    let saved = std::fs::read_to_string(out_dir.join("saved.ron")).unwrap();
    assert!(saved.contains(var), "the saved scene names the variable");
}

// ---------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------

/// Three agents, three questions each, against a server with `latency`.
fn lockstep_run(latency: Duration) -> (agent_ecology::run::Report, Vec<Value>) {
    let fake = FakeLlm::start();
    fake.set_latency(latency);
    fake.set_default(Reply::text("steady", 80, 16));
    let principals: String =
        ["a", "b", "c"].iter().map(|id| thinker(id, 3, "plan", "llm_budget_micro_usd: 100000")).collect();
    let mut sim = world(&fake, &principals, "");
    sim.run_steps(6);
    let mut answers = Vec::new();
    for id in ["a", "b", "c"] {
        answers.extend(memory(&sim, id)["answers"].as_array().unwrap().iter().cloned());
    }
    (sim.report(), answers)
}

#[test]
fn in_lockstep_latency_changes_nothing_but_the_recorded_latency() {
    let (fast, fast_answers) = lockstep_run(Duration::ZERO);
    let (slow, slow_answers) = lockstep_run(Duration::from_millis(150));
    assert_eq!(fast.llm.calls, 9);
    assert_eq!(fast.steps, slow.steps);
    assert_eq!(fast.principals, slow.principals);
    assert_eq!(fast.llm.by_model, slow.llm.by_model);
    assert_eq!(
        (fast.llm.calls, fast.llm.failed, fast.llm.cost_micro_usd),
        (slow.llm.calls, slow.llm.failed, slow.llm.cost_micro_usd)
    );
    assert_eq!(fast.events.by_type, slow.events.by_type);
    assert_eq!(fast_answers, slow_answers);
    // The checksums differ, and only because the measured latency is part of the run:
    // it is in every THINKING event (and in the answer the agent is handed, which the
    // thinker leaves out of its memory). Replaying a recording reproduces the recorded
    // latency, and the checksum with it
    // (`a_recorded_run_replays_offline_to_the_same_checksum`).
    assert_ne!(fast.checksum, slow.checksum);
}

#[test]
fn in_realtime_the_world_keeps_stepping_while_a_model_thinks() {
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(1000));
    fake.set_default(Reply::text("eventually", 100, 20));
    let text = scene_text(
        &fake.base_url(),
        None,
        &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"),
        "",
        "clock: Realtime,",
        "dt_secs: 0.1,",
    );
    let mut sim = sim(&text);
    sim.step();
    let started = Instant::now();
    assert!(thinking(&sim, "agent"), "asked in its first step");
    sim.run_steps(5);
    // Five steps without waiting: well under the server's second.
    assert!(started.elapsed() < Duration::from_millis(800), "{:?}", started.elapsed());
    assert_eq!(sim.steps_done(), 6);
    assert!(thinking(&sim, "agent"), "still waiting for its answer");
    assert_eq!(sim.report().llm.in_flight, 1);
    assert!(events(&sim, "THINKING").is_empty());

    while events(&sim, "THINKING").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "the answer never came");
        std::thread::sleep(Duration::from_millis(20));
        sim.step();
    }
    let steps = sim.steps_done();
    assert!(steps >= 6 + 5, "the world went on meanwhile ({steps} steps)");
    sim.step();
    assert!(!thinking(&sim, "agent"));
    assert_eq!(memory(&sim, "agent")["answers"][0]["result"]["content"], "eventually");
    assert!(events(&sim, "THINKING")[0]["payload"]["latency_ms"].as_u64().unwrap() >= 1000);
    assert_eq!(budget(&sim, "agent"), 10_000 - 140);
}

#[test]
fn ending_a_run_gives_back_what_calls_in_flight_hold() {
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_secs(10));
    let text = scene_text(
        &fake.base_url(),
        None,
        &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"),
        "",
        "clock: Realtime,",
        "",
    );
    let mut sim = sim(&text);
    sim.run_steps(2);
    assert!(budget(&sim, "agent") < 10_000);
    let started = Instant::now();
    sim.end_thinking().unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "it does not wait for the answer");
    assert_eq!(budget(&sim, "agent"), 10_000);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!(failed[0]["payload"]["reason"], "cancelled");
    assert_eq!(sim.report().llm.in_flight, 0);
    assert!(!thinking(&sim, "agent"));
    audit(sim.world()).unwrap();
}

// ---------------------------------------------------------------------------------
// Scenes
// ---------------------------------------------------------------------------------

fn refused(ron: &str) -> String {
    let scene = Scene::from_ron_str("llm.ron", ron).unwrap_or_else(|e| panic!("{e}"));
    scene.validate().err().unwrap_or_else(|| panic!("should be refused:\n{ron}")).to_string()
}

#[test]
fn a_key_pasted_into_a_scene_is_refused_where_it_is() {
    let ron = "Scene(config: (llm: (\n    endpoints: {\"mine\": (base_url: \"http://127.0.0.1:9/v1\",\n        api_key_env: \"sk-abc-123\")},\n)))";
    let error = refused(ron);
    assert!(error.starts_with("llm.ron:3:9:"), "{error}");
    assert!(error.contains("api_key_env"), "{error}");
    assert!(error.contains("never the key itself"), "{error}");
    assert!(!error.contains("sk-abc-123"), "the refusal does not repeat the key: {error}");
}

#[test]
fn models_must_exist_and_be_served_by_an_endpoint_that_exists() {
    let error = refused("Scene(config: (llm: (default_model: \"gpt-9\")))");
    assert!(error.starts_with("llm.ron:1:"), "{error}");
    assert!(error.contains("default_model") && error.contains("gpt-9"), "{error}");

    let ron = "Scene(config: (llm: (\n  models: {\"mine\": (endpoint: \"nowhere\", input_usd_per_mtok: 1.0, output_usd_per_mtok: 1.0)},\n)))";
    let error = refused(ron);
    assert!(error.starts_with("llm.ron:2:"), "{error}");
    assert!(error.contains("no endpoint \"nowhere\""), "{error}");

    // A principal's own model must have a price too.
    let ron = r#"Scene(principals: [(id: "a", model: "gpt-9")])"#;
    let error = refused(ron);
    assert!(error.contains("gpt-9"), "{error}");

    // And the well-formed section is accepted.
    let fake_url = "http://127.0.0.1:9/v1";
    Scene::from_ron_str("llm.ron", &scene_text(fake_url, Some("FAKE_LLM_KEY"), "", "", "", ""))
        .unwrap()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_unset_key_variable_fails_the_call_not_the_run() {
    let fake = FakeLlm::start();
    let text = scene_text(
        &fake.base_url(),
        Some("ECOLOGY_TEST_KEY_NEVER_SET_4F2A"),
        &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"),
        "",
        "",
        "",
    );
    let mut sim = sim(&text);
    sim.run_steps(3);
    assert_eq!(fake.request_count(), 0);
    let failed = events(&sim, "THINKING_FAILED");
    assert_eq!(failed[0]["payload"]["reason"], "unusable");
    assert!(failed[0]["payload"]["message"].as_str().unwrap().contains("ECOLOGY_TEST_KEY_NEVER_SET_4F2A"));
    assert_eq!(budget(&sim, "agent"), 10_000);
}

#[test]
fn a_plain_principal_that_cannot_pay_is_refused_but_not_frozen() {
    let fake = FakeLlm::start();
    let mut sim = world(&fake, r#"(id: "poor", llm_budget_micro_usd: 5),"#, "");
    let result = act(
        &mut sim,
        "poor",
        r#"{"action": "invoke", "id": "kernel_llm_gateway", "method": "chat", "args": {"messages": [{"role": "user", "content": "hi"}]}}"#,
    );
    assert_eq!(result.error_code(), Some(ErrorCode::BudgetExhausted), "{result:?}");
    let details = &result.error.as_ref().unwrap().details;
    assert_eq!(details["available"], 5);
    assert!(details["needed"].as_u64().unwrap() > 200);
    assert!(!frozen(&sim, "poor"), "only agents are frozen for it");
    assert_eq!(fake.request_count(), 0);
}

// ---------------------------------------------------------------------------------
// Edges: rates too small to wait for, keys quoted by the server
// ---------------------------------------------------------------------------------

/// A rate so small that its interval would not fit a `Duration` (or would overflow
/// the clock) is refused with the scene, not at the first call.
#[test]
fn a_request_rate_too_small_to_wait_for_is_refused() {
    let text = scene_text("http://127.0.0.1:9/v1", None, &thinker("agent", 1, "hello", ""), "", "", "")
        .replace("timeout_secs: 5.0,", "timeout_secs: 5.0, requests_per_sec: 1e-30,");
    let error = refused(&text);
    assert!(error.contains("requests_per_sec"), "{error}");
}

/// A server quoting the key where its error text is cut: the key is scrubbed before
/// the cut, so not even its first characters reach the event stream.
#[test]
fn a_key_quoted_where_the_error_is_cut_still_does_not_leak() {
    let key = format!("sk-test-{:016x}", {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    });
    let var = "ECOLOGY_TEST_KEY_LLM_RS_CUT";
    let fake = FakeLlm::start();
    let message = format!("{}{key} is not a valid key", "x".repeat(285));
    fake.set_default(Reply::Status { code: 401, retry_after: None, body: Reply::error_body(401, &message) });
    let dir = tempfile::tempdir().unwrap();
    let scene = keyed_scene(dir.path(), &fake, var, 1, 3);
    let events = dir.path().join("events.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .args(["run", scene.to_str().unwrap(), "--quiet", "--events"])
        .arg(&events)
        .env(var, &key)
        .output()
        .unwrap();
    // Its only call failed: the run says so, and fails.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("every call to a language model failed (1)"), "{err}");
    assert!(!err.contains(&key[..14]), "the key's first characters leaked: {err}");
    assert_eq!(fake.request_count(), 1);
    let stream = std::fs::read_to_string(&events).unwrap();
    assert!(stream.contains("THINKING_FAILED"), "{stream}");
    // 14 characters of the key: "sk-test-" and 6 of its random digits.
    assert!(!stream.contains(&key[..14]), "the key's first characters leaked: {stream}");
}

// ---------------------------------------------------------------------------------
// Interviews
// ---------------------------------------------------------------------------------

#[test]
fn an_interview_is_answered_from_what_the_agent_knows_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("I sold it because nobody called it.", 40, 9));
    let url = fake.base_url();
    let world = |replay: bool| {
        let mut sim =
            sim(&scene_text(&url, None, &thinker("agent", 3, "hello", "llm_budget_micro_usd: 10000"), "", "", ""));
        sim.use_bridge(BridgeOptions { cache_dir: Some(dir.path().to_owned()), replay }).unwrap();
        sim
    };

    // Live, recorded: interviewed after three steps, then on to five.
    let mut live = world(false);
    live.run_steps(3);
    let budget_before = budget(&live, "agent");
    let interview = live.interview("agent", "Why did you sell text_tools?").unwrap();
    assert_eq!(interview.answer, "I sold it because nobody called it.");
    assert_eq!((interview.step, interview.model.as_str()), (3, "fake"));
    // The experimenter pays: 40 × 1 µ$ + 9 × 2 µ$, at the model's price.
    assert_eq!(interview.cost_micro_usd, 58);
    assert_eq!(budget(&live, "agent"), budget_before, "the agent does not pay");
    // What it was asked from: its persona, its holdings, what happened to it.
    let asked_for: Vec<Value> = fake
        .requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["messages"][0]["content"].as_str().unwrap().contains("interviewing you"))
        .collect();
    assert_eq!(asked_for.len(), 1);
    let user = asked_for[0]["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("You hold 100 scrip") && user.contains("THINKING"), "{user}");
    assert!(user.ends_with("The researcher asks: Why did you sell text_tools?"), "{user}");
    live.run_steps(2);
    live.end_thinking().unwrap();
    let recorded = live.checksum();
    drop(live);
    drop(fake);

    // Offline: the run without the interview is the same world (a replay takes the
    // latencies from the recording, so checksums compare exactly) …
    let mut plain = world(true);
    plain.run_steps(5);
    assert_eq!(plain.checksum(), recorded, "an interview leaves no trace in the world");
    // … and the interview itself replays, with the run around it.
    let mut again = world(true);
    again.run_steps(3);
    assert_eq!(again.interview("agent", "Why did you sell text_tools?").unwrap(), interview);
    assert!(again.interview("agent", "Something never asked?").unwrap_err().contains("never recorded"));
    assert!(again.interview("nobody", "Who?").unwrap_err().contains("no principal"));
    again.run_steps(2);
    assert_eq!(again.checksum(), recorded);
}

#[test]
fn a_lockstep_run_says_what_it_waits_for() {
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(10_500));
    fake.set_default(Reply::text("at last", 10, 2));
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("slow.ron");
    std::fs::write(
        &scene,
        scene_text(
            &fake.base_url(),
            None,
            &thinker("agent", 1, "hello", "llm_budget_micro_usd: 10000"),
            "",
            "",
            "steps: 2,",
        )
        .replace("timeout_secs: 5.0", "timeout_secs: 30.0"),
    )
    .unwrap();
    // Standard error is not a terminal here: a line every 10 s of waiting.
    let out = Command::new(env!("CARGO_BIN_EXE_ecology")).args(["run", scene.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.lines().any(|l| l == "waiting on 1 model call (10 s)"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 calls, 0 failed"));
}
