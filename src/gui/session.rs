//! The simulation behind the window.
//!
//! A [`Session`] runs a [`Simulation`] on a thread of its own, so the world keeps its
//! speed whatever the window is doing. The window never touches the world: it sends
//! [`Command`]s down a channel, and the thread answers with [`Update`]s — the events,
//! health samples and mint resolutions that are new, and fresh rows for the panels
//! that are open — at most [`PUBLISH_HZ`] times a second, so what publishing costs the
//! world does not grow with its speed.
//!
//! Interventions from the window are scheduled on the scene's timeline at the current
//! time: the world applies them at the start of the next step like any scripted
//! intervention (`INTERVENTION` events), and [`Command::SaveRun`] writes the starting
//! scene with them added, which replays the steered run headless.
//! [`Command::SaveCheckpoint`] writes the whole world as a checkpoint, which
//! [`Command::Open`] (or `ecology run --resume`) goes on from.
//!
//! Nothing here depends on egui: tests and benches drive a session directly.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bevy_ecs::prelude::*;

use crate::kernel::{Quota, Standing};
use crate::{
    bridge::{
        BridgeOptions,
        config::{ClockMode, ModelOverride},
    },
    economy::{
        capabilities::{CapabilityRequest, CapabilityRequests},
        kpis::{KpiSample, Kpis},
        mint::{Mint, Resolution},
    },
    kernel::{
        Event, EventKind, EventLog, InvocationStats,
        llm::Thoughts,
        query::{self, ArtifactKind},
    },
    run::{Checkpoint, CheckpointError, Simulation, interview::Interview, write_atomically},
    scene::{
        Scene,
        raw::InterventionSpec,
        timeline::{InterventionAct, ScheduledIntervention, Timeline},
    },
    world::{
        components::{
            AccessContract, Artifact, Capabilities, Executable, Frozen, Interface, LastAction, Loop, ModelChoice,
            Pricing, System, Thinking, Tombstone,
        },
        config::Config,
        ids::{ArtifactId, Ids},
        time::{SimClock, SimTime},
    },
};

/// How often the thread publishes an update while the world runs.
pub const PUBLISH_HZ: f64 = 15.0;

/// The most events one update carries; older ones in a burst are counted, not sent.
pub const MAX_EVENTS_PER_UPDATE: usize = 20_000;

/// Samples kept per principal for its balance chart (halved in resolution when full).
const HISTORY_POINTS: usize = 256;

/// Events the inspector lists for a principal.
const RECENT_FOR_INSPECTOR: usize = 60;

/// How fast the world runs while playing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Steps per wall-clock second.
    StepsPerSec(f64),
    /// As fast as the machine allows.
    Max,
}

impl Default for Speed {
    /// Slow enough to watch.
    fn default() -> Self {
        Self::StepsPerSec(20.0)
    }
}

/// What the window can ask of the world.
#[derive(Debug, Clone)]
pub enum Command {
    Play,
    Pause,
    /// Run this many steps, then pause.
    Step(u64),
    SetSpeed(Speed),
    /// Start the current scene again (with another seed, if given).
    Restart {
        seed: Option<u64>,
    },
    /// Load a scene, a saved world or a checkpoint from a file and start it (paused).
    Open(PathBuf),
    /// Save the whole world as it is now as a checkpoint, to open again (or resume
    /// with `ecology run --resume`) exactly where it is.
    SaveCheckpoint(PathBuf),
    /// Save the world as it is now as a scene: a new start from here (sealed bids,
    /// listings and calls in flight are given back).
    SaveWorld(PathBuf),
    /// Save the starting scene with every intervention made from the window, so
    /// `ecology run FILE` replays this run.
    SaveRun(PathBuf),
    /// Act on the world from outside; recorded as an intervention.
    Intervene(Box<InterventionAct>),
    /// Ask an agent a question (see `run::interview`): answered by its model, paid by
    /// the experimenter, recorded with the run's calls; the world is not changed. The
    /// world waits while the model answers.
    Interview {
        agent: ArtifactId,
        question: String,
    },
    /// What the inspector shows (sent with every update until changed).
    Select(Option<ArtifactId>),
    /// Which tables to send (they cost the world time to build).
    Want(Interest),
    /// Publish now, even when paused.
    Refresh,
    /// Show the world as it was (or will be) at this step: an earlier one is rebuilt
    /// from the latest exact checkpoint before it and re-executed to it, while the
    /// world of now waits; a later one is stepped to.
    TravelTo(u64),
    /// Back to the world of now, after travelling to an earlier step.
    ReturnToNow,
}

/// The tables the open panels need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    pub principals: bool,
    pub artifacts: bool,
}

/// Where the run stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Changes whenever the world is replaced (restart, open, a trip in time): the
    /// window forgets the old one's history.
    pub generation: u64,
    /// Changes only when another run starts (restart, open): what was selected may
    /// not exist in it. A trip in time keeps the run, and the selection.
    pub lineage: u64,
    /// While an earlier step is shown: the step of the world of now.
    pub present_step: Option<u64>,
    /// Steps with an exact checkpoint to travel back from, oldest first.
    pub marks: Vec<u64>,
    /// Why this run cannot travel back in time, when it cannot.
    pub travel_blocked: Option<String>,
    pub scene: String,
    pub seed: u64,
    pub clock: ClockMode,
    pub playing: bool,
    pub speed: Speed,
    pub steps: u64,
    pub now_secs: f64,
    pub dt_secs: f64,
    /// Measured over the last second of wall time.
    pub steps_per_sec: f64,
    pub events_per_sec: f64,
    pub events_total: u64,
    /// Refused or failed actions and intents, and events undone by failures.
    pub refused: u64,
    pub reverted: u64,
    pub principals: usize,
    pub artifacts: usize,
    pub mint_next_at_secs: f64,
    pub mint_open_bids: usize,
    pub mint_period_secs: f64,
    pub llm_in_flight: usize,
    pub llm_cost_micro_usd: u64,
    pub interventions_by_hand: usize,
    /// The world stopped on an error (a replay miss); playing does nothing.
    pub fatal: Option<String>,
}

/// One point of the overview charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    pub time_secs: f64,
    pub scrip_supply: u64,
    pub minted_total: u64,
    pub gini: f64,
    pub velocity: f64,
    pub frozen_share: f64,
    pub llm_spend_micro_usd: u64,
    pub artifacts: u64,
    pub invocations: u64,
}

impl ChartPoint {
    fn new(sample: &KpiSample, llm_spend_micro_usd: u64) -> Self {
        Self {
            time_secs: sample.time_secs,
            scrip_supply: sample.scrip_supply,
            minted_total: sample.minted_total,
            gini: sample.gini,
            velocity: sample.velocity,
            frozen_share: sample.frozen_share,
            llm_spend_micro_usd,
            artifacts: sample.artifacts,
            invocations: sample.invocations,
        }
    }
}

/// Use of one limited rate in its current window.
#[derive(Debug, Clone, PartialEq)]
pub struct RateUse {
    pub resource: Arc<str>,
    pub used: u64,
    pub limit: u64,
}

