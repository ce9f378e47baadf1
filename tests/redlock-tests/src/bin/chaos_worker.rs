//! `chaos_worker`: one contending worker of the chaos run
//! (`tests/chaos.rs`), as its own OS process so the fault scheduler can
//! freeze it with SIGSTOP.
//!
//! Until its run time is over, it loops:
//!
//! 1. acquire the resource on the masters (retrying until the wait
//!    deadline);
//! 2. check the lock is still valid, with a margin, before acting;
//! 3. the protected action: read the counter (on a separate Redis that is
//!    not a master and is never faulted), work a little while, check
//!    validity again, and only then write the counter plus one; if validity
//!    ran out, abandon the write (`abort ... expired-before-commit`);
//! 4. release.
//!
//! Every step is logged with the system-wide monotonic clock (see
//! `redlock_tests::events` for the format), one unbuffered line at a time,
//! so a paused or killed worker leaves a usable log.
//!
//! With `--fenced` the lock is acquired with a fencing token and the
//! counter is a fenced store (see [`FENCED_READ`] and [`FENCED_WRITE`]):
//! a hash holding the value and the highest fence that has touched it.
//! Every access carries the lock's fence, and the store refuses one whose
//! fence is lower than the highest it has seen (`abort ... fenced-out` for
//! a refused write, `fenced-out-read` for a refused read). `--recheck off`
//! drops the validity check before the write: the whole action, read to
//! write, is then a window between the last validity check and the write,
//! which is where a pause makes any lock unsafe and only the fence helps.
//!
//! ```text
//! chaos_worker --masters URL,URL,... --counter 127.0.0.1:PORT --resource NAME
//!              --ttl-ms MS --run-secs S --worker-id N --log PATH
//!              --restart-guard on|off
//!              [--fenced] [--recheck on|off] [--counter-key KEY]
//!              [--work-ms MIN-MAX] [--margin-ms MS] [--master-timeout-ms MS]
//!              [--wait-ms MS] [--retry-ms BASE-MAX]
//! ```
//!
//! Exit status: 0 after a complete run, 2 for bad arguments or a manager
//! that could not be built, 3 when the log or the counter failed (the run
//! cannot be judged).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rand::Rng;
use redlock_core::{AcquireError, Fence, Lock, RetryPolicy};
use redlock_testing::{Connection, Reply};
use redlock_tests::events::{Event, EventLog};
use redlock_tests::sys::{instant_to_ns, monotonic_ns};

/// The counter's key on the counter Redis, unless `--counter-key` says
/// otherwise.
const COUNTER_KEY: &str = "chaos:counter";

/// The fenced counter's read: `KEYS[1]` = the counter's hash, `ARGV[1]` =
/// the reader's fence. Refuses (`{0}`) a fence lower than the
/// highest the counter has seen; otherwise records the reader's fence as
/// the highest and returns `{1, value}`.
///
/// Why the read, and not only the write, carries the fence: the action is
/// a read-modify-write. With a fence check on the write alone (the script
/// of `docs/safety.md`, made for blind writes), a stale holder A paused
/// after its read can still write while its successor B has read but not
/// yet written (B's fence is not known to the store yet); B then writes
/// its increment over A's, computed from the same value: one update lost
/// (measured: without the `HSET` below, a 20 s fenced run lost 2 updates
/// to 11 freezes). Recording the fence at the read makes the store refuse A's write from
/// the moment B has read. The alternative, a compare-and-set on the value
/// read, would keep updates on its own, fence or no fence: a chaos run
/// with it would pass even if the lock handed out a fence twice, so it
/// could not check the fences.
const FENCED_READ: &str = r#"
local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local fence = tonumber(ARGV[1])
if fence < seen then
  return {0}
end
if fence > seen then
  redis.call('HSET', KEYS[1], 'fence', ARGV[1])
end
return {1, redis.call('HGET', KEYS[1], 'value') or '0'}
"#;

/// The fenced counter's write, the compare-and-set of `docs/safety.md`:
/// `KEYS[1]` = the counter's hash, `ARGV[1]` = the writer's fence,
/// `ARGV[2]` = the new value. Returns 1 when written, 0 when refused
/// because a higher fence has touched the counter since (a later holder
/// read or wrote it).
const FENCED_WRITE: &str = r#"
local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) < seen then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
return 1
"#;

