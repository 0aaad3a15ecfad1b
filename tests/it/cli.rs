//! The `ecology` binary as a user runs it.

use std::process::{Command, Output};

fn ecology(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecology")).args(args).output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bare_command_without_a_display_says_so_and_runs_the_default_scene_headless() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Agent Ecology — default (seed 42)"), "{text}");
    assert!(text.contains("ran 600 steps"), "{text}");
    assert!(text.contains("checksum "), "{text}");
    if cfg!(feature = "gui") {
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("no display") && err.contains("running headless"), "{err}");
    }
}

#[test]
fn report_has_the_documented_fields() {
    let out = ecology(&["run", "--report", "-", "--steps", "50", "--seed", "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is only the JSON report");
    assert_eq!(report["seed"], 9);
    assert_eq!(report["steps"], 50);
    assert_eq!(report["sim_time_secs"], 50.0);
    // A dozen agents, each stepping at most once a step (every few seconds, or less
    // when asleep), for 50 steps.
    let agent_steps = report["agent_steps"].as_u64().unwrap();
    assert!((12..=13 * 50).contains(&agent_steps), "{agent_steps}");
    let alice = &report["principals"]["alice"];
    for key in ["scrip", "resources", "frozen", "owned_artifacts"] {
        assert!(alice.get(key).is_some(), "principal lacks {key}");
    }
    assert!(alice["resources"]["llm_budget"].is_u64());
    let tool = &report["artifacts"]["text_tools"];
    for key in ["owner", "deleted", "invoke_count", "content_bytes"] {
        assert!(tool.get(key).is_some(), "artifact lacks {key}");
    }
    assert!(report["events"]["total"].as_u64().unwrap() > 0);
    assert!(report["events"]["by_type"]["INTERVENTION"].as_u64().unwrap() > 0);
    assert!(report["scrip_supply"].is_u64());
    assert_eq!(report["minted_total"], 0);
    assert_eq!(report["checksum"].as_str().unwrap().len(), 64);
    // The summary went to stderr, keeping stdout parseable.
    assert!(stderr(&out).contains("checksum"));
}

#[test]
fn events_file_and_until() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let report = dir.path().join("report.json");
    let out = ecology(&[
        "run",
        "--until",
        "100",
        "--events",
        events.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "--quiet prints nothing");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["sim_time_secs"], 100.0);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, report["events"]["total"].as_u64().unwrap());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 1);
        for key in ["time", "actor", "type", "payload"] {
            assert!(line.get(key).is_some(), "event lacks {key}: {line}");
        }
    }
    assert!(lines.iter().all(|l| l["time"].as_f64().unwrap() < 100.0));
}

