//! Sweeps run by `ecology batch`, resumed, sharded and merged; single runs
//! checkpointed and resumed by `ecology run`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use agent_ecology::{
    batch::sweep::{self, SweepFile},
    kernel::state::balance,
    run::Simulation,
    world::{config::Config, time::SimTime},
};

fn ecology(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecology")).args(args).output().expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Writes a sweep file of the default scene with these parameters, seeds and stop.
fn sweep_file(dir: &Path, name: &str, parameters: &str, seeds: &str, stop: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "Sweep(scene: \"default\", parameters: {{ {parameters} }}, design: Grid, seeds: {seeds}, stop: {stop})"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The 2 × 2 grid of the README's example sweep.
const GRID: &str = r#""config.mint.period_secs": Values([30.0, 90.0]), "principals.alice.scrip": Values([50, 500])"#;

/// `ecology batch` that must succeed.
fn batch_ok(sweep: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["batch", path_str(sweep), "--out", path_str(out)];
    args.extend_from_slice(extra);
    let result = ecology(&args);
    assert!(result.status.success(), "batch {args:?} failed: {}", stderr(&result));
    result
}

/// A CSV file as rows of cells (no cell here holds a comma).
fn rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

/// runs.csv without its wall-time column, the one thing that differs between runs of
/// the same sweep.
fn runs_without_wall_time(dir: &Path) -> String {
    let table = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let header = table.lines().next().unwrap();
    assert!(header.ends_with(",wall_secs"), "{header}");
    table.lines().map(|line| line.rsplit_once(',').unwrap().0.to_owned() + "\n").collect()
}

/// Asserts two files hold the same bytes, naming the first line that differs.
fn same_file(a: &Path, b: &Path, what: &str) {
    let (left, right) = (std::fs::read_to_string(a).unwrap(), std::fs::read_to_string(b).unwrap());
    if left != right {
        let (n, (l, r)) = left
            .lines()
            .chain(std::iter::repeat("<end>"))
            .zip(right.lines().chain(std::iter::repeat("<end>")))
            .enumerate()
            .find(|(_, (l, r))| l != r)
            .unwrap();
        panic!("{what}: {} and {} differ at line {}:\n  {l}\n  {r}", a.display(), b.display(), n + 1);
    }
}

fn result_json(out: &Path, run_id: &str) -> serde_json::Value {
    let path = out.join("runs").join(run_id).join("result.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn a_two_by_two_grid_with_three_seeds_is_twelve_runs_and_a_rerun_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = sweep_file(dir.path(), "sweep.ron", GRID, "Replicates(3)", "Steps(40)");
    let out = dir.path().join("out");
    batch_ok(&sweep, &out, &["--jobs", "2", "--quiet"]);

    let table = rows(&out.join("runs.csv"));
    let header = &table[0];
    assert_eq!(header[..6], ["run_id", "point", "seed", "config.mint.period_secs", "principals.alice.scrip", "status"]);
    assert_eq!(header.last().unwrap(), "wall_secs");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    assert_eq!(table.len(), 13, "a header and 12 runs");
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for row in &table[1..] {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[column("status")], "done");
        assert_eq!(row[column("steps")], "40");
        assert_eq!(row[column("stopped_by")], "length");
        assert_eq!(row[column("checksum")].len(), 64);
        seen.insert((row[3].clone(), row[4].clone(), row[2].clone()));
        assert_eq!(row[0].len(), 16, "run ids are 16 hex digits: {}", row[0]);
        ids.insert(row[0].clone());
    }
    let expected: BTreeSet<(String, String, String)> = ["30.0", "90.0"]
        .iter()
        .flat_map(|period| {
            ["50", "500"].iter().flat_map(move |scrip| {
                (1..=3).map(move |seed| (period.to_string(), scrip.to_string(), seed.to_string()))
            })
        })
        .collect();
    assert_eq!(seen, expected, "every point with every seed, once");
    assert_eq!(ids.len(), 12, "run ids are distinct");

    // Each run's world is the base scene with its point and seed.
    let (file, base) = SweepFile::load(&sweep).unwrap();
    let specs = file.runs(&base).unwrap();
    assert_eq!(specs.len(), 12);
    for spec in &specs {
        let sim = Simulation::from_valid(sweep::scene_for(&base, spec).unwrap());
        let config = sim.world().resource::<Config>();
        assert_eq!(config.seed, spec.seed);
        assert_eq!(Some(config.mint.period.as_secs_f64()), spec.point["config.mint.period_secs"].as_f64());
        assert_eq!(Some(balance(sim.world(), "alice").unwrap()), spec.point["principals.alice.scrip"].as_u64());
        let result = result_json(&out, &spec.run_id);
        assert_eq!(result["seed"], spec.seed);
        assert_eq!(serde_json::to_value(&spec.point).unwrap(), result["point"]);
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "agent-ecology batch");
    assert_eq!(manifest["runs_total"], 12);
    assert_eq!(manifest["done"], 12);
    assert_eq!(manifest["sweep_file_blake3"].as_str().unwrap().len(), 64);
    assert!(manifest["finished_at"].is_string());
    let series = rows(&out.join("timeseries.csv"));
    assert_eq!(series[0][..3], ["run_id", "step", "time_secs"]);
    // A sample every 10 steps, the last of them the final state.
    assert_eq!(series.len() - 1, 12 * 4);
    for (run, samples) in table[1..].iter().zip(series[1..].chunks(4)) {
        let steps: Vec<&str> = samples.iter().map(|s| s[1].as_str()).collect();
        assert!(samples.iter().all(|s| s[0] == run[0]), "timeseries.csv is in the order of runs.csv");
        assert_eq!(steps, ["10", "20", "30", "40"]);
    }

    // The same command again finds everything done and runs nothing.
    let modified = |spec: &sweep::RunSpec| {
        std::fs::metadata(out.join("runs").join(&spec.run_id).join("result.json")).unwrap().modified().unwrap()
    };
    let before: Vec<_> = specs.iter().map(modified).collect();
    let table_before = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let again = batch_ok(&sweep, &out, &["--jobs", "2"]);
    assert!(stdout(&again).contains("12 runs: 12 done (12 already were), 0 failed"), "{}", stdout(&again));
    assert_eq!(specs.iter().map(modified).collect::<Vec<_>>(), before, "no run ran again");
    assert_eq!(std::fs::read_to_string(out.join("runs.csv")).unwrap(), table_before);
}

#[test]
fn shards_merged_equal_the_unsharded_sweep_and_other_sweeps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = sweep_file(dir.path(), "sweep.ron", GRID, "Replicates(3)", "Steps(30)");
    let whole = dir.path().join("whole");
    batch_ok(&sweep, &whole, &["--jobs", "2", "--events", "-q"]);
    let shards: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("shard-{i}"))).collect();
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let shard = format!("{}/3", i + 1);
            Command::new(env!("CARGO_BIN_EXE_ecology"))
                .args([
                    "batch",
                    path_str(&sweep),
                    "--out",
                    path_str(out),
                    "--shard",
                    &shard,
                    "-j",
                    "1",
                    "--events",
                    "-q",
                ])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for (i, shard) in shards.iter().enumerate() {
        let runs = rows(&shard.join("runs.csv")).len() - 1;
        assert_eq!(runs, 4, "shard {} holds a third of the runs", i + 1);
    }

    // Two of three shards are not the sweep.
    let merged = dir.path().join("merged");
    let partial = ecology(&["merge", "--out", path_str(&merged), path_str(&shards[0]), path_str(&shards[1])]);
    assert_eq!(partial.status.code(), Some(2), "{}", stderr(&partial));
    assert!(stderr(&partial).contains("8 of the sweep's 12 runs (4 missing"), "{}", stderr(&partial));

    let shard_args: Vec<&str> = shards.iter().map(|s| path_str(s)).collect();
    let mut args = vec!["merge", "--out", path_str(&merged)];
    args.extend(&shard_args);
    let out = ecology(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("12 runs, 12 done, 0 failed"), "{}", stdout(&out));
    assert_eq!(runs_without_wall_time(&merged), runs_without_wall_time(&whole));
    same_file(&merged.join("timeseries.csv"), &whole.join("timeseries.csv"), "timeseries.csv");
    for row in &rows(&whole.join("runs.csv"))[1..] {
        let events = |root: &Path| root.join("runs").join(&row[0]).join("events.jsonl");
        same_file(&events(&merged), &events(&whole), "a run's events");
    }

    // A shard of another sweep (one more step) is not merged with these.
    let other_sweep = sweep_file(dir.path(), "other.ron", GRID, "Replicates(3)", "Steps(31)");
    let other = dir.path().join("other-1");
    batch_ok(&other_sweep, &other, &["--shard", "1/3", "-q"]);
    let elsewhere = dir.path().join("elsewhere");
    let mixed = ecology(&["merge", "--out", path_str(&elsewhere), path_str(&other), shard_args[1], shard_args[2]]);
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr(&mixed));
    assert!(stderr(&mixed).contains("different sweeps"), "{}", stderr(&mixed));
    assert!(!elsewhere.exists(), "nothing is written when a merge is refused");
    // Nor does a batch write into another sweep's directory.
    let into = ecology(&["batch", path_str(&other_sweep), "--out", path_str(&whole), "-q"]);
    assert_eq!(into.status.code(), Some(2), "{}", stderr(&into));
    assert!(stderr(&into).contains("another sweep"), "{}", stderr(&into));
}

