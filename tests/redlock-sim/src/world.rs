//! The simulated world: masters with their own clocks, one connection per
//! client and master, and the core's seams on top of them: [`SimLink`]
//! (the core's [`Link`]: a raw connection, which the core's own
//! [`Admitted`] gate wraps into a voting master) and [`SimRuntime`].
//!
//! Everything runs on one single-threaded tokio runtime with a paused
//! clock: tokio's virtual time *is* the true timeline, and the only source
//! of randomness is the seed.
//!
//! Nothing here decides whether a master may vote: the simulated master
//! answers `INFO` the way Redis does and the simulated connection reports
//! its reconnects the way fred does; the admission rules that act on those
//! facts are redlock-core's ([`redlock_core::Admission`]).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::{Rng, RngCore};
use redlock_core::testing::MemStore;
use redlock_core::{
    Admitted, ClockSample, Fence, FenceKeys, Holder, Link, Master, MasterFacts, MasterFailure,
    Runtime, Token, Ttl,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::checker::{FencedStore, History};
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
/// Wall-clock phases of the masters and set-up faults: a stream of its
/// own, so that adding them left the link latencies of every seed as
/// they were.
pub(crate) const STREAM_WALL: u64 = 5;
pub(crate) const STREAM_WORKER: u64 = 100;

const NS_PER_SEC: i128 = 1_000_000_000;

/// One command, with owned arguments (the call may outlive the caller's
/// future).
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Acquire {
        keys: Vec<String>,
        token: Token,
        ttl: Ttl,
    },
    Extend {
        keys: Vec<String>,
        token: Token,
        ttl: Ttl,
        recreate: bool,
    },
    Release {
        keys: Vec<String>,
        token: Token,
    },
    /// `INFO`: who the server is and how long it has been up.
    Info,
    /// `SCRIPT LOAD`, which `FredLink::identify` sends after `INFO`. The
    /// model always knows its scripts, so it only costs a round trip (in
    /// which the connection can break, as in production).
    ScriptLoad,
    /// `TIME`: the master's wall clock.
    Time,
    /// `ACQUIRE_FENCED`: as `Acquire`, and in the same atomic step reads
    /// the highest fence stored in hash `hash` for `fields`.
    AcquireFenced {
        keys: Vec<String>,
        hash: String,
        fields: Vec<String>,
        token: Token,
        ttl: Ttl,
    },
    /// `SET_FENCE`: only where every key holds `token`, raises each
    /// field of `hash` to `fence` (never lowers it).
    SetFence {
        keys: Vec<String>,
        hash: String,
        fields: Vec<String>,
        token: Token,
        fence: Fence,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Self::Acquire { .. } => "acquire",
            Self::Extend { .. } => "extend",
            Self::Release { .. } => "release",
            Self::Info => "INFO",
            Self::ScriptLoad => "SCRIPT LOAD",
            Self::Time => "TIME",
            Self::AcquireFenced { .. } => "fenced acquire",
            Self::SetFence { .. } => "fence write-back",
        }
    }
}

/// What a master answers.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// A script ran (or `SCRIPT LOAD` did).
    Done,
    /// `INFO`.
    Facts(MasterFacts),
    /// `TIME`, since the Unix epoch.
    Clock(Duration),
    /// `ACQUIRE_FENCED` granted: the highest fence stored (0 when none).
    Fence(u64),
}

type Reply = Result<Answer, MasterFailure>;

/// A time on one master's own clock: nanoseconds since the start of the
/// run, with the master's rate error and jumps (so possibly negative).
/// The keys' expiries in its [`MemStore`] are on this clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MasterNs(i128);

impl std::ops::Add<Duration> for MasterNs {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(self.0 + i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 2))
    }
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
    tx: oneshot::Sender<Reply>,
}

