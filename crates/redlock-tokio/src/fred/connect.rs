//! Start-up: one client per master built for locks (see the module docs
//! of [`fred`](super)), connected in parallel, each master identified
//! (`INFO`) and its scripts loaded, and the answers recorded through the
//! core's admission rules.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::Client;
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::{
    Config, ConnectionConfig, Options, PerformanceConfig, ReconnectPolicy, TcpConfig,
    UnresponsiveConfig,
};
use fred::types::{Builder, ConnectHandle, Value};
use redlock_core::{ConfigError, Link, MasterFacts, MasterFailure, Settings};

use super::link::{command, FredLink, Scripts, SharedScripts};
use super::reply::map_error;
use super::url::{parse_url, ParsedUrl};
use crate::link::{connect_all, Attempt};

/// Parses every master URL (and, with `tls`, attaches the connector to
/// the `rediss://` ones), refusing two entries with the same address.
pub(crate) fn parse_all(
    urls: &[String],
    #[cfg(feature = "tls")] tls_cas: &[super::tls::CaSource],
) -> Result<Vec<ParsedUrl>, ConfigError> {
    let parsed = urls
        .iter()
        .map(|u| parse_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    #[cfg(feature = "tls")]
    let parsed = super::tls::attach(parsed, tls_cas)?;
    for (i, a) in parsed.iter().enumerate() {
        if let Some(b) = parsed[..i].iter().find(|b| b.address == a.address) {
            return Err(ConfigError::DuplicateMaster {
                first: b.address.to_string(),
                second: a.address.to_string(),
                why: "same address".into(),
            });
        }
    }
    Ok(parsed)
}

/// Connects to every master in parallel through fred with checked
/// `settings`, asks each who it is and loads the scripts (see
/// [`LockManagerBuilder::connect_core`](crate::LockManagerBuilder::connect_core));
/// the answers go through the admission rules in
/// [`admit_all`](crate::link::admit_all).
pub(crate) async fn connect(
    parsed: Vec<ParsedUrl>,
    settings: &Settings,
    connect_timeout: Duration,
    wake_on_release: bool,
) -> Result<Vec<Attempt<FredLink>>, ConfigError> {
    let scripts = Arc::new(Scripts::new(wake_on_release));
    let options = call_options(settings);
    let (options, scripts) = (&options, &scripts);
    connect_all(
        parsed.len(),
        settings.quorum().needed(),
        |i| {
            connect_one(
                parsed[i].clone(),
                settings,
                connect_timeout,
                options,
                scripts,
            )
        },
        |i| connecting_link(&parsed[i], settings, connect_timeout, options, scripts),
    )
    .await
}

/// A link to a master that is not usable yet: its client keeps
/// reconnecting in the background (no `fail_fast` on the first
/// connection), and the master is verified before its first vote counts.
fn connecting_link(
    parsed: &ParsedUrl,
    settings: &Settings,
    connect_timeout: Duration,
    options: &Options,
    scripts: &SharedScripts,
) -> Result<FredLink, ConfigError> {
    let client =
        build_client(parsed.config.clone(), settings, connect_timeout, false).map_err(|e| {
            ConfigError::Setup {
                master: parsed.address.to_string(),
                message: e.details().to_string(),
            }
        })?;
    let reconnects = client.reconnect_rx();
    let task = client.connect();
    Ok(FredLink::new(
        client,
        task,
        reconnects,
        options.clone(),
        Arc::clone(&parsed.address),
        Arc::clone(scripts),
    ))
}

/// The subscriber side of release announcements for a master reached
/// by another client (the redis-rs link): a fred subscriber connection
/// configured as this client's would be. `None` when fred refuses the
/// configuration (then every waiter polls).
#[cfg(feature = "redis-rs")]
pub(crate) fn announcements_for(
    parsed: &ParsedUrl,
    settings: &Settings,
    connect_timeout: Duration,
) -> Option<super::announce::Announcements> {
    // A template only: never connected; the subscriber builds its own
    // client from its configuration.
    let template = build_client(parsed.config.clone(), settings, connect_timeout, false).ok()?;
    Some(super::announce::Announcements::new(
        &template,
        &call_options(settings),
    ))
}

/// Per-call options of every lock command: one write attempt (a command
/// is never re-sent after a reconnect behind our back), fred's own
/// timeout at the per-master timeout (an outer timeout alone would let a
/// dropped command be written later), and `fail_fast` so that a command
/// to a disconnected master fails at once instead of queueing.
fn call_options(settings: &Settings) -> Options {
    Options {
        max_attempts: Some(1),
        timeout: Some(settings.master_timeout()),
        fail_fast: true,
        ..Options::default()
    }
}

/// How long a connection may answer nothing before it is replaced, and
/// how often that is checked, for a per-master `timeout`: well above the
/// timeout, so a release queued behind a timed-out acquire on a paused
/// master is still written on the same connection, in order. Both links
/// use it (fred's unresponsive check, the redis-rs link's own).
pub(crate) fn unresponsive(timeout: Duration) -> (Duration, Duration) {
    (
        (timeout * 20).max(Duration::from_secs(2)),
        (timeout * 5).clamp(Duration::from_millis(100), Duration::from_secs(1)),
    )
}

/// A fred client for one master, configured for locks (see the module
/// docs): a reconnect policy that never gives up, one attempt per
/// command, TCP nodelay, and the unresponsive-connection check.
/// `fail_fast` is off for a master that is not reachable yet, whose
/// client must keep trying in the background.
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
            // A connection whose replies stall is closed and re-opened
            // (see `unresponsive`).
            unresponsive: {
                let (max_timeout, interval) = unresponsive(timeout);
                UnresponsiveConfig {
                    max_timeout: Some(max_timeout),
                    interval,
                }
            },
            ..ConnectionConfig::default()
        })
        .set_performance_config(PerformanceConfig {
            default_command_timeout: timeout,
            ..PerformanceConfig::default()
        })
        .build()
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
) -> Result<Attempt<FredLink>, ConfigError> {
    parsed.check_tls()?;
    let address = Arc::clone(&parsed.address);
    let tls = parsed.tls;
    let make = |client: Client, task: ConnectHandle, reconnects| {
        FredLink::new(
            client,
            task,
            reconnects,
            options.clone(),
            Arc::clone(&address),
            Arc::clone(scripts),
        )
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
            let facts = match fetch_identity(link.client(), &setup).await {
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
            let observed_at = crate::now();
            if let Err(e) = load_scripts(link.client(), &setup, scripts).await {
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
            let link = connecting_link(&parsed, settings, connect_timeout, options, scripts)?;
            Ok((link, Err(why)))
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

/// Whether a server's error text means rejected credentials (Redis
/// answers `WRONGPASS` or `NOAUTH`; some proxies and older servers say
/// it in words).
pub(crate) fn is_auth_message(details: &str) -> bool {
    details.contains("WRONGPASS")
        || details.contains("NOAUTH")
        || details.contains("invalid username-password")
}

/// Per-call options of the start-up commands (`INFO`, `SCRIPT LOAD`):
/// as [`call_options`], bounded by the connect timeout rather than the
/// per-master timeout, since a master that is still warming up should
/// not fail start-up.
fn connect_options(connect_timeout: Duration) -> Options {
    Options {
        max_attempts: Some(1),
        timeout: Some(connect_timeout),
        fail_fast: true,
        ..Options::default()
    }
}

/// Asks a master who it is (`INFO`): its `run_id`, role and uptime, as
/// the admission rules need them. A Redis Cluster node is an error of its
/// own kind (`ErrorKind::Cluster`), so start-up can name it.
pub(super) async fn fetch_identity(
    client: &Client,
    options: &Options,
) -> Result<MasterFacts, FredError> {
    let info: String = client
        .with_options(options)
        .custom(command("INFO"), Vec::<Value>::new())
        .await?;
    facts_from_info(&info).map_err(|problem| match problem {
        // Typed by kind, so start-up can name it; a vote reports it as a
        // server error with this text.
        InfoProblem::Cluster => FredError::new(ErrorKind::Cluster, CLUSTER_NODE),
        InfoProblem::NoRunId => FredError::new(ErrorKind::Protocol, NO_RUN_ID),
    })
}

/// What an `INFO` reply cannot be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InfoProblem {
    /// No `run_id` field: not a Redis server we know.
    NoRunId,
    /// `cluster_enabled:1`: a Redis Cluster node.
    Cluster,
}

/// The text of [`InfoProblem::Cluster`].
pub(crate) const CLUSTER_NODE: &str = "CLUSTER mode: this server is a Redis Cluster node (cluster_enabled:1); redlock needs independent single-node primaries";
/// The text of [`InfoProblem::NoRunId`].
pub(crate) const NO_RUN_ID: &str = "INFO reply has no run_id";

/// The facts the admission rules need, out of an `INFO` reply (whichever
/// client read it).
pub(crate) fn facts_from_info(info: &str) -> Result<MasterFacts, InfoProblem> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_owned())
    };
    let run_id = field("run_id").ok_or(InfoProblem::NoRunId)?;
    let role = field("role").unwrap_or_else(|| "unknown".into());
    if field("cluster_enabled").as_deref() == Some("1") {
        return Err(InfoProblem::Cluster);
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
pub(crate) fn parse_time(v: Value) -> Option<Duration> {
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

/// Loads every script on a master (`SCRIPT LOAD`), checking that the
/// server computed the same SHA1 as we did; sent together, so they
/// pipeline on the one connection.
pub(super) async fn load_scripts(
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
        s.check_loaded(&sha?)
            .map_err(|m| FredError::new(ErrorKind::Protocol, m))?;
    }
    Ok(())
}
