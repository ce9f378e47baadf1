//! A [`Master`] that applies the [`Admission`] rules in front of a raw
//! connection ([`Link`]). The production client (`redlock-tokio`'s
//! `FredLink`) and the simulation's masters are both links, so both run
//! this one gate: the simulation checks the admission code that ships.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::future::BoxFuture;

use crate::admission::{Admission, Gate, Intent, MasterFacts, Pass};
use crate::clock::{ClockSample, ClockVerdict};
use crate::config::Ttl;
use crate::fence::{Fence, FenceKeys};
use crate::inspect::KeyState;
use crate::master::{Master, ReleaseWatch};
use crate::tally::MasterFailure;
use crate::token::Token;

/// One raw connection to a master: the commands (its [`Master`] side,
/// ungated), the facts the admission rules need, and the seams a gate
/// needs to run (time, a task of its own).
///
/// Contract: as [`Master`]'s; every future resolves within the per-master
/// timeout and maps every failure to a [`MasterFailure`]; a command that
/// timed out is never re-sent.
pub trait Link: Master {
    /// The clock the admission rules are fed with (the runtime's).
    fn now(&self) -> Instant;

    /// Whether the connection was replaced since the last call (drains the
    /// client's reconnect notifications).
    fn take_reconnects(&self) -> bool;

    /// Asks the server who it is (`INFO`) and prepares it for the lock
    /// commands (loads the scripts). Returns when the answer arrived and
    /// the facts. `'static`: it runs in a task of its own.
    fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>>;

    /// Reads the server's clock (`TIME`) for the clock check; `None` on any
    /// failure. `'static`: it runs in a task of its own.
    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>>;

