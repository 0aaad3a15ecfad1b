//! `ecology batch`, `ecology merge`, `ecology plot`: sweeps run into directories of
//! tidy outputs, shards combined, charts drawn.

use std::{io::Write, path::PathBuf, sync::Mutex};

use agent_ecology::{
    batch::{Batch, BatchError, BatchOptions, Progress, Shard, output},
    bridge::BridgeOptions,
};
use anyhow::Result;
use clap::Args;

use super::{BadInput, ModelArgs, checkpoint_cadence, progress_bar};

#[derive(Args, Debug)]
pub(super) struct BatchArgs {
    /// The sweep file (RON): a base scene, parameters, a design, seeds, a stop.
    sweep: PathBuf,
    /// The directory to write into (created if needed; a directory of the same
    /// sweep goes on where it stopped).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Runs at once (default: the number of cores).
    #[arg(long, short, value_name = "N")]
    jobs: Option<usize>,
    /// Run only the I-th of N disjoint slices of the runs (a job array's task).
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Also write each run's event stream (runs/<id>/events.jsonl).
    #[arg(long)]
    events: bool,
    /// Simulated seconds between each run's checkpoints (default: every sandbox
    /// epoch, config.sandbox.epoch_secs); a multiple of the epoch.
    #[arg(long, value_name = "SECS")]
    checkpoint_every: Option<f64>,
    #[command(flatten)]
    model: ModelArgs,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub(super) struct MergeArgs {
    /// The directory to write the combined outputs into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The shards' directories.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub(super) struct PlotArgs {
    /// A batch directory (written by `ecology batch` or `ecology merge`).
    dir: PathBuf,
    /// Where to write the charts (default: DIR/plots).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The indicators to draw (default: gini, velocity, frozen_share, scrip_supply,
    /// capital_depth, reuse).
    #[arg(long, value_delimiter = ',', value_name = "KPI,...")]
    kpis: Vec<String>,
}

/// Problems with a sweep or its directory are the user's to fix; so is a path that
/// does not exist or may not be written.
fn bad(error: BatchError) -> anyhow::Error {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    match &error {
        BatchError::Sweep(_) | BatchError::Output(_) => BadInput(error.to_string()).into(),
        BatchError::Io { source, .. } if matches!(source.kind(), NotFound | PermissionDenied) => {
            BadInput(error.to_string()).into()
        }
        // The message already holds its cause.
        BatchError::Io { .. } => anyhow::anyhow!(error.to_string()),
    }
}

pub(super) fn batch(args: BatchArgs) -> Result<()> {
    let batch = Batch::load(&args.sweep).map_err(bad)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err(BadInput("--jobs 0: expected at least one".into()).into());
    }
    let checkpoint_every = args.checkpoint_every.map(checkpoint_cadence).transpose()?;
    let model = args.model.choice();
    if !args.model.allow_offline && !args.model.replay {
        super::report_missing(batch.preflight(&model))?;
    }
    let options = BatchOptions {
        out: args.out.clone(),
        jobs,
        shard: args.shard,
        events: args.events,
        checkpoint_every,
        bridge: BridgeOptions { cache_dir: args.model.llm_cache.clone(), replay: args.model.replay },
        model,
    };
    let progress = Mutex::new(None);
    let failures = Mutex::new(Vec::new());
    let watch = |event: Progress| match event {
        Progress::Started { runs, pending } => {
            let bar = progress_bar(runs as u64, "runs", args.quiet);
            bar.set_position((runs - pending) as u64);
            bar.reset_eta();
            if let Ok(mut slot) = progress.lock() {
                *slot = Some(bar);
            }
        }
        Progress::Finished { run, outcome } => {
            if let Err(error) = outcome
                && let Ok(mut failed) = failures.lock()
            {
                failed.push(format!("run {} ({}): {error}", run.run_id, run.index));
            }
            if let Ok(slot) = progress.lock()
                && let Some(bar) = slot.as_ref()
            {
                bar.inc(1);
            }
        }
    };
    let started = std::time::Instant::now();
    let summary = batch.run(&options, &watch).map_err(bad)?;
    if let Some(bar) = progress.into_inner().ok().flatten() {
        bar.finish_and_clear();
    }
    let failures = failures.into_inner().unwrap_or_default();
    let mut err = std::io::stderr().lock();
    for failure in &failures {
        writeln!(err, "failed: {failure}")?;
    }
    if !args.quiet {
        let shard = args.shard.map(|s| format!(" (shard {s})")).unwrap_or_default();
        writeln!(
            std::io::stdout().lock(),
            "{}: {} runs{shard}: {} done ({} already were), {} failed, in {:.1} s; outputs in {}",
            args.sweep.display(),
            summary.runs,
            summary.done,
            summary.skipped,
            summary.failed,
            started.elapsed().as_secs_f64(),
            args.out.display()
        )?;
    }
    if summary.failed > 0 {
        return Err(anyhow::anyhow!(
            "{} of {} runs failed (see runs.csv and runs/<id>/failed.json)",
            summary.failed,
            summary.runs
        ));
    }
    Ok(())
}

pub(super) fn merge(args: &MergeArgs) -> Result<()> {
    let manifest = output::merge(&args.out, &args.dirs).map_err(bad)?;
    let pending = manifest.runs_total - manifest.done - manifest.failed;
    writeln!(
        std::io::stdout().lock(),
        "merged {} directories into {}: {} runs, {} done, {} failed, {pending} not run",
        args.dirs.len(),
        args.out.display(),
        manifest.runs_total,
        manifest.done,
        manifest.failed
    )?;
    Ok(())
}

pub(super) fn plot(args: &PlotArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.dir.join("plots"));
    let written = agent_ecology::batch::plot::plot_dir(&args.dir, &out, &args.kpis).map_err(bad)?;
    let mut stdout = std::io::stdout().lock();
    for path in written {
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(())
}
