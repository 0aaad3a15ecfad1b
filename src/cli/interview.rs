//! `ecology interview`: ask an agent questions about a run, at its end or at any
//! step, or from a checkpoint. The world is run (or resumed) to that step as
//! `ecology run` would, then each question is put to the agent's model; the answers
//! and what they cost the experimenter are printed. The world is not changed.

use std::{io::Write, path::PathBuf};

use anyhow::Result;
use clap::Args;

use super::{
    BadInput, ModelArgs,
    run::{RunArgs, RunOptions, prepare},
};

#[derive(Args, Debug)]
pub(super) struct InterviewArgs {
    /// Scene file (RON). Default: the embedded scenes/default.ron.
    #[arg(conflicts_with = "resume")]
    scene: Option<PathBuf>,
    /// Ask the world of this checkpoint (at the step it was taken, or --steps).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Whom to ask.
    #[arg(long)]
    agent: String,
    /// A question (several: asked in turn, each on its own).
    #[arg(long = "ask", value_name = "QUESTION", required = true)]
    questions: Vec<String>,
    /// Ask after this many steps (default: the scene's config.steps; with --resume,
    /// at once).
    #[arg(long)]
    steps: Option<u64>,
    /// Seed of the world's random stream (default: the scene's config.seed).
    #[arg(long, conflicts_with = "resume")]
    seed: Option<u64>,
    #[command(flatten)]
    model: ModelArgs,
    /// Print each interview as a JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn interview(args: InterviewArgs) -> Result<()> {
    let options = RunOptions::from_args(RunArgs {
        scene: args.scene,
        resume: args.resume.clone(),
        steps: args.steps,
        seed: args.seed,
        model: args.model,
        quiet: true,
        ..RunArgs::default()
    })?;
    let (mut sim, end_step) = prepare(options)?;
    // A checkpoint is asked where it stands unless told otherwise.
    let end_step = if args.resume.is_some() && args.steps.is_none() { sim.steps_done() } else { end_step };
    while sim.steps_done() < end_step {
        sim.step();
        if let Some(fatal) = sim.fatal_error() {
            return Err(BadInput(fatal).into());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut spent = 0;
    for question in &args.questions {
        let answer = sim.interview(&args.agent, question).map_err(BadInput)?;
        spent += answer.cost_micro_usd;
        if args.json {
            serde_json::to_writer(&mut out, &answer)?;
            writeln!(out)?;
        } else {
            writeln!(out, "Q ({} at step {}, t={} s): {}", answer.agent, answer.step, answer.at_secs, answer.question)?;
            writeln!(out, "A: {}", answer.answer)?;
            writeln!(
                out,
                "   ({}: {} + {} tokens, ${:.6}, paid by the experimenter)\n",
                answer.model,
                answer.prompt_tokens,
                answer.completion_tokens,
                answer.cost_micro_usd as f64 / 1e6
            )?;
        }
    }
    if !args.json && args.questions.len() > 1 {
        writeln!(out, "{} questions, ${:.6} in all", args.questions.len(), spent as f64 / 1e6)?;
    }
    if let Err(error) = sim.end_thinking() {
        writeln!(std::io::stderr().lock(), "warning: the LLM cache is incomplete: {error}")?;
    }
    Ok(())
}
