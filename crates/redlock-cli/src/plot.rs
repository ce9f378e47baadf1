//! `redlock bench --plot FILE.svg`: latency distributions of single vs
//! quorum, one panel per workload, and (when the fault scenarios ran) the
//! healthy quorum against the quorum with one master slowed or paused,
//! readable without the table. What goes in the panels is decided here;
//! how a CDF panel is drawn is [`redlock_cli::charts::cdf_panels`], shared
//! with the benchmark report.

use std::path::Path;

use plotters::style::RGBColor;
use redlock_cli::charts::{cdf_panels, CdfLayout, CdfLine, CdfPanel};
use redlock_cli::latency::Latency;

use crate::bench::{Curves, FaultCurves};
use crate::output::Failure;

const SINGLE_COLOR: RGBColor = RGBColor(31, 119, 180);
const QUORUM_COLOR: RGBColor = RGBColor(214, 39, 40);
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
    let title = format!(
        "redlock bench: one master vs a quorum of {} — latency distribution (CDF; further right = slower)",
        masters.len()
    );
    let panels = panels(curves, faults);
    // One row, each panel its own latency range.
    let layout = CdfLayout {
        columns: panels.len(),
        panel_size: (520, 560),
        shared_x: false,
    };
    cdf_panels(path, &title, layout, &panels)
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

/// The panels: one per healthy workload (single vs quorum), then the
/// fault panel (healthy quorum, slowed, paused) when there is one.
fn panels<'a>(curves: &'a [Curves], faults: Option<&'a FaultCurves>) -> Vec<CdfPanel<'a>> {
    let color = |c: &Curves| {
        if c.label.starts_with("single") {
            SINGLE_COLOR
        } else {
            QUORUM_COLOR
        }
    };
    let per_config = |pick: fn(&Curves) -> &Latency| -> Vec<CdfLine<'a>> {
        curves
            .iter()
            .map(|c| CdfLine {
                label: c.label.clone(),
                color: color(c),
                latency: pick(c),
            })
            .collect()
    };
    let mut panels = vec![
        CdfPanel {
            caption: "sequential: acquire + release".into(),
            x_desc: "cycle latency (log scale)".into(),
            lines: per_config(|c| &c.sequential),
        },
        CdfPanel {
            caption: "concurrent: acquire + release".into(),
            x_desc: "cycle latency (log scale)".into(),
            lines: per_config(|c| &c.concurrent),
        },
        CdfPanel {
            caption: "contended: wait for the lock".into(),
            x_desc: "wait until held (log scale)".into(),
            lines: per_config(|c| &c.contended),
        },
    ];
    if let (Some(f), Some(q)) = (faults, curves.last()) {
        let mut lines = vec![CdfLine {
            label: format!("{}, healthy", q.label),
            color: QUORUM_COLOR,
            latency: &q.sequential,
        }];
        for (what, color, lat) in [
            ("one slowed", SLOWED_COLOR, &f.slowed),
            ("one paused", PAUSED_COLOR, &f.paused),
        ] {
            if let Some(l) = lat {
                lines.push(CdfLine {
                    label: format!("{}, {what}", q.label),
                    color,
                    latency: l,
                });
            }
        }
        panels.push(CdfPanel {
            caption: "one master slowed or paused: acquire + release".into(),
            x_desc: "cycle latency (log scale)".into(),
            lines,
        });
    }
    panels
}
