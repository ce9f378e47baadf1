//! redlock, rslock and node-redlock side by side on scenarios A to E2 of
//! the targets, in rounds: sequential cycles on 1 master (A) and on 5
//! masters, healthy (B), the last one slowed by 20 ms each way (C) or
//! `SIGSTOP`ped (D); 16 tasks on one resource for 3 s with each library's
//! own retry (E) or one attempt per call and 0–10 ms of the caller's
//! jitter (E2).
//!
//! ```text
//! (cd benches/node-redlock && npm ci)
//! target/release/peer_compare [--rounds R] [--cycles N] [--node-dir DIR]
//! ```
//!
//! Every run gets fresh masters. redlock and rslock run in this process
//! through the benches' own scenarios ([`Env`]); node-redlock (5.0.0-beta.2
//! over ioredis, `benches/node-redlock/cycle.mjs`) runs as a `node`
//! process against masters and a delaying proxy started here, the same
//! [`redlock_testing::Proxy`] in the same mode, and pauses the master this
//! process started (its pid) after its warm-up. The order of the three
//! rotates from round to round. It prints each round's numbers, then the
//! medians over the rounds and the ratios. Nothing here asserts a speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use redlock_benches::scenario::SLOW_ONE_WAY;
use redlock_benches::stats::median;
use redlock_benches::targets::{self, E2_JITTER, E_TASKS};
use redlock_benches::workload::{Retry, Stop};
use redlock_benches::{workload, Env, Fault, Flavor, Impl, Scenario};
use redlock_testing::{Masters, Mode, Proxy};

/// The implementations compared, in the order of round 1.
const PEERS: [&str; 3] = ["redlock", "rslock", "node-redlock"];
/// The scenarios, as `targets` names them: masters, and the last one's fault.
const SCENARIOS: [(&str, usize, Fault); 4] = [
    ("A", 1, Fault::None),
    ("B", 5, Fault::None),
    ("C", 5, Fault::Slowed),
    ("D", 5, Fault::Paused),
];
/// Index of B in [`SCENARIOS`], the base of C / B and D / B.
const B: usize = 1;
/// The contention scenarios: whether the library's own retry waits (E) or
/// the caller retries after its jitter (E2).
const CONTENTION: [(&str, bool); 2] = [("E", true), ("E2", false)];

/// redlock, rslock and node-redlock side by side on scenarios A to E2
/// (cycle p50, critical sections per second), fresh masters for every run.
#[derive(Parser, Debug)]
#[command(name = "peer_compare")]
struct Args {
    /// Rounds; the order of the three implementations rotates by round.
    #[arg(long, value_name = "R", default_value_t = 3, value_parser = at_least_one)]
    rounds: usize,
    /// Sequential cycles per implementation, scenario and round (fault
    /// runs capped at 8 s).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    cycles: u64,
    /// The folder of `cycle.mjs`, with node-redlock installed (`npm ci`).
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../node-redlock"))]
    node_dir: PathBuf,
    /// The tokio runtime of redlock and rslock: `multi` (tokio's default,
    /// one worker per CPU) or `current` (one thread, as node runs
    /// node-redlock).
    #[arg(long, value_enum, default_value_t = Flavor::Multi)]
    runtime: Flavor,
}

/// A count of at least 1, for `--rounds`.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a count of at least 1")),
    }
}

/// Stops the run with what went wrong on node-redlock's side.
fn fail(problem: &str) -> ! {
    eprintln!("peer_compare: {problem}");
    std::process::exit(2)
}

fn main() {
    let args = Args::parse();
    match args.runtime.runtime() {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(e) => fail(&format!("no tokio runtime: {e}")),
    }
}

