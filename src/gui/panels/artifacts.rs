//! The artifacts panel: every artifact of the world in one sortable, filterable
//! table — owner, kind, price, how often and how well it is invoked, what it calls,
//! its size — from which a click opens one (or its owner) in the inspector.
//!
//! Like the principals panel, the table is virtualised and its sorted, filtered order
//! cached until a new table arrives or the sort or filter changes. The world's own
//! machinery (the mint, escrow, built-in contracts, …) is hidden unless asked for:
//! it is not what an experimenter usually looks for.

use std::cmp::Ordering;

use egui_extras::{Column, TableBuilder};

use super::{
    Outbox, bytes,
    principals::{Sort, contains_ignore_case, sort_header_ui},
};
use crate::{
    gui::{model::Model, session::ArtifactRow},
    kernel::query::ArtifactKind,
};

/// Widths the columns start at (the user can resize them).
const ID_WIDTH: f32 = 200.0;
const KIND_WIDTH: f32 = 80.0;
const NUMBER_WIDTH: f32 = 75.0;
const DEPENDENCIES_WIDTH: f32 = 220.0;

/// Dependencies named in a cell; the rest are counted.
const DEPENDENCIES_SHOWN: usize = 6;

/// Every kind, in the order the kind filter offers them.
const KINDS: [ArtifactKind; 6] = ArtifactKind::ALL;

/// What the artifacts can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Id,
    Owner,
    Kind,
    Price,
    Invocations,
    SuccessRate,
    Dependencies,
    Bytes,
    Deleted,
}

/// The columns, in order, with what each sorts by.
const COLUMNS: [(SortKey, &str); 9] = [
    (SortKey::Id, "id"),
    (SortKey::Owner, "owner"),
    (SortKey::Kind, "kind"),
    (SortKey::Price, "price"),
    (SortKey::Invocations, "invocations"),
    (SortKey::SuccessRate, "success"),
    (SortKey::Dependencies, "invokes"),
    (SortKey::Bytes, "size"),
    (SortKey::Deleted, "deleted"),
];

/// Everything that decides which rows show, and in what order.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    sort: Sort<SortKey>,
    filter: String,
    /// `None`: every kind.
    kind: Option<ArtifactKind>,
    show_system: bool,
}

impl Default for Query {
    /// The most used first: the tools, not the hundreds of notes nobody calls.
    fn default() -> Self {
        Self {
            sort: Sort { key: SortKey::Invocations, descending: true },
            filter: String::new(),
            kind: None,
            show_system: false,
        }
    }
}

#[derive(Default)]
pub struct ArtifactsPanel {
    query: Query,
    /// The table version and query `order` was computed for.
    computed_for: Option<(u64, Query)>,
    /// Indices into `model.artifacts`, filtered and sorted.
    order: Vec<usize>,
}

