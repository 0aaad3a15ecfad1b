//! The network: who invoked what and who paid whom, over a recent window of
//! simulated time, as a force-directed graph of principals and artifacts.
//!
//! The panel owns three things. The *graph* aggregates the window's invocations
//! (actor → artifact) and transfers (actor → recipient) into one edge per
//! (from, to, kind) with a count and a volume, capped at the [`MAX_NODES`] busiest
//! nodes; it is rebuilt only when `events_version`, the world or the window change,
//! and at most every [`REBUILD_EVERY_SECS`] of wall time, since a playing world
//! changes the events every frame. The counts it is cut from (the [`Tally`]) are
//! kept between rebuilds: a rebuild counts the events that arrived and takes out
//! those that left the window, rather than recount the whole window. The *layout*
//! is a Fruchterman–Reingold simulation (all-pairs repulsion, springs along edges,
//! gravity to the centre) that runs a few iterations per frame while it is still
//! hot; positions survive rebuilds by node id, and a node seen for the first time
//! is placed deterministically (next to a placed neighbour, else on a circle, both
//! by a hash of its id). The *view* is a zoom and pan from layout space to the
//! screen.
//! Invariant: `positions` is index-aligned with `graph.nodes`, and every edge and
//! spring indexes a node of `graph.nodes`.

use std::{collections::VecDeque, hash::BuildHasher};

use bevy_platform::{
    collections::{HashMap, HashSet, HashTable, hash_table::Entry},
    hash::FixedHasher,
};
use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Shape, Stroke, Vec2, vec2};

use super::Outbox;
use crate::{
    gui::model::Model,
    kernel::{Event, EventKind, query::ArtifactKind},
    world::ids::ArtifactId,
};

/// Nodes drawn at most (the busiest in the window): all-pairs repulsion stays cheap.
const MAX_NODES: usize = 300;

/// Edges drawn at most (the busiest).
const MAX_EDGES: usize = 4_000;

/// Rebuilding the graph scans the whole window; a playing world would otherwise
/// ask for it on every frame.
const REBUILD_EVERY_SECS: f64 = 0.5;

/// Simulation iterations per frame while the layout is hot.
const ITERATIONS_PER_FRAME: usize = 3;

/// The rest length of an edge, in layout units (a pixel at zoom 1).
const EDGE_LEN: f32 = 60.0;

/// Pull to the centre per layout unit of distance: keeps unconnected nodes and
/// separate components from drifting apart.
const GRAVITY: f32 = 1.5;

/// The largest step a node may take right after a re-layout, in layout units.
const HOT: f32 = 80.0;

/// Below this the layout is considered settled and stops simulating.
const COLD: f32 = 0.3;

/// Cooling per iteration.
const COOLING: f32 = 0.97;

/// Nodes whose names are always drawn (the busiest), when labels are on.
const LABELLED: usize = 20;

/// What an edge stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum EdgeKind {
    Invoke,
    InvokeFailed,
    Scrip,
    Resource,
    Ownership,
}

impl EdgeKind {
    const ALL: [EdgeKind; 5] =
        [EdgeKind::Invoke, EdgeKind::InvokeFailed, EdgeKind::Scrip, EdgeKind::Resource, EdgeKind::Ownership];

    fn label(self) -> &'static str {
        match self {
            EdgeKind::Invoke => "invoked",
            EdgeKind::InvokeFailed => "invoke failed",
            EdgeKind::Scrip => "scrip",
            EdgeKind::Resource => "resource",
            EdgeKind::Ownership => "ownership",
        }
    }

    /// What the volume of such an edge counts.
    fn unit(self) -> &'static str {
        match self {
            EdgeKind::Invoke | EdgeKind::InvokeFailed => "calls",
            EdgeKind::Scrip => "scrip",
            EdgeKind::Resource => "units",
            EdgeKind::Ownership => "artifacts",
        }
    }

    fn color(self) -> Color32 {
        match self {
            EdgeKind::Invoke => Color32::from_rgb(110, 150, 240),
            EdgeKind::InvokeFailed => Color32::from_rgb(225, 80, 80),
            EdgeKind::Scrip => Color32::from_rgb(235, 190, 50),
            EdgeKind::Resource => Color32::from_rgb(70, 200, 190),
            EdgeKind::Ownership => Color32::from_rgb(205, 110, 225),
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The edge an event makes: (to, kind, volume), if it makes one. A call made
    /// inside a chain that failed still happened; what it moved was given back, so a
    /// reverted movement makes no edge (the window agrees with the ledger).
    fn of(event: &Event) -> Option<(&ArtifactId, EdgeKind, u64)> {
        match &event.kind {
            EventKind::InvokeSuccess { artifact, .. } => Some((artifact, EdgeKind::Invoke, 1)),
            EventKind::InvokeFailure { artifact, .. } => Some((artifact, EdgeKind::InvokeFailed, 1)),
            _ if event.reverted => None,
            EventKind::ScripTransfer { to, amount } => Some((to, EdgeKind::Scrip, *amount)),
            EventKind::ResourceTransfer { to, amount, .. } => Some((to, EdgeKind::Resource, *amount)),
            EventKind::OwnershipTransfer { to, .. } => Some((to, EdgeKind::Ownership, 1)),
            _ => None,
        }
    }
}

/// What a node is, from the principals and artifacts tables.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Agent,
    Principal,
    FrozenAgent,
    FrozenPrincipal,
    Artifact(ArtifactKind),
    /// Not in the tables (the kernel, something deleted, tables not yet received).
    Unknown,
}

impl Role {
    fn describe(self) -> String {
        match self {
            Role::Agent => "agent".into(),
            Role::Principal => "principal (no loop)".into(),
            Role::FrozenAgent => "frozen agent".into(),
            Role::FrozenPrincipal => "frozen principal".into(),
            Role::Artifact(kind) => format!("{kind:?} artifact").to_lowercase(),
            Role::Unknown => "not in the tables".into(),
        }
    }

