//! Running seeds, and what a run reports: counters, violations, the
//! fingerprint of its trace; plus the helpers the tests assert with, which
//! print the seed and the replay command of every failure.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::checker::Violation;
use crate::cluster::{paused_runtime, Cluster};
use crate::faults;
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::workload;
use crate::world::{lock, STREAM_FAULTS, STREAM_SETUP, STREAM_WORKER};

/// Environment variable: number of seeds of the in-model tests (long mode).
pub const ENV_SEEDS: &str = "REDLOCK_SIM_SEEDS";
/// Environment variable: number of seeds of each negative control.
pub const ENV_CONTROL_SEEDS: &str = "REDLOCK_SIM_CONTROL_SEEDS";
/// Environment variable: replay this one seed, with its full trace.
pub const ENV_SEED: &str = "REDLOCK_SIM_SEED";

/// Faults injected during a run, by class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Crashes followed by a restart with the data.
    pub crashes_persisted: u64,
    /// Crashes followed by an empty restart after the longest TTL.
    pub crashes_empty_after_ttl: u64,
    /// Crashes followed by an immediate empty restart (outside the model).
    pub crashes_empty_immediately: u64,
    /// Master pauses (`SIGSTOP`).
    pub master_pauses: u64,
    /// Partitions (a master cut off from some clients).
    pub partitions: u64,
    /// Forward clock jumps.
    pub clock_jumps_forward: u64,
    /// Backward clock jumps.
    pub clock_jumps_backward: u64,
}

impl FaultCounts {
    /// All faults together.
    pub fn total(&self) -> u64 {
        self.crashes_persisted
            + self.crashes_empty_after_ttl
            + self.crashes_empty_immediately
            + self.master_pauses
            + self.partitions
            + self.clock_jumps_forward
            + self.clock_jumps_backward
    }

    fn add(&mut self, o: &Self) {
        self.crashes_persisted += o.crashes_persisted;
        self.crashes_empty_after_ttl += o.crashes_empty_after_ttl;
        self.crashes_empty_immediately += o.crashes_empty_immediately;
        self.master_pauses += o.master_pauses;
        self.partitions += o.partitions;
        self.clock_jumps_forward += o.clock_jumps_forward;
        self.clock_jumps_backward += o.clock_jumps_backward;
    }
}

/// Counters of one run (or summed over runs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Locks granted by the core.
    pub acquisitions: u64,
    /// `acquire` calls that gave up (retries exhausted).
    pub acquire_failures: u64,
    /// Successful extends.
    pub extends_ok: u64,
    /// Failed extends (the lock keeps the validity the core left it).
    pub extends_failed: u64,
    /// Releases.
    pub releases: u64,
    /// Releases some master could not confirm.
    pub releases_incomplete: u64,
    /// Completed protected actions.
    pub actions: u64,
    /// Client pauses before a validity check (in the model).
    pub client_pauses: u64,
    /// Client pauses between a validity check and its action (outside).
    pub pauses_after_check: u64,
    /// Client pauses between the read and the write of an action
    /// (outside the model; fencing scenarios).
    pub pauses_mid_action: u64,
    /// Fenced scenarios: fences handed out (one per lock).
    pub fences_issued: u64,
    /// Fenced scenarios: the highest fence handed out (max over runs).
    pub max_fence: u64,
    /// Fenced scenarios: holders whose fence the order check compared
    /// with an earlier holder's (granted before their attempt began).
    pub fences_compared: u64,
    /// Fenced scenarios: writes the fenced resource accepted.
    pub fenced_writes: u64,
    /// Fenced scenarios: reads and writes the fenced resource refused
    /// (a stale holder fenced out).
    pub fenced_refused: u64,
    /// Fenced scenarios: updates the fenced resource lost.
    pub fenced_lost_updates: u64,
    /// Updates the unfenced counter lost (completed actions - counter).
    pub unfenced_lost_updates: u64,
    /// Script calls sent.
    pub messages_sent: u64,
    /// Requests or replies lost (loss or partition).
    pub messages_lost: u64,
    /// Calls that ended with the master timeout.
    pub timeouts: u64,
    /// Masters refused by the restart guard in the votes that `acquire`
    /// returned (the last attempt of each call; scenarios with the guard
    /// on).
    pub guard_refusals: u64,
    /// `INFO` commands the masters answered (identity checks).
    pub infos_answered: u64,
    /// `INFO` answers whose whole-second uptime exceeded the true uptime
    /// (the truncation the guard's granularity margin covers).
    pub uptime_overstated: u64,
    /// Client connections replaced after a master restart.
    pub reconnects: u64,
    /// `INFO` answers that arrived after the connection they were asked
    /// on was replaced (the core must treat them as stale).
    pub verifications_raced_by_reconnect: u64,
    /// Granted acquires or extends whose reply arrived after the
    /// connection was replaced (the core must not count them).
    pub votes_raced_by_reconnect: u64,
    /// First `INFO`s that failed at a client's start-up (set-up faults).
    pub setup_failures: u64,
    /// Masters that failed a client's set-up and later voted in a lock it
    /// was granted.
    pub late_joins: u64,
    /// Commands applied after their caller's timeout had passed.
    pub late_applies: u64,
    /// Commands that waited on a paused master.
    pub queued_while_paused: u64,
    /// Calls refused by a crashed or restarted master.
    pub refused_while_down: u64,
    /// Faults injected.
    pub faults: FaultCounts,
}

