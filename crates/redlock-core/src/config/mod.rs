//! Checked configuration: the [`Settings`] of a lock manager and their
//! builder, over the checked value types of `values`. Every input is
//! parsed at the boundary into a type that cannot hold a bad value.
//!
//! Nothing in this module touches the network or the clock.

use std::time::Duration;

use crate::error::ConfigError;
use crate::retry::RetryPolicy;

mod values;

pub use values::{
    DriftFactor, KeyPrefix, Quorum, Resource, ResourceSet, Ttl, MAX_PREFIX_LEN, MAX_RESOURCE_LEN,
    MAX_TTL_MS,
};

/// Validated settings of a lock manager, independent of how masters are
/// reached. Build with [`Settings::builder`].
///
/// Every field was checked against the others: the drift margin leaves
/// validity, the per-master timeout is shorter than the validity budget, the
/// quorum is a strict majority.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) ttl: Ttl,
    pub(crate) drift_factor: DriftFactor,
    pub(crate) quorum: Quorum,
    pub(crate) master_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) wait: Option<Duration>,
    pub(crate) prefix: KeyPrefix,
    pub(crate) min_validity: Duration,
    pub(crate) danger_extend_recreates: bool,
    pub(crate) restart_guard: bool,
    pub(crate) max_ttl: Ttl,
    pub(crate) clock_check: bool,
    pub(crate) fencing: bool,
    pub(crate) holder: Option<HolderSetting>,
    #[cfg(feature = "__broken-for-negative-controls")]
    pub(crate) mutant_no_elapsed_check: bool,
    #[cfg(feature = "__broken-for-negative-controls")]
    pub(crate) mutant_no_fence_write_back: bool,
}

impl Settings {
    /// A builder with the defaults listed on [`SettingsBuilder`].
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder::default()
    }

    /// Default TTL of new locks.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// Drift factor.
    pub fn drift_factor(&self) -> DriftFactor {
        self.drift_factor
    }

    /// Quorum.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Per-master timeout of each command.
    pub fn master_timeout(&self) -> Duration {
        self.master_timeout
    }

    /// Retry policy used by `acquire`.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Overall wait deadline of `acquire`, if any.
    pub fn wait(&self) -> Option<Duration> {
        self.wait
    }

    /// Key prefix.
    pub fn prefix(&self) -> &KeyPrefix {
        &self.prefix
    }

    /// Minimum validity a fresh or extended lock must have left.
    pub fn min_validity(&self) -> Duration {
        self.min_validity
    }

    /// Whether extend re-creates keys a master lost (opt-in, see
    /// [`SettingsBuilder::danger_extend_recreates_missing_keys`]).
    pub fn danger_extend_recreates(&self) -> bool {
        self.danger_extend_recreates
    }

    /// Whether the restart guard is on (see
    /// [`SettingsBuilder::danger_disable_restart_guard`]).
    pub fn restart_guard(&self) -> bool {
        self.restart_guard
    }

    /// The longest TTL any lock or extension may ask for: the restart
    /// guard's window (see [`SettingsBuilder::max_ttl`]).
    pub fn max_ttl(&self) -> Ttl {
        self.max_ttl
    }

    /// A fresh token for a new acquisition: random, with the holder record
    /// when recording holders is on (see [`SettingsBuilder::holder_label`]).
    pub fn new_token(&self, runtime: &impl crate::Runtime) -> crate::Token {
        match &self.holder {
            Some(h) => crate::Token::with_holder(runtime, &runtime.holder(h.label.as_deref())),
            None => crate::Token::random(runtime),
        }
    }

    /// Whether locks get a fencing token unless an acquire says otherwise
    /// (see [`SettingsBuilder::fencing`]).
    pub fn fencing(&self) -> bool {
        self.fencing
    }

    /// Whether masters' clock rates are checked (see
    /// [`SettingsBuilder::check_master_clocks`]).
    pub fn clock_check(&self) -> bool {
        self.clock_check
    }

    /// Checks that a TTL leaves validity after the drift margin and the
    /// per-master timeout. Used for the default TTL and for per-call TTLs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DriftConsumesTtl`] or
    /// [`ConfigError::TimeoutNotBelowValidity`].
    pub fn check_ttl(&self, ttl: Ttl) -> Result<(), ConfigError> {
        check_ttl(
            ttl,
            self.max_ttl,
            self.drift_factor,
            self.master_timeout,
            self.min_validity,
        )
    }
}

