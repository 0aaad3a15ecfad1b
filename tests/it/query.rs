//! Discovery: listing, filtering, searching and paging.

use agent_ecology::kernel::ErrorCode;
use serde_json::Value;

use crate::{act_fails, act_ok, three};

fn ids(result: &Value) -> Vec<String> {
    result["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

fn query(sim: &mut agent_ecology::run::Simulation, args: &str) -> Value {
    act_ok(sim, "carol", &format!(r#"{{"action":"query"{args}}}"#)).result.unwrap()
}

fn populated() -> agent_ecology::run::Simulation {
    let mut sim = three();
    act_ok(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"text_tools","code":"function run(){}","description":"word counting",
        "interface":{"description":"Text utilities","tools":[{"name":"count","description":"Counts words"}]}}"#,
    );
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"notes","content":"...","description":"Alice's Notes"}"#);
    act_ok(&mut sim, "bob", r#"{"action":"write","id":"ledger","content":"..."}"#);
    act_ok(&mut sim, "bob", r#"{"action":"write","id":"gone","content":"..."}"#);
    act_ok(&mut sim, "bob", r#"{"action":"delete","id":"gone"}"#);
    sim
}

#[test]
fn lists_everything_in_creation_order_and_pages() {
    let mut sim = populated();
    let all = query(&mut sim, "");
    let every = ids(&all);
    assert!(every.starts_with(&[
        "freeware".into(),
        "public".into(),
        "private".into(),
        "self_owned".into(),
        "kernel".into()
    ]));
    assert!(every.ends_with(&[
        "alice".into(),
        "bob".into(),
        "carol".into(),
        "text_tools".into(),
        "notes".into(),
        "ledger".into()
    ]));
    assert!(!every.contains(&"gone".to_owned()), "tombstones are hidden");
    assert!(all["next_cursor"].is_null());

    let mut paged = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let args = match cursor.as_u64() {
            Some(c) => format!(r#","limit":3,"cursor":{c}"#),
            None => r#","limit":3"#.to_owned(),
        };
        let page = query(&mut sim, &args);
        assert!(page["items"].as_array().unwrap().len() <= 3);
        paged.extend(ids(&page));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(paged, every);
}

#[test]
fn filters_by_owner_kind_and_text() {
    let mut sim = populated();
    // Principals own themselves.
    assert_eq!(ids(&query(&mut sim, r#","owner":"alice""#)), ["alice", "text_tools", "notes"]);
    assert_eq!(ids(&query(&mut sim, r#","kind":"executable""#)), ["text_tools"]);
    assert_eq!(ids(&query(&mut sim, r#","kind":"principal""#)), ["kernel", "alice", "bob", "carol"]);
    assert_eq!(ids(&query(&mut sim, r#","kind":"contract""#)), ["freeware", "public", "private", "self_owned"]);
    assert_eq!(
        ids(&query(&mut sim, r#","kind":"service""#)),
        [
            "kernel_mint",
            "kernel_escrow",
            "kernel_debt",
            "kernel_governance",
            "system_auditor",
            "kernel_llm_gateway",
            "kernel_capabilities",
            "kernel_subscriptions",
            "kernel_tasks",
            "kernel_locks"
        ]
    );
    // Text search covers id, description and interface, ignoring case.
    // (The task board's interface takes a submission's text.)
    assert_eq!(ids(&query(&mut sim, r#","text":"TEXT""#)), ["kernel_tasks", "text_tools"]);
    assert_eq!(ids(&query(&mut sim, r#","text":"counts words""#)), ["text_tools"]);
    assert_eq!(ids(&query(&mut sim, r#","text":"alice's""#)), ["notes"]);
    assert_eq!(ids(&query(&mut sim, r#","owner":"bob","include_deleted":true"#)), ["bob", "ledger", "gone"]);
}

#[test]
fn metadata_of_one_artifact() {
    let mut sim = populated();
    let one = query(&mut sim, r#","id":"text_tools""#);
    let meta = &one["artifact"];
    assert_eq!(meta["owner"], "alice");
    assert_eq!(meta["kind"], "executable");
    assert_eq!(meta["code_bytes"], 16);
    assert_eq!(meta["interface"]["tools"][0]["name"], "count");
    assert!(meta.get("content").is_none(), "metadata leaves content out");
    act_fails(&mut sim, "carol", r#"{"action":"query","id":"gone"}"#, ErrorCode::Deleted);
    let gone = query(&mut sim, r#","id":"gone","include_deleted":true"#);
    assert_eq!(gone["artifact"]["deleted"], true);
    assert_eq!(gone["artifact"]["deleted_by"], "bob");
    act_fails(&mut sim, "carol", r#"{"action":"query","id":"nope"}"#, ErrorCode::NotFound);
    act_fails(&mut sim, "carol", r#"{"action":"query","limit":0}"#, ErrorCode::InvalidArgs);
    act_fails(&mut sim, "carol", r#"{"action":"query","limit":501}"#, ErrorCode::InvalidArgs);
}