impl Stats {
    fn add(&mut self, o: &Self) {
        self.acquisitions += o.acquisitions;
        self.acquire_failures += o.acquire_failures;
        self.extends_ok += o.extends_ok;
        self.extends_failed += o.extends_failed;
        self.releases += o.releases;
        self.releases_incomplete += o.releases_incomplete;
        self.actions += o.actions;
        self.client_pauses += o.client_pauses;
        self.pauses_after_check += o.pauses_after_check;
        self.pauses_mid_action += o.pauses_mid_action;
        self.fences_issued += o.fences_issued;
        self.max_fence = self.max_fence.max(o.max_fence);
        self.fences_compared += o.fences_compared;
        self.fenced_writes += o.fenced_writes;
        self.fenced_refused += o.fenced_refused;
        self.fenced_lost_updates += o.fenced_lost_updates;
        self.unfenced_lost_updates += o.unfenced_lost_updates;
        self.messages_sent += o.messages_sent;
        self.messages_lost += o.messages_lost;
        self.timeouts += o.timeouts;
        self.guard_refusals += o.guard_refusals;
        self.infos_answered += o.infos_answered;
        self.uptime_overstated += o.uptime_overstated;
        self.reconnects += o.reconnects;
        self.verifications_raced_by_reconnect += o.verifications_raced_by_reconnect;
        self.votes_raced_by_reconnect += o.votes_raced_by_reconnect;
        self.setup_failures += o.setup_failures;
        self.late_joins += o.late_joins;
        self.late_applies += o.late_applies;
        self.queued_while_paused += o.queued_while_paused;
        self.refused_while_down += o.refused_while_down;
        self.faults.add(&o.faults);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = &self.faults;
        write!(
            f,
            "acquisitions={} acquire-failures={} actions={} extends={}ok/{}failed releases={} \
             faults={} [crash+persisted={} crash+empty-after-ttl={} crash+empty-at-once={} master-pauses={} \
             partitions={} clock-jumps={}fwd/{}back] messages={} lost={} timeouts={} applied-after-timeout={} \
             queued-on-paused={} refused-while-down={} client-pauses={} pauses-after-check={} \
             guard-refusals={} infos={} uptime-overstated={} reconnects={} raced-infos={} raced-votes={} \
             setup-failures={} late-joins={}",
            self.acquisitions,
            self.acquire_failures,
            self.actions,
            self.extends_ok,
            self.extends_failed,
            self.releases,
            x.total(),
            x.crashes_persisted,
            x.crashes_empty_after_ttl,
            x.crashes_empty_immediately,
            x.master_pauses,
            x.partitions,
            x.clock_jumps_forward,
            x.clock_jumps_backward,
            self.messages_sent,
            self.messages_lost,
            self.timeouts,
            self.late_applies,
            self.queued_while_paused,
            self.refused_while_down,
            self.client_pauses,
            self.pauses_after_check,
            self.guard_refusals,
            self.infos_answered,
            self.uptime_overstated,
            self.reconnects,
            self.verifications_raced_by_reconnect,
            self.votes_raced_by_reconnect,
            self.setup_failures,
            self.late_joins,
        )?;
        if self.pauses_mid_action > 0 {
            write!(f, " pauses-mid-action={}", self.pauses_mid_action)?;
        }
        if self.fences_issued > 0 {
            write!(
                f,
                " fences={} max-fence={} fences-compared={} fenced-writes={} fenced-refused={} \
                 lost-updates-fenced={} lost-updates-unfenced={}",
                self.fences_issued,
                self.max_fence,
                self.fences_compared,
                self.fenced_writes,
                self.fenced_refused,
                self.fenced_lost_updates,
                self.unfenced_lost_updates,
            )?;
        }
        Ok(())
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// Number of masters drawn for this seed.
    pub masters: usize,
    /// Counters.
    pub stats: Stats,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Smallest gap between one holder's belief ending and the next one's
    /// starting (`None` with fewer than two holders).
    pub closest_handoff: Option<Duration>,
    /// Hash of the whole event trace, and its number of events: equal
    /// fingerprints mean the same run, event by event.
    pub fingerprint: (u64, u64),
    /// The readable trace (only when asked for).
    pub trace: Vec<String>,
}

/// Runs one seed of `scenario` on a fresh single-threaded runtime with a
/// paused clock, and checks it.
///
/// # Panics
///
/// If the scenario's settings are rejected by the core, or a simulated task
/// panics.
pub fn run_seed(scenario: &Scenario, seed: u64, trace: bool) -> SeedReport {
    paused_runtime().block_on(simulate(scenario, seed, trace))
}

async fn simulate(scenario: &Scenario, seed: u64, trace: bool) -> SeedReport {
    let masters = {
        let mut shape = SimRng::stream(seed, STREAM_SETUP + 1000);
        scenario.masters[shape.gen_range(0..scenario.masters.len())]
    };
    let cluster = Cluster::new(scenario, seed, masters, trace);
    let world = Arc::clone(cluster.world());
    let schedule = faults::schedule(scenario, masters, &mut SimRng::stream(seed, STREAM_FAULTS));
    tokio::spawn(faults::drive(Arc::clone(&world), schedule));
    let mut clients = Vec::new();
    for c in 0..scenario.clients {
        let rng = SimRng::stream(seed, STREAM_WORKER + c as u64);
        clients.push(tokio::spawn(workload::client(
            Arc::clone(&world),
            c,
            Arc::clone(cluster.client(c)),
            rng,
        )));
    }
    for c in clients {
        if let Err(e) = c.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    // Tasks still in flight (late messages, background releases, the
    // fault driver) die with the runtime; no holder is left to be hurt by
    // them.
    let counter = *lock(&world.counter);
    let history = lock(&world.history);
    let mut violations = history.check(counter);
    let closest_handoff = history.closest_handoff();
    let (holders, actions) = history.counts();
    let mut stats = lock(&world.stats).clone();
    stats.acquisitions = holders;
    stats.actions = actions;
    stats.unfenced_lost_updates = actions.saturating_sub(counter);
    if scenario.fencing {
        let store = lock(&world.fenced).clone();
        let (fence_violations, compared) = history.check_fences(&store);
        violations.extend(fence_violations);
        (stats.fences_issued, stats.max_fence) = history.fence_counts();
        stats.fences_compared = compared;
        stats.fenced_writes = store.accepted;
        stats.fenced_refused = store.refused_reads + store.refused_writes;
        stats.fenced_lost_updates = store.lost_updates();
    }
    let mut t = lock(&world.trace);
    SeedReport {
        scenario: scenario.name,
        seed,
        masters,
        stats,
        violations,
        closest_handoff,
        fingerprint: t.fingerprint(),
        trace: t.take_lines(),
    }
}

/// The outcome of many seeds.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Scenario name.
    pub scenario: &'static str,
    /// One report per seed, in seed order (without traces).
    pub reports: Vec<SeedReport>,
    /// Counters summed over all seeds.
    pub totals: Stats,
}

impl Summary {
    /// Fails the test when a class of fault the scenario claims to inject
    /// was never injected (`count` is its total over the seeds): a fault
    /// model that is not exercised proves nothing.
    ///
    /// # Panics
    ///
    /// When `count` is 0.
    pub fn assert_injected(&self, what: &str, count: u64) {
        assert!(
            count > 0,
            "[{}] no {what} injected over {} seeds: the scenario does not exercise it",
            self.scenario,
            self.seeds()
        );
    }

