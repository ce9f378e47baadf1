//! Scenario parameters: the network, the fault envelope and the workload,
//! with the presets the tests run.
//!
//! Every preset states on which side of the fault model it lies. The
//! negative controls differ from an in-model preset in exactly the one
//! parameter that crosses the model's boundary, so a control that is caught
//! shows the checker would see that class of violation, and its in-model
//! twin (same fault rates, same seeds) shows the algorithm survives the
//! fault just inside the boundary.

use std::time::Duration;

use redlock_core::{drift, DriftFactor, RetryPolicy, Ttl};

/// An inclusive range of whole milliseconds, `(low, high)`.
pub type Millis = (u64, u64);

/// Everything one simulated run depends on besides its seed.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name, printed in summaries and violation messages.
    pub name: &'static str,
    /// Master counts to pick from (one per seed, drawn from the seed).
    pub masters: Vec<usize>,
    /// Number of client processes, each with its own `Redlock` and its own
    /// link to every master.
    pub clients: usize,
    /// Default lock TTL (the settings' `ttl`); see [`Workload::ttl_ms`]
    /// for clients that use TTLs of their own.
    pub ttl: Duration,
    /// Drift factor given to the core.
    pub drift_factor: f64,
    /// Per-master timeout given to the core, and enforced by the simulated
    /// master calls.
    pub master_timeout: Duration,
    /// Virtual time after which clients stop starting new acquisitions.
    pub duration: Duration,
    /// Latency and loss of the links.
    pub network: Network,
    /// Master and clock faults.
    pub faults: Faults,
    /// What the clients do.
    pub workload: Workload,
    /// Negative control: the core's `__broken-for-negative-controls` knob that trusts a lock
    /// for a full TTL from the quorum decision.
    pub mutant_no_elapsed_check: bool,
    /// The restart guard (on by default in production): the core's
    /// admission rules refuse acquires from a master whose reported uptime
    /// is below the deployment's max TTL ([`Scenario::max_ttl`]) plus the
    /// uptime granularity. Off in the scenarios that test the bare
    /// algorithm (restarts there keep their data or wait out the max TTL).
    pub restart_guard: bool,
    /// Negative control: the core's `__broken-for-negative-controls` knob that takes the
    /// guard window from the longest TTL the client itself used, not the
    /// deployment's max TTL.
    pub mutant_window_from_own_ttl: bool,
    /// Negative control: the core's `__broken-for-negative-controls` knob that takes the
    /// reported uptime as exact (no whole-second granularity margin).
    pub mutant_no_uptime_margin: bool,
    /// Fencing on: every client acquires with fencing tokens, and every
    /// protected action also runs on the fenced resource
    /// ([`FencedStore`](crate::FencedStore)) with the lock's fence; the
    /// checker verifies the fences' order and that resource.
    pub fencing: bool,
    /// Negative control: the core's `__broken-for-negative-controls` knob that uses the
    /// fence `max + 1` without the conditional write-back round.
    pub mutant_no_fence_write_back: bool,
}

/// Per-link latency and loss. Every message (request or reply) takes
/// `link base + uniform(0..=jitter)` ms, plus with probability
/// `spike_prob` a spike from `spike_ms`; the link base is drawn once per
/// link from `link_base_ms`. Messages on one link keep their order (a TCP
/// connection), so a late message delays the ones behind it.
#[derive(Clone, Debug)]
pub struct Network {
    /// Range of each link's base one-way latency.
    pub link_base_ms: Millis,
    /// Uniform per-message jitter on top of the base.
    pub jitter_ms: u64,
    /// Probability that a message is delayed by a spike.
    pub spike_prob: f64,
    /// Extra delay of a spike; spikes above the master timeout make calls
    /// time out while their commands still apply later.
    pub spike_ms: Millis,
    /// Probability that a message is lost. A lost request never applies; a
    /// lost reply means the command *was* applied and the caller times out.
    pub loss: f64,
}

