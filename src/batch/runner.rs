//! Running a sweep: the runs of one shard in parallel worker threads, each run a world
//! of its own (with its own sandbox workers), each resumable.
//!
//! A run's directory tells what became of it (see [`output`](super::output)): a run
//! with a `result.json` is done and is skipped; one with a `checkpoint` was
//! interrupted and goes on from there; anything else starts from its scene. Runs
//! write a checkpoint at every sandbox epoch by default, so a killed batch loses at
//! most an epoch of each run in progress. Every run is deterministic, whatever the
//! number of threads and whichever thread it lands on, so the outputs are too.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use serde::{Deserialize, Serialize};

use super::{
    BatchError,
    output::{self, Manifest, RunFailure, RunResult, RunState, StoppedBy},
    sweep::{self, RunSpec, Stop, SweepFile},
};
use crate::{
    bridge::{BridgeOptions, config::ModelOverride},
    economy::kpis::{self, Kpis},
    kernel::EventLog,
    run::{Checkpoint, Simulation, audit, check_checkpoint_cadence, checkpoint_due, write_atomically},
    scene::Scene,
    world::{config::Config, time::SimTime},
};

/// The I-th (from 1) of N disjoint slices of a sweep's runs: run `k` (from 0) is in
/// slice `k mod N + 1`, so every slice holds a mix of points and seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the run at `index` in the sweep's list is in this shard.
    pub fn holds(&self, index: usize) -> bool {
        index % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a shard: expected I/N with 1 ≤ I ≤ N, e.g. 2/4");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub out: PathBuf,
    /// Runs at once (worker threads).
    pub jobs: usize,
    pub shard: Option<Shard>,
    /// Write each run's event stream to `runs/<id>/events.jsonl`.
    pub events: bool,
    /// Simulated time between a run's checkpoints; `None`: every sandbox epoch.
    pub checkpoint_every: Option<SimTime>,
    /// Recordings of calls to models: each run records into (or replays from) a
    /// directory of its own, `<cache_dir>/<run_id>`.
    pub bridge: BridgeOptions,
    /// The model chosen on the command line, over the sweep's scenes'.
    pub model: ModelOverride,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Runs in this shard.
    pub runs: usize,
    /// Done before this batch started (skipped).
    pub skipped: usize,
    pub done: usize,
    pub failed: usize,
}

/// What a batch tells whoever watches it.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The batch starts: `pending` of `runs` are to run.
    Started { runs: usize, pending: usize },
    /// A run finished (or failed).
    Finished { run: &'a RunSpec, outcome: Result<&'a RunResult, &'a str> },
}

/// A sweep ready to run: its file, base scene and every run.
pub struct Batch {
    path: PathBuf,
    file: SweepFile,
    text: String,
    base: Scene,
    runs: Vec<RunSpec>,
}

impl Batch {
    /// Reads a sweep file and expands it; every point is applied and validated, so a
    /// bad parameter fails here, before anything runs.
    pub fn load(path: &Path) -> Result<Self, BatchError> {
        // Read once: the manifest's hash is of the text that was parsed.
        let text = SweepFile::read_text(path)?;
        let (file, base) = SweepFile::parse_at(path, &text)?;
        let runs = file.runs(&base)?;
        Ok(Self { path: path.to_owned(), file, text, base, runs })
    }

    /// The world of run `spec`, thinking with `model`.
    fn valid_scene(&self, spec: &RunSpec, model: &ModelOverride) -> Result<crate::scene::ValidScene, String> {
        let mut valid = sweep::scene_for(&self.base, spec).map_err(|e| e.to_string())?;
        valid.config.llm.choose(model)?;
        Ok(valid)
    }

    /// What the first run's world reaches outside itself and cannot (see
    /// `run::preflight`): the runs of a sweep share their servers.
    pub fn preflight(&self, model: &ModelOverride) -> Vec<String> {
        match self.runs.first().map(|spec| self.valid_scene(spec, model)) {
            Some(Ok(valid)) => crate::run::preflight::check_scene(&valid),
            Some(Err(why)) => vec![why],
            None => Vec::new(),
        }
    }

