//! Capability requests: what agents asked for and why, with a person's decision.
//!
//! Pending requests come first, each with Approve (and an optional spending limit)
//! and Deny (with an optional note for the agent); decided ones follow, newest
//! first. A decision is sent as a `DecideCapability` intervention, so it is applied at
//! the world's next step like the inspector's acts, and saved with the run.

use std::collections::BTreeMap;

use super::Outbox;
use crate::{
    economy::capabilities::{CapabilityRequest, RequestStatus},
    gui::{model::Model, session::Command},
    scene::{InterventionAct, raw::SystemAct},
};

/// What the person has typed for a pending request.
#[derive(Default)]
struct Draft {
    limit: String,
    note: String,
}

#[derive(Default)]
pub struct CapabilitiesPanel {
    drafts: BTreeMap<u64, Draft>,
}

impl CapabilitiesPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        let requests = &model.capabilities;
        let pending: Vec<&CapabilityRequest> = requests.iter().filter(|r| r.is_pending()).collect();
        ui.heading(format!("Waiting for a decision ({})", pending.len()));
        if pending.is_empty() {
            ui.label("No capability request is waiting. Agents ask with kernel_capabilities.request.");
        }
        for request in &pending {
            let draft = self.drafts.entry(request.id).or_default();
            ui.group(|ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.strong(format!("#{} {}", request.id, request.principal));
                    ui.label(format!("asks for {} at {:.0} s", request.capability, request.at.as_secs_f64()));
                    if let Some(limit) = request.limit {
                        ui.label(format!("(limit {limit})"));
                    }
                });
                ui.label(format!("“{}”", request.reason));
                ui.horizontal(|ui| {
                    let label = ui.label("Limit");
                    ui.add(egui::TextEdit::singleline(&mut draft.limit).desired_width(70.0).hint_text("none"))
                        .labelled_by(label.id);
                    let limit = draft.limit.trim();
                    let parsed = if limit.is_empty() { Ok(None) } else { limit.parse::<u64>().map(Some) };
                    let note = (!draft.note.trim().is_empty()).then(|| draft.note.trim().to_owned());
                    if ui.add_enabled(parsed.is_ok(), egui::Button::new("Approve")).clicked()
                        && let Ok(limit) = parsed
                    {
                        outbox.send(decide(request.id, true, limit, note.clone()));
                    }
                    let label = ui.label("Note");
                    ui.add(egui::TextEdit::singleline(&mut draft.note).desired_width(160.0)).labelled_by(label.id);
                    if ui.button("Deny").clicked() {
                        outbox.send(decide(request.id, false, None, note));
                    }
                });
            });
        }
        self.drafts.retain(|id, _| pending.iter().any(|r| r.id == *id));
        ui.separator();
        ui.heading("Decided");
        egui::ScrollArea::vertical().id_salt("decided capabilities").show(ui, |ui| {
            egui::Grid::new("decided").num_columns(5).striped(true).show(ui, |ui| {
                for request in requests.iter().rev().filter(|r| !r.is_pending()) {
                    ui.label(format!("#{}", request.id));
                    ui.label(request.principal.as_str());
                    ui.label(&request.capability);
                    match &request.status {
                        RequestStatus::Granted { limit, by, at } => {
                            let limit = limit.map_or("no limit".to_owned(), |l| format!("limit {l}"));
                            ui.label(format!("granted by {by} at {:.0} s ({limit})", at.as_secs_f64()));
                        }
                        RequestStatus::Denied { by, note, at } => {
                            ui.label(format!("denied by {by} at {:.0} s {note}", at.as_secs_f64()));
                        }
                        RequestStatus::Pending => {
                            ui.label("");
                        }
                    }
                    ui.label(&request.reason);
                    ui.end_row();
                }
            });
        });
    }
}

fn decide(request: u64, approve: bool, limit: Option<u64>, note: Option<String>) -> Command {
    let act = SystemAct::DecideCapability { request, approve, limit, note };
    Command::Intervene(Box::new(InterventionAct::System(act)))
}
