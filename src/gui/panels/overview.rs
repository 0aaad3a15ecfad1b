//! The economy at a glance: its health indicators over simulated time, and how
//! scrip is spread across principals now.

use egui_plot::{Bar, BarChart, Plot};

use super::{
    Outbox,
    charts::{self, ChartSpec, Series},
};
use crate::gui::{model::Model, session::ChartPoint};

/// Bins of the scrip distribution.
const BINS: usize = 24;

#[derive(Default)]
pub struct OverviewPanel {}

impl OverviewPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, _outbox: &mut Outbox) {
        // Three rows of two charts, each with its legend line above it.
        let height = ((ui.available_height() - 3.0 * 60.0) / 3.0).max(110.0);
        let width = (ui.available_width() / 2.0 - 12.0).max(200.0);
        let link = Some(egui::Id::unique("overview_time"));
        let series = |name: &'static str, value: fn(&ChartPoint) -> f64| Series {
            name,
            points: model.chart.iter().map(|p| [p.time_secs, value(p)]).collect(),
        };
        let chart =
            |ui: &mut egui::Ui, id: &str, title: &str, format: fn(f64) -> String, y_range, lines: &[Series<'_>]| {
                ui.vertical(|ui| {
                    ui.strong(title);
                    charts::time_chart(ui, &ChartSpec { id, height, width, format, y_range, link }, lines);
                });
            };
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal(|ui| {
                chart(
                    ui,
                    "scrip",
                    "Scrip",
                    charts::count,
                    None,
                    &[series("supply", |p| p.scrip_supply as f64), series("minted (total)", |p| p.minted_total as f64)],
                );
                chart(
                    ui,
                    "gini",
                    "Inequality (Gini) and money velocity",
                    charts::decimal,
                    None,
                    &[series("Gini", |p| p.gini), series("velocity", |p| p.velocity)],
                );
            });
            ui.horizontal(|ui| {
                chart(
                    ui,
                    "frozen",
                    "Frozen share of agents",
                    charts::percent,
                    Some([0.0, 1.0]),
                    &[series("frozen", |p| p.frozen_share)],
                );
                chart(
                    ui,
                    "llm",
                    "LLM spend",
                    charts::dollars,
                    None,
                    &[series("spent", |p| p.llm_spend_micro_usd as f64 / 1e6)],
                );
            });
            ui.horizontal(|ui| {
                chart(
                    ui,
                    "artifacts",
                    "Artifacts and use",
                    charts::count,
                    None,
                    &[series("artifacts", |p| p.artifacts as f64), series("invocations", |p| p.invocations as f64)],
                );
                ui.vertical(|ui| {
                    ui.strong("Scrip across principals (now)");
                    // The line the time charts keep for their legends.
                    ui.label(format!("{} principals", model.principals.len()));
                    distribution_ui(ui, model, height, width);
                });
            });
        });
    }
}

/// A histogram of principals by scrip held.
fn distribution_ui(ui: &mut egui::Ui, model: &Model, height: f32, width: f32) {
    let scrip: Vec<u64> = model.principals.iter().map(|p| p.scrip).collect();
    let max = scrip.iter().copied().max().unwrap_or(0).max(1);
    let bin_width = (max as f64 / BINS as f64).max(1.0);
    let mut counts = [0u64; BINS];
    for s in &scrip {
        let bin = ((*s as f64 / bin_width) as usize).min(BINS - 1);
        counts[bin] += 1;
    }
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| Bar::new((i as f64 + 0.5) * bin_width, n as f64).width(bin_width * 0.9))
        .collect();
    Plot::new("distribution")
        .height(height)
        .width(width)
        .x_axis_label("scrip")
        .y_axis_label("principals")
        .show(ui, |plot| plot.bar_chart(BarChart::new("principals", bars)));
}