/// What happens when a crashed master comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Inside the model: data persisted (AOF with `fsync always`); keys keep
    /// their absolute expiry on the master's clock, which kept running.
    Persisted {
        /// How long the master stays down.
        down_ms: Millis,
    },
    /// Inside the model: comes back empty, but only after staying down for
    /// the longest TTL in use plus `extra_ms` (the operations guidance).
    EmptyAfterMaxTtl {
        /// Extra downtime beyond the longest TTL.
        extra_ms: Millis,
    },
    /// Outside the model (negative control): comes back empty at once.
    EmptyImmediately {
        /// How long the master stays down.
        down_ms: Millis,
    },
}

/// Forward and backward steps of master clocks (a wall-clock jump: NTP
/// step, operator, VM migration). A master's keys expire by its own clock.
#[derive(Clone, Debug)]
pub struct ClockJumps {
    /// Minimum virtual time between two jumps of one master. Inside the
    /// model it is more than a TTL, so one key's life sees at most one
    /// forward jump.
    pub min_spacing: Duration,
    /// Mean of the exponential extra wait after `min_spacing`.
    pub mean_extra: Duration,
    /// Range of forward steps.
    pub forward: (Duration, Duration),
    /// Probability that a jump goes backward instead (keys live longer:
    /// harmless for safety).
    pub backward_prob: f64,
    /// Largest backward step.
    pub backward_max: Duration,
}

/// The fault envelope.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Each master's clock runs at `1 + r` times true speed, `r` uniform in
    /// `[-clock_rate_error, clock_rate_error]`. Inside the model it is below
    /// the drift factor.
    pub clock_rate_error: f64,
    /// Clock jumps, if any.
    pub jumps: Option<ClockJumps>,
    /// Rate of window faults (crash, pause, partition) over the whole
    /// cluster, per second of virtual time.
    pub window_faults_per_sec: f64,
    /// Most masters under a window fault at once; `None` means a minority,
    /// `(N - 1) / 2`.
    pub max_concurrent: Option<usize>,
    /// Relative weight of crashes among window faults.
    pub crash_weight: u32,
    /// Relative weight of pauses (`SIGSTOP`: commands queue and apply on
    /// resume, in order).
    pub pause_weight: u32,
    /// Relative weight of partitions (a master cut off from some clients:
    /// messages dropped both ways).
    pub partition_weight: u32,
    /// Restart behaviours to pick from for each crash.
    pub restarts: Vec<Restart>,
    /// Length of master pauses.
    pub pause_ms: Millis,
    /// Length of partitions.
    pub partition_ms: Millis,
    /// How long after a master restarts each client reconnects to it
    /// (fred's reconnect loop), drawn per client and restart. Until then
    /// its requests find the connection reset; replies already on their
    /// way still arrive, so a reconnect can race an `INFO` in flight.
    pub reconnect_ms: Millis,
    /// Probability, per client, that its first `INFO` to one master (a
    /// minority) fails at start-up (lost or refused): that master must
    /// join later.
    pub setup_failure_prob: f64,
}

