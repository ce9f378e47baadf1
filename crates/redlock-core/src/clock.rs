//! The clock check: estimate each master's clock rate against ours from
//! `TIME` samples, and stop counting a master whose clock runs faster or
//! slower than the drift budget allows. Pure: samples in, verdicts out.
//!
//! Why a rate and not an offset: Redis expires keys by its own clock, so
//! what breaks the validity bound is a master clock that *advances* faster
//! than ours (it expires our key before we stop trusting the lock). A
//! constant offset is harmless; a forward jump or a fast clock is not. Over
//! a window of samples, a jump of `J` shows up as a rate error of `J / span`
//! until the jump leaves the window.
//!
//! Each sample's uncertainty is its round trip: the master read its clock
//! somewhere between our send and our receive. Over a span `S` between two
//! samples with round trips `r1`, `r2`, the rate is known to within
//! `(r1 + r2) / 2 / S`; a master is suspect only when its rate error exceeds
//! the budget by more than that, so a slow link never causes a false alarm.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One `TIME` reading: when we asked, when the answer came, what it said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// Our monotonic clock when the command was sent.
    pub sent: Instant,
    /// Our monotonic clock when the reply arrived.
    pub received: Instant,
    /// The master's clock (time since the Unix epoch, from `TIME`).
    pub master: Duration,
}

/// What the samples say about a master's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClockVerdict {
    /// Not enough observation time yet to estimate a rate.
    Unknown,
    /// The rate is within budget. `rate` is master seconds per our second.
    Healthy {
        /// Estimated rate.
        rate: f64,
    },
    /// The rate departs from ours by more than the budget, beyond doubt.
    Suspect {
        /// Estimated rate.
        rate: f64,
    },
}

/// Rate estimator over a sliding window of samples.
#[derive(Clone, Debug)]
pub struct ClockCheck {
    budget: f64,
    window: Duration,
    min_span: Duration,
    samples: VecDeque<ClockSample>,
}

impl ClockCheck {
    /// A check with rate budget `budget` (the drift factor: a master may
    /// run up to that fraction faster or slower than us), judging over
    /// samples at most `window` old, once they span at least `min_span`.
    pub fn new(budget: f64, window: Duration, min_span: Duration) -> Self {
        Self {
            budget,
            window,
            min_span,
            samples: VecDeque::new(),
        }
    }

