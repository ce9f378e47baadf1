//! The production [`Master`]: one multiplexed fred client per Redis master,
//! configured for locks rather than for caching.
//!
//! fred's defaults are wrong for a lock (see `docs/algorithm.md`, "How each
//! master is reached"), so every
//! client is built with:
//! - a reconnect policy that never gives up (without one, a client whose
//!   server died reports `Connected` while every command hangs);
//! - one write attempt per command, so a `SET` is never re-sent after a
//!   reconnect behind our back;
//! - fred's own per-command timeout on every call (an outer
//!   `tokio::time::timeout` alone would let a dropped command be written
//!   later), and `fail_fast` so commands to a disconnected master fail at
//!   once instead of queueing;
//! - TCP nodelay, and the unresponsive-connection check.
//!
//! fred 10.1 drops per-call options on `evalsha` sent through
//! `with_options` (the Lua interface is not implemented for `WithOptions`),
//! so scripts go out as custom `EVALSHA` commands, with a `NOSCRIPT`
//! fallback to `EVAL` (which also caches the script again, after a master
//! restart for instance).
//!
//! TLS (`rediss://`, feature `tls`) fails closed. fred connects in plaintext
//! whenever its config carries no TLS connector, which is what it does for
//! `rediss://` when built without a TLS backend; so without the feature
//! `rediss://` is refused, and with it every `rediss://` master is checked
//! to carry our connector before its client is built. fred's own `rediss://`
//! parsing would load the system roots once per URL and fail on a single
//! unreadable system certificate; we parse the URL as `redis://` and attach
//! one connector (system roots, or the CAs given to the builder) instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::Server;
use fred::types::config::{
    Config, ConnectionConfig, Options, PerformanceConfig, ReconnectPolicy, ServerConfig, TcpConfig,
    UnresponsiveConfig,
};
use fred::types::{Builder, ClusterHash, ConnectHandle, CustomCommand, Value};
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver as BroadcastReceiver;

use crate::admission::{Admission, MasterFacts, Refusal};
use crate::admitted::{Admitted, Link};
use crate::clock::{ClockSample, ClockVerdict};
use crate::config::{Settings, SettingsBuilder, Ttl};
use crate::error::ConfigError;
use crate::fence::{Fence, FenceKeys};
use crate::inspect::KeyState;
use crate::manager::Redlock;
use crate::master::{Runtime, TokioRuntime};
use crate::reply::{self, map_error, SetNxGet};
use crate::retry::RetryPolicy;
use crate::scripts;
use crate::tally::MasterFailure;
use crate::token::Token;

/// A Lua script with its SHA1, computed locally once.
#[derive(Debug)]
struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: fred::util::sha1_hash(body),
        }
    }
}

#[derive(Debug)]
struct Scripts {
    acquire: Script,
    extend: Script,
    release: Script,
    acquire_fenced: Script,
    set_fence: Script,
    inspect: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            acquire: Script::new(scripts::ACQUIRE),
            extend: Script::new(scripts::EXTEND),
            release: Script::new(scripts::RELEASE),
            acquire_fenced: Script::new(scripts::ACQUIRE_FENCED),
            set_fence: Script::new(scripts::SET_FENCE),
            inspect: Script::new(scripts::INSPECT),
        }
    }

    fn all(&self) -> [&Script; 6] {
        [
            &self.acquire,
            &self.extend,
            &self.release,
            &self.acquire_fenced,
            &self.set_fence,
            &self.inspect,
        ]
    }
}

/// Shared by the links of one manager: the scripts and their SHAs.
type SharedScripts = Arc<Scripts>;

/// One Redis master reached through one multiplexed fred client: the raw
/// [`Link`] under the admission gate. [`FredMaster`] is the gated master
/// the algorithm votes with.
///
/// Dropping it stops the client's connection task.
pub struct FredLink {
    client: Client,
    options: Options,
    address: Arc<str>,
    scripts: SharedScripts,
    /// fred's reconnect notifications, drained before and after calls.
    reconnects: Mutex<BroadcastReceiver<Server>>,
    /// Set once the server answered `SET ... NX GET` with a syntax error
    /// (Redis before 7.0): single-key acquires use the script from then on.
    no_set_get: AtomicBool,
    task: Option<ConnectHandle>,
}

/// The production master: a [`FredLink`] behind the admission rules
/// (identity, replica, restart guard, reconnect generations, clock check).
pub type FredMaster = Admitted<FredLink>;

