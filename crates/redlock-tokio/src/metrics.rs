//! Metrics through the [`metrics`](https://docs.rs/metrics) facade, with
//! the `metrics` feature (without it every function here is empty and
//! compiles away). Nothing is exported unless the application installs a
//! recorder, e.g. `metrics-exporter-prometheus` (see
//! `examples/prometheus.rs`).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `redlock_acquire_seconds` | histogram | `outcome` = `acquired`, `contended`, `failed` | time an acquire call took, waiting included |
//! | `redlock_acquire_total` | counter | `outcome` | acquire calls by outcome (`contended`: refused because another owner holds it) |
//! | `redlock_master_failures_total` | counter | `master`, `kind` | per-master failures seen in acquire votes (`timed_out`, `unreachable`, `server`, `restart_guard`, ...) |
//! | `redlock_held` | gauge | | locks held by this process now |
//! | `redlock_hold_seconds` | histogram | | time from acquire to release or loss |
//! | `redlock_extensions_total` | counter | `outcome` = `ok`, `failed` | watchdog extensions |
//! | `redlock_losses_total` | counter | `reason` = `refused`, `lapsed`, `cap` | locks lost while held |

#[cfg(feature = "metrics")]
mod on {
    use std::time::Duration;

    use redlock_core::{MasterFailure, VoteOutcome, Votes};

    use crate::error::{AcquireError, LossReason};

    pub(crate) fn acquired(took: Duration) {
        record_acquire("acquired", took);
        metrics::gauge!("redlock_held").increment(1.0);
    }

    pub(crate) fn not_acquired(took: Duration, e: &AcquireError) {
        let outcome = if e.is_contended() {
            "contended"
        } else {
            "failed"
        };
        record_acquire(outcome, took);
        if let Some(votes) = e.votes() {
            master_failures(votes);
        }
    }

    fn record_acquire(outcome: &'static str, took: Duration) {
        metrics::histogram!("redlock_acquire_seconds", "outcome" => outcome).record(took);
        metrics::counter!("redlock_acquire_total", "outcome" => outcome).increment(1);
    }

    pub(crate) fn master_failures(votes: &Votes) {
        for v in votes.iter() {
            let VoteOutcome::Failed(f) = &v.outcome else {
                continue;
            };
            let kind = match f {
                // Contention is counted by `redlock_acquire_total`.
                MasterFailure::Held | MasterFailure::NotHeld => continue,
                MasterFailure::TimedOut => "timed_out",
                MasterFailure::Unreachable(_) => "unreachable",
                MasterFailure::Server(_) => "server",
                MasterFailure::BadReply(_) => "bad_reply",
                MasterFailure::Misconfigured(_) => "misconfigured",
                MasterFailure::RecentlyRestarted { .. } => "restart_guard",
                MasterFailure::ClockSuspect { .. } => "clock_suspect",
                _ => "other",
            };
            metrics::counter!(
                "redlock_master_failures_total",
                "master" => v.address.to_string(),
                "kind" => kind
            )
            .increment(1);
        }
    }

    pub(crate) fn extended(ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        metrics::counter!("redlock_extensions_total", "outcome" => outcome).increment(1);
    }

    pub(crate) fn ended(held_for: Duration, loss: Option<&LossReason>) {
        metrics::gauge!("redlock_held").decrement(1.0);
        metrics::histogram!("redlock_hold_seconds").record(held_for);
        let reason = match loss {
            Some(LossReason::Refused { .. }) => "refused",
            Some(LossReason::Lapsed { .. }) => "lapsed",
            Some(LossReason::CapReached { .. }) => "cap",
            _ => return,
        };
        metrics::counter!("redlock_losses_total", "reason" => reason).increment(1);
    }
}

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
mod off {
    use std::time::Duration;

    use redlock_core::Votes;

    use crate::error::{AcquireError, LossReason};

    pub(crate) fn acquired(_: Duration) {}
    pub(crate) fn master_failures(_: &Votes) {}
    pub(crate) fn not_acquired(_: Duration, _: &AcquireError) {}
    pub(crate) fn extended(_: bool) {}
    pub(crate) fn ended(_: Duration, _: Option<&LossReason>) {}
}

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;