/// What each client does, in a loop until the scenario's duration:
/// think, acquire (with retries), then hold the lock for a few protected
/// actions (or until its validity runs out), maybe extending it, then
/// release.
///
/// A protected action is a read-modify-write of a shared counter with a
/// virtual-time gap between the read and the write, preceded by the check
/// the library documents: the lock must still be valid when the action
/// ends (`lock.is_valid_at(now + action)`).
#[derive(Clone, Debug)]
pub struct Workload {
    /// Idle time before each acquisition.
    pub think_ms: Millis,
    /// Duration of one read-modify-write (read, then write this much later).
    pub action_ms: u64,
    /// Idle time between two actions of one holder.
    pub gap_ms: Millis,
    /// Number of actions a holder plans before releasing.
    pub actions: (u32, u32),
    /// Probability that a holder instead keeps acting until its validity
    /// runs out (what makes a too-long validity observable).
    pub hold_to_end_prob: f64,
    /// Cap on the actions of one holder.
    pub max_actions: u32,
    /// Probability of an extend after an action.
    pub extend_prob: f64,
    /// Cap on extends per lock.
    pub max_extends: u32,
    /// TTL of extends; `None` keeps the lock's TTL.
    pub extend_ttl_ms: Option<Millis>,
    /// Probability that an acquisition covers two resources (the guarded
    /// one and another), exercising all-or-none multi-key scripts.
    pub multi_resource_prob: f64,
    /// Inside the model: probability of a client pause (GC, swap, `SIGSTOP`)
    /// before the validity check of an action.
    pub client_pause_prob: f64,
    /// Length of those pauses.
    pub client_pause_ms: Millis,
    /// Outside the model (negative control): probability of a pause
    /// *between* the validity check and the action.
    pub pause_after_check_prob: f64,
    /// Length of those pauses.
    pub pause_after_check_ms: Millis,
    /// Outside the model (fencing scenarios): probability of a pause
    /// *between the read and the write* of an action.
    pub pause_mid_action_prob: f64,
    /// Length of those pauses.
    pub pause_mid_action_ms: Millis,
    /// Retry policy of `acquire`.
    pub retry: RetryPolicy,
    /// Per-client TTLs: client `c` draws its TTL once, from `ttl_ms[c]`
    /// (the last range for the clients beyond the list), and uses it for
    /// every lock. Clients of one deployment do not know each other's
    /// TTLs; all are within the deployment's max TTL. Empty: every client
    /// uses the scenario's `ttl`.
    pub ttl_ms: Vec<Millis>,
}

impl Scenario {
    /// The fault model the library claims to survive, every fault class at
    /// once: latency with spikes past the master timeout, message loss,
    /// partitions, master pauses, crashes with persistence or with a restart
    /// delayed past the TTL, clock rate error of half the drift factor,
    /// clock jumps within the drift margin, client pauses before the
    /// validity check, extends with the lock's TTL, multi-resource locks.
    /// Window faults hit a minority at a time; 3 or 5 masters. Contenders
    /// poll every 1-8 ms, so a lock is taken soon after it is free.
    pub fn within_model() -> Self {
        let ttl = Duration::from_millis(200);
        let drift_factor = 0.01;
        let clock_rate_error = drift_factor / 2.0;
        Self {
            name: "within_model",
            masters: vec![3, 5],
            clients: 3,
            ttl,
            drift_factor,
            master_timeout: Duration::from_millis(40),
            duration: Duration::from_millis(2_500),
            // Some links LAN-fast (base 0 ms), some slower; 5 % of messages
            // spike past the master timeout.
            network: Network {
                link_base_ms: (0, 4),
                jitter_ms: 2,
                spike_prob: 0.05,
                spike_ms: (10, 70),
                loss: 0.02,
            },
            faults: Faults {
                clock_rate_error,
                jumps: Some(ClockJumps {
                    min_spacing: 2 * ttl,
                    mean_extra: Duration::from_millis(300),
                    forward: (
                        Duration::ZERO,
                        in_model_jump_max(ttl, drift_factor, clock_rate_error),
                    ),
                    backward_prob: 0.3,
                    backward_max: Duration::from_millis(50),
                }),
                window_faults_per_sec: 4.0,
                max_concurrent: None,
                crash_weight: 2,
                pause_weight: 2,
                partition_weight: 2,
                restarts: vec![
                    Restart::Persisted { down_ms: (0, 300) },
                    Restart::EmptyAfterMaxTtl { extra_ms: (0, 200) },
                ],
                pause_ms: (10, 400),
                partition_ms: (10, 400),
                // fred's first reconnect attempt: 10 ms, plus up to 100 ms
                // of jitter.
                reconnect_ms: (5, 110),
                setup_failure_prob: 0.3,
            },
            workload: Workload {
                think_ms: (0, 20),
                action_ms: 5,
                gap_ms: (0, 10),
                actions: (1, 4),
                hold_to_end_prob: 0.5,
                max_actions: 60,
                extend_prob: 0.15,
                max_extends: 2,
                extend_ttl_ms: None,
                multi_resource_prob: 0.3,
                client_pause_prob: 0.05,
                client_pause_ms: (0, 300),
                pause_after_check_prob: 0.0,
                pause_after_check_ms: (0, 0),
                pause_mid_action_prob: 0.0,
                pause_mid_action_ms: (0, 0),
                retry: RetryPolicy::new(100, Duration::from_millis(2), Duration::from_millis(8)),
                ttl_ms: Vec::new(),
            },
            mutant_no_elapsed_check: false,
            restart_guard: false,
            mutant_window_from_own_ttl: false,
            mutant_no_uptime_margin: false,
            fencing: false,
            mutant_no_fence_write_back: false,
        }
    }

