//! In-memory masters, for testing code that takes locks without running
//! Redis (feature `testing`), as fred ships mocks and tower ships
//! `tower-test`.
//!
//! [`MemStore`] is the one Rust copy of what the Lua scripts in
//! [`scripts`](crate::scripts) do on a master: pure, fed with the master's
//! `now`. [`MemMaster`] puts a store behind the [`Master`] trait with a
//! clock of your choice, and can be made to fail ([`Fault`]). The
//! workspace's own tests use them too: the adapter's unit tests run its
//! watchdog over `MemMaster`s on tokio's paused clock, and the simulation's
//! masters keep their keys in a `MemStore` on each master's skewed clock.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use redlock_core::testing::MemStore;
//! use redlock_core::{MasterFailure, Token, Ttl, TOKEN_BYTES};
//!
//! let mut store = MemStore::new();
//! let (a, b) = (Token::from_bytes([1; TOKEN_BYTES]), Token::from_bytes([2; TOKEN_BYTES]));
//! let keys = vec!["redlock:invoice:42".to_owned()];
//! let ttl = Ttl::try_from(Duration::from_secs(10))?;
//! let t0 = Instant::now();
//! assert_eq!(store.acquire(t0, &keys, &a, ttl), Ok(()));
//! assert_eq!(store.acquire(t0, &keys, &b, ttl), Err(MasterFailure::Held));
//! // Ten seconds later the key has expired: b gets it.
//! assert_eq!(store.acquire(t0 + ttl.as_duration(), &keys, &b, ttl), Ok(()));
//! # Ok::<(), redlock_core::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Add;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Ttl;
use crate::fence::{Fence, FenceKeys};
use crate::inspect::KeyState;
use crate::master::Master;
use crate::tally::MasterFailure;
use crate::token::Token;

/// The keys and fence counters of one master, with the scripts'
/// semantics, at times of type `T` (an [`Instant`] by default; the
/// simulation uses each master's own skewed clock).
///
/// Every operation is one atomic step, as a script is on Redis: it checks
/// every key first and writes only if all pass.
#[derive(Clone, Debug)]
pub struct MemStore<T = Instant> {
    /// Lock key -> (value, expiry).
    keys: BTreeMap<String, (String, T)>,
    /// Fence hash -> resource -> highest fence (never expire).
    fences: BTreeMap<String, BTreeMap<String, u64>>,
}

impl<T> Default for MemStore<T> {
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            fences: BTreeMap::new(),
        }
    }
}

