//! The fault scenarios, on the quorum configuration: the last master
//! slowed (reached through an in-process proxy adding a delay each way) or
//! paused (`SIGSTOP` for the scenario, `SIGCONT` after).
//!
//! Each scenario connects a manager of its own, so the others' connections
//! never see the fault, and runs the sequential cycle workload against it.
//! A quorum that decides without its slowest member should make both
//! cycles cost what the healthy quorum's cost; the report shows the ratio.
//!
//! Pausing a process is only done to a server this `redlock` started
//! (`--spawn`): it checks that the master's pid (from `INFO server`) is a
//! child of its own before it sends anything.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use redlock_testing::{Mode, Proxy};
use serde::Serialize;

use super::hist::{Latency, Span};
use super::workload::{cycle_loop, Cycles, Workload};
use super::Locks;
use crate::cli::{BenchArgs, Global};

/// Longest a fault scenario may run: the cycles stop there, counted as far
/// as they got. Far above what a healthy run takes.
const FAULT_CAP: Duration = Duration::from_secs(30);

/// How long a fault scenario waits for its manager to reach every master
/// (one may join after a quorum was usable) before measuring anyway.
const SETTLE: Duration = Duration::from_secs(5);

/// The fault scenarios' results (`FAULTS` in the schema).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Faults {
    /// Address of the master that is slowed, then paused (the last one).
    pub(crate) master: String,
    /// One-way delay the proxy adds in front of it.
    pub(crate) slow_one_way_ms: f64,
    pub(crate) slowed: Option<Workload>,
    /// Why `slowed` is null.
    pub(crate) slowed_skipped: Option<String>,
    pub(crate) paused: Option<Workload>,
    /// Why `paused` is null.
    pub(crate) paused_skipped: Option<String>,
}

/// Cycle histograms of the fault scenarios, for the plot.
#[derive(Debug, Default)]
pub(crate) struct FaultCurves {
    pub(crate) slowed: Option<Latency>,
    pub(crate) paused: Option<Latency>,
}

/// Runs both scenarios against the last of `urls`.
pub(crate) async fn run(
    global: &Global,
    urls: &[String],
    spawned_pids: &[u32],
    master: String,
    args: &BenchArgs,
    run_id: &str,
    progress: &ProgressBar,
) -> (Faults, FaultCurves) {
    let mut curves = FaultCurves::default();
    // A scenario that ran gives its workload and curve; one that could
    // not run gives the reason, and its share of the progress bar.
    let split =
        |outcome: Result<(Workload, Latency), String>, curve: &mut Option<Latency>| match outcome {
            Ok((w, l)) => {
                *curve = Some(l);
                (Some(w), None)
            }
            Err(why) => {
                progress.inc(args.iterations);
                (None, Some(why))
            }
        };
    progress.set_message("faults, slowed");
    let (slowed, slowed_skipped) = split(
        slowed(global, urls, args, run_id, progress).await,
        &mut curves.slowed,
    );
    progress.set_message("faults, paused");
    let (paused, paused_skipped) = split(
        paused(global, urls, spawned_pids, args, run_id, progress).await,
        &mut curves.paused,
    );
    let faults = Faults {
        master,
        slow_one_way_ms: args.slow_by.as_secs_f64() * 1000.0,
        slowed,
        slowed_skipped,
        paused,
        paused_skipped,
    };
    (faults, curves)
}

/// The last master behind a [`Proxy`] adding `--slow-by` each way.
async fn slowed(
    global: &Global,
    urls: &[String],
    args: &BenchArgs,
    run_id: &str,
    progress: &ProgressBar,
) -> Result<(Workload, Latency), String> {
    let (last, others) = urls.split_last().ok_or("no masters")?;
    let hostport = authority_host_port(last)
        .ok_or_else(|| "cannot read host:port from the last master's URL".to_owned())?
        .to_owned();
    // Blocking name resolution (the URL may name a host), off the workers.
    let target = tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        hostport.to_socket_addrs().ok().and_then(|mut a| a.next())
    })
    .await
    .ok()
    .flatten()
    .ok_or("cannot resolve the last master's address")?;
    let proxy = Proxy::start_with_mode(target, Mode::Delay(args.slow_by))
        .map_err(|e| format!("cannot start the delaying proxy: {e}"))?;
    let url = with_host_port(last, &proxy.addr().to_string())
        .ok_or("cannot rewrite the last master's URL")?;
    let mut list = others.to_vec();
    list.push(url);
    let m = connect(global, &list, args).await?;
    let result = measure(&m, args, &format!("bench:{run_id}:slowed"), progress).await;
    finish(&m).await;
    // The proxy goes after the manager (its connections close first).
    drop(proxy);
    result
}

/// The last master stopped with `SIGSTOP` while the cycles run.
async fn paused(
    global: &Global,
    urls: &[String],
    spawned_pids: &[u32],
    args: &BenchArgs,
    run_id: &str,
    progress: &ProgressBar,
) -> Result<(Workload, Latency), String> {
    let m = connect(global, urls, args).await?;
    let result = async {
        // The spawner knows its servers' pids: no command outside the
        // lock protocol is needed to find the one to pause.
        let pid = spawned_pids
            .get(urls.len().wrapping_sub(1))
            .copied()
            .filter(|&pid| stop::is_our_child(pid));
        let Some(pid) = pid else {
            return Err(
                "the last master is not a redis-server this redlock started (--spawn); \
                 only its own children are paused"
                    .to_owned(),
            );
        };
        let base = format!("bench:{run_id}:paused");
        settle(&m, &base, args.warmup).await;
        let stopped = stop::Stopped::new(pid).map_err(|e| format!("cannot pause it: {e}"))?;
        let result = timed(&m, &base, args, progress).await;
        // Resumed before the manager's background releases are awaited:
        // those to the paused master then answer instead of timing out.
        drop(stopped);
        result
    }
    .await;
    finish(&m).await;
    result
}

