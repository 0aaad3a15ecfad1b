//! The principals panel: every principal of the world in one sortable, filterable
//! table — balances, disk, rate limits, whether it is frozen or thinking, what it
//! did last — from which a click opens one in the inspector.
//!
//! A world can hold ten thousand principals, so the table is virtualised (only the
//! rows on screen are laid out) and the sorted, filtered order is cached: it is
//! recomputed only when a new table arrives or the user changes the sort or filter.
//!
//! The small sorting and filtering helpers the artifacts panel shares ([`Sort`],
//! [`sort_header_ui`], [`contains_ignore_case`]) live here too.

use std::{cmp::Ordering, collections::BTreeSet, sync::Arc};

use egui_extras::{Column, TableBuilder};

use super::{Outbox, bytes, usd};
use crate::gui::{
    model::Model,
    session::{PrincipalRow, PrincipalState, RateUse, StateKind},
};

/// Widths the columns start at (the user can resize them).
const ID_WIDTH: f32 = 200.0;
const NUMBER_WIDTH: f32 = 80.0;
const BAR_WIDTH: f32 = 130.0;
const FLAG_WIDTH: f32 = 55.0;
const STATE_WIDTH: f32 = 220.0;
const LAST_ACTION_WIDTH: f32 = 150.0;

/// A sort order: the column, and which way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Sort<K> {
    pub key: K,
    pub descending: bool,
}

impl<K: PartialEq> Sort<K> {
    /// Clicking the sorted column flips the direction; another column sorts by it,
    /// ascending.
    fn click(&mut self, key: K) {
        if self.key == key {
            self.descending = !self.descending;
        } else {
            self.key = key;
            self.descending = false;
        }
    }

    /// `ordering`, turned around when descending.
    pub fn apply(&self, ordering: Ordering) -> Ordering {
        if self.descending { ordering.reverse() } else { ordering }
    }
}

/// A column header that sorts by `key` when clicked, with an arrow on the sorted one.
pub(super) fn sort_header_ui<K: PartialEq + Clone>(ui: &mut egui::Ui, sort: &mut Sort<K>, key: &K, label: &str) {
    let sorted = &sort.key == key;
    let arrow = match (sorted, sort.descending) {
        (false, _) => "",
        (true, false) => " ⏶",
        (true, true) => " ⏷",
    };
    if ui.selectable_label(sorted, format!("{label}{arrow}")).clicked() {
        sort.click(key.clone());
        // The order is recomputed next frame; make sure there is one.
        ui.ctx().request_repaint();
    }
}

