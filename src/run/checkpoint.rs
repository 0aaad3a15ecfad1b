//! Checkpoints: the whole state of a running world in one file, so that a long run
//! survives being stopped and goes on to the same end.
//!
//! A checkpoint holds every entity with all its parts, in creation order, and every
//! resource that is state — clock, random stream, settings, supply and held scrip,
//! the mint's sealed bids, listings, debts, proposals, tasks and locks, the health
//! series and its marks, rate windows, inboxes, the intervention timeline, the event
//! ring with its counts and digest, calls to models with their reservations, and the
//! recording's request counts: the parts declared in [`crate::scene::state`].
//! Resources that hold entities keep ids instead. What is not state is rebuilt: the
//! id index and compiled schemas (by the observers that keep them), the mint's UBI
//! order, the sandbox and the bridge's runtime.
//!
//! Two things outside the world are made to match:
//! - **calls to models in flight** are waited for before the checkpoint is written and
//!   their answers kept in it; a restored world collects them in its next step as the
//!   world that never stopped does (in `lockstep`, a step waits for them anyway);
//! - **the sandbox's workers** start afresh in a restored world. What a call measures
//!   of memory depends on its worker's history, so the world replaces its workers at
//!   every sandbox epoch ([`Sandbox::enter_epoch`]); a checkpoint taken where the next
//!   step begins an epoch (or before the epoch ran any code) is *exact*.
//!
//! The file is a header line of JSON (format, version, what the world is, its checksum,
//! the length and BLAKE3 digest of the body, and the caller's `plan`) and a body of
//! JSON. Reading checks the digest, so a truncated or altered file is refused, and a
//! restored world must have the checksum the header says, so a file that somehow
//! restores to a different world is refused too. Files are written atomically.

use std::path::Path;

use bevy_app::App;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Simulation;
use crate::{
    EcologyPlugin,
    bridge::{LlmBridge, config::ClockMode, mcp::McpBridge},
    kernel::sandbox_epoch,
    sandbox::Sandbox,
    scene::state::{ReadState, WrittenState},
    world::{config::Config, time::SimClock},
};

/// What the first line says a file is.
const FORMAT: &str = "agent-ecology checkpoint";
/// The version of the layout; a file of another version is refused.
pub const VERSION: u32 = 2;

/// Why a checkpoint cannot be read or restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a checkpoint: {why}")]
    NotACheckpoint { path: String, why: String },
    #[error("{path} is a checkpoint of version {found}; this build reads version {VERSION}")]
    Version { path: String, found: u32 },
    #[error("{path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("{path}:{line}:{col}: {message}")]
    Parse { path: String, line: usize, col: usize, message: String },
    #[error("{path} does not restore: {why}")]
    Restore { path: String, why: String },
    #[error("cannot write a checkpoint: {0}")]
    Write(String),
}

/// The first line of a checkpoint: what it is, and how to check the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub format: String,
    pub version: u32,
    /// The version of the program that wrote it.
    pub written_by: String,
    pub scene: String,
    /// Steps done and the simulated time when it was taken.
    pub step: u64,
    pub time_secs: f64,
    /// The world's checksum; the restored world must have it.
    pub checksum: String,
    /// Whether resuming gives exactly the world that never stopped (see the module
    /// docs): taken at a sandbox epoch, in `lockstep`.
    pub exact: bool,
    /// What the caller wants to remember about the run (the command line keeps how
    /// far to run and where its outputs go).
    #[serde(default)]
    pub plan: Value,
    body_bytes: u64,
    body_blake3: String,
}

/// A checkpoint read from a file, ready to restore.
pub struct Checkpoint {
    pub info: CheckpointInfo,
    path: String,
    state: ReadState,
}

impl Simulation {
    /// Whether a checkpoint taken now would resume exactly (see the module docs).
    pub fn at_exact_point(&self) -> bool {
        self.world().resource::<Config>().llm.clock == ClockMode::Lockstep && self.at_epoch_start()
    }

    /// Whether the code the next step runs will run on workers without history (a
    /// sandbox epoch begins, or this one has run nothing yet): what a checkpoint needs
    /// to resume exactly, besides answers from outside that do not depend on timing.
    pub fn at_epoch_start(&self) -> bool {
        let world = self.world();
        let epoch = sandbox_epoch(world.resource::<Config>(), world.resource::<SimClock>().now());
        world.resource::<Sandbox>().fresh_for(epoch)
    }

