//! The systems under test: N real masters, optionally one slowed or paused,
//! and a client of either implementation in front of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redlock_core::Lock;
use redlock_testing::{Masters, Mode, Proxy};
use redlock_tokio::{LockGuard, LockManager};

/// TTL of every lock taken by the benchmarks: far above any cycle, so no
/// lock expires while held and validity never fails an acquire.
pub const TTL: Duration = Duration::from_secs(10);

/// One-way delay of the slowed master's proxy (so its round trip is about
/// 40 ms longer than the others', below redlock's 50 ms per-master timeout
/// and far below rslock's 500 ms response timeout). The same default as
/// `redlock bench --slow-by`.
pub const SLOW_ONE_WAY: Duration = Duration::from_millis(20);

/// Which Redlock implementation runs the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    /// This workspace's `redlock-core` (fred client, early quorum decision),
    /// behind the `redlock-tokio` adapter for the library's own `acquire`.
    Redlock,
    /// The `rslock` crate 0.10 from crates.io (redis-rs client).
    Rslock,
}

impl Impl {
    /// Both, in table order.
    pub const ALL: [Self; 2] = [Self::Redlock, Self::Rslock];

    /// Short name for tables and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redlock => "redlock",
            Self::Rslock => "rslock",
        }
    }
}

/// What is wrong with the last master, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Every master healthy.
    None,
    /// Control for [`Fault::Slowed`]: the last master is reached through a
    /// delaying proxy that adds no delay, so the proxy's own cost (two more
    /// loopback hops and its threads' CPU) shows apart from the delay.
    Proxied,
    /// The last master is reached through a delaying proxy adding
    /// [`SLOW_ONE_WAY`] in each direction.
    Slowed,
    /// The last master is stopped with `SIGSTOP` after the client connected
    /// (it accepts bytes into its socket buffer but never answers).
    Paused,
}

impl Fault {
    /// Short name for tables and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "healthy",
            Self::Proxied => "one proxied, no delay",
            Self::Slowed => "one slowed",
            Self::Paused => "one paused",
        }
    }

    /// Name without spaces, for benchmark ids and file names.
    pub fn id(self) -> &'static str {
        match self {
            Self::None => "healthy",
            Self::Proxied => "proxied",
            Self::Slowed => "slowed",
            Self::Paused => "paused",
        }
    }
}

/// A configuration to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scenario {
    /// The implementation.
    pub imp: Impl,
    /// Number of masters (quorum is the majority).
    pub masters: usize,
    /// The fault on the last master.
    pub fault: Fault,
    /// Simulated network: every master is reached through a delaying proxy
    /// adding this one-way delay (zero: direct loopback connections).
    pub net: Duration,
    /// Idle time between the cycles of the uncontended workload (zero: back
    /// to back). A control for the fault scenarios, whose slow release
    /// leaves the machine idle between cycles: waking idle threads costs
    /// more than keeping busy ones running, which shows in the next acquire
    /// even though it waits for no slow master.
    pub idle: Duration,
}

impl Scenario {
    /// A healthy scenario.
    pub fn healthy(imp: Impl, masters: usize) -> Self {
        Self {
            imp,
            masters,
            fault: Fault::None,
            net: Duration::ZERO,
            idle: Duration::ZERO,
        }
    }

    /// A healthy scenario whose uncontended cycles are `idle` apart.
    pub fn idle_between(imp: Impl, masters: usize, idle: Duration) -> Self {
        Self {
            idle,
            ..Self::healthy(imp, masters)
        }
    }

    /// One of 5 masters with `fault`.
    pub fn one_of_five(imp: Impl, fault: Fault) -> Self {
        Self {
            fault,
            ..Self::healthy(imp, 5)
        }
    }

    /// A healthy scenario behind a simulated network of `one_way` delay.
    pub fn distant(imp: Impl, masters: usize, one_way: Duration) -> Self {
        Self {
            net: one_way,
            ..Self::healthy(imp, masters)
        }
    }

