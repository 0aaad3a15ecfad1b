//! The window: run controls on top, the panels in tabs, the inspector on the right,
//! and the status bar below.
//!
//! Each frame drains the session's updates into the [`Model`], draws, then sends
//! what the panels asked for. While the world runs, the window repaints at most
//! [`MAX_FPS`] times a second: drawing competes with the world for the CPU.

use std::{path::PathBuf, time::Duration};

use super::{
    model::Model,
    panels::{
        Outbox, artifacts::ArtifactsPanel, capabilities::CapabilitiesPanel, events::EventsPanel,
        inspector::InspectorPanel, mint::MintPanel, network::NetworkPanel, overview::OverviewPanel,
        principals::PrincipalsPanel,
    },
    session::{Command, Interest, Session, Speed},
};
use crate::world::ids::ArtifactId;

/// Repaints per second while the world runs.
pub const MAX_FPS: f64 = 30.0;

/// The panels of the central area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Principals,
    Artifacts,
    Network,
    Mint,
    Capabilities,
    Events,
}

impl Tab {
    pub const ALL: [Tab; 7] =
        [Tab::Overview, Tab::Principals, Tab::Artifacts, Tab::Network, Tab::Mint, Tab::Capabilities, Tab::Events];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Principals => "Principals",
            Tab::Artifacts => "Artifacts",
            Tab::Network => "Network",
            Tab::Mint => "Mint",
            Tab::Capabilities => "Capabilities",
            Tab::Events => "Events",
        }
    }
}

/// A file the user is choosing, and for what.
struct FileDialog {
    purpose: FilePurpose,
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilePurpose {
    Open,
    SaveCheckpoint,
    SaveWorld,
    SaveRun,
}

impl FilePurpose {
    fn title(self) -> &'static str {
        match self {
            FilePurpose::Open => "Open a scene or checkpoint",
            FilePurpose::SaveCheckpoint => "Save a checkpoint (the whole world now, to go on from exactly)",
            FilePurpose::SaveWorld => "Save the world now as a scene (a new start from here)",
            FilePurpose::SaveRun => "Save the run (the start scene and your interventions)",
        }
    }
}

/// Keyboard shortcuts, as the window lists them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Space", "play / pause"),
    ("→ or .", "one step"),
    ("Shift+→", "ten steps"),
    ("← or , / Shift+←", "back in time one step / ten"),
    ("+ / −", "faster / slower"),
    ("M", "as fast as possible, on / off"),
    ("1 … 7", "the tabs, in order"),
    ("Esc", "close the inspector"),
    ("F", "frame time, shown / hidden"),
];

pub struct EcologyApp {
    session: Session,
    pub model: Model,
    pub tab: Tab,
    selected: Option<ArtifactId>,
    interest: Interest,
    speed_steps_per_sec: f64,
    max_speed: bool,
    seed_text: String,
    dialog: Option<FileDialog>,
    overview: OverviewPanel,
    principals: PrincipalsPanel,
    artifacts: ArtifactsPanel,
    network: NetworkPanel,
    mint: MintPanel,
    capabilities: CapabilitiesPanel,
    events: EventsPanel,
    inspector: InspectorPanel,
    /// The CPU time of recent frames (smoothed), shown when `show_frame_time`.
    frame_secs: f64,
    show_frame_time: bool,
    fonts_installed: bool,
    /// The step the timeline's slider is at, and the step last shown.
    travel_target: Option<u64>,
    shown_step: u64,
}

impl EcologyApp {
    pub fn new(session: Session) -> Self {
        Self {
            session,
            model: Model::default(),
            tab: Tab::Overview,
            selected: None,
            interest: Interest::default(),
            speed_steps_per_sec: 20.0,
            max_speed: false,
            seed_text: String::new(),
            dialog: None,
            overview: OverviewPanel::default(),
            principals: PrincipalsPanel::default(),
            artifacts: ArtifactsPanel::default(),
            network: NetworkPanel::default(),
            mint: MintPanel::default(),
            capabilities: CapabilitiesPanel::default(),
            events: EventsPanel::default(),
            inspector: InspectorPanel::default(),
            frame_secs: 0.0,
            show_frame_time: false,
            fonts_installed: false,
            travel_target: None,
            shown_step: 0,
        }
    }

