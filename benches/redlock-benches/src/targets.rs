//! The side-by-side comparison the performance targets are stated in:
//! redlock against rslock in the same run, scenario by scenario, as ratios.
//!
//! | id | scenario | measured |
//! |---|---|---|
//! | A | 1 master, sequential cycles | cycle p50 |
//! | B | 5 masters, sequential cycles | cycle p50, client CPU per cycle |
//! | C | 5 masters, the last one +20 ms each way (proxy) | cycle p50 |
//! | C0 | control for C: the same proxy adding no delay | cycle p50 |
//! | D | 5 masters, the last one `SIGSTOP`ped | cycle p50 |
//! | E | 5 masters, 16 tasks on one resource, the library's own wait | critical sections/s, fewest/most per task |
//! | E2 | as E, one round per call and 0–10 ms of caller jitter after a refusal | critical sections/s, fewest/most |
//! | F | 5 masters, 8 tasks on distinct resources | cycles/s, client CPU per cycle |
//! | floor | A's and B's masters, two rounds of `PING` each back at the quorum, no lock ([`QuorumFloor`]) | cycle p50 |
//! | lock floor | A's and B's masters, the lock's own `SET` and release script in two rounds each back at the quorum, over sockets the caller writes and reads, no library ([`DirectFloor::connect_lock`]) | cycle p50 |
//!
//! Every round runs every scenario for both implementations on fresh
//! masters, alternating which goes first. The sequential scenarios A, B,
//! C0 and C and the floors run interleaved, a tenth of each in turn
//! ([`interleaved`]), so a burst of other load on a shared machine hits
//! every one of them alike, and both implementations talk to the same
//! masters ([`Env::alongside`]); then F, interleaved the same way
//! ([`concurrent_interleaved`]). D (a paused master's backlog) and the
//! contended workloads E and E2 run back to back, D on masters of each
//! implementation's own. Ratios are taken within a round and their
//! median over the rounds is reported with the range.
//! Nothing here asserts a speed: a timed test would fail on a noisy
//! machine.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fanout::{DirectFloor, QuorumFloor};
use crate::scenario::{own_cpu, CpuSplit, Fault, Impl, Scenario};
use crate::stats::{median, range};
use crate::workload::{self, CycleLatencies, Retry, Stop};
use crate::Env;

/// Tasks of scenario F.
pub const F_TASKS: usize = 8;
/// Tasks of scenarios E and E2.
pub const E_TASKS: usize = 16;
/// Caller jitter of scenario E2.
pub const E2_JITTER: Duration = Duration::from_millis(10);

/// How much each scenario runs, per round and implementation.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Rounds.
    pub rounds: usize,
    /// Sequential cycles of A and B, and cycles of F.
    pub iters: u64,
    /// Sequential cycles of C and D (each run capped at `fault_cap`).
    pub fault_iters: u64,
    /// Longest run of C or D (rslock needs about a second per cycle with a
    /// paused master).
    pub fault_cap: Duration,
    /// Length of each E and E2 run.
    pub contended: Duration,
}

/// What one implementation did in one round.
#[derive(Clone, Debug, Default)]
pub struct Measures {
    /// A: cycle p50, µs.
    pub a_p50: f64,
    /// B: cycle p50, µs.
    pub b_p50: f64,
    /// B: acquire p50, µs.
    pub b_acquire_p50: f64,
    /// B: release p50, µs.
    pub b_release_p50: f64,
    /// B: client CPU per cycle, µs.
    pub b_cpu: f64,
    /// The floor under A: two `PING`s to A's master, no lock, cycle p50,
    /// µs ([`QuorumFloor`]; set in redlock's measures only).
    pub floor_a_p50: f64,
    /// The floor under B: two rounds of `PING` to B's masters, each back
    /// at the quorum, no lock, cycle p50, µs (redlock's measures only).
    pub floor_b_p50: f64,
    /// The lock floor under A: the lock's `SET` and release script to
    /// A's master over a bare socket, no library, cycle p50, µs
    /// ([`DirectFloor::connect_lock`]; redlock's measures only).
    pub lock_floor_a_p50: f64,
    /// The lock floor under B: the same to B's masters, each round back
    /// at the quorum, cycle p50, µs (redlock's measures only).
    pub lock_floor_b_p50: f64,
    /// C: cycle p50, µs.
    pub c_p50: f64,
    /// C: cycles measured.
    pub c_cycles: u64,
    /// C: client CPU per cycle, µs (the proxy's threads excluded).
    pub c_cpu: f64,
    /// C: the proxy's CPU per cycle, µs.
    pub c_proxy_cpu: f64,
    /// C0 (the proxy without delay): cycle p50, µs.
    pub c0_p50: f64,
    /// D: cycle p50, µs.
    pub d_p50: f64,
    /// D: cycles measured.
    pub d_cycles: u64,
    /// E: critical sections per second.
    pub e_rate: f64,
    /// E: fewest and most critical sections of a task.
    pub e_min_max: (u64, u64),
    /// E2: critical sections per second.
    pub e2_rate: f64,
    /// E2: fewest and most critical sections of a task.
    pub e2_min_max: (u64, u64),
    /// F: cycles per second.
    pub f_rate: f64,
    /// F: client CPU per cycle, µs.
    pub f_cpu: f64,
    /// Failed acquires and exclusion violations seen (must be 0 outside
    /// D, where a loaded machine may lose a quorum with one master paused).
    pub failures: u64,
    /// Two holders at once in E or E2. Must be 0.
    pub violations: u64,
}

