//! Fencing tokens: a number per resource, strictly greater than every
//! earlier holder's.
//!
//! A fenced acquire reads, in the same atomic step that sets each key, the
//! fence stored for the resource on that master; on a granted quorum the
//! lock's fence is `max + 1`, written back (a second round) only where our
//! token still holds the key, and the lock counts only if a quorum
//! confirms the write-back within its validity. Any two majorities share a
//! master; on that master the previous holder's write-back happened while
//! it held the key, so before our `SET`, so our max is at least its fence.
//! See `docs/algorithm.md` for the argument and its assumptions (masters
//! keep their counters: persistence).

use std::fmt;

/// The largest fence: Lua numbers are doubles, exact up to 2^53.
pub const MAX_FENCE: u64 = (1 << 53) - 1;

/// A fencing token: pass it to the protected resource, which accepts a
/// write only if its fence is at least the highest it has seen.
///
/// ```
/// # use redlock_core::Fence;
/// let older = Fence::new(41).expect("in range");
/// let newer = Fence::new(42).expect("in range");
/// assert!(newer > older);
/// assert_eq!(newer.to_string(), "42");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(u64);

impl Fence {
    /// A fence from its number; `None` above [`MAX_FENCE`] (zero is
    /// allowed but never handed out: the first fence is 1).
    pub fn new(n: u64) -> Option<Self> {
        (n <= MAX_FENCE).then_some(Self(n))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The fence after the highest one seen: `max + 1`, `None` once the
    /// range is exhausted.
    pub fn after(max_seen: u64) -> Option<Self> {
        max_seen.checked_add(1).and_then(Self::new)
    }
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where fences are kept on a master: one hash per key prefix (its key is
/// the prefix itself, which no lock key can be, since resource names are
/// non-empty), with one field per resource. Fences never expire: the
/// cost is one hash field (a few dozen bytes) per resource ever locked
/// with fencing.
#[derive(Clone, Copy, Debug)]
pub struct FenceKeys<'a> {
    /// The hash's key.
    pub hash: &'a str,
    /// The fields: the resource names, in the order of the lock keys.
    pub fields: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_stay_exact_in_lua() {
        assert_eq!(Fence::after(0).map(Fence::get), Some(1));
        assert_eq!(Fence::after(MAX_FENCE - 1).map(Fence::get), Some(MAX_FENCE));
        assert_eq!(Fence::after(MAX_FENCE), None);
        assert_eq!(Fence::after(u64::MAX), None);
        // 2^53 - 1 is still exact as an f64, as Lua holds it.
        assert_eq!(MAX_FENCE as f64 as u64, MAX_FENCE);
    }
}
