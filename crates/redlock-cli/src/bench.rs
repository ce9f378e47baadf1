//! `redlock bench`: one master against the quorum of all, in one run.
//!
//! Two managers are built over the same servers: `single` over the first
//! master alone (N = 1, Q = 1) and `quorum` over all of them. Each workload
//! runs once per configuration, the two back to back, so slow drift of the
//! machine (another build, thermal throttling) hits both alike.
//!
//! Latencies are recorded in microseconds into HdrHistograms (3 significant
//! digits), so percentiles are exact to 0.1% whatever the spread. Nothing
//! here asserts a speed: the numbers are for people.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use redlock_core::{AcquireOptions, ResourceSet, RetryPolicy, Token};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::cli::{BenchArgs, Global};
use crate::output::{print_stdout, Align, Failure, Table};
use crate::signals::{Signals, STOP};
use crate::Manager;

/// Version of the `--json` document; bumped only when a field changes
/// meaning or disappears (adding fields keeps it).
const SCHEMA: u32 = 1;

/// Longest latency a histogram holds (one hour, in µs); longer ones are
/// clamped rather than lost.
const MAX_US: u64 = 3_600_000_000;

/// How long a contender may wait for the lock before the cycle counts as
/// an error: far above any sane wait, only there so a stuck master cannot
/// hang the benchmark.
const CONTENDED_WAIT: Duration = Duration::from_secs(60);

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub(crate) struct Lat(Histogram<u64>);

impl Lat {
    fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant bounds: 1 <= low, high >= 2 * low, sigfig 3 <= 5"),
        )
    }

    fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.0.saturating_record(us);
    }

    fn merge(&mut self, other: &Lat) {
        // Same bounds everywhere, so adding cannot fail; if it ever did,
        // dropping one task's samples is better than aborting the run.
        let _ = self.0.add(&other.0);
    }

    /// The histogram, for plotting.
    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    fn summary(&self) -> LatSummary {
        let h = &self.0;
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0 } else { h.value_at_quantile(x) };
        LatSummary {
            count: h.len(),
            min_us: if empty { 0 } else { h.min() },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: if empty { 0 } else { h.max() },
            mean_us: if empty { 0.0 } else { round1(h.mean()) },
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Wall-clock and CPU time of a workload. The CPU time is this process's
/// (the client's) alone: spawned servers are children and not counted, so
/// it shows what a quorum costs the client itself, which is what remains
/// when the masters run on hosts of their own.
#[derive(Debug)]
struct Span {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Span {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: crate::sys::process_cpu_time(),
        }
    }

    /// Wall time so far, and client CPU µs per `ops` operations (0 when
    /// unknown).
    fn finish(&self, ops: u64) -> (Duration, f64) {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, crate::sys::process_cpu_time()) {
            (Some(a), Some(b)) if ops > 0 => {
                round1(b.saturating_sub(a).as_secs_f64() * 1e6 / ops as f64)
            }
            _ => 0.0,
        };
        (wall, cpu)
    }
}

/// Latency percentiles of one operation (`LATENCY` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LatSummary {
    count: u64,
    min_us: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
    mean_us: f64,
}

/// An uncontended workload's results (`WORKLOAD` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Workload {
    tasks: u64,
    cycles: u64,
    errors: u64,
    elapsed_ms: f64,
    cycles_per_sec: f64,
    client_cpu_us_per_cycle: f64,
    acquire: LatSummary,
    release: LatSummary,
    cycle: LatSummary,
    #[serde(skip)]
    first_error: Option<String>,
}

/// The contended workload's results (`CONTENDED` in the schema).
///
/// A task that releases and asks again at once usually wins again, while
/// the others sleep in their backoff; so "acquisitions" and "hand-offs"
/// (the lock going to a *different* task) are counted apart.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Contended {
    tasks: u64,
    acquisitions: u64,
    errors: u64,
    elapsed_ms: f64,
    acquisitions_per_sec: f64,
    client_cpu_us_per_acquisition: f64,
    owner_changes: u64,
    handoffs_per_sec: f64,
    wait: LatSummary,
    handoff_wait: LatSummary,
    release: LatSummary,
    #[serde(skip)]
    first_error: Option<String>,
}

