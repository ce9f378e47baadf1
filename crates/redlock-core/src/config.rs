//! Checked configuration types: every input is parsed here, at the boundary,
//! into a type that cannot hold a bad value.
//!
//! Nothing in this module touches the network or the clock.

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;
use crate::retry::RetryPolicy;

/// The largest TTL Redis accepts for `PX`, with room to spare.
///
/// Redis rejects `PX ms` when `ms > LLONG_MAX - now_ms`. Half of `i64::MAX`
/// milliseconds (about 146 million years) leaves room for any clock value, and
/// keeps `Instant + ttl` far from overflow.
pub const MAX_TTL_MS: u64 = (i64::MAX as u64) / 2;

/// The longest resource name accepted, in bytes.
///
/// Redis keys can be far longer, but a lock name this long is a bug in the
/// caller; a hard limit also bounds what one lock costs on every master.
pub const MAX_RESOURCE_LEN: usize = 1024;

/// The longest key prefix accepted, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// Time-to-live of a lock key on each master: at least 1 ms, at most
/// [`MAX_TTL_MS`].
///
/// ```
/// use std::time::Duration;
/// use redlock_core::Ttl;
///
/// let ttl = Ttl::try_from(Duration::from_secs(10))?;
/// assert_eq!(ttl.as_millis(), 10_000);
/// assert!(Ttl::try_from(Duration::ZERO).is_err());
/// # Ok::<(), redlock_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u64);

impl Ttl {
    /// Builds a TTL from whole milliseconds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TtlZero`] for 0 and [`ConfigError::TtlTooLarge`] above
    /// [`MAX_TTL_MS`].
    pub fn from_millis(ms: u64) -> Result<Self, ConfigError> {
        if ms == 0 {
            return Err(ConfigError::TtlZero);
        }
        if ms > MAX_TTL_MS {
            return Err(ConfigError::TtlTooLarge { ms });
        }
        Ok(Self(ms))
    }

    /// The TTL in whole milliseconds, as sent in `PX`.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// The TTL as a [`Duration`].
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = ConfigError;

    /// Sub-millisecond parts are rejected rather than rounded: Redis counts
    /// whole milliseconds, and silently shortening a lease is the wrong way to
    /// round.
    fn try_from(d: Duration) -> Result<Self, ConfigError> {
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(ConfigError::TtlNotWholeMillis { ttl: d });
        }
        let ms =
            u64::try_from(d.as_millis()).map_err(|_| ConfigError::TtlTooLarge { ms: u64::MAX })?;
        Self::from_millis(ms)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The fraction of the TTL reserved for clock drift between this process and
/// the masters, in `[0, 1)`. Default 0.01.
///
/// The reserved time is `ttl * factor + 2 ms` (see [`drift`](crate::drift)):
/// a master whose clock runs faster than ours by less than `factor` expires
/// our key no earlier than we stop trusting the lock.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct DriftFactor(f64);

impl DriftFactor {
    /// The default: 1% of the TTL, as in the Redlock description.
    pub const DEFAULT: DriftFactor = DriftFactor(0.01);

    /// Checks that `factor` is finite and in `[0, 1)`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidDriftFactor`] otherwise.
    pub fn new(factor: f64) -> Result<Self, ConfigError> {
        if factor.is_finite() && (0.0..1.0).contains(&factor) {
            Ok(Self(factor))
        } else {
            Err(ConfigError::InvalidDriftFactor { factor })
        }
    }

    /// The factor as a plain number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for DriftFactor {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The number of masters that must agree: more than half of them, at most all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quorum {
    needed: usize,
    masters: usize,
}

impl Quorum {
    /// The majority quorum `floor(n / 2) + 1`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoMasters`] when `masters == 0`.
    pub fn majority(masters: usize) -> Result<Self, ConfigError> {
        if masters == 0 {
            return Err(ConfigError::NoMasters);
        }
        Ok(Self {
            needed: masters / 2 + 1,
            masters,
        })
    }

    /// A custom quorum. It must be a strict majority: two holders that each
    /// gathered `needed` votes out of `masters` must share a master, which is
    /// only guaranteed when `2 * needed > masters`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoMasters`] or [`ConfigError::InvalidQuorum`].
    pub fn new(needed: usize, masters: usize) -> Result<Self, ConfigError> {
        if masters == 0 {
            return Err(ConfigError::NoMasters);
        }
        // `needed > masters / 2` in integers is exactly `2 * needed > masters`.
        if needed <= masters / 2 || needed > masters {
            return Err(ConfigError::InvalidQuorum {
                quorum: needed,
                masters,
            });
        }
        Ok(Self { needed, masters })
    }

