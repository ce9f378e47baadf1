//! The guard returned by acquire, and the cloneable status view that
//! carries the loss signal.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redlock_core::{Fence, Lock, Master, ReleaseError, ReleaseReport, ResourceSet, Runtime, Token};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::link::RedisMaster;
use crate::runtime::TokioRuntime;

use crate::error::LossReason;
use crate::manager::Inner;

/// What a guard asks of its watchdog. Dropping the guard drops the sender,
/// which the watchdog reads as "release, nobody waits for the answer".
#[derive(Debug)]
pub(crate) enum Command {
    /// Release now and send the result back.
    Release(oneshot::Sender<Result<ReleaseReport, ReleaseError>>),
}

/// State shared by a guard, its watchdog and every [`LockStatus`] clone.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) resources: ResourceSet,
    pub(crate) token: Token,
    pub(crate) fence: Option<Fence>,
    /// Cancelled exactly when `reason` is set (after it), so a waiter woken
    /// by the token always finds the reason.
    lost: CancellationToken,
    reason: OnceLock<LossReason>,
    progress: Mutex<Progress>,
}

#[derive(Clone, Copy, Debug)]
struct Progress {
    valid_until: Instant,
    extensions: u32,
}

impl Shared {
    pub(crate) fn new(lock: &Lock) -> Self {
        Self {
            resources: lock.resources().clone(),
            token: lock.token().clone(),
            fence: lock.fence(),
            lost: CancellationToken::new(),
            reason: OnceLock::new(),
            progress: Mutex::new(Progress {
                valid_until: lock.valid_until(),
                extensions: 0,
            }),
        }
    }

    /// Fires the loss signal. The first reason wins; later calls are no-ops
    /// (a lock is lost once).
    pub(crate) fn fire(&self, reason: LossReason) {
        // Reason first, token second: `lost()` reads the reason right after
        // the token wakes it.
        // A real loss is what an operator must see: every loss path goes
        // through here, so this is the one place that logs it.
        if !matches!(reason, LossReason::Released | LossReason::Shutdown) {
            tracing::warn!(resources = %self.resources, reason = %reason, "lock lost");
        }
        if self.reason.set(reason).is_ok() {
            self.lost.cancel();
        }
    }

    /// The loss reason, once the lock was lost (or given up).
    pub(crate) fn loss(&self) -> Option<&LossReason> {
        self.reason.get()
    }

    pub(crate) fn record_extension(&self, valid_until: Instant) {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        p.valid_until = valid_until;
        p.extensions = p.extensions.saturating_add(1);
    }

