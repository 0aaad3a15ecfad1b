//! Coordination: subscriptions that wake agents, the task board, locks, and the
//! task_market scene that uses all three — through the public action pipeline, as
//! agents use them.

use agent_ecology::{
    economy::{locks::Locks, subscriptions::Subscriptions, tasks::TaskBoard},
    kernel::{ActionResult, ErrorCode, EventLog, activity::Activity},
    run::{Checkpoint, Simulation, audit},
    scene::Scene,
    world::{
        components::{Artifact, Loop},
        ids,
    },
};
use serde_json::{Value, json};

use crate::{act, scrip, sim, three};

const SUBSCRIPTIONS: &str = "kernel_subscriptions";
const TASKS: &str = "kernel_tasks";
const LOCKS: &str = "kernel_locks";

fn call(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value) -> ActionResult {
    act(sim, actor, &json!({"action": "invoke", "id": service, "method": method, "args": args}).to_string())
}

/// Like [`call`], but it must succeed; returns the method's result.
fn call_ok(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value) -> Value {
    let result = call(sim, actor, service, method, args.clone());
    assert!(result.success, "{service}.{method}({args}) as {actor} should succeed, got {result:?}");
    result.result.unwrap_or(Value::Null)
}

/// Like [`call`], but it must fail with `code`; returns the error's message.
fn call_fails(sim: &mut Simulation, actor: &str, service: &str, method: &str, args: Value, code: ErrorCode) -> String {
    let result = call(sim, actor, service, method, args.clone());
    assert!(!result.success, "{service}.{method}({args}) as {actor} should fail with {code}, got {result:?}");
    assert_eq!(result.error_code(), Some(code), "{service}.{method}({args}) as {actor}: {result:?}");
    result.error.map(|e| e.message).unwrap_or_default()
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent().filter(|e| e.kind.type_name() == kind).map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn content(sim: &Simulation, id: &str) -> String {
    let entity = ids::lookup(sim.world(), id).unwrap();
    sim.world().get::<Artifact>(entity).unwrap().content().to_owned()
}

fn steps_of(sim: &Simulation, id: &str) -> u64 {
    sim.world().get::<Loop>(ids::lookup(sim.world(), id).unwrap()).unwrap().steps()
}

fn audited(sim: &Simulation) {
    audit(sim.world()).unwrap_or_else(|e| panic!("{e}"));
}

fn held(sim: &Simulation) -> u64 {
    sim.world().resource::<agent_ecology::kernel::Held>().of(agent_ecology::kernel::Holder::Tasks)
}

// ---------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------

/// Records each wake — why, and the amounts of the transfers it was shown — and
/// sleeps for a long time.
const WATCHER: &str = r#"function step(view) {
    const wakes = view.memory ? JSON.parse(view.memory) : [];
    const amounts = view.events.filter(e => e.type === "SCRIP_TRANSFER").map(e => e.payload.amount);
    wakes.push({woke_by: view.woke_by, amounts});
    return {actions: [{action: "write", id: view.self, content: JSON.stringify(wakes)}], sleep: {secs: 1000}};
}"#;

fn wakes(sim: &Simulation) -> Vec<Value> {
    serde_json::from_str(&content(sim, "watcher")).unwrap()
}