/// One round: `[redlock, rslock]`.
pub type Round = [Measures; 2];

fn idx(imp: Impl) -> usize {
    match imp {
        Impl::Redlock => 0,
        Impl::Rslock => 1,
    }
}

/// What [`sequential`] measured.
#[derive(Clone, Debug)]
pub struct Sequential {
    /// Cycle p50, µs.
    pub p50: f64,
    /// Acquire p50, µs.
    pub acquire_p50: f64,
    /// Release p50, µs.
    pub release_p50: f64,
    /// The client's CPU per cycle, µs: the process's, less the in-process
    /// proxy's threads (C, C0).
    pub cpu: f64,
    /// The proxy's CPU per cycle, µs (zero without a proxy).
    pub proxy_cpu: f64,
    /// Cycles measured.
    pub cycles: u64,
    /// Failed acquires.
    pub failed: u64,
}

/// `iters` sequential cycles on `env` (scenarios A to D), capped at `cap`.
pub async fn sequential(env: &Env, iters: u64, cap: Duration) -> Sequential {
    let mut run = SequentialRun::default();
    run.add(env, iters, cap).await;
    run.measured()
}

/// Sequential cycles of one scenario gathered over several runs
/// ([`interleaved`]).
#[derive(Debug, Default)]
pub struct SequentialRun {
    samples: Vec<workload::CycleSample>,
    cpu: Duration,
    proxy: Duration,
    failed: u64,
}

impl SequentialRun {
    /// Runs `iters` more sequential cycles on `env`, capped at `cap`.
    pub async fn add(&mut self, env: &Env, iters: u64, cap: Duration) {
        let split = CpuSplit::start();
        let u = workload::uncontended(
            &env.client,
            iters,
            Some(Instant::now() + cap),
            Duration::ZERO,
        )
        .await;
        self.took(split);
        for f in &u.failures {
            eprintln!("  {}: acquire failed: {f}", env.scenario);
        }
        self.failed += u.failed_acquires;
        self.samples.extend(u.samples);
    }

    /// Runs `iters` more cycles of a floor (no lock library): `cycles` is
    /// a floor's `cycles(iters)`, not yet polled.
    pub async fn add_floor(
        &mut self,
        iters: u64,
        cycles: impl std::future::Future<Output = Vec<workload::CycleSample>>,
    ) {
        let split = CpuSplit::start();
        let samples = cycles.await;
        self.took(split);
        self.failed += iters - samples.len() as u64;
        self.samples.extend(samples);
    }

    fn took(&mut self, split: CpuSplit) {
        let (cpu, proxy) = split.since();
        self.cpu += cpu;
        self.proxy += proxy;
    }

    /// What the runs so far measured.
    pub fn measured(&self) -> Sequential {
        let n = self.samples.len() as u64;
        let per_cycle = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
        let l = CycleLatencies::of(&self.samples);
        Sequential {
            p50: l.cycle.p50() * 1000.0,
            acquire_p50: l.acquire.p50() * 1000.0,
            release_p50: l.release.p50() * 1000.0,
            cpu: per_cycle(self.cpu),
            proxy_cpu: per_cycle(self.proxy),
            cycles: n,
            failed: self.failed,
        }
    }
}