    /// The world as a checkpoint file's bytes, with `plan` in its header. Calls to
    /// models in flight are waited for first (their answers go in the checkpoint).
    pub fn checkpoint(&mut self, plan: Value) -> Result<Vec<u8>, CheckpointError> {
        self.world_mut().resource_mut::<LlmBridge>().wait_in_flight();
        self.world_mut().resource_mut::<McpBridge>().wait_in_flight();
        let exact = self.at_exact_point();
        let world = self.world();
        let body =
            serde_json::to_vec(&WrittenState::capture(world)).map_err(|e| CheckpointError::Write(e.to_string()))?;
        let clock = world.resource::<SimClock>();
        let info = CheckpointInfo {
            format: FORMAT.into(),
            version: VERSION,
            written_by: env!("CARGO_PKG_VERSION").into(),
            scene: self.scene_name().to_owned(),
            step: clock.step(),
            time_secs: clock.now().as_secs_f64(),
            checksum: self.checksum(),
            exact,
            plan,
            body_bytes: body.len() as u64,
            body_blake3: blake3::hash(&body).to_hex().to_string(),
        };
        let mut bytes = serde_json::to_vec(&info).map_err(|e| CheckpointError::Write(e.to_string()))?;
        bytes.push(b'\n');
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    /// Writes a checkpoint to `path` atomically (see [`Simulation::checkpoint`]).
    pub fn write_checkpoint(&mut self, path: &Path, plan: Value) -> Result<CheckpointInfo, CheckpointError> {
        let bytes = self.checkpoint(plan)?;
        super::write_atomically(path, &bytes)
            .map_err(|e| CheckpointError::Write(format!("{}: {e}", path.display())))?;
        let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        serde_json::from_slice(header).map_err(|e| CheckpointError::Write(e.to_string()))
    }

    /// The world a checkpoint holds, ready to step on. Its calls to models go through a
    /// bridge without a recording until [`Simulation::use_bridge`] says otherwise.
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Result<Self, CheckpointError> {
        let Checkpoint { info, path, state } = checkpoint;
        let mut app = App::new();
        app.add_plugins(EcologyPlugin);
        app.finish();
        app.cleanup();
        state.restore(app.world_mut()).map_err(|why| CheckpointError::Restore { path: path.clone(), why })?;
        let sim = Self { app, scene_name: info.scene.clone() };
        let checksum = sim.checksum();
        if checksum != info.checksum {
            return Err(CheckpointError::Restore {
                path,
                why: format!(
                    "the restored world's checksum is {checksum}, not the {} it was saved with",
                    info.checksum
                ),
            });
        }
        Ok(sim)
    }
}

impl Checkpoint {
    /// Reads and checks a checkpoint file.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: name.clone(), source })?;
        Self::from_bytes(&name, &bytes)
    }

    /// Checks and parses a checkpoint's bytes; `name` is what errors call it.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let not = |why: &str| CheckpointError::NotACheckpoint { path: name.to_owned(), why: why.to_owned() };
        let corrupt = |why: String| CheckpointError::Corrupt { path: name.to_owned(), why };
        let split = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| not("it has no header line"))?;
        let (head, body) = (&bytes[..split], &bytes[split + 1..]);
        let header: Value =
            serde_json::from_slice(head).map_err(|_| not("its first line is not a checkpoint header"))?;
        if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(not("its first line is not a checkpoint header"));
        }
        let found = header.get("version").and_then(Value::as_u64).unwrap_or(0);
        if found != u64::from(VERSION) {
            return Err(CheckpointError::Version { path: name.to_owned(), found: found as u32 });
        }
        let info: CheckpointInfo =
            serde_json::from_value(header).map_err(|e| corrupt(format!("its header is incomplete: {e}")))?;
        if body.len() as u64 != info.body_bytes {
            return Err(corrupt(format!(
                "it holds {} bytes after its header where {} were written (truncated?)",
                body.len(),
                info.body_bytes
            )));
        }
        if blake3::hash(body).to_hex().as_str() != info.body_blake3 {
            return Err(corrupt("its contents do not match the digest in its header (altered or damaged)".into()));
        }
        let state: ReadState = serde_json::from_slice(body).map_err(|e| CheckpointError::Parse {
            path: name.to_owned(),
            line: e.line() + 1,
            col: e.column(),
            message: e.to_string(),
        })?;
        Ok(Self { info, path: name.to_owned(), state })
    }
}
