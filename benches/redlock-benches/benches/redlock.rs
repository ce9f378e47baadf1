//! Criterion benchmarks: the three workloads for redlock and rslock over 1,
//! 3 and 5 real masters, and one master of 5 slowed or paused.
//!
//! Run with `cargo bench -p redlock-benches` (add `-- <filter>` to run a
//! subset, e.g. `-- contended`). Masters are started lazily, only for the
//! benchmarks the filter selects. Percentiles (p50/p99), which criterion
//! does not report, come from `bench_report` (see `docs/benchmarks.md`).

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use redlock_benches::workload::{self, CycleSample, Retry, Stop};
use redlock_benches::{Env, Fault, Impl, Scenario};
use tokio::runtime::Runtime;

/// Tasks of the concurrent and contended workloads.
const TASKS: usize = 8;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Benchmarks `id` in `group` over the environment of `scenario`, started on
/// first use: criterion calls the closure only when the filter selects `id`.
fn bench_env<F>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    scenario: Scenario,
    mut routine: F,
) where
    F: FnMut(&mut criterion::Bencher<'_, WallTime>, &Env, &Runtime),
{
    let mut env: Option<Env> = None;
    group.bench_function(id, |b| {
        let env = env.get_or_insert_with(|| rt.block_on(Env::start(scenario)));
        routine(b, env, rt);
    });
    // Stops the masters (and the proxy) before the next scenario starts.
    drop(env);
}

/// Benchmarks `routine` for each implementation over 1, 3 and 5 healthy
/// masters, as `impl/n` in `group`.
fn bench_healthy<F>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, mut routine: F)
where
    F: FnMut(&mut criterion::Bencher<'_, WallTime>, &Env, &Runtime),
{
    for imp in Impl::ALL {
        for n in [1, 3, 5] {
            let id = format!("{}/{n}", imp.name());
            bench_env(group, rt, &id, Scenario::healthy(imp, n), &mut routine);
        }
    }
}

/// Which phase of a cycle a benchmark times.
#[derive(Clone, Copy)]
enum Phase {
    Cycle,
    Acquire,
    Release,
}

/// Times `iters` uncontended cycles, counting only `phase`.
fn bench_phase(b: &mut criterion::Bencher<'_, WallTime>, env: &Env, rt: &Runtime, phase: Phase) {
    b.to_async(rt).iter_custom(|iters| async move {
        let run = workload::uncontended(&env.client, iters, None, env.scenario.idle).await;
        // Not an assertion: on a loaded machine a healthy master can miss
        // the 50 ms per-master timeout too, and with one paused that loses
        // the quorum. Say so; the failed cycle adds no time.
        for f in &run.failures {
            eprintln!("warning: {}: acquire failed: {f}", env.scenario);
        }
        let part = |s: &CycleSample| match phase {
            Phase::Cycle => s.cycle(),
            Phase::Acquire => s.acquire,
            Phase::Release => s.release,
        };
        run.samples.iter().map(part).sum::<Duration>()
    });
}

fn uncontended(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("uncontended_cycle");
    group.throughput(Throughput::Elements(1));
    bench_healthy(&mut group, &rt, |b, env, rt| {
        bench_phase(b, env, rt, Phase::Cycle);
    });
    group.finish();
}

fn concurrent(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group(format!("concurrent_{TASKS}_tasks"));
    group.throughput(Throughput::Elements(1));
    bench_healthy(&mut group, &rt, |b, env, rt| {
        b.to_async(rt).iter_custom(|iters| async move {
            let run = workload::concurrent(&env.client, TASKS, iters).await;
            if run.failed_acquires > 0 {
                eprintln!(
                    "warning: {}: {} acquires failed on distinct resources",
                    env.scenario, run.failed_acquires
                );
            }
            run.elapsed
        });
    });
    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group(format!("contended_{TASKS}_tasks"));
    group.throughput(Throughput::Elements(1));
    // Hand-offs are irregular (backoff sleeps of tens of ms): few long
    // samples measure them better than many short ones.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    bench_healthy(&mut group, &rt, |b, env, rt| {
        b.to_async(rt).iter_custom(|iters| async move {
            let run =
                workload::contended(&env.client, TASKS, Stop::Cycles(iters), Retry::Library).await;
            assert_eq!(run.violations, 0, "{}: two holders at once", env.scenario);
            run.elapsed
        });
    });
    group.finish();
}

/// About how much wall time one iteration takes per unit of time it
/// reports, when a phase alone is timed. Criterion sizes warm-up and
/// measurement by the reported time, so a phase that sits next to a much
/// longer one needs its budget scaled down.
fn wall_per_reported(s: &Scenario, _phase: Phase) -> f64 {
    // A phase of about 0.2 ms (healthy) to 0.5 ms (after idling).
    let cycle_ms = 0.5 + s.idle.as_secs_f64() * 1e3;
    if s.idle.is_zero() {
        // Acquire and release take about as long, for both libraries, in
        // every fault scenario too: redlock's release returns at a quorum
        // (and its acquire never waited for the slow master), rslock waits
        // for the slow or paused master in both phases.
        2.0
    } else {
        // Healthy with idle gaps: the gap dominates.
        cycle_ms / 0.25
    }
}

/// Idle gap of the control scenario: about the slowed master's round trip.
const IDLE: Duration = Duration::from_millis(10);

fn one_of_five(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("five_masters_one_faulty");
    // rslock waits for every master, so with a paused one each phase takes
    // its 500 ms response timeout: keep the sample count at criterion's
    // minimum and let each sample be one batch.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for imp in Impl::ALL {
        // Healthy back to back, healthy with the idle gap a slow release
        // leaves (the control for the acquire of the fault scenarios), then
        // the faults.
        let scenarios = [
            (Scenario::one_of_five(imp, Fault::None), "healthy"),
            (Scenario::idle_between(imp, 5, IDLE), "healthy_idle_10ms"),
            (Scenario::one_of_five(imp, Fault::Proxied), "proxied"),
            (Scenario::one_of_five(imp, Fault::Slowed), "slowed"),
            (Scenario::one_of_five(imp, Fault::Paused), "paused"),
        ];
        for (scenario, label) in scenarios {
            for (phase, name) in [(Phase::Acquire, "acquire"), (Phase::Release, "release")] {
                let f = wall_per_reported(&scenario, phase);
                group.warm_up_time(Duration::from_secs_f64(1.0 / f));
                group.measurement_time(Duration::from_secs_f64(3.0 / f));
                let id = format!("{}/{name}/{label}", imp.name());
                bench_env(&mut group, &rt, &id, scenario, |b, env, rt| {
                    bench_phase(b, env, rt, phase);
                });
            }
        }
    }
    group.finish();
}

fn config() -> Criterion {
    // Short groups: the whole suite should finish in a few minutes on a
    // small machine. The report binary takes the longer, percentile view.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

// What `criterion_group!`/`criterion_main!` expand to, written out so that
// no undocumented public function is generated.
fn main() {
    let mut c = config().configure_from_args();
    uncontended(&mut c);
    concurrent(&mut c);
    contended(&mut c);
    one_of_five(&mut c);
    c.final_summary();
}