/// What scenario F measured for one implementation
/// ([`concurrent_interleaved`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConcurrentRun {
    /// Cycles per second: every slice's cycles over the slices' wall time.
    pub rate: f64,
    /// Client CPU per cycle, µs.
    pub cpu: f64,
    /// Failed acquires (none expected).
    pub failed: u64,
}

/// Scenario F for each environment of `envs`, `iters` cycles over
/// [`F_TASKS`] tasks each, in [`SLICES`] turns as [`interleaved`] runs the
/// sequential scenarios: run back to back, one implementation's F came
/// seconds after the other's (E and E2 between), and its ratio was the
/// noisiest of the targets.
pub async fn concurrent_interleaved(envs: &[Env], iters: u64) -> Vec<ConcurrentRun> {
    let mut sums = vec![ConcurrentSum::default(); envs.len()];
    for turn in 0..SLICES {
        for i in turn_order(envs.len(), turn) {
            let cpu0 = own_cpu();
            let f = workload::concurrent(&envs[i].client, F_TASKS, slice(iters, turn)).await;
            let sum = &mut sums[i];
            sum.cpu += own_cpu().saturating_sub(cpu0);
            sum.cycles += f.cycles.len() as u64;
            sum.wall += f.elapsed;
            sum.failed += f.failed_acquires;
        }
    }
    sums.iter().map(ConcurrentSum::measured).collect()
}

/// One implementation's slices of F so far ([`concurrent_interleaved`]).
#[derive(Clone, Debug, Default)]
struct ConcurrentSum {
    cycles: u64,
    wall: Duration,
    cpu: Duration,
    failed: u64,
}

impl ConcurrentSum {
    fn measured(&self) -> ConcurrentRun {
        ConcurrentRun {
            rate: self.cycles as f64 / self.wall.as_secs_f64().max(1e-9),
            cpu: self.cpu.as_secs_f64() * 1e6 / (self.cycles as f64).max(1.0),
            failed: self.failed,
        }
    }
}

/// The order of `n` runs in turn `turn`: as given, reversed every other
/// turn.
fn turn_order(n: usize, turn: u64) -> Vec<usize> {
    if turn % 2 == 1 {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    }
}

/// Turn `turn`'s share of `iters` cycles: the slices add up to `iters`,
/// the first `iters % SLICES` taking one more.
fn slice(iters: u64, turn: u64) -> u64 {
    iters / SLICES + u64::from(turn < iters % SLICES)
}

/// Turns of [`interleaved`]: each sequential scenario runs in this many
/// slices.
pub const SLICES: u64 = 10;

/// One sequential run of [`interleaved`].
#[derive(Clone, Copy)]
pub enum Run<'a> {
    /// `iters` lock cycles on `env`'s client, capped at `cap`.
    Lock {
        /// The environment.
        env: &'a Env,
        /// Cycles.
        iters: u64,
        /// Longest run.
        cap: Duration,
    },
    /// `iters` cycles of the floor, no lock.
    Floor {
        /// Connections to the masters.
        floor: &'a QuorumFloor,
        /// Cycles.
        iters: u64,
    },
    /// `iters` cycles of a floor over bare sockets, no library.
    DirectFloor {
        /// Connections to the masters (one run at a time uses them).
        floor: &'a tokio::sync::Mutex<DirectFloor>,
        /// Cycles.
        iters: u64,
    },
}