impl<T: Copy + Ord + Add<Duration, Output = T>> MemStore<T> {
    /// An empty master.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, keys and fences: a master restarted without
    /// persistence.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.fences.clear();
    }

    /// `GET` with expiry: a key is gone once `now` reaches its expiry.
    /// (Redis keeps a key until its clock is strictly past the millisecond
    /// of expiry; expiring at the exact instant is at least as strict.)
    pub fn get(&mut self, key: &str, now: T) -> Option<&str> {
        if self.keys.get(key).is_some_and(|(_, exp)| now >= *exp) {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|(v, _)| v.as_str())
    }

    /// The value and expiry of a live key, read-only.
    pub fn peek(&self, key: &str, now: T) -> Option<(&str, T)> {
        self.keys
            .get(key)
            .filter(|(_, exp)| now < *exp)
            .map(|(v, exp)| (v.as_str(), *exp))
    }

    /// How many keys are live at `now`.
    pub fn live_keys(&self, now: T) -> usize {
        self.keys.values().filter(|(_, exp)| now < *exp).count()
    }

    /// Plants `value` under `key` until `expires_at`, whatever was there:
    /// another client's key, or garbage, for a test to react to.
    pub fn put(&mut self, key: &str, value: &str, expires_at: T) {
        self.keys
            .insert(key.to_owned(), (value.to_owned(), expires_at));
    }

    /// Whether any key holds a value other than `token` at `now`.
    fn held_by_other(&mut self, keys: &[String], token: &str, now: T) -> bool {
        keys.iter()
            .any(|k| self.get(k, now).is_some_and(|v| v != token))
    }

    /// Every key (already checked to be absent or `token`'s) holds `token`
    /// and lives at least `ttl` from `now`: created if absent, lengthened
    /// if shorter, never shortened.
    fn set_at_least(&mut self, keys: &[String], token: &str, now: T, ttl: Duration) {
        let wanted = now + ttl;
        for k in keys {
            match self.keys.get_mut(k) {
                Some((_, exp)) => *exp = (*exp).max(wanted),
                None => {
                    self.keys.insert(k.clone(), (token.to_owned(), wanted));
                }
            }
        }
    }

    /// [`scripts::ACQUIRE`](crate::scripts::ACQUIRE): sets every key to
    /// `token` if each is absent or already `token`'s; never shortens one.
    ///
    /// # Errors
    ///
    /// [`MasterFailure::Held`] if a key holds another token (nothing
    /// written).
    pub fn acquire(
        &mut self,
        now: T,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> Result<(), MasterFailure> {
        if self.held_by_other(keys, token.expose(), now) {
            return Err(MasterFailure::Held);
        }
        self.set_at_least(keys, token.expose(), now, ttl.as_duration());
        Ok(())
    }

    /// [`scripts::EXTEND`](crate::scripts::EXTEND): every key lives at
    /// least `ttl` more if each holds `token`; with `recreate`, a missing
    /// key is set again.
    ///
    /// # Errors
    ///
    /// [`MasterFailure::Held`] if a key holds another token,
    /// [`MasterFailure::NotHeld`] if one is missing and `recreate` is off
    /// (nothing written).
    pub fn extend(
        &mut self,
        now: T,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        let mut missing = false;
        for k in keys {
            match self.get(k, now) {
                None => missing = true,
                Some(v) if v != token.expose() => return Err(MasterFailure::Held),
                Some(_) => {}
            }
        }
        if missing && !recreate {
            return Err(MasterFailure::NotHeld);
        }
        self.set_at_least(keys, token.expose(), now, ttl.as_duration());
        Ok(())
    }

    /// [`scripts::RELEASE`](crate::scripts::RELEASE): deletes the keys
    /// that hold `token`.
    ///
    /// # Errors
    ///
    /// [`MasterFailure::NotHeld`] if none did.
    pub fn release(&mut self, now: T, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        let mut deleted = 0;
        for k in keys {
            if self.get(k, now) == Some(token.expose()) {
                self.keys.remove(k);
                deleted += 1;
            }
        }
        if deleted == 0 {
            Err(MasterFailure::NotHeld)
        } else {
            Ok(())
        }
    }

    /// [`scripts::ACQUIRE_FENCED`](crate::scripts::ACQUIRE_FENCED): as
    /// [`acquire`](Self::acquire), and in the same step reads the highest
    /// fence stored for `fences.fields` (0 when none).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn acquire_fenced(
        &mut self,
        now: T,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        self.acquire(now, keys, token, ttl)?;
        Ok(self.highest_fence(fences))
    }

    /// [`scripts::SET_FENCE`](crate::scripts::SET_FENCE): raises each
    /// field's fence to `fence` (never lowers it) if every key holds
    /// `token`.
    ///
    /// # Errors
    ///
    /// [`MasterFailure::NotHeld`] if a key does not hold `token` (nothing
    /// written).
    pub fn set_fence(
        &mut self,
        now: T,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        if keys
            .iter()
            .any(|k| self.get(k, now).is_none_or(|v| v != token.expose()))
        {
            return Err(MasterFailure::NotHeld);
        }
        let stored = self.fences.entry(fences.hash.to_owned()).or_default();
        for f in fences.fields {
            let e = stored.entry(f.clone()).or_insert(0);
            *e = (*e).max(fence.get());
        }
        Ok(())
    }

    /// The highest fence stored for the fields (0 when none).
    pub fn highest_fence(&self, fences: FenceKeys<'_>) -> u64 {
        let stored = self.fences.get(fences.hash);
        fences
            .fields
            .iter()
            .filter_map(|f| stored.and_then(|h| h.get(f)).copied())
            .max()
            .unwrap_or(0)
    }

    /// Deletes the stored fence of every field of `fences`.
    pub fn forget_fences(&mut self, fences: FenceKeys<'_>) {
        if let Some(stored) = self.fences.get_mut(fences.hash) {
            for f in fences.fields {
                stored.remove(f);
            }
        }
    }

    /// Deletes `keys` whoever holds them.
    pub fn force_delete(&mut self, keys: &[String]) {
        for k in keys {
            self.keys.remove(k);
        }
    }
}

