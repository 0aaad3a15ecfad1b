//! The command line: raw arguments (clap) are validated into typed options, then run.
//!
//! `ecology` alone runs the embedded default scene, like `ecology run`.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use agent_ecology::{
    bridge::{BridgeOptions, config::ClockMode},
    economy::{
        auditor::Story,
        kpis::{KpiSample, Kpis},
    },
    kernel::Event,
    run::{Report, Simulation, audit, write_atomically},
    sandbox::worker::WorkerLimits,
    scene::{Scene, SceneError, ValidScene},
    world::time::SimTime,
};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
    name = "ecology",
    version,
    about = "Agent Ecology: an economy of LLM agents and artifacts under real scarcity"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scene headless and print a summary (the embedded default scene if none is given).
    Run(Box<RunArgs>),
    /// Open the desktop window on a scene (the embedded default scene if none is
    /// given). Without a display, runs it headless instead.
    #[cfg(feature = "gui")]
    Gui(Box<GuiArgs>),
    /// Tell the story of a run from its event stream (written by `run --events`).
    Report(ReportArgs),
    /// Check a scene; exits 2 with the first error (file:line:col) if it is broken.
    Validate {
        /// The scene file.
        scene: PathBuf,
    },
    /// Run artifact code for a world process over stdin/stdout (started by the sandbox).
    #[command(hide = true)]
    SandboxWorker {
        #[arg(long)]
        heap_bytes: usize,
        #[arg(long)]
        recursion: usize,
        #[arg(long)]
        stack_bytes: usize,
    },
}

#[derive(Args, Debug, Default)]
struct RunArgs {
    /// Scene file (RON). Default: the embedded scenes/default.ron.
    scene: Option<PathBuf>,
    /// Number of steps to run (default: the scene's config.steps).
    #[arg(long, conflicts_with = "until")]
    steps: Option<u64>,
    /// Run until the simulated clock reaches SECS.
    #[arg(long, value_name = "SECS")]
    until: Option<f64>,
    /// Seed of the world's random stream (default: the scene's config.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stream every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Write the JSON report to FILE, or to standard output with `-`.
    #[arg(long, value_name = "FILE|-")]
    report: Option<PathBuf>,
    /// Write the time series of health indicators to FILE as CSV (one row per
    /// sample, plus the final state).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Save the final world as a scene file.
    #[arg(long, value_name = "FILE")]
    save_scene: Option<PathBuf>,
    /// Record every call to a language model in DIR (and serve answers already
    /// recorded there instead of calling the model again).
    #[arg(long, value_name = "DIR")]
    llm_cache: Option<PathBuf>,
    /// Serve calls only from --llm-cache DIR, never from a model: re-executes a
    /// recorded run offline, to the same checksum. A call never recorded stops the run.
    #[arg(long, requires = "llm_cache")]
    replay: bool,
    /// `lockstep` (default for runs: a step waits for the answers asked for before
    /// it, so latency changes nothing) or `realtime` (the world keeps moving, paced
    /// to the wall clock).
    #[arg(long, value_name = "MODE")]
    clock: Option<String>,
    /// The model of agents and requests that name none (one of the scene's
    /// config.llm.models or the built-in price table, e.g. gpt-4o-mini, llama3.2).
    #[arg(long, value_name = "MODEL")]
    llm_model: Option<String>,
    /// In realtime mode, simulated seconds per wall-clock second (default 1).
    #[arg(long, value_name = "X")]
    speed: Option<f64>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
}

#[cfg(feature = "gui")]
#[derive(Args, Debug, Default)]
struct GuiArgs {
    /// Scene file (RON). Default: the embedded scenes/default.ron.
    scene: Option<PathBuf>,
    /// Seed of the world's random stream (default: the scene's config.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// `realtime` (default in the window: the world never waits for a model) or
    /// `lockstep` (a step waits for the answers asked for before it).
    #[arg(long, value_name = "MODE")]
    clock: Option<String>,
    /// Record every call to a language model in DIR (see `run --llm-cache`).
    #[arg(long, value_name = "DIR")]
    llm_cache: Option<PathBuf>,
    /// Serve calls only from --llm-cache DIR.
    #[arg(long, requires = "llm_cache")]
    replay: bool,
    /// Start playing at once.
    #[arg(long)]
    play: bool,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The event stream (JSON lines), or `-` for standard input.
    events: PathBuf,
    /// Write the story to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Input the user got wrong (exit code 2), as opposed to a failure of ours (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.downcast_ref::<BadInput>().is_some() || err.downcast_ref::<SceneError>().is_some()
}

