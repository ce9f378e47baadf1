//! The shared lock manager handle: acquisition (cancellation safe), the
//! scoped helper, the registry of held locks, and shutdown.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redlock_core::{ConfigError, Master, Redlock, ResourceSet, Runtime, Token};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{AcquireError, WithLockError};
use crate::guard::{LockGuard, LockStatus, Shared};
use crate::link::RedisMaster;
use crate::policy::{self, ExtendPolicy, LockOptions};
use crate::runtime::TokioRuntime;
use crate::watchdog;

/// A cheaply cloneable handle to a Redlock manager, shared by every task of
/// a service.
///
/// Clones share one set of master connections, one registry of held locks
/// and one set of background tasks. `M` and `R` default to the production
/// master client and runtime; tests can plug in others through
/// [`LockManager::new`].
///
/// Every lock it hands out is a [`LockGuard`] with its own watchdog task;
/// see the crate docs for the whole tour.
pub struct LockManager<M: Master = RedisMaster, R: Runtime = TokioRuntime> {
    inner: Arc<Inner<M, R>>,
}

impl<M: Master, R: Runtime> Clone for LockManager<M, R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Master, R: Runtime> fmt::Debug for LockManager<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManager")
            .field("core", &self.inner.redlock)
            .field("extend", &self.inner.policy)
            .field("held", &self.held_count())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// What the manager handle, the guards and the watchdogs share.
pub(crate) struct Inner<M: Master, R: Runtime> {
    pub(crate) redlock: Redlock<M, R>,
    policy: ExtendPolicy,
    /// Captured at creation: background work is spawned here even from a
    /// `Drop` running on a thread with no current runtime.
    handle: Handle,
    /// Every watchdog and background release, so shutdown can wait for
    /// them with a bound.
    tracker: TaskTracker,
    /// Cancelled by shutdown; every watchdog listens to it.
    pub(crate) shutdown: CancellationToken,
    registry: Mutex<Registry>,
    pub(crate) stats: ShutdownStats,
    queues: Queues,
}

/// One FIFO queue per resource set, shared by the tasks of this process:
/// only the head of a queue asks the masters, the others wait their turn
/// here instead of hammering the masters with retries, and a task that
/// just released cannot jump ahead of those already waiting (tokio's mutex
/// is fair).
#[derive(Default)]
struct Queues {
    map: Mutex<HashMap<ResourceSet, Weak<tokio::sync::Mutex<()>>>>,
}

impl Queues {
    fn queue(&self, resources: &ResourceSet) -> Arc<tokio::sync::Mutex<()>> {
        // Plain map updates: a panic elsewhere cannot tear it.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(q) = map.get(resources).and_then(Weak::upgrade) {
            return q;
        }
        // Forget queues nobody waits in any more, now and then, so the map
        // stays as small as the set of resources in use.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, q| q.strong_count() > 0);
        }
        let q = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(resources.clone(), Arc::downgrade(&q));
        q
    }
}

/// Held locks by id. `closed` lives under the same mutex as the map so an
/// acquisition racing a shutdown either registers before it (and is
/// released by it) or sees it (and releases itself).
#[derive(Default)]
struct Registry {
    closed: bool,
    next_id: u64,
    held: HashMap<u64, Arc<Shared>>,
}

/// Releases done because of a shutdown, counted by the watchdogs.
#[derive(Default)]
pub(crate) struct ShutdownStats {
    pub(crate) released: AtomicUsize,
    pub(crate) incomplete: AtomicUsize,
    /// Background releases nobody awaited (dropped guards, cancelled
    /// acquisitions) that a quorum could not confirm, over the manager's
    /// life.
    pub(crate) background_incomplete: AtomicUsize,
}