    fn fill(self) -> Color32 {
        match self {
            Role::Agent => Color32::from_rgb(80, 150, 255),
            Role::Principal => Color32::from_rgb(180, 110, 250),
            Role::FrozenAgent | Role::FrozenPrincipal => Color32::from_rgb(135, 145, 155),
            Role::Artifact(ArtifactKind::Executable) => Color32::from_rgb(100, 195, 110),
            Role::Artifact(ArtifactKind::Contract) => Color32::from_rgb(240, 145, 60),
            Role::Artifact(ArtifactKind::Service) => Color32::from_rgb(60, 190, 210),
            Role::Artifact(ArtifactKind::Agent) => Color32::from_rgb(80, 150, 255),
            Role::Artifact(ArtifactKind::Principal) => Color32::from_rgb(180, 110, 250),
            Role::Artifact(ArtifactKind::Data) => Color32::from_rgb(170, 170, 170),
            Role::Unknown => Color32::from_rgb(110, 110, 110),
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    id: ArtifactId,
    /// Events in the window it took part in.
    activity: u64,
    /// Distinct neighbours among the drawn nodes.
    degree: u32,
    role: Role,
    scrip: Option<u64>,
    /// In layout units.
    radius: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    from: usize,
    to: usize,
    kind: EdgeKind,
    count: u64,
    volume: u64,
}

#[derive(Debug, Default)]
struct Graph {
    /// Busiest first.
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    /// One per connected unordered pair, with its weight (drives the layout only).
    springs: Vec<(usize, usize, f32)>,
    index: HashMap<ArtifactId, usize>,
    /// Nodes and edges in the window before the caps.
    total_nodes: usize,
    total_edges: usize,
    /// Simulated seconds the window spans.
    from_secs: f64,
    to_secs: f64,
}

/// What the graph was built from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BuildKey {
    generation: u64,
    events_version: u64,
    window_secs: f64,
}

/// What a drag moves.
#[derive(Debug, Clone)]
enum Drag {
    Node(ArtifactId),
    Pan,
}

pub struct NetworkPanel {
    window_secs: f64,
    show_labels: bool,
    kinds_shown: [bool; EdgeKind::ALL.len()],
    /// The window's counts, carried from one rebuild to the next.
    tally: Tally,
    graph: Graph,
    built: Option<BuildKey>,
    /// Wall-clock seconds (egui time) of the last rebuild.
    built_at_secs: f64,
    styled: Option<(u64, u64)>,
    positions: Vec<Vec2>,
    /// Where nodes were when last drawn, including ones no longer in the graph, so a
    /// node that drops out of the window and comes back keeps its place.
    remembered: HashMap<ArtifactId, Vec2>,
    /// Nodes the user dropped somewhere: the simulation leaves them there.
    pinned: HashSet<ArtifactId>,
    temperature: f32,
    zoom: f32,
    pan: Vec2,
    /// Fit the view every frame until the user zooms or pans.
    auto_fit: bool,
    drag: Option<Drag>,
    /// The node last clicked here: it and its edges are drawn highlighted.
    focus: Option<ArtifactId>,
    /// The selection last taken from the inspector, to follow selections made
    /// elsewhere (a table row, a link) without undoing a click here.
    followed: Option<ArtifactId>,
}

impl Default for NetworkPanel {
    fn default() -> Self {
        Self {
            window_secs: 300.0,
            show_labels: true,
            kinds_shown: [true; EdgeKind::ALL.len()],
            tally: Tally::default(),
            graph: Graph::default(),
            built: None,
            built_at_secs: f64::NEG_INFINITY,
            styled: None,
            positions: Vec::new(),
            remembered: HashMap::new(),
            pinned: HashSet::new(),
            temperature: HOT,
            zoom: 1.0,
            pan: Vec2::ZERO,
            auto_fit: true,
            drag: None,
            focus: None,
            followed: None,
        }
    }
}

/// Where something hovered is.
enum Hover {
    Node(usize),
    Edge(usize),
}

impl NetworkPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        // What is selected anywhere is highlighted here.
        let selected = model.detail.as_ref().map(|d| d.id.clone());
        if selected != self.followed {
            self.focus.clone_from(&selected);
            self.followed = selected;
        }
        let relayout = self.toolbar_ui(ui);
        self.legend_ui(ui);
        self.refresh(model, ui.input(|i| i.time));
        if relayout {
            self.relayout();
        }

        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Network graph"));
        let rect = response.rect;
        painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
        if self.graph.nodes.is_empty() {
            let text =
                if model.events.is_empty() { "No events yet." } else { "No invocations or transfers in the window." };
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                text,
                FontId::proportional(14.0),
                ui.visuals().weak_text_color(),
            );
            return;
        }

        if self.temperature > COLD {
            let fixed = self.fixed();
            for _ in 0..ITERATIONS_PER_FRAME {
                simulate(&mut self.positions, &self.graph.springs, &fixed, self.temperature);
                self.temperature *= COOLING;
            }
            ui.ctx().request_repaint();
        }
        if self.auto_fit {
            self.fit(rect);
        }

        let hover = self.input_ui(ui, &response, rect, outbox);
        self.graph_ui(ui, &painter, rect, hover.as_ref());
        match hover {
            Some(Hover::Node(i)) if self.drag.is_none() => {
                response.on_hover_ui_at_pointer(|ui| self.node_tooltip_ui(ui, i));
            }
            Some(Hover::Edge(e)) if self.drag.is_none() => {
                response.on_hover_ui_at_pointer(|ui| self.edge_tooltip_ui(ui, e));
            }
            _ => {}
        }
    }

    /// The window slider, the buttons and the counts. Returns whether a re-layout
    /// was asked for.
    fn toolbar_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut relayout = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("Window");
            ui.add(
                egui::Slider::new(&mut self.window_secs, 10.0..=7_200.0).logarithmic(true).suffix(" s").max_decimals(0),
            )
            .on_hover_text("Simulated seconds back from the newest event");
            ui.separator();
            if ui.button("Re-layout").on_hover_text("Forget positions and pins, and lay out afresh").clicked() {
                relayout = true;
            }
            if ui.button("Fit to view").on_hover_text("Zoom and pan to show every node (or double-click)").clicked() {
                self.auto_fit = true;
            }
            ui.checkbox(&mut self.show_labels, "Labels");
            ui.separator();
            let graph = &self.graph;
            let capped = if graph.total_nodes > graph.nodes.len() {
                format!(" (the busiest of {})", graph.total_nodes)
            } else {
                String::new()
            };
            ui.label(format!(
                "{} nodes{capped} · {} edges{} · t {:.0}–{:.0} s",
                graph.nodes.len(),
                graph.edges.len(),
                if graph.total_edges > graph.edges.len() {
                    format!(" (of {})", graph.total_edges)
                } else {
                    String::new()
                },
                graph.from_secs,
                graph.to_secs,
            ));
            if self.temperature > COLD {
                ui.weak("laying out…");
            }
        });
        relayout
    }

    /// Edge colours (each a toggle) and node shapes.
    fn legend_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.weak("Edges:");
            for kind in EdgeKind::ALL {
                let (rect, _) = ui.allocate_exact_size(vec2(18.0, 12.0), Sense::hover());
                ui.painter().line_segment([rect.left_center(), rect.right_center()], Stroke::new(3.0, kind.color()));
                ui.toggle_value(&mut self.kinds_shown[kind.index()], kind.label()).on_hover_text(format!(
                    "Show or hide these edges (width: {} in the window, log scale)",
                    kind.unit()
                ));
            }
            ui.separator();
            ui.weak("Nodes:");
            let samples = [
                (Role::Agent, "agent"),
                (Role::Principal, "principal"),
                (Role::FrozenAgent, "frozen"),
                (Role::Artifact(ArtifactKind::Executable), "executable"),
                (Role::Artifact(ArtifactKind::Data), "data"),
                (Role::Artifact(ArtifactKind::Contract), "contract"),
                (Role::Artifact(ArtifactKind::Service), "service"),
            ];
            for (role, label) in samples {
                let (rect, _) = ui.allocate_exact_size(vec2(14.0, 14.0), Sense::hover());
                let stroke = Stroke::new(1.0, ui.visuals().text_color());
                paint_node(ui.painter(), rect.center(), 5.5, role, stroke);
                ui.label(label);
            }
            ui.weak("· size: scrip (principals), neighbours (artifacts)");
        });
    }

    /// Rebuilds the graph and restyles its nodes when what they derive from changed.
    fn refresh(&mut self, model: &Model, wall_secs: f64) {
        let key = BuildKey {
            generation: model.status.as_ref().map_or(0, |s| s.generation),
            events_version: model.events_version,
            window_secs: self.window_secs,
        };
        let rebuild = match self.built {
            None => true,
            Some(old) if old == key => false,
            // A new world or a new window is worth a scan at once; new events can wait.
            Some(old) => {
                old.generation != key.generation
                    || old.window_secs != key.window_secs
                    || wall_secs - self.built_at_secs >= REBUILD_EVERY_SECS
            }
        };
        if rebuild {
            if self.built.is_some_and(|old| old.generation != key.generation) {
                self.forget();
            }
            self.tally.update(&model.events, self.window_secs);
            let graph = self.tally.graph();
            self.adopt(graph);
            self.built = Some(key);
            self.built_at_secs = wall_secs;
            self.styled = None;
        }
        let versions = (model.principals_version, model.artifacts_version);
        if self.styled != Some(versions) {
            style(&mut self.graph, model);
            self.styled = Some(versions);
        }
    }

    /// Forgets everything about the old world's layout.
    fn forget(&mut self) {
        self.tally = Tally::default();
        self.graph = Graph::default();
        self.positions.clear();
        self.remembered.clear();
        self.pinned.clear();
        self.focus = None;
        self.drag = None;
        self.temperature = HOT;
        self.auto_fit = true;
    }

    /// Takes a freshly built graph, keeping the positions of nodes already placed.
    fn adopt(&mut self, graph: Graph) {
        for (node, pos) in self.graph.nodes.iter().zip(&self.positions) {
            self.remembered.insert(node.id.clone(), *pos);
        }
        let was_empty = self.positions.is_empty();
        let mut placed: Vec<Option<Vec2>> = graph.nodes.iter().map(|n| self.remembered.get(&n.id).copied()).collect();
        let new_nodes = placed.iter().filter(|p| p.is_none()).count();
        place_new(&graph, &mut placed);
        self.positions = placed.into_iter().map(Option::unwrap_or_default).collect();
        if self.remembered.len() > 4 * MAX_NODES {
            self.remembered.retain(|id, _| graph.index.contains_key(id));
        }
        self.graph = graph;
        // New nodes need room made for them; changed weights only a nudge.
        self.temperature = if was_empty {
            HOT
        } else if new_nodes > 0 {
            self.temperature.max(HOT * 0.3)
        } else {
            self.temperature.max(COLD * 4.0)
        };
    }

    fn relayout(&mut self) {
        self.remembered.clear();
        self.pinned.clear();
        let mut placed = vec![None; self.graph.nodes.len()];
        place_new(&self.graph, &mut placed);
        self.positions = placed.into_iter().map(Option::unwrap_or_default).collect();
        self.temperature = HOT;
        self.auto_fit = true;
    }

    /// Which nodes the simulation must not move: pinned ones, and the one dragged.
    fn fixed(&self) -> Vec<bool> {
        let dragged = match &self.drag {
            Some(Drag::Node(id)) => Some(id),
            _ => None,
        };
        self.graph.nodes.iter().map(|n| self.pinned.contains(&n.id) || dragged == Some(&n.id)).collect()
    }

    /// Node radii on screen grow slower than the zoom, so a zoomed-out graph
    /// stays legible.
    fn screen_radius(&self, node: &Node) -> f32 {
        node.radius * self.zoom.sqrt()
    }

    fn to_screen(&self, rect: Rect, pos: Vec2) -> Pos2 {
        rect.center() + self.pan + pos * self.zoom
    }

    fn to_layout(&self, rect: Rect, screen: Pos2) -> Vec2 {
        (screen - rect.center() - self.pan) / self.zoom
    }

    fn fit(&mut self, rect: Rect) {
        let Some(bounds) = self
            .positions
            .iter()
            .zip(&self.graph.nodes)
            .map(|(p, n)| Rect::from_center_size(p.to_pos2(), Vec2::splat(2.0 * n.radius)))
            .reduce(|a, b| a.union(b))
        else {
            return;
        };
        let margin = 30.0;
        let size = bounds.size().max(Vec2::splat(1.0));
        let zoom = ((rect.width() - 2.0 * margin) / size.x).min((rect.height() - 2.0 * margin) / size.y);
        self.zoom = zoom.clamp(0.05, 4.0);
        self.pan = -bounds.center().to_vec2() * self.zoom;
    }

    /// The node under `pointer`, if any (the nearest, when they overlap).
    fn node_at(&self, rect: Rect, pointer: Pos2) -> Option<usize> {
        self.graph
            .nodes
            .iter()
            .zip(&self.positions)
            .enumerate()
            .filter_map(|(i, (node, pos))| {
                let distance = self.to_screen(rect, *pos).distance(pointer);
                (distance <= self.screen_radius(node) + 3.0).then_some((i, distance))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The drawn edge under `pointer`, if any.
    fn edge_at(&self, rect: Rect, pointer: Pos2) -> Option<usize> {
        self.graph
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| self.kinds_shown[e.kind.index()])
            .filter_map(|(i, edge)| {
                let (a, b) = self.edge_ends(rect, edge)?;
                let distance = distance_to_segment(pointer, a, b);
                (distance <= edge_width(edge, self.zoom) / 2.0 + 3.0).then_some((i, distance))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Where an edge starts and ends on screen: between its nodes' rims, shifted
    /// sideways by kind so parallel edges of different kinds (and the two
    /// directions of a pair) do not overlap.
    fn edge_ends(&self, rect: Rect, edge: &Edge) -> Option<(Pos2, Pos2)> {
        let a = self.to_screen(rect, *self.positions.get(edge.from)?);
        let b = self.to_screen(rect, *self.positions.get(edge.to)?);
        let along = b - a;
        let length = along.length();
        if length < 1.0 {
            return None;
        }
        let dir = along / length;
        let side = dir.rot90() * (1.5 + 2.0 * edge.kind.index() as f32) * self.zoom.sqrt().clamp(0.5, 2.0);
        let ra = self.screen_radius(&self.graph.nodes[edge.from]);
        let rb = self.screen_radius(&self.graph.nodes[edge.to]);
        if length <= ra + rb + 2.0 {
            return None;
        }
        Some((a + dir * ra + side, b - dir * (rb + 1.0) + side))
    }

    /// Zoom, pan, node drags and clicks. Returns what the pointer is over.
    fn input_ui(&mut self, ui: &egui::Ui, response: &egui::Response, rect: Rect, outbox: &mut Outbox) -> Option<Hover> {
        if response.hovered() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta().y, i.zoom_delta()));
            let factor = pinch * (scroll * 0.002).exp();
            if (factor - 1.0).abs() > 1e-4
                && let Some(pointer) = response.hover_pos()
            {
                // Keep the point under the pointer where it is.
                let anchor = self.to_layout(rect, pointer);
                self.zoom = (self.zoom * factor).clamp(0.02, 20.0);
                self.pan = pointer - rect.center() - anchor * self.zoom;
                self.auto_fit = false;
            }
        }

        if response.drag_started() {
            let origin = ui.input(|i| i.pointer.press_origin()).or(response.interact_pointer_pos());
            self.drag = match origin.and_then(|p| self.node_at(rect, p)) {
                Some(i) => Some(Drag::Node(self.graph.nodes[i].id.clone())),
                None => Some(Drag::Pan),
            };
            // A view that refits itself would slide away under the pointer.
            self.auto_fit = false;
        }
        if response.dragged() {
            let delta = response.drag_delta();
            match &self.drag {
                Some(Drag::Node(id)) => {
                    if let Some(&i) = self.graph.index.get(id) {
                        if let Some(pos) = self.positions.get_mut(i) {
                            *pos += delta / self.zoom;
                        }
                        // Its neighbours should follow.
                        self.temperature = self.temperature.max(COLD * 10.0);
                    }
                }
                Some(Drag::Pan) | None => {
                    self.pan += delta;
                    self.auto_fit = false;
                }
            }
        }
        if response.drag_stopped()
            && let Some(Drag::Node(id)) = self.drag.take()
        {
            self.pinned.insert(id);
        }
        if !response.dragged() {
            // A drag can end without a stop (the tab changed under it).
            self.drag = None;
        }
        if response.double_clicked() {
            self.auto_fit = true;
        }

        let pointer = response.hover_pos()?;
        let node = self.node_at(rect, pointer);
        if response.clicked() {
            match node {
                Some(i) => {
                    let id = self.graph.nodes[i].id.clone();
                    outbox.select(id.clone());
                    self.focus = Some(id);
                }
                None => {
                    // A click on empty canvas clears the selection.
                    if self.focus.take().is_some() {
                        outbox.select = Some(None);
                    }
                }
            }
        }
        match node {
            Some(i) => Some(Hover::Node(i)),
            None => self.edge_at(rect, pointer).map(Hover::Edge),
        }
    }

    fn graph_ui(&self, ui: &egui::Ui, painter: &egui::Painter, rect: Rect, hover: Option<&Hover>) {
        // Hovering (else the focus) highlights a node's edges and dims the rest.
        let highlighted = match hover {
            Some(Hover::Node(i)) => Some(*i),
            _ => self.focus.as_ref().and_then(|id| self.graph.index.get(id).copied()),
        };
        let hovered_edge = match hover {
            Some(Hover::Edge(e)) => Some(*e),
            _ => None,
        };
        for (e, edge) in self.graph.edges.iter().enumerate() {
            if !self.kinds_shown[edge.kind.index()] {
                continue;
            }
            let Some((a, b)) = self.edge_ends(rect, edge) else { continue };
            let lit = hovered_edge == Some(e) || highlighted.is_some_and(|n| edge.from == n || edge.to == n);
            let alpha = match (highlighted.is_some() || hovered_edge.is_some(), lit) {
                (false, _) => 170,
                (true, true) => 255,
                (true, false) => 40,
            };
            let color = edge.kind.color().gamma_multiply_u8(alpha);
            let width = edge_width(edge, self.zoom) * if hovered_edge == Some(e) { 1.6 } else { 1.0 };
            painter.line_segment([a, b], Stroke::new(width, color));
            let length = (b - a).length();
            if length > 14.0 {
                let dir = (b - a) / length;
                let head = (4.0 + width).min(length / 3.0);
                let base = b - dir * head;
                let side = dir.rot90() * head * 0.5;
                painter.add(Shape::convex_polygon(vec![b, base + side, base - side], color, Stroke::NONE));
            }
        }

        let text_color = ui.visuals().text_color();
        let neighbours: HashSet<usize> = match highlighted {
            Some(n) => self
                .graph
                .springs
                .iter()
                .filter_map(|&(a, b, _)| {
                    if a == n {
                        Some(b)
                    } else if b == n {
                        Some(a)
                    } else {
                        None
                    }
                })
                .collect(),
            None => HashSet::new(),
        };
        for (i, (node, pos)) in self.graph.nodes.iter().zip(&self.positions).enumerate() {
            let center = self.to_screen(rect, *pos);
            let radius = self.screen_radius(node);
            if !rect.expand(radius).contains(center) {
                continue;
            }
            let is_focus = self.focus.as_ref() == Some(&node.id);
            let stroke = if highlighted == Some(i) || is_focus {
                Stroke::new(2.5, text_color)
            } else if neighbours.contains(&i) {
                Stroke::new(1.5, text_color)
            } else {
                Stroke::new(1.0, ui.visuals().extreme_bg_color)
            };
            paint_node(painter, center, radius, node.role, stroke);
            if is_focus {
                // The selection's ring, in the colour egui marks selections with.
                painter.circle_stroke(center, radius + 4.0, ui.visuals().selection.stroke);
            }
            if self.pinned.contains(&node.id) {
                painter.circle_filled(center + vec2(radius, -radius) * 0.7, 2.0, text_color);
            }
        }

        let labelled = |i: usize| {
            highlighted == Some(i) || neighbours.contains(&i) || (self.show_labels && (i < LABELLED || self.zoom > 2.0))
        };
        let font = FontId::proportional(11.0);
        for (i, (node, pos)) in self.graph.nodes.iter().zip(&self.positions).enumerate() {
            if !labelled(i) {
                continue;
            }
            let center = self.to_screen(rect, *pos);
            if !rect.contains(center) {
                continue;
            }
            let anchor = center + vec2(0.0, self.screen_radius(node) + 2.0);
            painter.text(anchor, Align2::CENTER_TOP, node.id.as_str(), font.clone(), text_color);
        }
    }

    fn node_tooltip_ui(&self, ui: &mut egui::Ui, i: usize) {
        let Some(node) = self.graph.nodes.get(i) else { return };
        ui.strong(node.id.as_str());
        ui.label(node.role.describe());
        if let Some(scrip) = node.scrip {
            ui.label(format!("{scrip} scrip"));
        }
        ui.label(format!("{} invocations and transfers in the window · {} neighbours", node.activity, node.degree));
        let mut out: [u64; EdgeKind::ALL.len()] = Default::default();
        let mut incoming: [u64; EdgeKind::ALL.len()] = Default::default();
        for edge in &self.graph.edges {
            if edge.from == i {
                out[edge.kind.index()] += edge.volume;
            }
            if edge.to == i {
                incoming[edge.kind.index()] += edge.volume;
            }
        }
        for kind in EdgeKind::ALL {
            let (o, n) = (out[kind.index()], incoming[kind.index()]);
            if o + n > 0 {
                ui.colored_label(kind.color(), format!("{}: {o} out, {n} in ({})", kind.label(), kind.unit()));
            }
        }
        ui.weak(if self.pinned.contains(&node.id) {
            "click: inspect · drag: move (pinned until re-layout)"
        } else {
            "click: inspect · drag: move and pin"
        });
    }

    fn edge_tooltip_ui(&self, ui: &mut egui::Ui, e: usize) {
        let Some(edge) = self.graph.edges.get(e) else { return };
        let (Some(from), Some(to)) = (self.graph.nodes.get(edge.from), self.graph.nodes.get(edge.to)) else { return };
        ui.strong(format!("{} -> {}", from.id, to.id));
        ui.colored_label(edge.kind.color(), edge.kind.label());
        ui.label(format!("{} events · {} {}", edge.count, edge.volume, edge.kind.unit()));
    }
}

/// The window's events counted by node and by edge: what the graph is cut from.
///
/// Kept between rebuilds, so that a rebuild adds the events that arrived since the
/// last one and takes out those that left the window (or the ring), instead of
/// recounting the whole window: tens of thousands of events, each naming two ids to
/// hash. That relies on what the model guarantees of its events: appended in `seq`
/// and time order, dropped only from the front. Anything else (another window, a
/// ring that went back) is counted afresh, and so is a tally carrying more ids that
/// left the window than ids in it.
#[derive(Debug, Default)]
struct Tally {
    /// The window counted.
    window_secs: f64,
    /// The `seq` of the newest event looked at: `None` before a count.
    counted_to: Option<u64>,
    /// Every id met since the last fresh count, by dense index. Ids that left the
    /// window keep their index (with no activity) until the next fresh count.
    ids: Vec<ArtifactId>,
    /// The dense indices, hashed by their id: a lookup hashes the id once, and the
    /// table stays small (an index per id, the ids themselves only in `ids`).
    index: HashTable<usize>,
    /// Events in the window each id took part in.
    activity: Vec<u64>,
    /// Ids with activity: the nodes of the window.
    live: usize,
    /// (count, volume) by (from, to, kind), for the edges with a count only.
    edges: HashMap<(usize, usize, EdgeKind), (u64, u64)>,
    /// The events counted, oldest first: what to take out when they leave.
    counted: VecDeque<Counted>,
    /// Scratch for cutting a graph (the live ids in order; the new index of each
    /// id, `usize::MAX` if cut), kept so that a rebuild reuses them rather than
    /// allocate and free blocks this large each time, which can reach the system.
    order: Vec<usize>,
    kept: Vec<usize>,
    /// Simulated seconds the window spans.
    from_secs: f64,
    to_secs: f64,
}

/// An event that made an edge (or, from an id to itself, only activity).
#[derive(Debug, Clone, Copy)]
struct Counted {
    seq: u64,
    time_secs: f64,
    from: usize,
    to: usize,
    kind: EdgeKind,
    volume: u64,
}

impl Tally {
    /// Brings the counts to the events within `window_secs` of the newest one.
    fn update(&mut self, events: &VecDeque<Event>, window_secs: f64) {
        let (Some(oldest), Some(newest)) = (events.front(), events.back()) else {
            *self = Self::default();
            return;
        };
        let to_secs = newest.time.as_secs_f64();
        let cutoff_secs = to_secs - window_secs;
        // Events are in time order: the window is those from the first one at or
        // after the cutoff.
        let start = events.partition_point(|e| e.time.as_secs_f64() < cutoff_secs);

        // Ids that left the window keep their slots; once they outnumber the live
        // ones, a fresh count is cheaper than carrying them.
        let bloated = self.ids.len() - self.live > self.live.max(MAX_NODES);
        let carry_on =
            self.window_secs == window_secs && self.counted_to.is_some_and(|seq| seq <= newest.seq) && !bloated;
        if !carry_on {
            self.restart(window_secs, events.len() - start);
        }

        // Take out what left the window or the ring. What was counted is in time and
        // seq order too, so that is a prefix.
        while let Some(&c) = self.counted.front()
            && (c.time_secs < cutoff_secs || c.seq < oldest.seq)
        {
            self.counted.pop_front();
            self.take_out(c);
        }
        let first_new = match self.counted_to {
            Some(seq) => events.partition_point(|e| e.seq <= seq).max(start),
            None => start,
        };
        for event in events.range(first_new..) {
            self.count(event);
        }
        self.counted_to = Some(newest.seq);
        self.from_secs = events.get(start).map_or(to_secs, |e| e.time.as_secs_f64());
        self.to_secs = to_secs;
    }

    /// Forgets every count, making room for a window of `events` events at once
    /// rather than growing (and rehashing) the maps along the first count. That many
    /// is an upper bound on the edges and, in practice, on the ids: an event names
    /// two, but the same ones recur. The edges get twice the room: they come and go
    /// with every rebuild, and the tombstones of those that went would otherwise
    /// use up a fuller table and make it grow (rehashing every edge) some frames later.
    fn restart(&mut self, window_secs: f64, events: usize) {
        *self = Self {
            window_secs,
            counted_to: None,
            ids: Vec::with_capacity(events),
            index: HashTable::with_capacity(events),
            activity: Vec::with_capacity(events),
            live: 0,
            edges: HashMap::with_capacity(2 * events),
            counted: VecDeque::with_capacity(events),
            order: Vec::with_capacity(events),
            kept: Vec::with_capacity(events),
            from_secs: 0.0,
            to_secs: 0.0,
        };
    }

    /// The dense index of `id`, giving it one if it has none.
    fn intern(&mut self, id: &ArtifactId) -> usize {
        let ids = &self.ids;
        let entry = self.index.entry(FixedHasher.hash_one(id), |&i| ids[i] == *id, |&i| FixedHasher.hash_one(&ids[i]));
        match entry {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                let i = ids.len();
                entry.insert(i);
                self.ids.push(id.clone());
                self.activity.push(0);
                i
            }
        }
    }

    fn count(&mut self, event: &Event) {
        let Some((to, kind, volume)) = EdgeKind::of(event) else { return };
        let from = self.intern(&event.actor);
        let to = self.intern(to);
        let c = Counted { seq: event.seq, time_secs: event.time.as_secs_f64(), from, to, kind, volume };
        self.counted.push_back(c);
        self.add_activity(from);
        if from == to {
            return;
        }
        self.add_activity(to);
        let entry = self.edges.entry((from, to, kind)).or_default();
        entry.0 += 1;
        entry.1 += volume;
    }

    /// Undoes [`Self::count`] of an event.
    fn take_out(&mut self, c: Counted) {
        self.remove_activity(c.from);
        if c.from == c.to {
            return;
        }
        self.remove_activity(c.to);
        let key = (c.from, c.to, c.kind);
        if let Some(entry) = self.edges.get_mut(&key) {
            entry.0 -= 1;
            entry.1 -= c.volume;
            if entry.0 == 0 {
                self.edges.remove(&key);
            }
        }
    }

    fn add_activity(&mut self, i: usize) {
        if self.activity[i] == 0 {
            self.live += 1;
        }
        self.activity[i] += 1;
    }

    fn remove_activity(&mut self, i: usize) {
        self.activity[i] -= 1;
        if self.activity[i] == 0 {
            self.live -= 1;
        }
    }

    /// The graph of the busiest nodes and the edges between them.
    fn graph(&mut self) -> Graph {
        let Self { ids, activity, edges: counts, order, kept, .. } = self;
        // Keep the busiest nodes; ties by id, so the cut does not flicker between
        // frames, and the order is total (an unstable selection and sort give the one
        // result). Only the kept few need sorting: the rest are merely partitioned off.
        let busier = |&a: &usize, &b: &usize| activity[b].cmp(&activity[a]).then_with(|| ids[a].cmp(&ids[b]));
        order.clear();
        order.extend((0..ids.len()).filter(|&i| activity[i] > 0));
        if order.len() > MAX_NODES {
            order.select_nth_unstable_by(MAX_NODES - 1, busier);
            order.truncate(MAX_NODES);
        }
        order.sort_unstable_by(busier);
        kept.clear();
        kept.resize(ids.len(), usize::MAX);
        for (new, &old) in order.iter().enumerate() {
            kept[old] = new;
        }

        let mut edges: Vec<Edge> = counts
            .iter()
            .filter_map(|(&(a, b, kind), &(count, volume))| {
                let (from, to) = (kept[a], kept[b]);
                (from != usize::MAX && to != usize::MAX).then_some(Edge { from, to, kind, count, volume })
            })
            .collect();
        // Busiest first, then a fixed order: a hash map's order would change the layout
        // (and the drawing order) from one rebuild to the next. (from, to, kind) is
        // unique, so the unstable sort is deterministic.
        edges.sort_unstable_by(|x, y| {
            y.count.cmp(&x.count).then_with(|| (x.from, x.to, x.kind).cmp(&(y.from, y.to, y.kind)))
        });
        edges.truncate(MAX_EDGES);

        let mut pairs: HashMap<(usize, usize), u64> = HashMap::with_capacity(edges.len());
        for edge in &edges {
            *pairs.entry((edge.from.min(edge.to), edge.from.max(edge.to))).or_default() += edge.count;
        }
        let mut springs: Vec<(usize, usize, f32)> =
            pairs.into_iter().map(|((a, b), count)| (a, b, 1.0 + 0.25 * (count as f32).ln())).collect();
        springs.sort_unstable_by_key(|x| (x.0, x.1));
        let mut degree = vec![0u32; order.len()];
        for &(a, b, _) in &springs {
            degree[a] += 1;
            degree[b] += 1;
        }

        let nodes: Vec<Node> = order
            .iter()
            .zip(&degree)
            .map(|(&old, &degree)| Node {
                id: ids[old].clone(),
                activity: activity[old],
                degree,
                role: Role::Unknown,
                scrip: None,
                radius: 4.0,
            })
            .collect();
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        Graph {
            nodes,
            edges,
            springs,
            index,
            total_nodes: self.live,
            total_edges: counts.len(),
            from_secs: self.from_secs,
            to_secs: self.to_secs,
        }
    }
}

