//! The only place that calls into libc: sending signals to our own children.
#![allow(unsafe_code)]

use std::io;

/// Sends `sig` to the single process `pid`.
///
/// Callers must only pass the pid of a child they spawned and have not reaped
/// yet (the harness holds the `std::process::Child` until it calls `wait`), so
/// the pid cannot have been recycled for an unrelated process.
///
/// # Errors
///
/// A non-positive or out-of-range pid, or the error of kill(2).
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        // 0 and negative pids address process groups / every process: never.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal a non-positive pid",
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; it has
    // no memory-safety preconditions. `pid > 0` addresses exactly one process,
    // which the caller guarantees is an unreaped child of this process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SIGSTOP`: freezes a process (it cannot be caught or ignored).
pub const SIGSTOP: libc::c_int = libc::SIGSTOP;
/// `SIGCONT`: resumes a stopped process.
pub const SIGCONT: libc::c_int = libc::SIGCONT;

/// The one-letter scheduler state of `pid` from `/proc/<pid>/stat`
/// (`'T'` = stopped), or `None` where `/proc` is unavailable.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Format: "pid (comm) S ..."; comm may contain spaces/parens, so split at
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}
