//! Scenes: the default scene, timelines, round trips and broken files.

use agent_ecology::{
    kernel::{ErrorCode, EventLog},
    run::{Simulation, audit},
    scene::{Scene, SceneError},
};

use crate::sim;

fn error_of(ron: &str) -> SceneError {
    let scene = match Scene::from_ron_str("broken.ron", ron) {
        Ok(scene) => scene,
        Err(e) => return e,
    };
    scene.validate().err().unwrap_or_else(|| panic!("scene should be refused:\n{ron}"))
}

/// Asserts the error points at `line:col` of broken.ron and says `what`.
fn assert_error(ron: &str, line: usize, col: usize, what: &str) {
    let err = error_of(ron);
    let text = err.to_string();
    assert!(text.starts_with(&format!("broken.ron:{line}:{col}: ")), "wrong position: {text}");
    assert!(text.contains(what), "{text:?} should say {what:?}");
}

#[test]
fn default_scene_is_valid_and_balanced() {
    let scene = Scene::embedded_default().unwrap();
    let valid = scene.validate().unwrap();
    assert!(valid.principals.len() >= 5);
    assert!(!valid.interventions.is_empty());
    let mut sim = Simulation::new(&scene, None).unwrap();
    sim.run_steps(valid.config.steps);
    audit(sim.world()).unwrap();
    let report = sim.report();
    assert_eq!(report.interventions.pending, 0);
    assert_eq!(
        report.artifacts["text_tools"].code_bytes as usize,
        include_str!("../../assets/tools/text_tools.js").len()
    );
}

#[test]
fn timeline_produces_the_expected_report() {
    let mut sim = sim(r#"Scene(
        config: (dt_secs: 0.5),
        principals: [(id: "alice", scrip: 100), (id: "bob", scrip: 50), (id: "carol", scrip: 10)],
        artifacts: [(id: "menu", owner: "bob", content: "soup")],
        interventions: [
            (at: 3.0, as: "bob", do: Edit(id: "menu", old: "soup", new: "stew")),
            (at: 1.0, as: "alice", do: Transfer(to: "bob", amount: 30)),
            (at: 1.0, as: "bob", do: Transfer(to: "carol", amount: 70)),
            (at: 2.0, system: GrantScrip(to: "carol", amount: 5)),
            (at: 2.5, as: "carol", do: Delete(id: "menu")),
            (at: 4.0, system: Freeze(principal: "carol")),
            (at: 9.0, as: "carol", do: Noop),
        ],
    )"#);
    sim.run_steps(10);
    let report = sim.report();
    assert_eq!(report.steps, 10);
    assert_eq!(report.sim_time_secs, 5.0);
    // Same-time interventions run in file order: alice pays bob before bob pays carol.
    assert_eq!(report.principals["alice"].scrip, 70);
    assert_eq!(report.principals["bob"].scrip, 10);
    assert_eq!(report.principals["carol"].scrip, 85);
    assert_eq!(report.granted_total, 5);
    assert_eq!(report.scrip_supply, 165);
    assert!(report.principals["carol"].frozen);
    assert_eq!(report.principals["bob"].resources["disk_used"], 4, "the edit happened before the failed delete");
    assert_eq!(report.interventions.applied, 6);
    assert_eq!(report.interventions.failed, 1, "carol may not delete bob's menu");
    assert_eq!(report.interventions.pending, 1);
    assert_eq!(report.events.by_type["INTERVENTION"], 6);
    assert_eq!(report.events.by_type["ACTION_FAILED"], 1);
    assert_eq!(report.artifacts["menu"].content_bytes, 4);
    assert!(!report.artifacts["menu"].deleted);
    sim.run_steps(10);
    let report = sim.report();
    assert_eq!(report.events.by_type["ACTION_FAILED"], 2, "carol's noop fails: she is frozen");
    assert_eq!(report.interventions.pending, 0);
}