impl MemStore<Instant> {
    /// [`scripts::INSPECT`](crate::scripts::INSPECT): what `key` holds at
    /// `now` and the fence of `fences.fields[0]`.
    pub fn inspect(&self, now: Instant, key: &str, fences: FenceKeys<'_>) -> (KeyState, u64) {
        let fence = self.highest_fence(FenceKeys {
            hash: fences.hash,
            fields: fences.fields.get(..1).unwrap_or_default(),
        });
        let state = match self.peek(key, now) {
            None => KeyState::Free,
            Some((value, exp)) => KeyState::Held {
                token: value.to_owned(),
                holder: Token::parse(value).ok().and_then(|t| t.holder()),
                ttl: Some(exp.saturating_duration_since(now)),
            },
        };
        (state, fence)
    }
}

/// How a [`MemMaster`] answers, to test what your code does when masters
/// fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answers every command.
    #[default]
    None,
    /// Answers every command with [`MasterFailure::Unreachable`] (a master
    /// that is down).
    Down,
    /// Never answers acquires, extends and fence writes (a paused master;
    /// the manager's per-master timeout does not apply here, so use it
    /// with a runtime whose callers time out, such as tokio's). Releases
    /// and reads still answer, so cleanup can be observed.
    Hang,
}

/// An in-memory [`Master`] over a [`MemStore`], reading time from `clock`
/// (for instance `redlock_tokio::now`, or tokio's paused clock in tests).
///
/// Clones share the store and the fault, so a test keeps one to look
/// inside or to break the master while the manager holds the other.
///
/// ```
/// use redlock_core::testing::{Fault, MemMaster};
///
/// let masters = MemMaster::group(3, std::time::Instant::now);
/// masters[2].set_fault(Fault::Down);
/// assert_eq!(masters.len(), 3);
/// ```
#[derive(Clone)]
pub struct MemMaster {
    address: Arc<str>,
    store: Arc<Mutex<MemStore>>,
    fault: Arc<Mutex<Fault>>,
    clock: Arc<dyn Fn() -> Instant + Send + Sync>,
}

impl std::fmt::Debug for MemMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemMaster")
            .field("address", &self.address)
            .field("fault", &*lock(&self.fault))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each operation is one step on plain data; a panic elsewhere cannot
    // leave it torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemMaster {
    /// An empty master named `address`, on `clock`.
    pub fn new(address: &str, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self {
            address: address.into(),
            store: Arc::default(),
            fault: Arc::default(),
            clock: Arc::new(clock),
        }
    }

    /// `n` independent masters named `mem:0` .. `mem:{n-1}`, on one clock.
    pub fn group(n: usize, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Vec<Self> {
        let clock: Arc<dyn Fn() -> Instant + Send + Sync> = Arc::new(clock);
        (0..n)
            .map(|i| Self {
                address: format!("mem:{i}").into(),
                store: Arc::default(),
                fault: Arc::default(),
                clock: Arc::clone(&clock),
            })
            .collect()
    }

    /// Makes this master fail from now on (see [`Fault`]).
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.fault) = fault;
    }

    /// The store, to look inside (or to plant a key) in a test.
    pub fn store(&self) -> MutexGuard<'_, MemStore> {
        lock(&self.store)
    }

    /// The value of a live lock key.
    pub fn value(&self, key: &str) -> Option<String> {
        self.store()
            .peek(key, (self.clock)())
            .map(|(v, _)| v.to_owned())
    }

    /// Forgets every key and fence: a restart without persistence.
    pub fn restart_empty(&self) {
        self.store().clear();
    }

    /// Waits out a fault before a command: `Err` for a down master, never
    /// for a hung one when `writes`.
    async fn gate(&self, writes: bool) -> Result<(), MasterFailure> {
        let fault = *lock(&self.fault);
        match fault {
            Fault::None => Ok(()),
            Fault::Down => Err(MasterFailure::Unreachable(
                "in-memory master is down".into(),
            )),
            Fault::Hang if writes => std::future::pending().await,
            Fault::Hang => Ok(()),
        }
    }

    /// Runs `op` on the store at the clock's `now`, after the fault gate.
    async fn run<R>(
        &self,
        writes: bool,
        op: impl FnOnce(&mut MemStore, Instant) -> Result<R, MasterFailure> + Send,
    ) -> Result<R, MasterFailure> {
        self.gate(writes).await?;
        let now = (self.clock)();
        op(&mut self.store(), now)
    }
}

impl Master for MemMaster {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn acquire(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(true, move |s, now| s.acquire(now, keys, token, ttl))
    }

    fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(true, move |s, now| {
            s.extend(now, keys, token, ttl, recreate)
        })
    }

    fn release(
        &self,
        keys: &[String],
        token: &Token,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(false, move |s, now| s.release(now, keys, token))
    }

    fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> impl Future<Output = Result<u64, MasterFailure>> + Send {
        self.run(true, move |s, now| {
            s.acquire_fenced(now, keys, fences, token, ttl)
        })
    }

    fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> impl Future<Output = Result<(KeyState, u64), MasterFailure>> + Send {
        self.run(false, move |s, now| Ok(s.inspect(now, key, fences)))
    }

    fn force_delete(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(false, move |s, _| {
            s.force_delete(keys);
            Ok(())
        })
    }

    fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(true, move |s, now| {
            s.set_fence(now, keys, fences, token, fence)
        })
    }

    fn forget_fences(
        &self,
        fences: FenceKeys<'_>,
    ) -> impl Future<Output = Result<(), MasterFailure>> + Send {
        self.run(false, move |s, _| {
            s.forget_fences(fences);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TOKEN_BYTES;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn ttl(ms: u64) -> Ttl {
        Ttl::try_from(Duration::from_millis(ms)).expect("valid TTL")
    }

    #[test]
    fn acquire_is_all_or_none_and_never_shortens_our_key() {
        let mut s = MemStore::new();
        let (a, b) = (
            Token::from_bytes([1; TOKEN_BYTES]),
            Token::from_bytes([2; TOKEN_BYTES]),
        );
        let t0 = Instant::now();
        assert_eq!(s.acquire(t0, &keys(&["x"]), &a, ttl(1000)), Ok(()));
        // b wants x and y: x is a's, so y is not written either.
        assert_eq!(
            s.acquire(t0, &keys(&["y", "x"]), &b, ttl(1000)),
            Err(MasterFailure::Held)
        );
        assert_eq!(s.peek("y", t0), None);
        // A resent acquire of a with a shorter TTL leaves the longer expiry.
        assert_eq!(s.acquire(t0, &keys(&["x"]), &a, ttl(10)), Ok(()));
        assert_eq!(
            s.peek("x", t0).map(|(_, e)| e),
            Some(t0 + Duration::from_secs(1))
        );
    }

    #[test]
    fn extend_release_and_fences_follow_the_scripts() {
        let mut s = MemStore::new();
        let (a, b) = (
            Token::from_bytes([1; TOKEN_BYTES]),
            Token::from_bytes([2; TOKEN_BYTES]),
        );
        let t0 = Instant::now();
        let k = keys(&["x", "y"]);
        let fields = keys(&["x", "y"]);
        let fences = FenceKeys {
            hash: "p:",
            fields: &fields,
        };
        assert_eq!(
            s.extend(t0, &k, &a, ttl(100), false),
            Err(MasterFailure::NotHeld)
        );
        assert_eq!(s.acquire_fenced(t0, &k, fences, &a, ttl(100)), Ok(0));
        let fence = Fence::new(7).expect("valid fence");
        assert_eq!(
            s.set_fence(t0, &k, fences, &b, fence),
            Err(MasterFailure::NotHeld)
        );
        assert_eq!(s.set_fence(t0, &k, fences, &a, fence), Ok(()));
        // Never lowered.
        let lower = Fence::new(3).expect("valid fence");
        assert_eq!(s.set_fence(t0, &k, fences, &a, lower), Ok(()));
        assert_eq!(s.highest_fence(fences), 7);
        assert_eq!(
            s.extend(t0, &k, &b, ttl(100), true),
            Err(MasterFailure::Held)
        );
        // Expired: extend fails unless it may re-create.
        let later = t0 + Duration::from_millis(100);
        assert_eq!(
            s.extend(later, &k, &a, ttl(100), false),
            Err(MasterFailure::NotHeld)
        );
        assert_eq!(s.extend(later, &k, &a, ttl(100), true), Ok(()));
        assert_eq!(s.release(later, &k, &b), Err(MasterFailure::NotHeld));
        assert_eq!(s.release(later, &k, &a), Ok(()));
        assert_eq!(s.inspect(later, "x", fences), (KeyState::Free, 7));
        // An operator's reset forgets them.
        s.forget_fences(fences);
        assert_eq!(s.highest_fence(fences), 0);
        s.set_fence(later, &k, fences, &a, lower)
            .expect_err("released: not ours");
        // Fences outlive the keys, not an empty restart.
        s.clear();
        assert_eq!(s.highest_fence(fences), 0);
    }
}
