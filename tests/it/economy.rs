//! The economy's services (SPEC §2, §10): escrow, debt notes, commons governed by
//! vote, the auditor and the health indicators — all driven through the public
//! action pipeline (`invoke` on the world's services, `query`), the way an agent
//! would use them — and a property test that none of it creates or destroys scrip.

use agent_ecology::{
    economy::kpis::Kpis,
    kernel::{ActionResult, ErrorCode, EventLog, Supply, state},
    run::{Simulation, audit},
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{act, act_fails, act_ok, scrip, sim};

/// Invokes `method` of a world service as `actor`, through the action pipeline.
fn call(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value) -> ActionResult {
    act(sim, actor, &json!({"action": "invoke", "id": service, "method": method, "args": args}).to_string())
}

/// Like [`call`], but it must succeed; returns the method's result.
fn call_ok(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value) -> Value {
    let result = call(sim, actor, service, method, args.clone());
    assert!(result.success, "{service}.{method}({args}) as {actor} should succeed, got {result:?}");
    result.result.unwrap_or(Value::Null)
}

/// Like [`call`], but it must fail with `code`.
fn call_fails(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value, code: ErrorCode) {
    let result = call(sim, actor, service, method, args.clone());
    assert!(!result.success, "{service}.{method}({args}) as {actor} should fail with {code}, got {result:?}");
    assert_eq!(result.error_code(), Some(code), "{service}.{method}({args}) as {actor}: {result:?}");
}

/// An artifact's public metadata, as anyone (here carol) sees it through `query`.
fn about(sim: &mut Simulation, id: &str) -> Value {
    act_ok(sim, "carol", &json!({"action": "query", "id": id}).to_string()).result.unwrap()["artifact"].clone()
}

/// Events of one type still in memory, as JSON (`actor`, `payload`, …).
fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn balances<const N: usize>(sim: &Simulation, ids: [&str; N]) -> [u64; N] {
    ids.map(|id| scrip(sim, id))
}

/// Scrip is conserved and disk adds up: the ledger's own audit.
fn audited(sim: &Simulation) {
    audit(sim.world()).unwrap_or_else(|e| panic!("{e}"));
    let supply = sim.world().resource::<Supply>();
    assert_eq!(state::scrip_supply(sim.world()), supply.expected_total());
}

// ---------------------------------------------------------------------------------
// Escrow
// ---------------------------------------------------------------------------------

const ESCROW: &str = "kernel_escrow";
const ESSAY: &str = "An essay on how prices carry information about scarcity.";

/// alice 100, bob 50, carol 100; alice owns an essay (public: anyone may normally
/// write it) and a priced tool.
fn shop() -> Simulation {
    sim(&format!(
        r#"Scene(
            principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol")],
            artifacts: [
                (id: "essay", owner: "alice", content: {ESSAY:?}, contract: "public", pricing: (read_price: 3)),
                (
                    id: "counter", owner: "alice", code: "function run(args) {{ return String(args.text).length }}",
                    interface: (tools: [(name: "run")]), pricing: (invoke_price: 7),
                ),
            ],
        )"#
    ))
}

fn deposit(sim: &mut Simulation, seller: &str, artifact: &str, price: u64) -> Value {
    call_ok(sim, seller, ESCROW, "deposit", json!({"artifact": artifact, "price": price}))
}

fn owner(sim: &mut Simulation, artifact: &str) -> String {
    about(sim, artifact)["owner"].as_str().unwrap().to_owned()
}

#[test]
fn escrow_lists_publicly_and_sells_only_at_the_asking_price() {
    let mut sim = shop();
    let disk_before = state::get_resource(sim.world(), "alice", "disk").unwrap();
    deposit(&mut sim, "alice", "essay", 30);
    // Ownership — and the disk that goes with it — passes to escrow.
    assert_eq!(owner(&mut sim, "essay"), ESCROW);
    let freed = state::get_resource(sim.world(), "alice", "disk").unwrap() - disk_before;
    assert_eq!(freed, ESSAY.len() as u64);
    audited(&sim);

    // The listing is public: through the service and on the artifact's metadata.
    let listings = call_ok(&mut sim, "carol", ESCROW, "listings", json!({}));
    let items = listings["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listings}");
    assert_eq!((items[0]["artifact"].clone(), items[0]["seller"].clone()), (json!("essay"), json!("alice")));
    assert_eq!((items[0]["price"].clone(), items[0]["buyer"].clone()), (json!(30), Value::Null));
    assert_eq!(items[0]["bytes"], ESSAY.len());
    assert_eq!(about(&mut sim, "essay")["listing"], json!({"seller": "alice", "price": 30, "buyer": null}));
    let by_seller = call_ok(&mut sim, "carol", ESCROW, "listings", json!({"seller": "bob"}));
    assert_eq!(by_seller["items"], json!([]), "filtered by seller");
    let listed = events(&sim, "ESCROW_LISTED");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["actor"], "alice");
    assert_eq!(listed[0]["payload"], json!({"artifact": "essay", "price": 30, "buyer": null}));

    // A purchase naming any other price fails and nothing moves, above or below.
    for wrong in [29, 31, 0] {
        call_fails(
            &mut sim,
            "bob",
            ESCROW,
            "buy",
            json!({"artifact": "essay", "price": wrong}),
            ErrorCode::InvalidArgs,
        );
        assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
        assert_eq!(owner(&mut sim, "essay"), ESCROW);
    }
    // The seller cannot buy its own listing.
    call_fails(&mut sim, "alice", ESCROW, "buy", json!({"artifact": "essay", "price": 30}), ErrorCode::InvalidArgs);

    // The asking price: scrip to the seller and the artifact to the buyer, together.
    let bought = call_ok(&mut sim, "bob", ESCROW, "buy", json!({"artifact": "essay", "price": 30}));
    assert_eq!(bought, json!({"artifact": "essay", "seller": "alice", "price": 30}));
    assert_eq!(balances(&sim, ["alice", "bob"]), [130, 20]);
    assert_eq!(owner(&mut sim, "essay"), "bob");
    assert!(about(&mut sim, "essay").get("listing").is_none(), "no longer listed");
    assert_eq!(call_ok(&mut sim, "carol", ESCROW, "listings", json!({}))["items"], json!([]));
    let sold = events(&sim, "ESCROW_SOLD");
    assert_eq!(sold.len(), 1);
    assert_eq!(sold[0]["actor"], "bob");
    assert_eq!(sold[0]["payload"], json!({"artifact": "essay", "seller": "alice", "price": 30}));
    // Sold once: a second purchase finds nothing for sale.
    call_fails(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "essay", "price": 30}), ErrorCode::NotFound);
    // The buyer owns it now: bob (not alice) writes it, and its disk is bob's.
    act_ok(&mut sim, "bob", r#"{"action":"edit","id":"essay","old":"essay","new":"memo"}"#);
    audited(&sim);
}