#[test]
fn round_trip_gives_the_same_world() {
    let scene = Scene::embedded_default().unwrap();
    let first = Simulation::new(&scene, None).unwrap();
    let text = first.save_scene().to_ron_string().unwrap();
    let reloaded = Scene::from_ron_str("saved.ron", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let second = Simulation::new(&reloaded, None).unwrap();
    assert_eq!(first.checksum(), second.checksum(), "saved scene:\n{text}");
    // ...and saving again gives the same text.
    assert_eq!(second.save_scene().to_ron_string().unwrap(), text);
}

#[test]
fn a_world_saved_mid_run_reloads_with_its_state() {
    let scene = Scene::embedded_default().unwrap();
    let mut sim = Simulation::new(&scene, None).unwrap();
    sim.run_steps(130);
    let text = sim.save_scene().to_ron_string().unwrap();
    let mut reloaded = Simulation::new(&Scene::from_ron_str("saved.ron", &text).unwrap(), None).unwrap();
    let (before, after) = (sim.report(), reloaded.report());
    // Holdings, quotas, ownership, freezes, sealed bids and invocation counts carry
    // over; timestamps and the event history stay behind: the saved scene is a new
    // start. Artifacts listed in escrow go back to their sellers (with their disk).
    assert!(before.economy.mint_bids_open > 0 && before.economy.escrow_listings > 0, "nothing pending to carry");
    assert_eq!(after.economy.mint_bids_open, before.economy.mint_bids_open);
    let escrow = sim.world().resource::<agent_ecology::economy::escrow::Escrow>();
    let seller = |id: &str| escrow.listing(id).map(|l| l.seller.to_string());
    for (id, p) in &before.principals {
        let q = &after.principals[id];
        assert_eq!((p.scrip, p.bids_held), (q.scrip, q.bids_held), "{id}");
        let mut owned = p.owned_artifacts.clone();
        owned.extend(before.artifacts.keys().filter(|a| seller(a).as_deref() == Some(id.as_str())).cloned());
        owned.sort();
        assert_eq!((&p.quota, p.frozen, &owned), (&q.quota, q.frozen, &q.owned_artifacts), "{id}");
        if !before.artifacts.keys().any(|a| seller(a).as_deref() == Some(id.as_str())) {
            assert_eq!(p.resources, q.resources, "{id}");
        }
    }
    for (id, a) in &before.artifacts {
        let b = &after.artifacts[id];
        let owner = seller(id).unwrap_or_else(|| a.owner.clone());
        assert_eq!(
            (&owner, a.kind, a.deleted, a.content_bytes, a.code_bytes, a.invoke_count, a.invoked_by_others),
            (&b.owner, b.kind, b.deleted, b.content_bytes, b.code_bytes, b.invoke_count, b.invoked_by_others),
            "{id}"
        );
    }
    assert_eq!(after.interventions.pending, before.interventions.pending);
    // The rest of the timeline runs, shifted so the saved moment is time zero.
    sim.run_steps(200);
    reloaded.run_steps(200);
    assert_eq!(sim.report().interventions.pending, 0);
    assert_eq!(reloaded.report().interventions.pending, 0);
    assert_eq!(reloaded.report().interventions.applied, before.interventions.pending);
    audit(sim.world()).unwrap();
    audit(reloaded.world()).unwrap();
}

/// The health indicators of a world and of the world its saved scene loads: equal at
/// the moment of saving (the loaded world's start), but for the clock.
#[test]
fn a_saved_world_starts_with_the_indicators_it_was_saved_with() {
    let mut sim = Simulation::new(&Scene::embedded_default().unwrap(), None).unwrap();
    sim.run_steps(300);
    let text = sim.save_scene().to_ron_string().unwrap();
    let loaded = Simulation::new(&Scene::from_ron_str("saved.ron", &text).unwrap(), None).unwrap();
    let indicators = |sim: &Simulation| {
        let mut kpis = serde_json::to_value(agent_ecology::economy::kpis::compute(sim.world())).unwrap();
        let fields = kpis.as_object_mut().unwrap();
        fields.remove("step");
        fields.remove("time_secs");
        kpis
    };
    let (saved, started) = (indicators(&sim), indicators(&loaded));
    assert_eq!(saved, started);
    // They are not trivial: the run traded, built on code, froze and bid.
    for field in ["velocity", "capital_depth", "reuse", "coordination_density", "specialisation", "minted_total"] {
        assert!(saved[field].as_f64().is_some_and(|v| v > 0.0), "{field} is {}", saved[field]);
    }
    assert!(sim.report().economy.mint_bids_open > 0, "the saved world had sealed bids to carry");
    // Saving the loaded world again gives the same history.
    let again = loaded.save_scene().to_ron_string().unwrap();
    let history = |text: &str| text[text.find("history:").unwrap()..].to_owned();
    assert_eq!(history(&again), history(&text));
}

#[test]
fn syntax_errors_have_positions() {
    assert_error("Scene(\n  principals: [\n    (id: \"a\",, )\n  ],\n)", 3, 14, "Expected identifier");
    assert_error("Scene(\n  principals: [(id: 5)],\n)", 2, 20, "Expected string");
}

#[test]
fn unknown_fields_are_errors() {
    assert_error("Scene(\n  principals: [\n    (id: \"a\", scrp: 5),\n  ],\n)", 3, 15, "scrp");
    assert_error("Scene(\n  config: (dt: 1.0),\n)", 2, 12, "expected one of `seed`, `dt_secs`");
    assert_error(
        "Scene(\n  interventions: [(at: 1.0, as: \"a\", do: Transfer(to: \"b\", amount: 1, from: \"c\"))],\n)",
        2,
        71,
        "`from`",
    );
}

#[test]
fn semantic_errors_name_the_entry_and_its_place() {
    let ron = "Scene(\n  principals: [\n    (id: \"alice\"),\n    (id: \"bob\", owner: \"zed\"),\n  ],\n)";
    assert_error(ron, 4, 17, "\"zed\" is not a principal");
    let ron =
        "Scene(\n  principals: [(id: \"alice\")],\n  artifacts: [\n    (id: \"doc\", owner: \"alicia\"),\n  ],\n)";
    assert_error(ron, 4, 17, "\"alicia\" is not a principal");
    let ron = "Scene(\n  principals: [(id: \"a\"), (id: \"a\")],\n)";
    assert_error(ron, 2, 32, "appears twice");
    let ron = "Scene(\n  principals: [(id: \"a\", owner: \"b c\"), (id: \"b c\")],\n)";
    assert_error(ron, 2, 26, "contains ' '");
    let ron = "Scene(\n  principals: [(id: \"kernel\")],\n)";
    assert_error(ron, 2, 21, "reserved");
    let ron = "Scene(\n  principals: [(id: \"has space\")],\n)";
    assert_error(ron, 2, 21, "contains ' '");
    let ron = "Scene(\n  principals: [(id: \"a\", disk_bytes: 3)],\n  artifacts: [(id: \"big\", owner: \"a\", content: \"abcd\")],\n)";
    assert_error(ron, 3, 20, "disk allocation is 3 bytes");
    let ron = "Scene(\n  principals: [(id: \"a\")],\n  artifacts: [(id: \"t\", owner: \"a\", code: \"x\")],\n)";
    assert_error(ron, 3, 37, "needs an interface");
    let ron = "Scene(\n  principals: [(id: \"a\")],\n  artifacts: [(id: \"t\", owner: \"a\", code_file: \"assets/nope.js\", interface: (tools: [(name: \"run\")]))],\n)";
    assert_error(ron, 3, 37, "cannot find \"assets/nope.js\"");
    let ron = "Scene(\n  principals: [(id: \"a\", quota: {\"cpux\": 5})],\n)";
    assert_error(ron, 2, 34, "not a rate");
    let ron = "Scene(\n  principals: [(id: \"a\")],\n  interventions: [(at: -1.0, as: \"a\", do: Noop)],\n)";
    assert_error(ron, 3, 20, "not a time");
    let ron = "Scene(\n  config: (dt_secs: 0.0),\n)";
    assert_error(ron, 2, 12, "at least 0.001");
    let ron = "Scene(\n  version: 7,\n)";
    assert_error(ron, 2, 3, "version 1");
}

#[test]
fn spawned_principals_may_act_later_in_the_timeline() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "a")],
        interventions: [
            (at: 0.0, as: "a", do: Spawn(id: "child", scrip: 10)),
            (at: 1.0, as: "child", do: Transfer(to: "a", amount: 4)),
        ],
    )"#);
    sim.run_steps(3);
    let report = sim.report();
    assert_eq!(report.principals["child"].scrip, 6);
    assert_eq!(report.interventions.failed, 0);
    assert_eq!(sim.world().resource::<EventLog>().by_type()["PRINCIPAL_SPAWNED"], 1);
}