/// A reader that stopped reading (`ecology run --report - | head`) is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<serde_json::Error>().and_then(|e| e.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "gui")]
        None => window(GuiArgs::default()),
        #[cfg(not(feature = "gui"))]
        None => run(RunOptions::from_args(RunArgs::default())?),
        #[cfg(feature = "gui")]
        Some(Command::Gui(args)) => window(*args),
        Some(Command::Run(args)) => run(RunOptions::from_args(*args)?),
        Some(Command::Report(args)) => tell(&args),
        Some(Command::Validate { scene }) => validate(&scene),
        Some(Command::SandboxWorker { heap_bytes, recursion, stack_bytes }) => {
            let limits = WorkerLimits { heap_bytes, recursion, stack_bytes, ..WorkerLimits::default() };
            std::process::exit(agent_ecology::sandbox::worker::main(limits))
        }
    }
}

/// Opens the window; without a display, says so in one line and runs headless.
#[cfg(feature = "gui")]
fn window(args: GuiArgs) -> Result<()> {
    use agent_ecology::gui::{self, GuiError, SessionOptions};
    let clock = match args.clock.as_deref() {
        None => ClockMode::Realtime,
        Some(name) => {
            ClockMode::parse(name).ok_or_else(|| BadInput(format!("--clock {name}: expected lockstep or realtime")))?
        }
    };
    let headless = |why: &str| -> Result<()> {
        writeln!(std::io::stderr().lock(), "{why}; running headless instead (`ecology run --help` for options)")?;
        run(RunOptions::from_args(RunArgs {
            scene: args.scene.clone(),
            seed: args.seed,
            clock: args.clock.clone(),
            llm_cache: args.llm_cache.clone(),
            replay: args.replay,
            ..RunArgs::default()
        })?)
    };
    if !gui::display_available() {
        return headless("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset)");
    }
    let scene = load_scene(args.scene.as_deref())?;
    // Problems the scene has are shown before the window opens, as on the command line.
    validate_showing_warnings(&scene, false)?;
    let options = SessionOptions {
        seed: args.seed,
        clock: Some(clock),
        bridge: BridgeOptions { cache_dir: args.llm_cache.clone(), replay: args.replay },
        playing: args.play,
        ..SessionOptions::default()
    };
    match gui::run_window(scene, options) {
        Ok(()) => Ok(()),
        Err(GuiError::NoDisplay(why)) => headless(&format!("cannot open a window ({why})")),
        Err(error) => Err(error.into()),
    }
}

/// When a run stops.
enum Stop {
    Steps(u64),
    Until(SimTime),
    SceneDefault,
}

enum ReportTo {
    Stdout,
    File(PathBuf),
}

/// `run` arguments, checked.
struct RunOptions {
    scene: Option<PathBuf>,
    stop: Stop,
    seed: Option<u64>,
    events: Option<PathBuf>,
    report: Option<ReportTo>,
    metrics: Option<PathBuf>,
    save_scene: Option<PathBuf>,
    bridge: BridgeOptions,
    clock: Option<ClockMode>,
    llm_model: Option<String>,
    speed: f64,
    quiet: bool,
}