/// Parsed command line.
#[derive(Debug)]
struct Args {
    masters: Vec<String>,
    counter: SocketAddr,
    resource: String,
    ttl: Duration,
    run: Duration,
    worker: usize,
    log: PathBuf,
    guard: bool,
    fenced: bool,
    recheck: bool,
    counter_key: String,
    work: (u64, u64),
    margin: Duration,
    master_timeout: Duration,
    wait: Duration,
    retry: (u64, u64),
}

fn range(v: &str) -> Result<(u64, u64), String> {
    let (a, b) = v.split_once('-').unwrap_or((v, v));
    let a: u64 = a.parse().map_err(|_| format!("bad range {v:?}"))?;
    let b: u64 = b.parse().map_err(|_| format!("bad range {v:?}"))?;
    if a > b {
        return Err(format!("inverted range {v:?}"));
    }
    Ok((a, b))
}

fn ms(v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("bad milliseconds {v:?}"))
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut masters = None;
        let mut counter = None;
        let mut resource = None;
        let mut ttl = None;
        let mut run = None;
        let mut worker = None;
        let mut log = None;
        let mut guard = None;
        let mut fenced = false;
        let mut recheck = true;
        let mut counter_key = COUNTER_KEY.to_owned();
        let mut work = (2, 8);
        let mut margin = Duration::from_millis(100);
        let mut master_timeout = Duration::from_millis(50);
        let mut wait = Duration::from_secs(2);
        let mut retry = (10, 100);
        let on_off = |flag: &str, value: &str| match value {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(format!("{flag} on|off, not {value:?}")),
        };
        while let Some(flag) = it.next() {
            if flag == "--fenced" {
                fenced = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--masters" => masters = Some(value.split(',').map(str::to_owned).collect()),
                "--counter" => {
                    counter = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad address {value:?}"))?,
                    )
                }
                "--resource" => resource = Some(value),
                "--ttl-ms" => ttl = Some(ms(&value)?),
                "--run-secs" => {
                    run = Some(Duration::from_secs(
                        value
                            .parse()
                            .map_err(|_| format!("bad seconds {value:?}"))?,
                    ))
                }
                "--worker-id" => {
                    worker = Some(value.parse().map_err(|_| format!("bad id {value:?}"))?)
                }
                "--log" => log = Some(PathBuf::from(value)),
                "--restart-guard" => guard = Some(on_off(&flag, &value)?),
                "--recheck" => recheck = on_off(&flag, &value)?,
                "--counter-key" => counter_key = value,
                "--work-ms" => work = range(&value)?,
                "--margin-ms" => margin = ms(&value)?,
                "--master-timeout-ms" => master_timeout = ms(&value)?,
                "--wait-ms" => wait = ms(&value)?,
                "--retry-ms" => retry = range(&value)?,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        let need = |name: &str| format!("missing {name}");
        Ok(Self {
            masters: masters.ok_or_else(|| need("--masters"))?,
            counter: counter.ok_or_else(|| need("--counter"))?,
            resource: resource.ok_or_else(|| need("--resource"))?,
            ttl: ttl.ok_or_else(|| need("--ttl-ms"))?,
            run: run.ok_or_else(|| need("--run-secs"))?,
            worker: worker.ok_or_else(|| need("--worker-id"))?,
            log: log.ok_or_else(|| need("--log"))?,
            // Required: the restart guard's default is about to change, and
            // a chaos run must say which one it tests.
            guard: guard.ok_or_else(|| need("--restart-guard"))?,
            fenced,
            recheck,
            counter_key,
            work,
            margin,
            master_timeout,
            wait,
            retry,
        })
    }
}

/// Why a run stopped early.
enum Fatal {
    /// Bad arguments or configuration.
    Setup(String),
    /// The log or the counter failed: the run cannot be judged.
    Broken(String),
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chaos_worker: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos_worker: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal::Setup(e)) => {
            eprintln!("chaos_worker {}: {e}", args.worker);
            ExitCode::from(2)
        }
        Err(Fatal::Broken(e)) => {
            eprintln!("chaos_worker {}: {e}", args.worker);
            ExitCode::from(3)
        }
    }
}

/// The worker's log, failing the run on any write error.
struct Log(EventLog);

impl Log {
    fn log(&mut self, e: Event) -> Result<(), Fatal> {
        self.0
            .log(&e)
            .map_err(|err| Fatal::Broken(format!("writing the event log: {err}")))
    }
}