    fn progress(&self) -> Progress {
        // The data is two plain values; a panic elsewhere cannot leave it
        // half-written, so a poisoned mutex is still readable.
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cloneable, read-only view of a held lock: its validity, its
/// extensions, and its **loss signal**.
///
/// Hand it to the tasks doing the protected work (it does not keep the lock
/// alive; only the [`LockGuard`] does). The loss signal fires once, with a
/// [`LossReason`], when the lock can no longer be trusted: an extension was
/// refused, the validity ended, a cap stopped the extensions, the guard was
/// released, or the manager shut down. Wait for it as a future
/// ([`lost`](Self::lost)) or as a [`CancellationToken`]
/// ([`loss_token`](Self::loss_token)):
///
/// ```no_run
/// # async fn demo(status: redlock_tokio::LockStatus) {
/// # async fn long_job() {}
/// tokio::select! {
///     reason = status.lost() => eprintln!("stopping: {reason}"),
///     () = long_job() => {}
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct LockStatus {
    shared: Arc<Shared>,
}

impl LockStatus {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Completes with the reason once the lock is lost (at once if it
    /// already is).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; drop it and call it again at will.
    pub async fn lost(&self) -> LossReason {
        self.shared.lost.cancelled().await;
        // `fire` sets the reason before cancelling the token.
        self.shared
            .reason
            .get()
            .cloned()
            .expect("the loss reason is set before the loss token is cancelled")
    }

    /// A token cancelled when the lock is lost, for `select!` and for APIs
    /// that take a [`CancellationToken`]. It is a child token: cancelling
    /// it yourself does not fire the loss signal for anyone else.
    pub fn loss_token(&self) -> CancellationToken {
        // A child, not a clone: a clone's `cancel()` would fire the signal
        // for everyone, without a reason.
        self.shared.lost.child_token()
    }

    /// The loss reason, if the lock is lost.
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.shared.reason.get().cloned()
    }

    /// Whether the loss signal has fired.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.is_cancelled()
    }

    /// The instant from which the lock must no longer be trusted, as of the
    /// last successful acquire or extension.
    pub fn valid_until(&self) -> Instant {
        self.shared.progress().valid_until
    }

    /// Validity left now (zero once passed or lost).
    pub fn remaining(&self) -> Duration {
        if self.is_lost() {
            return Duration::ZERO;
        }
        self.valid_until().saturating_duration_since(crate::now())
    }

    /// Whether the lock may be trusted now: not lost, and its validity not
    /// over. Check it right before each protected side effect; better
    /// still, pass [`token`](Self::token) to the protected resource as a
    /// fencing value.
    pub fn is_valid(&self) -> bool {
        !self.is_lost() && crate::now() < self.valid_until()
    }

    /// Successful extensions so far.
    pub fn extensions(&self) -> u32 {
        self.shared.progress().extensions
    }

    /// The locked resources.
    pub fn resources(&self) -> &ResourceSet {
        &self.shared.resources
    }

    /// The lock's token (never printed by `Debug`).
    pub fn token(&self) -> &Token {
        &self.shared.token
    }

    /// The lock's fencing token, when it was acquired with fencing (see
    /// [`LockGuard::fence`]).
    pub fn fence(&self) -> Option<Fence> {
        self.shared.fence
    }
}

impl fmt::Debug for LockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockStatus")
            .field("resources", &self.shared.resources)
            .field("valid_until", &self.valid_until())
            .field("extensions", &self.extensions())
            .field("lost", &self.loss_reason())
            .finish()
    }
}

/// A held lock. Returned by [`LockManager::acquire`](crate::LockManager::acquire)
/// and its variants.
///
/// While it lives, its watchdog task extends the lock according to the
/// [`ExtendPolicy`](crate::ExtendPolicy) and fires the loss signal when the
/// lock can no longer be trusted. Dropping it releases the lock on every
/// master **without blocking**: the drop only closes a channel, and the
/// watchdog task sends the release. [`release`](Self::release) does the
/// same and waits for the per-master result.
///
/// Releases are compare-token-then-delete: a guard never deletes a key
/// that holds another owner's token, even long after its own lock lapsed.
///
/// # Life of a guard
///
/// The watchdog drives this state machine (`*` marks where the loss signal
/// fires):
///
/// ```text
///                 extend ok (valid_until moves on)
///                 ┌──────┐
///                 ▼      │
///  acquire ──► ┌──────────┐  extend: majority says "not ours"*    ┌──────┐
///              │   Held   │─────────────────────────────────────►│ Lost │
///              └──────────┘  validity ends, extend failing,       └──────┘
///                 │   │      stuck, off or capped*                 │   │
///                 │   │                                            │   │
///   drop/release* │   │ manager shutdown*        drop / release  │   │ shutdown
///                 ▼   ▼                                            ▼   ▼
///              ┌──────────────────────────────────────────────────────────┐
///              │ Released: compare-token-then-DEL on every master, then   │
///              │ the watchdog ends and leaves the manager's registry      │
///              └──────────────────────────────────────────────────────────┘
/// ```
///
/// `Lost` is final: the watchdog never extends again and never re-acquires.
/// It only waits for the guard to go, then removes whatever of the lock is
/// still ours (for instance on a minority of masters).
///
/// Dropping a guard when no tokio runtime is current is fine (nothing is
/// spawned by the drop). If the runtime itself is shutting down and its
/// tasks are gone, the keys expire with their TTL.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard<M: Master = RedisMaster, R: Runtime = TokioRuntime> {
    status: LockStatus,
    commands: mpsc::UnboundedSender<Command>,
    manager: Arc<Inner<M, R>>,
}

