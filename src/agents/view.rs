//! Who is due to step, and what each sees.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::{Wake, steps::StepJob};
use crate::kernel::{Quota, Standing};
use crate::{
    economy::{mint::Mint, subscriptions::Subscriptions},
    kernel::EventLog,
    world::{
        components::{Artifact, EventFilter, Executable, Frozen, Inbox, Loop, ModelChoice, Thinking},
        config::Config,
        ids::{ArtifactId, Ids},
        time::{SimClock, SimTime},
    },
};

/// Events shown in one view, at most (the most recent that concern the agent).
pub const VIEW_EVENTS: usize = 20;

/// How far back in the log views and event wakes look: an agent that slept through
/// more than this many events sees only the most recent of them.
pub const VIEW_LOOKBACK: u64 = 1000;

/// The events agents have not all seen yet, each turned into JSON once per step
/// (not once per agent), with every id it names.
pub(super) struct RecentEvents {
    events: Vec<SeenEvent>,
    /// Positions in `events` of the events that name each id, ascending: what
    /// concerns an agent without a pass over every event for every agent.
    naming: HashMap<String, Vec<usize>>,
}

struct SeenEvent {
    seq: u64,
    kind: &'static str,
    actor: ArtifactId,
    json: Value,
    /// The actor and every string in the payload (ids are strings).
    named: Vec<String>,
}

impl RecentEvents {
    /// Events after `since` still in the log.
    pub(super) fn collect(log: &EventLog, since: u64) -> Self {
        let events: Vec<SeenEvent> = log
            .since(since)
            .map(|event| {
                let json = serde_json::to_value(event).unwrap_or(Value::Null);
                let mut named = vec![event.actor.to_string()];
                collect_strings(&json["payload"], &mut named);
                SeenEvent { seq: event.seq, kind: event.kind.type_name(), actor: event.actor.clone(), json, named }
            })
            .collect();
        let mut naming: HashMap<String, Vec<usize>> = HashMap::new();
        for (at, event) in events.iter().enumerate() {
            for name in &event.named {
                match naming.get_mut(name.as_str()) {
                    // A name twice in one event (actor and payload) is one mention.
                    Some(positions) if positions.last() == Some(&at) => {}
                    Some(positions) => positions.push(at),
                    None => {
                        naming.insert(name.clone(), vec![at]);
                    }
                }
            }
        }
        Self { events, naming }
    }

    fn after(&self, seq: u64) -> impl Iterator<Item = &SeenEvent> {
        let start = self.events.partition_point(|e| e.seq <= seq);
        self.events[start..].iter()
    }

