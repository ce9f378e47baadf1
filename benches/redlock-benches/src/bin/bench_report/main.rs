//! Percentile report of the benchmarks: p50/p90/p99/max per configuration,
//! markdown tables on stdout, SVG charts into a directory.
//!
//! ```text
//! cargo run --release -p redlock-benches --bin bench_report -- \
//!     --img-dir docs/img --json target/bench-report.json > target/bench-report.md
//! ```
//!
//! Options:
//! - `--iters N`: uncontended and concurrent cycles per round (default 2000);
//! - `--fault-iters N`: cycles per fault or simulated-network scenario and
//!   round (default 500, each run capped at 15 s);
//! - `--rounds R`: every configuration runs once per round (default 3);
//!   rounds interleave the configurations, so slow drifts of a noisy machine
//!   spread over all of them, and the spread of the per-round medians is
//!   printed next to their median;
//! - `--contended-secs S`: length of each contended run (default 3);
//! - `--net-us U`: one-way delay of the simulated-network scenarios
//!   (default 250 µs);
//! - `--only A,B`: run only the configurations labelled A or B, e.g.
//!   `--only "redlock 5,rslock 5 (one paused)"` (no charts then);
//! - `--workloads W,..`: run only these of `uncontended`, `concurrent`,
//!   `contended`, `fanout` in the healthy configurations (for profiling;
//!   no charts then);
//! - `--img-dir DIR`: write the SVG charts; `--json PATH`: write the numbers;
//! - `--targets`: run only the side-by-side comparison of the performance
//!   targets (scenarios A to F of [`redlock_benches::targets`], redlock
//!   against rslock in the same rounds), with `--rounds`, `--iters`,
//!   `--fault-iters` and `--contended-secs`, and print its table.
//!
//! Criterion (`cargo bench -p redlock-benches`) gives means with confidence
//! intervals; this binary gives the percentiles the targets are stated in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redlock_benches::charts::{self, Bars, Cdf, Panel, Timeline};
use redlock_benches::fanout::ping_fanout;
use redlock_benches::scenario::{own_cpu, SLOW_ONE_WAY};
use redlock_benches::stats::{median, range, Latency};
use redlock_benches::targets::{self, Plan};
use redlock_benches::workload::{self, Retry, Stop};
use redlock_benches::{Env, Fault, Impl, Scenario};
use serde_json::json;

/// Tasks of the concurrent and contended workloads.
const TASKS: usize = 8;

/// Upper bound of one uncontended run: rslock with a paused master takes
/// about a second per cycle.
const RUN_CAP: Duration = Duration::from_secs(15);

struct Args {
    iters: u64,
    fault_iters: u64,
    rounds: usize,
    contended: Duration,
    net: Duration,
    only: Option<Vec<String>>,
    workloads: Option<Vec<String>>,
    img_dir: Option<PathBuf>,
    json: Option<PathBuf>,
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
}