    /// Number of seeds run.
    pub fn seeds(&self) -> usize {
        self.reports.len()
    }

    /// Total number of violations.
    pub fn violations(&self) -> usize {
        self.reports.iter().map(|r| r.violations.len()).sum()
    }

    /// The reports of seeds with at least one violation.
    pub fn failing(&self) -> impl Iterator<Item = &SeedReport> {
        self.reports.iter().filter(|r| !r.violations.is_empty())
    }

    /// Fraction of seeds with at least one violation.
    pub fn caught_fraction(&self) -> f64 {
        self.failing().count() as f64 / self.seeds().max(1) as f64
    }

    /// The closest handoff over all seeds, and its seed.
    pub fn closest_handoff(&self) -> Option<(Duration, u64)> {
        self.reports
            .iter()
            .filter_map(|r| r.closest_handoff.map(|d| (d, r.seed)))
            .min()
    }

    /// Violations by kind: validity overlaps, action overlaps, seeds with
    /// lost updates.
    pub fn by_kind(&self) -> (usize, usize, usize) {
        let all = self.reports.iter().flat_map(|r| r.violations.iter());
        let mut k = (0, 0, 0);
        for v in all {
            match v {
                Violation::ValidityOverlap { .. } => k.0 += 1,
                Violation::ActionOverlap { .. } => k.1 += 1,
                Violation::LostUpdates { .. } => k.2 += 1,
                // Fence checks: counted by `fence_kinds`.
                _ => {}
            }
        }
        k
    }

