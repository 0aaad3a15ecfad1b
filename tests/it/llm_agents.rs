//! The LLM agent library (`assets/agents/llm_agent.js`) against a real HTTP server
//! that plays the model: what the model answers becomes kernel actions, what goes
//! wrong is fed back in the next prompt, and the loop never breaks on bad output.

use std::time::{Duration, Instant};

use agent_ecology::{
    kernel::{EventLog, state},
    run::{Simulation, audit},
    world::{
        components::{Artifact, Executable, Loop, Pricing, Thinking},
        ids,
    },
};
use serde_json::{Value, json};

use crate::{
    act_ok,
    fake_llm::{FakeLlm, Reply},
    scrip, sim,
};

/// A world where `alice` runs the LLM agent library with `budget` µ$ of LLM budget,
/// thinking with model `fake` on the fake server (1 µ$ a prompt token, 2 µ$ a
/// completion token), beside `bob`, a plain principal.
fn market(fake: &FakeLlm, budget: u64) -> Simulation {
    market_with(fake, budget, "")
}

/// [`market`] with these artifact entries.
fn market_with(fake: &FakeLlm, budget: u64, artifacts: &str) -> Simulation {
    world(fake, budget, r#"code_file: "assets/agents/llm_agent.js""#, artifacts)
}

/// [`market`] with alice's code given by `code` (a `code_file` or `code` field) and
/// these artifact entries.
fn world(fake: &FakeLlm, budget: u64, code: &str, artifacts: &str) -> Simulation {
    let url = fake.base_url();
    sim(&format!(
        r#"Scene(
  config: (llm: (
    endpoints: {{"local": (base_url: {url:?})}},
    models: {{"fake": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}},
    default_model: "fake",
    retry: (max_attempts: 2, base_ms: 10, max_ms: 20),
  )),
  principals: [
    (
      id: "alice",
      content: "You are alice, a generous trader. Goal: keep bob in business.",
      llm_budget_micro_usd: {budget},
      disk_bytes: 200000,
      agent: true,
      {code},
      interface: (tools: [(name: "step")]),
    ),
    (id: "bob", llm_budget_micro_usd: 1000000),
  ],
  artifacts: [{artifacts}],
)"#
    ))
}