#[test]
fn subscriptions_wake_a_sleeper_on_matching_events_until_unsubscribed() {
    let mut sim = sim(&format!(
        r#"Scene(principals: [
            (id: "watcher", agent: true, code: {WATCHER:?}, interface: (tools: [(name: "step")])),
            (id: "alice"), (id: "bob"), (id: "dave"),
        ])"#
    ));
    sim.run_steps(2);
    assert_eq!(steps_of(&sim, "watcher"), 1, "asleep after its first step");
    let first =
        call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"type": "SCRIP_TRANSFER", "actor": "alice"}));
    assert_eq!(first["id"], "sub-1");
    let second = call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"artifact": "dave"}));
    assert_eq!(second["id"], "sub-2");

    // Not a match: bob acted, and dave is not named.
    crate::act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"alice","amount":3}"#);
    sim.run_steps(3);
    assert_eq!(steps_of(&sim, "watcher"), 1, "bob's transfer does not wake it");

    // A match wakes it at the next step, and it sees the event.
    crate::act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":5}"#);
    sim.run_steps(1);
    assert_eq!(steps_of(&sim, "watcher"), 2);
    assert_eq!(wakes(&sim)[1], json!({"woke_by": "subscription", "amounts": [5]}));

    // The subscription outlives the wake: the next match wakes it again, and only the
    // new event is news.
    sim.run_steps(3);
    crate::act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":7}"#);
    sim.run_steps(2);
    assert_eq!(steps_of(&sim, "watcher"), 3);
    assert_eq!(wakes(&sim)[2], json!({"woke_by": "subscription", "amounts": [7]}));

    // Its own acts do not wake it, even when they match.
    crate::act_ok(&mut sim, "watcher", r#"{"action":"transfer","to":"dave","amount":1}"#);
    sim.run_steps(3);
    assert_eq!(steps_of(&sim, "watcher"), 3, "its own transfer to dave is not news to it");

    // Unsubscribed: alice's transfers no longer wake it; the other subscription does.
    call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "unsubscribe", json!({"id": "sub-1"}));
    crate::act_ok(&mut sim, "alice", r#"{"action":"transfer","to":"bob","amount":9}"#);
    sim.run_steps(3);
    assert_eq!(steps_of(&sim, "watcher"), 3, "unsubscribed");
    crate::act_ok(&mut sim, "bob", r#"{"action":"transfer","to":"dave","amount":2}"#);
    sim.run_steps(1);
    assert_eq!(steps_of(&sim, "watcher"), 4, "dave is still watched");
    assert_eq!(wakes(&sim)[3]["amounts"], json!([2]), "alice's unwatched transfer is not shown");

    let list = call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "list", json!({}));
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sub-2"]);
    assert_eq!(events(&sim, "SUBSCRIBED").len(), 2);
    let ended = events(&sim, "UNSUBSCRIBED");
    assert_eq!(
        (ended.len(), &ended[0]["actor"], &ended[0]["payload"]["subscription"]),
        (1, &json!("watcher"), &json!("sub-1"))
    );
    audited(&sim);
}

#[test]
fn subscriptions_refuse_non_agents_bad_filters_and_too_many() {
    let mut sim = sim(&format!(
        r#"Scene(principals: [
            (id: "watcher", agent: true, code: {WATCHER:?}, interface: (tools: [(name: "step")])),
            (id: "alice"),
        ])"#
    ));
    let message = call_fails(
        &mut sim,
        "alice",
        SUBSCRIPTIONS,
        "subscribe",
        json!({"type": "TASK_POSTED"}),
        ErrorCode::InvalidArgs,
    );
    assert!(message.contains("alice is not an agent"), "{message}");
    let message =
        call_fails(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"type": "NOPE"}), ErrorCode::InvalidArgs);
    assert!(message.contains("no event type \"NOPE\""), "{message}");
    let message = call_fails(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({}), ErrorCode::InvalidArgs);
    assert!(message.contains("at least one"), "{message}");
    call_fails(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"colour": "red"}), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "watcher", SUBSCRIPTIONS, "unsubscribe", json!({"id": "sub-9"}), ErrorCode::NotFound);
    for n in 1..=16 {
        let got = call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"artifact": format!("a{n}")}));
        assert_eq!(got["id"], format!("sub-{n}"));
    }
    let message =
        call_fails(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"artifact": "a17"}), ErrorCode::InvalidArgs);
    assert!(message.contains("16 subscriptions"), "{message}");
    // Ids are never reused.
    call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "unsubscribe", json!({"id": "sub-3"}));
    assert_eq!(call_ok(&mut sim, "watcher", SUBSCRIPTIONS, "subscribe", json!({"artifact": "a17"}))["id"], "sub-17");
    // The services are discovered like any other.
    let found = crate::act_ok(&mut sim, "alice", r#"{"action":"query","kind":"service"}"#).result.unwrap();
    let found: Vec<&str> = found["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    for id in [SUBSCRIPTIONS, TASKS, LOCKS] {
        assert!(found.contains(&id), "{id} in {found:?}");
        let described = call_ok(&mut sim, "alice", id, "describe", json!({}));
        assert!(!described["tools"].as_array().unwrap().is_empty(), "{id}: {described}");
    }
}

