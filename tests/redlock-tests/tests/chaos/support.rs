//! The machinery of the chaos runs (`tests/chaos.rs`): the run
//! configuration, the fault schedulers (master faults, worker freezes, the
//! restart-hole lane), the worker processes and their logs, and the
//! outcome with its assertions. The tests themselves, with what they
//! assert, are the specification and stay in `tests/chaos.rs`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redlock_testing::{Connection, Mode, Persistence, Proxy, RedisServer, Reply, ServerOptions};
use redlock_tests::checker::{self, Pause, Report, WorkerLog};
use redlock_tests::events::parse_log;
use redlock_tests::sys;

/// The one resource every worker contends for.
const RESOURCE: &str = "chaos";
/// Its key on the masters (default prefix).
const KEY: &str = "redlock:chaos";
/// The counter's key on the counter Redis (as in the worker).
const COUNTER_KEY: &str = "chaos:counter";
/// The fenced run's counter: a hash of the value and the highest fence.
const FENCED_COUNTER_KEY: &str = "chaos:fenced-counter";
/// The resource and counter of the fenced run's unfenced control group.
const CONTROL_RESOURCE: &str = "chaos-control";
const CONTROL_COUNTER_KEY: &str = "chaos:control-counter";
/// At most this many masters are faulty at once: a minority of 5.
const MAX_FAULTY_MASTERS: usize = 2;

/// Chaos runs load both cores; two at once would only measure the machine.
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    // A failed run poisons the lock; the next run does not care.
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The seed of a run: `REDLOCK_CHAOS_SEED`, or fresh; the summary prints
/// it. It fixes the fault plan (kinds, targets, durations, offsets), not
/// the interleaving of the processes. Each test salts it, so that tests
/// given one seed still get different plans.
pub(crate) fn base_seed() -> u64 {
    env_u64("REDLOCK_CHAOS_SEED").unwrap_or_else(|| {
        sys::monotonic_ns() ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn rand_ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// The full fault model: random master and worker faults.
    FaultModel,
    /// Immediate restarts of masters without persistence, aimed at holders
    /// with exactly a quorum.
    RestartHole,
    /// The fault model's master faults (for persistent masters), and
    /// holders frozen past their TTL between their read and their write.
    FencedPauses,
}

/// One chaos run.
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    pub(crate) name: &'static str,
    pub(crate) scenario: Scenario,
    /// `REDLOCK_CHAOS_SEED` that reproduces the plan.
    pub(crate) seed: u64,
    /// Separates the plans of the tests of one invocation.
    pub(crate) salt: u64,
    pub(crate) secs: u64,
    pub(crate) workers: usize,
    pub(crate) ttl: Duration,
    pub(crate) guard: bool,
    /// Work time between the counter's read and write, in ms.
    pub(crate) work_ms: (u64, u64),
    /// Validity that must be left at each check, in ms.
    pub(crate) margin_ms: u64,
    /// Persistence of each master.
    pub(crate) persistence: Vec<Persistence>,
    /// Whether workers reach the masters through a proxy each.
    pub(crate) proxied: bool,
    /// Whether the workers acquire with fencing and act on a fenced
    /// counter.
    pub(crate) fenced: bool,
    /// Whether the workers check validity again right before the write.
    pub(crate) recheck: bool,
    /// Workers of an unfenced control group (0: none), on a resource and
    /// counter of their own, with the same settings otherwise.
    pub(crate) control_workers: usize,
}

/// Workers that contend for one resource and act on one counter.
struct Group {
    /// Their indices among all workers (and in the log names).
    ids: Range<usize>,
    resource: &'static str,
    counter_key: &'static str,
    fenced: bool,
    /// The fault kind of freezing one of them while holding.
    freeze_kind: &'static str,
}

impl RunConfig {
    /// The main group, then the control group if there is one.
    fn groups(&self) -> Vec<Group> {
        let main = Group {
            ids: 0..self.workers,
            resource: RESOURCE,
            counter_key: if self.fenced {
                FENCED_COUNTER_KEY
            } else {
                COUNTER_KEY
            },
            fenced: self.fenced,
            freeze_kind: if self.fenced {
                "freeze_holder_fenced"
            } else {
                "freeze_holder"
            },
        };
        let control = (self.control_workers > 0).then(|| Group {
            ids: self.workers..self.workers + self.control_workers,
            resource: CONTROL_RESOURCE,
            counter_key: CONTROL_COUNTER_KEY,
            fenced: false,
            freeze_kind: "freeze_holder_control",
        });
        std::iter::once(main).chain(control).collect()
    }

    fn total_workers(&self) -> usize {
        self.workers + self.control_workers
    }
}

/// What a run injected.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    counts: BTreeMap<&'static str, usize>,
    /// Planned faults that did not fit before the end of the fault window.
    skipped: usize,
    pauses: Vec<Pause>,
    timeline: Vec<String>,
}

