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

/// Every page of a query, followed by cursor.
fn all_pages(sim: &mut agent_ecology::run::Simulation, args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = match cursor {
            Some(c) => query(sim, &format!(r#"{args},"limit":2,"cursor":{c}"#)),
            None => query(sim, &format!(r#"{args},"limit":2"#)),
        };
        out.extend(ids(&page));
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn indexed_filters_agree_with_a_scan_of_everything() {
    let mut sim = populated();
    let everything = query(&mut sim, r#","limit":500"#);
    let items = everything["items"].as_array().unwrap();
    for kind in ["data", "executable", "contract", "principal", "agent", "service"] {
        let scanned: Vec<String> =
            items.iter().filter(|i| i["kind"] == kind).map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids(&query(&mut sim, &format!(r#","kind":"{kind}""#))), scanned, "kind {kind}");
        assert_eq!(all_pages(&mut sim, &format!(r#","kind":"{kind}""#)), scanned, "kind {kind}, paged");
    }
    for owner in ["alice", "bob", "kernel"] {
        let scanned: Vec<String> =
            items.iter().filter(|i| i["owner"] == owner).map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(all_pages(&mut sim, &format!(r#","owner":"{owner}""#)), scanned, "owner {owner}");
    }
    // Several kinds at once, in creation order, paged across the kinds' lists.
    let both = all_pages(&mut sim, r#","kind":["executable","principal"]"#);
    assert_eq!(both, ["kernel", "alice", "bob", "carol", "text_tools"]);
    assert_eq!(ids(&query(&mut sim, r#","kind":["principal"],"exclude":["kernel","bob"]"#)), ["alice", "carol"]);
    assert_eq!(ids(&query(&mut sim, r#","tool":"count""#)), ["text_tools"]);
    assert_eq!(ids(&query(&mut sim, r#","tool":"count","owner":"bob""#)), Vec::<String>::new());
    let unknown = agent_ecology::kernel::Action::from_json_str(r#"{"action":"query","kind":["agent","nothing"]}"#);
    let message = unknown.unwrap_err().to_string();
    assert!(message.contains(r#"unknown kind "nothing"; expected one of data, executable"#), "{message}");
}

#[test]
fn the_indexes_follow_every_change_and_every_roll_back() {
    let mut sim = populated();
    // Data that gains code and a tool becomes an executable offering that tool.
    act_ok(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"notes","code":"function shout(){ return 1 }",
            "interface":{"tools":[{"name":"shout"}]}}"#,
    );
    assert_eq!(ids(&query(&mut sim, r#","kind":"executable""#)), ["text_tools", "notes"]);
    assert_eq!(ids(&query(&mut sim, r#","tool":"shout""#)), ["notes"]);
    // Deleted: in no index.
    act_ok(&mut sim, "alice", r#"{"action":"delete","id":"text_tools"}"#);
    assert_eq!(ids(&query(&mut sim, r#","tool":"count""#)), Vec::<String>::new());
    assert_eq!(ids(&query(&mut sim, r#","owner":"alice""#)), ["alice", "notes"]);
    assert_eq!(ids(&query(&mut sim, r#","owner":"alice","include_deleted":true"#)), ["alice", "text_tools", "notes"]);
    // Ownership moves (into escrow) and the owner index follows.
    act_ok(
        &mut sim,
        "bob",
        r#"{"action":"invoke","id":"kernel_escrow","method":"deposit","args":{"artifact":"ledger","price":5}}"#,
    );
    assert_eq!(ids(&query(&mut sim, r#","owner":"kernel_escrow""#)), ["ledger"]);
    assert_eq!(ids(&query(&mut sim, r#","owner":"bob""#)), ["bob"]);
    // What a failed invoke created is rolled back, and out of every index.
    act_ok(
        &mut sim,
        "alice",
        r#"{"action":"write","id":"maker","code":"function run(){ kernel.write('made', 'x'); throw new Error('no') }",
            "interface":{"tools":[{"name":"run"}]}}"#,
    );
    let failed = crate::act(&mut sim, "alice", r#"{"action":"invoke","id":"maker","method":"run"}"#);
    assert!(!failed.success);
    assert_eq!(ids(&query(&mut sim, r#","owner":"alice""#)), ["alice", "notes", "maker"]);
    act_ok(&mut sim, "alice", r#"{"action":"write","id":"after","content":"y"}"#);
    assert_eq!(all_pages(&mut sim, r#","owner":"alice""#), ["alice", "notes", "maker", "after"]);
    assert_eq!(ids(&query(&mut sim, r#","kind":"data","owner":"alice""#)), ["after"]);
}

fn crowd(seed: u64) -> agent_ecology::run::Simulation {
    let principals: String = (0..40).map(|i| format!(r#"(id: "p{i:02}", capabilities: ["can_mint"]),"#)).collect();
    crate::sim(&format!(r#"Scene(config: (seed: {seed}), principals: [(id: "carol"), {principals}])"#))
}

#[test]
fn a_sample_is_seeded_distinct_filtered_and_reaches_everyone() {
    let mut sim = crowd(7);
    let mut seen = std::collections::BTreeSet::new();
    let mut draws = Vec::new();
    for _ in 0..400 {
        let one = query(&mut sim, r#","kind":"principal","exclude":["carol","kernel"],"sample":1,"fields":["id"]"#);
        let got = ids(&one);
        assert_eq!(got.len(), 1);
        assert_eq!(one["items"][0].as_object().unwrap().len(), 1, "only the id: {one}");
        assert!(got[0].starts_with('p'), "{got:?}");
        seen.insert(got[0].clone());
        draws.push(got[0].clone());
    }
    assert_eq!(seen.len(), 40, "every principal can be chosen");
    let five = ids(&query(&mut sim, r#","capability":"can_mint","sample":5"#));
    assert_eq!(five.len(), 5);
    assert_eq!(five.iter().collect::<std::collections::BTreeSet<_>>().len(), 5, "distinct: {five:?}");
    // More than there are: every match, once.
    assert_eq!(ids(&query(&mut sim, r#","capability":"can_mint","text":"p1","sample":50"#)).len(), 10);
    // The same seed draws the same; another seed does not.
    let again: Vec<String> = {
        let mut sim = crowd(7);
        (0..400)
            .map(|_| ids(&query(&mut sim, r#","kind":"principal","exclude":["carol","kernel"],"sample":1"#)).remove(0))
            .collect()
    };
    assert_eq!(again, draws);
    let other: Vec<String> = {
        let mut sim = crowd(8);
        (0..40)
            .map(|_| ids(&query(&mut sim, r#","kind":"principal","exclude":["carol","kernel"],"sample":1"#)).remove(0))
            .collect()
    };
    assert_ne!(other, draws[..40]);
    act_fails(&mut sim, "carol", r#"{"action":"query","sample":2,"cursor":0}"#, ErrorCode::InvalidArgs);
    act_fails(&mut sim, "carol", r#"{"action":"query","sample":0}"#, ErrorCode::InvalidArgs);
}

#[test]
fn chosen_fields_are_the_same_as_in_the_whole_record() {
    let mut sim = populated();
    let whole = query(&mut sim, r#","limit":500"#);
    for item in whole["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        // Asked again: the asker's own heartbeat moved with the first question.
        let item = &query(&mut sim, &format!(r#","id":"{id}""#))["artifact"];
        let names: Vec<&String> = item.as_object().unwrap().keys().collect();
        let fields = serde_json::to_string(&names).unwrap();
        let chosen = query(&mut sim, &format!(r#","id":"{id}","fields":{fields}"#));
        assert_eq!(&chosen["artifact"], item, "{id}");
        let few = query(&mut sim, &format!(r#","id":"{id}","fields":["owner","frozen","kind"]"#));
        let expected: serde_json::Map<String, Value> = item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| ["owner", "frozen", "kind"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(chosen["artifact"].as_object().unwrap().len(), names.len());
        assert_eq!(few["artifact"], Value::Object(expected), "{id}");
    }
}