    /// Seeds with a violation `which` selects.
    pub fn seeds_where(&self, which: impl Fn(&Violation) -> bool) -> usize {
        self.reports
            .iter()
            .filter(|r| r.violations.iter().any(&which))
            .count()
    }

    /// Fence checks: monotonicity violations (fences repeated or not above
    /// an earlier holder's), and all fence violations (with locks without
    /// a fence and the fenced resource's lost updates).
    pub fn fence_kinds(&self) -> (usize, usize) {
        let all = self.reports.iter().flat_map(|r| r.violations.iter());
        let mut k = (0, 0);
        for v in all {
            k.0 += usize::from(v.is_monotonicity());
            k.1 += usize::from(v.is_fence());
        }
        k
    }

    /// Seeds whose unfenced counter lost updates.
    pub fn unfenced_loss_seeds(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| r.stats.unfenced_lost_updates > 0)
            .count()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, a, l) = self.by_kind();
        let closest = match self.closest_handoff() {
            Some((d, seed)) => format!("{:.3}ms (seed {seed})", d.as_secs_f64() * 1e3),
            None => "-".to_owned(),
        };
        write!(
            f,
            "[{}] seeds={} violations={} (validity-overlaps={w} action-overlaps={a} lost-update-seeds={l}) in {} seeds; \
             closest-handoff={closest}; ",
            self.scenario,
            self.seeds(),
            self.violations(),
            self.failing().count(),
        )?;
        if self.totals.fences_issued > 0 {
            let (mono, fence) = self.fence_kinds();
            write!(
                f,
                "fence-violations={fence} (monotonicity={mono}) in {} seeds, \
                 unfenced-lost-update-seeds={}; ",
                self.seeds_where(Violation::is_fence),
                self.unfenced_loss_seeds()
            )?;
        }
        write!(f, "{}", self.totals)
    }
}

/// Runs every seed, spread over the available cores; reports come back in
/// seed order, so the summary does not depend on thread timing.
pub fn run_seeds(scenario: &Scenario, seeds: &[u64]) -> Summary {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let report = run_seed(scenario, seed, false);
                lock(&out).push(report);
            });
        }
    });
    let mut reports = out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|r| r.seed);
    let mut totals = Stats::default();
    for r in &reports {
        totals.add(&r.stats);
    }
    Summary {
        scenario: scenario.name,
        reports,
        totals,
    }
}

/// Prints a line to stderr *around* libtest's output capture (which only
/// intercepts the `print!` macros), so every test's summary shows in CI logs
/// even when it passes.
fn show(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={v:?} is not a number: {e}"),
    }
}