#[test]
fn a_buyer_who_cannot_pay_changes_nothing() {
    let mut sim = shop();
    deposit(&mut sim, "alice", "essay", 80);
    call_fails(&mut sim, "bob", ESCROW, "buy", json!({"artifact": "essay", "price": 80}), ErrorCode::InsufficientFunds);
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    assert_eq!(owner(&mut sim, "essay"), ESCROW);
    assert!(events(&sim, "ESCROW_SOLD").is_empty());
    // Still for sale to someone who can pay.
    call_ok(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "essay", "price": 80}));
    assert_eq!(balances(&sim, ["alice", "carol"]), [180, 20]);
    audited(&sim);
}

#[test]
fn a_listing_for_one_buyer_refuses_everyone_else() {
    let mut sim = shop();
    let listed =
        call_ok(&mut sim, "alice", ESCROW, "deposit", json!({"artifact": "essay", "price": 10, "buyer": "carol"}));
    assert_eq!(listed["buyer"], "carol");
    assert_eq!(events(&sim, "ESCROW_LISTED")[0]["payload"]["buyer"], "carol");
    call_fails(&mut sim, "bob", ESCROW, "buy", json!({"artifact": "essay", "price": 10}), ErrorCode::AccessDenied);
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    call_ok(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "essay", "price": 10}));
    assert_eq!(owner(&mut sim, "essay"), "carol");
    // Naming an unknown buyer, or oneself, is refused before anything is listed.
    call_fails(
        &mut sim,
        "carol",
        ESCROW,
        "deposit",
        json!({"artifact": "essay", "price": 1, "buyer": "nobody"}),
        ErrorCode::NotFound,
    );
    call_fails(
        &mut sim,
        "carol",
        ESCROW,
        "deposit",
        json!({"artifact": "essay", "price": 1, "buyer": "carol"}),
        ErrorCode::InvalidArgs,
    );
    assert_eq!(owner(&mut sim, "essay"), "carol");
    audited(&sim);
}

#[test]
fn only_the_seller_cancels_and_gets_the_artifact_back() {
    let mut sim = shop();
    // Only the owner lists, and the world's own artifacts are not for sale.
    call_fails(&mut sim, "bob", ESCROW, "deposit", json!({"artifact": "essay", "price": 5}), ErrorCode::NotOwner);
    call_fails(
        &mut sim,
        "bob",
        ESCROW,
        "deposit",
        json!({"artifact": "kernel_mint", "price": 5}),
        ErrorCode::InvalidArgs,
    );
    call_fails(&mut sim, "bob", ESCROW, "deposit", json!({"artifact": "bob", "price": 5}), ErrorCode::InvalidArgs);
    deposit(&mut sim, "alice", "essay", 20);
    call_fails(&mut sim, "bob", ESCROW, "cancel", json!({"artifact": "essay"}), ErrorCode::NotOwner);
    assert_eq!(owner(&mut sim, "essay"), ESCROW);
    call_ok(&mut sim, "alice", ESCROW, "cancel", json!({"artifact": "essay"}));
    assert_eq!(owner(&mut sim, "essay"), "alice");
    let cancelled = events(&sim, "ESCROW_CANCELLED");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        (cancelled[0]["actor"].clone(), cancelled[0]["payload"].clone()),
        (json!("alice"), json!({"artifact": "essay"}))
    );
    // Gone from the listings: it cannot be bought or cancelled again.
    call_fails(&mut sim, "bob", ESCROW, "buy", json!({"artifact": "essay", "price": 20}), ErrorCode::NotFound);
    call_fails(&mut sim, "alice", ESCROW, "cancel", json!({"artifact": "essay"}), ErrorCode::NotFound);
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    // Back in the seller's hands, it changes as before.
    act_ok(&mut sim, "alice", r#"{"action":"edit","id":"essay","old":"essay","new":"note"}"#);
    audited(&sim);
}

