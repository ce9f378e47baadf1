//! The three workloads, shared by the criterion benches and the report.
//!
//! 1. [`uncontended`]: sequential acquire + release cycles, each on a
//!    resource name never used before, timed per phase.
//! 2. [`concurrent`]: `tasks` tasks running such cycles at the same time,
//!    each on its own resources (no contention, only shared connections and
//!    servers).
//! 3. [`contended`]: `tasks` tasks competing for one resource, each looping
//!    acquire + release, waiting either the library's way ([`Retry::Library`]:
//!    redlock-tokio's `acquire`, rslock's retries) or the caller's
//!    ([`Retry::Caller`]: one round per call, a random sleep after a
//!    refusal). It measures how many critical sections per second the lock
//!    passes through, how often it changes hands, and how evenly the tasks
//!    share it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::scenario::Client;
use crate::stats::Latency;

/// A source of resource names never used before in this process, so no
/// run sees keys left by another (contended runs abort tasks mid-acquire,
/// which may leave keys until their TTL).
pub fn fresh_run_id() -> u64 {
    static RUN: AtomicU64 = AtomicU64::new(0);
    RUN.fetch_add(1, Ordering::Relaxed)
}

/// One timed cycle of [`uncontended`].
#[derive(Clone, Copy, Debug)]
pub struct CycleSample {
    /// From calling acquire to holding the lock.
    pub acquire: Duration,
    /// From calling release to its return.
    pub release: Duration,
}

impl CycleSample {
    /// Acquire plus release.
    pub fn cycle(&self) -> Duration {
        self.acquire + self.release
    }
}

/// The distributions of a run's [`CycleSample`]s: acquire, release and
/// the whole cycle.
pub struct CycleLatencies {
    /// From calling acquire to holding the lock.
    pub acquire: Latency,
    /// From calling release to its return.
    pub release: Latency,
    /// Acquire plus release.
    pub cycle: Latency,
}

impl CycleLatencies {
    /// The three distributions of `samples`.
    pub fn of(samples: &[CycleSample]) -> Self {
        Self {
            acquire: Latency::of(samples.iter().map(|s| s.acquire)),
            release: Latency::of(samples.iter().map(|s| s.release)),
            cycle: Latency::of(samples.iter().map(CycleSample::cycle)),
        }
    }
}

/// Result of [`uncontended`].
#[derive(Debug, Default)]
pub struct Uncontended {
    /// One sample per successful cycle.
    pub samples: Vec<CycleSample>,
    /// Acquires that failed (none expected: nobody else holds the names).
    pub failed_acquires: u64,
    /// The first few failure messages, to explain them.
    pub failures: Vec<String>,
    /// Releases that some master did not confirm (expected with a paused
    /// master: its release times out).
    pub incomplete_releases: u64,
}

/// Workload 1: `iters` sequential cycles on fresh resource names, `idle`
/// apart (untimed), stopping early at `deadline`.
pub async fn uncontended(
    client: &Client,
    iters: u64,
    deadline: Option<Instant>,
    idle: Duration,
) -> Uncontended {
    let run = fresh_run_id();
    let mut out = Uncontended {
        samples: Vec::with_capacity(iters.min(1 << 20) as usize),
        ..Uncontended::default()
    };
    for i in 0..iters {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if !idle.is_zero() && i > 0 {
            tokio::time::sleep(idle).await;
        }
        // Built before the clock starts: formatting is not the lock's cost.
        let name = format!("bench:{run}:seq:{i}");
        let t0 = Instant::now();
        let held = match client.try_acquire(&name).await {
            Ok(h) => h,
            Err(e) => {
                out.failed_acquires += 1;
                if out.failures.len() < 5 {
                    out.failures.push(e.to_string());
                }
                continue;
            }
        };
        let t1 = Instant::now();
        if !client.release(held).await {
            out.incomplete_releases += 1;
        }
        let t2 = Instant::now();
        out.samples.push(CycleSample {
            acquire: t1 - t0,
            release: t2 - t1,
        });
    }
    out
}

/// Result of [`concurrent`].
#[derive(Debug, Default)]
pub struct Concurrent {
    /// Wall time from the first task's start to the last task's end.
    pub elapsed: Duration,
    /// Latency of every successful cycle (acquire + release), all tasks.
    pub cycles: Vec<Duration>,
    /// Acquires that failed (none expected).
    pub failed_acquires: u64,
}