/// The [`TestName`] of `test` in the integration test target this is
/// expanded in (`env!("CARGO_CRATE_NAME")` is read there, not here).
#[macro_export]
macro_rules! test_name {
    ($test:expr) => {
        $crate::TestName {
            target: env!("CARGO_CRATE_NAME"),
            test: $test,
        }
    };
}

/// Where a test lives, for the replay command it prints.
#[derive(Clone, Copy, Debug)]
pub struct TestName {
    /// The integration test target (`env!("CARGO_CRATE_NAME")` in it).
    pub target: &'static str,
    /// The test function.
    pub test: &'static str,
}

impl TestName {
    /// The command that replays `seed` of this test with its full trace.
    pub fn replay(&self, seed: u64) -> String {
        format!(
            "{ENV_SEED}={seed} cargo test -p redlock-sim --test {} -- --exact {} --nocapture",
            self.target, self.test
        )
    }
}

/// Replays one seed with its trace printed, and returns its report.
fn replay(scenario: &Scenario, seed: u64) -> SeedReport {
    let mut r = run_seed(scenario, seed, true);
    for line in &r.trace {
        println!("{line}");
    }
    r.trace.clear();
    println!(
        "[{}] seed={seed} masters={} closest-handoff={:?} fingerprint={:?} {}",
        scenario.name, r.masters, r.closest_handoff, r.fingerprint, r.stats
    );
    for v in &r.violations {
        println!("  VIOLATION: {v}");
    }
    r
}

/// The in-model assertion: no violation on any seed. Runs
/// `REDLOCK_SIM_SEEDS` seeds (default `default_seeds`), or only
/// `REDLOCK_SIM_SEED` with its trace. Prints one summary line.
///
/// # Panics
///
/// On any violation, listing each failing seed (up to 10), its first
/// violations and the command that replays it.
pub fn assert_no_violations(scenario: &Scenario, name: TestName, default_seeds: u64) -> Summary {
    let summary = if let Some(seed) = env_u64(ENV_SEED) {
        let r = replay(scenario, seed);
        Summary {
            scenario: scenario.name,
            totals: r.stats.clone(),
            reports: vec![r],
        }
    } else {
        let n = env_u64(ENV_SEEDS).unwrap_or(default_seeds);
        let seeds: Vec<u64> = (0..n).collect();
        run_seeds(scenario, &seeds)
    };
    show(&format!("{} {summary}", name.test));
    let failing: Vec<&SeedReport> = summary.failing().collect();
    if !failing.is_empty() {
        let mut msg = format!(
            "{}: {} violations in {} of {} seeds (within the fault model: expected none)\n",
            name.test,
            summary.violations(),
            failing.len(),
            summary.seeds()
        );
        for r in failing.iter().take(10) {
            msg.push_str(&format!("  seed {} ({} masters):\n", r.seed, r.masters));
            for v in r.violations.iter().take(3) {
                msg.push_str(&format!("    {v}\n"));
            }
            msg.push_str(&format!("    replay: {}\n", name.replay(r.seed)));
        }
        panic!("{msg}");
    }
    summary
}

