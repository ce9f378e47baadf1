//! `redlock bench`: one master against the quorum of all, in one run,
//! and the quorum with one master slowed or paused.
//!
//! Two managers are built over the same servers: `single` over the first
//! master alone (N = 1, Q = 1) and `quorum` over all of them. Each workload
//! runs once per configuration, the two back to back, so slow drift of the
//! machine (another build, thermal throttling) hits both alike. The fault
//! scenarios (3 masters or more) connect managers of their own and run
//! last, after every healthy workload.
//!
//! Modules: [`hist`] (rates, wall and CPU spans; the histograms are
//! `redlock_cli::latency`), [`workload`] (what the tasks do), [`faults`]
//! (slowed and paused master), [`report`] (the table); the slowed master's
//! delaying proxy is `redlock-testing`'s. Nothing here asserts a speed:
//! the numbers are for people.

mod faults;
mod hist;
mod report;
mod workload;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use redlock_tokio::{Master, ResourceSet, Token, TokioRuntime};
use serde::Serialize;

use crate::cli::{BenchArgs, Global};
use crate::output::{print_stdout, Failure};
use crate::signals::{Signals, STOP};
pub(crate) use faults::FaultCurves;
use faults::Faults;
pub(crate) use hist::Latency;
use hist::Span;
use workload::{Contended, Cycles, Queued, Workload};

/// The lock manager the benchmark drives: the adapter's, so that the
/// queued workload goes through its `acquire` (and its in-process FIFO
/// queue); the other workloads call its core directly.
pub(crate) type Locks = redlock_tokio::LockManager;

/// Version of the `--json` document; bumped only when a field changes
/// meaning or disappears (adding fields keeps it).
const SCHEMA: u32 = 1;

/// How long the end of the run waits for background releases (those that
/// finish after their quorum decided), so no benchmark key outlives it.
const DRAIN: Duration = Duration::from_secs(2);

/// One configuration's results (`CONFIG` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Config {
    masters: usize,
    quorum: usize,
    sequential: Workload,
    fenced: Workload,
    concurrent: Workload,
    contended: Contended,
    queued: Queued,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Document {
    schema: u32,
    masters: Vec<String>,
    iterations: u64,
    warmup: u64,
    concurrency: u64,
    contenders: u64,
    ttl_ms: u64,
    master_timeout_ms: u64,
    /// The Redis client (`--client`).
    client: &'static str,
    /// The tokio runtime (`--runtime`).
    runtime: &'static str,
    single: Config,
    quorum: Config,
    faults: Option<Faults>,
    /// Why `faults` is null.
    faults_skipped: Option<String>,
}

/// The cycle-latency histograms of one configuration, for `--plot`.
#[derive(Debug)]
pub(crate) struct Curves {
    /// Label of the configuration, e.g. `quorum (3 of 5)`.
    pub(crate) label: String,
    /// Full acquire + release cycles, sequential.
    pub(crate) sequential: Latency,
    /// Full cycles, concurrent on distinct resources.
    pub(crate) concurrent: Latency,
    /// Wait of a contender until it holds the lock.
    pub(crate) contended: Latency,
}

/// Runs `bench`.
///
/// # Errors
///
/// Masters unavailable (69), a workload in which every cycle failed (69),
/// or a plot that cannot be written (70).
/// `spawned_pids`: the servers `--spawn` started, in `urls` order (empty
/// for `--masters`); only such a server is ever paused.
pub(crate) async fn run(
    global: &Global,
    urls: &[String],
    spawned_pids: &[u32],
    args: BenchArgs,
) -> Result<u8, Failure> {
    let mut signals = Signals::install(STOP)?;
    tokio::select! {
        r = bench(global, urls, spawned_pids, &args) => r,
        // Dropping the benchmark aborts its tasks (JoinSet) and resumes a
        // paused master; their keys carry the benchmark TTL and expire on
        // their own.
        sig = signals.recv() => Err(Failure::signalled(sig)),
    }
}