impl<M: Master, R: Runtime> Inner<M, R> {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Registry updates are single inserts/removes; a panic elsewhere
        // cannot leave the map half-updated, so poison is ignored.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn deregister(&self, id: u64) {
        self.registry().held.remove(&id);
    }

    /// Releases `resources` held by `token` in a background task. Used for
    /// cancelled acquisitions; never blocks and never needs a current
    /// runtime.
    fn spawn_release(self: &Arc<Self>, resources: ResourceSet, token: Token) {
        let inner = Arc::clone(self);
        self.tracker.spawn_on(
            async move {
                match inner.redlock.release_token(&resources, &token).await {
                    Ok(report) => tracing::debug!(%resources, %report, "released keys of a cancelled acquisition"),
                    Err(e) => {
                        inner.stats.background_incomplete.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!(%resources, error = %e, "cleanup of a cancelled acquisition incomplete; keys expire with their TTL")
                    }
                }
            },
            &self.handle,
        );
    }
}

/// Releases the keys of an acquisition whose future is dropped midway
/// (timeout, `select!`): some masters may already hold our token. Armed
/// before the first command is sent, disarmed once the core has returned
/// (it releases every failed attempt itself).
struct CancelCleanup<M: Master, R: Runtime> {
    inner: Arc<Inner<M, R>>,
    resources: ResourceSet,
    token: Option<Token>,
}

impl<M: Master, R: Runtime> CancelCleanup<M, R> {
    fn disarm(&mut self) {
        self.token = None;
    }
}

impl<M: Master, R: Runtime> Drop for CancelCleanup<M, R> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            // The dropped future's commands that fred had already queued are
            // written before this release on each master's connection, so
            // the release lands after them; commands never queued are never
            // sent.
            self.inner.spawn_release(self.resources.clone(), token);
        }
    }
}

/// What [`LockManager::shutdown`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    held: usize,
    released: usize,
    incomplete: usize,
    still_held: usize,
    unfinished_tasks: usize,
    background_incomplete: usize,
}

impl ShutdownReport {
    /// Locks held when the shutdown started.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Locks the shutdown released, confirmed by a quorum of masters (or
    /// already gone there).
    pub fn released(&self) -> usize {
        self.released
    }

    /// Locks whose release a quorum could not confirm; their keys there
    /// expire with the TTL.
    pub fn incomplete(&self) -> usize {
        self.incomplete
    }

    /// Locks still registered when the wait bound passed (their release was
    /// still running).
    pub fn still_held(&self) -> usize {
        self.still_held
    }

    /// Background tasks (watchdogs, releases of dropped guards and cancelled
    /// acquisitions) still running when the wait bound passed.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished_tasks
    }

    /// Releases that ran in the background with nobody awaiting them
    /// (dropped guards, cancelled acquisitions), over the manager's whole
    /// life, that a quorum could not confirm: their keys stay until the TTL.
    pub fn background_incomplete(&self) -> usize {
        self.background_incomplete
    }

    /// Whether everything finished within the bound and every release was
    /// confirmed, including the background ones.
    pub fn is_clean(&self) -> bool {
        self.incomplete == 0
            && self.still_held == 0
            && self.unfinished_tasks == 0
            && self.background_incomplete == 0
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lock(s) held at shutdown: {} released, {} incomplete, {} still releasing; {} background task(s) unfinished; {} background release(s) unconfirmed",
            self.held,
            self.released,
            self.incomplete,
            self.still_held,
            self.unfinished_tasks,
            self.background_incomplete
        )
    }
}

impl<M: Master, R: Runtime> LockManager<M, R> {
    /// A manager over an already-built core manager (for instance one over
    /// custom masters), with the default [`ExtendPolicy`], spawning on the
    /// current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime, like `tokio::spawn`. Use
    /// [`with_handle`](Self::with_handle) to pass a runtime explicitly.
    pub fn new(redlock: Redlock<M, R>) -> Self {
        Self::with_handle(redlock, ExtendPolicy::default(), Handle::current())
    }

