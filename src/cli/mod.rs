//! The command line: raw arguments (clap) are validated into typed options, then run.
//!
//! `ecology` alone opens the window on the embedded default scene (headless builds:
//! runs it, like `ecology run`). One module per family of commands: [`run`],
//! [`batch`] (sweeps, merge, plot), [`capabilities`], `window`.

mod batch;
mod capabilities;
mod interview;
mod run;
#[cfg(feature = "gui")]
mod window;

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
};

use agent_ecology::{
    economy::auditor::Story,
    kernel::Event,
    run::write_atomically,
    sandbox::worker::WorkerLimits,
    scene::{Scene, SceneError, ValidScene},
    world::time::SimTime,
};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use run::{RunArgs, RunOptions};

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
    /// Run every point and seed of a sweep file in parallel, into a directory of tidy
    /// outputs (runs.csv, timeseries.csv, manifest.json). Resumable.
    Batch(Box<batch::BatchArgs>),
    /// Combine the outputs of a sweep's shards into one directory.
    Merge(batch::MergeArgs),
    /// Draw a batch directory's charts as PNG files.
    Plot(batch::PlotArgs),
    /// Open the desktop window on a scene (the embedded default scene if none is
    /// given). Without a display, runs it headless instead.
    #[cfg(feature = "gui")]
    Gui(Box<window::GuiArgs>),
    /// Ask an agent questions about a run (at its end, at a step, or from a
    /// checkpoint), answered by its model from what it knows; the world is not changed.
    Interview(Box<interview::InterviewArgs>),
    /// Tell the story of a run from its event stream (written by `run --events`).
    Report(ReportArgs),
    /// See and decide the capability requests of a run started with `--control DIR`.
    #[command(subcommand)]
    Capabilities(capabilities::CapabilitiesCommand),
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

#[derive(Args, Debug)]
struct ReportArgs {
    /// The event stream (JSON lines), or `-` for standard input.
    events: PathBuf,
    /// Write the story to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// How a command thinks — which model, where it is served, its recording — the
/// flags `run`, `gui`, `batch` and `interview` share.
#[derive(Args, Debug, Default, Clone)]
struct ModelArgs {
    /// The model of agents and requests that name none: one of the scene's
    /// config.llm.models or the built-in price table (e.g. gpt-4o-mini, llama3.2),
    /// or any model --llm-endpoint serves.
    #[arg(long, value_name = "MODEL")]
    llm_model: Option<String>,
    /// Where that model is served: any OpenAI-compatible server's base URL (e.g.
    /// http://127.0.0.1:8090/v1) or an endpoint's name. A model with no known price
    /// gets the notional $0.10 per million tokens, said in the summary.
    #[arg(long, value_name = "URL|NAME")]
    llm_endpoint: Option<String>,
    /// The environment variable holding the API key of --llm-endpoint URL.
    #[arg(long, value_name = "VAR", requires = "llm_endpoint")]
    llm_key_env: Option<String>,
    /// Run even if a model server does not answer, a key variable is not set or an
    /// MCP server's command is missing (their calls then fail, at no cost).
    #[arg(long)]
    allow_offline: bool,
    /// Record every call to a language model (and to an MCP server) in DIR, and serve
    /// calls already recorded there instead of making them again; a batch records
    /// each run in DIR/<run id>.
    #[arg(long, value_name = "DIR")]
    llm_cache: Option<PathBuf>,
    /// Serve calls only from --llm-cache DIR, never from a model: re-executes a
    /// recorded run offline, to the same checksum. A call never recorded stops the run.
    #[arg(long, requires = "llm_cache")]
    replay: bool,
}

impl ModelArgs {
    fn choice(&self) -> agent_ecology::bridge::config::ModelOverride {
        agent_ecology::bridge::config::ModelOverride {
            model: self.llm_model.clone(),
            endpoint: self.llm_endpoint.clone(),
            key_env: self.llm_key_env.clone(),
        }
    }
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
        None => window::window(window::GuiArgs::default()),
        #[cfg(not(feature = "gui"))]
        None => run::run(RunOptions::from_args(RunArgs::default())?),
        #[cfg(feature = "gui")]
        Some(Command::Gui(args)) => window::window(*args),
        Some(Command::Run(args)) => run::run(RunOptions::from_args(*args)?),
        Some(Command::Batch(args)) => batch::batch(*args),
        Some(Command::Merge(args)) => batch::merge(&args),
        Some(Command::Plot(args)) => batch::plot(&args),
        Some(Command::Interview(args)) => interview::interview(*args),
        Some(Command::Report(args)) => tell(&args),
        Some(Command::Capabilities(command)) => capabilities::capabilities(command),
        Some(Command::Validate { scene }) => validate(&scene),
        Some(Command::SandboxWorker { heap_bytes, recursion, stack_bytes }) => {
            let limits = WorkerLimits { heap_bytes, recursion, stack_bytes, ..WorkerLimits::default() };
            std::process::exit(agent_ecology::sandbox::worker::main(limits))
        }
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

/// Checks what `sim` reaches outside the world (see `run::preflight`): each problem
/// on its own line of standard error, then a bad-input error (exit 2) that says how
/// to run anyway.
fn preflight(sim: &mut agent_ecology::run::Simulation) -> Result<()> {
    report_missing(sim.preflight())
}

/// `problems` (found by `run::preflight`) on standard error, one line each, then the
/// bad-input error; nothing when there are none.
fn report_missing(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    for problem in &problems {
        writeln!(err, "error: {problem}")?;
    }
    Err(BadInput(format!(
        "{} of what the scene reaches outside the world is missing; fix it, or run anyway with --allow-offline \
         (those calls then fail, at no cost)",
        if problems.len() == 1 { "one part".to_owned() } else { format!("{} parts", problems.len()) }
    ))
    .into())
}

/// A progress bar on standard error when it is a terminal (and not `quiet`), counting
/// `unit`s up to `len`, with the rate and the time left.
fn progress_bar(len: u64, unit: &'static str, quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let progress = ProgressBar::with_draw_target(Some(len), target);
    let template =
        format!("{{elapsed_precise}} {{bar:40}} {{human_pos}}/{{human_len}} {unit} ({{rate}}, eta {{eta}}){{msg}}");
    progress.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} {unit}/s", state.per_sec());
            },
        ),
    );
    progress
}

/// `--checkpoint-every SECS` as simulated time: positive, or the user is told.
fn checkpoint_cadence(secs: f64) -> Result<SimTime, BadInput> {
    SimTime::from_secs_f64(secs)
        .filter(|t| *t > SimTime::ZERO)
        .ok_or_else(|| BadInput(format!("--checkpoint-every {secs}: expected simulated seconds > 0")))
}

fn create(path: &Path, what: &str) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| BadInput(format!("cannot create {what} {}: {e}", path.display())).into())
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
