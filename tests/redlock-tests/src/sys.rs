//! The only call into libc of this crate, the system-wide monotonic clock,
//! and (re-exported from the harness) signals to our own child processes.
//!
//! The chaos run compares timestamps taken by many processes, so it needs a
//! clock that is one timeline for all of them. On Linux `CLOCK_MONOTONIC` is
//! system-wide (it counts from boot, unaffected by wall-clock changes), and
//! it is also the clock behind [`std::time::Instant`], which does not expose
//! its raw value.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

/// Nanoseconds on `CLOCK_MONOTONIC`: comparable across the processes of
/// one machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed `timespec` for the whole
    // call; clock_gettime(2) only writes into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // CLOCK_MONOTONIC always exists on Linux and the pointer is valid, so
    // the call cannot fail (EINVAL/EFAULT are its only errors).
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
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

// Signals to our own children: the harness's one implementation, which
// the chaos run uses for its workers as the harness does for servers.
pub use redlock_harness::{signal, SIGCONT, SIGSTOP};

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
