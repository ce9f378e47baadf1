//! The redis-rs link (feature `redis-rs`, [`Client::RedisRs`](crate::Client::RedisRs)):
//! the same lock commands as [`FredLink`](crate::fred::FredLink), read
//! with the same reply rules, encoded and decoded by redis-rs, over one
//! connection per master: for a plain TCP master (`redis://`) a
//! connection its callers write and read themselves (`direct.rs`), for a
//! `rediss://` one a redis-rs `MultiplexedConnection`.
//!
//! Why a second client: fred 10.1 writes every command with a `writev`
//! of its own from its own I/O task, and on tokio's multi-thread runtime
//! every hand-over between a caller and such a task is a worker parked
//! and woken; measured in `docs/benchmarks.md` ("The client is the gap",
//! and the twelfth session for the connection without a task), the same
//! core costs about half the client CPU per lock over redis-rs, and less
//! again without the task.
//!
//! What a lock needs from the connection, and how this link gives it:
//! - **One attempt per command, written within its timeout.** Neither
//!   connection re-sends; a command whose caller is gone before it was
//!   written is never written (the caller-written connection takes it
//!   back, redis-rs skips it). So every command is seen through while
//!   unwritten (by the caller-written connection's request itself, on
//!   redis-rs's through `link::Finish`): a vote dropped by an early
//!   decision is still written (or times out), and a lock does not rest
//!   on exactly a quorum for lack of it. A release is never given up unsent
//!   (`link::Delivery`): it has no response timeout, so it is written
//!   however late, while its caller stops waiting at the per-master
//!   timeout. A command partly written when its timeout runs out is
//!   written whole, and what is queued behind it after it.
//! - **A bound on every call**: a response timeout at the per-master
//!   timeout, the identity check after a reconnect included (only
//!   start-up waits up to the connect timeout); for a release, the
//!   caller's wait alone. On the caller-written connection one timer per
//!   connection, kept by its watcher, ends every wait (`direct.rs`,
//!   `State::timer_due`), rather than a timer per command.
//! - **Reconnects the admission rules can see.** Neither connection
//!   reconnects: it fails when the socket ends (a
//!   `MultiplexedConnection`'s I/O task ends; the caller-written one is
//!   watched between calls, so an idle connection the server closed is
//!   noticed at once too). Our own loop (`keep_connected`) opens the next
//!   one, and counts every connection it installs *before* any command
//!   can use it, so a reply from a replaced connection is always seen as
//!   such by the gate ([`Link::take_reconnects`]). While no connection is
//!   up, commands fail at once as unreachable. Between attempts it waits
//!   10 ms doubling to 1 s, and starts over only after a connection
//!   stayed up a second, so a server that accepts and closes at once is
//!   not hammered.
//! - **An unresponsive connection is replaced** (fred's unresponsive
//!   check, counted from the first unanswered command rather than the last
//!   write, so it works under continuous traffic): once commands have got
//!   no answer for `max(20 x per-master timeout, 2 s)` (a paused master, a
//!   black-holed host: no FIN, no RST), a `PING` is sent, and if it too
//!   goes unanswered the connection is closed and the next one opened (and
//!   verified again before its first vote).
//! - TCP nodelay, `AUTH` and `SELECT` from the URL, RESP2.
//! - **TLS fails closed**: a `rediss://` master is reached through the
//!   rustls connector the builder attached to its URL (the one fred
//!   would use, same roots and CAs), checked against the URL's host name;
//!   a failed handshake at start-up is [`ConfigError::Tls`].
//! - **Release announcements** (`wake_on_release`) are published by the
//!   same release script; the subscriptions go over a fred subscriber
//!   connection per master beside this link (`fred/announce.rs`, the
//!   same code as the fred link's), since they are pub/sub, not locks.
//!
//! A master paused for less than that keeps its connection: commands
//! time out, and once it resumes it answers them in order on the same
//! connection, as the same server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::types::config::ServerConfig;
use fred::types::Value as FredValue;
use futures::future::{BoxFuture, Either};
#[cfg(feature = "tls")]
use redis::aio::MultiplexedConnection;
#[cfg(feature = "tls")]
use redis::AsyncConnectionConfig;
use redis::{RedisConnectionInfo, RedisError, Value};
use redlock_core::{
    ClockSample, ConfigError, Fence, FenceKeys, KeyState, Link, Master, MasterFacts, MasterFailure,
    ReleaseWatch, Settings, Token, Ttl,
};
use tokio::net::TcpStream;

