//! Support code for the integration tests in `tests/`.
//!
//! Most tests need nothing from here. The chaos run (`tests/chaos.rs`) and
//! its worker process (`src/bin/chaos_worker.rs`) share:
//!
//! * [`sys`]: the system-wide monotonic clock every process logs on, and
//!   signals (SIGSTOP/SIGCONT) to our own child processes;
//! * [`events`]: the workers' event log, one line per event;
//! * [`checker`]: finds overlapping holds, overlapping protected actions
//!   and lost counter updates in those logs.
//!
//! The servers and the fault proxy come from `redlock-testing`.

//! * [`fresh_builder`]: the builder every test uses for masters the harness
//!   just started empty for it alone;
//! * [`builder`]: the production builder with the client under test
//!   ([`client_under_test`], `REDLOCK_TEST_CLIENT`);
//! * [`eventually`], [`on_every_master`], [`keys_left`]: waiting, within a
//!   bound, for what lands after the call that caused it returned.

use std::time::{Duration, Instant};

use redlock_tokio::{Client, LockManager, LockManagerBuilder};

pub mod checker;
pub mod events;
pub mod sys;

/// A builder for masters the harness has just started, empty, for one
/// test alone. The restart guard would hold such young masters back for a
/// whole TTL; its documentation allows turning it off in exactly this case
/// (nobody else ever held a lock on them). The guard's own tests in
/// `tests/guards.rs` and the chaos run build their managers themselves.
pub fn fresh_builder<I, S>(urls: I) -> LockManagerBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    builder(urls).settings(|s| s.danger_disable_restart_guard(true))
}

/// The production builder (`LockManager::builder`, defaults untouched)
/// with the Redis client under test: unset `REDLOCK_TEST_CLIENT` runs a
/// test file against the default client (redis-rs), `fred` or `redis-rs`
/// against that one (`scripts/test.sh` runs the fault tests again over
/// fred).
///
/// # Panics
///
/// On any other value of `REDLOCK_TEST_CLIENT`: a typo must not quietly
/// test the default client.
pub fn builder<I, S>(urls: I) -> LockManagerBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    LockManager::builder(urls).client(client_under_test())
}

/// The client `REDLOCK_TEST_CLIENT` names (see [`builder`]).
///
/// # Panics
///
/// On a value other than `fred` or `redis-rs`.
pub fn client_under_test() -> Client {
    match std::env::var("REDLOCK_TEST_CLIENT").as_deref() {
        Err(_) | Ok("") => Client::default(),
        Ok("fred") => Client::Fred,
        Ok("redis-rs") => Client::RedisRs,
        Ok(other) => panic!("REDLOCK_TEST_CLIENT={other:?}: expected fred or redis-rs"),
    }
}

/// The keys matching `pattern` left on the masters once background
/// releases had their chance: a release returns as soon as a quorum
/// confirmed, and the cleanup after a refused attempt is queued, not
/// awaited, so a slower master may still be deleting when the call
/// returns. Polls until none is left, for at most 5 s (each background
/// release is bounded by the per-master timeout, far below that), and
/// returns what is left then.
pub async fn keys_left(masters: &redlock_testing::Masters, pattern: &str) -> Vec<(usize, String)> {
    keys_left_within(masters, pattern, Duration::from_secs(5)).await
}

/// Whether `ok` became true within `bound`, asking every 10 ms (and once
/// more at the end): for effects that land after the call that caused
/// them returned.
pub async fn eventually(bound: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < bound {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ok()
}

/// Whether `holds` became true of every master within 5 s: an operation
/// decided at its quorum may still be reaching the other masters when it
/// returns (each command bounded by the per-master timeout, far below
/// that), and a loaded machine may take a while.
pub async fn on_every_master(
    masters: &redlock_testing::Masters,
    holds: impl Fn(&redlock_testing::RedisServer) -> bool,
) -> bool {
    eventually(Duration::from_secs(5), || masters.iter().all(&holds)).await
}

/// As [`keys_left`], polling for at most `bound`: for tests where a
/// release may be cut on purpose (a connection reset under it), so our
/// key may stay until its TTL, never longer.
pub async fn keys_left_within(
    masters: &redlock_testing::Masters,
    pattern: &str,
    bound: Duration,
) -> Vec<(usize, String)> {
    eventually(bound, || masters.keys_everywhere(pattern).is_empty()).await;
    masters.keys_everywhere(pattern)
}