    /// The sharp edge: 3 masters, LAN-like links (0-2 ms one way), clients
    /// that poll every 1-4 ms while the lock is held and mostly hold it to
    /// the end of its validity, and no fault but the base's message loss
    /// and latency spikes and its set-up faults (a master failing some
    /// clients' first `INFO`, which only delays its first vote). Network
    /// latency adds hidden slack to the drift margin (a contender hears of
    /// its win one reply later than the key expired); fast links remove
    /// most of it, so a few milliseconds of lost margin become an overlap.
    /// The twins below each add one fault class to it.
    fn edge(name: &'static str) -> Self {
        let mut s = Self::within_model();
        s.name = name;
        s.masters = vec![3];
        s.network.link_base_ms = (0, 1);
        s.network.jitter_ms = 1;
        s.faults.jumps = None;
        s.faults.window_faults_per_sec = 0.0;
        s.workload.think_ms = (0, 2);
        s.workload.hold_to_end_prob = 0.8;
        s.workload.retry =
            RetryPolicy::new(200, Duration::from_millis(2), Duration::from_millis(4));
        s
    }

    /// The edge with frequent crashes (12 per second, one master at a
    /// time, short downtimes); `restart` decides the side of the model.
    fn crashes(name: &'static str, restart: Restart) -> Self {
        let mut s = Self::edge(name);
        s.faults.window_faults_per_sec = 12.0;
        s.faults.crash_weight = 1;
        s.faults.pause_weight = 0;
        s.faults.partition_weight = 0;
        s.faults.restarts = vec![restart];
        s
    }

    /// In the model: frequent crashes of a master that restarts at once
    /// *with* its data. Twin of [`Scenario::immediate_restart_without_persistence`].
    pub fn restart_with_persistence() -> Self {
        Self::crashes(
            "restart_with_persistence",
            Restart::Persisted { down_ms: (0, 5) },
        )
    }

    /// In the model: frequent crashes, restart empty after the longest TTL.
    pub fn restart_delayed_past_ttl() -> Self {
        Self::crashes(
            "restart_delayed_past_ttl",
            Restart::EmptyAfterMaxTtl { extra_ms: (0, 5) },
        )
    }

    /// Outside the model: frequent crashes of a master that restarts at
    /// once, empty.
    pub fn immediate_restart_without_persistence() -> Self {
        Self::crashes(
            "immediate_restart_without_persistence",
            Restart::EmptyImmediately { down_ms: (0, 5) },
        )
    }

    /// The same immediate empty restarts, with the restart guard on: the
    /// guard must close the hole the negative control above falls into.
    pub fn immediate_restart_with_restart_guard() -> Self {
        let mut s = Self::crashes(
            "immediate_restart_with_restart_guard",
            Restart::EmptyImmediately { down_ms: (0, 5) },
        );
        s.restart_guard = true;
        s
    }

    /// In the model, with what production feeds the admission gate, on
    /// top of every fault class of [`Scenario::within_model`]: the restart
    /// guard on (its window the deployment's max TTL, 300 ms), clients
    /// with TTLs of their own (each draws one from 100-300 ms), masters
    /// that also restart empty *at once* (which only the guard covers),
    /// uptime in whole seconds at random phases, reconnects 0-20 ms after
    /// a restart racing verifications in flight, and a minority master
    /// failing some clients' set-up.
    pub fn within_model_guarded_mixed_ttl() -> Self {
        let mut s = Self::within_model().with_client_ttls(vec![(100, 300)]);
        s.name = "within_model_guarded_mixed_ttl";
        s.restart_guard = true;
        s.faults
            .restarts
            .push(Restart::EmptyImmediately { down_ms: (0, 50) });
        s
    }