async fn connect(global: &Global, urls: &[String], args: &BenchArgs) -> Result<Locks, String> {
    crate::connect(global, urls, args.ttl)
        .await
        .map(Locks::new)
        .map_err(|f| f.message)
}

/// Warm-up and settle, then the timed cycles.
async fn measure(
    m: &Locks,
    args: &BenchArgs,
    base: &str,
    progress: &ProgressBar,
) -> Result<(Workload, Latency), String> {
    settle(m, base, args.warmup).await;
    timed(m, base, args, progress).await
}

async fn timed(
    m: &Locks,
    base: &str,
    args: &BenchArgs,
    progress: &ProgressBar,
) -> Result<(Workload, Latency), String> {
    let how = Cycles {
        fenced: false,
        deadline: Instant::now().checked_add(FAULT_CAP),
    };
    let names = {
        let base = base.to_owned();
        move |i: u64| format!("{base}:{i}")
    };
    let span = Span::start();
    // On a runtime worker, like the healthy sequential workload.
    let h = tokio::spawn(cycle_loop(
        m.clone(),
        names,
        args.iterations,
        how,
        progress.clone(),
    ))
    .await
    .map_err(|e| format!("benchmark task failed: {e}"))?;
    Ok(h.into_workload(1, &span))
}

/// `warmup` unmeasured cycles, then cycles released with `release_all`
/// until one is confirmed by every master (at most [`SETTLE`]): a master
/// that joined after a quorum was usable is then in, and its connection
/// warm, before the fault starts.
async fn settle(m: &Locks, base: &str, warmup: u64) {
    let core = m.core();
    for i in 0..warmup {
        if let Ok(lock) = core.try_acquire(format!("{base}:warmup:{i}")).await {
            let _ = core.release(lock).await;
        }
    }
    let deadline = Instant::now() + SETTLE;
    for i in 0u64.. {
        if let Ok(lock) = core.try_acquire(format!("{base}:settle:{i}")).await {
            if core.release_all(lock).await.is_ok() {
                return;
            }
        }
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) for the manager's background releases, so that no key
/// of the benchmark outlives it.
async fn finish(m: &Locks) {
    let _ = m.shutdown(Duration::from_secs(2)).await;
}

/// Where `host:port` sits in a `redis://[user:password@]host:port[/db]`
/// URL: byte offsets, `None` when there is none.
fn host_port_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = start + rest.find(['/', '?']).unwrap_or(rest.len());
    let host = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    (host < end).then_some((host, end))
}

/// `host:port` of a master URL.
fn authority_host_port(url: &str) -> Option<&str> {
    host_port_span(url).map(|(a, b)| &url[a..b])
}

/// `url` with its `host:port` replaced; scheme, credentials and database
/// kept.
fn with_host_port(url: &str, host_port: &str) -> Option<String> {
    let (a, b) = host_port_span(url)?;
    Some(format!("{}{host_port}{}", &url[..a], &url[b..]))
}

/// Stopping and resuming a spawned server.
mod stop {
    use std::io;

    use redlock_testing::{signal, Signal};

    /// Whether `pid` is a child of this process (Linux: from
    /// `/proc/<pid>/stat`; elsewhere never, so nothing is paused). A child
    /// is not reaped until `--spawn`'s drop, so its pid cannot have been
    /// reused by another process in between.
    pub(super) fn is_our_child(pid: u32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the command name, which may contain spaces and ends at the
        // last ')': state, then the parent's pid.
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok())
            == Some(std::process::id())
    }

    /// A server stopped with `SIGSTOP`; dropping it sends `SIGCONT` (also
    /// when the benchmark is interrupted: the run's future is dropped).
    /// The pid is our own child's, checked by the caller with
    /// `is_our_child`.
    #[derive(Debug)]
    pub(super) struct Stopped(u32);

    impl Stopped {
        pub(super) fn new(pid: u32) -> io::Result<Self> {
            signal(pid, Signal::STOP)?;
            Ok(Self(pid))
        }
    }

    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = signal(self.0, Signal::CONT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_found_and_replaced() {
        for (url, hp, rewritten) in [
            (
                "redis://127.0.0.1:7001",
                "127.0.0.1:7001",
                "redis://127.0.0.1:9",
            ),
            ("redis://u:p@h:1/2", "h:1", "redis://u:p@127.0.0.1:9/2"),
            (
                "redis://[::1]:6379/0",
                "[::1]:6379",
                "redis://127.0.0.1:9/0",
            ),
        ] {
            assert_eq!(authority_host_port(url), Some(hp), "{url}");
            assert_eq!(
                with_host_port(url, "127.0.0.1:9").as_deref(),
                Some(rewritten),
                "{url}"
            );
        }
        assert_eq!(authority_host_port("not a url"), None);
        assert_eq!(authority_host_port("redis://u:p@/0"), None);
    }

    #[test]
    fn a_password_that_looks_like_a_host_is_kept() {
        // The replaced part is the one after the last '@'.
        assert_eq!(
            with_host_port("redis://u:h:1@h:1", "127.0.0.1:9").as_deref(),
            Some("redis://u:h:1@127.0.0.1:9")
        );
    }

    #[test]
    fn only_children_count_as_ours() {
        assert!(!stop::is_our_child(std::process::id()));
        assert!(!stop::is_our_child(1) || std::process::id() == 1);
    }
}