/// One simulated Redis master.
pub(crate) struct MasterState {
    index: usize,
    /// The keys and the fence hashes (`HSET prefix resource fence`), with
    /// the scripts' semantics: the core's one Rust copy of them. Fences
    /// never expire; a persisted restart keeps them and an empty restart
    /// loses them, like the keys.
    store: MemStore<MasterNs>,
    up: bool,
    /// Changes at every crash and restart: a connection reaches one
    /// incarnation, and a request that finds another one finds its
    /// connection reset.
    incarnation: u64,
    paused: bool,
    queue: VecDeque<Queued>,
    /// The clock runs at `1 + rate` times true speed...
    rate: f64,
    /// ...plus the sum of its jumps.
    jumped_ns: i128,
    /// The wall clock (ns since the Unix epoch) at true time 0, before
    /// rate and jumps. Its sub-second phase is drawn from the seed, so
    /// `INFO`'s truncation to whole seconds bites at random phases.
    wall_base_ns: i128,
    /// The wall clock when the server process started (Redis's
    /// `stat_starttime`).
    started_wall_ns: i128,
    /// When it last restarted (true time); `None` if it has been up since
    /// long before the run. Only for the statistics.
    restarted_at: Option<Instant>,
}

impl MasterState {
    /// Runs one command atomically at master time `now` (ns since the
    /// start of the run on its clock): the scripts exactly as the Lua in
    /// `redlock_core::scripts`, with the same reply mapping as `FredLink`.
    fn apply(&mut self, op: &Op, now: i128) -> Reply {
        let now = MasterNs(now);
        let fences = |hash, fields| FenceKeys { hash, fields };
        match op {
            Op::Acquire { keys, token, ttl } => {
                self.store.acquire(now, keys, token, *ttl)?;
                Ok(Answer::Done)
            }
            Op::Extend {
                keys,
                token,
                ttl,
                recreate,
            } => {
                self.store.extend(now, keys, token, *ttl, *recreate)?;
                Ok(Answer::Done)
            }
            Op::Release { keys, token } => {
                self.store.release(now, keys, token)?;
                Ok(Answer::Done)
            }
            Op::AcquireFenced {
                keys,
                hash,
                fields,
                token,
                ttl,
            } => {
                let max =
                    self.store
                        .acquire_fenced(now, keys, fences(hash, fields), token, *ttl)?;
                Ok(Answer::Fence(max))
            }
            Op::SetFence {
                keys,
                hash,
                fields,
                token,
                fence,
            } => {
                self.store
                    .set_fence(now, keys, fences(hash, fields), token, *fence)?;
                Ok(Answer::Done)
            }
            Op::Info => Ok(Answer::Facts(self.facts(now.0))),
            Op::ScriptLoad => Ok(Answer::Done),
            Op::Time => Ok(Answer::Clock(Duration::from_nanos(
                u64::try_from(self.wall_ns(now.0)).unwrap_or(0),
            ))),
        }
    }

    /// The master's wall clock at master time `now`.
    fn wall_ns(&self, now: i128) -> i128 {
        self.wall_base_ns + now
    }

    /// What `INFO` says, computed as Redis does: `uptime_in_seconds` is
    /// the difference of two wall-clock readings *each truncated to whole
    /// seconds* (`server.unixtime - server.stat_starttime`), on the
    /// master's own clock with its rate error and jumps. So it can exceed
    /// the true uptime by almost a second (start at x.99, now at x+1.01
    /// reports 1) and lag it by almost a second. `run_id` is new at every
    /// start of the process.
    fn facts(&self, now: i128) -> MasterFacts {
        let secs = |ns: i128| ns.div_euclid(NS_PER_SEC);
        let uptime = secs(self.wall_ns(now)) - secs(self.started_wall_ns);
        MasterFacts {
            run_id: format!("sim-m{}-run{}", self.index, self.incarnation),
            role: "master".to_owned(),
            // A clock stepped back past the start would print a negative
            // number; reported as 0, the value that delays votes most.
            uptime_secs: u64::try_from(uptime).unwrap_or(0),
        }
    }
}

/// How a client's first `INFO` to a master fails (a set-up fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetupFault {
    /// The request is lost: the call times out.
    Lost,
    /// The connection is refused.
    Refused,
}

