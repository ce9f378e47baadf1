//! Durations for people: `850ms`, `1.98s`, `2m5s`, never Rust's
//! `Debug` form (`1.977737831s`). Used by every error message.

use std::fmt;
use std::time::Duration;

/// Displays a [`Duration`] for people, with two or three significant
/// digits: `420µs`, `12ms`, `1.98s`, `29.9s`, `1m30s`, `3h7m`, `2d4h`.
///
/// ```
/// use std::time::Duration;
/// use redlock_core::HumanDuration;
///
/// assert_eq!(HumanDuration(Duration::from_millis(1977)).to_string(), "1.98s");
/// assert_eq!(HumanDuration(Duration::from_secs(125)).to_string(), "2m5s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// `x` with at most `decimals` decimals, trailing zeros dropped.
        fn trimmed(x: f64, decimals: usize) -> String {
            let s = format!("{x:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        }
        let d = self.0;
        let secs = d.as_secs();
        if d.is_zero() {
            f.write_str("0s")
        } else if d < Duration::from_millis(1) {
            write!(f, "{}µs", d.as_micros())
        } else if d < Duration::from_millis(10) {
            write!(f, "{}ms", trimmed(d.as_secs_f64() * 1e3, 2))
        } else if d < Duration::from_micros(999_500) {
            // Below 999.5 ms, so rounding never prints `1000ms`.
            write!(f, "{}ms", trimmed(d.as_secs_f64() * 1e3, 0))
        } else if d < Duration::from_millis(9_995) {
            write!(f, "{}s", trimmed(d.as_secs_f64(), 2))
        } else if d < Duration::from_millis(59_950) {
            write!(f, "{}s", trimmed(d.as_secs_f64(), 1))
        } else if secs < 3600 {
            // Whole seconds from here on; `59.96s` lands here as `1m`.
            let secs = d.as_secs_f64().round() as u64;
            match (secs / 60, secs % 60) {
                (m, 0) => write!(f, "{m}m"),
                (m, s) => write!(f, "{m}m{s}s"),
            }
        } else if secs < 86_400 {
            match (secs / 3600, secs % 3600 / 60) {
                (h, 0) => write!(f, "{h}h"),
                (h, m) => write!(f, "{h}h{m}m"),
            }
        } else {
            match (secs / 86_400, secs % 86_400 / 3600) {
                (days, 0) => write!(f, "{days}d"),
                (days, h) => write!(f, "{days}d{h}h"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_person_writes() {
        let h = |d: Duration| HumanDuration(d).to_string();
        assert_eq!(h(Duration::from_micros(420)), "420µs");
        assert_eq!(h(Duration::from_millis(12)), "12ms");
        assert_eq!(h(Duration::from_nanos(1_977_737_831)), "1.98s");
        assert_eq!(h(Duration::from_secs(42)), "42s");
        assert_eq!(h(Duration::from_millis(29_940)), "29.9s");
        assert_eq!(h(Duration::from_secs(125)), "2m5s");
        assert_eq!(h(Duration::from_secs(90)), "1m30s");
        assert_eq!(h(Duration::from_secs(3 * 3600 + 7 * 60)), "3h7m");
        assert_eq!(h(Duration::ZERO), "0s");
    }
}