    /// Records a sample and returns the verdict over the window. A sample
    /// older than the newest one is ignored (replies can race).
    pub fn observe(&mut self, sample: ClockSample) -> ClockVerdict {
        if sample.received < sample.sent {
            return self.verdict();
        }
        if self
            .samples
            .back()
            .is_some_and(|last| sample.sent < last.sent)
        {
            return self.verdict();
        }
        self.samples.push_back(sample);
        while let Some(first) = self.samples.front() {
            let newest = sample.received;
            if self.samples.len() > 2 && newest.saturating_duration_since(first.sent) > self.window
            {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        self.verdict()
    }

    /// The verdict over the current window.
    pub fn verdict(&self) -> ClockVerdict {
        let (Some(a), Some(b)) = (self.samples.front(), self.samples.back()) else {
            return ClockVerdict::Unknown;
        };
        let mid = |s: &ClockSample| s.sent + (s.received - s.sent) / 2;
        let span = mid(b).saturating_duration_since(mid(a));
        if span < self.min_span || span.is_zero() {
            return ClockVerdict::Unknown;
        }
        let local = span.as_secs_f64();
        // The master's clock may step backwards (a wall clock); that is a
        // rate far below 1 and reported as such, not an underflow.
        let master = b.master.as_secs_f64() - a.master.as_secs_f64();
        let rate = master / local;
        let rtt = |s: &ClockSample| (s.received - s.sent).as_secs_f64();
        let uncertainty = (rtt(a) + rtt(b)) / 2.0 / local;
        if (rate - 1.0).abs() - uncertainty > self.budget {
            ClockVerdict::Suspect { rate }
        } else {
            ClockVerdict::Healthy { rate }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EPOCH: Duration = Duration::from_secs(1_700_000_000);

    /// Samples every `every` over `total`, master clock at `rate` with an
    /// optional forward jump at `jump_at`, each with round trip `rtt`.
    fn run(
        rate: f64,
        rtt: Duration,
        every: Duration,
        total: Duration,
        jump: Option<(Duration, Duration)>,
    ) -> ClockVerdict {
        let t0 = Instant::now();
        let mut check = ClockCheck::new(0.01, Duration::from_secs(30), Duration::from_millis(500));
        let mut verdict = ClockVerdict::Unknown;
        let mut t = Duration::ZERO;
        while t <= total {
            let sent = t0 + t;
            let received = sent + rtt;
            let local_mid = t + rtt / 2;
            let mut master = EPOCH + Duration::from_secs_f64(local_mid.as_secs_f64() * rate);
            if let Some((at, by)) = jump {
                if local_mid >= at {
                    master += by;
                }
            }
            verdict = check.observe(ClockSample {
                sent,
                received,
                master,
            });
            t += every;
        }
        verdict
    }

    #[test]
    fn unknown_until_enough_span() {
        let v = run(
            1.0,
            Duration::from_micros(200),
            Duration::from_millis(100),
            Duration::from_millis(300),
            None,
        );
        assert_eq!(v, ClockVerdict::Unknown);
    }

    #[test]
    fn healthy_clock_is_healthy() {
        let v = run(
            1.0,
            Duration::from_micros(200),
            Duration::from_millis(100),
            Duration::from_secs(5),
            None,
        );
        assert!(
            matches!(v, ClockVerdict::Healthy { rate } if (rate - 1.0).abs() < 1e-3),
            "{v:?}"
        );
        let v = run(
            1.005,
            Duration::from_micros(200),
            Duration::from_millis(100),
            Duration::from_secs(5),
            None,
        );
        assert!(matches!(v, ClockVerdict::Healthy { .. }), "{v:?}");
    }

    #[test]
    fn fast_or_slow_clock_is_suspect() {
        for rate in [1.05, 0.95, 1.02] {
            let v = run(
                rate,
                Duration::from_micros(200),
                Duration::from_millis(100),
                Duration::from_secs(5),
                None,
            );
            assert!(
                matches!(v, ClockVerdict::Suspect { .. }),
                "rate {rate}: {v:?}"
            );
        }
    }

    #[test]
    fn forward_jump_is_suspect_while_in_window() {
        let jump = Some((Duration::from_secs(3), Duration::from_millis(500)));
        let v = run(
            1.0,
            Duration::from_micros(200),
            Duration::from_millis(100),
            Duration::from_secs(5),
            jump,
        );
        assert!(
            matches!(v, ClockVerdict::Suspect { rate } if rate > 1.05),
            "{v:?}"
        );
        // Long after the jump it leaves the 30 s window: healthy again.
        let v = run(
            1.0,
            Duration::from_micros(200),
            Duration::from_millis(500),
            Duration::from_secs(40),
            jump,
        );
        assert!(matches!(v, ClockVerdict::Healthy { .. }), "{v:?}");
    }

    #[test]
    fn backwards_step_does_not_panic() {
        let t0 = Instant::now();
        let mut check = ClockCheck::new(0.01, Duration::from_secs(30), Duration::from_millis(500));
        check.observe(ClockSample {
            sent: t0,
            received: t0,
            master: EPOCH,
        });
        let s = t0 + Duration::from_secs(1);
        let v = check.observe(ClockSample {
            sent: s,
            received: s,
            master: EPOCH - Duration::from_secs(10),
        });
        assert!(
            matches!(v, ClockVerdict::Suspect { rate } if rate < 0.0),
            "{v:?}"
        );
    }

    proptest! {
        /// A master whose clock runs at our rate is never suspect, however
        /// slow and jittery the link is.
        #[test]
        fn no_false_alarm_on_slow_links(rtts in proptest::collection::vec(0u64..200_000, 2..40), every_ms in 50u64..2000) {
            let t0 = Instant::now();
            let mut check = ClockCheck::new(0.01, Duration::from_secs(30), Duration::from_millis(500));
            let mut t = Duration::ZERO;
            for (i, rtt_us) in rtts.iter().enumerate() {
                let rtt = Duration::from_micros(*rtt_us);
                // the master reads its clock anywhere within the round trip
                let read_at = t + rtt * (i as u32 % 3) / 2;
                let v = check.observe(ClockSample { sent: t0 + t, received: t0 + t + rtt, master: EPOCH + read_at });
                prop_assert!(!matches!(v, ClockVerdict::Suspect { .. }), "{:?}", v);
                t += Duration::from_millis(every_ms) + rtt;
            }
        }
    }
}
