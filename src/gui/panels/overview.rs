//! The economy at a glance: its health indicators over simulated time, and how
//! scrip is spread across principals now.

use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use super::Outbox;
use crate::gui::{model::Model, session::ChartPoint};

/// A named series of the charts, read from each point.
type Series<'a> = (&'a str, fn(&ChartPoint) -> f64);

/// Bins of the scrip distribution.
const BINS: usize = 24;

#[derive(Default)]
pub struct OverviewPanel {}

impl OverviewPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, _outbox: &mut Outbox) {
        if model.chart.is_empty() {
            ui.label("No samples yet: the health indicators are sampled every few steps once the world runs.");
        }
        let height = ((ui.available_height() - 80.0) / 3.0).max(120.0);
        let width = (ui.available_width() / 2.0 - 12.0).max(200.0);
        let link = egui::Id::unique("overview_time");
        let chart = |ui: &mut egui::Ui, id: &str, title: &str, series: &[Series<'_>]| {
            ui.vertical(|ui| {
                ui.strong(title);
                Plot::new(id)
                    .height(height)
                    .width(width)
                    .legend(Legend::default())
                    .link_axis(link, [true, false])
                    .x_axis_label("simulated s")
                    .include_y(0.0)
                    .show(ui, |plot| {
                        for (name, value) in series {
                            let points: Vec<[f64; 2]> = model.chart.iter().map(|p| [p.time_secs, value(p)]).collect();
                            plot.line(Line::new(*name, PlotPoints::from(points)));
                        }
                    });
            });
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal(|ui| {
                chart(
                    ui,
                    "scrip",
                    "Scrip",
                    &[("supply", |p| p.scrip_supply as f64), ("minted (total)", |p| p.minted_total as f64)],
                );
                chart(
                    ui,
                    "gini",
                    "Inequality and money velocity",
                    &[("Gini", |p| p.gini), ("velocity", |p| p.velocity)],
                );
            });
            ui.horizontal(|ui| {
                chart(ui, "frozen", "Frozen share of agents", &[("frozen share", |p| p.frozen_share)]);
                chart(ui, "llm", "LLM spend ($)", &[("spent", |p| p.llm_spend_micro_usd as f64 / 1e6)]);
            });
            ui.horizontal(|ui| {
                chart(
                    ui,
                    "artifacts",
                    "Artifacts and use",
                    &[("artifacts", |p| p.artifacts as f64), ("invocations", |p| p.invocations as f64)],
                );
                ui.vertical(|ui| {
                    ui.strong("Scrip across principals (now)");
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