    /// Runs `task` in the background (a verification, a clock sample).
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// A [`Link`] behind the admission gate: the [`Master`] the algorithm
/// votes with.
pub struct Admitted<L> {
    link: Arc<L>,
    index: usize,
    admission: Arc<Mutex<Admission>>,
}

impl<L> std::fmt::Debug for Admitted<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    // Every update is a few field writes; a panic elsewhere cannot leave
    // the state torn, so poison is ignored.
    admission
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<L: Link> Admitted<L> {
    /// Master `index` of the manager whose masters share `admission`.
    pub fn new(link: L, index: usize, admission: Arc<Mutex<Admission>>) -> Self {
        Self {
            link: Arc::new(link),
            index,
            admission,
        }
    }

    /// The raw connection.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// This master's index in the manager's list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The admission state shared by the manager's masters.
    pub fn admission(&self) -> &Arc<Mutex<Admission>> {
        &self.admission
    }

    /// The clock check's current verdict on this master, or `None` when
    /// the check is off.
    pub fn clock_verdict(&self) -> Option<ClockVerdict> {
        lock(&self.admission).clock_verdict(self.index)
    }

    fn sync_reconnects(&self) {
        if self.link.take_reconnects() {
            lock(&self.admission).reconnected(self.index);
        }
    }

    /// Asks the master who it is, in a task of its own, and records the
    /// answer (unless a reconnect happened meanwhile).
    ///
    /// The task matters: this call is dropped by an early decision
    /// whenever this master is the slowest, and a verification dropped
    /// halfway would leave the master unverified, so the slowest again,
    /// for ever.
    ///
    /// # Errors
    ///
    /// The [`MasterFailure`] of the `INFO` or script load, or of the
    /// admission rules' verdict on the answer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the verification runs in a task of its own and records
    /// its answer even when this future is dropped.
    pub async fn verify(&self, generation: u64) -> Result<(), MasterFailure> {
        let (tx, rx) = futures::channel::oneshot::channel();
        let identify = self.link.identify();
        let (link, admission, index) = (
            Arc::clone(&self.link),
            Arc::clone(&self.admission),
            self.index,
        );
        self.link.spawn(Box::pin(async move {
            let result = match identify.await {
                Ok((observed_at, facts)) => {
                    // A reconnect that happened before the answer arrived
                    // is announced by now: record it first, so an answer
                    // from the previous server is seen as stale.
                    if link.take_reconnects() {
                        lock(&admission).reconnected(index);
                    }
                    lock(&admission)
                        .verified(index, generation, observed_at, &facts)
                        .map_err(|r| r.to_failure())
                }
                Err(e) => Err(e),
            };
            let _ = tx.send(result);
        }));
        rx.await.unwrap_or_else(|_| {
            Err(MasterFailure::Unreachable(
                "identity check did not complete".into(),
            ))
        })
    }

    /// The gate in front of one call.
    async fn admit(&self, intent: Intent) -> Result<Pass, MasterFailure> {
        // Twice at most: verify once, then decide on the fresh state.
        for _ in 0..2 {
            self.sync_reconnects();
            let now = self.link.now();
            let (gate, sample) = {
                let mut a = lock(&self.admission);
                let gate = a.check(self.index, now, intent);
                let sample = intent != Intent::Release && a.take_clock_sample(self.index, now);
                (gate, sample)
            };
            if sample {
                self.spawn_clock_sample();
            }
            match gate {
                Gate::Proceed(pass) => return Ok(pass),
                Gate::Refuse(failure) => return Err(failure),
                Gate::Verify(generation) => self.verify(generation).await?,
            }
        }
        Err(MasterFailure::Unreachable(
            "reconnected while its identity was checked".into(),
        ))
    }

    /// After a reply: it counts only if the connection was not replaced
    /// while the command was in flight.
    fn confirm(&self, pass: &Pass) -> Result<(), MasterFailure> {
        self.sync_reconnects();
        lock(&self.admission).confirm(self.index, pass)
    }

    /// Reads the master's clock in a task of its own: not part of the
    /// caller's future, which an early decision drops whenever this master
    /// is the slowest (exactly the master whose clock must still be read).
    fn spawn_clock_sample(&self) {
        let sample = self.link.sample_clock();
        let (admission, index) = (Arc::clone(&self.admission), self.index);
        self.link.spawn(Box::pin(async move {
            if let Some(s) = sample.await {
                lock(&admission).clock_sample(index, s);
            }
        }));
    }
}

impl<L: Link> Master for Admitted<L> {
    fn address(&self) -> &Arc<str> {
        self.link.address()
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        let pass = self.admit(Intent::Acquire { ttl }).await?;
        let reply = self.link.acquire(keys, token, ttl).await;
        // A reply over a replaced connection may come from a server the
        // guard has not seen: it does not count. Our key there (if any)
        // holds our token and is released with the rest.
        self.confirm(&pass)?;
        reply
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        let pass = self.admit(Intent::Extend { ttl, recreate }).await?;
        let reply = self.link.extend(keys, token, ttl, recreate).await;
        self.confirm(&pass)?;
        reply
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        // Deleting keys that hold our token is safe on any server: no
        // verification, no confirmation, never held back (see
        // `Admission::check`).
        self.admit(Intent::Release).await?;
        self.link.release(keys, token).await
    }

    async fn release_announced(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        self.admit(Intent::Release).await?;
        self.link.release_announced(keys, token).await
    }

    async fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        let pass = self.admit(Intent::Acquire { ttl }).await?;
        let reply = self.link.acquire_fenced(keys, fences, token, ttl).await;
        self.confirm(&pass)?;
        reply
    }

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        // Read-only: like a release, it needs no verification.
        self.admit(Intent::Release).await?;
        self.link.inspect(key, fences).await
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        self.admit(Intent::Release).await?;
        self.link.force_delete(keys).await
    }

    async fn forget_fences(&self, fences: FenceKeys<'_>) -> Result<(), MasterFailure> {
        // Like a force-delete: an operator's write that needs no vote.
        self.admit(Intent::Release).await?;
        self.link.forget_fences(fences).await
    }

    async fn close(&self) {
        self.link.close().await;
    }

    async fn watch_releases(&self, keys: &[String]) -> Option<ReleaseWatch> {
        // Not admitted: an announcement grants nothing, it only shortens
        // a waiter's sleep before an attempt that is admitted as usual.
        self.link.watch_releases(keys).await
    }

    async fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        // Writes only where our token holds the keys, like a plain extend;
        // its vote counts toward the fence's quorum, so the identity and
        // generation rules apply.
        let pass = self.admit(Intent::Fence).await?;
        let reply = self.link.set_fence(keys, fences, token, fence).await;
        self.confirm(&pass)?;
        reply
    }
}