#[test]
fn a_killed_batch_resumes_from_its_checkpoints_to_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // Short sandbox epochs, so that checkpoints (one per epoch) come early.
    let sweep = sweep_file(
        dir.path(),
        "sweep.ron",
        r#""config.sandbox.epoch_secs": Values([20.0])"#,
        "Replicates(2)",
        "Steps(300)",
    );
    let killed = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecology"))
        .args(["batch", path_str(&sweep), "--out", path_str(&killed), "-j", "1", "--events", "-q"])
        .spawn()
        .unwrap();
    let first_checkpoint = || {
        std::fs::read_dir(killed.join("runs")).ok()?.flatten().map(|e| e.path().join("checkpoint")).find(|p| p.exists())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let checkpoint = loop {
        if let Some(path) = first_checkpoint() {
            break path;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the batch ended before it wrote a checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let run_dir = checkpoint.parent().unwrap().to_owned();
    assert!(!run_dir.join("result.json").exists(), "the run was killed before it finished");

    // Without --events this time: a resumed run goes on with the stream it began.
    let resumed = batch_ok(&sweep, &killed, &["-j", "1"]);
    assert!(stdout(&resumed).contains("2 runs: 2 done"), "{}", stdout(&resumed));
    let run_id = run_dir.file_name().unwrap().to_str().unwrap();
    let result = result_json(&killed, run_id);
    let at = result["resumed_at_step"].as_u64().expect("the run went on from its checkpoint");
    assert!(at > 0 && at.is_multiple_of(20) && at < 300, "resumed at an epoch: {at}");
    assert!(!run_dir.join("checkpoint").exists(), "a finished run's checkpoint goes");

    let whole = dir.path().join("whole");
    batch_ok(&sweep, &whole, &["-j", "2", "--events", "-q"]);
    assert_eq!(runs_without_wall_time(&killed), runs_without_wall_time(&whole));
    same_file(&killed.join("timeseries.csv"), &whole.join("timeseries.csv"), "timeseries.csv");
    let events = |root: &Path| root.join("runs").join(run_id).join("events.jsonl");
    same_file(&events(&killed), &events(&whole), "the event stream goes on where the checkpoint was");
}

#[test]
fn a_bad_parameter_fails_before_any_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (parameter, says) in [
        (r#""principals.nobody.scrip": Values([1])"#, "principals.nobody.scrip"),
        (r#""config.mint.period_secs": Values(["soon"])"#, "config.mint.period_secs"),
        (r#""config.mint.period_secs.x": Values([1])"#, "config.mint.period_secs.x"),
    ] {
        let sweep = sweep_file(dir.path(), "bad.ron", parameter, "Replicates(1)", "Steps(5)");
        let out = dir.path().join("out");
        let result = ecology(&["batch", path_str(&sweep), "--out", path_str(&out)]);
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        assert!(stderr(&result).contains(says), "{parameter}: {}", stderr(&result));
        assert!(!out.exists(), "{parameter}: nothing ran");
    }
}

/// The default scene with sandbox epochs of `epoch_secs`, written into `dir`.
fn default_scene_with_epochs(dir: &Path, epoch_secs: f64) -> PathBuf {
    let path = dir.join("scene.ron");
    std::fs::write(&path, crate::repo_scene_text("default.ron", epoch_secs)).unwrap();
    path
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_run_resumed_from_its_checkpoint_ends_as_one_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let scene = default_scene_with_epochs(dir.path(), 20.0);
    let (scene, file) = (path_str(&scene), |name: &str| dir.path().join(name));
    let out = ecology(&[
        "run",
        scene,
        "--steps",
        "130",
        "--events",
        path_str(&file("whole.jsonl")),
        "--report",
        path_str(&file("whole.json")),
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A run that checkpoints every 40 s: its file holds the last, taken at step 120.
    let checkpoint = file("run.checkpoint");
    let out = ecology(&[
        "run",
        scene,
        "--steps",
        "130",
        "--events",
        path_str(&file("resumed.jsonl")),
        "--checkpoint",
        path_str(&checkpoint),
        "--checkpoint-every",
        "40",
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Resuming goes on with the same run (its length and event stream) from there.
    let out = ecology(&["run", "--resume", path_str(&checkpoint), "--report", path_str(&file("resumed.json"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ran 130 steps, 130 s simulated; resumed at step 120"), "{}", stdout(&out));
    let (whole, resumed) = (report(&file("whole.json")), report(&file("resumed.json")));
    assert_eq!(resumed["steps"], 130);
    assert_eq!(resumed["checksum"], whole["checksum"]);
    same_file(&file("resumed.jsonl"), &file("whole.jsonl"), "the event stream is the uninterrupted one");
    // It can be taken further than planned, too.
    let out = ecology(&["run", "--resume", path_str(&checkpoint), "--steps", "125", "--report", "-", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shorter: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shorter["steps"], 125);
    assert_eq!(SimTime::from_secs_f64(125.0).unwrap().as_secs_f64(), shorter["sim_time_secs"].as_f64().unwrap());
}

#[test]
fn a_bad_checkpoint_or_cadence_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let scene = default_scene_with_epochs(dir.path(), 20.0);
    let checkpoint = dir.path().join("cp");
    let out = ecology(&[
        "run",
        path_str(&scene),
        "--steps",
        "20",
        "--checkpoint",
        path_str(&checkpoint),
        "--checkpoint-every",
        "30",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--checkpoint-every 30") && stderr(&out).contains("20"), "{}", stderr(&out));
    assert!(!checkpoint.exists());

    let out = ecology(&[
        "run",
        path_str(&scene),
        "--steps",
        "20",
        "--checkpoint",
        path_str(&checkpoint),
        "--checkpoint-every",
        "20",
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&checkpoint).unwrap();
    let damaged = dir.path().join("damaged");
    for (what, contents) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("not a checkpoint", b"Scene(principals: [])".to_vec()),
        ("flipped", {
            let mut flipped = bytes.clone();
            let last = flipped.len() - 10;
            flipped[last] ^= 0x55;
            flipped
        }),
    ] {
        std::fs::write(&damaged, contents).unwrap();
        let out = ecology(&["run", "--resume", path_str(&damaged)]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(path_str(&damaged)) && err.lines().count() <= 2, "{what}: {err}");
    }
    let out = ecology(&["run", "--resume", path_str(&dir.path().join("missing"))]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_replayed_llm_run_resumed_by_the_cli_ends_as_recorded() {
    use crate::fake_llm::{FakeLlm, Reply};
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let fake = FakeLlm::start();
    fake.set_latency(Duration::from_millis(1));
    fake.set_default(Reply::tool("query", serde_json::json!({"text": "tool"}), 300, 20));
    // scenes/llm_market.ron thinking on the fake server, with a sandbox epoch every 7 s.
    let text = crate::llm_market_text(&fake.base_url(), 7.0);
    let scene = file("market.ron");
    std::fs::write(&scene, text).unwrap();
    let (scene, cache) = (path_str(&scene), file("cache"));

    let out = ecology(&[
        "run",
        scene,
        "--steps",
        "80",
        "--llm-cache",
        path_str(&cache),
        "--report",
        path_str(&file("live.json")),
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let live = report(&file("live.json"));
    assert!(live["llm"]["calls"].as_u64().unwrap() > 10, "the agents thought: {}", live["llm"]);
    drop(fake);

    // Replayed with checkpoints every 14 s; the file then holds the one at 70 s.
    let checkpoint = file("market.checkpoint");
    let out = ecology(&[
        "run",
        scene,
        "--steps",
        "80",
        "--llm-cache",
        path_str(&cache),
        "--replay",
        "--checkpoint",
        path_str(&checkpoint),
        "--checkpoint-every",
        "14",
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The checkpoint remembers that the run replays from the cache.
    let out = ecology(&["run", "--resume", path_str(&checkpoint), "--report", path_str(&file("resumed.json"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("resumed at step 70"), "{}", stdout(&out));
    let resumed = report(&file("resumed.json"));
    assert_eq!(resumed["checksum"], live["checksum"]);
    assert_eq!(resumed["llm"]["calls"], live["llm"]["calls"]);
}

#[test]
fn a_batch_whose_model_server_does_not_answer_stops_before_any_run() {
    let out_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = ecology(&[
        "batch",
        "scenes/sweep.ron",
        "--out",
        out_dir.path().to_str().unwrap(),
        "--llm-endpoint",
        &url,
        "--llm-model",
        "tiny",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("error: model tiny (endpoint chosen, {url}) does not answer")), "{err}");
    assert!(!out_dir.path().join("runs").exists(), "no run started");
}
