//! The crate's error type.

use std::io;

/// Errors of the fallible operations.
///
/// The panicking constructors ([`RedisServer::start`](crate::RedisServer::start),
/// [`Masters::start`](crate::Masters::start)) suit tests, where a panic with
/// a clear message is the right outcome; the `try_` constructors return this
/// type for programs that report failures themselves (the `redlock` CLI's
/// `--spawn`). The RESP client ([`RedisServer::cmd`](crate::RedisServer::cmd),
/// [`Connection`](crate::Connection)) returns it so that tests can assert on
/// failures such as timeouts against a paused server or refused connections
/// to a killed one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `redis-server` is not on `PATH`. Tests never skip for this: the
    /// message says how to install it.
    #[error(
        "redis-server not found on PATH: install it (Debian/Ubuntu: \
         `apt-get install -y redis-server`; macOS: `brew install redis`)"
    )]
    RedisServerNotFound,
    /// A server was spawned but did not become ready: it exited, or did not
    /// answer `PING` in time (it has been killed), or the port kept being
    /// taken by other processes.
    #[error("could not start redis-server on 127.0.0.1:{port}: {reason}")]
    Start {
        /// The port of the last attempt.
        port: u16,
        /// What went wrong, in a few words.
        reason: String,
        /// The tail of the server's log and of its stdout/stderr, for a
        /// report; may be empty.
        log: String,
    },
    /// Creating the server's directory, binding a port or spawning the
    /// process failed.
    #[error("cannot set up redis-server: {0}")]
    Setup(#[source] io::Error),
    /// A read, write or connect did not complete within the timeout (for
    /// example because the server is paused with `SIGSTOP`).
    #[error("timed out waiting for the redis server")]
    Timeout,
    /// Any other I/O error of the RESP client (connection refused, reset,
    /// closed, ...).
    #[error("I/O error talking to redis: {0}")]
    Io(#[source] io::Error),
    /// The server sent bytes that are not valid RESP2.
    #[error("RESP protocol error: {0}")]
    Protocol(String),
    /// `AUTH` was rejected by the server.
    #[error("AUTH rejected: {0}")]
    Auth(String),
}

impl Error {
    /// Whether this is a "connection refused" error, i.e. nothing listens on
    /// the port (typically: the server was killed).
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// Whether this is a timeout (typically: the server is paused).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
}

impl From<io::Error> for Error {
    /// The RESP client's I/O errors: a socket timeout (which std reports as
    /// `WouldBlock` or `TimedOut` depending on the platform) is a
    /// [`Error::Timeout`], anything else [`Error::Io`].
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Io(e),
        }
    }
}