/// The user message of every request the model was sent, in order, once there are
/// `n` of them: a request asked for in the last step may still be on its way.
fn prompts(fake: &FakeLlm, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.request_count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.body["messages"][1]["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sent.len(), n, "requests: {sent:#?}");
    sent
}

fn thinking(sim: &Simulation, id: &str) -> bool {
    sim.world().get::<Thinking>(ids::lookup(sim.world(), id).unwrap()).is_some()
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn artifact(sim: &Simulation, id: &str) -> Option<Artifact> {
    let entity = ids::lookup(sim.world(), id)?;
    sim.world().get::<Artifact>(entity).cloned()
}

/// The loop never failed: no step threw, the agent was never paused, the books balance.
fn assert_healthy(sim: &Simulation) {
    for kind in ["AGENT_ERROR", "AGENT_PAUSED"] {
        assert_eq!(events(sim, kind), Vec::<Value>::new(), "{kind}");
    }
    let entity = ids::lookup(sim.world(), "alice").unwrap();
    let agent = sim.world().get::<Loop>(entity).unwrap();
    assert!(!agent.paused());
    audit(sim.world()).unwrap();
}

/// An answer made of these tool calls (name, arguments).
fn calls(list: &[(&str, Value)]) -> Reply {
    Reply::Answer {
        content: None,
        tool_calls: list.iter().map(|(name, args)| ((*name).to_owned(), args.clone())).collect(),
        prompt_tokens: 100,
        completion_tokens: 20,
    }
}

#[test]
fn a_transfer_tool_call_becomes_a_transfer_and_its_result_is_shown_next_time() {
    let fake = FakeLlm::start();
    fake.push(calls(&[
        ("transfer", json!({"to": "bob", "amount": 5})),
        ("transfer", json!({"to": "nobody", "amount": 1})),
    ]));
    let mut sim = market(&fake, 1_000_000);
    // Step 0 asks; step 1 gets the answer and acts; step 2 asks again.
    sim.run_steps(3);
    assert_eq!(scrip(&sim, "bob"), 105);
    assert_eq!(scrip(&sim, "alice"), 95);
    let prompts = prompts(&fake, 2);
    let next = &prompts[1];
    assert!(next.contains("you did: transfer 5 scrip to bob; transfer 1 scrip to nobody"), "{next}");
    assert!(next.contains("transfer bob: ok"), "{next}");
    assert!(next.contains("transfer nobody: FAILED NOT_FOUND"), "{next}");
    assert!(next.contains("You are alice. You hold 95 scrip"), "{next}");
    assert_healthy(&sim);
}

#[test]
fn a_write_artifact_tool_call_creates_a_priced_tool_others_can_use() {
    let fake = FakeLlm::start();
    fake.push(calls(&[(
        "write_artifact",
        json!({
            "id": "greeter",
            "description": "Greets by name.",
            "code": "function run(args) { return {hello: String(args.name)}; }",
            "invoke_price": 2,
        }),
    )]));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(2);
    let greeter = artifact(&sim, "greeter").expect("greeter was written");
    assert_eq!(greeter.owner().as_str(), "alice");
    assert_eq!(greeter.description(), "Greets by name.");
    let entity = ids::lookup(sim.world(), "greeter").unwrap();
    assert!(sim.world().get::<Executable>(entity).is_some());
    assert_eq!(sim.world().get::<Pricing>(entity).unwrap().invoke_price, 2);
    // The default interface: one method, run.
    let result = act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"greeter","method":"run","args":{"name":"bob"}}"#);
    assert_eq!(result.result.unwrap(), json!({"hello": "bob"}));
    assert_eq!(scrip(&sim, "alice"), 102);
    sim.run_steps(1);
    let next = &prompts(&fake, 2)[1];
    assert!(next.contains("greeter (executable, owner alice, 2 scrip/call"), "{next}");
    assert_healthy(&sim);
}

#[test]
fn a_note_is_kept_in_the_notebook_and_shown_in_every_later_prompt() {
    let fake = FakeLlm::start();
    fake.push(calls(&[("note", json!({"text": "bob owes me 7 scrip,\n due at t=100"}))]));
    fake.push(calls(&[("wait", json!({"seconds": 2}))]));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(3);
    let notebook = artifact(&sim, "alice_notebook").expect("the notebook was written");
    assert_eq!(notebook.owner().as_str(), "alice");
    assert!(notebook.content().contains("- bob owes me 7 scrip, due at t=100\n"), "{}", notebook.content());
    let sent = prompts(&fake, 2);
    assert!(!sent[0].contains("bob owes me"));
    assert!(sent[1].contains("Your notebook (alice_notebook):\n- bob owes me 7 scrip, due at t=100"), "{}", sent[1]);
    // The second answer waits two seconds; the note is still there after.
    sim.run_steps(4);
    // Asked at 0, 2 and, after waiting, 5.
    let sent = prompts(&fake, 3);
    assert!(sent[2].contains("- bob owes me 7 scrip, due at t=100"), "{}", sent[2]);
    assert!(sent[2].contains("you did: wait 2s"), "{}", sent[2]);
    assert_healthy(&sim);
}

#[test]
fn malformed_answers_are_refused_and_explained_in_the_next_prompt() {
    let fake = FakeLlm::start();
    // Arguments that are not JSON, a tool that does not exist, a negative amount, a
    // string where an object belongs, and an answer with no tool call at all.
    fake.push(calls(&[("transfer", Value::String(r#"{"to": "bob", "amount": "#.into()))]));
    fake.push(calls(&[("fly", json!({"to": "the moon"}))]));
    fake.push(calls(&[("transfer", json!({"to": "bob", "amount": -3}))]));
    fake.push(calls(&[("invoke", json!({"id": "bob's tool", "args": 7}))]));
    fake.push(Reply::text("I think I will wait and see.", 100, 20));
    fake.set_default(calls(&[("wait", json!({"seconds": 100}))]));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(11);
    // Every answer handled, the loop went on.
    let sent = prompts(&fake, 6);
    let expected = [
        "ERROR tool call 1 (transfer) refused: the arguments are not valid JSON",
        "ERROR tool call 1 (fly) refused: unknown tool fly; the tools are write_artifact, invoke, transfer",
        "ERROR tool call 1 (transfer) refused: amount must be a positive integer, got -3",
        "ERROR tool call 1 (invoke) refused: id \"bob's tool\" is not a valid id",
        "you said: I think I will wait and see.",
    ];
    for (i, error) in expected.iter().enumerate() {
        assert!(sent[i + 1].contains(error), "prompt {} lacks {error:?}:\n{}", i + 2, sent[i + 1]);
    }
    assert!(sent[5].contains("ERROR You answered without calling a tool, so nothing was done."), "{}", sent[5]);
    // An error is shown once, for the turn it belongs to.
    assert!(!sent[2].contains("not valid JSON"), "{}", sent[2]);
    assert_eq!(scrip(&sim, "bob"), 100, "nothing bad was done");
    assert_eq!(events(&sim, "ACTION_FAILED"), Vec::<Value>::new(), "nothing bad was even tried");
    // Each mistake is an event for whoever studies the run: the tool call, refused.
    let refused: Vec<String> =
        events(&sim, "INTENT_REFUSED").iter().map(|e| e["payload"]["intent"].as_str().unwrap().to_owned()).collect();
    assert!(refused.len() >= 4, "{refused:?}");
    assert!(refused[1].contains("refused:fly") && refused[1].contains("unknown tool fly"), "{refused:?}");
    assert!(refused[2].contains("amount must be a positive integer"), "{refused:?}");
    assert!(events(&sim, "INTENT_REFUSED").iter().all(|e| e["actor"] == "alice"));
    // The agent does not show the model its own report back as a second error.
    assert!(!sent[2].contains("refused:fly"), "{}", sent[2]);
    assert_healthy(&sim);
}

#[test]
fn good_calls_are_done_beside_bad_ones_and_at_most_four_a_turn() {
    let fake = FakeLlm::start();
    fake.push(calls(&[
        ("transfer", json!({"to": "bob", "amount": 1})),
        ("bid", json!({"artifact": "alice_notebook"})),
        ("transfer", json!({"to": "bob", "amount": "2"})),
        ("transfer", json!({"to": "bob", "amount": 3})),
        ("note", json!({"text": "paid bob 6"})),
        ("transfer", json!({"to": "bob", "amount": 4})),
    ]));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(3);
    // 1 + 2 + 3 and the note: four calls done; the bid lacked an amount; the sixth
    // call was one too many.
    assert_eq!(scrip(&sim, "bob"), 106);
    let next = &prompts(&fake, 2)[1];
    assert!(next.contains("ERROR tool call 2 (bid) refused: missing required argument amount"), "{next}");
    assert!(
        next.contains("ERROR tool call 6 (transfer) refused: ignored: at most 4 tool calls are done per turn"),
        "{next}"
    );
    assert!(next.contains("- paid bob 6"), "{next}");
    assert_healthy(&sim);
}

#[test]
fn a_call_written_as_text_by_a_small_model_is_understood() {
    let fake = FakeLlm::start();
    fake.push(Reply::text(r#"Sure. {"name": "transfer", "arguments": {"to": "bob", "amount": 4}}"#, 100, 20));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(2);
    assert_eq!(scrip(&sim, "bob"), 104);
    assert_healthy(&sim);
}

#[test]
fn the_prompt_holds_the_state_the_rules_and_the_tools() {
    let fake = FakeLlm::start();
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(1);
    prompts(&fake, 1);
    let requests = fake.requests();
    let body = &requests[0].body;
    assert_eq!(body["model"], "fake");
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["max_tokens"], 512);
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(system.starts_with("You are alice, an agent in a simulated economy"), "{system}");
    assert!(system.contains("Your role and goal:\nYou are alice, a generous trader. Goal: keep bob in business."));
    assert!(system.contains("Rules of this world (from kernel_handbook):"), "{system}");
    assert!(system.contains("The mint: bid on an artifact you own"), "{system}");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert_eq!(body["messages"][1]["role"], "user");
    assert!(user.starts_with("Time: t=0s (step 0). The mint's next auction resolves at t="), "{user}");
    assert!(user.contains("You are alice. You hold 100 scrip; LLM budget 1000000 µ$"), "{user}");
    assert!(user.contains("Quotas this window: cpu "), "{user}");
    assert!(user.contains("Your notebook (alice_notebook): empty"), "{user}");
    assert!(user.contains("Others:\n- bob (scrip 100)"), "{user}");

    let tools = body["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["write_artifact", "invoke", "transfer", "bid", "sell", "buy", "read", "query", "note", "wait"]);
    for tool in tools {
        assert_eq!(tool["type"], "function");
        let parameters = &tool["function"]["parameters"];
        assert_eq!(parameters["type"], "object", "{tool}");
        assert_eq!(parameters["additionalProperties"], false, "{tool}");
        for required in parameters["required"].as_array().unwrap() {
            assert!(parameters["properties"].get(required.as_str().unwrap()).is_some(), "{tool}");
        }
    }
    let transfer = &tools[2]["function"]["parameters"];
    assert_eq!(transfer["properties"]["amount"], json!({"type": "integer", "minimum": 1}));
    assert_eq!(transfer["required"], json!(["to", "amount"]));
    assert_healthy(&sim);
}

#[test]
fn a_failed_thought_is_fed_back_and_the_agent_goes_on() {
    let fake = FakeLlm::start();
    // Two attempts, both 500: THINKING_FAILED. Then a good answer.
    fake.push(Reply::status(500, None));
    fake.push(Reply::status(500, None));
    fake.push(calls(&[("transfer", json!({"to": "bob", "amount": 5}))]));
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(2);
    assert_eq!(events(&sim, "THINKING_FAILED").len(), 1);
    prompts(&fake, 2);
    // It backs off (ten seconds after a first failure: until t=11), then thinks again.
    sim.run_steps(9);
    assert!(!thinking(&sim, "alice"));
    assert_eq!(fake.request_count(), 2, "backing off");
    sim.run_steps(2);
    let sent = prompts(&fake, 3);
    assert!(
        sent[2].contains("ERROR Your last thought failed, nothing was done: EXECUTION_ERROR: llm-1 failed"),
        "{}",
        sent[2]
    );
    assert_eq!(scrip(&sim, "bob"), 105);
    // The next failure is forgotten once a thought succeeds.
    sim.run_steps(1);
    let after = &prompts(&fake, 4)[3];
    assert!(!after.contains("thought failed"), "{after}");
    assert_healthy(&sim);
}

#[test]
fn an_agent_too_poor_to_think_sleeps_until_someone_sends_budget() {
    let fake = FakeLlm::start();
    let mut sim = market(&fake, 300);
    sim.run_steps(5);
    assert!(!thinking(&sim, "alice"));
    assert_eq!(fake.request_count(), 0, "it would have been frozen by the call");
    assert!(events(&sim, "AGENT_FROZEN").is_empty());
    act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"alice","amount":100000,"resource":"llm_budget"}"#);
    sim.run_steps(2);
    prompts(&fake, 1);
    // The default answer: 10 prompt tokens, 5 completion tokens.
    assert_eq!(state::get_llm_budget(sim.world(), "alice").unwrap(), 100_300 - 10 - 2 * 5);
    assert_healthy(&sim);
}

#[test]
fn the_notebook_keeps_its_newest_notes_within_its_bound() {
    let fake = FakeLlm::start();
    for round in 0..6 {
        let notes: Vec<(&str, Value)> =
            (0..4).map(|i| ("note", json!({"text": format!("note {round}-{i}: {}", "x".repeat(200))}))).collect();
        fake.push(calls(&notes));
    }
    let mut sim = market(&fake, 1_000_000);
    sim.run_steps(13);
    let notebook = artifact(&sim, "alice_notebook").unwrap();
    let content = notebook.content();
    assert!(content.len() < 3600, "{} bytes", content.len());
    assert!(content.contains("note 5-3: "), "the newest is kept");
    assert!(!content.contains("note 0-0: "), "the oldest went first");
    let last = prompts(&fake, 7).pop().unwrap();
    assert!(last.contains("note 5-3: "));
    assert_healthy(&sim);
}

#[test]
fn a_notebook_the_agent_already_has_is_read_before_it_first_thinks() {
    let fake = FakeLlm::start();
    fake.push(calls(&[("note", json!({"text": "lent bob 10"}))]));
    let notebook = "Notebook of alice\n- remember: bob repays on Fridays\n";
    let mut sim =
        market_with(&fake, 1_000_000, &format!(r#"(id: "alice_notebook", owner: "alice", content: {notebook:?})"#));
    // Step 0 reads the notebook (a step cannot see content); step 1 thinks with it.
    sim.run_steps(1);
    assert_eq!(fake.request_count(), 0);
    sim.run_steps(3);
    let sent = prompts(&fake, 2);
    assert!(sent[0].contains("Your notebook (alice_notebook):\n- remember: bob repays on Fridays\n"), "{}", sent[0]);
    assert!(sent[1].contains("- remember: bob repays on Fridays\n- lent bob 10\n"), "{}", sent[1]);
    let content = artifact(&sim, "alice_notebook").unwrap().content().to_owned();
    assert!(
        content.starts_with("Notebook of alice\n- remember: bob repays on Fridays\n- lent bob 10\n== last turn ==\n"),
        "{content}"
    );
    assert_healthy(&sim);
}

#[test]
fn a_fault_of_the_loop_itself_is_kept_in_the_notebook_not_thrown() {
    let fake = FakeLlm::start();
    let code = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/agents/llm_agent.js")).unwrap();
    let start = "function buildPrompt(view, seen, book, nbId, me) {";
    assert!(code.contains(start));
    let broken = code.replace(start, &format!("{start}\n  throw new TypeError(\"a bug in the loop\");"));
    let mut sim = world(&fake, 1_000_000, &format!("code: {broken:?}"), "");
    sim.run_steps(1);
    assert_eq!(fake.request_count(), 0);
    let notebook = artifact(&sim, "alice_notebook").expect("the fault was written down");
    let fault = notebook.metadata().unwrap()["loop_error"].as_str().unwrap().to_owned();
    assert!(fault.starts_with("t=0: TypeError: a bug in the loop"), "{fault}");
    assert_healthy(&sim);
}