impl std::fmt::Debug for FredLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FredLink")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for FredLink {
    fn drop(&mut self) {
        // The reconnect policy never gives up, so the connection task would
        // outlive the manager; nothing can use this client any more.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A custom command: the only way fred 10.1 honours per-call options for
/// scripts (see the module docs).
fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

impl FredLink {
    /// Address for humans, without credentials.
    pub fn address_str(&self) -> &str {
        &self.address
    }

    /// The underlying fred client, for inspection commands (`PTTL`, `GET`)
    /// by tools. Lock operations should go through [`Redlock`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Per-call options carrying the per-master timeout.
    pub fn call_options(&self) -> &Options {
        &self.options
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[&str],
    ) -> Result<i64, MasterFailure> {
        // `first` is the SHA for EVALSHA or the body for EVAL; the rest is
        // the same. Built per send, so the common EVALSHA path does not copy
        // its arguments for a fallback that almost never happens.
        let argv = |first: Value| {
            let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            argv.push(first);
            argv.push(Value::Integer(keys.len() as i64));
            argv.extend(keys.iter().map(|k| Value::from(k.as_str())));
            argv.extend(args.iter().map(|a| Value::from(*a)));
            argv
        };
        let client = self.client.with_options(&self.options);
        let reply = match client
            .custom::<Value, Value>(command("EVALSHA"), argv(Value::from(script.sha.as_str())))
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                // The master lost its script cache (restart, SCRIPT FLUSH).
                // Reload all scripts in a task of their own: this future may
                // be dropped by an early decision before the EVAL below is
                // even sent, and a master that stays the slowest would then
                // never get its cache back.
                let (c, o, sh) = (
                    self.client.clone(),
                    self.options.clone(),
                    Arc::clone(&self.scripts),
                );
                tokio::spawn(async move { load_scripts(&c, &o, &sh).await });
                client
                    .custom::<Value, Value>(command("EVAL"), argv(Value::from(script.body)))
                    .await
            }
            other => other,
        };
        reply::script_reply(reply)
    }

    /// Acquires one key with `SET key token NX PX ttl GET`: one round
    /// trip and no script for the master to run, whether the key is free
    /// (set), ours (a late command of an earlier attempt with the same
    /// token) or held by another token. `None` when the server is older
    /// than Redis 7.0 and does not know `NX` with `GET`: the caller then
    /// uses the script, from now on.
    async fn set_nx_get(
        &self,
        key: &str,
        token: &Token,
        ttl: &str,
    ) -> Option<Result<SetNxGet, MasterFailure>> {
        let args = vec![key, token.expose(), "NX", "PX", ttl, "GET"];
        let reply = self
            .client
            .with_options(&self.options)
            .custom::<Value, _>(command("SET"), args)
            .await;
        if reply::is_syntax_error(&reply) {
            self.no_set_get.store(true, Ordering::Relaxed);
            return None;
        }
        Some(reply::set_nx_get_outcome(reply, token.expose()))
    }
}

impl Link for FredLink {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }

    fn take_reconnects(&self) -> bool {
        let mut seen = false;
        let mut rx = self
            .reconnects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // `Lagged` means more reconnects than the channel holds: still a
        // reconnect.
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = rx.try_recv() {
            seen = true;
        }
        seen
    }

    fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>> {
        let (client, options, scripts) = (
            self.client.clone(),
            self.options.clone(),
            Arc::clone(&self.scripts),
        );
        Box::pin(async move {
            let facts = fetch_identity(&client, &options)
                .await
                .map_err(|e| map_error(&e))?;
            // The server read its uptime before this instant.
            let observed_at = TokioRuntime.now();
            // After a restart the script cache is empty.
            load_scripts(&client, &options, &scripts)
                .await
                .map_err(|e| map_error(&e))?;
            Ok((observed_at, facts))
        })
    }

    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
        let (client, options) = (self.client.clone(), self.options.clone());
        Box::pin(async move {
            let sent = TokioRuntime.now();
            let reply = client
                .with_options(&options)
                .custom::<Value, Value>(command("TIME"), Vec::<Value>::new())
                .await;
            let received = TokioRuntime.now();
            let master = reply.ok().and_then(parse_time)?;
            Some(ClockSample {
                sent,
                received,
                master,
            })
        })
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        let ttl = ttl.as_millis().to_string();
        // One resource, the common case: `SET NX GET` decides in one round
        // trip without Lua. Only a key that already holds our token (a
        // late command of an earlier attempt, whose expiry may be shorter
        // than this attempt's) needs the script, which never shortens it.
        if let [key] = keys {
            if !self.no_set_get.load(Ordering::Relaxed) {
                match self.set_nx_get(key, token, &ttl).await {
                    Some(Ok(SetNxGet::Set)) => return Ok(()),
                    Some(Ok(SetNxGet::Other)) => return Err(MasterFailure::Held),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(SetNxGet::Ours)) | None => {}
                }
            }
        }
        let reply = self
            .eval(&self.scripts.acquire, keys, &[token.expose(), &ttl])
            .await?;
        reply::acquire_outcome(reply)
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        let ttl = ttl.as_millis().to_string();
        let recreate = if recreate { "1" } else { "0" };
        let reply = self
            .eval(
                &self.scripts.extend,
                keys,
                &[token.expose(), &ttl, recreate],
            )
            .await?;
        reply::extend_outcome(reply)
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        let reply = self
            .eval(&self.scripts.release, keys, &[token.expose()])
            .await?;
        reply::release_outcome(reply)
    }

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        self.inspect_key(key, fences).await
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        self.delete_keys(keys).await
    }

    async fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        let ttl = ttl.as_millis().to_string();
        let (keys, args) = fenced_argv(keys, fences, &[token.expose(), &ttl]);
        let reply = self
            .eval(&self.scripts.acquire_fenced, &keys, &args)
            .await?;
        reply::acquire_fenced_outcome(reply)
    }

    async fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        let fence = fence.get().to_string();
        let (keys, args) = fenced_argv(keys, fences, &[token.expose(), &fence]);
        let reply = self.eval(&self.scripts.set_fence, &keys, &args).await?;
        reply::set_fence_outcome(reply)
    }
}

impl FredLink {
    /// Runs a script whose reply is not a single integer.
    async fn eval_value(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Value, fred::error::Error> {
        let argv = |first: Value| {
            let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            argv.push(first);
            argv.push(Value::Integer(keys.len() as i64));
            argv.extend(keys.iter().map(|k| Value::from(*k)));
            argv.extend(args.iter().map(|a| Value::from(*a)));
            argv
        };
        let client = self.client.with_options(&self.options);
        match client
            .custom::<Value, Value>(command("EVALSHA"), argv(Value::from(script.sha.as_str())))
            .await
        {
            // Rare (a restart or SCRIPT FLUSH) and read-only: the body.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                client
                    .custom::<Value, Value>(command("EVAL"), argv(Value::from(script.body)))
                    .await
            }
            other => other,
        }
    }

