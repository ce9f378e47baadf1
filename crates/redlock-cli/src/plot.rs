//! `redlock bench --plot FILE.svg`: latency distributions of single vs
//! quorum, one panel per workload, and (when the fault scenarios ran) the
//! healthy quorum against the quorum with one master slowed or paused,
//! readable without the table.
//!
//! Each panel is a CDF on a logarithmic latency axis: a curve further right
//! is slower, a curve that bends late has a long tail, and the dashed guides
//! at 50% and 99% read off p50 and p99 directly. The legend repeats both
//! numbers so the chart stands alone.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::bench::{Curves, FaultCurves};
use crate::output::Failure;

const SINGLE_COLOR: RGBColor = RGBColor(31, 119, 180);
const QUORUM_COLOR: RGBColor = RGBColor(214, 39, 40);
const GUIDE_COLOR: RGBColor = RGBColor(160, 160, 160);
const SLOWED_COLOR: RGBColor = RGBColor(255, 127, 14);
const PAUSED_COLOR: RGBColor = RGBColor(44, 160, 44);

/// Writes the chart of `curves` (single first, quorum second) and of the
/// fault scenarios, if they ran, to `path`.
///
/// # Errors
///
/// Status 70 when the file cannot be written.
pub(crate) fn write_svg(
    path: &Path,
    curves: &[Curves],
    faults: Option<&FaultCurves>,
    masters: &[String],
) -> Result<(), Failure> {
    draw(path, &panels(curves, faults), masters)
        .map_err(|e| Failure::software(format_args!("cannot write plot {}: {e}", path.display())))
}

/// Checks, before the benchmark runs, that `path` can be written: a typo
/// in the path must not cost a whole benchmark run and then fail. Opens the
/// file for appending (an existing file is left as it is) and removes it
/// again if the check created it, so a run that fails later leaves no empty
/// file behind.
///
/// # Errors
///
/// A usage error (64) naming `--plot` when the file cannot be opened for
/// writing (missing directory, no permission, a directory).
pub(crate) fn check_writable(path: &Path) -> Result<(), Failure> {
    let existed = path.exists();
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        }
        Err(e) => Err(Failure::usage(format_args!(
            "--plot {}: cannot write there: {e}",
            crate::output::quote_input(&path.to_string_lossy())
        ))),
    }
}

/// One line of a panel.
struct Line<'a> {
    label: String,
    color: RGBColor,
    hist: &'a Histogram<u64>,
}

/// One panel: a caption, the x-axis description, its lines.
struct Panel<'a> {
    caption: &'static str,
    x_desc: &'static str,
    lines: Vec<Line<'a>>,
}

/// The panels: one per healthy workload (single vs quorum), then the
/// fault panel (healthy quorum, slowed, paused) when there is one.
fn panels<'a>(curves: &'a [Curves], faults: Option<&'a FaultCurves>) -> Vec<Panel<'a>> {
    let color = |c: &Curves| {
        if c.label.starts_with("single") {
            SINGLE_COLOR
        } else {
            QUORUM_COLOR
        }
    };
    let per_config = |pick: fn(&Curves) -> &Histogram<u64>| -> Vec<Line<'a>> {
        curves
            .iter()
            .map(|c| Line {
                label: c.label.clone(),
                color: color(c),
                hist: pick(c),
            })
            .collect()
    };
    let mut panels = vec![
        Panel {
            caption: "sequential: acquire + release",
            x_desc: "cycle latency (log scale)",
            lines: per_config(|c| c.sequential.histogram()),
        },
        Panel {
            caption: "concurrent: acquire + release",
            x_desc: "cycle latency (log scale)",
            lines: per_config(|c| c.concurrent.histogram()),
        },
        Panel {
            caption: "contended: wait for the lock",
            x_desc: "wait until held (log scale)",
            lines: per_config(|c| c.contended.histogram()),
        },
    ];
    if let (Some(f), Some(q)) = (faults, curves.last()) {
        let mut lines = vec![Line {
            label: format!("{}, healthy", q.label),
            color: QUORUM_COLOR,
            hist: q.sequential.histogram(),
        }];
        for (what, color, lat) in [
            ("one slowed", SLOWED_COLOR, &f.slowed),
            ("one paused", PAUSED_COLOR, &f.paused),
        ] {
            if let Some(l) = lat {
                lines.push(Line {
                    label: format!("{}, {what}", q.label),
                    color,
                    hist: l.histogram(),
                });
            }
        }
        panels.push(Panel {
            caption: "one master slowed or paused: acquire + release",
            x_desc: "cycle latency (log scale)",
            lines,
        });
    }
    panels
}

fn draw(
    path: &Path,
    panels: &[Panel<'_>],
    masters: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let width = 520 * u32::try_from(panels.len()).unwrap_or(3);
    let root = SVGBackend::new(path, (width, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "redlock bench: one master vs a quorum of {} — latency distribution (CDF; further right = slower)",
        masters.len()
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let hists: Vec<&Histogram<u64>> = panel.lines.iter().map(|l| l.hist).collect();
        let lo = hists
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.min())
            .min()
            .unwrap_or(1)
            .max(1) as f64;
        let hi = hists
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.max())
            .max()
            .unwrap_or(10)
            .max(2) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.caption, ("sans-serif", 17))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((lo / 1.25..hi * 1.25).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc(panel.x_desc)
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
            let hist = line.hist;
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
                .draw_series(LineSeries::new(cdf(hist), color.stroke_width(2)))?
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

/// The CDF of a histogram as (latency µs, cumulative fraction) points.
fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points = vec![(h.min().max(1) as f64, 0.0)];
    points.extend(h.iter_recorded().map(|v| {
        (
            v.value_iterated_to().max(1) as f64,
            v.quantile_iterated_to(),
        )
    }));
    points
}

/// `850 µs`, `1.2 ms`, `3.4 s`.
fn format_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.1} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_ends_at_one() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).expect("valid bounds");
        for v in [10, 20, 20, 30] {
            h.record(v).expect("in range");
        }
        let points = cdf(&h);
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
