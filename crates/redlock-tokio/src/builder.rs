//! The one builder: master URLs and how to reach them, the core's
//! [`SettingsBuilder`] (which alone owns and checks the lock settings),
//! and the guards' [`ExtendPolicy`].

use std::time::Duration;

use redlock_core::{ConfigError, Redlock, Settings, SettingsBuilder};
use tokio::runtime::Handle;

use crate::fred;
use crate::link::{admit_all, Attempt, Client, RedisLink, RedisMaster};
use crate::manager::LockManager;
use crate::policy::ExtendPolicy;
use crate::runtime::TokioRuntime;

/// Builder of the production [`LockManager`] (or of the bare core
/// [`Redlock`], with [`connect_core`](Self::connect_core)), from master
/// URLs.
///
/// Lock settings (TTL, quorum, per-master timeout, retries, fencing,
/// `danger_` switches, ...) are the core's [`SettingsBuilder`], reached
/// through [`settings`](Self::settings) and checked once, by `connect`;
/// this builder adds only what the production backend and the guards
/// need: how to reach the masters and the watchdog policy.
///
/// ```no_run
/// # async fn demo() -> Result<(), redlock_tokio::ConfigError> {
/// use std::time::Duration;
/// use redlock_tokio::{ExtendPolicy, LockManager};
///
/// let locks = LockManager::builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"])
///     .settings(|s| s.ttl(Duration::from_secs(30)).master_timeout(Duration::from_millis(50)))
///     .extend_policy(ExtendPolicy::new().max_hold(Duration::from_secs(3600)))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct LockManagerBuilder {
    urls: Vec<String>,
    settings: SettingsBuilder,
    policy: ExtendPolicy,
    connect_timeout: Duration,
    wake_on_release: bool,
    client: Client,
    /// CAs trusted for `rediss://` masters; empty: the system roots.
    #[cfg(feature = "tls")]
    tls_cas: Vec<fred::tls::CaSource>,
}