/// One configuration's results (`CONFIG` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Config {
    masters: usize,
    quorum: usize,
    sequential: Workload,
    concurrent: Workload,
    contended: Contended,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Document {
    schema: u32,
    masters: Vec<String>,
    iterations: u64,
    warmup: u64,
    concurrency: u64,
    ttl_ms: u64,
    master_timeout_ms: u64,
    single: Config,
    quorum: Config,
}

/// The cycle-latency histograms of one configuration, for `--plot`.
#[derive(Debug)]
pub(crate) struct Curves {
    /// Label of the configuration, e.g. `quorum (3 of 5)`.
    pub(crate) label: String,
    /// Full acquire + release cycles, sequential.
    pub(crate) sequential: Lat,
    /// Full cycles, concurrent on distinct resources.
    pub(crate) concurrent: Lat,
    /// Wait of a contender until it holds the lock.
    pub(crate) contended: Lat,
}

/// Runs `bench`.
///
/// # Errors
///
/// Masters unavailable (69), a workload in which every cycle failed (69),
/// or a plot that cannot be written (70).
pub(crate) async fn run(global: &Global, urls: &[String], args: BenchArgs) -> Result<u8, Failure> {
    let mut signals = Signals::install(STOP)?;
    tokio::select! {
        r = bench(global, urls, &args) => r,
        // Dropping the benchmark aborts its tasks (JoinSet); their keys
        // carry the benchmark TTL and expire on their own.
        sig = signals.recv() => Err(Failure::signalled(sig)),
    }
}