impl FaultLog {
    fn record(&mut self, kind: &'static str, detail: String) {
        *self.counts.entry(kind).or_default() += 1;
        self.timeline
            .push(format!("{} {kind} {detail}", sys::monotonic_ns()));
    }

    pub(crate) fn total(&self) -> usize {
        self.counts.values().sum()
    }

    pub(crate) fn count(&self, kind: &str) -> usize {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}

fn record(faults: &Mutex<FaultLog>, kind: &'static str, detail: String) {
    lock(faults).record(kind, detail);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts faulty masters; a fault starts only while fewer than
/// [`MAX_FAULTY_MASTERS`] are faulty.
struct Budget {
    faulty: Mutex<usize>,
    freed: Condvar,
}

/// A taken budget slot, given back on drop (also while unwinding).
struct Slot<'a>(&'a Budget);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.faulty) -= 1;
        self.0.freed.notify_all();
    }
}

impl Budget {
    fn new() -> Self {
        Self {
            faulty: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot until `until`; `None` if none came free by then.
    fn take(&self, until: Instant) -> Option<Slot<'_>> {
        let mut faulty = lock(&self.faulty);
        while *faulty >= MAX_FAULTY_MASTERS {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            faulty = self
                .freed
                .wait_timeout(faulty, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *faulty += 1;
        Some(Slot(self))
    }
}

/// A fault of one master.
#[derive(Clone, Copy, Debug)]
enum MasterFault {
    /// SIGSTOP, then SIGCONT after this long.
    Pause(Duration),
    /// SIGKILL; restart at once (the master has fsync-always AOF).
    KillRestartAof,
    /// SIGKILL; restart empty after this long (more than a TTL).
    KillRestartEmpty(Duration),
    /// Proxy delays every chunk by `per_chunk`, for `span`.
    Delay { per_chunk: Duration, span: Duration },
    /// Proxy forwards nothing for this long.
    Blackhole(Duration),
    /// Proxy closes every connection and refuses new ones for this long.
    Cut(Duration),
}

impl MasterFault {
    fn kind(&self) -> &'static str {
        match self {
            Self::Pause(_) => "pause_master",
            Self::KillRestartAof => "kill_restart_aof_immediate",
            Self::KillRestartEmpty(_) => "kill_restart_empty_after_ttl",
            Self::Delay { .. } => "proxy_delay",
            Self::Blackhole(_) => "proxy_blackhole",
            Self::Cut(_) => "proxy_cut",
        }
    }
}

/// Every kind of the fault-model run, each injected at least once.
pub(crate) const FAULT_MODEL_KINDS: [&str; 8] = [
    "pause_master",
    "kill_restart_aof_immediate",
    "kill_restart_empty_after_ttl",
    "proxy_delay",
    "proxy_blackhole",
    "proxy_cut",
    "pause_worker_holding",
    "pause_worker_any",
];

/// A worker freeze: whom, and for how long.
#[derive(Clone, Copy, Debug)]
struct WorkerFault {
    /// Look for a worker that holds the lock right now.
    holder: bool,
    stop: Duration,
}

/// The seeded plan of the fault-model run: per master, the faults and
/// their offsets from the start; and the worker freezes.
struct Plan {
    masters: Vec<Vec<(Duration, MasterFault)>>,
    workers: Vec<(Duration, WorkerFault)>,
}

fn plan_fault_model(cfg: &RunConfig, rng: &mut StdRng, window: (Duration, Duration)) -> Plan {
    let n = cfg.persistence.len();
    let aof: Vec<usize> = (0..n)
        .filter(|i| cfg.persistence[*i] == Persistence::AppendFsyncAlways)
        .collect();
    let empty: Vec<usize> = (0..n)
        .filter(|i| cfg.persistence[*i] == Persistence::None)
        .collect();
    let ttl = ms(cfg.ttl);
    let mut masters = vec![Vec::new(); n];
    // Kinds come from a shuffled bag, refilled when empty, so that every
    // kind is injected about equally often whatever the seed.
    let mut bag: Vec<u8> = Vec::new();
    let mut t = window.0;
    while t < window.1 {
        if bag.is_empty() {
            bag = (0..6).collect();
            bag.shuffle(rng);
        }
        let kind = bag.pop().unwrap_or(0);
        let any = rng.gen_range(0..n);
        let (target, fault) = match kind {
            0 => (any, MasterFault::Pause(rand_ms(rng, 200, 2_000))),
            1 => match aof.choose(rng) {
                Some(&i) => (i, MasterFault::KillRestartAof),
                None => continue,
            },
            2 => match empty.choose(rng) {
                Some(&i) => (
                    i,
                    MasterFault::KillRestartEmpty(rand_ms(rng, ttl + 300, ttl + 1_000)),
                ),
                None => continue,
            },
            3 => (
                any,
                MasterFault::Delay {
                    per_chunk: rand_ms(rng, 20, 300),
                    span: rand_ms(rng, 500, 3_000),
                },
            ),
            4 => (any, MasterFault::Blackhole(rand_ms(rng, 300, 2_000))),
            _ => (any, MasterFault::Cut(rand_ms(rng, 200, 1_500))),
        };
        masters[target].push((t, fault));
        t += rand_ms(rng, 500, 1_500);
    }
    let mut workers = Vec::new();
    let mut t = window.0 + Duration::from_secs(1);
    let mut holder = true;
    while t < window.1 {
        let stop = cfg.ttl + rand_ms(rng, 200, 1_000);
        workers.push((t, WorkerFault { holder, stop }));
        holder = !holder;
        t += stop + rand_ms(rng, 500, 2_500);
    }
    Plan { masters, workers }
}

/// Runs one master's planned faults in order. A fault that cannot start
/// before `end` (budget full, or the previous fault ran long) is skipped.
fn master_lane(
    i: usize,
    server: &mut RedisServer,
    proxy: Option<&Proxy>,
    plan: &[(Duration, MasterFault)],
    (start, end): (Instant, Instant),
    budget: &Budget,
    faults: &Mutex<FaultLog>,
) {
    for (at, fault) in plan {
        sleep_until(start + *at);
        if Instant::now() >= end {
            lock(faults).skipped += 1;
            continue;
        }
        let Some(_slot) = budget.take(end) else {
            lock(faults).skipped += 1;
            continue;
        };
        let proxy = || proxy.expect("proxy faults are only planned for proxied masters");
        record(faults, fault.kind(), format!("master {i} {fault:?}"));
        match *fault {
            MasterFault::Pause(d) => {
                server.pause();
                thread::sleep(d);
                server.resume();
            }
            MasterFault::KillRestartAof => {
                server.kill();
                server.restart();
            }
            MasterFault::KillRestartEmpty(d) => {
                server.kill();
                thread::sleep(d);
                server.restart();
            }
            MasterFault::Delay { per_chunk, span } => {
                proxy().set_mode(Mode::Delay(per_chunk));
                thread::sleep(span);
                proxy().set_mode(Mode::Pass);
            }
            MasterFault::Blackhole(d) => {
                proxy().set_mode(Mode::Blackhole);
                thread::sleep(d);
                proxy().set_mode(Mode::Pass);
            }
            MasterFault::Cut(d) => {
                proxy().set_mode(Mode::Refuse);
                proxy().reset_all();
                thread::sleep(d);
                proxy().set_mode(Mode::Pass);
            }
        }
        lock(faults)
            .timeline
            .push(format!("{} end master {i}", sys::monotonic_ns()));
    }
}

/// Follows the workers' logs to see who is where, without parsing all of
/// them again.
struct Tails {
    files: Vec<(PathBuf, Option<File>, String, Option<String>)>,
}

impl Tails {
    fn new(paths: &[PathBuf]) -> Self {
        Self {
            files: paths
                .iter()
                .map(|p| (p.clone(), None, String::new(), None))
                .collect(),
        }
    }

    /// The name of each worker's last complete event.
    fn refresh(&mut self) -> Vec<Option<String>> {
        for (path, file, partial, last) in &mut self.files {
            if file.is_none() {
                *file = File::open(&*path).ok();
            }
            let Some(f) = file.as_mut() else { continue };
            let mut buf = String::new();
            if f.read_to_string(&mut buf).is_err() {
                continue;
            }
            partial.push_str(&buf);
            if let Some(end) = partial.rfind('\n') {
                if let Some(line) = partial[..end].lines().last() {
                    *last = line.split(' ').next().map(str::to_owned);
                }
                partial.drain(..=end);
            }
        }
        self.files.iter().map(|f| f.3.clone()).collect()
    }
}

/// Sends SIGCONT on drop, so a worker is never left frozen.
struct Thaw(u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = sys::signal(self.0, sys::SIGCONT);
    }
}

/// Freezes workers past their TTL, half the time one that holds the lock.
fn worker_lane(
    pids: &[u32],
    logs: &[PathBuf],
    plan: &[(Duration, WorkerFault)],
    (start, end): (Instant, Instant),
    rng: &mut StdRng,
    faults: &Mutex<FaultLog>,
) {
    let mut tails = Tails::new(logs);
    for (at, fault) in plan {
        sleep_until(start + *at);
        if Instant::now() >= end {
            lock(faults).skipped += 1;
            continue;
        }
        // A holder is a worker whose last event is inside the protected
        // action, before its re-check. Look for one for up to 2 s.
        let mut target = None;
        if fault.holder {
            let until = Instant::now() + Duration::from_secs(2);
            while target.is_none() && Instant::now() < until {
                target = tails
                    .refresh()
                    .iter()
                    .position(|e| matches!(e.as_deref(), Some("acquired" | "check_ok" | "read")));
                if target.is_none() {
                    thread::sleep(Duration::from_micros(500));
                }
            }
        }
        let kind = if target.is_some() {
            "pause_worker_holding"
        } else {
            "pause_worker_any"
        };
        let w = target.unwrap_or_else(|| rng.gen_range(0..pids.len()));
        let thaw = Thaw(pids[w]);
        let from = sys::monotonic_ns();
        sys::signal(pids[w], sys::SIGSTOP).expect("SIGSTOP a worker");
        record(faults, kind, format!("worker {w} for {:?}", fault.stop));
        thread::sleep(fault.stop);
        drop(thaw);
        let to = sys::monotonic_ns();
        let mut f = lock(faults);
        f.pauses.push(Pause {
            worker: w,
            from,
            to,
        });
        f.timeline.push(format!("{to} end worker {w}"));
    }
}

/// The fenced run's freezes: when, and for how long. Each one freezes a
/// holder for its TTL plus 0.2-1 s: its lock expires on the masters, a
/// waiter (retrying every 10-100 ms) takes it, reads and usually commits
/// before the frozen holder resumes and writes.
fn plan_holder_freezes(
    cfg: &RunConfig,
    rng: &mut StdRng,
    window: (Duration, Duration),
) -> Vec<(Duration, Duration)> {
    let mut plan = Vec::new();
    let mut t = window.0 + Duration::from_secs(1);
    while t < window.1 {
        plan.push((t, cfg.ttl + rand_ms(rng, 200, 1_000)));
        // Freezes overlap (the next can start while one is frozen); the
        // gap leaves the lock some cycles of normal use in between.
        t += rand_ms(rng, 700, 1_800);
    }
    plan
}

/// A frozen worker of [`holder_freeze_lane`]: thawed (by [`Thaw`]) at
/// `until`.
struct Frozen {
    until: Instant,
    local: usize,
    from: u64,
    _thaw: Thaw,
}

/// Freezes, at each planned time, a worker of one group that has read the
/// counter and not yet written it: a holder whose next step is the
/// write. Freezes may overlap; a frozen worker is never picked again
/// until thawed. A planned freeze that finds no such holder within 2 s is
/// skipped.
fn holder_freeze_lane(
    group: &Group,
    pids: &[u32],
    logs: &[PathBuf],
    plan: &[(Duration, Duration)],
    (start, end): (Instant, Instant),
    faults: &Mutex<FaultLog>,
) {
    let mut tails = Tails::new(&logs[group.ids.clone()]);
    let pids = &pids[group.ids.clone()];
    let mut frozen: Vec<Frozen> = Vec::new();
    // Thaws every worker due by `now`, recording its pause.
    let thaw_due = |frozen: &mut Vec<Frozen>, now: Instant| {
        let (due, keep): (Vec<Frozen>, Vec<Frozen>) =
            frozen.drain(..).partition(|f| f.until <= now);
        *frozen = keep;
        for f in due {
            let (worker, from) = (group.ids.start + f.local, f.from);
            // Sends SIGCONT.
            drop(f);
            let to = sys::monotonic_ns();
            let mut log = lock(faults);
            log.pauses.push(Pause { worker, from, to });
            log.timeline.push(format!("{to} end worker {worker}"));
        }
    };
    // Sleeps until `t`, thawing on time whatever falls due meanwhile.
    let wait_until = |frozen: &mut Vec<Frozen>, t: Instant| loop {
        let now = Instant::now();
        thaw_due(frozen, now);
        if t <= now {
            break;
        }
        // Every worker left frozen is due after `now`.
        let next = frozen.iter().map(|f| f.until).fold(t, Instant::min);
        thread::sleep(next.saturating_duration_since(now));
    };
    for (at, stop) in plan {
        wait_until(&mut frozen, start + *at);
        if Instant::now() >= end {
            lock(faults).skipped += 1;
            continue;
        }
        let search_until = Instant::now() + Duration::from_secs(2);
        let mut target = None;
        while target.is_none() && Instant::now() < search_until {
            let last = tails.refresh();
            target = (0..last.len()).find(|&i| {
                last[i].as_deref() == Some("read") && frozen.iter().all(|f| f.local != i)
            });
            if target.is_none() {
                wait_until(&mut frozen, Instant::now() + Duration::from_millis(1));
            }
        }
        let Some(local) = target else {
            lock(faults).skipped += 1;
            continue;
        };
        let worker = group.ids.start + local;
        let thaw = Thaw(pids[local]);
        let from = sys::monotonic_ns();
        sys::signal(pids[local], sys::SIGSTOP).expect("SIGSTOP a worker");
        record(
            faults,
            group.freeze_kind,
            format!("worker {worker} for {stop:?}"),
        );
        frozen.push(Frozen {
            until: Instant::now() + *stop,
            local,
            from,
            _thaw: thaw,
        });
    }
    while let Some(last) = frozen.iter().map(|f| f.until).max() {
        wait_until(&mut frozen, last);
    }
}

/// Persistent connections of the harness' own client to every master,
/// re-opened after a failure (a restart, for instance).
struct Probe {
    addrs: Vec<std::net::SocketAddr>,
    conns: Vec<Option<Connection>>,
}

impl Probe {
    fn new(masters: &[RedisServer]) -> Self {
        Self {
            addrs: masters.iter().map(RedisServer::addr).collect(),
            conns: masters.iter().map(|_| None).collect(),
        }
    }