/// What a principal is doing, in order of what matters most when several hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKind {
    /// Frozen: it cannot act until someone brings it what it lacks (or unfreezes it).
    Frozen,
    /// An agent stopped after failing step after step.
    Paused,
    /// An agent waiting for its model's answer.
    Thinking,
    /// An agent that chose to sleep (until a time, or an event).
    Sleeping,
    /// An agent stepping at its interval.
    Active,
    /// A principal without a loop: it acts only when others or interventions do.
    Passive,
}

impl StateKind {
    pub fn label(self) -> &'static str {
        match self {
            StateKind::Frozen => "frozen",
            StateKind::Paused => "paused",
            StateKind::Thinking => "thinking",
            StateKind::Sleeping => "sleeping",
            StateKind::Active => "active",
            StateKind::Passive => "no loop",
        }
    }
}

/// A principal's state, why it is in it, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalState {
    pub kind: StateKind,
    /// In words: the freeze's reason, the error that paused it, what it sleeps for.
    pub reason: String,
    /// Simulated seconds, when known.
    pub since: Option<f64>,
}

/// What the principal of `entity` is doing now.
pub fn principal_state(world: &World, entity: Entity, id: &ArtifactId) -> PrincipalState {
    let state = |kind, reason: String, since| PrincipalState { kind, reason, since };
    if let Some(frozen) = world.get::<Frozen>(entity) {
        return state(StateKind::Frozen, frozen.reason().to_owned(), Some(frozen.since().as_secs_f64()));
    }
    let Some(agent) = world.get::<Loop>(entity) else {
        return state(StateKind::Passive, String::new(), None);
    };
    if agent.paused() {
        // The error that paused it is the last one it reported.
        let last_error = world.resource::<EventLog>().recent().rev().find_map(|event| match &event.kind {
            EventKind::AgentError { principal, message, .. } if principal == id => {
                Some((message.clone(), event.time.as_secs_f64()))
            }
            _ => None,
        });
        let (error, at) = last_error.map_or((String::from("its steps kept failing"), None), |(m, t)| (m, Some(t)));
        return state(StateKind::Paused, format!("after {} failed steps: {error}", agent.errors_in_row()), at);
    }
    if let Some(thinking) = world.get::<Thinking>(entity) {
        let reason = format!("waiting for the answer to llm_{}", thinking.request());
        return state(StateKind::Thinking, reason, Some(thinking.since().as_secs_f64()));
    }
    let now = world.resource::<SimClock>().now();
    let wake = agent.wake_at().as_secs_f64();
    let on = agent.wake_on().map(|filter| {
        let mut what = filter.kind.clone().unwrap_or_else(|| "an event".to_owned());
        if let Some(actor) = &filter.actor {
            what.push_str(&format!(" by {actor}"));
        }
        if let Some(artifact) = &filter.artifact {
            what.push_str(&format!(" naming {artifact}"));
        }
        what
    });
    if on.is_some() || agent.wake_at().millis() > now.millis() + agent.interval().millis() {
        let until = match on {
            Some(on) => format!("until t = {wake:.0} s or {on}"),
            None => format!("until t = {wake:.0} s"),
        };
        return state(StateKind::Sleeping, until, None);
    }
    let errors = agent.errors_in_row();
    let next = if agent.wake_at() < now {
        format!("due since t = {wake:.0} s")
    } else {
        format!("next step at t = {wake:.0} s")
    };
    let reason = if errors > 0 { format!("{next}, after {errors} failed in a row") } else { next };
    state(StateKind::Active, reason, None)
}

/// A row of the principals table.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalRow {
    pub id: ArtifactId,
    pub agent: bool,
    pub scrip: u64,
    pub llm_budget_micro_usd: u64,
    pub disk_used: u64,
    pub disk_quota: u64,
    pub rates: Vec<RateUse>,
    pub thinking: bool,
    pub state: PrincipalState,
    pub last_action: Option<(f64, &'static str)>,
    pub owned: u32,
    pub model: Option<String>,
}

/// A row of the artifacts browser.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRow {
    pub id: ArtifactId,
    pub owner: ArtifactId,
    pub kind: ArtifactKind,
    /// Price to invoke, in scrip (0: free).
    pub price: u64,
    pub invocations: u64,
    pub success_rate: Option<f64>,
    /// Artifacts its code has invoked.
    pub dependencies: Vec<ArtifactId>,
    pub bytes: u64,
    pub deleted: bool,
    pub system: bool,
}

/// Everything the inspector shows about the selected artifact or principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub id: ArtifactId,
    /// The kernel's public metadata (kind, owner, standing, quotas, stats, …).
    pub metadata: serde_json::Value,
    pub content: String,
    pub code: Option<String>,
    pub interface: Option<String>,
    pub contract: Option<String>,
    pub pricing: Option<String>,
    /// `(time, scrip, llm budget)`, oldest first.
    pub history: Vec<(f64, u64, u64)>,
    /// Its latest events, newest first.
    pub recent: Vec<Event>,
    /// Its latest thoughts (`THINKING` excerpts), newest first.
    pub thoughts: Vec<Event>,
    /// What it owns.
    pub owned: Vec<ArtifactId>,
    /// Its notebook, if it keeps one.
    pub memory: Option<String>,
    /// Who invoked it / what it invoked.
    pub called_by: Vec<ArtifactId>,
    pub calls: Vec<ArtifactId>,
    /// Its holdings, limits and state, when it is a principal.
    pub principal: Option<PrincipalRow>,
    /// The last action of its that was refused or failed, with the reason.
    pub last_refused: Option<Event>,
}

/// What the thread sends the window.
#[derive(Debug, Clone)]
pub struct Update {
    pub status: Status,
    pub chart: Vec<ChartPoint>,
    pub events: Vec<Event>,
    /// Events that happened but were not sent (a burst larger than one update).
    pub events_skipped: u64,
    pub resolutions: Vec<Resolution>,
    pub principals: Option<Arc<Vec<PrincipalRow>>>,
    pub artifacts: Option<Arc<Vec<ArtifactRow>>>,
    pub detail: Option<Box<Detail>>,
    /// Every capability request, when one was made or decided since the last update.
    pub capabilities: Option<Arc<Vec<CapabilityRequest>>>,
    /// What came of commands (saved, opened, refused …), oldest first.
    pub messages: Vec<Notice>,
    /// Interviews answered since the last update, oldest first.
    pub interviews: Vec<Interview>,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

impl Notice {
    fn ok(text: impl Into<String>) -> Self {
        Self { error: false, text: text.into() }
    }
    fn error(text: impl Into<String>) -> Self {
        Self { error: true, text: text.into() }
    }
}

/// How a session starts.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub seed: Option<u64>,
    /// Overrides the scene's clock; the window's default is `realtime`.
    pub clock: Option<ClockMode>,
    pub bridge: BridgeOptions,
    /// The model chosen on the command line, over the scene's.
    pub model: ModelOverride,
    pub speed: Speed,
    pub playing: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            seed: None,
            clock: Some(ClockMode::Realtime),
            bridge: BridgeOptions::default(),
            model: ModelOverride::default(),
            speed: Speed::default(),
            playing: false,
        }
    }
}

