//! The harness error type.

use std::fmt;
use std::io;

/// Errors returned by the harness' fallible operations.
///
/// Most harness methods panic instead of returning errors (they are used from
/// tests, where a panic with a clear message is the right outcome); the raw
/// client ([`RedisServer::cmd`](crate::RedisServer::cmd),
/// [`Connection`](crate::Connection)) returns this type so that tests can
/// assert on failures such as timeouts against a paused server or refused
/// connections to a killed one.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// `redis-server` is not on `PATH`.
    RedisServerNotFound,
    /// A read, write or connect did not complete within the timeout (for
    /// example because the server is paused with `SIGSTOP`).
    Timeout,
    /// Any other I/O error (connection refused, reset, closed, ...).
    Io(io::Error),
    /// The server sent bytes that are not valid RESP2.
    Protocol(String),
    /// `AUTH` was rejected by the server.
    Auth(String),
}

impl HarnessError {
    /// Whether this is a "connection refused" error, i.e. nothing listens on
    /// the port (typically: the server was killed).
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, HarnessError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// Whether this is a timeout (typically: the server is paused).
    pub fn is_timeout(&self) -> bool {
        matches!(self, HarnessError::Timeout)
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::RedisServerNotFound => f.write_str(
                "redis-server not found on PATH: install it with \
                 `apt-get install -y redis-server` (Debian) — tests never skip silently",
            ),
            HarnessError::Timeout => f.write_str("timed out waiting for the redis server"),
            HarnessError::Io(e) => write!(f, "I/O error talking to redis: {e}"),
            HarnessError::Protocol(msg) => write!(f, "RESP protocol error: {msg}"),
            HarnessError::Auth(msg) => write!(f, "AUTH rejected: {msg}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HarnessError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HarnessError::Timeout,
            _ => HarnessError::Io(e),
        }
    }
}