async fn run(args: Args) {
    let Args {
        rounds,
        cycles,
        node_dir,
        runtime,
    } = args;
    if !node_dir.join("node_modules/redlock").is_dir() {
        fail(&format!(
            "no node-redlock in {}/node_modules: run `npm ci` there first",
            node_dir.display()
        ));
    }
    let p50 = in_rounds(
        rounds,
        &SCENARIOS.map(|(name, ..)| name),
        async |s, peer| {
            let (_, n, fault) = SCENARIOS[s];
            match peer {
                0 => ours(Impl::Redlock, n, fault, cycles).await,
                1 => ours(Impl::Rslock, n, fault, cycles).await,
                _ => node(&node_dir, n, fault, cycles).await,
            }
        },
        |us| format!("cycle p50 {us:.0} µs"),
    )
    .await;
    // (CS/s, fewest / most per task).
    let contended = in_rounds(
        rounds,
        &CONTENTION.map(|(name, _)| name),
        async |c, peer| {
            let (_, library) = CONTENTION[c];
            match peer {
                0 => ours_contended(Impl::Redlock, library).await,
                1 => ours_contended(Impl::Rslock, library).await,
                _ => node_contended(&node_dir, library).await,
            }
        },
        |(cs, fairness)| format!("{cs:.0} CS/s, fewest / most {fairness:.2}"),
    )
    .await;
    let rate =
        |c: usize, peer: usize| -> Vec<f64> { contended[c][peer].iter().map(|x| x.0).collect() };
    let fair =
        |c: usize, peer: usize| -> Vec<f64> { contended[c][peer].iter().map(|x| x.1).collect() };
    println!("| scenario | redlock | rslock | node-redlock | redlock / node-redlock | redlock / rslock |");
    println!("|---|---|---|---|---|---|");
    for (s, &(name, ..)) in SCENARIOS.iter().enumerate() {
        let [r, rs, n] = [0, 1, 2].map(|peer| median(&p50[s][peer]));
        println!(
            "| {name} | {r:.0} µs | {rs:.0} µs | {n:.0} µs | {:.2} | {:.2} |",
            ratio(&p50[s][0], &p50[s][2]),
            ratio(&p50[s][0], &p50[s][1])
        );
    }
    for (peer, name) in PEERS.iter().enumerate() {
        let of = |s: usize, base: usize| ratio(&p50[s][peer], &p50[base][peer]);
        println!(
            "{name}: B / A {:.2}, C / B {:.2}, D / B {:.2} (medians of the per-round ratios)",
            of(B, 0),
            of(2, B),
            of(3, B)
        );
    }
    for (c, &(name, _)) in CONTENTION.iter().enumerate() {
        let [r, rs, n] = [0, 1, 2].map(|peer| {
            format!(
                "{:.0} CS/s ({:.2})",
                median(&rate(c, peer)),
                median(&fair(c, peer))
            )
        });
        println!(
            "| {name} (fewest / most) | {r} | {rs} | {n} | {:.2} | {:.2} |",
            ratio(&rate(c, 0), &rate(c, 2)),
            ratio(&rate(c, 0), &rate(c, 1))
        );
    }
    println!(
        "{rounds} rounds, {cycles} sequential cycles per run (fault runs capped at {} s), \
         {E_TASKS} tasks for {} s per contention run; redlock and rslock on tokio's {} runtime.",
        CAP.as_secs(),
        CONTENDED.as_secs(),
        match runtime {
            Flavor::Multi => "multi-thread",
            Flavor::Current => "current-thread",
        }
    );
}

/// `run(scenario, peer)` for each of the `scenarios` (their names) and
/// each of the [`PEERS`], `rounds` times, the peers' order rotating by
/// round; a line per run on stderr (`show`). Results by scenario, peer,
/// round.
async fn in_rounds<T>(
    rounds: usize,
    scenarios: &[&str],
    mut run: impl AsyncFnMut(usize, usize) -> T,
    show: impl Fn(&T) -> String,
) -> Vec<Vec<Vec<T>>> {
    let mut out: Vec<Vec<Vec<T>>> = scenarios
        .iter()
        .map(|_| PEERS.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (s, name) in scenarios.iter().enumerate() {
            for k in 0..PEERS.len() {
                let peer = (k + round) % PEERS.len();
                let got = run(s, peer).await;
                eprintln!(
                    "round {}/{rounds}: {name} {}: {}",
                    round + 1,
                    PEERS[peer],
                    show(&got)
                );
                out[s][peer].push(got);
            }
        }
    }
    out
}

/// The median over the rounds of `a / b`, taken within each round (as
/// `targets` does: a drift of the machine hits both sides of a ratio).
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let per_round: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&per_round)
}

