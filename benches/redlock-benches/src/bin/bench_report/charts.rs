//! The report's SVG charts, drawn by `redlock_cli::charts` (the module
//! `redlock bench --plot` draws with).

use std::path::Path;

use redlock_benches::scenario::SLOW_ONE_WAY;
use redlock_benches::stats::{median, Latency};
use redlock_benches::{Fault, Impl, Scenario};
use redlock_cli::charts::{self, Bars, CdfLayout, CdfLine, CdfPanel, Timeline, COLORS};

use crate::measure::Healthy;
use crate::{healthy_scenarios, Args, Results, IDLE, SIZES, TASKS};

/// The CDF charts: two columns, one latency range for all panels so they
/// compare at a glance.
const CDF_LAYOUT: CdfLayout = CdfLayout {
    columns: 2,
    panel_size: (560, 440),
    shared_x: true,
};

/// Lines in the report's colours, in order.
fn lines<'a>(named: impl IntoIterator<Item = (String, &'a Latency)>) -> Vec<CdfLine<'a>> {
    named
        .into_iter()
        .enumerate()
        .map(|(i, (label, latency))| CdfLine {
            label,
            color: COLORS[i % COLORS.len()],
            latency,
        })
        .collect()
}

pub(crate) fn write_charts(dir: &Path, args: &Args, r: &Results) -> charts::ChartResult {
    std::fs::create_dir_all(dir)?;
    let healthy = healthy_scenarios();
    let names: Vec<String> = healthy.iter().map(Scenario::label).collect();
    let pick = |g: &dyn Fn(&Healthy) -> f64| -> Vec<f64> {
        healthy.iter().map(|s| r.h(s).map_or(0.0, g)).collect()
    };

    charts::grouped_bars(
        &dir.join("uncontended_cycle.svg"),
        "Uncontended acquire + release cycle, loopback (lower is better)",
        "cycle latency (ms)",
        &names,
        &[
            Bars {
                name: "p50".into(),
                values: pick(&|x| median(&x.cycles.cycle_p50s)),
            },
            Bars {
                name: "p90".into(),
                values: pick(&|x| x.cycles.cycle.p90()),
            },
            Bars {
                name: "p99".into(),
                values: pick(&|x| x.cycles.cycle.p99()),
            },
        ],
    )?;
    charts::grouped_bars(
        &dir.join("throughput.svg"),
        &format!("Throughput with {TASKS} tasks, loopback (higher is better)"),
        "lock cycles per second",
        &names,
        &[
            Bars {
                name: "concurrent, distinct resources".into(),
                values: pick(&|x| median(&x.concurrent_tput)),
            },
            Bars {
                name: "contended, one resource".into(),
                values: pick(&|x| median(&x.contended_tput)),
            },
        ],
    )?;
    let cdf_panel = |imp: Impl, distant: bool| CdfPanel {
        caption: if distant {
            format!("{}, +{:?} each way", imp.name(), args.net())
        } else {
            format!("{}, loopback", imp.name())
        },
        x_desc: "cycle latency (log scale)".into(),
        lines: lines(SIZES.iter().filter_map(|&n| {
            let cycle = if distant {
                &r.p(&Scenario::distant(imp, n, args.net()))?.cycles.cycle
            } else {
                &r.h(&Scenario::healthy(imp, n))?.cycles.cycle
            };
            Some((
                format!("{n} master{}", if n == 1 { "" } else { "s" }),
                cycle,
            ))
        })),
    };
    charts::cdf_panels(
        &dir.join("uncontended_cdf.svg"),
        "Uncontended cycle latency by number of masters, cumulative distribution",
        CDF_LAYOUT,
        &[
            cdf_panel(Impl::Redlock, false),
            cdf_panel(Impl::Rslock, false),
            cdf_panel(Impl::Redlock, true),
            cdf_panel(Impl::Rslock, true),
        ],
    )?;

    // Fault scenarios: acquire and release side by side, one line per
    // implementation and state of the last master, with the idle control.
    let mut acquire = Vec::new();
    let mut release = Vec::new();
    for imp in Impl::ALL {
        let rows = [
            (Scenario::healthy(imp, 5), "healthy"),
            (Scenario::idle_between(imp, 5, IDLE), "healthy, idle 10ms"),
            (Scenario::one_of_five(imp, Fault::Slowed), "one slowed"),
            (Scenario::one_of_five(imp, Fault::Paused), "one paused"),
        ];
        for (s, what) in rows {
            let cycles = r
                .h(&s)
                .map(|x| &x.cycles)
                .or_else(|| r.p(&s).map(|x| &x.cycles))
                .ok_or("missing scenario")?;
            let name = format!("{} {what}", imp.name());
            acquire.push((name.clone(), &cycles.acquire));
            release.push((name, &cycles.release));
        }
    }
    charts::cdf_panels(
        &dir.join("faults_cdf.svg"),
        &format!(
            "Five masters, the last one healthy, slowed (+{SLOW_ONE_WAY:?} each way) or paused"
        ),
        CDF_LAYOUT,
        &[
            CdfPanel {
                caption: "acquire".into(),
                x_desc: "acquire latency (log scale)".into(),
                lines: lines(acquire),
            },
            CdfPanel {
                caption: "release".into(),
                x_desc: "release latency (log scale)".into(),
                lines: lines(release),
            },
        ],
    )?;

    let mut series = Vec::new();
    for imp in Impl::ALL {
        let x = r
            .p(&Scenario::one_of_five(imp, Fault::Paused))
            .ok_or("missing scenario")?;
        series.push(Timeline {
            name: format!("{} acquire", imp.name()),
            points: x.timeline.iter().map(|&(t, a, _)| (t, a)).collect(),
        });
        series.push(Timeline {
            name: format!("{} release", imp.name()),
            points: x.timeline.iter().map(|&(t, _, rel)| (t, rel)).collect(),
        });
    }
    charts::timeline(
        &dir.join("paused_timeline.svg"),
        "Five masters, one paused: every operation over time (first round)",
        &series,
    )?;
    Ok(())
}
