//! Charts of a batch directory, as PNG files drawn with `plotters`.
//!
//! For each indicator:
//! - `<kpi>_over_time[_by_<parameter>].png`: the indicator over simulated time, one
//!   line per value of a swept parameter (runs of other parameters and every seed
//!   pooled), the mean with a 95 % confidence band (Student's t) across those runs;
//!   with nothing swept, one line over the seeds;
//! - `<kpi>_final_vs_<parameter>.png`: the indicator at the end of each run against
//!   the parameter, every run a dot, and the mean with its 95 % interval per value.
//!
//! A parameter with more than eight distinct numeric values (a random or Latin
//! hypercube design) is cut into five bins of about equal size for the lines. Text is
//! drawn with a font compiled into the binary, so charts render the same on a
//! workstation and on a cluster node without fonts.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Once,
};

use plotters::prelude::*;
use serde_json::Value;

use super::{
    BatchError,
    output::{Manifest, RunState, run_dir, run_state},
};
use crate::economy::kpis::KpiSample;

/// The indicators drawn when none are named.
pub const DEFAULT_KPIS: &[&str] = &["gini", "velocity", "frozen_share", "scrip_supply", "capital_depth", "reuse"];

/// Lines get their own bins past this many distinct values.
const MAX_LINES: usize = 8;
const BINS: usize = 5;
const SIZE: (u32, u32) = (1000, 620);
const FONT: &str = "sans-serif";

/// One finished run: its parameters, its samples and its final indicators.
struct RunData {
    point: BTreeMap<String, Value>,
    /// (time in seconds, value by column), in order.
    series: Vec<(f64, BTreeMap<String, f64>)>,
    last: BTreeMap<String, f64>,
}

/// The indicator columns a sample has, by name (undefined ones left out).
fn sample_values(sample: &KpiSample) -> BTreeMap<String, f64> {
    KpiSample::CSV_HEADER.split(',').skip(2).filter_map(|name| sample.get(name).map(|v| (name.to_owned(), v))).collect()
}

fn read_runs(dir: &Path, manifest: &Manifest) -> Result<Vec<RunData>, BatchError> {
    let columns: Vec<&str> = KpiSample::CSV_HEADER.split(',').collect();
    let mut runs = Vec::new();
    for spec in &manifest.runs {
        let RunState::Done(result) = run_state(dir, &spec.run_id)? else { continue };
        let path = run_dir(dir, &spec.run_id).join("timeseries.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| BatchError::io(&path, e))?;
        let mut series = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.is_empty()) {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != columns.len() {
                return Err(BatchError::Output(format!(
                    "{}:{}: {} cells where the header has {}",
                    path.display(),
                    n + 1,
                    cells.len(),
                    columns.len()
                )));
            }
            let time = cells[1].parse::<f64>().unwrap_or(f64::NAN);
            let values = columns
                .iter()
                .zip(&cells)
                .skip(2)
                .filter_map(|(name, cell)| cell.parse::<f64>().ok().map(|v| ((*name).to_owned(), v)));
            series.push((time, values.collect()));
        }
        runs.push(RunData { point: spec.point.clone(), series, last: sample_values(&result.kpis) });
    }
    Ok(runs)
}

/// Two-sided 95 % critical values of Student's t for 1–30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Mean and half-width of the 95 % confidence interval (0 for a single value).
fn mean_ci(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some((mean, 0.0));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    Some((mean, t * (var / n as f64).sqrt()))
}

/// How runs are grouped into lines for one parameter: each run's group label.
fn groups(runs: &[RunData], parameter: &str) -> Vec<String> {
    let values: Vec<Option<&Value>> = runs.iter().map(|r| r.point.get(parameter)).collect();
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.and_then(Value::as_f64)).collect();
    let mut distinct: Vec<String> = values.iter().map(|v| label(*v)).collect();
    distinct.sort();
    distinct.dedup();
    match numbers {
        Some(numbers) if distinct.len() > MAX_LINES => {
            let mut sorted = numbers.clone();
            sorted.sort_by(f64::total_cmp);
            let edges: Vec<f64> = (1..BINS).map(|i| sorted[i * sorted.len() / BINS]).collect();
            let bin_of = |x: f64| edges.iter().filter(|e| x >= **e).count();
            let mut bounds = [(f64::INFINITY, f64::NEG_INFINITY); BINS];
            for &x in &numbers {
                let b = &mut bounds[bin_of(x)];
                *b = (b.0.min(x), b.1.max(x));
            }
            numbers
                .iter()
                .map(|&x| {
                    let (lo, hi) = bounds[bin_of(x)];
                    format!("{parameter} in [{}, {}]", short(lo), short(hi))
                })
                .collect()
        }
        _ => values.iter().map(|v| format!("{parameter} = {}", label(*v))).collect(),
    }
}