    /// Label for tables and charts, e.g. `redlock 5 (one slowed)`.
    pub fn label(&self) -> String {
        let net = if self.net.is_zero() {
            String::new()
        } else {
            format!(" +{:?} net", self.net)
        };
        let idle = if self.idle.is_zero() {
            String::new()
        } else {
            format!(" (healthy, idle {:?} between cycles)", self.idle)
        };
        match self.fault {
            Fault::None => format!("{} {}{net}{idle}", self.imp.name(), self.masters),
            f => format!(
                "{} {}{net} ({}){idle}",
                self.imp.name(),
                self.masters,
                f.name()
            ),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// A lock held by either implementation.
#[derive(Debug)]
pub enum Held {
    /// Held through redlock's core (one attempt).
    Redlock(Lock),
    /// Held through redlock-tokio's `acquire` (a guard with its watchdog).
    Guard(LockGuard),
    /// Held through rslock.
    Rslock(rslock::Lock),
}

/// A client of either implementation.
#[derive(Debug)]
pub enum Client {
    /// redlock with its defaults (50 ms per-master timeout; `acquire`
    /// retries 30 times with 20 ms..200 ms equal-jitter backoff, behind the
    /// adapter's in-process FIFO queue per resource). One-attempt paths
    /// call the core directly ([`LockManager::core`]), as a caller of
    /// `redlock-core` would.
    Redlock(LockManager),
    /// rslock with its defaults (`once` is a clone with one try; `retrying`
    /// keeps rslock's default 3 tries with a uniform 0..200 ms delay). Both
    /// share one set of connections.
    Rslock {
        /// One attempt per call.
        once: rslock::LockManager,
        /// rslock's default retry policy.
        retrying: rslock::LockManager,
    },
}

/// Why an acquire failed: the implementation's own error, kept as it is
/// and formatted only when displayed. (Formatting on the hot path would
/// charge the benchmark's own string building to the library: redlock's
/// refusal names every master's vote, rslock's is one word.)
#[derive(Debug)]
pub enum AcquireFailed {
    /// From redlock's core.
    Redlock(redlock_core::AcquireError),
    /// From redlock-tokio's `acquire`.
    Tokio(redlock_tokio::AcquireError),
    /// From rslock.
    Rslock(rslock::LockError),
}

impl fmt::Display for AcquireFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redlock(e) => e.fmt(f),
            Self::Tokio(e) => e.fmt(f),
            Self::Rslock(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AcquireFailed {}

/// The Redis client of [`Impl::Redlock`]: `REDLOCK_CLIENT`, the variable
/// the `redlock` command reads (`redis-rs`, the default, or `fred`).
///
/// # Panics
///
/// On any other value: a typo must not quietly measure the default.
pub fn redlock_client() -> redlock_tokio::Client {
    match std::env::var("REDLOCK_CLIENT").as_deref() {
        Err(_) | Ok("") => redlock_tokio::Client::default(),
        Ok("fred") => redlock_tokio::Client::Fred,
        Ok("redis-rs") => redlock_tokio::Client::RedisRs,
        Ok(other) => panic!("REDLOCK_CLIENT={other:?}: expected fred or redis-rs"),
    }
}

impl Client {
    /// Connects a client of `imp` to `urls`.
    ///
    /// # Panics
    ///
    /// When redlock cannot connect (a benchmark without its masters has
    /// nothing to measure).
    pub async fn connect(imp: Impl, urls: &[String]) -> Self {
        match imp {
            Impl::Redlock => Self::Redlock(LockManager::new(
                LockManager::builder(urls.iter().cloned())
                    .client(redlock_client())
                    // The harness started these masters empty for this run
                    // alone: the restart guard would only hold them back.
                    .settings(|s| s.ttl(TTL).danger_disable_restart_guard(true))
                    .connect_core()
                    .await
                    .expect("redlock connects to the benchmark masters"),
            )),
            Impl::Rslock => {
                // rslock connects lazily, on the first command.
                let retrying = rslock::LockManager::new(urls.to_vec());
                let mut once = retrying.clone();
                // `current_try < retry_count` gates the retry: 1 means one try.
                once.set_retry(1, Duration::from_millis(200));
                Self::Rslock { once, retrying }
            }
        }
    }

    /// One acquisition attempt, no retry.
    ///
    /// # Errors
    ///
    /// When the quorum was not reached (held elsewhere, or masters failed).
    pub async fn try_acquire(&self, resource: &str) -> Result<Held, AcquireFailed> {
        match self {
            Self::Redlock(r) => r
                .core()
                .try_acquire(resource)
                .await
                .map(Held::Redlock)
                .map_err(AcquireFailed::Redlock),
            Self::Rslock { once, .. } => once
                .lock(resource, TTL)
                .await
                .map(Held::Rslock)
                .map_err(AcquireFailed::Rslock),
        }
    }

    /// Acquires the way each library offers to wait for a lock: redlock
    /// through `redlock-tokio`'s `LockManager::acquire` (the in-process
    /// FIFO queue, then the retry policy), rslock with its default retries.
    ///
    /// # Errors
    ///
    /// When the retries ran out.
    pub async fn acquire(&self, resource: &str) -> Result<Held, AcquireFailed> {
        match self {
            Self::Redlock(r) => r
                .acquire(resource)
                .await
                .map(Held::Guard)
                .map_err(AcquireFailed::Tokio),
            Self::Rslock { retrying, .. } => retrying
                .lock(resource, TTL)
                .await
                .map(Held::Rslock)
                .map_err(AcquireFailed::Rslock),
        }
    }

    /// Releases: redlock returns once a quorum confirmed (the other
    /// masters finish in the background), rslock waits for every master.
    /// Returns whether the release was confirmed (rslock's is best effort
    /// and reports nothing: always true).
    pub async fn release(&self, held: Held) -> bool {
        match (self, held) {
            (Self::Redlock(r), Held::Redlock(lock)) => r.core().release(lock).await.is_ok(),
            (Self::Redlock(_), Held::Guard(guard)) => guard.release().await.is_ok(),
            (Self::Rslock { once, .. }, Held::Rslock(lock)) => {
                once.unlock(&lock).await;
                true
            }
            _ => unreachable!("a lock is released by the client that took it"),
        }
    }
}

impl Client {
    /// Which implementation this is.
    pub fn imp(&self) -> Impl {
        match self {
            Self::Redlock(_) => Impl::Redlock,
            Self::Rslock { .. } => Impl::Rslock,
        }
    }

    /// For redlock, waits (at most 5 s) until one release is confirmed by
    /// every master: `connect` returns once a quorum is usable, and a slow
    /// master joins in the background, so without this it might join in
    /// the middle of a measurement. rslock connects to every master on its
    /// first command and waits for all of them each time.
    async fn settle(&self) {
        let Self::Redlock(r) = self else { return };
        let core = r.core();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for i in 0u64.. {
            if let Ok(lock) = core.try_acquire(format!("bench:settle:{i}")).await {
                if core.release_all(lock).await.is_ok() || std::time::Instant::now() >= deadline {
                    return;
                }
            }
            if std::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Masters, the optional proxy and a connected client: everything one
/// scenario needs. Dropping the last environment on them stops the
/// masters (also paused ones).
pub struct Env {
    /// The scenario this environment runs.
    pub scenario: Scenario,
    /// The connected client, shared with the workload's tasks.
    pub client: Arc<Client>,
    /// What the client connects to: the masters, or their proxies.
    urls: Vec<String>,
    // Field order is drop order: the client's connections close before
    // the proxy and the servers go away. Shared with the environments
    // started [`alongside`](Env::alongside) this one.
    proxies: Arc<Vec<Proxy>>,
    masters: Arc<Masters>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("scenario", &self.scenario)
            .field("masters", &self.masters.urls())
            .finish()
    }
}

impl Env {
    /// Starts the masters (real `redis-server` processes), the proxy if the
    /// scenario slows a master, connects the client, warms it up (rslock
    /// connects lazily; both load scripts), and then pauses the last master
    /// if the scenario says so.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing or a master cannot be started, or the
    /// warm-up cycle fails.
    pub async fn start(scenario: Scenario) -> Self {
        assert!(scenario.masters > 0, "at least one master");
        assert!(
            scenario.fault == Fault::None || scenario.masters >= 3,
            "a fault needs a tolerant quorum (3 masters or more)"
        );
        // The harness is blocking (it waits for each server to answer).
        let n = scenario.masters;
        let masters = tokio::task::spawn_blocking(move || Masters::start(n))
            .await
            .expect("starting the masters panicked");
        let mut urls = masters.urls();
        let last = scenario.masters - 1;
        let mut proxies = Vec::new();
        for (i, url) in urls.iter_mut().enumerate() {
            let extra = match scenario.fault {
                Fault::Slowed if i == last => Some(SLOW_ONE_WAY),
                Fault::Proxied if i == last => Some(Duration::ZERO),
                _ if !scenario.net.is_zero() => Some(Duration::ZERO),
                _ => None,
            };
            if let Some(extra) = extra {
                let delay = Mode::Delay(scenario.net + extra);
                let p = Proxy::start_with_mode(masters[i].addr(), delay)
                    .expect("proxy binds a loopback port");
                *url = format!("redis://{}", p.addr());
                proxies.push(p);
            }
        }
        let env = Self::connect(scenario, urls, Arc::new(proxies), Arc::new(masters)).await;
        if scenario.fault == Fault::Paused {
            env.masters[last].pause();
        }
        env
    }

    /// A client of `imp` on the very masters (and proxies) of this
    /// environment, connected and warmed up the same way: comparing two
    /// implementations on the same servers leaves out whatever makes one
    /// server process slower than another for a while (the CPU it runs on,
    /// what shares its caches). Their keys never meet (every run takes
    /// fresh names).
    ///
    /// # Panics
    ///
    /// With a paused master (the new client could not warm up), or when
    /// the warm-up cycle fails.
    pub async fn alongside(&self, imp: Impl) -> Self {
        assert!(
            self.scenario.fault != Fault::Paused,
            "no client warms up on a paused master"
        );
        let scenario = Scenario {
            imp,
            ..self.scenario
        };
        Self::connect(
            scenario,
            self.urls.clone(),
            Arc::clone(&self.proxies),
            Arc::clone(&self.masters),
        )
        .await
    }

    /// Connects the scenario's client to `urls` and warms it up (rslock
    /// connects lazily; both load scripts).
    async fn connect(
        scenario: Scenario,
        urls: Vec<String>,
        proxies: Arc<Vec<Proxy>>,
        masters: Arc<Masters>,
    ) -> Self {
        let client = Client::connect(scenario.imp, &urls).await;
        // Warm-up: connections, script caches, first allocations.
        for i in 0..20 {
            let held = client
                .try_acquire(&format!("bench:warmup:{i}"))
                .await
                .expect("warm-up acquire on healthy masters");
            client.release(held).await;
        }
        client.settle().await;
        Self {
            scenario,
            client: Arc::new(client),
            urls,
            proxies,
            masters,
        }
    }

    /// The masters.
    pub fn masters(&self) -> &Masters {
        &self.masters
    }

    /// CPU time (user + system) used so far by the masters' processes.
    pub fn server_cpu(&self) -> Duration {
        self.masters
            .iter()
            .filter_map(|m| process_cpu(&format!("/proc/{}/stat", m.pid())))
            .sum()
    }

    /// Sum of `total_commands_processed` over the masters that can answer
    /// (a paused master is skipped): the server-side cost of a workload.
    pub fn commands_processed(&self) -> u64 {
        self.masters
            .iter()
            .filter(|m| m.is_running() && !m.is_paused())
            .filter_map(|m| {
                let info = m.cmd(&["INFO", "stats"]).ok()?;
                info.as_str()?.lines().find_map(|l| {
                    l.strip_prefix("total_commands_processed:")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
            .sum()
    }
}

/// CPU time (user + system) of the process whose `/proc/<pid>/stat` is at
/// `path`, all threads; `None` when unreadable (not Linux).
///
/// Resolution is one clock tick (10 ms at the usual `USER_HZ` of 100), so
/// only runs of a second or more give useful per-cycle figures.
pub fn process_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces), which ends
    // at the last ')': state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    const USER_HZ: u64 = 100;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// CPU time (user + system) used so far by this process (client, runtime,
/// and any proxy threads), from `CLOCK_PROCESS_CPUTIME_ID`: precise to the
/// microsecond, unlike the clock ticks of `/proc/<pid>/stat`.
pub fn own_cpu() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::from_secs(u64::try_from(ts.tv_sec).unwrap_or(0))
        + Duration::from_nanos(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// CPU used since [`start`](Self::start), split between the client (the
/// whole process but the in-process proxy's threads) and that proxy: the
/// one definition of "client CPU" for the scenarios that run a master
/// behind the proxy (and for those that do not: their proxy part is zero).
#[derive(Clone, Copy, Debug)]
pub struct CpuSplit {
    process: Duration,
    proxy: Duration,
}

impl CpuSplit {
    /// Starts measuring.
    pub fn start() -> Self {
        Self {
            process: own_cpu(),
            proxy: proxy_cpu(),
        }
    }

    /// (client, proxy) CPU since [`start`](Self::start).
    pub fn since(&self) -> (Duration, Duration) {
        let proxy = proxy_cpu().saturating_sub(self.proxy);
        let client = own_cpu().saturating_sub(self.process).saturating_sub(proxy);
        (client, proxy)
    }
}

/// CPU time used so far by this process's proxy threads
/// (`redlock_testing::proxy`, every thread named `proxy*`), to the
/// nanosecond (`/proc/self/task/<tid>/schedstat`); zero where that is not
/// readable. Subtracted from [`own_cpu`] ([`CpuSplit`]), it leaves the
/// client's own CPU, as long as the proxy's thread outlives the
/// measurement (it does: it starts with the scenario and ends with it).
fn proxy_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = 0u64;
    for task in tasks.flatten() {
        let dir = task.path();
        let is_proxy =
            std::fs::read_to_string(dir.join("comm")).is_ok_and(|name| name.starts_with("proxy"));
        if !is_proxy {
            continue;
        }
        // The first field: nanoseconds on a CPU.
        let on_cpu = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        total += on_cpu.unwrap_or(0);
    }
    Duration::from_nanos(total)
}
