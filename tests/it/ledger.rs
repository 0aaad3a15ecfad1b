//! The ledger rules of SPEC §4, one test each.

use agent_ecology::{
    kernel::{ErrorCategory, ErrorCode, EventLog, Kernel, state},
    run::audit,
    scene::{InterventionAct, raw::SystemAct, timeline},
};

use crate::{act_fails, act_ok, scrip, sim, three};

#[test]
fn transfer_moves_scrip() {
    let mut sim = three();
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("bob", 30).unwrap();
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (70, 80));
    let log = sim.world().resource::<EventLog>();
    let last = log.recent().last().unwrap();
    assert_eq!(last.kind.type_name(), "SCRIP_TRANSFER");
    assert_eq!(last.actor, "alice");
}

#[test]
fn overdraft_fails_and_nothing_moves() {
    let mut sim = sim(r#"Scene(principals: [(id: "alice", scrip: 20), (id: "bob", scrip: 50)])"#);
    let before = sim.checksum();
    let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("bob", 50).unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientFunds);
    assert_eq!(err.category, ErrorCategory::Resource);
    assert!(err.retriable);
    assert_eq!(err.details["needed"], 50);
    assert_eq!(err.details["available"], 20);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (20, 50));
    assert_eq!(sim.checksum(), before, "a failed transfer must change nothing, not even the log");
}

#[test]
fn zero_and_negative_amounts_are_rejected() {
    let mut sim = three();
    for amount in [0, -5] {
        let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("bob", amount).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgs, "amount {amount}");
        assert!(!err.retriable);
        let err =
            Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_llm_budget("bob", amount).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgs);
    }
    act_fails(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":-1}"#, ErrorCode::InvalidArgs);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (100, 50));
}

#[test]
fn unknown_recipient_is_not_found() {
    let mut sim = three();
    let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("nobody", 10).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(err.details["id"], "nobody");
    // An artifact that is not a principal cannot receive scrip either.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"notes","content":"x"}"#);
    let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("notes", 10).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(scrip(&sim, "alice"), 100);
}

#[test]
fn self_transfer_changes_nothing() {
    let mut sim = three();
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("alice", 40).unwrap();
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_resource("alice", "disk", 40).unwrap();
    assert_eq!(scrip(&sim, "alice"), 100);
    assert_eq!(state::get_resource(sim.world(), "alice", "disk").unwrap(), 100_000);
    // ...but it still cannot move more than the sender holds.
    let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_scrip("alice", 101).unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientFunds);
}

#[test]
fn nobody_moves_someone_elses_holdings() {
    let mut sim = three();
    // There is no way to say "from": the caller is who the kernel acts as.
    let err = agent_ecology::kernel::Action::from_json_str(
        r#"{"action":"transfer","from":"bob","to":"alice","amount":10,"resource":"llm_budget"}"#,
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgs);
    assert!(err.message.contains("unknown field `from`"), "{}", err.message);
    // Acting as alice moves alice's budget, never bob's.
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_llm_budget("carol", 500_000).unwrap();
    assert_eq!(state::get_llm_budget(sim.world(), "alice").unwrap(), 1_500_000);
    assert_eq!(state::get_llm_budget(sim.world(), "bob").unwrap(), 2_000_000);
    assert_eq!(state::get_llm_budget(sim.world(), "carol").unwrap(), 2_500_000);
    // Artifacts one does not own cannot be given away.
    act_ok(&mut sim, "bob", r#"{"action":"write","id":"bobs","content":"mine"}"#);
    act_fails(&mut sim, "alice", r#"{"action":"transfer","to":"alice","artifact":"bobs"}"#, ErrorCode::NotOwner);
}

#[test]
fn only_principals_act() {
    let mut sim = three();
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"notes","content":"x"}"#);
    assert_eq!(Kernel::as_principal(sim.world_mut(), "notes").err().unwrap().code, ErrorCode::NotFound);
    assert_eq!(Kernel::as_principal(sim.world_mut(), "ghost").err().unwrap().code, ErrorCode::NotFound);
}

#[test]
fn every_stock_resource_is_transferable() {
    let mut sim = sim(r#"Scene(
            config: (resources: {"gpu_hours": 3}, rates: ["api_calls"], defaults: (quota: {"cpu": 1000, "api_calls": 10})),
            principals: [(id: "alice"), (id: "bob", disk_bytes: 10)],
        )"#);
    let mut k = Kernel::as_principal(sim.world_mut(), "alice").unwrap();
    k.transfer_resource("bob", "disk", 1_000).unwrap();
    k.transfer_resource("bob", "gpu_hours", 2).unwrap();
    k.transfer_resource("bob", "llm_budget", 1).unwrap();
    k.transfer_resource("bob", "scrip", 1).unwrap();
    k.transfer_resource("bob", "cpu", 400).unwrap();
    assert_eq!(k.transfer_resource("bob", "gpu_hours", 2).unwrap_err().code, ErrorCode::InsufficientResource);
    assert_eq!(k.transfer_resource("bob", "cpu", 601).unwrap_err().code, ErrorCode::InsufficientResource);
    assert_eq!(k.transfer_resource("bob", "gold", 1).unwrap_err().code, ErrorCode::InvalidArgs);
    let w = sim.world();
    assert_eq!(state::get_resource(w, "bob", "disk").unwrap(), 1_010);
    assert_eq!(state::get_resource(w, "alice", "disk").unwrap(), 99_000);
    assert_eq!(state::get_resource(w, "bob", "gpu_hours").unwrap(), 5);
    assert_eq!(state::get_resource(w, "alice", "gpu_hours").unwrap(), 1);
    assert_eq!(state::get_quota(w, "alice", "cpu").unwrap(), Some(600));
    assert_eq!(state::get_quota(w, "bob", "cpu").unwrap(), Some(1_400));
    assert_eq!(state::get_quota(w, "bob", "llm_tokens").unwrap(), None, "unset means unlimited");
    assert_eq!(state::balance(w, "bob").unwrap(), 101);
    audit(w).unwrap();
}

#[test]
fn free_disk_only_can_be_traded() {
    let mut sim = sim(r#"Scene(principals: [(id: "alice", disk_bytes: 100), (id: "bob")])"#);
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"a","content":"0123456789012345678901234567890123456789"}"#);
    let err = Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_resource("bob", "disk", 61).unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientResource);
    assert_eq!(err.details["available"], 60);
    Kernel::as_principal(sim.world_mut(), "alice").unwrap().transfer_resource("bob", "disk", 60).unwrap();
    assert_eq!(state::get_resource(sim.world(), "alice", "disk").unwrap(), 0);
    audit(sim.world()).unwrap();
}

