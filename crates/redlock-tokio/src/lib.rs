#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod guard;
mod manager;
mod metrics;
mod policy;
mod watchdog;

pub use error::{AcquireError, LossReason, WithLockError};
pub use guard::{LockGuard, LockStatus};
pub use manager::{LockManager, LockManagerBuilder, ShutdownReport};
pub use policy::{Cap, ExtendPolicy, InvalidThreshold, LockOptions, Threshold};

/// The core crate, for everything the adapter does not re-export by name.
pub use redlock_core;
// What a user of the adapter needs from the core, so that one dependency is
// enough. `AcquireError` is the adapter's own (it adds `ShutDown`); the
// core's is `redlock_core::AcquireError`.
pub use redlock_core::{
    ConfigError, ExtendError, Fence, FredMaster, Master, MasterFailure, Redlock, RedlockBuilder,
    ReleaseError, ReleaseReport, Resource, ResourceSet, RetryPolicy, Runtime, Token, TokioRuntime,
    Vote, VoteOutcome, Votes,
};
/// The loss token type, re-exported so users need not depend on
/// `tokio-util` themselves.
pub use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests;
