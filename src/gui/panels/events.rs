//! The live event stream: every event the window holds, newest at the bottom,
//! filtered by type, by principal and by free text, and pausable.
//!
//! The model holds up to 100 000 events, so nothing here touches all of them per
//! frame. The filtered list is cached as sequence numbers (which stay valid while
//! the ring drops its oldest events, unlike indices) and recomputed only when
//! `events_version`, the world or a filter changes; when only new events arrived,
//! just those are scanned and appended. Text search runs over a cache of lowercased
//! [`event_line`]s built the first time a search is typed and extended
//! incrementally after. Only the rows in view are laid out
//! ([`egui::ScrollArea::show_rows`]). Invariant: `cache.seqs` is ascending, and
//! every seq in it passed the filter of `cache.filter`.

use std::collections::VecDeque;

use egui::{Align, Layout, RichText, TextStyle};

use super::{Outbox, inspector::event_line};
use crate::{
    gui::model::Model,
    kernel::{Event, EventKind},
    world::ids::ArtifactId,
};

/// What an event must satisfy to be listed.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    /// Indexed like [`EventKind::TYPES`]; `true`: shown.
    types: Vec<bool>,
    /// `None`: any principal. An invalid id matches nothing.
    principal: Option<Result<ArtifactId, ()>>,
    /// Lowercased; empty: no text search.
    search: String,
    /// Hides agents rewriting their own memory (most of a scripted run's events).
    hide_memory_writes: bool,
}

/// Types that say something went wrong: the "only failures" preset.
const FAILURES: &[&str] = &[
    "ACTION_FAILED",
    "INTENT_REFUSED",
    "INTERVENTION_FAILED",
    "INVOKE_FAILURE",
    "CONTRACT_FALLBACK",
    "AGENT_ERROR",
    "AGENT_PAUSED",
    "AGENT_FROZEN",
    "AGENT_THROTTLED",
    "THINKING_FAILED",
    "MCP_SERVER_FAILED",
    "MCP_CALL_FAILED",
    "DEBT_DEFAULTED",
    "CAPABILITY_DENIED",
    "CAPABILITY_EXHAUSTED",
    "TASK_REJECTED",
    "TASK_EXPIRED",
];

/// Types where scrip or resources change hands: the "only money" preset.
const MONEY: &[&str] = &[
    "SCRIP_TRANSFER",
    "RESOURCE_TRANSFER",
    "SCRIP_GRANTED",
    "RESOURCE_GRANTED",
    "INVOKE_SUCCESS",
    "MINT_BID",
    "MINT_BID_CANCELLED",
    "MINT_RESOLVED",
    "UBI_PAID",
    "ESCROW_LISTED",
    "ESCROW_SOLD",
    "ESCROW_CANCELLED",
    "DEBT_OFFERED",
    "DEBT_ACCEPTED",
    "DEBT_REPAID",
    "DEBT_COLLECTED",
    "DEBT_DEFAULTED",
    "DEBT_CANCELLED",
];

/// Whether `event` is an agent writing its own memory: its own content, or its
/// notebook.
fn is_memory_write(event: &Event) -> bool {
    match &event.kind {
        EventKind::ArtifactWritten { id, .. } | EventKind::ArtifactEdited { id, .. } => {
            let (written, actor) = (id.as_str(), event.actor.as_str());
            written == actor || written.strip_prefix(actor).is_some_and(|rest| rest == "_notebook")
        }
        _ => false,
    }
}

impl Filter {
    fn matches(&self, event: &Event, line: Option<&str>) -> bool {
        if !self.types.get(event.kind.event_type() as usize).copied().unwrap_or(true) {
            return false;
        }
        if self.hide_memory_writes && is_memory_write(event) {
            return false;
        }
        match &self.principal {
            Some(Ok(id)) if !(event.actor == *id || event.kind.mentions(id)) => return false,
            Some(Err(())) => return false,
            _ => {}
        }
        if self.search.is_empty() {
            return true;
        }
        match line {
            Some(line) => line.contains(&self.search),
            None => event_line(event).to_lowercase().contains(&self.search),
        }
    }

    fn needs_lines(&self) -> bool {
        !self.search.is_empty()
    }
}

/// The filtered list as of some version of the model's events.
#[derive(Default)]
struct FilterCache {
    filter: Option<Filter>,
    generation: u64,
    events_version: u64,
    /// The newest seq already scanned.
    scanned_to: Option<u64>,
    seqs: Vec<u64>,
}

