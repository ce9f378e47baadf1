//! SVG charts of the report (plotters, SVG backend only).
//!
//! plotters is built without a font backend, so label sizes are estimated
//! and the text is left to the SVG viewer's default sans-serif font.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Result of drawing a chart.
pub type ChartResult = Result<(), Box<dyn Error>>;

/// Series colours: one per implementation or per scenario, readable on
/// white and distinguishable in grey scale by lightness.
pub const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One series of a bar chart: a name and one value per category.
#[derive(Clone, Debug)]
pub struct Bars {
    /// Legend entry.
    pub name: String,
    /// One value per category (same order as the categories).
    pub values: Vec<f64>,
}

/// Grouped vertical bars: one group per category, one bar per series,
/// each bar labelled with its value.
///
/// # Errors
///
/// When the file cannot be written or plotters fails to lay out the chart.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[Bars],
) -> ChartResult {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let y_max = if top > 0.0 { top * 1.18 } else { 1.0 };
    // x in hundredths of a category: category `i` is centred on `100 * i`.
    // (Integer coordinates, because plotters only formats labels of key
    // points on ranges with default formatting.)
    let k = categories.len() as i32;
    let keys: Vec<i32> = (0..k).map(|i| 100 * i).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((-50i32..100 * k - 50).with_key_points(keys), 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| {
            if x % 100 == 0 && *x >= 0 {
                categories
                    .get((*x / 100) as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format_value(*y))
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()?;

    let groups = series.len().max(1) as i32;
    let width = 80 / groups;
    for (s_idx, s) in series.iter().enumerate() {
        let color = COLORS[s_idx % COLORS.len()];
        let left = move |i: usize| 100 * i as i32 - 40 + s_idx as i32 * width;
        chart
            .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                Rectangle::new([(left(i), 0.0), (left(i) + width - 2, v)], color.filled())
            }))?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(s.values.iter().enumerate().map(|(i, &v)| {
            Text::new(
                format_value(v),
                (left(i) + width / 2, v),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One line of a CDF chart: a name and its `(ms, fraction)` points.
#[derive(Clone, Debug)]
pub struct Cdf {
    /// Legend entry.
    pub name: String,
    /// Points from [`crate::stats::Latency::cdf`].
    pub points: Vec<(f64, f64)>,
}

/// One panel of [`cdf_panels`].
#[derive(Clone, Debug)]
pub struct Panel {
    /// Panel caption.
    pub title: String,
    /// The lines.
    pub lines: Vec<Cdf>,
}

/// Cumulative distributions on a logarithmic latency axis, panels in a
/// grid of `columns` columns, all sharing one x range (so they compare at a
/// glance).
///
/// # Errors
///
/// When the file cannot be written or plotters fails to lay out the chart.
pub fn cdf_panels(path: &Path, title: &str, columns: usize, panels: &[Panel]) -> ChartResult {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().max(1).div_ceil(columns);
    let size = (560 * columns as u32, 40 + 420 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (lo, hi) = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
        .filter(|x| *x > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.01, 1.0)
    };
    let areas = root.split_evenly((rows, columns));
    for (area, panel) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("fraction of operations")
            .x_label_formatter(&|x| format_value(*x))
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, line) in panel.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // A step function: each point holds until the next value.
            let mut steps = Vec::with_capacity(line.points.len() * 2 + 1);
            let mut prev = 0.0;
            for &(x, y) in &line.points {
                steps.push((x, prev));
                steps.push((x, y));
                prev = y;
            }
            chart
                .draw_series(LineSeries::new(steps, color.stroke_width(2)))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// One series of a scatter-over-time chart.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Legend entry.
    pub name: String,
    /// `(seconds since the fault, latency ms)`.
    pub points: Vec<(f64, f64)>,
}

/// Latency of each operation against time, log latency axis: shows a
/// behaviour that changes while a fault lasts (timeouts, reconnects).
///
/// # Errors
///
/// When the file cannot be written or plotters fails to lay out the chart.
pub fn timeline(path: &Path, title: &str, series: &[Timeline]) -> ChartResult {
    let root = SVGBackend::new(path, (900, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let t_max = all().map(|p| p.0).fold(0.0f64, f64::max).max(0.1);
    let (lo, hi) = all()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.01, 1.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max * 1.02, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the master was paused")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|y| format_value(*y))
        .label_style(("sans-serif", 12))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(move |&(t, y)| Circle::new((t, y), 2, color.mix(0.6).filled())),
            )?
            .label(s.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()?;
    root.present()?;
    Ok(())
}

/// A number with about three significant digits, for labels.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