impl ArtifactsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        self.controls_ui(ui, model);
        self.refresh(model);
        ui.separator();
        super::clickable_table_ui(ui, "artifacts_hscroll", |ui| self.table_ui(ui, model, outbox));
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, model: &Model) {
        ui.horizontal(|ui| {
            ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.query.filter)
                    .hint_text("part of an id or owner")
                    .desired_width(180.0),
            );
            kind_filter_ui(ui, &mut self.query.kind);
            ui.checkbox(&mut self.query.show_system, "show the world's machinery");
            ui.separator();
            ui.label(format!("{} of {} artifacts", self.order.len(), model.artifacts.len()));
        });
    }

    /// Recomputes the order when the table, the sort or the filter has changed.
    fn refresh(&mut self, model: &Model) {
        let version = model.artifacts_version;
        if self.computed_for.as_ref().is_some_and(|(v, q)| *v == version && *q == self.query) {
            return;
        }
        let rows = &model.artifacts;
        let query = &self.query;
        self.order.clear();
        self.order.extend((0..rows.len()).filter(|&i| passes(&rows[i], query)));
        // Ties in id order, as people read ids, whichever way the column sorts.
        self.order.sort_by(|&a, &b| {
            query
                .sort
                .apply(compare(&rows[a], &rows[b], query.sort.key))
                .then_with(|| super::natural_cmp(rows[a].id.as_str(), rows[b].id.as_str()))
        });
        self.computed_for = Some((version, self.query.clone()));
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        let row_height = ui.spacing().interact_size.y;
        let sort = &mut self.query.sort;
        let order = &self.order;
        let selected = model.detail.as_ref().map(|d| &d.id);
        TableBuilder::new(ui)
            .id_salt("artifacts_table")
            .striped(true)
            .resizable(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .columns(Column::initial(ID_WIDTH).clip(true), 2)
            .column(Column::initial(KIND_WIDTH).clip(true))
            .columns(Column::initial(NUMBER_WIDTH).clip(true), 3)
            .column(Column::initial(DEPENDENCIES_WIDTH).clip(true))
            .column(Column::initial(NUMBER_WIDTH).clip(true))
            .column(Column::remainder().at_least(NUMBER_WIDTH).clip(true))
            .header(row_height + 4.0, |mut header| {
                for (key, label) in COLUMNS {
                    header.col(|ui| sort_header_ui(ui, sort, &key, label));
                }
            })
            .body(|body| {
                body.rows(row_height, order.len(), |mut row| {
                    let Some(artifact) = order.get(row.index()).and_then(|&i| model.artifacts.get(i)) else {
                        return;
                    };
                    row.set_selected(selected == Some(&artifact.id));
                    row_cells_ui(&mut row, artifact, outbox);
                    if row.response().clicked() {
                        outbox.select(artifact.id.clone());
                    }
                });
            });
    }
}

/// The kind filter: every kind, or one.
fn kind_filter_ui(ui: &mut egui::Ui, kind: &mut Option<ArtifactKind>) {
    let shown = kind.map_or("all kinds", kind_label);
    egui::ComboBox::new("artifacts_kind_filter", "Kind").selected_text(shown).show_ui(ui, |ui| {
        ui.selectable_value(kind, None, "all kinds");
        for option in KINDS {
            ui.selectable_value(kind, Some(option), kind_label(option));
        }
    });
}

/// One row's cells, in the order of [`COLUMNS`].
fn row_cells_ui(row: &mut egui_extras::TableRow<'_, '_>, artifact: &ArtifactRow, outbox: &mut Outbox) {
    row.col(|ui| {
        ui.label(egui::RichText::new(artifact.id.as_str()).strong());
    });
    row.col(|ui| {
        // A link of its own, so the click selects the owner rather than the row.
        if ui.link(artifact.owner.as_str()).on_hover_text("Inspect the owner").clicked() {
            outbox.select(artifact.owner.clone());
        }
    });
    row.col(|ui| {
        ui.label(kind_label(artifact.kind));
    });
    row.col(|ui| {
        ui.label(if artifact.price == 0 { "free".to_owned() } else { artifact.price.to_string() });
    });
    row.col(|ui| {
        ui.label(artifact.invocations.to_string());
    });
    row.col(|ui| {
        ui.label(artifact.success_rate.map_or_else(|| "—".to_owned(), |rate| format!("{:.0} %", rate * 100.0)));
    });
    row.col(|ui| dependencies_cell_ui(ui, artifact));
    row.col(|ui| {
        ui.label(bytes(artifact.bytes));
    });
    row.col(|ui| {
        if artifact.deleted {
            ui.colored_label(ui.visuals().warn_fg_color, "🗑 deleted");
        }
    });
}

/// What its code has invoked, the first few by name (all of them on hover).
fn dependencies_cell_ui(ui: &mut egui::Ui, artifact: &ArtifactRow) {
    let deps = &artifact.dependencies;
    if deps.is_empty() {
        ui.weak("—");
        return;
    }
    let mut text = deps.iter().take(DEPENDENCIES_SHOWN).map(|d| d.as_str()).collect::<Vec<_>>().join(", ");
    if deps.len() > DEPENDENCIES_SHOWN {
        text.push_str(&format!(" +{} more", deps.len() - DEPENDENCIES_SHOWN));
    }
    let all = deps.iter().map(|d| d.as_str()).collect::<Vec<_>>().join("\n");
    ui.add(egui::Label::new(text).truncate()).on_hover_text(all);
}