async fn bench(global: &Global, urls: &[String], args: &BenchArgs) -> Result<u8, Failure> {
    let first = urls
        .first()
        .ok_or_else(|| Failure::usage("bench needs at least one master"))?;
    let single = Arc::new(crate::connect(global, std::slice::from_ref(first), args.ttl).await?);
    let quorum = Arc::new(crate::connect(global, urls, args.ttl).await?);
    let addresses: Vec<String> = quorum
        .masters()
        .iter()
        .map(|m| m.address_str().to_owned())
        .collect();
    // A run id keeps resource names apart from other runs on the same
    // masters (a previous run's keys may still be expiring).
    let run_id: String = Token::random().expose().chars().take(8).collect();

    let n = args.iterations;
    let c = args.concurrency;
    let progress = progress_bar(args, 2 * (args.warmup + 3 * n));
    let managers = [("single", &single), ("quorum", &quorum)];

    for (name, m) in managers {
        progress.set_message(format!("warmup, {name}"));
        let rid = run_id.clone();
        let names = move |i: u64| format!("bench:{rid}:{name}:warmup:{i}");
        let _ = cycle_loop(Arc::clone(m), names, args.warmup, progress.clone()).await;
    }
    let mut seq = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("sequential, {name}"));
        let rid = run_id.clone();
        let names = move |i: u64| format!("bench:{rid}:{name}:seq:{i}");
        let span = Span::start();
        // On a runtime worker, like a service's own task, next to the
        // connection tasks (`block_on` would add a thread hop each way).
        let hists = tokio::spawn(cycle_loop(Arc::clone(m), names, n, progress.clone()))
            .await
            .map_err(|e| Failure::software(format_args!("benchmark task failed: {e}")))?;
        seq.push(hists.into_workload(1, &span));
    }
    let mut conc = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("concurrent, {name}"));
        conc.push(concurrent(m, &format!("bench:{run_id}:{name}:conc"), n, c, &progress).await);
    }
    let mut cont = Vec::new();
    for (name, m) in managers {
        progress.set_message(format!("contended, {name}"));
        cont.push(contended(m, &format!("bench:{run_id}:{name}:cont"), n, c, &progress).await);
    }
    progress.finish_and_clear();

    let mut configs = Vec::new();
    let mut curves = Vec::new();
    for (_, m) in managers {
        let q = m.settings().quorum();
        let (s, sh) = seq.remove(0);
        let (cw, ch) = conc.remove(0);
        let (k, kh) = cont.remove(0);
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
            concurrent: cw,
            contended: k,
        });
    }
    for (config, name) in configs.iter().zip(["single", "quorum"]) {
        for (w, errors, cycles, first) in [
            (
                "sequential",
                config.sequential.errors,
                config.sequential.cycles,
                &config.sequential.first_error,
            ),
            (
                "concurrent",
                config.concurrent.errors,
                config.concurrent.cycles,
                &config.concurrent.first_error,
            ),
            (
                "contended",
                config.contended.errors,
                config.contended.acquisitions,
                &config.contended.first_error,
            ),
        ] {
            if errors > 0 && cycles == 0 {
                return Err(Failure::unavailable(format_args!(
                    "{w} workload, {name}: every cycle failed; first error: {}",
                    first.as_deref().unwrap_or("?")
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
        ttl_ms: millis(args.ttl),
        master_timeout_ms: millis(global.master_timeout),
        single: single_cfg,
        quorum: quorum_cfg,
    };

    if let Some(path) = &args.plot {
        crate::plot::write_svg(path, &curves, &doc.masters)?;
    }
    if args.json {
        let json = serde_json::to_string_pretty(&doc)
            .map_err(|e| Failure::software(format_args!("cannot encode JSON: {e}")))?;
        print_stdout(&format!("{json}\n"))?;
    } else {
        print_stdout(&render(&doc, args))?;
        if let Some(path) = &args.plot {
            print_stdout(&format!("\nplot written to {}\n", path.display()))?;
        }
    }
    Ok(0)
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

/// Histograms of one uncontended loop.
#[derive(Debug)]
struct Hists {
    acquire: Lat,
    release: Lat,
    cycle: Lat,
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Hists {
    fn new() -> Self {
        Self {
            acquire: Lat::new(),
            release: Lat::new(),
            cycle: Lat::new(),
            cycles: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, o: &Hists) {
        self.acquire.merge(&o.acquire);
        self.release.merge(&o.release);
        self.cycle.merge(&o.cycle);
        self.cycles += o.cycles;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn into_workload(self, tasks: u64, span: &Span) -> (Workload, Lat) {
        let (elapsed, cpu) = span.finish(self.cycles + self.errors);
        let secs = elapsed.as_secs_f64();
        let w = Workload {
            tasks,
            cycles: self.cycles,
            errors: self.errors,
            elapsed_ms: round1(secs * 1000.0),
            cycles_per_sec: if secs > 0.0 {
                round1(self.cycles as f64 / secs)
            } else {
                0.0
            },
            client_cpu_us_per_cycle: cpu,
            acquire: self.acquire.summary(),
            release: self.release.summary(),
            cycle: self.cycle.summary(),
            first_error: self.first_error,
        };
        (w, self.cycle)
    }
}

/// `n` acquire + release cycles, one after the other, on `name(i)`.
async fn cycle_loop(
    m: Arc<Manager>,
    name: impl Fn(u64) -> String,
    n: u64,
    progress: ProgressBar,
) -> Hists {
    let mut h = Hists::new();
    for i in 0..n {
        // Name checks happen outside the timed region.
        let set = match ResourceSet::try_from(name(i)) {
            Ok(s) => s,
            Err(e) => {
                h.error(e);
                continue;
            }
        };
        let t0 = Instant::now();
        match m.try_acquire(&set).await {
            Ok(lock) => {
                let t1 = Instant::now();
                match m.release(lock).await {
                    Ok(_) => {
                        let t2 = Instant::now();
                        h.acquire.record(t1 - t0);
                        h.release.record(t2 - t1);
                        h.cycle.record(t2 - t0);
                        h.cycles += 1;
                    }
                    Err(e) => h.error(e),
                }
            }
            Err(e) => h.error(e),
        }
        progress.inc(1);
    }
    h
}

/// `c` tasks, each cycling on a resource of its own, `n` cycles in total.
async fn concurrent(
    m: &Arc<Manager>,
    base: &str,
    n: u64,
    c: u64,
    progress: &ProgressBar,
) -> (Workload, Lat) {
    let mut set = JoinSet::new();
    let span = Span::start();
    for task in 0..c {
        let share = n / c + u64::from(task < n % c);
        let name = format!("{base}:{task}");
        let (m, p) = (Arc::clone(m), progress.clone());
        set.spawn(cycle_loop(m, move |_| name.clone(), share, p));
    }
    let mut total = Hists::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(h) => total.merge(&h),
            Err(e) => total.error(format_args!("benchmark task failed: {e}")),
        }
    }
    total.into_workload(c, &span)
}

/// `c` tasks on one resource, until `n` acquisitions in total.
async fn contended(
    m: &Arc<Manager>,
    name: &str,
    n: u64,
    c: u64,
    progress: &ProgressBar,
) -> (Contended, Lat) {
    let resource = match ResourceSet::try_from(name) {
        Ok(r) => r,
        Err(e) => {
            let mut k = empty_contended(c);
            k.errors = 1;
            k.first_error = Some(e.to_string());
            return (k, Lat::new());
        }
    };
    // What a caller of `acquire` gets by default (50 ms doubling to 1 s,
    // equal jitter), without the retry count, so that only the deadline
    // ends a wait.
    let opts = Arc::new(
        AcquireOptions::new()
            .retry(RetryPolicy::default().until_deadline())
            .wait(Some(CONTENDED_WAIT)),
    );
    let remaining = Arc::new(AtomicU64::new(n));
    let last_owner = Arc::new(AtomicUsize::new(usize::MAX));
    let changes = Arc::new(AtomicU64::new(0));
    let span = Span::start();
    let mut set = JoinSet::new();
    for task in 0..c {
        let task = usize::try_from(task).unwrap_or(usize::MAX - 1);
        let (m, p, opts, resource) = (
            Arc::clone(m),
            progress.clone(),
            Arc::clone(&opts),
            resource.clone(),
        );
        let (remaining, last_owner, changes) = (
            Arc::clone(&remaining),
            Arc::clone(&last_owner),
            Arc::clone(&changes),
        );
        set.spawn(async move {
            let mut wait = Lat::new();
            let mut handoff_wait = Lat::new();
            let mut h = Hists::new();
            while remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .is_ok()
            {
                let t0 = Instant::now();
                match m.acquire_with(&resource, &opts, Token::random()).await {
                    Ok(lock) => {
                        let t1 = Instant::now();
                        wait.record(t1 - t0);
                        // Only the holder writes here, so the swap sees the
                        // previous holder.
                        let prev = last_owner.swap(task, Ordering::AcqRel);
                        if prev != usize::MAX && prev != task {
                            changes.fetch_add(1, Ordering::Relaxed);
                            handoff_wait.record(t1 - t0);
                        }
                        match m.release(lock).await {
                            Ok(_) => {
                                h.release.record(t1.elapsed());
                                h.cycles += 1;
                            }
                            Err(e) => h.error(e),
                        }
                    }
                    Err(e) => h.error(e),
                }
                p.inc(1);
            }
            (wait, handoff_wait, h)
        });
    }
    let mut wait = Lat::new();
    let mut handoff_wait = Lat::new();
    let mut total = Hists::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((w, hw, h)) => {
                wait.merge(&w);
                handoff_wait.merge(&hw);
                total.merge(&h);
            }
            Err(e) => total.error(format_args!("benchmark task failed: {e}")),
        }
    }
    let (elapsed, cpu) = span.finish(total.cycles + total.errors);
    let secs = elapsed.as_secs_f64();
    let per_sec = |x: u64| {
        if secs > 0.0 {
            round1(x as f64 / secs)
        } else {
            0.0
        }
    };
    let owner_changes = changes.load(Ordering::Relaxed);
    let k = Contended {
        tasks: c,
        acquisitions: total.cycles,
        errors: total.errors,
        elapsed_ms: round1(secs * 1000.0),
        acquisitions_per_sec: per_sec(total.cycles),
        client_cpu_us_per_acquisition: cpu,
        owner_changes,
        handoffs_per_sec: per_sec(owner_changes),
        wait: wait.summary(),
        handoff_wait: handoff_wait.summary(),
        release: total.release.summary(),
        first_error: total.first_error,
    };
    (k, wait)
}

fn empty_contended(c: u64) -> Contended {
    let empty = Lat::new().summary();
    Contended {
        tasks: c,
        acquisitions: 0,
        errors: 0,
        elapsed_ms: 0.0,
        acquisitions_per_sec: 0.0,
        client_cpu_us_per_acquisition: 0.0,
        owner_changes: 0,
        handoffs_per_sec: 0.0,
        wait: empty.clone(),
        handoff_wait: empty.clone(),
        release: empty,
        first_error: None,
    }
}

/// The human table.
fn render(doc: &Document, args: &BenchArgs) -> String {
    let mut out = format!(
        "redlock bench: single = {} alone; quorum = {} masters ({} needed)\n\
         {} iterations per workload, concurrency {}, ttl {}, warmup {}, per-master timeout {}\n\n",
        doc.masters.first().map_or("?", String::as_str),
        doc.quorum.masters,
        doc.quorum.quorum,
        doc.iterations,
        doc.concurrency,
        crate::output::human_duration(args.ttl),
        doc.warmup,
        crate::output::human_duration(Duration::from_millis(doc.master_timeout_ms)),
    );
    let mut t = Table::new(&[
        ("workload", Align::Left),
        ("config", Align::Left),
        ("op", Align::Left),
        ("p50 µs", Align::Right),
        ("p90 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("max µs", Align::Right),
        ("rate", Align::Right),
        ("client cpu", Align::Right),
    ]);
    let lat_row = |t: &mut Table, w: &str, c: &str, op: &str, l: &LatSummary, rate: String| {
        t.row(vec![
            w.to_owned(),
            c.to_owned(),
            op.to_owned(),
            l.p50_us.to_string(),
            l.p90_us.to_string(),
            l.p99_us.to_string(),
            l.max_us.to_string(),
            rate,
        ]);
    };
    // The client's CPU per operation goes on the row that carries the rate.
    let cpu = |t: &mut Table, us: f64, per: &str| {
        if let Some(row) = t.last_row_mut() {
            row.push(format!("{us:.0} µs/{per}"));
        }
    };
    let configs = [("single", &doc.single), ("quorum", &doc.quorum)];
    for (wi, (wname, pick)) in [
        (
            "sequential",
            (|c: &Config| &c.sequential) as fn(&Config) -> &Workload,
        ),
        ("concurrent", |c: &Config| &c.concurrent),
    ]
    .into_iter()
    .enumerate()
    {
        if wi > 0 {
            t.gap();
        }
        for (ci, (cname, config)) in configs.iter().enumerate() {
            let w = pick(config);
            let wl = if ci == 0 { wname } else { "" };
            lat_row(&mut t, wl, cname, "acquire", &w.acquire, String::new());
            lat_row(&mut t, "", "", "release", &w.release, String::new());
            lat_row(
                &mut t,
                "",
                "",
                "cycle",
                &w.cycle,
                format!("{:.0} cycles/s", w.cycles_per_sec),
            );
            cpu(&mut t, w.client_cpu_us_per_cycle, "cycle");
        }
    }
    t.gap();
    for (ci, (cname, config)) in configs.iter().enumerate() {
        let k = &config.contended;
        let wl = if ci == 0 { "contended" } else { "" };
        lat_row(
            &mut t,
            wl,
            cname,
            "wait",
            &k.wait,
            format!("{:.0} acquisitions/s", k.acquisitions_per_sec),
        );
        cpu(&mut t, k.client_cpu_us_per_acquisition, "acq");
        lat_row(
            &mut t,
            "",
            "",
            "hand-off wait",
            &k.handoff_wait,
            format!("{:.0} hand-offs/s", k.handoffs_per_sec),
        );
        lat_row(&mut t, "", "", "release", &k.release, String::new());
    }
    out.push_str(&t.to_string());

    let ratio = |q: u64, s: u64| {
        if s == 0 {
            "n/a".to_owned()
        } else {
            format!("{:.2}x", q as f64 / s as f64)
        }
    };
    // On loopback a round trip is pure CPU, shared by the client and every
    // server: N masters cost about N times the work on the same cores, a
    // cost that hosts of their own would pay in parallel. Say so where the
    // ratio is read.
    let caveat = if doc.masters.iter().all(|a| is_loopback(a)) {
        " (loopback exaggerates these ratios: a round trip here is pure CPU, shared by the client and every server; across hosts the servers work in parallel)"
    } else {
        ""
    };
    out.push_str(&format!(
        "\nquorum vs single: p50 cycle {} (sequential), {} (concurrent); throughput {}, {}; client cpu per cycle {}, {}{caveat}\n",
        ratio(doc.quorum.sequential.cycle.p50_us, doc.single.sequential.cycle.p50_us),
        ratio(doc.quorum.concurrent.cycle.p50_us, doc.single.concurrent.cycle.p50_us),
        ratio_f(doc.quorum.sequential.cycles_per_sec, doc.single.sequential.cycles_per_sec),
        ratio_f(doc.quorum.concurrent.cycles_per_sec, doc.single.concurrent.cycles_per_sec),
        ratio_f(doc.quorum.sequential.client_cpu_us_per_cycle, doc.single.sequential.client_cpu_us_per_cycle),
        ratio_f(doc.quorum.concurrent.client_cpu_us_per_cycle, doc.single.concurrent.client_cpu_us_per_cycle),
    ));
    out.push_str(&format!(
        "contended ({} tasks): the lock went to another task on {} of {} acquisitions (single), {} of {} (quorum)\n",
        doc.concurrency,
        doc.single.contended.owner_changes,
        doc.single.contended.acquisitions,
        doc.quorum.contended.owner_changes,
        doc.quorum.contended.acquisitions,
    ));
    for (cname, config) in configs {
        for (w, errors, first) in [
            (
                "sequential",
                config.sequential.errors,
                &config.sequential.first_error,
            ),
            (
                "concurrent",
                config.concurrent.errors,
                &config.concurrent.first_error,
            ),
            (
                "contended",
                config.contended.errors,
                &config.contended.first_error,
            ),
        ] {
            if errors > 0 {
                out.push_str(&format!(
                    "warning: {w}, {cname}: {errors} failed cycle(s); first: {}\n",
                    first.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    out
}

/// Whether `address` (`host:port`, as the masters report it) is on this
/// machine's loopback interface.
fn is_loopback(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn ratio_f(q: f64, s: f64) -> String {
    if s > 0.0 {
        format!("{:.2}x", q / s)
    } else {
        "n/a".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut l = Lat::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        for a in [
            "127.0.0.1:7001",
            "127.8.0.1:1",
            "localhost:6379",
            "[::1]:6379",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "10.0.0.1:6379",
            "redis.example.com:6379",
            "[2001:db8::1]:6379",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn empty_histograms_summarize_to_zero() {
        let s = Lat::new().summary();
        assert_eq!((s.count, s.p99_us, s.max_us), (0, 0, 0));
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut l = Lat::new();
        l.record(Duration::from_secs(10 * 3600));
        l.record(Duration::ZERO);
        assert_eq!(l.summary().count, 2);
    }
}