#[test]
fn nothing_listed_can_change() {
    let mut sim = shop();
    deposit(&mut sim, "alice", "essay", 20);
    deposit(&mut sim, "alice", "counter", 50);
    // Its contract is `public`, but while listed nobody — not even the seller — writes,
    // edits or deletes it: a buyer gets what it inspected.
    for who in ["alice", "bob", "carol"] {
        act_fails(&mut sim, who, r#"{"action":"write","id":"essay","content":"swapped"}"#, ErrorCode::AccessDenied);
        act_fails(&mut sim, who, r#"{"action":"edit","id":"essay","old":"essay","new":"x"}"#, ErrorCode::AccessDenied);
        act_fails(&mut sim, who, r#"{"action":"delete","id":"essay"}"#, ErrorCode::AccessDenied);
        act_fails(
            &mut sim,
            who,
            r#"{"action":"write","id":"counter","code":"function run() { return 0 }"}"#,
            ErrorCode::AccessDenied,
        );
        // Nor does anyone give it away or bid on it at the mint: escrow owns it.
        act_fails(&mut sim, who, r#"{"action":"transfer","to":"bob","artifact":"essay"}"#, ErrorCode::NotOwner);
        act_fails(&mut sim, who, r#"{"action":"bid","artifact":"essay","amount":1}"#, ErrorCode::NotOwner);
    }
    let read = act_ok(&mut sim, "bob", r#"{"action":"read","id":"essay"}"#).result.unwrap();
    assert_eq!(read["content"], ESSAY, "{read}");
    assert!(events(&sim, "ARTIFACT_EDITED").is_empty() && events(&sim, "ARTIFACT_DELETED").is_empty());
    audited(&sim);
}

#[test]
fn a_listed_artifact_keeps_earning_for_its_seller() {
    let mut sim = shop();
    deposit(&mut sim, "alice", "counter", 50);
    deposit(&mut sim, "alice", "essay", 20);
    let used = act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"counter","args":{"text":"hello"}}"#);
    assert_eq!(used.result, Some(json!(5)));
    // The invoke price goes to the seller, not to escrow; so does a read price.
    assert_eq!(balances(&sim, ["alice", "bob", ESCROW]), [107, 43, 0]);
    let success = events(&sim, "INVOKE_SUCCESS");
    let paid = success.iter().find(|e| e["payload"]["artifact"] == "counter").unwrap();
    assert_eq!((paid["payload"]["price"].clone(), paid["payload"]["paid_to"].clone()), (json!(7), json!("alice")));
    act_ok(&mut sim, "carol", r#"{"action":"read","id":"essay"}"#);
    assert_eq!(balances(&sim, ["alice", "carol", ESCROW]), [110, 97, 0]);
    // The seller uses its own listed tool for free, as an owner would.
    act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"counter","args":{"text":"hi"}}"#);
    assert_eq!(scrip(&sim, "alice"), 110);
    // Once sold, the earnings follow the new owner.
    call_ok(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "counter", "price": 50}));
    act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"counter","args":{"text":"x"}}"#);
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [160, 36, 97 - 50 + 7]);
    audited(&sim);
}

// ---------------------------------------------------------------------------------
// Debt
// ---------------------------------------------------------------------------------

const DEBT: &str = "kernel_debt";

fn offer(sim: &mut Simulation, creditor: &str, id: &str, debtor: &str, principal: u64, interest: u64, term: f64) {
    let args = json!({"id": id, "debtor": debtor, "principal": principal, "interest": interest, "term_secs": term});
    let offered = call_ok(sim, creditor, DEBT, "offer", args);
    assert_eq!(offered["id"], id);
}

fn debt_of(sim: &mut Simulation, note: &str) -> Value {
    about(sim, note)["debt"].clone()
}

#[test]
fn a_loan_is_paid_out_on_acceptance_and_repaid_to_the_holder() {
    let mut sim = crate::three();
    offer(&mut sim, "alice", "loan", "bob", 40, 10, 30.0);
    // An offer moves nothing yet; the note is the creditor's, readable by anyone.
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    assert_eq!(owner(&mut sim, "loan"), "alice");
    let note = debt_of(&mut sim, "loan");
    assert_eq!((note["status"].clone(), note["holder"].clone()), (json!("offered"), json!("alice")));
    assert_eq!((note["outstanding"].clone(), note["due_at"].clone()), (json!(50), Value::Null));
    let offered = &events(&sim, "DEBT_OFFERED")[0];
    assert_eq!(offered["actor"], "alice");
    assert_eq!(offered["payload"]["principal"], 40);

    // Only the debtor accepts; nothing is owed before acceptance.
    call_fails(&mut sim, "carol", DEBT, "accept", json!({"id": "loan"}), ErrorCode::AccessDenied);
    call_fails(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 1}), ErrorCode::InvalidArgs);
    let accepted = call_ok(&mut sim, "bob", DEBT, "accept", json!({"id": "loan"}));
    assert_eq!((accepted["status"].clone(), accepted["due_at"].clone()), (json!("active"), json!(30.0)));
    assert_eq!(balances(&sim, ["alice", "bob"]), [60, 90], "the principal moves creditor → debtor");
    call_fails(&mut sim, "bob", DEBT, "accept", json!({"id": "loan"}), ErrorCode::InvalidArgs);
    let accepted = &events(&sim, "DEBT_ACCEPTED")[0];
    assert_eq!((accepted["actor"].clone(), accepted["payload"]["holder"].clone()), (json!("bob"), json!("alice")));

    // Its terms are the kernel's: nobody rewrites or deletes an open note.
    act_fails(&mut sim, "alice", r#"{"action":"edit","id":"loan","old":"50","new":"500"}"#, ErrorCode::AccessDenied);
    act_fails(&mut sim, "alice", r#"{"action":"delete","id":"loan"}"#, ErrorCode::AccessDenied);

    let partial = call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 20}));
    assert_eq!((partial["repaid"].clone(), partial["outstanding"].clone()), (json!(20), json!(30)));
    assert_eq!(balances(&sim, ["alice", "bob"]), [80, 70]);
    // Not more than is owed.
    call_fails(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 31}), ErrorCode::InvalidArgs);
    assert_eq!(balances(&sim, ["alice", "bob"]), [80, 70]);
    // Anyone may pay toward it, and it goes to the holder; by default, all that is owed.
    call_ok(&mut sim, "carol", DEBT, "repay", json!({"id": "loan", "amount": 5}));
    let full = call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan"}));
    assert_eq!((full["status"].clone(), full["outstanding"].clone()), (json!("repaid"), json!(0)));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [110, 45, 95]);
    let repaid: Vec<(Value, Value)> = events(&sim, "DEBT_REPAID")
        .iter()
        .map(|e| (e["payload"]["amount"].clone(), e["payload"]["holder"].clone()))
        .collect();
    assert_eq!(repaid, [(json!(20), json!("alice")), (json!(5), json!("alice")), (json!(25), json!("alice"))]);
    call_fails(&mut sim, "bob", DEBT, "repay", json!({"id": "loan"}), ErrorCode::InvalidArgs);

    // Repaid on time: the due time passes without a default, and the settled note may
    // now be deleted by its holder.
    sim.run_steps(40);
    assert!(events(&sim, "DEBT_DEFAULTED").is_empty());
    assert_eq!(debt_of(&mut sim, "loan")["status"], "repaid");
    act_ok(&mut sim, "alice", r#"{"action":"delete","id":"loan"}"#);
    audited(&sim);
}