    /// Votes needed to grant.
    pub fn needed(self) -> usize {
        self.needed
    }

    /// Number of masters voting.
    pub fn masters(self) -> usize {
        self.masters
    }

    /// How many masters may fail before the outcome is certainly a refusal.
    pub fn tolerated_failures(self) -> usize {
        self.masters - self.needed
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.needed, self.masters)
    }
}

/// A lock name: non-empty, at most [`MAX_RESOURCE_LEN`] bytes.
///
/// The key on each master is the manager's prefix followed by this name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource(String);

impl Resource {
    /// Checks and wraps a name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyResource`] or [`ConfigError::ResourceTooLong`].
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        if name.is_empty() {
            return Err(ConfigError::EmptyResource);
        }
        if name.len() > MAX_RESOURCE_LEN {
            return Err(ConfigError::ResourceTooLong { len: name.len() });
        }
        Ok(Self(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Resource {
    type Error = ConfigError;
    fn try_from(s: &str) -> Result<Self, ConfigError> {
        Self::new(s)
    }
}

impl TryFrom<String> for Resource {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, ConfigError> {
        Self::new(s)
    }
}

/// One or more resources locked together, sorted and without duplicates.
///
/// Sorting gives every contender the same key order, so two multi-resource
/// acquisitions can never each hold half of the other's keys on one master
/// (the scripts are atomic per master anyway; the order keeps replies and
/// reports stable).
///
/// ```
/// use redlock_core::ResourceSet;
///
/// let set = ResourceSet::try_from(["b", "a", "b"])?;
/// let names: Vec<&str> = set.iter().map(|r| r.as_str()).collect();
/// assert_eq!(names, ["a", "b"]);
/// # Ok::<(), redlock_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceSet(Vec<Resource>);

impl ResourceSet {
    /// Checks every name, then sorts and removes duplicates.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoResources`] for an empty list, or the error of the
    /// first bad name.
    pub fn new<I, S>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v = names
            .into_iter()
            .map(Resource::new)
            .collect::<Result<Vec<_>, _>>()?;
        if v.is_empty() {
            return Err(ConfigError::NoResources);
        }
        v.sort();
        v.dedup();
        Ok(Self(v))
    }

    /// The resources in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.0.iter()
    }

    /// Number of distinct resources.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a set holds at least one resource.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys on each master: `prefix + name`, in the same order.
    pub fn keys(&self, prefix: &KeyPrefix) -> Vec<String> {
        self.0
            .iter()
            .map(|r| format!("{}{}", prefix.as_str(), r.as_str()))
            .collect()
    }
}

impl fmt::Display for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

impl From<Resource> for ResourceSet {
    fn from(r: Resource) -> Self {
        Self(vec![r])
    }
}

impl TryFrom<&str> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: &str) -> Result<Self, ConfigError> {
        Ok(Resource::new(s)?.into())
    }
}

impl TryFrom<String> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, ConfigError> {
        Ok(Resource::new(s)?.into())
    }
}

impl TryFrom<&String> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: &String) -> Result<Self, ConfigError> {
        Ok(Resource::new(s.as_str())?.into())
    }
}

impl TryFrom<&[&str]> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: &[&str]) -> Result<Self, ConfigError> {
        Self::new(s.iter().copied())
    }
}

impl<const N: usize> TryFrom<[&str; N]> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: [&str; N]) -> Result<Self, ConfigError> {
        Self::new(s)
    }
}

impl TryFrom<Vec<String>> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: Vec<String>) -> Result<Self, ConfigError> {
        Self::new(s)
    }
}

impl TryFrom<&ResourceSet> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: &ResourceSet) -> Result<Self, ConfigError> {
        Ok(s.clone())
    }
}

