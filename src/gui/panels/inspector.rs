//! The inspector: everything about the selected principal or artifact, and the
//! interventions the experimenter can make on a principal.
//!
//! Interventions are sent as [`Command::Intervene`]: the world applies them at its
//! next step and records each as an `INTERVENTION` event.

use egui_plot::{Legend, Line, Plot, PlotPoints};
use serde_json::Value;

use super::Outbox;
use crate::{
    gui::{
        model::Model,
        session::{Command, Detail},
    },
    kernel::{Action, Event, actions::Amount, actions::TransferSpec},
    scene::{raw::SystemAct, timeline::InterventionAct},
    world::ids::ArtifactId,
};

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
        let meta = &detail.metadata;
        let is_principal = meta.get("has_standing").and_then(Value::as_bool).unwrap_or(false);
        egui::ScrollArea::vertical().id_salt("inspector_scroll").show(ui, |ui| {
            facts_ui(ui, meta, outbox);
            if is_principal {
                balances_ui(ui, detail);
                egui::CollapsingHeader::new("Interventions").default_open(true).show(ui, |ui| {
                    self.interventions_ui(ui, selected, meta, outbox);
                });
            }
            // Agents may be asked; one whose world has no model for it is told so.
            let agent = model.principals.iter().any(|p| &p.id == selected && p.agent) || !detail.thoughts.is_empty();
            if is_principal && agent {
                egui::CollapsingHeader::new("Interview").default_open(true).show(ui, |ui| {
                    self.interview_ui(ui, selected, model, outbox);
                });
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
                        ui.label(event_line(event));
                    }
                });
            if !detail.content.is_empty() {
                egui::CollapsingHeader::new("Content").default_open(!is_principal).show(ui, |ui| {
                    text_ui(ui, "content", &detail.content);
                });
            }
            if let Some(code) = &detail.code {
                egui::CollapsingHeader::new("Code").default_open(!is_principal).show(ui, |ui| {
                    let theme = egui_extras::syntax_highlighting::CodeTheme::from_style(ui.style());
                    egui::ScrollArea::both().id_salt("code").max_height(360.0).show(ui, |ui| {
                        egui_extras::syntax_highlighting::code_view_ui(ui, &theme, code, "js");
                    });
                });
            }
            for (title, text) in [("Interface", &detail.interface), ("Pricing", &detail.pricing)] {
                if let Some(text) = text {
                    egui::CollapsingHeader::new(title).show(ui, |ui| {
                        let theme = egui_extras::syntax_highlighting::CodeTheme::from_style(ui.style());
                        egui_extras::syntax_highlighting::code_view_ui(ui, &theme, text, "json");
                    });
                }
            }
            if !detail.calls.is_empty() || !detail.called_by.is_empty() {
                egui::CollapsingHeader::new("Invocation graph").show(ui, |ui| {
                    ui.label("Invokes:");
                    ids_ui(ui, &detail.calls, outbox);
                    ui.label("Invoked by:");
                    ids_ui(ui, &detail.called_by, outbox);
                });
            }
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

/// The kernel's public facts about the artifact, as a table.
fn facts_ui(ui: &mut egui::Ui, meta: &Value, outbox: &mut Outbox) {
    let Some(fields) = meta.as_object() else { return };
    egui::Grid::new("facts").num_columns(2).striped(true).show(ui, |ui| {
        for (key, value) in fields {
            if matches!(key.as_str(), "id" | "interface" | "pricing") {
                continue;
            }
            ui.label(key);
            match (key.as_str(), value) {
                ("owner" | "created_by" | "contract", Value::String(id)) => {
                    if ui.link(id).clicked() {
                        outbox.select(ArtifactId::trusted(id));
                    }
                }
                (_, Value::String(s)) => {
                    ui.label(s);
                }
                (_, Value::Object(map)) => {
                    ui.vertical(|ui| {
                        for (k, v) in map {
                            ui.label(format!("{k}: {}", compact(v)));
                        }
                    });
                }
                (_, other) => {
                    ui.label(compact(other));
                }
            }
            ui.end_row();
        }
    });
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// Scrip and LLM budget over time.
fn balances_ui(ui: &mut egui::Ui, detail: &Detail) {
    if detail.history.len() < 2 {
        return;
    }
    ui.strong("Balances over time");
    let scrip: Vec<[f64; 2]> = detail.history.iter().map(|(t, s, _)| [*t, *s as f64]).collect();
    let budget: Vec<[f64; 2]> = detail.history.iter().map(|(t, _, b)| [*t, *b as f64 / 1e6]).collect();
    Plot::new("balances").height(140.0).legend(Legend::default()).include_y(0.0).show(ui, |plot| {
        plot.line(Line::new("scrip", PlotPoints::from(scrip)));
        plot.line(Line::new("LLM budget ($)", PlotPoints::from(budget)));
    });
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
    let payload = serde_json::to_value(&event.kind).ok().and_then(|v| v.get("payload").cloned()).unwrap_or_default();
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
    let payload = serde_json::to_value(&event.kind).ok().and_then(|v| v.get("payload").cloned()).unwrap_or_default();
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
