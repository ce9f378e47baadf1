//! The vote tally: per-master outcomes in, a decision out, as early as the
//! outcome is certain.
//!
//! ```text
//!                 record(Granted)            granted == Q
//!   ┌─────────┐ ─────────────────► count ───────────────► ┌─────────┐
//!   │ Pending │                                            │ Granted │
//!   └─────────┘ ─────────────────► count ───────────────► ┌─────────┐
//!        ▲      record(Failed(_))        failed > N - Q    │ Refused │
//!        └──── otherwise ◄───────────────────────────────  └─────────┘
//! ```
//!
//! `Granted` and `Refused` are final: once `granted == Q` no refusal can undo
//! it, and once `failed > N - Q` the remaining masters cannot reach `Q`. The
//! caller stops waiting at that point; masters that have not answered yet are
//! reported as [`VoteOutcome::Pending`]. With even N a split (N/2 granted,
//! N/2 failed) is a refusal, decided as soon as the last vote lands: never a
//! hang and never two winners.

use std::fmt;
use std::sync::Arc;

use crate::config::Quorum;

/// Why one master did not vote for us. Kept typed until the tally
/// aggregates it, so a caller can see why a quorum failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterFailure {
    /// The key exists with another owner's token (acquire), or is no longer
    /// ours (extend).
    Held,
    /// The key is gone: it expired or the master lost it (extend, release).
    NotHeld,
    /// No reply within the per-master timeout. The command may still run
    /// later (a paused master executes it on resume), which is why failures
    /// are followed by a release on every master.
    TimedOut,
    /// No usable connection: refused, reset, or still reconnecting.
    Unreachable(String),
    /// The master replied with an error (`WRONGTYPE`, `NOPERM`, `READONLY`,
    /// `BUSY`, `OOM`, ...).
    Server(String),
    /// The master replied with something the scripts never return.
    BadReply(String),
    /// The master must not vote: it is the same server as another master,
    /// or not a master at all.
    Misconfigured(String),
    /// The master restarted less than the longest TTL ago and may have
    /// lost keys other holders count on: it grants nothing until then (the
    /// restart guard).
    RecentlyRestarted {
        /// Time until it votes again.
        votes_in: std::time::Duration,
    },
    /// The master's clock runs faster or slower than ours by more than the
    /// drift budget (the opt-in clock check): its TTLs cannot be trusted
    /// to outlast our validity.
    ClockSuspect {
        /// Its clock rate relative to ours, in parts per million
        /// (1_000_000 = same rate).
        rate_ppm: i64,
    },
}

impl MasterFailure {
    /// Whether this failure says another owner holds the resource, as
    /// opposed to the master being unhealthy.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Held)
    }
}

impl fmt::Display for MasterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Held => f.write_str("held by another owner"),
            Self::NotHeld => f.write_str("not held (expired or lost)"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Unreachable(m) => write!(f, "unreachable ({m})"),
            Self::Server(m) => write!(f, "server error ({m})"),
            Self::BadReply(m) => write!(f, "unexpected reply ({m})"),
            Self::Misconfigured(m) => write!(f, "misconfigured ({m})"),
            Self::ClockSuspect { rate_ppm } => {
                write!(
                    f,
                    "clock runs at {:.4}x ours, beyond the drift budget (clock check)",
                    *rate_ppm as f64 / 1e6
                )
            }
            Self::RecentlyRestarted { votes_in } => {
                write!(
                    f,
                    "up for less than the deployment's max_ttl, votes again in {} (restart guard: a master that restarted may have lost keys others count on; turn it off only for masters created empty for this run, danger_disable_restart_guard)",
                    human(*votes_in)
                )
            }
        }
    }
}

/// A duration for people: `850ms`, `58s`, `2m05s`; rounded up, so a wait
/// is never announced shorter than it is.
fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs < 120 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// One master's part in a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VoteOutcome {
    /// The master agreed.
    Granted,
    /// The master refused or failed.
    Failed(MasterFailure),
    /// No answer yet when the decision was taken (early decision).
    Pending,
}

impl fmt::Display for VoteOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Granted => f.write_str("granted"),
            Self::Failed(e) => e.fmt(f),
            Self::Pending => f.write_str("not waited for (decided without it)"),
        }
    }
}

/// One master's vote, with the master's display address (never its
/// password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Index of the master in the manager's list.
    pub master: usize,
    /// Address for humans, e.g. `127.0.0.1:7001`.
    pub address: Arc<str>,
    /// What the master said.
    pub outcome: VoteOutcome,
}

/// The full set of votes of one operation, in master order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Votes {
    votes: Vec<Vote>,
    quorum: Quorum,
}