/// One client's connection to one master.
struct Conn {
    base: Duration,
    cut: bool,
    /// Earliest arrival of the next request / reply: messages on a link
    /// arrive in the order they were sent, at least 1 ms apart (tokio's
    /// timer resolution; it keeps their order deterministic).
    next_request: Instant,
    next_reply: Instant,
    /// The master incarnation this connection reaches. A crash breaks it;
    /// the client connects to the new incarnation some time after the
    /// restart (as fred's reconnect loop does), and until then its
    /// requests find the connection reset.
    reaches: u64,
    /// A reconnect not yet reported through [`Link::take_reconnects`].
    /// Set in the same step as `reaches` changes, before any command can
    /// use the new connection: fred broadcasts the reconnect before it
    /// installs the new writer (`router/centralized.rs`).
    reconnected: bool,
    /// Set-up fault: how this client's first `INFO` to this master fails.
    setup_fault: Option<SetupFault>,
    /// The first `INFO` failed and this master has not voted for this
    /// client yet.
    awaiting_join: bool,
    /// Extra delay of every reply (scripted tests).
    reply_delay: Duration,
}

/// The shared state of one simulated run.
pub(crate) struct World {
    pub(crate) scenario: Scenario,
    pub(crate) masters: usize,
    pub(crate) t0: Instant,
    pub(crate) t0_std: std::time::Instant,
    nodes: Vec<Mutex<MasterState>>,
    conns: Vec<Mutex<Conn>>,
    net_rng: Mutex<SimRng>,
    jitter_rng: Mutex<SimRng>,
    next_call: Mutex<u64>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) trace: Mutex<Trace>,
    pub(crate) history: Mutex<History>,
    pub(crate) counter: Mutex<u64>,
    /// The fenced resource (fenced scenarios).
    pub(crate) fenced: Mutex<FencedStore>,
}