/// The configurations, in table order.
const NAMES: [&str; 2] = ["single", "quorum"];

async fn bench(
    global: &Global,
    urls: &[String],
    spawned_pids: &[u32],
    args: &BenchArgs,
) -> Result<u8, Failure> {
    let first = urls
        .first()
        .ok_or_else(|| Failure::usage("bench needs at least one master"))?;
    let single = Locks::new(crate::connect(global, std::slice::from_ref(first), args.ttl).await?);
    let quorum = Locks::new(crate::connect(global, urls, args.ttl).await?);
    let addresses: Vec<String> = quorum
        .core()
        .masters()
        .iter()
        .map(|m| m.address().to_string())
        .collect();
    // A run id keeps resource names apart from other runs on the same
    // masters (a previous run's keys may still be expiring).
    let run_id: String = Token::random(&TokioRuntime)
        .expose()
        .chars()
        .take(8)
        .collect();

    let n = args.iterations;
    let c = args.concurrency;
    let k = args.contenders;
    let faults_skipped = if args.no_faults {
        Some("--no-faults".to_owned())
    } else if addresses.len() < 3 {
        Some("a fault needs a quorum that tolerates one (3 masters or more)".to_owned())
    } else {
        None
    };
    let fault_work = if faults_skipped.is_none() { 2 * n } else { 0 };
    let progress = progress_bar(args, 2 * (args.warmup + 6 * n) + fault_work);
    let managers = [(NAMES[0], &single), (NAMES[1], &quorum)];
    let name_fn = |name: &str, what: &str| {
        let base = format!("bench:{run_id}:{name}:{what}");
        move |i: u64| format!("{base}:{i}")
    };

    for (name, m) in managers {
        progress.set_message(format!("warmup, {name}"));
        let names = name_fn(name, "warmup");
        let _ = workload::cycle_loop(
            m.clone(),
            names,
            args.warmup,
            Cycles::PLAIN,
            progress.clone(),
        )
        .await;
    }
    let mut seq = Vec::new();
    let mut fenced = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("sequential, {name}"));
        let names = name_fn(name, "seq");
        seq.push(sequential(m, names, n, Cycles::PLAIN, &progress).await?);
    }
    for (name, m) in managers {
        progress.set_message(format!("fenced, {name}"));
        // One resource, locked over and over: a fence is per resource,
        // and its counter stays on the masters (removed at the end).
        let one = fence_resource(&run_id, name);
        let how = Cycles {
            fenced: true,
            deadline: None,
        };
        fenced.push(sequential(m, move |_| one.clone(), n, how, &progress).await?);
    }
    let mut conc = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("concurrent, {name}"));
        let base = format!("bench:{run_id}:{name}:conc");
        conc.push(workload::concurrent(m, &base, n, c, &progress).await);
    }
    let mut cont = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("contended, {name}"));
        let r = resource(&format!("bench:{run_id}:{name}:cont"))?;
        cont.push(workload::contended(m, &r, n, c, &progress).await);
    }
    let mut queue = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("queued, {name}"));
        let r = resource(&format!("bench:{run_id}:{name}:queued"))?;
        queue.push(workload::queued(m, &r, n, k, &progress).await);
    }
    let (faults, fault_curves) = if faults_skipped.is_none() {
        let master = addresses.last().cloned().unwrap_or_default();
        let (f, curves) =
            faults::run(global, urls, spawned_pids, master, args, &run_id, &progress).await;
        (Some(f), Some(curves))
    } else {
        (None, None)
    };
    progress.set_message("cleanup");
    for (name, m) in managers {
        remove_fence(m, &fence_resource(&run_id, name)).await;
        // Releases still finishing in the background (they return at a
        // quorum) must land before the runtime goes.
        let _ = m.shutdown(DRAIN).await;
    }
    progress.finish_and_clear();

    let mut configs = Vec::new();
    let mut curves = Vec::new();
    for (_, m) in managers {
        let q = m.core().settings().quorum();
        let (s, sh) = seq.remove(0);
        let (f, _) = fenced.remove(0);
        let (cw, ch) = conc.remove(0);
        let (kw, kh) = cont.remove(0);
        let (qw, _) = queue.remove(0);
        curves.push(Curves {
            label: if q.masters() == 1 {
                "single master".to_owned()
            } else {
                format!("quorum ({} of {})", q.needed(), q.masters())
            },
            sequential: sh,
            concurrent: ch,
            contended: kh,
        });
        configs.push(Config {
            masters: q.masters(),
            quorum: q.needed(),
            sequential: s,
            fenced: f,
            concurrent: cw,
            contended: kw,
            queued: qw,
        });
    }
    for (config, name) in configs.iter().zip(NAMES) {
        for (w, errors, done, first) in report::failures(config) {
            if errors > 0 && done == 0 {
                return Err(Failure::unavailable(format_args!(
                    "{w} workload, {name}: every cycle failed; first error: {}",
                    first.unwrap_or("?")
                )));
            }
        }
    }
    let quorum_cfg = configs
        .pop()
        .ok_or_else(|| Failure::software("no quorum results"))?;
    let single_cfg = configs
        .pop()
        .ok_or_else(|| Failure::software("no single results"))?;
    let doc = Document {
        schema: SCHEMA,
        masters: addresses,
        iterations: n,
        warmup: args.warmup,
        concurrency: c,
        contenders: k,
        ttl_ms: millis(args.ttl),
        master_timeout_ms: millis(global.master_timeout),
        client: redlock_tokio::Client::from(global.client).name(),
        runtime: args.runtime.name(),
        single: single_cfg,
        quorum: quorum_cfg,
        faults,
        faults_skipped,
    };

    if let Some(path) = &args.plot {
        crate::plot::write_svg(path, &curves, fault_curves.as_ref(), &doc.masters)?;
    }
    if args.json {
        let json = serde_json::to_string_pretty(&doc)
            .map_err(|e| Failure::software(format_args!("cannot encode JSON: {e}")))?;
        print_stdout(&format!("{json}\n"))?;
    } else {
        print_stdout(&report::render(&doc, args))?;
        if let Some(path) = &args.plot {
            print_stdout(&format!("\nplot written to {}\n", path.display()))?;
        }
    }
    Ok(0)
}