/// The counter Redis, through the harness' own blocking RESP client: a
/// round trip on loopback, and independent from the client under test.
struct Counter {
    conn: Connection,
    key: String,
}

impl Counter {
    fn connect(addr: SocketAddr, key: &str) -> Result<Self, String> {
        // Generous: the counter is never faulted, and a worker frozen
        // mid-call must not see a timeout when it resumes.
        let conn = Connection::connect(addr, Duration::from_secs(30))
            .map_err(|e| format!("connecting to the counter: {e}"))?;
        Ok(Self {
            conn,
            key: key.to_owned(),
        })
    }

    fn get(&mut self) -> Result<i64, String> {
        let key = &self.key;
        match self.conn.call(&["GET", key]) {
            Ok(Reply::Bulk(None)) => Ok(0),
            Ok(r) => r
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("GET {key}: unexpected reply {r:?}")),
            Err(e) => Err(format!("GET {key}: {e}")),
        }
    }

    fn set(&mut self, value: i64) -> Result<(), String> {
        let key = &self.key;
        match self.conn.call(&["SET", key, &value.to_string()]) {
            Ok(r) if r.is_ok() => Ok(()),
            Ok(r) => Err(format!("SET {key}: unexpected reply {r:?}")),
            Err(e) => Err(format!("SET {key}: {e}")),
        }
    }

    /// The fenced read: `Some(value)`, or `None` when the store refused
    /// the fence.
    fn fenced_get(&mut self, fence: Fence) -> Result<Option<i64>, String> {
        let key = &self.key;
        let reply = self
            .conn
            .call(&["EVAL", FENCED_READ, "1", key, &fence.to_string()])
            .map_err(|e| format!("fenced read of {key}: {e}"))?;
        let bad = || format!("fenced read of {key}: unexpected reply {reply:?}");
        let parts = reply.as_array().ok_or_else(bad)?;
        match parts.first().and_then(Reply::as_int) {
            Some(1) => parts
                .get(1)
                .and_then(Reply::as_str)
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(bad),
            Some(0) => Ok(None),
            _ => Err(bad()),
        }
    }

    /// The fenced write: whether the store accepted it.
    fn fenced_set(&mut self, fence: Fence, value: i64) -> Result<bool, String> {
        let key = &self.key;
        let args = [
            "EVAL",
            FENCED_WRITE,
            "1",
            key,
            &fence.to_string(),
            &value.to_string(),
        ];
        match self.conn.call(&args) {
            Ok(r) => match r.as_int() {
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                _ => Err(format!("fenced write of {key}: unexpected reply {r:?}")),
            },
            Err(e) => Err(format!("fenced write of {key}: {e}")),
        }
    }
}

/// One word for why `acquire` gave up.
fn failure_reason(e: &AcquireError) -> &'static str {
    match e {
        AcquireError::Deadline { last, .. } => match **last {
            AcquireError::ValidityExhausted { .. } => "deadline-validity",
            _ if last.is_contended() => "deadline-contended",
            _ => "deadline-no-quorum",
        },
        AcquireError::NoQuorum { .. } if e.is_contended() => "contended",
        AcquireError::NoQuorum { .. } => "no-quorum",
        AcquireError::ValidityExhausted { .. } => "validity-exhausted",
        AcquireError::FenceNotConfirmed { .. } => "fence-not-confirmed",
        AcquireError::FencesExhausted => "fences-exhausted",
        _ => "other",
    }
}

/// Whether the lock has more than `margin` of validity left: the check
/// before every side effect. The margin leaves room for the effect itself
/// (a round trip to the counter) to complete within the validity.
fn still_valid(lock: &Lock, margin: Duration) -> bool {
    lock.remaining_at(redlock_tokio::now()) > margin
}

