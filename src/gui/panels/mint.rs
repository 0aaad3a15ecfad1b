//! The mint: when the next sealed-bid auction resolves and how many bids wait for
//! it, what each past resolution paid and minted (a table, newest first), and the
//! scrip minted per resolution over simulated time.
//!
//! The table has one row per winner (or one "no winner" row per resolution that had
//! none), flattened from `model.resolutions` into a cached index list that is rebuilt
//! only when the resolutions change; rows are laid out only when in view
//! (`TableBuilder` body `rows`). Invariant: every `Row` in the cache indexes an
//! existing resolution (and winner) of the `model.resolutions` it was built from.

use egui::RichText;
use egui_extras::{Column, TableBuilder};

use super::{
    Outbox,
    charts::{self, ChartSpec, Series},
};
use crate::{
    economy::mint::{Resolution, Winner},
    gui::model::Model,
};

/// One line of the history table.
#[derive(Debug, Clone, Copy)]
struct Row {
    resolution: usize,
    /// `None`: the resolution had no winner.
    winner: Option<usize>,
    /// The first row of its resolution (the one that shows its time and bids).
    first: bool,
}

/// What the cache was built from: resolutions carry no version, but the ring only
/// appends and drops from the front, so its length and ends identify it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    generation: u64,
    len: usize,
    first_at: f64,
    last_at: f64,
}

#[derive(Default)]
pub struct MintPanel {
    key: Option<Key>,
    /// Newest resolution first.
    rows: Vec<Row>,
    /// (time, minted) per resolution, oldest first.
    minted_points: Vec<[f64; 2]>,
    /// (time, price paid) per resolution, oldest first.
    paid_points: Vec<[f64; 2]>,
}

impl MintPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        self.refresh(model);
        countdown_ui(ui, model);
        ui.separator();
        if model.resolutions.is_empty() {
            ui.label("No auction has resolved yet.");
            return;
        }
        ui.strong("Minted per resolution");
        self.chart_ui(ui);
        ui.separator();
        ui.strong(format!("History ({} resolutions, newest first)", model.resolutions.len()));
        self.table_ui(ui, model, outbox);
    }

    fn refresh(&mut self, model: &Model) {
        let key = Key {
            generation: model.status.as_ref().map_or(0, |s| s.generation),
            len: model.resolutions.len(),
            first_at: model.resolutions.front().map_or(f64::NAN, |r| r.at),
            last_at: model.resolutions.back().map_or(f64::NAN, |r| r.at),
        };
        // NaN never equals itself, so compare the empty case by length alone.
        let same = self.key.is_some_and(|old| {
            old.generation == key.generation
                && old.len == key.len
                && (key.len == 0 || (old.first_at == key.first_at && old.last_at == key.last_at))
        });
        if same {
            return;
        }
        self.key = Some(key);
        self.rows.clear();
        for (index, resolution) in model.resolutions.iter().enumerate().rev() {
            if resolution.winners.is_empty() {
                self.rows.push(Row { resolution: index, winner: None, first: true });
            }
            for winner in 0..resolution.winners.len() {
                self.rows.push(Row { resolution: index, winner: Some(winner), first: winner == 0 });
            }
        }
        self.minted_points = model.resolutions.iter().map(|r| [r.at, minted(r) as f64]).collect();
        self.paid_points =
            model.resolutions.iter().map(|r| [r.at, r.winners.iter().map(|w| w.price).sum::<u64>() as f64]).collect();
    }

    fn chart_ui(&self, ui: &mut egui::Ui) {
        let spec = ChartSpec {
            id: "mint_minted_plot",
            height: 150.0,
            width: ui.available_width(),
            format: charts::count,
            y_range: None,
            link: None,
        };
        charts::time_points_chart(
            ui,
            &spec,
            &[
                Series { name: "minted (scrip)", points: self.minted_points.clone() },
                Series { name: "paid by winners (scrip)", points: self.paid_points.clone() },
            ],
        );
    }

    fn table_ui(&self, ui: &mut egui::Ui, model: &Model, outbox: &mut Outbox) {
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
        TableBuilder::new(ui)
            .id_salt("mint_history_table")
            .striped(true)
            .resizable(true)
            .auto_shrink([false, false])
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::auto().at_least(70.0))
            .column(Column::auto().at_least(40.0))
            .column(Column::initial(240.0).at_least(120.0).clip(true))
            .columns(Column::auto().at_least(60.0), 5)
            .column(Column::remainder().at_least(80.0).clip(true))
            .header(row_height, |mut header| {
                for (title, hover) in [
                    ("time (s)", "Simulated time of the resolution"),
                    ("bids", "Sealed bids revealed"),
                    ("winner", "The bidder, and the artifact it bid on"),
                    ("bid", "What the winner offered"),
                    ("paid", "Price paid (0 when scoring failed: the bid came back)"),
                    ("score", "The artifact's score"),
                    ("minted", "Scrip created for the winner"),
                    ("UBI/head", "What every other principal received from the price"),
                    ("flags", "Duplicate content (score 0), or why scoring failed"),
                ] {
                    header.col(|ui| {
                        ui.strong(title).on_hover_text(hover);
                    });
                }
            })
            .body(|body| {
                body.rows(row_height, self.rows.len(), |mut table_row| {
                    let Some(row) = self.rows.get(table_row.index()).copied() else { return };
                    let Some(resolution) = model.resolutions.get(row.resolution) else { return };
                    let winner = row.winner.and_then(|w| resolution.winners.get(w));
                    table_row.col(|ui| {
                        if row.first {
                            ui.label(format!("{:.1}", resolution.at));
                        }
                    });
                    table_row.col(|ui| {
                        if row.first {
                            ui.label(resolution.bids.to_string());
                        }
                    });
                    match winner {
                        Some(winner) => winner_cells_ui(&mut table_row, winner, outbox),
                        None => {
                            table_row.col(|ui| {
                                ui.weak("no winner");
                            });
                            for _ in 0..6 {
                                table_row.col(|_| {});
                            }
                        }
                    }
                });
            });
    }
}