// ---------------------------------------------------------------------------------
// The task board
// ---------------------------------------------------------------------------------

fn post(sim: &mut Simulation, actor: &str, reward: u64, deadline: Option<f64>) -> String {
    let mut args = json!({"description": "count the words of the handbook", "reward": reward});
    if let Some(secs) = deadline {
        args["deadline_secs"] = secs.into();
    }
    call_ok(sim, actor, TASKS, "post", args)["task"].as_str().unwrap().to_owned()
}

fn status(sim: &mut Simulation, task: &str) -> Value {
    call_ok(sim, "carol", TASKS, "status", json!({"task": task}))
}

#[test]
fn the_board_holds_the_reward_and_pays_the_claimant_exactly() {
    let mut sim = three();
    let task = post(&mut sim, "alice", 30, None);
    assert_eq!(task, "task-1");
    assert_eq!((scrip(&sim, "alice"), held(&sim)), (70, 30), "the reward left alice at once");
    audited(&sim);
    assert_eq!(sim.report().economy.tasks.held, 30);

    let one = json!({"task": task});
    let message = call_fails(&mut sim, "alice", TASKS, "claim", one.clone(), ErrorCode::InvalidArgs);
    assert!(message.contains("cannot claim its own task"), "{message}");
    call_fails(&mut sim, "alice", TASKS, "accept", one.clone(), ErrorCode::InvalidArgs);
    call_ok(&mut sim, "bob", TASKS, "claim", one.clone());
    let message = call_fails(&mut sim, "carol", TASKS, "claim", one.clone(), ErrorCode::InvalidArgs);
    assert!(message.contains("task-1 is claimed"), "{message}");
    let essay = json!({"task": task, "artifact": "essay"});
    call_fails(&mut sim, "carol", TASKS, "submit", essay.clone(), ErrorCode::AccessDenied);
    call_fails(&mut sim, "bob", TASKS, "submit", essay.clone(), ErrorCode::NotFound);
    call_fails(&mut sim, "bob", TASKS, "submit", one.clone(), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "alice", TASKS, "cancel", one.clone(), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "bob", TASKS, "accept", one.clone(), ErrorCode::NotOwner);

    crate::act_ok(&mut sim, "bob", r#"{"action":"write","id":"essay","content":"The handbook has many words."}"#);
    call_ok(&mut sim, "bob", TASKS, "submit", json!({"task": task, "artifact": "essay", "text": "see essay"}));
    let submitted = status(&mut sim, &task);
    assert_eq!(submitted["status"], "submitted");
    assert_eq!(submitted["submission"]["artifact"], "essay");
    assert_eq!(submitted["submission"]["text"], "see essay");
    call_fails(&mut sim, "carol", TASKS, "accept", one.clone(), ErrorCode::NotOwner);

    let moved = sim.world().resource::<Activity>().scrip_moved;
    let paid = call_ok(&mut sim, "alice", TASKS, "accept", one.clone());
    assert_eq!(paid["paid"], 30);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob"), held(&sim)), (70, 80, 0));
    assert_eq!(sim.world().resource::<Activity>().scrip_moved, moved + 30, "counted as scrip moved");
    assert_eq!(status(&mut sim, &task)["status"], "accepted");
    call_fails(&mut sim, "alice", TASKS, "accept", one.clone(), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "alice", TASKS, "status", json!({"task": "task-99"}), ErrorCode::NotFound);
    call_fails(&mut sim, "alice", TASKS, "claim", json!({"task": "essay"}), ErrorCode::NotFound);
    let accepted = events(&sim, "TASK_ACCEPTED");
    assert_eq!(accepted[0]["actor"], "alice");
    assert_eq!(accepted[0]["payload"], json!({"task": "task-1", "claimant": "bob", "reward": 30}));
    for kind in ["TASK_POSTED", "TASK_CLAIMED", "TASK_SUBMITTED"] {
        assert_eq!(events(&sim, kind).len(), 1, "{kind}");
    }
    let counts = sim.report().economy.tasks;
    assert_eq!((counts.posted, counts.accepted, counts.paid, counts.held), (1, 1, 30, 0));
    audited(&sim);
}

#[test]
fn a_rejected_task_is_open_again_and_an_open_one_can_be_cancelled() {
    let mut sim = three();
    let task = post(&mut sim, "alice", 20, None);
    let one = json!({"task": task});
    call_ok(&mut sim, "bob", TASKS, "claim", one.clone());
    call_ok(&mut sim, "bob", TASKS, "submit", json!({"task": task, "text": "42"}));
    call_fails(&mut sim, "bob", TASKS, "reject", json!({"task": task, "reason": "mine"}), ErrorCode::NotOwner);
    let rejected = call_ok(&mut sim, "alice", TASKS, "reject", json!({"task": task, "reason": "show your working"}));
    assert_eq!(rejected["status"], "open");
    let open = status(&mut sim, &task);
    assert_eq!((&open["status"], &open["claimant"], &open["submission"]), (&json!("open"), &Value::Null, &Value::Null));
    assert_eq!(open["rejections"][0]["claimant"], "bob");
    assert_eq!(open["rejections"][0]["reason"], "show your working");
    assert_eq!(events(&sim, "TASK_REJECTED")[0]["payload"]["reopened"], true);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob"), held(&sim)), (80, 50, 20), "nobody was paid");

    // Anyone may take it now; a claimant may give it back.
    call_ok(&mut sim, "carol", TASKS, "claim", one.clone());
    call_fails(&mut sim, "bob", TASKS, "release", one.clone(), ErrorCode::AccessDenied);
    call_ok(&mut sim, "carol", TASKS, "release", one.clone());
    assert_eq!(status(&mut sim, &task)["status"], "open");
    call_fails(&mut sim, "bob", TASKS, "cancel", one.clone(), ErrorCode::NotOwner);
    let cancelled = call_ok(&mut sim, "alice", TASKS, "cancel", one.clone());
    assert_eq!(cancelled["refunded"], 20);
    assert_eq!((scrip(&sim, "alice"), held(&sim)), (100, 0), "refunded in full");
    assert_eq!(status(&mut sim, &task)["status"], "cancelled");
    call_fails(&mut sim, "alice", TASKS, "cancel", one.clone(), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "carol", TASKS, "claim", one, ErrorCode::InvalidArgs);

    // What cannot be paid is not posted.
    let args = json!({"description": "more", "reward": 51});
    call_fails(&mut sim, "bob", TASKS, "post", args, ErrorCode::InsufficientFunds);
    call_fails(&mut sim, "bob", TASKS, "post", json!({"description": "x", "reward": 0}), ErrorCode::InvalidArgs);
    audited(&sim);
}

#[test]
fn the_board_lists_tasks_by_filter_a_page_at_a_time() {
    let mut sim = three();
    let tasks: Vec<String> =
        (0..5).map(|i| post(&mut sim, if i % 2 == 0 { "alice" } else { "carol" }, 2, None)).collect();
    call_ok(&mut sim, "bob", TASKS, "claim", json!({"task": tasks[0]}));
    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };
    let page = call_ok(&mut sim, "bob", TASKS, "list", json!({"status": "open", "limit": 2}));
    assert_eq!(ids(&page), ["task-2", "task-3"]);
    let rest = call_ok(&mut sim, "bob", TASKS, "list", json!({"status": "open", "cursor": page["next_cursor"]}));
    assert_eq!((ids(&rest), &rest["next_cursor"]), (vec!["task-4".to_owned(), "task-5".to_owned()], &Value::Null));
    assert_eq!(ids(&call_ok(&mut sim, "bob", TASKS, "list", json!({"poster": "carol"}))), ["task-2", "task-4"]);
    assert_eq!(ids(&call_ok(&mut sim, "bob", TASKS, "list", json!({"claimant": "bob"}))), ["task-1"]);
    assert_eq!(ids(&call_ok(&mut sim, "bob", TASKS, "list", json!({}))).len(), 5);
    call_fails(&mut sim, "bob", TASKS, "list", json!({"status": "lost"}), ErrorCode::InvalidArgs);
}