/// Lowercased [`event_line`] of each event the model holds, kept aligned with
/// `model.events` by seq so a search does not format 100 000 events per keystroke.
#[derive(Default)]
struct LineCache {
    generation: u64,
    lines: VecDeque<(u64, String)>,
}

impl LineCache {
    /// Brings the cache in line with `events`; returns whether it is aligned
    /// index-for-index with them.
    fn sync(&mut self, generation: u64, events: &VecDeque<Event>) -> bool {
        if generation != self.generation {
            self.lines.clear();
            self.generation = generation;
        }
        let Some(first) = events.front().map(|e| e.seq) else {
            self.lines.clear();
            return true;
        };
        while self.lines.front().is_some_and(|(seq, _)| *seq < first) {
            self.lines.pop_front();
        }
        if self.lines.front().is_some_and(|(seq, _)| *seq != first) {
            // A gap or a new world with equal generation: cheaper to start over than
            // to reason about it.
            self.lines.clear();
        }
        let start = self.lines.back().map_or(0, |(last, _)| events.partition_point(|e| e.seq <= *last));
        self.lines.extend(events.range(start..).map(|e| (e.seq, event_line(e).to_lowercase())));
        self.lines.len() == events.len()
    }
}

/// The stream as it was when paused: its own copy, since the ring keeps moving.
struct Snapshot {
    /// Events held when the stream was paused (`None` before any event arrived).
    newest_seq: Option<u64>,
    total: usize,
    filter: Filter,
    events: Vec<Event>,
}

pub struct EventsPanel {
    types: Vec<bool>,
    hide_memory_writes: bool,
    principal: String,
    search: String,
    paused: bool,
    cache: FilterCache,
    lines: LineCache,
    snapshot: Option<Snapshot>,
}

impl Default for EventsPanel {
    fn default() -> Self {
        Self {
            types: vec![true; EventKind::TYPES.len()],
            hide_memory_writes: false,
            principal: String::new(),
            search: String::new(),
            paused: false,
            cache: FilterCache::default(),
            lines: LineCache::default(),
            snapshot: None,
        }
    }
}

