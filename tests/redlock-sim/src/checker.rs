//! The checker: what every holder believed and did, on the true timeline,
//! and the three checks run on it after each run.
//!
//! 1. **Validity windows.** A holder believes it holds the lock at true time
//!    `t` when `t < lock.valid_until()` as the core last set it (acquire,
//!    then every extend, successful or not), from the moment `acquire`
//!    returned until the holder starts releasing. Two holders' belief
//!    intervals overlapping is a violation, whatever they did meanwhile.
//! 2. **Protected actions.** Each action spans from its validity check to
//!    its write, half-open like the belief intervals. Two actions of different holders overlapping is a
//!    violation. (This one also catches a holder that acted after its
//!    belief ended, which check 1 cannot see.)
//! 3. **Lost updates.** The counter is read, and written back plus one a few
//!    milliseconds later; overlapping actions lose increments. Lost updates
//!    = completed actions - final counter.
//!
//! With fencing ([`Scenario::fencing`](crate::Scenario::fencing)), two more:
//!
//! 4. **Fences.** Every lock has a fence; no fence is handed out twice;
//!    and a holder whose winning acquire attempt *began* after another
//!    holder's acquire had *returned* has the higher fence (the order the
//!    chaos checker of `tests/redlock-tests` uses). The attempt's start is
//!    exact here: the core sets `valid_until = start + ttl - drift`.
//! 5. **The fenced resource.** Each action also runs its read-modify-write
//!    on a [`FencedStore`], which refuses a read or a write whose fence is
//!    below the highest it has seen (the read raises it too, so a write is
//!    refused once a higher fence touched the resource since the writer's
//!    read). Lost updates there = accepted writes - final value; with
//!    fences that never repeat it is zero, whatever the holders' clocks
//!    and pauses did, which is the point of fencing.
//!
//! The rules themselves (half-open overlaps, the fence order, the fenced
//! store) are `redlock_checker`'s, shared with the chaos runs against real
//! masters; this module records the simulated history and names what the
//! rules find.

use std::fmt;
use std::time::Duration;

pub use redlock_checker::FencedStore;
use redlock_checker::{fence_order, overlaps, FenceRule, Grant, Interval};

/// One holder's belief interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// Holder number (acquisition order, over all clients).
    pub holder: usize,
    /// Client that held it.
    pub client: usize,
    /// Start of the interval (true time since the start of the run).
    pub from: Duration,
    /// End of the interval, exclusive.
    pub until: Duration,
}

/// One protected action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionSpan {
    /// Holder number.
    pub holder: usize,
    /// Client that acted.
    pub client: usize,
    /// When its validity check passed.
    pub check_at: Duration,
    /// When it read the counter.
    pub read_at: Duration,
    /// When it wrote the counter.
    pub write_at: Duration,
}

/// A safety violation found by the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Two holders believed they held the lock at the same time.
    ValidityOverlap {
        /// The interval that started first.
        first: Holding,
        /// The other one.
        second: Holding,
    },
    /// Two holders' protected actions overlapped.
    ActionOverlap {
        /// The action that started first.
        first: ActionSpan,
        /// The other one.
        second: ActionSpan,
    },
    /// The guarded counter lost increments.
    LostUpdates {
        /// Actions that completed (the expected counter).
        completed: u64,
        /// The counter at the end.
        counter: u64,
    },
    /// A fenced scenario's lock came without a fence.
    MissingFence {
        /// The holder.
        holder: usize,
    },
    /// Two holders got the same fence.
    FenceRepeated {
        /// The holder granted first.
        first: FencedHolder,
        /// The other one.
        second: FencedHolder,
    },
    /// A holder whose attempt began after `earlier` was granted got a
    /// fence not above `earlier`'s.
    FenceNotAbove {
        /// The holder granted before `later`'s attempt began.
        earlier: FencedHolder,
        /// The later holder.
        later: FencedHolder,
    },
    /// The fenced resource lost increments (accepted writes - value).
    FencedLostUpdates {
        /// Writes the resource accepted.
        accepted: u64,
        /// Its value at the end.
        value: u64,
    },
}

/// A fenced holder, as the fence checks report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedHolder {
    /// Holder number.
    pub holder: usize,
    /// Client that held it.
    pub client: usize,
    /// When its winning acquire attempt began (true time).
    pub began: Duration,
    /// When its acquire returned.
    pub granted: Duration,
    /// Its fence.
    pub fence: u64,
}

