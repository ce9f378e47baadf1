//! Typed errors, one enum per phase: building a manager, acquiring,
//! extending, releasing. Per-master details stay typed inside [`Votes`].

use std::time::Duration;

use crate::release::ReleaseReport;
use crate::tally::Votes;

/// Bad configuration or bad input, found before anything is sent, or while
/// connecting to the masters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The master list is empty.
    #[error("no masters given: a lock manager needs at least one Redis master URL")]
    NoMasters,
    /// A master URL could not be parsed.
    #[error("invalid master URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL scheme other than `redis://` or `rediss://`.
    #[error("unsupported scheme {scheme:?} in {url:?}: lock masters are independent servers reached by redis:// or rediss://")]
    UnsupportedScheme {
        /// The URL with any password replaced by `***`.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// `rediss://` was asked for, but this build has no TLS support. Failing
    /// here is deliberate: the client would otherwise connect in plaintext.
    #[error("{url:?} asks for TLS (rediss://) but redlock-core was built without the `tls` feature; refusing to connect in plaintext")]
    TlsNotCompiled {
        /// The URL with any password replaced by `***`.
        url: String,
    },
    /// The certificates to trust for `rediss://` masters cannot be used: a
    /// CA given to the builder is unreadable, is not PEM, holds no
    /// certificate, or holds one that is not a usable trust anchor; or, when
    /// no CA was given, the system root store has no usable certificate.
    /// Only with the `tls` feature.
    #[error("no usable TLS trust anchors: {reason}")]
    InvalidTlsCa {
        /// What is wrong, naming the file or builder call it came from.
        reason: String,
    },
    /// The TLS handshake with a `rediss://` master failed: its certificate
    /// is not signed by a trusted CA, does not name the host of the URL, or
    /// the port does not speak TLS. The client never retries in plaintext.
    /// Like rejected credentials, this fails `connect` even when only one
    /// master is affected: it is a configuration mistake, not an outage.
    /// Only with the `tls` feature.
    #[error("TLS handshake with master {master} failed, refusing to connect (no plaintext fallback): {reason}")]
    Tls {
        /// Address of the master.
        master: String,
        /// The TLS library's reason (e.g. `InvalidCertificate(UnknownIssuer)`).
        reason: String,
    },
    /// Two entries of the master list reach the same server, which would
    /// let one server cast two votes.
    #[error("masters {first} and {second} are the same server ({why}); each master must be an independent server")]
    DuplicateMaster {
        /// Address of the first entry.
        first: String,
        /// Address of the second entry.
        second: String,
        /// How the duplicate was detected (same address or same run id).
        why: String,
    },
    /// A master is a replica: it would refuse writes, or worse, accept
    /// them and lose them on failover.
    #[error("master {master} is not a master (role: {role}); lock masters must be independent primaries")]
    NotAMaster {
        /// Address of the entry.
        master: String,
        /// The role the server reports.
        role: String,
    },
    /// A master runs in Redis Cluster mode. Lock keys would be refused
    /// (`CLUSTERDOWN`, `MOVED`) or spread over shards; Redlock needs N
    /// independent single-node primaries (or one key per shard with hash
    /// tags, which this library does not do).
    #[error("master {master} is a Redis Cluster node (cluster_enabled:1); redlock needs independent single-node primaries, not a cluster")]
    ClusterNode {
        /// Address of the entry.
        master: String,
    },
    /// The database number in a master URL does not exist on that server.
    #[error("master {master}: database {db} does not exist on this server (see its `databases` setting)")]
    NoSuchDatabase {
        /// Address of the entry.
        master: String,
        /// The database number asked for.
        db: u8,
    },
    /// The quorum is not a strict majority of the masters, or exceeds them.
    #[error("quorum {quorum} is invalid for {masters} masters: it must be more than {} and at most {masters}", masters / 2)]
    InvalidQuorum {
        /// The quorum asked for.
        quorum: usize,
        /// The number of masters.
        masters: usize,
    },
    /// A TTL of zero.
    #[error("TTL must be at least 1 ms")]
    TtlZero,
    /// A TTL above what Redis accepts for `PX`.
    #[error(
        "TTL of {ms} ms is above the PX range (max {} ms)",
        crate::config::MAX_TTL_MS
    )]
    TtlTooLarge {
        /// The TTL asked for, in ms (saturated).
        ms: u64,
    },
    /// A TTL with a sub-millisecond part.
    #[error("TTL {ttl:?} is not a whole number of milliseconds (Redis counts TTLs in ms)")]
    TtlNotWholeMillis {
        /// The TTL asked for.
        ttl: Duration,
    },
    /// A TTL above the deployment's maximum TTL, the restart guard's window
    /// (see [`SettingsBuilder::max_ttl`](crate::SettingsBuilder::max_ttl)).
    /// A lock longer than the window could count on a master that restarted
    /// empty and was let back in before the lock's keys would have expired.
    #[error("TTL {}ms is above the maximum TTL {}ms of this deployment (the restart guard's window); raise max_ttl on every client of the deployment together, or use a shorter TTL and let the lock be extended", ttl.as_millis(), max.as_millis())]
    TtlAboveMax {
        /// The TTL asked for.
        ttl: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// The drift margin (plus the minimum validity) leaves no validity.
    #[error("drift margin {} (plus minimum validity {}) consumes the whole TTL {}", crate::HumanDuration(*drift), crate::HumanDuration(*min_validity), crate::HumanDuration(*ttl))]
    DriftConsumesTtl {
        /// The TTL.
        ttl: Duration,
        /// The drift margin for that TTL.
        drift: Duration,
        /// The configured minimum validity.
        min_validity: Duration,
    },
    /// The drift factor is not a finite number in `[0, 1)`.
    #[error("drift factor {factor} is invalid: it must be a finite number in [0, 1)")]
    InvalidDriftFactor {
        /// The factor given.
        factor: f64,
    },
    /// The per-master timeout is zero.
    #[error("per-master timeout must be greater than zero")]
    ZeroTimeout,
    /// The per-master timeout is not shorter than the validity budget.
    #[error(
        "per-master timeout {} must be shorter than the TTL minus drift ({})",
        crate::HumanDuration(*timeout),
        crate::HumanDuration(*budget)
    )]
    TimeoutNotBelowValidity {
        /// The timeout.
        timeout: Duration,
        /// TTL minus drift.
        budget: Duration,
    },
    /// A wait deadline of zero.
    #[error("wait deadline must be greater than zero (use try_acquire for a single attempt)")]
    ZeroWait,
    /// A retry policy that would spin or is inverted.
    #[error("retry policy invalid: base delay {} must be > 0 and <= max delay {}", crate::HumanDuration(*base), crate::HumanDuration(*max))]
    InvalidRetry {
        /// Base delay.
        base: Duration,
        /// Maximum delay.
        max: Duration,
    },
    /// The key prefix is empty or too long.
    #[error(
        "key prefix must be 1 to {} bytes, got {len}",
        crate::config::MAX_PREFIX_LEN
    )]
    InvalidPrefix {
        /// Its length.
        len: usize,
    },
    /// An empty resource name.
    #[error("resource name is empty")]
    EmptyResource,
    /// A resource name longer than the limit.
    #[error(
        "resource name is {len} bytes, over the {} byte limit",
        crate::config::MAX_RESOURCE_LEN
    )]
    ResourceTooLong {
        /// Its length.
        len: usize,
    },
    /// An empty list of resources.
    #[error("no resources given")]
    NoResources,
    /// A string that is not a token.
    #[error("invalid token ({len} characters): expected 32 to 128 lowercase hex digits")]
    InvalidToken {
        /// Its length (the value is not repeated: it may be a secret).
        len: usize,
    },
    /// A master rejected the credentials.
    #[error("authentication failed on master {master}: {message}")]
    Auth {
        /// Address of the master.
        master: String,
        /// The server's message.
        message: String,
    },
    /// Fewer masters answered than the quorum needs, so no lock could ever
    /// be granted.
    #[error("only {reachable} of {masters} masters reachable, {needed} needed: {details}")]
    Unreachable {
        /// Masters that answered.
        reachable: usize,
        /// Masters configured.
        masters: usize,
        /// Quorum.
        needed: usize,
        /// Per-master reasons, one line.
        details: String,
    },
    /// A master answered the setup commands (INFO, SCRIPT LOAD) with an error.
    #[error("master {master} failed during setup: {message}")]
    Setup {
        /// Address of the master.
        master: String,
        /// What failed.
        message: String,
    },
}