    fn call(&mut self, i: usize, args: &[&str]) -> Option<Reply> {
        if self.conns[i].is_none() {
            self.conns[i] = Connection::connect(self.addrs[i], Duration::from_millis(200)).ok();
        }
        let reply = self.conns[i].as_mut()?.call(args);
        match reply {
            Ok(r) => Some(r),
            Err(_) => {
                self.conns[i] = None;
                None
            }
        }
    }

    /// The value of `KEY` on each master (`None`: absent or unreachable).
    fn holders(&mut self) -> Vec<Option<String>> {
        (0..self.addrs.len())
            .map(|i| match self.call(i, &["GET", KEY]) {
                Some(Reply::Bulk(Some(v))) => Some(String::from_utf8_lossy(&v).into_owned()),
                _ => None,
            })
            .collect()
    }
}

/// The restart-hole scheduler. It leaves short-lived keys of a "crashed
/// client" on two masters (a client that died mid-acquire leaves exactly
/// that), placed the moment those masters are free, so the next holder
/// gets exactly the other three: a bare quorum. As soon as one token holds
/// exactly three masters, it kills one of them and restarts it at once,
/// empty. Once the leftovers expire, a contender finds three masters
/// without the holder's key: the hole, unless the restart guard holds the
/// restarted master back.
fn restart_hole_lane(
    masters: &mut [RedisServer],
    ttl: Duration,
    (start, end): (Instant, Instant),
    rng: &mut StdRng,
    faults: &Mutex<FaultLog>,
) {
    let n = masters.len();
    let quorum = n / 2 + 1;
    let mut probe = Probe::new(masters);
    let mut next = start + Duration::from_secs(1);
    let mut leftovers = 0u64;
    while Instant::now() < end {
        sleep_until(next);
        leftovers += 1;
        let value = format!("crashed-client-{leftovers}");
        let px = rng.gen_range(100..=250u64).to_string();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(rng);
        let chosen = &idx[..n - quorum];
        // Place them as the current holder releases (NX: a held key is
        // never touched).
        let mut placed = vec![false; chosen.len()];
        let place_until = Instant::now() + Duration::from_secs(3);
        while placed.contains(&false) && Instant::now() < place_until {
            for (k, &i) in chosen.iter().enumerate() {
                if !placed[k] {
                    placed[k] = matches!(
                        probe.call(i, &["SET", KEY, &value, "NX", "PX", &px]),
                        Some(r) if r.is_ok()
                    );
                }
            }
            thread::sleep(Duration::from_micros(500));
        }
        if placed.contains(&false) {
            next = Instant::now() + Duration::from_millis(10);
            continue;
        }
        record(
            faults,
            "leftover_keys",
            format!("masters {chosen:?} px {px}"),
        );
        // Wait for a holder with exactly a quorum.
        let watch = Instant::now() + Duration::from_millis(800);
        let mut hit = None;
        while hit.is_none() && Instant::now() < watch {
            let h = probe.holders();
            let mut tokens: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, v) in h.iter().enumerate() {
                if let Some(v) = v.as_deref().filter(|v| !v.starts_with("crashed-client-")) {
                    tokens.entry(v).or_default().push(i);
                }
            }
            hit = tokens
                .values()
                .find(|on| on.len() == quorum)
                .and_then(|on| on.choose(rng).copied());
            if hit.is_none() {
                thread::sleep(Duration::from_millis(1));
            }
        }
        match hit {
            Some(i) => {
                record(
                    faults,
                    "restart_holder_master_immediate",
                    format!("master {i}"),
                );
                masters[i].kill();
                masters[i].restart();
                // One restarted master at a time: the next only after the
                // guard (if on) lets this one vote again.
                next = Instant::now() + ttl + Duration::from_millis(1_500);
            }
            None => next = Instant::now() + Duration::from_millis(10),
        }
    }
}

