//! The intervention timeline: acts from outside the world, applied at scheduled times.
//!
//! A scene's `interventions` become a queue ordered by time (file order breaks ties).
//! In the Ingest phase of each step, every intervention due by `now` is applied: an
//! `INTERVENTION` event records what was done, then the act runs through the kernel
//! like anything else — as the named principal (`as`/`do`) or as the world itself
//! (`system`). A failing intervention is logged and the world goes on.

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::raw::SystemAct;
use crate::{
    kernel::{Action, ActionResult, EventKind, EventLog, KERNEL_ID, Kernel, KernelError, intents::ActionOutcome},
    world::{
        ids::ArtifactId,
        time::{SimClock, SimTime},
    },
};

/// One act of an intervention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InterventionAct {
    /// Perform `action` as principal `actor`.
    As { actor: ArtifactId, action: Action },
    /// A system act.
    System(SystemAct),
}

impl InterventionAct {
    /// The JSON recorded in the `INTERVENTION` event. Written content and code are
    /// replaced by their size: the event log is public (code can read it), the
    /// artifact itself may not be.
    pub fn to_json(&self) -> Value {
        match self {
            Self::As { actor, action } => {
                let mut act = action.to_json();
                if let Some(fields) = act.as_object_mut() {
                    for key in ["content", "code", "old", "new"] {
                        if let Some(Value::String(text)) = fields.get(key) {
                            let redacted = format!("<{} bytes>", text.len());
                            fields.insert(key.into(), redacted.into());
                        }
                    }
                }
                json!({ "as": actor, "do": act })
            }
            Self::System(act) => json!({ "system": serde_json::to_value(act).unwrap_or(Value::Null) }),
        }
    }
}

/// An intervention and when it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledIntervention {
    pub at: SimTime,
    pub act: InterventionAct,
}

/// Interventions still to come, and how the past ones went.
#[derive(Resource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pending: VecDeque<ScheduledIntervention>,
    applied: u64,
    failed: u64,
}

impl Timeline {
    /// A timeline of interventions already in time order.
    pub(crate) fn new(sorted: Vec<ScheduledIntervention>) -> Self {
        Self { pending: sorted.into(), applied: 0, failed: 0 }
    }

    /// Adds an intervention after every pending one due at the same time.
    pub fn schedule(&mut self, intervention: ScheduledIntervention) {
        let at = self.pending.partition_point(|p| p.at <= intervention.at);
        self.pending.insert(at, intervention);
    }

    pub fn pending(&self) -> impl Iterator<Item = &ScheduledIntervention> {
        self.pending.iter()
    }

    /// Interventions applied so far (including failed ones).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Applied interventions whose act failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }
}

/// Ingest phase: apply every intervention due by now.
pub(crate) fn apply_due_interventions(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    loop {
        let mut timeline = world.resource_mut::<Timeline>();
        if timeline.pending.front().is_none_or(|next| next.at > now) {
            return;
        }
        let Some(due) = timeline.pending.pop_front() else { return };
        timeline.applied += 1;
        let succeeded = apply(world, due.act);
        if !succeeded {
            world.resource_mut::<Timeline>().failed += 1;
        }
    }
}

/// Applies one intervention now. Returns whether its act succeeded.
pub fn apply(world: &mut World, act: InterventionAct) -> bool {
    let now = world.resource::<SimClock>().now();
    let kernel_id = ArtifactId::trusted(KERNEL_ID);
    world.resource_mut::<EventLog>().push(now, kernel_id.clone(), EventKind::Intervention { act: act.to_json() });
    let outcome: Result<(), KernelError> = match act {
        InterventionAct::As { actor, action } => {
            let kind = action.kind();
            let target = action.target().map(str::to_owned);
            match Kernel::as_principal(world, actor.as_str()) {
                Ok(mut kernel) => {
                    // The kernel logs a failed action itself (ACTION_FAILED).
                    let result = kernel.act(action);
                    let success = result.success;
                    world.write_message(ActionOutcome { actor, action: kind, target, result });
                    return success;
                }
                Err(error) => {
                    world.write_message(ActionOutcome {
                        actor,
                        action: kind,
                        target,
                        result: ActionResult::failed(error.clone(), None),
                    });
                    Err(error)
                }
            }
        }
        InterventionAct::System(act) => apply_system(world, &act),
    };
    match outcome {
        Ok(()) => true,
        Err(error) => {
            world.resource_mut::<EventLog>().push(
                now,
                kernel_id,
                EventKind::InterventionFailed { code: error.code, message: error.message },
            );
            false
        }
    }
}

fn apply_system(world: &mut World, act: &SystemAct) -> Result<(), KernelError> {
    if let SystemAct::Resume { principal } = act {
        let entity = crate::world::ids::lookup(world, principal).ok_or_else(|| KernelError::not_found(principal))?;
        if world.get::<crate::world::components::Loop>(entity).is_none() {
            return Err(KernelError::invalid(format!("{principal} is not an agent")));
        }
        crate::agents::resume(world, entity, &ArtifactId::trusted(KERNEL_ID));
        return Ok(());
    }
    if let SystemAct::DecideCapability { request, approve, limit, note } = act {
        let decision = crate::economy::capabilities::Decision { approve: *approve, limit: *limit, note: note.clone() };
        return crate::economy::capabilities::decide(world, *request, decision, "a person");
    }
    let mut kernel = Kernel::as_system(world)?;
    match act {
        SystemAct::GrantScrip { to, amount } => kernel.grant_scrip(to, amount.0),
        SystemAct::GrantResource { to, resource, amount } => kernel.grant_resource(to, resource, amount.0),
        SystemAct::SetQuota { principal, resource, limit } => kernel.set_quota(principal, resource, *limit),
        SystemAct::Freeze { principal, reason } => {
            kernel.freeze(principal, reason.as_deref().unwrap_or("frozen by an intervention"), false)
        }
        SystemAct::Unfreeze { principal } => kernel.unfreeze(principal, None),
        SystemAct::Resume { .. } | SystemAct::DecideCapability { .. } => Ok(()),
    }
}