/// Called after each update is published: how the window learns it has something
/// new to draw without looking again and again.
type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where the world's thread publishes: the channel, and whoever wants waking.
struct Outlet {
    sender: Sender<Update>,
    wake: Arc<std::sync::Mutex<Option<Waker>>>,
}

impl Outlet {
    fn send(&self, update: Update) {
        // Nobody listening means the window is closing; the thread ends at its next
        // look at the commands.
        if self.sender.send(update).is_err() {
            return;
        }
        let wake = self.wake.lock().ok().and_then(|w| w.clone());
        if let Some(wake) = wake {
            wake();
        }
    }
}

/// A world running on its own thread.
pub struct Session {
    commands: Sender<Command>,
    updates: Receiver<Update>,
    wake: Arc<std::sync::Mutex<Option<Waker>>>,
    thread: Option<JoinHandle<()>>,
}

impl Session {
    /// Starts `scene` on a new thread. A scene that does not validate is reported in
    /// the first update's messages, and the session waits for another to open.
    pub fn start(scene: Scene, options: SessionOptions) -> Self {
        let (commands, command_rx) = mpsc::channel();
        let (sender, updates) = mpsc::channel();
        let wake = Arc::new(std::sync::Mutex::new(None));
        let outlet = Outlet { sender, wake: wake.clone() };
        let thread = std::thread::Builder::new()
            .name("world".into())
            .spawn(move || Runner::new(scene, options, command_rx, outlet).run())
            .ok();
        Self { commands, updates, wake, thread }
    }

    /// Calls `wake` after every update from now on (the window asks for a repaint:
    /// paused, it then draws only when something changed).
    pub fn on_update(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut slot) = self.wake.lock() {
            *slot = Some(Arc::new(wake));
        }
    }

    pub fn send(&self, command: Command) {
        // The thread only ends when the session is dropped.
        let _ = self.commands.send(command);
    }

    /// Every update published since the last call, oldest first.
    pub fn updates(&self) -> Vec<Update> {
        self.updates.try_iter().collect()
    }

    /// Waits up to `timeout` for the next update.
    pub fn next_update(&self, timeout: Duration) -> Option<Update> {
        self.updates.recv_timeout(timeout).ok()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the command channel ends the thread at its next look.
        let (dead, _) = mpsc::channel();
        self.commands = dead;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The world's thread.
struct Runner {
    commands: Receiver<Command>,
    updates: Outlet,
    options: SessionOptions,
    /// The scene the current world started from, and its seed.
    origin: Scene,
    seed: u64,
    /// The checkpoint the current world was opened from, if it was: restarting opens
    /// it again, and there is no start scene to save as a run.
    resumed_from: Option<PathBuf>,
    sim: Option<Simulation>,
    generation: u64,
    playing: bool,
    speed: Speed,
    /// Steps still to run before pausing (`Command::Step`).
    steps_to_run: u64,
    interest: Interest,
    selected: Option<ArtifactId>,
    by_hand: Vec<ByHand>,
    /// Exact checkpoints of this run, oldest first: where trips back start.
    marks: Vec<Mark>,
    /// The world of now, while an earlier step is shown.
    present: Option<Present>,
    /// Counts the runs (see [`Status::lineage`]).
    lineage: u64,
    /// Interventions queued by hand and not yet applied: the step they were queued
    /// at, its time, and the last event before them, to tell how they went.
    queued: Option<(u64, f64, u64)>,
    sent: Sent,
    history: HashMap<ArtifactId, History>,
    meter: Meter,
    messages: Vec<Notice>,
    /// Interviews answered, not yet sent.
    interviews: Vec<Interview>,
    last_publish: Instant,
    /// Pacing: steps run since `paced_from`.
    paced_from: Instant,
    paced_steps: u64,
}

/// An intervention made from the window: as the saved run lists it, as the world
/// applies it, and the step it was made at (it applies during that step).
struct ByHand {
    spec: InterventionSpec,
    act: InterventionAct,
    at: SimTime,
    step: u64,
}

/// An exact checkpoint of the run, kept in memory.
struct Mark {
    step: u64,
    bytes: Arc<Vec<u8>>,
}

/// Marks kept at most; beyond, every other one is dropped (the first stays).
const MAX_MARKS: usize = 64;

/// Bytes of marks kept at most, likewise.
const MAX_MARK_BYTES: usize = 256 << 20;

/// Steps between two marks at least.
const MARK_SPACING: u64 = 100;

/// The world of now, set aside while an earlier step is shown.
struct Present {
    sim: Simulation,
    history: HashMap<ArtifactId, History>,
}

/// How far the window has been told.
#[derive(Default)]
struct Sent {
    events_seq: u64,
    kpi_samples: usize,
    resolutions: u64,
    /// Capability requests made, and decided, as last sent.
    capabilities: Option<(u64, usize, usize)>,
}

/// Steps and events per wall-clock second, over about a second.
struct Meter {
    marks: VecDeque<(Instant, u64, u64)>,
}

impl Meter {
    fn new() -> Self {
        Self { marks: VecDeque::new() }
    }
    fn mark(&mut self, steps: u64, events: u64) {
        let now = Instant::now();
        self.marks.push_back((now, steps, events));
        while self.marks.len() > 2 && self.marks.front().is_some_and(|m| now - m.0 > Duration::from_secs(1)) {
            self.marks.pop_front();
        }
    }
    fn rates(&self) -> (f64, f64) {
        match (self.marks.front(), self.marks.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let secs = (b.0 - a.0).as_secs_f64();
                ((b.1 - a.1) as f64 / secs, (b.2 - a.2) as f64 / secs)
            }
            _ => (0.0, 0.0),
        }
    }
}

/// A principal's balances over time, thinned by half whenever full so it covers the
/// whole run in a fixed number of points.
#[derive(Default, Clone)]
struct History {
    points: Vec<(f64, u64, u64)>,
    stride: u32,
    skip: u32,
}

impl History {
    fn push(&mut self, point: (f64, u64, u64)) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        self.points.push(point);
        if self.points.len() >= HISTORY_POINTS {
            let mut keep = 0;
            self.points.retain(|_| {
                keep += 1;
                keep % 2 == 1
            });
            self.stride = (self.stride.max(1)) * 2;
        }
        self.skip = self.stride.saturating_sub(1);
    }
}

impl Runner {
    fn new(origin: Scene, options: SessionOptions, commands: Receiver<Command>, updates: Outlet) -> Self {
        let now = Instant::now();
        let mut runner = Self {
            commands,
            updates,
            playing: options.playing,
            speed: options.speed,
            options,
            origin: origin.clone(),
            seed: 0,
            resumed_from: None,
            sim: None,
            generation: 0,
            steps_to_run: 0,
            interest: Interest::default(),
            selected: None,
            by_hand: Vec::new(),
            marks: Vec::new(),
            present: None,
            lineage: 0,
            queued: None,
            sent: Sent::default(),
            history: HashMap::new(),
            meter: Meter::new(),
            messages: Vec::new(),
            interviews: Vec::new(),
            last_publish: now,
            paced_from: now,
            paced_steps: 0,
        };
        let seed = runner.options.seed;
        runner.begin(origin, seed);
        runner
    }

