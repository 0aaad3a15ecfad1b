//! Capability requests: asked for by agents, decided by a person (from the command
//! line, while the run goes on) or by the scene's policy, spent down to their limit.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agent_ecology::{
    kernel::{ErrorCode, EventLog, state},
    run::Simulation,
    scene::Scene,
    world::{components::Artifact, ids},
};
use serde_json::{Value, json};

use super::{act, act_ok, mcp::filesystem_server, sim};

/// Asks for the `files` capability once, then reads `PATH` through `mcp_files`
/// every step.
const ASKER: &str = r#"function step(view) {
    const mem = view.memory ? JSON.parse(view.memory) : {asked: false};
    const acts = [];
    if (!mem.asked) {
        mem.asked = true;
        acts.push({action: "invoke", id: "kernel_capabilities", method: "request",
                   args: {capability: "files", reason: REASON}});
    } else {
        acts.push({action: "invoke", id: "mcp_files", method: "read_file", args: {path: PATH}});
    }
    acts.unshift({action: "write", id: view.self, content: JSON.stringify(mem)});
    return acts;
}"#;

fn asker(id: &str, reason: &str, path: &Path) -> String {
    let code =
        ASKER.replace("REASON", &format!("{reason:?}")).replace("PATH", &format!("{:?}", path.display().to_string()));
    format!(
        r#"(id: {id:?}, agent: true, scrip: 10, disk_bytes: 100000, code: {code:?}, interface: (tools: [(name: "step")])),"#
    )
}

/// A world whose filesystem server needs the `files` capability, with `principals`.
fn scene(root: &Path, clock: &str, capabilities: &str, principals: &str) -> String {
    format!(
        r#"Scene(
  config: (
    llm: (clock: {clock}),
    mcp: (servers: {{"files": (command: {command:?}, args: [{root:?}], scrip_per_call: 1, capability: "files")}}),
    {capabilities}
  ),
  principals: [{principals}],
)"#,
        command = filesystem_server().display().to_string(),
        root = root.display().to_string(),
    )
}

fn files() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("notes.txt"), "the shared notes").unwrap();
    (dir, root)
}

