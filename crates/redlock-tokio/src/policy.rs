//! When the watchdog extends a lock, when it retries, and when it must stop.
//!
//! Everything here is a pure function of the policy, the lock's validity and
//! `now`, in the quinn-proto style: no clock is read and no timer is armed,
//! so the schedule is tested deterministically at the bottom of this file.
//! [`watchdog`](crate::watchdog) is the only caller that turns these
//! instants into timers.

use std::fmt;
use std::time::{Duration, Instant};

use redlock_core::{ResourceSet, RetryPolicy};

/// How early the loss timer fires before a lock's validity ends.
///
/// tokio rounds timer deadlines *up* to its 1 ms tick, and a timer never
/// fires before its deadline: sleeping until `valid_until` itself would tell
/// the work up to a tick after the lock stopped being trustworthy, plus the
/// wake-ups of the watchdog task and of the task waiting for the signal.
/// With a one-tick lead we measured the signal reaching a waiting task
/// about 0.3 ms *after* `valid_until` (median, real masters); two ticks
/// cover the rounding and the usual wake-ups. A busy runtime adds its own
/// scheduling delay, which no timer avoids.
pub(crate) const TIMER_LEAD: Duration = Duration::from_millis(2);

/// Smallest gap between two extension attempts after a failed one, so a
/// master set that keeps failing fast (connection refused) is not hammered
/// while validity runs out.
pub(crate) const MIN_RETRY_GAP: Duration = Duration::from_millis(10);

/// When the watchdog extends: once the remaining validity drops to this
/// threshold.
///
/// Built by constructors that check their input (parse, don't validate):
///
/// ```
/// use std::time::Duration;
/// use redlock_tokio::Threshold;
///
/// // Extend when a third of the TTL is left.
/// let t = Threshold::fraction(1.0 / 3.0)?;
/// // Extend when 2 s of validity are left, whatever the TTL.
/// let t = Threshold::remaining(Duration::from_secs(2))?;
/// assert!(Threshold::fraction(1.5).is_err());
/// # Ok::<(), redlock_tokio::InvalidThreshold>(())
/// ```
///
/// The default, half the TTL, leaves half a TTL to retry a failed
/// extension before the lock lapses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold(ThresholdKind);

#[derive(Clone, Copy, Debug, PartialEq)]
enum ThresholdKind {
    Fraction(f64),
    Remaining(Duration),
}

/// A [`Threshold`] that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidThreshold {
    /// A fraction outside `(0, 1)`, or not a finite number. At 0 the lock
    /// would only be extended once it lapsed; at 1 or more, continuously.
    #[error("extension threshold fraction {0} is invalid: it must be a finite number strictly between 0 and 1")]
    Fraction(f64),
    /// A remaining-validity threshold of zero: the lock would only be
    /// extended once it had lapsed.
    #[error("extension threshold must be greater than zero")]
    Zero,
}

impl Threshold {
    /// Extend once the remaining validity is at most `fraction` of the TTL.
    ///
    /// # Errors
    ///
    /// [`InvalidThreshold::Fraction`] unless `0 < fraction < 1`.
    pub fn fraction(fraction: f64) -> Result<Self, InvalidThreshold> {
        if fraction.is_finite() && fraction > 0.0 && fraction < 1.0 {
            Ok(Self(ThresholdKind::Fraction(fraction)))
        } else {
            Err(InvalidThreshold::Fraction(fraction))
        }
    }

    /// Extend once the remaining validity is at most `remaining`.
    ///
    /// A threshold at or above the lock's validity does not make the
    /// watchdog spin: at least a tenth of the remaining validity passes
    /// between two extensions (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`InvalidThreshold::Zero`] for a zero duration.
    pub fn remaining(remaining: Duration) -> Result<Self, InvalidThreshold> {
        if remaining.is_zero() {
            Err(InvalidThreshold::Zero)
        } else {
            Ok(Self(ThresholdKind::Remaining(remaining)))
        }
    }

