//! The system calls of `redlock` itself: signals to our own children and
//! their process groups, handing the terminal to CMD's process group and
//! back, and our CPU time.
//!
//! Through safe wrappers: `rustix` for everything it covers, and `nix` for
//! the two calls rustix offers no safe form of, the thread's signal mask
//! (`pthread_sigmask`: rustix only has the raw, `unsafe` kernel call, which
//! bypasses libc's own bookkeeping of reserved signals) and `raise`.
//! Signalling CMD's group and the parent-death signal are
//! `redlock-testing`'s, which uses them for the spawned servers too.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal as NixSignal};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

pub(crate) use redlock_testing::die_with_parent;

/// `pid` (of CMD) as a [`Pid`]; `None` for 0 or out of range.
fn to_pid(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// Sends `sig` to every process of the process group `pgid`.
///
/// Callers pass the pid of a child they spawned as the leader of a new
/// process group (`process_group(0)`) and have not reaped yet (see
/// [`redlock_testing::signal_group`], which refuses groups 0 and 1).
pub(crate) fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    let sig = Signal::from_named_raw(sig)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no signal {sig}")))?;
    redlock_testing::signal_group(pgid, sig)
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
    tty: OwnedFd,
    own_group: Pid,
}

impl Terminal {
    /// Our controlling terminal; `None` without one (cron, services,
    /// `setsid`).
    pub(crate) fn controlling() -> Option<Self> {
        use rustix::fs::{Mode, OFlags};
        // /dev/tty is the controlling terminal whatever stdin, stdout and
        // stderr are redirected to; opening it fails without one.
        let tty = rustix::fs::open(
            "/dev/tty",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let own_group = rustix::process::getpgrp();
        Some(Self { tty, own_group })
    }

    /// Whether our own group has the terminal's foreground now (after a
    /// `bg`, it does not).
    pub(crate) fn ours(&self) -> bool {
        rustix::termios::tcgetpgrp(&self.tty).is_ok_and(|p| p == self.own_group)
    }

    /// Makes `pgid` the terminal's foreground group.
    pub(crate) fn give_to(&self, pgid: u32) -> io::Result<()> {
        let pgid = to_pid(pgid)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pgid out of range"))?;
        set_foreground(self.tty.as_fd(), pgid)
    }

    /// Takes the foreground back for our own group if `pgid` (CMD's) still
    /// has it; leaves it alone if someone else (the shell) took it since.
    pub(crate) fn take_back_from(&self, pgid: u32) {
        let Some(pgid) = to_pid(pgid) else {
            return;
        };
        if rustix::termios::tcgetpgrp(&self.tty).is_ok_and(|p| p == pgid) {
            let _ = set_foreground(self.tty.as_fd(), self.own_group);
        }
    }

    /// Makes the child spawned by `cmd` take the terminal's foreground for
    /// its own new process group before it runs CMD, so that CMD never
    /// runs in the background of the terminal, not even for a moment.
    /// Use with `process_group(0)`, which std applies before this. A
    /// failure is ignored: CMD then runs in the background of the terminal.
    pub(crate) fn hand_to_child(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // A duplicate for the hook to own (close-on-exec like the
        // original): still open between fork and exec, closed with `cmd`.
        let Ok(tty) = self.tty.try_clone() else {
            return;
        };
        let hook = move || -> io::Result<()> {
            let _ = set_foreground(tty.as_fd(), rustix::process::getpid());
            Ok(())
        };
        // SAFETY: `pre_exec` is unsafe because the hook runs in the forked
        // child before exec, where only async-signal-safe operations are
        // allowed: getpid(2), tcsetpgrp(3) (an ioctl) and pthread_sigmask(3)
        // are, and the hook allocates nothing. It owns one file descriptor.
        // std offers no safe way to run code in the child.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(hook);
        }
    }
}

/// SIGTTOU alone.
fn ttou() -> SigSet {
    let mut set = SigSet::empty();
    set.add(NixSignal::SIGTTOU);
    set
}