fn ecology(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ecology")).args(args).output().expect("the binary runs")
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_request_approved_from_the_command_line_is_usable_in_the_next_step_and_a_denied_one_never() {
    let (_files, root) = files();
    let dir = tempfile::tempdir().unwrap();
    let notes = root.join("notes.txt");
    let principals =
        format!("{}{}", asker("ann", "to read the shared notes", &notes), asker("bob", "curiosity", &notes));
    let scene_path = dir.path().join("ask.ron");
    std::fs::write(&scene_path, scene(&root, "Realtime", "", &principals)).unwrap();
    let control = dir.path().join("control");
    let events = dir.path().join("events.jsonl");
    // Realtime at 4× : 60 simulated seconds take 15 s, time enough to decide.
    let run = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .args(["run", scene_path.to_str().unwrap(), "--until", "60", "--speed", "4", "--quiet"])
        .args(["--control", control.to_str().unwrap(), "--events", events.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let control = control.to_str().unwrap();

    // Both requests show up, pending, in the list.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        assert!(Instant::now() < deadline, "the requests never showed up");
        let out = ecology(&["capabilities", "list", "--control", control, "--json"]);
        if out.status.success() {
            let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            if listed.len() == 2 {
                break listed;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(listed.iter().all(|r| r["status"] == "pending"), "{listed:?}");
    let id_of = |who: &str| listed.iter().find(|r| r["principal"] == who).unwrap()["id"].as_u64().unwrap().to_string();
    let text = String::from_utf8(ecology(&["capabilities", "list", "--control", control]).stdout).unwrap();
    assert!(text.contains("ann asks for files") && text.contains("\"to read the shared notes\""), "{text}");

    let out = ecology(&["capabilities", "approve", &id_of("ann"), "--control", control]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved"));
    let out = ecology(&["capabilities", "deny", &id_of("bob"), "--note", "not for curiosity", "--control", control]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Bad input: no such request; a decided one (once the world has applied it).
    let out = ecology(&["capabilities", "approve", "99", "--control", control]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no capability request 99"));

    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ecology(&["capabilities", "approve", &id_of("bob"), "--control", control]);
    assert_eq!(out.status.code(), Some(2), "bob's request was decided");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already decided"));

    let events = lines_of(&events);
    let find = |kind: &str| events.iter().filter(|e| e["type"] == kind).cloned().collect::<Vec<_>>();
    let granted = find("CAPABILITY_GRANTED");
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["payload"]["principal"], "ann");
    assert_eq!(granted[0]["payload"]["by"], "a person");
    let denied = find("CAPABILITY_DENIED");
    assert_eq!(denied[0]["payload"]["principal"], "bob");
    assert_eq!(denied[0]["payload"]["note"], "not for curiosity");
    let granted_at = granted[0]["time"].as_f64().unwrap();

    // ann tries to read every step: she was refused up to the step before the grant,
    // never from the step that applied it on, and her reads went through. (When a
    // read's answer arrives depends on the server: a realtime run does not wait.)
    let calls: Vec<&Value> = events.iter().filter(|e| e["type"] == "MCP_CALL").collect();
    assert!(!calls.is_empty(), "ann read the notes");
    assert!(calls.iter().all(|c| c["payload"]["principal"] == "ann"), "only ann: {calls:?}");
    let first_read = calls.iter().map(|c| c["time"].as_f64().unwrap()).fold(f64::MAX, f64::min);
    assert!(first_read >= granted_at, "read at {first_read}, granted at {granted_at}");
    let refused = |who: &str| {
        events
            .iter()
            .filter(|e| e["type"] == "ACTION_FAILED" && e["actor"] == who)
            .filter(|e| e.to_string().contains("lacks the \\\"files\\\" capability"))
            .map(|e| e["time"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(refused("ann").iter().all(|&t| t < granted_at), "ann was refused only before the grant");
    let last_refusal = refused("ann").into_iter().fold(f64::MIN, f64::max);
    assert!(last_refusal >= granted_at - 1.0, "refused at {last_refusal}, the step before {granted_at}");
    assert!(refused("bob").iter().any(|&t| t > granted_at + 10.0), "bob is still refused long after");

    // The decisions are kept as scene interventions, to replay the run with them:
    // the same run in lockstep, with nobody deciding, grants and denies as the person
    // did, at the same moments.
    let kept_path = Path::new(control).join("interventions.ron");
    let kept = std::fs::read_to_string(&kept_path).unwrap();
    assert_eq!(kept.matches("DecideCapability").count(), 2, "{kept}");
    let again = dir.path().join("again.jsonl");
    let out = ecology(&[
        "run",
        scene_path.to_str().unwrap(),
        "--until",
        "60",
        "--clock",
        "lockstep",
        "--quiet",
        "--interventions",
        kept_path.to_str().unwrap(),
        "--events",
        again.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = lines_of(&again);
    let decided = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["type"] == "CAPABILITY_GRANTED" || e["type"] == "CAPABILITY_DENIED")
            .map(|e| (e["type"].clone(), e["payload"]["principal"].clone(), e["time"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(decided(&again), decided(&events));
    assert!(again.iter().any(|e| e["type"] == "MCP_CALL" && e["payload"]["principal"] == "ann"));

    // A broken interventions file is named, with the line and column.
    let broken = dir.path().join("broken.ron");
    std::fs::write(&broken, "(at: 1.0, system: Some(GrantScrip(to: \"ann\", amount: 5))),\n(at: oops),\n").unwrap();
    let out =
        ecology(&["run", scene_path.to_str().unwrap(), "--steps", "1", "--interventions", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.ron:2:"), "{stderr}");
}

/// A principal making requests from outside any step.
fn requester_world(capabilities: &str) -> Simulation {
    let root = std::env::temp_dir();
    sim(&scene(&root, "Lockstep", capabilities, r#"(id: "ann", scrip: 10), (id: "bob", scrip: 10)"#))
}

fn request(
    sim: &mut Simulation,
    who: &str,
    capability: &str,
    limit: Option<u64>,
) -> agent_ecology::kernel::ActionResult {
    let args = json!({"capability": capability, "reason": "work", "limit": limit});
    let args = if limit.is_none() { json!({"capability": capability, "reason": "work"}) } else { args };
    act(sim, who, &format!(r#"{{"action":"invoke","id":"kernel_capabilities","method":"request","args":{args}}}"#))
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent()
        .filter(|e| e.kind.type_name() == kind)
        .map(|e| serde_json::to_value(e).unwrap()["payload"].clone())
        .collect()
}

/// An invoke of `mcp_files.read_file` on a new file `name` in the temporary directory.
fn read_file_action(name: &str) -> String {
    let notes = std::env::temp_dir().join(name);
    std::fs::write(&notes, "x").unwrap();
    let args = json!({"path": notes.display().to_string()});
    format!(r#"{{"action":"invoke","id":"mcp_files","method":"read_file","args":{args}}}"#)
}

#[test]
fn requests_are_public_and_checked() {
    let mut sim = requester_world("");
    let first = request(&mut sim, "ann", "files", Some(5));
    assert!(first.success, "{first:?}");
    assert_eq!(first.result.as_ref().unwrap()["status"], "pending");
    // One open request per capability; unknown capabilities are refused with the known ones.
    let again = request(&mut sim, "ann", "files", None);
    assert_eq!(again.error_code(), Some(ErrorCode::AlreadyExists));
    let unknown = request(&mut sim, "ann", "root_access", None);
    assert_eq!(unknown.error_code(), Some(ErrorCode::InvalidArgs));
    assert!(unknown.error.unwrap().message.contains("can_call_llm, files"));
    // Anyone sees everyone's requests.
    let listed = act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"kernel_capabilities","method":"list"}"#);
    let listed = listed.result.unwrap();
    assert_eq!(listed["requests"][0]["principal"], "ann");
    assert_eq!(listed["requests"][0]["reason"], "work");
    assert_eq!(events(&sim, "CAPABILITY_REQUESTED").len(), 1);
}

#[test]
fn a_policy_decides_at_once_and_a_grant_is_spent_down_to_its_limit() {
    let mut sim = requester_world(
        r#"capabilities: (policy: {"files": Approve(limit: 2)}, otherwise: Deny, grantable: ["lab"]),"#,
    );
    let granted = request(&mut sim, "ann", "files", Some(10));
    assert_eq!(granted.result.as_ref().unwrap()["status"], "granted", "{granted:?}");
    assert_eq!(granted.result.as_ref().unwrap()["granted_limit"], 2, "the policy caps what was asked");
    let denied = request(&mut sim, "bob", "lab", None);
    assert_eq!(denied.result.as_ref().unwrap()["status"], "denied");
    assert_eq!(events(&sim, "CAPABILITY_GRANTED")[0]["by"], "policy");

    // Each call costs 1 scrip, counted against the limit of 2: two calls, then none.
    sim.run_steps(1);
    let read = read_file_action("ecology-capability-test.txt");
    act_ok(&mut sim, "ann", &read);
    act_ok(&mut sim, "ann", &read);
    let third = act(&mut sim, "ann", &read);
    assert_eq!(third.error_code(), Some(ErrorCode::AccessDenied), "{third:?}");
    assert_eq!(events(&sim, "CAPABILITY_EXHAUSTED").len(), 1);
    assert_eq!(state::balance(sim.world(), "ann").unwrap(), 8);
    // And it may be asked for again.
    let again = request(&mut sim, "ann", "files", None);
    assert_eq!(again.result.as_ref().unwrap()["status"], "granted");
}

#[test]
fn a_saved_world_keeps_its_grants_with_what_is_left_of_their_limits() {
    let mut sim = requester_world(r#"capabilities: (policy: {"files": Approve(limit: 2)}, grantable: ["lab"]),"#);
    request(&mut sim, "ann", "files", None);
    let waiting = request(&mut sim, "bob", "lab", None);
    assert_eq!(waiting.result.as_ref().unwrap()["status"], "pending");
    sim.run_steps(1);
    let read = read_file_action("ecology-saved-grant-test.txt");
    act_ok(&mut sim, "ann", &read);

    // One scrip of the two is left; bob's open request stays behind.
    let text = sim.save_scene().to_ron_string().unwrap();
    let saved: Value = serde_json::to_value(Scene::from_ron_str("saved.ron", &text).unwrap().file()).unwrap();
    let ann = saved["principals"].as_array().unwrap().iter().find(|p| p["id"] == "ann").unwrap();
    assert_eq!(ann["grants"], json!({"files": 1}), "{text}");
    let mut reloaded = Simulation::new(&Scene::from_ron_str("saved.ron", &text).unwrap(), None).unwrap();
    let listed = act_ok(&mut reloaded, "bob", r#"{"action":"invoke","id":"kernel_capabilities","method":"list"}"#);
    assert_eq!(listed.result.unwrap()["requests"], json!([]));
    reloaded.run_steps(1);
    act_ok(&mut reloaded, "ann", &read);
    let spent = act(&mut reloaded, "ann", &read);
    assert_eq!(spent.error_code(), Some(ErrorCode::AccessDenied), "{spent:?}");
    assert_eq!(events(&reloaded, "CAPABILITY_EXHAUSTED").len(), 1);
}

#[test]
fn a_scene_granting_what_cannot_be_asked_for_is_refused_where_it_says_so() {
    let root = std::env::temp_dir();
    let text = scene(&root, "Lockstep", "", "(id: \"ann\",\n  grants: {\"root_access\": None}),");
    let err = Scene::from_ron_str("granted.ron", &text).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("granted.ron:8:") && err.contains("\"root_access\" cannot be granted"), "{err}");
    assert!(err.contains("can_call_llm, files"), "{err}");
    let text = scene(&root, "Lockstep", "", "(id: \"ann\", grants: {\"files\": Some(0)}),");
    let err = Scene::from_ron_str("granted.ron", &text).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("nothing left to spend"), "{err}");
}

#[test]
fn the_example_scout_goes_on_when_a_person_grants_its_request_later() {
    // `scenes/outside_tools.ron` with nobody's policy: the request waits until a
    // person grants it (here at 10 s, as `ecology capabilities approve` would).
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes/outside_tools.ron");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("../mcp/node_modules/.bin/mcp-server-filesystem", &filesystem_server().display().to_string())
        .replace(r#"capabilities: (policy: {"files": Approve(limit: 20)}),"#, "")
        .replace(
            "\n  principals: [",
            "\n  interventions: [(at: 10.0, system: DecideCapability(request: 1, approve: true, limit: 20))],\n  principals: [",
        );
    let path = dir.path().join("scene.ron");
    std::fs::write(&path, text).unwrap();
    let mut sim = Simulation::new(&Scene::load(&path).unwrap(), None).unwrap();
    sim.run_steps(40);
    sim.end_thinking().unwrap();
    assert_eq!(events(&sim, "CAPABILITY_GRANTED").len(), 1);
    let entity = ids::lookup(sim.world(), "scout").unwrap();
    let memory: Value = serde_json::from_str(sim.world().get::<Artifact>(entity).unwrap().content()).unwrap();
    assert_eq!(memory["phase"], "done", "{memory}");
    assert_eq!(memory["files"], json!(["scene.ron"]), "it listed the directory it may read: {memory}");
    assert!(ids::lookup(sim.world(), "scout_notes").is_some(), "and wrote down what it read");
}
