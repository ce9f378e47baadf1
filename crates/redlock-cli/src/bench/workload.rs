//! The workloads: sequential cycles (plain or fenced), concurrent cycles on
//! distinct resources, and two kinds of contention for one resource (the
//! core's retry alone, and the adapter's `acquire` with its in-process
//! FIFO queue).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use redlock_core::{AcquireOptions, ResourceSet, RetryPolicy};
use serde::Serialize;
use tokio::task::JoinSet;

use super::hist::{per_sec, round1, Latency, LatencySummary, Span};
use super::Locks;

/// How long a contender may wait for the lock before the cycle counts as
/// an error: far above any sane wait, only there so a stuck master cannot
/// hang the benchmark.
const CONTENDED_WAIT: Duration = Duration::from_secs(60);

/// An uncontended workload's results (`WORKLOAD` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Workload {
    pub(crate) tasks: u64,
    pub(crate) cycles: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_ms: f64,
    pub(crate) cycles_per_sec: f64,
    pub(crate) client_cpu_us_per_cycle: f64,
    pub(crate) acquire: LatencySummary,
    pub(crate) release: LatencySummary,
    pub(crate) cycle: LatencySummary,
    #[serde(skip)]
    pub(crate) first_error: Option<String>,
}

/// The contended workload's results (`CONTENDED` in the schema).
///
/// A task that releases and asks again at once usually wins again, while
/// the others sleep in their backoff; so "acquisitions" and "hand-offs"
/// (the lock going to a *different* task) are counted apart.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Contended {
    pub(crate) tasks: u64,
    pub(crate) acquisitions: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_ms: f64,
    pub(crate) acquisitions_per_sec: f64,
    pub(crate) client_cpu_us_per_acquisition: f64,
    pub(crate) owner_changes: u64,
    pub(crate) handoffs_per_sec: f64,
    pub(crate) wait: LatencySummary,
    pub(crate) handoff_wait: LatencySummary,
    pub(crate) release: LatencySummary,
    #[serde(skip)]
    pub(crate) first_error: Option<String>,
}

/// Contention through the adapter's `acquire` (`QUEUED` in the schema):
/// what a service whose tasks share one `LockManager` gets.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Queued {
    pub(crate) tasks: u64,
    pub(crate) critical_sections: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_ms: f64,
    pub(crate) critical_sections_per_sec: f64,
    pub(crate) client_cpu_us_per_critical_section: f64,
    /// Fewest critical sections any task ran.
    pub(crate) per_task_min: u64,
    /// Most critical sections any task ran.
    pub(crate) per_task_max: u64,
    /// `per_task_min / per_task_max`: 1 is perfectly fair, 0 is a task
    /// starved.
    pub(crate) fairness: f64,
    pub(crate) owner_changes: u64,
    /// Times a task entered the critical section while another was in it.
    /// Must be 0.
    pub(crate) exclusion_violations: u64,
    pub(crate) wait: LatencySummary,
    pub(crate) release: LatencySummary,
    #[serde(skip)]
    pub(crate) first_error: Option<String>,
}

