//! The mint: sealed bids, second-price auctions, UBI and minting (SPEC §7).

use agent_ecology::{
    economy::scorer::{MintScorer, Scorer},
    kernel::{ErrorCode, EventLog, state},
    run::{Simulation, audit},
};
use bevy_ecs::prelude::*;
use serde_json::{Value, json};

use crate::{act, act_fails, act_ok, scrip, sim};

/// A scorer that gives every artifact the same score (or fails).
struct Fixed(Result<u64, &'static str>);

impl Scorer for Fixed {
    fn score(&self, _: &World, _: Entity) -> Result<u64, String> {
        self.0.map_err(str::to_owned)
    }
}

/// alice 100, bob 200, carol 150, each owning a document; every artifact scores
/// `score`.
fn market(score: Result<u64, &'static str>, mint: &str) -> Simulation {
    let mut sim = sim(&format!(
        r#"Scene(
            config: (mint: ({mint})),
            principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 200), (id: "carol", scrip: 150)],
            artifacts: [
                (id: "a_doc", owner: "alice", content: "alice's essay on markets"),
                (id: "b_doc", owner: "bob", content: "bob's field notes"),
                (id: "c_doc", owner: "carol", content: "carol's recipe"),
            ],
        )"#
    ));
    sim.world_mut().insert_resource(MintScorer(Box::new(Fixed(score))));
    sim
}

