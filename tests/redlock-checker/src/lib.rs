//! The safety rules a Redlock run is judged by, in one place.
//!
//! Two suites record what lock holders believed and did, on very
//! different clocks: the deterministic simulation (`tests/redlock-sim`,
//! virtual [`Duration`](std::time::Duration)s since the start of a run)
//! and the chaos runs against real masters (`tests/redlock-tests`,
//! monotonic nanoseconds logged by worker processes). How each one turns
//! its record into intervals and grants is its own business; the rules
//! that decide whether mutual exclusion or fencing failed are the same,
//! and live here, generic over the time type:
//!
//! 1. [`overlaps`]: two holders' intervals (of belief in the lock, or of
//!    a protected action) must not overlap. Intervals are half-open.
//! 2. [`fence_order`]: no fence is handed out twice, and a holder whose
//!    winning acquire attempt *began* after another holder's acquire had
//!    *returned* has the higher fence. Attempts that overlap have no
//!    order a client could rely on, so only that order is checked.
//! 3. [`FencedStore`]: a fenced resource refuses a read or a write whose
//!    fence is below the highest it has seen. The simulator runs its
//!    protected actions on one; the chaos checker replays the real
//!    counter's accepted writes through one to check that the real store
//!    refused what it should.
//!
//! Each suite keeps its own report types (what a simulated run or a chaos
//! run reports differs), and maps the indices these functions return
//! onto them.

/// One interval of one owner, as [`overlaps`] sees it: `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval<T> {
    /// Who held it: a holder (simulator) or a worker (chaos run).
    /// Intervals of one owner are never compared with each other.
    pub owner: usize,
    /// Start, inclusive.
    pub from: T,
    /// End, exclusive.
    pub to: T,
}

/// Every pair of intervals of different owners that overlap: the pairs
/// `(first, second)` of indices into `intervals` where `second` starts
/// inside `first` (`first.from <= second.from < first.to`).
///
/// Half-open, so that a handoff within one tick of the clock (one holder
/// ends at `t`, the next starts at `t`) is not an overlap: the simulator
/// runs such handoffs over 0 ms links, and they are causally ordered.
/// An empty `second` that starts strictly inside `first` still counts: a
/// point event (a check, say) inside another holder's interval is a
/// violation.
///
/// Pairs come out ordered by `first`'s start (ties by end, then owner,
/// then index), then by `second`'s. `interval` reads each item's
/// interval, so that callers keep their own record types.
pub fn overlaps<S, T: Ord + Copy>(
    items: &[S],
    interval: impl Fn(&S) -> Interval<T>,
) -> Vec<(usize, usize)> {
    let intervals: Vec<Interval<T>> = items.iter().map(interval).collect();
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| {
        let s = &intervals[i];
        (s.from, s.to, s.owner, i)
    });
    let mut found = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let a = &intervals[i];
        for &j in order[k + 1..]
            .iter()
            .take_while(|&&j| intervals[j].from < a.to)
        {
            if intervals[j].owner != a.owner {
                found.push((i, j));
            }
        }
    }
    found
}

/// One fenced lock, as [`fence_order`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<T> {
    /// When its winning acquire attempt began (or a bound no later than
    /// that: the chaos run reads it from the validity, which subtracts a
    /// drift margin).
    pub began: T,
    /// When its acquire returned.
    pub granted: T,
    /// Its fence.
    pub fence: u64,
}

/// Which promise of fencing a pair of grants breaks. Exhaustive on
/// purpose: a new rule must be named by every suite that reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceRule {
    /// The same fence was handed out twice.
    Repeated,
    /// A lock whose attempt began after `earlier` was granted got a fence
    /// not above `earlier`'s.
    NotAbove,
}

/// A pair of grants that breaks a [`FenceRule`]: indices into the slice
/// given to [`fence_order`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FenceBreach {
    /// The rule broken.
    pub rule: FenceRule,
    /// The grant that came first (by fence for [`FenceRule::Repeated`],
    /// by grant time for [`FenceRule::NotAbove`]).
    pub earlier: usize,
    /// The other one.
    pub later: usize,
}

/// The fence checks over a run's grants: every repeated fence (whatever
/// the order of the attempts: any two locks are ordered by who held the
/// key first on a master both quorums share, so even overlapping
/// attempts never share a fence), then every grant whose fence is not
/// above the highest fence among the grants that returned strictly before
/// its attempt began.
///
/// Also returns how many grants had such an earlier grant to be above:
/// what the order check actually compared (a run where attempts always
/// overlap would compare nothing). `grant` reads each item's grant;
/// the breaches name items by their index.
pub fn fence_order<S, T: Ord + Copy>(
    items: &[S],
    grant: impl Fn(&S) -> Grant<T>,
) -> (Vec<FenceBreach>, usize) {
    let grants: Vec<Grant<T>> = items.iter().map(grant).collect();
    let mut breaches = Vec::new();
    let mut by_fence: Vec<usize> = (0..grants.len()).collect();
    by_fence.sort_by_key(|&i| (grants[i].fence, grants[i].granted, i));
    for w in by_fence.windows(2) {
        if grants[w[0]].fence == grants[w[1]].fence {
            breaches.push(FenceBreach {
                rule: FenceRule::Repeated,
                earlier: w[0],
                later: w[1],
            });
        }
    }
    let mut by_grant: Vec<usize> = (0..grants.len()).collect();
    by_grant.sort_by_key(|&i| (grants[i].granted, i));
    // `best[k]`: the grant with the highest fence among the first k + 1
    // granted.
    let mut best: Vec<usize> = Vec::with_capacity(grants.len());
    for &i in &by_grant {
        let next = match best.last() {
            Some(&top) if grants[top].fence >= grants[i].fence => top,
            _ => i,
        };
        best.push(next);
    }
    let mut compared = 0;
    for &b in &by_grant {
        let before = by_grant.partition_point(|&a| grants[a].granted < grants[b].began);
        if let Some(a) = before.checked_sub(1).map(|k| best[k]) {
            compared += 1;
            if grants[a].fence >= grants[b].fence {
                breaches.push(FenceBreach {
                    rule: FenceRule::NotAbove,
                    earlier: a,
                    later: b,
                });
            }
        }
    }
    (breaches, compared)
}

