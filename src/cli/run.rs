//! `ecology run`: one world headless, with its outputs, checkpoints and resumption.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use agent_ecology::{
    bridge::{
        BridgeOptions,
        config::{ClockMode, ModelOverride},
    },
    economy::kpis::Kpis,
    kernel::EventLog,
    run::{
        Checkpoint, Report, Simulation, audit, check_checkpoint_cadence, checkpoint_due, control::Control,
        write_atomically,
    },
    scene::{SceneWarning, interventions_from_ron_str},
    world::{config::Config, time::SimTime},
};
use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::{BadInput, ModelArgs, checkpoint_cadence, create, load_scene, progress_bar, validate_showing_warnings};

#[derive(Args, Debug, Default)]
pub(super) struct RunArgs {
    /// Scene file (RON). Default: the embedded scenes/default.ron.
    #[arg(conflicts_with = "resume")]
    pub scene: Option<PathBuf>,
    /// Number of steps to run (default: the scene's config.steps). With --resume,
    /// where the run ends, counted from its start.
    #[arg(long, conflicts_with = "until")]
    pub steps: Option<u64>,
    /// Run until the simulated clock reaches SECS.
    #[arg(long, value_name = "SECS")]
    pub until: Option<f64>,
    /// Seed of the world's random stream (default: the scene's config.seed).
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// Stream every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Write the JSON report to FILE, or to standard output with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub report: Option<PathBuf>,
    /// Write the time series of health indicators to FILE as CSV (one row per
    /// sample, plus the final state).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Save the final world as a scene file.
    #[arg(long, value_name = "FILE")]
    pub save_scene: Option<PathBuf>,
    /// Write a checkpoint of the whole world to FILE every --checkpoint-every
    /// simulated seconds (atomically: the file always holds a whole checkpoint).
    #[arg(long, value_name = "FILE", requires = "checkpoint_every")]
    pub checkpoint: Option<PathBuf>,
    /// Simulated seconds between checkpoints; a multiple of the scene's
    /// config.sandbox.epoch_secs (default 600), where checkpoints are exact.
    #[arg(long, value_name = "SECS", requires = "checkpoint")]
    pub checkpoint_every: Option<f64>,
    /// Go on with the run a checkpoint was taken of, to where it was to end, with
    /// its outputs (flags given here replace the run's own).
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// `lockstep` (default for runs: a step waits for the answers asked for before
    /// it, so latency changes nothing) or `realtime` (the world keeps moving, paced
    /// to the wall clock).
    #[arg(long, value_name = "MODE", conflicts_with = "resume")]
    pub clock: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// In realtime mode, simulated seconds per wall-clock second (default 1).
    #[arg(long, value_name = "X")]
    pub speed: Option<f64>,
    /// Publish capability requests to DIR/requests.json and apply the decisions
    /// `ecology capabilities approve|deny --control DIR` leave there.
    #[arg(long, value_name = "DIR")]
    pub control: Option<PathBuf>,
    /// Add the scene interventions in FILE to the scene's own: a control
    /// directory's interventions.ron replays the decisions a person made.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub interventions: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// When a run stops.
enum Stop {
    Steps(u64),
    Until(SimTime),
    /// The scene's `config.steps`, or where a resumed run was to end.
    Planned,
}

/// `run` arguments, checked.
pub(super) struct RunOptions {
    scene: Option<PathBuf>,
    stop: Stop,
    seed: Option<u64>,
    clock: Option<ClockMode>,
    model: ModelOverride,
    allow_offline: bool,
    interventions: Option<PathBuf>,
    resume: Option<PathBuf>,
    /// What the arguments say of the run's outputs; with `resume`, what they change.
    outputs: Outputs,
    quiet: bool,
}

/// Where a run writes, how it thinks, how fast it goes: what a checkpoint remembers
/// of a run so that `--resume` goes on with it. Paths are absolute, so a run resumes
/// from anywhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Outputs {
    events: Option<PathBuf>,
    /// `-` is standard output.
    report: Option<PathBuf>,
    metrics: Option<PathBuf>,
    save_scene: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    checkpoint_every_secs: Option<f64>,
    llm_cache: Option<PathBuf>,
    replay: bool,
    speed: Option<f64>,
    #[serde(default)]
    control: Option<PathBuf>,
}