/// The columns of one winner, from its name to its flags.
fn winner_cells_ui(row: &mut egui_extras::TableRow<'_, '_>, winner: &Winner, outbox: &mut Outbox) {
    row.col(|ui| {
        if ui.link(winner.bidder.as_str()).on_hover_text("Show the bidder in the inspector").clicked() {
            outbox.select(winner.bidder.clone());
        }
        ui.weak("·");
        if ui.link(winner.artifact.as_str()).on_hover_text("Show the artifact in the inspector").clicked() {
            outbox.select(winner.artifact.clone());
        }
    });
    row.col(|ui| {
        ui.label(winner.bid.to_string());
    });
    row.col(|ui| {
        ui.label(winner.price.to_string());
    });
    row.col(|ui| {
        ui.label(winner.score.map_or_else(|| "—".to_owned(), |s| s.to_string()));
    });
    row.col(|ui| {
        ui.label(winner.minted.to_string());
    });
    row.col(|ui| {
        ui.label(winner.ubi_per_head.to_string());
    });
    row.col(|ui| {
        if winner.duplicate {
            ui.colored_label(ui.visuals().warn_fg_color, "duplicate")
                .on_hover_text("Same content as an artifact scored before: score 0");
        }
        if let Some(error) = &winner.scoring_error {
            ui.colored_label(ui.visuals().error_fg_color, RichText::new(format!("scoring failed: {error}")))
                .on_hover_text(error);
        }
    });
}

fn minted(resolution: &Resolution) -> u64 {
    resolution.winners.iter().map(|w| w.minted).sum()
}

/// Time to the next resolution, as a bar filling up over the mint's period.
fn countdown_ui(ui: &mut egui::Ui, model: &Model) {
    let Some(status) = &model.status else {
        ui.label("Waiting for the world…");
        return;
    };
    let left_secs = (status.mint_next_at_secs - status.now_secs).max(0.0);
    let period_secs = status.mint_period_secs;
    ui.horizontal(|ui| {
        ui.strong("Next resolution");
        let fraction = if period_secs > 0.0 { (1.0 - left_secs / period_secs).clamp(0.0, 1.0) as f32 } else { 0.0 };
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(260.0)
                .text(format!("in {left_secs:.1} s (at t = {:.1} s)", status.mint_next_at_secs)),
        )
        .on_hover_text(format!("The mint resolves every {period_secs:.0} simulated seconds"));
        ui.separator();
        ui.label(format!("{} sealed bids waiting", status.mint_open_bids));
        ui.separator();
        let total: u64 = model.resolutions.iter().map(minted).sum();
        ui.label(format!("{total} scrip minted in the {} resolutions held", model.resolutions.len()));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        bridge::config::ClockMode,
        gui::session::{Speed, Status},
        world::ids::ArtifactId,
    };

    fn status() -> Status {
        Status {
            generation: 1,
            scene: "test".into(),
            seed: 1,
            clock: ClockMode::Lockstep,
            playing: true,
            speed: Speed::Max,
            steps: 10,
            now_secs: 130.0,
            dt_secs: 1.0,
            mint_next_at_secs: 150.0,
            mint_open_bids: 3,
            mint_period_secs: 60.0,
            ..Status::default()
        }
    }

    fn winner(n: u64) -> Winner {
        Winner {
            bidder: ArtifactId::parse(&format!("agent{n}")).expect("id"),
            artifact: ArtifactId::parse(&format!("tool{n}")).expect("id"),
            bid: 10 * n,
            price: 5 * n,
            score: Some(n),
            duplicate: n.is_multiple_of(4),
            minted: 100 * n,
            ubi_per_head: n,
            scoring_error: n.is_multiple_of(5).then(|| "timeout".to_owned()),
        }
    }

    #[test]
    fn lists_winners_newest_first_and_draws() {
        let mut model = Model { status: Some(status()), ..Model::default() };
        for i in 0..2_000u64 {
            let winners = match i % 3 {
                0 => Vec::new(),
                1 => vec![winner(i)],
                _ => vec![winner(i), winner(i + 1)],
            };
            model.resolutions.push_back(Resolution { at: i as f64 * 60.0, bids: winners.len() as u64 + 1, winners });
        }
        let mut harness = egui_kittest::Harness::new_ui_state(
            |ui, state: &mut (MintPanel, Model)| {
                let mut outbox = Outbox::default();
                state.0.ui(ui, &state.1, &mut outbox);
            },
            (MintPanel::default(), model),
        );
        harness.run_steps(3);
        let panel = &harness.state().0;
        assert_eq!(panel.rows.len(), 2_000 / 3 * 4 + 1 + 1);
        assert_eq!(panel.rows.first().map(|r| (r.resolution, r.first)), Some((1_999, true)));
        assert_eq!(panel.minted_points.len(), 2_000);
    }
}
