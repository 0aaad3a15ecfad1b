//! Intents: actions queued by agents (and anything else acting on a principal's
//! behalf) during a step, executed by the kernel in the Act phase.
//!
//! Within a step the order of execution decides who gets a scarce thing first, so
//! it must be fair and reproducible: intents are grouped by actor, the actors are put
//! in id order and then shuffled by the world's seeded RNG, and each actor's intents
//! run in the order it queued them.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;

use super::{Action, ActionKind, ActionResult, EventKind, EventLog, Kernel};
use crate::world::{ids::ArtifactId, rng::SimRng, time::SimClock};

/// A request for the kernel to perform `action` as `actor`.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct Intent {
    pub actor: ArtifactId,
    pub action: Action,
}

/// What became of an intent.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    pub actor: ArtifactId,
    pub action: ActionKind,
    /// [`Action::target`] of the action, so an agent knows which call a result answers.
    pub target: Option<String>,
    pub result: ActionResult,
}

/// Act phase: execute every queued intent.
pub(crate) fn execute_intents(world: &mut World) {
    let queued: Vec<Intent> = world.resource_mut::<Messages<Intent>>().drain().collect();
    if queued.is_empty() {
        return;
    }
    let mut by_actor: BTreeMap<ArtifactId, Vec<Action>> = BTreeMap::new();
    for intent in queued {
        by_actor.entry(intent.actor).or_default().push(intent.action);
    }
    let mut turns: Vec<(ArtifactId, Vec<Action>)> = by_actor.into_iter().collect();
    world.resource_mut::<SimRng>().shuffle(&mut turns);
    for (actor, actions) in turns {
        for action in actions {
            let kind = action.kind();
            let target = action.target().map(str::to_owned);
            let result = match Kernel::as_principal(world, actor.as_str()) {
                Ok(mut kernel) => kernel.act(action),
                Err(error) => {
                    // No principal to act as (it is gone): refused, and said so.
                    let now = world.resource::<SimClock>().now();
                    let event = EventKind::ActionFailed {
                        action: kind,
                        code: error.code,
                        message: error.message.clone(),
                        reverted: 0,
                    };
                    world.resource_mut::<EventLog>().push(now, actor.clone(), event);
                    ActionResult::failed(error, None)
                }
            };
            world.write_message(ActionOutcome { actor: actor.clone(), action: kind, target, result });
        }
    }
}