impl Concurrent {
    /// Successful cycles per second.
    pub fn throughput(&self) -> f64 {
        self.cycles.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Workload 2: `cycles` cycles in total, spread over `tasks` tasks, each
/// task on its own fresh resource names.
///
/// # Panics
///
/// If a task panics.
pub async fn concurrent(client: &Arc<Client>, tasks: usize, cycles: u64) -> Concurrent {
    let run = fresh_run_id();
    let tasks = tasks.max(1);
    let mut set = JoinSet::new();
    let start = Instant::now();
    for t in 0..tasks {
        // Spread `cycles` evenly; the first `cycles % tasks` do one more.
        let mine = cycles / tasks as u64 + u64::from((t as u64) < cycles % tasks as u64);
        let client = Arc::clone(client);
        set.spawn(async move {
            let mut lat = Vec::with_capacity(mine as usize);
            let mut failed = 0u64;
            for i in 0..mine {
                let name = format!("bench:{run}:par{t}:{i}");
                let t0 = Instant::now();
                match client.try_acquire(&name).await {
                    Ok(h) => {
                        client.release(h).await;
                        lat.push(t0.elapsed());
                    }
                    Err(_) => failed += 1,
                }
            }
            (lat, failed)
        });
    }
    let mut out = Concurrent::default();
    while let Some(joined) = set.join_next().await {
        let (lat, failed) = joined.expect("benchmark task panicked");
        out.cycles.extend(lat);
        out.failed_acquires += failed;
    }
    out.elapsed = start.elapsed();
    out
}

/// How the tasks of [`contended`] wait for the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The library's own wait ([`Client::acquire`]): redlock-tokio's
    /// `acquire` (in-process FIFO queue, then 30 retries, 20..200 ms);
    /// rslock's `lock` with its 3 tries (uniform 0..200 ms), called again
    /// when they run out, as rslock's own `acquire` loop does.
    Library,
    /// One round per call ([`Client::try_acquire`]); after a refusal the
    /// caller sleeps a uniform random time in `0..=jitter` and calls again.
    Caller {
        /// Largest sleep after a refusal.
        jitter: Duration,
    },
}

/// When [`contended`] stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many successful cycles (for criterion's `iter_custom`).
    Cycles(u64),
    /// After this much time.
    Time(Duration),
}

/// Result of [`contended`].
#[derive(Debug, Default)]
pub struct Contended {
    /// Time until the stop condition.
    pub elapsed: Duration,
    /// Successful acquire + release cycles, all tasks.
    pub cycles: u64,
    /// Cycles whose holder differs from the previous holder: real hand-offs
    /// (a task that releases and at once re-acquires is not one).
    pub handoffs: u64,
    /// Successful cycles per task.
    pub per_task: Vec<u64>,
    /// From calling acquire (with retries) to holding the lock, per cycle.
    pub waits: Vec<Duration>,
    /// Calls that returned without the lock (the task then calls again):
    /// retries that ran out ([`Retry::Library`]) or refused rounds
    /// ([`Retry::Caller`]).
    pub gave_up: u64,
    /// Times two tasks held the lock at once. Must be 0.
    pub violations: u64,
}

