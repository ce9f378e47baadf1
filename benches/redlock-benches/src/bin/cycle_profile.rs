//! A client alone, for profilers: `N` lock cycles of one implementation
//! against masters started elsewhere, so that `perf stat`, `strace -c` or
//! `perf record` see the client's threads and nothing else.
//!
//! ```text
//! perf stat -e task-clock,context-switches,syscalls:sys_enter_writev \
//!     target/release/cycle_profile --impl redlock --cycles 20000 \
//!     --urls redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
//! ```
//!
//! Options: `--impl redlock|rslock|core-redis-rs` (the last: the core over
//! the redis-rs experiment, see [`RedisRsMaster`]), `--urls URL,..`, `--cycles N`
//! (default 20000), `--tasks T` (default 1: sequential cycles; more: that
//! many tasks on distinct resources, as scenario F). It prints the cycles,
//! the wall time, the p50 of acquire, release and cycle (sequential runs)
//! and the client CPU per cycle.
//!
//! `--release inline` (redlock, sequential only) is an experiment, not
//! the library: it releases through the [`Master`] trait in the calling
//! task, awaiting every master there, instead of the core's `release`
//! (which polls the releases in the caller until the quorum decides, and
//! leaves the rest to their connection or, on masters that cannot take
//! them, to a spawned task). It was the evidence for moving that spawn
//! off the healthy path (see `docs/benchmarks.md`, twelfth and thirteenth
//! sessions).
//!
//! `--ping plain|timeout` (redlock) sends `PING` to every master in
//! parallel instead of lock cycles, over redlock's own fred clients,
//! without or with the per-call options redlock puts on every command
//! (the per-master timeout): the difference is what fred's per-command
//! timer costs.
//!
//! `--ping floor` needs no lock library at all: each "cycle" is two
//! rounds of `PING` to every master of `--urls` in parallel over plain
//! redis-rs multiplexed connections, each round returning at the
//! majority-th answer and leaving the rest to a spawned task, as the
//! core's acquire and release do. It is the floor under a quorum cycle
//! over redis-rs on this machine and runtime: its 5-master p50 over its
//! 1-master p50 is the best B / A a Redlock client over redis-rs reaches
//! there.
//!
//! `--ping direct` is the same floor over plain TCP connections that the
//! calling task writes and reads itself, no redis-rs and no driver task
//! ([`DirectFloor`]): what a connection layer without one would cost.
//!
//! `--ping direct-lock` is `--ping direct` with the lock's own commands
//! instead of `PING`: the library's `SET ... NX PX ... GET` in the first
//! round and `EVAL` of its release script in the second
//! ([`DirectFloor::connect_lock`]). Each master then does a lock cycle's
//! work, and only the library's client work is left out: its 5-master
//! p50 over its 1-master p50 is the best B / A of a client on this
//! machine and runtime, the servers' command time included.
//!
//! `--runtime multi|current` runs everything on tokio's multi-thread
//! runtime (the default, one worker per CPU) or on one thread.
//!
//! `--slow-last-ms M` reaches the last of `--urls` through the in-process
//! delaying proxy of scenario C (`M` ms each way); its threads are named
//! `proxy*`, so `perf report --comm` can leave them out.
//!
//! Every run also counts the process's heap allocations (a counting
//! global allocator over the system one) and prints them per cycle:
//! unlike time, that count is the same on a loaded machine as on an
//! idle one, so it compares implementations and builds exactly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_benches::fanout::{DirectFloor, QuorumFloor};
use redlock_benches::redis_rs::RedisRsMaster;
use redlock_benches::scenario::{own_cpu, CpuSplit};
use redlock_benches::workload;
use redlock_benches::{Client, Env, Flavor, Impl, Scenario};
use redlock_core::{Master, Redlock, Settings};
use redlock_tokio::TokioRuntime;