fn label(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), short),
        Some(other) => other.to_string(),
        None => "—".into(),
    }
}

/// A number in few characters.
fn short(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e9 { format!("{x:.0}") } else { format!("{x:.3}").trim_end_matches('0').to_owned() }
}

/// A parameter path as part of a file name.
fn file_part(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn register_font() {
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        // The font is valid (it ships with egui); failing to register it would only
        // leave text out.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}

fn draw_error(path: &Path, error: impl std::fmt::Display) -> BatchError {
    BatchError::Output(format!("cannot draw {}: {error}", path.display()))
}

/// Range of `values` with a little room, never empty.
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
    (lo - pad)..(hi + pad)
}

/// One line of a time chart: mean and band at each sample time.
struct Line {
    label: String,
    runs: usize,
    /// (time, low, high) of the 95 % interval, symmetric about the mean.
    points: Vec<(f64, f64, f64)>,
}

fn time_lines(runs: &[RunData], labels: &[String], kpi: &str) -> Vec<Line> {
    let mut by_group: BTreeMap<&str, Vec<&RunData>> = BTreeMap::new();
    for (run, label) in runs.iter().zip(labels) {
        by_group.entry(label).or_default().push(run);
    }
    by_group
        .into_iter()
        .map(|(label, members)| {
            // Times are milliseconds in the world: keying by them in ms is exact.
            let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for run in &members {
                for (time, values) in &run.series {
                    if let Some(v) = values.get(kpi) {
                        at.entry((time * 1000.0).round() as i64).or_default().push(*v);
                    }
                }
            }
            let points = at
                .into_iter()
                .filter_map(|(ms, values)| mean_ci(&values).map(|(m, h)| (ms as f64 / 1000.0, m - h, m + h)))
                .collect();
            Line { label: label.to_owned(), runs: members.len(), points }
        })
        .collect()
}

fn draw_time_chart(path: &Path, title: &str, kpi: &str, lines: &[Line]) -> Result<(), BatchError> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let x = padded(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let y = padded(lines.iter().flat_map(|l| l.points.iter().flat_map(|p| [p.1, p.2])));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc(kpi)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    for (i, line) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let band: Vec<(f64, f64)> =
            line.points.iter().map(|p| (p.0, p.2)).chain(line.points.iter().rev().map(|p| (p.0, p.1))).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled())))
            .map_err(|e| draw_error(path, e))?;
        let mean = line.points.iter().map(|p| (p.0, (p.1 + p.2) / 2.0));
        chart
            .draw_series(LineSeries::new(mean, color.stroke_width(2)))
            .map_err(|e| draw_error(path, e))?
            .label(format!("{} ({} runs)", line.label, line.runs))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))
}

fn draw_final_chart(path: &Path, runs: &[RunData], parameter: &str, kpi: &str) -> Result<bool, BatchError> {
    // Numeric values go where they are; anything else takes a place per distinct value.
    let raw: Vec<Option<&Value>> = runs.iter().map(|r| r.point.get(parameter)).collect();
    let numeric: Option<Vec<f64>> = raw.iter().map(|v| v.and_then(Value::as_f64)).collect();
    let mut categories: Vec<String> = raw.iter().map(|v| label(*v)).collect();
    categories.sort();
    categories.dedup();
    let xs: Vec<f64> = match &numeric {
        Some(xs) => xs.clone(),
        None => raw.iter().map(|v| categories.iter().position(|c| *c == label(*v)).unwrap_or(0) as f64).collect(),
    };
    let dots: Vec<(f64, f64)> =
        xs.iter().zip(runs).filter_map(|(x, run)| run.last.get(kpi).map(|y| (*x, *y))).collect();
    if dots.is_empty() {
        return Ok(false);
    }
    let mut by_x: BTreeMap<i64, (f64, Vec<f64>)> = BTreeMap::new();
    for &(x, y) in &dots {
        by_x.entry((x * 1e6).round() as i64).or_insert((x, Vec::new())).1.push(y);
    }
    let means: Vec<(f64, f64, f64)> =
        by_x.values().filter_map(|(x, ys)| mean_ci(ys).map(|(m, h)| (*x, m - h, m + h))).collect();

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let x_range = padded(dots.iter().map(|d| d.0));
    let y_range = padded(dots.iter().map(|d| d.1).chain(means.iter().flat_map(|m| [m.1, m.2])));
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("final {kpi} against {parameter}"), (FONT, 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| draw_error(path, e))?;
    let names = categories.clone();
    let is_numeric = numeric.is_some();
    chart
        .configure_mesh()
        .x_desc(parameter)
        .y_desc(format!("{kpi} at the end of the run"))
        .label_style((FONT, 14))
        .x_label_formatter(&move |x: &f64| {
            if is_numeric {
                short(*x)
            } else {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        })
        .draw()
        .map_err(|e| draw_error(path, e))?;
    let blue = Palette99::pick(0).to_rgba();
    chart
        .draw_series(dots.iter().map(|&(x, y)| Circle::new((x, y), 3, blue.mix(0.45).filled())))
        .map_err(|e| draw_error(path, e))?
        .label("a run")
        .legend(move |(x, y)| Circle::new((x + 9, y), 3, blue.filled()));
    let red = Palette99::pick(1).to_rgba();
    chart
        .draw_series(LineSeries::new(means.iter().map(|m| (m.0, (m.1 + m.2) / 2.0)), red.stroke_width(2)))
        .map_err(|e| draw_error(path, e))?
        .label("mean, 95 % interval")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
    chart
        .draw_series(means.iter().map(|m| PathElement::new(vec![(m.0, m.1), (m.0, m.2)], red.stroke_width(2))))
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))?;
    Ok(true)
}