    pub fn runs(&self) -> &[RunSpec] {
        &self.runs
    }

    /// The swept parameters, in order.
    pub fn parameters(&self) -> Vec<String> {
        self.file.parameters.keys().cloned().collect()
    }

    /// What identifies the sweep: its runs in order and when they stop.
    pub fn sweep_id(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for run in &self.runs {
            hasher.update(run.run_id.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(serde_json::to_string(&self.file.stop).unwrap_or_default().as_bytes());
        hasher.finalize().to_hex()[..32].to_owned()
    }

    /// The runs of `shard` (all of them without one).
    pub fn shard_runs(&self, shard: Option<Shard>) -> Vec<&RunSpec> {
        self.runs.iter().filter(|r| shard.is_none_or(|s| s.holds(r.index))).collect()
    }

    /// Runs every run of the shard that is not done yet, `options.jobs` at a time,
    /// then writes the tables and the manifest.
    pub fn run(&self, options: &BatchOptions, watch: &(dyn Fn(Progress) + Sync)) -> Result<BatchSummary, BatchError> {
        let out = &options.out;
        std::fs::create_dir_all(out.join("runs")).map_err(|e| BatchError::io(out, e))?;
        let mine = self.shard_runs(options.shard);
        let started_at = match Manifest::read(out) {
            Ok(existing) => {
                if existing.sweep_id != self.sweep_id() {
                    return Err(BatchError::Output(format!(
                        "{} holds the outputs of another sweep ({}); give another --out",
                        out.display(),
                        existing.sweep_file
                    )));
                }
                if existing.shard != options.shard.map(|s| s.to_string()) {
                    return Err(BatchError::Output(format!(
                        "{} holds shard {} of this sweep, not {}",
                        out.display(),
                        existing.shard.as_deref().unwrap_or("all"),
                        options.shard.map_or_else(|| "all".to_owned(), |s| s.to_string())
                    )));
                }
                existing.started_at
            }
            Err(_) if !out.join("manifest.json").exists() => output::now_rfc3339(),
            Err(error) => return Err(error),
        };
        let mut manifest = self.manifest(options.shard, &mine, started_at);
        manifest.write(out)?;

        let mut pending = Vec::new();
        for run in &mine {
            if !matches!(output::run_state(out, &run.run_id)?, RunState::Done(_)) {
                pending.push(*run);
            }
        }
        watch(Progress::Started { runs: mine.len(), pending: pending.len() });
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<BatchError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..options.jobs.clamp(1, pending.len().max(1)) {
                scope.spawn(|| {
                    while let Some(run) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let outcome = self.execute(run, options);
                        let recorded = record(out, run, &outcome);
                        watch(Progress::Finished { run, outcome: outcome.as_ref().map_err(String::as_str) });
                        if let Err(error) = recorded
                            && let Ok(mut first) = failure.lock()
                        {
                            first.get_or_insert(error);
                        }
                    }
                });
            }
        });
        if let Some(error) = failure.into_inner().ok().flatten() {
            return Err(error);
        }

