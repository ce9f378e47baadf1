//! Spawning one `redis-server` and waiting until *it* answers: free ports,
//! private directories, log excerpts for failures.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::resp::{Connection, Reply};
use crate::{Error, Persistence, ServerOptions};

/// How long a server may take to answer after being spawned.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports a start tries: another process may take a port
/// between our probe and the server's bind.
const START_ATTEMPTS: usize = 5;
/// Timeout of the readiness probe while starting.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Log file names inside the server directory.
pub(crate) const REDIS_LOG: &str = "redis.log";
const STDIO_LOG: &str = "stdio.log";

/// Ports held by live servers of this process, so that two servers started
/// concurrently in this process never pick the same port and a killed
/// server's port is not handed out again before its `restart`.
static RESERVED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Locks `m`, ignoring poison (see the comment inside).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our locks leaves consistent data; keep
    // going (Drop must work during unwinding).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reserves `port` for a server of this process; `false` if one has it.
fn reserve_port(port: u16) -> bool {
    lock(&RESERVED_PORTS)
        .get_or_insert_with(HashSet::new)
        .insert(port)
}

/// Gives `port` back (the server was dropped).
pub(crate) fn release_port(port: u16) {
    if let Some(set) = lock(&RESERVED_PORTS).as_mut() {
        set.remove(&port);
    }
}

/// A loopback port that was free a moment ago and is not used by another
/// server of this process (now reserved for the caller).
fn pick_free_port() -> io::Result<u16> {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if reserve_port(port) {
            return Ok(port);
        }
    }
}

/// Locates `redis-server` on `PATH`.
///
/// # Errors
///
/// [`Error::RedisServerNotFound`] (whose message tells how to install it)
/// when it is missing. [`RedisServer::start`](crate::RedisServer::start)
/// panics with that message: tests never skip silently.
pub fn redis_server_path() -> Result<PathBuf, Error> {
    which::which("redis-server").map_err(|_| Error::RedisServerNotFound)
}

/// Why a spawn attempt did not produce a ready server.
pub(crate) enum StartFailure {
    /// The process exited; `port_busy` if its log says the port was taken.
    Exited { status: ExitStatus, port_busy: bool },
    /// It did not become ready before the deadline (it has been killed).
    Timeout,
    /// `spawn` itself failed.
    Spawn(io::Error),
}

impl StartFailure {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Exited { status, .. } => format!("redis-server exited early ({status})"),
            Self::Timeout => {
                format!("redis-server did not answer PING within {STARTUP_TIMEOUT:?} (killed it)")
            }
            Self::Spawn(e) => format!("spawning redis-server failed: {e}"),
        }
    }

    /// The crate error for this failure on `port`, with the attempt's log.
    pub(crate) fn into_error(self, port: u16, dir: &Path, mark: LogMark) -> Error {
        match self {
            Self::Spawn(e) => Error::Setup(e),
            other => Error::Start {
                port,
                reason: other.describe(),
                log: log_report(dir, mark),
            },
        }
    }
}

/// Byte offsets into the log files, to look only at what one attempt wrote.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogMark {
    redis: u64,
    stdio: u64,
}

impl LogMark {
    pub(crate) fn now(dir: &Path) -> Self {
        let len = |name| fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
        Self {
            redis: len(REDIS_LOG),
            stdio: len(STDIO_LOG),
        }
    }
}

pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    let mut out = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut out);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The log output of one attempt, for error messages.
pub(crate) fn log_report(dir: &Path, mark: LogMark) -> String {
    format!(
        "--- {REDIS_LOG} (tail) ---\n{}\n--- stdout/stderr (tail) ---\n{}",
        tail(&read_from(&dir.join(REDIS_LOG), mark.redis), 40),
        tail(&read_from(&dir.join(STDIO_LOG), mark.stdio), 40),
    )
}

fn port_busy_in_log(dir: &Path, mark: LogMark) -> bool {
    let text =
        read_from(&dir.join(REDIS_LOG), mark.redis) + &read_from(&dir.join(STDIO_LOG), mark.stdio);
    text.contains("Address already in use") || text.contains("Failed listening on port")
}

/// A private directory for the server on `port`, removed on drop.
fn new_dir(port: u16) -> io::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("redlock-testing-{port}-"))
        .tempdir()
}

pub(crate) fn build_args(port: u16, dir: &Path, opts: &ServerOptions) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--daemonize".into(),
        "no".into(),
        "--protected-mode".into(),
        "no".into(),
        "--logfile".into(),
        dir.join(REDIS_LOG).display().to_string(),
        "--save".into(),
        String::new(),
    ];
    match opts.persistence {
        Persistence::None => args.extend(["--appendonly".into(), "no".into()]),
        Persistence::AppendFsyncAlways => args.extend([
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
        ]),
    }
    if let Some(pw) = &opts.password {
        args.extend(["--requirepass".into(), pw.clone()]);
    }
    args.extend(opts.extra_args.iter().cloned());
    args
}