#[test]
fn offers_are_cancelled_by_either_party_and_fail_when_the_holder_cannot_pay() {
    let mut sim = crate::three();
    offer(&mut sim, "bob", "big", "alice", 500, 0, 10.0);
    // bob holds 50: the principal cannot be paid out, so the offer stays open.
    call_fails(&mut sim, "alice", DEBT, "accept", json!({"id": "big"}), ErrorCode::InsufficientFunds);
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    assert_eq!(debt_of(&mut sim, "big")["status"], "offered");
    call_fails(&mut sim, "carol", DEBT, "cancel", json!({"id": "big"}), ErrorCode::AccessDenied);
    // The debtor declines.
    assert_eq!(call_ok(&mut sim, "alice", DEBT, "cancel", json!({"id": "big"}))["status"], "cancelled");
    call_fails(&mut sim, "alice", DEBT, "accept", json!({"id": "big"}), ErrorCode::InvalidArgs);
    // The creditor withdraws.
    offer(&mut sim, "bob", "small", "alice", 5, 1, 10.0);
    call_ok(&mut sim, "bob", DEBT, "cancel", json!({"id": "small"}));
    assert_eq!(events(&sim, "DEBT_CANCELLED").len(), 2);
    // Nobody lends to itself or to someone who does not exist, and terms must be terms.
    let bad = [
        json!({"debtor": "bob", "principal": 5, "interest": 0, "term_secs": 10}),
        json!({"debtor": "nobody", "principal": 5, "interest": 0, "term_secs": 10}),
        json!({"debtor": "alice", "principal": 0, "interest": 0, "term_secs": 10}),
        json!({"debtor": "alice", "principal": 5, "interest": 0, "term_secs": 0}),
    ];
    for args in bad {
        let result = call(&mut sim, "bob", DEBT, "offer", args.clone());
        assert!(!result.success, "{args}: {result:?}");
    }
    // Settled without a payment: the notes may go.
    act_ok(&mut sim, "bob", r#"{"action":"delete","id":"big"}"#);
    assert_eq!(balances(&sim, ["alice", "bob"]), [100, 50]);
    audited(&sim);
}

#[test]
fn a_note_sold_or_given_away_is_repaid_to_its_new_holder() {
    let mut sim = crate::three();
    offer(&mut sim, "alice", "loan", "bob", 40, 10, 100.0);
    call_ok(&mut sim, "bob", DEBT, "accept", json!({"id": "loan"}));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [60, 90, 100]);

    // alice sells the note in escrow; while listed, what is repaid is still hers.
    deposit(&mut sim, "alice", "loan", 35);
    assert_eq!(debt_of(&mut sim, "loan")["holder"], "alice");
    call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 10}));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [70, 80, 100]);
    // carol buys it, for less than the 40 still owed: a discounted claim.
    call_ok(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "loan", "price": 35}));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [105, 80, 65]);
    let note = debt_of(&mut sim, "loan");
    assert_eq!((note["holder"].clone(), note["creditor"].clone()), (json!("carol"), json!("alice")));
    call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 15}));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [105, 65, 80], "repayment follows the note");
    assert_eq!(events(&sim, "DEBT_REPAID").last().unwrap()["payload"]["holder"], "carol");

    // A plain transfer of the note moves the claim too: carol gives it back to alice.
    act_ok(&mut sim, "carol", r#"{"action":"transfer","to":"alice","artifact":"loan"}"#);
    let rest = call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan"}));
    assert_eq!((rest["status"].clone(), rest["holder"].clone()), (json!("repaid"), json!("alice")));
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [130, 40, 80]);
    audited(&sim);
}

#[test]
fn an_unpaid_debt_defaults_for_all_to_see_and_can_be_collected() {
    let mut sim = crate::three();
    offer(&mut sim, "alice", "loan", "bob", 30, 6, 10.0);
    call_ok(&mut sim, "bob", DEBT, "accept", json!({"id": "loan"}));
    call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 6}));
    // bob spends nearly everything: 50 + 30 − 6 = 74, less 70.
    act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"carol","amount":70}"#);
    assert_eq!(balances(&sim, ["alice", "bob", "carol"]), [76, 4, 170]);
    // Not due yet: nothing to collect.
    call_fails(&mut sim, "alice", DEBT, "collect", json!({"id": "loan"}), ErrorCode::InvalidArgs);

    // Accepted at 0 s with a 10 s term: due at 10 s, the eleventh step.
    sim.run_steps(10);
    assert!(events(&sim, "DEBT_DEFAULTED").is_empty(), "not due before 10 s");
    assert_eq!(debt_of(&mut sim, "loan")["status"], "active");
    sim.run_steps(1);
    let defaulted = events(&sim, "DEBT_DEFAULTED");
    assert_eq!(defaulted.len(), 1);
    assert_eq!(defaulted[0]["time"], 10.0);
    assert_eq!(defaulted[0]["payload"], json!({"id": "loan", "debtor": "bob", "holder": "alice", "outstanding": 30}));
    // Anyone sees it: in the note's metadata, through the service, and in its text.
    let note = debt_of(&mut sim, "loan");
    assert_eq!((note["status"].clone(), note["outstanding"].clone()), (json!("defaulted"), json!(30)));
    let status = call_ok(&mut sim, "carol", DEBT, "status", json!({"id": "loan"}));
    assert_eq!(status["status"], "defaulted");
    let text = act_ok(&mut sim, "carol", r#"{"action":"read","id":"loan"}"#).result.unwrap();
    assert!(text["content"].as_str().unwrap().contains("bob owes"), "{text}");

    // Only the holder collects, and takes what the debtor has, up to what is owed.
    call_fails(&mut sim, "carol", DEBT, "collect", json!({"id": "loan"}), ErrorCode::NotOwner);
    let collected = call_ok(&mut sim, "alice", DEBT, "collect", json!({"id": "loan"}));
    assert_eq!((collected["outstanding"].clone(), collected["status"].clone()), (json!(26), json!("defaulted")));
    assert_eq!(balances(&sim, ["alice", "bob"]), [80, 0]);
    assert_eq!(events(&sim, "DEBT_COLLECTED")[0]["payload"]["amount"], 4);
    // Nothing left to take: no balance goes below zero.
    call_fails(&mut sim, "alice", DEBT, "collect", json!({"id": "loan"}), ErrorCode::InsufficientFunds);
    call_fails(&mut sim, "bob", DEBT, "repay", json!({"id": "loan", "amount": 1}), ErrorCode::InsufficientFunds);
    assert_eq!(balances(&sim, ["alice", "bob"]), [80, 0]);
    // A defaulted note is still owed: it cannot be deleted...
    act_fails(&mut sim, "alice", r#"{"action":"delete","id":"loan"}"#, ErrorCode::AccessDenied);
    // ...and paying it off late settles it; the default is not announced twice.
    act_ok(&mut sim, "carol", r#"{"action":"transfer","to":"bob","amount":26}"#);
    assert_eq!(call_ok(&mut sim, "bob", DEBT, "repay", json!({"id": "loan"}))["status"], "repaid");
    assert_eq!(balances(&sim, ["alice", "bob"]), [106, 0]);
    sim.run_steps(20);
    assert_eq!(events(&sim, "DEBT_DEFAULTED").len(), 1);
    audited(&sim);
}

#[test]
fn a_debt_note_never_overwrites_an_existing_artifact() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol")],
        artifacts: [(id: "diary", owner: "alice", content: "dear diary")],
    )"#);
    // A note is a new artifact: naming one that exists (even one the creditor may
    // write, even the creditor itself) is refused and leaves it as it was.
    for taken in ["diary", "alice", "bob", "kernel_debt"] {
        let args = json!({"id": taken, "debtor": "bob", "principal": 5, "interest": 1, "term_secs": 10});
        call_fails(&mut sim, "alice", DEBT, "offer", args, ErrorCode::AlreadyExists);
    }
    let diary = act_ok(&mut sim, "alice", r#"{"action":"read","id":"diary"}"#).result.unwrap();
    assert_eq!(diary["content"], "dear diary");
    assert!(about(&mut sim, "diary").get("debt").is_none());
    assert!(about(&mut sim, "alice").get("debt").is_none());
    act_ok(&mut sim, "alice", r#"{"action":"edit","id":"diary","old":"dear","new":"my"}"#);
    audited(&sim);
}

// ---------------------------------------------------------------------------------
// Governance
// ---------------------------------------------------------------------------------

const GOVERNANCE: &str = "kernel_governance";
const CHARTER: &str = "Rule 1: be kind.";

/// alice, bob and carol found a commons `guild` (quorum 60 %, threshold 50 %) with 60
/// of alice's scrip and give it the charter; dave stays outside.
fn guild() -> Simulation {
    let mut sim = sim(&format!(
        r#"Scene(
            principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol"), (id: "dave")],
            artifacts: [(id: "charter", owner: "alice", content: {CHARTER:?})],
        )"#
    ));
    let args = json!({"id": "guild", "members": ["carol", "alice", "bob", "alice"], "quorum_pct": 60,
                      "threshold_pct": 50, "scrip": 60});
    let created = call_ok(&mut sim, "alice", GOVERNANCE, "create_commons", args);
    // Members come out once each, in id order.
    assert_eq!(created, json!({"id": "guild", "members": ["alice", "bob", "carol"]}));
    // A commons has no disk of its own; alice gives it room for the charter, then the
    // charter itself.
    act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"guild","amount":1000,"resource":"disk"}"#);
    act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"guild","artifact":"charter"}"#);
    sim
}

