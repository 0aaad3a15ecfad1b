//! `ecology capabilities list|approve|deny`: a person deciding what agents asked for,
//! through the control directory of a running world (see `run::control`).

use std::{io::Write, path::PathBuf};

use agent_ecology::run::control::{self, ControlError, DecisionFile};
use anyhow::Result;
use clap::{Args, Subcommand};

use super::BadInput;

#[derive(Subcommand, Debug)]
pub(super) enum CapabilitiesCommand {
    /// The requests made so far, pending ones first.
    List {
        #[command(flatten)]
        control: ControlArg,
        /// Print the requests as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant a request; the agent holds the capability from the world's next step.
    Approve {
        /// The request's id (see `list`).
        id: u64,
        /// The most that may be spent through the grant (scrip plus µ$ of LLM budget);
        /// default: what the agent asked for, or no limit.
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        control: ControlArg,
    },
    /// Refuse a request.
    Deny {
        id: u64,
        /// Why, for the agent (it sees the decision's event).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        control: ControlArg,
    },
}

#[derive(Args, Debug)]
pub(super) struct ControlArg {
    /// The control directory the run was started with (`ecology run --control DIR`).
    #[arg(long, value_name = "DIR")]
    control: PathBuf,
}

fn bad(error: ControlError) -> anyhow::Error {
    BadInput(error.to_string()).into()
}

pub(super) fn capabilities(command: CapabilitiesCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        CapabilitiesCommand::List { control, json } => {
            let file = control::read_requests(&control.control).map_err(bad)?;
            let mut requests = file.requests.clone();
            // Pending first, then by id.
            requests.sort_by_key(|r| (r["status"] != "pending", r["id"].as_u64()));
            if json {
                serde_json::to_writer_pretty(&mut out, &requests)?;
                writeln!(out)?;
                return Ok(());
            }
            let state = if file.running { "running" } else { "ended" };
            writeln!(out, "{} — step {}, {} s ({state})", file.scene, file.step, file.time_secs)?;
            if requests.is_empty() {
                writeln!(out, "  no capability requests")?;
            }
            for r in &requests {
                let limit = r["limit"].as_u64().map(|l| format!(", limit {l}")).unwrap_or_default();
                let decided = match r["status"].as_str() {
                    Some("pending") => String::new(),
                    Some("granted") => {
                        let limit = r["granted_limit"].as_u64().map_or("no limit".into(), |l| format!("limit {l}"));
                        format!(" by {} ({limit})", r["by"].as_str().unwrap_or("?"))
                    }
                    _ => format!(" by {}: {}", r["by"].as_str().unwrap_or("?"), r["note"].as_str().unwrap_or("")),
                };
                writeln!(
                    out,
                    "  #{:<4} {:<8} {} asks for {}{limit} at {} s: {:?}{decided}",
                    r["id"],
                    r["status"].as_str().unwrap_or("?"),
                    r["principal"].as_str().unwrap_or("?"),
                    r["capability"].as_str().unwrap_or("?"),
                    r["at_secs"],
                    r["reason"].as_str().unwrap_or(""),
                )?;
            }
        }
        CapabilitiesCommand::Approve { id, limit, note, control } => {
            let decision = DecisionFile { request: id, approve: true, limit, note };
            let request = control::decide(&control.control, &decision).map_err(bad)?;
            writeln!(
                out,
                "approved #{id}: {} gets {} from the world's next step",
                request["principal"].as_str().unwrap_or("?"),
                request["capability"].as_str().unwrap_or("?")
            )?;
        }
        CapabilitiesCommand::Deny { id, note, control } => {
            let decision = DecisionFile { request: id, approve: false, limit: None, note };
            let request = control::decide(&control.control, &decision).map_err(bad)?;
            writeln!(
                out,
                "denied #{id}: {} does not get {}",
                request["principal"].as_str().unwrap_or("?"),
                request["capability"].as_str().unwrap_or("?")
            )?;
        }
    }
    Ok(())
}
