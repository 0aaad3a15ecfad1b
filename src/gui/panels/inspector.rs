//! The inspector: everything about the selected principal or artifact, and the
//! interventions the experimenter can make on a principal.
//!
//! Interventions are sent as [`Command::Intervene`]: the world applies them at its
//! next step and records each as an `INTERVENTION` event.

use serde_json::Value;

use super::{
    Outbox, bytes,
    charts::{self, ChartSpec, Series},
    rate_text, usage_bar, usd,
};
use crate::{
    gui::{
        model::Model,
        session::{Command, Detail, PrincipalRow, StateKind},
    },
    kernel::{Action, Event, actions::Amount, actions::TransferSpec},
    scene::{raw::SystemAct, timeline::InterventionAct},
    world::ids::ArtifactId,
};
use egui::RichText;

/// The intervention form's fields, kept between frames.
pub struct InspectorPanel {
    amount: String,
    budget_usd: String,
    quota_resource: String,
    quota_limit: String,
    transfer_to: String,
    question: String,
}

impl Default for InspectorPanel {
    fn default() -> Self {
        Self {
            amount: "100".into(),
            budget_usd: "1.0".into(),
            quota_resource: "llm_calls".into(),
            quota_limit: String::new(),
            transfer_to: String::new(),
            question: String::new(),
        }
    }
}

