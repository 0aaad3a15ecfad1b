//! One panel per file, each a struct holding its own view state with a
//! `ui(&mut self, ui, model, outbox)` that draws it from the [`Model`] and asks for
//! changes through the [`Outbox`] — never by touching the world.

pub mod artifacts;
pub mod capabilities;
pub mod charts;
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

/// A bar of `used` out of `limit` with `text` on it, in the error colour once the
/// limit is reached.
pub fn usage_bar(ui: &egui::Ui, used: u64, limit: u64, text: String) -> egui::ProgressBar {
    let bar = egui::ProgressBar::new(share(used, limit) as f32).text(text);
    if limit > 0 && used >= limit { bar.fill(ui.visuals().error_fg_color) } else { bar }
}

/// `used / limit`, full when there is no room at all.
pub fn share(used: u64, limit: u64) -> f64 {
    if limit == 0 { if used > 0 { 1.0 } else { 0.0 } } else { used as f64 / limit as f64 }
}

/// Orders ids as people read them: runs of digits by their value, so `note_2`
/// comes before `note_10`; otherwise by character.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (digits(a), digits(b));
                let trim = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
                let (na, nb) = (&a[trim(&a[..da]).min(da)..da], &b[trim(&b[..db]).min(db)..db]);
                // Fewer significant digits is a smaller number; as many compare as text.
                let ordering = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)).then_with(|| da.cmp(&db));
                if ordering != Ordering::Equal {
                    return ordering;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

/// A use of a rate against its limit in the rate's own unit: CPU as time, tokens
/// and calls as counts.
pub fn rate_text(resource: &str, used: u64, limit: u64) -> String {
    match resource {
        "cpu" => format!("{} / {}", micros(used), micros(limit)),
        "llm_tokens" => format!("{} / {} tokens", charts::count(used as f64), charts::count(limit as f64)),
        _ => format!("{} / {}", charts::count(used as f64), charts::count(limit as f64)),
    }
}

/// Microseconds of CPU, in the unit that reads best.
pub fn micros(us: u64) -> String {
    match us {
        us if us >= 1_000_000 => format!("{:.1} s", us as f64 / 1e6),
        us if us >= 1_000 => format!("{:.1} ms", us as f64 / 1e3),
        us => format!("{us} µs"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_as_people_read_them() {
        let mut ids = vec!["debt_ken_10", "debt_ken_2", "alice", "debt_ken_1", "debt_ken_02", "agent_00010", "agent_9"];
        ids.sort_by(|a, b| super::natural_cmp(a, b));
        assert_eq!(
            ids,
            vec!["agent_9", "agent_00010", "alice", "debt_ken_1", "debt_ken_2", "debt_ken_02", "debt_ken_10"]
        );
    }

    #[test]
    fn rates_read_in_their_units() {
        assert_eq!(super::rate_text("cpu", 12, 5_000_000), "12 µs / 5.0 s");
        assert_eq!(super::rate_text("llm_calls", 3, 10), "3 / 10");
        assert_eq!(super::rate_text("llm_tokens", 1500, 100_000), "1\u{2009}500 / 100\u{2009}000 tokens");
    }
}
