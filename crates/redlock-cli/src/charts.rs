//! SVG charts (plotters, SVG backend only): the CDF panels of `redlock
//! bench --plot` and of the benchmark report, and the report's bar and
//! timeline charts.
//!
//! plotters is built without a font backend, so label sizes are estimated
//! and the text is left to the SVG viewer's default sans-serif font.
//!
//! A CDF panel puts latency on a logarithmic axis: a curve further right
//! is slower, a curve that bends late has a long tail, and dashed guides at
//! 50% and 99% read off p50 and p99 directly. The legend repeats both
//! numbers so the chart stands alone.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::latency::Latency;

/// Result of drawing a chart.
pub type ChartResult = Result<(), Box<dyn Error>>;

const GUIDE_COLOR: RGBColor = RGBColor(160, 160, 160);

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

/// One line of a CDF panel.
#[derive(Clone, Debug)]
pub struct CdfLine<'a> {
    /// Legend entry (p50 and p99 are appended).
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// The distribution.
    pub latency: &'a Latency,
}

/// One panel of [`cdf_panels`]: a caption, the x-axis description, its
/// lines.
#[derive(Clone, Debug)]
pub struct CdfPanel<'a> {
    /// Panel caption.
    pub caption: String,
    /// What the x axis measures, e.g. `cycle latency (log scale)`.
    pub x_desc: String,
    /// The lines.
    pub lines: Vec<CdfLine<'a>>,
}

/// How [`cdf_panels`] lays its panels out.
#[derive(Clone, Copy, Debug)]
pub struct CdfLayout {
    /// Panels per row.
    pub columns: usize,
    /// Width and height of one panel, in pixels; the chart's title is
    /// carved out of the top row.
    pub panel_size: (u32, u32),
    /// One latency range for every panel (they compare at a glance), or
    /// each panel's own (each one fills its width).
    pub shared_x: bool,
}

/// Cumulative distributions on a logarithmic latency axis, in a grid of
/// `layout.columns` columns.
///
/// # Errors
///
/// When the file cannot be written or plotters fails to lay out the chart.
pub fn cdf_panels(
    path: &Path,
    title: &str,
    layout: CdfLayout,
    panels: &[CdfPanel<'_>],
) -> ChartResult {
    let columns = layout.columns.clamp(1, panels.len().max(1));
    let rows = panels.len().max(1).div_ceil(columns);
    let size = (
        layout.panel_size.0 * u32::try_from(columns).unwrap_or(1),
        layout.panel_size.1 * u32::try_from(rows).unwrap_or(1),
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let all: Vec<&Latency> = panels
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.latency))
        .collect();
    let areas = root.split_evenly((rows, columns));
    for (area, panel) in areas.iter().zip(panels) {
        let own: Vec<&Latency>;
        let range = if layout.shared_x {
            &all
        } else {
            own = panel.lines.iter().map(|l| l.latency).collect();
            &own
        };
        let (lo, hi) = x_range(range);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.caption, ("sans-serif", 17))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((lo / 1.25..hi * 1.25).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_desc)
            .y_desc("fraction of operations ≤ x")
            .x_label_formatter(&|v| format_us(*v))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()?;
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            chart.draw_series(DashedLineSeries::new(
                [(lo / 1.25, q), (hi * 1.25, q)],
                4,
                4,
                GUIDE_COLOR.stroke_width(1),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                label,
                (lo / 1.2, q + 0.015),
                ("sans-serif", 13).into_font().color(&GUIDE_COLOR),
            )))?;
        }
        for line in &panel.lines {
            let hist = line.latency.histogram();
            let color = line.color;
            let label = if hist.is_empty() {
                format!("{}: no data", line.label)
            } else {
                format!(
                    "{}: p50 {}, p99 {}",
                    line.label,
                    format_us(hist.value_at_quantile(0.5) as f64),
                    format_us(hist.value_at_quantile(0.99) as f64)
                )
            };
            chart
                .draw_series(LineSeries::new(cdf(line.latency), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The fastest and slowest sample of `lats` in µs (at least 1 and 2), the
/// ends of a CDF panel's x axis before its margins.
fn x_range(lats: &[&Latency]) -> (f64, f64) {
    let hists = || lats.iter().map(|l| l.histogram()).filter(|h| !h.is_empty());
    let lo = hists().map(|h| h.min()).min().unwrap_or(1).max(1) as f64;
    let hi = hists().map(|h| h.max()).max().unwrap_or(10).max(2) as f64;
    (lo, hi)
}

/// The CDF of a distribution as (latency µs, cumulative fraction) points,
/// from 0 at the fastest sample.
fn cdf(l: &Latency) -> Vec<(f64, f64)> {
    let h = l.histogram();
    if h.is_empty() {
        return Vec::new();
    }
    let mut points = vec![(h.min().max(1) as f64, 0.0)];
    points.extend(l.cdf());
    points
}

/// `850 µs`, `1.2 ms`, `3.4 s`.
pub fn format_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.1} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cdf_ends_at_one() {
        let l = Latency::of([10, 20, 20, 30].map(Duration::from_micros));
        let points = cdf(&l);
        assert_eq!(points.first(), Some(&(10.0, 0.0)));
        assert_eq!(points.last().map(|p| p.1), Some(1.0));
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(format_us(850.0), "850 µs");
        assert_eq!(format_us(1234.0), "1.2 ms");
        assert_eq!(format_us(3_400_000.0), "3.4 s");
    }
}
