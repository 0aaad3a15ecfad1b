//! `ecology gui`: the desktop window, or the headless run when there is no display.

use std::{io::Write, path::PathBuf};

use agent_ecology::bridge::{BridgeOptions, config::ClockMode};
use anyhow::Result;
use clap::Args;

use super::{
    BadInput, ModelArgs, load_scene,
    run::{RunArgs, RunOptions, run},
    validate_showing_warnings,
};

#[derive(Args, Debug, Default)]
pub(super) struct GuiArgs {
    /// Scene file (RON). Default: the embedded scenes/default.ron.
    scene: Option<PathBuf>,
    /// Seed of the world's random stream (default: the scene's config.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// `realtime` (default in the window: the world never waits for a model) or
    /// `lockstep` (a step waits for the answers asked for before it; the default with
    /// `--replay`).
    #[arg(long, value_name = "MODE")]
    clock: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Start playing at once.
    #[arg(long)]
    play: bool,
}

/// Opens the window; without a display, says so in one line and runs headless.
pub(super) fn window(args: GuiArgs) -> Result<()> {
    use agent_ecology::gui::{self, GuiError, SessionOptions};
    let clock = match args.clock.as_deref() {
        // A replay's answers come from disk at once: waiting for them costs nothing,
        // and only in lockstep does the replay give the recorded world (and its
        // timeline go back in time).
        None if args.model.replay => ClockMode::Lockstep,
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
            model: args.model.clone(),
            ..RunArgs::default()
        })?)
    };
    if !gui::display_available() {
        return headless("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset)");
    }
    let scene = load_scene(args.scene.as_deref())?;
    // Problems the scene has are shown before the window opens, as on the command line.
    let mut valid = validate_showing_warnings(&scene, false)?;
    let model = args.model.choice();
    valid.config.llm.choose(&model).map_err(BadInput)?;
    if !args.model.allow_offline && !args.model.replay {
        super::report_missing(agent_ecology::run::preflight::check_scene(&valid))?;
    }
    let options = SessionOptions {
        seed: args.seed,
        clock: Some(clock),
        bridge: BridgeOptions { cache_dir: args.model.llm_cache.clone(), replay: args.model.replay },
        model,
        playing: args.play,
        ..SessionOptions::default()
    };
    match gui::run_window(scene, options) {
        Ok(()) => Ok(()),
        Err(GuiError::NoDisplay(why)) => headless(&format!("cannot open a window ({why})")),
        Err(error) => Err(error.into()),
    }
}