/// Longest run of one implementation in one scenario (rslock takes about a
/// second per cycle with a paused master).
const CAP: Duration = Duration::from_secs(8);

/// Cycle p50 (µs) of redlock or rslock in the benches' own scenario.
async fn ours(imp: Impl, masters: usize, fault: Fault, cycles: u64) -> f64 {
    let scenario = match fault {
        Fault::None => Scenario::healthy(imp, masters),
        f => Scenario::one_of_five(imp, f),
    };
    let env = Env::start(scenario).await;
    targets::sequential(&env, cycles, CAP).await.p50
}

/// Length of each contention run.
const CONTENDED: Duration = Duration::from_secs(3);

/// CS/s and fewest / most per task of redlock or rslock under contention.
async fn ours_contended(imp: Impl, library: bool) -> (f64, f64) {
    let env = Env::start(Scenario::healthy(imp, 5)).await;
    let retry = if library {
        Retry::Library
    } else {
        Retry::Caller { jitter: E2_JITTER }
    };
    let run = workload::contended(&env.client, E_TASKS, Stop::Time(CONTENDED), retry).await;
    assert_eq!(run.violations, 0, "{}: two holders at once", imp.name());
    let (min, max) = run.min_max();
    (run.throughput(), min as f64 / (max as f64).max(1.0))
}

/// Cycle p50 (µs) of node-redlock, from `cycle.mjs`'s line, against
/// `n` masters started here (the last slowed or paused as `fault` says).
async fn node(dir: &Path, n: usize, fault: Fault, cycles: u64) -> f64 {
    let line = run_node(dir, n, fault, vec!["--cycles".into(), cycles.to_string()]).await;
    // "... p50 acquire A / release R / cycle C µs, ..."
    number_after(&line, "/ cycle ")
}

/// CS/s and fewest / most per task of node-redlock under contention.
async fn node_contended(dir: &Path, library: bool) -> (f64, f64) {
    let mode = if library { "library" } else { "jitter" };
    let args = ["--contend", mode, "--tasks", &E_TASKS.to_string(), "--secs"]
        .map(str::to_owned)
        .into_iter()
        .chain([CONTENDED.as_secs().to_string()])
        .collect();
    let line = run_node(dir, 5, Fault::None, args).await;
    // "...: R CS/s, fewest/most MIN/MAX, violations V, ..."
    let rate = number_after(&line, ": ");
    let min = number_after(&line, "fewest/most ");
    let max = number_after(&line, &format!("fewest/most {min}/"));
    if number_after(&line, "violations ") != 0.0 {
        fail(&format!("node-redlock: two holders at once: {line}"));
    }
    (rate, min / max.max(1.0))
}

/// The number that follows `marker` in `line` (up to a space, `/` or `,`).
fn number_after(line: &str, marker: &str) -> f64 {
    line.split_once(marker)
        .and_then(|(_, rest)| {
            rest.split([' ', '/', ','])
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| fail(&format!("unexpected output of cycle.mjs: {line}")))
}

/// Runs `cycle.mjs` with `args` against `n` masters started here (the
/// last slowed or paused as `fault` says) and returns its output line.
async fn run_node(dir: &Path, n: usize, fault: Fault, args: Vec<String>) -> String {
    let masters = tokio::task::spawn_blocking(move || Masters::start(n))
        .await
        .expect("starting the masters panicked");
    let last = n - 1;
    let mut urls = masters.urls();
    let _proxy = (fault == Fault::Slowed).then(|| {
        let p = Proxy::start_with_mode(masters[last].addr(), Mode::Delay(SLOW_ONE_WAY))
            .expect("proxy binds a loopback port");
        urls[last] = p.url();
        p
    });
    let mut cmd = Command::new("node");
    cmd.current_dir(dir)
        .arg("cycle.mjs")
        .args(["--urls", &urls.join(",")])
        .args(args);
    if fault == Fault::Paused {
        cmd.args(["--pause-pid", &masters[last].pid().to_string()]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("waiting for node panicked")
        .unwrap_or_else(|e| fail(&format!("cannot run node: {e}")));
    if fault == Fault::Paused {
        masters[last].resume();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        fail(&format!(
            "node-redlock failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    stdout
}