/// The allocation count printed with every run (see the module docs).
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// The system allocator, counting allocations (`alloc` and `realloc`
    /// calls) and the bytes they asked for, for every thread of the process.
    struct Counting;

    static ALLOCS: AtomicU64 = AtomicU64::new(0);
    static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

    // SAFETY: every call is forwarded unchanged to `System`; the counters are
    // plain relaxed atomics and never allocate. (A global allocator cannot be
    // written without `unsafe`: the trait is unsafe.)
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Relaxed);
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Relaxed);
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Relaxed);
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations and bytes allocated so far, process-wide.
    pub(crate) fn allocated() -> (u64, u64) {
        (ALLOCS.load(Relaxed), ALLOC_BYTES.load(Relaxed))
    }

    /// ", allocations: N/cycle, B bytes/cycle" since `since` (from
    /// [`allocated`]), over `cycles`.
    pub(crate) fn per_cycle_allocs(since: (u64, u64), cycles: u64) -> String {
        let (n, bytes) = allocated();
        let c = cycles.max(1) as f64;
        format!(
            ", {:.1} allocations/cycle ({:.0} bytes)",
            n.saturating_sub(since.0) as f64 / c,
            bytes.saturating_sub(since.1) as f64 / c
        )
    }
}

use counting::{allocated, per_cycle_allocs};

fn usage(problem: &str) -> ! {
    eprintln!("cycle_profile: {problem}");
    eprintln!(
        "usage: cycle_profile --impl redlock|rslock|core-redis-rs --urls URL,.. [--cycles N] [--tasks T] \
         [--release core|inline] [--ping plain|timeout|floor|direct|direct-lock] \
         [--handoff library|fifo|pipelined [--secs S]] [--spawn N [--net-us U]] \
         [--managers K --wake on|off [--secs S] [--hold-ms H] [--think-ms T]] [--slow-last-ms M] \
         [--runtime multi|current]"
    );
    std::process::exit(2)
}

fn main() {
    // `--runtime` picks the runtime the rest of the arguments are read in.
    let args: Vec<String> = std::env::args().collect();
    let flavor = match args.iter().position(|a| a == "--runtime") {
        None => Flavor::Multi,
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("multi") => Flavor::Multi,
            Some("current") => Flavor::Current,
            _ => usage("--runtime multi|current"),
        },
    };
    match flavor.runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => usage(&format!("no tokio runtime: {e}")),
    }
}