/// Why an acquisition failed. No key is left behind: every failure path
/// released on all masters first (or the release failed on some master, in
/// which case that key expires with its TTL; see the votes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The request itself was invalid (resource name, TTL).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// No quorum: another owner holds the resource, or too many masters
    /// failed. The votes of the last attempt say which.
    #[error("lock not acquired after {attempts} attempt(s): {votes}")]
    NoQuorum {
        /// Attempts made.
        attempts: u32,
        /// Votes of the last attempt.
        votes: Votes,
    },
    /// A quorum granted, but so late that no validity was left (the masters
    /// were slow, or this process was paused).
    #[error("quorum reached after {}, leaving no validity of the {} TTL (attempts: {attempts})", crate::HumanDuration(*elapsed), crate::HumanDuration(*ttl))]
    ValidityExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time from sending to the decision in the last attempt.
        elapsed: Duration,
        /// The TTL.
        ttl: Duration,
    },
    /// A quorum granted the lock, but fewer than a quorum confirmed its
    /// fence within the validity (the lock was released): a fence that the
    /// next holder's quorum might not find is never handed out.
    #[error("lock granted but its fence was not confirmed by a quorum in time (attempts: {attempts}): {votes}")]
    FenceNotConfirmed {
        /// Attempts made.
        attempts: u32,
        /// Votes of the fence write-back.
        votes: Votes,
    },
    /// The fence counter reached 2^53 - 1, the largest number Lua keeps
    /// exactly.
    #[error("the fence counter is exhausted (2^53 - 1 reached)")]
    FencesExhausted,
    /// The wait deadline passed before a quorum granted. `last` holds the
    /// last attempt's failure.
    #[error("gave up waiting after {} ({attempts} attempt(s)); last: {last}", crate::HumanDuration(*waited))]
    Deadline {
        /// Attempts made.
        attempts: u32,
        /// Time waited.
        waited: Duration,
        /// The last attempt's failure.
        last: Box<Self>,
    },
}

