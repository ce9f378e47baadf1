//! The system-wide monotonic clock, and (re-exported from
//! `redlock-testing`) signals to our own child processes.
//!
//! The chaos run compares timestamps taken by many processes, so it needs a
//! clock that is one timeline for all of them. On Linux `CLOCK_MONOTONIC` is
//! system-wide (it counts from boot, unaffected by wall-clock changes), and
//! it is also the clock behind [`std::time::Instant`], which does not expose
//! its raw value.

use std::time::{Duration, Instant};

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC`: comparable across the processes of
/// one machine.
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The instant `at` on the [`monotonic_ns`] timeline.
///
/// `Instant` hides its raw value, so this reads both clocks next to each
/// other and carries the difference over. A process paused between the
/// reads would shift the result by the pause, so readings more than 1 ms
/// apart are thrown away and taken again.
pub fn instant_to_ns(at: Instant) -> u64 {
    loop {
        let before = monotonic_ns();
        let now = Instant::now();
        let after = monotonic_ns();
        if after.saturating_sub(before) > 1_000_000 {
            continue;
        }
        let anchor = before + (after - before) / 2;
        return match at.checked_duration_since(now) {
            Some(ahead) => anchor.saturating_add(duration_ns(ahead)),
            None => anchor.saturating_sub(duration_ns(now.duration_since(at))),
        };
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// Signals to our own children: `redlock-testing`'s one implementation,
// which the chaos run uses for its workers as it does for servers.
pub use redlock_testing::{signal, Signal};

/// `SIGSTOP`: freezes a process (it cannot be caught or ignored).
pub const SIGSTOP: Signal = Signal::STOP;
/// `SIGCONT`: resumes a stopped process.
pub const SIGCONT: Signal = Signal::CONT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_matches_instant() {
        let a = monotonic_ns();
        let now = Instant::now();
        let mapped = instant_to_ns(now);
        let b = monotonic_ns();
        assert!(
            a <= mapped + 1_000_000 && mapped <= b + 1_000_000,
            "{a} {mapped} {b}"
        );
        let later = instant_to_ns(now + Duration::from_secs(2));
        let diff = later.abs_diff(mapped);
        assert!(diff.abs_diff(2_000_000_000) < 2_000_000, "{diff}");
        if let Some(before) = now.checked_sub(Duration::from_millis(5)) {
            let earlier = instant_to_ns(before);
            assert!(mapped.abs_diff(earlier).abs_diff(5_000_000) < 2_000_000);
        }
    }

    #[test]
    fn refuses_group_pids() {
        assert!(signal(0, SIGCONT).is_err());
    }
}
