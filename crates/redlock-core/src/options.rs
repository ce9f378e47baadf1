//! Per-call options of an acquisition.

use std::time::Duration;

use crate::retry::RetryPolicy;

/// Per-call overrides of the manager's settings for
/// [`Redlock::acquire_with`](crate::Redlock::acquire_with).
#[derive(Clone, Debug, Default)]
pub struct AcquireOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) wait: Option<Option<Duration>>,
    pub(crate) fenced: Option<bool>,
}

impl AcquireOptions {
    /// Uses the manager's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// TTL of this lock.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Retry policy of this call.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Overall wait deadline of this call (`None`: the retry count alone).
    pub fn wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Whether this lock gets a fencing token ([`Lock::fence`](crate::Lock::fence)); default:
    /// the manager's [`fencing`](crate::SettingsBuilder::fencing) setting.
    /// It costs a second round trip to a quorum.
    pub fn fenced(mut self, on: bool) -> Self {
        self.fenced = Some(on);
        self
    }

    /// A single attempt: no retries, no deadline.
    pub fn once() -> Self {
        Self::default().retry(RetryPolicy::never()).wait(None)
    }

    /// The retry policy of this call, if it overrides the manager's.
    pub fn retry_override(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// The wait deadline of this call, if it overrides the manager's
    /// (`Some(None)`: no deadline).
    pub fn wait_override(&self) -> Option<Option<Duration>> {
        self.wait
    }
}