impl RunOptions {
    fn from_args(args: RunArgs) -> Result<Self> {
        let stop = match (args.steps, args.until) {
            (Some(steps), _) => Stop::Steps(steps),
            (None, Some(secs)) => Stop::Until(
                SimTime::from_secs_f64(secs)
                    .ok_or_else(|| BadInput(format!("--until {secs}: expected simulated seconds ≥ 0")))?,
            ),
            (None, None) => Stop::SceneDefault,
        };
        let report =
            args.report.map(|path| if path.as_os_str() == "-" { ReportTo::Stdout } else { ReportTo::File(path) });
        let clock = match args.clock.as_deref() {
            None => None,
            Some(name) => Some(
                ClockMode::parse(name)
                    .ok_or_else(|| BadInput(format!("--clock {name}: expected lockstep or realtime")))?,
            ),
        };
        let speed = args.speed.unwrap_or(1.0);
        if !(speed.is_finite() && speed > 0.0) {
            return Err(BadInput(format!("--speed {speed}: expected a positive number")).into());
        }
        Ok(Self {
            scene: args.scene,
            stop,
            seed: args.seed,
            events: args.events,
            report,
            metrics: args.metrics,
            save_scene: args.save_scene,
            bridge: BridgeOptions { cache_dir: args.llm_cache, replay: args.replay },
            clock,
            llm_model: args.llm_model,
            speed,
            quiet: args.quiet,
        })
    }
}

fn load_scene(path: Option<&Path>) -> Result<Scene> {
    Ok(match path {
        Some(path) => Scene::load(path)?,
        None => Scene::embedded_default().context("the embedded default scene is broken")?,
    })
}

/// Validates `scene`, showing its warnings on standard error.
fn validate_showing_warnings(scene: &Scene, quiet: bool) -> Result<ValidScene> {
    let valid = scene.validate()?;
    if !quiet {
        let mut err = std::io::stderr().lock();
        for warning in &valid.warnings {
            writeln!(err, "warning: {warning}")?;
        }
    }
    Ok(valid)
}

fn validate(path: &Path) -> Result<()> {
    let scene = Scene::load(path)?;
    let valid = validate_showing_warnings(&scene, false)?;
    writeln!(
        std::io::stdout().lock(),
        "{}: ok ({} principals, {} artifacts, {} interventions)",
        path.display(),
        valid.principals.len(),
        valid.artifacts.len(),
        valid.interventions.len()
    )?;
    Ok(())
}

fn create(path: &Path, what: &str) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| BadInput(format!("cannot create {what} {}: {e}", path.display())).into())
}

