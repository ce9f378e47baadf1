//! Retry schedule: exponential backoff with equal jitter, as a pure function
//! of the attempt number and a random draw.

use std::time::Duration;

use crate::error::ConfigError;

/// How `acquire` waits between attempts.
///
/// The delay before retry `k` (1-based) is `d = min(max, base * 2^(k-1))`,
/// then a uniform draw from `[d/2, d]` ("equal jitter"): half the delay is
/// guaranteed, so waiters never hammer the masters, and the other half
/// spreads contenders that were refused together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    retries: u32,
    base: Duration,
    max: Duration,
}

impl Default for RetryPolicy {
    /// 30 retries, 20 ms base, 200 ms cap: at most about 5.5 s of waiting.
    ///
    /// The cap is low on purpose: under contention the holder releases
    /// after a short critical section, and a waiter whose backoff had grown
    /// to a second would sleep through many hand-offs while a task that
    /// just released (or a waiter that arrived later) keeps winning. A
    /// 200 ms cap keeps every waiter within a few hand-offs of a free lock;
    /// the equal jitter still spreads contenders refused together.
    fn default() -> Self {
        Self {
            retries: 30,
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// A policy with `retries` retries after the first attempt and a backoff
    /// from `base` doubling up to `max`.
    pub fn new(retries: u32, base: Duration, max: Duration) -> Self {
        Self { retries, base, max }
    }

    /// No retries: one attempt only.
    pub fn never() -> Self {
        Self {
            retries: 0,
            ..Self::default()
        }
    }

    /// Retry until the wait deadline (or forever without one).
    pub fn unbounded(base: Duration, max: Duration) -> Self {
        Self {
            retries: u32::MAX,
            base,
            max,
        }
    }

    /// Number of retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Delay ceiling before the first retry (it doubles from there).
    pub fn base(&self) -> Duration {
        self.base
    }

    /// Largest delay ceiling.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The same backoff with no retry limit: for waiting until a deadline
    /// on the default schedule.
    pub fn until_deadline(self) -> Self {
        Self {
            retries: u32::MAX,
            ..self
        }
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRetry`] when `base` is zero (contenders would
    /// spin) or `max < base`.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.base.is_zero() || self.max < self.base {
            return Err(ConfigError::InvalidRetry {
                base: self.base,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The delay before retry `retry` (1-based) given a uniform random
    /// `draw`. Pure: the same inputs give the same delay.
    pub fn delay(&self, retry: u32, draw: u64) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1u32 << shift).min(self.max);
        let half = ceiling / 2;
        let span = (ceiling - half).as_nanos() as u64;
        // `span + 1` cannot overflow: `max` would need to be 584 years.
        let extra = if span == 0 {
            0
        } else {
            draw % (span.saturating_add(1))
        };
        half + Duration::from_nanos(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_millis(400));
        // draw 0 gives the guaranteed half.
        assert_eq!(p.delay(1, 0), Duration::from_millis(50));
        assert_eq!(p.delay(2, 0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 0), Duration::from_millis(200));
        assert_eq!(p.delay(4, 0), Duration::from_millis(200));
        assert_eq!(p.delay(40, 0), Duration::from_millis(200));
        // the largest draw gives the full ceiling.
        assert_eq!(p.delay(1, 50_000_000), Duration::from_millis(100));
    }

    #[test]
    fn rejects_spinning_policies() {
        assert!(RetryPolicy::new(1, Duration::ZERO, Duration::from_secs(1))
            .check()
            .is_err());
        assert!(
            RetryPolicy::new(1, Duration::from_secs(2), Duration::from_secs(1))
                .check()
                .is_err()
        );
        assert!(RetryPolicy::default().check().is_ok());
    }

    proptest! {
        #[test]
        fn delay_within_jitter_band(retry in 0u32..100, draw in any::<u64>(), base_ms in 1u64..1000, extra_ms in 0u64..10_000) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let p = RetryPolicy::new(5, base, max);
            let d = p.delay(retry, draw);
            prop_assert!(d <= max);
            prop_assert!(d >= base / 2 || d >= max / 2);
            prop_assert!(!d.is_zero());
        }
    }
}