impl EventsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        self.toolbar_ui(ui, model);
        let filter = self.filter();
        let generation = model.status.as_ref().map_or(0, |s| s.generation);
        if self.paused {
            let stale = self.snapshot.as_ref().is_none_or(|s| s.filter != filter);
            if stale {
                self.take_snapshot(model, generation, filter);
            }
        } else {
            self.snapshot = None;
            self.refresh(model, generation, filter);
        }

        let (shown, total) = match &self.snapshot {
            Some(snapshot) => (snapshot.events.len(), snapshot.total),
            None => (self.cache.seqs.len(), model.events.len()),
        };
        ui.horizontal(|ui| {
            ui.label(format!("{shown} of {total} events"));
            if model.events_skipped > 0 {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("· {} never reached the window (bursts larger than an update)", model.events_skipped),
                )
                .on_hover_text(
                    "The world produced them faster than the window took them in; the log on disk has them all.",
                );
            }
            if self.paused {
                ui.colored_label(ui.visuals().warn_fg_color, "· paused");
            }
        });
        ui.separator();
        self.rows_ui(ui, model, outbox);
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, model: &Model) {
        ui.horizontal_wrapped(|ui| {
            // Words, not ⏸/▶: the bundled fonts (no emoji fonts) have no such glyphs.
            let label = if self.paused { "Resume stream" } else { "Pause stream" };
            if ui.selectable_label(self.paused, label).on_hover_text("Freeze the list to read it").clicked() {
                self.paused = !self.paused;
            }
            ui.separator();
            self.types_ui(ui);
            self.presets_ui(ui);
            ui.separator();
            ui.label("Principal");
            let edit = egui::TextEdit::singleline(&mut self.principal).hint_text("any").desired_width(140.0);
            ui.add(edit).on_hover_text("Events it acted in or that name it (a recipient, a target, a winner …)");
            self.principal_suggestions_ui(ui, model);
            if !self.principal.trim().is_empty() && ArtifactId::parse(self.principal.trim()).is_err() {
                ui.colored_label(ui.visuals().error_fg_color, "not an id");
            }
            ui.separator();
            ui.label("Search");
            ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("text in the line").desired_width(180.0));
            if (!self.search.is_empty() || !self.principal.is_empty()) && ui.small_button("×").clicked() {
                self.search.clear();
                self.principal.clear();
            }
        });
    }

    /// The type multi-select: a menu of checkboxes that stays open while ticking.
    fn types_ui(&mut self, ui: &mut egui::Ui) {
        let shown = self.types.iter().filter(|s| **s).count();
        let title = if shown == self.types.len() {
            "Types: all".to_owned()
        } else {
            format!("Types: {shown} of {}", self.types.len())
        };
        let config =
            egui::containers::menu::MenuConfig::new().close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        egui::containers::menu::MenuButton::new(title).config(config).ui(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("All").clicked() {
                    self.types.iter_mut().for_each(|s| *s = true);
                }
                if ui.button("None").clicked() {
                    self.types.iter_mut().for_each(|s| *s = false);
                }
                if ui.button("No thinking/KPI").on_hover_text("Hide the chattiest types").clicked() {
                    for (shown, name) in self.types.iter_mut().zip(EventKind::TYPES) {
                        *shown = !matches!(*name, "THINKING" | "KPI_SAMPLE" | "NOOP");
                    }
                }
            });
            ui.separator();
            egui::ScrollArea::vertical().id_salt("events_types_menu").max_height(420.0).show(ui, |ui| {
                for (shown, name) in self.types.iter_mut().zip(EventKind::TYPES) {
                    ui.checkbox(shown, *name);
                }
            });
        });
    }

    /// One-click filters for the questions asked most.
    fn presets_ui(&mut self, ui: &mut egui::Ui) {
        ui.checkbox(&mut self.hide_memory_writes, "hide memory writes")
            .on_hover_text("Agents rewriting their own memory or notebook");
        let only = |types: &mut Vec<bool>, wanted: &[&str]| {
            for (shown, name) in types.iter_mut().zip(EventKind::TYPES) {
                *shown = wanted.contains(name);
            }
        };
        if ui.small_button("only failures").on_hover_text(FAILURES.join(", ")).clicked() {
            only(&mut self.types, FAILURES);
        }
        if ui.small_button("only money").on_hover_text(MONEY.join(", ")).clicked() {
            only(&mut self.types, MONEY);
        }
    }

    /// Principals whose id starts with what was typed, to pick with a click.
    fn principal_suggestions_ui(&mut self, ui: &mut egui::Ui, model: &Model) {
        let typed = self.principal.trim();
        if typed.is_empty() || model.principals.iter().any(|p| p.id.as_str() == typed) {
            return;
        }
        let matches: Vec<&str> =
            model.principals.iter().map(|p| p.id.as_str()).filter(|id| id.starts_with(typed)).take(6).collect();
        for id in matches {
            if ui.small_button(id).clicked() {
                self.principal = id.to_owned();
            }
        }
    }

    fn filter(&self) -> Filter {
        let principal = self.principal.trim();
        Filter {
            types: self.types.clone(),
            principal: (!principal.is_empty()).then(|| ArtifactId::parse(principal).map_err(|_| ())),
            search: self.search.trim().to_lowercase(),
            hide_memory_writes: self.hide_memory_writes,
        }
    }

    /// Brings the cached list up to date with the model, scanning as little as it can.
    fn refresh(&mut self, model: &Model, generation: u64, filter: Filter) {
        let lines_aligned = filter.needs_lines() && self.lines.sync(generation, &model.events);
        let cache = &mut self.cache;
        let same_filter = cache.filter.as_ref() == Some(&filter);
        if same_filter && cache.generation == generation && cache.events_version == model.events_version {
            return;
        }
        let front = model.events.front().map(|e| e.seq);
        // Only new events arrived: drop what the ring forgot, scan what is new.
        let incremental = same_filter
            && cache.generation == generation
            && match (cache.scanned_to, front) {
                (Some(scanned), Some(front)) => front <= scanned.saturating_add(1),
                _ => false,
            };
        let start = if incremental {
            let front = front.unwrap_or(0);
            let forgotten = cache.seqs.partition_point(|seq| *seq < front);
            cache.seqs.drain(..forgotten);
            let scanned = cache.scanned_to.unwrap_or(0);
            model.events.partition_point(|e| e.seq <= scanned)
        } else {
            cache.seqs.clear();
            0
        };
        let lines = &self.lines.lines;
        for (index, event) in model.events.iter().enumerate().skip(start) {
            let line = if lines_aligned { lines.get(index).map(|(_, l)| l.as_str()) } else { None };
            if filter.matches(event, line) {
                cache.seqs.push(event.seq);
            }
        }
        cache.scanned_to = model.events.back().map(|e| e.seq).or(cache.scanned_to.filter(|_| incremental));
        cache.filter = Some(filter);
        cache.generation = generation;
        cache.events_version = model.events_version;
    }

    /// Copies what the filter lets through, as of the moment the stream was paused
    /// (a later filter change re-filters up to that same moment).
    fn take_snapshot(&mut self, model: &Model, generation: u64, filter: Filter) {
        let newest_seq = match &self.snapshot {
            Some(old) => old.newest_seq,
            None => model.events.back().map(|e| e.seq),
        };
        let Some(newest) = newest_seq else {
            self.snapshot = Some(Snapshot { newest_seq, total: 0, filter, events: Vec::new() });
            return;
        };
        let end = model.events.partition_point(|e| e.seq <= newest);
        let lines_aligned = filter.needs_lines() && self.lines.sync(generation, &model.events);
        let lines = &self.lines.lines;
        let events = model
            .events
            .range(..end)
            .enumerate()
            .filter(|(index, event)| {
                let line = if lines_aligned { lines.get(*index).map(|(_, l)| l.as_str()) } else { None };
                filter.matches(event, line)
            })
            .map(|(_, event)| event.clone())
            .collect();
        self.snapshot = Some(Snapshot { newest_seq, total: end, filter, events });
    }

    fn rows_ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        let row_height = ui.text_style_height(&TextStyle::Monospace).max(ui.text_style_height(&TextStyle::Body)) + 2.0;
        let count = self.snapshot.as_ref().map_or(self.cache.seqs.len(), |s| s.events.len());
        if count == 0 {
            ui.label(if model.events.is_empty() { "No events yet." } else { "No event matches the filters." });
            return;
        }
        egui::ScrollArea::vertical().id_salt("events_stream").auto_shrink(false).stick_to_bottom(true).show_rows(
            ui,
            row_height,
            count,
            |ui, range| {
                let width = ui.available_width();
                for row in range {
                    let event = match &self.snapshot {
                        Some(snapshot) => snapshot.events.get(row),
                        None => self.cache.seqs.get(row).and_then(|seq| find(&model.events, *seq)),
                    };
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, row_height), egui::Sense::hover());
                    let Some(event) = event else { continue };
                    // A child that takes no space of its own: the row was allocated above,
                    // at exactly the height `show_rows` counts on.
                    let builder = egui::UiBuilder::new()
                        .id_salt(("event_row", event.seq))
                        .max_rect(rect)
                        .layout(Layout::left_to_right(Align::Center));
                    event_row_ui(&mut ui.new_child(builder), event, outbox);
                }
            },
        );
    }
}

