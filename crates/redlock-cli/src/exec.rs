//! `redlock exec`: run CMD while holding the lock.
//!
//! The lock comes from the `redlock-tokio` adapter: its guard's watchdog
//! extends the lock while CMD runs and fires the loss signal when the lock
//! can no longer be trusted. This module only drives CMD around it:
//!
//! ```text
//!  acquire ──(not granted)──► exit 75 (--conflict-exit-code), CMD never started
//!     │   └─(signal)──► the attempt's keys released, exit 128+N
//!  lost already? ──(yes)──► release, exit 76 (--lost-exit-code), CMD never started
//!     │
//!  spawn CMD in its own process group ──(cannot)──► release, exit 126/127
//!     │
//!     ├── signal to redlock ──► forward to CMD's process group, keep waiting
//!     ├── loss signal ──► SIGTERM to the group, SIGKILL after --kill-after
//!     ├── CMD stopped (Ctrl-Z, terminal only) ──► stop redlock too, resume both
//!     ▼
//!  CMD exits ──► release ──► exit: 76 if the lock was lost (or is no
//!                                   longer valid), else CMD's status
//! ```
//!
//! The release happens on every path that reaches this code after the
//! connection, including a signal while an attempt is in flight (whatever
//! the attempt set is released in the background, and [`run`] waits for
//! that, bounded, before returning to `main`, which then drops the
//! runtime). Only SIGKILL of `redlock` itself skips it, and then the keys
//! expire with the TTL (and, on Linux, CMD gets SIGTERM from the kernel,
//! since nothing keeps its lock any more).

use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::Duration;

use redlock_core::RetryPolicy;
use redlock_tokio::{AcquireError, LockGuard, LockManager, LockOptions};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};

use crate::cli::{ExecArgs, Global, Wait};
use crate::output::{
    describe_lock_error, describe_loss, human_duration, quote_input, Failure, EX_CANNOT_EXECUTE,
    EX_NOT_FOUND, EX_SOFTWARE, EX_TEMPFAIL,
};
use crate::signals::{Signals, FORWARD};
use crate::sys;

/// Backoff between attempts with `--wait`: the core's default schedule
/// (50 ms doubling to 1 s, equal jitter), with no retry count, so only the
/// deadline ends the wait.
fn wait_policy() -> RetryPolicy {
    RetryPolicy::default().until_deadline()
}

/// Runs `exec`.
///
/// # Errors
///
/// Masters unavailable (69), lock not acquired (75, or
/// `--conflict-exit-code` when another owner holds it), CMD not runnable
/// (126/127), or a signal received before CMD started (128+N).
pub(crate) async fn run(global: &Global, urls: &[String], args: ExecArgs) -> Result<u8, Failure> {
    // Installed first: a SIGTERM while connecting or waiting for the lock
    // must end the wait cleanly, not kill us between acquire and release.
    let mut signals = Signals::install(FORWARD)?;

    let builder = crate::builder(global, urls, args.ttl, args.label.as_deref());
    let locks = tokio::select! {
        r = builder.connect() => r.map_err(Failure::from)?,
        sig = signals.recv() => return Err(Failure::signalled(sig)),
    };

    // After connecting, so that a failure stays the one line it is.
    if !args.quiet {
        if let Some(warning) = fault_tolerance_warning(urls.len()) {
            eprintln!("redlock: warning: {warning}");
        }
    }
    let outcome = locked(&locks, global, urls, &args, &mut signals).await;
    // Every path after connecting ends here, so whatever this run set on
    // the masters is released before `main` drops the runtime: an
    // acquisition cancelled by a signal leaves its cleanup to a background
    // task of the adapter, which the runtime would drop unpolled. The wait
    // is bounded: each release is bounded by the per-master timeout.
    let bound = release_bound(global);
    let report = locks.shutdown(bound).await;
    if !report.is_clean() {
        eprintln!(
            "redlock: warning: release not confirmed on every master within {}; the keys there expire with the TTL",
            human_duration(bound)
        );
    }
    outcome
}

