//! A simulated deployment: the world (masters, connections) and one
//! `Redlock` per client, whose masters are the core's own admission gate
//! ([`Admitted`](redlock_core::Admitted)) around a [`SimLink`]. Every seed
//! of every scenario is built here; scripted tests drive one step by step.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock_core::{Admission, ConfigError, Redlock, Settings};

use crate::report::Stats;
use crate::scenario::Scenario;
use crate::world::{lock, SimLink, SimMaster, SimRuntime, World};

/// One simulated client's lock manager: redlock-core's `Redlock` over the
/// core's admission gate around simulated connections.
pub type SimRedlock = Redlock<SimMaster, SimRuntime>;

/// A simulated deployment of `masters` masters and the scenario's clients.
pub struct Cluster {
    world: Arc<World>,
    clients: Vec<Arc<SimRedlock>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("scenario", &self.world.scenario.name)
            .field("masters", &self.world.masters)
            .field("clients", &self.clients.len())
            .finish()
    }
}

/// The settings every client of `scenario` is built with, as a user would
/// build them: the scenario's TTL, drift, timeout and retries, its longest
/// TTL as the deployment's `max_ttl`, the restart guard on or off, and
/// fencing on or off.
///
/// # Errors
///
/// When the core rejects them.
pub fn settings(scenario: &Scenario, masters: usize) -> Result<Settings, ConfigError> {
    let mut builder = Settings::builder()
        .ttl(scenario.ttl)
        .drift_factor(scenario.drift_factor)
        .master_timeout(scenario.master_timeout)
        .retry(scenario.workload.retry.clone())
        .key_prefix("sim:")
        .max_ttl(scenario.max_ttl())
        .danger_disable_restart_guard(!scenario.restart_guard);
    if scenario.mutant_no_elapsed_check {
        builder = builder.mutant_no_elapsed_check(true);
    }
    if scenario.fencing {
        builder = builder.fencing(true);
    }
    if scenario.mutant_no_fence_write_back {
        builder = builder.mutant_no_fence_write_back(true);
    }
    builder.build(masters)
}

/// The admission rules of one client, wired from its settings the way
/// `LockManagerBuilder::connect_core` wires them (guard window = `max_ttl` when the
/// guard is on; clock budget = the drift factor when the clock check is
/// on), plus the scenario's mutant knobs, if any.
pub fn admission(scenario: &Scenario, settings: &Settings) -> Admission {
    // The same rules the production builder derives from its settings.
    let mut admission = Admission::for_settings(settings);
    if scenario.mutant_window_from_own_ttl {
        admission.mutant_window_from_own_ttl();
    }
    if scenario.mutant_no_uptime_margin {
        admission.mutant_no_uptime_margin();
    }
    admission
}

/// A single-threaded tokio runtime with a paused clock: virtual time that
/// jumps to the next timer whenever every task waits. Every simulated run
/// needs one (a [`Cluster`] spawns tasks and reads the clock).
///
/// # Panics
///
/// Never in practice: a current-thread runtime needs no OS resources that
/// can fail.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime with a paused clock needs no OS resources that can fail")
}

impl Cluster {
    /// Builds the deployment for `seed`: the masters, every client's
    /// connections, and every client's `Redlock` with admission rules of
    /// its own. No fault is scheduled and no client runs: the seed runner
    /// adds both, a scripted test drives them itself.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when the core rejects the scenario's
    /// settings (a broken preset).
    pub fn new(scenario: &Scenario, seed: u64, masters: usize, trace: bool) -> Self {
        let settings = match settings(scenario, masters) {
            Ok(s) => s,
            Err(e) => panic!(
                "scenario {} has settings the core rejects: {e}",
                scenario.name
            ),
        };
        let world = Arc::new(World::new(scenario.clone(), seed, masters, trace));
        let clients = (0..scenario.clients)
            .map(|c| {
                let admission = Arc::new(Mutex::new(admission(scenario, &settings)));
                let links: Vec<SimMaster> = (0..masters)
                    .map(|m| {
                        SimMaster::new(
                            SimLink::new(Arc::clone(&world), c, m),
                            m,
                            Arc::clone(&admission),
                        )
                    })
                    .collect();
                match Redlock::with_masters(
                    links,
                    settings.clone(),
                    SimRuntime::new(Arc::clone(&world)),
                ) {
                    Ok(r) => Arc::new(r),
                    Err(e) => panic!("settings were built for {masters} masters: {e}"),
                }
            })
            .collect();
        Self { world, clients }
    }

