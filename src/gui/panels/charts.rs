//! Charts over simulated time, drawn alike everywhere: the legend above the data
//! (never over it), time ticks at round values whatever the run's length, one unit
//! per chart, and a sentence in place of a chart whose series have nothing to show
//! (no samples, one sample, or values that never changed).

use egui::{Color32, RichText};
use egui_plot::{GridInput, GridMark, Line, Plot, PlotPoints, Points};

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// `[simulated seconds, value]`, oldest first.
    pub points: Vec<[f64; 2]>,
}

/// A chart's look: its size, how its values read, and what its y axis must show.
pub struct ChartSpec<'a> {
    pub id: &'a str,
    pub height: f32,
    pub width: f32,
    /// How a value reads (also on the y axis): `12 scrip`, `$0.0012`, `25 %`.
    pub format: fn(f64) -> String,
    /// The y range always shown (e.g. `[0, 1]` for shares), so a line at its edge
    /// is not cut off.
    pub y_range: Option<[f64; 2]>,
    /// Charts sharing this id pan and zoom together in time.
    pub link: Option<egui::Id>,
}

/// The colours of the series, in order: distinct on dark and light backgrounds.
const COLORS: [Color32; 6] = [
    Color32::from_rgb(100, 160, 255),
    Color32::from_rgb(240, 120, 90),
    Color32::from_rgb(110, 200, 120),
    Color32::from_rgb(220, 180, 60),
    Color32::from_rgb(190, 120, 230),
    Color32::from_rgb(90, 200, 210),
];

/// What a chart's series hold, for deciding whether to draw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// No sample yet.
    Empty,
    /// One sample of each series: no line to draw.
    Single,
    /// Every series kept one value throughout.
    Constant,
    /// Something changed: worth a chart.
    Varies,
}

/// The shape of `series` together.
pub fn shape(series: &[Series<'_>]) -> Shape {
    let samples = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    if samples == 0 {
        return Shape::Empty;
    }
    if samples == 1 {
        return Shape::Single;
    }
    let constant = series.iter().all(|s| s.points.windows(2).all(|w| w[0][1] == w[1][1]));
    if constant { Shape::Constant } else { Shape::Varies }
}

/// A chart of `series` over simulated time, or a sentence saying why there is none.
pub fn time_chart(ui: &mut egui::Ui, spec: &ChartSpec<'_>, series: &[Series<'_>]) {
    ui.horizontal_wrapped(|ui| {
        ui.set_max_width(spec.width);
        for (index, one) in series.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            swatch(ui, color, false);
            let last = one.points.last().map(|p| (spec.format)(p[1])).unwrap_or_default();
            ui.label(format!("{} {last}", one.name)).on_hover_text("The latest value");
        }
    });
    let shape = shape(series);
    if shape != Shape::Varies {
        let text = match shape {
            Shape::Empty => "No samples yet: they are taken every few steps once the world runs.".to_owned(),
            Shape::Single => "One sample so far: a line needs two.".to_owned(),
            _ => {
                let since = series.iter().filter_map(|s| s.points.first()).map(|p| p[0]).fold(f64::INFINITY, f64::min);
                let values: Vec<String> = series
                    .iter()
                    .filter_map(|s| Some(format!("{} {}", s.name, (spec.format)(s.points.first()?[1]))))
                    .collect();
                format!("Unchanged since {}: {}.", time_label(since, since.max(1.0)), values.join(", "))
            }
        };
        let (rect, _) = ui.allocate_exact_size(egui::vec2(spec.width, spec.height), egui::Sense::hover());
        ui.painter().rect_stroke(rect, 4.0, ui.visuals().widgets.noninteractive.bg_stroke, egui::StrokeKind::Inside);
        ui.put(rect.shrink(12.0), egui::Label::new(RichText::new(text).weak()).wrap());
        return;
    }
    let format = spec.format;
    let mut plot = time_plot(spec).label_formatter(move |hover| match hover {
        egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } => {
            Some(format!("{plot_name}: {} at {}", format(position.y), time_label(position.x, position.x.max(1.0))))
        }
        egui_plot::HoverPosition::Elsewhere { .. } => None,
    });
    if let Some([low, high]) = spec.y_range {
        plot = plot.include_y(low).include_y(high);
    }
    if let Some(link) = spec.link {
        plot = plot.link_axis(link, [true, false]);
    }
    plot.show(ui, |plot| {
        for (index, one) in series.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            plot.line(Line::new(one.name, PlotPoints::from(one.points.clone())).color(color));
        }
    });
}