#[test]
fn files_are_found_next_to_the_scene_and_in_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scenes/lib")).unwrap();
    std::fs::write(dir.path().join("scenes/lib/mine.js"), "function run(){ return 1 }").unwrap();
    let path = dir.path().join("scenes/s.ron");
    std::fs::write(
        &path,
        r#"Scene(principals: [(id: "a")], artifacts: [
            (id: "mine", owner: "a", code_file: "lib/mine.js", interface: (tools: [(name: "run")])),
            (id: "builtin", owner: "a", code_file: "assets/tools/text_tools.js", interface: (tools: [(name: "run")])),
        ])"#,
    )
    .unwrap();
    let sim = Simulation::new(&Scene::load(&path).unwrap(), None).unwrap();
    let report = sim.report();
    assert_eq!(report.artifacts["mine"].code_bytes, 26);
    assert!(report.artifacts["builtin"].code_bytes > 100);
}

/// What `scene.ron` at `dir` says of its artifact `x`'s `field`: the error, if any.
fn reading(dir: &std::path::Path, field: &str, value: &str) -> Result<(), SceneError> {
    let path = dir.join("scene.ron");
    let text = format!(
        "Scene(\n  principals: [(id: \"a\")],\n  artifacts: [\n    (id: \"x\", owner: \"a\", {field}: {value:?}),\n  ],\n)"
    );
    std::fs::write(&path, text).unwrap();
    Scene::load(&path)?.validate().map(|_| ())
}

