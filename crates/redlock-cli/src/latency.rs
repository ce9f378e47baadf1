//! Latency histograms and their summary.
//!
//! Latencies are recorded in microseconds into HdrHistograms (3
//! significant digits), so percentiles are exact to 0.1% whatever the
//! spread.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds (one hour, in µs); longer ones are
/// clamped rather than lost.
const MAX_US: u64 = 3_600_000_000;

/// A latency distribution in microseconds.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty distribution.
    ///
    /// # Panics
    ///
    /// Never: the bounds are constants hdrhistogram accepts.
    pub fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant bounds: 1 <= low, high >= 2 * low, sigfig 3 <= 5"),
        )
    }

    /// A distribution of `samples`.
    pub fn of<I: IntoIterator<Item = Duration>>(samples: I) -> Self {
        let mut h = Self::new();
        for d in samples {
            h.record(d);
        }
        h
    }

    /// Records one latency: below 1 µs counts as 1 µs, above an hour as
    /// an hour.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.0.saturating_record(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds everywhere, so adding cannot fail; if it ever did,
        // dropping one task's samples is better than aborting the run.
        let _ = self.0.add(&other.0);
    }

    /// The histogram, for plotting.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// Median in milliseconds.
    pub fn p50(&self) -> f64 {
        self.ms(0.50)
    }

    /// 90th percentile in milliseconds.
    pub fn p90(&self) -> f64 {
        self.ms(0.90)
    }

    /// 99th percentile in milliseconds.
    pub fn p99(&self) -> f64 {
        self.ms(0.99)
    }

    /// Maximum in milliseconds (0 when empty).
    pub fn max(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// Points `(latency µs, fraction of samples at or below it)` of the
    /// cumulative distribution, one per recorded value.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        self.0
            .iter_recorded()
            .map(|v| {
                (
                    v.value_iterated_to().max(1) as f64,
                    v.quantile_iterated_to(),
                )
            })
            .collect()
    }

    /// The percentiles of `redlock bench`'s tables and JSON.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0 } else { h.value_at_quantile(x) };
        LatencySummary {
            count: h.len(),
            min_us: if empty { 0 } else { h.min() },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: if empty { 0 } else { h.max() },
            mean_us: if empty { 0.0 } else { round1(h.mean()) },
        }
    }
}

/// Latency percentiles of one operation (`LATENCY` in `redlock bench`'s
/// JSON schema), in microseconds; all 0 when there were no samples.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Fastest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean, to 0.1 µs.
    pub mean_us: f64,
}

/// `x` rounded to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut l = Latency::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
    }

    #[test]
    fn empty_histograms_summarize_to_zero() {
        let s = Latency::new().summary();
        assert_eq!((s.count, s.p99_us, s.max_us), (0, 0, 0));
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::from_secs(10 * 3600));
        l.record(Duration::ZERO);
        assert_eq!(l.summary().count, 2);
    }

    #[test]
    fn quantiles_in_milliseconds() {
        let h = Latency::of((1..=100).map(Duration::from_millis));
        assert_eq!(h.count(), 100);
        assert!((h.p50() - 50.0).abs() < 0.1, "{}", h.p50());
        assert!((h.p99() - 99.0).abs() < 0.1, "{}", h.p99());
        assert!((h.max() - 100.0).abs() < 0.1, "{}", h.max());
        let cdf = h.cdf();
        assert_eq!(cdf.len(), 100);
        assert!((cdf[cdf.len() - 1].1 - 1.0).abs() < 1e-9);
    }
}