/// Gives each node its role, scrip and radius from the principals and artifacts
/// tables.
fn style(graph: &mut Graph, model: &Model) {
    // The tables hold every principal and artifact of the world (tens of thousands),
    // the graph a few hundred nodes: walk each table once and look its rows up in the
    // graph's index instead of indexing the tables. A later row of the same id
    // replaces an earlier one, and a principal's row wins over an artifact's.
    let mut principals = vec![None; graph.nodes.len()];
    let mut artifacts = vec![None; graph.nodes.len()];
    if !graph.nodes.is_empty() {
        for row in model.principals.iter() {
            if let Some(&i) = graph.index.get(&row.id) {
                principals[i] = Some(row);
            }
        }
        for row in model.artifacts.iter() {
            if let Some(&i) = graph.index.get(&row.id) {
                artifacts[i] = Some(row);
            }
        }
    }
    for ((node, principal), artifact) in graph.nodes.iter_mut().zip(principals).zip(artifacts) {
        (node.role, node.scrip) = if let Some(p) = principal {
            let role = match (p.agent, p.frozen()) {
                (true, false) => Role::Agent,
                (true, true) => Role::FrozenAgent,
                (false, false) => Role::Principal,
                (false, true) => Role::FrozenPrincipal,
            };
            (role, Some(p.scrip))
        } else if let Some(a) = artifact {
            let role = match a.kind {
                ArtifactKind::Agent => Role::Agent,
                ArtifactKind::Principal => Role::Principal,
                kind => Role::Artifact(kind),
            };
            (role, None)
        } else {
            (Role::Unknown, None)
        };
        node.radius = match node.scrip {
            Some(scrip) => (5.0 + 2.0 * (1.0 + scrip as f32).log10()).min(20.0),
            None => (3.5 + 1.4 * (1.0 + node.degree as f32).ln()).min(14.0),
        };
    }
}

