//! The adapter's errors and the typed reason a lock was lost.

use std::fmt;
use std::sync::Arc;

use redlock_core::{ExtendError, Votes};

use crate::policy::Cap;

/// Why a lock acquisition through the adapter failed.
///
/// Whatever the failure, no key of this attempt is left behind: the core
/// released on every master before returning, and a cancelled call is
/// cleaned up in the background.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The Redlock algorithm did not grant the lock (held elsewhere, too
    /// many masters failed, bad input, wait deadline). See
    /// [`redlock_core::AcquireError`] for the cases, with per-master votes.
    #[error(transparent)]
    Lock(#[from] redlock_core::AcquireError),
    /// [`LockManager::shutdown`](crate::LockManager::shutdown) was called;
    /// the manager grants no new locks. A lock that the masters granted
    /// while the shutdown started was released again.
    #[error("the lock manager is shut down and grants no new locks")]
    ShutDown,
    /// The wait deadline passed while this call queued behind other tasks
    /// of this process waiting for the same resources (only the head of
    /// the queue asks the masters).
    #[error("gave up waiting after {}: other tasks of this process were ahead in the queue for the same resources", redlock_core::HumanDuration(*waited))]
    QueuedTooLong {
        /// Time waited in the queue.
        waited: std::time::Duration,
    },
    /// A single attempt ([`LockManager::try_acquire`](crate::LockManager::try_acquire)
    /// or no retries) found another task of this process holding these
    /// resources or asking the masters for them: the masters would refuse
    /// it (or it would race that task), so it was refused here, without a
    /// round trip.
    #[error("another task of this process holds or is acquiring the same resources")]
    HeldInProcess,
}

impl AcquireError {
    /// Whether the failure is contention: another owner holds the resource.
    pub fn is_contended(&self) -> bool {
        match self {
            Self::Lock(e) => e.is_contended(),
            Self::ShutDown => false,
            // Another task of this process holds or waits for it.
            Self::QueuedTooLong { .. } | Self::HeldInProcess => true,
        }
    }

    /// The per-master votes of the last attempt, when one was made.
    pub fn votes(&self) -> Option<&Votes> {
        match self {
            Self::Lock(e) => e.votes(),
            Self::ShutDown | Self::QueuedTooLong { .. } | Self::HeldInProcess => None,
        }
    }
}

impl From<redlock_core::ConfigError> for AcquireError {
    // Bad resource names are found by the adapter before the core sees
    // them; they are reported exactly as the core would.
    fn from(e: redlock_core::ConfigError) -> Self {
        Self::Lock(redlock_core::AcquireError::Invalid(e))
    }
}

/// Why a guard's lock can no longer be trusted. Carried by the loss signal
/// ([`LockGuard::lost`](crate::LockGuard::lost),
/// [`LockStatus::loss_reason`](crate::LockStatus::loss_reason)) and by
/// [`WithLockError::Lost`].
///
/// A lost lock is never re-acquired behind the caller's back: taking it
/// again is a new [`acquire`](crate::LockManager::acquire), with a new
/// token, decided by the caller.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LossReason {
    /// An extension proved the lock is gone: more masters than the quorum
    /// tolerates answered that our token is no longer there (the key
    /// expired, was deleted, the master restarted empty, or another owner
    /// holds it). Signalled as soon as the answer arrives, possibly before
    /// the local validity ends.
    Refused {
        /// The per-master votes of that extension.
        votes: Votes,
    },
    /// The validity ended before an extension succeeded: masters paused,
    /// unreachable or too slow (or auto-extension is off). Signalled at the
    /// end of the validity even if an extension call is still in flight.
    Lapsed {
        /// Failed extension attempts since the last success.
        attempts: u32,
        /// The last failed attempt's error, if any attempt was made.
        last_error: Option<Arc<ExtendError>>,
    },
    /// A cap of the [`ExtendPolicy`](crate::ExtendPolicy) stopped the
    /// extensions, and the validity then ended.
    CapReached {
        /// Which cap.
        cap: Cap,
    },
    /// The guard was released or dropped: the lock was given up on purpose.
    /// Seen only by [`LockStatus`](crate::LockStatus) clones that outlive
    /// their guard.
    Released,
    /// The manager was shut down
    /// ([`LockManager::shutdown`](crate::LockManager::shutdown)), which
    /// released the lock.
    Shutdown,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { votes } => write!(
                f,
                "lock lost: extension refused, our token is gone ({votes})"
            ),
            Self::Lapsed {
                attempts: 0,
                last_error: None,
            } => f.write_str("lock lost: validity ended (no extension was attempted)"),
            // The last error is the `source`, not repeated here: error
            // reporters (`anyhow`'s `{:#}`) print the chain.
            Self::Lapsed { attempts, .. } => {
                write!(f, "lock lost: validity ended before an extension succeeded ({attempts} failed attempt(s))")
            }
            Self::CapReached { cap } => write!(f, "lock lost: {cap}, and the validity ended"),
            Self::Released => f.write_str("lock released by its guard"),
            Self::Shutdown => f.write_str("lock released by the manager's shutdown"),
        }
    }
}