use crate::commands::{self, ScriptLink};
use crate::direct::DirectConn;
use crate::fred::{
    announcements_for, facts_from_info, inspect_outcome, is_auth_message, parse_time, script_reply,
    short, unresponsive, Announcements, InfoProblem, ParsedUrl, Script, Scripts, SharedScripts,
    CLUSTER_NODE, NO_RUN_ID,
};
use crate::link::{connect_all, Attempt, Delivery, Timed};

/// First delay of the reconnect loop, doubled after every failed attempt.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(10);
/// Longest delay between two attempts of the reconnect loop.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Where one master is and how to open a connection to it.
#[derive(Clone, Debug)]
struct Target {
    host: String,
    port: u16,
    info: RedisConnectionInfo,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// For a `rediss://` master: the connector `connect` attached to its
    /// URL (the same one fred uses), so it is reached over TLS only.
    #[cfg(feature = "tls")]
    tls: Option<fred::types::config::TlsConnector>,
}

/// A connection's I/O task: ends when the socket does.
type Driver = BoxFuture<'static, ()>;

/// One connection to a master: written and read by its callers
/// ([`DirectConn`], plain TCP) or through redis-rs's own I/O task (TLS).
#[derive(Clone, Debug)]
enum Conn {
    Direct(DirectConn),
    #[cfg(feature = "tls")]
    Multiplexed(MultiplexedConnection),
}

impl Conn {
    /// Sends the command made of `parts` (its name first); its reply, a
    /// server error reply as `Err`. Given no answer within `timeout`
    /// (`Duration::MAX`: no bound), it fails as timed out, and a command
    /// not yet written by then never is. The parts are packed straight
    /// into the bytes a caller-written connection writes, or made a `Cmd`
    /// for redis-rs's.
    fn request<'a>(
        &self,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        timeout: Duration,
    ) -> Sent {
        match self {
            Self::Direct(conn) => Either::Left(conn.request(crate::direct::pack(parts), timeout)),
            #[cfg(feature = "tls")]
            Self::Multiplexed(conn) => {
                let mut cmd = redis::Cmd::new();
                for part in parts {
                    cmd.arg(part);
                }
                let mut conn = conn.clone();
                Either::Right(Box::pin(async move {
                    // Duration::MAX: tokio takes it as "far in the future".
                    conn.set_response_timeout(timeout);
                    conn.send_packed_command(&cmd).await?.extract_error()
                }))
            }
        }
    }

    /// Whether a release sent on this connection and dropped still
    /// reaches the server and needs nothing more from its caller: on a
    /// caller-written connection (a request dropped unwritten sees itself
    /// through, see [`DirectConn::request`]; a release goes out as `EVAL`,
    /// so no fallback is to follow). Not on redis-rs's, whose dropped
    /// commands go through a [`Finish`](crate::link::Finish).
    fn sends_dropped_releases(&self) -> bool {
        match self {
            Self::Direct(_) => true,
            #[cfg(feature = "tls")]
            Self::Multiplexed(_) => false,
        }
    }

    /// See [`DirectConn::nudge`]; nothing for redis-rs's connection.
    fn nudge(&self) {
        match self {
            Self::Direct(conn) => conn.nudge(),
            #[cfg(feature = "tls")]
            Self::Multiplexed(_) => {}
        }
    }
}

/// A command sent on a [`Conn`]: a caller-written connection's request
/// (which sees itself through if dropped unwritten), or redis-rs's.
type Sent = Either<crate::direct::Request, BoxFuture<'static, redis::RedisResult<Value>>>;