    /// Sends a command to the world.
    pub fn send(&self, command: Command) {
        self.session.send(command);
    }

    /// Takes in every update that has arrived.
    pub fn absorb_updates(&mut self) {
        for update in self.session.updates() {
            self.take(update);
        }
    }

    fn take(&mut self, update: super::session::Update) {
        if self.model.status.as_ref().is_none_or(|s| s.lineage != update.status.lineage) {
            // Another run: what was selected may not exist in it. (A trip in time
            // keeps the run, and the selection.)
            self.selected = None;
            self.seed_text = update.status.seed.to_string();
        }
        self.model.apply(update);
    }

    /// Waits (up to `timeout`) until the model satisfies `done`, taking in updates:
    /// for tests, which must not race the world's thread.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&Model) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.absorb_updates();
            if done(&self.model) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(update) = self.session.next_update(left.min(Duration::from_millis(50))) {
                self.take(update);
            }
        }
    }

    pub fn selected(&self) -> Option<&ArtifactId> {
        self.selected.as_ref()
    }

    /// Shows `id` in the inspector (or closes it), as a click on it would.
    pub fn select(&mut self, id: Option<ArtifactId>) {
        if id != self.selected {
            self.selected = id.clone();
            self.session.send(Command::Select(id));
            self.session.send(Command::Refresh);
        }
    }

    /// The whole window, inside `ui`.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let started = std::time::Instant::now();
        if !self.fonts_installed {
            ui.ctx().set_fonts(fonts());
            self.fonts_installed = true;
            // Whatever the world publishes is drawn at once, even while paused.
            let ctx = ui.ctx().clone();
            self.session.on_update(move || ctx.request_repaint());
        }
        self.absorb_updates();
        let mut outbox = Outbox::default();
        self.shortcuts(ui, &mut outbox);

        egui::Panel::top("run_controls").show(ui, |ui| self.controls_ui(ui, &mut outbox));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("timeline").show(ui, |ui| self.timeline_ui(ui, &mut outbox));
        if self.selected.is_some() {
            egui::Panel::right("inspector").default_size(420.0).show(ui, |ui| {
                self.inspector.ui(ui, &self.model, self.selected.as_ref(), &mut outbox);
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                for tab in Tab::ALL {
                    ui.selectable_value(&mut self.tab, tab, tab.title());
                }
            });
            ui.separator();
            match self.tab {
                Tab::Overview => self.overview.ui(ui, &self.model, &mut outbox),
                Tab::Principals => self.principals.ui(ui, &self.model, &mut outbox),
                Tab::Artifacts => self.artifacts.ui(ui, &self.model, &mut outbox),
                Tab::Network => self.network.ui(ui, &self.model, &mut outbox),
                Tab::Mint => self.mint.ui(ui, &self.model, &mut outbox),
                Tab::Capabilities => self.capabilities.ui(ui, &self.model, &mut outbox),
                Tab::Events => self.events.ui(ui, &self.model, &mut outbox),
            }
        });
        self.dialog_ui(ui, &mut outbox);

        // Ask only for the tables the open panels draw.
        let interest = Interest {
            principals: matches!(self.tab, Tab::Principals | Tab::Overview | Tab::Network | Tab::Events),
            artifacts: matches!(self.tab, Tab::Artifacts | Tab::Network),
        };
        if interest != self.interest {
            self.interest = interest;
            outbox.send(Command::Want(interest));
            outbox.send(Command::Refresh);
        }
        if let Some(selection) = outbox.select.take() {
            self.select(selection);
        }
        for command in outbox.commands {
            self.session.send(command);
        }
        let playing = self.model.status.as_ref().is_some_and(|s| s.playing);
        // Playing, at most MAX_FPS. Paused, nothing changes but what the world
        // publishes (answers to commands: it wakes the window) and input (egui wakes
        // it): no repaint is asked for.
        if playing {
            ui.ctx().request_repaint_after(Duration::from_secs_f64(1.0 / MAX_FPS));
        }
        let took = started.elapsed().as_secs_f64();
        self.frame_secs = if self.frame_secs == 0.0 { took } else { 0.9 * self.frame_secs + 0.1 * took };
    }

    /// Whether the frame time is shown.
    pub fn shows_frame_time(&self) -> bool {
        self.show_frame_time
    }

    /// The keys of [`SHORTCUTS`], unless a text field has the keyboard.
    fn shortcuts(&mut self, ui: &egui::Ui, outbox: &mut Outbox) {
        if ui.ctx().egui_wants_keyboard_input() {
            return;
        }
        use egui::Key;
        // Each key with the modifiers held when it was pressed (a quick Shift+→ may
        // be over before the frame looks at the keyboard).
        let pressed: Vec<(Key, bool)> = ui.input(|input| {
            input
                .events
                .iter()
                .filter_map(|event| match event {
                    egui::Event::Key { key, pressed: true, repeat: false, modifiers, .. } => {
                        Some((*key, modifiers.shift))
                    }
                    _ => None,
                })
                .collect()
        });
        let playing = self.model.status.as_ref().is_some_and(|s| s.playing);
        for (key, shift) in pressed {
            match key {
                Key::Space => outbox.send(if playing { Command::Pause } else { Command::Play }),
                Key::ArrowRight if shift => outbox.send(Command::Step(10)),
                Key::ArrowRight | Key::Period => outbox.send(Command::Step(1)),
                Key::ArrowLeft | Key::Comma => {
                    // Back in time by one (or ten), from where the timeline is: keys
                    // pressed faster than the world answers add up.
                    let shown = self.model.status.as_ref().map_or(0, |s| s.steps);
                    let target = self.travel_target.unwrap_or(shown).saturating_sub(if shift { 10 } else { 1 });
                    self.travel_target = Some(target);
                    outbox.send(Command::TravelTo(target));
                }
                Key::Plus | Key::Equals => self.change_speed(2.0, outbox),
                Key::Minus => self.change_speed(0.5, outbox),
                Key::M => {
                    self.max_speed = !self.max_speed;
                    self.send_speed(outbox);
                }
                Key::F => self.show_frame_time = !self.show_frame_time,
                Key::Escape => outbox.select = Some(None),
                _ => {
                    const DIGITS: [Key; 7] =
                        [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7];
                    if let Some(index) = DIGITS.iter().position(|&digit| digit == key) {
                        self.tab = Tab::ALL[index];
                    }
                }
            }
        }
    }

    fn change_speed(&mut self, factor: f64, outbox: &mut Outbox) {
        self.max_speed = false;
        self.speed_steps_per_sec = (self.speed_steps_per_sec * factor).clamp(1.0, 2000.0);
        self.send_speed(outbox);
    }

    fn send_speed(&self, outbox: &mut Outbox) {
        let speed = if self.max_speed { Speed::Max } else { Speed::StepsPerSec(self.speed_steps_per_sec) };
        outbox.send(Command::SetSpeed(speed));
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, outbox: &mut Outbox) {
        ui.horizontal_wrapped(|ui| {
            let playing = self.model.status.as_ref().is_some_and(|s| s.playing);
            if playing {
                if ui.button("⏸ Pause").clicked() {
                    outbox.send(Command::Pause);
                }
            } else if ui.button("▶ Play").clicked() {
                outbox.send(Command::Play);
            }
            if ui.button("⏭ Step").on_hover_text("Run one step, then pause").clicked() {
                outbox.send(Command::Step(1));
            }
            ui.separator();
            let label = ui.label("Speed");
            let slider = ui
                .add_enabled(
                    !self.max_speed,
                    egui::Slider::new(&mut self.speed_steps_per_sec, 1.0..=2000.0).logarithmic(true).suffix(" steps/s"),
                )
                .labelled_by(label.id);
            let max = ui.checkbox(&mut self.max_speed, "as fast as possible");
            if slider.changed() || max.changed() {
                self.send_speed(outbox);
            }
            ui.separator();
            let label = ui.label("Seed");
            ui.add(egui::TextEdit::singleline(&mut self.seed_text).desired_width(90.0)).labelled_by(label.id);
            if ui.button("Restart").on_hover_text("Start the scene again with this seed").clicked() {
                outbox.send(Command::Restart { seed: self.seed_text.trim().parse().ok() });
            }
            ui.separator();
            for (label, purpose) in [
                ("Open…", FilePurpose::Open),
                ("Save checkpoint…", FilePurpose::SaveCheckpoint),
                ("Save world…", FilePurpose::SaveWorld),
                ("Save run…", FilePurpose::SaveRun),
            ] {
                if ui.button(label).clicked() {
                    let path = match purpose {
                        FilePurpose::Open => "scenes/".to_owned(),
                        FilePurpose::SaveCheckpoint => "world.checkpoint".to_owned(),
                        FilePurpose::SaveWorld => "world.ron".to_owned(),
                        FilePurpose::SaveRun => "run.ron".to_owned(),
                    };
                    self.dialog = Some(FileDialog { purpose, path });
                }
            }
        });
        if let Some(status) = &self.model.status {
            ui.horizontal(|ui| {
                ui.label("⌨").on_hover_ui(|ui| {
                    egui::Grid::new("shortcuts").num_columns(2).show(ui, |ui| {
                        for (keys, what) in SHORTCUTS {
                            ui.strong(*keys);
                            ui.label(*what);
                            ui.end_row();
                        }
                    });
                });
                ui.strong(format!("t = {:.1} s", status.now_secs));
                ui.label(format!("step {}", status.steps));
                // Rates are of wall-clock time; a paused world does nothing, so it shows
                // zero at once (and looks the same whenever it is drawn).
                let (steps_per_sec, events_per_sec) =
                    if status.playing { (status.steps_per_sec, status.events_per_sec) } else { (0.0, 0.0) };
                ui.label(format!("{steps_per_sec:.0} steps/s"));
                ui.label(format!("{events_per_sec:.0} events/s"));
                if !status.playing {
                    ui.label("paused");
                }
                ui.separator();
                ui.label(format!("{} — seed {} — {} clock", status.scene, status.seed, status.clock.as_str()));
                if let Some(fatal) = &status.fatal {
                    ui.colored_label(ui.visuals().error_fg_color, format!("stopped: {fatal}"));
                }
            });
        }
    }

    /// The run's steps on a slider: drag back to see the world as it was (tables,
    /// network, inspector), forward to run to a step; marks are the exact
    /// checkpoints a trip back starts from.
    fn timeline_ui(&mut self, ui: &mut egui::Ui, outbox: &mut Outbox) {
        let Some(status) = &self.model.status else { return };
        let shown = status.steps;
        let now = status.present_step.unwrap_or(shown);
        let target = self.travel_target.get_or_insert(shown);
        ui.horizontal(|ui| {
            ui.label("Timeline");
            let end = now.max(1);
            let width = (ui.available_width() - 420.0).max(160.0);
            ui.spacing_mut().slider_width = width;
            let slider = ui.add(egui::Slider::new(target, 0..=end).text("step").clamping(egui::SliderClamping::Never));
            let slider = match &status.travel_blocked {
                Some(why) => slider.on_hover_text(format!("Only forward: {why}")),
                None => slider.on_hover_text(format!(
                    "Drag back to see the world as it was; exact checkpoints at steps {}",
                    marks_text(&status.marks)
                )),
            };
            let released = slider.drag_stopped() || (slider.changed() && !slider.dragged());
            if released && *target != shown {
                outbox.send(Command::TravelTo(*target));
            }
            if let Some(present) = status.present_step {
                ui.colored_label(ui.visuals().warn_fg_color, format!("the past: step {shown} of {present}"));
                if ui.button("Return to now").clicked() {
                    outbox.send(Command::ReturnToNow);
                    *target = present;
                }
            }
        });
        if !ui.ctx().egui_is_using_pointer() && self.model.status.as_ref().is_some_and(|s| s.steps != self.shown_step) {
            // The world moved (it plays, or a trip ended): the slider follows it.
            let steps = self.model.status.as_ref().map_or(0, |s| s.steps);
            self.shown_step = steps;
            self.travel_target = Some(steps);
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(notice) = self.model.notices.back() {
            // On a line of its own, wrapped: it may hold a command to copy.
            let color = if notice.error { ui.visuals().error_fg_color } else { ui.visuals().text_color() };
            let older: Vec<&str> = self.model.notices.iter().rev().skip(1).take(10).map(|n| n.text.as_str()).collect();
            let label = ui.add(egui::Label::new(egui::RichText::new(&notice.text).color(color)).wrap());
            if !older.is_empty() {
                label.on_hover_text(format!("Before:\n{}", older.join("\n")));
            }
        }
        ui.horizontal(|ui| {
            if let Some(status) = &self.model.status {
                ui.label(format!(
                    "{} principals · {} artifacts · {} events ({} refused, {} undone) · next mint at {:.0} s ({} bids) · LLM {} in flight, {} spent · {} interventions by hand",
                    status.principals,
                    status.artifacts,
                    status.events_total,
                    status.refused,
                    status.reverted,
                    status.mint_next_at_secs,
                    status.mint_open_bids,
                    status.llm_in_flight,
                    super::panels::usd(status.llm_cost_micro_usd),
                    status.interventions_by_hand,
                ));
            }
            if self.show_frame_time {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.monospace(format!("frame {:.2} ms", self.frame_secs * 1e3))
                        .on_hover_text("CPU time the window spends on a frame (F hides it)");
                });
            }
        });
    }

    fn dialog_ui(&mut self, ui: &mut egui::Ui, outbox: &mut Outbox) {
        let Some(dialog) = &mut self.dialog else { return };
        let mut open = true;
        let mut done = false;
        egui::Window::new(dialog.purpose.title()).collapsible(false).open(&mut open).show(ui.ctx(), |ui| {
            ui.horizontal(|ui| {
                let label = ui.label("File");
                let edit =
                    ui.add(egui::TextEdit::singleline(&mut dialog.path).desired_width(360.0)).labelled_by(label.id);
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                let label = if dialog.purpose == FilePurpose::Open { "Open" } else { "Save" };
                if ui.button(label).clicked() || enter {
                    let path = PathBuf::from(dialog.path.trim());
                    outbox.send(match dialog.purpose {
                        FilePurpose::Open => Command::Open(path),
                        FilePurpose::SaveCheckpoint => Command::SaveCheckpoint(path),
                        FilePurpose::SaveWorld => Command::SaveWorld(path),
                        FilePurpose::SaveRun => Command::SaveRun(path),
                    });
                    done = true;
                }
            });
            if dialog.purpose == FilePurpose::Open {
                // Scene files near the path typed so far, to pick with a click.
                let dir = std::path::Path::new(dialog.path.trim());
                let dir = if dir.is_dir() { dir } else { dir.parent().unwrap_or(std::path::Path::new(".")) };
                let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|entries| {
                        entries
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| p.extension().is_some_and(|x| x == "ron"))
                            .collect()
                    })
                    .unwrap_or_default();
                files.sort();
                egui::ScrollArea::vertical().max_height(240.0).show(ui, |ui| {
                    for file in files {
                        if ui.link(file.display().to_string()).clicked() {
                            dialog.path = file.display().to_string();
                        }
                    }
                });
            }
        });
        if done || !open {
            self.dialog = None;
        }
    }
}

/// Steps with marks, shortened when there are many.
fn marks_text(marks: &[u64]) -> String {
    let shown: Vec<String> = marks.iter().take(12).map(u64::to_string).collect();
    let more = marks.len().saturating_sub(shown.len());
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

/// egui's fonts, with its monospace font as the last resort of the proportional one:
/// agents write arrows, box drawing and mathematical signs that the proportional
/// font lacks, and a missing glyph shows as a box.
pub fn fonts() -> egui::FontDefinitions {
    let mut fonts = egui::FontDefinitions::default();
    let monospace = fonts.families.get(&egui::FontFamily::Monospace).and_then(|f| f.first()).cloned();
    if let (Some(monospace), Some(proportional)) = (monospace, fonts.families.get_mut(&egui::FontFamily::Proportional))
        && !proportional.contains(&monospace)
    {
        proportional.push(monospace);
    }
    fonts
}

impl eframe::App for EcologyApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }
}
