#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod config;
mod error;
mod fred_master;
mod lock;
mod manager;
mod master;
mod release;
mod reply;
mod retry;
pub mod scripts;
mod tally;
mod token;
mod validity;

pub use clock::{ClockCheck, ClockSample, ClockVerdict};
pub use config::{
    DriftFactor, KeyPrefix, Quorum, Resource, ResourceSet, Settings, SettingsBuilder, Ttl,
    MAX_PREFIX_LEN, MAX_RESOURCE_LEN, MAX_TTL_MS,
};
pub use error::{AcquireError, ConfigError, ExtendError, ReleaseError};
pub use fred_master::{redact_url, restart_guard_votes_from, FredMaster, RedlockBuilder};
pub use lock::Lock;
pub use manager::{AcquireOptions, Redlock};
pub use master::{Master, Runtime, TokioRuntime};
pub use release::ReleaseReport;
pub use retry::RetryPolicy;
pub use tally::{Decision, MasterFailure, Tally, Vote, VoteOutcome, Votes};
pub use token::{Token, TOKEN_BYTES};
pub use validity::{drift, is_valid, remaining, valid_until, DRIFT_FLOOR};

impl From<std::convert::Infallible> for ConfigError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