    /// Builds a new world from `scene`; on failure keeps the current one.
    fn begin(&mut self, scene: Scene, seed: Option<u64>) {
        match self.build(&scene, seed) {
            Ok((sim, seed)) => {
                self.origin = scene;
                self.seed = seed;
                self.resumed_from = None;
                self.adopt(sim);
            }
            Err(error) => self.messages.push(Notice::error(error)),
        }
    }

    /// Restores the world of a checkpoint; on failure keeps the current one.
    fn resume(&mut self, checkpoint: Checkpoint, path: &Path) -> Result<(), String> {
        let exact = checkpoint.info.exact;
        let mut sim = Simulation::from_checkpoint(checkpoint).map_err(|e| e.to_string())?;
        sim.use_bridge(self.options.bridge.clone())?;
        self.seed = sim.world().resource::<Config>().seed;
        self.resumed_from = Some(path.to_owned());
        let step = sim.steps_done();
        self.adopt(sim);
        self.messages.push(Notice::ok(format!(
            "opened the checkpoint {} at step {step}{}",
            path.display(),
            if exact { "" } else { " (not taken at a sandbox epoch: the world may drift from the run it was)" }
        )));
        Ok(())
    }

    /// Makes `sim` the current world, a new run with nothing of the last one's
    /// history.
    fn adopt(&mut self, sim: Simulation) {
        self.generation += 1;
        self.lineage += 1;
        self.sim = Some(sim);
        self.by_hand.clear();
        self.marks.clear();
        self.present = None;
        self.queued = None;
        self.sent = Sent::default();
        self.history.clear();
        self.meter = Meter::new();
        self.steps_to_run = 0;
        self.reset_pace();
    }

    /// Opens `path`: a checkpoint is resumed, anything else is read as a scene.
    fn open(&mut self, path: &Path) {
        let checkpoint = match Checkpoint::read(path) {
            Ok(checkpoint) => Some(checkpoint),
            Err(CheckpointError::NotACheckpoint { .. }) => None,
            Err(error) => {
                self.messages.push(Notice::error(error.to_string()));
                return;
            }
        };
        if let Some(checkpoint) = checkpoint {
            if let Err(error) = self.resume(checkpoint, path) {
                self.messages.push(Notice::error(error));
            } else {
                self.playing = false;
            }
            return;
        }
        match Scene::load(path) {
            Ok(scene) => {
                let seed = self.options.seed;
                let generation = self.generation;
                self.begin(scene, seed);
                if self.generation != generation {
                    self.playing = false;
                    self.messages.push(Notice::ok(format!("opened {}", path.display())));
                }
            }
            Err(error) => self.messages.push(Notice::error(error.to_string())),
        }
    }

    fn build(&self, scene: &Scene, seed: Option<u64>) -> Result<(Simulation, u64), String> {
        let mut valid = scene.validate().map_err(|e| e.to_string())?;
        if let Some(seed) = seed {
            valid.config.seed = seed;
        }
        if let Some(clock) = self.options.clock {
            valid.config.llm.clock = clock;
        }
        valid.config.llm.choose(&self.options.model)?;
        let seed = valid.config.seed;
        let mut sim = Simulation::from_valid(valid);
        sim.use_bridge(self.options.bridge.clone())?;
        Ok((sim, seed))
    }

    fn reset_pace(&mut self) {
        self.paced_from = Instant::now();
        self.paced_steps = 0;
    }