#[test]
fn tasks_past_their_deadline_expire_and_refund_the_poster() {
    let mut sim = three();
    let undelivered = post(&mut sim, "alice", 10, Some(5.0));
    let late = post(&mut sim, "alice", 15, Some(5.0));
    let timely = post(&mut sim, "alice", 20, Some(5.0));
    for task in [&undelivered, &late, &timely] {
        call_ok(&mut sim, "bob", TASKS, "claim", json!({"task": task}));
    }
    assert_eq!(scrip(&sim, "alice"), 55);
    call_ok(&mut sim, "bob", TASKS, "submit", json!({"task": late, "text": "done"}));
    call_ok(&mut sim, "bob", TASKS, "submit", json!({"task": timely, "text": "done"}));
    sim.run_steps(5);
    // Now is the deadline: too late to deliver; the Settle phase of this step expires it.
    let message =
        call_fails(&mut sim, "bob", TASKS, "submit", json!({"task": undelivered, "text": "x"}), ErrorCode::InvalidArgs);
    assert!(message.contains("deadline"), "{message}");
    sim.run_steps(1);
    let expired = events(&sim, "TASK_EXPIRED");
    assert_eq!(expired.len(), 1, "submitted results wait for the poster");
    assert_eq!(expired[0]["time"], 5.0);
    assert_eq!(
        expired[0]["payload"],
        json!({"task": undelivered, "poster": "alice", "claimant": "bob", "refunded": 10})
    );
    assert_eq!(status(&mut sim, &undelivered)["status"], "expired");
    assert_eq!(scrip(&sim, "alice"), 65);

    // A result handed in on time can still be accepted; rejected after the deadline,
    // the task expires rather than reopening.
    call_ok(&mut sim, "alice", TASKS, "accept", json!({"task": timely}));
    let rejected = call_ok(&mut sim, "alice", TASKS, "reject", json!({"task": late, "reason": "too late to redo"}));
    assert_eq!(rejected["status"], "expired");
    assert_eq!(events(&sim, "TASK_REJECTED")[0]["payload"]["reopened"], false);
    assert_eq!((scrip(&sim, "alice"), scrip(&sim, "bob"), held(&sim)), (80, 70, 0));
    call_fails(&mut sim, "carol", TASKS, "claim", json!({"task": late}), ErrorCode::InvalidArgs);
    let counts = sim.report().economy.tasks;
    assert_eq!((counts.posted, counts.accepted, counts.expired, counts.unsettled), (3, 1, 2, 0));
    audited(&sim);
}

