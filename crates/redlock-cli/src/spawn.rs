//! `--spawn N`: throwaway `redis-server` processes on free loopback ports,
//! started by `redlock-testing`, the workspace's one spawner.
//!
//! This is the "try it with no infrastructure" default, so it must never
//! leave a server behind. Servers are stopped:
//! - on drop of the [`Masters`], which `main` reaches on success, on every
//!   error path, and after a signal (the signal handlers turn
//!   SIGINT/SIGTERM/... into an ordinary return);
//! - by the kernel when `redlock` dies without running destructors (SIGKILL,
//!   abort): on Linux each server is spawned with a parent-death signal.

use redlock_testing::{Error, Masters, ServerOptions, Signal};

use crate::output::Failure;

/// The most servers `--spawn` starts: beyond this a "quorum" is only a
/// slower way to use one machine.
pub(crate) const MAX_SPAWN: usize = 15;
/// The install hint of the error shown when `redis-server` is missing.
pub(crate) const INSTALL_HINT: &str =
    "install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`) or pass --masters";

/// Starts `n` servers in parallel and waits until each answers `PING`.
///
/// Call from the main thread: the parent-death signal is tied to the
/// thread that spawns (see [`redlock_testing::die_with_parent`]).
///
/// # Errors
///
/// [`Failure`] with status 69 when `redis-server` is missing or does not
/// start, in one line; servers already started are stopped first.
pub(crate) fn start(n: usize) -> Result<Masters, Failure> {
    let opts = ServerOptions::default()
        .with_parent_death_signal(Signal::KILL)
        .with_arg("loglevel", "warning");
    Masters::try_start_with(n, opts).map_err(|e| match e {
        Error::RedisServerNotFound => Failure::unavailable(format_args!(
            "--spawn needs `redis-server`, which is not on PATH; {INSTALL_HINT}"
        )),
        Error::Start { port, reason, log } => {
            // One line: the reason and the log's last words.
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("---"))
                .unwrap_or("")
                .trim();
            Failure::unavailable(format_args!(
                "could not start redis-server on 127.0.0.1:{port}: {reason} ({last})"
            ))
        }
        other => Failure::unavailable(format_args!("{other}; {INSTALL_HINT}")),
    })
}
