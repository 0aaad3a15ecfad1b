//! Running many agents' steps at once.
//!
//! Steps are grouped by lane and each lane's group goes to its worker as one batch;
//! every batch is sent before any is awaited, so the workers compute in parallel.
//! A step may look at the world (read-only host calls, answered here, from whichever
//! lane asks first) but not act.
//! If a step kills its worker, only that step fails: the steps after it in the batch
//! are sent again, to a fresh worker.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use bevy_ecs::prelude::*;

use crate::{
    kernel::{ErrorCode, Kernel, KernelError, imports::ModuleCode, query::SampleSeeds},
    sandbox::{
        Sandbox, SandboxConfig, WorkerFailure,
        process::WorkerProcess,
        protocol::{CallMode, CallRequest, Entry, FromWorker, ModuleSource, ToWorker},
    },
    world::{config::Config, ids::ArtifactId, rng::SimRng, time::SimClock},
};

/// How long the host spins reading a message it has seen begin (or one past its
/// deadline) before parking.
const BATCH_SPIN: Duration = Duration::from_micros(20);

/// How long the host polls its lanes when none has a message, before it parks:
/// long enough to catch a step's next host call, short enough not to hold a core
/// the workers need. It spins, yielding only while a worker it waits on shares its
/// core: yielding between every look was tried, and a yielding host is often not
/// back for a whole time slice while the workers wait on its answers.
const POLL_BEFORE_PARK: Duration = Duration::from_micros(30);

/// How long a parked host sleeps on one lane (which wakes it when it speaks)
/// before looking at the others again.
const PARK_SLICE: Duration = Duration::from_micros(100);

/// One agent's step, ready to run.
pub(crate) struct StepJob {
    pub entity: Entity,
    pub id: ArtifactId,
    pub code: Arc<str>,
    pub code_hash: u64,
    /// The modules its code imports, or why they cannot be had (then the step fails
    /// without running).
    pub modules: Result<Vec<ModuleCode>, String>,
    /// The view as JSON (moved into the request when the step is sent).
    pub view: String,
}

/// What a step returned (its JSON) and used.
pub(crate) struct StepOutcome {
    pub result: Result<String, String>,
    pub cpu_us: u64,
}

/// A lane's steps in flight.
struct LaneRun {
    lane: usize,
    worker: Option<WorkerProcess>,
    /// Steps sent and not yet answered, in the order the worker runs them.
    pending: VecDeque<(usize, CallRequest)>,
    /// Seeds for the samples of the running step's queries (the job it belongs to).
    samples: (usize, SampleSeeds),
    /// When the front step has run too long.
    deadline: Instant,
}

