//! The checked value types of the configuration: TTL, drift factor,
//! quorum, resource names and the key prefix. Each is parsed once, at the
//! boundary, into a type that cannot hold a bad value.

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;
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
    pub const DEFAULT: Self = Self(0.01);

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

impl TryFrom<&Self> for ResourceSet {
    type Error = ConfigError;
    fn try_from(s: &Self) -> Result<Self, ConfigError> {
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
}
