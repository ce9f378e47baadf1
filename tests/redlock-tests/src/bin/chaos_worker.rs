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
//! ```text
//! chaos_worker --masters URL,URL,... --counter 127.0.0.1:PORT --resource NAME
//!              --ttl-ms MS --run-secs S --worker-id N --log PATH
//!              --restart-guard on|off
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
use redlock_core::{AcquireError, Lock, Redlock, RetryPolicy};
use redlock_harness::{Connection, Reply};
use redlock_tests::events::{Event, EventLog};
use redlock_tests::sys::{instant_to_ns, monotonic_ns};

/// The counter's key on the counter Redis.
const COUNTER_KEY: &str = "chaos:counter";

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
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut masters = None;
        let mut counter = None;
        let mut resource = None;
        let mut ttl = None;
        let mut run = None;
        let mut worker = None;
        let mut log = None;
        let mut guard = None;
        let mut work = (2, 8);
        let mut margin = Duration::from_millis(100);
        let mut master_timeout = Duration::from_millis(50);
        let mut wait = Duration::from_secs(2);
        let mut retry = (10, 100);
        while let Some(flag) = it.next() {
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
                "--restart-guard" => {
                    guard = Some(match value.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("--restart-guard on|off, not {value:?}")),
                    })
                }
                "--work-ms" => work = range(&value)?,
                "--margin-ms" => margin = ms(&value)?,
                "--master-timeout-ms" => master_timeout = ms(&value)?,
                "--wait-ms" => wait = ms(&value)?,
                "--retry-ms" => retry = range(&value)?,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        let need = |name: &str| format!("missing {name}");
        Ok(Args {
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
}

impl Counter {
    fn connect(addr: SocketAddr) -> Result<Counter, String> {
        // Generous: the counter is never faulted, and a worker frozen
        // mid-call must not see a timeout when it resumes.
        let conn = Connection::connect(addr, Duration::from_secs(30))
            .map_err(|e| format!("connecting to the counter: {e}"))?;
        Ok(Counter { conn })
    }

    fn get(&mut self) -> Result<i64, String> {
        match self.conn.call(&["GET", COUNTER_KEY]) {
            Ok(Reply::Bulk(None)) => Ok(0),
            Ok(r) => r
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("GET {COUNTER_KEY}: unexpected reply {r:?}")),
            Err(e) => Err(format!("GET {COUNTER_KEY}: {e}")),
        }
    }

    fn set(&mut self, value: i64) -> Result<(), String> {
        match self.conn.call(&["SET", COUNTER_KEY, &value.to_string()]) {
            Ok(r) if r.is_ok() => Ok(()),
            Ok(r) => Err(format!("SET {COUNTER_KEY}: unexpected reply {r:?}")),
            Err(e) => Err(format!("SET {COUNTER_KEY}: {e}")),
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
        _ => "other",
    }
}

/// Whether the lock has more than `margin` of validity left: the check
/// before every side effect. The margin leaves room for the effect itself
/// (a round trip to the counter) to complete within the validity.
fn still_valid(lock: &Lock, margin: Duration) -> bool {
    lock.remaining() > margin
}

async fn run(args: &Args) -> Result<(), Fatal> {
    let mut log = Log(EventLog::create(&args.log)
        .map_err(|e| Fatal::Broken(format!("creating {}: {e}", args.log.display())))?);
    log.log(Event::Start {
        t: monotonic_ns(),
        pid: std::process::id(),
    })?;
    let deadline = monotonic_ns().saturating_add(u64::try_from(args.run.as_nanos()).unwrap_or(0));
    let mut counter = Counter::connect(args.counter).map_err(Fatal::Broken)?;
    let rl = Redlock::builder(args.masters.clone())
        .ttl(args.ttl)
        .master_timeout(args.master_timeout)
        .retry(RetryPolicy::unbounded(
            Duration::from_millis(args.retry.0),
            Duration::from_millis(args.retry.1),
        ))
        .wait(Some(args.wait))
        // Every worker uses the same TTL: that is the deployment's maximum,
        // and so the restart guard's window.
        .max_ttl(args.ttl)
        .danger_disable_restart_guard(!args.guard)
        .connect()
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
        log.log(Event::Acquired {
            t,
            valid_until: instant_to_ns(lock.valid_until()),
        })?;
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
/// validity checked before acting and again right before the write.
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
    let value = counter.get().map_err(|e| counter_error(log, e))?;
    log.log(Event::Read {
        t: monotonic_ns(),
        value,
    })?;
    // The "work" between read and write widens the window in which a
    // second holder would interleave.
    let work = rng.gen_range(args.work.0..=args.work.1);
    tokio::time::sleep(Duration::from_millis(work)).await;
    if !still_valid(lock, args.margin) {
        return log.log(Event::Abort {
            t: monotonic_ns(),
            reason: "expired-before-commit".into(),
        });
    }
    log.log(Event::RecheckOk { t: monotonic_ns() })?;
    counter.set(value + 1).map_err(|e| counter_error(log, e))?;
    log.log(Event::Commit {
        t: monotonic_ns(),
        value: value + 1,
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