    /// A manager over `redlock` whose watchdogs follow `policy` and whose
    /// background tasks run on `handle`.
    ///
    /// The adapter's timers are tokio's, so `R` must read the same clock as
    /// tokio ([`TokioRuntime`] does).
    pub fn with_handle(redlock: Redlock<M, R>, policy: ExtendPolicy, handle: Handle) -> Self {
        Self {
            inner: Arc::new(Inner {
                redlock,
                policy,
                handle,
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                registry: Mutex::new(Registry::default()),
                stats: ShutdownStats::default(),
                queues: Queues::default(),
            }),
        }
    }

    /// The core manager, for its settings, its masters, or operations the
    /// adapter does not wrap.
    pub fn core(&self) -> &Redlock<M, R> {
        &self.inner.redlock
    }

    /// The default watchdog policy of this manager's guards.
    pub fn extend_policy(&self) -> &ExtendPolicy {
        &self.inner.policy
    }

    /// One attempt (no retry) with the default TTL and watchdog policy.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Lock`] when the masters did not grant it (see
    /// [`redlock_core::AcquireError`]: held elsewhere, too many masters
    /// failed, bad resource name), [`AcquireError::ShutDown`] after
    /// [`shutdown`](Self::shutdown).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped midway, keys already set on
    /// some masters are released by a background task, not left until
    /// their TTL.
    pub async fn try_acquire<S>(&self, resources: S) -> Result<LockGuard<M, R>, AcquireError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
    {
        self.acquire_with(resources, &LockOptions::once()).await
    }

    /// Acquires with the manager's retry policy (jittered exponential
    /// backoff) and wait deadline.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), plus
    /// [`redlock_core::AcquireError::Deadline`] inside
    /// [`AcquireError::Lock`] when the wait deadline passed first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`try_acquire`](Self::try_acquire): wrapping it in
    /// `tokio::time::timeout` or a `select!` never leaks a key.
    pub async fn acquire<S>(&self, resources: S) -> Result<LockGuard<M, R>, AcquireError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
    {
        self.acquire_with(resources, &LockOptions::new()).await
    }

    /// Acquires with per-call options (TTL, retries, wait deadline,
    /// watchdog policy).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); a bad per-call TTL is
    /// [`redlock_core::AcquireError::Invalid`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`try_acquire`](Self::try_acquire).
    pub async fn acquire_with<S>(
        &self,
        resources: S,
        opts: &LockOptions,
    ) -> Result<LockGuard<M, R>, AcquireError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
    {
        let resources = policy::resource_set(resources)?;
        if self.is_shut_down() {
            return Err(AcquireError::ShutDown);
        }
        let called_at = self.inner.redlock.runtime().now();
        let result = self.acquire_queued(resources, opts).await;
        let took = self
            .inner
            .redlock
            .runtime()
            .now()
            .saturating_duration_since(called_at);
        match &result {
            Ok(_) => crate::metrics::acquired(took),
            Err(e) => crate::metrics::not_acquired(took, e),
        }
        result
    }