/// Runs every job's step; returns each job with its outcome, in the jobs' order.
pub(crate) fn run(world: &mut World, jobs: Vec<StepJob>) -> Vec<(StepJob, StepOutcome)> {
    let config = world.resource::<Config>().sandbox.clone();
    let now_ms = world.resource::<SimClock>().now().millis();
    let mut outcomes: Vec<Option<StepOutcome>> = (0..jobs.len()).map(|_| None).collect();

    // Requests in job order (seeds drawn in a fixed order), grouped by lane.
    let mut lanes: Vec<LaneRun> = Vec::new();
    let mut jobs = jobs;
    for (index, job) in jobs.iter_mut().enumerate() {
        if let Err(broken) = &job.modules {
            outcomes[index] = Some(StepOutcome { result: Err(broken.clone()), cpu_us: 0 });
            continue;
        }
        let lane = world.resource::<Sandbox>().lane_for(job.id.as_str(), &config);
        let seed = world.resource_mut::<SimRng>().next_u64();
        let id = world.resource_mut::<Sandbox>().next_call_id();
        let request = CallRequest {
            id,
            code_hash: job.code_hash,
            code: None,
            forget: Vec::new(),
            modules: Vec::new(),
            entry: Entry::Step,
            input: std::mem::take(&mut job.view),
            ctx: "{}".to_owned(),
            now_ms,
            seed,
            loop_limit: config.loop_limit,
            result_limit: config.result_bytes,
            mode: CallMode::Look,
        };
        match lanes.iter_mut().find(|l| l.lane == lane) {
            Some(run) => run.pending.push_back((index, request)),
            None => lanes.push(LaneRun {
                lane,
                worker: None,
                pending: VecDeque::from([(index, request)]),
                samples: (usize::MAX, SampleSeeds::new(0)),
                deadline: Instant::now(),
            }),
        }
    }
    lanes.sort_by_key(|l| l.lane);

    // Send every batch before waiting on any, then answer whichever lane speaks
    // first: a step's host call is answered while the other lanes run, not after the
    // lanes before it have finished.
    for run in &mut lanes {
        send_batch(world, run, &jobs, &config, &mut outcomes);
    }
    let mut idle_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut waiting = false;
        let mut answered = false;
        for run in &mut lanes {
            if run.pending.is_empty() {
                if let Some(worker) = run.worker.take() {
                    world.resource_mut::<Sandbox>().return_worker(run.lane, worker);
                }
                continue;
            }
            waiting = true;
            // A lane past its deadline is received from too: that is what stops it.
            if run.worker.as_ref().is_none_or(WorkerProcess::has_message) || now >= run.deadline {
                receive_one(world, run, &jobs, &config, &mut outcomes);
                answered = true;
            }
        }
        if !waiting {
            break;
        }
        if answered {
            idle_since = None;
            continue;
        }
        if idle_since.is_none() {
            // Workers waiting on us look here to decide whether to give way.
            lanes.iter().filter_map(|run| run.worker.as_ref()).for_each(WorkerProcess::note_waiting_here);
        }
        let idle = now.duration_since(*idle_since.get_or_insert(now));
        let crowded = || {
            lanes
                .iter()
                .any(|run| !run.pending.is_empty() && run.worker.as_ref().is_some_and(WorkerProcess::shares_my_core))
        };
        if idle < POLL_BEFORE_PARK && crowded() {
            // A worker we wait on runs on this very core: give it the core.
            // SAFETY: sched_yield has no preconditions.
            unsafe {
                libc::sched_yield();
            }
        } else if idle < POLL_BEFORE_PARK {
            std::hint::spin_loop();
        } else if let Some(run) = lanes.iter_mut().find(|run| !run.pending.is_empty()) {
            // A long step: park on one lane for a while (it wakes us when it
            // speaks), then look at them all again.
            let ready = run.worker.as_mut().is_some_and(|worker| worker.wait_for_message(now + PARK_SLICE));
            if ready {
                receive_one(world, run, &jobs, &config, &mut outcomes);
            }
        }
    }
    jobs.into_iter()
        .zip(outcomes)
        .map(|(job, outcome)| {
            let outcome = outcome.unwrap_or(StepOutcome { result: Err("the step never ran".into()), cpu_us: 0 });
            (job, outcome)
        })
        .collect()
}

/// Sends the lane's pending steps as one batch, starting a worker if needed. Steps
/// that cannot be sent fail.
fn send_batch(
    world: &mut World,
    run: &mut LaneRun,
    jobs: &[StepJob],
    config: &SandboxConfig,
    outcomes: &mut [Option<StepOutcome>],
) {
    if run.worker.is_none() {
        match world.resource_mut::<Sandbox>().take_worker(run.lane, config) {
            Ok(worker) => run.worker = Some(worker),
            Err(failure) => {
                fail_all(run, &failure.to_string(), outcomes);
                return;
            }
        }
    }
    let Some(worker) = run.worker.as_mut() else { return };
    run.deadline = Instant::now() + Duration::from_millis(config.timeout_ms);
    let batch: Vec<CallRequest> = run
        .pending
        .iter_mut()
        .map(|(index, request)| {
            let job = &jobs[*index];
            let (code, mut forget) = worker.code_to_send(job.code_hash, &job.code);
            let modules = job.modules.as_deref().unwrap_or_default();
            request.modules = modules
                .iter()
                .map(|module| {
                    let (code, evicted) = worker.code_to_send(module.code_hash, &module.code);
                    forget.extend(evicted);
                    ModuleSource { id: module.id.to_string(), code_hash: module.code_hash, code }
                })
                .collect();
            request.code = code;
            request.forget = forget;
            request.clone()
        })
        .collect();
    if let Err(failure) = worker.send(&ToWorker::Batch(batch)) {
        run.worker = None;
        fail_all(run, &failure.to_string(), outcomes);
    }
}