/// Points (one per occasion, such as an auction: one is already worth showing) in
/// the first series, lines for the others.
pub fn time_points_chart(ui: &mut egui::Ui, spec: &ChartSpec<'_>, series: &[Series<'_>]) {
    ui.horizontal_wrapped(|ui| {
        for (index, one) in series.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            swatch(ui, color, index == 0);
            ui.label(one.name);
        }
    });
    time_plot(spec).show(ui, |plot| {
        for (index, one) in series.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            let points = PlotPoints::from(one.points.clone());
            if index == 0 {
                plot.points(Points::new(one.name, points).color(color).radius(2.5).stems(0.0));
            } else {
                plot.line(Line::new(one.name, points).color(color));
            }
        }
    });
}

/// A plot over simulated time as `spec` says: round time ticks, round values in the
/// chart's unit, zero always shown.
fn time_plot<'a>(spec: &ChartSpec<'a>) -> Plot<'a> {
    let format = spec.format;
    Plot::new(spec.id)
        .height(spec.height)
        .width(spec.width)
        .x_axis_label("simulated time")
        .x_grid_spacer(time_marks)
        .x_axis_formatter(|mark, range| time_label(mark.value, range.end() - range.start()))
        .y_grid_spacer(value_marks)
        .y_axis_formatter(move |mark, _| format(mark.value))
        .include_y(0.0)
        .allow_scroll(false)
}

/// A series' mark in a legend: a short line, or a dot for points (painted, so it
/// needs no glyph).
fn swatch(ui: &mut egui::Ui, color: Color32, dot: bool) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(16.0, 10.0), egui::Sense::hover());
    if dot {
        ui.painter().circle_filled(rect.center(), 3.0, color);
    } else {
        ui.painter().line_segment([rect.left_center(), rect.right_center()], egui::Stroke::new(2.5, color));
    }
}

/// Round steps of simulated time, in seconds: about six marks across any span.
const TIME_STEPS: [f64; 16] =
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0];

/// Grid marks at round times: a step from [`TIME_STEPS`] (or a power of ten of days
/// beyond) giving about six across the visible span, and never closer than the
/// plot can label.
pub fn time_marks(input: GridInput) -> Vec<GridMark> {
    let (low, high) = input.bounds;
    let span = high - low;
    if !span.is_finite() || span <= 0.0 {
        return Vec::new();
    }
    let wanted = (span / 6.0).max(input.base_step_size * 8.0);
    let step = TIME_STEPS.iter().copied().find(|&s| s >= wanted).unwrap_or_else(|| {
        let days = (wanted / 86400.0).log10().ceil();
        86400.0 * 10f64.powf(days)
    });
    marks_every((low, high), step)
}

/// A mark at every multiple of `step` within `bounds`.
fn marks_every((low, high): (f64, f64), step: f64) -> Vec<GridMark> {
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|i| GridMark { value: i as f64 * step, step_size: step }).collect()
}

/// Grid marks at round values (1, 2 or 5 times a power of ten) for a value axis:
/// about five across the visible span, each one labelled.
pub fn value_marks(input: GridInput) -> Vec<GridMark> {
    let (low, high) = input.bounds;
    let span = high - low;
    if !span.is_finite() || span <= 0.0 {
        return Vec::new();
    }
    // Labels need some 30 points between them (egui_plot hides closer ones); the
    // grid's own minimum spacing is `base_step_size`.
    let wanted = (span / 5.0).max(input.base_step_size * 4.0);
    let power = 10f64.powf(wanted.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&s| s >= wanted).unwrap_or(10.0 * power);
    let marks = |step: f64| marks_every((low, high), step);
    // At least two labelled values when the room allows: a lone 0 says nothing.
    let chosen = marks(step);
    if chosen.len() < 3 {
        let finer =
            [0.5, 0.2, 0.1].iter().map(|f| step * f).find(|&s| s >= input.base_step_size * 4.0 && marks(s).len() >= 3);
        if let Some(finer) = finer {
            return marks(finer);
        }
    }
    chosen
}