impl Target {
    /// The target of a parsed URL. A `rediss://` URL carries the
    /// connector `connect` attached to it, or is refused: never plaintext.
    fn new(
        parsed: &ParsedUrl,
        settings: &Settings,
        connect_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        parsed.check_tls()?;
        #[cfg(feature = "tls")]
        let tls = parsed.config.tls.as_ref().map(|tls| tls.connector.clone());
        let ServerConfig::Centralized { server } = &parsed.config.server else {
            return Err(ConfigError::InvalidUrl {
                url: parsed.address.to_string(),
                reason: "expected one host and port".into(),
            });
        };
        let mut info = RedisConnectionInfo::default()
            .set_db(i64::from(parsed.config.database.unwrap_or(0)))
            .set_skip_set_lib_name();
        if let Some(user) = &parsed.config.username {
            info = info.set_username(user);
        }
        if let Some(password) = &parsed.config.password {
            info = info.set_password(password);
        }
        Ok(Self {
            host: server.host.to_string(),
            port: server.port,
            info,
            connect_timeout,
            response_timeout: settings.master_timeout(),
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// Opens one connection (TCP, the TLS handshake for `rediss://`,
    /// then `AUTH`/`SELECT`), all of it within the connect timeout.
    async fn open(&self) -> Result<(Conn, Driver), OpenError> {
        let open = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| OpenError::Redis(e.into()))?;
            tcp.set_nodelay(true)
                .map_err(|e| OpenError::Redis(e.into()))?;
            #[cfg(feature = "tls")]
            if let Some(connector) = &self.tls {
                let config =
                    AsyncConnectionConfig::new().set_response_timeout(Some(self.response_timeout));
                let tls = handshake(connector, &self.host, tcp).await?;
                let (conn, driver) =
                    MultiplexedConnection::new_with_config(&self.info, tls, config)
                        .await
                        .map_err(OpenError::Redis)?;
                return Ok((Conn::Multiplexed(conn), Box::pin(driver) as Driver));
            }
            let conn = DirectConn::new(tcp);
            let mut setup = Vec::new();
            if let Some(password) = self.info.password() {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = self.info.username() {
                    auth.arg(user);
                }
                setup.push(auth.arg(password).clone());
            }
            if self.info.db() != 0 {
                setup.push(redis::cmd("SELECT").arg(self.info.db()).clone());
            }
            // Sent together (one write), answered in order.
            let calls: Vec<_> = setup
                .iter()
                .map(|cmd| conn.send(cmd.get_packed_command()))
                .collect();
            for call in calls {
                call.await
                    .and_then(Value::extract_error)
                    .map_err(OpenError::Redis)?;
            }
            let driver = Box::pin(conn.watch()) as Driver;
            Ok((Conn::Direct(conn), driver))
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(opened) => opened,
            Err(_) => Err(OpenError::Redis(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no connection within the connect timeout",
                )
                .into(),
            )),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
enum OpenError {
    /// The TLS handshake failed: a wrong CA or host name, or a port that
    /// does not serve TLS. It does not heal by retrying.
    #[cfg(feature = "tls")]
    Tls(String),
    /// Anything else: the transport, `AUTH`, `SELECT`.
    Redis(RedisError),
}

impl OpenError {
    fn to_failure(&self) -> MasterFailure {
        match self {
            #[cfg(feature = "tls")]
            Self::Tls(reason) => {
                MasterFailure::Unreachable(format!("TLS handshake failed: {reason}"))
            }
            Self::Redis(e) => map_error(e),
        }
    }
}

/// The TLS handshake with the connector fred would use (rustls), checking
/// the certificate against the URL's host name.
#[cfg(feature = "tls")]
async fn handshake(
    connector: &fred::types::config::TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static, OpenError> {
    use fred::rustls::pki_types::ServerName;
    #[allow(unreachable_patterns, clippy::manual_let_else)]
    // only rustls, unless a dependent also enables fred's native-tls
    let rustls = match connector {
        fred::types::config::TlsConnector::Rustls(rustls) => rustls,
        _ => return Err(OpenError::Tls("not a rustls connector".into())),
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| OpenError::Tls(format!("{host:?} is no valid server name: {e}")))?;
    rustls.connect(name, tcp).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            // rustls's own error (`InvalidCertificate(UnknownIssuer)`).
            OpenError::Tls(
                e.get_ref()
                    .map_or_else(|| e.to_string(), |inner| format!("{inner:?}")),
            )
        } else {
            // Reset or closed during the handshake: a transport problem.
            OpenError::Redis(e.into())
        }
    })
}

/// What the link and its reconnect loop share.
#[derive(Debug)]
struct Shared {
    /// The connection in use, or why there is none.
    current: Mutex<Result<Conn, String>>,
    /// Connections installed so far; bumped before a new one is visible.
    installed: AtomicU64,
    /// `installed` as of the last [`Link::take_reconnects`].
    seen: AtomicU64,
    /// Since when commands on this connection got no answer (they timed
    /// out, or their callers gave up first), as microseconds since
    /// `epoch` plus one; 0 while it answers. Set by the first unanswered
    /// command, cleared by any answer. A hint only: `keep_connected` sends
    /// a `PING` before it replaces the connection.
    stalled_since: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn current(&self) -> std::sync::MutexGuard<'_, Result<Conn, String>> {
        // Replaced whole under the lock: a panic cannot leave it torn.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `conn` the connection in use. The count goes up first, under
    /// the lock: whoever sends on it sees the reconnect when it checks
    /// after the reply.
    fn install(&self, conn: Conn) {
        let mut current = self.current();
        self.installed.fetch_add(1, Ordering::SeqCst);
        *current = Ok(conn);
    }

    fn down(&self, why: String) {
        *self.current() = Err(why);
    }