#[test]
fn validate_accepts_good_scenes_and_points_at_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ron");
    std::fs::write(&good, "Scene(principals: [(id: \"a\")])").unwrap();
    let out = ecology(&["validate", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok (1 principals"));

    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, "Scene(\n  principals: [(id: \"a\", scirp: 1)],\n)").unwrap();
    let out = ecology(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:2:", bad.display())), "{err}");
    assert!(err.contains("scirp"), "{err}");

    let out = ecology(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = ecology(&["validate", dir.path().join("missing.ron").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.ron"));
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(ecology(&["run", "--until", "-3"]).status.code(), Some(2));
    assert_eq!(ecology(&["run", "--steps", "many"]).status.code(), Some(2));
    assert_eq!(ecology(&["run", "--steps", "1", "--until", "2"]).status.code(), Some(2));
    assert_eq!(ecology(&["fly"]).status.code(), Some(2));
    let out = ecology(&["run", "--steps", "1", "--events", "/nonexistent/dir/e.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/dir/e.jsonl"));
}

#[test]
fn saved_scene_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.ron");
    let out = ecology(&["run", "--steps", "100", "--save-scene", saved.to_str().unwrap(), "--report", "-", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let at_save: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = ecology(&["validate", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ecology(&["run", saved.to_str().unwrap(), "--steps", "0", "--report", "-", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(at_save["scrip_supply"], loaded["scrip_supply"]);
    assert_eq!(at_save["minted_total"], loaded["minted_total"]);
    for (id, principal) in at_save["principals"].as_object().unwrap() {
        // Sealed bids are carried over, held as they were.
        for field in ["scrip", "bids_held", "resources"] {
            assert_eq!(principal[field], loaded["principals"][id][field], "{id}.{field}");
        }
    }
    let out = ecology(&["run", saved.to_str().unwrap(), "--steps", "10", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .args(["run", "--report", "-", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn warnings_are_shown_but_do_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("typo.ron");
    std::fs::write(
        &scene,
        "Scene(\n  principals: [(id: \"a\")],\n  interventions: [(at: 1.0, as: \"b\", do: Noop)],\n)",
    )
    .unwrap();
    let out = ecology(&["validate", scene.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stderr(&out).contains(&format!("warning: {}:3:", scene.display())), "{}", stderr(&out));
    let out = ecology(&["run", scene.to_str().unwrap(), "--steps", "3"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("warning:"), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 failed"), "{}", stdout(&out));
    let out = ecology(&["run", scene.to_str().unwrap(), "--steps", "3", "--quiet"]);
    assert!(out.stderr.is_empty());
}

#[test]
fn the_default_world_has_an_economy_and_its_story_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let metrics = dir.path().join("kpis.csv");
    let out = ecology(&[
        "run",
        "--until",
        "600",
        "--events",
        events.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
        "--report",
        "-",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let economy = &report["economy"];
    assert!(economy["mint_resolutions"].as_u64().unwrap() >= 5, "{economy}");
    assert!(economy["invocations_by_others"].as_u64().unwrap() >= 20, "{economy}");
    assert!(economy["freezes"].as_u64().unwrap() >= 1, "{economy}");
    assert!(economy["rescues"].as_u64().unwrap() >= 1, "{economy}");
    let gini = economy["kpis"]["gini"].as_f64().unwrap();
    assert!(gini > 0.0 && gini < 1.0, "{economy}");
    assert!(economy["kpis"]["velocity"].as_f64().unwrap() > 0.0, "{economy}");
    assert!(report["minted_total"].as_u64().unwrap() > 0);
    let by_type = &report["events"]["by_type"];
    for kind in ["UBI_PAID", "ESCROW_SOLD", "DEBT_ACCEPTED", "MINT_BID"] {
        assert!(by_type[kind].as_u64().unwrap_or(0) > 0, "no {kind} in {by_type}");
    }
    // Supply = initial + minted + granted, whatever happened (alice, frank, grace and
    // carol start with the default 100).
    let initial: u64 = 100 * 4 + 150 + 40 + 30 + 25 + 120 + 200 + 100 + 120 + 20;
    assert_eq!(
        report["scrip_supply"].as_u64().unwrap(),
        initial + report["minted_total"].as_u64().unwrap() + report["granted_total"].as_u64().unwrap()
    );

    // The time series: a header and one row per 10 steps.
    let csv = std::fs::read_to_string(&metrics).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("step,time_secs,gini,velocity,"));
    assert_eq!(lines.count(), 60);

    // The story of the run, from its events.
    let story = dir.path().join("story.txt");
    let out = ecology(&["report", events.to_str().unwrap(), "--out", story.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let story = std::fs::read_to_string(story).unwrap();
    for part in ["Who earned what", "Capital", "The mint", "Trade and credit", "Freezes and rescues", "Gini"] {
        assert!(story.contains(part), "the story lacks {part:?}:\n{story}");
    }
    assert!(story.contains("word_stats (made by frank)"), "{story}");
    assert!(story.contains("summary → text_tools"), "code built on code is told:\n{story}");

    // A stream that is not events is refused with its line.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"seq\":1}\nnot json\n").unwrap();
    let out = ecology(&["report", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.jsonl:1:"), "{}", stderr(&out));
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The error lines of a run that checked what it reaches before starting.
fn error_lines(out: &Output) -> Vec<String> {
    stderr(out).lines().filter(|l| l.starts_with("error: ")).map(str::to_owned).collect()
}

#[test]
fn a_run_whose_model_server_does_not_answer_stops_before_the_first_step() {
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    let out = ecology(&["run", "scenes/llm_market.ron", "--llm-endpoint", &url, "--llm-model", "tiny", "--steps", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(&format!("model tiny (endpoint chosen, {url}) does not answer")), "{lines:?}");
    assert!(lines[0].to_lowercase().contains("connection refused"), "{lines:?}");
    assert!(lines[1].contains("--allow-offline"), "{lines:?}");
    assert!(stdout(&out).is_empty(), "nothing ran: {}", stdout(&out));
}

#[test]
fn a_key_variable_that_is_not_set_and_a_missing_mcp_server_are_each_said() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.ron");
    std::fs::write(
        &scene,
        r#"Scene(config: (
            llm: (default_model: "gpt-4o-mini"),
            mcp: (servers: {"files": (command: "./node_modules/.bin/not-installed")}),
        ))"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .env_remove("OPENAI_API_KEY")
        .args(["run", scene.to_str().unwrap(), "--steps", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("model gpt-4o-mini (endpoint openai")
            && lines[0].contains("$OPENAI_API_KEY, which is not set")
    );
    assert!(lines[1].contains("MCP server files: its command ./node_modules/.bin/not-installed"), "{lines:?}");
    assert!(lines[1].contains("does not exist"), "{lines:?}");
    // Anyway: the world runs, and what could not be reached fails at no cost.
    let out = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .env_remove("OPENAI_API_KEY")
        .args(["run", scene.to_str().unwrap(), "--steps", "3", "--allow-offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mcp_files: no tools, the server did not start"), "{}", stdout(&out));
}

#[test]
fn a_run_in_which_every_model_call_failed_says_why_and_fails() {
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    let out = ecology(&[
        "run",
        "scenes/llm_market.ron",
        "--llm-endpoint",
        &url,
        "--llm-model",
        "tiny",
        "--steps",
        "2",
        "--allow-offline",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("thinking (lockstep): 0 calls, 4 failed"), "{summary}");
    assert!(summary.contains("tiny: 0 calls, 4 failed at the notional $0.10/$0.10 per million tokens"), "{summary}");
    let first = summary.lines().find(|l| l.trim_start().starts_with("first failure: ")).expect(&summary);
    assert!(first.contains("unavailable: chosen: ") && first.contains("gave up after 3 attempts"), "{first}");
    let err = stderr(&out);
    assert!(err.contains("error: every call to a language model failed (4); the first: unavailable: chosen"), "{err}");
}