impl std::fmt::Debug for LockManagerBuilder {
    /// Shows the URLs with their passwords replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| fred::redact_url(u)).collect();
        f.debug_struct("LockManagerBuilder")
            .field("urls", &urls)
            .field("settings", &self.settings)
            .field("extend_policy", &self.policy)
            .field("connect_timeout", &self.connect_timeout)
            .field("wake_on_release", &self.wake_on_release)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl LockManager<RedisMaster, TokioRuntime> {
    /// Starts building a manager over the given master URLs
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` with the
    /// `tls` feature).
    pub fn builder<I, S>(urls: I) -> LockManagerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LockManagerBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            settings: Settings::builder(),
            policy: ExtendPolicy::default(),
            connect_timeout: Duration::from_secs(2),
            wake_on_release: false,
            client: Client::default(),
            #[cfg(feature = "tls")]
            tls_cas: Vec::new(),
        }
    }
}

impl LockManagerBuilder {
    /// Sets lock settings through the core's [`SettingsBuilder`]: TTL
    /// (default 10 s), drift factor, quorum, per-master timeout (default
    /// 50 ms), retry policy, wait deadline, key prefix, minimum validity,
    /// `max_ttl` (the restart guard's window, default 60 s), holder
    /// records, fencing, the clock check and the `danger_` switches. May be
    /// called several times; each call continues from the last.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redlock_tokio::ConfigError> {
    /// use std::time::Duration;
    /// use redlock_tokio::LockManager;
    ///
    /// let locks = LockManager::builder(["redis://127.0.0.1:7001"])
    ///     .settings(|s| s.ttl(Duration::from_secs(5)).key_prefix("billing:lock:").fencing(true))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn settings(mut self, f: impl FnOnce(SettingsBuilder) -> SettingsBuilder) -> Self {
        self.settings = f(self.settings);
        self
    }

    /// Default watchdog policy of the guards (default: extend at half the
    /// TTL left, no caps).
    pub fn extend_policy(mut self, policy: ExtendPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Which Redis client reaches the masters (default: redis-rs, or fred
    /// without the `redis-rs` feature). Both send the same commands under
    /// the same admission rules, and support every option of this
    /// builder; see [`Client`].
    pub fn client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// How long to wait for each master's first connection (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Wakes waiters when the lock they wait for is released, instead of
    /// letting them sleep out their retry delay (default: off).
    ///
    /// With it on, this manager's releases of held locks `PUBLISH` on a
    /// channel named after each lock key they delete (the cleanup after a
    /// refused attempt announces nothing), and a call that waits
    /// ([`LockManager::acquire`](crate::LockManager::acquire)) and was
    /// refused once subscribes to its keys' channels on every master, then
    /// retries at once. From then on it retries when a quorum of masters
    /// announced a release (after a short random pause, so that the
    /// waiters of several processes do not all try at the same instant),
    /// or when its retry delay runs out, whichever comes first; retries
    /// that answer announcements do not count against the retry policy's
    /// budget, up to as many as it allows, nor do those made because a
    /// slow subscription landed, at most one per master (the wait deadline
    /// still bounds the call). Uncontended
    /// acquisitions never subscribe. Turn it on in every process that
    /// takes the same locks: waiters hear only the releases of managers
    /// that announce them.
    ///
    /// When it pays (see `docs/benchmarks.md`, "Waking on release"):
    /// holders that keep the lock a while and processes that wait for it,
    /// where the hand-off drops from a retry delay to about a round trip.
    /// When it does not: many processes looping on one resource with
    /// nothing between two critical sections, where every release wakes
    /// every waiter.
    ///
    /// Costs and bounds: one extra connection per master, opened with the
    /// manager and idle until a waiter subscribes; at most 10 000 watched
    /// channels per master (then waiters poll); a waiter waits for its
    /// subscription at most the per-master timeout (a master that does not
    /// confirm in time leaves it polling, never hanging, until the
    /// subscription lands, and it retries then; an unanswered one is sent
    /// again); a `PUBLISH` per
    /// deleted key in each release. An
    /// announcement only shortens a sleep: it grants nothing, and a lost
    /// one costs one retry delay. Channels are global on a server, across
    /// its databases: another deployment with the same key prefix on the
    /// same servers wakes our waiters for nothing (one attempt each).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redlock_tokio::ConfigError> {
    /// use redlock_tokio::LockManager;
    ///
    /// let locks = LockManager::builder(["redis://127.0.0.1:7001"])
    ///     .wake_on_release(true)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn wake_on_release(mut self, on: bool) -> Self {
        self.wake_on_release = on;
        self
    }

    /// Trusts the CA certificate(s) in `pem` (one or more `CERTIFICATE`
    /// blocks; other blocks, such as keys, are skipped) for the `rediss://`
    /// masters, *instead of* the system roots. Call it again, or together
    /// with [`tls_ca_file`](Self::tls_ca_file), to trust several CAs.
    /// `redis://` masters stay plaintext.
    ///
    /// The servers are verified against these CAs and against the host of
    /// their URL (a DNS name or IP address in the certificate's subject
    /// alternative names). The PEM is checked by
    /// [`connect`](Self::connect).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use redlock_tokio::LockManager;
    ///
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let locks = LockManager::builder([
    ///     "rediss://redis-a.internal:6380",
    ///     "rediss://redis-b.internal:6380",
    ///     "rediss://redis-c.internal:6380",
    /// ])
    /// .tls_ca_pem(ca)
    /// .connect()
    /// .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_cas.push(fred::tls::CaSource::Pem(pem.into()));
        self
    }

    /// Like [`tls_ca_pem`](Self::tls_ca_pem), reading the PEM from `path`
    /// when [`connect`](Self::connect) runs.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_cas.push(fred::tls::CaSource::File(path.into()));
        self
    }

    /// Checks every setting and connects to every master (see
    /// [`connect_core`](Self::connect_core)); guards follow the
    /// [`extend_policy`](Self::extend_policy), and background tasks run on
    /// the runtime this is awaited on.
    ///
    /// # Errors
    ///
    /// As [`connect_core`](Self::connect_core).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is locked yet; dropping it drops the
    /// connections made so far.
    ///
    /// # Panics
    ///
    /// When awaited outside a tokio runtime.
    pub async fn connect(self) -> Result<LockManager, ConfigError> {
        let policy = self.policy.clone();
        let redlock = self.connect_core().await?;
        Ok(LockManager::with_handle(redlock, policy, Handle::current()))
    }

    /// Checks every setting, connects to every master in parallel, checks
    /// their identities, and loads the scripts; returns the core manager
    /// without guards (the extend policy is not used).
    ///
    /// Masters unreachable now are tolerated while a quorum is reachable:
    /// their clients keep reconnecting in the background, and each is
    /// checked (identity, role) before its first vote counts. `connect`
    /// returns shortly after a quorum is usable.
    ///
    /// `rediss://` and `redis://` masters may be mixed in one list; each
    /// `rediss://` master is reached over TLS only, never in plaintext.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the problem: bad settings or URLs, duplicate
    /// masters (same address, or same server `run_id`), a replica in the
    /// list, rejected credentials, a `rediss://` URL without the `tls`
    /// feature, unusable CA certificates, a failed TLS handshake (even on
    /// one master, like rejected credentials), a Redis Cluster node, a
    /// database the server does not have, or fewer than a quorum usable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is locked yet; dropping it drops the
    /// connections made so far.
    pub async fn connect_core(self) -> Result<Redlock<RedisMaster, TokioRuntime>, ConfigError> {
        let settings = self.settings.build(self.urls.len())?;
        let parsed = fred::parse_all(
            &self.urls,
            #[cfg(feature = "tls")]
            &self.tls_cas,
        )?;
        let attempts = match self.client {
            Client::Fred => as_links(
                fred::connect(
                    parsed,
                    &settings,
                    self.connect_timeout,
                    self.wake_on_release,
                )
                .await?,
                RedisLink::Fred,
            ),
            #[cfg(feature = "redis-rs")]
            Client::RedisRs => as_links(
                crate::redis_rs::connect(
                    parsed,
                    &settings,
                    self.connect_timeout,
                    self.wake_on_release,
                )
                .await?,
                RedisLink::RedisRs,
            ),
        };
        admit_all(attempts, settings)
    }
}

/// One client's start-up answers, with its links as [`RedisLink`]s.
fn as_links<L>(attempts: Vec<Attempt<L>>, link: fn(L) -> RedisLink) -> Vec<Attempt<RedisLink>> {
    attempts
        .into_iter()
        .map(|(l, facts)| (link(l), facts))
        .collect()
}
