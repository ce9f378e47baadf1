//! Release: the per-master report, and the tally that decides a release
//! as soon as its outcome is known.
//!
//! A release is *confirmed* on a master when our keys are gone there:
//! deleted by it, or not there any more (expired, never set). It is decided
//! like a vote: confirmed once a quorum confirmed (no other holder can have
//! counted on our keys any more: every quorum shares a master with ours),
//! failed once more than `N - Q` masters could not confirm. The remaining
//! masters finish in the background, each bounded by the per-master
//! timeout; keys on a master that never confirms expire with their TTL.

use std::fmt;

use crate::config::Quorum;
use crate::tally::{Decision, MasterFailure, Tally, Vote, VoteOutcome};

/// Per-master results of a release, in master order. Masters that had not
/// answered when the release was decided are [`VoteOutcome::Pending`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseReport {
    pub(crate) votes: Vec<Vote>,
}

impl ReleaseReport {
    /// Masters where our keys were deleted.
    pub fn released(&self) -> usize {
        self.count(|o| *o == VoteOutcome::Granted)
    }

    /// Masters where none of our keys was left (expired, never set, or
    /// taken over after expiry): nothing to do there.
    pub fn not_held(&self) -> usize {
        self.count(|o| *o == VoteOutcome::Failed(MasterFailure::NotHeld))
    }

    /// Masters where our keys are known to be gone (released or not held).
    pub fn confirmed(&self) -> usize {
        self.released() + self.not_held()
    }

    /// Masters that could not confirm (timed out, unreachable, error). Our
    /// key may remain there until its TTL.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, VoteOutcome::Failed(f) if *f != MasterFailure::NotHeld))
    }

    /// Masters that had not answered when the release was decided; they
    /// finish in the background, bounded by the per-master timeout.
    pub fn pending(&self) -> usize {
        self.count(|o| *o == VoteOutcome::Pending)
    }

    /// Every master's result in master order (`Granted` = deleted).
    pub fn iter(&self) -> impl Iterator<Item = &Vote> {
        self.votes.iter()
    }

    fn count(&self, f: impl Fn(&VoteOutcome) -> bool) -> usize {
        self.votes.iter().filter(|v| f(&v.outcome)).count()
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gone on {}/{}", self.confirmed(), self.votes.len())?;
        for (i, v) in self.votes.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            match &v.outcome {
                VoteOutcome::Granted => write!(f, "{sep}{} released", v.address)?,
                VoteOutcome::Pending => write!(f, "{sep}{} still releasing", v.address)?,
                other => write!(f, "{sep}{} {other}", v.address)?,
            }
        }
        Ok(())
    }
}

/// Counts release answers and decides as soon as the outcome is certain:
/// the vote [`Tally`] itself (one implementation of the quorum rule), fed
/// with "confirmed" for a master where our keys are gone (deleted or not
/// there), plus each master's own answer for the report. Pure: no clock,
/// no I/O.
#[derive(Clone, Debug)]
pub(crate) struct ReleaseTally {
    tally: Tally,
    outcomes: Vec<VoteOutcome>,
}

impl ReleaseTally {
    pub(crate) fn new(quorum: Quorum) -> Self {
        Self {
            tally: Tally::new(quorum),
            outcomes: vec![VoteOutcome::Pending; quorum.masters()],
        }
    }

    /// Records master `i`'s answer (a second one is ignored) and returns
    /// the decision so far.
    pub(crate) fn record(&mut self, i: usize, outcome: Result<(), MasterFailure>) -> Decision {
        if let Some(slot) = self.outcomes.get_mut(i) {
            if *slot == VoteOutcome::Pending {
                let confirmed = match &outcome {
                    Ok(()) | Err(MasterFailure::NotHeld) => Ok(()),
                    Err(e) => Err(e.clone()),
                };
                *slot = match outcome {
                    Ok(()) => VoteOutcome::Granted,
                    Err(e) => VoteOutcome::Failed(e),
                };
                return self.tally.record(i, confirmed);
            }
        }
        self.tally.decision()
    }

    /// `Granted`: a quorum confirmed; `Refused`: a quorum can no longer
    /// confirm.
    pub(crate) fn decision(&self) -> Decision {
        self.tally.decision()
    }

    /// The masters that have not answered.
    pub(crate) fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == VoteOutcome::Pending)
            .map(|(i, _)| i)
    }

    /// Whether every master answered.
    pub(crate) fn complete(&self) -> bool {
        self.pending().next().is_none()
    }

    pub(crate) fn report(&self, addresses: &[std::sync::Arc<str>]) -> ReleaseReport {
        let votes = self
            .outcomes
            .iter()
            .enumerate()
            .map(|(master, outcome)| Vote {
                master,
                address: addresses
                    .get(master)
                    .cloned()
                    .unwrap_or_else(|| std::sync::Arc::from("?")),
                outcome: outcome.clone(),
            })
            .collect();
        ReleaseReport { votes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: usize) -> Quorum {
        Quorum::majority(n).expect("n >= 1")
    }

    #[test]
    fn decided_at_quorum_of_confirmations() {
        let mut t = ReleaseTally::new(q(5));
        assert_eq!(t.record(0, Ok(())), Decision::Pending);
        assert_eq!(t.record(1, Err(MasterFailure::NotHeld)), Decision::Pending);
        assert_eq!(t.record(3, Ok(())), Decision::Granted);
        let r = t.report(&[]);
        assert_eq!(
            (r.released(), r.not_held(), r.pending(), r.failed()),
            (2, 1, 2, 0)
        );
        assert!(!t.complete());
    }

    #[test]
    fn refused_once_a_quorum_cannot_confirm() {
        let mut t = ReleaseTally::new(q(3));
        assert_eq!(t.record(2, Err(MasterFailure::TimedOut)), Decision::Pending);
        assert_eq!(t.record(0, Err(MasterFailure::TimedOut)), Decision::Refused);
        assert_eq!(t.report(&[]).failed(), 2);
    }
}