fn run(options: RunOptions) -> Result<()> {
    let scene = load_scene(options.scene.as_deref())?;
    let mut valid = validate_showing_warnings(&scene, options.quiet)?;
    if let Some(seed) = options.seed {
        valid.config.seed = seed;
    }
    if let Some(clock) = options.clock {
        valid.config.llm.clock = clock;
    }
    if let Some(model) = &options.llm_model {
        valid.config.llm.model(Some(model)).map_err(|why| BadInput(format!("--llm-model: {why}")))?;
        valid.config.llm.default_model = Some(model.clone());
    }
    let realtime = valid.config.llm.clock == ClockMode::Realtime;
    let dt = valid.config.dt;
    let mut sim = Simulation::from_valid(valid);
    sim.use_bridge(options.bridge.clone()).map_err(BadInput)?;
    if let Some(path) = &options.events {
        let file = create(path, "event file")?;
        sim.stream_events_to(Box::new(std::io::BufWriter::with_capacity(1 << 16, file)));
    }
    let steps = match options.stop {
        Stop::Steps(steps) => steps,
        Stop::Until(until) => sim.steps_until(until),
        Stop::SceneDefault => sim.world().resource::<agent_ecology::world::config::Config>().steps,
    };

    let progress = ProgressBar::with_draw_target(
        Some(steps),
        if options.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} {bar:40} {human_pos}/{human_len} steps ({rate}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} steps/s", state.per_sec());
            }),
    );
    let started = Instant::now();
    for step in 0..steps {
        if realtime {
            // Keep pace with the wall clock, so that answers arrive in simulated time
            // as they do in real time.
            let due = std::time::Duration::from_secs_f64(dt.as_secs_f64() * step as f64 / options.speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sim.step();
        progress.inc(1);
        if let Some(fatal) = sim.fatal_error() {
            progress.finish_and_clear();
            return Err(BadInput(fatal).into());
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    if let Err(error) = sim.end_thinking() {
        writeln!(std::io::stderr().lock(), "warning: the LLM cache is incomplete: {error}")?;
    }

    sim.flush_events().context("writing the event stream failed")?;
    audit(sim.world()).context("the ledger does not add up")?;
    let report = sim.report();
    match &options.report {
        Some(ReportTo::Stdout) => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Some(ReportTo::File(path)) => {
            let mut file = create(path, "report file")?;
            serde_json::to_writer_pretty(&mut file, &report)?;
            writeln!(file)?;
        }
        None => {}
    }
    if let Some(path) = &options.metrics {
        write_metrics(path, &sim, &report.economy.kpis)?;
    }
    if let Some(path) = &options.save_scene {
        let text = sim.save_scene().to_ron_string()?;
        write_atomically(path, text.as_bytes())
            .map_err(|e| BadInput(format!("cannot save scene {}: {e}", path.display())))?;
    }
    if !options.quiet {
        // Keep standard output clean for the report when it goes there.
        let summary = summary(&report, wall.as_secs_f64());
        if matches!(options.report, Some(ReportTo::Stdout)) {
            std::io::stderr().lock().write_all(summary.as_bytes())?;
        } else {
            std::io::stdout().lock().write_all(summary.as_bytes())?;
        }
    }
    Ok(())
}

/// The KPI series as CSV, ending with the final state if the last sample is older.
fn write_metrics(path: &Path, sim: &Simulation, last: &KpiSample) -> Result<()> {
    let series = sim.world().resource::<Kpis>().series();
    let mut csv = String::with_capacity(128 * (series.len() + 2));
    csv.push_str(KpiSample::CSV_HEADER);
    csv.push('\n');
    for sample in series {
        csv.push_str(&sample.csv_row());
        csv.push('\n');
    }
    if series.last().is_none_or(|s| s.step != last.step) {
        csv.push_str(&last.csv_row());
        csv.push('\n');
    }
    write_atomically(path, csv.as_bytes())
        .map_err(|e| BadInput(format!("cannot write metrics {}: {e}", path.display())).into())
}

/// `ecology report`: reads an event stream line by line and writes its story.
fn tell(args: &ReportArgs) -> Result<()> {
    use std::io::BufRead;
    let name = args.events.display().to_string();
    let input: Box<dyn BufRead> = if args.events.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(&args.events).map_err(|e| BadInput(format!("cannot open event stream {name}: {e}")))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, file))
    };
    let mut story = Story::default();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading {name}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line)
            .map_err(|e| BadInput(format!("{name}:{}:{}: not an event: {e}", n + 1, e.column())))?;
        story.read(&event);
    }
    let text = story.render(&format!("The story of {name}"));
    match &args.out {
        Some(path) => write_atomically(path, text.as_bytes())
            .map_err(|e| BadInput(format!("cannot write {}: {e}", path.display())))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn summary(report: &Report, wall_secs: f64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let per_sec = |n: f64| if wall_secs > 0.0 { n / wall_secs } else { f64::INFINITY };
    let _ = writeln!(out, "Agent Ecology — {} (seed {})", report.scene, report.seed);
    let _ = writeln!(
        out,
        "  ran {} steps, {} s simulated, in {:.3} s ({:.0} steps/s, {:.0} events/s)",
        report.steps,
        report.sim_time_secs,
        wall_secs,
        per_sec(report.steps as f64),
        per_sec(report.events.total as f64)
    );
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
        "  interventions: {} applied, {} failed, {} pending",
        report.interventions.applied, report.interventions.failed, report.interventions.pending
    );
    let economy = &report.economy;
    let _ = writeln!(
        out,
        "  economy: {} mint resolutions, {} invocations by non-creators, {} freezes, {} rescues",
        economy.mint_resolutions, economy.invocations_by_others, economy.freezes, economy.rescues
    );
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
    }
    let _ = writeln!(out, "  checksum {}", report.checksum);
    out
}