fn parse_args() -> Args {
    let mut args = Args {
        iters: 2000,
        fault_iters: 500,
        rounds: 3,
        contended: Duration::from_secs(3),
        net: Duration::from_micros(250),
        only: None,
        workloads: None,
        img_dir: None,
        json: None,
        targets: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--iters" => args.iters = number(&value()),
            "--fault-iters" => args.fault_iters = number(&value()),
            "--rounds" => args.rounds = number(&value()) as usize,
            "--contended-secs" => args.contended = Duration::from_secs(number(&value())),
            "--net-us" => args.net = Duration::from_micros(number(&value())),
            "--only" => args.only = Some(value().split(',').map(str::to_owned).collect()),
            "--workloads" => {
                args.workloads = Some(value().split(',').map(str::to_owned).collect());
            }
            "--img-dir" => args.img_dir = Some(PathBuf::from(value())),
            "--json" => args.json = Some(PathBuf::from(value())),
            "--targets" => args.targets = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args.rounds = args.rounds.max(1);
    args
}

fn number(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench_report: {problem}");
    }
    eprintln!(
        "usage: bench_report [--iters N] [--fault-iters N] [--rounds R] [--contended-secs S] \
         [--net-us U] [--only A,B] [--workloads W,..] [--img-dir DIR] [--json PATH] [--targets]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

/// CPU time per cycle of a run, client side and server side.
#[derive(Default)]
struct Cpu {
    client: Duration,
    servers: Duration,
    cycles: u64,
}

impl Cpu {
    fn client_us(&self) -> f64 {
        self.client.as_secs_f64() * 1e6 / self.cycles.max(1) as f64
    }
    fn servers_us(&self) -> f64 {
        self.servers.as_secs_f64() * 1e6 / self.cycles.max(1) as f64
    }
}

/// Readings before a run, to charge the CPU it used.
struct CpuMark {
    client: Duration,
    servers: Duration,
}

impl CpuMark {
    fn now(env: &Env) -> Self {
        Self {
            client: own_cpu(),
            servers: env.server_cpu(),
        }
    }

    fn charge(self, env: &Env, cycles: u64, to: &mut Cpu) {
        to.client += own_cpu().saturating_sub(self.client);
        to.servers += env.server_cpu().saturating_sub(self.servers);
        to.cycles += cycles;
    }
}

/// Everything measured for one healthy configuration, over all rounds.
#[derive(Default)]
struct Healthy {
    acquire: Latency,
    release: Latency,
    cycle: Latency,
    cycle_p50s: Vec<f64>,
    acquire_p50s: Vec<f64>,
    release_p50s: Vec<f64>,
    failed: u64,
    uncontended_cpu: Cpu,
    uncontended_cmds: u64,
    concurrent: Latency,
    concurrent_tput: Vec<f64>,
    concurrent_cpu: Cpu,
    contended_wait: Latency,
    contended_tput: Vec<f64>,
    handoff_rate: Vec<f64>,
    contended_cmds: u64,
    contended_cycles: u64,
    gave_up: u64,
    violations: u64,
    max_share: Vec<f64>,
    fan_quorum: Latency,
    fan_all: Latency,
    fan_all_p50s: Vec<f64>,
}

/// A scenario measured with the uncontended workload only (faults,
/// simulated network), over all rounds.
#[derive(Default)]
struct Phases {
    acquire: Latency,
    release: Latency,
    cycle: Latency,
    acquire_p50s: Vec<f64>,
    release_p50s: Vec<f64>,
    cycle_p50s: Vec<f64>,
    failed: u64,
    incomplete: u64,
    /// `(seconds since the start, acquire ms, release ms)`, first round.
    timeline: Vec<(f64, f64, f64)>,
}

/// Commands the masters executed between two readings, less the `INFO`
/// calls that took the readings (one per answering master).
fn commands_between(before: u64, after: u64, env: &Env) -> u64 {
    let answering = env
        .masters()
        .iter()
        .filter(|m| m.is_running() && !m.is_paused())
        .count() as u64;
    after.saturating_sub(before).saturating_sub(answering)
}

fn report_failures(s: &Scenario, failures: &[String]) {
    for f in failures {
        eprintln!("  {}: acquire failed: {f}", s.label());
    }
}

async fn run_healthy(s: Scenario, args: &Args, out: &mut Healthy) {
    let env = Env::start(s).await;
    if args.runs("uncontended") {
        uncontended_part(&env, args, out).await;
    }
    let conc = if args.runs("concurrent") {
        concurrent_part(&env, args, out).await
    } else {
        0.0
    };
    let cont = if args.runs("contended") {
        contended_part(&env, args, out).await
    } else {
        0.0
    };
    if args.runs("fanout") {
        if let Some(f) = ping_fanout(&env.client, args.iters).await {
            out.fan_all_p50s.push(f.all.p50());
            out.fan_quorum.merge(&f.quorum);
            out.fan_all.merge(&f.all);
        }
    }
    eprintln!(
        "  {:<36} cycle p50 {:.3} ms  concurrent {:.0}/s  contended {:.0}/s",
        s.label(),
        out.cycle_p50s.last().copied().unwrap_or(0.0),
        conc,
        cont
    );
}

async fn uncontended_part(env: &Env, args: &Args, out: &mut Healthy) {
    let s = env.scenario;
    let c0 = env.commands_processed();
    let mark = CpuMark::now(env);
    let u = workload::uncontended(
        &env.client,
        args.iters,
        Some(Instant::now() + RUN_CAP),
        Duration::ZERO,
    )
    .await;
    mark.charge(env, u.samples.len() as u64, &mut out.uncontended_cpu);
    let c1 = env.commands_processed();
    report_failures(&s, &u.failures);
    out.failed += u.failed_acquires;
    out.uncontended_cmds += commands_between(c0, c1, env);
    let acquire = Latency::of(u.samples.iter().map(|x| x.acquire));
    let release = Latency::of(u.samples.iter().map(|x| x.release));
    let cycle = Latency::of(u.samples.iter().map(|x| x.cycle()));
    out.acquire_p50s.push(acquire.p50());
    out.release_p50s.push(release.p50());
    out.cycle_p50s.push(cycle.p50());
    out.acquire.merge(&acquire);
    out.release.merge(&release);
    out.cycle.merge(&cycle);
}

async fn concurrent_part(env: &Env, args: &Args, out: &mut Healthy) -> f64 {
    let mark = CpuMark::now(env);
    let conc = workload::concurrent(&env.client, TASKS, args.iters).await;
    mark.charge(env, conc.cycles.len() as u64, &mut out.concurrent_cpu);
    out.failed += conc.failed_acquires;
    out.concurrent_tput.push(conc.throughput());
    out.concurrent
        .merge(&Latency::of(conc.cycles.iter().copied()));
    conc.throughput()
}

async fn contended_part(env: &Env, args: &Args, out: &mut Healthy) -> f64 {
    let c2 = env.commands_processed();
    let cont = workload::contended(
        &env.client,
        TASKS,
        Stop::Time(args.contended),
        Retry::Library,
    )
    .await;
    let c3 = env.commands_processed();
    out.contended_tput.push(cont.throughput());
    out.handoff_rate.push(cont.handoff_rate());
    out.contended_wait
        .merge(&Latency::of(cont.waits.iter().copied()));
    // Aborted tasks' last attempts count too: they are part of the cost.
    out.contended_cmds += commands_between(c2, c3, env);
    out.contended_cycles += cont.cycles;
    out.gave_up += cont.gave_up;
    out.violations += cont.violations;
    let top = cont.per_task.iter().copied().max().unwrap_or(0);
    out.max_share.push(top as f64 / cont.cycles.max(1) as f64);
    cont.throughput()
}

async fn run_phases(s: Scenario, args: &Args, out: &mut Phases, first_round: bool) {
    let env = Env::start(s).await;
    let u = workload::uncontended(
        &env.client,
        args.fault_iters,
        Some(Instant::now() + RUN_CAP),
        s.idle,
    )
    .await;
    report_failures(&s, &u.failures);
    out.failed += u.failed_acquires;
    out.incomplete += u.incomplete_releases;
    let acquire = Latency::of(u.samples.iter().map(|x| x.acquire));
    let release = Latency::of(u.samples.iter().map(|x| x.release));
    let cycle = Latency::of(u.samples.iter().map(|x| x.cycle()));
    out.acquire_p50s.push(acquire.p50());
    out.release_p50s.push(release.p50());
    out.cycle_p50s.push(cycle.p50());
    out.acquire.merge(&acquire);
    out.release.merge(&release);
    out.cycle.merge(&cycle);
    if first_round {
        let mut t = 0.0;
        for x in &u.samples {
            out.timeline.push((
                t,
                x.acquire.as_secs_f64() * 1e3,
                x.release.as_secs_f64() * 1e3,
            ));
            t += x.cycle().as_secs_f64();
        }
    }
    eprintln!(
        "  {:<36} acquire p50 {:.3} ms  release p50 {:.3} ms  ({} cycles)",
        s.label(),
        acquire.p50(),
        release.p50(),
        u.samples.len()
    );
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

/// First line of a command's output, or `unknown`.
fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_owned();
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        ("CPUs (available parallelism)".into(), cpus),
        ("CPU model".into(), model),
        ("memory".into(), mem),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_owned(),
        ),
        (
            "redis-server".into(),
            command_line("redis-server", &["--version"]),
        ),
        ("rustc".into(), command_line("rustc", &["--version"])),
        ("load average at start".into(), load),
    ]
}