    /// Notes what a command's outcome says about the connection: a
    /// timeout starts (or continues) a stall, anything else ends it.
    fn observe<T>(&self, outcome: &Result<T, MasterFailure>) {
        self.answered(!matches!(outcome, Err(MasterFailure::TimedOut)));
    }

    /// An answer ends a stall; no answer starts one (or continues it).
    fn answered(&self, answered: bool) {
        if answered {
            if self.stalled_since.load(Ordering::Relaxed) != 0 {
                self.clear_stall();
            }
        } else {
            let now = crate::now().saturating_duration_since(self.epoch);
            let mark = u64::try_from(now.as_micros()).unwrap_or(u64::MAX - 1) + 1;
            let _ =
                self.stalled_since
                    .compare_exchange(0, mark, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// How long the connection has answered nothing while commands got no
    /// answer on it.
    fn stalled_for(&self) -> Duration {
        match self.stalled_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            mark => crate::now()
                .saturating_duration_since(self.epoch)
                .saturating_sub(Duration::from_micros(mark - 1)),
        }
    }

    fn clear_stall(&self) {
        self.stalled_since.store(0, Ordering::Relaxed);
    }
}

/// Marks a stall if dropped before [`done`](Self::done): the caller gave
/// up on a command (an early decision drops the slowest master's call),
/// which is as much "no answer" as a timeout.
struct Unanswered<'a>(Option<&'a Shared>);

impl Unanswered<'_> {
    fn done<T>(mut self, outcome: &Result<T, MasterFailure>) {
        if let Some(shared) = self.0.take() {
            shared.observe(outcome);
        }
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.answered(false);
        }
    }
}

/// A task aborted when this handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection that stayed up this long was a good one: the next
/// reconnect starts from the shortest delay again.
const STABLE: Duration = Duration::from_secs(1);

/// Waits `delay`, then doubles it up to [`MAX_RECONNECT_DELAY`].
async fn back_off(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(MAX_RECONNECT_DELAY);
}

/// Keeps one connection up: waits for the current one's I/O task to end
/// (or replaces a connection that stopped answering), then opens the next,
/// for as long as the link lives. Between attempts it waits 10 ms,
/// doubling to 1 s; the delay starts over only after a connection stayed
/// up for [`STABLE`], so a server that accepts and closes at once
/// (`maxclients`, a proxy without a backend) is not hammered.
async fn keep_connected(target: Target, shared: Arc<Shared>, mut driver: Option<Driver>) {
    let (max_stall, every) = unresponsive(target.response_timeout);
    let mut delay = MIN_RECONNECT_DELAY;
    loop {
        if let Some(io) = driver.take() {
            // The connection's I/O in a task of its own, as redis-rs runs
            // it (polled inside this loop, every socket wake-up also
            // polled the loop's timers). Aborted when this loop drops it
            // (a stalled connection) or is itself aborted (the link
            // dropped).
            let mut running = AbortOnDrop(tokio::spawn(io));
            let up_since = crate::now();
            let mut check = tokio::time::interval(every);
            // A `PING` sent once the connection looks stalled: a late
            // answer, or one whose caller gave up, never reached
            // `observe`, so the connection is replaced only if the `PING`
            // too goes unanswered within the per-master timeout.
            let mut probe: Option<BoxFuture<'static, bool>> = None;
            loop {
                tokio::select! {
                    _ = &mut running.0 => break,
                    answered = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                        probe = None;
                        if answered {
                            shared.clear_stall();
                        } else {
                            // Dropping the driver closes the socket; the
                            // next connection counts as a reconnect.
                            break;
                        }
                    }
                    _ = check.tick(), if probe.is_none() => {
                        if let Ok(conn) = &*shared.current() {
                            conn.nudge();
                            if shared.stalled_for() >= max_stall {
                                let ping = conn.request(parts(&[b"PING"]), target.response_timeout);
                                probe = Some(Box::pin(async move { ping.await.is_ok() }));
                            }
                        }
                    }
                }
            }
            drop(running);
            shared.down("connection lost or unresponsive; reconnecting".into());
            shared.clear_stall();
            if crate::now().saturating_duration_since(up_since) >= STABLE {
                delay = MIN_RECONNECT_DELAY;
            }
            back_off(&mut delay).await;
        }
        match target.open().await {
            Ok((conn, next)) => {
                shared.install(conn);
                driver = Some(next);
            }
            Err(e) => {
                shared.down(format!("{} (reconnecting)", e.to_failure()));
                back_off(&mut delay).await;
            }
        }
    }
}