    /// What this master holds under `key`, and the fence of the resource.
    async fn inspect_key(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        let field = fences.fields.first().map_or("", String::as_str);
        let reply = self
            .eval_value(&self.scripts.inspect, &[key, fences.hash], &[field])
            .await;
        reply::inspect_outcome(reply)
    }

    /// `DEL` of the keys, whoever holds them.
    async fn delete_keys(&self, keys: &[String]) -> Result<(), MasterFailure> {
        let args: Vec<Value> = keys.iter().map(|k| Value::from(k.as_str())).collect();
        self.client
            .with_options(&self.options)
            .custom::<Value, Value>(command("DEL"), args)
            .await
            .map(|_| ())
            .map_err(|e| map_error(&e))
    }
}

/// `KEYS` and `ARGV` of the fence scripts: the lock keys then the fence
/// hash; `head` then the resource names.
fn fenced_argv<'a>(
    keys: &[String],
    fences: FenceKeys<'a>,
    head: &[&'a str],
) -> (Vec<String>, Vec<&'a str>) {
    let mut all_keys = Vec::with_capacity(keys.len() + 1);
    all_keys.extend_from_slice(keys);
    all_keys.push(fences.hash.to_owned());
    let mut args = Vec::with_capacity(head.len() + fences.fields.len());
    args.extend_from_slice(head);
    args.extend(fences.fields.iter().map(String::as_str));
    (all_keys, args)
}

impl Admitted<FredLink> {
    /// Address for humans, without credentials.
    pub fn address_str(&self) -> &str {
        self.link().address_str()
    }

    /// The underlying fred client (see [`FredLink::client`]).
    pub fn client(&self) -> &Client {
        self.link().client()
    }

    /// Per-call options carrying the per-master timeout.
    pub fn call_options(&self) -> &Options {
        self.link().call_options()
    }

    /// The clock check's current verdict on this master, or `None` when
    /// the check is off.
    pub fn clock_verdict(&self) -> Option<ClockVerdict> {
        self.admission()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clock_verdict(self.index())
    }
}

/// Builder of the production manager, from master URLs.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use redlock_core::Redlock;
///
/// let redlock = Redlock::builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"])
///     .ttl(Duration::from_secs(30))
///     .master_timeout(Duration::from_millis(50))
///     .key_prefix("billing:lock:")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct RedlockBuilder {
    urls: Vec<String>,
    settings: SettingsBuilder,
    connect_timeout: Duration,
    /// CAs trusted for `rediss://` masters; empty: the system roots.
    #[cfg(feature = "tls")]
    tls_cas: Vec<tls::CaSource>,
}

impl std::fmt::Debug for RedlockBuilder {
    /// Shows the URLs with their passwords replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("RedlockBuilder")
            .field("urls", &urls)
            .field("settings", &self.settings)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl RedlockBuilder {
    /// Default TTL of new locks (default 10 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings = self.settings.ttl(ttl);
        self
    }