fn propose(sim: &mut Simulation, who: &str, description: &str, action: Value) -> String {
    let args = json!({"commons": "guild", "description": description, "action": action, "voting_secs": 10});
    let opened = call_ok(sim, who, GOVERNANCE, "propose", args);
    assert_eq!(opened["closes_at"], 10.0);
    opened["proposal"].as_str().unwrap().to_owned()
}

fn vote(sim: &mut Simulation, who: &str, proposal: &str, yes: bool) {
    call_ok(sim, who, GOVERNANCE, "vote", json!({"proposal": proposal, "yes": yes}));
}

fn content(sim: &mut Simulation, id: &str) -> String {
    act_ok(sim, "dave", &json!({"action": "read", "id": id}).to_string()).result.unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_commons_does_what_its_members_pass_and_nothing_else() {
    let mut sim = guild();
    assert_eq!(balances(&sim, ["alice", "guild"]), [40, 60]);
    let created = &events(&sim, "COMMONS_CREATED")[0];
    assert_eq!(created["actor"], "alice");
    assert_eq!(
        created["payload"],
        json!({"id": "guild", "members": ["alice", "bob", "carol"], "quorum_pct": 60, "threshold_pct": 50, "scrip": 60})
    );
    // The commons belongs to itself, its rules are public, and it now owns the charter.
    let commons = about(&mut sim, "guild");
    assert_eq!(commons["owner"], "guild");
    assert_eq!(
        commons["commons"],
        json!({"members": ["alice", "bob", "carol"], "quorum_pct": 60, "threshold_pct": 50})
    );
    assert_eq!(owner(&mut sim, "charter"), "guild");
    // No member acts for it directly: the charter is the commons' to change.
    act_fails(
        &mut sim,
        "alice",
        r#"{"action":"edit","id":"charter","old":"kind","new":"rich"}"#,
        ErrorCode::AccessDenied,
    );

    // Passes: all three vote, two say yes (2 × 100 > 50 × 3).
    let pay =
        propose(&mut sim, "bob", "pay carol for the logo", json!({"action": "transfer", "to": "carol", "amount": 25}));
    vote(&mut sim, "alice", &pay, true);
    vote(&mut sim, "bob", &pay, true);
    vote(&mut sim, "carol", &pay, false);
    // Rejected: quorum met (2 of 3 ≥ 60 %), but one yes of two is not more than half.
    let grab = json!({"action": "edit", "id": "charter", "old": "be kind", "new": "be rich"});
    let grab = propose(&mut sim, "carol", "rewrite the charter", grab);
    vote(&mut sim, "alice", &grab, false);
    vote(&mut sim, "bob", &grab, true);
    // No quorum: only the proposer votes (1 × 100 < 60 × 3).
    let tip = propose(&mut sim, "alice", "a tip for alice", json!({"action": "transfer", "to": "alice", "amount": 10}));
    vote(&mut sim, "alice", &tip, true);
    // Passes, after bob changes his mind: a later vote replaces an earlier one.
    let amend = json!({"action": "edit", "id": "charter", "old": "be kind", "new": "be kind and fair"});
    let amend = propose(&mut sim, "alice", "amend the charter", amend);
    vote(&mut sim, "bob", &amend, false);
    vote(&mut sim, "bob", &amend, true);
    vote(&mut sim, "alice", &amend, true);
    // Passes, but the commons cannot do it: the outcome records the failure.
    let splurge =
        propose(&mut sim, "bob", "more than we have", json!({"action": "transfer", "to": "bob", "amount": 1000}));
    vote(&mut sim, "alice", &splurge, true);
    vote(&mut sim, "bob", &splurge, true);

    // Outsiders neither vote nor propose; unknown proposals are not found.
    call_fails(&mut sim, "dave", GOVERNANCE, "vote", json!({"proposal": pay, "yes": false}), ErrorCode::AccessDenied);
    let args = json!({"commons": "guild", "action": {"action": "transfer", "to": "dave", "amount": 60}});
    call_fails(&mut sim, "dave", GOVERNANCE, "propose", args, ErrorCode::AccessDenied);
    call_fails(&mut sim, "bob", GOVERNANCE, "vote", json!({"proposal": "guild#99", "yes": true}), ErrorCode::NotFound);

    // Votes are public while the proposals are open; nothing has happened yet.
    let open = call_ok(&mut sim, "dave", GOVERNANCE, "proposals", json!({"commons": "guild", "open": true}));
    let open = open["items"].as_array().unwrap();
    assert_eq!(open.len(), 5);
    let amend_votes = &open.iter().find(|p| p["id"] == amend.as_str()).unwrap()["votes"];
    assert_eq!(amend_votes, &json!({"alice": true, "bob": true}));
    assert_eq!(balances(&sim, ["alice", "bob", "carol", "guild"]), [40, 50, 100, 60]);

    // Voting ends at 10 s, the eleventh step.
    sim.run_steps(10);
    assert!(events(&sim, "PROPOSAL_CLOSED").is_empty());
    sim.run_steps(1);
    let closed: Vec<(String, bool, u64, u64, u64)> = events(&sim, "PROPOSAL_CLOSED")
        .iter()
        .map(|e| {
            let p = &e["payload"];
            let n = |k: &str| p[k].as_u64().unwrap();
            (
                p["proposal"].as_str().unwrap().to_owned(),
                p["passed"].as_bool().unwrap(),
                n("yes"),
                n("no"),
                n("members"),
            )
        })
        .collect();
    assert_eq!(
        closed,
        [
            (pay.clone(), true, 2, 1, 3),
            (grab.clone(), false, 1, 1, 3),
            (tip.clone(), false, 1, 0, 3),
            (amend.clone(), true, 2, 0, 3),
            (splurge.clone(), true, 2, 0, 3),
        ]
    );
    // What passed was done as the commons; what did not, was not.
    assert_eq!(balances(&sim, ["alice", "bob", "carol", "guild"]), [40, 50, 125, 35]);
    assert_eq!(content(&mut sim, "charter"), "Rule 1: be kind and fair.");
    let paid = events(&sim, "SCRIP_TRANSFER");
    assert!(
        paid.iter().any(|e| e["actor"] == "guild" && e["payload"] == json!({"to": "carol", "amount": 25})),
        "{paid:?}"
    );
    assert_eq!(events(&sim, "ARTIFACT_EDITED").last().unwrap()["actor"], "guild");
    let done = call_ok(&mut sim, "dave", GOVERNANCE, "proposals", json!({"commons": "guild", "open": false}));
    let outcome =
        |id: &str| done["items"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["outcome"].clone();
    assert_eq!(outcome(&pay)["result"]["success"], true);
    assert_eq!(outcome(&grab)["result"], Value::Null, "a rejected proposal does nothing");
    assert_eq!(outcome(&splurge)["passed"], true);
    assert_eq!(outcome(&splurge)["result"]["success"], false);
    assert_eq!(outcome(&splurge)["result"]["error"]["code"], "INSUFFICIENT_FUNDS");
    // A closed vote takes no more votes.
    call_fails(&mut sim, "carol", GOVERNANCE, "vote", json!({"proposal": tip, "yes": true}), ErrorCode::InvalidArgs);
    audited(&sim);
}

#[test]
fn a_commons_needs_real_members_and_its_founders_scrip() {
    let mut sim = guild();
    let args = |id: &str, members: Value, scrip: u64| json!({"id": id, "members": members, "scrip": scrip});
    call_fails(&mut sim, "dave", GOVERNANCE, "create_commons", args("c1", json!(["nobody"]), 0), ErrorCode::NotFound);
    call_fails(&mut sim, "dave", GOVERNANCE, "create_commons", args("c2", json!([]), 0), ErrorCode::InvalidArgs);
    call_fails(
        &mut sim,
        "dave",
        GOVERNANCE,
        "create_commons",
        args("c3", json!(["dave"]), 101),
        ErrorCode::InsufficientFunds,
    );
    call_fails(
        &mut sim,
        "dave",
        GOVERNANCE,
        "create_commons",
        args("guild", json!(["dave"]), 0),
        ErrorCode::AlreadyExists,
    );
    // Nothing was created by the refusals, and dave still holds all he had.
    for id in ["c1", "c2", "c3"] {
        act_fails(&mut sim, "dave", &json!({"action": "query", "id": id}).to_string(), ErrorCode::NotFound);
    }
    assert_eq!(scrip(&sim, "dave"), 100);
    // Proposing to something that is not a commons is refused too.
    let args = json!({"commons": "charter", "description": "?"});
    call_fails(&mut sim, "alice", GOVERNANCE, "propose", args, ErrorCode::InvalidArgs);
    audited(&sim);
}

// ---------------------------------------------------------------------------------
// The auditor and the health indicators
// ---------------------------------------------------------------------------------

const AUDITOR: &str = "system_auditor";

#[test]
fn the_auditor_tells_who_earned_what() {
    let mut sim = shop();
    act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"counter","args":{"text":"one"}}"#);
    act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"counter","args":{"text":"two"}}"#);
    deposit(&mut sim, "alice", "essay", 30);
    call_ok(&mut sim, "carol", ESCROW, "buy", json!({"artifact": "essay", "price": 30}));
    offer(&mut sim, "carol", "loan", "bob", 20, 2, 100.0);
    call_ok(&mut sim, "bob", DEBT, "accept", json!({"id": "loan"}));
    sim.run_steps(10);

    let report = call_ok(&mut sim, "carol", AUDITOR, "report", json!({}));
    let text = report["text"].as_str().unwrap();
    assert!(report["events"].as_u64().unwrap() > 0, "{report}");
    assert!(text.contains("Who earned what"), "{text}");
    // alice earned 14 selling calls and 30 selling the essay.
    assert!(text.contains("alice took in 44: 30 selling artifacts, 14 selling calls"), "{text}");
    assert!(text.contains("counter (made by alice): 2 calls by 1 others, earning 14"), "{text}");
    assert!(text.contains("carol bought essay from alice for 30"), "{text}");
    assert!(text.contains("carol lent bob 20"), "{text}");
    // Only events at or after since_secs are told: nothing happened after 5 s but the
    // samples of the indicators.
    let later = call_ok(&mut sim, "carol", AUDITOR, "report", json!({"since_secs": 5}));
    assert!(!later["text"].as_str().unwrap().contains("alice took in"), "{later}");

    let kpis = call_ok(&mut sim, "carol", AUDITOR, "kpis", json!({}));
    let now = &kpis["now"];
    for field in ["gini", "velocity", "capital_density", "capital_depth", "reuse", "frozen_share", "scrip_supply"] {
        assert!(now.get(field).is_some(), "{field} missing from {now}");
    }
    assert_eq!(now["scrip_supply"], 250);
    assert!(now["gini"].as_f64().unwrap() > 0.0);
    assert!(now["velocity"].as_f64().unwrap() > 0.0);
    assert_eq!(now["reuse"], 1.0, "the one tool was used by someone other than its creator");
    // One sample so far (every 10 steps by default), the same as in the series.
    let recent = kpis["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["step"], 10);
    let series = sim.world().resource::<Kpis>().series().to_vec();
    assert_eq!(recent[0], serde_json::to_value(&series[0]).unwrap());
}

#[test]
fn the_auditor_does_not_count_a_creators_own_calls_as_reuse() {
    // counter comes from the scene, so no ARTIFACT_WRITTEN event names its maker; the
    // story must still know that alice made it.
    let mut sim = shop();
    act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"counter","args":{"text":"mine"}}"#);
    act_ok(&mut sim, "alice", r#"{"action":"invoke","id":"counter","args":{"text":"mine too"}}"#);
    act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"counter","args":{"text":"yours"}}"#);
    let text = call_ok(&mut sim, "carol", AUDITOR, "report", json!({}))["text"].as_str().unwrap().to_owned();
    assert!(text.contains("counter (made by alice): 1 calls by 1 others, earning 7"), "{text}");
    // The health indicators, which count from the world, agree: one call by others.
    let counts = sim.world().resource::<agent_ecology::kernel::InvocationStats>().counts("counter");
    assert_eq!((counts.success, counts.by_others), (3, 1));
}