impl InspectorPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, selected: Option<&ArtifactId>, outbox: &mut Outbox) {
        let Some(selected) = selected else { return };
        ui.horizontal(|ui| {
            ui.heading(selected.as_str());
            if ui.small_button("✖").on_hover_text("Close the inspector").clicked() {
                outbox.select = Some(None);
            }
        });
        let Some(detail) = model.detail.as_deref().filter(|d| &d.id == selected) else {
            ui.label("Loading…");
            return;
        };
        // Scroll position and open sections of its own per selection: a new one
        // starts at its top, with the sections open that matter for its kind.
        ui.push_id(selected.as_str(), |ui| self.sections_ui(ui, model, selected, detail, outbox));
    }

    fn sections_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &Model,
        selected: &ArtifactId,
        detail: &Detail,
        outbox: &mut Outbox,
    ) {
        let meta = &detail.metadata;
        let is_principal = detail.principal.is_some();
        egui::ScrollArea::vertical().id_salt("inspector_scroll").show(ui, |ui| {
            if let Some(principal) = &detail.principal {
                why_ui(ui, principal, detail);
                balances_ui(ui, detail);
                egui::CollapsingHeader::new("Interventions").default_open(true).show(ui, |ui| {
                    self.interventions_ui(ui, selected, meta, outbox);
                });
            }
            // Agents may be asked; one whose world has no model for it is told so.
            let agent = detail.principal.as_ref().is_some_and(|p| p.agent) || !detail.thoughts.is_empty();
            if is_principal && agent {
                egui::CollapsingHeader::new("Interview").default_open(true).show(ui, |ui| {
                    self.interview_ui(ui, selected, model, outbox);
                });
            }
            // What an artifact is comes before what happened to it.
            if !detail.content.is_empty() {
                egui::CollapsingHeader::new("Content").default_open(!is_principal).show(ui, |ui| {
                    text_ui(ui, "content", &detail.content);
                });
            }
            if let Some(code) = &detail.code {
                egui::CollapsingHeader::new("Code").default_open(!is_principal).show(ui, |ui| {
                    let theme = egui_extras::syntax_highlighting::CodeTheme::from_style(ui.style());
                    egui::ScrollArea::both().id_salt("code").max_height(420.0).show(ui, |ui| {
                        egui_extras::syntax_highlighting::code_view_ui(ui, &theme, code, "js");
                    });
                });
            }
            for (title, text) in [("Interface", &detail.interface), ("Pricing", &detail.pricing)] {
                if let Some(text) = text {
                    egui::CollapsingHeader::new(title).default_open(!is_principal).show(ui, |ui| {
                        let theme = egui_extras::syntax_highlighting::CodeTheme::from_style(ui.style());
                        egui_extras::syntax_highlighting::code_view_ui(ui, &theme, text, "json");
                    });
                }
            }
            if !detail.owned.is_empty() {
                egui::CollapsingHeader::new(format!("Owns {} artifacts", detail.owned.len())).show(ui, |ui| {
                    ids_ui(ui, &detail.owned, outbox);
                });
            }
            if let Some(memory) = &detail.memory {
                egui::CollapsingHeader::new("Memory (its notebook)").default_open(true).show(ui, |ui| {
                    text_ui(ui, "memory", memory);
                });
            }
            if !detail.thoughts.is_empty() {
                egui::CollapsingHeader::new(format!("Thoughts ({})", detail.thoughts.len())).default_open(true).show(
                    ui,
                    |ui| {
                        for event in &detail.thoughts {
                            thought_ui(ui, event);
                        }
                    },
                );
            }
            egui::CollapsingHeader::new(format!("Recent events ({})", detail.recent.len()))
                .default_open(is_principal)
                .show(ui, |ui| {
                    for event in &detail.recent {
                        ui.add(egui::Label::new(event_line(event)).wrap());
                    }
                });
            if !detail.calls.is_empty() || !detail.called_by.is_empty() {
                egui::CollapsingHeader::new("Invocation graph").show(ui, |ui| {
                    ui.label("Invokes:");
                    ids_ui(ui, &detail.calls, outbox);
                    ui.label("Invoked by:");
                    ids_ui(ui, &detail.called_by, outbox);
                });
            }
            egui::CollapsingHeader::new("Facts").default_open(!is_principal).show(ui, |ui| {
                facts_ui(ui, meta, is_principal, outbox);
            });
        });
    }

    /// A question for the agent, and what it answered before (newest first).
    fn interview_ui(&mut self, ui: &mut egui::Ui, id: &ArtifactId, model: &Model, outbox: &mut Outbox) {
        ui.horizontal(|ui| {
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.question)
                    .hint_text("e.g. why did you sell text_tools?")
                    .desired_width(220.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let question = self.question.trim().to_owned();
            let ask = ui.add_enabled(!question.is_empty(), egui::Button::new("Ask")).clicked();
            if (ask || enter) && !question.is_empty() {
                outbox.send(Command::Interview { agent: id.clone(), question });
                self.question.clear();
            }
        });
        ui.small(
            "Answered by its model from its notebook and recent events; paid by you, recorded, the world unchanged.",
        );
        for interview in model.interviews.iter().rev().filter(|i| i.agent == id.as_str()) {
            ui.group(|ui| {
                ui.small(format!(
                    "t = {:.1} s · step {} · {} · {} µ$",
                    interview.at_secs, interview.step, interview.model, interview.cost_micro_usd
                ));
                ui.strong(&interview.question);
                ui.label(&interview.answer);
            });
        }
    }

    fn interventions_ui(&mut self, ui: &mut egui::Ui, id: &ArtifactId, meta: &Value, outbox: &mut Outbox) {
        let to = id.to_string();
        let system = |act: SystemAct| Command::Intervene(Box::new(InterventionAct::System(act)));
        egui::Grid::new("interventions").num_columns(3).show(ui, |ui| {
            let label = ui.label("Scrip");
            ui.add(egui::TextEdit::singleline(&mut self.amount).desired_width(80.0)).labelled_by(label.id);
            let amount = self.amount.trim().parse::<u64>().ok();
            if ui.add_enabled(amount.is_some(), egui::Button::new("Grant scrip")).clicked()
                && let Some(amount) = amount
            {
                outbox.send(system(SystemAct::GrantScrip { to: to.clone(), amount: Amount(amount as i64) }));
            }
            ui.end_row();

            let label = ui.label("LLM budget $");
            ui.add(egui::TextEdit::singleline(&mut self.budget_usd).desired_width(80.0)).labelled_by(label.id);
            let micro = self.budget_usd.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
            if ui.add_enabled(micro.is_some(), egui::Button::new("Grant budget")).clicked()
                && let Some(usd) = micro
            {
                outbox.send(system(SystemAct::GrantResource {
                    to: to.clone(),
                    resource: "llm_budget".into(),
                    amount: Amount((usd * 1e6).round() as i64),
                }));
            }
            ui.end_row();

            let label = ui.label("Transfer scrip to");
            ui.add(egui::TextEdit::singleline(&mut self.transfer_to).hint_text("principal id").desired_width(80.0))
                .labelled_by(label.id);
            let recipient = self.transfer_to.trim();
            let can_transfer = amount.is_some() && !recipient.is_empty();
            if ui
                .add_enabled(can_transfer, egui::Button::new("Transfer"))
                .on_hover_text("Moves the scrip amount above, as this principal")
                .clicked()
                && let Some(amount) = amount
            {
                outbox.send(Command::Intervene(Box::new(InterventionAct::As {
                    actor: id.clone(),
                    action: Action::Transfer(TransferSpec {
                        to: recipient.to_owned(),
                        amount: Some(Amount(amount as i64)),
                        resource: None,
                        artifact: None,
                    }),
                })));
            }
            ui.end_row();

            let label = ui.label("Quota (resource, limit)");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.quota_resource).desired_width(70.0)).labelled_by(label.id);
                ui.add(egui::TextEdit::singleline(&mut self.quota_limit).hint_text("unlimited").desired_width(60.0))
                    .labelled_by(label.id);
            });
            let limit = self.quota_limit.trim();
            let parsed = if limit.is_empty() { Some(None) } else { limit.parse::<u64>().ok().map(Some) };
            if ui.add_enabled(parsed.is_some(), egui::Button::new("Set quota")).clicked()
                && let Some(limit) = parsed
            {
                outbox.send(system(SystemAct::SetQuota {
                    principal: to.clone(),
                    resource: self.quota_resource.trim().to_owned(),
                    limit,
                }));
            }
            ui.end_row();
        });
        let frozen = meta.get("frozen").and_then(Value::as_bool).unwrap_or(false);
        ui.horizontal(|ui| {
            if frozen {
                if ui.button("Unfreeze").clicked() {
                    outbox.send(system(SystemAct::Unfreeze { principal: to.clone() }));
                }
            } else if ui.button("Freeze").clicked() {
                outbox.send(system(SystemAct::Freeze { principal: to.clone(), reason: Some("frozen by hand".into()) }));
            }
            if ui.button("Resume").on_hover_text("Let an agent paused after repeated errors run again").clicked() {
                outbox.send(system(SystemAct::Resume { principal: to.clone() }));
            }
        });
        ui.small("Interventions apply at the next step and are saved with “Save run…”.");
    }
}