    /// Drift factor in `[0, 1)` (default 0.01).
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.settings = self.settings.drift_factor(factor);
        self
    }

    /// Votes needed (default `floor(N/2) + 1`; must exceed N/2).
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.settings = self.settings.quorum(quorum);
        self
    }

    /// Per-master command timeout (default 50 ms).
    pub fn master_timeout(mut self, timeout: Duration) -> Self {
        self.settings = self.settings.master_timeout(timeout);
        self
    }

    /// Retry policy of `acquire`.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.settings = self.settings.retry(retry);
        self
    }

    /// Overall wait deadline of `acquire`.
    pub fn wait(mut self, wait: Option<Duration>) -> Self {
        self.settings = self.settings.wait(wait);
        self
    }

    /// Key prefix (default `"redlock:"`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings = self.settings.key_prefix(prefix);
        self
    }

    /// Minimum validity left after acquire or extend (default 0).
    pub fn min_validity(mut self, min: Duration) -> Self {
        self.settings = self.settings.min_validity(min);
        self
    }

    /// See [`SettingsBuilder::max_ttl`]: the longest TTL of the
    /// deployment, and the restart guard's window (default 60 s).
    pub fn max_ttl(mut self, max: Duration) -> Self {
        self.settings = self.settings.max_ttl(max);
        self
    }

    /// See [`SettingsBuilder::holder_label`]: who holds each lock is
    /// recorded with it (on by default, without a label).
    pub fn holder_label(mut self, label: impl Into<String>) -> Self {
        self.settings = self.settings.holder_label(label);
        self
    }

    /// See [`SettingsBuilder::without_holder`].
    pub fn without_holder(mut self) -> Self {
        self.settings = self.settings.without_holder();
        self
    }

    /// See [`SettingsBuilder::fencing`]: every lock gets a fencing token
    /// unless an acquire says otherwise.
    pub fn fencing(mut self, on: bool) -> Self {
        self.settings = self.settings.fencing(on);
        self
    }

    /// See [`SettingsBuilder::check_master_clocks`].
    pub fn check_master_clocks(mut self, on: bool) -> Self {
        self.settings = self.settings.check_master_clocks(on);
        self
    }

    /// See [`SettingsBuilder::danger_disable_restart_guard`].
    pub fn danger_disable_restart_guard(mut self, off: bool) -> Self {
        self.settings = self.settings.danger_disable_restart_guard(off);
        self
    }

    /// See [`SettingsBuilder::danger_extend_recreates_missing_keys`].
    pub fn danger_extend_recreates_missing_keys(mut self, on: bool) -> Self {
        self.settings = self.settings.danger_extend_recreates_missing_keys(on);
        self
    }

    /// How long to wait for each master's first connection (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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
    /// use redlock_core::Redlock;
    ///
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let redlock = Redlock::builder([
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
        self.tls_cas.push(tls::CaSource::Pem(pem.into()));
        self
    }

    /// Like [`tls_ca_pem`](Self::tls_ca_pem), reading the PEM from `path`
    /// when [`connect`](Self::connect) runs.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_cas.push(tls::CaSource::File(path.into()));
        self
    }

    /// Checks every setting, connects to every master in parallel, checks
    /// their identities, and loads the scripts.
    ///
    /// Masters unreachable now are tolerated while a quorum is reachable:
    /// their clients keep reconnecting in the background, and each is
    /// checked (identity, role) before its first vote counts.
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
    pub async fn connect(self) -> Result<Redlock<FredMaster, TokioRuntime>, ConfigError> {
        let settings = self.settings.build(self.urls.len())?;
        let parsed = self
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        #[cfg(feature = "tls")]
        let parsed = tls::attach(parsed, &self.tls_cas)?;
        for (i, a) in parsed.iter().enumerate() {
            if let Some(b) = parsed[..i].iter().find(|b| b.address == a.address) {
                return Err(ConfigError::DuplicateMaster {
                    first: b.address.to_string(),
                    second: a.address.to_string(),
                    why: "same address".into(),
                });
            }
        }
        let scripts = Arc::new(Scripts::new());
        let admission = Arc::new(Mutex::new(Admission::for_settings(&settings)));
        let options = call_options(&settings);
        let attempts =
            connect_all(parsed, &settings, self.connect_timeout, &options, &scripts).await?;

        // The answers are recorded through the same admission rules every
        // later check uses; at start-up a replica or a duplicate in the list
        // is a configuration error worth stopping for, while a master that
        // is merely unreachable or flaky now joins when it answers.
        let mut masters = Vec::with_capacity(attempts.len());
        let mut not_usable = Vec::new();
        for (i, (link, facts)) in attempts.into_iter().enumerate() {
            let address = link.address_str().to_owned();
            let master = Admitted::new(link, i, Arc::clone(&admission));
            match facts {
                Ok((observed_at, facts)) => {
                    let verdict = lock_admission(&admission).verified(i, 0, observed_at, &facts);
                    match verdict {
                        Ok(()) => {}
                        Err(Refusal::NotMaster { role }) => {
                            return Err(ConfigError::NotAMaster {
                                master: address,
                                role,
                            })
                        }
                        Err(Refusal::SameServerAs { other, run_id }) => {
                            return Err(ConfigError::DuplicateMaster {
                                first: masters
                                    .get(other)
                                    .map_or_else(String::new, |m: &FredMaster| {
                                        m.address_str().to_owned()
                                    }),
                                second: address,
                                why: format!("same run_id {run_id}"),
                            })
                        }
                        Err(other) => not_usable.push(format!("{address} {}", other.to_failure())),
                    }
                }
                Err(failure) => not_usable.push(format!("{address} {failure}")),
            }
            masters.push(master);
        }
        let usable = masters.len() - not_usable.len();
        if usable < settings.quorum.needed() {
            return Err(ConfigError::Unreachable {
                reachable: usable,
                masters: masters.len(),
                needed: settings.quorum.needed(),
                details: not_usable.join("; "),
            });
        }
        Redlock::with_masters(masters, settings, TokioRuntime)
    }
}

impl Redlock<FredMaster, TokioRuntime> {
    /// Starts building a manager over the given master URLs
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` with the
    /// `tls` feature).
    pub fn builder<I, S>(urls: I) -> RedlockBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedlockBuilder {
            urls: urls.into_iter().map(Into::into).collect(),
            settings: Settings::builder(),
            connect_timeout: Duration::from_secs(2),
            #[cfg(feature = "tls")]
            tls_cas: Vec::new(),
        }
    }

    /// Closes every master connection. Locks still held stay until their
    /// TTL; release them first (and await
    /// [`background_idle`](Redlock::background_idle) for releases still
    /// finishing on slow masters).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it leaves the remaining connections open; they
    /// close when the manager is dropped.
    pub async fn quit(&self) {
        futures::future::join_all(self.masters().iter().map(|m| async move {
            let _ = m.client().quit().await;
        }))
        .await;
    }
}

#[derive(Clone)]
struct ParsedUrl {
    config: Config,
    address: Arc<str>,
    /// `rediss://`: no client may be built before `config.tls` is set.
    tls: bool,
}

/// A master URL with its password (or lone user-info) replaced by `***`,
/// for messages and logs. Every error and `Debug` output of this crate
/// shows URLs this way.
///
/// ```
/// assert_eq!(redlock_core::redact_url("redis://app:s3cret@10.0.0.1:6379"), "redis://app:***@10.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => format!("{}***{}", &url[..s + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