impl std::error::Error for LossReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Lapsed {
                last_error: Some(e),
                ..
            } => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Why [`LockManager::with_lock`](crate::LockManager::with_lock) did not
/// return the work's output.
#[derive(Debug)]
#[non_exhaustive]
pub enum WithLockError {
    /// The lock was not acquired; the work never ran.
    Acquire(AcquireError),
    /// The lock was lost while the work ran; the work was cancelled (its
    /// future dropped) at that point, and what remained of the lock was
    /// released.
    Lost(LossReason),
}

impl fmt::Display for WithLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acquire(e) => e.fmt(f),
            Self::Lost(reason) => write!(f, "work cancelled: {reason}"),
        }
    }
}

impl std::error::Error for WithLockError {
    /// The cause behind the message, never the message again: `Acquire`
    /// is transparent, and `Lost` already says its reason, so its source
    /// is the reason's own source (the last extension error).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Acquire(e) => e.source(),
            Self::Lost(reason) => reason.source(),
        }
    }
}

impl From<AcquireError> for WithLockError {
    fn from(e: AcquireError) -> Self {
        Self::Acquire(e)
    }
}

impl WithLockError {
    /// The loss reason, if the work was cancelled by a loss.
    pub fn loss_reason(&self) -> Option<&LossReason> {
        match self {
            Self::Lost(r) => Some(r),
            Self::Acquire(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_reasons_read_well() {
        let lapsed = LossReason::Lapsed {
            attempts: 3,
            last_error: Some(Arc::new(ExtendError::Expired {
                ago: Duration::from_millis(5),
            })),
        };
        let text = lapsed.to_string();
        assert!(text.contains("3 failed attempt"), "{text}");
        assert!(std::error::Error::source(&lapsed).is_some());
        // The whole chain, as `anyhow`'s `{:#}` prints it, says each thing
        // once.
        let lost = WithLockError::Lost(lapsed);
        let mut chain = vec![lost.to_string()];
        let mut next = std::error::Error::source(&lost);
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        assert_eq!(chain.len(), 2, "{chain:?}");
        assert!(chain[0].contains("3 failed attempt"), "{chain:?}");
        assert!(chain[1].contains("expired"), "{chain:?}");
        for (i, a) in chain.iter().enumerate() {
            for b in &chain[i + 1..] {
                assert!(!a.contains(b.as_str()), "{a:?} repeats {b:?}");
            }
        }
        let cap = LossReason::CapReached {
            cap: Cap::Extensions(4),
        };
        assert!(cap.to_string().contains("extension cap of 4"), "{cap}");
        let none = LossReason::Lapsed {
            attempts: 0,
            last_error: None,
        };
        assert!(none.to_string().contains("no extension"), "{none}");
        let err = WithLockError::Lost(LossReason::Shutdown);
        assert!(matches!(err.loss_reason(), Some(LossReason::Shutdown)));
        assert!(err.to_string().contains("shutdown"), "{err}");
    }
}
