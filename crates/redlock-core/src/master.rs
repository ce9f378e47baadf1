//! The seams between the algorithm and the world: how one master is asked,
//! and where time and randomness come from.
//!
//! The production implementations live beside the core, not in it:
//! `redlock-tokio` has the Redis clients (`RedisMaster`, over fred or redis-rs) and the tokio runtime
//! (`TokioRuntime`); a simulation implements both with virtual time and
//! runs the very same [`Redlock`](crate::Redlock) logic.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::config::Ttl;
use crate::fence::{Fence, FenceKeys};
use crate::holder::Holder;
use crate::inspect::KeyState;
use crate::tally::MasterFailure;
use crate::token::Token;

/// One independent Redis master, as the algorithm sees it: three atomic
/// operations on a set of keys, each answering within the per-master
/// timeout the implementation was built with.
///
/// Contract for implementations:
/// - each call is one atomic step on the master (a Lua script), applied to
///   all `keys` or none;
/// - each call resolves within a bounded time (the per-master timeout) and
///   maps every failure, including garbage replies, to a [`MasterFailure`]
///   rather than panicking;
/// - a command that timed out must not be re-sent later (it may still run
///   once, which the algorithm tolerates by releasing after failures).
pub trait Master: Send + Sync + 'static {
    /// Address for humans and reports, without credentials.
    fn address(&self) -> &Arc<str>;

    /// Sets every key to `token` with expiry `ttl`, if each key is absent
    /// or already holds `token`. `Err(Held)` if any key holds another token.
    fn acquire(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send;

    /// Resets the expiry of every key to `ttl`, if each holds `token`.
    /// `Err(NotHeld)` or `Err(Held)` otherwise. With `recreate`, a missing
    /// key is set again (never one held by another token).
    fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send;

    /// Deletes every key that holds `token`; keys holding anything else are
    /// untouched. `Err(NotHeld)` if none held it.
    fn release(
        &self,
        keys: &[String],
        token: &Token,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send;

    /// As [`release`](Self::release), for a lock its holder gives up (not
    /// the cleanup after a refused attempt): a master that announces
    /// releases (see [`watch_releases`](Self::watch_releases)) announces
    /// this one. The default is [`release`](Self::release).
    fn release_announced(
        &self,
        keys: &[String],
        token: &Token,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.release(keys, token)
    }

    /// As [`acquire`](Self::acquire), and in the same atomic step reads the
    /// highest fence stored for `fences.fields` (0 when none). Masters that
    /// do not keep fences answer with a server error (the default).
    fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<u64, MasterFailure>> + Send {
        let _ = (keys, fences, token, ttl);
        std::future::ready(Err(MasterFailure::Server(
            "this master does not keep fences".into(),
        )))
    }

    /// Reads what this master holds under `key` and the fence stored for
    /// `fences.fields[0]` (read-only). Masters that cannot tell answer
    /// with a server error (the default).
    fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> impl Future<Output = Result<(KeyState, u64), MasterFailure>> + Send {
        let _ = (key, fences);
        std::future::ready(Err(MasterFailure::Server(
            "this master cannot be inspected".into(),
        )))
    }

    /// Deletes `keys` whoever holds them: the operator's last resort for a
    /// stuck lock ([`Redlock::danger_force_unlock`](crate::Redlock::danger_force_unlock)).
    /// The default answers that this master cannot.
    fn force_delete(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        let _ = keys;
        std::future::ready(Err(MasterFailure::Server(
            "this master cannot force-delete".into(),
        )))
    }

    /// Deletes the stored fence of every field of `fences`, whoever holds
    /// the resources: the operator's reset
    /// ([`Redlock::danger_forget_fences`](crate::Redlock::danger_forget_fences)).
    /// The default answers that this master does not keep fences.
    fn forget_fences(
        &self,
        fences: FenceKeys<'_>,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        let _ = fences;
        std::future::ready(Err(MasterFailure::Server(
            "this master does not keep fences".into(),
        )))
    }

    /// Whether a release future of this master, once polled and then
    /// dropped, still reaches the master by itself: its command is
    /// written (or queued to be) by the first poll, nothing else is to be
    /// sent for it whatever the answer (no `EVALSHA` whose `NOSCRIPT`
    /// would need an `EVAL`), and its reply is read and dropped by the
    /// connection.
    /// Asked for each master whose answer is still to come when a release
    /// is decided: if so, its future is dropped there, rather than polled
    /// to the end by a background task (a task and a wake-up per
    /// release). [`settle`](Self::settle) then waits for its answer. The
    /// default is `false`.
    fn sends_dropped_releases(&self) -> bool {
        false
    }

    /// Completes once every command sent to this master so far has been
    /// answered, or failed, or got no answer within the per-master timeout
    /// (for [`Redlock::background_idle`](crate::Redlock::background_idle),
    /// with the releases of [`sends_dropped_releases`](Self::sends_dropped_releases)
    /// in mind). The default completes at once.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Closes the connection to this master (see
    /// [`Redlock::quit`](crate::Redlock::quit)). The default does nothing.
    fn close(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Raises the stored fence of every field to `fence` (never lowers
    /// it), only if every key still holds `token`; `Err(NotHeld)`
    /// otherwise.
    fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        let _ = (keys, fences, token, fence);
        std::future::ready(Err(MasterFailure::Server(
            "this master does not keep fences".into(),
        )))
    }

    /// Subscribes to this master's announcements that one of `keys` was
    /// released, for a waiter about to retry (see
    /// [`Redlock::acquire_with`](crate::Redlock::acquire_with)). Resolves
    /// once the subscription is in place on the master, with a stream that
    /// yields once per announcement; dropping the stream unsubscribes. The
    /// waiter waits for it at most the per-master timeout before its next
    /// attempt, and keeps polling it while it sleeps: when it resolves
    /// later, the waiter retries at once and is woken from then on. So
    /// resolve only once the master has processed the subscription. `None` when this
    /// master does not announce releases (the default), cannot subscribe
    /// now, or is at its bound of subscriptions: the waiter then polls
    /// with its retry policy alone.
    ///
    /// An announcement is only a hint to retry at once: it never grants
    /// anything, and a lost one costs the waiter one retry delay.
    fn watch_releases(&self, keys: &[String]) -> impl Future<Output = Option<ReleaseWatch>> + Send {
        let _ = keys;
        std::future::ready(None)
    }
}

/// Announcements of releases from one master: one item per announcement
/// (see [`Master::watch_releases`]). Dropping it unsubscribes.
pub type ReleaseWatch = BoxStream<'static, ()>;

/// Where the algorithm gets time and randomness. The core never reads a
/// clock or an RNG directly, so a simulation can drive it deterministically.
pub trait Runtime: Send + Sync + 'static {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// Completes after `d` (retry backoff).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;

    /// A uniformly random number, used for retry jitter (not for tokens).
    fn random_u64(&self) -> u64;

    /// Fills `dest` with unpredictable bytes for a lock token. Whoever can
    /// guess a token can release someone else's lock, so production uses a
    /// cryptographically secure generator seeded by the operating system;
    /// a simulation may use its seed.
    fn fill_secret(&self, dest: &mut [u8]);

    /// Who is acquiring, for the holder record stored with each lock
    /// ([`Holder`]): host, process and wall-clock time now, with `label`.
    fn holder(&self, label: Option<&str>) -> Holder;

    /// Runs `task` in the background: the rest of a release after its
    /// decision, and the cleanup after a refused attempt, which nobody
    /// waits for.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}