/// A warning when `masters` masters tolerate fewer failures than they
/// look like they should: below three, a single failure stops (or, on a
/// restart without persistence, endangers) every lock; an even number
/// tolerates no more failures than one master fewer would.
fn fault_tolerance_warning(masters: usize) -> Option<String> {
    let quorum = redlock_core::Quorum::majority(masters).ok()?;
    let (needed, tolerated) = (quorum.needed(), quorum.tolerated_failures());
    if masters < 3 {
        Some(format!(
            "{masters} master{}: a quorum of {needed} of {masters} tolerates no failure, so one master down stops every lock; 3 or 5 independent masters tolerate 1 or 2",
            if masters == 1 { "" } else { "s" }
        ))
    } else if masters.is_multiple_of(2) {
        Some(format!(
            "{masters} masters (quorum {needed}) tolerate {tolerated} failure(s), no more than {} would; use an odd number of masters",
            masters - 1
        ))
    } else {
        None
    }
}

/// How long `exec` waits, on its way out, for the releases it started: one
/// per-master timeout (a release is one command per master, all in
/// parallel), plus a margin for a busy machine.
fn release_bound(global: &Global) -> Duration {
    global.master_timeout.saturating_add(Duration::from_secs(1))
}

/// Acquires, runs CMD, releases. Returns on every path without waiting
/// for background releases; [`run`] does that.
async fn locked(
    locks: &LockManager,
    global: &Global,
    urls: &[String],
    args: &ExecArgs,
    signals: &mut Signals,
) -> Result<u8, Failure> {
    let opts = match args.wait {
        None => LockOptions::once(),
        Some(Wait::For(wait)) => LockOptions::new().retry(wait_policy()).wait(Some(wait)),
        // No deadline and no retry count (the policy has none): retries
        // end only with the lock or a signal.
        Some(Wait::Forever) => LockOptions::new().retry(wait_policy()).wait(None),
    }
    .ttl(args.ttl);
    // Without --fence the manager's default (off) stands: no second round.
    let opts = if args.fence { opts.fenced(true) } else { opts };
    // The adapter's acquisition is cancel safe: dropping it on a signal
    // hands whatever an attempt in flight had set to a background release,
    // which `run` waits for.
    let guard = tokio::select! {
        r = locks.acquire_with(args.resource.as_str(), &opts) => r,
        sig = signals.recv() => return Err(Failure::signalled(sig)),
    };
    let guard = match guard {
        Ok(g) => g,
        Err(AcquireError::Lock(redlock_core::AcquireError::Invalid(e))) => {
            return Err(Failure::from(e))
        }
        Err(e) if args.quiet && e.is_contended() => return Ok(args.conflict_exit_code),
        Err(e) => {
            // Another owner: the caller's conflict status. Masters that
            // failed or timed out are not a conflict, and keep 75.
            let (status, holder) = if e.is_contended() {
                let holder = tokio::select! {
                    h = who_holds(locks, global, &args.resource) => h,
                    sig = signals.recv() => return Err(Failure::signalled(sig)),
                };
                (args.conflict_exit_code, holder)
            } else {
                (EX_TEMPFAIL, None)
            };
            let message = match holder {
                Some(held) => format!(
                    "resource {} is {held}{}",
                    quote_input(&args.resource),
                    after_waiting(&e)
                ),
                None => format!(
                    "resource {} not acquired: {}",
                    quote_input(&args.resource),
                    describe_lock_error(&e)
                ),
            };
            return Err(Failure {
                status,
                message: crate::output::one_line(&message),
                plain: true,
            });
        }
    };
    if args.verbose {
        eprintln!(
            "redlock: acquired {} (token {}{}), valid for {}",
            quote_input(&args.resource),
            crate::output::short_token(guard.token().expose()),
            guard
                .fence()
                .map(|f| format!(", fence {f}"))
                .unwrap_or_default(),
            human_duration(guard.remaining())
        );
    }

    let outcome = supervise(global, urls, args, &guard, signals).await;

    // Every path from here releases: CMD exited, was killed, or could not
    // be started.
    let extensions = guard.extensions();
    match guard.release().await {
        Ok(report) if args.verbose => eprintln!(
            "redlock: released {} after {extensions} extension(s): {report}",
            quote_input(&args.resource)
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "redlock: warning: {}; the keys there expire with the TTL",
            crate::output::one_line(&e.to_string())
        ),
    }
    outcome
}