impl Votes {
    /// Number of masters that granted.
    pub fn granted(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| v.outcome == VoteOutcome::Granted)
            .count()
    }

    /// Number of masters that refused because another owner holds the
    /// resource.
    pub fn held_elsewhere(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| matches!(&v.outcome, VoteOutcome::Failed(f) if f.is_contention()))
            .count()
    }

    /// Whether these votes (of an extension) prove the lock is gone: more
    /// masters than the quorum tolerates answered definitely that our token
    /// is not there (another owner's key, or no key), so no retry can reach
    /// a quorum. Timeouts, unreachable masters and `Pending` votes (early
    /// decision) prove nothing: only definite answers count, so a slow
    /// master never turns into a false loss.
    pub fn majority_gone(&self) -> bool {
        let gone = self
            .votes
            .iter()
            .filter(|v| {
                matches!(
                    v.outcome,
                    VoteOutcome::Failed(MasterFailure::Held | MasterFailure::NotHeld)
                )
            })
            .count();
        gone > self.quorum.tolerated_failures()
    }

    /// The quorum the votes were counted against.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Every vote in master order.
    pub fn iter(&self) -> impl Iterator<Item = &Vote> {
        self.votes.iter()
    }

    /// The vote of master `i`.
    pub fn get(&self, i: usize) -> Option<&Vote> {
        self.votes.get(i)
    }
}

impl fmt::Display for Votes {
    /// One line: `2/5 granted, 3 needed: 127.0.0.1:7001 granted; ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} granted, {} needed:",
            self.granted(),
            self.quorum.masters(),
            self.quorum.needed()
        )?;
        for (i, v) in self.votes.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            write!(f, "{sep}{} {}", v.address, v.outcome)?;
        }
        Ok(())
    }
}

/// Where a tally stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not decided: more answers are needed.
    Pending,
    /// A quorum granted.
    Granted,
    /// Too many masters failed for a quorum to be possible.
    Refused,
}

/// Counts votes as they arrive and decides as soon as the outcome is
/// certain. Pure: no clock, no I/O.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    quorum: Quorum,
    outcomes: Vec<VoteOutcome>,
    granted: usize,
    failed: usize,
}