fn ms(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holder #{} (client {}) [{}, {})",
            self.holder,
            self.client,
            ms(self.from),
            ms(self.until)
        )
    }
}

impl fmt::Display for ActionSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holder #{} (client {}) checked at {}, read at {}, wrote at {}",
            self.holder,
            self.client,
            ms(self.check_at),
            ms(self.read_at),
            ms(self.write_at)
        )
    }
}

impl fmt::Display for FencedHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holder #{} (client {}) fence {} (attempt began {}, granted {})",
            self.holder,
            self.client,
            self.fence,
            ms(self.began),
            ms(self.granted)
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ValidityOverlap { first, second } => {
                write!(f, "validity windows overlap: {first} and {second}")
            }
            Self::ActionOverlap { first, second } => {
                write!(f, "protected actions overlap: {first}; {second}")
            }
            Self::LostUpdates { completed, counter } => {
                write!(
                    f,
                    "lost updates: {} ({completed} actions completed, counter is {counter})",
                    completed - counter
                )
            }
            Self::MissingFence { holder } => {
                write!(f, "holder #{holder} got a lock without a fence")
            }
            Self::FenceRepeated { first, second } => {
                write!(f, "fence handed out twice: {first}; {second}")
            }
            Self::FenceNotAbove { earlier, later } => {
                write!(
                    f,
                    "fence not above an earlier holder's: {later} after {earlier}"
                )
            }
            Self::FencedLostUpdates { accepted, value } => write!(
                f,
                "fenced resource lost updates: {} ({accepted} writes accepted, value is {value})",
                accepted - value
            ),
        }
    }
}

impl Violation {
    /// Short name of the kind of violation.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ValidityOverlap { .. } => "validity overlap",
            Self::ActionOverlap { .. } => "action overlap",
            Self::LostUpdates { .. } => "lost updates",
            Self::MissingFence { .. } => "missing fence",
            Self::FenceRepeated { .. } => "fence repeated",
            Self::FenceNotAbove { .. } => "fence not above",
            Self::FencedLostUpdates { .. } => "fenced lost updates",
        }
    }

    /// Whether it breaks a promise of fencing (checks 4 and 5), as opposed
    /// to mutual exclusion by validity (checks 1-3), which fencing does
    /// not claim to restore.
    pub fn is_fence(&self) -> bool {
        matches!(
            self,
            Self::MissingFence { .. }
                | Self::FenceRepeated { .. }
                | Self::FenceNotAbove { .. }
                | Self::FencedLostUpdates { .. }
        )
    }

    /// Whether it breaks monotonicity: a fence repeated or not above an
    /// earlier holder's.
    pub fn is_monotonicity(&self) -> bool {
        matches!(
            self,
            Self::FenceRepeated { .. } | Self::FenceNotAbove { .. }
        )
    }
}

struct Holder {
    client: usize,
    /// `(at, valid_until)`: from `at` on, the lock said it was valid until
    /// `valid_until`.
    snapshots: Vec<(Duration, Duration)>,
    released_at: Option<Duration>,
    /// Fenced locks: when the winning attempt began, and the fence.
    fence: Option<(Duration, u64)>,
}

impl Holder {
    /// The belief intervals: each snapshot's validity, cut at the next
    /// snapshot and at the release.
    fn belief(&self) -> Vec<(Duration, Duration)> {
        let mut out: Vec<(Duration, Duration)> = Vec::new();
        for (i, &(at, valid_until)) in self.snapshots.iter().enumerate() {
            let mut end = valid_until;
            if let Some(&(next, _)) = self.snapshots.get(i + 1) {
                end = end.min(next);
            }
            if let Some(r) = self.released_at {
                end = end.min(r);
            }
            if at >= end {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 >= at => last.1 = last.1.max(end),
                _ => out.push((at, end)),
            }
        }
        out
    }
}

/// What holders believed and did during one run.
#[derive(Default)]
pub(crate) struct History {
    holders: Vec<Holder>,
    actions: Vec<ActionSpan>,
}

impl History {
    /// A new holder: `acquire` returned at `at` with `valid_until`.
    pub(crate) fn acquired(&mut self, client: usize, at: Duration, valid_until: Duration) -> usize {
        self.holders.push(Holder {
            client,
            snapshots: vec![(at, valid_until)],
            released_at: None,
            fence: None,
        });
        self.holders.len() - 1
    }

