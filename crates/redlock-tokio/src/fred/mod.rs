//! The production [`Master`](redlock_core::Master): one multiplexed fred
//! client per Redis master, configured for locks rather than for caching.
//!
//! The backend sits beside the core, as quinn's I/O sits beside
//! quinn-proto: `redlock-core` knows only the `Master` and `Link` traits
//! and the admission rules; this module speaks Redis. It lives in the
//! tokio adapter rather than a crate of its own because fred runs on
//! tokio: the client, the runtime seam ([`TokioRuntime`](crate::TokioRuntime))
//! and the guards share one dependency, and one builder
//! ([`LockManagerBuilder`](crate::LockManagerBuilder)) covers them all.
//!
//! fred's defaults are wrong for a lock (see `docs/algorithm.md`, "How each
//! master is reached"), so every
//! client is built with:
//! - a reconnect policy that never gives up (without one, a client whose
//!   server died reports `Connected` while every command hangs);
//! - one write attempt per command, so a `SET` is never re-sent after a
//!   reconnect behind our back;
//! - fred's own per-command timeout on every call but a release (an outer
//!   `tokio::time::timeout` alone would let a dropped command be written
//!   later), and `fail_fast` so commands to a disconnected master fail at
//!   once instead of queueing. A release is the one command that must be
//!   written however late: it goes without fred's timeout, and only its
//!   caller's wait is bounded (`link::Delivery`);
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
//!
//! Layout: `url` parses master URLs, `connect` builds and checks the
//! clients, `link` sends the lock commands, `reply` reads what the server
//! answered, and `tls` builds the one TLS connector.

mod announce;
mod connect;
mod link;
mod reply;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod url;

pub(crate) use connect::{connect, parse_all};
// What `commands` sends through either link.
pub use link::FredLink;
pub(crate) use link::{fenced_argv, Script, Scripts};
pub(crate) use reply::{is_syntax_error, set_nx_get_outcome, SetNxGet};
pub use url::redact_url;
// What the redis-rs link shares with this one: the scripts, the reading
// of replies and of `INFO`, the URL parsing.
#[cfg(feature = "redis-rs")]
pub(crate) use announce::Announcements;
#[cfg(feature = "redis-rs")]
pub(crate) use connect::{
    announcements_for, facts_from_info, is_auth_message, parse_time, unresponsive, InfoProblem,
    CLUSTER_NODE, NO_RUN_ID,
};
#[cfg(feature = "redis-rs")]
pub(crate) use link::SharedScripts;
#[cfg(feature = "redis-rs")]
pub(crate) use reply::{inspect_outcome, script_reply, short};
#[cfg(feature = "redis-rs")]
pub(crate) use url::ParsedUrl;
