//! Latency histograms and the wall/CPU span of a workload.
//!
//! Latencies are recorded in microseconds into HdrHistograms (3 significant
//! digits), so percentiles are exact to 0.1% whatever the spread.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds (one hour, in µs); longer ones are
/// clamped rather than lost.
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub(crate) struct Lat(Histogram<u64>);

impl Lat {
    pub(crate) fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant bounds: 1 <= low, high >= 2 * low, sigfig 3 <= 5"),
        )
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.0.saturating_record(us);
    }

    pub(crate) fn merge(&mut self, other: &Lat) {
        // Same bounds everywhere, so adding cannot fail; if it ever did,
        // dropping one task's samples is better than aborting the run.
        let _ = self.0.add(&other.0);
    }

    /// The histogram, for plotting.
    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    pub(crate) fn summary(&self) -> LatSummary {
        let h = &self.0;
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0 } else { h.value_at_quantile(x) };
        LatSummary {
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

/// Latency percentiles of one operation (`LATENCY` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LatSummary {
    pub(crate) count: u64,
    pub(crate) min_us: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `x` per second over `secs` (0 for an empty span).
pub(crate) fn per_sec(x: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round1(x as f64 / secs)
    } else {
        0.0
    }
}

/// Wall-clock and CPU time of a workload. The CPU time is this process's
/// (the client's) alone: spawned servers are children and not counted, so
/// it shows what a quorum costs the client itself, which is what remains
/// when the masters run on hosts of their own. (The slowed-master proxy
/// runs on threads of this process, so its CPU is counted in that
/// scenario.)
#[derive(Debug)]
pub(crate) struct Span {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Span {
    pub(crate) fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: crate::sys::process_cpu_time(),
        }
    }

    /// Wall time so far, and client CPU µs per `ops` operations (0 when
    /// unknown).
    pub(crate) fn finish(&self, ops: u64) -> (Duration, f64) {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, crate::sys::process_cpu_time()) {
            (Some(a), Some(b)) if ops > 0 => {
                round1(b.saturating_sub(a).as_secs_f64() * 1e6 / ops as f64)
            }
            _ => 0.0,
        };
        (wall, cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut l = Lat::new();
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
        let s = Lat::new().summary();
        assert_eq!((s.count, s.p99_us, s.max_us), (0, 0, 0));
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut l = Lat::new();
        l.record(Duration::from_secs(10 * 3600));
        l.record(Duration::ZERO);
        assert_eq!(l.summary().count, 2);
    }

    #[test]
    fn rates_of_an_empty_span_are_zero() {
        assert_eq!(per_sec(10, 0.0), 0.0);
        assert_eq!(per_sec(10, 4.0), 2.5);
    }
}