fn check_ttl(
    ttl: Ttl,
    max_ttl: Ttl,
    factor: DriftFactor,
    timeout: Duration,
    min_validity: Duration,
) -> Result<(), ConfigError> {
    if ttl > max_ttl {
        return Err(ConfigError::TtlAboveMax {
            ttl: ttl.as_duration(),
            max: max_ttl.as_duration(),
        });
    }
    let drift = crate::validity::drift(ttl, factor);
    let budget = ttl.as_duration().saturating_sub(drift);
    if budget.is_zero() || budget <= min_validity {
        return Err(ConfigError::DriftConsumesTtl {
            ttl: ttl.as_duration(),
            drift,
            min_validity,
        });
    }
    // A master that answers at the very end of its timeout must still leave
    // some validity, or every slow-but-successful acquire is refused.
    if timeout >= budget - min_validity {
        return Err(ConfigError::TimeoutNotBelowValidity { timeout, budget });
    }
    Ok(())
}

/// Builder for [`Settings`]. Defaults:
///
/// | setting | default |
/// |---|---|
/// | `ttl` | 10 s |
/// | `drift_factor` | 0.01 (plus 2 ms) |
/// | `quorum` | `floor(N/2) + 1` |
/// | `master_timeout` | 50 ms |
/// | `retry` | [`RetryPolicy::default`]: 30 retries, 20 ms..200 ms backoff, equal jitter |
/// | `wait` | none (the retry count alone bounds `acquire`) |
/// | `key_prefix` | `"redlock:"` |
/// | `min_validity` | 0 (validity must merely be in the future) |
/// | `max_ttl` | 60 s ([`DEFAULT_MAX_TTL`]; the restart guard's window) |
/// | restart guard | on |
#[derive(Clone, Debug)]
pub struct SettingsBuilder {
    ttl: Duration,
    drift_factor: f64,
    quorum: Option<usize>,
    master_timeout: Duration,
    retry: RetryPolicy,
    wait: Option<Duration>,
    prefix: String,
    min_validity: Duration,
    danger_extend_recreates: bool,
    restart_guard: bool,
    max_ttl: Duration,
    clock_check: bool,
    fencing: bool,
    holder: Option<HolderSetting>,
    #[cfg(feature = "__broken-for-negative-controls")]
    mutant_no_elapsed_check: bool,
    #[cfg(feature = "__broken-for-negative-controls")]
    mutant_no_fence_write_back: bool,
}

/// Whether and how holders are recorded (see
/// [`SettingsBuilder::holder_label`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HolderSetting {
    label: Option<String>,
}

/// The default maximum TTL of a deployment, and so the default window of
/// the restart guard: a master that restarted is kept from granting locks
/// for this long (plus a second of uptime granularity).
///
/// Why 60 s: long enough for any lock that is extended while its work runs
/// (the TTL bounds how long a crashed holder blocks others, not how long
/// work may take), short enough that a master restarted without
/// persistence is back in the quorum a minute later.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(60);

/// Whether the restart guard is on unless configured otherwise.
const RESTART_GUARD_DEFAULT: bool = true;

impl Default for SettingsBuilder {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            drift_factor: DriftFactor::DEFAULT.get(),
            quorum: None,
            master_timeout: Duration::from_millis(50),
            retry: RetryPolicy::default(),
            wait: None,
            prefix: KeyPrefix::default().as_str().to_owned(),
            min_validity: Duration::ZERO,
            danger_extend_recreates: false,
            restart_guard: RESTART_GUARD_DEFAULT,
            max_ttl: DEFAULT_MAX_TTL,
            clock_check: false,
            fencing: false,
            holder: Some(HolderSetting { label: None }),
            #[cfg(feature = "__broken-for-negative-controls")]
            mutant_no_elapsed_check: false,
            #[cfg(feature = "__broken-for-negative-controls")]
            mutant_no_fence_write_back: false,
        }
    }
}

