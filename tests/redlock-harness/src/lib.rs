//! Test harness that runs **real** `redis-server` processes for the
//! workspace's integration tests. Never a mock.
//!
//! * [`RedisServer`] — one `redis-server` on a free loopback port, in its own
//!   temporary directory, with helpers to pause (`SIGSTOP`), resume
//!   (`SIGCONT`), kill (`SIGKILL`) and restart it on the same port (keeping
//!   its data when AOF persistence is on), plus a small blocking RESP2 client
//!   ([`RedisServer::cmd`], [`Connection`]) for assertions that is
//!   independent from the client library used by the system under test.
//! * [`Masters`] — `N` independent masters, as Redlock expects.
//!
//! Servers are killed, reaped and their directories removed on drop, also
//! while unwinding from a failed assertion. Ports are never fixed, so tests
//! may run in parallel threads and parallel test binaries.
//!
//! `redis-server` must be on `PATH`; if it is not, starting a server panics
//! with instructions (tests never skip silently). The harness is blocking;
//! calling it from async tests is fine.
//!
//! Linux/Unix only (signals, `/proc`).
//!
//! # Example
//!
//! ```no_run
//! use redlock_harness::{Masters, Persistence, RedisServer, ServerOptions};
//!
//! let mut masters = Masters::start(3);
//! let urls = masters.urls(); // hand these to the system under test
//! assert_eq!(urls.len(), 3);
//!
//! // Inspect with the harness' own client.
//! masters[0].cmd(&["SET", "redlock:k", "v", "PX", "10000"]).expect("SET");
//! assert_eq!(masters[0].get("redlock:k").as_deref(), Some("v"));
//! assert!(masters[0].pttl("redlock:k") > 0);
//! assert_eq!(masters.keys_everywhere("redlock:*"), vec![(0, "redlock:k".to_owned())]);
//!
//! // Fault injection.
//! masters[1].pause();
//! masters[1].resume();
//! masters[2].kill();
//! masters[2].restart(); // same port, comes back empty (no persistence)
//!
//! // A durable server: writes survive kill + restart.
//! let mut durable = RedisServer::start_with(
//!     ServerOptions::default().with_persistence(Persistence::AppendFsyncAlways),
//! );
//! durable.cmd(&["SET", "k", "v"]).expect("SET");
//! durable.kill();
//! durable.restart();
//! assert_eq!(durable.get("k").as_deref(), Some("v"));
//! ```

mod error;
mod masters;
mod resp;
mod server;
mod sys;

pub use error::HarnessError;
pub use masters::Masters;
pub use resp::{Connection, Reply};
pub use server::{redis_server_path, Persistence, RedisServer, ServerOptions};
pub use sys::{signal, SIGCONT, SIGSTOP};