    /// The restart guard's edge: one master, so that a single empty
    /// restart decides (the guard is a per-master rule; the quorum only
    /// dilutes how often one restart matters), empty restarts at once at
    /// random times (so at random sub-second phases of the master's wall
    /// clock), clients that reconnect 5-1100 ms after a restart (fred's
    /// reconnect policy: 10 ms doubling up to 1 s, plus up to 100 ms of
    /// jitter) and then verify the master at once, and holders that keep
    /// the lock to the end of its validity. The holes are hundreds of
    /// milliseconds wide, so contenders poll every 10-20 ms, which keeps
    /// these long runs cheap.
    fn guard_edge(name: &'static str, restarts_per_sec: f64) -> Self {
        let mut s = Self::edge(name);
        s.masters = vec![1];
        s.restart_guard = true;
        s.faults.window_faults_per_sec = restarts_per_sec;
        s.faults.max_concurrent = Some(1);
        s.faults.crash_weight = 1;
        s.faults.pause_weight = 0;
        s.faults.partition_weight = 0;
        s.faults.restarts = vec![Restart::EmptyImmediately { down_ms: (0, 5) }];
        s.faults.reconnect_ms = (5, 1_100);
        s.workload.max_actions = 1_000;
        s.workload.retry =
            RetryPolicy::new(100, Duration::from_millis(10), Duration::from_millis(20));
        s
    }

    /// The guard's edge with clients of different TTLs on one resource:
    /// two lock for 3 s, two for 100-200 ms. The deployment's max TTL
    /// (the guard window) is 3 s; 12 s runs, about one empty restart every
    /// 2.5 s. `mutant` takes each client's window from its own TTL.
    fn long_and_short_ttls(name: &'static str, mutant: bool) -> Self {
        let mut s = Self::guard_edge(name, 0.4).with_client_ttls(vec![
            (3_000, 3_000),
            (3_000, 3_000),
            (100, 200),
        ]);
        s.clients = 4;
        s.duration = Duration::from_secs(12);
        s.mutant_window_from_own_ttl = mutant;
        s
    }

    /// In the model: long-TTL holders, a master restarted empty,
    /// short-TTL clients; the guard's window is the deployment's max TTL.
    pub fn mixed_ttl_empty_restart_guarded() -> Self {
        Self::long_and_short_ttls("mixed_ttl_empty_restart_guarded", false)
    }

    /// Outside the model (negative control): the same, with the core's
    /// mutant that takes the guard window from the client's own TTL (the
    /// old rule): a short-TTL client trusts the restarted master about
    /// 1.2 s after the restart, while a 3 s holder still counts on the key
    /// it lost.
    pub fn mutant_guard_window_from_own_ttl() -> Self {
        Self::long_and_short_ttls("mutant_guard_window_from_own_ttl", true)
    }

    /// The guard's edge with five clients locking for 1 s, the max TTL
    /// (the guard window): sharp enough that the guard's one second of
    /// uptime granularity matters. A master that started at wall-clock
    /// x.9 s reports 1 s of uptime 0.1 s later; without the margin a
    /// client that verifies it then trusts it 0.9 s early. 8 s runs, about
    /// one empty restart every 1.7 s. `mutant` drops the margin.
    fn whole_second_uptime(name: &'static str, mutant: bool) -> Self {
        let mut s = Self::guard_edge(name, 0.6).with_client_ttls(vec![(1_000, 1_000)]);
        s.clients = 5;
        s.duration = Duration::from_secs(8);
        // Five contenders polling every 25-45 ms: each verifies a
        // restarted master at its own reconnect time, which is what the
        // truncation depends on.
        s.workload.retry =
            RetryPolicy::new(50, Duration::from_millis(25), Duration::from_millis(45));
        s.mutant_no_uptime_margin = mutant;
        s
    }