    /// The threshold as a duration, for a lock of TTL `ttl`.
    pub fn lead(&self, ttl: Duration) -> Duration {
        match self.0 {
            // `mul_f64` cannot panic here: `f` is finite and in (0, 1).
            ThresholdKind::Fraction(f) => ttl.mul_f64(f),
            ThresholdKind::Remaining(d) => d,
        }
    }
}

impl Default for Threshold {
    /// Half the TTL.
    fn default() -> Self {
        Self(ThresholdKind::Fraction(0.5))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ThresholdKind::Fraction(x) => write!(f, "{:.0}% of the TTL left", x * 100.0),
            ThresholdKind::Remaining(d) => write!(f, "{} left", redlock_core::HumanDuration(d)),
        }
    }
}

/// What a guard's watchdog does while the guard lives.
///
/// | setting | default |
/// |---|---|
/// | auto-extension | on |
/// | [`threshold`](Self::threshold) | extend at half the TTL left ([`Threshold::default`]) |
/// | [`max_extensions`](Self::max_extensions) | unlimited |
/// | [`max_hold`](Self::max_hold) | unlimited |
///
/// With auto-extension off the watchdog still runs: it fires the loss
/// signal when the validity ends, and releases the lock when the guard is
/// dropped.
///
/// ```
/// use std::time::Duration;
/// use redlock_tokio::{ExtendPolicy, Threshold};
///
/// let policy = ExtendPolicy::new()
///     .threshold(Threshold::fraction(0.3)?)
///     .max_extensions(100)
///     .max_hold(Duration::from_secs(600));
/// assert!(policy.is_enabled());
/// assert!(!ExtendPolicy::disabled().is_enabled());
/// # Ok::<(), redlock_tokio::InvalidThreshold>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtendPolicy {
    disabled: bool,
    threshold: Threshold,
    max_extensions: Option<u32>,
    max_hold: Option<Duration>,
}

impl ExtendPolicy {
    /// Auto-extension on, with the defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// No auto-extension: the lock lives for its first validity only, and
    /// the loss signal fires when that ends.
    pub fn disabled() -> Self {
        Self {
            disabled: true,
            ..Self::default()
        }
    }

    /// When to extend.
    pub fn threshold(mut self, threshold: Threshold) -> Self {
        self.threshold = threshold;
        self
    }

    /// At most `n` successful extensions; after that the lock lapses at the
    /// end of its validity, and the loss signal says
    /// [`LossReason::CapReached`](crate::LossReason::CapReached). `0`
    /// behaves like [`disabled`](Self::disabled) but reports the cap.
    pub fn max_extensions(mut self, n: u32) -> Self {
        self.max_extensions = Some(n);
        self
    }

    /// No extension starts once the lock has been held for `d`; it then
    /// lapses at the end of its validity (so it is held at most `d` plus
    /// one TTL), and the loss signal says
    /// [`LossReason::CapReached`](crate::LossReason::CapReached).
    pub fn max_hold(mut self, d: Duration) -> Self {
        self.max_hold = Some(d);
        self
    }

    /// Whether auto-extension is on.
    pub fn is_enabled(&self) -> bool {
        !self.disabled
    }

    /// The extension threshold.
    pub fn threshold_value(&self) -> Threshold {
        self.threshold
    }

    /// The cap on the number of extensions, if any.
    pub fn max_extensions_value(&self) -> Option<u32> {
        self.max_extensions
    }

    /// The cap on the hold time, if any.
    pub fn max_hold_value(&self) -> Option<Duration> {
        self.max_hold
    }
}

/// A cap of [`ExtendPolicy`] that stopped the extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cap {
    /// [`ExtendPolicy::max_extensions`] extensions were made.
    Extensions(u32),
    /// The lock had been held for [`ExtendPolicy::max_hold`].
    HoldTime(Duration),
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Extensions(n) => write!(f, "extension cap of {n} reached"),
            Self::HoldTime(d) => write!(
                f,
                "hold-time cap of {} reached",
                redlock_core::HumanDuration(*d)
            ),
        }
    }
}

