//! Latency histograms (HdrHistogram, microsecond resolution) and the
//! numbers the report prints from them.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest recordable latency: one minute, in microseconds. Anything
/// slower saturates (nothing in these workloads comes close).
const MAX_US: u64 = 60_000_000;

/// A latency distribution in microseconds, 3 significant digits.
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
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("constant, valid histogram bounds"))
    }

    /// A distribution of `samples`.
    pub fn of<I: IntoIterator<Item = Duration>>(samples: I) -> Self {
        let mut h = Self::new();
        for d in samples {
            h.record(d);
        }
        h
    }

    /// Records one latency (below 1 µs counts as 1 µs).
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.saturating_record(us);
    }

    /// Adds every sample of `other`.
    ///
    /// # Panics
    ///
    /// Never: both histograms have the same bounds.
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with identical bounds always add");
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

    /// Maximum in milliseconds.
    pub fn max(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// Points `(latency ms, fraction of samples at or below it)` of the
    /// cumulative distribution, for a CDF chart.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let total = self.0.len().max(1) as f64;
        let mut seen = 0u64;
        self.0
            .iter_recorded()
            .map(|v| {
                seen += v.count_at_value();
                (
                    self.0.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    seen as f64 / total,
                )
            })
            .collect()
    }
}

/// Median of a few numbers (e.g. one p50 per round); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `(min, max)` of a few numbers; `(0, 0)` when empty.
pub fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold(None, |acc: Option<(f64, f64)>, &x| {
            Some(acc.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
        })
        .unwrap_or((0.0, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn median_and_range() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(range(&[3.0, 1.0, 2.0]), (1.0, 3.0));
        assert_eq!(median(&[]), 0.0);
    }
}
