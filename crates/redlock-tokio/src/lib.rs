#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod commands;
#[cfg(feature = "redis-rs")]
mod direct;
mod error;
pub mod fred;
mod guard;
mod link;
mod manager;
mod metrics;
mod policy;
#[cfg(feature = "redis-rs")]
pub mod redis_rs;
mod runtime;
mod watchdog;

pub use builder::LockManagerBuilder;
pub use error::{AcquireError, LossReason, WithLockError};
pub use fred::redact_url;
pub use guard::{LockGuard, LockStatus};
pub use link::{Client, RedisLink, RedisMaster};
pub use manager::{LockManager, ShutdownReport};
pub use policy::{Cap, ExtendPolicy, InvalidThreshold, LockOptions, Threshold};
pub use runtime::{now, TokioRuntime};

// What a user of the adapter needs from the core, by name, so that one
// dependency is enough; everything else is `redlock_core`'s. The core's
// acquisition error is `LockError` here: this crate's `AcquireError` wraps
// it (`AcquireError::Lock`) and adds `ShutDown`.
pub use redlock_core::{
    AcquireError as LockError, AcquireOptions, ConfigError, ExtendError, Fence, Holder, Inspection,
    Lock, Master, MasterFailure, Redlock, ReleaseError, ReleaseReport, Resource, ResourceSet,
    RetryPolicy, Runtime, Settings, SettingsBuilder, Token, Ttl, Vote, VoteOutcome, Votes,
};
/// The loss token type, re-exported so users need not depend on
/// `tokio-util` themselves.
pub use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests;
