//! Running a world: stepping it, streaming its events, reporting on it.
//!
//! [`Simulation`] owns the `App`. It is what the CLI, the tests and the benchmarks
//! drive; the GUI will drive the same thing.

pub mod checkpoint;
pub mod checksum;
pub mod control;
pub mod interview;
pub mod preflight;
pub mod report;

use std::io::{self, Write};

use bevy_app::App;
use bevy_ecs::prelude::*;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointInfo};
pub use report::{AuditError, Report, audit};

use crate::{
    EcologyPlugin,
    bridge::{BridgeOptions, LlmBridge, mcp::McpBridge},
    kernel::llm::Thoughts,
    kernel::{Action, EventLog, intents::Intent},
    scene::{Scene, SceneError, ValidScene},
    world::{
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp~");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Opens the event stream a run wrote before it was stopped, to write on from a
/// checkpoint taken after `events` events: the file is cut after its `events`-th line
/// (what it holds beyond that was written after the checkpoint, and will be written
/// again) and opened for appending. Fails if it holds fewer lines than that.
pub fn continue_event_stream(path: &std::path::Path, events: u64) -> io::Result<std::fs::File> {
    use std::io::{BufRead, Seek};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut reader = io::BufReader::with_capacity(1 << 16, &mut file);
    let (mut lines, mut offset) = (0u64, 0u64);
    let mut line = Vec::new();
    while lines < events {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it holds {lines} whole events; the checkpoint was taken after {events}"),
            ));
        }
        lines += 1;
        offset += read as u64;
    }
    drop(reader);
    file.set_len(offset)?;
    file.seek(io::SeekFrom::End(0))?;
    Ok(file)
}

/// Whether a checkpoint is due after a step that moved the clock from `before` to
/// `now`: the clock passed a multiple of `every`.
pub fn checkpoint_due(before: SimTime, now: SimTime, every: SimTime) -> bool {
    let every = every.millis().max(1);
    now.millis() / every > before.millis() / every
}

/// Checks that checkpoints every `every` fall on sandbox epochs of `config`, where
/// they are exact.
pub fn check_checkpoint_cadence(config: &crate::world::config::Config, every: SimTime) -> Result<(), String> {
    let epoch = config.sandbox.epoch_ms.max(1);
    if every.millis() == 0 || !every.millis().is_multiple_of(epoch) {
        return Err(format!(
            "checkpoints are exact only where a sandbox epoch begins, every {} s (config.sandbox.epoch_secs); \
             checkpoint every {} s is not a multiple of it",
            epoch as f64 / 1000.0,
            every.as_secs_f64()
        ));
    }
    Ok(())
}

/// A world built from a scene, ready to step.
pub struct Simulation {
    app: App,
    scene_name: String,
}

impl Simulation {
    /// Validates `scene` and builds its world; `seed` overrides the scene's seed.
    pub fn new(scene: &Scene, seed: Option<u64>) -> Result<Self, SceneError> {
        let mut valid = scene.validate()?;
        if let Some(seed) = seed {
            valid.config.seed = seed;
        }
        Ok(Self::from_valid(valid))
    }

    /// Builds the world of an already validated scene.
    pub fn from_valid(scene: ValidScene) -> Self {
        let mut app = App::new();
        app.add_plugins(EcologyPlugin);
        app.finish();
        app.cleanup();
        let scene_name = scene.name.clone();
        crate::scene::spawn_scene(app.world_mut(), scene);
        Self { app, scene_name }
    }

    /// Runs one step.
    pub fn step(&mut self) {
        self.app.update();
    }

