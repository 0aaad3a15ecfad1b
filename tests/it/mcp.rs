//! MCP servers as gateway artifacts, against the real `@modelcontextprotocol/server-filesystem`
//! (an npm package, installed under mcp/ by `.ci/run`, or here on first use).

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use agent_ecology::{
    bridge::{BridgeOptions, mcp::McpBridge},
    kernel::{EventLog, quotas, state},
    run::Simulation,
    world::{components::Artifact, ids},
};
use serde_json::Value;

use super::sim;

/// The filesystem server's executable, installed on first use.
pub fn filesystem_server() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp");
            let bin = dir.join("node_modules/.bin/mcp-server-filesystem");
            if !bin.exists() {
                let status = std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&dir)
                    .status()
                    .expect("npm installs the test MCP servers (install Node.js and npm)");
                assert!(status.success(), "npm ci --prefix mcp failed");
            }
            assert!(bin.exists(), "{} is not there after npm ci", bin.display());
            bin
        })
        .clone()
}

/// Reads `PATHS` one at a time through `mcp_files` (after listing its tools), and
/// keeps in its memory the tools, every text it got back and every failure.
const READER: &str = r#"function step(view) {
    const mem = view.memory ? JSON.parse(view.memory)
        : {tools: null, asked: 0, waiting: false, texts: [], failures: [], pending: []};
    for (const r of view.inbox) {
        if (r.request !== undefined) {
            mem.waiting = false;
            if (r.success) mem.texts.push(r.result.text); else mem.failures.push(r.error.message);
        } else if (r.action === "invoke" && r.success && r.result.tools) {
            mem.tools = r.result.tools.map(t => t.name);
        } else if (r.action === "invoke" && r.success && r.result.status === "pending") {
            mem.pending.push(r.result.request);
        } else if (r.action === "invoke" && !r.success) {
            mem.waiting = false;
            mem.failures.push(r.error.message);
        }
    }
    const acts = [];
    if (mem.tools === null) {
        acts.push({action: "invoke", id: "mcp_files", method: "describe"});
    } else if (!mem.waiting && mem.asked < PATHS.length) {
        acts.push({action: "invoke", id: "mcp_files", method: "read_file", args: {path: PATHS[mem.asked]}});
        mem.asked += 1;
        mem.waiting = true;
    }
    acts.unshift({action: "write", id: view.self, content: JSON.stringify(mem)});
    return acts;
}"#;

/// A scene with the filesystem server (started by `command`) allowed into `root`,
/// and a reader of `paths`.
fn scene(command: &Path, root: &Path, paths: &[PathBuf], clock: &str) -> String {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let code = READER.replace("PATHS", &serde_json::to_string(&paths).unwrap());
    format!(
        r#"Scene(
  config: (
    llm: (clock: {clock}),
    mcp: (
      servers: {{"files": (command: {command:?}, args: [{root:?}], scrip_per_call: 2)}},
      call_timeout_secs: 20.0,
    ),
  ),
  principals: [
    (id: "reader", agent: true, scrip: 10, quota: {{"mcp_calls": 5}}, disk_bytes: 100000,
     code: {code:?}, interface: (tools: [(name: "step")])),
    (id: "tester", scrip: 20, quota: {{"mcp_calls": 5}}),
  ],
)"#,
        command = command.display().to_string(),
        root = root.display().to_string(),
    )
}