/// Per-call settings of [`LockManager::acquire_with`](crate::LockManager::acquire_with)
/// and [`LockManager::with_lock_opts`](crate::LockManager::with_lock_opts):
/// how to acquire (TTL, retries, wait deadline) and how the watchdog
/// extends. Anything not set uses the manager's settings.
///
/// ```
/// use std::time::Duration;
/// use redlock_tokio::{ExtendPolicy, LockOptions};
///
/// // One attempt, a 2 s TTL, extended at most 10 times.
/// let opts = LockOptions::once()
///     .ttl(Duration::from_secs(2))
///     .extend(ExtendPolicy::new().max_extensions(10));
/// ```
#[derive(Clone, Debug, Default)]
pub struct LockOptions {
    pub(crate) acquire: redlock_core::AcquireOptions,
    pub(crate) extend: Option<ExtendPolicy>,
}

impl LockOptions {
    /// The manager's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single attempt: no retries, no wait deadline.
    pub fn once() -> Self {
        Self {
            acquire: redlock_core::AcquireOptions::once(),
            extend: None,
        }
    }

    /// TTL of this lock (also of each of its extensions).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.acquire = self.acquire.ttl(ttl);
        self
    }

    /// Retry policy of the acquisition (jittered exponential backoff).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.acquire = self.acquire.retry(retry);
        self
    }

    /// Overall wait deadline of the acquisition (`None`: the retry count
    /// alone bounds it).
    pub fn wait(mut self, wait: Option<Duration>) -> Self {
        self.acquire = self.acquire.wait(wait);
        self
    }

    /// Whether this lock gets a fencing token ([`LockGuard::fence`](crate::LockGuard::fence));
    /// default: the manager's `fencing` setting. It costs one more round
    /// trip to a quorum.
    pub fn fenced(mut self, on: bool) -> Self {
        self.acquire = self.acquire.fenced(on);
        self
    }

    /// Watchdog policy of this lock.
    pub fn extend(mut self, policy: ExtendPolicy) -> Self {
        self.extend = Some(policy);
        self
    }
}

/// Converts a caller's resource argument, keeping the core's error type.
pub(crate) fn resource_set<S>(resources: S) -> Result<ResourceSet, redlock_core::ConfigError>
where
    S: TryInto<ResourceSet>,
    S::Error: Into<redlock_core::ConfigError>,
{
    resources.try_into().map_err(Into::into)
}

/// When the loss timer of a lock valid until `valid_until` fires.
pub(crate) fn loss_deadline(valid_until: Instant) -> Instant {
    // `checked_sub` only fails for an instant near the clock's origin; the
    // deadline itself is then the best we can do.
    valid_until.checked_sub(TIMER_LEAD).unwrap_or(valid_until)
}

/// When to start the next extension after an acquisition or a successful
/// extension at `now`.
///
/// Normally `valid_until - lead`. A lead at or above the remaining validity
/// (a large absolute threshold, or a lock that came back with little
/// validity) is clipped so that at least a tenth of the remaining validity
/// passes first: the watchdog then extends about ten times per validity
/// period instead of spinning.
pub(crate) fn next_extension(now: Instant, valid_until: Instant, lead: Duration) -> Instant {
    let remaining = valid_until.saturating_duration_since(now);
    // Clip the lead so at least 10% of the remaining validity passes first;
    // without it, a lead above the validity would extend in a tight loop.
    let lead = lead.min(remaining.mul_f64(0.9));
    valid_until.checked_sub(lead).unwrap_or(now).max(now)
}

/// When to retry after an extension attempt failed without a definite
/// answer (masters timed out or unreachable) at `now`.
///
/// A quarter of the remaining validity, but at least [`MIN_RETRY_GAP`]:
/// attempts get denser as the deadline nears, so a master set that comes
/// back late still gets a chance, and a few attempts are made in all
/// (about `log(remaining / 10 ms) / log(4/3)`; 22 for one second).
pub(crate) fn retry_at(now: Instant, valid_until: Instant) -> Instant {
    let remaining = valid_until.saturating_duration_since(now);
    // A retry after the deadline is harmless: the loss timer fires first.
    now + (remaining / 4).max(MIN_RETRY_GAP)
}