/// The fencing assertion outside the lock's envelope: on every seed, no
/// fence violation (fences strictly increase, the fenced resource loses
/// nothing), while the unfenced counter of the same runs loses updates
/// in more than `min_unfenced_loss` of the seeds (the control that shows
/// the scenario does break what the lock alone protects). Seeds as
/// [`assert_no_violations`]. Prints the summary and both rates.
///
/// # Panics
///
/// On any fence violation (listing failing seeds with their replay
/// command), or when the unfenced counter loses too rarely.
pub fn assert_fences_hold(
    scenario: &Scenario,
    name: TestName,
    default_seeds: u64,
    min_unfenced_loss: f64,
) -> Summary {
    let summary = if let Some(seed) = env_u64(ENV_SEED) {
        let r = replay(scenario, seed);
        Summary {
            scenario: scenario.name,
            totals: r.stats.clone(),
            reports: vec![r],
        }
    } else {
        let n = env_u64(ENV_SEEDS).unwrap_or(default_seeds);
        let seeds: Vec<u64> = (0..n).collect();
        run_seeds(scenario, &seeds)
    };
    show(&format!("{} {summary}", name.test));
    let t = &summary.totals;
    let lossy = summary.unfenced_loss_seeds();
    show(&format!(
        "{}: seeds={} fences={} monotonicity-violations={} lost-updates fenced={} vs unfenced={} \
         (unfenced lost updates in {lossy}/{} seeds, {:.0}%; fenced writes refused: {})",
        name.test,
        summary.seeds(),
        t.fences_issued,
        summary.fence_kinds().0,
        t.fenced_lost_updates,
        t.unfenced_lost_updates,
        summary.seeds(),
        100.0 * lossy as f64 / summary.seeds().max(1) as f64,
        t.fenced_refused,
    ));
    let failing: Vec<&SeedReport> = summary
        .reports
        .iter()
        .filter(|r| r.violations.iter().any(Violation::is_fence))
        .collect();
    if !failing.is_empty() {
        let mut msg = format!(
            "{}: fence violations in {} of {} seeds (expected none)\n",
            name.test,
            failing.len(),
            summary.seeds()
        );
        for r in failing.iter().take(10) {
            msg.push_str(&format!("  seed {} ({} masters):\n", r.seed, r.masters));
            for v in r.violations.iter().filter(|v| v.is_fence()).take(3) {
                msg.push_str(&format!("    {v}\n"));
            }
            msg.push_str(&format!("    replay: {}\n", name.replay(r.seed)));
        }
        panic!("{msg}");
    }
    if env_u64(ENV_SEED).is_none() {
        assert!(
            lossy as f64 > min_unfenced_loss * summary.seeds() as f64,
            "{}: the unfenced counter lost updates in only {lossy} of {} seeds: \
             the scenario does not stress what fencing is for",
            name.test,
            summary.seeds()
        );
    }
    summary
}

/// The negative-control assertion: the checker catches the scenario in
/// more than `min_fraction` of `REDLOCK_SIM_CONTROL_SEEDS` seeds (default
/// `default_seeds`). Prints the fraction and one caught seed with its
/// replay command. With `REDLOCK_SIM_SEED`, replays that seed and asserts
/// nothing.
///
/// # Panics
///
/// When too few seeds are caught: the checker would not be proving
/// anything about this class of fault.
pub fn assert_caught(
    scenario: &Scenario,
    name: TestName,
    default_seeds: u64,
    min_fraction: f64,
) -> Summary {
    assert_caught_by(scenario, name, default_seeds, min_fraction, |_| true)
}

/// As [`assert_caught`], counting only the violations `which` selects
/// (e.g. [`Violation::is_monotonicity`] for the fence mutant).
///
/// # Panics
///
/// When too few seeds are caught by those violations.
pub fn assert_caught_by(
    scenario: &Scenario,
    name: TestName,
    default_seeds: u64,
    min_fraction: f64,
    which: fn(&Violation) -> bool,
) -> Summary {
    if let Some(seed) = env_u64(ENV_SEED) {
        let r = replay(scenario, seed);
        show(&format!(
            "{}: seed {seed} {}",
            name.test,
            if r.violations.iter().any(which) {
                "caught"
            } else {
                "NOT caught"
            }
        ));
        return Summary {
            scenario: scenario.name,
            totals: r.stats.clone(),
            reports: vec![r],
        };
    }
    let n = env_u64(ENV_CONTROL_SEEDS).unwrap_or(default_seeds);
    let seeds: Vec<u64> = (0..n).collect();
    let summary = run_seeds(scenario, &seeds);
    let caught = summary.seeds_where(which);
    let fraction = caught as f64 / summary.seeds().max(1) as f64;
    show(&format!("{} {summary}", name.test));
    show(&format!(
        "{}: caught in {caught}/{} seeds ({:.0}%, required > {:.0}%)",
        name.test,
        summary.seeds(),
        100.0 * fraction,
        100.0 * min_fraction
    ));
    if let Some(r) = summary
        .reports
        .iter()
        .find(|r| r.violations.iter().any(which))
    {
        if let Some(v) = r.violations.iter().find(|v| which(v)) {
            show(&format!(
                "  e.g. seed {}: {v}\n  replay: {}",
                r.seed,
                name.replay(r.seed)
            ));
        }
    }
    assert!(
        fraction > min_fraction,
        "{}: the checker caught only {caught} of {} seeds; a negative control must be caught in most seeds",
        name.test,
        summary.seeds()
    );
    summary
}
