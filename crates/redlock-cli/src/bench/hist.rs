//! Rates and the wall/CPU span of a workload. The latency histogram is
//! [`redlock_cli::latency`], shared with the benchmark report.

use std::time::{Duration, Instant};

pub(crate) use redlock_cli::latency::{round1, Latency, LatencySummary};

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
    fn rates_of_an_empty_span_are_zero() {
        assert_eq!(per_sec(10, 0.0), 0.0);
        assert_eq!(per_sec(10, 4.0), 2.5);
    }
}