fn bid(sim: &mut Simulation, who: &str, artifact: &str, amount: u64) {
    act_ok(sim, who, &format!(r#"{{"action":"bid","artifact":"{artifact}","amount":{amount}}}"#));
}

/// Runs up to and including the first resolution (at 60 s).
fn resolve(sim: &mut Simulation) {
    sim.run_steps(61);
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn balances(sim: &Simulation) -> [u64; 3] {
    [scrip(sim, "alice"), scrip(sim, "bob"), scrip(sim, "carol")]
}

#[test]
fn the_highest_bid_wins_and_pays_the_second() {
    let mut sim = market(Ok(60), "");
    bid(&mut sim, "alice", "a_doc", 30);
    bid(&mut sim, "bob", "b_doc", 50);
    // Held by the mint at once, and still part of the supply.
    assert_eq!(balances(&sim), [70, 150, 150]);
    assert_eq!(state::scrip_supply(sim.world()), 450);
    resolve(&mut sim);
    // bob pays 30 (refunded 20 of his 50), alice and carol get 15 each as UBI, bob is
    // minted 60 / 10 = 6.
    assert_eq!(balances(&sim), [115, 176, 165]);
    let supply = sim.world().resource::<agent_ecology::kernel::Supply>().clone();
    assert_eq!(supply.minted(), 6);
    assert_eq!(state::scrip_supply(sim.world()), 450 + 6, "supply = initial + minted");
    audit(sim.world()).unwrap();

    let resolved = &events(&sim, "MINT_RESOLVED")[0]["payload"];
    assert_eq!(resolved["bids"], 2);
    let winner = &resolved["winners"][0];
    assert_eq!(winner["bidder"], "bob");
    assert_eq!(winner["artifact"], "b_doc");
    assert_eq!((winner["bid"].clone(), winner["price"].clone()), (json!(50), json!(30)));
    assert_eq!((winner["score"].clone(), winner["minted"].clone()), (json!(60), json!(6)));
    assert_eq!(winner["ubi_per_head"], 15);
    // The sealed bids are revealed once the auction is over.
    let revealed: Vec<(String, u64)> = resolved["revealed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["bidder"].as_str().unwrap().to_owned(), b["amount"].as_u64().unwrap()))
        .collect();
    assert_eq!(revealed, [("alice".to_owned(), 30), ("bob".to_owned(), 50)]);
    let ubi = &events(&sim, "UBI_PAID")[0]["payload"];
    assert_eq!(
        (ubi["from"].clone(), ubi["amount"].clone(), ubi["recipients"].clone()),
        (json!("bob"), json!(30), json!(2))
    );
}

#[test]
fn a_lone_bid_pays_the_minimum() {
    let mut sim = market(Ok(80), "");
    bid(&mut sim, "alice", "a_doc", 20);
    resolve(&mut sim);
    // alice pays 1; shared over bob and carol that is 0 each, and the remainder of 1
    // goes to the first in id order, bob; alice is minted 8.
    assert_eq!(balances(&sim), [107, 201, 150]);
    let ubi = &events(&sim, "UBI_PAID")[0]["payload"];
    assert_eq!(ubi["per_head"], 0);
    assert_eq!(ubi["remainder_to"], json!(["bob"]));
    audit(sim.world()).unwrap();
}

#[test]
fn ties_go_to_the_earlier_bid_and_a_raise_counts_from_when_it_was_made() {
    let mut sim = market(Ok(0), "");
    bid(&mut sim, "bob", "b_doc", 40);
    bid(&mut sim, "alice", "a_doc", 40);
    resolve(&mut sim);
    assert_eq!(events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"][0]["bidder"], "bob");

    let mut sim = market(Ok(0), "");
    bid(&mut sim, "bob", "b_doc", 30);
    bid(&mut sim, "alice", "a_doc", 40);
    bid(&mut sim, "bob", "b_doc", 40);
    resolve(&mut sim);
    assert_eq!(events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"][0]["bidder"], "alice");
}

#[test]
fn bids_are_sealed_raised_and_cancelled_by_their_bidder_only() {
    let mut sim = market(Ok(50), "");
    bid(&mut sim, "alice", "a_doc", 10);
    bid(&mut sim, "alice", "a_doc", 25);
    assert_eq!(scrip(&sim, "alice"), 75, "a raise holds only the difference");
    act_fails(&mut sim, "alice", r#"{"action":"bid","artifact":"a_doc","amount":20}"#, ErrorCode::InvalidArgs);
    // Nobody learns the amount from the log or from the mint.
    let placed = events(&sim, "MINT_BID");
    assert_eq!(placed.len(), 2);
    assert!(placed.iter().all(|e| e["payload"].get("amount").is_none()), "{placed:?}");
    let status = act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"kernel_mint","method":"status"}"#).result.unwrap();
    assert_eq!(status["sealed_bids"], 1);
    assert_eq!(status["your_bids"], json!([]));
    let own = act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"kernel_mint","method":"status"}"#).result.unwrap();
    assert_eq!(own["your_bids"], json!([{"artifact": "a_doc", "amount": 25}]));
    // Someone else cannot cancel it; its bidder can, and gets everything back.
    act_fails(&mut sim, "bob", r#"{"action":"bid","artifact":"a_doc","cancel":true}"#, ErrorCode::NotFound);
    act_ok(&mut sim, "alice", r#"{"action":"bid","artifact":"a_doc","cancel":true}"#);
    assert_eq!(scrip(&sim, "alice"), 100);
    // Bidding needs ownership, a positive amount and the scrip.
    act_fails(&mut sim, "alice", r#"{"action":"bid","artifact":"b_doc","amount":5}"#, ErrorCode::NotOwner);
    act_fails(&mut sim, "alice", r#"{"action":"bid","artifact":"a_doc","amount":0}"#, ErrorCode::InvalidArgs);
    act_fails(&mut sim, "alice", r#"{"action":"bid","artifact":"a_doc","amount":101}"#, ErrorCode::InsufficientFunds);
    resolve(&mut sim);
    assert_eq!(balances(&sim), [100, 200, 150], "no bids, nothing happens");
    assert_eq!(events(&sim, "MINT_RESOLVED")[0]["payload"]["bids"], 0);
}

#[test]
fn code_bids_through_the_mint_service() {
    let mut sim = market(Ok(40), "");
    let result = act_ok(
        &mut sim,
        "carol",
        r#"{"action":"invoke","id":"kernel_mint","method":"bid","args":{"artifact":"c_doc","amount":12}}"#,
    );
    assert_eq!(result.result.unwrap()["resolves_at"], 60.0);
    assert_eq!(scrip(&sim, "carol"), 138);
    let bad =
        act(&mut sim, "carol", r#"{"action":"invoke","id":"kernel_mint","method":"bid","args":{"artifact":"c_doc"}}"#);
    assert_eq!(bad.error_code(), Some(ErrorCode::InvalidArgs), "the interface's schema checks the arguments");
    resolve(&mut sim);
    assert_eq!(scrip(&sim, "carol"), 150 - 1 + 4);
}

#[test]
fn a_bid_on_something_no_longer_owned_is_void_and_refunded() {
    let mut sim = market(Ok(90), "");
    bid(&mut sim, "alice", "a_doc", 30);
    act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"carol","artifact":"a_doc"}"#);
    resolve(&mut sim);
    assert_eq!(balances(&sim), [100, 200, 150]);
    let resolved = &events(&sim, "MINT_RESOLVED")[0]["payload"];
    assert_eq!(resolved["winners"], json!([]));
    assert_eq!(resolved["revealed"][0]["void"], true);
}

#[test]
fn several_slots_each_pay_the_next_bid() {
    let mut sim = market(Ok(20), "slots: 2");
    bid(&mut sim, "alice", "a_doc", 30);
    bid(&mut sim, "bob", "b_doc", 50);
    bid(&mut sim, "carol", "c_doc", 40);
    resolve(&mut sim);
    let winners = events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"].clone();
    let paid: Vec<(String, u64)> = winners
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["bidder"].as_str().unwrap().to_owned(), w["price"].as_u64().unwrap()))
        .collect();
    assert_eq!(paid, [("bob".to_owned(), 30), ("carol".to_owned(), 30)]);
    // bob: −30 + 15 (carol's price) + 2 minted; carol: −30 + 15 + 2; alice: 15 + 15.
    assert_eq!(balances(&sim), [130, 187, 137]);
    audit(sim.world()).unwrap();
}

#[test]
fn a_scoring_failure_refunds_the_winner() {
    let mut sim = market(Err("the scorer is down"), "");
    bid(&mut sim, "alice", "a_doc", 30);
    bid(&mut sim, "bob", "b_doc", 50);
    resolve(&mut sim);
    assert_eq!(balances(&sim), [100, 200, 150]);
    let winner = &events(&sim, "MINT_RESOLVED")[0]["payload"]["winners"][0];
    assert_eq!(winner["scoring_error"], "the scorer is down");
    assert_eq!(winner["price"], 0);
    assert!(events(&sim, "UBI_PAID").is_empty());
}

#[test]
fn duplicates_score_zero_with_the_offline_scorer() {
    let mut sim = sim(r#"Scene(
            config: (mint: (first_at_secs: 10, period_secs: 10)),
            principals: [(id: "alice"), (id: "bob")],
            artifacts: [
                (id: "essay", owner: "alice", content: "Markets clear when prices carry information about scarcity."),
                (id: "copy", owner: "bob", content: "markets   clear when PRICES carry information about scarcity."),
            ],
        )"#);
    bid(&mut sim, "alice", "essay", 5);
    sim.run_steps(11);
    bid(&mut sim, "bob", "copy", 5);
    sim.run_steps(10);
    let resolved = events(&sim, "MINT_RESOLVED");
    let first = &resolved[0]["payload"]["winners"][0];
    let second = &resolved[1]["payload"]["winners"][0];
    assert!(first["score"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["duplicate"], Value::Null);
    assert_eq!((second["score"].clone(), second["duplicate"].clone()), (json!(0), json!(true)));
    assert_eq!(second["minted"], 0);
}

#[test]
fn the_schedule_runs_every_period_from_the_first() {
    let mut sim = market(Ok(10), "first_at_secs: 30, period_secs: 20");
    sim.run_steps(100);
    let times: Vec<f64> = sim
        .world()
        .resource::<EventLog>()
        .recent()
        .filter(|e| e.kind.type_name() == "MINT_RESOLVED")
        .map(|e| e.time.as_secs_f64())
        .collect();
    assert_eq!(times, [30.0, 50.0, 70.0, 90.0]);
}