fn fail_all(run: &mut LaneRun, message: &str, outcomes: &mut [Option<StepOutcome>]) {
    for (index, _) in run.pending.drain(..) {
        outcomes[index] = Some(StepOutcome { result: Err(message.to_owned()), cpu_us: 0 });
    }
}

/// Takes the lane's next message: answers a host call of its front step, or
/// records the step's outcome.
fn receive_one(
    world: &mut World,
    run: &mut LaneRun,
    jobs: &[StepJob],
    config: &SandboxConfig,
    outcomes: &mut [Option<StepOutcome>],
) {
    let Some((index, request)) = run.pending.front() else { return };
    let index = *index;
    if run.samples.0 != index {
        run.samples = (index, SampleSeeds::new(request.seed));
    }
    let Some(worker) = run.worker.as_mut() else {
        fail_all(run, "the sandbox worker is gone", outcomes);
        return;
    };
    match worker.receive_spinning(run.deadline, BATCH_SPIN) {
        Ok(FromWorker::Rpc { call, args }) => {
            let job = &jobs[index];
            let reply = match Kernel::for_code(world, job.entity, &job.id) {
                Some(mut kernel) => kernel.answer_look(call, &args, &mut run.samples.1),
                None => Err(KernelError::not_found(job.id.as_str())),
            };
            let reply = match reply {
                Ok(value) => Ok(value.to_string()),
                Err(error) => Err(serde_json::to_string(&error).unwrap_or_default()),
            };
            let worker = run.worker.as_mut();
            if let Some(Err(failure)) = worker.map(|w| w.send(&ToWorker::Reply(reply))) {
                lose_worker(world, run, failure, config, outcomes, jobs);
            }
        }
        Ok(FromWorker::Done(result)) => {
            run.pending.pop_front();
            run.deadline = Instant::now() + Duration::from_millis(config.timeout_ms);
            worker.note_result(&result);
            let cpu_us = config.cpu_us(result.instructions);
            let result = result.outcome.map_err(|failed| format!("step failed: {}", failed.message));
            outcomes[index] = Some(StepOutcome { result, cpu_us });
        }
        Ok(other) => {
            let failure = WorkerFailure::Protocol(format!("unexpected {other:?}"));
            lose_worker(world, run, failure, config, outcomes, jobs);
        }
        Err(failure) => lose_worker(world, run, failure, config, outcomes, jobs),
    }
}

/// The lane's worker is gone while running its front step: that step fails and is
/// charged the deadline; the rest go to a fresh worker.
fn lose_worker(
    world: &mut World,
    run: &mut LaneRun,
    failure: WorkerFailure,
    config: &SandboxConfig,
    outcomes: &mut [Option<StepOutcome>],
    jobs: &[StepJob],
) {
    if let Some(mut worker) = run.worker.take() {
        worker.kill();
        world.resource_mut::<Sandbox>().return_worker(run.lane, worker);
    }
    if let Some((index, _)) = run.pending.pop_front() {
        let code = if failure == WorkerFailure::Timeout { ErrorCode::Timeout } else { ErrorCode::ExecutionError };
        outcomes[index] =
            Some(StepOutcome { result: Err(format!("{code}: {failure}")), cpu_us: config.timeout_ms * 1000 });
    }
    if !run.pending.is_empty() {
        send_batch(world, run, jobs, config, outcomes);
    }
}