    fn run(mut self) {
        self.publish();
        loop {
            let wait = self.idle_wait();
            let first = if wait.is_zero() {
                match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv_timeout(wait) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut forced = false;
            if let Some(command) = first {
                forced |= self.handle(command);
                loop {
                    match self.commands.try_recv() {
                        Ok(command) => forced |= self.handle(command),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return,
                    }
                }
            }
            let was_running = self.running();
            self.advance();
            self.report_applied();
            // The window hears at once when the world stops (a run of steps ended).
            let stopped = was_running && !self.running();
            let due = self.last_publish.elapsed().as_secs_f64() >= 1.0 / PUBLISH_HZ;
            if forced || stopped || (due && self.running()) || !self.messages.is_empty() {
                self.publish();
            } else if due {
                // Keep the rates honest while paused.
                self.meter_mark();
            }
        }
    }

    fn running(&self) -> bool {
        (self.playing || self.steps_to_run > 0) && self.sim.as_ref().is_some_and(|s| s.fatal_error().is_none())
    }

    /// How long to wait for a command before stepping again.
    fn idle_wait(&self) -> Duration {
        let publish = Duration::from_secs_f64(1.0 / PUBLISH_HZ);
        if !self.running() {
            return publish;
        }
        if self.steps_to_run > 0 {
            return Duration::ZERO;
        }
        match self.speed {
            Speed::Max => Duration::ZERO,
            Speed::StepsPerSec(rate) => {
                let next = Duration::from_secs_f64((self.paced_steps + 1) as f64 / rate.max(1e-3));
                next.saturating_sub(self.paced_from.elapsed()).min(publish)
            }
        }
    }

    /// Runs the steps that are due.
    fn advance(&mut self) {
        if !self.running() {
            return;
        }
        let Some(sim) = self.sim.as_mut() else { return };
        let history = &mut self.history;
        let marks = &mut self.marks;
        let recorded = self.options.bridge.cache_dir.is_some();
        if self.steps_to_run > 0 {
            // Single steps run at once, a few at a time so commands still get through.
            let started = Instant::now();
            while self.steps_to_run > 0 && started.elapsed() < Duration::from_millis(30) {
                step_world(sim, history, marks, recorded);
                self.steps_to_run -= 1;
                if sim.fatal_error().is_some() {
                    break;
                }
            }
            if self.steps_to_run == 0 {
                self.playing = false;
            }
            return;
        }
        match self.speed {
            Speed::Max => {
                // Batches short enough that commands and updates keep flowing.
                let started = Instant::now();
                while started.elapsed() < Duration::from_millis(20) {
                    step_world(sim, history, marks, recorded);
                    if sim.fatal_error().is_some() {
                        break;
                    }
                }
            }
            Speed::StepsPerSec(rate) => {
                let due = (self.paced_from.elapsed().as_secs_f64() * rate) as u64;
                // Never try to catch up more than a second behind (the machine is slower
                // than asked): run at its pace instead.
                if due > self.paced_steps + rate.ceil() as u64 {
                    self.paced_steps = due.saturating_sub(rate.ceil() as u64);
                }
                let started = Instant::now();
                while self.paced_steps < due && started.elapsed() < Duration::from_millis(50) {
                    step_world(sim, history, marks, recorded);
                    self.paced_steps += 1;
                    if sim.fatal_error().is_some() {
                        break;
                    }
                }
            }
        }
    }

    /// Applies a command; returns whether the window should hear at once.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::TravelTo(step) => self.travel_to(step),
            Command::ReturnToNow => self.return_to_now(),
            Command::Play => {
                self.branch();
                self.playing = true;
                self.steps_to_run = 0;
                self.reset_pace();
            }
            Command::Pause => {
                self.playing = false;
                self.steps_to_run = 0;
            }
            Command::Step(n) => {
                self.branch();
                self.playing = false;
                self.steps_to_run = self.steps_to_run.saturating_add(n);
            }
            Command::SetSpeed(speed) => {
                self.speed = speed;
                self.reset_pace();
            }
            Command::Restart { seed } => match self.resumed_from.clone() {
                // A checkpoint's world has its random stream where it was taken.
                Some(path) => self.open(&path),
                None => {
                    let scene = self.origin.clone();
                    self.begin(scene, Some(seed.unwrap_or(self.seed)));
                    self.playing = false;
                }
            },
            Command::Open(path) => self.open(&path),
            Command::SaveCheckpoint(path) => {
                let notice = match self.sim.as_mut() {
                    Some(sim) => match sim.write_checkpoint(&path, serde_json::Value::Null) {
                        Ok(info) => Notice::ok(format!(
                            "saved a checkpoint of step {} to {}{}",
                            info.step,
                            path.display(),
                            if info.exact {
                                ""
                            } else {
                                " (not at a sandbox epoch: it resumes this world, which may then drift from this run)"
                            }
                        )),
                        Err(error) => Notice::error(format!("cannot save {}: {error}", path.display())),
                    },
                    None => Notice::error("no world to save".to_owned()),
                };
                self.messages.push(notice);
            }
            Command::SaveWorld(path) => {
                let result = match &self.sim {
                    Some(sim) => sim.save_scene().to_ron_string().map_err(|e| e.to_string()),
                    None => Err("no world to save".to_owned()),
                };
                self.save(&path, result, "world");
            }
            Command::SaveRun(path) => self.save_run(&path),
            Command::Intervene(act) => {
                self.branch();
                self.intervene(*act);
            }
            Command::Interview { agent, question } => {
                let answered = match self.sim.as_mut() {
                    Some(sim) => sim.interview(agent.as_str(), &question),
                    None => Err("no world to ask in".to_owned()),
                };
                match answered {
                    Ok(interview) => self.interviews.push(interview),
                    Err(why) => self.messages.push(Notice::error(format!("interview of {agent}: {why}"))),
                }
            }
            Command::Select(id) => self.selected = id,
            Command::Want(interest) => self.interest = interest,
            Command::Refresh => {}
        }
        true
    }

    fn save(&mut self, path: &Path, text: Result<String, String>, what: &str) {
        if self.write(path, text) {
            self.messages.push(Notice::ok(format!("saved the {what} to {}", path.display())));
        }
    }

    /// Writes `text` to `path`; says why not in a notice when it cannot.
    fn write(&mut self, path: &Path, text: Result<String, String>) -> bool {
        match text.and_then(|text| write_atomically(path, text.as_bytes()).map_err(|e| e.to_string())) {
            Ok(()) => true,
            Err(error) => {
                self.messages.push(Notice::error(format!("cannot save {}: {error}", path.display())));
                false
            }
        }
    }

    /// Saves the run as a scene that `ecology run FILE` replays to this very world,
    /// and says so with the command and the checksum to expect.
    fn save_run(&mut self, path: &Path) {
        let text = match (&self.resumed_from, &self.sim) {
            (Some(from), _) => Err(format!(
                "this world was opened from the checkpoint {}, not started from a scene: \
                 save a checkpoint instead",
                from.display()
            )),
            (None, None) => Err("no world to save".to_owned()),
            (None, Some(sim)) => self.run_scene(sim).to_ron_string().map_err(|e| e.to_string()),
        };
        if !self.write(path, text) {
            return;
        }
        let Some(sim) = &self.sim else { return };
        // Calls to models replay only from their recording.
        let recorded = match &self.options.bridge.cache_dir {
            Some(dir) => format!(" --llm-cache {} --replay", dir.display()),
            None => String::new(),
        };
        let mut text = format!(
            "saved the run to {path}: `ecology run {path}{recorded}` replays it to step {step}, checksum {checksum}",
            path = path.display(),
            step = sim.steps_done(),
            checksum = sim.checksum(),
        );
        if let Some(why) = self.replay_caveat(sim.world()) {
            text.push_str(&format!(" — but {why}"));
        }
        self.messages.push(Notice::ok(text));
    }

    /// Why a replay of this run may not reach the checksum of this world, if it may
    /// not: what the world took from outside that a replay cannot have again.
    fn replay_caveat(&self, world: &World) -> Option<String> {
        if let Some(why) = Unrepeatable::of(world, self.options.bridge.cache_dir.is_some()) {
            return Some(why.to_string());
        }
        let in_flight =
            world.resource::<Thoughts>().in_flight() + world.resource::<crate::kernel::mcp::McpCalls>().in_flight();
        (in_flight > 0).then(|| {
            format!(
                "{in_flight} calls are in flight now: a run ends such calls when it stops (refunded, with an \
                 event each), so the replay's checksum differs by that"
            )
        })
    }

    /// The starting scene with its seed fixed, the interventions made by hand added,
    /// in lockstep and as long as the world has run so far: running it gives this
    /// run again, step for step.
    fn run_scene(&self, sim: &Simulation) -> Scene {
        let mut scene = self.origin.clone();
        let file = scene.file_mut();
        file.config.seed = Some(self.seed);
        file.config.steps = Some(sim.steps_done());
        // A replay must not wait on the wall clock, nor depend on it.
        file.config.llm.get_or_insert_with(Default::default).clock = Some(ClockMode::Lockstep);
        // The model chosen on the command line becomes the scene's own.
        if !self.options.model.is_empty() {
            let chosen = &sim.world().resource::<crate::world::config::Config>().llm;
            crate::scene::put_default_model(chosen, file.config.llm.get_or_insert_with(Default::default));
        }
        file.interventions.extend(self.by_hand.iter().map(|b| b.spec.clone()));
        scene
    }

    /// Shows the world at `step`: an earlier step is rebuilt from the latest mark at
    /// or before it and re-executed to it (the world of now set aside); a later one
    /// is stepped to, from now.
    fn travel_to(&mut self, step: u64) {
        let Some(sim) = &self.sim else { return };
        let now = self.present.as_ref().map_or(sim.steps_done(), |p| p.sim.steps_done());
        if step >= now {
            self.return_to_now();
            if step > now {
                self.steps_to_run = step - now;
            }
            return;
        }
        let recorded = self.options.bridge.cache_dir.is_some();
        let present = self.present.as_ref().map_or(sim, |p| &p.sim);
        if let Some(why) = Unrepeatable::of(present.world(), recorded) {
            self.messages.push(Notice::error(format!("cannot go back: {why}")));
            return;
        }
        let Some(mark) = self.marks.iter().rev().find(|m| m.step <= step) else {
            self.messages.push(Notice::error(format!("no exact checkpoint at or before step {step} to go back from")));
            return;
        };
        let (from, bytes) = (mark.step, mark.bytes.clone());
        let rebuilt = Checkpoint::from_bytes(&format!("the checkpoint of step {from}"), &bytes)
            .and_then(Simulation::from_checkpoint)
            .map_err(|e| e.to_string())
            .and_then(|mut past| past.use_bridge(self.options.bridge.clone()).map(|()| past));
        let mut past = match rebuilt {
            Ok(past) => past,
            Err(why) => {
                self.messages.push(Notice::error(format!("cannot go back to step {step}: {why}")));
                return;
            }
        };
        // The interventions made by hand after the mark are not in it: they go on its
        // timeline again, each applying during the step it was made at.
        for made in self.by_hand.iter().filter(|b| b.step > from && b.step <= step) {
            let scheduled = ScheduledIntervention { at: made.at, act: made.act.clone() };
            past.world_mut().resource_mut::<Timeline>().schedule(scheduled);
        }
        // Balances sampled after the mark are sampled again on the way.
        let mark_secs = past.now().as_secs_f64();
        let mut history = self.present.as_ref().map_or(&self.history, |p| &p.history).clone();
        history.values_mut().for_each(|h| h.points.retain(|p| p.0 <= mark_secs));
        let mut marks = std::mem::take(&mut self.marks);
        while past.steps_done() < step && past.fatal_error().is_none() {
            step_world(&mut past, &mut history, &mut marks, recorded);
        }
        self.marks = marks;
        if self.present.is_none() {
            let now_sim = self.sim.take();
            let now_history = std::mem::take(&mut self.history);
            self.present = now_sim.map(|sim| Present { sim, history: now_history });
        }
        self.sim = Some(past);
        self.history = history;
        self.replaced();
        self.messages.push(Notice::ok(format!(
            "showing step {step} (the checkpoint of step {from}, re-executed {} steps); return to now for step {now}, \
             or play, step or intervene to go on from here instead",
            step - from
        )));
    }

    /// Back to the world of now, if an earlier step is shown.
    fn return_to_now(&mut self) {
        let Some(present) = self.present.take() else { return };
        let step = present.sim.steps_done();
        self.sim = Some(present.sim);
        self.history = present.history;
        self.replaced();
        self.messages.push(Notice::ok(format!("back to now, step {step}")));
    }

    /// Going on from an earlier step makes it now: the later steps are dropped, with
    /// the marks and the interventions by hand they had.
    fn branch(&mut self) {
        let Some(present) = self.present.take() else { return };
        let Some(sim) = &self.sim else { return };
        let step = sim.steps_done();
        self.marks.retain(|m| m.step <= step);
        self.by_hand.retain(|b| b.step <= step);
        self.messages.push(Notice::ok(format!(
            "going on from step {step}: the steps after it (up to {}) are dropped",
            present.sim.steps_done()
        )));
    }

    /// The window's view of the world starts afresh (the run goes on).
    fn replaced(&mut self) {
        self.generation += 1;
        self.sent = Sent::default();
        self.meter = Meter::new();
        self.steps_to_run = 0;
        self.playing = false;
        self.queued = None;
        self.reset_pace();
    }

    fn intervene(&mut self, act: InterventionAct) {
        let Some(sim) = self.sim.as_mut() else { return };
        let at = sim.now();
        let spec = match &act {
            InterventionAct::As { actor, action } => InterventionSpec {
                at: at.as_secs_f64(),
                actor: Some(actor.to_string()),
                action: Some(action.clone()),
                system: None,
            },
            InterventionAct::System(system) => {
                InterventionSpec { at: at.as_secs_f64(), actor: None, action: None, system: Some(system.clone()) }
            }
        };
        self.by_hand.push(ByHand { spec, act: act.clone(), at, step: sim.steps_done() });
        sim.world_mut().resource_mut::<Timeline>().schedule(ScheduledIntervention { at, act });
        let seen = sim.world().resource::<EventLog>().total();
        self.queued.get_or_insert((sim.steps_done(), at.as_secs_f64(), seen));
        self.messages.push(Notice::ok(format!(
            "intervention queued for t = {:.1} s (applies at the next step)",
            at.as_secs_f64()
        )));
    }

    /// Once the interventions queued by hand have been applied, says how they went,
    /// so the status bar does not go on saying they are queued.
    fn report_applied(&mut self) {
        let (Some((step, at, seen)), Some(sim)) = (self.queued, &self.sim) else { return };
        if sim.steps_done() <= step {
            return;
        }
        self.queued = None;
        let log = sim.world().resource::<EventLog>();
        let failures: Vec<String> = log
            .since(seen)
            .filter_map(|event| match &event.kind {
                EventKind::InterventionFailed { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect();
        let at = format!("t = {at:.1} s");
        self.messages.push(match failures.as_slice() {
            [] => Notice::ok(format!("the interventions queued were applied at {at}")),
            [only] => Notice::error(format!("an intervention applied at {at} failed: {only}")),
            [first, ..] => {
                Notice::error(format!("{} interventions applied at {at} failed; the first: {first}", failures.len()))
            }
        });
    }

    fn meter_mark(&mut self) {
        if let Some(sim) = &self.sim {
            let events = sim.world().resource::<EventLog>().total();
            self.meter.mark(sim.steps_done(), events);
        }
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        self.meter_mark();
        let Some(sim) = &self.sim else {
            let messages = std::mem::take(&mut self.messages);
            if !messages.is_empty() {
                self.updates.send(Update {
                    status: Status { scene: self.origin.name().to_owned(), ..Status::default() },
                    chart: Vec::new(),
                    events: Vec::new(),
                    events_skipped: 0,
                    resolutions: Vec::new(),
                    principals: None,
                    artifacts: None,
                    detail: None,
                    capabilities: None,
                    messages,
                    interviews: Vec::new(),
                });
            }
            return;
        };
        let world = sim.world();
        let status = self.status(sim);

        let llm_spend = world.resource::<Thoughts>().total().cost_micro_usd;
        let series = world.resource::<Kpis>().series();
        let chart = series.get(self.sent.kpi_samples..).unwrap_or(&[]).iter().map(|s| ChartPoint::new(s, llm_spend));
        let chart: Vec<ChartPoint> = chart.collect();
        self.sent.kpi_samples = series.len();

        let log = world.resource::<EventLog>();
        // `events_seq` is the last event sent (sequence numbers start at 1).
        let new_events = log.total().saturating_sub(self.sent.events_seq);
        let mut events: Vec<Event> = log.since(self.sent.events_seq).cloned().collect();
        if events.len() > MAX_EVENTS_PER_UPDATE {
            events.drain(..events.len() - MAX_EVENTS_PER_UPDATE);
        }
        let events_skipped = new_events.saturating_sub(events.len() as u64);
        self.sent.events_seq = log.total();

        let mint = world.resource::<Mint>();
        let new_resolutions = (mint.resolutions() - self.sent.resolutions) as usize;
        let recent: Vec<&Resolution> = mint.recent().collect();
        let resolutions = recent[recent.len().saturating_sub(new_resolutions)..].iter().map(|r| (*r).clone()).collect();
        self.sent.resolutions = mint.resolutions();

        let requests = world.resource::<CapabilityRequests>();
        let made = requests.iter().count();
        let shape = (self.generation, made, requests.iter().filter(|r| !r.is_pending()).count());
        let capabilities =
            (self.sent.capabilities != Some(shape)).then(|| Arc::new(requests.iter().cloned().collect()));
        self.sent.capabilities = Some(shape);
        let detail = self.selected.as_ref().and_then(|id| self.detail(world, id));
        let update = Update {
            status,
            chart,
            events,
            events_skipped,
            resolutions,
            principals: self.interest.principals.then(|| Arc::new(principal_rows(world))),
            artifacts: self.interest.artifacts.then(|| Arc::new(artifact_rows(world))),
            detail: detail.map(Box::new),
            capabilities,
            messages: std::mem::take(&mut self.messages),
            interviews: std::mem::take(&mut self.interviews),
        };
        self.updates.send(update);
    }

    fn status(&self, sim: &Simulation) -> Status {
        let world = sim.world();
        let config = world.resource::<Config>();
        let mint = world.resource::<Mint>();
        let thoughts = world.resource::<Thoughts>();
        let ids = world.resource::<Ids>();
        let (steps_per_sec, events_per_sec) = self.meter.rates();
        let (principals, artifacts) = ids.in_creation_order().iter().fold((0, 0), |(p, a), &e| {
            if world.get::<Tombstone>(e).is_some() || world.get::<System>(e).is_some() {
                (p, a)
            } else if world.get::<Standing>(e).is_some() {
                (p + 1, a)
            } else {
                (p, a + 1)
            }
        });
        Status {
            generation: self.generation,
            lineage: self.lineage,
            present_step: self.present.as_ref().map(|p| p.sim.steps_done()),
            marks: self.marks.iter().map(|m| m.step).collect(),
            travel_blocked: Unrepeatable::of(
                self.present.as_ref().map_or(world, |p| p.sim.world()),
                self.options.bridge.cache_dir.is_some(),
            )
            .map(|why| why.to_string()),
            scene: sim.scene_name().to_owned(),
            seed: self.seed,
            clock: config.llm.clock,
            playing: self.running(),
            speed: self.speed,
            steps: sim.steps_done(),
            now_secs: sim.now().as_secs_f64(),
            dt_secs: config.dt.as_secs_f64(),
            steps_per_sec,
            events_per_sec,
            events_total: world.resource::<EventLog>().total(),
            refused: world.resource::<EventLog>().refused(),
            reverted: world.resource::<EventLog>().reverted(),
            principals,
            artifacts,
            mint_next_at_secs: mint.next_at(&config.mint).as_secs_f64(),
            mint_open_bids: mint.open_bids(),
            mint_period_secs: config.mint.period.as_secs_f64(),
            llm_in_flight: thoughts.in_flight(),
            llm_cost_micro_usd: thoughts.total().cost_micro_usd,
            interventions_by_hand: self.by_hand.len(),
            fatal: sim.fatal_error(),
        }
    }

    fn detail(&self, world: &World, id: &ArtifactId) -> Option<Detail> {
        let entity = world.resource::<Ids>().get(world, id.as_str())?;
        let artifact = world.get::<Artifact>(entity)?;
        let log = world.resource::<EventLog>();
        let mut recent = Vec::new();
        let mut thoughts = Vec::new();
        for event in log.recent().rev() {
            if recent.len() >= RECENT_FOR_INSPECTOR && thoughts.len() >= RECENT_FOR_INSPECTOR {
                break;
            }
            if &event.actor != id && !event.kind.mentions(id) {
                continue;
            }
            let name = event.kind.type_name();
            if (name == "THINKING" || name == "THINKING_FAILED") && thoughts.len() < RECENT_FOR_INSPECTOR {
                thoughts.push(event.clone());
            }
            if recent.len() < RECENT_FOR_INSPECTOR {
                recent.push(event.clone());
            }
        }
        let notebook = format!("{id}_notebook");
        let memory = world
            .resource::<Ids>()
            .get(world, &notebook)
            .filter(|&e| world.get::<Tombstone>(e).is_none())
            .and_then(|e| world.get::<Artifact>(e))
            .map(|a| a.content().to_owned());
        let last_refused = log
            .recent()
            .rev()
            .find(|event| &event.actor == id && matches!(event.kind, EventKind::ActionFailed { .. }))
            .cloned();
        let owned = crate::kernel::state::owned_artifacts(world, id);
        let principal = world.get::<Standing>(entity).map(|standing| {
            let mut row = principal_row(world, entity, id, standing);
            row.owned = owned.len() as u32;
            row
        });
        let calls_map = world.resource::<crate::kernel::activity::Activity>().calls();
        let calls = calls_map.get(id).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        let called_by = calls_map.iter().filter(|(_, to)| to.contains(id)).map(|(from, _)| from.clone()).collect();
        Some(Detail {
            id: id.clone(),
            metadata: query::metadata(world, entity),
            content: artifact.content().to_owned(),
            code: world.get::<Executable>(entity).map(|x| x.code().to_owned()),
            interface: world.get::<Interface>(entity).filter(|i| !i.tools.is_empty()).map(pretty),
            contract: world.get::<AccessContract>(entity).map(|c| c.id().to_string()),
            pricing: world.get::<Pricing>(entity).map(pretty),
            history: self.history.get(id).map(|h| h.points.clone()).unwrap_or_default(),
            recent,
            thoughts,
            owned,
            memory,
            called_by,
            calls,
            principal,
            last_refused,
        })
    }
}

/// Runs one step, and samples every principal's balances when the world samples its
/// health indicators: on the world's own cadence, so the charts are the same however
/// fast the window looked.
fn step_world(sim: &mut Simulation, history: &mut HashMap<ArtifactId, History>, marks: &mut Vec<Mark>, recorded: bool) {
    take_mark(sim, marks, recorded);
    sim.step();
    let world = sim.world();
    let every = world.resource::<Config>().kpis.every_steps.max(1);
    if !sim.steps_done().is_multiple_of(every) {
        return;
    }
    let now = world.resource::<SimClock>().now().as_secs_f64();
    for &entity in world.resource::<Ids>().in_creation_order() {
        if world.get::<System>(entity).is_some() || world.get::<Tombstone>(entity).is_some() {
            continue;
        }
        if let (Some(id), Some(standing)) = (world.get::<ArtifactId>(entity), world.get::<Standing>(entity)) {
            history.entry(id.clone()).or_default().push((now, standing.scrip(), standing.llm_budget_micro_usd()));
        }
    }
}

/// Why re-executing this run would not give this world again: it took answers from
/// models or tools whose timing, or whose content, a re-execution cannot have again.
/// What a saved run's replay and a trip back in time both depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unrepeatable {
    /// This many calls answered in realtime: when each landed depended on the network.
    Realtime(u64),
    /// This many calls, none recorded: a re-execution would ask again.
    Unrecorded(u64),
}

impl Unrepeatable {
    /// Whether the run of `world` cannot be re-executed to the same world, and why.
    fn of(world: &World, recorded: bool) -> Option<Self> {
        let llm = world.resource::<Thoughts>().requests();
        let mcp: u64 =
            world.resource::<crate::kernel::mcp::McpCalls>().by_server().values().map(|u| u.calls + u.failed).sum();
        let asked = llm + mcp;
        if asked == 0 {
            None
        } else if world.resource::<Config>().llm.clock == ClockMode::Realtime {
            Some(Self::Realtime(asked))
        } else {
            (!recorded).then_some(Self::Unrecorded(asked))
        }
    }
}

impl std::fmt::Display for Unrepeatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Realtime(asked) => write!(
                f,
                "this run made {asked} calls to models and tools in realtime, where when an answer lands depends \
                 on the network (start the window with `--clock lockstep --llm-cache DIR` for runs that can be \
                 re-executed exactly)"
            ),
            Self::Unrecorded(asked) => write!(
                f,
                "this run made {asked} calls to models and tools without recording them, so a re-execution would \
                 ask again (start the window with `--llm-cache DIR` for runs that can be re-executed exactly)"
            ),
        }
    }
}