    /// In the model: the guard reads uptime in whole seconds and adds the
    /// granularity.
    pub fn whole_second_uptime_guarded() -> Self {
        Self::whole_second_uptime("whole_second_uptime_guarded", false)
    }

    /// Outside the model (negative control): the same, with the core's
    /// mutant that takes the reported uptime as exact.
    pub fn mutant_no_uptime_margin() -> Self {
        Self::whole_second_uptime("mutant_no_uptime_margin", true)
    }

    /// For scripted tests ([`Cluster`](crate::Cluster)): 3 masters, 2
    /// clients, every message exactly 1 ms on its way, no loss, no fault,
    /// no clock error, master timeout 40 ms, TTL 200 ms. The test makes
    /// everything that happens happen.
    pub fn scripted() -> Self {
        let mut s = Self::within_model();
        s.name = "scripted";
        s.masters = vec![3];
        s.clients = 2;
        s.network = Network {
            link_base_ms: (1, 1),
            jitter_ms: 0,
            spike_prob: 0.0,
            spike_ms: (0, 0),
            loss: 0.0,
        };
        s.faults.clock_rate_error = 0.0;
        s.faults.jumps = None;
        s.faults.window_faults_per_sec = 0.0;
        s.faults.setup_failure_prob = 0.0;
        s
    }

    /// The edge with forward clock jumps, each master about every 500 ms.
    fn jumps(name: &'static str, forward: (Duration, Duration)) -> Self {
        let mut s = Self::edge(name);
        s.faults.jumps = Some(ClockJumps {
            min_spacing: 2 * s.ttl,
            mean_extra: Duration::from_millis(100),
            forward,
            backward_prob: 0.0,
            backward_max: Duration::ZERO,
        });
        s
    }

    /// In the model: forward jumps between half and all of what the drift
    /// margin leaves after the rate error ([`in_model_jump_max`]).
    pub fn clock_jump_within_margin() -> Self {
        let s = Self::within_model();
        let max = in_model_jump_max(s.ttl, s.drift_factor, s.faults.clock_rate_error);
        Self::jumps("clock_jump_within_margin", (max / 2, max))
    }

    /// Outside the model: the same jumps, 5 to 25 times the drift margin
    /// (4 ms for a 200 ms TTL).
    pub fn clock_jump_beyond_drift() -> Self {
        Self::jumps(
            "clock_jump_beyond_drift",
            (Duration::from_millis(20), Duration::from_millis(100)),
        )
    }

    /// In the model: long client pauses *before* the validity check.
    /// Twin of [`Scenario::pause_after_validity_check`].
    pub fn pause_before_validity_check() -> Self {
        let mut s = Self::edge("pause_before_validity_check");
        s.workload.client_pause_prob = 0.2;
        s.workload.client_pause_ms = (100, 400);
        s
    }

    /// Outside the model: the same pauses, *between* the validity check and
    /// the protected action.
    pub fn pause_after_validity_check() -> Self {
        let mut s = Self::pause_before_validity_check();
        s.name = "pause_after_validity_check";
        s.workload.client_pause_prob = 0.0;
        s.workload.pause_after_check_prob = 0.2;
        s.workload.pause_after_check_ms = (100, 400);
        s
    }

    /// The edge with slow, uneven acquires: a third of the messages are
    /// delayed by 5-35 ms, so the time an acquire takes matters; no extends
    /// (an extend would correct the mutant's validity); 4 s runs.
    fn slow_acquires(name: &'static str, mutant: bool) -> Self {
        let mut s = Self::edge(name);
        s.network.spike_prob = 0.3;
        s.network.spike_ms = (5, 35);
        s.network.loss = 0.0;
        s.workload.extend_prob = 0.0;
        s.duration = Duration::from_secs(4);
        s.mutant_no_elapsed_check = mutant;
        s
    }