    /// Events after `seq` that name `id`, oldest first.
    fn naming(&self, id: &str, seq: u64) -> impl Iterator<Item = &SeenEvent> {
        let positions = self.naming.get(id).map_or(&[][..], Vec::as_slice);
        let start = positions.partition_point(|&at| self.events[at].seq <= seq);
        positions[start..].iter().map(|&at| &self.events[at])
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

impl SeenEvent {
    fn names(&self, id: &str) -> bool {
        self.named.iter().any(|n| n == id)
    }

    fn matches(&self, filter: &EventFilter) -> bool {
        filter.kind.as_deref().is_none_or(|k| self.kind == k)
            && filter.actor.as_deref().is_none_or(|a| self.actor == a)
            && filter.artifact.as_deref().is_none_or(|a| self.names(a))
    }

    /// Whether one of `agent`'s subscriptions asks for this event. An agent's own
    /// acts are not news to it, and waking on them would have it step every step.
    fn wanted_by(&self, agent: &ArtifactId, subscriptions: Option<&Subscriptions>) -> bool {
        self.actor != *agent && subscriptions.is_some_and(|s| s.filters().any(|f| self.matches(f)))
    }
}

/// An agent's subscriptions, if it has any.
fn subscriptions_of(world: &World, entity: Entity) -> Option<&Subscriptions> {
    world.get::<Subscriptions>(entity).filter(|s| !s.is_empty())
}

/// Where [`RecentEvents`] must start this step: the oldest event an agent that may
/// step now has not seen (or, for one waiting on events, not yet checked), but no
/// further back than [`VIEW_LOOKBACK`].
pub(super) fn oldest_needed(world: &mut World, now: SimTime) -> u64 {
    let latest = world.resource::<EventLog>().next_seq() - 1;
    let floor = latest.saturating_sub(VIEW_LOOKBACK);
    let mut agents = world.query_filtered::<(&Loop, Option<&Subscriptions>), (Without<Frozen>, Without<Thinking>)>();
    let needed = agents
        .iter(world)
        .filter(|(a, _)| !a.paused)
        .filter_map(|(a, subscriptions)| {
            let waiting = a.wake_on.is_some() || subscriptions.is_some_and(|s| !s.is_empty());
            match (waiting, a.wake_at <= now) {
                (_, true) => Some(a.seen_seq),
                (true, false) => Some(a.seen_seq.max(a.checked_seq)),
                (false, false) => None,
            }
        })
        .min()
        .unwrap_or(latest);
    needed.max(floor)
}

/// Agents to step now, in id order, with why they woke.
pub(super) fn due_agents(world: &mut World, now: SimTime, recent: &RecentEvents) -> Vec<(Entity, Wake)> {
    let latest = world.resource::<EventLog>().next_seq() - 1;
    let mut checked = Vec::new();
    let mut due: Vec<(&ArtifactId, Entity, Wake)> = Vec::new();
    let ids = world.resource::<Ids>();
    for &entity in ids.in_creation_order() {
        let Some(agent) = world.get::<Loop>(entity) else { continue };
        if agent.paused
            || world.get::<Frozen>(entity).is_some()
            || world.get::<Thinking>(entity).is_some()
            || world.get::<Executable>(entity).is_none()
        {
            continue;
        }
        let Some(id) = world.get::<ArtifactId>(entity) else { continue };
        let subscriptions = subscriptions_of(world, entity);
        let wake = if agent.wake_at <= now {
            Some(Wake::Time)
        } else if agent.wake_on.is_some() || subscriptions.is_some() {
            // Only the events since the last check: each is looked at once per sleeper.
            let from = agent.seen_seq.max(agent.checked_seq);
            checked.push(entity);
            recent.after(from).find_map(|e| {
                if agent.wake_on.as_ref().is_some_and(|f| e.matches(f)) {
                    Some(Wake::Event)
                } else {
                    e.wanted_by(id, subscriptions).then_some(Wake::Subscription)
                }
            })
        } else {
            None
        };
        if let Some(wake) = wake {
            due.push((id, entity, wake));
        }
    }
    due.sort_by(|a, b| a.0.cmp(b.0));
    let due: Vec<(Entity, Wake)> = due.into_iter().map(|(_, entity, wake)| (entity, wake)).collect();
    for entity in checked {
        if let Some(mut agent) = world.get_mut::<Loop>(entity) {
            agent.checked_seq = latest;
        }
    }
    due
}

/// The step of one agent: its view, ready to send.
pub(super) fn job(
    world: &mut World,
    entity: Entity,
    wake: Wake,
    now: SimTime,
    recent: &RecentEvents,
) -> Option<StepJob> {
    let id = world.get::<ArtifactId>(entity)?.clone();
    let executable = world.get::<Executable>(entity)?;
    let (code, code_hash) = (executable.code.clone(), executable.code_hash());
    let modules = crate::kernel::imports::closure(world, entity, &id).map_err(|e| e.message);
    let agent = world.get::<Loop>(entity)?;
    let (seen, wake_on) = (agent.seen_seq, agent.wake_on.clone());
    let latest = world.resource::<EventLog>().next_seq() - 1;
    let subscriptions = subscriptions_of(world, entity);
    // What concerns the agent, and what it was waiting for or subscribed to: the most
    // recent few.
    let relevant: Vec<&Value> = if wake_on.is_none() && subscriptions.is_none() {
        recent.naming(id.as_str(), seen).map(|e| &e.json).collect()
    } else {
        recent
            .after(seen)
            .filter(|e| {
                e.names(id.as_str())
                    || wake_on.as_ref().is_some_and(|f| e.matches(f))
                    || e.wanted_by(&id, subscriptions)
            })
            .map(|e| &e.json)
            .collect()
    };
    let events = &relevant[relevant.len().saturating_sub(VIEW_EVENTS)..];
    let standing = world.get::<Standing>(entity);
    let view = View {
        id: &id,
        now: now.as_secs_f64(),
        step: world.resource::<SimClock>().step(),
        woke_by: match wake {
            Wake::Time => "time",
            Wake::Event => "event",
            Wake::Subscription => "subscription",
        },
        scrip: standing.map_or(0, Standing::scrip),
        resources: standing.map(Holdings),
        quota: world.get::<Quota>(entity).map(Quota::limits),
        memory: world.get::<Artifact>(entity).map_or("", Artifact::content),
        inbox: world.get::<Inbox>(entity).map_or(&[], |i| i.entries()),
        events,
        errors_in_row: world.get::<Loop>(entity).map_or(0, |l| l.errors_in_row),
        model: world.get::<ModelChoice>(entity).map(ModelChoice::model).or(world
            .resource::<Config>()
            .llm
            .default_model
            .as_deref()),
        mint_next_at: world.resource::<Mint>().next_at(&world.resource::<Config>().mint).as_secs_f64(),
    };
    // Written straight from the world's data: no JSON tree in between.
    let view = serde_json::to_string(&view).unwrap_or_default();
    if let Some(mut inbox) = world.get_mut::<Inbox>(entity) {
        inbox.0.clear();
    }
    if let Some(mut agent) = world.get_mut::<Loop>(entity) {
        agent.seen_seq = latest;
    }
    Some(StepJob { entity, id, code, code_hash, modules, view })
}

/// What an agent sees, borrowed from the world for one serialisation.
#[derive(Serialize)]
struct View<'a> {
    #[serde(rename = "self")]
    id: &'a ArtifactId,
    now: f64,
    step: u64,
    woke_by: &'static str,
    scrip: u64,
    resources: Option<Holdings<'a>>,
    quota: Option<&'a std::collections::BTreeMap<std::sync::Arc<str>, u64>>,
    memory: &'a str,
    inbox: &'a [Value],
    events: &'a [&'a Value],
    errors_in_row: u32,
    /// The model it thinks with when it names none.
    model: Option<&'a str>,
    /// When the mint's next auction resolves.
    mint_next_at: f64,
}

/// A principal's resources as the report shows them (`llm_budget`, free `disk`,
/// `disk_used`, declared stocks), written without building a map.
struct Holdings<'a>(&'a Standing);

impl Serialize for Holdings<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let standing = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("llm_budget", &standing.llm_budget_micro_usd())?;
        map.serialize_entry("disk", &standing.disk_free())?;
        map.serialize_entry("disk_used", &standing.disk_used())?;
        for (name, amount) in standing.stocks() {
            map.serialize_entry(&**name, &amount)?;
        }
        map.end()
    }
}