/// Draws a node: agents round, principals square, artifacts diamonds; frozen ones
/// grey with an icy rim.
fn paint_node(painter: &egui::Painter, center: Pos2, radius: f32, role: Role, stroke: Stroke) {
    let fill = role.fill();
    match role {
        Role::Agent => {
            painter.circle(center, radius, fill, stroke);
        }
        Role::FrozenAgent => {
            painter.circle(center, radius, fill, Stroke::new(2.0, Color32::from_rgb(170, 225, 255)));
        }
        Role::Principal | Role::FrozenPrincipal => {
            let square = Rect::from_center_size(center, Vec2::splat(radius * 1.7));
            let stroke =
                if role == Role::FrozenPrincipal { Stroke::new(2.0, Color32::from_rgb(170, 225, 255)) } else { stroke };
            painter.rect(square, 2.0, fill, stroke, egui::StrokeKind::Inside);
        }
        Role::Artifact(_) | Role::Unknown => {
            let r = radius * 1.2;
            let points =
                vec![center + vec2(0.0, -r), center + vec2(r, 0.0), center + vec2(0.0, r), center + vec2(-r, 0.0)];
            painter.add(Shape::convex_polygon(points, fill, stroke));
        }
    }
}

/// Line width of an edge: grows with the log of its volume.
fn edge_width(edge: &Edge, zoom: f32) -> f32 {
    let width = (0.8 + 0.7 * (1.0 + edge.volume as f32).ln()).min(9.0);
    width * zoom.sqrt().clamp(0.4, 2.0)
}