// ---------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------

#[test]
fn locks_are_exclusive_renewable_and_expire_on_the_simulated_clock() {
    let mut sim = three();
    let door = |secs: f64| json!({"name": "door", "secs": secs});
    let taken = call_ok(&mut sim, "alice", LOCKS, "acquire", door(10.0));
    assert_eq!((&taken["acquired"], &taken["expires_at"]), (&json!(true), &json!(10.0)));
    let refused = call_ok(&mut sim, "bob", LOCKS, "acquire", door(5.0));
    assert_eq!(refused["acquired"], false);
    assert_eq!((&refused["holder"], &refused["expires_at"]), (&json!("alice"), &json!(10.0)));
    let message = call_fails(&mut sim, "bob", LOCKS, "release", json!({"name": "door"}), ErrorCode::NotOwner);
    assert!(message.contains("held by alice"), "{message}");
    call_fails(&mut sim, "bob", LOCKS, "release", json!({"name": "window"}), ErrorCode::NotFound);
    call_fails(&mut sim, "bob", LOCKS, "acquire", door(0.0), ErrorCode::InvalidArgs);
    call_fails(&mut sim, "bob", LOCKS, "acquire", json!({"name": "", "secs": 1}), ErrorCode::InvalidArgs);

    // The holder renews: ten seconds from now.
    sim.run_steps(4);
    let renewed = call_ok(&mut sim, "alice", LOCKS, "acquire", door(10.0));
    assert_eq!((&renewed["renewed"], &renewed["expires_at"]), (&json!(true), &json!(14.0)));
    sim.run_steps(9);
    let held = call_ok(&mut sim, "carol", LOCKS, "status", json!({"name": "door"}));
    assert_eq!((&held["held"], &held["holder"]), (&json!(true), &json!("alice")), "at 13 s it is still held");
    assert_eq!(call_ok(&mut sim, "bob", LOCKS, "acquire", door(5.0))["acquired"], false);
    sim.run_steps(1);
    assert_eq!(call_ok(&mut sim, "carol", LOCKS, "status", json!({"name": "door"}))["held"], false, "free at 14 s");
    sim.run_steps(1);
    let expired = events(&sim, "LOCK_EXPIRED");
    assert_eq!(expired.len(), 1);
    assert_eq!((&expired[0]["time"], &expired[0]["actor"]), (&json!(14.0), &json!("kernel")));
    assert_eq!(expired[0]["payload"], json!({"name": "door", "holder": "alice"}));
    assert!(sim.world().resource::<Locks>().get("door").is_none());

    // Now bob's; alice cannot let it go for him.
    assert_eq!(call_ok(&mut sim, "bob", LOCKS, "acquire", door(5.0))["acquired"], true);
    call_fails(&mut sim, "alice", LOCKS, "release", json!({"name": "door"}), ErrorCode::NotOwner);
    call_ok(&mut sim, "bob", LOCKS, "release", json!({"name": "door"}));
    assert_eq!(call_ok(&mut sim, "carol", LOCKS, "status", json!({"name": "door"}))["held"], false);
    sim.run_steps(10);
    assert_eq!(events(&sim, "LOCK_EXPIRED").len(), 1, "a released lock does not expire");
    assert_eq!(events(&sim, "LOCK_ACQUIRED").len(), 3);
    assert_eq!(events(&sim, "LOCK_RELEASED").len(), 1);
}