/// The worker processes; killed and reaped on drop (also while unwinding).
struct Workers {
    children: Vec<Option<Child>>,
}

impl Workers {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// Waits for every worker until `timeout`; kills the stragglers.
    fn wait_all(&mut self, timeout: Duration) -> Vec<Result<ExitStatus, String>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        for slot in &mut self.children {
            let Some(mut child) = slot.take() else {
                out.push(Err("not running".into()));
                continue;
            };
            let status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Ok(s),
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(50));
                    }
                    Ok(None) => {
                        let _ = sys::signal(child.id(), sys::SIGCONT);
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(format!("did not finish within {timeout:?}; killed"));
                    }
                    Err(e) => break Err(format!("wait: {e}")),
                }
            };
            out.push(status);
        }
        out
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for mut child in self.children.iter_mut().filter_map(Option::take) {
            // Unreaped: the pid is still ours.
            let _ = sys::signal(child.id(), sys::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The run's directory of logs; removed on drop unless the run failed or
/// `REDLOCK_CHAOS_KEEP_LOGS` is set.
struct LogDir {
    path: PathBuf,
    keep: bool,
}

impl LogDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "redlock-chaos-{}-{name}-{}",
            std::process::id(),
            sys::monotonic_ns()
        ));
        fs::create_dir_all(&path).expect("create the chaos log dir");
        Self {
            path,
            keep: std::env::var_os("REDLOCK_CHAOS_KEEP_LOGS").is_some(),
        }
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if self.keep || thread::panicking() {
            eprintln!("chaos logs kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What a run produced.
pub(crate) struct Outcome {
    pub(crate) report: Report,
    /// The control group's report, if the run had one.
    pub(crate) control: Option<Report>,
    pub(crate) faults: FaultLog,
    pub(crate) summary: String,
    statuses: Vec<Result<ExitStatus, String>>,
    dir: LogDir,
}

impl Outcome {
    /// The run can be judged: every worker ran to its end and logged
    /// consistently.
    pub(crate) fn assert_judgeable(&self) {
        let bad: Vec<String> = self
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, Ok(st) if st.success()))
            .map(|(i, s)| {
                let err = fs::read_to_string(self.dir.path.join(format!("worker-{i}.err")))
                    .unwrap_or_default();
                format!("worker {i}: {s:?} {}", err.trim())
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{}\nworkers failed:\n{}",
            self.summary,
            bad.join("\n")
        );
        let errors: Vec<&String> = std::iter::once(&self.report)
            .chain(&self.control)
            .flat_map(|r| &r.log_errors)
            .collect();
        assert!(
            errors.is_empty(),
            "{}\nlogs cannot be judged:\n{}",
            self.summary,
            errors
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    pub(crate) fn assert_no_violations(&self) {
        assert_eq!(
            self.report.violations(),
            0,
            "{}\nmutual exclusion violated (seed {}); logs kept in {}:\n{}",
            self.summary,
            self.summary_seed(),
            self.dir.path.display(),
            self.report.describe_violations(20)
        );
    }

    fn summary_seed(&self) -> &str {
        self.summary
            .split_whitespace()
            .find_map(|w| w.strip_prefix("seed="))
            .unwrap_or("?")
    }
}

fn spawn_workers(cfg: &RunConfig, urls: &[String], counter: &RedisServer, dir: &Path) -> Workers {
    let bin = env!("CARGO_BIN_EXE_chaos_worker");
    let groups = cfg.groups();
    let children = groups
        .iter()
        .flat_map(|g| g.ids.clone().map(move |i| (g, i)))
        .map(|(g, i)| {
            let err = File::create(dir.join(format!("worker-{i}.err"))).expect("worker stderr");
            let mut cmd = Command::new(bin);
            if g.fenced {
                cmd.arg("--fenced");
            }
            let child = cmd
                .args(["--masters", &urls.join(",")])
                .args(["--counter", &counter.addr().to_string()])
                .args(["--counter-key", g.counter_key])
                .args(["--resource", g.resource])
                .args(["--recheck", if cfg.recheck { "on" } else { "off" }])
                .args(["--ttl-ms", &ms(cfg.ttl).to_string()])
                .args(["--run-secs", &cfg.secs.to_string()])
                .args(["--worker-id", &i.to_string()])
                .arg("--log")
                .arg(dir.join(format!("worker-{i}.log")))
                .args(["--restart-guard", if cfg.guard { "on" } else { "off" }])
                .args(["--work-ms", &format!("{}-{}", cfg.work_ms.0, cfg.work_ms.1)])
                .args(["--margin-ms", &cfg.margin_ms.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("spawn chaos_worker");
            Some(child)
        })
        .collect();
    Workers { children }
}

pub(crate) fn run(cfg: &RunConfig) -> Outcome {
    let wall = Instant::now();
    let dir = LogDir::new(cfg.name);
    let counter = RedisServer::start();
    let mut masters: Vec<RedisServer> = cfg
        .persistence
        .iter()
        .map(|p| RedisServer::start_with(ServerOptions::default().with_persistence(*p)))
        .collect();
    let proxies: Vec<Proxy> = if cfg.proxied {
        masters
            .iter()
            .map(|m| Proxy::start(m.addr()).expect("start a proxy"))
            .collect()
    } else {
        Vec::new()
    };
    let urls: Vec<String> = if cfg.proxied {
        proxies.iter().map(Proxy::url).collect()
    } else {
        masters.iter().map(RedisServer::url).collect()
    };
    if cfg.guard {
        // Fresh masters grant nothing under the guard until they have been
        // up for a TTL (uptime is reported in whole seconds).
        thread::sleep(Duration::from_secs(cfg.ttl.as_secs() + 2));
    }

    let mut rng = StdRng::seed_from_u64(cfg.seed ^ cfg.salt);
    let mut workers = spawn_workers(cfg, &urls, &counter, &dir.path);
    let pids = workers.pids();
    let logs: Vec<PathBuf> = (0..cfg.total_workers())
        .map(|i| dir.path.join(format!("worker-{i}.log")))
        .collect();
    let start = Instant::now();
    let run_len = Duration::from_secs(cfg.secs);
    // Faults stop early enough for the masters to be whole again, and every
    // lock of the last fault to expire, before the workers stop.
    let tail = cfg.ttl * 2 + Duration::from_secs(2);
    let window = (Duration::from_secs(2), run_len.saturating_sub(tail));
    let span = (start, start + window.1);
    let faults = Mutex::new(FaultLog::default());
    let budget = Budget::new();

    match cfg.scenario {
        Scenario::FaultModel => {
            let plan = plan_fault_model(cfg, &mut rng, window);
            let mut worker_rng = StdRng::seed_from_u64(rng.gen());
            thread::scope(|s| {
                for (i, (server, lane)) in masters.iter_mut().zip(&plan.masters).enumerate() {
                    let proxy = proxies.get(i);
                    let (budget, faults) = (&budget, &faults);
                    s.spawn(move || master_lane(i, server, proxy, lane, span, budget, faults));
                }
                let (pids, logs, faults) = (&pids, &logs, &faults);
                let lane = &plan.workers;
                let rng = &mut worker_rng;
                s.spawn(move || worker_lane(pids, logs, lane, span, rng, faults));
            });
        }
        Scenario::RestartHole => {
            restart_hole_lane(&mut masters, cfg.ttl, span, &mut rng, &faults);
        }
        Scenario::FencedPauses => {
            // The fault model's master faults; its worker freezes are
            // replaced by freezes of holders between read and write.
            let plan = plan_fault_model(cfg, &mut rng, window);
            let freezes = plan_holder_freezes(cfg, &mut rng, window);
            let groups = cfg.groups();
            thread::scope(|s| {
                for (i, (server, lane)) in masters.iter_mut().zip(&plan.masters).enumerate() {
                    let proxy = proxies.get(i);
                    let (budget, faults) = (&budget, &faults);
                    s.spawn(move || master_lane(i, server, proxy, lane, span, budget, faults));
                }
                // One lane per group, each with the same plan: the control
                // group faces the freezes the fenced one does.
                for g in &groups {
                    let (pids, logs, freezes, faults) = (&pids, &logs, &freezes, &faults);
                    s.spawn(move || holder_freeze_lane(g, pids, logs, freezes, span, faults));
                }
            });
        }
    }

    let statuses = workers.wait_all(run_len + Duration::from_secs(60));
    let faults = faults.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut timeline = faults.timeline.join("\n");
    timeline.push('\n');
    let _ = File::create(dir.path.join("faults.log"))
        .and_then(|mut f| f.write_all(timeline.as_bytes()));

    let worker_logs: Vec<WorkerLog> = logs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text = fs::read_to_string(p).unwrap_or_default();
            let events =
                parse_log(&text).unwrap_or_else(|e| panic!("worker {i} log {}: {e}", p.display()));
            WorkerLog { worker: i, events }
        })
        .collect();
    let mut reports = cfg.groups().into_iter().map(|g| {
        let logs = &worker_logs[g.ids.clone()];
        let final_counter = read_counter(&counter, g.counter_key, g.fenced);
        if g.fenced {
            // Nothing excused: a frozen holder is what the fence is for.
            checker::check_fenced(logs, cfg.ttl, final_counter)
        } else {
            checker::check(logs, &faults.pauses, final_counter)
        }
    });
    let report = reports.next().expect("a run has a main group");
    let control = reports.next();
    drop(proxies);
    drop(masters);
    let aof = cfg
        .persistence
        .iter()
        .filter(|p| **p == Persistence::AppendFsyncAlways)
        .count();
    let kinds = faults
        .counts
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let control_summary = control.as_ref().map_or(String::new(), |c| {
        format!(
            " | control [{} workers, unfenced, same freezes]: cycles={} commits={} \
             aborts={} final_counter={} lost_updates={} late_commits={}",
            cfg.control_workers,
            c.cycles,
            c.commits,
            c.aborted(),
            c.final_counter,
            c.lost_updates,
            c.late_commits
        )
    });
    let summary = format!(
        "chaos summary [{}]: seed={} secs={} workers={} masters={} (aof_always={}, proxied={}) \
         ttl_ms={} restart_guard={}{} faults={} ({kinds}) skipped={} | {}{control_summary} | \
         wall={:.1}s",
        cfg.name,
        cfg.seed,
        cfg.secs,
        cfg.workers,
        cfg.persistence.len(),
        aof,
        cfg.proxied,
        ms(cfg.ttl),
        if cfg.guard { "on" } else { "off" },
        match (cfg.fenced, cfg.recheck) {
            (false, true) => "",
            (true, true) => " fenced=on",
            (false, false) => " recheck=off",
            (true, false) => " fenced=on recheck=off",
        },
        faults.total(),
        faults.skipped,
        report,
        wall.elapsed().as_secs_f64()
    );
    println!("{summary}");
    Outcome {
        report,
        control,
        faults,
        summary,
        statuses,
        dir,
    }
}

/// The counter's value at the end: a string key, or the `value` field of
/// the fenced counter's hash (0 when absent).
fn read_counter(counter: &RedisServer, key: &str, fenced: bool) -> i64 {
    let reply = if fenced {
        counter.cmd(&["HGET", key, "value"])
    } else {
        counter.cmd(&["GET", key])
    };
    match reply {
        Ok(Reply::Bulk(None)) => 0,
        Ok(r) => r
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("counter {key} reply {r:?}")),
        Err(e) => panic!("reading the counter {key}: {e}"),
    }
}
