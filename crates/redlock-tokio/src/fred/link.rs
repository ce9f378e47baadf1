//! The link to one master: its fred client, the scripts, and the lock
//! commands, each one round trip under the per-master timeout.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fred::clients::Client;
use fred::error::ErrorKind;
use fred::interfaces::ClientLike;
use fred::types::config::{Options, Server};
use fred::types::{ClusterHash, ConnectHandle, CustomCommand, Value};
use futures::future::BoxFuture;
use redlock_core::{
    ClockSample, Fence, FenceKeys, KeyState, Link, Master, MasterFacts, MasterFailure,
    ReleaseWatch, Token, Ttl,
};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver as BroadcastReceiver;

use redlock_core::scripts;

use super::announce::Announcements;
use super::connect::{fetch_identity, load_scripts, parse_time};
use super::reply::{self, map_error};
use crate::commands::{self, ScriptLink};
use crate::link::{Delivery, Finish, Timed};

/// A Lua script with its SHA1, computed locally once.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) body: &'static str,
    pub(crate) sha: String,
}

impl Script {
    /// The script and its SHA1, computed here: EVALSHA needs no round trip
    /// to learn it.
    fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: fred::util::sha1_hash(body),
        }
    }

    /// Whether the server computed the same SHA1 for this script as we did
    /// (`SCRIPT LOAD`'s answer); the message says what differs.
    pub(crate) fn check_loaded(&self, sha: &str) -> Result<(), String> {
        if sha == self.sha {
            Ok(())
        } else {
            Err(format!("SCRIPT LOAD returned {sha}, expected {}", self.sha))
        }
    }
}

#[derive(Debug)]
/// The lock scripts of `redlock_core::scripts`, with their SHAs: one set
/// per manager, shared by its links.
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) extend: Script,
    pub(crate) release: Script,
    pub(crate) acquire_fenced: Script,
    pub(crate) set_fence: Script,
    pub(crate) inspect: Script,
    pub(crate) release_announce: Script,
    /// Whether releases announce themselves and waiters subscribe
    /// ([`announce`](super::announce)).
    pub(crate) announce: bool,
}

impl Scripts {
    /// Every script of the core, hashed once; with `announce`, releases
    /// announce themselves.
    pub(crate) fn new(announce: bool) -> Self {
        Self {
            acquire: Script::new(scripts::ACQUIRE),
            extend: Script::new(scripts::EXTEND),
            release: Script::new(scripts::RELEASE),
            acquire_fenced: Script::new(scripts::ACQUIRE_FENCED),
            set_fence: Script::new(scripts::SET_FENCE),
            inspect: Script::new(scripts::INSPECT),
            release_announce: Script::new(scripts::RELEASE_ANNOUNCE),
            announce,
        }
    }

    /// Every script, for loading them all after a (re)start.
    pub(crate) fn all(&self) -> [&Script; 7] {
        [
            &self.acquire,
            &self.extend,
            &self.release,
            &self.acquire_fenced,
            &self.set_fence,
            &self.inspect,
            &self.release_announce,
        ]
    }
}

/// Shared by the links of one manager: the scripts and their SHAs.
pub(crate) type SharedScripts = Arc<Scripts>;

/// One Redis master reached through one multiplexed fred client: the raw
/// [`Link`] under the admission gate, as [`RedisLink::Fred`](crate::RedisLink::Fred);
/// [`RedisMaster`](crate::RedisMaster) is the gated master the algorithm
/// votes with.
///
/// Dropping it stops the client's connection task.
pub struct FredLink {
    client: Client,
    /// The per-call options: fred's timeout at the per-master timeout.
    options: Options,
    /// The same without fred's timeout, for releases
    /// ([`Release`](crate::link::Release));
    /// boxed, as the link is a variant of `RedisLink`.
    release_options: Box<Options>,
    address: Arc<str>,
    scripts: SharedScripts,
    /// fred's reconnect notifications, drained before and after calls.
    reconnects: Mutex<BroadcastReceiver<Server>>,
    /// Set once the server answered `SET ... NX GET` with a syntax error
    /// (Redis before 7.0): single-key acquires use the script from then on.
    no_set_get: AtomicBool,
    task: Option<ConnectHandle>,
    /// The subscriber side of release announcements, when switched on.
    announcements: Option<Announcements>,
}

