//! Agent loops: artifacts with a [`Loop`] wake, look, and decide.
//!
//! In the Decide phase every agent whose time has come (or whose awaited event has
//! happened, or an event it subscribed to), and which is neither frozen nor paused, gets a *view* — its holdings,
//! quotas, memory (its own content), the results of its earlier intents and the
//! recent events that concern it — and its code's `step(view)` answers with intents
//! (actions, executed by the kernel in the Act phase) and optionally how long to
//! sleep. Steps run in the sandbox in look-only mode, batched: one batch per lane,
//! the lanes in parallel, so thousands of agents cost a handful of round trips.
//!
//! An agent never spins: after a step it sleeps at least its interval. A failed step
//! (it threw, timed out, or answered nonsense) doubles the wait; five in a row pause
//! the agent until its code changes or someone resumes it. An agent may rewrite its
//! own code and spawn new agents; new code runs from its next wake.

mod steps;
mod view;

use std::collections::HashMap;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use serde_json::{Value, json};

use crate::{
    kernel::{
        Action, EventKind, EventLog, KERNEL_ID, Kernel, KernelError,
        intents::{ActionOutcome, Intent},
    },
    world::{
        StepSystems,
        components::{EventFilter, Inbox, Loop},
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

/// Failed steps in a row that pause an agent.
pub const MAX_ERRORS_IN_ROW: u32 = 5;
/// Intents one step may return; more are refused.
pub const MAX_INTENTS_PER_STEP: usize = 16;
/// Results kept in an agent's inbox between wakes.
pub const INBOX_CAPACITY: usize = 32;

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(Update, run_agent_loops.in_set(StepSystems::Decide))
        .add_systems(Update, deliver_outcomes.in_set(StepSystems::Act).after(crate::kernel::intents::execute_intents));
}

/// Why an agent woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Time,
    /// The event it slept on (`sleep.on`).
    Event,
    /// An event one of its subscriptions asks for.
    Subscription,
}

/// Decide phase: step every agent that is due.
pub(crate) fn run_agent_loops(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    let since = view::oldest_needed(world, now);
    let recent = view::RecentEvents::collect(world.resource::<EventLog>(), since);
    let due = view::due_agents(world, now, &recent);
    if due.is_empty() {
        return;
    }
    let mut jobs = Vec::with_capacity(due.len());
    for (entity, wake) in due {
        match cpu_admits(world, entity) {
            CpuAdmits::Now => jobs.extend(view::job(world, entity, wake, now, &recent)),
            // At its CPU limit: wait until the window lets it run again.
            CpuAdmits::After(wait) => {
                let Some(mut agent) = world.get_mut::<Loop>(entity) else { continue };
                let wait = wait.max(agent.interval);
                agent.wake_at = now.saturating_add(wait);
                if let Some(id) = world.get::<ArtifactId>(entity).cloned() {
                    let throttled = EventKind::AgentThrottled {
                        principal: id.clone(),
                        resource: "cpu".into(),
                        retry_after: wait.as_secs_f64(),
                    };
                    world.resource_mut::<EventLog>().push(now, id, throttled);
                }
            }
            // An allocation too small for any step is a failure to say out loud, not
            // a wait that never ends.
            CpuAdmits::Never(why) => {
                if let Some(id) = world.get::<ArtifactId>(entity).cloned() {
                    fail_step(world, &id, entity, why, now);
                }
            }
        }
    }
    for (job, outcome) in steps::run(world, jobs) {
        if let Some(mut kernel) = Kernel::for_code(world, job.entity, &job.id) {
            kernel.record_usage(job.entity, "cpu", outcome.cpu_us);
        }
        settle_step(world, &job.id, job.entity, outcome, now);
    }
}

/// Whether an agent's CPU quota admits a step.
enum CpuAdmits {
    Now,
    After(SimTime),
    Never(String),
}

fn cpu_admits(world: &mut World, entity: Entity) -> CpuAdmits {
    let Some(id) = world.get::<ArtifactId>(entity).cloned() else { return CpuAdmits::Now };
    let Some(mut kernel) = Kernel::for_code(world, entity, &id) else { return CpuAdmits::Now };
    match kernel.admit(entity, "cpu", 1) {
        Ok(()) => CpuAdmits::Now,
        Err(error) => match error.retry_after.and_then(SimTime::from_secs_f64) {
            Some(wait) => CpuAdmits::After(wait),
            None => CpuAdmits::Never(error.message),
        },
    }
}

