//! The measurements: one configuration's workloads per round, with the
//! CPU they cost, accumulated over all rounds.

use std::time::{Duration, Instant};

use redlock_benches::fanout::ping_fanout;
use redlock_benches::scenario::own_cpu;
use redlock_benches::stats::Latency;
use redlock_benches::workload::{self, CycleLatencies, CycleSample, Retry, Stop};
use redlock_benches::{Env, Scenario};

use crate::{Args, RUN_CAP, TASKS};

/// CPU time per cycle of a run, client side and server side.
#[derive(Default)]
pub(crate) struct Cpu {
    pub(crate) client: Duration,
    pub(crate) servers: Duration,
    pub(crate) cycles: u64,
}

impl Cpu {
    pub(crate) fn client_us(&self) -> f64 {
        self.client.as_secs_f64() * 1e6 / self.cycles.max(1) as f64
    }
    pub(crate) fn servers_us(&self) -> f64 {
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

/// The uncontended workload's latencies over all rounds, and each round's
/// medians (ms).
#[derive(Default)]
pub(crate) struct Cycles {
    pub(crate) acquire: Latency,
    pub(crate) release: Latency,
    pub(crate) cycle: Latency,
    pub(crate) acquire_p50s: Vec<f64>,
    pub(crate) release_p50s: Vec<f64>,
    pub(crate) cycle_p50s: Vec<f64>,
}

impl Cycles {
    /// Adds one round's samples; returns its acquire and release p50s.
    fn add(&mut self, samples: &[CycleSample]) -> (f64, f64) {
        let CycleLatencies {
            acquire,
            release,
            cycle,
        } = CycleLatencies::of(samples);
        self.acquire_p50s.push(acquire.p50());
        self.release_p50s.push(release.p50());
        self.cycle_p50s.push(cycle.p50());
        self.acquire.merge(&acquire);
        self.release.merge(&release);
        self.cycle.merge(&cycle);
        (acquire.p50(), release.p50())
    }
}

/// Everything measured for one healthy configuration, over all rounds.
#[derive(Default)]
pub(crate) struct Healthy {
    pub(crate) cycles: Cycles,
    pub(crate) failed: u64,
    pub(crate) uncontended_cpu: Cpu,
    pub(crate) uncontended_cmds: u64,
    pub(crate) concurrent: Latency,
    pub(crate) concurrent_tput: Vec<f64>,
    pub(crate) concurrent_cpu: Cpu,
    pub(crate) contended_wait: Latency,
    pub(crate) contended_tput: Vec<f64>,
    pub(crate) handoff_rate: Vec<f64>,
    pub(crate) contended_cmds: u64,
    pub(crate) contended_cycles: u64,
    pub(crate) gave_up: u64,
    pub(crate) violations: u64,
    pub(crate) max_share: Vec<f64>,
    pub(crate) fan_quorum: Latency,
    pub(crate) fan_all: Latency,
    pub(crate) fan_all_p50s: Vec<f64>,
}

/// A scenario measured with the uncontended workload only (faults,
/// simulated network), over all rounds.
#[derive(Default)]
pub(crate) struct Phases {
    pub(crate) cycles: Cycles,
    pub(crate) failed: u64,
    pub(crate) incomplete: u64,
    /// `(seconds since the start, acquire ms, release ms)`, first round.
    pub(crate) timeline: Vec<(f64, f64, f64)>,
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

pub(crate) async fn run_healthy(s: Scenario, args: &Args, out: &mut Healthy) {
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
        out.cycles.cycle_p50s.last().copied().unwrap_or(0.0),
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
    out.cycles.add(&u.samples);
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
        Stop::Time(args.contended()),
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

pub(crate) async fn run_phases(s: Scenario, args: &Args, out: &mut Phases, first_round: bool) {
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
    let (acquire, release) = out.cycles.add(&u.samples);
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
        acquire,
        release,
        u.samples.len()
    );
}