fn parse_url(url: &str) -> Result<ParsedUrl, ConfigError> {
    let shown = redact_url(url);
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(ConfigError::InvalidUrl {
            url: shown,
            reason: "expected redis://host:port".into(),
        });
    };
    let tls = match scheme {
        "redis" => false,
        // fred without a TLS feature would silently connect in plaintext.
        #[cfg(not(feature = "tls"))]
        "rediss" => return Err(ConfigError::TlsNotCompiled { url: shown }),
        #[cfg(feature = "tls")]
        "rediss" => true,
        other => {
            return Err(ConfigError::UnsupportedScheme {
                url: shown,
                scheme: other.to_owned(),
            })
        }
    };
    // A `rediss://` URL is parsed as `redis://`: `connect` attaches one
    // connector to all TLS masters (see the module docs).
    let plain_url;
    let url = if tls {
        plain_url = format!("redis{}", &url[scheme.len()..]);
        &plain_url
    } else {
        url
    };
    let config = Config::from_url_centralized(url).map_err(|e| ConfigError::InvalidUrl {
        url: shown.clone(),
        reason: url_reason(e.details()),
    })?;
    let address = match &config.server {
        ServerConfig::Centralized { server } => {
            let db = config
                .database
                .filter(|d| *d != 0)
                .map(|d| format!("/{d}"))
                .unwrap_or_default();
            format!("{}:{}{}", server.host, server.port, db)
        }
        _ => {
            return Err(ConfigError::InvalidUrl {
                url: shown,
                reason: "not a single server".into(),
            })
        }
    };
    if address.starts_with(':') {
        return Err(ConfigError::InvalidUrl {
            url: shown,
            reason: "missing host".into(),
        });
    }
    Ok(ParsedUrl {
        config,
        address: address.into(),
        tls,
    })
}

/// fred reports URL mistakes with the `url` crate's enum names
/// (`EmptyHost`, `InvalidPort`) or terse phrases; say them in words.
fn url_reason(details: &str) -> String {
    match details {
        "EmptyHost" | "Invalid or missing host." => "the host is missing".into(),
        "InvalidPort" => "the port is not a number from 1 to 65535".into(),
        "InvalidIpv6Address" => "the IPv6 address is malformed".into(),
        "InvalidIpv4Address" => "the IPv4 address is malformed".into(),
        "InvalidDomainCharacter" | "IdnaError" => {
            "the host name has a character a host name cannot have".into()
        }
        "Invalid integer string." => {
            "the database (the path after the port) is not a number".into()
        }
        other => other.to_owned(),
    }
}

fn call_options(settings: &Settings) -> Options {
    Options {
        max_attempts: Some(1),
        timeout: Some(settings.master_timeout()),
        fail_fast: true,
        ..Options::default()
    }
}

fn build_client(
    mut config: Config,
    settings: &Settings,
    connect_timeout: Duration,
    fail_fast: bool,
) -> Result<Client, FredError> {
    config.fail_fast = fail_fast;
    let timeout = settings.master_timeout();
    Builder::from_config(config)
        // Never give up reconnecting: 10 ms doubling to 1 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 10, 1_000, 2))
        .set_connection_config(ConnectionConfig {
            connection_timeout: connect_timeout,
            internal_command_timeout: connect_timeout,
            max_command_attempts: 1,
            tcp: TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            },
            // A connection whose replies stall for this long is closed and
            // re-opened. Well above the per-command timeout, so a release
            // queued behind a timed-out acquire on a paused master is still
            // written on the same connection, in order.
            unresponsive: UnresponsiveConfig {
                max_timeout: Some((timeout * 20).max(Duration::from_secs(2))),
                interval: (timeout * 5).clamp(Duration::from_millis(100), Duration::from_secs(1)),
            },
            ..ConnectionConfig::default()
        })
        .set_performance_config(PerformanceConfig {
            default_command_timeout: timeout,
            ..PerformanceConfig::default()
        })
        .build()
}

/// How long `connect` keeps waiting for the other masters once a quorum is
/// usable: a master that answers a moment later is still checked at
/// start-up (a duplicate or a replica is then a configuration error), but
/// one that is paused or black-holed does not hold the caller for the
/// whole connect timeout. It joins in the background.
const CONNECT_GRACE: Duration = Duration::from_millis(50);

/// What one master's start-up gave: its link, and when and what it said
/// about itself, or why it is not usable yet.
type Attempt = (FredLink, Result<(Instant, MasterFacts), MasterFailure>);

/// Connects every master in parallel and returns, in master order, as soon
/// as a quorum is usable and [`CONNECT_GRACE`] has passed (or every master
/// answered). Masters still connecting then get a client that keeps
/// reconnecting in the background; they are checked before their first
/// vote counts.
async fn connect_all(
    parsed: Vec<ParsedUrl>,
    settings: &Settings,
    connect_timeout: Duration,
    options: &Options,
    scripts: &SharedScripts,
) -> Result<Vec<Attempt>, ConfigError> {
    let needed = settings.quorum().needed();
    let mut pending: futures::stream::FuturesUnordered<_> = parsed
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| async move {
            (
                i,
                connect_one(p, settings, connect_timeout, options, scripts).await,
            )
        })
        .collect();
    let mut done: Vec<Option<Attempt>> = (0..parsed.len()).map(|_| None).collect();
    let mut usable = 0;
    let mut grace_until: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_until {
            Some(until) => match tokio::time::timeout_at(until, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => pending.next().await,
        };
        let Some((i, attempt)) = next else { break };
        let attempt = attempt?;
        if attempt.1.is_ok() {
            usable += 1;
        }
        done[i] = Some(attempt);
        if usable >= needed && grace_until.is_none() {
            grace_until = Some(tokio::time::Instant::now() + CONNECT_GRACE);
        }
    }
    drop(pending);
    parsed
        .into_iter()
        .zip(done)
        .map(|(p, attempt)| match attempt {
            Some(a) => Ok(a),
            None => {
                let address = Arc::clone(&p.address);
                let client =
                    build_client(p.config, settings, connect_timeout, false).map_err(|e| {
                        ConfigError::Setup {
                            master: address.to_string(),
                            message: e.details().to_string(),
                        }
                    })?;
                let reconnects = client.reconnect_rx();
                let task = client.connect();
                let link = FredLink {
                    reconnects: Mutex::new(reconnects),
                    client,
                    options: options.clone(),
                    address,
                    scripts: Arc::clone(scripts),
                    no_set_get: AtomicBool::new(false),
                    task: Some(task),
                };
                Ok((
                    link,
                    Err(MasterFailure::Unreachable(
                        "still connecting when a quorum was ready".into(),
                    )),
                ))
            }
        })
        .collect()
}

