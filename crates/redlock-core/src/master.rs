//! The seams between the algorithm and the world: how one master is asked,
//! and where time and randomness come from.
//!
//! [`FredMaster`](crate::FredMaster) and [`TokioRuntime`] are the production
//! implementations; a simulation implements both with virtual time and runs
//! the very same [`Redlock`](crate::Redlock) logic.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rand::RngCore;

use crate::config::Ttl;
use crate::fence::{Fence, FenceKeys};
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
}

/// Where the algorithm gets time and randomness. The core never reads a
/// clock or an RNG directly, so a simulation can drive it deterministically.
pub trait Runtime: Send + Sync + 'static {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// Completes after `d` (retry backoff).
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;

    /// A uniformly random number, used for retry jitter (not for tokens).
    fn random_u64(&self) -> u64;

    /// Runs `task` in the background: the rest of a release after its
    /// decision, and the cleanup after a refused attempt, which nobody
    /// waits for.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// The clock every production validity is measured on: an [`Instant`]
/// that, on Linux, also advances while the machine is suspended.
///
/// `Instant::now()` reads `CLOCK_MONOTONIC`, which stops while a machine
/// (or a VM) is suspended; the masters' clocks do not, so their keys
/// expire during the suspension while a validity measured on
/// `CLOCK_MONOTONIC` would still trust them. This clock reads
/// `CLOCK_BOOTTIME` (which counts suspended time) and maps it onto
/// `Instant`s: the first call anchors both clocks, and every later reading
/// is the anchor plus the boot-time elapsed since. After a suspension its
/// instants run ahead of `Instant::now()` by the time suspended, which is
/// the point: validity passes, and the adapter's timers (which sleep in
/// bounded steps and re-read this clock) notice within a step.
///
/// Elsewhere than Linux it is `Instant::now()`.
pub fn now() -> Instant {
    #[cfg(target_os = "linux")]
    {
        use std::sync::OnceLock;
        fn boottime() -> Duration {
            let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
            // The kernel's boot time is never negative.
            Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            )
        }
        static ANCHOR: OnceLock<(Instant, Duration)> = OnceLock::new();
        let (at, boot) = *ANCHOR.get_or_init(|| (Instant::now(), boottime()));
        let elapsed = boottime().saturating_sub(boot);
        // Far beyond any uptime: fall back rather than panic.
        at.checked_add(elapsed).unwrap_or_else(Instant::now)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Instant::now()
    }
}

/// The production runtime: the suspend-aware clock [`now`], tokio's timer,
/// and the thread-local RNG for jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        now()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random_u64(&self) -> u64 {
        rand::thread_rng().next_u64()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}