/// Histograms of one uncontended loop.
#[derive(Debug)]
pub(crate) struct Hists {
    pub(crate) acquire: Latency,
    pub(crate) release: Latency,
    pub(crate) cycle: Latency,
    pub(crate) cycles: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Hists {
    pub(crate) fn new() -> Self {
        Self {
            acquire: Latency::new(),
            release: Latency::new(),
            cycle: Latency::new(),
            cycles: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, o: &Self) {
        self.acquire.merge(&o.acquire);
        self.release.merge(&o.release);
        self.cycle.merge(&o.cycle);
        self.cycles += o.cycles;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }

    pub(crate) fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    pub(crate) fn into_workload(self, tasks: u64, span: &Span) -> (Workload, Latency) {
        let (elapsed, cpu) = span.finish(self.cycles + self.errors);
        let secs = elapsed.as_secs_f64();
        let w = Workload {
            tasks,
            cycles: self.cycles,
            errors: self.errors,
            elapsed_ms: round1(secs * 1000.0),
            cycles_per_sec: per_sec(self.cycles, secs),
            client_cpu_us_per_cycle: cpu,
            acquire: self.acquire.summary(),
            release: self.release.summary(),
            cycle: self.cycle.summary(),
            first_error: self.first_error,
        };
        (w, self.cycle)
    }
}

/// What the cycles of [`cycle_loop`] ask for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cycles {
    /// With a fencing token (a second round trip to a quorum).
    pub(crate) fenced: bool,
    /// Stop early at this instant (the fault scenarios, where a
    /// misbehaving setup must not hold the run for long).
    pub(crate) deadline: Option<Instant>,
}

impl Cycles {
    /// Plain cycles, no deadline.
    pub(crate) const PLAIN: Self = Self {
        fenced: false,
        deadline: None,
    };
}

/// `n` acquire + release cycles, one after the other, on `name(i)`: one
/// attempt each (`try_acquire`), released through the core (which returns
/// once a quorum confirmed).
///
/// Fenced cycles also check that every fence is above the previous one (a
/// fence that does not increase counts as an error): the benchmark is the
/// one place that takes thousands of fenced locks in a row.
pub(crate) async fn cycle_loop(
    m: Locks,
    name: impl Fn(u64) -> String,
    n: u64,
    how: Cycles,
    progress: ProgressBar,
) -> Hists {
    let core = m.core();
    let opts = AcquireOptions::once().fenced(how.fenced);
    let mut last_fence = 0u64;
    let mut h = Hists::new();
    for i in 0..n {
        if how.deadline.is_some_and(|d| Instant::now() >= d) {
            progress.inc(n - i);
            break;
        }
        // Name checks and token generation happen outside the timed region.
        let set = match ResourceSet::try_from(name(i)) {
            Ok(s) => s,
            Err(e) => {
                h.error(e);
                continue;
            }
        };
        let token = core.settings().new_token(core.runtime());
        let t0 = Instant::now();
        match core.acquire_with(&set, &opts, token).await {
            Ok(lock) => {
                let t1 = Instant::now();
                let fence = lock.fence();
                match core.release(lock).await {
                    Ok(_) => {
                        let t2 = Instant::now();
                        let fence_ok = match (how.fenced, fence) {
                            (false, _) => true,
                            (true, Some(f)) if f.get() > last_fence => {
                                last_fence = f.get();
                                true
                            }
                            (true, other) => {
                                h.error(format_args!(
                                    "fence {other:?} is not above the previous one ({last_fence})"
                                ));
                                false
                            }
                        };
                        if fence_ok {
                            h.acquire.record(t1 - t0);
                            h.release.record(t2 - t1);
                            h.cycle.record(t2 - t0);
                            h.cycles += 1;
                        }
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
pub(crate) async fn concurrent(
    m: &Locks,
    base: &str,
    n: u64,
    c: u64,
    progress: &ProgressBar,
) -> (Workload, Latency) {
    let mut set = JoinSet::new();
    let span = Span::start();
    for task in 0..c {
        let share = n / c + u64::from(task < n % c);
        let name = format!("{base}:{task}");
        let (m, p) = (m.clone(), progress.clone());
        set.spawn(cycle_loop(
            m,
            move |_| name.clone(),
            share,
            Cycles::PLAIN,
            p,
        ));
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

/// Counters shared by the tasks of a contended workload.
struct Shared {
    /// Acquisitions still to hand out: a task takes one before it asks.
    remaining: AtomicU64,
    last_owner: AtomicUsize,
    changes: AtomicU64,
    /// Set while some task is in the critical section.
    busy: AtomicBool,
    violations: AtomicU64,
}

impl Shared {
    fn new(n: u64) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicU64::new(n),
            last_owner: AtomicUsize::new(usize::MAX),
            changes: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            violations: AtomicU64::new(0),
        })
    }

    fn take_ticket(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            .is_ok()
    }

    /// Records that `task` now holds the lock; whether it changed hands.
    fn enter(&self, task: usize) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        // Only the holder writes here, so the swap sees the previous holder.
        let prev = self.last_owner.swap(task, Ordering::AcqRel);
        let changed = prev != usize::MAX && prev != task;
        if changed {
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Leaves the critical section (before the release: the lock is still
    /// held until the release returns, so nobody else can enter earlier).
    fn leave(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// `c` tasks on one resource through the core's `acquire_with` and its
/// default backoff (no in-process queue), until `n` acquisitions in total.
pub(crate) async fn contended(
    m: &Locks,
    resource: &ResourceSet,
    n: u64,
    c: u64,
    progress: &ProgressBar,
) -> (Contended, Latency) {
    // What a caller of the core's `acquire` gets by default (the default
    // backoff, equal jitter), without the retry count, so that only the
    // deadline ends a wait.
    let opts = Arc::new(
        AcquireOptions::new()
            .retry(RetryPolicy::default().until_deadline())
            .wait(Some(CONTENDED_WAIT)),
    );
    let shared = Shared::new(n);
    let span = Span::start();
    let mut set = JoinSet::new();
    for task in 0..c {
        let task = usize::try_from(task).unwrap_or(usize::MAX - 1);
        let (m, p, opts, resource, shared) = (
            m.clone(),
            progress.clone(),
            Arc::clone(&opts),
            resource.clone(),
            Arc::clone(&shared),
        );
        set.spawn(async move {
            let core = m.core();
            let mut wait = Latency::new();
            let mut handoff_wait = Latency::new();
            let mut h = Hists::new();
            while shared.take_ticket() {
                let token = core.settings().new_token(core.runtime());
                let t0 = Instant::now();
                match core.acquire_with(&resource, &opts, token).await {
                    Ok(lock) => {
                        let t1 = Instant::now();
                        wait.record(t1 - t0);
                        if shared.enter(task) {
                            handoff_wait.record(t1 - t0);
                        }
                        shared.leave();
                        match core.release(lock).await {
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
    let mut wait = Latency::new();
    let mut handoff_wait = Latency::new();
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
    let owner_changes = shared.changes.load(Ordering::Relaxed);
    let k = Contended {
        tasks: c,
        acquisitions: total.cycles,
        errors: total.errors,
        elapsed_ms: round1(secs * 1000.0),
        acquisitions_per_sec: per_sec(total.cycles, secs),
        client_cpu_us_per_acquisition: cpu,
        owner_changes,
        handoffs_per_sec: per_sec(owner_changes, secs),
        wait: wait.summary(),
        handoff_wait: handoff_wait.summary(),
        release: total.release.summary(),
        first_error: total.first_error,
    };
    (k, wait)
}

/// `c` tasks on one resource through the adapter's `acquire` (the
/// manager's retry policy, behind the in-process FIFO queue: only the
/// head of the queue asks the masters), until `n` critical sections in
/// total. The critical section yields once to the runtime, so an overlap
/// would have a chance to show as an exclusion violation.
pub(crate) async fn queued(
    m: &Locks,
    resource: &ResourceSet,
    n: u64,
    c: u64,
    progress: &ProgressBar,
) -> (Queued, Latency) {
    let shared = Shared::new(n);
    let span = Span::start();
    let mut set = JoinSet::new();
    for task in 0..c {
        let task = usize::try_from(task).unwrap_or(usize::MAX - 1);
        let (m, p, resource, shared) = (
            m.clone(),
            progress.clone(),
            resource.clone(),
            Arc::clone(&shared),
        );
        set.spawn(async move {
            let mut wait = Latency::new();
            let mut h = Hists::new();
            while shared.take_ticket() {
                let t0 = Instant::now();
                match m.acquire(&resource).await {
                    Ok(guard) => {
                        wait.record(t0.elapsed());
                        shared.enter(task);
                        tokio::task::yield_now().await;
                        shared.leave();
                        let t1 = Instant::now();
                        match guard.release().await {
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
            (wait, h)
        });
    }
    let mut wait = Latency::new();
    let mut total = Hists::new();
    let mut per_task = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((w, h)) => {
                wait.merge(&w);
                per_task.push(h.cycles);
                total.merge(&h);
            }
            Err(e) => total.error(format_args!("benchmark task failed: {e}")),
        }
    }
    let (elapsed, cpu) = span.finish(total.cycles + total.errors);
    let secs = elapsed.as_secs_f64();
    let (min, max) = min_max(&per_task);
    let q = Queued {
        tasks: c,
        critical_sections: total.cycles,
        errors: total.errors,
        elapsed_ms: round1(secs * 1000.0),
        critical_sections_per_sec: per_sec(total.cycles, secs),
        client_cpu_us_per_critical_section: cpu,
        per_task_min: min,
        per_task_max: max,
        fairness: fairness(min, max),
        owner_changes: shared.changes.load(Ordering::Relaxed),
        exclusion_violations: shared.violations.load(Ordering::Relaxed),
        wait: wait.summary(),
        release: total.release.summary(),
        first_error: total.first_error,
    };
    (q, wait)
}

/// Fewest and most of `counts` (0, 0 when empty).
fn min_max(counts: &[u64]) -> (u64, u64) {
    let min = counts.iter().copied().min().unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(0);
    (min, max)
}

/// `min / max`, two decimals; 0 when nobody ran anything.
fn fairness(min: u64, max: u64) -> f64 {
    if max == 0 {
        0.0
    } else {
        (min as f64 / max as f64 * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairness_is_fewest_over_most() {
        assert_eq!(min_max(&[5, 9, 3]), (3, 9));
        assert_eq!(fairness(3, 9), 0.33);
        assert_eq!(fairness(7, 7), 1.0);
        assert_eq!(fairness(0, 0), 0.0);
        assert_eq!(min_max(&[]), (0, 0));
    }

    #[test]
    fn tickets_run_out_exactly() {
        let s = Shared::new(2);
        assert!(s.take_ticket());
        assert!(s.take_ticket());
        assert!(!s.take_ticket());
    }

    #[test]
    fn an_overlap_is_a_violation_and_a_new_owner_a_change() {
        let s = Shared::new(0);
        assert!(!s.enter(1), "the first holder is no change");
        s.leave();
        assert!(s.enter(2));
        assert!(!s.enter(2), "overlap with itself still counts below");
        assert_eq!(s.violations.load(Ordering::Relaxed), 1);
    }
}