/// Connects one master. Returns its link and, when it answered, when and
/// what it said about itself; a master that is unreachable or fails during
/// setup (a reset, a timeout) is not an error here: its client keeps
/// reconnecting in the background and it is verified before its first vote
/// counts. Wrong credentials and failed TLS handshakes are errors: they do
/// not heal by retrying.
async fn connect_one(
    parsed: ParsedUrl,
    settings: &Settings,
    connect_timeout: Duration,
    options: &Options,
    scripts: &SharedScripts,
) -> Result<Attempt, ConfigError> {
    let address = parsed.address;
    let tls = parsed.tls;
    if tls && !parsed.config.uses_tls() {
        // `connect` attaches a connector to every `rediss://` master, so this
        // is unreachable; checked anyway, as the alternative is plaintext.
        return Err(ConfigError::TlsNotCompiled {
            url: address.to_string(),
        });
    }
    let make = |client: Client, task: ConnectHandle, reconnects| FredLink {
        reconnects: Mutex::new(reconnects),
        client,
        options: options.clone(),
        address: Arc::clone(&address),
        scripts: Arc::clone(scripts),
        no_set_get: AtomicBool::new(false),
        task: Some(task),
    };
    let setup_err = |e: FredError| ConfigError::Setup {
        master: address.to_string(),
        message: e.details().to_string(),
    };
    let auth_err = |e: &FredError| ConfigError::Auth {
        master: address.to_string(),
        message: e.details().to_string(),
    };

    let client =
        build_client(parsed.config.clone(), settings, connect_timeout, true).map_err(setup_err)?;
    // Subscribe before connecting, so no reconnect can slip between the
    // first connection and the subscription.
    let reconnects = client.reconnect_rx();
    let first =
        tokio::time::timeout(connect_timeout + Duration::from_millis(100), client.init()).await;
    match first {
        Ok(Ok(task)) => {
            let link = make(client, task, reconnects);
            // The first connection announces itself as a reconnect; the
            // identity check below covers it and anything before it.
            link.take_reconnects();
            let setup = connect_options(connect_timeout);
            let facts = match fetch_identity(&link.client, &setup).await {
                Ok(facts) => facts,
                Err(e) if e.kind() == &ErrorKind::Auth || is_auth_message(e.details()) => {
                    return Err(auth_err(&e))
                }
                Err(e) if e.kind() == &ErrorKind::Cluster => {
                    return Err(ConfigError::ClusterNode {
                        master: address.to_string(),
                    })
                }
                Err(e) => return Ok((link, Err(setup_failure(&e, &address)?))),
            };
            let observed_at = TokioRuntime.now();
            if let Err(e) = load_scripts(&link.client, &setup, scripts).await {
                return Ok((link, Err(setup_failure(&e, &address)?)));
            }
            Ok((link, Ok((observed_at, facts))))
        }
        Ok(Err(e)) if e.kind() == &ErrorKind::Auth || is_auth_message(e.details()) => {
            Err(auth_err(&e))
        }
        // fred sends SELECT on connect: a database the server does not
        // have fails every connection, and would otherwise read as
        // "unreachable".
        Ok(Err(e)) if e.details().contains("DB index is out of range") => {
            Err(ConfigError::NoSuchDatabase {
                master: address.to_string(),
                db: parsed.config.database.unwrap_or(0),
            })
        }
        // A wrong CA or host name does not heal by retrying: fail now, with
        // the reason, rather than count the master as merely unreachable.
        #[cfg(feature = "tls")]
        Ok(Err(e)) if tls && is_tls_failure(&e) => Err(ConfigError::Tls {
            master: address.to_string(),
            reason: tls_reason(e.details()),
        }),
        first => {
            // Unreachable for now. Start a client that keeps trying in the
            // background; it is verified before its first vote counts.
            let mut why = match first {
                Ok(Err(e)) => map_error(&e),
                _ => MasterFailure::TimedOut,
            };
            if tls {
                // A plaintext port answers a TLS hello with silence or
                // garbage: say what to check rather than only "timed out".
                why = MasterFailure::Unreachable(format!(
                    "{why}; no TLS session was established: does this port serve TLS (rediss://)?"
                ));
            }
            let _ = client.quit().await;
            let client =
                build_client(parsed.config, settings, connect_timeout, false).map_err(setup_err)?;
            let reconnects = client.reconnect_rx();
            let task = client.connect();
            Ok((make(client, task, reconnects), Err(why)))
        }
    }
}

/// A failure while setting up a connected master: a transport problem (a
/// reset, a timeout) makes the master "not yet usable", anything else (an
/// ACL that forbids `INFO` or `SCRIPT`, a garbage reply) is a
/// configuration error worth stopping for.
fn setup_failure(e: &FredError, address: &str) -> Result<MasterFailure, ConfigError> {
    match map_error(e) {
        f @ (MasterFailure::TimedOut | MasterFailure::Unreachable(_)) => Ok(f),
        _ => Err(ConfigError::Setup {
            master: address.to_owned(),
            message: e.details().to_string(),
        }),
    }
}

