//! Writing, editing, deleting and reading artifacts; disk accounting; contracts.

use agent_ecology::{
    kernel::{ErrorCode, EventLog, state},
    run::audit,
};

use crate::{act_fails, act_ok, scrip, sim, three};

fn disk_free(sim: &agent_ecology::run::Simulation, id: &str) -> u64 {
    state::get_resource(sim.world(), id, "disk").unwrap()
}

#[test]
fn write_charges_disk_on_growth_and_frees_on_shrink_and_delete() {
    let mut sim = sim(r#"Scene(principals: [(id: "alice", disk_bytes: 100)])"#);
    let r = act_ok(&mut sim, "alice", r#"{"action":"write","id":"doc","content":"0123456789"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, 10);
    assert_eq!(r.charged_to.as_ref().unwrap(), "alice");
    assert_eq!(r.result.as_ref().unwrap()["created"], true);
    assert_eq!(disk_free(&sim, "alice"), 90);
    // UTF-8 bytes, not characters.
    let r = act_ok(&mut sim, "alice", r#"{"action":"write","id":"doc","content":"ééé"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, -4);
    assert_eq!(disk_free(&sim, "alice"), 94);
    // Growth beyond the allocation fails and changes nothing.
    // (doc holds 6 bytes, 94 are free: replacing it may take it to 100, not 101)
    let big = "x".repeat(101);
    act_fails(
        &mut sim,
        "alice",
        &format!(r#"{{"action":"write","id":"doc","content":"{big}"}}"#),
        ErrorCode::InsufficientResource,
    );
    act_fails(
        &mut sim,
        "alice",
        &format!(r#"{{"action":"write","id":"other","content":"{}"}}"#, "x".repeat(95)),
        ErrorCode::InsufficientResource,
    );
    assert_eq!(disk_free(&sim, "alice"), 94);
    let r = act_ok(&mut sim, "alice", r#"{"action":"delete","id":"doc"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, -6);
    assert_eq!(disk_free(&sim, "alice"), 100);
    // Filling an empty artifact is a replacement, not a creation.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"empty"}"#);
    let r = act_ok(&mut sim, "alice", r#"{"action":"write","id":"empty","content":"abc"}"#);
    assert_eq!(r.result.unwrap()["created"], false);
    audit(sim.world()).unwrap();
}

#[test]
fn code_counts_against_disk_and_needs_an_interface() {
    let mut sim = three();
    act_fails(&mut sim, "alice", r#"{"action":"write","id":"tool","code":"function run(){}"}"#, ErrorCode::InvalidArgs);
    let r = act_ok(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"tool","content":"doc","code":"function run(){}",
            "interface":{"description":"t","tools":[{"name":"run","inputSchema":{"type":"object"}}]}}"#,
    );
    // The interface is stored too, as compact JSON.
    let interface: agent_ecology::world::components::Interface =
        serde_json::from_str(r#"{"description":"t","tools":[{"name":"run","inputSchema":{"type":"object"}}]}"#)
            .unwrap();
    let interface_bytes = serde_json::to_string(&interface).unwrap().len() as i64;
    assert_eq!(r.resources_consumed.disk_bytes, 3 + 16 + interface_bytes);
    // A bad interface names the problem.
    let r = act_fails(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"tool2","code":"x","interface":{"tools":[]}}"#,
        ErrorCode::InvalidArgs,
    );
    assert!(r.error.unwrap().message.contains("at least one tool"));
    // Replacing only the content keeps the code.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"tool","content":"documentation"}"#);
    let read = act_ok(&mut sim, "alice", r#"{"action":"read","id":"tool"}"#).result.unwrap();
    assert_eq!(read["code"], "function run(){}");
    assert_eq!(read["kind"], "executable");
    audit(sim.world()).unwrap();
}

#[test]
fn descriptions_and_metadata_are_not_free_storage() {
    let mut sim = sim(r#"Scene(principals: [(id: "alice", disk_bytes: 1000)])"#);
    let description = "d".repeat(100);
    let value = "v".repeat(50);
    let r = act_ok(
        &mut sim,
        "alice",
        &format!(r#"{{"action":"write","id":"note","description":"{description}","metadata":{{"k":"{value}"}}}}"#),
    );
    // 100 bytes of description, and {"k":"vvv…"} as compact JSON.
    assert_eq!(r.resources_consumed.disk_bytes, 100 + 58);
    assert_eq!(disk_free(&sim, "alice"), 1000 - 158);
    // More than the allocation is refused, whichever part holds it.
    act_fails(
        &mut sim,
        "alice",
        &format!(r#"{{"action":"write","id":"note","description":"{}"}}"#, "d".repeat(1000)),
        ErrorCode::InsufficientResource,
    );
    act_fails(
        &mut sim,
        "alice",
        &format!(r#"{{"action":"write","id":"other","metadata":{{"k":"{}"}}}}"#, "v".repeat(900)),
        ErrorCode::InsufficientResource,
    );
    assert_eq!(disk_free(&sim, "alice"), 1000 - 158);
    // Replacing the description alone keeps the metadata and frees the difference.
    let r = act_ok(&mut sim, "alice", r#"{"action":"write","id":"note","description":"short"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, 5 - 100);
    let r = act_ok(&mut sim, "alice", r#"{"action":"delete","id":"note"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, -(5 + 58));
    assert_eq!(disk_free(&sim, "alice"), 1000);
    audit(sim.world()).unwrap();
}

#[test]
fn edit_replaces_exactly_one_occurrence() {
    let mut sim = three();
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"doc","content":"the cat sat on the mat"}"#);
    let r =
        act_fails(&mut sim, "alice", r#"{"action":"edit","id":"doc","old":"the","new":"a"}"#, ErrorCode::InvalidArgs);
    assert_eq!(r.error.unwrap().details["occurrences"], 2);
    act_fails(&mut sim, "alice", r#"{"action":"edit","id":"doc","old":"dog","new":"a"}"#, ErrorCode::InvalidArgs);
    act_fails(&mut sim, "alice", r#"{"action":"edit","id":"doc","old":"","new":"a"}"#, ErrorCode::InvalidArgs);
    let r = act_ok(&mut sim, "alice", r#"{"action":"edit","id":"doc","old":"cat","new":"tiger"}"#);
    assert_eq!(r.resources_consumed.disk_bytes, 2);
    let read = act_ok(&mut sim, "alice", r#"{"action":"read","id":"doc"}"#).result.unwrap();
    assert_eq!(read["content"], "the tiger sat on the mat");
    // Overlapping matches are ambiguous too.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"aaa","content":"aaa"}"#);
    act_fails(&mut sim, "alice", r#"{"action":"edit","id":"aaa","old":"aa","new":"b"}"#, ErrorCode::InvalidArgs);
    audit(sim.world()).unwrap();
}

#[test]
fn deleted_artifacts_read_as_deleted_and_ids_are_never_reused() {
    let mut sim = three();
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"doc","content":"hello"}"#);
    act_ok(&mut sim, "alice", r#"{"action":"delete","id":"doc"}"#);
    let r = act_fails(&mut sim, "bob", r#"{"action":"read","id":"doc"}"#, ErrorCode::Deleted);
    assert!(!r.error.unwrap().retriable);
    act_fails(&mut sim, "alice", r#"{"action":"write","id":"doc","content":"again"}"#, ErrorCode::Deleted);
    act_fails(&mut sim, "alice", r#"{"action":"edit","id":"doc","old":"h","new":"j"}"#, ErrorCode::Deleted);
    act_fails(&mut sim, "alice", r#"{"action":"delete","id":"doc"}"#, ErrorCode::Deleted);
    act_fails(&mut sim, "alice", r#"{"action":"spawn","id":"doc"}"#, ErrorCode::AlreadyExists);
    act_fails(&mut sim, "bob", r#"{"action":"read","id":"never"}"#, ErrorCode::NotFound);
    // Principals are not deleted; they are frozen or sold.
    act_fails(&mut sim, "alice", r#"{"action":"delete","id":"alice"}"#, ErrorCode::InvalidArgs);
}

#[test]
fn contracts_decide_who_may_do_what() {
    let mut sim = three();
    for (id, contract) in [("free", "freeware"), ("open", "public"), ("secret", "private"), ("own", "self_owned")] {
        act_ok(
            &mut sim,
            "alice",
            &format!(r#"{{"action":"write","id":"{id}","content":"v1","contract":"{contract}"}}"#),
        );
    }
    // freeware: anyone reads, only the owner writes.
    act_ok(&mut sim, "bob", r#"{"action":"read","id":"free"}"#);
    act_fails(&mut sim, "bob", r#"{"action":"write","id":"free","content":"mine"}"#, ErrorCode::AccessDenied);
    act_fails(&mut sim, "bob", r#"{"action":"edit","id":"free","old":"v1","new":"v2"}"#, ErrorCode::AccessDenied);
    act_fails(&mut sim, "bob", r#"{"action":"delete","id":"free"}"#, ErrorCode::AccessDenied);
    // public: anyone does anything, and the owner bears the disk.
    let r = act_ok(&mut sim, "bob", r#"{"action":"write","id":"open","content":"bob was here"}"#);
    assert_eq!(r.charged_to.unwrap(), "alice");
    act_ok(&mut sim, "carol", r#"{"action":"delete","id":"open"}"#);
    // private: only the owner.
    let r = act_fails(&mut sim, "bob", r#"{"action":"read","id":"secret"}"#, ErrorCode::AccessDenied);
    let error = r.error.unwrap();
    assert_eq!(error.details["contract"], "private");
    assert!(!error.retriable);
    act_ok(&mut sim, "alice", r#"{"action":"read","id":"secret"}"#);
    // self_owned: the owner (and the artifact itself) only.
    act_fails(&mut sim, "carol", r#"{"action":"read","id":"own"}"#, ErrorCode::AccessDenied);
    act_ok(&mut sim, "alice", r#"{"action":"read","id":"own"}"#);
    // Only the owner changes a contract or a price, even where others may write.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"open2","content":"x","contract":"public"}"#);
    act_fails(&mut sim, "bob", r#"{"action":"write","id":"open2","contract":"private"}"#, ErrorCode::NotOwner);
    act_fails(&mut sim, "bob", r#"{"action":"write","id":"open2","pricing":{"read_price":9}}"#, ErrorCode::NotOwner);
    act_fails(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"x","content":"x","contract":"made_up"}"#,
        ErrorCode::InvalidArgs,
    );
    audit(sim.world()).unwrap();
}

#[test]
fn a_principals_own_artifact_is_self_owned_by_default_contract() {
    // Principals own themselves: bob may not rewrite alice's artifact (freeware).
    let mut sim = three();
    act_fails(&mut sim, "bob", r#"{"action":"write","id":"alice","content":"pwned"}"#, ErrorCode::AccessDenied);
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"alice","content":"my memory"}"#);
    audit(sim.world()).unwrap();
}

#[test]
fn reading_pays_the_read_price_to_the_owner() {
    let mut sim = three();
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"report","content":"insight","pricing":{"read_price":7}}"#);
    act_ok(&mut sim, "bob", r#"{"action":"read","id":"report"}"#);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob")), (107, 43));
    // The owner reads for free.
    act_ok(&mut sim, "alice", r#"{"action":"read","id":"report"}"#);
    assert_eq!(scrip(&sim, "alice"), 107);
    // A reader who cannot pay gets nothing.
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"dear","content":"gold","pricing":{"read_price":1000}}"#);
    let r = act_fails(&mut sim, "bob", r#"{"action":"read","id":"dear"}"#, ErrorCode::InsufficientFunds);
    assert!(r.result.is_none());
    assert_eq!(scrip(&sim, "bob"), 43);
    let log = sim.world().resource::<EventLog>();
    let read = log.recent().find(|e| e.kind.type_name() == "ARTIFACT_READ").unwrap();
    assert_eq!(serde_json::to_value(read).unwrap()["payload"]["price"], 7);
    audit(sim.world()).unwrap();
}

#[test]
fn invalid_ids_are_refused() {
    let mut sim = three();
    for bad in ["", "has space", "slash/no", &"x".repeat(129)] {
        let json = serde_json::json!({"action": "write", "id": bad, "content": "x"}).to_string();
        act_fails(&mut sim, "alice", &json, ErrorCode::InvalidArgs);
    }
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"ok.id:with-all_chars9","content":"x"}"#);
}