/// What a step asked for besides its intents.
#[derive(Debug, Default)]
struct Sleep {
    until: Option<SimTime>,
    on: Option<EventFilter>,
}

/// Applies a step's outcome: queue its intents and schedule its next wake, or back
/// it off.
fn settle_step(world: &mut World, id: &ArtifactId, entity: Entity, outcome: steps::StepOutcome, now: SimTime) {
    if let Some(mut agent) = world.get_mut::<Loop>(entity) {
        agent.steps += 1;
        agent.cpu_us += outcome.cpu_us;
    }
    let parsed = outcome.result.and_then(|json| parse_step_output(&json, now));
    match parsed {
        Ok((actions, sleep)) => {
            let interval = world.get::<Loop>(entity).map_or(SimTime::from_millis(1000), |l| l.interval);
            let mut refused = Vec::new();
            let count = actions.len();
            for (i, raw) in actions.into_iter().enumerate() {
                if i >= MAX_INTENTS_PER_STEP {
                    let error = KernelError::invalid(format!(
                        "a step may return at most {MAX_INTENTS_PER_STEP} intents; {} more were dropped",
                        count - MAX_INTENTS_PER_STEP
                    ));
                    refused.push((raw, error));
                    break;
                }
                match Action::from_json(raw.clone()) {
                    Ok(action) => {
                        world.write_message(Intent { actor: id.clone(), action });
                    }
                    Err(error) => refused.push((raw, error)),
                }
            }
            for (raw, error) in refused {
                refuse_intent(world, id, entity, &raw, error, now);
            }
            if let Some(mut agent) = world.get_mut::<Loop>(entity) {
                agent.errors_in_row = 0;
                // Never sooner than the interval: an agent cannot spin.
                let earliest = now.saturating_add(interval);
                agent.wake_at = sleep.until.map_or(earliest, |until| until.max(earliest));
                if sleep.on.is_some() && sleep.until.is_none() {
                    agent.wake_at = SimTime::MAX;
                }
                agent.wake_on = sleep.on;
            }
        }
        Err(message) => fail_step(world, id, entity, message, now),
    }
}

/// How much of a refused intent its event keeps.
const REFUSED_INTENT_CHARS: usize = 300;

/// An intent the kernel cannot take: logged as `INTENT_REFUSED` (so the refusal is
/// in the event stream, the report and the window, not only in the agent's inbox) and
/// answered in the inbox like a failed action.
fn refuse_intent(world: &mut World, id: &ArtifactId, entity: Entity, raw: &Value, error: KernelError, now: SimTime) {
    let intent = crate::bridge::client::excerpt(&raw.to_string(), REFUSED_INTENT_CHARS);
    let event = EventKind::IntentRefused { intent, code: error.code, message: error.message.clone() };
    world.resource_mut::<EventLog>().push(now, id.clone(), event);
    let mut entry = json!({"success": false, "error": error});
    if let Some(name) = raw.get("action").and_then(Value::as_str) {
        entry["action"] = crate::bridge::client::excerpt(name, 64).into();
    }
    if let Some(mut inbox) = world.get_mut::<Inbox>(entity) {
        push_bounded(&mut inbox, entry);
    }
}

fn fail_step(world: &mut World, id: &ArtifactId, entity: Entity, message: String, now: SimTime) {
    let Some(mut agent) = world.get_mut::<Loop>(entity) else { return };
    agent.errors_in_row += 1;
    let errors = agent.errors_in_row;
    // Each failure in a row doubles the wait.
    let backoff = agent.interval.millis().saturating_mul(1 << errors.min(16));
    agent.wake_at = now.saturating_add(SimTime::from_millis(backoff));
    agent.wake_on = None;
    let pause = errors >= MAX_ERRORS_IN_ROW && !agent.paused;
    if pause {
        agent.paused = true;
    }
    let mut log = world.resource_mut::<EventLog>();
    log.push(now, id.clone(), EventKind::AgentError { principal: id.clone(), message, errors_in_row: errors });
    if pause {
        log.push(
            now,
            ArtifactId::trusted(KERNEL_ID),
            EventKind::AgentPaused { principal: id.clone(), errors_in_row: errors },
        );
    }
}