fn lock_admission(admission: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    admission
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a first connection over TLS failed in the handshake itself.
///
/// tokio-rustls reports every rustls error (unknown issuer, name mismatch,
/// a peer that does not speak TLS) as an `io::Error` of kind `InvalidData`,
/// which fred turns into `ErrorKind::IO` with the `Debug` text, e.g.
/// `Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }`;
/// fred's own TLS errors (a host that is no valid server name) are
/// `ErrorKind::Tls`. This only picks the error message: whatever the
/// verdict, a client with a connector never falls back to plaintext.
#[cfg(feature = "tls")]
fn is_tls_failure(e: &FredError) -> bool {
    e.kind() == &ErrorKind::Tls || e.details().contains("kind: InvalidData")
}

/// The rustls error out of fred's `io::Error` text, e.g.
/// `InvalidCertificate(UnknownIssuer)`; the whole text if it has another
/// shape.
#[cfg(feature = "tls")]
fn tls_reason(details: &str) -> String {
    details
        .strip_prefix("Custom { kind: InvalidData, error: ")
        .and_then(|r| r.strip_suffix(" }"))
        .unwrap_or(details)
        .to_owned()
}

fn is_auth_message(details: &str) -> bool {
    details.contains("WRONGPASS")
        || details.contains("NOAUTH")
        || details.contains("invalid username-password")
}

fn connect_options(connect_timeout: Duration) -> Options {
    Options {
        max_attempts: Some(1),
        timeout: Some(connect_timeout),
        fail_fast: true,
        ..Options::default()
    }
}

async fn fetch_identity(client: &Client, options: &Options) -> Result<MasterFacts, FredError> {
    let info: String = client
        .with_options(options)
        .custom(command("INFO"), Vec::<Value>::new())
        .await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_owned())
    };
    let run_id = field("run_id")
        .ok_or_else(|| FredError::new(ErrorKind::Protocol, "INFO reply has no run_id"))?;
    let role = field("role").unwrap_or_else(|| "unknown".into());
    if field("cluster_enabled").as_deref() == Some("1") {
        // Typed by kind, so start-up can name it; a vote reports it as a
        // server error with this text.
        return Err(FredError::new(
            ErrorKind::Cluster,
            "CLUSTER mode: this server is a Redis Cluster node (cluster_enabled:1); redlock needs independent single-node primaries",
        ));
    }
    // As reported: whole seconds of wall clock. The admission rules add the
    // granularity. A missing field reads as 0: the guard errs on waiting.
    let uptime_secs = field("uptime_in_seconds")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(MasterFacts {
        run_id,
        role,
        uptime_secs,
    })
}