#[test]
fn spawned_principal_starts_with_nothing_and_parent_funds_it() {
    let mut sim = three();
    let mut k = Kernel::as_principal(sim.world_mut(), "alice").unwrap();
    k.spawn_principal("kid").unwrap();
    assert_eq!(k.spawn_principal("kid").unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(k.spawn_principal("bad id").unwrap_err().code, ErrorCode::InvalidArgs);
    assert_eq!(k.spawn_principal("alice").unwrap_err().code, ErrorCode::AlreadyExists);
    let w = sim.world();
    assert_eq!(state::balance(w, "kid").unwrap(), 0);
    assert_eq!(state::get_llm_budget(w, "kid").unwrap(), 0);
    assert_eq!(state::get_resource(w, "kid", "disk").unwrap(), 0);
    assert_eq!(state::get_quota(w, "kid", "cpu").unwrap(), Some(0), "a limited rate starts at zero");

    let r = act_ok(
        &mut sim,
        "alice",
        r#"{"action":"spawn","id":"kid2","scrip":30,"resources":{"llm_budget":1000,"disk":500}}"#,
    );
    assert_eq!(r.result.unwrap()["id"], "kid2");
    assert_eq!(scrip(&sim, "kid2"), 30);
    assert_eq!(scrip(&sim, "alice"), 70);
    assert_eq!(state::get_resource(sim.world(), "kid2", "disk").unwrap(), 500);
    // The kid can act at once.
    act_ok(&mut sim, "kid2", r#"{"action":"transfer","to":"bob","amount":5}"#);

    // Funding is all or nothing: nothing is created when the parent cannot pay.
    act_fails(
        &mut sim,
        "bob",
        r#"{"action":"spawn","id":"kid3","scrip":20,"resources":{"llm_budget":9000000}}"#,
        ErrorCode::InsufficientResource,
    );
    assert!(state::balance(sim.world(), "kid3").is_err());
    assert_eq!(scrip(&sim, "bob"), 55);
    audit(sim.world()).unwrap();
}

#[test]
fn ownership_moves_with_its_disk() {
    let mut sim = sim(r#"Scene(principals: [(id: "alice"), (id: "bob", disk_bytes: 3)])"#);
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"big","content":"abcdef"}"#);
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"small","content":"ab"}"#);
    let err = act_fails(
        &mut sim,
        "alice",
        r#"{"action":"transfer","to":"bob","artifact":"big"}"#,
        ErrorCode::InsufficientResource,
    );
    assert_eq!(err.error.unwrap().details["principal"], "bob");
    act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"bob","artifact":"small"}"#);
    let w = sim.world();
    assert_eq!(state::get_resource(w, "bob", "disk").unwrap(), 1);
    assert_eq!(state::owned_artifacts(w, &"bob".parse_id()), vec!["small".parse_id()]);
    let meta = agent_ecology::kernel::query::run(
        sim.world_mut(),
        &agent_ecology::kernel::query::QuerySpec { id: Some("small".into()), ..Default::default() },
        None,
    )
    .unwrap()
    .0;
    assert_eq!(meta["artifact"]["owner"], "bob");
    assert_eq!(meta["artifact"]["created_by"], "alice", "the creator outlives the sale");
    // Now bob owns it: alice may no longer give it away, bob may.
    act_fails(&mut sim, "alice", r#"{"action":"transfer","to":"alice","artifact":"small"}"#, ErrorCode::NotOwner);
    act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"alice","artifact":"small"}"#);
    let meta = agent_ecology::kernel::query::run(
        sim.world_mut(),
        &agent_ecology::kernel::query::QuerySpec { id: Some("small".into()), ..Default::default() },
        None,
    )
    .unwrap()
    .0;
    assert_eq!(meta["artifact"]["created_by"], "alice");
    audit(sim.world()).unwrap();
}