    /// In the model: the real algorithm under slow, uneven acquires.
    pub fn slow_acquires_real_algorithm() -> Self {
        Self::slow_acquires("slow_acquires_real_algorithm", false)
    }

    /// Outside the model: the same, with the core's mutant that ignores the
    /// time the acquire took and the drift margin.
    pub fn mutant_no_elapsed_check() -> Self {
        Self::slow_acquires("mutant_no_elapsed_check", true)
    }

    /// Extends with a TTL *shorter* than the validity the lock still has,
    /// under reply loss. Not a fault outside the model: a legal call of
    /// `Redlock::extend`. See the crate docs ("Known core findings").
    pub fn extend_with_shorter_ttl() -> Self {
        let mut s = Self::edge("extend_with_shorter_ttl");
        s.network.loss = 0.15;
        s.workload.extend_prob = 0.5;
        s.workload.hold_to_end_prob = 0.9;
        s.workload.extend_ttl_ms = Some((60, 80));
        s
    }

    /// Fencing inside its envelope, on top of every fault class of
    /// [`Scenario::within_model_guarded_mixed_ttl`] but one: crashes
    /// restart **with their data** only (the fence counters need
    /// persistence; an empty restart, even one the restart guard makes
    /// safe for mutual exclusion, forgets them). The restart guard on,
    /// clients with TTLs of their own (100-300 ms), loss, latency spikes,
    /// partitions, master pauses, clock rate error and jumps, client
    /// pauses before the check, extends, two-resource locks; 3 or 5
    /// masters. Every lock is fenced.
    pub fn fenced_within_model() -> Self {
        let mut s = Self::within_model_guarded_mixed_ttl();
        s.name = "fenced_within_model";
        s.faults.restarts = vec![Restart::Persisted { down_ms: (0, 300) }];
        s.fencing = true;
        s
    }

    /// Negative control of fencing: [`Scenario::fenced_within_model`]
    /// with the core's mutant that hands out `max + 1` without the
    /// conditional write-back: no master ever stores a fence, so fences
    /// repeat from the second holder on. Runs of 0.6 s instead of 2.5 s
    /// (the first handoffs decide; this keeps the control cheap in CI).
    pub fn mutant_no_fence_write_back() -> Self {
        let mut s = Self::fenced_within_model();
        s.name = "mutant_no_fence_write_back";
        s.duration = Duration::from_millis(600);
        s.mutant_no_fence_write_back = true;
        s
    }

    /// Fencing on the crash-heavy edge: 8 crashes a second for 1 s,
    /// restarts at once with the data, the restart guard on (it refuses
    /// a restarted master's acquires for the max TTL plus the uptime
    /// granularity; the fences survive the restart).
    pub fn fenced_restart_with_persistence() -> Self {
        let mut s = Self::crashes(
            "fenced_restart_with_persistence",
            Restart::Persisted { down_ms: (0, 5) },
        );
        s.faults.window_faults_per_sec = 8.0;
        s.duration = Duration::from_secs(1);
        s.restart_guard = true;
        s.fencing = true;
        s.workload.retry = fence_polling();
        s
    }

    /// Outside the *lock's* envelope, inside the fence's: the pauses of
    /// [`Scenario::pause_after_validity_check`] (100-400 ms between the
    /// check and the action, against a 196 ms validity), fenced. The
    /// unfenced counter loses updates; the fenced resource must not.
    pub fn fenced_pause_after_validity_check() -> Self {
        let mut s = Self::pause_after_validity_check();
        s.name = "fenced_pause_after_validity_check";
        s.fencing = true;
        s.workload.retry = fence_polling();
        s
    }