impl Outputs {
    /// These outputs, with whatever `given` sets instead.
    fn replaced_by(self, given: Outputs) -> Outputs {
        let replay = if given.llm_cache.is_some() { given.replay } else { self.replay };
        Outputs {
            events: given.events.or(self.events),
            report: given.report.or(self.report),
            metrics: given.metrics.or(self.metrics),
            save_scene: given.save_scene.or(self.save_scene),
            checkpoint: given.checkpoint.or(self.checkpoint),
            checkpoint_every_secs: given.checkpoint_every_secs.or(self.checkpoint_every_secs),
            llm_cache: given.llm_cache.or(self.llm_cache),
            replay,
            speed: given.speed.or(self.speed),
            control: given.control.or(self.control),
        }
    }

    fn bridge(&self) -> BridgeOptions {
        BridgeOptions { cache_dir: self.llm_cache.clone(), replay: self.replay }
    }
}

/// What a checkpoint of `ecology run` keeps in its plan.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    /// The step the run ends at.
    end_step: u64,
    outputs: Outputs,
}

fn absolute(path: Option<PathBuf>) -> Result<Option<PathBuf>> {
    match path {
        Some(path) if path.as_os_str() != "-" => {
            Ok(Some(std::path::absolute(&path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?))
        }
        other => Ok(other),
    }
}

impl RunOptions {
    pub(super) fn from_args(args: RunArgs) -> Result<Self> {
        let stop = match (args.steps, args.until) {
            (Some(steps), _) => Stop::Steps(steps),
            (None, Some(secs)) => Stop::Until(
                SimTime::from_secs_f64(secs)
                    .ok_or_else(|| BadInput(format!("--until {secs}: expected simulated seconds ≥ 0")))?,
            ),
            (None, None) => Stop::Planned,
        };
        if args.resume.is_some() && !args.model.choice().is_empty() {
            return Err(BadInput(
                "--llm-model and --llm-endpoint do not apply to --resume: the checkpoint's world keeps its models"
                    .into(),
            )
            .into());
        }
        let clock = match args.clock.as_deref() {
            None => None,
            Some(name) => Some(
                ClockMode::parse(name)
                    .ok_or_else(|| BadInput(format!("--clock {name}: expected lockstep or realtime")))?,
            ),
        };
        if let Some(speed) = args.speed
            && !(speed.is_finite() && speed > 0.0)
        {
            return Err(BadInput(format!("--speed {speed}: expected a positive number")).into());
        }
        if let Some(secs) = args.checkpoint_every {
            checkpoint_cadence(secs)?;
        }
        let outputs = Outputs {
            events: absolute(args.events)?,
            report: absolute(args.report)?,
            metrics: absolute(args.metrics)?,
            save_scene: absolute(args.save_scene)?,
            checkpoint: absolute(args.checkpoint)?,
            checkpoint_every_secs: args.checkpoint_every,
            llm_cache: absolute(args.model.llm_cache.clone())?,
            replay: args.model.replay,
            speed: args.speed,
            control: absolute(args.control)?,
        };
        Ok(Self {
            scene: args.scene,
            stop,
            seed: args.seed,
            clock,
            model: args.model.choice(),
            allow_offline: args.model.allow_offline,
            interventions: args.interventions,
            resume: absolute(args.resume)?,
            outputs,
            quiet: args.quiet,
        })
    }
}

/// A world ready to run and what to do with it.
struct Prepared {
    sim: Simulation,
    plan: Plan,
    /// The step it was resumed at, if it was.
    resumed_at: Option<u64>,
}

/// A new run of a scene.
fn start(options: RunOptions) -> Result<Prepared> {
    let scene = load_scene(options.scene.as_deref())?;
    let mut valid = validate_showing_warnings(&scene, options.quiet)?;
    if let Some(path) = &options.interventions {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("cannot read {name}: {e}")))?;
        let extra = interventions_from_ron_str(&name, &text).map_err(|e| BadInput(e.to_string()))?;
        // The scene itself is valid (checked above, with positions in its text), so
        // what is wrong now is in the added interventions.
        let combined = scene.with_interventions(extra).validate().map_err(|e| BadInput(format!("{name}: {e}")))?;
        if !options.quiet {
            let mut err = std::io::stderr().lock();
            let new = |w: &&SceneWarning| !valid.warnings.iter().any(|o| o.path == w.path && o.message == w.message);
            for warning in combined.warnings.iter().filter(new) {
                writeln!(err, "warning: {name}: {}: {}", warning.path, warning.message)?;
            }
        }
        valid = combined;
    }
    if let Some(seed) = options.seed {
        valid.config.seed = seed;
    }
    if let Some(clock) = options.clock {
        valid.config.llm.clock = clock;
    }
    valid.config.llm.choose(&options.model).map_err(BadInput)?;
    let mut sim = Simulation::from_valid(valid);
    let outputs = options.outputs;
    sim.use_bridge(outputs.bridge()).map_err(BadInput)?;
    if let Some(path) = &outputs.events {
        let file = create(path, "event file")?;
        sim.stream_events_to(Box::new(std::io::BufWriter::with_capacity(1 << 16, file)));
    }
    let end_step = match options.stop {
        Stop::Steps(steps) => steps,
        Stop::Until(until) => sim.steps_until(until),
        Stop::Planned => sim.world().resource::<Config>().steps,
    };
    Ok(Prepared { sim, plan: Plan { end_step, outputs }, resumed_at: None })
}

