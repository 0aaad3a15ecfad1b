//! Interviews: a researcher asks an agent a question ("why did you sell
//! text_tools?") during a run or after it, and the agent's model answers as the
//! agent, from what the agent knows — its persona (its own content), its notebook,
//! its holdings and the recent events about it.
//!
//! An interview stands outside the world: it is paid by the experimenter (counted
//! apart, never from the agent's budget), it writes no event and changes nothing, so
//! a world's checksum is the same with or without it. Its call goes through the
//! world's model bridge like any other, so it is recorded in `--llm-cache` and a
//! replay serves it from there: the same question about the same state gets the same
//! answer.

use bevy_ecs::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    bridge::{LlmBridge, client::excerpt},
    kernel::{
        Event, EventLog, Standing,
        llm::{ChatArgs, request_body},
    },
    world::{
        components::{Artifact, Frozen, ModelChoice},
        config::Config,
        ids::{self, ArtifactId},
        time::SimClock,
    },
};

/// Recent events about the agent given to its model, at most.
const INTERVIEW_EVENTS: usize = 30;
/// Characters of the persona, of the notebook, and of each event given.
const PERSONA_CHARS: usize = 1500;
const NOTEBOOK_CHARS: usize = 3000;
const EVENT_CHARS: usize = 240;
/// Completion tokens an answer may take.
const ANSWER_TOKENS: u64 = 250;

/// A question and its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interview {
    pub agent: String,
    pub question: String,
    pub answer: String,
    pub model: String,
    /// When it was asked: the world's step and simulated seconds.
    pub step: u64,
    pub at_secs: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// What it cost the experimenter, in µ$ (the model's price × usage).
    pub cost_micro_usd: u64,
}

/// Asks `agent` `question` in `world` as it is now. Fails (with the reason) when the
/// agent does not exist, the world has no model for it, or the model's call failed.
pub fn interview(world: &mut World, agent: &str, question: &str) -> Result<Interview, String> {
    let question = question.trim();
    if question.is_empty() {
        return Err("the question is empty".into());
    }
    let entity = ids::lookup(world, agent).ok_or_else(|| format!("no principal or artifact {agent:?}"))?;
    let config = world.resource::<Config>().llm.clone();
    let chosen = world.get::<ModelChoice>(entity).map(|m| m.model().to_owned());
    let (model_name, model) = config.model(chosen.as_deref()).map(|(n, m)| (n.to_owned(), m.clone()))?;
    let context = context(world, entity, agent);
    let system = format!(
        "You are {agent}, an agent in a simulated economy. A researcher who studies this world is interviewing \
         you. Answer their question as {agent}, truthfully and briefly, from what you know below: your role, \
         your notebook, your holdings and what happened to you recently. If you do not know, say so. You cannot \
         act now: this is only a conversation."
    );
    let args = ChatArgs {
        messages: vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": format!("{context}\nThe researcher asks: {question}")}),
        ],
        max_tokens: Some(ANSWER_TOKENS),
        ..ChatArgs::default()
    };
    let body = request_body(&args, model.api_name.as_deref().unwrap_or(&model_name), ANSWER_TOKENS);
    let finished = world.resource_mut::<LlmBridge>().ask_aside(&config, &model.endpoint, body);
    let answer = finished.outcome.map_err(|failure| format!("the interview's call failed: {}", failure.message))?;
    let text = match (&answer.content, answer.tool_calls.first()) {
        (Some(content), _) if !content.trim().is_empty() => content.trim().to_owned(),
        (_, Some(call)) => format!("(answered with a call to {}: {})", call.name, excerpt(&call.arguments, 300)),
        _ => "(no answer)".to_owned(),
    };
    let clock = world.resource::<SimClock>();
    let (step, at_secs) = (clock.step(), clock.now().as_secs_f64());
    Ok(Interview {
        agent: agent.to_owned(),
        question: question.to_owned(),
        answer: text,
        model: model_name,
        step,
        at_secs,
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        cost_micro_usd: model.cost_micro_usd(answer.prompt_tokens, answer.completion_tokens),
    })
}

/// What the agent knows, as text for its model.
fn context(world: &World, entity: Entity, agent: &str) -> String {
    let persona = world.get::<Artifact>(entity).map_or("", Artifact::content);
    let notebook = ids::lookup(world, &format!("{agent}_notebook"))
        .and_then(|nb| world.get::<Artifact>(nb))
        .map_or("", Artifact::content);
    let mut text = String::new();
    if !persona.trim().is_empty() {
        text.push_str(&format!("Your role: {}\n", excerpt(persona.trim(), PERSONA_CHARS)));
    }
    if let Some(standing) = world.get::<Standing>(entity) {
        text.push_str(&format!(
            "You hold {} scrip and {} µ$ of LLM budget{}.\n",
            standing.scrip(),
            standing.llm_budget_micro_usd(),
            if world.get::<Frozen>(entity).is_some() { "; you are FROZEN" } else { "" }
        ));
    }
    if !notebook.trim().is_empty() {
        text.push_str(&format!("Your notebook:\n{}\n", truncate(notebook.trim(), NOTEBOOK_CHARS)));
    }
    let id = world.get::<ArtifactId>(entity);
    let events: Vec<String> = world
        .resource::<EventLog>()
        .recent()
        .rev()
        .filter(|event| id.is_some_and(|id| event.actor == *id || event.kind.mentions(id)))
        .take(INTERVIEW_EVENTS)
        .map(describe)
        .collect();
    if !events.is_empty() {
        text.push_str("What happened to you recently (oldest first):\n");
        for line in events.iter().rev() {
            text.push_str(&format!("- {line}\n"));
        }
    }
    text
}

fn describe(event: &Event) -> String {
    let payload = serde_json::to_value(&event.kind).ok().and_then(|v| v.get("payload").map(Value::to_string));
    let line = format!(
        "t={} {} {} {}",
        event.time.as_secs_f64(),
        event.actor,
        event.kind.type_name(),
        payload.unwrap_or_default()
    );
    excerpt(&line, EVENT_CHARS)
}

/// The last `chars` characters of `text` (a notebook's newest part is at its end).
fn truncate(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        text.to_owned()
    } else {
        format!("…{}", text.chars().skip(count - chars).collect::<String>())
    }
}