#[test]
fn kpis_are_sampled_on_schedule_and_measure_inequality_and_velocity() {
    let mut sim = sim(r#"Scene(
        config: (kpis: (every_steps: 5, window_secs: 60)),
        principals: [(id: "a"), (id: "b"), (id: "c"), (id: "d")],
    )"#);
    sim.run_steps(5);
    let first = sim.world().resource::<Kpis>().latest().cloned().unwrap();
    assert_eq!(first.step, 5);
    assert_eq!(first.gini, 0.0, "equal balances are perfectly equal");
    assert_eq!(first.velocity, 0.0, "nothing moved");
    assert_eq!(first.scrip_supply, 400);

    // 80 of the 400 in existence change hands: 40, 160, 80, 120.
    act_ok(&mut sim, "a", r#"{"action":"transfer","to":"b","amount":60}"#);
    act_ok(&mut sim, "c", r#"{"action":"transfer","to":"d","amount":20}"#);
    sim.run_steps(15);
    let series = sim.world().resource::<Kpis>().series().to_vec();
    assert_eq!(series.iter().map(|s| s.step).collect::<Vec<_>>(), [5, 10, 15, 20]);
    let last = series.last().unwrap();
    // Σ (2i − n − 1)·x / (n·Σx) over 40, 80, 120, 160 = 400 / 1600.
    assert!((last.gini - 0.25).abs() < 1e-12, "{last:?}");
    assert!((last.velocity - 0.2).abs() < 1e-12, "{last:?}");
    // Every sample is on the event log too.
    let sampled = events(&sim, "KPI_SAMPLE");
    assert_eq!(sampled.len(), 4);
    for (event, sample) in sampled.iter().zip(&series) {
        assert_eq!(event["payload"]["kpis"], serde_json::to_value(sample).unwrap());
    }
    // Velocity is over the last window: once the transfers are more than 60 s old, it
    // is back to nothing, while the inequality stays.
    sim.run_steps(50);
    let last = sim.world().resource::<Kpis>().latest().cloned().unwrap();
    assert_eq!(last.step, 70);
    assert_eq!(last.velocity, 0.0, "{last:?}");
    assert!((last.gini - 0.25).abs() < 1e-12);
    assert_eq!(sim.world().resource::<Kpis>().series().len(), 14);
}

// ---------------------------------------------------------------------------------
// Property: whatever is traded, lent and bid, scrip only comes from the mint
// ---------------------------------------------------------------------------------

const TRADERS: [&str; 4] = ["p0", "p1", "p2", "p3"];

/// Who makes a move: `None` is the party the move is meant for (the owner bids and
/// lists, the debtor accepts and repays, the holder collects, someone other than the
/// seller buys), so that most moves can succeed; `Some` is anyone at all, which
/// mostly exercises the refusals.
type Who = Option<usize>;

#[derive(Debug, Clone)]
enum Move {
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    Bid {
        who: Who,
        doc: usize,
        amount: u64,
    },
    CancelBid {
        who: Who,
        doc: usize,
    },
    /// Lists a document (0–3) or a debt note (4 and up).
    List {
        who: Who,
        item: usize,
        price: u64,
    },
    /// Names the asking price when `exact`, else `price`.
    Buy {
        who: Who,
        item: usize,
        exact: bool,
        price: u64,
    },
    Unlist {
        who: Who,
        item: usize,
    },
    Offer {
        from: usize,
        to: usize,
        principal: u64,
        interest: u64,
        term: u64,
    },
    Accept {
        who: Who,
        note: usize,
    },
    Repay {
        who: Who,
        note: usize,
        amount: Option<u64>,
    },
    Collect {
        who: Who,
        note: usize,
    },
    Steps(u64),
}

fn a_move() -> impl Strategy<Value = Move> {
    let who = || prop::option::weighted(0.2, 0..4usize);
    let anyone = 0..4usize;
    let item = 0..8usize;
    let note = 0..8usize;
    prop_oneof![
        3 => (anyone.clone(), anyone.clone(), 0..150u64).prop_map(|(from, to, amount)| Move::Transfer { from, to, amount }),
        3 => (who(), 0..4usize, 0..60u64).prop_map(|(who, doc, amount)| Move::Bid { who, doc, amount }),
        1 => (who(), 0..4usize).prop_map(|(who, doc)| Move::CancelBid { who, doc }),
        2 => (who(), item.clone(), 0..80u64).prop_map(|(who, item, price)| Move::List { who, item, price }),
        2 => (who(), item.clone(), prop::bool::weighted(0.7), 0..80u64)
            .prop_map(|(who, item, exact, price)| Move::Buy { who, item, exact, price }),
        1 => (who(), item).prop_map(|(who, item)| Move::Unlist { who, item }),
        2 => (anyone.clone(), anyone, 1..120u64, 0..20u64, 1..12u64)
            .prop_map(|(from, to, principal, interest, term)| Move::Offer { from, to, principal, interest, term }),
        2 => (who(), note.clone()).prop_map(|(who, note)| Move::Accept { who, note }),
        2 => (who(), note.clone(), prop::option::of(1..60u64))
            .prop_map(|(who, note, amount)| Move::Repay { who, note, amount }),
        1 => (who(), note).prop_map(|(who, note)| Move::Collect { who, note }),
        2 => (1..6u64).prop_map(Move::Steps),
    ]
}

/// An artifact's public metadata (what `query` shows anyone), if it exists.
fn public(sim: &Simulation, id: &str) -> Value {
    let world = sim.world();
    agent_ecology::world::ids::lookup(world, id)
        .map_or(Value::Null, |entity| agent_ecology::kernel::query::metadata(world, entity))
}

/// The trader named by `field` of `id`'s public metadata (p0 if it is not a trader).
fn party(sim: &Simulation, id: &str, field: &[&str]) -> usize {
    let mut value = public(sim, id);
    for key in field {
        value = value[*key].clone();
    }
    TRADERS.iter().position(|t| value == *t).unwrap_or(0)
}

/// The action a move stands for, in its JSON form, as an agent would send it, and who
/// sends it.
fn action_of(sim: &Simulation, m: &Move, notes: &[String]) -> Option<(usize, Value)> {
    // Indices wrap around what exists, so that moves mostly name real notes and, for
    // buying and cancelling, real listings.
    let doc = |i: usize| format!("doc{i}");
    let note = |i: usize| {
        if notes.is_empty() { "no_such_note".to_owned() } else { notes[i % notes.len()].clone() }
    };
    let item = |i: usize| if i < 4 { doc(i) } else { note(i - 4) };
    let escrow = sim.world().resource::<agent_ecology::economy::escrow::Escrow>();
    let listed: Vec<String> = escrow.listings().map(|(id, _)| id.to_string()).collect();
    let for_sale = |i: usize| if listed.is_empty() { item(i) } else { listed[i % listed.len()].clone() };
    let or = |who: &Who, id: &str, field: &[&str]| who.unwrap_or_else(|| party(sim, id, field));
    let invoke = |service: &str, method: &str, args: Value| json!({"action": "invoke", "id": service, "method": method, "args": args});
    Some(match m {
        Move::Transfer { from, to, amount } => {
            (*from, json!({"action": "transfer", "to": TRADERS[*to], "amount": amount}))
        }
        Move::Bid { who, doc: d, amount } => {
            (or(who, &doc(*d), &["owner"]), json!({"action": "bid", "artifact": doc(*d), "amount": amount}))
        }
        Move::CancelBid { who, doc: d } => {
            (or(who, &doc(*d), &["owner"]), json!({"action": "bid", "artifact": doc(*d), "cancel": true}))
        }
        Move::List { who, item: i, price } => {
            (or(who, &item(*i), &["owner"]), invoke(ESCROW, "deposit", json!({"artifact": item(*i), "price": price})))
        }
        Move::Buy { who, item: i, exact, price } => {
            let target = for_sale(*i);
            let asking = public(sim, &target)["listing"]["price"].as_u64();
            let price = if *exact { asking.unwrap_or(*price) } else { *price };
            let buyer = who.unwrap_or_else(|| (party(sim, &target, &["listing", "seller"]) + 1) % TRADERS.len());
            (buyer, invoke(ESCROW, "buy", json!({"artifact": target, "price": price})))
        }
        Move::Unlist { who, item: i } => {
            let target = for_sale(*i);
            (or(who, &target, &["listing", "seller"]), invoke(ESCROW, "cancel", json!({"artifact": target})))
        }
        Move::Offer { from, to, principal, interest, term } => {
            let args = json!({"debtor": TRADERS[*to], "principal": principal, "interest": interest, "term_secs": term});
            (*from, invoke(DEBT, "offer", args))
        }
        Move::Accept { who, note: n } => {
            (or(who, &note(*n), &["debt", "debtor"]), invoke(DEBT, "accept", json!({"id": note(*n)})))
        }
        Move::Repay { who, note: n, amount } => {
            let args = match amount {
                Some(amount) => json!({"id": note(*n), "amount": amount}),
                None => json!({"id": note(*n)}),
            };
            (or(who, &note(*n), &["debt", "debtor"]), invoke(DEBT, "repay", args))
        }
        Move::Collect { who, note: n } => {
            (or(who, &note(*n), &["debt", "holder"]), invoke(DEBT, "collect", json!({"id": note(*n)})))
        }
        Move::Steps(_) => return None,
    })
}

/// The world's scrip is what the scene gave plus what the mint made, no balance has
/// wrapped around, and the ledger audits.
fn conserved(sim: &Simulation, initial: u64, after: &Move) -> Result<(), TestCaseError> {
    let world = sim.world();
    let supply = world.resource::<Supply>();
    prop_assert_eq!(supply.initial(), initial);
    prop_assert_eq!(supply.granted(), 0);
    let total = state::scrip_supply(world);
    prop_assert_eq!(total, initial + supply.minted(), "after {:?}", after);
    for who in TRADERS {
        let held = state::balance(world, who).unwrap();
        prop_assert!(held <= total, "{} holds {} of {} after {:?}", who, held, total, after);
    }
    if let Err(e) = audit(world) {
        prop_assert!(false, "after {:?}: {}", after, e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn trade_credit_and_the_mint_conserve_scrip(moves in prop::collection::vec(a_move(), 1..60)) {
        // The mint resolves every 4 s, so a run of moves crosses several auctions.
        let mut sim = sim(r#"Scene(
            config: (mint: (first_at_secs: 4, period_secs: 4)),
            principals: [(id: "p0"), (id: "p1"), (id: "p2"), (id: "p3")],
            artifacts: [
                (id: "doc0", owner: "p0", content: "A field guide to the mushrooms of the northern forest."),
                (id: "doc1", owner: "p1", content: "Notes on pricing a scarce resource by auction and by queue."),
                (id: "doc2", owner: "p2", content: "A recipe for bread that keeps for a week without going stale."),
                (id: "doc3", owner: "p3", content: "How to splice rope: the short splice, the eye and the back."),
            ],
        )"#);
        let initial = 400;
        let mut notes: Vec<String> = Vec::new();
        for m in &moves {
            match action_of(&sim, m, &notes) {
                Some((actor, action)) => {
                    let result = act(&mut sim, TRADERS[actor], &action.to_string());
                    // A note's id comes back from the offer: remember it to trade it.
                    if let (Move::Offer { .. }, true) = (m, result.success) {
                        notes.push(result.result.unwrap()["id"].as_str().unwrap().to_owned());
                    }
                }
                None => {
                    let Move::Steps(n) = m else { unreachable!() };
                    sim.run_steps(*n);
                }
            }
            conserved(&sim, initial, m)?;
        }
        // And through a few more auctions and due dates, with whatever is still bid.
        sim.run_steps(12);
        conserved(&sim, initial, &Move::Steps(12))?;
        prop_assert!(!events(&sim, "MINT_RESOLVED").is_empty());
    }
}