    /// [`acquire_with`](Self::acquire_with) after the checks: the queue,
    /// the core's acquisition, the guard.
    async fn acquire_queued(
        &self,
        resources: ResourceSet,
        opts: &LockOptions,
    ) -> Result<LockGuard<M, R>, AcquireError> {
        // A call that may wait queues behind the other tasks of this
        // process waiting for the same resources; a single attempt does not
        // wait: if another task of this process holds the queue's head (it
        // holds the lock, or is asking the masters for it), the masters
        // would refuse this attempt or it would race that task, so it is
        // refused here without a round trip.
        let settings = self.inner.redlock.settings();
        let retry = opts
            .acquire
            .retry_override()
            .unwrap_or_else(|| settings.retry());
        let wait = opts.acquire.wait_override().unwrap_or(settings.wait());
        let mut acquire_opts = std::borrow::Cow::Borrowed(&opts.acquire);
        let queue = self.inner.queues.queue(&resources);
        let queue_slot = if retry.retries() > 0 {
            let runtime = self.inner.redlock.runtime();
            let queued_at = runtime.now();
            let slot = match wait {
                None => queue.lock_owned().await,
                Some(wait) => match tokio::time::timeout(wait, queue.lock_owned()).await {
                    Ok(slot) => slot,
                    Err(_) => return Err(AcquireError::QueuedTooLong { waited: wait }),
                },
            };
            if let Some(wait) = wait {
                // The time spent in the queue counts against the deadline.
                let waited = runtime.now().saturating_duration_since(queued_at);
                let left = wait.saturating_sub(waited);
                if left.is_zero() {
                    return Err(AcquireError::QueuedTooLong { waited });
                }
                acquire_opts = std::borrow::Cow::Owned(opts.acquire.clone().wait(Some(left)));
            }
            slot
        } else {
            queue
                .try_lock_owned()
                .map_err(|_| AcquireError::HeldInProcess)?
        };
        // The token is chosen here, before anything is sent, so that a
        // cancelled call can be cleaned up by token (the core's hook for
        // exactly this).
        let token = self
            .inner
            .redlock
            .settings()
            .new_token(self.inner.redlock.runtime());
        let mut cleanup = CancelCleanup {
            inner: Arc::clone(&self.inner),
            resources: resources.clone(),
            token: Some(token.clone()),
        };
        let result = self
            .inner
            .redlock
            .acquire_with(&resources, &acquire_opts, token)
            .await;
        // From here on there is no await point: nothing can cancel us
        // between the grant and the guard owning the lock.
        cleanup.disarm();
        let lock = result?;
        crate::metrics::master_failures(lock.votes());
        let policy = opts
            .extend
            .clone()
            .unwrap_or_else(|| self.inner.policy.clone());
        let acquired_at = self.inner.redlock.runtime().now();
        let shared = Arc::new(Shared::new(&lock));
        let (tx, rx) = mpsc::unbounded_channel();
        let mut registry = self.inner.registry();
        if registry.closed {
            drop(registry);
            // Granted while the shutdown started: give it back at once.
            self.inner.spawn_release(resources, lock.token().clone());
            return Err(AcquireError::ShutDown);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        registry.held.insert(id, Arc::clone(&shared));
        // Spawned under the registry mutex, so a shutdown that starts now
        // finds the watchdog already tracked (and cancelled).
        let task = watchdog::Watchdog {
            inner: Arc::clone(&self.inner),
            id,
            lock,
            shared: Arc::clone(&shared),
            commands: rx,
            policy,
            acquired_at,
            queue_slot: Some(queue_slot),
        };
        self.inner.tracker.spawn_on(task.run(), &self.inner.handle);
        drop(registry);
        Ok(LockGuard::new(shared, tx, Arc::clone(&self.inner)))
    }

    /// Runs `work` while holding the lock on `resources` (acquired as by
    /// [`acquire`](Self::acquire)), cancels it if the lock is lost, releases
    /// the lock afterwards, and returns the work's output.
    ///
    /// `work` receives the lock's [`LockStatus`], to check
    /// [`is_valid`](LockStatus::is_valid) before side effects or to pass its
    /// token on as a fencing value. Cancelling means dropping the work's
    /// future at its next await point: code between two awaits is not
    /// interrupted, so put a validity check right before each effect.
    /// If the work completes in the same poll as the loss is noticed, the
    /// output is returned (the work did finish).
    ///
    /// ```no_run
    /// # async fn demo(locks: redlock_tokio::LockManager) -> Result<(), redlock_tokio::WithLockError> {
    /// let total = locks
    ///     .with_lock("report:daily", |status| async move {
    ///         // ... long work, extended automatically ...
    ///         assert!(status.is_valid());
    ///         42
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`WithLockError::Acquire`] if the lock was not acquired (the work did
    /// not run); [`WithLockError::Lost`] with the [`LossReason`](crate::LossReason)
    /// if the lock was lost while the work ran (the work was cancelled).
    /// A release that a quorum could not confirm after the work
    /// finished is logged, not returned: the work's output stands and the
    /// key expires with its TTL.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future cancels the work and releases the
    /// lock in the background (or cleans up a half-done acquisition).
    pub async fn with_lock<S, F, Fut, T>(&self, resources: S, work: F) -> Result<T, WithLockError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
        F: FnOnce(LockStatus) -> Fut,
        Fut: Future<Output = T>,
    {
        self.with_lock_opts(resources, &LockOptions::new(), work)
            .await
    }

    /// [`with_lock`](Self::with_lock) with per-call options.
    ///
    /// # Errors
    ///
    /// As [`with_lock`](Self::with_lock).
    ///
    /// # Cancel safety
    ///
    /// As [`with_lock`](Self::with_lock).
    pub async fn with_lock_opts<S, F, Fut, T>(
        &self,
        resources: S,
        opts: &LockOptions,
        work: F,
    ) -> Result<T, WithLockError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
        F: FnOnce(LockStatus) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.acquire_with(resources, opts).await?;
        let status = guard.status();
        let outcome = {
            let work = work(status.clone());
            tokio::pin!(work);
            tokio::select! {
                biased;
                out = &mut work => Ok(out),
                reason = status.lost() => Err(reason),
            }
            // The work future is dropped here, before the release: once the
            // lock is given up, nothing of the work may still run.
        };
        match outcome {
            Ok(out) => {
                if let Err(e) = guard.release().await {
                    tracing::warn!(resources = %status.resources(), error = %e, "release after scoped work incomplete; keys expire with their TTL");
                }
                Ok(out)
            }
            Err(reason) => {
                // Removes whatever of the lock is still ours, in the
                // background (the caller wants the loss, not a report).
                drop(guard);
                Err(WithLockError::Lost(reason))
            }
        }
    }