/// Keeps an exact checkpoint of the world as it is before its next step, when that
/// step begins a sandbox epoch (or the epoch ran nothing yet) and the run can be
/// re-executed from it; thins the marks when there are too many.
fn take_mark(sim: &mut Simulation, marks: &mut Vec<Mark>, recorded: bool) {
    let step = sim.steps_done();
    let at = marks.partition_point(|m| m.step < step);
    // A world that runs no code is at an epoch's start at every step: one mark in
    // MARK_SPACING steps is enough to go back quickly.
    let near = |m: &Mark| m.step.abs_diff(step) < MARK_SPACING;
    if marks.get(at).is_some_and(near)
        || at.checked_sub(1).and_then(|before| marks.get(before)).is_some_and(near)
        || !sim.at_epoch_start()
        || Unrepeatable::of(sim.world(), recorded).is_some()
    {
        return;
    }
    // A world that cannot be written has no mark here; a trip back then starts from
    // an earlier one (or says there is none).
    let Ok(bytes) = sim.checkpoint(serde_json::Value::Null) else { return };
    marks.insert(at, Mark { step, bytes: Arc::new(bytes) });
    let bytes = |marks: &[Mark]| marks.iter().map(|m| m.bytes.len()).sum::<usize>();
    while marks.len() > 2 && (marks.len() > MAX_MARKS || bytes(marks) > MAX_MARK_BYTES) {
        let mut index = 0;
        marks.retain(|_| {
            index += 1;
            index == 1 || index % 2 == 0
        });
    }
}