fn distance_to_segment(p: Pos2, a: Pos2, b: Pos2) -> f32 {
    let ab = b - a;
    let t = ((p - a).dot(ab) / ab.length_sq().max(1e-6)).clamp(0.0, 1.0);
    p.distance(a + ab * t)
}

/// FNV-1a of the id: a placement that is the same on every run and platform.
fn id_hash(id: &ArtifactId) -> u64 {
    id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Two numbers in [0, 1) from the id's hash.
fn id_unit_pair(id: &ArtifactId) -> (f32, f32) {
    let h = id_hash(id);
    ((h & 0xffff) as f32 / 65_536.0, ((h >> 16) & 0xffff) as f32 / 65_536.0)
}

/// Places the nodes without a position: next to their busiest placed neighbour
/// if they have one, else on a circle sized for the graph, at an angle given by
/// their id.
fn place_new(graph: &Graph, placed: &mut [Option<Vec2>]) {
    let mut neighbours: Vec<Vec<(usize, f32)>> = vec![Vec::new(); graph.nodes.len()];
    for &(a, b, w) in &graph.springs {
        neighbours[a].push((b, w));
        neighbours[b].push((a, w));
    }
    let circle_radius = EDGE_LEN * (graph.nodes.len() as f32).sqrt().max(1.0) * 0.6;
    // Busiest first (the node order), so hubs land first and their leaves around them.
    for i in 0..graph.nodes.len() {
        if placed[i].is_some() {
            continue;
        }
        let (u, v) = id_unit_pair(&graph.nodes[i].id);
        let angle = u * std::f32::consts::TAU;
        let anchor = neighbours[i]
            .iter()
            .filter_map(|&(j, w)| placed[j].map(|p| (p, w)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p);
        placed[i] = Some(match anchor {
            Some(p) => p + Vec2::angled(angle) * EDGE_LEN * (0.6 + 0.4 * v),
            None => Vec2::angled(angle) * circle_radius * (0.5 + 0.5 * v),
        });
    }
}

/// One Fruchterman–Reingold iteration: every node moves along its net force, by
/// at most `temperature`, unless `fixed`.
fn simulate(positions: &mut [Vec2], springs: &[(usize, usize, f32)], fixed: &[bool], temperature: f32) {
    let n = positions.len();
    let k2 = EDGE_LEN * EDGE_LEN;
    let mut force = vec![Vec2::ZERO; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let mut delta = positions[i] - positions[j];
            let mut d2 = delta.length_sq();
            if d2 < 1e-4 {
                // Coincident nodes: part them along a direction fixed by their indices.
                delta = Vec2::angled((i * 31 + j * 17) as f32);
                d2 = 1.0;
            }
            // k²/d along the unit vector is k²·delta/d².
            let push = delta * (k2 / d2);
            force[i] += push;
            force[j] -= push;
        }
    }
    for &(a, b, weight) in springs {
        if a >= n || b >= n {
            continue;
        }
        let delta = positions[a] - positions[b];
        // d²/k along the unit vector is delta·d/k.
        let pull = delta * (delta.length() / EDGE_LEN) * weight;
        force[a] -= pull;
        force[b] += pull;
    }
    for i in 0..n {
        if fixed.get(i).copied().unwrap_or(false) {
            continue;
        }
        let total = force[i] - positions[i] * GRAVITY;
        let length = total.length();
        if length > 1e-6 && length.is_finite() {
            positions[i] += total * (length.min(temperature) / length);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::pos2;
    use egui_kittest::kittest::Queryable;

    use crate::world::time::SimTime;

    fn id(s: &str) -> ArtifactId {
        ArtifactId::parse(s).expect("valid id")
    }

    fn event(seq: u64, secs: f64, actor: &str, kind: EventKind) -> Event {
        Event { seq, time: SimTime::from_secs_f64(secs).expect("time"), actor: id(actor), kind, reverted: false }
    }

    fn scrip(to: &str, amount: u64) -> EventKind {
        EventKind::ScripTransfer { to: id(to), amount }
    }

    /// The graph of a fresh count.
    fn aggregate(events: &VecDeque<Event>, window_secs: f64) -> Graph {
        let mut tally = Tally::default();
        tally.update(events, window_secs);
        tally.graph()
    }

    #[test]
    fn aggregates_the_window_into_edges() {
        let events: VecDeque<Event> = [
            event(1, 0.0, "a", scrip("b", 1_000)),
            event(2, 500.0, "a", scrip("b", 5)),
            event(3, 600.0, "a", scrip("b", 7)),
            event(4, 700.0, "b", scrip("c", 1)),
        ]
        .into_iter()
        .collect();
        let graph = aggregate(&events, 300.0);
        assert_eq!(graph.nodes.len(), 3);
        let a = graph.index[&id("a")];
        let b = graph.index[&id("b")];
        let ab = graph.edges.iter().find(|e| e.from == a && e.to == b).expect("a → b");
        assert_eq!((ab.count, ab.volume, ab.kind), (2, 12, EdgeKind::Scrip));
        assert_eq!(graph.edges.len(), 2);
        assert_eq!(graph.from_secs, 500.0);
        // A payment that was undone moved nothing.
        let mut undone = event(5, 700.0, "c", scrip("d", 9));
        undone.reverted = true;
        let events: VecDeque<Event> = events.into_iter().chain([undone]).collect();
        let graph = aggregate(&events, 300.0);
        assert!(!graph.index.contains_key(&id("d")), "a reverted transfer is no edge");
    }

    /// What a graph shows, to compare two.
    fn shown(graph: &Graph) -> impl PartialEq + std::fmt::Debug + use<> {
        let nodes: Vec<_> = graph.nodes.iter().map(|n| (n.id.clone(), n.activity, n.degree)).collect();
        let edges = graph.edges.clone();
        let springs = graph.springs.clone();
        (nodes, edges, springs, graph.total_nodes, graph.total_edges, graph.from_secs, graph.to_secs)
    }

    #[test]
    fn counting_on_matches_counting_afresh() {
        // Hubs, self-transfers, every kind of edge, quiet spells (the window empties)
        // and a ring shorter than the widest window (events leave it before the window).
        let mut stream = 0x5EEDu64;
        let mut next = move |n: u64| {
            stream = stream.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (stream >> 33) % n
        };
        let mut all = Vec::new();
        let mut secs = 0.0;
        for seq in 0..6_000 {
            secs += if seq % 1_000 == 999 { 400.0 } else { 0.05 * next(4) as f64 };
            let actor = format!("p{}", next(30).min(next(30)));
            let other = format!("p{}", next(30));
            let tool = format!("t{}", next(50).min(next(50)));
            let kind = match next(6) {
                0 => scrip(&other, 1 + next(20)),
                1 => EventKind::ResourceTransfer { to: id(&other), resource: "cpu".into(), amount: next(5) },
                2 => EventKind::OwnershipTransfer { artifact: id(&tool), to: id(&other), disk_bytes: 0 },
                3 => EventKind::InvokeFailure {
                    artifact: id(&tool),
                    method: "run".into(),
                    depth: 0,
                    code: crate::kernel::ErrorCode::InsufficientFunds,
                    cpu_us: 1,
                    reverted: 0,
                },
                4 => EventKind::Query { results: 1 },
                _ => scrip(&actor, 3),
            };
            all.push(event(seq, secs, &actor, kind));
        }
        for window_secs in [10.0, 60.0, 1e6] {
            let mut tally = Tally::default();
            let mut ring = VecDeque::new();
            for batch in all.chunks(137) {
                ring.extend(batch.iter().cloned());
                let excess = ring.len().saturating_sub(2_000);
                ring.drain(..excess);
                tally.update(&ring, window_secs);
                assert_eq!(shown(&tally.graph()), shown(&aggregate(&ring, window_secs)), "window {window_secs}");
            }
            assert!(tally.live <= tally.ids.len() && tally.counted.len() <= ring.len());
        }
    }

    #[test]
    fn caps_the_nodes() {
        let events: VecDeque<Event> =
            (0..1_000).map(|i| event(i, i as f64 * 0.1, "hub", scrip(&format!("leaf{i}"), 1))).collect();
        let graph = aggregate(&events, 1e6);
        assert_eq!(graph.nodes.len(), MAX_NODES);
        assert_eq!(graph.total_nodes, 1_001);
        assert_eq!(graph.nodes[0].id, id("hub"));
        assert!(graph.edges.iter().all(|e| e.from < MAX_NODES && e.to < MAX_NODES));
    }

    #[test]
    fn the_layout_settles_within_bounds() {
        let events: VecDeque<Event> = (0..600)
            .map(|i| event(i, 1.0, &format!("p{}", i % 40), scrip(&format!("p{}", (i * 7 + 3) % 300), 10)))
            .collect();
        let graph = aggregate(&events, 1e6);
        let mut placed = vec![None; graph.nodes.len()];
        place_new(&graph, &mut placed);
        let mut positions: Vec<Vec2> = placed.into_iter().map(Option::unwrap_or_default).collect();
        let fixed = vec![false; positions.len()];
        let mut temperature = HOT;
        while temperature > COLD {
            simulate(&mut positions, &graph.springs, &fixed, temperature);
            temperature *= COOLING;
        }
        let extent = positions.iter().map(|p| p.length()).fold(0.0, f32::max);
        assert!(positions.iter().all(|p| p.x.is_finite() && p.y.is_finite()));
        assert!(extent > EDGE_LEN, "collapsed: {extent}");
        assert!(extent < EDGE_LEN * 40.0, "flew apart: {extent}");
    }

    #[test]
    fn draws_and_takes_pointer_input() {
        use std::sync::Arc;

        use crate::gui::session::PrincipalRow;

        let mut model = Model::default();
        model.events = (0..20_000)
            .map(|i| {
                let actor = format!("agent{}", i % 50);
                let kind = if i % 2 == 0 {
                    scrip(&format!("agent{}", (i * 7) % 50), i)
                } else {
                    EventKind::InvokeSuccess {
                        artifact: id(&format!("tool{}", (i * 13) % 800)),
                        method: "run".into(),
                        depth: 0,
                        price: 1,
                        paid_to: None,
                        paid_by: None,
                        cpu_us: 1,
                        memory_bytes: 1,
                    }
                };
                event(i, i as f64 * 0.01, &actor, kind)
            })
            .collect();
        model.events_version = 1;
        model.principals = Arc::new(
            (0..50)
                .map(|i| PrincipalRow {
                    id: id(&format!("agent{i}")),
                    agent: i % 10 != 0,
                    scrip: i * 1_000,
                    llm_budget_micro_usd: 0,
                    disk_used: 0,
                    disk_quota: 0,
                    rates: Vec::new(),
                    thinking: false,
                    state: crate::gui::session::PrincipalState {
                        kind: if i % 7 == 0 {
                            crate::gui::session::StateKind::Frozen
                        } else {
                            crate::gui::session::StateKind::Active
                        },
                        reason: String::new(),
                        since: None,
                    },
                    last_action: None,
                    owned: 0,
                    model: None,
                })
                .collect(),
        );
        model.principals_version = 1;
        let mut harness = egui_kittest::Harness::builder().with_size(vec2(1000.0, 700.0)).build_ui_state(
            |ui, state: &mut (NetworkPanel, Model, Outbox)| {
                state.0.ui(ui, &state.1, &mut state.2);
            },
            (NetworkPanel::default(), model, Outbox::default()),
        );
        harness.run_steps(10);
        {
            let panel = &harness.state().0;
            assert_eq!(panel.graph.nodes.len(), MAX_NODES);
            assert_eq!(panel.positions.len(), MAX_NODES);
            assert!(panel.graph.nodes.iter().any(|n| n.role == Role::FrozenAgent));
        }

        let centre = pos2(500.0, 450.0);
        harness.hover_at(centre);
        harness.step();
        harness.drag_at(centre);
        harness.step();
        harness.hover_at(centre + vec2(60.0, 40.0));
        harness.step();
        harness.drop_at(centre + vec2(60.0, 40.0));
        harness.step();
        harness.hover_at(centre);
        harness.event(egui::Event::Zoom(1.5));
        harness.step();
        harness.event(egui::Event::PointerButton {
            pos: centre,
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: egui::Modifiers::NONE,
        });
        harness.event(egui::Event::PointerButton {
            pos: centre,
            button: egui::PointerButton::Primary,
            pressed: false,
            modifiers: egui::Modifiers::NONE,
        });
        harness.run_steps(3);
        harness.run_steps(200);
        {
            let (panel, _, _) = harness.state();
            assert!(panel.positions.iter().all(|p| p.x.is_finite() && p.y.is_finite()));
            assert!(!panel.auto_fit, "panning or zooming stops the automatic fit");
        }

        // Drag the busiest node somewhere and click it: it is pinned and selected.
        let canvas = harness.get_by_label("Network graph").rect();
        let (panel, _, _) = harness.state();
        let hub = panel.graph.nodes[0].id.clone();
        let from = panel.to_screen(canvas, panel.positions[0]);
        let to = from + (canvas.center() - from) * 0.3;
        harness.hover_at(from);
        harness.step();
        harness.drag_at(from);
        harness.step();
        harness.hover_at(from + (canvas.center() - from) * 0.1);
        harness.step();
        harness.hover_at(to);
        harness.step();
        harness.drop_at(to);
        harness.step();
        let (panel, _, _) = harness.state();
        assert!(panel.pinned.contains(&hub));
        let moved_to = panel.to_screen(canvas, panel.positions[0]);
        assert!(moved_to.distance(to) < 2.0, "the node follows the pointer: {moved_to:?} vs {to:?}");
        harness.hover_at(moved_to);
        harness.step();
        for pressed in [true, false] {
            harness.event(egui::Event::PointerButton {
                pos: moved_to,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: egui::Modifiers::NONE,
            });
            harness.step();
        }
        let (panel, _, outbox) = harness.state();
        assert_eq!(outbox.select, Some(Some(hub.clone())));
        assert_eq!(panel.focus, Some(hub));
    }
}