#[test]
fn a_lock_past_its_time_is_free_within_the_same_step() {
    let mut sim = three();
    call_ok(&mut sim, "alice", LOCKS, "acquire", json!({"name": "door", "secs": 2}));
    sim.run_steps(2);
    // The Settle phase has not run at 2 s yet; carol's request lets alice's lock go.
    let taken = call_ok(&mut sim, "carol", LOCKS, "acquire", json!({"name": "door", "secs": 2}));
    assert_eq!(taken["acquired"], true);
    let kinds: Vec<String> = sim
        .world()
        .resource::<EventLog>()
        .recent()
        .filter(|e| e.kind.type_name().starts_with("LOCK_"))
        .map(|e| format!("{} {}", e.kind.type_name(), e.actor))
        .collect();
    assert_eq!(kinds, ["LOCK_ACQUIRED alice", "LOCK_EXPIRED kernel", "LOCK_ACQUIRED carol"]);
    sim.run_steps(1);
    assert_eq!(sim.world().resource::<Locks>().get("door").unwrap().holder.as_str(), "carol");
}

// ---------------------------------------------------------------------------------
// The task_market scene
// ---------------------------------------------------------------------------------

fn task_market(epoch_secs: f64) -> Scene {
    let text = crate::repo_scene_text("task_market.ron", epoch_secs);
    Scene::from_ron_str("scenes/task_market.ron", &text).unwrap_or_else(|e| panic!("{e}"))
}