/// Whether `text` contains `needle`, ignoring ASCII case (ids are ASCII), without
/// allocating: filtering runs over every row whenever the filter text changes.
pub(super) fn contains_ignore_case(text: &str, needle: &str) -> bool {
    needle.is_empty() || text.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What the principals can be sorted by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum SortKey {
    #[default]
    Id,
    Scrip,
    Budget,
    Disk,
    /// The share of this rate limit used in the current window.
    Rate(Arc<str>),
    State,
    LastAction,
    Owned,
    Model,
}

/// Everything that decides which rows show, and in what order.
#[derive(Debug, Clone, Default, PartialEq)]
struct Query {
    sort: Sort<SortKey>,
    filter: String,
    agents_only: bool,
    frozen_only: bool,
}

#[derive(Default)]
pub struct PrincipalsPanel {
    query: Query,
    /// The table version and query `order` was computed for.
    computed_for: Option<(u64, Query)>,
    /// Indices into `model.principals`, filtered and sorted.
    order: Vec<usize>,
    /// Every rate-limited resource of the table, one column each.
    rates: Vec<Arc<str>>,
}

impl PrincipalsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        self.controls_ui(ui, model);
        self.refresh(model);
        ui.separator();
        // Rate limits add a column each, so the table may be wider than the panel.
        super::clickable_table_ui(ui, "principals_hscroll", |ui| self.table_ui(ui, model, outbox));
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, model: &Model) {
        ui.horizontal(|ui| {
            ui.label("Filter");
            ui.add(egui::TextEdit::singleline(&mut self.query.filter).hint_text("part of an id").desired_width(180.0));
            ui.checkbox(&mut self.query.agents_only, "agents only");
            ui.checkbox(&mut self.query.frozen_only, "frozen only");
            ui.separator();
            ui.label(format!("{} of {} principals", self.order.len(), model.principals.len()));
        });
    }

    /// Recomputes the order when the table, the sort or the filter has changed.
    fn refresh(&mut self, model: &Model) {
        let version = model.principals_version;
        if self.computed_for.as_ref().is_some_and(|(v, q)| *v == version && *q == self.query) {
            return;
        }
        let rows = &model.principals;
        let query = &self.query;
        self.order.clear();
        self.order.extend((0..rows.len()).filter(|&i| passes(&rows[i], query)));
        self.order.sort_by(|&a, &b| query.sort.apply(compare(&rows[a], &rows[b], &query.sort.key)));
        self.rates = rate_resources(rows);
        self.computed_for = Some((version, self.query.clone()));
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        let row_height = ui.spacing().interact_size.y;
        let rates = &self.rates;
        let sort = &mut self.query.sort;
        let order = &self.order;
        let selected = model.detail.as_ref().map(|d| &d.id);
        TableBuilder::new(ui)
            .id_salt("principals_table")
            .striped(true)
            .resizable(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::initial(ID_WIDTH).clip(true))
            .columns(Column::initial(NUMBER_WIDTH).clip(true), 2)
            .column(Column::initial(BAR_WIDTH).clip(true))
            .columns(Column::initial(BAR_WIDTH).clip(true), rates.len())
            .column(Column::initial(STATE_WIDTH).clip(true))
            .column(Column::initial(LAST_ACTION_WIDTH).clip(true))
            .column(Column::initial(FLAG_WIDTH).clip(true))
            .column(Column::remainder().at_least(NUMBER_WIDTH).clip(true))
            .header(row_height + 4.0, |mut header| {
                for (key, label) in header_labels(rates) {
                    header.col(|ui| sort_header_ui(ui, sort, &key, &label));
                }
            })
            .body(|body| {
                body.rows(row_height, order.len(), |mut row| {
                    let Some(principal) = order.get(row.index()).and_then(|&i| model.principals.get(i)) else {
                        return;
                    };
                    row.set_selected(selected == Some(&principal.id));
                    row_cells_ui(&mut row, principal, rates, model.now_secs());
                    if row.response().clicked() {
                        outbox.select(principal.id.clone());
                    }
                });
            });
    }
}

/// The header of every column, in order, with what each sorts by.
fn header_labels(rates: &[Arc<str>]) -> Vec<(SortKey, String)> {
    let mut labels = vec![
        (SortKey::Id, "id".to_owned()),
        (SortKey::Scrip, "scrip".to_owned()),
        (SortKey::Budget, "LLM budget".to_owned()),
        (SortKey::Disk, "disk".to_owned()),
    ];
    labels.extend(rates.iter().map(|name| (SortKey::Rate(name.clone()), name.to_string())));
    labels.extend([
        (SortKey::State, "state".to_owned()),
        (SortKey::LastAction, "last action".to_owned()),
        (SortKey::Owned, "owns".to_owned()),
        (SortKey::Model, "model".to_owned()),
    ]);
    labels
}

/// One row's cells, in the order of [`header_labels`].
fn row_cells_ui(row: &mut egui_extras::TableRow<'_, '_>, principal: &PrincipalRow, rates: &[Arc<str>], now: f64) {
    row.col(|ui| id_cell_ui(ui, principal));
    row.col(|ui| {
        ui.label(principal.scrip.to_string());
    });
    row.col(|ui| {
        ui.label(usd(principal.llm_budget_micro_usd));
    });
    row.col(|ui| disk_cell_ui(ui, principal));
    for name in rates {
        row.col(|ui| rate_cell_ui(ui, rate_of(principal, name)));
    }
    row.col(|ui| state_cell_ui(ui, &principal.state));
    row.col(|ui| last_action_cell_ui(ui, principal, now));
    row.col(|ui| {
        ui.label(principal.owned.to_string());
    });
    row.col(|ui| {
        ui.label(principal.model.as_deref().unwrap_or("—"));
    });
}

