//! The sandbox: artifact code runs in worker processes, never in the world process.
//!
//! [`Sandbox`] is a resource holding a fixed number of *lanes*, each with at most one
//! worker process, started on demand and replaced when it dies or is killed. Which
//! lane runs an artifact is a pure function of its id, so a given world and seed
//! always sends the same calls to the same workers in the same order; together with
//! instruction-counted CPU this keeps runs deterministic for a given number of lanes.
//!
//! A *chain* is one top-level operation that runs code: an invoke and everything it
//! invokes, or a permission check by a contract. The chain checks a worker out of
//! its lane, every nested call runs on that same worker (which serves nested calls
//! while it waits for the host), and the worker goes back to its lane when the chain
//! ends. While the chain is active it lives in the resource, so kernel code deep in a
//! nested call finds it there instead of having it threaded through every signature.

pub mod alloc;
mod js_json;
pub mod modules;
pub mod process;
pub mod protocol;
pub mod shm;
pub mod worker;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

pub use process::WorkerFailure;
use process::{WorkerProcess, WorkerSpawn};

/// Settings of the sandbox, from the scene's `config.sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Lanes (worker processes). Results depend on this number only through memory
    /// measurements, but they do depend on it: keep it fixed across compared runs.
    pub workers: usize,
    /// Wall-clock deadline of one chain, in milliseconds.
    pub timeout_ms: u64,
    /// Heap a worker may grow by, in bytes.
    pub heap_bytes: usize,
    /// Iterations allowed per loop in a call.
    pub loop_limit: u64,
    /// Iterations allowed per loop in a contract's `check_permission`.
    pub contract_loop_limit: u64,
    /// Wall-clock deadline of a contract check and everything it invokes, within the
    /// deadline of the call it is part of.
    pub contract_timeout_ms: u64,
    /// CPU a contract check (with what it invokes) may charge its caller's payer;
    /// what it uses beyond is charged to the contract's owner.
    pub contract_caller_cpu_us: u64,
    /// Nested JS calls allowed within one call.
    pub recursion: usize,
    /// Largest JSON result of a call, in bytes.
    pub result_bytes: u64,
    /// VM instructions that count as one CPU-microsecond.
    pub instructions_per_cpu_us: u64,
    /// Nested invokes allowed below the top-level call.
    pub max_depth: u32,
    /// Nested contract checks allowed.
    pub max_contract_depth: u32,
    /// Simulated milliseconds of a sandbox epoch: workers are replaced at the start of
    /// the first step of every epoch.
    pub epoch_ms: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            timeout_ms: 5_000,
            heap_bytes: 512 << 20,
            loop_limit: 10_000_000,
            contract_loop_limit: 100_000,
            contract_timeout_ms: 250,
            contract_caller_cpu_us: 1_000,
            recursion: 512,
            result_bytes: 1 << 20,
            instructions_per_cpu_us: 100,
            max_depth: 5,
            max_contract_depth: 10,
            epoch_ms: 600_000,
        }
    }
}

impl SandboxConfig {
    /// CPU-microseconds for `instructions` VM instructions (at least 1 for any work).
    pub fn cpu_us(&self, instructions: u64) -> u64 {
        instructions.div_ceil(self.instructions_per_cpu_us.max(1))
    }
}

/// Where the `ecology` binary is, to start workers from: `ECOLOGY_WORKER_BIN` if set;
/// this program if it is `ecology`; otherwise an `ecology` next to it or one level up
/// (where cargo puts it relative to test and benchmark binaries).
pub fn find_worker_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ECOLOGY_WORKER_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    if exe.file_stem().is_some_and(|s| s == "ecology") {
        return Ok(exe);
    }
    let name = format!("ecology{}", std::env::consts::EXE_SUFFIX);
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "cannot find the ecology binary to run sandbox workers; set ECOLOGY_WORKER_BIN".to_owned())
}

/// Counts of what the sandbox did, for benchmarks and the curious.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SandboxStats {
    pub workers_started: u64,
    pub workers_lost: u64,
    /// Workers replaced because calls had left more in them than calls may.
    pub workers_retired: u64,
    pub calls: u64,
}

/// The worker of an operation in progress.
pub(crate) struct Chain {
    pub lane: usize,
    /// `None` once the worker died or was killed.
    pub worker: Option<WorkerProcess>,
    pub deadline: Instant,
    /// Why the worker is gone, for every frame still waiting on it.
    pub failure: Option<WorkerFailure>,
    /// Calls started in this chain and not finished (JS frames on the worker).
    pub open_calls: u32,
}

