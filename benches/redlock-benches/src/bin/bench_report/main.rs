//! Percentile report of the benchmarks: p50/p90/p99/max per configuration,
//! markdown tables on stdout, SVG charts into a directory.
//!
//! ```text
//! cargo run --release -p redlock-benches --bin bench_report -- \
//!     --img-dir docs/img --json target/bench-report.json > target/bench-report.md
//! ```
//!
//! The options are those of `bench_report --help` (the doc comments of
//! [`Args`]). Modules: [`measure`] (the workloads of one configuration per
//! round, accumulated), [`report`] (markdown tables and JSON), [`charts`]
//! (the SVG charts, drawn by `redlock_cli::charts`).
//!
//! Criterion (`cargo bench -p redlock-benches`) gives means with confidence
//! intervals; this binary gives the percentiles the targets are stated in.

mod charts;
mod measure;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use redlock_benches::targets::{self, Plan};
use redlock_benches::{Fault, Flavor, Impl, Scenario};
use serde_json::json;

use measure::{run_healthy, run_phases, Healthy, Phases};

/// Tasks of the concurrent and contended workloads.
const TASKS: usize = 8;

/// Upper bound of one uncontended run: rslock with a paused master takes
/// about a second per cycle.
const RUN_CAP: Duration = Duration::from_secs(15);

/// Percentile report of the benchmarks: markdown tables on stdout, SVG
/// charts and JSON on request.
#[derive(Parser, Debug)]
#[command(name = "bench_report")]
struct Args {
    /// Uncontended and concurrent cycles per round.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    iters: u64,
    /// Cycles per fault or simulated-network scenario and round (each run
    /// capped at 15 s).
    #[arg(long, value_name = "N", default_value_t = 500)]
    fault_iters: u64,
    /// Every configuration runs once per round (at least 1). Rounds
    /// interleave the configurations, so slow drifts of a noisy machine
    /// spread over all of them, and the spread of the per-round medians is
    /// printed next to their median.
    #[arg(long, value_name = "R", default_value_t = 3)]
    rounds: usize,
    /// Length of each contended run, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3)]
    contended_secs: u64,
    /// One-way delay of the simulated-network scenarios, in µs.
    #[arg(long, value_name = "U", default_value_t = 250)]
    net_us: u64,
    /// Run only the configurations with these labels, e.g. `--only
    /// "redlock 5,rslock 5 (one paused)"` (no charts then).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Run only these workloads in the healthy configurations (for
    /// profiling; no charts then).
    #[arg(
        long,
        value_name = "W,..",
        value_delimiter = ',',
        value_parser = ["uncontended", "concurrent", "contended", "fanout"]
    )]
    workloads: Option<Vec<String>>,
    /// Write the SVG charts into this directory.
    #[arg(long, value_name = "DIR")]
    img_dir: Option<PathBuf>,
    /// Write the numbers as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// The tokio runtime everything runs on: `multi` (tokio's default, one
    /// worker per CPU) or `current` (one thread, as node runs
    /// node-redlock).
    #[arg(long, value_enum, default_value_t = Flavor::Multi)]
    runtime: Flavor,
    /// Run only the side-by-side comparison of the performance targets
    /// (scenarios A to F of `redlock_benches::targets`, redlock against
    /// rslock in the same rounds), with --rounds, --iters, --fault-iters
    /// and --contended-secs, and print its table.
    #[arg(long)]
    targets: bool,
}

impl Args {
    fn selected(&self, s: &Scenario) -> bool {
        let label = s.label();
        self.only.as_ref().is_none_or(|only| only.contains(&label))
    }

    fn runs(&self, workload: &str) -> bool {
        self.workloads
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == workload))
    }

    fn contended(&self) -> Duration {
        Duration::from_secs(self.contended_secs)
    }

    fn net(&self) -> Duration {
        Duration::from_micros(self.net_us)
    }
}

const SIZES: [usize; 3] = [1, 3, 5];
const FAULTS: [Fault; 3] = [Fault::Proxied, Fault::Slowed, Fault::Paused];

fn healthy_scenarios() -> Vec<Scenario> {
    Impl::ALL
        .iter()
        .flat_map(|&imp| SIZES.map(|n| Scenario::healthy(imp, n)))
        .collect()
}