/// The id, after a marker for agent or plain principal, and before frozen and
/// thinking markers.
fn id_cell_ui(ui: &mut egui::Ui, principal: &PrincipalRow) {
    let (marker, what) = if principal.agent { ("⚙", "an agent") } else { ("👤", "a principal without a loop") };
    ui.label(marker).on_hover_text(what);
    ui.label(egui::RichText::new(principal.id.as_str()).strong());
    if principal.frozen() {
        ui.label("❄").on_hover_text("frozen: out of budget or quota");
    }
    if principal.thinking {
        ui.label("💭").on_hover_text("waiting for its LLM");
    }
}

/// The state, and why: frozen or paused in the error colour, the reason beside it
/// (whole on hover).
fn state_cell_ui(ui: &mut egui::Ui, state: &PrincipalState) {
    let label = state.kind.label();
    let text = match state.kind {
        StateKind::Frozen | StateKind::Paused => egui::RichText::new(label).color(ui.visuals().error_fg_color),
        StateKind::Thinking | StateKind::Sleeping => egui::RichText::new(label).color(ui.visuals().warn_fg_color),
        StateKind::Active | StateKind::Passive => egui::RichText::new(label),
    };
    let mut hover = state.reason.clone();
    if let Some(since) = state.since {
        hover.push_str(&format!(" (since t = {since:.0} s)"));
    }
    let response = ui.label(text);
    if !state.reason.is_empty() {
        ui.weak(&state.reason);
        response.on_hover_text(hover);
    }
}

fn disk_cell_ui(ui: &mut egui::Ui, principal: &PrincipalRow) {
    let text = format!("{} / {}", bytes(principal.disk_used), bytes(principal.disk_quota));
    usage_bar_ui(ui, principal.disk_used, principal.disk_quota, text);
}

fn rate_cell_ui(ui: &mut egui::Ui, rate: Option<&RateUse>) {
    match rate {
        Some(rate) => {
            let text = super::rate_text(&rate.resource, rate.used, rate.limit);
            let hover = format!("{}: {text} in the current window", rate.resource);
            usage_bar_ui(ui, rate.used, rate.limit, text).on_hover_text(hover);
        }
        None => {
            ui.weak("—");
        }
    }
}

/// A usage bar the height of a row.
fn usage_bar_ui(ui: &mut egui::Ui, used: u64, limit: u64, text: String) -> egui::Response {
    let height = ui.spacing().interact_size.y - 4.0;
    ui.add(super::usage_bar(ui, used, limit, text).desired_height(height))
}

fn last_action_cell_ui(ui: &mut egui::Ui, principal: &PrincipalRow, now: f64) {
    match principal.last_action {
        Some((at, kind)) => {
            ui.label(format!("{at:.0} s  {kind}")).on_hover_text(format!("{:.0} s ago", (now - at).max(0.0)));
        }
        None => {
            ui.weak("never");
        }
    }
}

fn rate_of<'a>(principal: &'a PrincipalRow, resource: &str) -> Option<&'a RateUse> {
    principal.rates.iter().find(|r| &*r.resource == resource)
}

/// Every rate-limited resource any principal has, in name order.
fn rate_resources(rows: &[PrincipalRow]) -> Vec<Arc<str>> {
    let names: BTreeSet<&Arc<str>> = rows.iter().flat_map(|row| row.rates.iter().map(|r| &r.resource)).collect();
    names.into_iter().cloned().collect()
}

fn passes(row: &PrincipalRow, query: &Query) -> bool {
    (!query.agents_only || row.agent)
        && (!query.frozen_only || row.frozen())
        && contains_ignore_case(row.id.as_str(), query.filter.trim())
}

/// Ascending order by `key`; ties keep the table's order (the sort is stable).
fn compare(a: &PrincipalRow, b: &PrincipalRow, key: &SortKey) -> Ordering {
    match key {
        SortKey::Id => super::natural_cmp(a.id.as_str(), b.id.as_str()),
        SortKey::Scrip => a.scrip.cmp(&b.scrip),
        SortKey::Budget => a.llm_budget_micro_usd.cmp(&b.llm_budget_micro_usd),
        SortKey::Disk => a.disk_used.cmp(&b.disk_used),
        SortKey::Rate(name) => rate_share(a, name).total_cmp(&rate_share(b, name)),
        SortKey::State => a.state.kind.cmp(&b.state.kind).then_with(|| a.state.reason.cmp(&b.state.reason)),
        SortKey::LastAction => last_at(a).total_cmp(&last_at(b)),
        SortKey::Owned => a.owned.cmp(&b.owned),
        SortKey::Model => a.model.cmp(&b.model),
    }
}