    pub(crate) fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// Number of masters.
    pub fn masters(&self) -> usize {
        self.world.masters
    }

    /// Client `c`'s lock manager.
    ///
    /// # Panics
    ///
    /// If there is no client `c`.
    pub fn client(&self, c: usize) -> &Arc<SimRedlock> {
        &self.clients[c]
    }

    /// Virtual time since the cluster was built.
    pub fn elapsed(&self) -> Duration {
        self.world.elapsed()
    }

    /// Client `c`'s start-up: asks every master who it is, in parallel,
    /// through the core's own verification
    /// ([`Admitted::verify`](redlock_core::Admitted::verify)), as
    /// `LockManagerBuilder::connect_core` does. A master that fails here is "not
    /// yet usable" and joins at a later call. Returns how many masters
    /// were verified.
    pub async fn setup(&self, c: usize) -> usize {
        setup(&self.world, c, &self.clients[c]).await
    }

    /// Every later reply from master `m` to client `c` takes `extra` more
    /// (a slow path; replies keep their order).
    pub fn delay_replies(&self, c: usize, m: usize, extra: Duration) {
        self.world.delay_replies(c, m, extra);
    }

    /// Cuts master `m` off from the given clients (messages dropped both
    /// ways) until [`heal`](Self::heal).
    pub fn cut(&self, m: usize, clients: &[usize]) {
        self.world.cut(m, clients);
    }

    /// Ends every cut of master `m`.
    pub fn heal(&self, m: usize) {
        self.world.heal(m);
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        lock(&self.world.stats).clone()
    }

    /// The trace so far (empty unless built with `trace`).
    pub fn trace(&self) -> Vec<String> {
        lock(&self.world.trace).take_lines()
    }

    /// `SIGSTOP` of master `m`: commands queue until [`resume`](Self::resume).
    pub fn pause(&self, m: usize) {
        self.world.pause(m);
    }

    /// `SIGCONT` of master `m`: the queued commands run, in order.
    pub fn resume(&self, m: usize) {
        self.world.resume(m);
    }

    /// Master `m` dies, losing its keys unless `keep_data`.
    pub fn crash(&self, m: usize, keep_data: bool) {
        self.world.crash(m, keep_data);
    }

    /// Master `m` starts again; every client reconnects after `reconnect`.
    pub fn restart(&self, m: usize, reconnect: Duration) {
        let after = vec![reconnect; self.world.scenario.clients];
        self.world.restart(m, &after);
    }
}

/// Client `client`'s start-up: every master is asked who it is, in
/// parallel, through the core's own verification
/// ([`Admitted::verify`](redlock_core::Admitted::verify)), as the
/// production builder does when it connects. A master that fails here
/// (timeout, refused) is "not yet usable" and joins at a later call.
/// Returns how many masters were verified.
pub(crate) async fn setup(world: &World, client: usize, redlock: &SimRedlock) -> usize {
    let checks = redlock.masters().iter().map(|m| {
        let generation = lock(m.admission()).generation(m.index());
        m.verify(generation)
    });
    let results = futures::future::join_all(checks).await;
    let verified = results.iter().filter(|r| r.is_ok()).count();
    world.event("setup", [client as u64, verified as u64, 0], || {
        let failed: Vec<String> = results
            .iter()
            .enumerate()
            .filter_map(|(m, r)| r.as_ref().err().map(|e| format!("m{m}: {e}")))
            .collect();
        format!(
            "c{client} set up: {verified} of {} masters verified{}",
            results.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" (not yet usable: {})", failed.join(", "))
            }
        )
    });
    verified
}