/// Idle time between cycles of the control scenarios: about the slowed
/// master's round trip, the gap its release leaves between cycles.
const IDLE: Duration = Duration::from_millis(10);

fn fault_scenarios() -> Vec<Scenario> {
    Impl::ALL
        .iter()
        .flat_map(|&imp| {
            FAULTS
                .map(|f| Scenario::one_of_five(imp, f))
                .into_iter()
                .chain([Scenario::idle_between(imp, 5, IDLE)])
        })
        .collect()
}

fn distant_scenarios(net: Duration) -> Vec<Scenario> {
    Impl::ALL
        .iter()
        .flat_map(|&imp| SIZES.map(|n| Scenario::distant(imp, n, net)))
        .collect()
}

struct Results {
    healthy: BTreeMap<String, Healthy>,
    phases: BTreeMap<String, Phases>,
}

impl Results {
    fn h(&self, s: &Scenario) -> Option<&Healthy> {
        self.healthy.get(&s.label())
    }
    fn p(&self, s: &Scenario) -> Option<&Phases> {
        self.phases.get(&s.label())
    }
}

fn main() {
    let args = Args::parse();
    match args.runtime.runtime() {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(e) => {
            eprintln!("bench_report: no tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(mut args: Args) {
    args.rounds = args.rounds.max(1);
    let started = Instant::now();
    let machine = report::machine(args.runtime);
    if args.targets {
        run_targets(&args, &machine, started).await;
        return;
    }
    let healthy: Vec<Scenario> = healthy_scenarios()
        .into_iter()
        .filter(|s| args.selected(s))
        .collect();
    let phased: Vec<Scenario> = fault_scenarios()
        .into_iter()
        .chain(distant_scenarios(args.net()))
        .filter(|s| args.selected(s))
        .collect();
    let mut r = Results {
        healthy: BTreeMap::new(),
        phases: BTreeMap::new(),
    };
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        for &s in &healthy {
            run_healthy(s, &args, r.healthy.entry(s.label()).or_default()).await;
        }
        for &s in &phased {
            run_phases(s, &args, r.phases.entry(s.label()).or_default(), round == 0).await;
        }
    }
    report::print_report(&args, &machine, &r, started.elapsed());

    if let Some(dir) = &args.img_dir {
        if args.only.is_some() || args.workloads.is_some() {
            eprintln!("--only or --workloads: charts skipped");
        } else if let Err(e) = charts::write_charts(dir, &args, &r) {
            eprintln!("bench_report: charts failed: {e}");
            std::process::exit(1);
        } else {
            eprintln!("charts written to {}", dir.display());
        }
    }
    if let Some(path) = &args.json {
        let doc = report::to_json(&machine, &r);
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain numbers");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("bench_report: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

/// `--targets`: the side-by-side comparison alone.
async fn run_targets(args: &Args, machine: &[(String, String)], started: Instant) {
    let plan = Plan {
        rounds: args.rounds,
        iters: args.iters,
        fault_iters: args.fault_iters,
        fault_cap: Duration::from_secs(8),
        contended: args.contended(),
    };
    let rounds = targets::run(&plan).await;
    println!("### Machine and run\n");
    println!("| | |\n|---|---|");
    for (k, v) in machine {
        println!("| {k} | {v} |");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n{} rounds; per round and implementation: {} sequential cycles (A, B), {} concurrent \
         cycles over {} tasks (F), {} cycles per fault scenario capped at {} s (C, D), {} s of \
         contention over {} tasks each for E and E2. Took {:.0} s; load average at the end: {}.\n",
        plan.rounds,
        plan.iters,
        plan.iters,
        targets::F_TASKS,
        plan.fault_iters,
        plan.fault_cap.as_secs(),
        plan.contended.as_secs(),
        targets::E_TASKS,
        started.elapsed().as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!("### Targets: redlock vs rslock 0.10, same run\n");
    print!("{}", targets::table(&rounds));
    if let Some(path) = &args.json {
        let doc = json!({
            "machine": machine.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "rounds": targets::to_json(&rounds),
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain numbers");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("bench_report: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
