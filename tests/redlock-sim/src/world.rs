//! The simulated world: masters with their own clocks, links between every
//! client and every master, and the implementations of the core's
//! [`Master`] and [`Runtime`] seams on top of them.
//!
//! Everything runs on one single-threaded tokio runtime with a paused
//! clock: tokio's virtual time *is* the true timeline, and the only source
//! of randomness is the seed.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, RngCore};
use redlock_core::{restart_guard_votes_from, Master, MasterFailure, Runtime, Token, Ttl};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::checker::History;
use crate::report::Stats;
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::trace::Trace;

/// Locks a mutex, ignoring poison: a panic in one task already fails the
/// run, and the state is only read for the report afterwards.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stream numbers.
pub(crate) const STREAM_SETUP: u64 = 1;
pub(crate) const STREAM_FAULTS: u64 = 2;
pub(crate) const STREAM_NET: u64 = 3;
pub(crate) const STREAM_JITTER: u64 = 4;
pub(crate) const STREAM_WORKER: u64 = 100;

/// One script call, with owned arguments (the call may outlive the
/// caller's future).
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Acquire {
        keys: Vec<String>,
        token: String,
        ttl_ms: u64,
    },
    Extend {
        keys: Vec<String>,
        token: String,
        ttl_ms: u64,
        recreate: bool,
    },
    Release {
        keys: Vec<String>,
        token: String,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Acquire { .. } => "acquire",
            Op::Extend { .. } => "extend",
            Op::Release { .. } => "release",
        }
    }
}

/// A key on a master: the token and the expiry on the master's own clock.
#[derive(Clone, Debug)]
struct Entry {
    token: String,
    expires_at_ns: i128,
}

/// A command waiting on a paused master, with the way back to its caller.
struct Queued {
    op: Op,
    client: usize,
    call: u64,
    sent_at: Instant,
    reply: ReplyLeg,
}

/// Everything about the way back of one reply, drawn when it was sent.
struct ReplyLeg {
    latency: Duration,
    lost: bool,
    tx: oneshot::Sender<Result<(), MasterFailure>>,
}

/// One simulated Redis master.
pub(crate) struct MasterState {
    keys: BTreeMap<String, Entry>,
    up: bool,
    /// Changes at every crash and restart: a request sent to an earlier
    /// incarnation finds its connection reset.
    incarnation: u64,
    paused: bool,
    queue: VecDeque<Queued>,
    /// The clock runs at `1 + rate` times true speed...
    rate: f64,
    /// ...plus the sum of its jumps.
    jumped_ns: i128,
    /// When it last restarted (true time); `None` if it has been up since
    /// long before the run.
    restarted_at: Option<Instant>,
}

