//! The outcome of a release on every master.

use std::fmt;

use crate::tally::{MasterFailure, Vote, VoteOutcome};

/// Per-master results of a release. Release always goes to every master,
/// and waits for each (bounded by the per-master timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseReport {
    pub(crate) votes: Vec<Vote>,
}

impl ReleaseReport {
    /// Masters where our keys were deleted.
    pub fn released(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| v.outcome == VoteOutcome::Granted)
            .count()
    }

    /// Masters where none of our keys was left (expired, never set, or
    /// taken over after expiry): nothing to do there.
    pub fn not_held(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| v.outcome == VoteOutcome::Failed(MasterFailure::NotHeld))
            .count()
    }

    /// Masters that could not confirm (timed out, unreachable, error). Our
    /// key may remain there until its TTL.
    pub fn failed(&self) -> usize {
        self.votes.len() - self.released() - self.not_held()
    }

    /// Every master's result in master order (`Granted` = deleted).
    pub fn iter(&self) -> impl Iterator<Item = &Vote> {
        self.votes.iter()
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "released on {}/{}", self.released(), self.votes.len())?;
        for (i, v) in self.votes.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            match &v.outcome {
                VoteOutcome::Granted => write!(f, "{sep}{} released", v.address)?,
                other => write!(f, "{sep}{} {other}", v.address)?,
            }
        }
        Ok(())
    }
}