/// One Redis master reached through one connection (written and read by
/// its callers for `redis://`, redis-rs's multiplexed one for `rediss://`)
/// kept up by our own reconnect loop: the raw [`Link`] under the
/// admission gate, as [`RedisLink::RedisRs`](crate::RedisLink::RedisRs).
///
/// Dropping it stops the reconnect loop and closes the connection.
pub struct RedisRsLink {
    address: Arc<str>,
    scripts: SharedScripts,
    /// The per-master timeout: every call, the identity check after a
    /// reconnect and the script reload after `NOSCRIPT` included (only
    /// start-up, in `connect_one`, waits up to the connect timeout).
    call_timeout: Duration,
    shared: Arc<Shared>,
    /// Set once the server answered `SET ... NX GET` with a syntax error
    /// (Redis before 7.0): single-key acquires use the script from then on.
    no_set_get: AtomicBool,
    task: tokio::task::AbortHandle,
    /// The subscriber side of release announcements, when switched on: a
    /// fred subscriber connection (see the module docs).
    announcements: Option<Announcements>,
}

impl std::fmt::Debug for RedisRsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRsLink")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisRsLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisRsLink {
    /// A link whose loop starts from `first` (a connection just opened)
    /// or, without one, opens it in the background.
    fn start(
        target: Target,
        address: Arc<str>,
        scripts: SharedScripts,
        first: Option<(Conn, Driver)>,
        announcements: Option<Announcements>,
    ) -> Self {
        let shared = Arc::new(Shared {
            current: Mutex::new(Err("connecting".into())),
            installed: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            stalled_since: AtomicU64::new(0),
            epoch: crate::now(),
        });
        let driver = first.map(|(conn, driver)| {
            shared.install(conn);
            driver
        });
        let call_timeout = target.response_timeout;
        let task = tokio::spawn(keep_connected(target, Arc::clone(&shared), driver)).abort_handle();
        Self {
            address,
            scripts,
            call_timeout,
            shared,
            no_set_get: AtomicBool::new(false),
            task,
            announcements,
        }
    }

    /// The connection in use, or why there is none.
    fn conn(&self) -> Result<Conn, MasterFailure> {
        self.shared
            .current()
            .clone()
            .map_err(MasterFailure::Unreachable)
    }

    /// Sends the command of `parts` on the connection in use, within the
    /// per-master timeout.
    async fn call<'a>(
        &self,
        parts: impl Iterator<Item = &'a [u8]> + Clone + Send,
    ) -> Result<FredValue, MasterFailure> {
        let conn = self.conn()?;
        let pending = Unanswered(Some(&self.shared));
        let outcome = query(&conn, parts, Timed, self.call_timeout)
            .await
            .map(to_fred)
            .map_err(|e| map_error(&e));
        pending.done(&outcome);
        outcome
    }

    /// Runs `script` with `EVALSHA`; after `NOSCRIPT` (a restarted or
    /// flushed master) it falls back to `EVAL` and reloads every script
    /// in a task of its own (this future may be dropped by an early
    /// decision before the `EVAL` is even sent). A release ([`Release`](crate::link::Release)
    /// delivery) goes out as `EVAL` with the script's body at once: an
    /// early decision may leave it to its connection
    /// ([`Master::sends_dropped_releases`]), and a `NOSCRIPT` then would
    /// have nobody to send the fallback.
    async fn eval<K: AsRef<str> + Sync, D: Delivery>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[&str],
        delivery: D,
    ) -> Result<FredValue, MasterFailure> {
        let pending = Unanswered(Some(&self.shared));
        let outcome = self.send_script(script, keys, args, delivery).await;
        pending.done(&outcome);
        outcome
    }

    /// [`eval`](Self::eval)'s commands.
    async fn send_script<K: AsRef<str> + Sync, D: Delivery>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[&str],
        delivery: D,
    ) -> Result<FredValue, MasterFailure> {
        let mut count = itoa::Buffer::new();
        let count = count.format(keys.len());
        let invocation = |verb: &'static str, first| script_call([verb, first, count], keys, args);
        let conn = self.conn()?;
        let timeout = self.call_timeout;
        // A release goes out as `EVAL`, which never answers `NOSCRIPT`
        // (see `eval`).
        let first = if D::TIMED {
            invocation("EVALSHA", &script.sha)
        } else {
            invocation("EVAL", script.body)
        };
        match query(&conn, first, delivery, timeout).await {
            Ok(v) => Ok(to_fred(v)),
            Err(e) if e.code() == Some("NOSCRIPT") => {
                let (reload, scripts) = (conn.clone(), Arc::clone(&self.scripts));
                tokio::spawn(async move { load_scripts(&reload, &scripts, timeout).await });
                query(&conn, invocation("EVAL", script.body), delivery, timeout)
                    .await
                    .map(to_fred)
                    .map_err(|e| map_error(&e))
            }
            Err(e) => Err(map_error(&e)),
        }
    }
}