impl MasterState {
    /// Runs one script atomically at master time `now`, exactly as the Lua
    /// scripts in `redlock_core::scripts` do, with the same reply mapping
    /// as `FredMaster`.
    fn apply(&mut self, op: &Op, now: i128) -> Result<(), MasterFailure> {
        match op {
            Op::Acquire {
                keys,
                token,
                ttl_ms,
            } => {
                // ACQUIRE: refuse if any key holds another token...
                if keys
                    .iter()
                    .any(|k| self.get(k, now).is_some_and(|v| v != token))
                {
                    return Err(MasterFailure::Held);
                }
                // ...else SET every key PX ttl (absent, or ours: a resend).
                for k in keys {
                    self.set(k, token, now, *ttl_ms);
                }
                Ok(())
            }
            Op::Extend {
                keys,
                token,
                ttl_ms,
                recreate,
            } => {
                let mut missing = false;
                for k in keys {
                    match self.get(k, now) {
                        None => missing = true,
                        Some(v) if v != token => return Err(MasterFailure::Held),
                        Some(_) => {}
                    }
                }
                if missing && !recreate {
                    return Err(MasterFailure::NotHeld);
                }
                // As the script: re-create a missing key, and lengthen a
                // key to now + ttl, never shorten it.
                let wanted = now + i128::from(*ttl_ms) * 1_000_000;
                for k in keys {
                    match self.keys.get_mut(k) {
                        Some(e) => e.expires_at_ns = e.expires_at_ns.max(wanted),
                        None => self.set(k, token, now, *ttl_ms),
                    }
                }
                Ok(())
            }
            Op::Release { keys, token } => {
                let mut deleted = 0;
                for k in keys {
                    if self.get(k, now) == Some(token.as_str()) {
                        self.keys.remove(k);
                        deleted += 1;
                    }
                }
                if deleted == 0 {
                    Err(MasterFailure::NotHeld)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `GET` with expiry: a key is gone once the master's clock reaches its
    /// expiry. (Redis keeps a key until its clock is strictly past the
    /// millisecond of expiry; expiring at the exact instant makes the model
    /// at least as strict.)
    fn get(&mut self, key: &str, now: i128) -> Option<&str> {
        if self.keys.get(key).is_some_and(|e| now >= e.expires_at_ns) {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|e| e.token.as_str())
    }

    fn set(&mut self, key: &str, token: &str, now: i128, ttl_ms: u64) {
        let expires_at_ns = now + i128::from(ttl_ms) * 1_000_000;
        self.keys.insert(
            key.to_owned(),
            Entry {
                token: token.to_owned(),
                expires_at_ns,
            },
        );
    }
}

/// One client's connection to one master.
struct Link {
    base: Duration,
    cut: bool,
    /// Earliest arrival of the next request / reply: messages on a link
    /// arrive in the order they were sent, at least 1 ms apart (tokio's
    /// timer resolution; it keeps their order deterministic).
    next_request: Instant,
    next_reply: Instant,
}

/// The shared state of one simulated run.
pub(crate) struct World {
    pub(crate) scenario: Scenario,
    pub(crate) masters: usize,
    pub(crate) t0: Instant,
    pub(crate) t0_std: std::time::Instant,
    nodes: Vec<Mutex<MasterState>>,
    links: Vec<Mutex<Link>>,
    net_rng: Mutex<SimRng>,
    jitter_rng: Mutex<SimRng>,
    next_call: Mutex<u64>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) trace: Mutex<Trace>,
    pub(crate) history: Mutex<History>,
    pub(crate) counter: Mutex<u64>,
}

impl World {
    pub(crate) fn new(scenario: Scenario, seed: u64, masters: usize, trace: bool) -> Self {
        let t0 = Instant::now();
        let mut setup = SimRng::stream(seed, STREAM_SETUP);
        let rate = scenario.faults.clock_rate_error;
        let nodes = (0..masters)
            .map(|_| {
                Mutex::new(MasterState {
                    keys: BTreeMap::new(),
                    up: true,
                    incarnation: 0,
                    paused: false,
                    queue: VecDeque::new(),
                    rate: if rate > 0.0 {
                        setup.gen_range(-rate..=rate)
                    } else {
                        0.0
                    },
                    jumped_ns: 0,
                    restarted_at: None,
                })
            })
            .collect();
        let (lo, hi) = scenario.network.link_base_ms;
        let links = (0..scenario.clients * masters)
            .map(|_| {
                Mutex::new(Link {
                    base: Duration::from_millis(setup.gen_range(lo..=hi)),
                    cut: false,
                    next_request: t0,
                    next_reply: t0,
                })
            })
            .collect();
        Self {
            masters,
            t0,
            t0_std: t0.into_std(),
            nodes,
            links,
            net_rng: Mutex::new(SimRng::stream(seed, STREAM_NET)),
            jitter_rng: Mutex::new(SimRng::stream(seed, STREAM_JITTER)),
            next_call: Mutex::new(0),
            stats: Mutex::new(Stats::default()),
            trace: Mutex::new(Trace::new(trace)),
            history: Mutex::new(History::default()),
            counter: Mutex::new(0),
            scenario,
        }
    }

    /// True time since the start of the run.
    pub(crate) fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.t0)
    }

    /// A core `Instant` as true time since the start of the run.
    pub(crate) fn since_start(&self, t: std::time::Instant) -> Duration {
        t.saturating_duration_since(self.t0_std)
    }

    /// Records a trace event (see [`Trace`]).
    pub(crate) fn event(&self, kind: &'static str, ids: [u64; 3], line: impl FnOnce() -> String) {
        let at = self.elapsed();
        lock(&self.trace).event(at, kind, ids, line);
    }

    fn link(&self, client: usize, master: usize) -> MutexGuard<'_, Link> {
        lock(&self.links[client * self.masters + master])
    }

