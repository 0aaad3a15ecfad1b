//! Subscriptions: standing orders to be woken by events.
//!
//! An agent can already sleep until one event (`sleep: {on: filter}`), but that wish
//! lasts one sleep. A subscription is the same filter — any of event type, actor, and
//! an artifact or principal named in the payload — kept until the agent ends it: every
//! matching event wakes the agent, however it sleeps, and is shown in its next view.
//!
//! The agent's own acts never wake it (it knows them already, and a subscription that
//! matched them would have it step every step). The filters live on the agent, in its
//! [`Subscriptions`]; the Decide phase checks a sleeper's new events against them
//! once each (`agents::view`), as it does a one-shot `sleep.on`. Only agents
//! subscribe: nothing else wakes.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services::{self, SUBSCRIPTIONS_ID};
use crate::{
    kernel::{EventKind, Kernel, KernelError, journal},
    world::{
        components::{EventFilter, Loop},
        time::SimTime,
    },
};

/// Subscriptions one agent may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 16;

/// The longest actor or artifact a filter may name (the longest id).
const MAX_NAME: usize = 128;

/// An agent's subscriptions, in the order it made them.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriptions {
    /// Numbers the next subscription: ids are never reused.
    next: u64,
    list: Vec<Subscription>,
}

/// One standing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `sub-1`, `sub-2`, … among its agent's.
    pub id: String,
    pub filter: EventFilter,
    pub since: SimTime,
}

impl Subscriptions {
    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The filters, for matching events against.
    pub(crate) fn filters(&self) -> impl Iterator<Item = &EventFilter> {
        self.list.iter().map(|s| &s.filter)
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    match method {
        "subscribe" => {
            let filter: EventFilter = services::args(method, input)?;
            kernel.subscribe(filter)
        }
        "unsubscribe" => kernel.unsubscribe(&services::args::<Id>(method, input)?.id),
        "list" => kernel.subscriptions(),
        _ => Err(services::no_such_method(SUBSCRIPTIONS_ID, method)),
    }
}

/// Refuses a filter that names no event type the world has, or names nothing at all
/// (it would match every event).
fn check_filter(filter: &EventFilter) -> Result<(), KernelError> {
    if filter.kind.is_none() && filter.actor.is_none() && filter.artifact.is_none() {
        return Err(KernelError::invalid(
            "a subscription needs at least one of type, actor or artifact (with none it would match every event)",
        ));
    }
    if let Some(kind) = &filter.kind
        && !EventKind::TYPES.contains(&kind.as_str())
    {
        return Err(KernelError::invalid(format!("there is no event type {kind:?}"))
            .with("type", kind.as_str())
            .with("hint", "event types are written as in the log, e.g. TASK_POSTED"));
    }
    for (field, value) in [("actor", &filter.actor), ("artifact", &filter.artifact)] {
        if let Some(value) = value
            && (value.is_empty() || value.len() > MAX_NAME)
        {
            return Err(KernelError::invalid(format!("{field} must be 1–{MAX_NAME} characters")));
        }
    }
    Ok(())
}

impl Kernel<'_> {
    /// The caller's subscriptions; refuses a caller that is not an agent.
    fn subscriber(&self) -> Result<Option<&Subscriptions>, KernelError> {
        if self.world.get::<Loop>(self.caller_entity).is_none() {
            return Err(KernelError::invalid(format!(
                "{} is not an agent: only agents are woken, so only agents can subscribe",
                self.caller
            ))
            .with("id", self.caller.as_str()));
        }
        Ok(self.world.get::<Subscriptions>(self.caller_entity))
    }

    /// Subscribes the calling agent to the events `filter` matches.
    pub fn subscribe(&mut self, filter: EventFilter) -> Result<Value, KernelError> {
        check_filter(&filter)?;
        let held = self.subscriber()?.map_or(0, Subscriptions::len);
        if held >= MAX_SUBSCRIPTIONS {
            return Err(KernelError::invalid(format!(
                "{} holds {held} subscriptions, the most an agent may; unsubscribe from one first",
                self.caller
            ))
            .with("limit", MAX_SUBSCRIPTIONS as u64));
        }
        let now = self.now;
        let mut subscriptions = self.world.get::<Subscriptions>(self.caller_entity).cloned().unwrap_or_default();
        subscriptions.next += 1;
        let id = format!("sub-{}", subscriptions.next);
        subscriptions.list.push(Subscription { id: id.clone(), filter: filter.clone(), since: now });
        journal::save_component::<Subscriptions>(self.world, self.caller_entity);
        self.world.entity_mut(self.caller_entity).insert(subscriptions);
        self.emit(EventKind::Subscribed { subscription: id.clone(), filter: filter.clone() });
        Ok(json!({ "id": id, "filter": filter }))
    }

    /// Ends the calling agent's subscription `id`.
    pub fn unsubscribe(&mut self, id: &str) -> Result<Value, KernelError> {
        let position = self.subscriber()?.and_then(|s| s.list.iter().position(|s| s.id == id));
        let Some(position) = position else {
            return Err(KernelError::new(
                crate::kernel::ErrorCode::NotFound,
                format!("{} has no subscription {id:?}", self.caller),
            )
            .with("id", id));
        };
        journal::save_component::<Subscriptions>(self.world, self.caller_entity);
        if let Some(mut subscriptions) = self.world.get_mut::<Subscriptions>(self.caller_entity) {
            subscriptions.list.remove(position);
        }
        self.emit(EventKind::Unsubscribed { subscription: id.to_owned() });
        Ok(json!({ "id": id }))
    }

    /// The calling agent's subscriptions.
    pub fn subscriptions(&self) -> Result<Value, KernelError> {
        let items: Vec<Value> = self
            .subscriber()?
            .into_iter()
            .flat_map(Subscriptions::iter)
            .map(|s| json!({ "id": s.id, "filter": s.filter, "since": s.since.as_secs_f64() }))
            .collect();
        Ok(json!({ "items": items, "limit": MAX_SUBSCRIPTIONS }))
    }
}