impl ScriptLink for RedisRsLink {
    fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    fn no_set_get(&self) -> &AtomicBool {
        &self.no_set_get
    }

    async fn eval_int<K: AsRef<str> + Sync, D: Delivery>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[&str],
        delivery: D,
    ) -> Result<i64, MasterFailure> {
        script_reply(Ok(self.eval(script, keys, args, delivery).await?))
    }

    async fn command(&self, name: &'static str, args: &[&str]) -> Result<FredValue, MasterFailure> {
        let parts = std::iter::once(name).chain(args.iter().copied());
        self.call(parts.map(str::as_bytes)).await
    }
}

/// Loads every script (`SCRIPT LOAD`), checking the server computed the
/// same SHA1; sent together, so they go out in one write.
async fn load_scripts(
    conn: &Conn,
    scripts: &Scripts,
    timeout: Duration,
) -> Result<(), MasterFailure> {
    let all = scripts.all();
    let shas = futures::future::join_all(all.iter().map(|s| {
        let load = conn.request(parts(&[b"SCRIPT", b"LOAD", s.body.as_bytes()]), timeout);
        async move { Ok::<_, RedisError>(redis::from_redis_value::<String>(load.await?)?) }
    }))
    .await;
    for (s, sha) in all.iter().zip(shas) {
        s.check_loaded(&sha.map_err(|e| map_error(&e))?)
            .map_err(MasterFailure::BadReply)?;
    }
    Ok(())
}

/// Asks the master who it is (`INFO`).
async fn fetch_identity(conn: &Conn, timeout: Duration) -> Result<MasterFacts, IdentityError> {
    let info = conn
        .request(parts(&[b"INFO"]), timeout)
        .await
        .and_then(|v| Ok(redis::from_redis_value::<String>(v)?))
        .map_err(IdentityError::Redis)?;
    facts_from_info(&info).map_err(IdentityError::Info)
}

/// Why a master could not tell who it is.
enum IdentityError {
    Redis(RedisError),
    Info(InfoProblem),
}

impl IdentityError {
    fn to_failure(&self) -> MasterFailure {
        match self {
            Self::Redis(e) => map_error(e),
            Self::Info(InfoProblem::Cluster) => MasterFailure::Server(CLUSTER_NODE.into()),
            Self::Info(InfoProblem::NoRunId) => MasterFailure::BadReply(NO_RUN_ID.into()),
        }
    }
}

impl Link for RedisRsLink {
    fn now(&self) -> Instant {
        crate::now()
    }

    fn take_reconnects(&self) -> bool {
        let installed = self.shared.installed.load(Ordering::SeqCst);
        self.shared.seen.swap(installed, Ordering::SeqCst) != installed
    }

    fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>> {
        let conn = self.conn();
        let (scripts, timeout) = (Arc::clone(&self.scripts), self.call_timeout);
        Box::pin(async move {
            let conn = conn?;
            let facts = fetch_identity(&conn, timeout)
                .await
                .map_err(|e| e.to_failure())?;
            // The server read its uptime before this instant.
            let observed_at = crate::now();
            // After a restart the script cache is empty.
            load_scripts(&conn, &scripts, timeout).await?;
            Ok((observed_at, facts))
        })
    }

    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
        let time = self
            .conn()
            .ok()
            .map(|conn| conn.request(parts(&[b"TIME"]), self.call_timeout));
        Box::pin(async move {
            let time = time?;
            let sent = crate::now();
            let reply = time.await;
            let received = crate::now();
            let master = parse_time(to_fred(reply.ok()?))?;
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

impl Master for RedisRsLink {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    async fn close(&self) {
        if let Some(announcements) = &self.announcements {
            announcements.close();
        }
        self.task.abort();
        self.shared.down("closed".into());
    }

    async fn release_announced(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        commands::release(self, keys, token, true).await
    }

    fn sends_dropped_releases(&self) -> bool {
        self.conn().is_ok_and(|conn| conn.sends_dropped_releases())
    }

    async fn settle(&self) {
        // Answered in order: the `PING`'s answer comes after every
        // command sent before it.
        if let Ok(conn) = self.conn() {
            let _ = query(&conn, parts(&[b"PING"]), Timed, self.call_timeout).await;
        }
    }

    async fn watch_releases(&self, keys: &[String]) -> Option<ReleaseWatch> {
        self.announcements.as_ref()?.watch(keys).await
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

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        let field = fences.fields.first().map_or("", String::as_str);
        let reply = self
            .eval(&self.scripts.inspect, &[key, fences.hash], &[field], Timed)
            .await?;
        inspect_outcome(Ok(reply))
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        let del = std::iter::once("DEL").chain(keys.iter().map(String::as_str));
        self.call(del.map(str::as_bytes)).await.map(|_| ())
    }

    async fn forget_fences(&self, fences: FenceKeys<'_>) -> Result<(), MasterFailure> {
        let hdel = ["HDEL", fences.hash]
            .into_iter()
            .chain(fences.fields.iter().map(String::as_str));
        self.call(hdel.map(str::as_bytes)).await.map(|_| ())
    }
}

/// Sends `cmd` and returns its reply, a server error as `Err`: what
/// `cmd.query_async::<Value>(conn)` does, seen through to its answer even
/// if the caller stops waiting while it is unwritten (the caller-written
/// connection's request does that itself and needs no task once written;
/// redis-rs's goes through a [`Finish`](crate::link::Finish), as redis-rs would otherwise
/// never send a dropped vote that its connection had not written yet). A
/// [`Timed`] command is given up unsent at the per-master timeout; a
/// [`Release`](crate::link::Release) never is, while its caller stops
/// waiting after `timeout`. The caller-written connection bounds the wait
/// itself, with its watcher's timer rather than one per command.
fn query<'a, D: Delivery>(
    conn: &Conn,
    parts: impl Iterator<Item = &'a [u8]> + Clone,
    delivery: D,
    timeout: Duration,
) -> Sent {
    match conn {
        Conn::Direct(direct) => {
            let _ = delivery;
            let packed = crate::direct::pack(parts);
            Either::Left(if D::TIMED {
                direct.request(packed, timeout)
            } else {
                direct.request_kept(packed, timeout)
            })
        }
        #[cfg(feature = "tls")]
        Conn::Multiplexed(_) => {
            let bound = if D::TIMED { timeout } else { Duration::MAX };
            let multiplexed = crate::link::Finish::new(conn.request(parts, bound));
            Either::Right(Box::pin(delivery.awaited(
                timeout,
                multiplexed,
                crate::direct::timed_out,
            )))
        }
    }
}

/// The parts of `EVAL`/`EVALSHA`: `head` (the verb, the body or SHA, the
/// number of keys), then the keys, then the arguments.
fn script_call<'a, K: AsRef<str> + Sync>(
    head: [&'a str; 3],
    keys: &'a [K],
    args: &'a [&'a str],
) -> impl Iterator<Item = &'a [u8]> + Clone + Send + 'a {
    head.into_iter()
        .chain(keys.iter().map(AsRef::as_ref))
        .chain(args.iter().copied())
        .map(str::as_bytes)
}

/// A command of fixed parts, for [`Conn::request`].
fn parts<'a>(parts: &'a [&'a [u8]]) -> impl Iterator<Item = &'a [u8]> + Clone {
    parts.iter().copied()
}

/// A redis-rs reply in fred's terms, so that one set of rules
/// (`fred/reply.rs`) reads what every client received. RESP2 gives only
/// these shapes; anything else (RESP3) becomes a reply no rule accepts.
fn to_fred(v: Value) -> FredValue {
    match v {
        Value::Nil => FredValue::Null,
        Value::Int(n) => FredValue::Integer(n),
        Value::BulkString(b) => FredValue::Bytes(b.into()),
        Value::SimpleString(s) => FredValue::String(s.into()),
        Value::Okay => FredValue::String("OK".into()),
        Value::Array(items) => FredValue::Array(items.into_iter().map(to_fred).collect()),
        _ => FredValue::Queued,
    }
}

/// Maps a redis-rs error at the boundary, as `reply::map_error` does
/// fred's: timeouts, transport problems and server error replies stay
/// distinguishable.
fn map_error(e: &RedisError) -> MasterFailure {
    let text = short(e.to_string());
    if e.is_timeout() {
        MasterFailure::TimedOut
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        MasterFailure::Unreachable(text)
    } else if let Some(code) = e.code() {
        // The server's own words (`BUSY Redis is busy ...`, `NOPERM ...`),
        // as fred reports them, rather than redis-rs's rendering.
        MasterFailure::Server(short(match e.detail() {
            Some(detail) => format!("{code} {detail}"),
            None => code.to_owned(),
        }))
    } else if matches!(
        e.kind(),
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
    ) {
        MasterFailure::BadReply(text)
    } else {
        MasterFailure::Server(text)
    }
}

/// Connects to every master in parallel through redis-rs, asks each who
/// it is and loads the scripts; as the fred client's `connect`, the
/// answers go through the admission rules in
/// [`admit_all`](crate::link::admit_all).
pub(crate) async fn connect(
    parsed: Vec<ParsedUrl>,
    settings: &Settings,
    connect_timeout: Duration,
    wake_on_release: bool,
) -> Result<Vec<Attempt<RedisRsLink>>, ConfigError> {
    let targets = parsed
        .iter()
        .map(|p| Target::new(p, settings, connect_timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let scripts = Arc::new(Scripts::new(wake_on_release));
    let (targets, parsed, scripts) = (&targets, &parsed, &scripts);
    let announcements = |i: usize| {
        wake_on_release
            .then(|| announcements_for(&parsed[i], settings, connect_timeout))
            .flatten()
    };
    connect_all(
        parsed.len(),
        settings.quorum().needed(),
        |i| connect_one(targets[i].clone(), &parsed[i], scripts, announcements(i)),
        |i| {
            Ok(RedisRsLink::start(
                targets[i].clone(),
                Arc::clone(&parsed[i].address),
                Arc::clone(scripts),
                None,
                announcements(i),
            ))
        },
    )
    .await
}

/// Connects one master. As the fred client's: a master that is
/// unreachable now or fails during setup is not an error (its link keeps
/// reconnecting and it is verified before its first vote counts); wrong
/// credentials, a database the server lacks and a Redis Cluster node
/// are.
async fn connect_one(
    target: Target,
    parsed: &ParsedUrl,
    scripts: &SharedScripts,
    announcements: Option<Announcements>,
) -> Result<Attempt<RedisRsLink>, ConfigError> {
    let address = Arc::clone(&parsed.address);
    let scripts = Arc::clone(scripts);
    {
        let refused = |e: &RedisError| -> Option<ConfigError> {
            let text = e.to_string();
            // redis-rs reports a `NOAUTH` answer to its `SELECT` in words.
            if e.kind() == redis::ErrorKind::AuthenticationFailed
                || is_auth_message(&text)
                || text.contains("Authentication required")
            {
                Some(ConfigError::Auth {
                    master: address.to_string(),
                    message: text,
                })
            } else if text.contains("DB index is out of range") {
                Some(ConfigError::NoSuchDatabase {
                    master: address.to_string(),
                    db: parsed.config.database.unwrap_or(0),
                })
            } else {
                None
            }
        };
        let timeout = target.connect_timeout;
        match target.open().await {
            Ok((conn, driver)) => {
                let link = RedisRsLink::start(
                    target,
                    Arc::clone(&address),
                    Arc::clone(&scripts),
                    Some((conn.clone(), driver)),
                    announcements,
                );
                // The first connection counts as a reconnect; the identity
                // check below covers it and anything before it.
                link.take_reconnects();
                let facts = match fetch_identity(&conn, timeout).await {
                    Ok(facts) => facts,
                    Err(IdentityError::Info(InfoProblem::Cluster)) => {
                        return Err(ConfigError::ClusterNode {
                            master: address.to_string(),
                        })
                    }
                    Err(IdentityError::Redis(e)) => {
                        if let Some(config) = refused(&e) {
                            return Err(config);
                        }
                        return Ok((link, Err(setup_failure(map_error(&e), &address)?)));
                    }
                    Err(e @ IdentityError::Info(InfoProblem::NoRunId)) => {
                        return Ok((link, Err(setup_failure(e.to_failure(), &address)?)))
                    }
                };
                let observed_at = crate::now();
                if let Err(e) = load_scripts(&conn, &scripts, timeout).await {
                    return Ok((link, Err(setup_failure(e, &address)?)));
                }
                Ok((link, Ok((observed_at, facts))))
            }
            #[cfg(feature = "tls")]
            Err(OpenError::Tls(reason)) => Err(ConfigError::Tls {
                master: address.to_string(),
                reason,
            }),
            Err(OpenError::Redis(e)) => {
                if let Some(config) = refused(&e) {
                    return Err(config);
                }
                // Unreachable for now: the link keeps trying.
                let link =
                    RedisRsLink::start(target, Arc::clone(&address), scripts, None, announcements);
                Ok((link, Err(map_error(&e))))
            }
        }
    }
}

/// A failure while setting up a connected master: a transport problem
/// makes it "not yet usable", anything else (an ACL that forbids `INFO`
/// or `SCRIPT`, a garbage reply) is a configuration error.
fn setup_failure(failure: MasterFailure, address: &str) -> Result<MasterFailure, ConfigError> {
    match failure {
        f @ (MasterFailure::TimedOut | MasterFailure::Unreachable(_)) => Ok(f),
        other => Err(ConfigError::Setup {
            master: address.to_owned(),
            message: other.to_string(),
        }),
    }
}
