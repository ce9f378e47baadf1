//! The report: markdown tables on stdout, the numbers as JSON.

use std::process::Command;
use std::time::Duration;

use redlock_benches::scenario::SLOW_ONE_WAY;
use redlock_benches::stats::{median, range, Latency};
use redlock_benches::{Flavor, Impl, Scenario};
use serde_json::json;

use crate::measure::{Healthy, Phases};
use crate::{
    distant_scenarios, healthy_scenarios, Args, Results, FAULTS, IDLE, RUN_CAP, SIZES, TASKS,
};

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

/// The machine and run facts printed above every report (and put in its
/// JSON), `runtime` among them.
pub(crate) fn machine(runtime: Flavor) -> Vec<(String, String)> {
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
        (
            "redlock's Redis client (REDLOCK_CLIENT)".into(),
            redlock_benches::scenario::redlock_client().name().into(),
        ),
        ("tokio runtime (--runtime)".into(), runtime.name().into()),
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

/// A row of the quorum-cost table: its label, the implementation, and
/// which per-round series of a configuration it compares.
type Series<M> = (&'static str, Impl, fn(&M) -> &Vec<f64>);

pub(crate) fn print_report(args: &Args, machine: &[(String, String)], r: &Results, took: Duration) {
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
        args.contended_secs,
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
            spread(&x.cycles.acquire_p50s, 3),
            spread(&x.cycles.release_p50s, 3),
            spread(&x.cycles.cycle_p50s, 3),
            f3(x.cycles.cycle.p90()),
            f3(x.cycles.cycle.p99()),
            f3(x.cycles.cycle.max()),
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
    let loopback: [Series<Healthy>; 5] = [
        ("redlock cycle p50", Impl::Redlock, |x| &x.cycles.cycle_p50s),
        ("redlock acquire p50", Impl::Redlock, |x| {
            &x.cycles.acquire_p50s
        }),
        ("redlock release p50", Impl::Redlock, |x| {
            &x.cycles.release_p50s
        }),
        ("PING fan-out (all replies) p50", Impl::Redlock, |x| {
            &x.fan_all_p50s
        }),
        ("rslock cycle p50", Impl::Rslock, |x| &x.cycles.cycle_p50s),
    ];
    for (what, imp, pick) in loopback {
        row(&format!("{what}, loopback"), &hp(imp, pick));
    }
    let net = args.net();
    let dp = |imp, pick: fn(&Phases) -> &Vec<f64>| {
        move |n| {
            r.p(&Scenario::distant(imp, n, net))
                .map(|x| pick(x).clone())
        }
    };
    let distant: [Series<Phases>; 3] = [
        ("redlock cycle p50", Impl::Redlock, |x| &x.cycles.cycle_p50s),
        ("redlock acquire p50", Impl::Redlock, |x| {
            &x.cycles.acquire_p50s
        }),
        ("rslock cycle p50", Impl::Rslock, |x| &x.cycles.cycle_p50s),
    ];
    for (what, imp, pick) in distant {
        row(&format!("{what}, +{net:?} each way"), &dp(imp, pick));
    }

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
            (Some(a), Some(b)) => {
                format!("{:.2}x", ratio(&b.cycles.cycle_p50s, &a.cycles.cycle_p50s))
            }
            _ => "–".into(),
        };
        println!(
            "| {n} | {:.2}x | {:.2}x | {:.2}x | {distant} |",
            ratio(&b.cycles.cycle_p50s, &a.cycles.cycle_p50s),
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
                &x.cycles.acquire_p50s,
                x.cycles.acquire.p99(),
                &x.cycles.release_p50s,
                x.cycles.release.p99(),
                &x.cycles.cycle_p50s,
                x.cycles.acquire.count(),
                x.failed,
                x.incomplete,
            )
        } else if let Some(x) = r.h(s) {
            (
                &x.cycles.acquire_p50s,
                x.cycles.acquire.p99(),
                &x.cycles.release_p50s,
                x.cycles.release.p99(),
                &x.cycles.cycle_p50s,
                x.cycles.acquire.count(),
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

pub(crate) fn to_json(machine: &[(String, String)], r: &Results) -> serde_json::Value {
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
                        "acquire": lat(&x.cycles.acquire), "release": lat(&x.cycles.release),
                        "cycle": lat(&x.cycles.cycle), "cycle_p50_per_round_ms": x.cycles.cycle_p50s,
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
                    "acquire": lat(&x.cycles.acquire), "release": lat(&x.cycles.release), "cycle": lat(&x.cycles.cycle),
                    "acquire_p50_per_round_ms": x.cycles.acquire_p50s,
                    "release_p50_per_round_ms": x.cycles.release_p50s,
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