#[test]
fn a_scene_reads_only_regular_files_within_its_directory_or_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Outside both trees: refused at the field, whatever the file is.
    for outside in ["/dev/zero", "/proc/self/environ", "/etc/hostname"] {
        let err = reading(dir.path(), "content_file", outside).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.position(), Some((4, 27)), "{text}");
        assert!(text.contains("outside the scene's directory and the working directory"), "{text}");
    }
    // A link inside the tree to a file outside it is outside.
    std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env")).unwrap();
    let err = reading(dir.path(), "content_file", "env").unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    // Inside: a directory, a pipe and an oversized file are not read.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    assert!(reading(dir.path(), "content_file", "sub").unwrap_err().to_string().contains("not a regular file"));
    let fifo = std::ffi::CString::new(dir.path().join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(reading(dir.path(), "code_file", "pipe").unwrap_err().to_string().contains("not a regular file"));
    let big = std::fs::File::create(dir.path().join("big.txt")).unwrap();
    big.set_len(agent_ecology::scene::MAX_SCENE_FILE_BYTES + 1).unwrap();
    assert!(reading(dir.path(), "content_file", "big.txt").unwrap_err().to_string().contains("larger than"));
    // A file that is not text says where.
    std::fs::write(dir.path().join("notes.txt"), b"first line\nsecond \xff line\n").unwrap();
    let err = reading(dir.path(), "content_file", "notes.txt").unwrap_err().to_string();
    assert!(err.contains("line 2, column 8"), "{err}");
    // A regular file inside is read.
    std::fs::write(dir.path().join("ok.txt"), "fine").unwrap();
    reading(dir.path(), "content_file", "ok.txt").unwrap();
}

#[test]
fn a_scene_that_is_not_utf8_is_refused_with_its_position_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, b"Scene(\n  principals: [\n    (id: \"\xe9\"),\n  ],\n)\n").unwrap();
    let err = Scene::load(&path).unwrap_err();
    assert_eq!(err.position(), Some((3, 11)), "{err}");
    let text = format!("{:#}", anyhow::Error::from(err));
    assert_eq!(text.matches("UTF-8").count(), 1, "said once: {text}");
    assert!(text.starts_with(&format!("{}:3:11: not UTF-8 text", path.display())), "{text}");
}