/// Who holds `resource`, as a refused contender tells it: `held by pid
/// 4242 on web-1 ("nightly") since 12s ago, 18s left, on 3/3 masters`.
/// `None` when no master holds it any more (released in between) or it
/// cannot be read; the votes then say what happened.
async fn who_holds(locks: &LockManager, global: &Global, resource: &str) -> Option<String> {
    // The refused attempt's own keys are released in the background; read
    // after that, or a master where it got the key would show it as
    // "another token". Each release is bounded by the per-master timeout.
    let _ = tokio::time::timeout(release_bound(global), locks.core().background_idle()).await;
    let inspection = locks.core().inspect(resource).await.ok()?;
    crate::inspect::held_by(&inspection, std::time::SystemTime::now())
}

/// `; gave up after waiting 5s (12 attempts)` after a `--wait` that ran
/// out; nothing after a single attempt.
fn after_waiting(e: &AcquireError) -> String {
    match e {
        AcquireError::Lock(redlock_core::AcquireError::Deadline {
            attempts, waited, ..
        }) => format!(
            "; gave up after waiting {} ({attempts} attempts)",
            human_duration(*waited)
        ),
        _ => String::new(),
    }
}

/// Spawns CMD and waits for it, forwarding signals and reacting to loss.
///
/// CMD leads a process group of its own, and every signal goes to that
/// whole group: a shell CMD (`sh -c 'job; true'`) dies with its job, not
/// instead of it. The group id is CMD's pid, signalled only while CMD is
/// unreaped (`child.id()` is `Some`), so it cannot name another group.
async fn supervise(
    global: &Global,
    urls: &[String],
    args: &ExecArgs,
    guard: &LockGuard,
    signals: &mut Signals,
) -> Result<u8, Failure> {
    let terminal = sys::Terminal::controlling();
    // The last moment to stay out: the lock may have been lost since it was
    // granted (this process paused, a slow stderr), and a CMD started now
    // would run without it, however briefly.
    if !guard.is_valid() {
        eprintln!(
            "redlock: resource {}: {} before CMD could start; CMD not started",
            quote_input(&args.resource),
            loss_reason(guard)
        );
        return Ok(args.lost_exit_code);
    }
    // Job control: the shell knows only redlock's group, so redlock follows
    // CMD's stops (Ctrl-Z, SIGTTIN) and passes its own continues on. The
    // handlers come before the spawn: a stream sees only signals that
    // arrive after it exists, and CMD may stop at once (reading the
    // terminal from the background), before redlock would look.
    let (mut stops, mut continues) = match &terminal {
        Some(_) => {
            let handler = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|e| Failure::software(format_args!("cannot handle {name}: {e}")))
            };
            (
                Some(handler(SignalKind::child(), "SIGCHLD")?),
                Some(handler(SignalKind::from_raw(sys::SIGCONT), "SIGCONT")?),
            )
        }
        None => (None, None),
    };
    // CMD gets the terminal's foreground if we have it now; from the
    // background, only once the shell gives it to us (`fg`, see `resume`).
    let hand_over = terminal.as_ref().filter(|t| t.ours());
    let mut child = spawn(global, urls, args, guard, hand_over)?;
    let pid = child.id();
    // Our messages must not stop us while CMD has the terminal (`tostop`);
    // taken after the spawn, since children inherit the mask.
    let _ttou = terminal.as_ref().map(|_| sys::TtouBlocked::new());
    // Whether CMD last stopped for the terminal (SIGTTIN/SIGTTOU): it then
    // runs again only once it can have the terminal.
    let mut waits_for_terminal = false;
    let mut lost = false;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        tokio::select! {
            // Child first: if CMD already exited, its status is the answer
            // (checked against the lock's validity below).
            biased;
            status = child.wait() => break status,
            sig = signals.recv() => {
                // `child.wait()` has not returned, so the child is not
                // reaped and its pid is still ours.
                if let Some(pid) = child.id() {
                    let _ = sys::kill_group(pid, sig);
                }
            }
            reason = guard.lost(), if !lost => {
                lost = true;
                // `--kill-after` is at most a year, so this never overflows;
                // if it did, SIGKILL would never come, and SIGTERM stands.
                kill_at = Instant::now().checked_add(args.kill_after);
                if let Some(pid) = child.id() {
                    let _ = sys::kill_group(pid, sys::SIGTERM);
                }
                eprintln!(
                    "redlock: resource {}: {}; sent SIGTERM to CMD (pid {}) and its process group, SIGKILL in {}",
                    quote_input(&args.resource),
                    describe_loss(&reason),
                    pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                    human_duration(args.kill_after),
                );
            }
            () = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                if let Some(pid) = child.id() {
                    let _ = sys::kill_group(pid, sys::SIGKILL);
                    eprintln!("redlock: CMD (pid {pid}) still running after SIGTERM; sent SIGKILL");
                }
            }
            Some(()) = async { stops.as_mut()?.recv().await }, if stops.is_some() => {
                if let (Some(pid), Some(terminal)) = (child.id(), &terminal) {
                    if let Some(sig) = sys::stop_signal(pid) {
                        waits_for_terminal = sys::is_terminal_stop(sig);
                        job_stopped(terminal, pid, waits_for_terminal);
                    }
                }
            }
            Some(()) = async { continues.as_mut()?.recv().await }, if continues.is_some() => {
                if let (Some(pid), Some(terminal)) = (child.id(), &terminal) {
                    resume(terminal, pid, waits_for_terminal);
                }
            }
        }
    };
    if let (Some(terminal), Some(pid)) = (&terminal, pid) {
        terminal.take_back_from(pid);
    }
    let status = status.map_err(|e| Failure::software(format_args!("waiting for CMD: {e}")))?;
    if lost {
        return Ok(args.lost_exit_code);
    }
    // CMD's exit may be noticed in the same poll as the loss (the select
    // prefers the child), or only after the validity ended (redlock was
    // paused): nothing then shows that CMD finished while the lock held,
    // so the answer is "lost", not CMD's status.
    if !guard.is_valid() {
        eprintln!(
            "redlock: resource {}: {}; CMD had exited ({}), but not provably while the lock was held",
            quote_input(&args.resource),
            loss_reason(guard),
            describe_status(status)
        );
        return Ok(args.lost_exit_code);
    }
    Ok(exit_code(status))
}