/// Pretty JSON of the parts the inspector shows as text.
fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

impl PrincipalRow {
    pub fn frozen(&self) -> bool {
        self.state.kind == StateKind::Frozen
    }
}

/// The principals of the world, in creation order (the world's machinery left out).
pub fn principal_rows(world: &World) -> Vec<PrincipalRow> {
    let ids = world.resource::<Ids>();
    let mut owned: HashMap<&ArtifactId, u32> = HashMap::new();
    let mut rows = Vec::new();
    for &entity in ids.in_creation_order() {
        if world.get::<System>(entity).is_some() || world.get::<Tombstone>(entity).is_some() {
            continue;
        }
        let (Some(id), Some(artifact)) = (world.get::<ArtifactId>(entity), world.get::<Artifact>(entity)) else {
            continue;
        };
        if artifact.owner() != id {
            *owned.entry(artifact.owner()).or_default() += 1;
        }
        let Some(standing) = world.get::<Standing>(entity) else { continue };
        rows.push(principal_row(world, entity, id, standing));
    }
    for row in &mut rows {
        row.owned = owned.get(&row.id).copied().unwrap_or(0);
    }
    rows
}

/// One principal's row (with `owned` left at 0: counting needs every artifact).
fn principal_row(world: &World, entity: Entity, id: &ArtifactId, standing: &Standing) -> PrincipalRow {
    let now = world.resource::<SimClock>().now();
    let rates = world.get::<Quota>(entity).map_or_else(Vec::new, |quota| {
        quota
            .limits()
            .iter()
            .filter(|(name, _)| &***name != crate::kernel::quotas::MEMORY)
            .map(|(name, &limit)| RateUse {
                resource: name.clone(),
                used: crate::kernel::quotas::used_at(world, entity, name, now),
                limit,
            })
            .collect()
    });
    PrincipalRow {
        id: id.clone(),
        agent: world.get::<Loop>(entity).is_some(),
        scrip: standing.scrip(),
        llm_budget_micro_usd: standing.llm_budget_micro_usd(),
        disk_used: standing.disk_used(),
        disk_quota: standing.disk_quota(),
        rates,
        thinking: world.get::<Thinking>(entity).is_some(),
        state: principal_state(world, entity, id),
        last_action: world.get::<LastAction>(entity).and_then(|l| Some((l.at()?.as_secs_f64(), l.action()?.as_str()))),
        owned: 0,
        model: model_of(world, entity),
    }
}