/// The cap that forbids an extension starting at `at`, if any, for a lock
/// acquired at `acquired_at` and extended `extensions` times.
pub(crate) fn cap_reached(
    policy: &ExtendPolicy,
    extensions: u32,
    acquired_at: Instant,
    at: Instant,
) -> Option<Cap> {
    if let Some(max) = policy.max_extensions {
        if extensions >= max {
            return Some(Cap::Extensions(max));
        }
    }
    if let Some(max) = policy.max_hold {
        if at.saturating_duration_since(acquired_at) >= max {
            return Some(Cap::HoldTime(max));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn thresholds_are_checked() {
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(Threshold::fraction(bad).is_err(), "{bad}");
        }
        assert!(Threshold::fraction(0.01).is_ok());
        assert_eq!(
            Threshold::remaining(Duration::ZERO),
            Err(InvalidThreshold::Zero)
        );
        assert_eq!(
            Threshold::default().lead(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        let t = Threshold::remaining(Duration::from_secs(2)).expect("valid");
        assert_eq!(t.lead(Duration::from_secs(30)), Duration::from_secs(2));
    }

    #[test]
    fn extends_when_threshold_reached() {
        let now = Instant::now();
        let until = now + 9_900 * MS;
        // Half of a 10 s TTL: extend when 5 s are left.
        assert_eq!(next_extension(now, until, 5_000 * MS), now + 4_900 * MS);
        // Already below the threshold (a slow acquire): extend soon, but
        // only after a tenth of what is left.
        let until = now + 1_000 * MS;
        assert_eq!(next_extension(now, until, 5_000 * MS), now + 100 * MS);
        // No validity left: "now", the loss timer decides.
        assert_eq!(next_extension(now, now, 5_000 * MS), now);
        assert_eq!(next_extension(now + MS, now, 5_000 * MS), now + MS);
    }

    #[test]
    fn threshold_above_validity_does_not_spin() {
        let mut now = Instant::now();
        let ttl = 1_000 * MS;
        let mut count = 0;
        // Simulate 10 TTLs of successful extensions with a threshold far
        // above the TTL: about ten extensions per TTL, never a tight loop.
        let end = now + 10 * ttl;
        while now < end {
            let next = next_extension(now, now + ttl, 60_000 * MS);
            assert!(next >= now + 99 * MS, "gap {:?}", next - now);
            now = next;
            count += 1;
        }
        assert!((95..=101).contains(&count), "{count}");
    }

    #[test]
    fn retries_get_denser_but_never_spin() {
        let start = Instant::now();
        let until = start + 1_000 * MS;
        let mut now = start;
        let mut attempts = 0;
        while now < until {
            let next = retry_at(now, until);
            assert!(next - now >= MIN_RETRY_GAP);
            now = next;
            attempts += 1;
        }
        assert_eq!(retry_at(start, until), start + 250 * MS);
        assert!((15..=30).contains(&attempts), "{attempts}");
    }

    #[test]
    fn loss_timer_leads_by_two_ticks() {
        let t = Instant::now() + Duration::from_secs(1);
        assert_eq!(loss_deadline(t), t - TIMER_LEAD);
        assert!(loss_deadline(t) <= t);
    }

    #[test]
    fn caps() {
        let t0 = Instant::now();
        let p = ExtendPolicy::new();
        assert_eq!(
            cap_reached(&p, u32::MAX, t0, t0 + Duration::from_secs(1_000_000)),
            None
        );
        let p = ExtendPolicy::new().max_extensions(3);
        assert_eq!(cap_reached(&p, 2, t0, t0), None);
        assert_eq!(cap_reached(&p, 3, t0, t0), Some(Cap::Extensions(3)));
        let p = ExtendPolicy::new().max_hold(Duration::from_secs(5));
        assert_eq!(cap_reached(&p, 100, t0, t0 + 4_999 * MS), None);
        assert_eq!(
            cap_reached(&p, 100, t0, t0 + 5_000 * MS),
            Some(Cap::HoldTime(Duration::from_secs(5)))
        );
        let p = ExtendPolicy::new().max_extensions(0);
        assert_eq!(cap_reached(&p, 0, t0, t0), Some(Cap::Extensions(0)));
    }
}