impl FredLink {
    /// A link over a client whose connection task is `task`; `reconnects`
    /// was subscribed before the client first connected, so no reconnect
    /// slips between the two.
    pub(super) fn new(
        client: Client,
        task: ConnectHandle,
        reconnects: BroadcastReceiver<Server>,
        options: Options,
        address: Arc<str>,
        scripts: SharedScripts,
    ) -> Self {
        let announcements = scripts
            .announce
            .then(|| Announcements::new(&client, &options));
        let release_options = Box::new(Options {
            // Zero: no timeout at all in fred (`basic_request_response`).
            timeout: Some(std::time::Duration::ZERO),
            ..options.clone()
        });
        Self {
            announcements,
            client,
            options,
            release_options,
            address,
            scripts,
            reconnects: Mutex::new(reconnects),
            no_set_get: AtomicBool::new(false),
            task: Some(task),
        }
    }
}

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
pub(super) fn command(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

impl FredLink {
    /// The client, for the start-up checks.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one command and returns its reply, within the per-master
    /// timeout. Every lock command goes through here.
    ///
    /// fred gives a command up (and then never writes it) only when its
    /// timeout fires in the future that awaits it; a command whose future
    /// was dropped stays queued without a deadline and is written whenever
    /// the connection can take it, after a reconnect even. An early
    /// decision drops the slowest master's vote, and behind a full socket
    /// (a paused master) that `SET` would then be written after the
    /// release queued behind it had timed out and been skipped, leaving
    /// our key until its TTL (`clients.rs`,
    /// `votes_given_up_behind_a_full_socket_leave_no_key`). So a request
    /// dropped before its answer is awaited to the end in a task of its
    /// own ([`Finish`]). A [`Timed`] one carries fred's timeout: written
    /// within it or not at all. A [`Release`](crate::link::Release) one
    /// carries none, so fred never skips it, and its caller stops waiting
    /// at the per-master timeout.
    fn request<D: Delivery>(
        &self,
        name: &'static str,
        args: Vec<Value>,
        delivery: D,
    ) -> impl Future<Output = Result<Value, fred::error::Error>> + Send + 'static {
        let options = if D::TIMED {
            &self.options
        } else {
            &*self.release_options
        };
        let client = self.client.with_options(options);
        let timeout = self.options.timeout.unwrap_or_default();
        delivery.awaited(
            timeout,
            Finish::new(async move { client.custom::<Value, Value>(command(name), args).await }),
            || fred::error::Error::new(ErrorKind::Timeout, "Request timed out."),
        )
    }

    /// Runs `script` with `EVALSHA` and returns its integer reply; after
    /// `NOSCRIPT` (a restarted or flushed master) it falls back to `EVAL`
    /// and reloads every script in a task of its own.
    async fn eval(
        &self,
        script: &Script,
        keys: &[impl AsRef<str> + Sync],
        args: &[&str],
        delivery: impl Delivery,
    ) -> Result<i64, MasterFailure> {
        reply::script_reply(self.send_script(script, keys, args, true, delivery).await)
    }

    /// `EVALSHA` of `script`; after `NOSCRIPT` (a restarted or flushed
    /// master) `EVAL` of its body and, with `reload`, every script loaded
    /// again in a task of its own: this future may be dropped by an early
    /// decision before the `EVAL` is even sent, and a master that stays
    /// the slowest would then never get its cache back.
    async fn send_script(
        &self,
        script: &Script,
        keys: &[impl AsRef<str> + Sync],
        args: &[&str],
        reload: bool,
        delivery: impl Delivery,
    ) -> Result<Value, fred::error::Error> {
        // `first` is the SHA for EVALSHA or the body for EVAL; the rest is
        // the same. Built per send, so the common EVALSHA path does not copy
        // its arguments for a fallback that almost never happens.
        let argv = |first: Value| {
            let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            argv.push(first);
            argv.push(Value::Integer(keys.len() as i64));
            argv.extend(keys.iter().map(|k| Value::from(k.as_ref())));
            argv.extend(args.iter().map(|a| Value::from(*a)));
            argv
        };
        match self
            .request("EVALSHA", argv(Value::from(script.sha.as_str())), delivery)
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                if reload {
                    let (c, o, sh) = (
                        self.client.clone(),
                        self.options.clone(),
                        Arc::clone(&self.scripts),
                    );
                    tokio::spawn(async move { load_scripts(&c, &o, &sh).await });
                }
                self.request("EVAL", argv(Value::from(script.body)), delivery)
                    .await
            }
            other => other,
        }
    }
}