#[test]
fn an_unknown_principal_in_the_timeline_is_a_warning_and_fails_at_run_time() {
    let ron = "Scene(\n  principals: [(id: \"a\")],\n  interventions: [\n    (at: 1.0, as: \"a\", do: Noop),\n    (at: 2.0, as: \"b\", do: Noop),\n    (at: 3.0, system: Freeze(principal: \"c\")),\n  ],\n)";
    let scene = Scene::from_ron_str("typo.ron", ron).unwrap();
    let valid = scene.validate().unwrap();
    let warnings: Vec<String> = valid.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("typo.ron:5:19: interventions[1].as: \"b\" is not a principal"), "{warnings:?}");
    assert!(warnings[1].starts_with("typo.ron:6:41: interventions[2].system: \"c\""), "{warnings:?}");
    let mut sim = Simulation::from_valid(valid);
    sim.run_steps(5);
    let report = sim.report();
    assert_eq!(report.interventions.failed, 2);
    assert_eq!(report.events.by_type["INTERVENTION_FAILED"], 2);
}

/// Found by fuzzing: a spawn that fails leaves later interventions of the would-be
/// principal pending; the saved world must still load, and behave the same.
#[test]
fn a_world_whose_spawn_failed_saves_and_reloads() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "alice")],
        interventions: [
            (at: 1.0, as: "alice", do: Spawn(id: "helper", resources: {"vdisk": 5})),
            (at: 5.0, as: "helper", do: Noop),
            (at: 6.0, as: "alice", do: Transfer(to: "helper", amount: 1)),
        ],
    )"#);
    sim.run_steps(3);
    assert_eq!(sim.report().interventions.failed, 1);
    let text = sim.save_scene().to_ron_string().unwrap();
    let reloaded = Scene::from_ron_str("saved.ron", &text).unwrap();
    let valid = reloaded.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(valid.warnings.len(), 1);
    let mut again = Simulation::from_valid(valid);
    sim.run_steps(10);
    again.run_steps(10);
    assert_eq!(sim.report().interventions.failed, 3);
    assert_eq!(again.report().interventions.failed, 2);
    // (Timestamps differ: the reloaded world started its clock at the save.)
    let (a, b) = (&sim.report().principals["alice"], &again.report().principals["alice"]);
    assert_eq!((a.scrip, &a.resources), (b.scrip, &b.resources));
}

#[test]
fn budgets_round_trip_exactly() {
    let ron = r#"Scene(
        config: (defaults: (llm_budget_micro_usd: 9007199254740993)),
        principals: [(id: "a", llm_budget_usd: 0.000001), (id: "b", llm_budget_micro_usd: 12345678901234567), (id: "c")],
    )"#;
    let first = sim(ron);
    assert_eq!(first.report().principals["b"].resources["llm_budget"], 12_345_678_901_234_567);
    assert_eq!(first.report().principals["c"].resources["llm_budget"], 9_007_199_254_740_993);
    assert_eq!(first.report().principals["a"].resources["llm_budget"], 1);
    let text = first.save_scene().to_ron_string().unwrap();
    let second = Simulation::new(&Scene::from_ron_str("saved.ron", &text).unwrap(), None).unwrap();
    assert_eq!(first.checksum(), second.checksum(), "{text}");
    assert!(text.contains("llm_budget_usd: 1e-6"), "exact amounts stay in dollars:\n{text}");
    let both = r#"Scene(principals: [(id: "a", llm_budget_usd: 1.0, llm_budget_micro_usd: 5)])"#;
    let err = Scene::from_ron_str("both.ron", both).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
}

#[test]
fn the_readme_example_scene_is_valid() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```ron\n").expect("the README shows a scene") + "```ron\n".len();
    let end = start + readme[start..].find("```").expect("the example ends");
    let scene = Scene::from_ron_str("README.md", &readme[start..end]).unwrap_or_else(|e| panic!("{e}"));
    let valid = scene.validate().unwrap_or_else(|e| panic!("{e}"));
    assert!(valid.warnings.is_empty(), "{:?}", valid.warnings);
    let mut sim = Simulation::from_valid(valid);
    sim.run_steps(60);
    assert_eq!(sim.report().interventions.failed, 0);
    audit(sim.world()).unwrap();
}