fn f3(v: f64) -> String {
    format!("{v:.3}")
}

/// `median [min–max]` of per-round values.
fn spread(values: &[f64], digits: usize) -> String {
    let (lo, hi) = range(values);
    if values.len() <= 1 {
        format!("{:.*}", digits, median(values))
    } else {
        format!(
            "{:.*} [{:.*}–{:.*}]",
            digits,
            median(values),
            digits,
            lo,
            digits,
            hi
        )
    }
}

/// Ratio of the medians of two per-round series.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a) / median(b).max(1e-9)
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let started = Instant::now();
    let machine = machine();
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
        .chain(distant_scenarios(args.net))
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
    print_report(&args, &machine, &r, started.elapsed());

    if let Some(dir) = &args.img_dir {
        if args.only.is_some() || args.workloads.is_some() {
            eprintln!("--only or --workloads: charts skipped");
        } else if let Err(e) = write_charts(dir, &args, &r) {
            eprintln!("bench_report: charts failed: {e}");
            std::process::exit(1);
        } else {
            eprintln!("charts written to {}", dir.display());
        }
    }
    if let Some(path) = &args.json {
        let doc = to_json(&machine, &r);
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
        contended: args.contended,
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

fn print_report(args: &Args, machine: &[(String, String)], r: &Results, took: Duration) {
    println!("### Machine and run\n");
    println!("| | |\n|---|---|");
    for (k, v) in machine {
        println!("| {k} | {v} |");
    }
    println!(
        "\n{} rounds; per round and configuration: {} uncontended cycles, {} concurrent \
         cycles over {TASKS} tasks, {} s of contended cycles over {TASKS} tasks, {} cycles \
         per fault or simulated-network scenario (capped at {} s). The report took {:.0} s.\n",
        args.rounds,
        args.iters,
        args.iters,
        args.contended.as_secs(),
        args.fault_iters,
        RUN_CAP.as_secs(),
        took.as_secs_f64()
    );

    println!("### Uncontended sequential cycles (ms)\n");
    println!(
        "| configuration | acquire p50 | release p50 | cycle p50 | cycle p90 | cycle p99 | \
         cycle max | client CPU µs/cycle | server CPU µs/cycle | server commands/cycle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in healthy_scenarios() {
        let Some(x) = r.h(&s) else { continue };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} |",
            s.label(),
            spread(&x.acquire_p50s, 3),
            spread(&x.release_p50s, 3),
            spread(&x.cycle_p50s, 3),
            f3(x.cycle.p90()),
            f3(x.cycle.p99()),
            f3(x.cycle.max()),
            x.uncontended_cpu.client_us(),
            x.uncontended_cpu.servers_us(),
            x.uncontended_cmds as f64 / x.uncontended_cpu.cycles.max(1) as f64,
        );
    }

    println!(
        "\n### Fan-out floor: one PING to every master in parallel over redlock's connections (ms)\n"
    );
    println!("| masters | until quorum p50 | until all p50 | until all p99 |");
    println!("|---|---|---|---|");
    for n in SIZES {
        let Some(x) = r.h(&Scenario::healthy(Impl::Redlock, n)) else {
            continue;
        };
        println!(
            "| {n} | {} | {} | {} |",
            f3(x.fan_quorum.p50()),
            spread(&x.fan_all_p50s, 3),
            f3(x.fan_all.p99())
        );
    }

    println!("\n### Quorum cost relative to one master (ratio of the medians of round p50s)\n");
    println!("| | 3 masters / 1 | 5 masters / 1 |\n|---|---|---|");
    let row = |name: &str, get: &dyn Fn(usize) -> Option<Vec<f64>>| {
        if let (Some(one), Some(three), Some(five)) = (get(1), get(3), get(5)) {
            println!(
                "| {name} | {:.2}x | {:.2}x |",
                ratio(&three, &one),
                ratio(&five, &one)
            );
        }
    };
    let hp = |imp, pick: fn(&Healthy) -> &Vec<f64>| {
        move |n| r.h(&Scenario::healthy(imp, n)).map(|x| pick(x).clone())
    };
    row(
        "redlock cycle p50, loopback",
        &hp(Impl::Redlock, |x| &x.cycle_p50s),
    );
    row(
        "redlock acquire p50, loopback",
        &hp(Impl::Redlock, |x| &x.acquire_p50s),
    );
    row(
        "redlock release p50, loopback",
        &hp(Impl::Redlock, |x| &x.release_p50s),
    );
    row(
        "PING fan-out (all replies) p50, loopback",
        &hp(Impl::Redlock, |x| &x.fan_all_p50s),
    );
    row(
        "rslock cycle p50, loopback",
        &hp(Impl::Rslock, |x| &x.cycle_p50s),
    );
    let net = args.net;
    let dp = |imp, pick: fn(&Phases) -> &Vec<f64>| {
        move |n| {
            r.p(&Scenario::distant(imp, n, net))
                .map(|x| pick(x).clone())
        }
    };
    row(
        &format!("redlock cycle p50, +{net:?} each way"),
        &dp(Impl::Redlock, |x| &x.cycle_p50s),
    );
    row(
        &format!("redlock acquire p50, +{net:?} each way"),
        &dp(Impl::Redlock, |x| &x.acquire_p50s),
    );
    row(
        &format!("rslock cycle p50, +{net:?} each way"),
        &dp(Impl::Rslock, |x| &x.cycle_p50s),
    );

    println!("\n### Simulated network: every master behind a proxy adding {net:?} each way (ms)\n");
    phase_table(r, &distant_scenarios(net), None);

    println!("\n### Concurrent cycles, {TASKS} tasks on distinct resources\n");
    println!(
        "| configuration | cycles/s | cycle p50 (ms) | cycle p99 (ms) | \
         client CPU µs/cycle | server CPU µs/cycle |"
    );
    println!("|---|---|---|---|---|---|");
    for s in healthy_scenarios() {
        let Some(x) = r.h(&s) else { continue };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} |",
            s.label(),
            spread(&x.concurrent_tput, 0),
            f3(x.concurrent.p50()),
            f3(x.concurrent.p99()),
            x.concurrent_cpu.client_us(),
            x.concurrent_cpu.servers_us(),
        );
    }

    println!("\n### Contended cycles, {TASKS} tasks on one resource (default retry policies)\n");
    println!(
        "| configuration | cycles/s | hand-offs/s | wait p50 (ms) | wait p99 (ms) | \
         busiest task's share | server commands/cycle | gave up | exclusion violations |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in healthy_scenarios() {
        let Some(x) = r.h(&s) else { continue };
        println!(
            "| {} | {} | {} | {} | {} | {:.0}% | {:.1} | {} | {} |",
            s.label(),
            spread(&x.contended_tput, 0),
            spread(&x.handoff_rate, 1),
            f3(x.contended_wait.p50()),
            f3(x.contended_wait.p99()),
            100.0 * median(&x.max_share),
            x.contended_cmds as f64 / x.contended_cycles.max(1) as f64,
            x.gave_up,
            x.violations
        );
    }

    println!("\n### redlock vs rslock (above 1: redlock ahead)\n");
    println!(
        "| masters | uncontended cycle p50, rslock/redlock | concurrent cycles/s, redlock/rslock | \
         contended cycles/s, redlock/rslock | cycle p50 +{net:?} net, rslock/redlock |"
    );
    println!("|---|---|---|---|---|");
    for n in SIZES {
        let (Some(a), Some(b)) = (
            r.h(&Scenario::healthy(Impl::Redlock, n)),
            r.h(&Scenario::healthy(Impl::Rslock, n)),
        ) else {
            continue;
        };
        let distant = match (
            r.p(&Scenario::distant(Impl::Redlock, n, net)),
            r.p(&Scenario::distant(Impl::Rslock, n, net)),
        ) {
            (Some(a), Some(b)) => format!("{:.2}x", ratio(&b.cycle_p50s, &a.cycle_p50s)),
            _ => "–".into(),
        };
        println!(
            "| {n} | {:.2}x | {:.2}x | {:.2}x | {distant} |",
            ratio(&b.cycle_p50s, &a.cycle_p50s),
            ratio(&a.concurrent_tput, &b.concurrent_tput),
            ratio(&a.contended_tput, &b.contended_tput),
        );
    }

    println!(
        "\n### Five masters, the last one proxied without delay, slowed (+{SLOW_ONE_WAY:?} each way) \
         or paused (ms)\n"
    );
    let mut rows = Vec::new();
    for imp in Impl::ALL {
        rows.push(Scenario::healthy(imp, 5));
        rows.push(Scenario::idle_between(imp, 5, IDLE));
        rows.extend(FAULTS.map(|f| Scenario::one_of_five(imp, f)));
    }
    phase_table(r, &rows, Some(()));
}