impl AcquireError {
    /// Whether the failure is contention (another owner holds the
    /// resource on some masters) rather than bad input or sick masters.
    pub fn is_contended(&self) -> bool {
        match self {
            Self::NoQuorum { votes, .. } => votes.held_elsewhere() > 0,
            Self::Deadline { last, .. } => last.is_contended(),
            _ => false,
        }
    }

    /// The votes of the last attempt, when there was one.
    pub fn votes(&self) -> Option<&Votes> {
        match self {
            Self::NoQuorum { votes, .. } | Self::FenceNotConfirmed { votes, .. } => Some(votes),
            Self::Deadline { last, .. } => last.votes(),
            _ => None,
        }
    }
}

/// Why an extension failed. The lock keeps its previous validity; it may
/// still be valid until then, and releasing it is still right.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtendError {
    /// The request itself was invalid (TTL).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The lock's validity had already passed locally; extending could
    /// resurrect a lock someone else may now hold, so nothing was sent.
    #[error("lock already expired locally {} ago; not extending", crate::HumanDuration(*ago))]
    Expired {
        /// How long ago validity ended.
        ago: Duration,
    },
    /// Fewer than a quorum of masters still held our token.
    #[error("extension refused: {votes}")]
    NoQuorum {
        /// Per-master votes.
        votes: Votes,
    },
    /// A quorum extended, but too late to leave validity.
    #[error("extension reached quorum after {}, leaving no validity of the {} TTL", crate::HumanDuration(*elapsed), crate::HumanDuration(*ttl))]
    ValidityExhausted {
        /// Time from sending to the decision.
        elapsed: Duration,
        /// The TTL.
        ttl: Duration,
    },
}

/// A release that could not be confirmed on every master. Keys on the
/// masters that failed expire with their TTL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Some masters did not confirm; see the report.
    #[error("release incomplete: {report}")]
    Incomplete {
        /// Per-master results.
        report: ReleaseReport,
    },
}
