//! The seams between the algorithm and the world: how one master is asked,
//! and where time and randomness come from.
//!
//! [`FredMaster`](crate::FredMaster) and [`TokioRuntime`] are the production
//! implementations; a simulation implements both with virtual time and runs
//! the very same [`Redlock`](crate::Redlock) logic.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::config::Ttl;
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
}

/// The production runtime: `std::time::Instant`, tokio's timer, and the
/// thread-local RNG for jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random_u64(&self) -> u64 {
        rand::thread_rng().next_u64()
    }
}
