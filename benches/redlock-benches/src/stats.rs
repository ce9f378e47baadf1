//! The numbers the report prints from its latency histograms.
//!
//! The histogram itself is the one `redlock bench` records into
//! ([`redlock_cli::latency::Latency`], microsecond resolution), re-exported
//! here, so that both measure latencies one way.

pub use redlock_cli::latency::Latency;

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
    fn median_and_range() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(range(&[3.0, 1.0, 2.0]), (1.0, 3.0));
        assert_eq!(median(&[]), 0.0);
    }
}