/// Parses a `TIME` reply: `[seconds, microseconds]` as strings.
fn parse_time(v: Value) -> Option<Duration> {
    let Value::Array(parts) = v else { return None };
    let num = |v: &Value| match v {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse::<u64>().ok(),
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    match parts.as_slice() {
        [secs, micros] => {
            Some(Duration::from_secs(num(secs)?) + Duration::from_micros(num(micros)?))
        }
        _ => None,
    }
}

async fn load_scripts(
    client: &Client,
    options: &Options,
    scripts: &Scripts,
) -> Result<(), FredError> {
    // Sent together: they pipeline on the one connection, one round trip.
    let all = scripts.all();
    let client = client.with_options(options);
    let shas = futures::future::join_all(
        all.iter()
            .map(|s| client.custom::<String, _>(command("SCRIPT"), vec!["LOAD", s.body])),
    )
    .await;
    for (s, sha) in all.iter().zip(shas) {
        let sha = sha?;
        if sha != s.sha {
            return Err(FredError::new(
                ErrorKind::Protocol,
                format!("SCRIPT LOAD returned {sha}, expected {}", s.sha),
            ));
        }
    }
    Ok(())
}

/// TLS for `rediss://` masters: rustls with the ring provider, trusting the
/// system roots or the CAs given to the builder.
#[cfg(feature = "tls")]
mod tls {
    use std::borrow::Cow;
    use std::path::PathBuf;
    use std::sync::Arc;

    use fred::rustls::crypto::ring;
    use fred::rustls::pki_types::pem::PemObject;
    use fred::rustls::pki_types::CertificateDer;
    use fred::rustls::{ClientConfig, RootCertStore};
    use fred::rustls_native_certs;
    use fred::types::config::TlsConnector;

    use super::ParsedUrl;
    use crate::error::ConfigError;

    /// Where a trusted CA comes from; read and checked by [`attach`], so
    /// the builder methods stay infallible like the others.
    #[derive(Clone)]
    pub(super) enum CaSource {
        Pem(Vec<u8>),
        File(PathBuf),
    }

    /// Gives every `rediss://` master one shared connector. The CAs are
    /// checked even when every URL is `redis://`: a CA that was given but
    /// cannot be read is a mistake worth reporting. The files (CA files,
    /// the system store) are read synchronously: once per `connect`,
    /// before any master is contacted.
    pub(super) fn attach(
        mut parsed: Vec<ParsedUrl>,
        cas: &[CaSource],
    ) -> Result<Vec<ParsedUrl>, ConfigError> {
        if cas.is_empty() && !parsed.iter().any(|p| p.tls) {
            // All plaintext: do not even look at the system roots.
            return Ok(parsed);
        }
        let roots = if cas.is_empty() {
            system_roots()?
        } else {
            given_roots(cas)?
        };
        // An explicit provider rather than `ClientConfig::builder()`, which
        // panics when the build links two rustls providers (another crate
        // may enable aws-lc-rs) and no process default was installed.
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring's default provider supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = TlsConnector::from(config);
        for p in parsed.iter_mut().filter(|p| p.tls) {
            p.config.tls = Some(connector.clone().into());
        }
        Ok(parsed)
    }

    fn invalid(reason: String) -> ConfigError {
        ConfigError::InvalidTlsCa { reason }
    }

    fn given_roots(cas: &[CaSource]) -> Result<RootCertStore, ConfigError> {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            let (pem, origin) = match ca {
                CaSource::Pem(pem) => (Cow::Borrowed(pem.as_slice()), "tls_ca_pem".to_owned()),
                CaSource::File(path) => {
                    let origin = format!("tls_ca_file {}", path.display());
                    let pem = std::fs::read(path).map_err(|e| invalid(format!("{origin}: {e}")))?;
                    (Cow::Owned(pem), origin)
                }
            };
            let mut found = 0_usize;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| invalid(format!("{origin}: bad PEM: {e}")))?;
                found += 1;
                roots.add(cert).map_err(|e| {
                    invalid(format!(
                        "{origin}: certificate #{found} is not a usable CA: {e}"
                    ))
                })?;
            }
            if found == 0 {
                return Err(invalid(format!("{origin}: no PEM CERTIFICATE block found")));
            }
        }
        Ok(roots)
    }

    /// The platform's roots. Unlike fred's `TlsConnector::default_rustls`,
    /// one unreadable system certificate does not fail the whole store;
    /// an empty store does, as nothing could ever be verified against it.
    fn system_roots() -> Result<RootCertStore, ConfigError> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let errors = loaded
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(invalid(format!(
                "no usable system root certificate ({errors}); give the servers' CA with tls_ca_pem or tls_ca_file"
            )));
        }
        Ok(roots)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn err(cas: Vec<CaSource>) -> String {
            match given_roots(&cas) {
                Err(ConfigError::InvalidTlsCa { reason }) => reason,
                Err(e) => panic!("wrong error: {e}"),
                Ok(_) => panic!("accepted"),
            }
        }

        #[test]
        fn bad_ca_pem_is_a_typed_error() {
            let reason = err(vec![CaSource::Pem(b"not a certificate".to_vec())]);
            assert!(reason.contains("no PEM CERTIFICATE block"), "{reason}");
            // A key alone is not a CA.
            let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
            let reason = err(vec![CaSource::Pem(key.to_vec())]);
            assert!(reason.contains("no PEM CERTIFICATE block"), "{reason}");
            // Valid base64, not a certificate.
            let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
            let reason = err(vec![CaSource::Pem(junk.to_vec())]);
            assert!(
                reason.contains("certificate #1 is not a usable CA"),
                "{reason}"
            );
            let cut = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
            let reason = err(vec![CaSource::Pem(cut.to_vec())]);
            assert!(reason.contains("bad PEM"), "{reason}");
        }

        #[test]
        fn missing_ca_file_is_a_typed_error() {
            let reason = err(vec![CaSource::File("/nonexistent/redlock/ca.pem".into())]);
            assert!(reason.contains("/nonexistent/redlock/ca.pem"), "{reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(redact_url("redis://u:secret@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_url("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn urls_parsed_and_checked() {
        assert_eq!(
            parse_url("redis://127.0.0.1:7001")
                .map(|p| p.address.to_string())
                .ok()
                .as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(
            parse_url("redis://h:1/2")
                .map(|p| p.address.to_string())
                .ok()
                .as_deref(),
            Some("h:1/2")
        );
        assert!(matches!(
            parse_url("localhost:6379"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("http://h:1"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_url("redis-cluster://h:1"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_url("redis://h:notaport"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        let err = parse_url("redis://u:hunter2@h:notaport")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// Without the `tls` feature, fred would connect to a `rediss://` URL
    /// in plaintext. `cargo test --workspace` enables the feature (the
    /// integration tests need it), so `scripts/test.sh` also runs
    /// `cargo test -p redlock-core --lib`, a build without it.
    #[cfg(not(feature = "tls"))]
    #[test]
    fn rediss_refused_without_tls() {
        assert!(matches!(
            parse_url("rediss://h:1"),
            Err(ConfigError::TlsNotCompiled { .. })
        ));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rediss_parsed_as_tls_with_tls() {
        let tls = |url: &str| parse_url(url).map(|p| (p.tls, p.address.to_string())).ok();
        assert_eq!(tls("rediss://u:pw@h:1/2"), Some((true, "h:1/2".into())));
        assert_eq!(tls("redis://h:1"), Some((false, "h:1".into())));
        assert!(matches!(
            parse_url("rediss://h:notaport"),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn url_errors_read_like_sentences() {
        let reason = |u: &str| match parse_url(u) {
            Err(ConfigError::InvalidUrl { reason, .. }) => reason,
            other => panic!("{u}: {:?}", other.err()),
        };
        assert_eq!(reason("redis://:1"), "the host is missing");
        assert_eq!(
            reason("redis://h:99999"),
            "the port is not a number from 1 to 65535"
        );
        assert_eq!(
            reason("redis://h:notaport"),
            "the port is not a number from 1 to 65535"
        );
        assert_eq!(reason("redis://[::1"), "the IPv6 address is malformed");
        assert!(
            reason("redis://h:1/x").contains("database"),
            "{}",
            reason("redis://h:1/x")
        );
    }

    #[test]
    fn scripts_hash_like_redis() {
        // SHA1 of the empty script, as `SCRIPT LOAD ""` answers.
        assert_eq!(
            fred::util::sha1_hash(""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }
}
