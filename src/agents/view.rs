//! Who is due to step, and what each sees.

use bevy_ecs::prelude::*;
use serde_json::{Value, json};

use super::{Wake, steps::StepJob};
use crate::{
    kernel::{Event, EventLog, state},
    world::{
        components::{Artifact, EventFilter, Executable, Frozen, Inbox, Loop, Quota, Standing},
        ids::{ArtifactId, Ids},
        time::{SimClock, SimTime},
    },
};

/// Events shown in one view, at most (the most recent that concern the agent).
pub const VIEW_EVENTS: usize = 20;

/// Ids named anywhere in an event: its actor and every string in its payload.
fn mentions(event: &Event, id: &str) -> bool {
    if event.actor == id {
        return true;
    }
    fn walk(value: &Value, id: &str) -> bool {
        match value {
            Value::String(s) => s == id,
            Value::Array(items) => items.iter().any(|v| walk(v, id)),
            Value::Object(fields) => fields.values().any(|v| walk(v, id)),
            _ => false,
        }
    }
    serde_json::to_value(&event.kind).is_ok_and(|v| walk(&v["payload"], id))
}

fn matches(filter: &EventFilter, event: &Event) -> bool {
    filter.kind.as_deref().is_none_or(|k| event.kind.type_name() == k)
        && filter.actor.as_deref().is_none_or(|a| event.actor == a)
        && filter.artifact.as_deref().is_none_or(|a| mentions(event, a))
}

/// Agents to step now, in id order, with why they woke.
pub(super) fn due_agents(world: &mut World, now: SimTime) -> Vec<(Entity, Wake)> {
    let log = world.resource::<EventLog>();
    let mut due: Vec<(&ArtifactId, Entity, Wake)> = Vec::new();
    let ids = world.resource::<Ids>();
    for &entity in ids.in_creation_order() {
        let Some(agent) = world.get::<Loop>(entity) else { continue };
        if agent.paused || world.get::<Frozen>(entity).is_some() || world.get::<Executable>(entity).is_none() {
            continue;
        }
        let wake = if agent.wake_at <= now {
            Some(Wake::Time)
        } else {
            agent
                .wake_on
                .as_ref()
                .filter(|filter| log.since(agent.seen_seq).any(|e| matches(filter, e)))
                .map(|_| Wake::Event)
        };
        if let (Some(wake), Some(id)) = (wake, world.get::<ArtifactId>(entity)) {
            due.push((id, entity, wake));
        }
    }
    due.sort_by(|a, b| a.0.cmp(b.0));
    due.into_iter().map(|(_, entity, wake)| (entity, wake)).collect()
}

/// The step of one agent: its view, ready to send.
pub(super) fn job(world: &mut World, entity: Entity, wake: Wake, now: SimTime) -> Option<StepJob> {
    let id = world.get::<ArtifactId>(entity)?.clone();
    let executable = world.get::<Executable>(entity)?;
    let (code, code_hash) = (executable.code.clone(), executable.code_hash());
    let agent = world.get::<Loop>(entity)?;
    let (seen, wake_on) = (agent.seen_seq, agent.wake_on.clone());
    let log = world.resource::<EventLog>();
    let latest = log.next_seq() - 1;
    // What concerns the agent, and what it was waiting for.
    let mut events: Vec<&Event> = log
        .since(seen)
        .filter(|e| mentions(e, id.as_str()) || wake_on.as_ref().is_some_and(|f| matches(f, e)))
        .collect();
    let skip = events.len().saturating_sub(VIEW_EVENTS);
    let events: Vec<&Event> = events.drain(skip..).collect();
    let standing = world.get::<Standing>(entity);
    let view = json!({
        "self": id,
        "now": now.as_secs_f64(),
        "step": world.resource::<SimClock>().step(),
        "woke_by": match wake { Wake::Time => "time", Wake::Event => "event" },
        "scrip": standing.map_or(0, Standing::scrip),
        "resources": standing.map(state::resources_of).unwrap_or_default(),
        "quota": world.get::<Quota>(entity).map(|q| q.limits().clone()).unwrap_or_default(),
        "memory": world.get::<Artifact>(entity).map_or("", Artifact::content),
        "inbox": world.get::<Inbox>(entity).map(|i| i.entries().to_vec()).unwrap_or_default(),
        "events": events,
        "errors_in_row": world.get::<Loop>(entity).map_or(0, |l| l.errors_in_row),
    });
    if let Some(mut inbox) = world.get_mut::<Inbox>(entity) {
        inbox.0.clear();
    }
    if let Some(mut agent) = world.get_mut::<Loop>(entity) {
        agent.seen_seq = latest;
    }
    Some(StepJob { entity, id, code, code_hash, view: view.to_string() })
}