/// Reads what `step` returned: either an array of actions, or
/// `{actions: [...], sleep: {...}}`. `{"action": "sleep", ...}` in the array is a
/// sleep, not an action: `secs` from now, `until` a time, `on` an event filter.
fn parse_step_output(json: &str, now: SimTime) -> Result<(Vec<Value>, Sleep), String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("step returned bad JSON: {e}"))?;
    let (actions, mut sleep_spec) = match value {
        Value::Null => (Vec::new(), None),
        Value::Array(actions) => (actions, None),
        Value::Object(mut fields) => {
            let actions = match fields.remove("actions") {
                Some(Value::Array(actions)) => actions,
                None | Some(Value::Null) => Vec::new(),
                Some(other) => return Err(format!("step's actions must be an array, got {other}")),
            };
            (actions, fields.remove("sleep"))
        }
        other => return Err(format!("step must return an array of actions or {{actions, sleep}}, got {other}")),
    };
    let mut kept = Vec::with_capacity(actions.len());
    for action in actions {
        if action.get("action").and_then(Value::as_str) == Some("sleep") {
            sleep_spec = Some(action);
        } else {
            kept.push(action);
        }
    }
    let mut sleep = Sleep::default();
    if let Some(spec) = sleep_spec {
        let time = |key: &str| -> Result<Option<SimTime>, String> {
            match spec.get(key) {
                None => Ok(None),
                Some(value) => value
                    .as_f64()
                    .and_then(SimTime::from_secs_f64)
                    .map(Some)
                    .ok_or_else(|| format!("sleep.{key} must be a number of seconds ≥ 0, got {value}")),
            }
        };
        if let Some(secs) = time("secs")? {
            sleep.until = Some(now.saturating_add(secs));
        }
        if let Some(until) = time("until")? {
            sleep.until = Some(until);
        }
        if let Some(on) = spec.get("on") {
            sleep.on = Some(serde_json::from_value(on.clone()).map_err(|e| format!("sleep.on: {e}"))?);
        }
    }
    Ok((kept, sleep))
}

pub(crate) fn push_bounded(inbox: &mut Inbox, entry: Value) {
    if inbox.0.len() == INBOX_CAPACITY {
        inbox.0.remove(0);
    }
    inbox.0.push(entry);
}

/// Act phase, after the intents: results go to the inboxes of the agents that acted.
/// An agent told to wait (`QUOTA_EXCEEDED` with a `retry_after`) sleeps until then
/// rather than trying again at once.
fn deliver_outcomes(
    mut outcomes: MessageReader<ActionOutcome>,
    mut agents: Query<(&ArtifactId, &mut Inbox, &mut Loop)>,
    clock: Res<SimClock>,
) {
    // By actor, each actor's in the order they happened: one look per agent rather
    // than a pass over every outcome for every agent.
    let mut by_actor: HashMap<&ArtifactId, Vec<&ActionOutcome>> = HashMap::new();
    for outcome in outcomes.read() {
        by_actor.entry(&outcome.actor).or_default().push(outcome);
    }
    if by_actor.is_empty() {
        return;
    }
    for (id, mut inbox, mut agent) in &mut agents {
        let Some(mine) = by_actor.get(id) else { continue };
        for outcome in mine {
            let mut entry = serde_json::to_value(&outcome.result).unwrap_or(Value::Null);
            if let Some(fields) = entry.as_object_mut() {
                fields.insert("action".into(), outcome.action.as_str().into());
                if let Some(target) = &outcome.target {
                    fields.insert("id".into(), target.as_str().into());
                }
            }
            push_bounded(&mut inbox, entry);
            let wait = outcome.result.error.as_ref().and_then(|e| e.retry_after).and_then(SimTime::from_secs_f64);
            if let Some(wait) = wait {
                let until = clock.now().saturating_add(wait);
                if until > agent.wake_at {
                    agent.wake_at = until;
                }
            }
        }
    }
}

/// Resumes a paused agent (its code changed, or someone asked).
pub(crate) fn resume(world: &mut World, entity: Entity, by: &ArtifactId) {
    let now = world.resource::<SimClock>().now();
    let Some(mut agent) = world.get_mut::<Loop>(entity) else { return };
    if !agent.paused {
        return;
    }
    agent.paused = false;
    agent.errors_in_row = 0;
    agent.wake_at = now;
    let Some(id) = world.get::<ArtifactId>(entity).cloned() else { return };
    world.resource_mut::<EventLog>().push(now, by.clone(), EventKind::AgentResumed { principal: id });
}
