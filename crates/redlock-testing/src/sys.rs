//! Signals to our own children and the parent-death signal, through
//! `rustix`'s safe wrappers. The one `unsafe` block left is std's
//! `pre_exec` hook, which has no safe form.

use std::io;
use std::process::Command;

use rustix::process::{Pid, Signal};

/// Sends `sig` to the single process `pid`.
///
/// Pass only the pid of a child you spawned and have not reaped yet (as
/// long as a `std::process::Child` has not been waited for, its pid cannot
/// have been recycled for an unrelated process). [`RedisServer`] does this
/// for its own servers ([`pause`], [`resume`]); this function is for other
/// children of a test, such as worker processes.
///
/// [`RedisServer`]: crate::RedisServer
/// [`pause`]: crate::RedisServer::pause
/// [`resume`]: crate::RedisServer::resume
///
/// # Errors
///
/// A pid of 0, 1 or out of range (0 and negative pids would address
/// process groups or every process, 1 is init: never), or the error of
/// kill(2).
pub fn signal(pid: u32, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(child_pid(pid)?, sig)?)
}

/// Sends `sig` to every process of the process group `pgid`.
///
/// Pass the pid of a child you spawned as the leader of a new process
/// group (`CommandExt::process_group(0)`) and have not reaped yet: while
/// the leader is unreaped its pid names no other process, and Linux never
/// hands out a pid still in use as a process group id, so the group cannot
/// be someone else's. (The `redlock` CLI signals CMD's group this way.)
///
/// # Errors
///
/// As [`signal`]: a group id of 0 (our own group) or 1 (with kill(2)'s
/// `-1`, every process we may signal) is refused.
pub fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process_group(child_pid(pgid)?, sig)?)
}

/// `pid` as a [`Pid`], refusing what could name anything but one child.
fn child_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .and_then(Pid::from_raw)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to signal pid {pid}: not a child's"),
            )
        })
}

/// Makes the kernel send `sig` to the process spawned by `cmd` when the
/// thread that spawned it exits (Linux only; a no-op elsewhere).
///
/// So that a child never outlives a parent killed with `SIGKILL`, when no
/// destructor can run. The death signal is tied to the *thread* that forks,
/// not the process: spawn from a thread that lives as long as the child
/// should (the main thread, say), not from a pool thread that may retire.
pub fn die_with_parent(cmd: &mut Command, sig: Signal) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = rustix::process::getpid();
        let hook = move || -> io::Result<()> {
            rustix::process::set_parent_process_death_signal(Some(sig))?;
            // The parent may have died between fork and prctl: then the
            // death signal will never come, so give up now.
            // (ESRCH: an error that allocates nothing, see below.)
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        };
        // SAFETY: `pre_exec` is unsafe because the hook runs in the forked
        // child before exec, where only async-signal-safe operations are
        // allowed. The hook makes raw system calls through rustix (prctl(2),
        // getppid(2)), takes no locks and allocates nothing (its errors are
        // bare errno values). It captures a `Pid` and a `Signal`, plain
        // integers. std offers no
        // safe way to run code in the child, so this cannot go.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(hook);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cmd, sig);
    }
}

/// The one-letter scheduler state of `pid` from `/proc/<pid>/stat`
/// (`'T'` = stopped), or `None` where `/proc` is unavailable.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Format: "pid (comm) S ..."; comm may contain spaces/parens, so split at
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_pids_that_are_not_one_child() {
        for pid in [0, 1, u32::MAX] {
            let err = signal(pid, Signal::CONT).expect_err("must refuse");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pid}");
            let err = signal_group(pid, Signal::CONT).expect_err("must refuse");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pid}");
        }
    }

    #[test]
    fn state_of_a_running_process() {
        let state = proc_state(std::process::id());
        assert!(matches!(state, None | Some('R' | 'S')), "{state:?}");
    }
}
