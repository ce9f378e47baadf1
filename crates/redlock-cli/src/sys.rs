//! The only module that calls into libc: signals to our own children and
//! their process groups, asking Linux to kill a child when we die, and
//! handing the terminal to CMD's process group and back.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Sends `sig` to every process of the process group `pgid`.
///
/// Callers pass the pid of a child they spawned as the leader of a new
/// process group (`process_group(0)`) and have not reaped yet: while the
/// leader is unreaped its pid names no other process, and Linux never hands
/// out a pid that is still in use as a process group id, so the group
/// cannot be someone else's.
pub(crate) fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
    if pgid <= 1 {
        // kill(0) is our own group, kill(-1) every process we may signal.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 0 or 1",
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    // `-pgid` with `pgid > 1` addresses exactly the group the caller
    // guarantees is its own child's.
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The controlling terminal of `redlock`, when it has one.
///
/// CMD runs in a process group of its own (so that a lost lock can stop all
/// of it). When we have the terminal's foreground, CMD gets it instead, as a
/// shell gives it to a job: it can read the terminal (a background group
/// would get SIGTTIN), and a Ctrl-C typed there reaches CMD's group alone,
/// once, and not `redlock`. In the background we leave it alone, and hand
/// it over when the shell brings us to the foreground (`fg`).
#[derive(Debug)]
pub(crate) struct Terminal {
    /// `/dev/tty`, opened close-on-exec (CMD never inherits it).
    tty: std::fs::File,
    own_group: libc::pid_t,
}

impl Terminal {
    /// Our controlling terminal; `None` without one (cron, services,
    /// `setsid`).
    pub(crate) fn controlling() -> Option<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // /dev/tty is the controlling terminal whatever stdin, stdout and
        // stderr are redirected to; opening it fails without one.
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/tty")
            .ok()?;
        // SAFETY: getpgrp(2) takes nothing and cannot fail.
        let own_group = unsafe { libc::getpgrp() };
        Some(Self { tty, own_group })
    }

    fn fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.tty.as_raw_fd()
    }

    /// Whether our own group has the terminal's foreground now (after a
    /// `bg`, it does not).
    pub(crate) fn ours(&self) -> bool {
        // SAFETY: tcgetpgrp(3) only queries an fd we own; an error is a
        // return value, not undefined behaviour.
        unsafe { libc::tcgetpgrp(self.fd()) == self.own_group }
    }

    /// Makes `pgid` the terminal's foreground group.
    pub(crate) fn give_to(&self, pgid: u32) -> io::Result<()> {
        let pgid = libc::pid_t::try_from(pgid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
        set_foreground(self.fd(), pgid)
    }

    /// Takes the foreground back for our own group if `pgid` (CMD's) still
    /// has it; leaves it alone if someone else (the shell) took it since.
    pub(crate) fn take_back_from(&self, pgid: u32) {
        let Ok(pgid) = libc::pid_t::try_from(pgid) else {
            return;
        };
        // SAFETY: as in `ours`.
        if unsafe { libc::tcgetpgrp(self.fd()) } == pgid {
            let _ = set_foreground(self.fd(), self.own_group);
        }
    }

    /// Makes the child spawned by `cmd` take the terminal's foreground for
    /// its own new process group before it runs CMD, so that CMD never
    /// runs in the background of the terminal, not even for a moment.
    /// Use with `process_group(0)`, which std applies before this. A
    /// failure is ignored: CMD then runs in the background of the terminal.
    pub(crate) fn hand_to_child(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // The fd is close-on-exec but still open between fork and exec.
        let fd = self.fd();
        // SAFETY: the closure runs in the forked child before exec, where
        // only async-signal-safe functions may be called: getpid(2),
        // tcsetpgrp(3) (an ioctl) and pthread_sigmask(3) are, and it
        // allocates nothing. It captures one integer.
        unsafe {
            cmd.pre_exec(move || {
                let _ = set_foreground(fd, libc::getpid());
                Ok(())
            });
        }
    }
}