/// The fenced protected resource: a counter that remembers the highest
/// fence that touched it, and refuses a read or a write with a lower one
/// (the compare-and-set of `docs/safety.md`, which the chaos worker runs
/// as a Lua script on a real Redis).
///
/// Refusing at the read as well matters for a read-modify-write: a
/// holder that read with fence 5, then paused while a holder with fence 6
/// read and wrote, has its write refused (6 touched the resource since
/// its read). Two accepted writes whose read-write spans interleave need
/// equal fences, so with fences that never repeat nothing is lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FencedStore {
    /// The value.
    pub value: u64,
    /// The highest fence seen (read or write).
    pub max_fence: u64,
    /// Writes accepted.
    pub accepted: u64,
    /// Reads refused (a higher fence touched the resource first).
    pub refused_reads: u64,
    /// Writes refused (a higher fence touched it since the read).
    pub refused_writes: u64,
}

impl FencedStore {
    /// Reads with `fence`: the value, or `None` if a higher fence was seen.
    pub fn read(&mut self, fence: u64) -> Option<u64> {
        if fence < self.max_fence {
            self.refused_reads += 1;
            return None;
        }
        self.max_fence = fence;
        Some(self.value)
    }

    /// Writes `value` with `fence`; `false` (refused) if a higher fence
    /// was seen.
    pub fn write(&mut self, fence: u64, value: u64) -> bool {
        if fence < self.max_fence {
            self.refused_writes += 1;
            return false;
        }
        self.max_fence = fence;
        self.value = value;
        self.accepted += 1;
        true
    }

    /// Lost updates: accepted writes the value does not count.
    pub fn lost_updates(&self) -> u64 {
        self.accepted.saturating_sub(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(owner: usize, from: u64, to: u64) -> Interval<u64> {
        Interval { owner, from, to }
    }

    #[test]
    fn handoffs_are_not_overlaps_and_every_overlap_is_found() {
        // Owners 0 then 1 end to start; owner 2 starts inside 1's and 3's.
        let v = [iv(0, 0, 10), iv(1, 10, 20), iv(3, 12, 30), iv(2, 15, 16)];
        assert_eq!(overlaps(&v, |i| *i), [(1, 2), (1, 3), (2, 3)]);
        // One owner's intervals are never compared.
        assert!(overlaps(&[iv(0, 0, 10), iv(0, 5, 8)], |i| *i).is_empty());
        // A point inside another owner's interval counts; at its end not.
        assert_eq!(overlaps(&[iv(0, 0, 10), iv(1, 5, 5)], |i| *i), [(0, 1)]);
        assert!(overlaps(&[iv(0, 0, 10), iv(1, 10, 10)], |i| *i).is_empty());
    }

    fn g(began: u64, granted: u64, fence: u64) -> Grant<u64> {
        Grant {
            began,
            granted,
            fence,
        }
    }

    #[test]
    fn fence_order_is_checked_only_after_a_grant() {
        let grants = [
            g(5, 10, 3),
            // Began before the first was granted: no order, but its fence
            // must still differ.
            g(8, 120, 2),
            // Began after both were granted: must be above both.
            g(250, 300, 3),
        ];
        let (breaches, compared) = fence_order(&grants, |g| *g);
        assert_eq!(
            breaches,
            [
                FenceBreach {
                    rule: FenceRule::Repeated,
                    earlier: 0,
                    later: 2
                },
                FenceBreach {
                    rule: FenceRule::NotAbove,
                    earlier: 0,
                    later: 2
                },
            ]
        );
        assert_eq!(compared, 1);
        let (breaches, compared) = fence_order(&[g(0, 1, 1), g(2, 3, 2), g(4, 5, 3)], |g| *g);
        assert!(breaches.is_empty());
        assert_eq!(compared, 2);
    }

    #[test]
    fn fenced_store_refuses_a_write_after_a_higher_fence_read() {
        let mut st = FencedStore::default();
        // Holder 5 reads, pauses; holder 6 reads and writes; 5's write is
        // refused, and nothing is lost.
        assert_eq!(st.read(5), Some(0));
        assert_eq!(st.read(6), Some(0));
        assert!(st.write(6, 1));
        assert!(!st.write(5, 1));
        assert_eq!(st.read(5), None);
        assert_eq!((st.value, st.lost_updates()), (1, 0));
        // Equal fences interleaving (what a repeated fence allows) lose one.
        assert_eq!(st.read(7), Some(1));
        assert_eq!(st.read(7), Some(1));
        assert!(st.write(7, 2) && st.write(7, 2));
        assert_eq!(st.lost_updates(), 1);
    }
}