/// Acquire/release table of `rows`; healthy rows come from the uncontended
/// workload of the healthy runs.
fn phase_table(r: &Results, rows: &[Scenario], failures: Option<()>) {
    print!(
        "| configuration | acquire p50 | acquire p99 | release p50 | release p99 | \
         cycle p50 | cycles |"
    );
    if failures.is_some() {
        println!(" failed acquires | incomplete releases |");
        println!("|---|---|---|---|---|---|---|---|---|");
    } else {
        println!("\n|---|---|---|---|---|---|---|");
    }
    for s in rows {
        let (acq, acq99, rel, rel99, cyc, n, failed, incomplete) = if let Some(x) = r.p(s) {
            (
                &x.acquire_p50s,
                x.acquire.p99(),
                &x.release_p50s,
                x.release.p99(),
                &x.cycle_p50s,
                x.acquire.count(),
                x.failed,
                x.incomplete,
            )
        } else if let Some(x) = r.h(s) {
            (
                &x.acquire_p50s,
                x.acquire.p99(),
                &x.release_p50s,
                x.release.p99(),
                &x.cycle_p50s,
                x.acquire.count(),
                x.failed,
                0,
            )
        } else {
            continue;
        };
        print!(
            "| {} | {} | {} | {} | {} | {} | {n} |",
            s.label(),
            spread(acq, 3),
            f3(acq99),
            spread(rel, 3),
            f3(rel99),
            spread(cyc, 3),
        );
        if failures.is_some() {
            println!(" {failed} | {incomplete} |");
        } else {
            println!();
        }
    }
}