async fn run(args: &Args) -> Result<(), Fatal> {
    let mut log = Log(EventLog::create(&args.log)
        .map_err(|e| Fatal::Broken(format!("creating {}: {e}", args.log.display())))?);
    log.log(Event::Start {
        t: monotonic_ns(),
        pid: std::process::id(),
    })?;
    let deadline = monotonic_ns().saturating_add(u64::try_from(args.run.as_nanos()).unwrap_or(0));
    let mut counter = Counter::connect(args.counter, &args.counter_key).map_err(Fatal::Broken)?;
    let rl = redlock_tests::builder(args.masters.clone())
        // Every worker uses the same TTL: that is the deployment's maximum,
        // and so the restart guard's window.
        .settings(|s| {
            s.ttl(args.ttl)
                .master_timeout(args.master_timeout)
                .retry(RetryPolicy::unbounded(
                    Duration::from_millis(args.retry.0),
                    Duration::from_millis(args.retry.1),
                ))
                .wait(Some(args.wait))
                .max_ttl(args.ttl)
                .fencing(args.fenced)
                .danger_disable_restart_guard(!args.guard)
        })
        .connect_core()
        .await
        .map_err(|e| Fatal::Setup(format!("connecting to the masters: {e}")))?;
    let mut rng = rand::thread_rng();

    while monotonic_ns() < deadline {
        let lock = match rl.acquire(args.resource.as_str()).await {
            Ok(lock) => lock,
            Err(e @ AcquireError::Invalid(_)) => return Err(Fatal::Setup(e.to_string())),
            Err(e) => {
                log.log(Event::AcquireFailed {
                    t: monotonic_ns(),
                    reason: failure_reason(&e).into(),
                })?;
                continue;
            }
        };
        let t = monotonic_ns();
        let fence = lock.fence();
        log.log(Event::Acquired {
            t,
            valid_until: instant_to_ns(lock.valid_until()),
            fence: fence.map(Fence::get),
        })?;
        if args.fenced && fence.is_none() {
            // Judged by its fences, the run would have none to judge.
            return Err(Fatal::Broken("a fenced acquire returned no fence".into()));
        }
        let outcome = act(args, &lock, &mut counter, &mut log, &mut rng).await;
        log.log(Event::Releasing { t: monotonic_ns() })?;
        let ok = rl.release(lock).await.is_ok();
        log.log(Event::Released {
            t: monotonic_ns(),
            ok,
        })?;
        outcome?;
        // A breath between cycles, so the releasing worker does not always
        // win the next race on its warm connections.
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..=3_000))).await;
    }
    rl.quit().await;
    log.log(Event::End { t: monotonic_ns() })
}

/// The protected action: a read-modify-write of the counter, with the
/// validity checked before acting and (unless `--recheck off`) again
/// right before the write; with a fence, both the read and the write
/// carry it.
async fn act(
    args: &Args,
    lock: &Lock,
    counter: &mut Counter,
    log: &mut Log,
    rng: &mut impl Rng,
) -> Result<(), Fatal> {
    if !still_valid(lock, args.margin) {
        return log.log(Event::Abort {
            t: monotonic_ns(),
            reason: "expired-before-check".into(),
        });
    }
    log.log(Event::CheckOk { t: monotonic_ns() })?;
    let fence = lock.fence();
    let value = match fence {
        None => counter.get().map_err(|e| counter_error(log, e))?,
        Some(f) => match counter.fenced_get(f).map_err(|e| counter_error(log, e))? {
            Some(value) => value,
            None => {
                return log.log(Event::Abort {
                    t: monotonic_ns(),
                    reason: "fenced-out-read".into(),
                })
            }
        },
    };
    log.log(Event::Read {
        t: monotonic_ns(),
        value,
    })?;
    // The "work" between read and write widens the window in which a
    // second holder would interleave.
    let work = rng.gen_range(args.work.0..=args.work.1);
    tokio::time::sleep(Duration::from_millis(work)).await;
    if args.recheck {
        if !still_valid(lock, args.margin) {
            return log.log(Event::Abort {
                t: monotonic_ns(),
                reason: "expired-before-commit".into(),
            });
        }
        log.log(Event::RecheckOk { t: monotonic_ns() })?;
    }
    let written = match fence {
        None => {
            counter.set(value + 1).map_err(|e| counter_error(log, e))?;
            true
        }
        Some(f) => counter
            .fenced_set(f, value + 1)
            .map_err(|e| counter_error(log, e))?,
    };
    if !written {
        return log.log(Event::Abort {
            t: monotonic_ns(),
            reason: "fenced-out".into(),
        });
    }
    log.log(Event::Commit {
        t: monotonic_ns(),
        value: value + 1,
        fence: fence.map(Fence::get),
    })
}

/// Logs a counter failure (the action's outcome is unknown) and turns it
/// into a fatal error.
fn counter_error(log: &mut Log, message: String) -> Fatal {
    let _ = log.log(Event::CounterError {
        t: monotonic_ns(),
        message: message.clone(),
    });
    Fatal::Broken(message)
}
