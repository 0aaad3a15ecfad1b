//! The mint's LLM scorer: winners scored by a model through the gateway, paid from
//! the mint's own LLM budget; a failure refunds the winner.

use agent_ecology::{kernel::EventLog, kernel::state, run::Simulation};
use serde_json::{Value, json};

use crate::{
    act_ok,
    fake_llm::{FakeLlm, Reply},
    sim,
};

/// alice owns a tool she bids on; the mint resolves at 1 s and scores with `judge`
/// (1 µ$ a prompt token, 2 µ$ a completion token) from a budget of `budget_usd`.
fn world(fake: &FakeLlm, budget_usd: f64) -> Simulation {
    let mut sim = sim(&format!(
        r#"Scene(
            config: (
                mint: (first_at_secs: 1.0, period_secs: 60.0),
                llm: (
                    endpoints: {{"local": (base_url: "{}")}},
                    models: {{"judge": (endpoint: "local", input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0)}},
                    scorer_model: "judge",
                    scorer_budget_usd: {budget_usd},
                    retry: (max_attempts: 2, base_ms: 5, max_ms: 10),
                ),
            ),
            principals: [(id: "alice", scrip: 100), (id: "bob")],
            artifacts: [(id: "tool", owner: "alice", content: "a tool that counts words in a text")],
        )"#,
        fake.base_url()
    ));
    act_ok(&mut sim, "alice", r#"{"action":"bid","artifact":"tool","amount":10}"#);
    sim
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.since(0).filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn mint_budget(sim: &Simulation) -> u64 {
    state::get_llm_budget(sim.world(), "kernel_mint").unwrap()
}

#[test]
fn the_model_scores_the_winner_and_the_mint_pays() {
    let fake = FakeLlm::start();
    fake.push(Reply::tool("score", json!({"score": 73, "reason": "useful"}), 400, 30));
    let mut sim = world(&fake, 1.0);
    assert_eq!(mint_budget(&sim), 1_000_000);
    sim.run_steps(2);

    let resolved = events(&sim, "MINT_RESOLVED");
    assert_eq!(resolved.len(), 1);
    let winner = &resolved[0]["payload"]["winners"][0];
    assert_eq!(winner["score"], 73);
    assert_eq!(winner["minted"], 7, "score / mint_ratio 10");
    // 400 × 1 + 30 × 2 µ$, from the mint's budget; alice's is untouched.
    assert_eq!(mint_budget(&sim), 1_000_000 - 460);
    let thinking = events(&sim, "THINKING");
    assert_eq!(thinking[0]["payload"]["principal"], "kernel_mint");
    assert_eq!(thinking[0]["payload"]["cost_micro_usd"], 460);
    // The model saw the artifact and was made to answer with the score tool.
    let request = &fake.requests()[0].body;
    assert!(request["messages"][1]["content"].as_str().unwrap().contains("counts words"));
    assert_eq!(request["tool_choice"]["function"]["name"], "score");
    assert_eq!(request["model"], "judge");
}

#[test]
fn a_failed_scoring_refunds_the_winner_and_costs_nothing() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::status(500, None));
    let mut sim = world(&fake, 1.0);
    sim.run_steps(2);
    let winner = events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"][0].clone();
    assert!(winner["scoring_error"].as_str().unwrap().contains("LLM scorer failed"), "{winner}");
    assert_eq!(winner["minted"], 0);
    assert_eq!(state::balance(sim.world(), "alice").unwrap(), 100, "the bid came back");
    assert_eq!(mint_budget(&sim), 1_000_000);
    assert_eq!(events(&sim, "THINKING_FAILED").len(), 1);
}

#[test]
fn a_mint_without_budget_cannot_score() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::tool("score", json!({"score": 90}), 10, 10));
    let mut sim = world(&fake, 0.0);
    sim.run_steps(2);
    let winner = events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"][0].clone();
    assert!(
        winner["scoring_error"].as_str().unwrap().contains("BUDGET")
            || winner["scoring_error"].as_str().unwrap().contains("µ$"),
        "{winner}"
    );
    assert_eq!(fake.request_count(), 0, "nothing was sent");
    assert_eq!(state::balance(sim.world(), "alice").unwrap(), 100);
}