impl Contended {
    /// Successful cycles per second.
    pub fn throughput(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Hand-offs between different tasks per second.
    pub fn handoff_rate(&self) -> f64 {
        self.handoffs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Fewest and most cycles of any task.
    pub fn min_max(&self) -> (u64, u64) {
        let min = self.per_task.iter().copied().min().unwrap_or(0);
        let max = self.per_task.iter().copied().max().unwrap_or(0);
        (min, max)
    }

    /// Fewest over most cycles of any task: 1 is perfectly even, 0 is a
    /// starved task.
    pub fn fairness(&self) -> f64 {
        let (min, max) = self.min_max();
        if max == 0 {
            0.0
        } else {
            min as f64 / max as f64
        }
    }
}

struct Shared {
    cycles: AtomicU64,
    handoffs: AtomicU64,
    gave_up: AtomicU64,
    violations: AtomicU64,
    held: AtomicBool,
    last_owner: AtomicUsize,
    per_task: Vec<AtomicU64>,
    waits: Mutex<Vec<Duration>>,
    target: u64,
    reached: Notify,
    reached_at: Mutex<Option<Instant>>,
}

const NO_OWNER: usize = usize::MAX;

/// Workload 3: `tasks` tasks loop acquire (waiting as `retry` says) +
/// release on one fresh resource until `stop`. Tasks still waiting then
/// are aborted (their keys, if any, are released in the background or
/// expire with the TTL; the next run uses another resource).
///
/// # Panics
///
/// If a task panics.
pub async fn contended(client: &Arc<Client>, tasks: usize, stop: Stop, retry: Retry) -> Contended {
    let resource = format!("bench:{}:contended", fresh_run_id());
    let tasks = tasks.max(1);
    let shared = Arc::new(Shared {
        cycles: AtomicU64::new(0),
        handoffs: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        held: AtomicBool::new(false),
        last_owner: AtomicUsize::new(NO_OWNER),
        per_task: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
        waits: Mutex::new(Vec::new()),
        target: match stop {
            Stop::Cycles(n) => n.max(1),
            Stop::Time(_) => u64::MAX,
        },
        reached: Notify::new(),
        reached_at: Mutex::new(None),
    });
    let mut set = JoinSet::new();
    let start = Instant::now();
    for me in 0..tasks {
        let client = Arc::clone(client);
        let shared = Arc::clone(&shared);
        let resource = resource.clone();
        set.spawn(async move {
            loop {
                let t0 = Instant::now();
                let held = match retry {
                    Retry::Library => client.acquire(&resource).await,
                    Retry::Caller { jitter } => loop {
                        match client.try_acquire(&resource).await {
                            Ok(h) => break Ok(h),
                            Err(_) => {
                                shared.gave_up.fetch_add(1, Ordering::Relaxed);
                                // Drawn before the await: the thread's RNG
                                // must not live across it.
                                let us = rand::thread_rng().gen_range(
                                    0..=u64::try_from(jitter.as_micros()).unwrap_or(u64::MAX),
                                );
                                tokio::time::sleep(Duration::from_micros(us)).await;
                            }
                        }
                    },
                };
                let Ok(held) = held else {
                    shared.gave_up.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let waited = t0.elapsed();
                // The critical section: check mutual exclusion and who held
                // the lock last.
                if shared.held.swap(true, Ordering::AcqRel) {
                    shared.violations.fetch_add(1, Ordering::Relaxed);
                }
                let prev = shared.last_owner.swap(me, Ordering::AcqRel);
                if prev != me && prev != NO_OWNER {
                    shared.handoffs.fetch_add(1, Ordering::Relaxed);
                }
                // Let the other tasks run while we hold the lock, so an
                // overlap would have a chance to show as a violation.
                tokio::task::yield_now().await;
                shared.held.store(false, Ordering::Release);
                client.release(held).await;
                shared.per_task[me].fetch_add(1, Ordering::Relaxed);
                lock(&shared.waits).push(waited);
                let n = shared.cycles.fetch_add(1, Ordering::AcqRel) + 1;
                if n == shared.target {
                    *lock(&shared.reached_at) = Some(Instant::now());
                    shared.reached.notify_one();
                }
                if n >= shared.target {
                    return;
                }
            }
        });
    }
    match stop {
        Stop::Cycles(_) => shared.reached.notified().await,
        Stop::Time(d) => tokio::time::sleep(d).await,
    }
    let end = (*lock(&shared.reached_at)).unwrap_or_else(Instant::now);
    // Tasks finishing together may overshoot the target; `end` is when it
    // was reached.
    let cycles = shared.cycles.load(Ordering::Acquire).min(shared.target);
    set.abort_all();
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            assert!(e.is_cancelled(), "benchmark task panicked: {e}");
        }
    }
    let waits = std::mem::take(&mut *lock(&shared.waits));
    Contended {
        elapsed: end - start,
        cycles,
        handoffs: shared.handoffs.load(Ordering::Acquire),
        per_task: shared
            .per_task
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .collect(),
        waits,
        gave_up: shared.gave_up.load(Ordering::Acquire),
        violations: shared.violations.load(Ordering::Acquire),
    }
}

/// Locks a std mutex; a poisoned one still holds valid plain data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