/// Spawns the process (from the calling thread: the parent-death signal,
/// when asked for, is tied to it).
pub(crate) fn spawn(
    bin: &Path,
    port: u16,
    dir: &Path,
    opts: &ServerOptions,
) -> Result<Child, StartFailure> {
    let run = || -> io::Result<Child> {
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(STDIO_LOG))?;
        let mut cmd = Command::new(bin);
        cmd.args(build_args(port, dir, opts))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdio.try_clone()?)
            .stderr(stdio);
        if let Some(sig) = opts.parent_death_signal {
            crate::sys::die_with_parent(&mut cmd, sig);
        }
        cmd.spawn()
    };
    run().map_err(StartFailure::Spawn)
}

/// Asks the server on `port` who it is; `Some(pid)` once it is fully loaded
/// and answers `PING`.
fn probe(port: u16, password: Option<&str>) -> Option<u32> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let mut conn = Connection::connect(addr, PROBE_TIMEOUT).ok()?;
    if let Some(pw) = password {
        conn.auth(pw).ok()?;
    }
    let info = conn.call(&["INFO", "server"]).ok()?;
    let pid = info
        .as_str()?
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse::<u32>()
        .ok()?;
    // PING is refused with -LOADING while the AOF is being replayed.
    match conn.call(&["PING"]).ok()? {
        Reply::Simple(s) if s == "PONG" => Some(pid),
        _ => None,
    }
}

/// Waits until the spawned `child` (checked by pid, not just "something on
/// that port") answers; kills and reaps it if it does not in time.
pub(crate) fn wait_ready(
    mut child: Child,
    port: u16,
    dir: &Path,
    opts: &ServerOptions,
    mark: LogMark,
) -> Result<Child, StartFailure> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut sleep = Duration::from_millis(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(StartFailure::Exited {
                    status,
                    port_busy: port_busy_in_log(dir, mark),
                })
            }
            Ok(None) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartFailure::Timeout);
            }
        }
        if probe(port, opts.password.as_deref()) == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartFailure::Timeout);
        }
        thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    }
}

/// A server spawned on a reserved port, not yet known to be ready.
///
/// Dropping it before [`ready`](Self::ready) kills and reaps the process
/// and releases the port, so that an early return leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Launched {
    port: u16,
    /// Both `Some` until `ready` takes them.
    dir: Option<TempDir>,
    child: Option<Child>,
}

/// A ready server: its reserved port, its directory and its process.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) port: u16,
    pub(crate) dir: TempDir,
    pub(crate) child: Child,
}

impl Launched {
    /// Reserves a free port, creates a directory and spawns the server
    /// there, without waiting for it: several can start at once.
    pub(crate) fn spawn(bin: &Path, opts: &ServerOptions) -> Result<Self, Error> {
        let port = pick_free_port().map_err(Error::Setup)?;
        let mut launched = Self {
            port,
            dir: None,
            child: None,
        };
        let dir = new_dir(port).map_err(Error::Setup)?;
        let child = spawn(bin, port, dir.path(), opts)
            .map_err(|failure| failure.into_error(port, dir.path(), LogMark::now(dir.path())))?;
        launched.dir = Some(dir);
        launched.child = Some(child);
        Ok(launched)
    }

    /// Waits until the server answers. When its port was taken meanwhile,
    /// starts it again on another one, up to a few times.
    ///
    /// On error the port is released and the directory removed.
    pub(crate) fn ready(mut self, bin: &Path, opts: &ServerOptions) -> Result<Ready, Error> {
        let mut attempt = 1;
        loop {
            let (Some(dir), Some(child)) = (self.dir.take(), self.child.take()) else {
                unreachable!("a Launched holds its directory and child until now");
            };
            let port = self.port;
            // A fresh directory per attempt: its logs start empty.
            let mark = LogMark { redis: 0, stdio: 0 };
            match wait_ready(child, port, dir.path(), opts, mark) {
                Ok(child) => {
                    // Ours now, with the port: `self` must not release it.
                    self.port = 0;
                    return Ok(Ready { port, dir, child });
                }
                Err(failure) => {
                    let busy = matches!(
                        failure,
                        StartFailure::Exited {
                            port_busy: true,
                            ..
                        }
                    );
                    if !busy || attempt >= START_ATTEMPTS {
                        let mut err = failure.into_error(port, dir.path(), mark);
                        if let Error::Start { reason, .. } = &mut err {
                            if busy {
                                *reason = format!(
                                    "the port kept being taken ({attempt} attempts): {reason}"
                                );
                            }
                        }
                        // `self` drops here and releases the port.
                        return Err(err);
                    }
                    // Someone grabbed the port between our probe and the
                    // bind: try another one.
                    attempt += 1;
                    drop(dir);
                    self = Self::spawn(bin, opts)?;
                }
            }
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: never started serving anyone. `Child::kill` signals
            // only our own unreaped child.
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.port != 0 {
            release_port(self.port);
        }
    }
}