    fn node(&self, master: usize) -> MutexGuard<'_, MasterState> {
        lock(&self.nodes[master])
    }

    /// The master's own clock, in ns since the start of the run.
    fn master_now(&self, m: &MasterState) -> i128 {
        let true_ns = self.elapsed().as_nanos() as f64;
        (true_ns * (1.0 + m.rate)) as i128 + m.jumped_ns
    }

    /// One message's latency on a link, drawn from the net stream.
    fn latency(&self, rng: &mut SimRng, base: Duration) -> Duration {
        let n = &self.scenario.network;
        let mut ms = rng.gen_range(0..=n.jitter_ms);
        // Always draw both numbers, so the stream stays aligned whatever the
        // outcome.
        let spike = rng.gen_bool(n.spike_prob);
        let spike_ms = rng.gen_range(n.spike_ms.0..=n.spike_ms.1);
        if spike {
            ms += spike_ms;
        }
        base + Duration::from_millis(ms)
    }

    // ---- faults (applied by the fault driver) ----

    pub(crate) fn crash(&self, master: usize, keep_data: bool) {
        let mut m = self.node(master);
        m.up = false;
        m.incarnation += 1;
        m.paused = false;
        // Commands queued on a paused master die with it: their callers
        // time out.
        m.queue.clear();
        if !keep_data {
            m.keys.clear();
        }
    }

    pub(crate) fn restart(&self, master: usize) {
        let mut m = self.node(master);
        m.up = true;
        m.incarnation += 1;
        m.restarted_at = Some(Instant::now());
    }

    /// The restart guard, as `FredMaster` applies it: with
    /// [`Scenario::restart_guard`] on, an acquire on a master whose uptime
    /// is below the longest TTL is refused before it runs, by the core's
    /// own rule ([`restart_guard_votes_from`]). `FredMaster` learns the
    /// uptime from `INFO` when it notices the reconnect; here the master
    /// knows it exactly, which models a client that always notices.
    fn guard_refusal(&self, m: &MasterState, op: &Op) -> Option<MasterFailure> {
        if !self.scenario.restart_guard || !matches!(op, Op::Acquire { .. }) {
            return None;
        }
        let now = Instant::now();
        let uptime = now.saturating_duration_since(m.restarted_at?);
        let votes_from = restart_guard_votes_from(now.into_std(), uptime, self.scenario.max_ttl());
        let wait = votes_from.saturating_duration_since(now.into_std());
        (!wait.is_zero()).then(|| {
            lock(&self.stats).guard_refusals += 1;
            MasterFailure::RecentlyRestarted { votes_in: wait }
        })
    }

    pub(crate) fn pause(&self, master: usize) {
        self.node(master).paused = true;
    }

    /// Resumes a paused master: the commands that arrived meanwhile run now,
    /// in arrival order (per link that is send order), like a `SIGCONT`.
    pub(crate) fn resume(self: &Arc<Self>, master: usize) {
        let mut m = self.node(master);
        m.paused = false;
        let now = self.master_now(&m);
        while let Some(q) = m.queue.pop_front() {
            let result = match self.guard_refusal(&m, &q.op) {
                Some(refused) => Err(refused),
                None => m.apply(&q.op, now),
            };
            self.applied(master, &q.op, q.client, q.call, q.sent_at, &result);
            tokio::spawn(reply(
                Arc::clone(self),
                q.client,
                master,
                q.call,
                result,
                q.reply,
            ));
        }
    }

    pub(crate) fn cut(&self, master: usize, clients: &[usize]) {
        for &c in clients {
            self.link(c, master).cut = true;
        }
    }

    pub(crate) fn heal(&self, master: usize) {
        for c in 0..self.scenario.clients {
            self.link(c, master).cut = false;
        }
    }

    pub(crate) fn jump(&self, master: usize, delta_ns: i128) {
        self.node(master).jumped_ns += delta_ns;
    }

    /// Bookkeeping for an applied command.
    fn applied(
        &self,
        master: usize,
        op: &Op,
        client: usize,
        call: u64,
        sent_at: Instant,
        result: &Result<(), MasterFailure>,
    ) {
        let late =
            Instant::now().saturating_duration_since(sent_at) >= self.scenario.master_timeout;
        if late {
            lock(&self.stats).late_applies += 1;
        }
        self.event(
            "apply",
            [call, master as u64, u64::from(result.is_ok())],
            || {
                format!(
                    "m{master} applies {} #{call} from c{client}: {}{}",
                    op.name(),
                    match result {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => e.to_string(),
                    },
                    if late {
                        " (after the caller's timeout)"
                    } else {
                        ""
                    }
                )
            },
        );
    }
}