#[test]
fn frozen_principals_cannot_act_but_can_be_rescued() {
    let mut sim = three();
    let world = sim.world_mut();
    assert!(timeline::apply(
        world,
        InterventionAct::System(SystemAct::Freeze { principal: "bob".into(), reason: None })
    ));
    let r = act_fails(&mut sim, "bob", r#"{"action":"transfer","to":"alice","amount":1}"#, ErrorCode::Frozen);
    assert!(r.error.unwrap().retriable);
    // Others can still give to it.
    act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":10}"#);
    assert!(timeline::apply(sim.world_mut(), InterventionAct::System(SystemAct::Unfreeze { principal: "bob".into() })));
    act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"alice","amount":1}"#);
    let by_type = sim.world().resource::<EventLog>().by_type();
    assert_eq!(by_type["AGENT_FROZEN"], 1);
    assert_eq!(by_type["AGENT_UNFROZEN"], 1);
    let frozen = sim.world().resource::<EventLog>().recent().find(|e| e.kind.type_name() == "AGENT_FROZEN").unwrap();
    let payload = serde_json::to_value(frozen).unwrap()["payload"].clone();
    assert_eq!(payload["principal"], "bob");
    assert_eq!(payload["assets"]["scrip"], 50);
    assert_eq!(payload["assets"]["resources"]["llm_budget"], 2_000_000);
}

#[test]
fn grants_are_booked_as_supply() {
    let mut sim = three();
    assert!(timeline::apply(
        sim.world_mut(),
        InterventionAct::System(SystemAct::GrantScrip {
            to: "bob".into(),
            amount: agent_ecology::kernel::actions::Amount(25)
        })
    ));
    assert_eq!(scrip(&sim, "bob"), 75);
    assert_eq!(sim.report().granted_total, 25);
    assert_eq!(sim.report().scrip_supply, 275);
    audit(sim.world()).unwrap();
    // A failing system act is logged, and changes nothing.
    assert!(!timeline::apply(
        sim.world_mut(),
        InterventionAct::System(SystemAct::GrantScrip {
            to: "ghost".into(),
            amount: agent_ecology::kernel::actions::Amount(5)
        })
    ));
    assert_eq!(sim.world().resource::<EventLog>().by_type()["INTERVENTION_FAILED"], 1);
    // The world itself cannot be given anything.
    act_fails(&mut sim, "alice", r#"{"action":"transfer","to":"kernel","amount":1}"#, ErrorCode::InvalidArgs);
}

#[test]
fn error_shape_matches_the_spec() {
    let mut sim = three();
    let result =
        act_fails(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":1000}"#, ErrorCode::InsufficientFunds);
    let v = serde_json::to_value(&result).unwrap();
    assert_eq!(v["success"], false);
    for key in ["code", "category", "message", "details", "retriable", "retry_after"] {
        assert!(v["error"].get(key).is_some(), "error lacks {key}: {v}");
    }
    assert_eq!(v["charged_to"], "alice");
    for key in ["llm_tokens", "llm_cost_micro_usd", "cpu_us", "memory_bytes", "disk_bytes"] {
        assert_eq!(v["resources_consumed"][key], 0, "{key}");
    }
    let log = sim.world().resource::<EventLog>();
    let failed = log.recent().last().unwrap();
    assert_eq!(failed.kind.type_name(), "ACTION_FAILED");
}

trait ParseId {
    fn parse_id(&self) -> agent_ecology::world::ids::ArtifactId;
}

impl ParseId for str {
    fn parse_id(&self) -> agent_ecology::world::ids::ArtifactId {
        agent_ecology::world::ids::ArtifactId::parse(self).unwrap()
    }
}
