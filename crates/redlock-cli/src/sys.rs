//! The only module that calls into libc: sending a signal to one of our own
//! children, and asking Linux to kill a child when we die.
#![allow(unsafe_code)]

use std::io;

/// Sends `sig` to the single process `pid`.
///
/// Callers pass only the pid of a child they spawned and have not reaped
/// yet (they hold its `Child` and have not seen its exit status), so the pid
/// cannot have been recycled for an unrelated process: an exited but
/// unreaped child is a zombie, and signalling a zombie does nothing.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        // 0 and negative pids address process groups or every process.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal a non-positive pid",
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours, so
    // it has no memory-safety preconditions. `pid > 0` addresses exactly one
    // process, which the caller guarantees is its own unreaped child.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the kernel send `sig` to the child spawned by `cmd` when the thread
/// that spawned it exits (Linux only; a no-op elsewhere).
///
/// Used so that throwaway `redis-server`s and CMD never outlive a `redlock`
/// killed with SIGKILL, when no destructor can run. The death signal is tied
/// to the *thread* that forks, so callers spawn from the main thread.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command, sig: i32) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec, where
        // only async-signal-safe functions may be called: prctl(2) and
        // getppid(2) are plain system calls that allocate nothing and take
        // no locks. It captures only two integers.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::c_ulong::try_from(sig).unwrap_or(9),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then the
                // death signal will never come, so give up now.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cmd, sig);
    }
}

/// CPU time (user + system) used so far by this process, all threads,
/// children excluded; `None` if the kernel refuses.
pub(crate) fn process_cpu_time() -> Option<std::time::Duration> {
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero
    // bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage(2) writes one `rusage` through the pointer, which
    // points to a live, aligned `rusage` we own exclusively.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return None;
    }
    let tv = |t: libc::timeval| {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let micros = u64::try_from(t.tv_usec).unwrap_or(0);
        std::time::Duration::from_secs(secs) + std::time::Duration::from_micros(micros)
    };
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// The conventional name of a signal number, for messages.
pub(crate) fn signal_name(signo: i32) -> String {
    let name = match signo {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGBUS => "SIGBUS",
        _ => return format!("signal {signo}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_group_pids() {
        assert!(kill(0, 0).is_err());
        assert!(kill(u32::MAX, 0).is_err());
    }

    #[test]
    fn cpu_time_grows() {
        let a = process_cpu_time().expect("getrusage");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = process_cpu_time().expect("getrusage");
        assert!(b >= a);
    }

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        assert_eq!(signal_name(200), "signal 200");
    }
}