/// The event with `seq` among `events` (ascending by seq).
fn find(events: &VecDeque<Event>, seq: u64) -> Option<&Event> {
    let index = events.partition_point(|e| e.seq < seq);
    events.get(index).filter(|e| e.seq == seq)
}

/// One event: its time, its actor as a link to the inspector, then the rest.
fn event_row_ui(ui: &mut egui::Ui, event: &Event, outbox: &mut Outbox) {
    ui.spacing_mut().item_spacing.x = 6.0;
    let line = event_line(event);
    let time = format!("{:>8.1}s", event.time.as_secs_f64());
    ui.label(RichText::new(&time).monospace().weak());
    if ui.link(RichText::new(event.actor.as_str()).monospace()).on_hover_text("Show in the inspector").clicked() {
        outbox.select(event.actor.clone());
    }
    // `event_line` starts with the time and the actor, drawn above.
    let prefix = format!("{time}  {}  ", event.actor);
    let rest = line.strip_prefix(&prefix).unwrap_or(&line);
    let type_name = event.kind.type_name();
    let failed = ["FAIL", "ERROR", "DEFAULT", "REFUSED"].iter().any(|word| type_name.contains(word));
    let color = if failed {
        ui.visuals().error_fg_color
    } else if type_name.contains("FROZEN") || type_name.contains("PAUSED") || type_name.contains("THROTTLED") {
        ui.visuals().warn_fg_color
    } else {
        ui.visuals().text_color()
    };
    let (kind, payload) = rest.split_at(rest.find("  ").unwrap_or(rest.len()));
    if event.reverted {
        // Done, then undone with the action or invoke it was part of.
        ui.label(RichText::new(kind).monospace().weak().strikethrough())
            .on_hover_text("Undone: the action or invoke this was part of failed, and what it did was rolled back");
        ui.label(RichText::new("undone").small().weak());
    } else {
        ui.label(RichText::new(kind).monospace().color(color));
    }
    ui.add(egui::Label::new(RichText::new(payload.trim_start()).monospace()).truncate());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::time::SimTime;

    fn id(s: &str) -> ArtifactId {
        ArtifactId::parse(s).expect("valid id")
    }

    fn event(seq: u64) -> Event {
        let actor = id(&format!("p{}", seq % 7));
        let kind = match seq % 3 {
            0 => EventKind::ScripTransfer { to: id(&format!("p{}", seq % 5)), amount: seq },
            1 => EventKind::Query { results: seq },
            _ => EventKind::Noop {},
        };
        Event { seq, time: SimTime::from_secs_f64(seq as f64 * 0.1).expect("time"), actor, kind, reverted: false }
    }

    fn push(model: &mut Model, seqs: std::ops::Range<u64>, keep: usize) {
        model.events.extend(seqs.map(event));
        let excess = model.events.len().saturating_sub(keep);
        model.events.drain(..excess);
        model.events_version += 1;
    }

    fn listed(panel: &mut EventsPanel, model: &Model) -> Vec<u64> {
        let filter = panel.filter();
        panel.refresh(model, 0, filter);
        panel.cache.seqs.clone()
    }

    #[test]
    fn appending_matches_filtering_afresh() {
        for (principal, search) in [("", ""), ("p3", ""), ("", "amount=6"), ("p2", "scrip")] {
            let mut model = Model::default();
            let mut panel = EventsPanel { principal: principal.into(), search: search.into(), ..Default::default() };
            push(&mut model, 1..500, 300);
            listed(&mut panel, &model);
            push(&mut model, 500..650, 300);
            let incremental = listed(&mut panel, &model);
            let mut fresh = EventsPanel { principal: principal.into(), search: search.into(), ..Default::default() };
            assert_eq!(incremental, listed(&mut fresh, &model), "principal {principal:?}, search {search:?}");
            assert!(!incremental.is_empty());
        }
    }

    #[test]
    fn the_type_filter_applies() {
        let mut model = Model::default();
        push(&mut model, 1..100, 1_000);
        let mut panel = EventsPanel::default();
        for (shown, name) in panel.types.iter_mut().zip(EventKind::TYPES) {
            *shown = *name == "QUERY";
        }
        let seqs = listed(&mut panel, &model);
        assert_eq!(seqs.len(), 33);
        assert!(seqs.iter().all(|s| s % 3 == 1));
    }

    #[test]
    fn presets_name_real_types_and_memory_writes_can_be_hidden() {
        for name in FAILURES.iter().chain(MONEY) {
            assert!(EventKind::TYPES.contains(name), "{name} is no event type");
        }
        let write = |seq: u64, actor: &str, written: &str| Event {
            seq,
            time: SimTime::from_secs_f64(1.0).expect("time"),
            actor: id(actor),
            kind: EventKind::ArtifactWritten {
                id: id(written),
                created: false,
                bytes: 10,
                disk_delta: 0,
                charged_to: id(actor),
            },
            reverted: false,
        };
        let mut model = Model::default();
        model.events.extend([write(1, "bob", "bob"), write(2, "bob", "bob_notebook"), write(3, "bob", "tool")]);
        model.events_version = 1;
        let mut panel = EventsPanel { hide_memory_writes: true, ..Default::default() };
        assert_eq!(listed(&mut panel, &model), vec![3]);
        panel.hide_memory_writes = false;
        assert_eq!(listed(&mut panel, &model), vec![1, 2, 3]);
    }

    #[test]
    fn draws_a_full_ring_quickly() {
        let mut model = Model::default();
        push(&mut model, 1..100_001, 100_000);
        let mut harness = egui_kittest::Harness::new_ui_state(
            |ui, state: &mut (EventsPanel, Model)| {
                let mut outbox = Outbox::default();
                state.0.ui(ui, &state.1, &mut outbox);
            },
            (EventsPanel::default(), model),
        );
        harness.run_steps(2);
        for seq in 100_001..100_031 {
            let (_, model) = harness.state_mut();
            push(model, seq..seq + 1, 100_000);
            harness.step();
        }
        assert_eq!(harness.state().0.cache.seqs.len(), 100_000);

        // The first search formats every line once; later keystrokes only scan them.
        harness.state_mut().0.search = "amount=99".into();
        harness.step();
        harness.state_mut().0.search = "amount=999".into();
        harness.step();
        let searched = harness.state().0.cache.seqs.clone();
        assert!(!searched.is_empty());
        assert!(searched.iter().all(|seq| seq % 3 == 0));

        // Paused, the list stays put while events keep coming.
        harness.state_mut().0.paused = true;
        harness.step();
        let (_, model) = harness.state_mut();
        push(model, 100_031..100_100, 100_000);
        harness.step();
        let snapshot = harness.state().0.snapshot.as_ref().map(|s| s.events.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(snapshot, Some(searched));
    }
}