impl<M: Master, R: Runtime> LockGuard<M, R> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        commands: mpsc::UnboundedSender<Command>,
        manager: Arc<Inner<M, R>>,
    ) -> Self {
        Self {
            status: LockStatus::new(shared),
            commands,
            manager,
        }
    }

    /// A cloneable view of this lock (validity, loss signal) for the tasks
    /// doing the work. It does not keep the lock alive.
    pub fn status(&self) -> LockStatus {
        self.status.clone()
    }

    /// Completes with the reason once the lock is lost. See
    /// [`LockStatus::lost`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn lost(&self) -> LossReason {
        self.status.lost().await
    }

    /// A child token cancelled when the lock is lost. See
    /// [`LockStatus::loss_token`].
    pub fn loss_token(&self) -> CancellationToken {
        self.status.loss_token()
    }

    /// The loss reason, if the lock is lost.
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.status.loss_reason()
    }

    /// Whether the loss signal has fired.
    pub fn is_lost(&self) -> bool {
        self.status.is_lost()
    }

    /// See [`LockStatus::valid_until`].
    pub fn valid_until(&self) -> Instant {
        self.status.valid_until()
    }

    /// See [`LockStatus::remaining`].
    pub fn remaining(&self) -> Duration {
        self.status.remaining()
    }

    /// See [`LockStatus::is_valid`].
    pub fn is_valid(&self) -> bool {
        self.status.is_valid()
    }

    /// Successful extensions so far.
    pub fn extensions(&self) -> u32 {
        self.status.extensions()
    }

    /// The locked resources.
    pub fn resources(&self) -> &ResourceSet {
        self.status.resources()
    }

    /// The lock's token (never printed by `Debug`).
    pub fn token(&self) -> &Token {
        self.status.token()
    }

    /// The lock's fencing token, when it was acquired with fencing
    /// ([`LockOptions::fenced`](crate::LockOptions::fenced), or the
    /// manager's `fencing` setting): strictly greater than the fence of
    /// every earlier fenced holder of its resources. Pass it with every
    /// write to the protected resource, which refuses a fence lower than
    /// the highest it has seen: then a holder that was paused past its
    /// validity cannot overwrite its successor's work.
    ///
    /// ```no_run
    /// # async fn demo(locks: redlock_tokio::LockManager) -> Result<(), Box<dyn std::error::Error>> {
    /// use redlock_tokio::LockOptions;
    ///
    /// let guard = locks.acquire_with("stock", &LockOptions::new().fenced(true)).await?;
    /// let fence = guard.fence().expect("acquired with fencing");
    /// // UPDATE stock SET n = n - 1, fence = $fence WHERE id = 1 AND fence <= $fence
    /// # let _ = fence;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> Option<Fence> {
        self.status.fence()
    }

    /// Stops the watchdog and releases the lock on every master, returning
    /// once a quorum confirmed that our keys are gone (or can no longer
    /// confirm); the slower masters finish in the background, each bounded
    /// by the per-master timeout (see
    /// [`Redlock::release`](redlock_core::Redlock::release)). Works on a
    /// lost lock too: it removes what is still ours and never touches
    /// another owner's keys.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when a quorum could not confirm; the
    /// keys there expire with their TTL. Masters that no longer held our
    /// key are not errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once this future was polled, the release happens in the
    /// background whether or not it is awaited to the end; before that,
    /// dropping it drops the guard, which releases too.
    pub async fn release(self) -> Result<ReleaseReport, ReleaseError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Release(tx)).is_ok() {
            if let Ok(result) = rx.await {
                return result;
            }
        }
        // The watchdog is gone: the manager's shutdown already released the
        // lock, or the runtime is stopping. Release directly; it is
        // token-checked, so at worst it finds nothing to delete.
        let shared = &self.status.shared;
        self.manager
            .redlock
            .release_token(&shared.resources, &shared.token)
            .await
    }
}

impl<M: Master, R: Runtime> fmt::Debug for LockGuard<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("status", &self.status)
            .finish()
    }
}