fn write_charts(dir: &Path, args: &Args, r: &Results) -> charts::ChartResult {
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
                values: pick(&|x| median(&x.cycle_p50s)),
            },
            Bars {
                name: "p90".into(),
                values: pick(&|x| x.cycle.p90()),
            },
            Bars {
                name: "p99".into(),
                values: pick(&|x| x.cycle.p99()),
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
    let cdf_panel = |imp: Impl, distant: bool| Panel {
        title: if distant {
            format!("{}, +{:?} each way", imp.name(), args.net)
        } else {
            format!("{}, loopback", imp.name())
        },
        lines: SIZES
            .iter()
            .filter_map(|&n| {
                let points = if distant {
                    r.p(&Scenario::distant(imp, n, args.net))?.cycle.cdf()
                } else {
                    r.h(&Scenario::healthy(imp, n))?.cycle.cdf()
                };
                Some(Cdf {
                    name: format!("{n} master{}", if n == 1 { "" } else { "s" }),
                    points,
                })
            })
            .collect(),
    };
    charts::cdf_panels(
        &dir.join("uncontended_cdf.svg"),
        "Uncontended cycle latency by number of masters, cumulative distribution",
        2,
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
            let (a, rel) = r
                .h(&s)
                .map(|x| (&x.acquire, &x.release))
                .or_else(|| r.p(&s).map(|x| (&x.acquire, &x.release)))
                .ok_or("missing scenario")?;
            let name = format!("{} {what}", imp.name());
            acquire.push(Cdf {
                name: name.clone(),
                points: a.cdf(),
            });
            release.push(Cdf {
                name,
                points: rel.cdf(),
            });
        }
    }
    charts::cdf_panels(
        &dir.join("faults_cdf.svg"),
        &format!(
            "Five masters, the last one healthy, slowed (+{SLOW_ONE_WAY:?} each way) or paused"
        ),
        2,
        &[
            Panel {
                title: "acquire".into(),
                lines: acquire,
            },
            Panel {
                title: "release".into(),
                lines: release,
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

fn to_json(machine: &[(String, String)], r: &Results) -> serde_json::Value {
    let lat = |l: &Latency| {
        json!({ "count": l.count(), "p50_ms": l.p50(), "p90_ms": l.p90(),
                "p99_ms": l.p99(), "max_ms": l.max() })
    };
    let healthy: serde_json::Map<_, _> = r
        .healthy
        .iter()
        .map(|(k, x)| {
            (
                k.clone(),
                json!({
                    "uncontended": {
                        "acquire": lat(&x.acquire), "release": lat(&x.release),
                        "cycle": lat(&x.cycle), "cycle_p50_per_round_ms": x.cycle_p50s,
                        "client_cpu_us_per_cycle": x.uncontended_cpu.client_us(),
                        "server_cpu_us_per_cycle": x.uncontended_cpu.servers_us(),
                        "failed_acquires": x.failed,
                    },
                    "concurrent": {
                        "cycle": lat(&x.concurrent),
                        "cycles_per_s_per_round": x.concurrent_tput,
                        "client_cpu_us_per_cycle": x.concurrent_cpu.client_us(),
                        "server_cpu_us_per_cycle": x.concurrent_cpu.servers_us(),
                    },
                    "contended": {
                        "wait": lat(&x.contended_wait),
                        "cycles_per_s_per_round": x.contended_tput,
                        "handoffs_per_s_per_round": x.handoff_rate,
                        "gave_up": x.gave_up, "violations": x.violations,
                    },
                    "fanout": { "quorum": lat(&x.fan_quorum), "all": lat(&x.fan_all) },
                }),
            )
        })
        .collect();
    let phases: serde_json::Map<_, _> = r
        .phases
        .iter()
        .map(|(k, x)| {
            (
                k.clone(),
                json!({
                    "acquire": lat(&x.acquire), "release": lat(&x.release), "cycle": lat(&x.cycle),
                    "acquire_p50_per_round_ms": x.acquire_p50s,
                    "release_p50_per_round_ms": x.release_p50s,
                    "failed_acquires": x.failed, "incomplete_releases": x.incomplete,
                }),
            )
        })
        .collect();
    json!({
        "machine": machine.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "healthy": healthy,
        "one_workload": phases,
    })
}