    /// A fenced holder's fence, and when its winning attempt began.
    pub(crate) fn fenced(&mut self, holder: usize, began: Duration, fence: u64) {
        self.holders[holder].fence = Some((began, fence));
    }

    /// After an extend (successful or not), the lock says `valid_until`.
    pub(crate) fn validity(&mut self, holder: usize, at: Duration, valid_until: Duration) {
        self.holders[holder].snapshots.push((at, valid_until));
    }

    /// A completed protected action.
    pub(crate) fn action(
        &mut self,
        holder: usize,
        check_at: Duration,
        read_at: Duration,
        write_at: Duration,
    ) {
        let client = self.holders[holder].client;
        self.actions.push(ActionSpan {
            holder,
            client,
            check_at,
            read_at,
            write_at,
        });
    }

    /// The holder starts releasing at `at`: its belief ends there.
    pub(crate) fn released(&mut self, holder: usize, at: Duration) {
        self.holders[holder].released_at = Some(at);
    }

    /// Number of holders and of completed actions.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.holders.len() as u64, self.actions.len() as u64)
    }

    /// Every belief interval, sorted by start.
    fn beliefs(&self) -> Vec<Holding> {
        let mut beliefs: Vec<Holding> = self
            .holders
            .iter()
            .enumerate()
            .flat_map(|(holder, h)| {
                h.belief().into_iter().map(move |(from, until)| Holding {
                    holder,
                    client: h.client,
                    from,
                    until,
                })
            })
            .collect();
        beliefs.sort_by_key(|b| (b.from, b.holder));
        beliefs
    }

    /// The smallest gap between one holder's belief ending and another's
    /// starting: how close the run came to a validity overlap. A run whose
    /// handoffs all leave hundreds of milliseconds would prove little.
    pub(crate) fn closest_handoff(&self) -> Option<Duration> {
        let beliefs = self.beliefs();
        let mut closest: Option<Duration> = None;
        for (i, b) in beliefs.iter().enumerate() {
            for a in &beliefs[..i] {
                if a.holder != b.holder && a.until <= b.from {
                    let gap = b.from - a.until;
                    closest = Some(closest.map_or(gap, |c| c.min(gap)));
                }
            }
        }
        closest
    }

    /// Runs the three checks.
    pub(crate) fn check(&self, counter: u64) -> Vec<Violation> {
        let mut out = Vec::new();

        let beliefs = self.beliefs();
        let belief = |b: &Holding| Interval {
            owner: b.holder,
            from: b.from,
            to: b.until,
        };
        for (a, b) in overlaps(&beliefs, belief) {
            out.push(Violation::ValidityOverlap {
                first: beliefs[a].clone(),
                second: beliefs[b].clone(),
            });
        }

        // Half-open `[check, write)`, like the belief intervals. Within
        // one virtual millisecond events are still causally ordered: a
        // holder can write, release over 0 ms links, and the next one
        // acquire, check and read in that same tick (found on seed 325
        // of `restart_with_persistence` with closed intervals). A read
        // that precedes a write of the same tick is a real race, and the
        // counter check catches it as a lost update.
        let span = |a: &ActionSpan| Interval {
            owner: a.holder,
            from: a.check_at,
            to: a.write_at,
        };
        for (a, b) in overlaps(&self.actions, span) {
            out.push(Violation::ActionOverlap {
                first: self.actions[a].clone(),
                second: self.actions[b].clone(),
            });
        }

        let completed = self.actions.len() as u64;
        if counter != completed {
            out.push(Violation::LostUpdates { completed, counter });
        }
        out
    }

    /// The fenced holders, in grant order.
    fn fenced_holders(&self) -> Vec<FencedHolder> {
        let mut v: Vec<FencedHolder> = self
            .holders
            .iter()
            .enumerate()
            .filter_map(|(holder, h)| {
                h.fence.map(|(began, fence)| FencedHolder {
                    holder,
                    client: h.client,
                    began,
                    granted: h.snapshots[0].0,
                    fence,
                })
            })
            .collect();
        v.sort_by_key(|h| (h.granted, h.holder));
        v
    }

    /// Checks 4 and 5 (fenced scenarios). Returns the violations and the
    /// number of holders whose fence had an earlier holder to be above
    /// (what check 4 actually compared).
    pub(crate) fn check_fences(&self, store: &FencedStore) -> (Vec<Violation>, u64) {
        let mut out = Vec::new();
        for (holder, h) in self.holders.iter().enumerate() {
            if h.fence.is_none() {
                out.push(Violation::MissingFence { holder });
            }
        }
        let fenced = self.fenced_holders();
        let (breaches, compared) = fence_order(&fenced, |h| Grant {
            began: h.began,
            granted: h.granted,
            fence: h.fence,
        });
        for breach in breaches {
            let (earlier, later) = (fenced[breach.earlier].clone(), fenced[breach.later].clone());
            out.push(match breach.rule {
                FenceRule::Repeated => Violation::FenceRepeated {
                    first: earlier,
                    second: later,
                },
                FenceRule::NotAbove => Violation::FenceNotAbove { earlier, later },
            });
        }
        if store.lost_updates() > 0 {
            out.push(Violation::FencedLostUpdates {
                accepted: store.accepted,
                value: store.value,
            });
        }
        (out, compared as u64)
    }

    /// The fences handed out, and the highest.
    pub(crate) fn fence_counts(&self) -> (u64, u64) {
        let fences = self.holders.iter().filter_map(|h| h.fence.map(|f| f.1));
        let (mut n, mut max) = (0, 0);
        for f in fences {
            n += 1;
            max = max.max(f);
        }
        (n, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn belief_is_cut_at_release_and_follows_extends() {
        let mut h = History::default();
        let a = h.acquired(0, d(10), d(100));
        h.validity(a, d(50), d(200)); // extended before expiry: one interval
        h.released(a, d(150));
        assert_eq!(h.holders[a].belief(), vec![(d(10), d(150))]);

        let b = h.acquired(1, d(300), d(400));
        h.validity(b, d(420), d(500)); // extend granted after the old validity: a gap
        assert_eq!(
            h.holders[b].belief(),
            vec![(d(300), d(400)), (d(420), d(500))]
        );
    }

    #[test]
    fn same_tick_handoff_is_not_an_overlap() {
        // A writes and releases at 20; B acquires, checks and reads at 20
        // (0 ms links): causally ordered, no overlap, no lost update.
        let mut h = History::default();
        let a = h.acquired(0, d(0), d(100));
        h.action(a, d(15), d(15), d(20));
        h.released(a, d(20));
        let b = h.acquired(1, d(20), d(120));
        h.action(b, d(20), d(20), d(25));
        assert!(h.check(2).is_empty(), "{:?}", h.check(2));
        // The same timing with B's read before A's write loses an update.
        assert_eq!(h.check(1).len(), 1);
    }

    #[test]
    fn fence_order_is_checked_only_after_a_grant() {
        let mut h = History::default();
        let a = h.acquired(0, d(10), d(100));
        h.fenced(a, d(5), 3);
        // Began before `a` was granted: overlapping attempts, no order,
        // but its fence must still differ.
        let b = h.acquired(1, d(120), d(200));
        h.fenced(b, d(8), 2);
        // Began after `a` and `b` were granted: must be above both.
        let c = h.acquired(2, d(300), d(400));
        h.fenced(c, d(250), 3);
        let (v, compared) = h.check_fences(&FencedStore::default());
        let kinds: Vec<&str> = v.iter().map(Violation::kind).collect();
        assert_eq!(kinds, ["fence repeated", "fence not above"]);
        assert_eq!(compared, 1);
        assert!(v.iter().all(Violation::is_monotonicity));
    }

    #[test]
    fn disjoint_history_is_clean_and_every_overlap_is_found() {
        let mut h = History::default();
        let a = h.acquired(0, d(0), d(100));
        h.action(a, d(10), d(10), d(15));
        h.released(a, d(20));
        let b = h.acquired(1, d(20), d(120));
        h.action(b, d(30), d(30), d(35));
        h.released(b, d(40));
        assert!(h.check(2).is_empty());

        // A third holder believing during b's window, acting during b's
        // action, and the counter missing one increment.
        let c = h.acquired(2, d(39), d(60));
        h.action(c, d(33), d(34), d(39));
        let kinds: Vec<&str> = h.check(2).iter().map(Violation::kind).collect();
        assert_eq!(
            kinds,
            ["validity overlap", "action overlap", "lost updates"]
        );
    }
}