async fn run() {
    let mut imp = None;
    let mut urls = Vec::new();
    let mut cycles = 20_000u64;
    let mut tasks = 1usize;
    let mut inline = false;
    let mut ping: Option<bool> = None;
    let mut floor: Option<FloorKind> = None;
    let mut handoff: Option<String> = None;
    let mut secs = 3u64;
    let mut spawn = 0usize;
    let mut net_us = 0u64;
    let mut redis_rs = false;
    let mut managers = 0usize;
    let mut wake = false;
    let mut hold_ms = 0u64;
    let mut think_ms = 0u64;
    let mut slow_last_ms: Option<u64> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--impl" => {
                imp = Some(match value.as_str() {
                    "redlock" => Impl::Redlock,
                    "rslock" => Impl::Rslock,
                    "core-redis-rs" => {
                        redis_rs = true;
                        Impl::Redlock
                    }
                    other => usage(&format!("unknown implementation {other}")),
                });
            }
            "--urls" => urls = value.split(',').map(str::to_owned).collect(),
            "--cycles" => cycles = value.parse().unwrap_or_else(|_| usage("--cycles N")),
            "--tasks" => tasks = value.parse().unwrap_or_else(|_| usage("--tasks T")),
            "--handoff" => handoff = Some(value),
            "--managers" => managers = value.parse().unwrap_or_else(|_| usage("--managers K")),
            "--hold-ms" => hold_ms = value.parse().unwrap_or_else(|_| usage("--hold-ms H")),
            "--slow-last-ms" => {
                slow_last_ms = Some(value.parse().unwrap_or_else(|_| usage("--slow-last-ms M")));
            }
            "--think-ms" => think_ms = value.parse().unwrap_or_else(|_| usage("--think-ms T")),
            "--wake" => {
                wake = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    other => usage(&format!("--wake on|off, not {other}")),
                };
            }
            "--secs" => secs = value.parse().unwrap_or_else(|_| usage("--secs S")),
            // Read by `main`.
            "--runtime" => {}
            "--spawn" => spawn = value.parse().unwrap_or_else(|_| usage("--spawn N")),
            "--net-us" => net_us = value.parse().unwrap_or_else(|_| usage("--net-us U")),
            "--ping" => match value.as_str() {
                "plain" => ping = Some(false),
                "timeout" => ping = Some(true),
                "floor" => floor = Some(FloorKind::RedisRs),
                "direct" => floor = Some(FloorKind::Direct),
                "direct-lock" => floor = Some(FloorKind::DirectLock),
                other => usage(&format!("unknown ping {other}")),
            },
            "--release" => {
                inline = match value.as_str() {
                    "core" => false,
                    "inline" => true,
                    other => usage(&format!("unknown release {other}")),
                };
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let imp = imp.unwrap_or_else(|| usage("--impl is required"));
    // Kept alive until the end: the last master behind it.
    let _proxy = slow_last_ms.map(|ms| {
        let Some(last) = urls.last_mut() else {
            usage("--slow-last-ms needs --urls")
        };
        let addr = last
            .strip_prefix("redis://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage("--slow-last-ms: the last URL must be redis://IP:PORT"));
        let proxy = redlock_testing::Proxy::start_with_mode(
            addr,
            redlock_testing::Mode::Delay(Duration::from_millis(ms)),
        )
        .unwrap_or_else(|e| usage(&format!("proxy: {e}")));
        *last = proxy.url();
        proxy
    });
    if managers > 0 {
        if urls.is_empty() {
            usage("--managers needs --urls");
        }
        let pace = (
            Duration::from_millis(hold_ms),
            Duration::from_millis(think_ms),
        );
        across_managers(&urls, managers, wake, Duration::from_secs(secs), pace).await;
        return;
    }
    if let Some(kind) = floor {
        if urls.is_empty() {
            usage("--ping floor|direct|direct-lock needs --urls");
        }
        ping_floor(&urls, cycles, kind).await;
        return;
    }
    if redis_rs {
        if urls.is_empty() {
            usage("--impl core-redis-rs needs --urls");
        }
        core_over_redis_rs(&urls, tasks, cycles).await;
        return;
    }
    // Masters of our own, kept alive until the end.
    let env = if spawn > 0 {
        Some(Env::start(Scenario::distant(imp, spawn, Duration::from_micros(net_us))).await)
    } else {
        None
    };
    let client = match &env {
        Some(env) => Arc::clone(&env.client),
        None if urls.is_empty() => usage("--urls or --spawn is required"),
        None => Arc::new(Client::connect(imp, &urls).await),
    };
    if spawn > 0 {
        urls = vec![format!("{spawn} spawned, +{net_us} µs each way"); spawn];
    }
    if handoff.as_deref() == Some("jitter-votes") {
        jitter_votes(&client, tasks.max(1), Duration::from_secs(secs)).await;
        return;
    }
    if handoff.as_deref() == Some("jitter") {
        let cpu0 = own_cpu();
        let run = workload::contended(
            &client,
            tasks.max(1),
            workload::Stop::Time(Duration::from_secs(secs)),
            workload::Retry::Caller {
                jitter: Duration::from_millis(10),
            },
        )
        .await;
        let cpu = own_cpu().saturating_sub(cpu0);
        let (min, max) = run.min_max();
        println!(
            "{} {} master(s), {tasks} tasks, jitter: {:.0} CS/s, fewest/most {min}/{max}, \
             refused rounds {:.0}/s, client CPU {:.1} µs/CS",
            imp.name(),
            urls.len(),
            run.throughput(),
            run.gave_up as f64 / run.elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / run.cycles.max(1) as f64,
        );
        return;
    }
    if let Some(how) = handoff {
        let secs = Duration::from_secs(secs);
        contend(&client, &how, tasks.max(1), secs, urls.len()).await;
        return;
    }
    // Warm-up: connections, script caches.
    let _ = workload::uncontended(&client, 200, None, Duration::ZERO).await;
    let allocs0 = allocated();
    let split = CpuSplit::start();
    let t0 = Instant::now();
    // Sequential cycles: their p50s, acquire / release / cycle.
    let mut p50s = String::new();
    let done = if let Some(with_timeout) = ping {
        pings(&client, cycles, with_timeout).await
    } else if inline {
        inline_cycles(&client, cycles).await
    } else if tasks <= 1 {
        let u = workload::uncontended(&client, cycles, None, Duration::ZERO).await;
        p50s = sequential_p50s(&u.samples);
        u.samples.len() as u64
    } else {
        let c = workload::concurrent(&client, tasks, cycles).await;
        c.cycles.len() as u64
    };
    let wall = t0.elapsed();
    // The proxy of `--slow-last-ms` is not the client: its CPU is printed apart.
    let (cpu, proxy) = split.since();
    println!(
        "{} {} master(s), {tasks} task(s): {done} cycles in {:.3} s, {:.1} cycles/s{p50s}, client CPU {:.1} µs/cycle{}{}",
        if let Some(t) = ping {
            format!("{} (PING, {})", imp.name(), if t { "timeout" } else { "plain" })
        } else if inline {
            format!("{} (inline release)", imp.name())
        } else {
            imp.name().to_owned()
        },
        urls.len(),
        wall.as_secs_f64(),
        done as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
        per_cycle_allocs(allocs0, done),
        if proxy.is_zero() {
            String::new()
        } else {
            format!(
                ", proxy CPU {:.1} µs/cycle",
                proxy.as_secs_f64() * 1e6 / done.max(1) as f64
            )
        },
    );
}

/// ", p50 acquire A / release R / cycle C µs" of sequential cycles.
fn sequential_p50s(samples: &[workload::CycleSample]) -> String {
    let l = workload::CycleLatencies::of(samples);
    format!(
        ", p50 acquire {:.0} / release {:.0} / cycle {:.0} µs",
        l.acquire.p50() * 1000.0,
        l.release.p50() * 1000.0,
        l.cycle.p50() * 1000.0
    )
}

/// Which floor `--ping` asked for (see the module docs).
#[derive(Clone, Copy)]
enum FloorKind {
    /// `--ping floor`: `PING` over redis-rs.
    RedisRs,
    /// `--ping direct`: `PING` over sockets this task writes and reads.
    Direct,
    /// `--ping direct-lock`: the lock's own commands over such sockets.
    DirectLock,
}

/// The connections of `--ping floor`, `direct` or `direct-lock`.
enum Floor {
    /// Plain redis-rs connections ([`QuorumFloor`]).
    RedisRs(QuorumFloor),
    /// Connections this task writes and reads itself ([`DirectFloor`]).
    Direct(DirectFloor),
}

impl Floor {
    async fn cycles(&mut self, cycles: u64) -> Vec<workload::CycleSample> {
        match self {
            Self::RedisRs(f) => f.cycles(cycles).await,
            Self::Direct(f) => f.cycles(cycles).await,
        }
    }
}

/// `--ping floor`, `direct` or `direct-lock` (see the module docs):
/// `cycles` pairs of quorum rounds of `PING` (or of the lock's commands)
/// to `urls`, after 200 unmeasured ones.
async fn ping_floor(urls: &[String], cycles: u64, kind: FloorKind) {
    let (label, connected) = match kind {
        FloorKind::DirectLock => (
            "direct lock-command floor (SET and release script rounds, own sockets)",
            DirectFloor::connect_lock(urls).await.map(Floor::Direct),
        ),
        FloorKind::Direct => (
            "direct floor (PING rounds, own sockets)",
            DirectFloor::connect(urls).await.map(Floor::Direct),
        ),
        FloorKind::RedisRs => (
            "floor (PING rounds, redis-rs)",
            QuorumFloor::connect(urls).await.map(Floor::RedisRs),
        ),
    };
    let mut floor = connected.unwrap_or_else(|e| usage(&format!("{label}: {e}")));
    // Warm-up, as for the lock cycles.
    let _ = floor.cycles(200).await;
    let allocs0 = allocated();
    let split = CpuSplit::start();
    let t0 = Instant::now();
    let samples = floor.cycles(cycles).await;
    let wall = t0.elapsed();
    let (cpu, _) = split.since();
    let done = samples.len() as u64;
    println!(
        "{label} {} master(s): {done} cycles in {:.3} s{}, client CPU {:.1} µs/cycle{}",
        urls.len(),
        wall.as_secs_f64(),
        sequential_p50s(&samples),
        cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
        per_cycle_allocs(allocs0, done),
    );
}

/// `--managers K --wake on|off`: K managers (each its own connections and
/// in-process queue: K processes as far as the masters can tell), one task
/// each, taking one resource in turn through `LockManager::acquire` with
/// the default retry policy, for `--secs`; with or without release
/// announcements (`wake_on_release`). Each holds the lock `--hold-ms`
/// and waits `--think-ms` after releasing (default 0: back at once).
/// Prints critical sections per second, the fewest / most per manager,
/// and the median hand-off: from a release to the next acquisition by
/// another manager.
async fn across_managers(
    urls: &[String],
    managers: usize,
    wake: bool,
    secs: Duration,
    (hold, think): (Duration, Duration),
) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut all = Vec::with_capacity(managers);
    for _ in 0..managers {
        let m = redlock_tokio::LockManager::builder(urls.iter().cloned())
            .client(redlock_benches::scenario::redlock_client())
            .settings(|s| {
                s.ttl(Duration::from_secs(10))
                    .danger_disable_restart_guard(true)
            })
            .wake_on_release(wake)
            .connect()
            .await
            .unwrap_or_else(|e| usage(&e.to_string()));
        all.push(m);
    }
    let resource = format!("bench:managers:{}", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    // Who released last (manager index + 1; 0: nobody yet) and when, in
    // nanoseconds since `t0`.
    let last_release = Arc::new(std::sync::Mutex::new((0usize, 0u64)));
    let handoffs = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let mut set = tokio::task::JoinSet::new();
    let cpu0 = own_cpu();
    let t0 = Instant::now();
    for (me, m) in all.iter().enumerate() {
        let (m, stop, busy, violations, resource, last_release, handoffs) = (
            m.clone(),
            Arc::clone(&stop),
            Arc::clone(&busy),
            Arc::clone(&violations),
            resource.clone(),
            Arc::clone(&last_release),
            Arc::clone(&handoffs),
        );
        set.spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(guard) = m.acquire(resource.as_str()).await else {
                    continue;
                };
                let now = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let (by, at) = *last_release.lock().expect("last release");
                if by != 0 && by != me + 1 {
                    handoffs
                        .lock()
                        .expect("handoffs")
                        .push(now.saturating_sub(at));
                }
                if busy.swap(true, Ordering::AcqRel) {
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                if hold.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(hold).await;
                }
                busy.store(false, Ordering::Release);
                *last_release.lock().expect("last release") = (
                    me + 1,
                    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX),
                );
                let _ = guard.release().await;
                done += 1;
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            done
        });
    }
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::with_capacity(managers);
    while let Some(n) = set.join_next().await {
        counts.push(n.unwrap_or(0));
    }
    let wall = t0.elapsed();
    let cpu = own_cpu().saturating_sub(cpu0);
    let total: u64 = counts.iter().sum();
    let mut handoffs = std::mem::take(&mut *handoffs.lock().expect("handoffs"));
    handoffs.sort_unstable();
    let median_ms = handoffs
        .get(handoffs.len() / 2)
        .map_or(0.0, |&n| n as f64 / 1e6);
    println!(
        "{managers} managers, wake on release {}: {:.0} CS/s, fewest/most {}/{}, violations {}, \
         client CPU {:.1} µs/CS, median hand-off {median_ms:.2} ms over {} hand-offs",
        if wake { "on" } else { "off" },
        total as f64 / wall.as_secs_f64(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        violations.load(Ordering::Relaxed),
        cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
        handoffs.len(),
    );
    for m in all {
        m.shutdown(Duration::from_secs(5)).await;
    }
}