/// Why `guard` is no longer valid, for a message: its loss reason, or the
/// end of its validity when the watchdog has not said so yet.
fn loss_reason(guard: &LockGuard) -> String {
    guard.loss_reason().map_or_else(
        || "lock lost: its validity ended".to_owned(),
        |reason| describe_loss(&reason),
    )
}

/// `status 3` or `killed by SIGTERM`.
fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(sig)) => format!("killed by {}", sys::signal_name(sig)),
        (None, None) => status.to_string(),
    }
}

/// CMD's group was stopped (Ctrl-Z, or SIGTTIN reading the terminal from
/// the background): stop redlock too, so that the shell, which only knows
/// redlock's group, sees its job stopped and can continue it. Returns
/// once redlock is continued, and resumes CMD as [`resume`] does.
///
/// While redlock is stopped the lock is not extended: a stop longer than
/// the validity loses it, which the watchdog reports once we run again.
fn job_stopped(terminal: &sys::Terminal, pid: u32, for_terminal: bool) {
    terminal.take_back_from(pid);
    // Returns when continued, or at once when the kernel discards SIGTSTP
    // (an orphaned process group: no shell could continue us).
    sys::stop_self();
    resume(terminal, pid, for_terminal);
}

/// redlock runs (again): in the foreground (`fg`), the terminal goes to
/// CMD's group, which is continued. In the background (`bg`) CMD's group
/// is continued too, unless it stopped to use the terminal: it would only
/// stop again, so it waits until the shell brings redlock to the
/// foreground (which sends SIGCONT, and lands here again).
fn resume(terminal: &sys::Terminal, pid: u32, for_terminal: bool) {
    if terminal.ours() {
        let _ = terminal.give_to(pid);
    } else if for_terminal {
        return;
    }
    let _ = sys::kill_group(pid, sys::SIGCONT);
}

