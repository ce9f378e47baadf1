//! Drift margin and validity: pure arithmetic on [`Instant`]s.
//!
//! The lock is trusted from the moment the acquire was *sent* (`start`, read
//! before the first command left) until `start + ttl - drift`. Measuring from
//! `start` rather than from the replies is what makes the bound safe: every
//! master set its key at or after `start`, so each key outlives the validity
//! by at least the drift margin, as long as the master's clock does not run
//! faster than ours by more than the drift factor.

use std::time::{Duration, Instant};

use crate::config::{DriftFactor, Ttl};

/// Fixed part of the drift margin: Redis expires keys with 1 ms resolution,
/// and one more millisecond covers the minimum drift between two clocks.
pub const DRIFT_FLOOR: Duration = Duration::from_millis(2);

/// The drift margin for a TTL: `ttl * factor + 2 ms`, rounded up to a whole
/// microsecond so rounding never shrinks the margin.
pub fn drift(ttl: Ttl, factor: DriftFactor) -> Duration {
    // ttl is at most i64::MAX / 2 ms, so the product fits an f64 exactly
    // enough; rounding up keeps the margin on the safe side.
    let micros = (ttl.as_millis() as f64 * 1000.0 * factor.get()).ceil();
    // Saturating cast: f64 -> u64 `as` saturates, and a margin that large is
    // rejected by the caller's validity check anyway.
    Duration::from_micros(micros as u64).saturating_add(DRIFT_FLOOR)
}

/// When a lock acquired (or extended) with commands sent at `start` stops
/// being trustworthy: `start + ttl - drift`. `None` if that instant is not
/// representable (a TTL of millions of years), which callers treat as a
/// configuration error rather than silently capping.
pub fn valid_until(start: Instant, ttl: Ttl, factor: DriftFactor) -> Option<Instant> {
    let budget = ttl.as_duration().checked_sub(drift(ttl, factor))?;
    start.checked_add(budget)
}

/// How much validity is left at `now`; zero once it has passed.
pub fn remaining(valid_until: Instant, now: Instant) -> Duration {
    valid_until.saturating_duration_since(now)
}

/// Whether a lock whose validity ends at `valid_until` may still be used at
/// `now` with at least `min` to spare. A lock is never valid *at* its end.
pub fn is_valid(valid_until: Instant, now: Instant, min: Duration) -> bool {
    remaining(valid_until, now) > min
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ttl(ms: u64) -> Ttl {
        Ttl::from_millis(ms).expect("test ttl in range")
    }

    #[test]
    fn drift_matches_formula() {
        assert_eq!(
            drift(ttl(10_000), DriftFactor::DEFAULT),
            Duration::from_millis(102)
        );
        assert_eq!(
            drift(ttl(1), DriftFactor::new(0.0).expect("valid")),
            Duration::from_millis(2)
        );
        assert_eq!(
            drift(ttl(1), DriftFactor::DEFAULT),
            Duration::from_micros(2010)
        );
    }

    #[test]
    fn validity_from_start() {
        let start = Instant::now();
        let until = valid_until(start, ttl(10_000), DriftFactor::DEFAULT).expect("representable");
        assert_eq!(until - start, Duration::from_millis(9_898));
        // Small TTL: never underflows (a peer crashes on `validity - 500`).
        assert_eq!(valid_until(start, ttl(1), DriftFactor::DEFAULT), None);
        assert_eq!(
            valid_until(start, ttl(2), DriftFactor::new(0.0).expect("valid")),
            Some(start)
        );
    }

    #[test]
    fn validity_edges() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(is_valid(until, t0, Duration::ZERO));
        assert!(!is_valid(until, until, Duration::ZERO));
        assert!(!is_valid(
            until,
            until + Duration::from_millis(1),
            Duration::ZERO
        ));
        assert!(!is_valid(until, t0, Duration::from_millis(100)));
        assert!(is_valid(until, t0, Duration::from_millis(99)));
        assert_eq!(
            remaining(until, until + Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    proptest! {
        /// The validity window always ends at least the drift margin before
        /// the key can expire on a master that set it at `start` or later.
        #[test]
        fn validity_leaves_drift_margin(ms in 1u64..10_000_000, factor in 0.0f64..0.99, elapsed_ms in 0u64..100_000) {
            let t = ttl(ms);
            let f = DriftFactor::new(factor).expect("in range");
            let start = Instant::now();
            if let Some(until) = valid_until(start, t, f) {
                let earliest_expiry = start + t.as_duration();
                prop_assert!(until + drift(t, f) <= earliest_expiry);
                let now = start + Duration::from_millis(elapsed_ms);
                if is_valid(until, now, Duration::ZERO) {
                    prop_assert!(now < earliest_expiry);
                }
            } else {
                prop_assert!(drift(t, f) > t.as_duration());
            }
        }
    }
}