impl SettingsBuilder {
    /// Default TTL of new locks.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Drift factor in `[0, 1)`.
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.drift_factor = factor;
        self
    }

    /// Votes needed to grant; must be more than half the masters.
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// Per-master command timeout. Keep it far below the TTL: it bounds how
    /// long a dead master can delay a refusal or a release.
    pub fn master_timeout(mut self, timeout: Duration) -> Self {
        self.master_timeout = timeout;
        self
    }

    /// Retry policy of `acquire`.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Overall deadline of `acquire`, measured from its call.
    pub fn wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }

    /// Key prefix, non-empty.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Minimum validity a lock must have left when acquired or extended;
    /// below it the attempt counts as failed.
    pub fn min_validity(mut self, min: Duration) -> Self {
        self.min_validity = min;
        self
    }

    /// Let extend re-create a key that a master no longer has (for instance
    /// after it restarted empty), as long as no other token holds it there.
    ///
    /// Off by default. It weakens safety: a master that lost the key may
    /// already have granted it to someone else and seen it released, and
    /// re-creating it then adds a vote the holder never earned in a fair
    /// race. Use only with persistence or restart delays in place.
    pub fn danger_extend_recreates_missing_keys(mut self, on: bool) -> Self {
        self.danger_extend_recreates = on;
        self
    }

    /// Turns the restart guard off (`true`) or on (`false`).
    ///
    /// The guard: a master that reports an uptime shorter than the longest
    /// TTL in use (when first contacted, and again after every reconnect)
    /// grants no new lock until it has been up that long. A master that
    /// restarted empty may have lost keys that other holders count on;
    /// letting it grant them again is how two holders each get a quorum.
    /// Turn it off only when the masters persist every write (AOF with
    /// `appendfsync always`) or are never restarted within a TTL, or when
    /// they were just created empty for this process alone (tests,
    /// benchmarks, `redlock --spawn`).
    pub fn danger_disable_restart_guard(mut self, off: bool) -> Self {
        self.restart_guard = !off;
        self
    }

    /// The longest TTL any lock or extension of this manager may ask for,
    /// and the restart guard's window (default [`DEFAULT_MAX_TTL`]).
    ///
    /// The restart guard keeps a master that restarted (and may have lost
    /// its keys) from granting locks until every lock that counted on it
    /// has expired; no client knows the TTLs the other clients use, so the
    /// guard needs a bound that every client of the deployment shares. Set
    /// the same value on every client; TTLs above it are refused
    /// ([`ConfigError::TtlAboveMax`]).
    pub fn max_ttl(mut self, max: Duration) -> Self {
        self.max_ttl = max;
        self
    }

    /// Samples each master's `TIME` (at most once a second per master,
    /// pipelined with the lock commands) and stops counting acquire and
    /// extend votes from a master whose clock rate departs from ours by more
    /// than the drift factor, or that jumped forward, until its rate looks
    /// right again over a 30 s window.
    ///
    /// Off by default: it costs one extra command per master per second of
    /// activity and needs the `TIME` command in the ACL; it needs half a
    /// second of observation before it can judge; and masters kept in sync
    /// by NTP slewing stay far inside a 1% budget. Turn it on where master
    /// clocks may be stepped or run unsynchronised.
    pub fn check_master_clocks(mut self, on: bool) -> Self {
        self.clock_check = on;
        self
    }

    /// Records who holds each lock (host, process id, since when, and
    /// `label` if given) with the lock on every master, so a refused
    /// contender, `redlock inspect` and
    /// [`Redlock::inspect`](crate::Redlock::inspect) can show it. On by
    /// default (without a label). Labels are cut to
    /// [`MAX_LABEL_LEN`](crate::MAX_LABEL_LEN) bytes.
    pub fn holder_label(mut self, label: impl Into<String>) -> Self {
        self.holder = Some(HolderSetting {
            label: Some(label.into()),
        });
        self
    }

    /// Stops recording who holds each lock: the lock keys then hold the
    /// random token alone (32 bytes instead of about 60).
    pub fn without_holder(mut self) -> Self {
        self.holder = None;
        self
    }

    /// Gives every lock a fencing token ([`Lock::fence`](crate::Lock::fence))
    /// unless an acquire says otherwise (default off). It costs a second
    /// round trip to a quorum per acquire, and one never-expiring hash field
    /// per resource on every master (in the hash whose key is the key
    /// prefix); fences are monotonic only while masters keep those counters
    /// (persistence: see `docs/algorithm.md`).
    pub fn fencing(mut self, on: bool) -> Self {
        self.fencing = on;
        self
    }

    /// Breaks fencing on purpose: the fence is `max + 1` without the
    /// write-back round, so two holders can get the same fence. Only with
    /// the `__broken-for-negative-controls` feature, for the simulation's negative control.
    #[cfg(feature = "__broken-for-negative-controls")]
    #[doc(hidden)]
    pub fn mutant_no_fence_write_back(mut self, on: bool) -> Self {
        self.mutant_no_fence_write_back = on;
        self
    }

    /// Breaks the algorithm on purpose: the lock is trusted for a full TTL
    /// from the moment the quorum is reached, ignoring the time the acquire
    /// took and the drift margin. Only with the `__broken-for-negative-controls` feature, which
    /// exists so the simulation can show its checker catches this.
    #[cfg(feature = "__broken-for-negative-controls")]
    #[doc(hidden)]
    pub fn mutant_no_elapsed_check(mut self, on: bool) -> Self {
        self.mutant_no_elapsed_check = on;
        self
    }

    /// Checks everything for a manager of `masters` masters.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] naming the first bad setting.
    pub fn build(self, masters: usize) -> Result<Settings, ConfigError> {
        let quorum = match self.quorum {
            Some(q) => Quorum::new(q, masters)?,
            None => Quorum::majority(masters)?,
        };
        let ttl = Ttl::try_from(self.ttl)?;
        let drift_factor = DriftFactor::new(self.drift_factor)?;
        if self.master_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let prefix = KeyPrefix::new(self.prefix)?;
        if self.wait == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroWait);
        }
        self.retry.check()?;
        let max_ttl = Ttl::try_from(self.max_ttl)?;
        check_ttl(
            ttl,
            max_ttl,
            drift_factor,
            self.master_timeout,
            self.min_validity,
        )?;
        Ok(Settings {
            ttl,
            drift_factor,
            quorum,
            master_timeout: self.master_timeout,
            retry: self.retry,
            wait: self.wait,
            prefix,
            min_validity: self.min_validity,
            danger_extend_recreates: self.danger_extend_recreates,
            restart_guard: self.restart_guard,
            max_ttl,
            clock_check: self.clock_check,
            fencing: self.fencing,
            holder: self.holder,
            #[cfg(feature = "__broken-for-negative-controls")]
            mutant_no_elapsed_check: self.mutant_no_elapsed_check,
            #[cfg(feature = "__broken-for-negative-controls")]
            mutant_no_fence_write_back: self.mutant_no_fence_write_back,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reject_drift_that_eats_the_ttl() {
        // 2 ms TTL: the fixed 2 ms of drift leaves nothing.
        let err = Settings::builder()
            .ttl(Duration::from_millis(2))
            .build(3)
            .expect_err("no validity left");
        assert!(matches!(err, ConfigError::DriftConsumesTtl { .. }), "{err}");
        // A 0.99 factor on 100 ms leaves 100 - 99 - 2 < 0.
        let err = Settings::builder()
            .ttl(Duration::from_millis(100))
            .drift_factor(0.99)
            .build(3)
            .expect_err("no validity left");
        assert!(matches!(err, ConfigError::DriftConsumesTtl { .. }), "{err}");
    }

    #[test]
    fn settings_reject_timeout_not_below_validity() {
        let err = Settings::builder()
            .ttl(Duration::from_millis(100))
            .master_timeout(Duration::from_millis(100))
            .build(3)
            .expect_err("timeout as long as the ttl");
        assert!(
            matches!(err, ConfigError::TimeoutNotBelowValidity { .. }),
            "{err}"
        );
    }

    #[test]
    fn ttl_above_the_deployment_maximum_is_refused() {
        let err = Settings::builder()
            .ttl(Duration::from_secs(61))
            .build(3)
            .expect_err("above the default maximum");
        assert!(matches!(err, ConfigError::TtlAboveMax { .. }), "{err}");
        let s = Settings::builder()
            .ttl(Duration::from_secs(61))
            .max_ttl(Duration::from_secs(120))
            .build(3)
            .expect("raised maximum");
        assert!(matches!(
            s.check_ttl(Ttl::from_millis(120_001).expect("ttl")),
            Err(ConfigError::TtlAboveMax { .. })
        ));
        assert!(s.check_ttl(Ttl::from_millis(120_000).expect("ttl")).is_ok());
    }

    #[test]
    fn settings_defaults_are_valid() {
        let s = Settings::builder().build(5).expect("defaults are valid");
        assert_eq!(s.quorum().needed(), 3);
        assert_eq!(s.prefix().as_str(), "redlock:");
        assert_eq!(s.ttl().as_millis(), 10_000);
        assert!(matches!(
            Settings::builder().build(0),
            Err(ConfigError::NoMasters)
        ));
        assert!(matches!(
            Settings::builder().quorum(2).build(4),
            Err(ConfigError::InvalidQuorum { .. })
        ));
        assert!(matches!(
            Settings::builder().key_prefix("").build(1),
            Err(ConfigError::InvalidPrefix { .. })
        ));
        assert!(matches!(
            Settings::builder().master_timeout(Duration::ZERO).build(1),
            Err(ConfigError::ZeroTimeout)
        ));
    }
}