impl ScriptLink for FredLink {
    fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    fn no_set_get(&self) -> &AtomicBool {
        &self.no_set_get
    }

    fn eval_int<K: AsRef<str> + Sync, D: Delivery>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[&str],
        delivery: D,
    ) -> impl Future<Output = Result<i64, MasterFailure>> + Send {
        self.eval(script, keys, args, delivery)
    }

    async fn command(&self, name: &'static str, args: &[&str]) -> Result<Value, MasterFailure> {
        let args = args.iter().map(|a| Value::from(*a)).collect();
        self.request(name, args, Timed)
            .await
            .map_err(|e| map_error(&e))
    }
}

impl Link for FredLink {
    fn now(&self) -> Instant {
        crate::now()
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
            let observed_at = crate::now();
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
            let sent = crate::now();
            let reply = client
                .with_options(&options)
                .custom::<Value, Value>(command("TIME"), Vec::<Value>::new())
                .await;
            let received = crate::now();
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
}

impl Master for FredLink {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    async fn close(&self) {
        if let Some(announcements) = &self.announcements {
            announcements.close();
        }
        let _ = self.client.quit().await;
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        commands::acquire(self, keys, token, ttl).await
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        commands::extend(self, keys, token, ttl, recreate).await
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        commands::release(self, keys, token, false).await
    }

    async fn release_announced(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        commands::release(self, keys, token, true).await
    }

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        self.inspect_key(key, fences).await
    }

    async fn watch_releases(&self, keys: &[String]) -> Option<ReleaseWatch> {
        self.announcements.as_ref()?.watch(keys).await
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        self.delete_keys(keys).await
    }

    async fn forget_fences(&self, fences: FenceKeys<'_>) -> Result<(), MasterFailure> {
        let mut args: Vec<Value> = Vec::with_capacity(1 + fences.fields.len());
        args.push(Value::from(fences.hash));
        args.extend(fences.fields.iter().map(|f| Value::from(f.as_str())));
        self.request("HDEL", args, Timed)
            .await
            .map(|_| ())
            .map_err(|e| map_error(&e))
    }

    async fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        commands::acquire_fenced(self, keys, fences, token, ttl).await
    }

    async fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        commands::set_fence(self, keys, fences, token, fence).await
    }
}

impl FredLink {
    /// Runs a script whose reply is not a single integer (the inspection:
    /// rare after `NOSCRIPT` and read-only, so it only falls back to the
    /// body).
    async fn eval_value(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Value, fred::error::Error> {
        self.send_script(script, keys, args, false, Timed).await
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
        self.request("DEL", args, Timed)
            .await
            .map(|_| ())
            .map_err(|e| map_error(&e))
    }
}

/// `KEYS` and `ARGV` of the fence scripts: the lock keys then the fence
/// hash; `head` then the resource names. Both links send them.
pub(crate) fn fenced_argv<'a>(
    keys: &'a [String],
    fences: FenceKeys<'a>,
    head: &[&'a str],
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut all_keys: Vec<&str> = Vec::with_capacity(keys.len() + 1);
    all_keys.extend(keys.iter().map(String::as_str));
    all_keys.push(fences.hash);
    let mut args = Vec::with_capacity(head.len() + fences.fields.len());
    args.extend_from_slice(head);
    args.extend(fences.fields.iter().map(String::as_str));
    (all_keys, args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts_hash_like_redis() {
        // SHA1 of the empty script, as `SCRIPT LOAD ""` answers.
        assert_eq!(
            fred::util::sha1_hash(""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }
}