    pub fn run_steps(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// Steps until the clock reaches `until`. Steps happen at `now`, so something
    /// scheduled exactly at `until` does not run.
    pub fn run_until(&mut self, until: SimTime) {
        while self.now() < until {
            self.step();
        }
    }

    /// Steps needed to bring the clock to `until`.
    pub fn steps_until(&self, until: SimTime) -> u64 {
        let clock = self.app.world().resource::<SimClock>();
        until.millis().saturating_sub(clock.now().millis()).div_ceil(clock.dt().millis())
    }

    pub fn now(&self) -> SimTime {
        self.app.world().resource::<SimClock>().now()
    }

    pub fn steps_done(&self) -> u64 {
        self.app.world().resource::<SimClock>().step()
    }

    pub fn scene_name(&self) -> &str {
        &self.scene_name
    }

    pub fn world(&self) -> &World {
        self.app.world()
    }

    pub fn world_mut(&mut self) -> &mut World {
        self.app.world_mut()
    }

    /// Queues an action for `actor`; the kernel performs it in the next step's Act
    /// phase.
    pub fn intend(&mut self, actor: &ArtifactId, action: Action) {
        self.app.world_mut().write_message(Intent { actor: actor.clone(), action });
    }

    /// How calls to models are recorded or replayed (before the first step, or right
    /// after restoring a checkpoint). Fails
    /// when the options cannot work (replaying from a directory that is not there).
    pub fn use_bridge(&mut self, options: BridgeOptions) -> Result<(), String> {
        let mut bridge = LlmBridge::new(options.clone());
        bridge.check_options()?;
        // A restored world's bridge carries the recording's request counts and the
        // answers it has in hand; they go on in the new one.
        self.app.world_mut().resource_mut::<LlmBridge>().hand_over(&mut bridge);
        self.app.world_mut().insert_resource(bridge);
        // MCP calls are recorded in, and replayed from, the same directory.
        let mut tools = McpBridge::new(options);
        self.app.world_mut().resource_mut::<McpBridge>().hand_over(&mut tools);
        self.app.world_mut().insert_resource(tools);
        Ok(())
    }

    /// Asks `agent` `question` about the world as it is now (see [`interview`]): the
    /// world is not changed, and the experimenter pays.
    pub fn interview(&mut self, agent: &str, question: &str) -> Result<interview::Interview, String> {
        interview::interview(self.app.world_mut(), agent, question)
    }

    /// What the world reaches outside itself and cannot (see [`preflight`]): one line
    /// a problem, none when a replay serves everything from its recording.
    pub fn preflight(&mut self) -> Vec<String> {
        let replay = self.app.world().resource::<LlmBridge>().options().replay;
        if replay { Vec::new() } else { preflight::check(self.app.world_mut()) }
    }

    /// Why the run cannot go on, if it cannot: a replay asked for a call that was
    /// never recorded.
    pub fn fatal_error(&self) -> Option<String> {
        let world = self.app.world();
        let thoughts = world.resource::<Thoughts>().fatal();
        thoughts.or_else(|| world.resource::<crate::kernel::mcp::McpCalls>().fatal()).map(str::to_owned)
    }

    /// Ends the run's calls to models still in flight: their reservations come back,
    /// nothing is charged, and each ends with `THINKING_FAILED`. Also reports the
    /// first recording that could not be written.
    pub fn end_thinking(&mut self) -> Result<(), String> {
        crate::kernel::llm::cancel_thinking(self.app.world_mut());
        crate::kernel::mcp::cancel_mcp_calls(self.app.world_mut());
        let world = self.app.world_mut();
        let lost = world.resource_mut::<LlmBridge>().take_cache_error();
        match lost.or_else(|| world.resource_mut::<McpBridge>().take_cache_error()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Streams every event from now on as JSON lines to `sink`.
    pub fn stream_events_to(&mut self, sink: Box<dyn Write + Send + Sync>) {
        self.app.world_mut().resource_mut::<EventLog>().stream_to(sink);
    }

    /// Flushes the event stream, reporting the first error writing it hit.
    pub fn flush_events(&mut self) -> io::Result<()> {
        let mut log = self.app.world_mut().resource_mut::<EventLog>();
        log.flush();
        log.take_sink_error().map_or(Ok(()), Err)
    }

    pub fn report(&self) -> Report {
        report::build_report(self.world(), &self.scene_name)
    }

    pub fn checksum(&self) -> String {
        checksum::world_checksum(self.world())
    }

    /// The world as it is now, as a scene.
    pub fn save_scene(&self) -> Scene {
        Scene::from_world(self.world(), &self.scene_name)
    }
}