/// The sandbox's lanes and the chain in progress.
#[derive(Resource)]
pub struct Sandbox {
    exe: Option<Result<PathBuf, String>>,
    lanes: Vec<Option<WorkerProcess>>,
    pub(crate) active: Option<Chain>,
    next_call: u64,
    /// The epoch the workers belong to, and the call count when it began.
    epoch: u64,
    epoch_first_call: u64,
    stats: SandboxStats,
    show_stderr: bool,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            exe: None,
            lanes: Vec::new(),
            active: None,
            next_call: 0,
            epoch: 0,
            epoch_first_call: 0,
            stats: SandboxStats::default(),
            show_stderr: std::env::var_os("ECOLOGY_WORKER_STDERR").is_some(),
        }
    }
}

impl Sandbox {
    pub fn stats(&self) -> SandboxStats {
        self.stats
    }

    /// The lane that runs artifact `id`.
    pub fn lane_for(&self, id: &str, config: &SandboxConfig) -> usize {
        (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % config.workers.max(1) as u64) as usize
    }

    pub(crate) fn next_call_id(&mut self) -> u64 {
        self.next_call += 1;
        self.stats.calls += 1;
        self.next_call
    }

    /// The worker of `lane`, started if needed; taken out of the lane.
    pub(crate) fn take_worker(&mut self, lane: usize, config: &SandboxConfig) -> Result<WorkerProcess, WorkerFailure> {
        if self.lanes.len() < config.workers.max(1) {
            self.lanes.resize_with(config.workers.max(1), || None);
        }
        if let Some(worker) = self.lanes.get_mut(lane).and_then(Option::take).filter(|w| !w.is_dead()) {
            return Ok(worker);
        }
        let exe = self.exe.get_or_insert_with(find_worker_binary).clone().map_err(WorkerFailure::Start)?;
        let worker = WorkerProcess::spawn(&WorkerSpawn {
            exe: &exe,
            heap_bytes: config.heap_bytes,
            recursion: config.recursion,
            stack_bytes: worker::WorkerLimits::default().stack_bytes,
            show_stderr: self.show_stderr,
        })?;
        self.stats.workers_started += 1;
        Ok(worker)
    }

    /// Puts a worker back in its lane (a dead one is dropped).
    pub(crate) fn return_worker(&mut self, lane: usize, worker: WorkerProcess) {
        if worker.is_dead() {
            self.stats.workers_lost += 1;
            return;
        }
        if worker.is_retiring() {
            // Dropping a worker stops it; its lane starts a fresh one when next needed.
            self.stats.workers_retired += 1;
            return;
        }
        if let Some(slot) = self.lanes.get_mut(lane) {
            *slot = Some(worker);
        }
    }

    /// Starts a chain on `lane` unless one is active. True if this started it (and
    /// so must end it).
    pub(crate) fn begin_chain(&mut self, lane: usize, config: &SandboxConfig) -> Result<bool, WorkerFailure> {
        if self.active.is_some() {
            return Ok(false);
        }
        let worker = self.take_worker(lane, config)?;
        self.active = Some(Chain {
            lane,
            worker: Some(worker),
            deadline: Instant::now() + Duration::from_millis(config.timeout_ms),
            failure: None,
            open_calls: 0,
        });
        Ok(true)
    }

    /// Ends the active chain, returning its worker to its lane.
    pub(crate) fn end_chain(&mut self) {
        if let Some(chain) = self.active.take() {
            match chain.worker {
                Some(worker) => self.return_worker(chain.lane, worker),
                None => self.stats.workers_lost += 1,
            }
        }
    }

    /// Whether the active chain has lost its worker.
    pub(crate) fn chain_lost(&self) -> bool {
        self.active.as_ref().is_some_and(|chain| chain.worker.is_none())
    }

    /// Stops every worker (they are started again on demand).
    pub fn shutdown(&mut self) {
        self.end_chain();
        self.lanes.clear();
    }

    /// Moves the sandbox to `epoch` (simulated time / `epoch_ms`): when that is a new
    /// one, the workers are replaced.
    ///
    /// What a call measures of memory depends on its worker's history (what it
    /// compiled, when its collector last ran); replacing the workers at fixed points of
    /// simulated time bounds that history, so a world restored from a checkpoint taken
    /// at an epoch's start — whose workers are new — measures exactly what the world
    /// that never stopped does.
    pub fn enter_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.shutdown();
            self.epoch = epoch;
            self.epoch_first_call = self.next_call;
        }
    }

    /// Whether code that runs from a step at `epoch` on would run on workers without
    /// history: the sandbox will move to a new epoch first, or has run nothing in this
    /// one. A checkpoint taken then resumes exactly.
    pub fn fresh_for(&self, epoch: u64) -> bool {
        epoch != self.epoch || self.next_call == self.epoch_first_call
    }
}

/// Registers the sandbox resource.
pub(crate) fn plugin(app: &mut bevy_app::App) {
    app.init_resource::<Sandbox>();
}

/// Whether the worker process of a lane exists now (for tests of replacement).
impl Sandbox {
    pub fn worker_pid(&self, lane: usize) -> Option<u32> {
        self.lanes.get(lane).and_then(Option::as_ref).map(WorkerProcess::pid)
    }
}