/// The request leg of one call: travel, then apply (or queue, or fail).
async fn deliver(world: Arc<World>, client: usize, master: usize, call: u64, op: Op, plan: Plan) {
    let sent_at = Instant::now();
    let incarnation = world.node(master).incarnation;
    let arrival = {
        let mut link = world.link(client, master);
        if plan.request_lost || link.cut {
            drop(link);
            lock(&world.stats).messages_lost += 1;
            world.event("lost", [call, master as u64, 0], || {
                format!("request #{call} c{client}->m{master} lost")
            });
            return;
        }
        let at = (sent_at + plan.request_latency).max(link.next_request);
        link.next_request = at + Duration::from_millis(1);
        at
    };
    tokio::time::sleep_until(arrival).await;
    if world.link(client, master).cut {
        lock(&world.stats).messages_lost += 1;
        world.event("lost", [call, master as u64, 1], || {
            format!("request #{call} c{client}->m{master} lost (cut)")
        });
        return;
    }
    let leg = ReplyLeg {
        latency: plan.reply_latency,
        lost: plan.reply_lost,
        tx: plan.tx,
    };
    let result = {
        let mut m = world.node(master);
        if !m.up || m.incarnation != incarnation {
            let why = if m.up {
                "connection reset (master restarted)"
            } else {
                "connection refused (master down)"
            };
            lock(&world.stats).refused_while_down += 1;
            Err(MasterFailure::Unreachable(why.to_owned()))
        } else if m.paused {
            lock(&world.stats).queued_while_paused += 1;
            m.queue.push_back(Queued {
                op,
                client,
                call,
                sent_at,
                reply: leg,
            });
            return;
        } else {
            let now = world.master_now(&m);
            let result = match world.guard_refusal(&m, &op) {
                Some(refused) => Err(refused),
                None => m.apply(&op, now),
            };
            drop(m);
            world.applied(master, &op, client, call, sent_at, &result);
            result
        }
    };
    reply(world, client, master, call, result, leg).await;
}

/// The reply leg of one call.
async fn reply(
    world: Arc<World>,
    client: usize,
    master: usize,
    call: u64,
    result: Result<(), MasterFailure>,
    leg: ReplyLeg,
) {
    let arrival = {
        let mut link = world.link(client, master);
        if leg.lost || link.cut {
            drop(link);
            lock(&world.stats).messages_lost += 1;
            world.event("lost", [call, master as u64, 2], || {
                format!("reply #{call} m{master}->c{client} lost")
            });
            return;
        }
        let at = (Instant::now() + leg.latency).max(link.next_reply);
        link.next_reply = at + Duration::from_millis(1);
        at
    };
    tokio::time::sleep_until(arrival).await;
    if world.link(client, master).cut {
        lock(&world.stats).messages_lost += 1;
        world.event("lost", [call, master as u64, 3], || {
            format!("reply #{call} m{master}->c{client} lost (cut)")
        });
        return;
    }
    // The caller may have timed out and gone: then nobody listens.
    let _ = leg.tx.send(result);
}