/// The prefix put before every lock key, so lock keys never clash with data
/// keys. Non-empty, at most [`MAX_PREFIX_LEN`] bytes. Default `"redlock:"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Checks and wraps a prefix.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidPrefix`] when empty or too long.
    pub fn new(prefix: impl Into<String>) -> Result<Self, ConfigError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(ConfigError::InvalidPrefix { len: prefix.len() });
        }
        Ok(Self(prefix))
    }

    /// The prefix as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self("redlock:".to_owned())
    }
}

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
    #[cfg(feature = "sim-mutants")]
    pub(crate) mutant_no_elapsed_check: bool,
    #[cfg(feature = "sim-mutants")]
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
    pub fn new_token(&self) -> crate::Token {
        match &self.holder {
            Some(h) => crate::Token::with_holder(&crate::Holder::current(h.label.as_deref())),
            None => crate::Token::random(),
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
    #[cfg(feature = "sim-mutants")]
    mutant_no_elapsed_check: bool,
    #[cfg(feature = "sim-mutants")]
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
            prefix: KeyPrefix::default().0,
            min_validity: Duration::ZERO,
            danger_extend_recreates: false,
            restart_guard: RESTART_GUARD_DEFAULT,
            max_ttl: DEFAULT_MAX_TTL,
            clock_check: false,
            fencing: false,
            holder: Some(HolderSetting { label: None }),
            #[cfg(feature = "sim-mutants")]
            mutant_no_elapsed_check: false,
            #[cfg(feature = "sim-mutants")]
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
    /// the `sim-mutants` feature, for the simulation's negative control.
    #[cfg(feature = "sim-mutants")]
    #[doc(hidden)]
    pub fn mutant_no_fence_write_back(mut self, on: bool) -> Self {
        self.mutant_no_fence_write_back = on;
        self
    }

    /// Breaks the algorithm on purpose: the lock is trusted for a full TTL
    /// from the moment the quorum is reached, ignoring the time the acquire
    /// took and the drift margin. Only with the `sim-mutants` feature, which
    /// exists so the simulation can show its checker catches this.
    #[cfg(feature = "sim-mutants")]
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
            #[cfg(feature = "sim-mutants")]
            mutant_no_elapsed_check: self.mutant_no_elapsed_check,
            #[cfg(feature = "sim-mutants")]
            mutant_no_fence_write_back: self.mutant_no_fence_write_back,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert!(matches!(Ttl::from_millis(0), Err(ConfigError::TtlZero)));
        assert_eq!(Ttl::from_millis(1).map(Ttl::as_millis).ok(), Some(1));
        assert!(Ttl::from_millis(MAX_TTL_MS).is_ok());
        assert!(matches!(
            Ttl::from_millis(MAX_TTL_MS + 1),
            Err(ConfigError::TtlTooLarge { .. })
        ));
        assert!(matches!(
            Ttl::try_from(Duration::from_micros(1500)),
            Err(ConfigError::TtlNotWholeMillis { .. })
        ));
        assert!(matches!(
            Ttl::try_from(Duration::MAX),
            Err(ConfigError::TtlNotWholeMillis { .. } | ConfigError::TtlTooLarge { .. })
        ));
        assert!(matches!(
            Ttl::try_from(Duration::from_secs(u64::MAX / 1000)),
            Err(ConfigError::TtlTooLarge { .. })
        ));
    }

    #[test]
    fn quorum_must_be_strict_majority() {
        assert!(matches!(Quorum::majority(0), Err(ConfigError::NoMasters)));
        for n in 1..=9 {
            let q = Quorum::majority(n).expect("majority of n >= 1 exists");
            assert!(2 * q.needed() > n);
            assert!(q.needed() <= n);
            for needed in 0..=n + 1 {
                let ok = Quorum::new(needed, n).is_ok();
                assert_eq!(ok, 2 * needed > n && needed <= n, "n={n} needed={needed}");
            }
        }
        // Even N: half is not enough (a split vote must never grant both sides).
        assert!(Quorum::new(2, 4).is_err());
        assert_eq!(Quorum::majority(4).map(Quorum::needed).ok(), Some(3));
    }

    #[test]
    fn drift_factor_range() {
        for bad in [f64::NAN, f64::INFINITY, -0.1, 1.0, 2.0] {
            assert!(DriftFactor::new(bad).is_err(), "{bad}");
        }
        assert!(DriftFactor::new(0.0).is_ok());
        assert!(DriftFactor::new(0.999).is_ok());
    }

    #[test]
    fn resources_checked_sorted_deduped() {
        assert!(matches!(Resource::new(""), Err(ConfigError::EmptyResource)));
        assert!(matches!(
            Resource::new("x".repeat(MAX_RESOURCE_LEN + 1)),
            Err(ConfigError::ResourceTooLong { .. })
        ));
        assert!(Resource::new("x".repeat(MAX_RESOURCE_LEN)).is_ok());
        assert!(matches!(
            ResourceSet::new(Vec::<String>::new()),
            Err(ConfigError::NoResources)
        ));
        assert!(matches!(
            ResourceSet::try_from(["a", ""]),
            Err(ConfigError::EmptyResource)
        ));
        let set = ResourceSet::try_from(["c", "a", "c", "b"]).expect("valid names");
        assert_eq!(set.to_string(), "a,b,c");
        assert_eq!(
            set.keys(&KeyPrefix::default()),
            ["redlock:a", "redlock:b", "redlock:c"]
        );
    }

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