/// The kernel's public facts about the artifact, as a table of one line per fact
/// (a nested fact wraps within its cell). A principal's holdings, limits and state
/// are in its header instead.
fn facts_ui(ui: &mut egui::Ui, meta: &Value, is_principal: bool, outbox: &mut Outbox) {
    let Some(fields) = meta.as_object() else { return };
    let in_header: &[&str] =
        if is_principal { &["scrip", "resources", "quota", "frozen", "has_standing"] } else { &[] };
    let width = ui.available_width();
    egui::Grid::new("facts").num_columns(2).striped(true).max_col_width(width * 0.7).show(ui, |ui| {
        for (key, value) in fields {
            if matches!(key.as_str(), "id" | "interface" | "pricing") || in_header.contains(&key.as_str()) {
                continue;
            }
            ui.label(key);
            match (key.as_str(), value) {
                ("owner" | "created_by" | "contract", Value::String(id)) => {
                    if ui.link(id).clicked() {
                        outbox.select(ArtifactId::trusted(id));
                    }
                }
                (_, Value::Object(map)) => {
                    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {}", compact(v))).collect();
                    ui.add(egui::Label::new(parts.join(" · ")).wrap());
                }
                (_, other) => {
                    ui.add(egui::Label::new(compact(other)).wrap());
                }
            }
            ui.end_row();
        }
    });
}