/// The sequential workload of one configuration, on a runtime worker like
/// a service's own task, next to the connection tasks (`block_on` would
/// add a thread hop each way).
async fn sequential(
    m: &Locks,
    names: impl Fn(u64) -> String + Send + 'static,
    n: u64,
    how: Cycles,
    progress: &ProgressBar,
) -> Result<(Workload, Latency), Failure> {
    let span = Span::start();
    let hists = tokio::spawn(workload::cycle_loop(
        m.clone(),
        names,
        n,
        how,
        progress.clone(),
    ))
    .await
    .map_err(|e| Failure::software(format_args!("benchmark task failed: {e}")))?;
    Ok(hists.into_workload(1, &span))
}

fn resource(name: &str) -> Result<ResourceSet, Failure> {
    ResourceSet::try_from(name)
        .map_err(|e| Failure::software(format_args!("benchmark resource {name}: {e}")))
}

/// The one resource of a configuration's fenced cycles.
fn fence_resource(run_id: &str, config: &str) -> String {
    format!("bench:{run_id}:{config}:fenced")
}

/// Removes the fence counter of the benchmark's own `resource` (a field of
/// the hash named by the key prefix) on every master: fences never expire,
/// and a benchmark run must not leave anything behind. Safe only because
/// the resource name carries this run's id: nobody else locks it.
async fn remove_fence(m: &Locks, resource: &str) {
    if let Ok(set) = ResourceSet::try_from(resource) {
        let _ = m.core().danger_forget_fences(&set).await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn progress_bar(args: &BenchArgs, total: u64) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg:<20} [{bar:30}] {pos:>7}/{len} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}