fn spawn(
    global: &Global,
    urls: &[String],
    args: &ExecArgs,
    guard: &LockGuard,
    terminal: Option<&sys::Terminal>,
) -> Result<Child, Failure> {
    let argv = args.argv();
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::usage("no command given after --"))?;
    // The key as the library names it (one resource, so one key).
    let prefix = redlock_core::KeyPrefix::new(global.prefix.as_str()).map_err(Failure::from)?;
    let key = guard.resources().keys(&prefix).join(",");
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env("REDLOCK_TOKEN", guard.token().expose())
        .env("REDLOCK_RESOURCE", &args.resource)
        .env("REDLOCK_KEY", key)
        .env("REDLOCK_TTL_MS", args.ttl.as_millis().to_string())
        // The URLs with passwords replaced by `***`: CMD learns which
        // masters hold its lock, never a credential (the variable from our
        // own environment, passwords and all, is overwritten, not passed on).
        .env(
            "REDLOCK_MASTERS",
            urls.iter()
                .map(|u| redlock_tokio::redact_url(u))
                .collect::<Vec<_>>()
                .join(","),
        );
    // The fence of this lock, or none: a REDLOCK_FENCE inherited from an
    // enclosing lock (redlock inside redlock) is not this lock's fence.
    match guard.fence() {
        Some(fence) => cmd.env("REDLOCK_FENCE", fence.get().to_string()),
        None => cmd.env_remove("REDLOCK_FENCE"),
    };
    // A group of its own, led by CMD: signals reach every process CMD
    // starts, and a terminal's Ctrl-C reaches either CMD's group (when it
    // has the terminal) or redlock's, never both.
    cmd.as_std_mut().process_group(0);
    if let Some(terminal) = terminal {
        terminal.hand_to_child(cmd.as_std_mut());
    }
    // If redlock dies without a chance to clean up (SIGKILL), nobody
    // extends the lock any more: CMD is told to stop (CMD itself: the
    // kernel's parent-death signal reaches one process, not its group).
    sys::die_with_parent(cmd.as_std_mut(), rustix::process::Signal::TERM);
    cmd.spawn().map_err(|e| {
        let shown = quote_input(&program.to_string_lossy());
        match e.kind() {
            ErrorKind::NotFound => Failure::new(
                EX_NOT_FOUND,
                format_args!("cannot run {shown}: command not found"),
            ),
            ErrorKind::PermissionDenied => Failure::new(
                EX_CANNOT_EXECUTE,
                format_args!("cannot run {shown}: permission denied"),
            ),
            _ => Failure::new(EX_CANNOT_EXECUTE, format_args!("cannot run {shown}: {e}")),
        }
    })
}

/// CMD's status as a shell reports it: its exit code, or 128+N when a
/// signal N killed it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(EX_SOFTWARE),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(EX_SOFTWARE),
        (None, None) => EX_SOFTWARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_odd_counts_from_three_go_unwarned() {
        for n in [3, 5, 7] {
            assert_eq!(fault_tolerance_warning(n), None, "{n}");
        }
        for n in [1, 2, 4, 6] {
            let w = fault_tolerance_warning(n).expect("a warning");
            assert!(w.starts_with(&format!("{n} master")), "{w}");
        }
        let w = fault_tolerance_warning(4).expect("a warning");
        assert!(
            w.contains("tolerate 1 failure(s), no more than 3 would"),
            "{w}"
        );
    }

    #[test]
    fn statuses_like_a_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(sys::SIGKILL)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(sys::SIGTERM)), 143);
    }
}
