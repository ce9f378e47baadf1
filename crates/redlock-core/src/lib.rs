#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod admitted;
mod answers;
mod background;
mod clock;
mod config;
mod error;
mod fence;
mod holder;
mod human;
mod inspect;
mod lock;
mod manager;
mod master;
mod options;
mod release;
mod retry;
pub mod scripts;
mod tally;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;
mod validity;

pub use admission::{
    Admission, Gate, Intent, MasterFacts, Pass, Refusal, CLOCK_SAMPLE_EVERY, RECHECK_AFTER,
    UPTIME_GRANULARITY,
};
pub use admitted::{Admitted, Link};
pub use clock::{ClockCheck, ClockSample, ClockVerdict};
pub use config::{
    DriftFactor, KeyPrefix, Quorum, Resource, ResourceSet, Settings, SettingsBuilder, Ttl,
    DEFAULT_MAX_TTL, MAX_PREFIX_LEN, MAX_RESOURCE_LEN, MAX_TTL_MS,
};
pub use error::{AcquireError, ConfigError, ExtendError, ReleaseError};
pub use fence::{Fence, FenceKeys, MAX_FENCE};
pub use holder::{Holder, MAX_LABEL_LEN};
pub use human::HumanDuration;
pub use inspect::{Inspection, KeyState, MasterView};
pub use lock::Lock;
pub use manager::Redlock;
pub use master::{Master, ReleaseWatch, Runtime};
pub use options::AcquireOptions;
pub use release::ReleaseReport;
pub use retry::RetryPolicy;
pub use tally::{MasterFailure, Vote, VoteOutcome, Votes};
pub use token::{Token, TOKEN_BYTES};
pub use validity::{drift, is_valid, remaining, valid_until, DRIFT_FLOOR};

impl From<std::convert::Infallible> for ConfigError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