/// tcsetpgrp(3) with SIGTTOU blocked in the calling thread: from a
/// background group the call would otherwise stop us (the kernel lets it
/// through when SIGTTOU is blocked). Restores the thread's mask after.
fn set_foreground(fd: RawFd, pgid: libc::pid_t) -> io::Result<()> {
    // SAFETY: `set` and `old` are plain C structs on our stack, initialised
    // by sigemptyset/pthread_sigmask before they are read; tcsetpgrp(3)
    // only takes integers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let rc = libc::tcsetpgrp(fd, pgid);
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Blocks SIGTTOU in the calling thread until dropped.
///
/// While CMD has the terminal's foreground, `redlock` is in the background:
/// with the terminal's `tostop` flag set, its messages (a lost lock) would
/// stop it with SIGTTOU, and nobody would extend the lock or stop CMD. With
/// SIGTTOU blocked the kernel lets the write through. Take it after CMD is
/// spawned: a child inherits the mask of the thread that forks it.
#[derive(Debug)]
pub(crate) struct TtouBlocked {
    old: libc::sigset_t,
    /// A signal mask belongs to a thread: restore it on the same one.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl TtouBlocked {
    /// Blocks SIGTTOU in this thread.
    pub(crate) fn new() -> Self {
        // SAFETY: `set` and `old` are plain C structs on our stack,
        // initialised by sigemptyset/pthread_sigmask before they are read.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTTOU);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Self {
                old,
                _not_send: std::marker::PhantomData,
            }
        }
    }
}

impl Drop for TtouBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`, a valid sigset_t.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// If our unreaped child `pid` has stopped (Ctrl-Z, SIGTTIN, SIGSTOP)
/// since the last call, the signal that stopped it. Consumes only the
/// stop report (`WSTOPPED` without `WEXITED`): its exit status stays for
/// tokio, which reaps it.
#[cfg(target_os = "linux")]
pub(crate) fn stop_signal(pid: u32) -> Option<i32> {
    let pid = libc::id_t::try_from(pid).ok()?;
    // SAFETY: `info` is a plain C struct we own, zeroed as waitid(2) asks
    // for WNOHANG ("si_pid is 0 when no child changed state"); waitid only
    // writes into it. `pid` is our own unreaped child, so no other process.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(libc::P_PID, pid, &mut info, libc::WSTOPPED | libc::WNOHANG);
        if rc == 0 && info.si_pid() != 0 && info.si_code == libc::CLD_STOPPED {
            Some(info.si_status())
        } else {
            None
        }
    }
}

/// Elsewhere a stopped CMD is not noticed (see the Linux version).
#[cfg(not(target_os = "linux"))]
pub(crate) fn stop_signal(_pid: u32) -> Option<i32> {
    None
}

/// Whether `sig` stops a process for using the terminal from the
/// background (SIGTTIN, SIGTTOU).
pub(crate) fn is_terminal_stop(sig: i32) -> bool {
    sig == libc::SIGTTIN || sig == libc::SIGTTOU
}

/// Stops `redlock` itself with SIGTSTP, as Ctrl-Z would, and returns once
/// it is continued (at once if the kernel discards the signal: it does for
/// an orphaned process group, where no shell could continue us).
pub(crate) fn stop_self() {
    // raise(3) signals the calling thread, so the stop takes effect before
    // it returns (kill(2) to our pid could pick another thread and return
    // first). SAFETY: no memory is touched.
    unsafe {
        libc::raise(libc::SIGTSTP);
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
        std::time::Duration::from_secs(secs)
            .saturating_add(std::time::Duration::from_micros(micros))
    };
    Some(tv(usage.ru_utime).saturating_add(tv(usage.ru_stime)))
}

/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;
/// `SIGCONT`.
pub(crate) const SIGCONT: i32 = libc::SIGCONT;

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
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        _ => return format!("signal {signo}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_group_pids() {
        assert!(kill_group(0, 0).is_err());
        assert!(kill_group(1, 0).is_err());
        assert!(kill_group(u32::MAX, 0).is_err());
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