/// Everything random about one call, drawn when it is sent.
struct Plan {
    request_latency: Duration,
    request_lost: bool,
    reply_latency: Duration,
    reply_lost: bool,
    tx: oneshot::Sender<Result<(), MasterFailure>>,
}

/// One client's handle on one simulated master: the core's [`Master`].
pub(crate) struct SimMaster {
    world: Arc<World>,
    client: usize,
    master: usize,
    address: Arc<str>,
}

impl SimMaster {
    pub(crate) fn new(world: Arc<World>, client: usize, master: usize) -> Self {
        Self {
            world,
            client,
            master,
            address: Arc::from(format!("sim-m{master}")),
        }
    }

    /// Sends `op` and waits for its reply, at most the master timeout. The
    /// command travels in its own task: when the caller gives up (timeout,
    /// or the core dropping a pending vote after an early decision), the
    /// command still reaches the master and applies.
    fn call(&self, op: Op) -> impl Future<Output = Result<(), MasterFailure>> + Send + 'static {
        let world = Arc::clone(&self.world);
        let (client, master) = (self.client, self.master);
        async move {
            let call = {
                let mut n = lock(&world.next_call);
                *n += 1;
                *n
            };
            let (tx, rx) = oneshot::channel();
            let plan = {
                let base = world.link(client, master).base;
                let mut rng = lock(&world.net_rng);
                let request_latency = world.latency(&mut rng, base);
                let request_lost = rng.gen_bool(world.scenario.network.loss);
                let reply_latency = world.latency(&mut rng, base);
                let reply_lost = rng.gen_bool(world.scenario.network.loss);
                Plan {
                    request_latency,
                    request_lost,
                    reply_latency,
                    reply_lost,
                    tx,
                }
            };
            lock(&world.stats).messages_sent += 1;
            world.event("send", [call, master as u64, client as u64], || {
                format!(
                    "c{client} sends {} #{call} to m{master} (latency {:?}/{:?}{}{})",
                    op.name(),
                    plan.request_latency,
                    plan.reply_latency,
                    if plan.request_lost {
                        ", request will be lost"
                    } else {
                        ""
                    },
                    if plan.reply_lost {
                        ", reply will be lost"
                    } else {
                        ""
                    },
                )
            });
            tokio::spawn(deliver(Arc::clone(&world), client, master, call, op, plan));
            let waited = tokio::time::timeout(world.scenario.master_timeout, async move {
                match rx.await {
                    Ok(result) => result,
                    // Lost on the way: only the timeout ends the wait.
                    Err(_) => std::future::pending().await,
                }
            })
            .await;
            match waited {
                Ok(result) => result,
                Err(_) => {
                    lock(&world.stats).timeouts += 1;
                    world.event("timeout", [call, master as u64, client as u64], || {
                        format!("c{client} call #{call} to m{master} timed out")
                    });
                    Err(MasterFailure::TimedOut)
                }
            }
        }
    }
}

impl Master for SimMaster {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn acquire(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.call(Op::Acquire {
            keys: keys.to_vec(),
            token: token.expose().to_owned(),
            ttl_ms: ttl.as_millis(),
        })
    }

    fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.call(Op::Extend {
            keys: keys.to_vec(),
            token: token.expose().to_owned(),
            ttl_ms: ttl.as_millis(),
            recreate,
        })
    }

    fn release(
        &self,
        keys: &[String],
        token: &Token,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.call(Op::Release {
            keys: keys.to_vec(),
            token: token.expose().to_owned(),
        })
    }
}

/// The core's [`Runtime`] on virtual time: tokio's paused clock, tokio's
/// timer, and retry jitter from the seed.
pub(crate) struct SimRuntime {
    world: Arc<World>,
}

impl SimRuntime {
    pub(crate) fn new(world: Arc<World>) -> Self {
        Self { world }
    }
}

impl Runtime for SimRuntime {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random_u64(&self) -> u64 {
        lock(&self.world.jitter_rng).next_u64()
    }
}