/// A time for an axis whose visible span is `span` seconds: `45 s`, `12:30`
/// (minutes and seconds) or `3 h 05` as the span grows.
pub fn time_label(secs: f64, span: f64) -> String {
    let whole = secs.round() as i64;
    if span < 120.0 {
        format!("{whole} s")
    } else if span < 4.0 * 3600.0 {
        format!("{}:{:02}", whole / 60, (whole % 60).abs())
    } else {
        format!("{} h {:02}", whole / 3600, ((whole % 3600) / 60).abs())
    }
}

/// A count, with thin spaces between thousands.
pub fn count(value: f64) -> String {
    let whole = value.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    if whole < 0 { format!("−{out}") } else { out }
}

/// A fraction in `[0, 1]` as a percentage.
pub fn percent(value: f64) -> String {
    format!("{:.0} %", value * 100.0)
}

/// Dollars, with as many decimals as small amounts need.
pub fn dollars(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("${value:.0}")
    } else if value.abs() >= 1.0 {
        format!("${value:.2}")
    } else {
        format!("${value:.4}")
    }
}

/// A plain number, to two decimals.
pub fn decimal(value: f64) -> String {
    format!("{value:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values `spacer` marks between `low` and `high`, on a plot 1 000 points long.
    fn marked(spacer: fn(GridInput) -> Vec<GridMark>, low: f64, high: f64) -> Vec<f64> {
        spacer(GridInput { bounds: (low, high), base_step_size: (high - low) / 1000.0 })
            .into_iter()
            .map(|m| m.value)
            .collect()
    }

    fn marks(low: f64, high: f64) -> Vec<f64> {
        marked(time_marks, low, high)
    }

    #[test]
    fn long_runs_get_round_ticks_across_the_whole_axis() {
        let ten_hours = marks(0.0, 36_000.0);
        assert!(ten_hours.len() >= 4 && ten_hours.len() <= 11, "{ten_hours:?}");
        assert_eq!(ten_hours[1] - ten_hours[0], 7200.0);
        assert_eq!(time_label(7200.0, 36_000.0), "2 h 00");
        let minutes = marks(0.0, 600.0);
        assert_eq!(minutes, vec![0.0, 120.0, 240.0, 360.0, 480.0, 600.0]);
        assert_eq!(time_label(480.0, 600.0), "8:00");
        assert_eq!(marks(5.0, 65.0), vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        assert_eq!(time_label(50.0, 60.0), "50 s");
        assert!(marks(3.0, 3.0).is_empty());
        let values = |low, high| marked(value_marks, low, high);
        assert_eq!(values(0.0, 90.0), vec![0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(values(0.0, 1.0).len(), 6, "0, 0.2, … 1");
    }

    #[test]
    fn empty_single_and_constant_series_are_told_apart() {
        let series = |points: Vec<[f64; 2]>| vec![Series { name: "a", points }];
        assert_eq!(shape(&series(vec![])), Shape::Empty);
        assert_eq!(shape(&series(vec![[9.0, 1.0]])), Shape::Single);
        assert_eq!(shape(&series(vec![[0.0, 0.0], [10.0, 0.0]])), Shape::Constant);
        assert_eq!(shape(&series(vec![[0.0, 0.0], [10.0, 1.0]])), Shape::Varies);
    }

    #[test]
    fn values_read_in_their_units() {
        assert_eq!(count(1_234_567.0), "1\u{2009}234\u{2009}567");
        assert_eq!(percent(0.25), "25 %");
        assert_eq!(dollars(0.0012), "$0.0012");
        assert_eq!(dollars(12.5), "$12.50");
    }
}