        let specs: Vec<RunSpec> = mine.iter().map(|r| (*r).clone()).collect();
        let (done, failed) = output::write_tables(out, &specs, &manifest.parameters)?;
        manifest.done = done;
        manifest.failed = failed;
        manifest.finished_at = Some(output::now_rfc3339());
        manifest.write(out)?;
        Ok(BatchSummary { runs: mine.len(), skipped: mine.len() - pending.len(), done, failed })
    }

    fn manifest(&self, shard: Option<Shard>, runs: &[&RunSpec], started_at: String) -> Manifest {
        Manifest {
            format: output::MANIFEST_FORMAT.into(),
            sweep_file: self.path.display().to_string(),
            sweep_id: self.sweep_id(),
            sweep_file_blake3: blake3::hash(self.text.as_bytes()).to_hex().to_string(),
            ecology_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: option_env!("ECOLOGY_GIT_COMMIT").map(str::to_owned),
            parameters: self.parameters(),
            runs_total: self.runs.len(),
            shard: shard.map(|s| s.to_string()),
            runs: runs.iter().map(|r| (*r).clone()).collect(),
            done: 0,
            failed: 0,
            started_at,
            finished_at: None,
        }
    }

    /// Runs one run to its end, from its checkpoint if it has one.
    fn execute(&self, spec: &RunSpec, options: &BatchOptions) -> Result<RunResult, String> {
        let dir = output::run_dir(&options.out, &spec.run_id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let checkpoint_path = dir.join("checkpoint");
        let events_path = dir.join("events.jsonl");
        let (mut sim, resumed_at) = match self.resume(spec, &checkpoint_path)? {
            Some(sim) => {
                let at = sim.steps_done();
                (sim, Some(at))
            }
            None => (Simulation::from_valid(self.valid_scene(spec, &options.model)?), None),
        };
        let bridge = BridgeOptions {
            cache_dir: options.bridge.cache_dir.as_ref().map(|dir| dir.join(&spec.run_id)),
            replay: options.bridge.replay,
        };
        sim.use_bridge(bridge)?;
        // A resumed run goes on with the event stream it began, --events or not, so
        // that no stream is left cut short.
        let file = match resumed_at {
            Some(_) if options.events || events_path.exists() => {
                let total = sim.world().resource::<EventLog>().total();
                Some(crate::run::continue_event_stream(&events_path, total))
            }
            _ if options.events => Some(std::fs::File::create(&events_path)),
            _ => match std::fs::remove_file(&events_path) {
                // The stream of an attempt that failed is not this run's.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(Err(e)),
                _ => None,
            },
        };
        if let Some(file) = file {
            let file = file.map_err(|e| format!("{}: {e}", events_path.display()))?;
            sim.stream_events_to(Box::new(std::io::BufWriter::with_capacity(1 << 16, file)));
        }
        let config = sim.world().resource::<Config>();
        let every = options.checkpoint_every.unwrap_or(SimTime::from_millis(config.sandbox.epoch_ms));
        check_checkpoint_cadence(config, every)?;
        let mut goal = Goal::new(self.file.stop.as_ref(), config);

        let started = Instant::now();
        let mut reached = goal.reached(&sim);
        let stopped_by = loop {
            if let Some(stopped_by) = reached {
                break stopped_by;
            }
            let before = sim.now();
            sim.step();
            if let Some(fatal) = sim.fatal_error() {
                return Err(fatal);
            }
            reached = goal.reached(&sim);
            // No checkpoint after the last step: the run's result replaces it.
            if reached.is_none() && checkpoint_due(before, sim.now(), every) {
                sim.flush_events().map_err(|e| format!("{}: {e}", events_path.display()))?;
                let plan = serde_json::to_value(Plan { run_id: spec.run_id.clone() }).unwrap_or_default();
                sim.write_checkpoint(&checkpoint_path, plan).map_err(|e| e.to_string())?;
            }
        };
        let wall_secs = started.elapsed().as_secs_f64();
        sim.end_thinking().map_err(|e| format!("the recording of calls to models is incomplete: {e}"))?;
        sim.flush_events().map_err(|e| format!("{}: {e}", events_path.display()))?;
        audit(sim.world()).map_err(|e| format!("the ledger does not add up: {e}"))?;

        let world = sim.world();
        let final_kpis = kpis::compute(world);
        let series = world.resource::<Kpis>().csv(&final_kpis);
        let series_path = dir.join("timeseries.csv");
        write_atomically(&series_path, series.as_bytes()).map_err(|e| format!("{}: {e}", series_path.display()))?;
        let thoughts = world.resource::<crate::kernel::llm::Thoughts>().total();
        Ok(RunResult {
            run_id: spec.run_id.clone(),
            index: spec.index,
            point_index: spec.point_index,
            point: spec.point.clone(),
            seed: spec.seed,
            stopped_by,
            steps: sim.steps_done(),
            sim_time_secs: sim.now().as_secs_f64(),
            kpis: final_kpis,
            events: world.resource::<EventLog>().total(),
            llm_calls: thoughts.calls,
            llm_cost_micro_usd: thoughts.cost_micro_usd,
            checksum: sim.checksum(),
            wall_secs,
            resumed_at_step: resumed_at,
        })
    }

    /// The world of `spec` from its checkpoint, if it has a good one of this run.
    fn resume(&self, spec: &RunSpec, path: &Path) -> Result<Option<Simulation>, String> {
        if !path.exists() {
            return Ok(None);
        }
        // A damaged checkpoint costs the run its progress, not the batch: it starts over.
        let Ok(checkpoint) = Checkpoint::read(path) else { return Ok(None) };
        let plan: Option<Plan> = serde_json::from_value(checkpoint.info.plan.clone()).ok();
        if plan.is_none_or(|p| p.run_id != spec.run_id) {
            return Ok(None);
        }
        Simulation::from_checkpoint(checkpoint).map(Some).map_err(|e| e.to_string())
    }
}