    /// Outside the lock's envelope, inside the fence's: a holder pauses
    /// *between the read and the write* of an action for 200-600 ms,
    /// longer than the whole validity (196 ms): its successor reads and
    /// writes meanwhile. The read's fence is what refuses the stale write.
    /// 1.5 s runs.
    pub fn fenced_pause_mid_action() -> Self {
        let mut s = Self::edge("fenced_pause_mid_action");
        s.workload.pause_mid_action_prob = 0.2;
        s.workload.pause_mid_action_ms = (200, 600);
        s.duration = Duration::from_millis(1_500);
        s.fencing = true;
        s.workload.retry = fence_polling();
        s
    }

    /// Outside the fence's envelope (inside the lock's): frequent crashes
    /// whose master restarts empty after the max TTL. Mutual exclusion
    /// holds, but the restarted master forgot its fence counters; when it
    /// is the only master the previous write-back quorum and the next
    /// acquire quorum share, the next fence can repeat or fall below the
    /// previous one. Documents why fences need persistence. 1 s runs.
    pub fn fenced_empty_restart() -> Self {
        let mut s = Self::crashes(
            "fenced_empty_restart",
            Restart::EmptyAfterMaxTtl { extra_ms: (0, 5) },
        );
        s.duration = Duration::from_secs(1);
        s.fencing = true;
        s.workload.retry = fence_polling();
        s
    }

    /// The longest TTL a lock of this scenario can be given (acquire or
    /// extend, by any client): the deployment's `max_ttl`, which is the
    /// restart guard's window, and what "restart delayed past the max TTL"
    /// waits for.
    pub fn max_ttl(&self) -> Duration {
        let w = &self.workload;
        w.ttl_ms
            .iter()
            .chain(&w.extend_ttl_ms)
            .map(|&(_, hi)| Duration::from_millis(hi))
            .fold(self.ttl, Duration::max)
    }

    /// The shortest TTL a lock of this scenario can be given: its drift
    /// margin is the smallest, so it bounds the clock jumps of the model.
    pub fn min_ttl(&self) -> Duration {
        let w = &self.workload;
        let lows = w
            .ttl_ms
            .iter()
            .chain(&w.extend_ttl_ms)
            .map(|&(lo, _)| Duration::from_millis(lo));
        if w.ttl_ms.is_empty() {
            lows.fold(self.ttl, Duration::min)
        } else {
            // The default TTL is never used when every client has its own.
            lows.min().unwrap_or(self.ttl)
        }
    }

    /// Sets per-client TTLs, keeping in-model clock jumps within the
    /// margin of the shortest one.
    fn with_client_ttls(mut self, ttl_ms: Vec<Millis>) -> Self {
        self.workload.ttl_ms = ttl_ms;
        let min = self.min_ttl();
        if let Some(j) = &mut self.faults.jumps {
            let max = in_model_jump_max(min, self.drift_factor, self.faults.clock_rate_error);
            j.forward.1 = j.forward.1.min(max);
            j.forward.0 = j.forward.0.min(j.forward.1);
        }
        self
    }
}

/// Contenders of the edge-based fenced scenarios poll every 5-10 ms, not
/// 2-4 ms: a fence is decided by which masters two quorums share, not by
/// how close handoffs come to an overlap, and slower polling halves the
/// cost of a seed.
fn fence_polling() -> RetryPolicy {
    RetryPolicy::new(100, Duration::from_millis(5), Duration::from_millis(10))
}

/// The largest forward clock jump the model admits: what the drift margin
/// leaves after the worst rate error over one TTL, with a 40 % safety
/// factor. A key set at true time `s` expires when its master's clock has
/// advanced by `ttl`; the holder trusts the lock until at most
/// `s + ttl - drift`. Over that span the master's clock advances by
/// `(ttl - drift) * (1 + r) + jump`, which stays below `ttl` as long as
/// `jump < drift - r * (ttl - drift)`.
pub fn in_model_jump_max(ttl: Duration, drift_factor: f64, rate_error: f64) -> Duration {
    let margin = match (Ttl::try_from(ttl), DriftFactor::new(drift_factor)) {
        (Ok(t), Ok(f)) => drift(t, f),
        _ => Duration::ZERO,
    };
    margin.saturating_sub(ttl.mul_f64(rate_error)).mul_f64(0.6)
}