/// The share of a rate used; principals without that limit sort first.
fn rate_share(row: &PrincipalRow, resource: &str) -> f64 {
    rate_of(row, resource).map_or(-1.0, |r| super::share(r.used, r.limit))
}

/// When it last acted; those that never did sort first.
fn last_at(row: &PrincipalRow) -> f64 {
    row.last_action.map_or(f64::NEG_INFINITY, |(at, _)| at)
}

/// Used by the tests of this panel and the artifacts panel.
#[cfg(test)]
pub(super) fn id(text: &str) -> crate::world::ids::ArtifactId {
    crate::world::ids::ArtifactId::parse(text).expect("a valid test id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(n: usize) -> PrincipalRow {
        PrincipalRow {
            id: id(&format!("agent_{n:05}")),
            agent: !n.is_multiple_of(3),
            scrip: (n * 7919 % 1000) as u64,
            llm_budget_micro_usd: n as u64 * 10,
            disk_used: n as u64,
            disk_quota: 10_000,
            rates: vec![RateUse { resource: Arc::from("llm_calls"), used: (n % 10) as u64, limit: 10 }],
            thinking: n.is_multiple_of(7),
            state: PrincipalState {
                kind: if n.is_multiple_of(5) { StateKind::Frozen } else { StateKind::Active },
                reason: String::new(),
                since: None,
            },
            last_action: n.is_multiple_of(2).then_some((n as f64, "write")),
            owned: (n % 4) as u32,
            model: Some("test-model".into()),
        }
    }

    fn model(n: usize) -> Model {
        Model { principals: Arc::new((0..n).map(principal).collect()), principals_version: 1, ..Model::default() }
    }

    fn frame(ctx: &egui::Context, panel: &mut PrincipalsPanel, model: &Model) -> Outbox {
        frame_with(ctx, panel, model, Vec::new())
    }

    fn frame_with(ctx: &egui::Context, panel: &mut PrincipalsPanel, model: &Model, events: Vec<egui::Event>) -> Outbox {
        let mut outbox = Outbox::default();
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1200.0, 800.0))),
            events,
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| panel.ui(ui, model, &mut outbox));
        // No painter takes the font atlas here.
        output.textures_delta.clear();
        outbox
    }

    #[test]
    fn sorts_and_filters_once_per_change() {
        let model = model(10_000);
        let mut panel = PrincipalsPanel::default();
        let ctx = egui::Context::default();
        frame(&ctx, &mut panel, &model);
        assert_eq!(panel.order.len(), 10_000);
        assert_eq!(panel.rates.len(), 1);
        panel.query.sort = Sort { key: SortKey::Scrip, descending: true };
        panel.query.frozen_only = true;
        let started = std::time::Instant::now();
        for _ in 0..20 {
            frame(&ctx, &mut panel, &model);
        }
        eprintln!("20 frames of 10k principals: {:?}", started.elapsed());
        assert_eq!(panel.order.len(), 2_000);
        let scrip: Vec<u64> = panel.order.iter().map(|&i| model.principals[i].scrip).collect();
        assert!(scrip.windows(2).all(|w| w[0] >= w[1]));
        panel.query.filter = "AGENT_0000".into();
        frame(&ctx, &mut panel, &model);
        assert_eq!(panel.order.len(), 2, "agent_00000 and agent_00005");
    }

    #[test]
    fn clicking_a_row_selects_it() {
        let model = model(100);
        let mut panel = PrincipalsPanel::default();
        let ctx = egui::Context::default();
        frame(&ctx, &mut panel, &model);
        let pos = egui::pos2(300.0, 120.0);
        let button = |pressed| egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::default(),
        };
        frame_with(&ctx, &mut panel, &model, vec![egui::Event::PointerMoved(pos), button(true)]);
        let outbox = frame_with(&ctx, &mut panel, &model, vec![button(false)]);
        let Some(Some(selected)) = outbox.select else { panic!("no row selected") };
        assert!(selected.as_str().starts_with("agent_000"), "{selected}");
    }

    #[test]
    fn filter_ignores_case() {
        assert!(contains_ignore_case("Alice_bot", "BOT"));
        assert!(contains_ignore_case("x", ""));
        assert!(!contains_ignore_case("ab", "abc"));
    }
}