/// The model a principal thinks with: its own choice, or the world's default when
/// it may call one.
fn model_of(world: &World, entity: Entity) -> Option<String> {
    if let Some(choice) = world.get::<ModelChoice>(entity) {
        return Some(choice.model().to_owned());
    }
    let may_think = world.get::<Capabilities>(entity).is_some_and(|c| c.has(crate::kernel::llm::CAN_CALL_LLM));
    may_think.then(|| world.resource::<Config>().llm.default_model.clone()).flatten()
}

/// Every artifact of the world, in creation order, the world's machinery included.
pub fn artifact_rows(world: &World) -> Vec<ArtifactRow> {
    let ids = world.resource::<Ids>();
    let stats = world.resource::<InvocationStats>();
    let calls = world.resource::<crate::kernel::activity::Activity>().calls();
    let mut rows = Vec::with_capacity(ids.len());
    for &entity in ids.in_creation_order() {
        let (Some(id), Some(artifact)) = (world.get::<ArtifactId>(entity), world.get::<Artifact>(entity)) else {
            continue;
        };
        let counts = stats.counts(id.as_str());
        rows.push(ArtifactRow {
            id: id.clone(),
            owner: artifact.owner().clone(),
            kind: query::kind_of(world, entity),
            price: world.get::<Pricing>(entity).map_or(0, |p| p.invoke_price),
            invocations: stats.invocations(id.as_str()),
            success_rate: counts.success_rate(),
            dependencies: calls.get(id).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
            bytes: crate::kernel::state::artifact_bytes(world, entity),
            deleted: world.get::<Tombstone>(entity).is_some(),
            system: world.get::<System>(entity).is_some(),
        });
    }
    rows
}