/// The run a checkpoint was taken of, with what the arguments change.
fn resume(path: &Path, options: RunOptions) -> Result<Prepared> {
    let checkpoint = Checkpoint::read(path).map_err(|e| BadInput(e.to_string()))?;
    if !checkpoint.info.exact && !options.quiet {
        writeln!(
            std::io::stderr().lock(),
            "warning: {} was not taken at a sandbox epoch (or in lockstep): the run goes on from it, \
             but not necessarily as it would have without stopping",
            path.display()
        )?;
    }
    // A checkpoint not written by `ecology run` has no plan: the run ends at the
    // scene's length, and writes what the arguments say.
    let planned: Option<Plan> = serde_json::from_value(checkpoint.info.plan.clone()).ok();
    let mut sim = Simulation::from_checkpoint(checkpoint).map_err(|e| BadInput(e.to_string()))?;
    let step = sim.steps_done();
    let (planned_end, planned_outputs) = match planned {
        Some(plan) => (plan.end_step, plan.outputs),
        None => (sim.world().resource::<Config>().steps, Outputs::default()),
    };
    let outputs = planned_outputs.replaced_by(options.outputs);
    sim.use_bridge(outputs.bridge()).map_err(BadInput)?;
    if let Some(events) = &outputs.events {
        let total = sim.world().resource::<EventLog>().total();
        let file = agent_ecology::run::continue_event_stream(events, total)
            .map_err(|e| BadInput(format!("cannot go on with the event stream {}: {e}", events.display())))?;
        sim.stream_events_to(Box::new(std::io::BufWriter::with_capacity(1 << 16, file)));
    }
    let end_step = match options.stop {
        Stop::Steps(steps) => steps,
        Stop::Until(until) => step + sim.steps_until(until),
        Stop::Planned => planned_end,
    };
    Ok(Prepared { sim, plan: Plan { end_step, outputs }, resumed_at: Some(step) })
}