/// Draws the charts of batch directory `dir` into `out`; returns the files written.
/// `kpis` names the indicators (empty: [`DEFAULT_KPIS`]).
pub fn plot_dir(dir: &Path, out: &Path, kpis: &[String]) -> Result<Vec<PathBuf>, BatchError> {
    let known: Vec<&str> = KpiSample::CSV_HEADER.split(',').skip(2).collect();
    let kpis: Vec<String> =
        if kpis.is_empty() { DEFAULT_KPIS.iter().map(|k| (*k).to_owned()).collect() } else { kpis.to_vec() };
    if let Some(unknown) = kpis.iter().find(|k| !known.contains(&k.as_str())) {
        return Err(BatchError::Output(format!("no indicator {unknown:?}; one of {}", known.join(", "))));
    }
    let manifest = Manifest::read(dir)?;
    let runs = read_runs(dir, &manifest)?;
    if runs.is_empty() {
        return Err(BatchError::Output(format!("{} holds no finished run to draw", dir.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| BatchError::io(out, e))?;
    register_font();
    let mut written = Vec::new();
    for kpi in &kpis {
        if manifest.parameters.is_empty() {
            let path = out.join(format!("{kpi}_over_time.png"));
            let labels = vec![format!("{} seeds", runs.len()); runs.len()];
            draw_time_chart(
                &path,
                &format!("{kpi} over time (mean, 95 % band)"),
                kpi,
                &time_lines(&runs, &labels, kpi),
            )?;
            written.push(path);
        }
        for parameter in &manifest.parameters {
            let labels = groups(&runs, parameter);
            let path = out.join(format!("{kpi}_over_time_by_{}.png", file_part(parameter)));
            let title = format!("{kpi} over time by {parameter} (mean, 95 % band)");
            draw_time_chart(&path, &title, kpi, &time_lines(&runs, &labels, kpi))?;
            written.push(path);
            let path = out.join(format!("{kpi}_final_vs_{}.png", file_part(parameter)));
            if draw_final_chart(&path, &runs, parameter, kpi)? {
                written.push(path);
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_use_students_t() {
        assert_eq!(mean_ci(&[]), None);
        assert_eq!(mean_ci(&[3.0]), Some((3.0, 0.0)));
        let (mean, half) = mean_ci(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(mean, 2.0);
        // sd 1, n 3, t(2) = 4.303.
        assert!((half - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{half}");
    }

    #[test]
    fn many_numeric_values_are_binned() {
        let runs: Vec<RunData> = (0..20)
            .map(|i| RunData {
                point: BTreeMap::from([("x".to_owned(), Value::from(i as f64 / 10.0))]),
                series: Vec::new(),
                last: BTreeMap::new(),
            })
            .collect();
        let labels = groups(&runs, "x");
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), BINS, "{distinct:?}");
        assert_eq!(labels[0], "x in [0, 0.3]");
        let few = &runs[..3];
        assert_eq!(groups(few, "x"), vec!["x = 0", "x = 0.1", "x = 0.2"]);
    }
}