#[test]
fn every_scene_in_the_repository_validates_and_runs() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenes"));
    // outside_tools.ron starts the MCP servers under mcp/.
    crate::mcp::filesystem_server();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            // Sweep files live beside the scenes they vary: every run of one must expand.
            if let Ok((sweep, base)) = agent_ecology::batch::sweep::SweepFile::load(&path) {
                let runs = sweep.runs(&base).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!runs.is_empty(), "{}", path.display());
                continue;
            }
            let scene = Scene::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let mut valid = scene.validate().unwrap_or_else(|e| panic!("{e}"));
            assert!(valid.warnings.is_empty(), "{}: {:?}", path.display(), valid.warnings);
            // Scenes that think do it here against the fake server, whatever runs on
            // this machine's usual ports.
            let fake = crate::fake_llm::FakeLlm::start();
            fake.set_default(crate::fake_llm::Reply::tool("wait", serde_json::json!({"secs": 5}), 200, 20));
            for endpoint in valid.config.llm.endpoints.values_mut() {
                endpoint.base_url = fake.base_url();
                endpoint.api_key_env = None;
            }
            let mut sim = Simulation::from_valid(valid);
            sim.run_steps(30);
            sim.end_thinking().unwrap();
            audit(sim.world()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn debts_and_commons_survive_a_saved_scene() {
    let mut sim = sim(r#"Scene(
        principals: [(id: "alice", scrip: 200), (id: "bob", scrip: 50), (id: "carol", scrip: 50)],
    )"#);
    let call = |sim: &mut Simulation, who: &str, id: &str, method: &str, args: serde_json::Value| {
        let json = serde_json::json!({"action": "invoke", "id": id, "method": method, "args": args}).to_string();
        crate::act_ok(sim, who, &json).result.unwrap()
    };
    let loan = |sim: &mut Simulation, debtor: &str, term: f64| {
        let args = serde_json::json!({"debtor": debtor, "principal": 20, "interest": 5, "term_secs": term});
        call(sim, "alice", "kernel_debt", "offer", args)["id"].as_str().unwrap().to_owned()
    };
    let soon = loan(&mut sim, "bob", 10.0);
    let later = loan(&mut sim, "carol", 100.0);
    let open = loan(&mut sim, "carol", 30.0);
    call(&mut sim, "bob", "kernel_debt", "accept", serde_json::json!({"id": soon}));
    call(&mut sim, "carol", "kernel_debt", "accept", serde_json::json!({"id": later}));
    call(&mut sim, "carol", "kernel_debt", "repay", serde_json::json!({"id": later, "amount": 7}));
    let members = serde_json::json!({"id": "guild", "members": ["bob", "carol"], "quorum_pct": 100, "threshold_pct": 40, "scrip": 30});
    call(&mut sim, "alice", "kernel_governance", "create_commons", members);
    sim.run_steps(40);
    // What anyone sees of an artifact.
    let describe = |sim: &mut Simulation, id: &str| {
        let query = serde_json::json!({"action": "query", "id": id}).to_string();
        crate::act_ok(sim, "carol", &query).result.unwrap()["artifact"].clone()
    };
    let status = |sim: &mut Simulation, id: &str| describe(sim, id)["debt"]["status"].as_str().unwrap().to_owned();
    assert_eq!(status(&mut sim, &soon), "defaulted");

    let text = sim.save_scene().to_ron_string().unwrap();
    let mut reloaded = Simulation::new(&Scene::from_ron_str("saved.ron", &text).unwrap(), None).unwrap();
    for id in [&soon, &later, &open] {
        let (before, after) = (describe(&mut sim, id)["debt"].clone(), describe(&mut reloaded, id)["debt"].clone());
        for field in ["debtor", "creditor", "holder", "principal", "interest", "repaid", "outstanding", "status"] {
            assert_eq!(before[field], after[field], "{id}.{field}\n{text}");
        }
    }
    // The due time keeps its distance from now: 100 s after acceptance is 60 s away.
    assert_eq!(describe(&mut reloaded, &later)["debt"]["due_at"], 60.0);
    assert_eq!(describe(&mut sim, "guild")["commons"], describe(&mut reloaded, "guild")["commons"]);
    // The notes are still locked, and the active one still falls due.
    crate::act_fails(
        &mut reloaded,
        "alice",
        &format!(r#"{{"action":"delete","id":"{later}"}}"#),
        ErrorCode::AccessDenied,
    );
    reloaded.run_steps(61);
    assert_eq!(status(&mut reloaded, &later), "defaulted");
    audit(reloaded.world()).unwrap();
}

#[test]
fn broken_debts_and_commons_are_refused_with_their_place() {
    let note = |debt: &str| {
        format!(
            "Scene(\n  principals: [(id: \"a\"), (id: \"b\")],\n  artifacts: [\n    (id: \"n\", owner: \"a\", debt: ({debt})),\n  ],\n)"
        )
    };
    let ok = "debtor: \"b\", creditor: \"a\", principal: 10, term_secs: 5.0, due_at_secs: 5.0, status: active";
    Scene::from_ron_str("ok.ron", &note(ok)).unwrap().validate().unwrap();
    assert_error(&note(&ok.replace("\"b\"", "\"zed\"")), 4, 34, "(n).debt.debtor: \"zed\" is not a principal");
    let err = error_of(&note(&ok.replace("due_at_secs: 5.0, ", ""))).to_string();
    assert!(err.contains("an accepted loan has a due time"), "{err}");
    let err = error_of(&note(&ok.replace("status: active", "status: repaid"))).to_string();
    assert!(err.contains("does not fit status Repaid"), "{err}");
    let err = error_of(&note(&ok.replace("status: active", "status: bankrupt"))).to_string();
    assert!(err.contains("bankrupt"), "{err}");
    let commons = "Scene(principals: [(id: \"a\"), (id: \"guild\", commons: (members: [\"a\", \"nobody\"]))])";
    assert!(error_of(commons).to_string().contains("\"nobody\" is not a principal"));
    let reserved = "Scene(principals: [(id: \"kernel_mint\")])";
    assert!(error_of(reserved).to_string().contains("reserved by the world"));
}

const POPULATION: &str = r#"Scene(
  config: (seed: 3),
  principals: [(id: "bank", scrip: 500)],
  populations: [
    (
      id: "trader_{n:04}",
      count: 1000,
      template: (agent: true, scrip: 100, code: "function step(view) { return [] }",
                 interface: (tools: [(name: "step")])),
      vary: {"scrip": (min: 50, max: 150), "interval_secs": (min: 2.0, max: 8.0)},
    ),
    (id: "patron_{n}", count: 3, template: (owner: "bank", scrip: 7)),
  ],
)"#;

/// Every principal's (id, scrip, owner), in creation order.
fn roll(sim: &Simulation) -> Vec<(String, u64, String)> {
    let world = sim.world();
    let ids = world.resource::<agent_ecology::world::ids::Ids>();
    ids.in_creation_order()
        .iter()
        .filter_map(|&e| {
            let standing = world.get::<agent_ecology::kernel::Standing>(e)?;
            let artifact = world.get::<agent_ecology::world::components::Artifact>(e)?;
            let id = world.get::<agent_ecology::world::ids::ArtifactId>(e)?;
            Some((id.to_string(), standing.scrip(), artifact.owner().to_string()))
        })
        .filter(|(id, _, _)| id != "kernel" && !id.starts_with("kernel_") && !id.starts_with("system_"))
        .collect()
}

#[test]
fn a_population_is_many_principals_from_a_few_lines() {
    let scene = Scene::from_ron_str("pop.ron", POPULATION).unwrap();
    let sim = Simulation::new(&scene, None).unwrap();
    let members = roll(&sim);
    assert_eq!(members.len(), 1 + 1000 + 3);
    assert_eq!(members[0].0, "bank");
    assert_eq!(members[1].0, "trader_0001");
    assert_eq!(members[1000].0, "trader_1000");
    assert_eq!(members[1001], ("patron_1".into(), 7, "bank".into()), "a template's owner is every member's");
    assert_eq!(members[1].2, "trader_0001", "members own themselves unless the template says otherwise");
    let scrip: Vec<u64> = members[1..1001].iter().map(|r| r.1).collect();
    assert!(scrip.iter().all(|s| (50..=150).contains(s)), "drawn within the range");
    assert!(scrip.contains(&50) && scrip.contains(&150), "both ends included");
    let distinct: std::collections::BTreeSet<_> = scrip.iter().collect();
    assert!(distinct.len() > 90, "varied: {} distinct amounts", distinct.len());
    // Intervals vary too, within their range.
    let loops: Vec<u64> = {
        let world = sim.world();
        let mut query = world.try_query::<&agent_ecology::world::components::Loop>().unwrap();
        query.iter(world).map(|l| l.interval().millis()).collect()
    };
    assert_eq!(loops.len(), 1000);
    assert!(loops.iter().all(|ms| (2000..=8000).contains(ms)), "{:?}", &loops[..5]);
    assert!(loops.iter().collect::<std::collections::BTreeSet<_>>().len() > 100);
    audit(sim.world()).unwrap();

    // The same scene, the same population; another seed, another draw.
    let again = Simulation::new(&Scene::from_ron_str("pop.ron", POPULATION).unwrap(), None).unwrap();
    assert_eq!(roll(&again), members);
    let reseeded = POPULATION.replace("seed: 3", "seed: 4");
    let other = Simulation::new(&Scene::from_ron_str("pop.ron", &reseeded).unwrap(), None).unwrap();
    assert_ne!(roll(&other), members);
    // A population's own seed fixes it whatever the scene's.
    let pinned = |seed: u64| {
        POPULATION.replace("seed: 3", &format!("seed: {seed}")).replace("count: 1000,", "count: 1000, seed: 9,")
    };
    let a = Simulation::new(&Scene::from_ron_str("pop.ron", &pinned(1)).unwrap(), None).unwrap();
    let b = Simulation::new(&Scene::from_ron_str("pop.ron", &pinned(2)).unwrap(), None).unwrap();
    assert_eq!(roll(&a), roll(&b));
}

#[test]
fn population_errors_name_the_population_and_its_place() {
    let with = |from: &str, to: &str| {
        assert!(POPULATION.contains(from), "{from}");
        POPULATION.replacen(from, to, 1)
    };
    assert_error(&with("trader_{n:04}", "trader"), 6, 7, "needs one {n}");
    assert_error(&with("trader_{n:04}", "bank{n:0}"), 6, 7, "needs one {n}");
    assert_error(&with("count: 1000", "count: 0"), 7, 7, "1 to 1000000 members");
    assert_error(&with("\"scrip\": (min: 50", "\"scrap\": (min: 50"), 10, 14, "\"scrap\" cannot vary");
    assert_error(&with("(min: 2.0, max: 8.0)", "(min: 0.0, max: 8.0)"), 10, 44, "not a range");
    assert_error(
        &with("template: (owner: \"bank\"", "template: (owner: \"nobody\""),
        12,
        45,
        "\"nobody\" is not a principal",
    );
    assert_error(&with("template: (agent: true,", "template: (id: \"x\", agent: true,"), 8, 7, "a template has no id");
    // A member's id taken by an entry of the scene.
    assert_error(
        &with("(id: \"bank\", scrip: 500)", "(id: \"trader_0007\", scrip: 500), (id: \"bank\")"),
        6,
        7,
        "\"trader_0007\" appears twice",
    );
    // An error in the template is reported once, as its first member's.
    let text = error_of(&with("scrip: 100, code:", "scrip: 100, disk_bytes: 1, code:")).to_string();
    assert!(text.contains("populations[0] member 1 (trader_0001)"), "{text}");
}

#[test]
fn a_sweep_varies_a_population_by_its_pattern_or_position() {
    let scene = Scene::from_ron_str("pop.ron", POPULATION).unwrap();
    for (path, count) in [("populations.trader_{n:04}.count", 10u64), ("populations.0.count", 2000)] {
        let point = std::collections::BTreeMap::from([(path.to_owned(), serde_json::json!(count))]);
        let varied = agent_ecology::batch::sweep::apply(&scene, &point).unwrap().validate().unwrap();
        assert_eq!(varied.principals.len() as u64, 1 + count + 3, "{path}");
    }
}