/// The world `options` describe, checked against what it reaches outside itself
/// (unless `--allow-offline`), and the step it is to end at.
pub(super) fn prepare(options: RunOptions) -> Result<(Simulation, u64)> {
    let Prepared { sim, plan, .. } = prepared(options)?;
    Ok((sim, plan.end_step))
}

fn prepared(options: RunOptions) -> Result<Prepared> {
    let allow_offline = options.allow_offline;
    let mut prepared = match options.resume.clone() {
        Some(path) => resume(&path, options)?,
        None => start(options)?,
    };
    if !allow_offline {
        super::preflight(&mut prepared.sim)?;
    }
    Ok(prepared)
}

pub(super) fn run(options: RunOptions) -> Result<()> {
    let quiet = options.quiet;
    let Prepared { mut sim, plan, resumed_at } = prepared(options)?;
    let outputs = &plan.outputs;
    let config = sim.world().resource::<Config>();
    let realtime = config.llm.clock == ClockMode::Realtime;
    let dt = config.dt;
    let checkpoints = match (&outputs.checkpoint, outputs.checkpoint_every_secs) {
        (Some(path), Some(secs)) => {
            let every = checkpoint_cadence(secs)?;
            check_checkpoint_cadence(config, every)
                .map_err(|why| BadInput(format!("--checkpoint-every {secs}: {why}")))?;
            if realtime && !quiet {
                writeln!(
                    std::io::stderr().lock(),
                    "warning: a realtime run's checkpoints resume its world, not its timing"
                )?;
            }
            Some((path.clone(), every))
        }
        _ => None,
    };
    let plan_json = serde_json::to_value(&plan)?;
    let first = sim.steps_done();
    let speed = outputs.speed.unwrap_or(1.0);

    let mut control = match &outputs.control {
        Some(dir) => Some(
            Control::open(dir)
                .map_err(|e| BadInput(format!("cannot use {} to control the run: {e}", dir.display())))?,
        ),
        None => None,
    };
    let progress = progress_bar(plan.end_step, "steps", quiet);
    progress.set_position(first);
    progress.reset_eta();
    let _watch = (!quiet).then(|| WaitWatch::start(&sim, progress.clone()));
    let started = Instant::now();
    for step in first..plan.end_step {
        if realtime {
            // Keep pace with the wall clock, so that answers arrive in simulated time
            // as they do in real time.
            let due = std::time::Duration::from_secs_f64(dt.as_secs_f64() * (step - first) as f64 / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if let Some(control) = &mut control {
            control.sync(&mut sim).with_context(|| format!("the control directory {}", control.dir().display()))?;
        }
        let before = sim.now();
        sim.step();
        progress.inc(1);
        if let Some(fatal) = sim.fatal_error() {
            progress.finish_and_clear();
            return Err(BadInput(fatal).into());
        }
        if let Some((path, every)) = &checkpoints
            && checkpoint_due(before, sim.now(), *every)
        {
            // The events up to the checkpoint are in the file before the checkpoint
            // is, so a resumed run finds them there.
            sim.flush_events().context("writing the event stream failed")?;
            sim.write_checkpoint(path, plan_json.clone())?;
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    if let Some(control) = &control {
        control.publish(&sim, false)?;
    }
    if let Err(error) = sim.end_thinking() {
        writeln!(std::io::stderr().lock(), "warning: the LLM cache is incomplete: {error}")?;
    }

    sim.flush_events().context("writing the event stream failed")?;
    audit(sim.world()).context("the ledger does not add up")?;
    let report = sim.report();
    let to_stdout = outputs.report.as_deref().is_some_and(|p| p.as_os_str() == "-");
    match &outputs.report {
        Some(_) if to_stdout => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Some(path) => {
            let mut file = create(path, "report file")?;
            serde_json::to_writer_pretty(&mut file, &report)?;
            writeln!(file)?;
        }
        None => {}
    }
    if let Some(path) = &outputs.metrics {
        let csv = sim.world().resource::<Kpis>().csv(&report.economy.kpis);
        write_atomically(path, csv.as_bytes())
            .map_err(|e| BadInput(format!("cannot write metrics {}: {e}", path.display())))?;
    }
    if let Some(path) = &outputs.save_scene {
        let text = sim.save_scene().to_ron_string()?;
        write_atomically(path, text.as_bytes())
            .map_err(|e| BadInput(format!("cannot save scene {}: {e}", path.display())))?;
    }
    if !quiet {
        // Keep standard output clean for the report when it goes there.
        let summary = summary(&report, wall.as_secs_f64(), resumed_at);
        if to_stdout {
            std::io::stderr().lock().write_all(summary.as_bytes())?;
        } else {
            std::io::stdout().lock().write_all(summary.as_bytes())?;
        }
    }
    let llm = &report.llm;
    if llm.calls == 0 && llm.failed > 0 {
        let first = llm.first_failure.as_deref().unwrap_or("unknown");
        anyhow::bail!("every call to a language model failed ({}); the first: {first}", llm.failed);
    }
    Ok(())
}

/// Says what a run waits on when a step waits for models (lockstep behind a slow
/// server would otherwise look hung): in the progress bar on a terminal, else a line
/// on standard error every `LOG_EVERY`. Stops when dropped.
struct WaitWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WaitWatch {
    const TICK: std::time::Duration = std::time::Duration::from_millis(500);
    const LOG_EVERY: u64 = 20; // ticks: 10 s

    fn start(sim: &Simulation, progress: indicatif::ProgressBar) -> Self {
        use std::sync::atomic::Ordering;
        let waiting = sim.world().resource::<agent_ecology::bridge::LlmBridge>().waiting();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let thread = std::thread::Builder::new()
            .name("ecology-wait-watch".into())
            .spawn(move || {
                let mut ticks = 0u64;
                while !stopped.load(Ordering::Relaxed) {
                    // Parked rather than asleep, so the end of the run wakes it at
                    // once instead of waiting out the tick.
                    std::thread::park_timeout(Self::TICK);
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = waiting.load(Ordering::Relaxed);
                    if n == 0 {
                        if ticks > 0 {
                            progress.set_message("");
                        }
                        ticks = 0;
                        continue;
                    }
                    ticks += 1;
                    let secs = ticks * Self::TICK.as_millis() as u64 / 1000;
                    let calls = if n == 1 { "call" } else { "calls" };
                    let line = format!("waiting on {n} model {calls} ({secs} s)");
                    if terminal {
                        progress.set_message(format!(" — {line}"));
                    } else if ticks.is_multiple_of(Self::LOG_EVERY) {
                        eprintln!("{line}");
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for WaitWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A watcher that panicked has nothing left to show.
            let _ = thread.join();
        }
    }
}

fn summary(report: &Report, wall_secs: f64, resumed_at: Option<u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let per_sec = |n: f64| if wall_secs > 0.0 { n / wall_secs } else { f64::INFINITY };
    let _ = writeln!(out, "Agent Ecology — {} (seed {})", report.scene, report.seed);
    match resumed_at {
        None => {
            let _ = writeln!(
                out,
                "  ran {} steps, {} s simulated, in {:.3} s ({:.0} steps/s, {:.0} agent-steps/s, {:.0} events/s)",
                report.steps,
                report.sim_time_secs,
                wall_secs,
                per_sec(report.steps as f64),
                per_sec(report.agent_steps as f64),
                per_sec(report.events.total as f64)
            );
        }
        Some(at) => {
            let _ = writeln!(
                out,
                "  ran {} steps, {} s simulated; resumed at step {at}, the last {} in {:.3} s ({:.0} steps/s)",
                report.steps,
                report.sim_time_secs,
                report.steps.saturating_sub(at),
                wall_secs,
                per_sec(report.steps.saturating_sub(at) as f64),
            );
        }
    }
    let frozen = report.principals.values().filter(|p| p.frozen).count();
    let deleted = report.artifacts.values().filter(|a| a.deleted).count();
    let _ = writeln!(
        out,
        "  {} principals ({frozen} frozen), {} artifacts ({deleted} deleted)",
        report.principals.len(),
        report.artifacts.len()
    );
    let _ = writeln!(
        out,
        "  scrip supply {} ({} minted, {} granted)",
        report.scrip_supply, report.minted_total, report.granted_total
    );
    let mut richest: Vec<(&String, u64)> = report.principals.iter().map(|(id, p)| (id, p.scrip)).collect();
    richest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = richest.iter().take(5).map(|(id, scrip)| format!("{id} {scrip}")).collect();
    let _ = writeln!(out, "  richest: {}", top.join(", "));
    let by_type: Vec<String> = report.events.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let _ = writeln!(out, "  events: {} ({})", report.events.total, by_type.join(", "));
    let _ = writeln!(
        out,
        "  refused or failed actions: {}; events undone by failures: {}",
        report.events.refused, report.events.reverted
    );
    let _ = writeln!(
        out,
        "  interventions: {} applied, {} failed, {} pending",
        report.interventions.applied, report.interventions.failed, report.interventions.pending
    );
    let economy = &report.economy;
    let _ = writeln!(
        out,
        "  economy: {} mint resolutions, {} invocations by non-creators, {} freezes, {} rescues",
        economy.mint_resolutions, economy.invocations_by_others, economy.freezes, economy.rescues
    );
    let tasks = &economy.tasks;
    if tasks.posted > 0 {
        let _ = writeln!(
            out,
            "  tasks: {} posted, {} accepted ({} scrip paid), {} cancelled, {} expired, {} unsettled ({} scrip held)",
            tasks.posted, tasks.accepted, tasks.paid, tasks.cancelled, tasks.expired, tasks.unsettled, tasks.held
        );
    }
    let kpis = &economy.kpis;
    let _ = writeln!(
        out,
        "  health: gini {:.3}, velocity {:.3}, reuse {:.2}, capital depth {}, frozen share {:.2}",
        kpis.gini, kpis.velocity, kpis.reuse, kpis.capital_depth, kpis.frozen_share
    );
    let llm = &report.llm;
    if llm.calls + llm.failed + llm.in_flight > 0 {
        let _ = writeln!(
            out,
            "  thinking ({}): {} calls, {} failed, {} + {} tokens, ${:.6}",
            llm.clock,
            llm.calls,
            llm.failed,
            llm.prompt_tokens,
            llm.completion_tokens,
            llm.cost_micro_usd as f64 / 1e6
        );
        for (model, usage) in &llm.by_model {
            let price = llm.prices.get(model);
            let notional = price.filter(|p| p.notional).map(|p| {
                format!(
                    " at the notional ${:.2}/${:.2} per million tokens (no list price)",
                    p.input_micro_usd_per_mtok as f64 / 1e6,
                    p.output_micro_usd_per_mtok as f64 / 1e6
                )
            });
            let _ = writeln!(
                out,
                "    {model}: {} calls, {} failed{}",
                usage.calls,
                usage.failed,
                notional.unwrap_or_default()
            );
            if let Some(why) = &usage.first_failure {
                let _ = writeln!(out, "      first failure: {why}");
            }
        }
    }
    for (server, usage) in &report.mcp {
        let _ = writeln!(
            out,
            "  mcp_{server}: {} calls, {} failed, {} scrip, ${:.6}",
            usage.calls,
            usage.failed,
            usage.scrip,
            usage.cost_micro_usd as f64 / 1e6
        );
        if let Some(why) = &usage.first_failure {
            let _ = writeln!(out, "    first failure: {why}");
        }
    }
    for (server, why) in &report.mcp_unavailable {
        let _ = writeln!(out, "  mcp_{server}: no tools, the server did not start: {why}");
    }
    let _ = writeln!(out, "  checksum {}", report.checksum);
    out
}