/// Every run of `runs` in [`SLICES`] turns: each turn runs a slice of
/// every one, in the order given, so a burst of other load on a shared
/// machine (seconds, where a scenario of one implementation takes about
/// one) lands on all of them alike rather than on whichever happened to
/// run then. The ratios taken between them (A, B / A, C / B) are then
/// about the code, not the moment. Every other turn runs them in reverse
/// order.
pub async fn interleaved(runs: &[Run<'_>]) -> Vec<Sequential> {
    let mut out: Vec<SequentialRun> = runs.iter().map(|_| SequentialRun::default()).collect();
    for turn in 0..SLICES {
        for i in turn_order(runs.len(), turn) {
            match runs[i] {
                Run::Lock { env, iters, cap } => {
                    out[i]
                        .add(env, slice(iters, turn), cap / SLICES as u32)
                        .await;
                }
                Run::Floor { floor, iters } => {
                    let n = slice(iters, turn);
                    out[i].add_floor(n, floor.cycles(n)).await;
                }
                Run::DirectFloor { floor, iters } => {
                    let n = slice(iters, turn);
                    let mut floor = floor.lock().await;
                    out[i].add_floor(n, floor.cycles(n)).await;
                }
            }
        }
    }
    out.iter().map(SequentialRun::measured).collect()
}

/// Runs the plan; `progress` gets one line per round.
pub async fn run(plan: &Plan) -> Vec<Round> {
    let mut rounds = Vec::with_capacity(plan.rounds);
    let cap = Duration::from_secs(60);
    for round in 0..plan.rounds {
        let mut r: Round = Default::default();
        // Alternate which implementation goes first.
        let order = if round % 2 == 0 {
            [Impl::Redlock, Impl::Rslock]
        } else {
            [Impl::Rslock, Impl::Redlock]
        };
        // A, B, C0 and C run interleaved (see `interleaved`), every
        // environment up at once, both implementations on the same masters
        // (see `Env::alongside`): 1 + 3 x 5 `redis-server`s.
        let mut envs = Vec::with_capacity(8);
        let scenarios: [fn(Impl) -> Scenario; 4] = [
            |imp| Scenario::healthy(imp, 1),
            |imp| Scenario::healthy(imp, 5),
            |imp| Scenario::one_of_five(imp, Fault::Proxied),
            |imp| Scenario::one_of_five(imp, Fault::Slowed),
        ];
        for scenario in scenarios {
            let first = Env::start(scenario(order[0])).await;
            let second = first.alongside(order[1]).await;
            envs.extend([first, second]);
        }
        // The floors under A and B, on the masters of A and B (each pair
        // of environments shares its masters): `PING` over redis-rs, and
        // the lock's own commands over bare sockets.
        let mut floors = Vec::with_capacity(2);
        let mut lock_floors = Vec::with_capacity(2);
        for env in envs[..4].iter().step_by(2) {
            let urls = env.masters().urls();
            let floor = QuorumFloor::connect(&urls).await;
            floors.push(floor.expect("the floor connects to the benchmark masters"));
            let floor = DirectFloor::connect_lock(&urls).await;
            let floor = floor.expect("the lock floor connects to the benchmark masters");
            lock_floors.push(tokio::sync::Mutex::new(floor));
        }
        let mut runs: Vec<Run<'_>> = envs
            .iter()
            .enumerate()
            .map(|(i, env)| match i / 2 {
                0 | 1 => Run::Lock {
                    env,
                    iters: plan.iters,
                    cap,
                },
                _ => Run::Lock {
                    env,
                    iters: plan.fault_iters,
                    cap: plan.fault_cap,
                },
            })
            .collect();
        runs.extend(floors.iter().map(|floor| Run::Floor {
            floor,
            iters: plan.iters,
        }));
        runs.extend(lock_floors.iter().map(|floor| Run::DirectFloor {
            floor,
            iters: plan.iters,
        }));
        let seq = interleaved(&runs).await;
        for (env, s) in envs.iter().zip(&seq) {
            let m = &mut r[idx(env.scenario.imp)];
            m.failures += s.failed;
            match (env.scenario.masters, env.scenario.fault) {
                (1, _) => m.a_p50 = s.p50,
                (_, Fault::None) => {
                    (m.b_p50, m.b_acquire_p50, m.b_release_p50, m.b_cpu) =
                        (s.p50, s.acquire_p50, s.release_p50, s.cpu);
                }
                (_, Fault::Proxied) => m.c0_p50 = s.p50,
                (_, Fault::Slowed) => {
                    (m.c_p50, m.c_cycles, m.c_cpu, m.c_proxy_cpu) =
                        (s.p50, s.cycles, s.cpu, s.proxy_cpu);
                }
                (_, Fault::Paused) => {}
            }
        }
        let redlock = &mut r[idx(Impl::Redlock)];
        (redlock.floor_a_p50, redlock.floor_b_p50) = (seq[envs.len()].p50, seq[envs.len() + 1].p50);
        (redlock.lock_floor_a_p50, redlock.lock_floor_b_p50) =
            (seq[envs.len() + 2].p50, seq[envs.len() + 3].p50);
        drop((floors, lock_floors));
        // Then the workloads with several tasks, on B's masters: F
        // interleaved as A and B are, E and E2 back to back.
        for (env, f) in envs[2..4]
            .iter()
            .zip(concurrent_interleaved(&envs[2..4], plan.iters).await)
        {
            let m = &mut r[idx(env.scenario.imp)];
            m.f_rate = f.rate;
            m.f_cpu = f.cpu;
            m.failures += f.failed;
        }
        for env in &envs[2..4] {
            let m = &mut r[idx(env.scenario.imp)];
            let e = workload::contended(
                &env.client,
                E_TASKS,
                Stop::Time(plan.contended),
                Retry::Library,
            )
            .await;
            m.e_rate = e.throughput();
            m.e_min_max = e.min_max();
            m.violations += e.violations;
            let e2 = workload::contended(
                &env.client,
                E_TASKS,
                Stop::Time(plan.contended),
                Retry::Caller { jitter: E2_JITTER },
            )
            .await;
            m.e2_rate = e2.throughput();
            m.e2_min_max = e2.min_max();
            m.violations += e2.violations;
        }
        drop(envs);
        for imp in order {
            let env = Env::start(Scenario::one_of_five(imp, Fault::Paused)).await;
            let d = sequential(&env, plan.fault_iters, plan.fault_cap).await;
            let m = &mut r[idx(imp)];
            (m.d_p50, m.d_cycles) = (d.p50, d.cycles);
        }
        eprintln!(
            "round {}/{}: A {:.0}/{:.0} µs  B {:.0}/{:.0} µs  C {:.0}/{:.0} µs  C0 {:.0}/{:.0} µs  D {:.0}/{:.0} µs  \
             E {:.0}/{:.0} CS/s  E2 {:.0}/{:.0} CS/s  F {:.0}/{:.0} cycles/s  (redlock/rslock)",
            round + 1,
            plan.rounds,
            r[0].a_p50,
            r[1].a_p50,
            r[0].b_p50,
            r[1].b_p50,
            r[0].c_p50,
            r[1].c_p50,
            r[0].c0_p50,
            r[1].c0_p50,
            r[0].d_p50,
            r[1].d_p50,
            r[0].e_rate,
            r[1].e_rate,
            r[0].e2_rate,
            r[1].e2_rate,
            r[0].f_rate,
            r[1].f_rate,
        );
        rounds.push(r);
    }
    rounds
}

/// One row of the target table.
struct Row {
    what: &'static str,
    ours: Vec<f64>,
    theirs: Option<Vec<f64>>,
    /// Per round: the ratio the goal is about.
    ratio: Vec<f64>,
    ratio_name: &'static str,
    goal: &'static str,
    met: fn(f64) -> bool,
    unit: &'static str,
}

/// The three rows of a floor (`a`, `b`: its cycle p50 under A and under
/// B, from redlock's measures): the floor under A with our A over it, the
/// floor under B with our B over it, and the floor's own B / A. `what`
/// and `ratio_name` name them in that order.
fn floor_rows(
    rounds: &[Round],
    what: [&'static str; 3],
    ratio_name: [&'static str; 3],
    a: fn(&Measures) -> f64,
    b: fn(&Measures) -> f64,
) -> [Row; 3] {
    let per =
        |f: &dyn Fn(&Measures) -> f64| -> Vec<f64> { rounds.iter().map(|r| f(&r[0])).collect() };
    let row = |i: usize, ours: Vec<f64>, ratio: Vec<f64>, unit: &'static str| Row {
        what: what[i],
        ours,
        theirs: None,
        ratio,
        ratio_name: ratio_name[i],
        goal: "–",
        met: |_| true,
        unit,
    };
    [
        row(0, per(&a), per(&|m| m.a_p50 / a(m)), "µs"),
        row(1, per(&b), per(&|m| m.b_p50 / b(m)), "µs"),
        row(2, per(&|m| b(m) / a(m)), per(&|m| b(m) / a(m)), "x"),
    ]
}

fn rows(rounds: &[Round]) -> Vec<Row> {
    let col = |i: usize, f: fn(&Measures) -> f64| -> Vec<f64> {
        rounds.iter().map(|r| f(&r[i])).collect()
    };
    let per = |f: fn(&Round) -> f64| -> Vec<f64> { rounds.iter().map(f).collect() };
    let fair = |m: (u64, u64)| {
        if m.1 == 0 {
            0.0
        } else {
            m.0 as f64 / m.1 as f64
        }
    };
    let [floor_a, floor_b, floor_b_over_a] = floor_rows(
        rounds,
        [
            "A floor: 1 master, two PINGs, no lock (redis-rs)",
            "B floor: 5 masters, two PING rounds back at the quorum, no lock (redis-rs)",
            "B / A of the floor (the best B / A over redis-rs on this machine and runtime)",
        ],
        ["redlock A / floor", "redlock B / floor", "floor B / A"],
        |m| m.floor_a_p50,
        |m| m.floor_b_p50,
    );
    let [lock_floor_a, lock_floor_b, lock_floor_b_over_a] = floor_rows(
        rounds,
        [
            "A lock floor: 1 master, the lock's SET and release script over a bare socket, no library",
            "B lock floor: 5 masters, the same, each round back at the quorum",
            "B / A of the lock floor (the best B / A of a client on this machine and runtime, the servers' command time included)",
        ],
        ["redlock A / lock floor", "redlock B / lock floor", "lock floor B / A"],
        |m| m.lock_floor_a_p50,
        |m| m.lock_floor_b_p50,
    );
    vec![
        Row {
            what: "A: 1 master, sequential cycle p50",
            ours: col(0, |m| m.a_p50),
            theirs: Some(col(1, |m| m.a_p50)),
            ratio: per(|r| r[0].a_p50 / r[1].a_p50),
            ratio_name: "redlock / rslock",
            goal: "≤ 1",
            met: |x| x <= 1.0,
            unit: "µs",
        },
        Row {
            what: "B: 5 masters, sequential cycle p50",
            ours: col(0, |m| m.b_p50),
            theirs: Some(col(1, |m| m.b_p50)),
            ratio: per(|r| r[0].b_p50 / r[1].b_p50),
            ratio_name: "redlock / rslock",
            goal: "≤ 1",
            met: |x| x <= 1.0,
            unit: "µs",
        },
        Row {
            what: "B / A (redlock)",
            ours: col(0, |m| m.b_p50 / m.a_p50),
            theirs: Some(col(1, |m| m.b_p50 / m.a_p50)),
            ratio: per(|r| r[0].b_p50 / r[0].a_p50),
            ratio_name: "redlock B / A",
            goal: "≤ 1.4",
            met: |x| x <= 1.4,
            unit: "x",
        },
        floor_a,
        floor_b,
        floor_b_over_a,
        lock_floor_a,
        lock_floor_b,
        lock_floor_b_over_a,
        Row {
            what: "C: 5 masters, one +20 ms each way, cycle p50",
            ours: col(0, |m| m.c_p50),
            theirs: Some(col(1, |m| m.c_p50)),
            ratio: per(|r| r[0].c_p50 / r[0].b_p50),
            ratio_name: "redlock C / B",
            goal: "≤ 1.1",
            met: |x| x <= 1.1,
            unit: "µs",
        },
        Row {
            what: "C0: 5 masters, one behind the proxy without delay (control for C)",
            ours: col(0, |m| m.c0_p50),
            theirs: Some(col(1, |m| m.c0_p50)),
            ratio: per(|r| r[0].c_p50 / r[0].c0_p50),
            ratio_name: "redlock C / C0",
            goal: "–",
            met: |_| true,
            unit: "µs",
        },
        Row {
            what: "D: 5 masters, one paused, cycle p50",
            ours: col(0, |m| m.d_p50),
            theirs: Some(col(1, |m| m.d_p50)),
            ratio: per(|r| r[0].d_p50 / r[0].b_p50),
            ratio_name: "redlock D / B",
            goal: "≤ 1.1",
            met: |x| x <= 1.1,
            unit: "µs",
        },
        Row {
            what: "E: 16 tasks, one resource, library wait",
            ours: col(0, |m| m.e_rate),
            theirs: Some(col(1, |m| m.e_rate)),
            ratio: per(|r| r[0].e_rate / r[1].e_rate),
            ratio_name: "redlock / rslock",
            goal: "≥ 1.5",
            met: |x| x >= 1.5,
            unit: "CS/s",
        },
        Row {
            what: "E: fairness, fewest / most per task",
            ours: rounds.iter().map(|r| fair(r[0].e_min_max)).collect(),
            theirs: Some(rounds.iter().map(|r| fair(r[1].e_min_max)).collect()),
            ratio: rounds.iter().map(|r| fair(r[0].e_min_max)).collect(),
            ratio_name: "redlock",
            goal: "≥ 0.5",
            met: |x| x >= 0.5,
            unit: "",
        },
        Row {
            what: "E2: 16 tasks, one round per call + 0–10 ms jitter",
            ours: col(0, |m| m.e2_rate),
            theirs: Some(col(1, |m| m.e2_rate)),
            ratio: per(|r| r[0].e2_rate / r[1].e2_rate),
            ratio_name: "redlock / rslock",
            goal: "≥ 1",
            met: |x| x >= 1.0,
            unit: "CS/s",
        },
        Row {
            what: "E2: fairness, fewest / most per task",
            ours: rounds.iter().map(|r| fair(r[0].e2_min_max)).collect(),
            theirs: Some(rounds.iter().map(|r| fair(r[1].e2_min_max)).collect()),
            ratio: rounds.iter().map(|r| fair(r[0].e2_min_max)).collect(),
            ratio_name: "redlock",
            goal: "–",
            met: |_| true,
            unit: "",
        },
        Row {
            what: "F: 8 tasks, distinct resources, 5 masters",
            ours: col(0, |m| m.f_rate),
            theirs: Some(col(1, |m| m.f_rate)),
            ratio: per(|r| r[0].f_rate / r[1].f_rate),
            ratio_name: "redlock / rslock",
            goal: "≥ 1",
            met: |x| x >= 1.0,
            unit: "cycles/s",
        },
        Row {
            what: "client CPU per quorum cycle (B)",
            ours: col(0, |m| m.b_cpu),
            theirs: Some(col(1, |m| m.b_cpu)),
            ratio: per(|r| r[0].b_cpu / r[1].b_cpu),
            ratio_name: "redlock / rslock",
            goal: "≤ 1",
            met: |x| x <= 1.0,
            unit: "µs",
        },
        Row {
            // Whether a slowed master costs the client CPU (late replies,
            // the background releases that wait for them) or only time.
            what: "client CPU per cycle, one master slowed (C; the proxy's threads excluded)",
            ours: col(0, |m| m.c_cpu),
            theirs: Some(col(1, |m| m.c_cpu)),
            ratio: per(|r| r[0].c_cpu / r[0].b_cpu),
            ratio_name: "redlock C / B",
            goal: "–",
            met: |_| true,
            unit: "µs",
        },
        Row {
            // What the slowed master's proxy costs the same two cores.
            what: "the proxy's CPU per cycle (C)",
            ours: col(0, |m| m.c_proxy_cpu),
            theirs: Some(col(1, |m| m.c_proxy_cpu)),
            ratio: per(|r| r[0].c_proxy_cpu / r[0].b_cpu),
            ratio_name: "redlock proxy / B client",
            goal: "–",
            met: |_| true,
            unit: "µs",
        },
        Row {
            what: "client CPU per cycle, 8 tasks (F)",
            ours: col(0, |m| m.f_cpu),
            theirs: Some(col(1, |m| m.f_cpu)),
            ratio: per(|r| r[0].f_cpu / r[1].f_cpu),
            ratio_name: "redlock / rslock",
            goal: "–",
            met: |_| true,
            unit: "µs",
        },
    ]
}

fn num(v: f64, unit: &str) -> String {
    match unit {
        "x" | "" => format!("{v:.2}"),
        _ if v >= 100.0 => format!("{v:.0} {unit}"),
        _ => format!("{v:.1} {unit}"),
    }
}

/// The markdown table of the targets: medians over the rounds, the ratio's
/// median and range, and whether the median meets the goal.
pub fn table(rounds: &[Round]) -> String {
    let mut out = String::from(
        "| scenario | redlock | rslock | ratio | median [range] over rounds | goal | met? |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows(rounds) {
        let (lo, hi) = range(&row.ratio);
        let m = median(&row.ratio);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} [{:.2}–{:.2}] | {} | {} |\n",
            row.what,
            num(median(&row.ours), row.unit),
            row.theirs
                .as_ref()
                .map_or_else(|| "–".to_owned(), |t| num(median(t), row.unit)),
            row.ratio_name,
            m,
            lo,
            hi,
            row.goal,
            if row.goal == "–" {
                "–"
            } else if (row.met)(m) {
                "yes"
            } else {
                "no"
            },
        ));
    }
    let (fails, viol): (u64, u64) = rounds
        .iter()
        .flat_map(|r| r.iter())
        .fold((0, 0), |(f, v), m| (f + m.failures, v + m.violations));
    let mm = |i: usize, f: fn(&Measures) -> (u64, u64)| {
        rounds
            .iter()
            .map(|r| {
                let (a, b) = f(&r[i]);
                format!("{a}/{b}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "\nFewest/most critical sections per task, per round: E redlock {}; rslock {}. \
         E2 redlock {}; rslock {}.\n\
         Cycles measured per round in C (redlock, rslock): {}; in D: {}.\n\
         Failed acquires outside D: {fails}; exclusion violations: {viol}.\n",
        mm(0, |m| m.e_min_max),
        mm(1, |m| m.e_min_max),
        mm(0, |m| m.e2_min_max),
        mm(1, |m| m.e2_min_max),
        rounds
            .iter()
            .map(|r| format!("{}/{}", r[0].c_cycles, r[1].c_cycles))
            .collect::<Vec<_>>()
            .join(", "),
        rounds
            .iter()
            .map(|r| format!("{}/{}", r[0].d_cycles, r[1].d_cycles))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    out
}

/// The raw per-round numbers, as JSON.
pub fn to_json(rounds: &[Round]) -> serde_json::Value {
    let m = |m: &Measures| {
        json!({
            "a_cycle_p50_us": m.a_p50, "b_cycle_p50_us": m.b_p50,
            "b_acquire_p50_us": m.b_acquire_p50, "b_release_p50_us": m.b_release_p50,
            "b_client_cpu_us_per_cycle": m.b_cpu,
            "floor_a_cycle_p50_us": m.floor_a_p50, "floor_b_cycle_p50_us": m.floor_b_p50,
            "lock_floor_a_cycle_p50_us": m.lock_floor_a_p50, "lock_floor_b_cycle_p50_us": m.lock_floor_b_p50,
            "c_cycle_p50_us": m.c_p50, "c_cycles": m.c_cycles,
            "c_client_cpu_us_per_cycle": m.c_cpu, "c_proxy_cpu_us_per_cycle": m.c_proxy_cpu,
            "c0_cycle_p50_us": m.c0_p50,
            "d_cycle_p50_us": m.d_p50, "d_cycles": m.d_cycles,
            "e_cs_per_s": m.e_rate, "e_per_task_min_max": [m.e_min_max.0, m.e_min_max.1],
            "e2_cs_per_s": m.e2_rate, "e2_per_task_min_max": [m.e2_min_max.0, m.e2_min_max.1],
            "f_cycles_per_s": m.f_rate, "f_client_cpu_us_per_cycle": m.f_cpu,
            "failures": m.failures, "violations": m.violations,
        })
    };
    json!(rounds
        .iter()
        .map(|r| json!({ "redlock": m(&r[0]), "rslock": m(&r[1]) }))
        .collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_takes_ratios_within_rounds() {
        let mut a = Measures {
            a_p50: 300.0,
            b_p50: 400.0,
            c_p50: 420.0,
            d_p50: 430.0,
            e_rate: 3000.0,
            e_min_max: (90, 100),
            e2_rate: 1000.0,
            f_rate: 9000.0,
            b_cpu: 100.0,
            ..Measures::default()
        };
        let mut b = Measures {
            a_p50: 330.0,
            b_p50: 500.0,
            e_rate: 1000.0,
            e_min_max: (10, 100),
            e2_rate: 1000.0,
            f_rate: 10000.0,
            b_cpu: 120.0,
            ..Measures::default()
        };
        let r1 = [a.clone(), b.clone()];
        a.a_p50 = 600.0;
        b.a_p50 = 660.0;
        let t = table(&[r1, [a, b]]);
        assert!(t.contains("| A: 1 master, sequential cycle p50 | 450 µs | 495 µs | redlock / rslock | 0.91 [0.91–0.91] | ≤ 1 | yes |"), "{t}");
        assert!(t.contains("| E: 16 tasks, one resource, library wait | 3000 CS/s | 1000 CS/s | redlock / rslock | 3.00"), "{t}");
        assert!(t.contains("| F: 8 tasks, distinct resources, 5 masters | 9000 cycles/s | 10000 cycles/s | redlock / rslock | 0.90 [0.90–0.90] | ≥ 1 | no |"), "{t}");
        assert!(t.contains("E redlock 90/100, 90/100"), "{t}");
    }
}