/// Why the principal is as it is, at a glance: its state and since when, the last
/// action of its that was refused and why, its last thought, and its holdings with
/// each limited rate as a bar against its quota.
fn why_ui(ui: &mut egui::Ui, principal: &PrincipalRow, detail: &Detail) {
    let state = &principal.state;
    let color = match state.kind {
        StateKind::Frozen | StateKind::Paused => ui.visuals().error_fg_color,
        StateKind::Thinking | StateKind::Sleeping => ui.visuals().warn_fg_color,
        StateKind::Active | StateKind::Passive => ui.visuals().strong_text_color(),
    };
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("● {}", state.kind.label())).color(color).strong());
        if !state.reason.is_empty() {
            ui.label(&state.reason);
        }
        if let Some(since) = state.since {
            ui.weak(format!("since t = {since:.0} s"));
        }
    });
    if let Some(event) = &detail.last_refused {
        let payload = payload(event);
        let field = |k: &str| payload.get(k).map(compact).unwrap_or_default();
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Last refused").strong());
            ui.label(format!(
                "{} at t = {:.0} s: {} — {}",
                field("action"),
                event.time.as_secs_f64(),
                field("code"),
                field("message")
            ));
        });
    }
    if let Some(thought) = detail.thoughts.first() {
        let payload = payload(thought);
        let excerpt = payload.get("excerpt").or_else(|| payload.get("message")).map(compact).unwrap_or_default();
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Last thought").strong());
            ui.weak(format!("t = {:.0} s", thought.time.as_secs_f64()));
            ui.label(excerpt);
        });
    }
    egui::Grid::new("holdings").num_columns(2).show(ui, |ui| {
        ui.label("scrip");
        ui.strong(charts::count(principal.scrip as f64));
        ui.end_row();
        ui.label("LLM budget");
        ui.strong(usd(principal.llm_budget_micro_usd));
        ui.end_row();
        if let Some(model) = &principal.model {
            ui.label("model");
            ui.label(model);
            ui.end_row();
        }
        ui.label("disk");
        bar_ui(
            ui,
            principal.disk_used,
            principal.disk_quota,
            format!("{} of {}", bytes(principal.disk_used), bytes(principal.disk_quota)),
        );
        ui.end_row();
        for rate in &principal.rates {
            ui.label(rate.resource.as_ref()).on_hover_text("Use in the current window of the rate limit");
            bar_ui(ui, rate.used, rate.limit, rate_text(&rate.resource, rate.used, rate.limit));
            ui.end_row();
        }
    });
    ui.separator();
}

/// A usage bar of the header.
fn bar_ui(ui: &mut egui::Ui, used: u64, limit: u64, text: String) {
    ui.add(usage_bar(ui, used, limit, text).desired_width(220.0));
}

/// An event's payload, as JSON.
fn payload(event: &Event) -> Value {
    serde_json::to_value(&event.kind).ok().and_then(|v| v.get("payload").cloned()).unwrap_or_default()
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// Scrip and LLM budget over time, each in its own unit on its own chart.
fn balances_ui(ui: &mut egui::Ui, detail: &Detail) {
    if detail.history.is_empty() {
        return;
    }
    let width = ui.available_width().max(200.0);
    let scrip: Vec<[f64; 2]> = detail.history.iter().map(|(t, s, _)| [*t, *s as f64]).collect();
    let budget: Vec<[f64; 2]> = detail.history.iter().map(|(t, _, b)| [*t, *b as f64 / 1e6]).collect();
    let spec = |id, format| ChartSpec { id, height: 90.0, width, format, y_range: None, link: None };
    ui.strong("Scrip over time");
    charts::time_chart(ui, &spec("balance_scrip", charts::count), &[Series { name: "scrip", points: scrip }]);
    ui.strong("LLM budget over time");
    charts::time_chart(ui, &spec("balance_budget", charts::dollars), &[Series { name: "budget", points: budget }]);
}

fn ids_ui(ui: &mut egui::Ui, ids: &[ArtifactId], outbox: &mut Outbox) {
    ui.horizontal_wrapped(|ui| {
        for id in ids {
            if ui.link(id.as_str()).clicked() {
                outbox.select(id.clone());
            }
        }
    });
}

fn text_ui(ui: &mut egui::Ui, id: &str, text: &str) {
    egui::ScrollArea::vertical().id_salt(id).max_height(240.0).show(ui, |ui| {
        let mut shown = text;
        ui.add(egui::TextEdit::multiline(&mut shown).code_editor().desired_width(f32::INFINITY)).on_hover_text(id);
    });
}

fn thought_ui(ui: &mut egui::Ui, event: &Event) {
    let payload = payload(event);
    let get = |k: &str| payload.get(k).map(compact).unwrap_or_default();
    ui.group(|ui| {
        ui.small(format!(
            "t = {:.1} s · {} · {} tokens · {} µ$",
            event.time.as_secs_f64(),
            get("model"),
            payload.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0)
                + payload.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
            get("cost_micro_usd"),
        ));
        let excerpt = get("excerpt");
        let text = if excerpt.is_empty() { get("message") } else { excerpt };
        ui.label(text);
    });
}

/// One event as a line of text.
pub fn event_line(event: &Event) -> String {
    let payload = payload(event);
    let mut line = format!("{:>8.1}s  {}  {}", event.time.as_secs_f64(), event.actor, event.kind.type_name());
    if let Value::Object(fields) = payload {
        for (k, v) in fields.iter().take(6) {
            let mut text = compact(v);
            if text.len() > 60 {
                let mut cut = 60;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            line.push_str(&format!("  {k}={text}"));
        }
    }
    line
}