impl Tally {
    /// An empty tally for `quorum.masters()` masters.
    pub(crate) fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            outcomes: vec![VoteOutcome::Pending; quorum.masters()],
            granted: 0,
            failed: 0,
        }
    }

    /// Records master `i`'s answer and returns the decision so far. A second
    /// answer from the same master, or an index out of range, is ignored:
    /// a confused caller must never count one master twice.
    pub(crate) fn record(&mut self, i: usize, outcome: Result<(), MasterFailure>) -> Decision {
        if let Some(slot) = self.outcomes.get_mut(i) {
            if *slot == VoteOutcome::Pending {
                *slot = match outcome {
                    Ok(()) => {
                        self.granted += 1;
                        VoteOutcome::Granted
                    }
                    Err(e) => {
                        self.failed += 1;
                        VoteOutcome::Failed(e)
                    }
                };
            }
        }
        self.decision()
    }

    /// The decision so far.
    pub(crate) fn decision(&self) -> Decision {
        if self.granted >= self.quorum.needed() {
            Decision::Granted
        } else if self.failed > self.quorum.tolerated_failures() {
            Decision::Refused
        } else {
            Decision::Pending
        }
    }

    /// The votes so far, with addresses for reporting.
    pub(crate) fn into_votes(self, addresses: &[Arc<str>]) -> Votes {
        let votes = self
            .outcomes
            .into_iter()
            .enumerate()
            .map(|(master, outcome)| Vote {
                master,
                address: addresses
                    .get(master)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("?")),
                outcome,
            })
            .collect();
        Votes {
            votes,
            quorum: self.quorum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(n: usize) -> Quorum {
        Quorum::majority(n).expect("n >= 1")
    }

    #[test]
    fn decides_early_on_grant() {
        let mut t = Tally::new(q(5));
        assert_eq!(t.record(0, Ok(())), Decision::Pending);
        assert_eq!(t.record(1, Ok(())), Decision::Pending);
        assert_eq!(t.record(4, Ok(())), Decision::Granted);
        let votes = t.into_votes(&[]);
        assert_eq!(
            votes.get(2).map(|v| &v.outcome),
            Some(&VoteOutcome::Pending)
        );
        assert_eq!(votes.granted(), 3);
    }

    #[test]
    fn decides_early_on_refusal() {
        let mut t = Tally::new(q(5));
        assert_eq!(t.record(0, Err(MasterFailure::Held)), Decision::Pending);
        assert_eq!(t.record(1, Err(MasterFailure::TimedOut)), Decision::Pending);
        assert_eq!(t.record(2, Err(MasterFailure::Held)), Decision::Refused);
        assert_eq!(t.into_votes(&[]).held_elsewhere(), 2);
    }

    #[test]
    fn even_split_is_refused_not_hung() {
        let mut t = Tally::new(q(4));
        assert_eq!(t.record(0, Ok(())), Decision::Pending);
        assert_eq!(t.record(1, Ok(())), Decision::Pending);
        assert_eq!(t.record(2, Err(MasterFailure::Held)), Decision::Pending);
        assert_eq!(t.record(3, Err(MasterFailure::Held)), Decision::Refused);
    }

    #[test]
    fn duplicate_and_out_of_range_votes_ignored() {
        let mut t = Tally::new(q(3));
        t.record(0, Ok(()));
        t.record(0, Ok(()));
        t.record(9, Ok(()));
        assert_eq!(t.decision(), Decision::Pending);
    }

    #[test]
    fn waits_read_in_human_units_and_name_the_setting() {
        use std::time::Duration;
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(57_200)), "58s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        let f = MasterFailure::RecentlyRestarted {
            votes_in: Duration::from_millis(26_999),
        };
        let s = f.to_string();
        assert!(
            s.contains("27s") && s.contains("max_ttl") && s.contains("restart guard"),
            "{s}"
        );
    }

    #[test]
    fn display_names_every_master() {
        let mut t = Tally::new(q(3));
        t.record(0, Ok(()));
        t.record(1, Err(MasterFailure::Held));
        t.record(2, Err(MasterFailure::TimedOut));
        let addrs: Vec<Arc<str>> = ["a:1", "b:2", "c:3"].into_iter().map(Arc::from).collect();
        let s = t.into_votes(&addrs).to_string();
        assert_eq!(
            s,
            "1/3 granted, 2 needed: a:1 granted; b:2 held by another owner; c:3 timed out"
        );
    }

    proptest! {
        /// Whatever the order, the decision is final once taken, agrees with
        /// the counts, and is always taken by the time every master answered.
        #[test]
        fn decision_is_final_and_correct(n in 1usize..10, answers in proptest::collection::vec(any::<bool>(), 10), order_seed in any::<u64>()) {
            let quorum = q(n);
            let mut order: Vec<usize> = (0..n).collect();
            // deterministic shuffle from the seed
            let mut s = order_seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut t = Tally::new(quorum);
            let mut first_final = None;
            let (mut g, mut f) = (0, 0);
            for &i in &order {
                let ok = answers[i];
                if ok { g += 1 } else { f += 1 }
                let d = t.record(i, if ok { Ok(()) } else { Err(MasterFailure::Held) });
                match (first_final, d) {
                    (None, Decision::Pending) => {}
                    (None, d) => first_final = Some(d),
                    (Some(prev), d) => prop_assert_eq!(prev, d),
                }
                if d == Decision::Granted { prop_assert!(g >= quorum.needed()); }
                if d == Decision::Refused { prop_assert!(f > n - quorum.needed()); }
            }
            let total_granted = (0..n).filter(|&i| answers[i]).count();
            let expected = if total_granted >= quorum.needed() { Decision::Granted } else { Decision::Refused };
            prop_assert_eq!(first_final, Some(expected));
        }
    }

    fn votes(outcomes: &[Option<Result<(), MasterFailure>>]) -> Votes {
        let quorum = Quorum::majority(outcomes.len()).expect("quorum");
        let mut tally = Tally::new(quorum);
        for (i, o) in outcomes.iter().enumerate() {
            if let Some(o) = o {
                tally.record(i, o.clone());
            }
        }
        let addresses: Vec<Arc<str>> = (0..outcomes.len())
            .map(|i| Arc::from(format!("m{i}")))
            .collect();
        tally.into_votes(&addresses)
    }

    #[test]
    fn only_a_majority_of_definite_refusals_is_a_loss() {
        use MasterFailure::*;
        // 3 masters: 2 say "not ours" -> gone.
        assert!(votes(&[Some(Err(NotHeld)), Some(Err(Held)), None]).majority_gone());
        // 3 masters: 1 gone, 1 timed out -> maybe transient.
        assert!(!votes(&[Some(Err(NotHeld)), Some(Err(TimedOut)), None]).majority_gone());
        // All timed out -> transient.
        assert!(!votes(&[
            Some(Err(TimedOut)),
            Some(Err(TimedOut)),
            Some(Err(TimedOut))
        ])
        .majority_gone());
        // 5 masters, quorum 3: 3 gone -> gone; 2 gone + 1 unreachable -> not proven.
        let gone3 = [
            Some(Err(NotHeld)),
            Some(Err(NotHeld)),
            Some(Err(Held)),
            Some(Ok(())),
            None,
        ];
        assert!(votes(&gone3).majority_gone());
        let gone2 = [
            Some(Err(NotHeld)),
            Some(Err(NotHeld)),
            Some(Err(Unreachable("x".into()))),
            Some(Ok(())),
            None,
        ];
        assert!(!votes(&gone2).majority_gone());
    }
}