fn memory(sim: &Simulation) -> Value {
    let entity = ids::lookup(sim.world(), "reader").unwrap();
    let text = sim.world().get::<Artifact>(entity).unwrap().content().to_owned();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn events(sim: &Simulation, kind: &str) -> Vec<Value> {
    let log = sim.world().resource::<EventLog>();
    log.recent()
        .filter(|e| e.kind.type_name() == kind)
        .map(|e| serde_json::to_value(e).unwrap()["payload"].clone())
        .collect()
}

fn texts(sim: &Simulation) -> Vec<String> {
    memory(sim)["texts"]
        .as_array()
        .map(|t| t.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// A directory the server may read, with `hello.txt` in it.
fn files() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("hello.txt"), "hello from outside the world").unwrap();
    (dir, root)
}

#[test]
fn an_agent_lists_the_tools_and_reads_a_file_through_the_gateway() {
    let (_dir, root) = files();
    let mut sim = sim(&scene(&filesystem_server(), &root, &[root.join("hello.txt")], "Lockstep"));
    sim.run_steps(6);

    let ready = events(&sim, "MCP_SERVER_READY");
    assert_eq!(ready.len(), 1, "{ready:?}");
    let mem = memory(&sim);
    let tools: Vec<&str> = mem["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tools.contains(&"read_file") && tools.contains(&"list_directory"), "{tools:?}");
    assert_eq!(mem["pending"].as_array().unwrap().len(), 1, "the call returned at once: {mem}");
    assert_eq!(texts(&sim), ["hello from outside the world"], "{mem}");

    // Charged: its mcp_calls rate (describing is free) and the call's scrip, to the kernel.
    assert_eq!(quotas::get_usage(sim.world(), "reader", "mcp_calls").unwrap(), 1);
    assert_eq!(state::balance(sim.world(), "reader").unwrap(), 8);
    let call = &events(&sim, "MCP_CALL")[0];
    assert_eq!(call["principal"], "reader");
    assert_eq!(call["tool"], "read_file");
    assert_eq!(call["scrip"], 2);
    assert!(call["excerpt"].as_str().unwrap().contains("hello from outside"), "{call}");
    agent_ecology::run::audit(sim.world()).unwrap();
}

#[test]
fn the_gateway_checks_arguments_against_the_servers_schema_and_its_rate() {
    let (_dir, root) = files();
    let mut sim = sim(&scene(&filesystem_server(), &root, &[], "Lockstep"));
    sim.run_steps(1);
    let bad = super::act(&mut sim, "tester", r#"{"action":"invoke","id":"mcp_files","method":"read_file","args":{}}"#);
    assert!(!bad.success);
    assert!(bad.error.unwrap().message.contains("path"), "the schema names the missing field");
    // A caller that is not an agent stepping waits for the result.
    for _ in 0..5 {
        let path = root.join("hello.txt").display().to_string();
        let args = serde_json::json!({"path": path});
        let ok = super::act_ok(
            &mut sim,
            "tester",
            &format!(r#"{{"action":"invoke","id":"mcp_files","method":"read_file","args":{args}}}"#),
        );
        assert_eq!(ok.result.unwrap()["text"], "hello from outside the world");
    }
    // The sixth call in the window is over its mcp_calls quota of 5.
    let path = root.join("hello.txt").display().to_string();
    let over = super::act(
        &mut sim,
        "tester",
        &format!(r#"{{"action":"invoke","id":"mcp_files","method":"read_file","args":{{"path":{path:?}}}}}"#),
    );
    assert_eq!(over.error_code(), Some(agent_ecology::kernel::ErrorCode::QuotaExceeded), "{over:?}");
    assert_eq!(state::balance(sim.world(), "tester").unwrap(), 10, "five calls at 2 scrip");
}

/// The pid of the running filesystem server.
fn server_pid(sim: &Simulation) -> Option<u32> {
    sim.world().resource::<McpBridge>().servers().first().filter(|s| s.up).and_then(|s| s.pid)
}

#[test]
fn a_killed_server_fails_the_call_in_flight_and_comes_back() {
    let (_dir, root) = files();
    // Reading a FIFO blocks in the server until someone writes to it: a call that
    // stays in flight until the server is killed.
    let fifo = root.join("blocked");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let paths = [root.join("hello.txt"), fifo, root.join("hello.txt")];
    let mut sim = sim(&scene(&filesystem_server(), &root, &paths, "Realtime"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let step_until = |sim: &mut Simulation, what: &str, done: &dyn Fn(&Simulation) -> bool| {
        while !done(sim) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", memory(sim));
            sim.step();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    step_until(&mut sim, "the first read", &|s| texts(s).len() == 1);
    step_until(&mut sim, "the blocked read", &|s| memory(s)["asked"] == 2);
    let first = server_pid(&sim).expect("the server is up");
    std::thread::sleep(Duration::from_millis(300));
    let budget_before = state::balance(sim.world(), "reader").unwrap();
    assert_eq!(unsafe { libc::kill(first as i32, libc::SIGKILL) }, 0);

    step_until(&mut sim, "the failure", &|s| !memory(s)["failures"].as_array().unwrap().is_empty());
    let failure = memory(&sim)["failures"][0].as_str().unwrap().to_owned();
    assert!(failure.contains("went away") || failure.contains("exited"), "{failure}");
    assert_eq!(state::balance(sim.world(), "reader").unwrap(), budget_before, "a failed call costs nothing");
    let failed = events(&sim, "MCP_CALL_FAILED");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["reason"], "unavailable");
    // The summary's line: how many failed, and why the first did.
    let usage = sim.report().mcp["files"].clone();
    assert_eq!(usage.failed, 1);
    assert!(usage.first_failure.as_deref().is_some_and(|why| why.starts_with("unavailable: ")), "{usage:?}");

    // The supervisor starts it again, and the next call goes through.
    step_until(&mut sim, "the read after the restart", &|s| texts(s).len() == 2);
    let status = sim.world().resource::<McpBridge>().servers();
    assert!(status[0].starts >= 2, "{status:?}");
    let second = server_pid(&sim).expect("the server is back");
    assert_ne!(first, second);
    sim.end_thinking().unwrap();
}

/// `dir/server.sh`, a script that starts the filesystem server (a command a scene can
/// name, and a test can take away).
fn server_script(dir: &Path) -> PathBuf {
    let script = dir.join("server.sh");
    std::fs::write(&script, format!("#!/bin/sh\nexec {:?} \"$@\"\n", filesystem_server())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    script
}

/// Six steps of `sim`, recording its outside calls into `cache` or replaying them.
fn six_steps(mut sim: Simulation, cache: &Path, replay: bool) -> Simulation {
    sim.use_bridge(BridgeOptions { cache_dir: Some(cache.to_owned()), replay }).unwrap();
    sim.run_steps(6);
    sim.end_thinking().unwrap();
    sim
}

#[test]
fn a_recorded_run_replays_without_the_server() {
    let (_dir, root) = files();
    let cache = tempfile::tempdir().unwrap();
    // The scene starts the server through a script, which is gone when replaying.
    let script = server_script(&root);
    let text = scene(&script, &root, &[root.join("hello.txt")], "Lockstep");

    let live = six_steps(sim(&text), cache.path(), false);
    assert_eq!(texts(&live), ["hello from outside the world"]);
    let checksum = live.checksum();
    drop(live);
    std::fs::remove_file(&script).unwrap();
    std::fs::remove_file(root.join("hello.txt")).unwrap();

    let replay = six_steps(sim(&text), cache.path(), true);
    assert_eq!(replay.fatal_error(), None);
    assert_eq!(texts(&replay), ["hello from outside the world"]);
    assert!(replay.world().resource::<McpBridge>().servers().is_empty(), "no server was started");
    assert_eq!(replay.checksum(), checksum, "the replay is the recorded run");
}

#[test]
fn a_recording_replays_from_another_directory() {
    let (_dir, root) = files();
    let cache = tempfile::tempdir().unwrap();
    // The scene names its server by a path relative to itself.
    let first = tempfile::tempdir().unwrap();
    server_script(first.path());
    let text = scene(Path::new("./server.sh"), &root, &[root.join("hello.txt")], "Lockstep");
    let load = |dir: &Path| {
        let path = dir.join("scene.ron");
        std::fs::write(&path, &text).unwrap();
        Simulation::new(&agent_ecology::scene::Scene::load(&path).unwrap(), None).unwrap()
    };
    let live = six_steps(load(first.path()), cache.path(), false);
    assert_eq!(texts(&live), ["hello from outside the world"]);
    let checksum = live.checksum();
    drop(live);
    // Recorded files name no directory of this machine.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let recorded = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!recorded.contains(&first.path().display().to_string()), "{recorded}");
    }

    let second = tempfile::tempdir().unwrap();
    let replay = six_steps(load(second.path()), cache.path(), true);
    assert_eq!(replay.fatal_error(), None);
    assert_eq!(texts(&replay), ["hello from outside the world"]);
    assert_eq!(replay.checksum(), checksum, "the replay from elsewhere is the recorded run");
}

#[test]
fn a_server_that_cannot_start_leaves_a_gateway_without_tools_and_the_world_goes_on() {
    let (_dir, root) = files();
    let text = scene(Path::new("/nonexistent/mcp-server"), &root, &[root.join("hello.txt")], "Lockstep")
        .replace("call_timeout_secs: 20.0", "call_timeout_secs: 1.0, start_timeout_secs: 2.0");
    let mut sim = sim(&text);
    sim.run_steps(5);
    let failed = events(&sim, "MCP_SERVER_FAILED");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["message"].as_str().unwrap().contains("/nonexistent/mcp-server"), "{failed:?}");
    assert_eq!(memory(&sim)["tools"], serde_json::json!([]));
    assert!(sim.steps_done() == 5);
}

/// The memory server's executable (installed with the filesystem server).
fn memory_server() -> PathBuf {
    let files = filesystem_server();
    let bin = files.with_file_name("mcp-server-memory");
    assert!(bin.exists(), "{} is not there after npm ci", bin.display());
    bin
}

#[test]
fn principals_share_a_knowledge_graph_through_the_memory_server() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.jsonl");
    let text = format!(
        r#"Scene(
  config: (mcp: (servers: {{"memory": (command: {command:?}, env: {{"MEMORY_FILE_PATH": {graph:?}}}, scrip_per_call: 1)}})),
  principals: [(id: "ann", scrip: 10), (id: "bob", scrip: 10)],
)"#,
        command = memory_server().display().to_string(),
        graph = graph.display().to_string(),
    );
    let mut sim = sim(&text);
    sim.run_steps(1);
    let described = super::act_ok(&mut sim, "bob", r#"{"action":"invoke","id":"mcp_memory","method":"describe"}"#);
    let tools = described.result.unwrap()["tools"].clone();
    let names: Vec<&str> = tools.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"create_entities") && names.contains(&"search_nodes"), "{names:?}");

    let create = serde_json::json!({"entities": [
        {"name": "market", "entityType": "place", "observations": ["opens at dawn"]}
    ]});
    let created = super::act_ok(
        &mut sim,
        "ann",
        &format!(r#"{{"action":"invoke","id":"mcp_memory","method":"create_entities","args":{create}}}"#),
    );
    assert!(created.result.unwrap()["text"].as_str().unwrap().contains("market"));

    // What ann put in, bob finds.
    let found = super::act_ok(
        &mut sim,
        "bob",
        r#"{"action":"invoke","id":"mcp_memory","method":"search_nodes","args":{"query":"dawn"}}"#,
    );
    let found = found.result.unwrap();
    let text = found["text"].as_str().unwrap();
    let graph_found: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(graph_found["entities"][0]["name"], "market", "{found}");
    assert_eq!(graph_found["entities"][0]["observations"][0], "opens at dawn");
    assert!(std::fs::read_to_string(&graph).unwrap().contains("opens at dawn"), "the server kept it on disk");
    assert_eq!((state::balance(sim.world(), "ann").unwrap(), state::balance(sim.world(), "bob").unwrap()), (9, 9));
    assert_eq!(events(&sim, "MCP_CALL").len(), 2);
    sim.end_thinking().unwrap();
}