/// tcsetpgrp(3) with SIGTTOU blocked in the calling thread: from a
/// background group the call would otherwise stop us (the kernel lets it
/// through when SIGTTOU is blocked). Restores the thread's mask after.
fn set_foreground(tty: BorrowedFd<'_>, pgid: Pid) -> io::Result<()> {
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou()), Some(&mut old))?;
    let result = rustix::termios::tcsetpgrp(tty, pgid);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    Ok(result?)
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
    old: SigSet,
    /// A signal mask belongs to a thread: restore it on the same one.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl TtouBlocked {
    /// Blocks SIGTTOU in this thread.
    pub(crate) fn new() -> Self {
        let mut old = SigSet::empty();
        // pthread_sigmask(3) fails only for an invalid `how`.
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou()), Some(&mut old));
        Self {
            old,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for TtouBlocked {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// If our unreaped child `pid` has stopped (Ctrl-Z, SIGTTIN, SIGSTOP)
/// since the last call, the signal that stopped it. Consumes only the
/// stop report (`WSTOPPED` without `WEXITED`): its exit status stays for
/// tokio, which reaps it.
pub(crate) fn stop_signal(pid: u32) -> Option<i32> {
    let pid = to_pid(pid)?;
    let status = rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::STOPPED | WaitIdOptions::NOHANG,
    )
    .ok()??;
    status.stopping_signal()
}

/// Whether `sig` stops a process for using the terminal from the
/// background (SIGTTIN, SIGTTOU).
pub(crate) fn is_terminal_stop(sig: i32) -> bool {
    sig == Signal::TTIN.as_raw() || sig == Signal::TTOU.as_raw()
}

/// Stops `redlock` itself with SIGTSTP, as Ctrl-Z would, and returns once
/// it is continued (at once if the kernel discards the signal: it does for
/// an orphaned process group, where no shell could continue us).
pub(crate) fn stop_self() {
    // raise(3) signals the calling thread, so the stop takes effect before
    // it returns (kill(2) to our pid could pick another thread and return
    // first).
    let _ = nix::sys::signal::raise(NixSignal::SIGTSTP);
}

/// CPU time (user + system) used so far by this process, all threads,
/// children excluded (`CLOCK_PROCESS_CPUTIME_ID`); `None` if the kernel
/// reports a negative time.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(Duration::from_secs(secs).saturating_add(Duration::from_nanos(nanos)))
}

/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = Signal::TERM.as_raw();
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = Signal::KILL.as_raw();
/// `SIGCONT`.
pub(crate) const SIGCONT: i32 = Signal::CONT.as_raw();

/// Signals by their conventional names, for messages.
const NAMES: &[(Signal, &str)] = &[
    (Signal::HUP, "SIGHUP"),
    (Signal::INT, "SIGINT"),
    (Signal::QUIT, "SIGQUIT"),
    (Signal::ILL, "SIGILL"),
    (Signal::ABORT, "SIGABRT"),
    (Signal::FPE, "SIGFPE"),
    (Signal::KILL, "SIGKILL"),
    (Signal::SEGV, "SIGSEGV"),
    (Signal::PIPE, "SIGPIPE"),
    (Signal::ALARM, "SIGALRM"),
    (Signal::TERM, "SIGTERM"),
    (Signal::USR1, "SIGUSR1"),
    (Signal::USR2, "SIGUSR2"),
    (Signal::BUS, "SIGBUS"),
    (Signal::CONT, "SIGCONT"),
    (Signal::STOP, "SIGSTOP"),
    (Signal::TSTP, "SIGTSTP"),
    (Signal::TTIN, "SIGTTIN"),
    (Signal::TTOU, "SIGTTOU"),
];

/// The conventional name of a signal number, for messages.
pub(crate) fn signal_name(signo: i32) -> String {
    NAMES
        .iter()
        .find(|(sig, _)| sig.as_raw() == signo)
        .map_or_else(|| format!("signal {signo}"), |(_, name)| (*name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_group_pids() {
        // SIGCONT, a real signal: the refusal is for the group alone.
        for pgid in [0, 1, u32::MAX] {
            let err = kill_group(pgid, SIGCONT).expect_err("must refuse");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pgid}");
        }
        assert!(kill_group(12345, 0).is_err(), "signal 0 is no signal");
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