/// `--impl core-redis-rs`: the same cycles as `--impl redlock` (one
/// attempt, then the core's release; sequential with `--tasks 1`, else
/// that many tasks on distinct resources), through `redlock-core` over
/// the redis-rs experiment ([`RedisRsMaster`]) instead of fred: what is
/// left of the gap to rslock is the algorithm's, the rest the client's.
async fn core_over_redis_rs(urls: &[String], tasks: usize, cycles: u64) {
    let mut masters = Vec::with_capacity(urls.len());
    for url in urls {
        let master = RedisRsMaster::connect(url, Duration::from_millis(50))
            .await
            .unwrap_or_else(|e| usage(&format!("{url}: {e}")));
        masters.push(master);
    }
    let settings = Settings::builder()
        .ttl(Duration::from_secs(10))
        .build(urls.len())
        .unwrap_or_else(|e| usage(&e.to_string()));
    let core = Arc::new(
        Redlock::with_masters(masters, settings, TokioRuntime)
            .unwrap_or_else(|e| usage(&e.to_string())),
    );
    let cycle = |core: Arc<Redlock<RedisRsMaster, TokioRuntime>>, name: String| async move {
        match core.try_acquire(name).await {
            Ok(lock) => core.release(lock).await.is_ok(),
            Err(_) => false,
        }
    };
    // Warm-up: connections, script caches.
    for i in 0..200 {
        cycle(Arc::clone(&core), format!("bench:rs:warm:{i}")).await;
    }
    let tasks = tasks.max(1);
    let allocs0 = allocated();
    let cpu0 = own_cpu();
    let t0 = Instant::now();
    let mut done = 0;
    // Sequential cycles run here, in `main`'s `block_on`, as the other
    // implementations' do (`workload::uncontended`): a caller on a worker
    // thread is woken by the connection's task without a futex, so the
    // experiment once measured 25% faster than redlock and rslock for
    // that reason alone.
    if tasks == 1 {
        for i in 0..cycles {
            done += u64::from(cycle(Arc::clone(&core), format!("bench:rs:0:{i}")).await);
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for t in (0..tasks).filter(|_| tasks > 1) {
        let mine = cycles / tasks as u64 + u64::from((t as u64) < cycles % tasks as u64);
        let core = Arc::clone(&core);
        set.spawn(async move {
            let mut done = 0u64;
            for i in 0..mine {
                done += u64::from(cycle(Arc::clone(&core), format!("bench:rs:{t}:{i}")).await);
            }
            done
        });
    }
    while let Some(n) = set.join_next().await {
        done += n.unwrap_or(0);
    }
    let wall = t0.elapsed();
    let cpu = own_cpu().saturating_sub(cpu0);
    println!(
        "redlock-core over redis-rs (experiment) {} master(s), {tasks} task(s): {done} cycles in {:.3} s, \
         {:.1} cycles/s, client CPU {:.1} µs/cycle{}",
        urls.len(),
        wall.as_secs_f64(),
        done as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
        per_cycle_allocs(allocs0, done),
    );
}

/// Sequential cycles: the core's one-attempt acquire, then a release sent
/// to every master from this task and awaited here (see the module docs).
async fn inline_cycles(client: &Client, cycles: u64) -> u64 {
    let Client::Redlock(m) = client else {
        usage("--release inline is for --impl redlock")
    };
    let core = m.core();
    let mut done = 0;
    for i in 0..cycles {
        let Ok(lock) = core.try_acquire(format!("bench:inline:{i}")).await else {
            continue;
        };
        let (keys, token) = (lock.keys(), lock.token());
        let answers =
            futures::future::join_all(core.masters().iter().map(|x| x.release(keys, token))).await;
        if answers.iter().all(Result::is_ok) {
            done += 1;
        }
    }
    done
}

/// `PING` to every master in parallel, `rounds` times.
async fn pings(client: &Client, rounds: u64, with_timeout: bool) -> u64 {
    use fred::interfaces::ClientLike;
    let Client::Redlock(m) = client else {
        usage("--ping is for --impl redlock")
    };
    let Some(clients) = redlock_benches::fanout::raw_clients(m.core().masters()).await else {
        usage("--ping: a master did not connect")
    };
    let options = fred::types::config::Options {
        timeout: Some(m.core().settings().master_timeout()),
        max_attempts: Some(1),
        fail_fast: true,
        ..Default::default()
    };
    let mut done = 0;
    for _ in 0..rounds {
        let answers = futures::future::join_all(clients.iter().map(|x| {
            let options = &options;
            async move {
                if with_timeout {
                    x.with_options(options).ping::<String>(None).await
                } else {
                    x.ping::<String>(None).await
                }
            }
        }))
        .await;
        if answers.iter().all(Result::is_ok) {
            done += 1;
        }
    }
    done
}

/// `--handoff`: `tasks` tasks on one resource for `secs`; see the module
/// docs for the three ways.
async fn contend(client: &Arc<Client>, how: &str, tasks: usize, secs: Duration, masters: usize) {
    // The masters (and their proxies) outlive the tasks: `env` in main.
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    if !matches!(how, "library" | "fifo" | "pipelined") {
        usage(&format!("unknown handoff {how}"));
    }
    if how != "library" && !matches!(**client, Client::Redlock(_)) {
        usage("--handoff fifo|pipelined is for --impl redlock");
    }
    let fifo = Arc::new(tokio::sync::Mutex::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..tasks).map(|_| AtomicU64::new(0)).collect());
    let refused = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let resource = format!("bench:handoff:{how}:{}", std::process::id());
    let mut set = tokio::task::JoinSet::new();
    let cpu0 = own_cpu();
    let t0 = Instant::now();
    for me in 0..tasks {
        let (client, fifo, stop, busy, counts, refused, violations, resource, how) = (
            Arc::clone(client),
            Arc::clone(&fifo),
            Arc::clone(&stop),
            Arc::clone(&busy),
            Arc::clone(&counts),
            Arc::clone(&refused),
            Arc::clone(&violations),
            resource.clone(),
            how.to_owned(),
        );
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if how == "library" {
                    let Ok(held) = client.acquire(&resource).await else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if busy.swap(true, Ordering::AcqRel) {
                        violations.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::task::yield_now().await;
                    busy.store(false, Ordering::Release);
                    client.release(held).await;
                    counts[me].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Client::Redlock(m) = &*client else {
                    return;
                };
                let core = m.core();
                let slot = fifo.lock().await;
                let lock = loop {
                    match core.try_acquire(resource.as_str()).await {
                        Ok(lock) => break lock,
                        Err(_) => {
                            // The experiment's premise failed (the release
                            // did not land first): count it, try again.
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                };
                if busy.swap(true, Ordering::AcqRel) {
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
                busy.store(false, Ordering::Release);
                if how == "fifo" {
                    let _ = core.release(lock).await;
                    drop(slot);
                } else {
                    let (keys, token) = (lock.keys(), lock.token());
                    let mut releases = std::pin::pin!(futures::future::join_all(
                        core.masters().iter().map(|x| x.release(keys, token))
                    ));
                    // One poll: every release command is now in its
                    // master's queue, ahead of anything sent later.
                    if futures::poll!(releases.as_mut()).is_pending() {
                        drop(slot);
                        releases.await;
                    } else {
                        drop(slot);
                    }
                }
                counts[me].fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let cpu = own_cpu().saturating_sub(cpu0);
    let per: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = per.iter().sum();
    set.abort_all();
    while set.join_next().await.is_some() {}
    println!(
        "{} {} master(s), {tasks} tasks, {how}: {:.0} CS/s, fewest/most {}/{}, refused rounds {}, \
         violations {}, client CPU {:.1} µs/CS",
        client.imp().name(),
        masters,
        total as f64 / elapsed.as_secs_f64(),
        per.iter().min().copied().unwrap_or(0),
        per.iter().max().copied().unwrap_or(0),
        refused.load(Ordering::Relaxed),
        violations.load(Ordering::Relaxed),
        cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
    );
}

/// `--handoff jitter-votes`: E2 through the core, classifying refusals.
async fn jitter_votes(client: &Arc<Client>, tasks: usize, secs: Duration) {
    use rand::Rng;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let Client::Redlock(m) = &**client else {
        usage("--handoff jitter-votes is for --impl redlock")
    };
    let stop = Arc::new(AtomicBool::new(false));
    // [critical sections, refused, refused with some vote granted]
    let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let resource = format!("bench:jitter-votes:{}", std::process::id());
    let mut set = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    for _ in 0..tasks {
        let (m, stop, counts, resource) = (
            m.clone(),
            Arc::clone(&stop),
            Arc::clone(&counts),
            resource.clone(),
        );
        set.spawn(async move {
            let core = m.core();
            while !stop.load(Ordering::Relaxed) {
                match core.try_acquire(resource.as_str()).await {
                    Ok(lock) => {
                        tokio::task::yield_now().await;
                        let _ = core.release(lock).await;
                        counts[0].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counts[1].fetch_add(1, Ordering::Relaxed);
                        if e.votes().is_some_and(|v| v.granted() > 0) {
                            counts[2].fetch_add(1, Ordering::Relaxed);
                        }
                        let us = rand::thread_rng().gen_range(0..=10_000u64);
                        tokio::time::sleep(Duration::from_micros(us)).await;
                    }
                }
            }
        });
    }
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    set.abort_all();
    while set.join_next().await.is_some() {}
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!(
        "redlock, {tasks} tasks, jitter-votes: {:.0} CS/s, refused {:.0}/s, of which {:.0}/s with a granted vote ({:.1}%)",
        c[0] as f64 / elapsed,
        c[1] as f64 / elapsed,
        c[2] as f64 / elapsed,
        100.0 * c[2] as f64 / c[1].max(1) as f64
    );
}