impl World {
    pub(crate) fn new(scenario: Scenario, seed: u64, masters: usize, trace: bool) -> Self {
        let t0 = Instant::now();
        let mut setup = SimRng::stream(seed, STREAM_SETUP);
        let mut wall = SimRng::stream(seed, STREAM_WALL);
        let rate = scenario.faults.clock_rate_error;
        let nodes = (0..masters)
            .map(|index| {
                // Around 2023 on the wall clock, at a random sub-second
                // phase; up for a day or more before the run.
                let wall_base_ns = 1_700_000_000 * NS_PER_SEC + wall.gen_range(0..NS_PER_SEC);
                let started_wall_ns =
                    wall_base_ns - 86_400 * NS_PER_SEC - wall.gen_range(0..86_400 * NS_PER_SEC);
                Mutex::new(MasterState {
                    index,
                    store: MemStore::new(),
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
                    wall_base_ns,
                    started_wall_ns,
                    restarted_at: None,
                })
            })
            .collect();
        let (lo, hi) = scenario.network.link_base_ms;
        let mut conns: Vec<Conn> = (0..scenario.clients * masters)
            .map(|_| Conn {
                base: Duration::from_millis(setup.gen_range(lo..=hi)),
                cut: false,
                next_request: t0,
                next_reply: t0,
                reaches: 0,
                reconnected: false,
                setup_fault: None,
                awaiting_join: false,
                reply_delay: Duration::ZERO,
            })
            .collect();
        // Set-up faults: a client's first INFO to one master (a minority)
        // fails; that master must join later.
        if masters >= 3 {
            for c in 0..scenario.clients {
                if wall.gen_bool(scenario.faults.setup_failure_prob) {
                    let m = wall.gen_range(0..masters);
                    let fault = if wall.gen_bool(0.5) {
                        SetupFault::Lost
                    } else {
                        SetupFault::Refused
                    };
                    conns[c * masters + m].setup_fault = Some(fault);
                }
            }
        }
        Self {
            masters,
            t0,
            t0_std: t0.into_std(),
            nodes,
            conns: conns.into_iter().map(Mutex::new).collect(),
            net_rng: Mutex::new(SimRng::stream(seed, STREAM_NET)),
            jitter_rng: Mutex::new(SimRng::stream(seed, STREAM_JITTER)),
            next_call: Mutex::new(0),
            stats: Mutex::new(Stats::default()),
            trace: Mutex::new(Trace::new(trace)),
            history: Mutex::new(History::default()),
            counter: Mutex::new(0),
            fenced: Mutex::new(FencedStore::default()),
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

    fn conn(&self, client: usize, master: usize) -> MutexGuard<'_, Conn> {
        lock(&self.conns[client * self.masters + master])
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

    /// Whether `client`'s first `INFO` to `master` failed and the master
    /// has not voted for it since; clears the mark (a late join).
    pub(crate) fn joined(&self, client: usize, master: usize) -> bool {
        std::mem::take(&mut self.conn(client, master).awaiting_join)
    }

    /// Delays every reply from `master` to `client` by `extra` more.
    pub(crate) fn delay_replies(&self, client: usize, master: usize, extra: Duration) {
        self.conn(client, master).reply_delay = extra;
    }

    // ---- faults (applied by the fault driver, or by a scripted test) ----

    /// The master process dies. Every connection to it breaks: commands
    /// queued on it (it was paused) are answered with a reset, requests
    /// still on their way find it down.
    pub(crate) fn crash(self: &Arc<Self>, master: usize, keep_data: bool) {
        let mut m = self.node(master);
        m.up = false;
        m.incarnation += 1;
        m.paused = false;
        if !keep_data {
            // An empty restart loses the fences too: they live in the
            // same dataset (hence "fences need persistence").
            m.store.clear();
        }
        let queued: Vec<Queued> = m.queue.drain(..).collect();
        drop(m);
        for q in queued {
            lock(&self.stats).refused_while_down += 1;
            let reset = Err(MasterFailure::Unreachable(
                "connection reset (master crashed)".to_owned(),
            ));
            tokio::spawn(reply(
                Arc::clone(self),
                q.client,
                master,
                q.call,
                reset,
                q.reply,
            ));
        }
    }

    /// The master process starts again (a new `run_id`, uptime from now).
    /// Client `c` reconnects `reconnect_after[c]` later (fred's reconnect
    /// loop: policy delay plus handshake), or never if the master crashed
    /// again meanwhile (the next restart brings its own reconnects).
    pub(crate) fn restart(self: &Arc<Self>, master: usize, reconnect_after: &[Duration]) {
        let incarnation = {
            let mut m = self.node(master);
            m.up = true;
            m.incarnation += 1;
            let now = self.master_now(&m);
            m.started_wall_ns = m.wall_ns(now);
            m.restarted_at = Some(Instant::now());
            m.incarnation
        };
        for c in 0..self.scenario.clients {
            let after = reconnect_after.get(c).copied().unwrap_or_default();
            tokio::spawn(reconnect(Arc::clone(self), c, master, incarnation, after));
        }
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
            let result = m.apply(&q.op, now);
            self.applied(&m, &q.op, q.client, q.call, q.sent_at, &result);
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
            self.conn(c, master).cut = true;
        }
    }

    pub(crate) fn heal(&self, master: usize) {
        for c in 0..self.scenario.clients {
            self.conn(c, master).cut = false;
        }
    }

    pub(crate) fn jump(&self, master: usize, delta_ns: i128) {
        self.node(master).jumped_ns += delta_ns;
    }

    /// Bookkeeping for an applied command.
    fn applied(
        &self,
        m: &MasterState,
        op: &Op,
        client: usize,
        call: u64,
        sent_at: Instant,
        result: &Reply,
    ) {
        let master = m.index;
        let late =
            Instant::now().saturating_duration_since(sent_at) >= self.scenario.master_timeout;
        let mut overstated = false;
        {
            let mut st = lock(&self.stats);
            if late {
                st.late_applies += 1;
            }
            if let Ok(Answer::Facts(f)) = result {
                st.infos_answered += 1;
                // The truncation at work: the reported uptime exceeds the
                // true one (only measurable since a restart in the run).
                if let Some(at) = m.restarted_at {
                    let truly = Instant::now().saturating_duration_since(at);
                    overstated = Duration::from_secs(f.uptime_secs) > truly;
                    if overstated {
                        st.uptime_overstated += 1;
                    }
                }
            }
        }
        self.event(
            "apply",
            [call, master as u64, u64::from(result.is_ok())],
            || {
                format!(
                    "m{master} applies {} #{call} from c{client}: {}{}{}",
                    op.name(),
                    match result {
                        Ok(Answer::Facts(f)) =>
                            format!("run_id {} uptime {}s", f.run_id, f.uptime_secs),
                        Ok(Answer::Fence(max)) => format!("ok, stored fence {max}"),
                        Ok(_) => "ok".to_owned(),
                        Err(e) => e.to_string(),
                    },
                    if overstated {
                        " (more than its true uptime)"
                    } else {
                        ""
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

/// Client `client` connects to incarnation `incarnation` of `master`,
/// `after` its start, if it is still the one running.
async fn reconnect(
    world: Arc<World>,
    client: usize,
    master: usize,
    incarnation: u64,
    after: Duration,
) {
    tokio::time::sleep(after).await;
    {
        let m = world.node(master);
        if !m.up || m.incarnation != incarnation {
            return;
        }
        let mut conn = world.conn(client, master);
        if conn.reaches == incarnation {
            return;
        }
        conn.reaches = incarnation;
        conn.reconnected = true;
    }
    lock(&world.stats).reconnects += 1;
    world.event(
        "reconnect",
        [client as u64, master as u64, incarnation],
        || format!("c{client} reconnects to m{master} (incarnation {incarnation})"),
    );
}

/// The request leg of one call: travel, then apply (or queue, or fail).
async fn deliver(world: Arc<World>, client: usize, master: usize, call: u64, op: Op, plan: Plan) {
    let sent_at = Instant::now();
    let arrival = {
        let mut conn = world.conn(client, master);
        if plan.request_lost || conn.cut {
            drop(conn);
            lock(&world.stats).messages_lost += 1;
            world.event("lost", [call, master as u64, 0], || {
                format!("request #{call} c{client}->m{master} lost")
            });
            return;
        }
        let at = (sent_at + plan.request_latency).max(conn.next_request);
        conn.next_request = at + Duration::from_millis(1);
        at
    };
    tokio::time::sleep_until(arrival).await;
    if world.conn(client, master).cut {
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
        if plan.refused {
            Err(MasterFailure::Unreachable(
                "connection refused (set-up fault)".to_owned(),
            ))
        } else if !m.up || m.incarnation != plan.reaches {
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
            let result = m.apply(&op, now);
            world.applied(&m, &op, client, call, sent_at, &result);
            result
        }
    };
    reply(world, client, master, call, result, leg).await;
}

/// The reply leg of one call. A reply already on its way when the client
/// reconnects still arrives: more adversarial than TCP (which delivers an
/// old connection's data before its end is noticed), so an answer from the
/// previous server can land after the reconnect that replaced it.
async fn reply(
    world: Arc<World>,
    client: usize,
    master: usize,
    call: u64,
    result: Reply,
    leg: ReplyLeg,
) {
    let arrival = {
        let mut conn = world.conn(client, master);
        if leg.lost || conn.cut {
            drop(conn);
            lock(&world.stats).messages_lost += 1;
            world.event("lost", [call, master as u64, 2], || {
                format!("reply #{call} m{master}->c{client} lost")
            });
            return;
        }
        let at = (Instant::now() + leg.latency + conn.reply_delay).max(conn.next_reply);
        conn.next_reply = at + Duration::from_millis(1);
        at
    };
    tokio::time::sleep_until(arrival).await;
    if world.conn(client, master).cut {
        lock(&world.stats).messages_lost += 1;
        world.event("lost", [call, master as u64, 3], || {
            format!("reply #{call} m{master}->c{client} lost (cut)")
        });
        return;
    }
    // The caller may have timed out and gone: then nobody listens.
    let _ = leg.tx.send(result);
}

/// Everything about one call, drawn when it is sent.
struct Plan {
    /// The incarnation the connection it goes out on reaches.
    reaches: u64,
    request_latency: Duration,
    request_lost: bool,
    /// A set-up fault refuses it.
    refused: bool,
    reply_latency: Duration,
    reply_lost: bool,
    tx: oneshot::Sender<Reply>,
}

/// One client's raw connection to one simulated master: the core's
/// [`Link`]. The core's [`Admitted`] gate turns it into a voting master
/// ([`SimMaster`]), exactly as it turns a `RedisLink` into a `RedisMaster`.
pub struct SimLink {
    world: Arc<World>,
    client: usize,
    master: usize,
    address: Arc<str>,
}

/// A simulated master as a client votes with it: the core's admission gate
/// around a [`SimLink`].
pub type SimMaster = Admitted<SimLink>;

impl std::fmt::Debug for SimLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLink")
            .field("client", &self.client)
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl SimLink {
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
    /// command still reaches the master and applies. Resolves with the
    /// answer and whether the connection was replaced while it was out.
    fn call(&self, op: Op) -> impl Future<Output = (Reply, bool)> + Send + 'static {
        let world = Arc::clone(&self.world);
        let (client, master) = (self.client, self.master);
        async move {
            let call = {
                let mut n = lock(&world.next_call);
                *n += 1;
                *n
            };
            let (tx, rx) = oneshot::channel();
            let (reaches, base, setup_fault) = {
                let mut conn = world.conn(client, master);
                let fault = match op {
                    Op::Info => conn.setup_fault.take(),
                    _ => None,
                };
                if fault.is_some() {
                    conn.awaiting_join = true;
                }
                (conn.reaches, conn.base, fault)
            };
            if setup_fault.is_some() {
                lock(&world.stats).setup_failures += 1;
            }
            let plan = {
                let mut rng = lock(&world.net_rng);
                let request_latency = world.latency(&mut rng, base);
                let request_lost = rng.gen_bool(world.scenario.network.loss);
                let reply_latency = world.latency(&mut rng, base);
                let reply_lost = rng.gen_bool(world.scenario.network.loss);
                Plan {
                    reaches,
                    request_latency,
                    request_lost: request_lost || setup_fault == Some(SetupFault::Lost),
                    refused: setup_fault == Some(SetupFault::Refused),
                    reply_latency,
                    reply_lost,
                    tx,
                }
            };
            lock(&world.stats).messages_sent += 1;
            world.event("send", [call, master as u64, client as u64], || {
                format!(
                    "c{client} sends {} #{call} to m{master} (latency {:?}/{:?}{}{}{})",
                    op.name(),
                    plan.request_latency,
                    plan.reply_latency,
                    if plan.request_lost {
                        ", request will be lost"
                    } else {
                        ""
                    },
                    if plan.refused {
                        ", set-up fault: refused"
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
            let raced = world.conn(client, master).reaches != reaches;
            match waited {
                Ok(result) => (result, raced),
                Err(_) => {
                    lock(&world.stats).timeouts += 1;
                    world.event("timeout", [call, master as u64, client as u64], || {
                        format!("c{client} call #{call} to m{master} timed out")
                    });
                    (Err(MasterFailure::TimedOut), raced)
                }
            }
        }
    }

    /// A script call: only success or the failure matters to the core.
    fn script(&self, op: Op) -> impl Future<Output = Result<(), MasterFailure>> + Send + 'static {
        let call = self.script_answer(op);
        async move { call.await.map(|_| ()) }
    }

    /// A script call whose answer matters (the fenced acquire's fence).
    fn script_answer(&self, op: Op) -> impl Future<Output = Reply> + Send + 'static {
        let vote = !matches!(op, Op::Release { .. });
        let call = self.call(op);
        let world = Arc::clone(&self.world);
        async move {
            let (reply, raced) = call.await;
            if vote && raced && reply.is_ok() {
                // Granted by a server this client has since replaced its
                // connection to: the core's `confirm` must not count it.
                lock(&world.stats).votes_raced_by_reconnect += 1;
            }
            reply
        }
    }
}

impl Link for SimLink {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    fn take_reconnects(&self) -> bool {
        std::mem::take(&mut self.world.conn(self.client, self.master).reconnected)
    }

    /// `INFO`, then `SCRIPT LOAD`, as `FredLink::identify`: the facts are
    /// the master's own answer, observed when the `INFO` reply arrived.
    fn identify(
        &self,
    ) -> BoxFuture<'static, Result<(std::time::Instant, MasterFacts), MasterFailure>> {
        let info = self.call(Op::Info);
        let load = self.call(Op::ScriptLoad);
        let world = Arc::clone(&self.world);
        let (client, master) = (self.client, self.master);
        Box::pin(async move {
            let (reply, raced) = info.await;
            let facts = match reply? {
                Answer::Facts(f) => f,
                other => return Err(MasterFailure::BadReply(format!("{other:?}"))),
            };
            let observed_at = Instant::now().into_std();
            if raced {
                // The connection was replaced while the answer was on its
                // way: the core must record it as stale.
                lock(&world.stats).verifications_raced_by_reconnect += 1;
                world.event("raced", [client as u64, master as u64, 0], || {
                    format!("c{client}: INFO answer from m{master} arrived after a reconnect")
                });
            }
            load.await.0?;
            Ok((observed_at, facts))
        })
    }

    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
        let time = self.call(Op::Time);
        Box::pin(async move {
            let sent = Instant::now().into_std();
            let (reply, _) = time.await;
            let received = Instant::now().into_std();
            match reply {
                Ok(Answer::Clock(master)) => Some(ClockSample {
                    sent,
                    received,
                    master,
                }),
                _ => None,
            }
        })
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

impl Master for SimLink {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn acquire(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.script(Op::Acquire {
            keys: keys.to_vec(),
            token: token.clone(),
            ttl,
        })
    }

    fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.script(Op::Extend {
            keys: keys.to_vec(),
            token: token.clone(),
            ttl,
            recreate,
        })
    }

    fn release(
        &self,
        keys: &[String],
        token: &Token,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.script(Op::Release {
            keys: keys.to_vec(),
            token: token.clone(),
        })
    }

    /// `ACQUIRE_FENCED` over the link, like every other command (same
    /// latency, loss, queueing on a paused master, resets).
    fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<u64, MasterFailure>> + Send {
        let call = self.script_answer(Op::AcquireFenced {
            keys: keys.to_vec(),
            hash: fences.hash.to_owned(),
            fields: fences.fields.to_vec(),
            token: token.clone(),
            ttl,
        });
        async move {
            match call.await? {
                Answer::Fence(max) => Ok(max),
                other => Err(MasterFailure::BadReply(format!("{other:?}"))),
            }
        }
    }

    /// `SET_FENCE` over the link.
    fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.script(Op::SetFence {
            keys: keys.to_vec(),
            hash: fences.hash.to_owned(),
            fields: fences.fields.to_vec(),
            token: token.clone(),
            fence,
        })
    }
}

/// The core's [`Runtime`] on virtual time: tokio's paused clock, tokio's
/// timer and spawner, and retry jitter from the seed.
pub struct SimRuntime {
    world: Arc<World>,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRuntime").finish_non_exhaustive()
    }
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

    /// From the seed, like every token of the run: a replay must see the
    /// very same values.
    fn fill_secret(&self, dest: &mut [u8]) {
        lock(&self.world.jitter_rng).fill_bytes(dest);
    }

    /// A fixed holder: the simulation's clients are tasks of one process.
    fn holder(&self, label: Option<&str>) -> Holder {
        Holder::new("sim", 1, 0, label)
    }

    /// On the run's own single-threaded runtime: background releases
    /// interleave with everything else deterministically, and die with the
    /// run.
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}
