//! The lock handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{ResourceSet, Ttl};
use crate::fence::Fence;
use crate::tally::Votes;
use crate::token::Token;
use crate::validity;

/// A lock held on a quorum of masters.
///
/// It is a plain value: it does not release itself on drop (the
/// `redlock-tokio` guard does). Pass it to
/// [`Redlock::release`](crate::Redlock::release) when done. It is not
/// `Clone`, so one lock is released once.
///
/// Validity is an [`Instant`]: the lock may be trusted strictly before
/// [`valid_until`](Lock::valid_until). Check it right before each protected
/// side effect, and prefer passing [`token`](Lock::token) to the protected
/// resource as a fencing value: a pause between the check and the effect is
/// outside what any lock service can prevent.
#[derive(Debug)]
#[must_use = "a lock that is dropped without release stays held until its TTL expires"]
pub struct Lock {
    pub(crate) resources: ResourceSet,
    pub(crate) keys: Arc<[String]>,
    pub(crate) token: Token,
    pub(crate) ttl: Ttl,
    pub(crate) valid_until: Instant,
    pub(crate) votes: Votes,
    pub(crate) fence: Option<Fence>,
}

impl Lock {
    /// The resources this lock covers, sorted.
    pub fn resources(&self) -> &ResourceSet {
        &self.resources
    }

    /// The keys on each master (`prefix + resource`).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The token stored in every key. `Debug` does not print it.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The TTL of the last acquire or extend.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// The instant from which the lock must no longer be trusted.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Validity left at `now` (zero once passed).
    pub fn remaining_at(&self, now: Instant) -> Duration {
        validity::remaining(self.valid_until, now)
    }

    /// Whether the lock may still be trusted at `now`.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        validity::is_valid(self.valid_until, now, Duration::ZERO)
    }

    /// The fencing token, when the lock was acquired with fencing
    /// ([`AcquireOptions::fenced`](crate::AcquireOptions::fenced) or the
    /// manager's `fencing` setting): strictly greater than the fence of
    /// every earlier fenced holder of each of its resources. Pass it to the
    /// protected resource, which accepts a write only with a fence at least
    /// as high as any it has seen; then even a holder paused past its
    /// validity cannot overwrite its successor's work.
    pub fn fence(&self) -> Option<Fence> {
        self.fence
    }

    /// The votes of the acquire or extend that set the current validity.
    pub fn votes(&self) -> &Votes {
        &self.votes
    }
}