/// What a run's checkpoint keeps in its plan.
#[derive(Serialize, Deserialize)]
struct Plan {
    run_id: String,
}

/// Writes what became of a run into its directory: `result.json` (the run is done;
/// its checkpoint goes) or `failed.json`.
fn record(out: &Path, spec: &RunSpec, outcome: &Result<RunResult, String>) -> Result<(), BatchError> {
    let dir = output::run_dir(out, &spec.run_id);
    let (name, text) = match outcome {
        Ok(result) => ("result.json", serde_json::to_string_pretty(result)),
        Err(error) => (
            "failed.json",
            serde_json::to_string_pretty(&RunFailure {
                run_id: spec.run_id.clone(),
                index: spec.index,
                error: error.clone(),
            }),
        ),
    };
    let path = dir.join(name);
    let text = text.map_err(|e| BatchError::Output(e.to_string()))?;
    write_atomically(&path, text.as_bytes()).map_err(|e| BatchError::io(&path, e))?;
    if outcome.is_ok() {
        for stale in ["checkpoint", "failed.json"] {
            match std::fs::remove_file(dir.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(BatchError::io(&dir.join(stale), e)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// When a run is over.
struct Goal<'a> {
    stop: Option<&'a Stop>,
    /// Steps for `Steps` and the scene's length, `max_steps` for `Kpi`.
    max_steps: u64,
    until: Option<SimTime>,
    /// Health samples already looked at.
    seen: usize,
}

impl<'a> Goal<'a> {
    fn new(stop: Option<&'a Stop>, config: &Config) -> Self {
        let (max_steps, until) = match stop {
            None => (config.steps, None),
            Some(Stop::Steps(steps)) => (*steps, None),
            Some(Stop::Until(secs)) => (u64::MAX, Some(SimTime::from_secs_f64(*secs).unwrap_or(SimTime::MAX))),
            Some(Stop::Kpi { max_steps, .. }) => (*max_steps, None),
        };
        Self { stop, max_steps, until, seen: 0 }
    }

    /// Whether the run is over, looking at the samples not seen before.
    fn reached(&mut self, sim: &Simulation) -> Option<StoppedBy> {
        if let Some(stop @ Stop::Kpi { .. }) = self.stop {
            let series = sim.world().resource::<Kpis>().series();
            let crossed = series.iter().skip(self.seen).any(|sample| stop.reached_by(sample));
            self.seen = series.len();
            if crossed {
                return Some(StoppedBy::Kpi);
            }
        }
        if self.until.is_some_and(|until| sim.now() >= until) {
            return Some(StoppedBy::Length);
        }
        if sim.steps_done() >= self.max_steps {
            return Some(if matches!(self.stop, Some(Stop::Kpi { .. })) {
                StoppedBy::MaxSteps
            } else {
                StoppedBy::Length
            });
        }
        None
    }
}