fn kind_label(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Data => "Data",
        ArtifactKind::Executable => "Executable",
        ArtifactKind::Contract => "Contract",
        ArtifactKind::Principal => "Principal",
        ArtifactKind::Agent => "Agent",
        ArtifactKind::Service => "Service",
    }
}

fn passes(row: &ArtifactRow, query: &Query) -> bool {
    let needle = query.filter.trim();
    (query.show_system || !row.system)
        && query.kind.is_none_or(|kind| row.kind == kind)
        && (contains_ignore_case(row.id.as_str(), needle) || contains_ignore_case(row.owner.as_str(), needle))
}

/// Ascending order by `key`; ties keep the table's order (the sort is stable).
fn compare(a: &ArtifactRow, b: &ArtifactRow, key: SortKey) -> Ordering {
    match key {
        SortKey::Id => super::natural_cmp(a.id.as_str(), b.id.as_str()),
        SortKey::Owner => super::natural_cmp(a.owner.as_str(), b.owner.as_str()),
        SortKey::Kind => kind_label(a.kind).cmp(kind_label(b.kind)),
        SortKey::Price => a.price.cmp(&b.price),
        SortKey::Invocations => a.invocations.cmp(&b.invocations),
        // Never invoked sorts below a 0 % success rate.
        SortKey::SuccessRate => a.success_rate.unwrap_or(-1.0).total_cmp(&b.success_rate.unwrap_or(-1.0)),
        SortKey::Dependencies => a.dependencies.len().cmp(&b.dependencies.len()),
        SortKey::Bytes => a.bytes.cmp(&b.bytes),
        SortKey::Deleted => a.deleted.cmp(&b.deleted),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gui::panels::principals::id;

    fn artifact(n: usize) -> ArtifactRow {
        ArtifactRow {
            id: id(&format!("tool_{n:05}")),
            owner: id(&format!("agent_{:03}", n % 100)),
            kind: KINDS[n % KINDS.len()],
            price: (n % 13) as u64,
            invocations: (n * 31 % 500) as u64,
            success_rate: (!n.is_multiple_of(4)).then(|| (n % 10) as f64 / 10.0),
            dependencies: (0..n % 9).map(|d| id(&format!("dep_{d}"))).collect(),
            bytes: n as u64 * 100,
            deleted: n.is_multiple_of(17),
            system: n.is_multiple_of(50),
        }
    }

    fn frame(ctx: &egui::Context, panel: &mut ArtifactsPanel, model: &Model) {
        let mut outbox = Outbox::default();
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1200.0, 800.0))),
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| panel.ui(ui, model, &mut outbox));
        // No painter takes the font atlas here.
        output.textures_delta.clear();
    }

    #[test]
    fn hides_machinery_and_filters_by_kind_and_owner() {
        let model = Model {
            artifacts: Arc::new((0..10_000).map(artifact).collect()),
            artifacts_version: 1,
            ..Model::default()
        };
        let mut panel = ArtifactsPanel::default();
        let ctx = egui::Context::default();
        frame(&ctx, &mut panel, &model);
        assert_eq!(panel.order.len(), 9_800);
        panel.query.kind = Some(ArtifactKind::Service);
        panel.query.filter = "AGENT_007".into();
        panel.query.sort = Sort { key: SortKey::Invocations, descending: false };
        let started = std::time::Instant::now();
        for _ in 0..20 {
            frame(&ctx, &mut panel, &model);
        }
        eprintln!("20 frames of 10k artifacts: {:?}", started.elapsed());
        let rows: Vec<&ArtifactRow> = panel.order.iter().map(|&i| &model.artifacts[i]).collect();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|r| r.kind == ArtifactKind::Service && r.owner.as_str() == "agent_007" && !r.system));
        assert!(rows.windows(2).all(|w| w[0].invocations <= w[1].invocations));
    }
}
