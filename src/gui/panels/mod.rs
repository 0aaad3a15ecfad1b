//! One panel per file, each a struct holding its own view state with a
//! `ui(&mut self, ui, model, outbox)` that draws it from the [`Model`] and asks for
//! changes through the [`Outbox`] — never by touching the world.

pub mod artifacts;
pub mod capabilities;
pub mod events;
pub mod inspector;
pub mod mint;
pub mod network;
pub mod overview;
pub mod principals;

use super::session::Command;
use crate::world::ids::ArtifactId;

/// What a panel asks for during a frame; the app sends it after drawing.
#[derive(Debug, Default)]
pub struct Outbox {
    pub commands: Vec<Command>,
    /// `Some(new selection)` when a panel changed what the inspector shows.
    pub select: Option<Option<ArtifactId>>,
}

impl Outbox {
    pub fn send(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Shows `id` in the inspector.
    pub fn select(&mut self, id: ArtifactId) {
        self.select = Some(Some(id));
    }
}

/// A table whose rows are selected by clicking: in a horizontal scroll area (it may
/// be wider than the panel), with labels that do not take the row's clicks.
pub fn clickable_table_ui(ui: &mut egui::Ui, id_salt: &str, add_table: impl FnOnce(&mut egui::Ui)) {
    egui::ScrollArea::horizontal().id_salt(id_salt).show(ui, |ui| {
        ui.scope(|ui| {
            ui.style_mut().interaction.selectable_labels = false;
            add_table(ui);
        });
    });
}

/// Formats micro-dollars as dollars.
pub fn usd(micro: u64) -> String {
    format!("${:.4}", micro as f64 / 1e6)
}

/// Formats a byte count.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