    /// Statuses of the locks this manager holds now (one per live guard,
    /// lost ones included until their guard is dropped).
    pub fn held(&self) -> Vec<LockStatus> {
        self.inner
            .registry()
            .held
            .values()
            .map(|s| LockStatus::new(Arc::clone(s)))
            .collect()
    }

    /// Number of locks this manager holds now.
    pub fn held_count(&self) -> usize {
        self.inner.registry().held.len()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.registry().closed
    }

    /// Stops granting locks, fires the loss signal of every held lock
    /// ([`LossReason::Shutdown`](crate::LossReason::Shutdown)), releases
    /// them all, stops every watchdog, and waits at most `timeout` for all
    /// of this and for pending background releases (dropped guards,
    /// cancelled acquisitions, cleanups of refused attempts, and releases
    /// still finishing on slow masters after their decision). Call it
    /// before a process exits: a runtime dropped earlier drops those
    /// releases unsent, and their keys stay until the TTL.
    ///
    /// Guards that outlive the shutdown are inert: dropping or releasing
    /// them later is harmless. Calling it again waits again and reports the
    /// totals so far. The master connections stay open until the last
    /// handle and guard are dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once polled, the shutdown has started and the releases
    /// proceed in the background; only the wait (and the report) is lost.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let held = {
            let mut registry = self.inner.registry();
            registry.closed = true;
            registry.held.len()
        };
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        // A bound, whatever the masters do: each release is itself bounded
        // by the per-master timeout, so this only trips on a very short
        // `timeout` or a starved runtime.
        let _ = tokio::time::timeout(timeout, async {
            self.inner.tracker.wait().await;
            // The core's own background work: releases finishing after
            // their decision, cleanups of refused attempts.
            self.inner.redlock.background_idle().await;
        })
        .await;
        ShutdownReport {
            held,
            released: self.inner.stats.released.load(Ordering::SeqCst),
            incomplete: self.inner.stats.incomplete.load(Ordering::SeqCst),
            still_held: self.held_count(),
            unfinished_tasks: self.inner.tracker.len(),
            background_incomplete: self
                .inner
                .stats
                .background_incomplete
                .load(Ordering::SeqCst),
        }
    }
}
