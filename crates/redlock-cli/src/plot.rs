//! `redlock bench --plot FILE.svg`: latency distributions of single vs
//! quorum, one panel per workload, readable without the table.
//!
//! Each panel is a CDF on a logarithmic latency axis: a curve further right
//! is slower, a curve that bends late has a long tail, and the dashed guides
//! at 50% and 99% read off p50 and p99 directly. The legend repeats both
//! numbers so the chart stands alone.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::bench::Curves;
use crate::output::Failure;

const SINGLE_COLOR: RGBColor = RGBColor(31, 119, 180);
const QUORUM_COLOR: RGBColor = RGBColor(214, 39, 40);
const GUIDE_COLOR: RGBColor = RGBColor(160, 160, 160);

/// Writes the chart of `curves` (single first, quorum second) to `path`.
///
/// # Errors
///
/// Status 70 when the file cannot be written.
pub(crate) fn write_svg(path: &Path, curves: &[Curves], masters: &[String]) -> Result<(), Failure> {
    draw(path, curves, masters)
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

type Pick = fn(&Curves) -> &Histogram<u64>;

fn draw(
    path: &Path,
    curves: &[Curves],
    masters: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let panels: [(&str, &str, Pick); 3] = [
        (
            "sequential: acquire + release",
            "cycle latency (log scale)",
            |c| c.sequential.histogram(),
        ),
        (
            "concurrent: acquire + release",
            "cycle latency (log scale)",
            |c| c.concurrent.histogram(),
        ),
        (
            "contended: wait for the lock",
            "wait until held (log scale)",
            |c| c.contended.histogram(),
        ),
    ];
    let root = SVGBackend::new(path, (1560, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "redlock bench: one master vs a quorum of {} — latency distribution (CDF; further right = slower)",
        masters.len()
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, (caption, x_desc, pick)) in areas.iter().zip(panels) {
        let hists: Vec<&Histogram<u64>> = curves.iter().map(pick).collect();
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
            .caption(caption, ("sans-serif", 17))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((lo / 1.25..hi * 1.25).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
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
        for (curve, hist) in curves.iter().zip(&hists) {
            let color = if curve.label.starts_with("single") {
                SINGLE_COLOR
            } else {
                QUORUM_COLOR
            };
            let label = if hist.is_empty() {
                format!("{}: no data", curve.label)
            } else {
                format!(
                    "{}: p50 {}, p99 {}",
                    curve.label,
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