const WORKERS: [&str; 3] = ["wes", "wil", "wyn"];

#[test]
fn the_task_market_pays_workers_for_accepted_work_and_runs_the_same_twice() {
    let scene = task_market(600.0);
    let steps = scene.validate().unwrap().config.steps;
    let mut sim = Simulation::new(&scene, None).unwrap();
    sim.run_steps(steps);
    audited(&sim);
    let report = sim.report();
    let tasks = report.economy.tasks;
    assert!(tasks.accepted >= 6, "{tasks:?}");
    assert!(tasks.expired >= 1, "the rush job expires: {tasks:?}");
    assert_eq!(tasks.held, 0, "{tasks:?}");
    assert!(report.events.by_type["TASK_REJECTED"] >= 1, "the hasty worker's first note is rejected");
    // Scrip moved from the buyer to the workers, exactly the rewards paid.
    assert_eq!(report.principals["bea"].scrip, 200 - tasks.paid);
    let earned: u64 = WORKERS.iter().map(|w| report.principals[*w].scrip - 10).sum();
    assert_eq!(earned, tasks.paid);
    assert!(WORKERS.iter().all(|w| report.principals[*w].scrip > 10), "every worker was paid");
    assert_eq!(report.minted_total + report.granted_total, 0, "no scrip was created");
    // Every payment is in the worklog, written under its lock: none was lost.
    let worklog = content(&sim, "worklog");
    assert_eq!(worklog.matches(" was paid ").count() as u64, tasks.accepted, "{worklog}");
    assert!(report.events.by_type["LOCK_ACQUIRED"] >= tasks.accepted);

    let mut again = Simulation::new(&scene, None).unwrap();
    again.run_steps(steps);
    assert_eq!(again.checksum(), sim.checksum());
}

#[test]
fn a_task_market_checkpoint_with_open_tasks_locks_and_subscriptions_resumes_exactly() {
    // Sandbox epochs every 5 s: exact points in the middle of the trading.
    let scene = task_market(5.0);
    let mut straight = Simulation::new(&scene, None).unwrap();
    straight.run_steps(200);

    let mut first = Simulation::new(&scene, None).unwrap();
    let busy = |sim: &Simulation| {
        let world = sim.world();
        let open = world.resource::<TaskBoard>().counts().unsettled > 0;
        let locked = world.resource::<Locks>().iter().next().is_some();
        open && locked && sim.at_exact_point()
    };
    while !busy(&first) {
        first.step();
        assert!(first.steps_done() < 200, "no exact point with open tasks and a lock held");
    }
    let subscribed = WORKERS
        .iter()
        .chain(["bea"].iter())
        .filter(|id| {
            let entity = ids::lookup(first.world(), id).unwrap();
            first.world().get::<Subscriptions>(entity).is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(subscribed, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.checkpoint");
    let at = first.steps_done();
    first.write_checkpoint(&path, Value::Null).unwrap();
    drop(first);

    let mut resumed = Simulation::from_checkpoint(Checkpoint::read(&path).unwrap()).unwrap();
    assert!(resumed.world().resource::<TaskBoard>().counts().unsettled > 0);
    resumed.run_steps(200 - at);
    assert_eq!(resumed.checksum(), straight.checksum());
    assert_eq!(serde_json::to_value(resumed.report()).unwrap(), serde_json::to_value(straight.report()).unwrap());
}
