//! One `redis-server` child process.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp::{Connection, Reply};
use crate::{sys, HarnessError};

/// How long a server may take to answer after being spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::restart`] keeps retrying while its port is busy.
const RESTART_PORT_WAIT: Duration = Duration::from_secs(5);
/// How many fresh ports [`RedisServer::start_with`] tries.
const START_ATTEMPTS: usize = 5;
/// Connect/read/write timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the readiness probe while starting.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long pause/resume wait for the kernel to report the new state.
const SIGNAL_SETTLE: Duration = Duration::from_secs(2);
/// Log file names inside the server directory.
const REDIS_LOG: &str = "redis.log";
const STDIO_LOG: &str = "stdio.log";

/// Ports held by live servers of this process, so that two servers started
/// concurrently in this process never pick the same port and a killed
/// server's port is not handed out again before its `restart`.
static RESERVED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Makes temp dir names unique within this process.
static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our locks leaves consistent data; keep
    // going (Drop must work during unwinding).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reserve_port(port: u16) -> bool {
    lock(&RESERVED_PORTS)
        .get_or_insert_with(HashSet::new)
        .insert(port)
}

fn release_port(port: u16) {
    if let Some(set) = lock(&RESERVED_PORTS).as_mut() {
        set.remove(&port);
    }
}

/// A loopback port that was free a moment ago and is not used by another
/// server of this process.
fn pick_free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("binding 127.0.0.1:0 to find a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of a bound listener")
            .port();
        drop(listener);
        if reserve_port(port) {
            return port;
        }
    }
}

/// Locates `redis-server` on `PATH`.
///
/// Returns [`HarnessError::RedisServerNotFound`] (whose message tells how to
/// install it) when it is missing. [`RedisServer::start`] panics with that
/// message: tests never skip silently.
pub fn redis_server_path() -> Result<PathBuf, HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").ok_or(HarnessError::RedisServerNotFound)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .ok_or(HarnessError::RedisServerNotFound)
}

/// Durability settings of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// No persistence at all (`save ""`, `appendonly no`): a restarted server
    /// comes back empty.
    #[default]
    None,
    /// AOF with `appendfsync always`: every acknowledged write survives a
    /// `SIGKILL` + [`RedisServer::restart`].
    AppendFsyncAlways,
}

/// Options for starting a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `requirepass`; the harness' own client authenticates with it.
    pub password: Option<String>,
    /// Persistence mode.
    pub persistence: Persistence,
    /// Extra raw arguments appended to the command line, e.g.
    /// `["--maxmemory-policy", "noeviction"]`.
    pub extra_args: Vec<String>,
}

impl ServerOptions {
    /// Sets `requirepass`.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the persistence mode.
    pub fn with_persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = persistence;
        self
    }

    /// Appends `--name value` to the command line.
    pub fn with_arg(mut self, name: &str, value: &str) -> Self {
        let name = if name.starts_with("--") {
            name.to_owned()
        } else {
            format!("--{name}")
        };
        self.extra_args.push(name);
        self.extra_args.push(value.to_owned());
        self
    }
}

#[derive(Debug)]
struct ProcState {
    /// `None` once killed (and reaped) or after it exited by itself.
    child: Option<Child>,
    /// Pid of the most recently started process.
    pid: u32,
    paused: bool,
}

/// One `redis-server` process on a free loopback port, in its own temp dir.
///
/// Dropping it (also while unwinding from a panic) resumes it if paused,
/// kills it with `SIGKILL`, reaps it and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    opts: ServerOptions,
    bin: PathBuf,
    state: Mutex<ProcState>,
}

/// Why a spawn attempt did not produce a ready server.
enum StartFailure {
    /// The process exited; `port_busy` if its log says the port was taken.
    Exited { status: ExitStatus, port_busy: bool },
    /// It did not become ready before the deadline (it has been killed).
    Timeout,
    /// `spawn` itself failed.
    Spawn(std::io::Error),
}

/// Byte offsets into the log files, to look only at what one attempt wrote.
#[derive(Clone, Copy)]
struct LogMark {
    redis: u64,
    stdio: u64,
}

impl LogMark {
    fn now(dir: &Path) -> LogMark {
        let len = |name| fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
        LogMark {
            redis: len(REDIS_LOG),
            stdio: len(STDIO_LOG),
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut out = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut out);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The log output of one attempt, for panic messages.
fn log_report(dir: &Path, mark: LogMark) -> String {
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

fn new_dir(port: u16) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "redlock-harness-{}-{}-{}",
        std::process::id(),
        n,
        port
    ));
    // A leftover from an earlier process with the same pid: not ours to keep.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating redis temp dir {}: {e}", dir.display()));
    dir
}

fn build_args(port: u16, dir: &Path, opts: &ServerOptions) -> Vec<String> {
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

fn spawn(bin: &Path, port: u16, dir: &Path, opts: &ServerOptions) -> std::io::Result<Child> {
    let stdio = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(STDIO_LOG))?;
    Command::new(bin)
        .args(build_args(port, dir, opts))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdio.try_clone()?)
        .stderr(stdio)
        .spawn()
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

/// Spawns a server and waits until *it* (checked by pid, not just "something
/// on that port") answers.
fn spawn_and_wait(
    bin: &Path,
    port: u16,
    dir: &Path,
    opts: &ServerOptions,
    mark: LogMark,
) -> Result<Child, StartFailure> {
    let mut child = spawn(bin, port, dir, opts).map_err(StartFailure::Spawn)?;
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

fn describe(failure: &StartFailure) -> String {
    match failure {
        StartFailure::Exited { status, .. } => format!("redis-server exited early ({status})"),
        StartFailure::Timeout => {
            format!("redis-server did not answer PING within {STARTUP_TIMEOUT:?} (killed it)")
        }
        StartFailure::Spawn(e) => format!("spawning redis-server failed: {e}"),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RedisServer {
    /// Starts a server with default options (no password, no persistence).
    ///
    /// # Panics
    /// If `redis-server` is not on `PATH`, or it cannot be started within a
    /// few attempts (the message includes its log).
    pub fn start() -> RedisServer {
        RedisServer::start_with(ServerOptions::default())
    }

    /// Starts a server with `opts` on a free loopback port and waits until it
    /// answers `PING`.
    ///
    /// # Panics
    /// If `redis-server` is not on `PATH`, or it cannot be started within a
    /// few attempts (the message includes its log).
    pub fn start_with(opts: ServerOptions) -> RedisServer {
        let bin = redis_server_path().unwrap_or_else(|e| panic!("{e}"));
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = pick_free_port();
            let dir = new_dir(port);
            let mark = LogMark::now(&dir);
            match spawn_and_wait(&bin, port, &dir, &opts, mark) {
                Ok(child) => {
                    let pid = child.id();
                    return RedisServer {
                        port,
                        dir,
                        opts,
                        bin,
                        state: Mutex::new(ProcState {
                            child: Some(child),
                            pid,
                            paused: false,
                        }),
                    };
                }
                Err(failure) => {
                    let report = log_report(&dir, mark);
                    let _ = fs::remove_dir_all(&dir);
                    release_port(port);
                    if let StartFailure::Exited {
                        port_busy: true, ..
                    } = failure
                    {
                        // Someone grabbed the port between our probe and the
                        // bind: try another one.
                        last = format!("port {port} busy: {}\n{report}", describe(&failure));
                        continue;
                    }
                    panic!(
                        "could not start redis-server on 127.0.0.1:{port}: {}\n{report}",
                        describe(&failure)
                    );
                }
            }
        }
        panic!("could not start redis-server after {START_ATTEMPTS} attempts (ports kept being taken); last:\n{last}");
    }

    /// The TCP port (stable across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the current (or most recent) process.
    pub fn pid(&self) -> u32 {
        lock(&self.state).pid
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// `redis://127.0.0.1:PORT`, or `redis://default:PASSWORD@127.0.0.1:PORT`
    /// (password percent-encoded) when a password is configured.
    pub fn url(&self) -> String {
        match &self.opts.password {
            Some(pw) => format!("redis://default:{}@127.0.0.1:{}", url_encode(pw), self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The options it was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// Its private working directory (AOF files, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tail (last `lines` lines) of the server's log file.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&read_from(&self.dir.join(REDIS_LOG), 0), lines)
    }

    fn signal_and_settle(&self, sig: libc::c_int, stopped: bool, what: &str) {
        let mut st = lock(&self.state);
        let Some(child) = st.child.as_mut() else {
            panic!(
                "cannot {what} redis on port {}: it is not running",
                self.port
            );
        };
        if !matches!(child.try_wait(), Ok(None)) {
            st.child = None;
            panic!("cannot {what} redis on port {}: it has exited", self.port);
        }
        let pid = child.id();
        sys::signal(pid, sig).unwrap_or_else(|e| panic!("{what} redis pid {pid}: {e}"));
        st.paused = stopped;
        // Signal delivery is asynchronous: wait until the kernel reports it.
        let deadline = Instant::now() + SIGNAL_SETTLE;
        while Instant::now() < deadline {
            match sys::proc_state(pid) {
                None => return, // no /proc: nothing to poll
                Some(s) if (s == 'T') == stopped => return,
                Some(_) => thread::sleep(Duration::from_millis(1)),
            }
        }
        panic!("redis pid {pid} did not {what} within {SIGNAL_SETTLE:?}");
    }

    /// Freezes the process with `SIGSTOP`. A paused server still accepts TCP
    /// connections (kernel backlog) but never answers.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn pause(&self) {
        self.signal_and_settle(sys::SIGSTOP, true, "pause");
    }

    /// Resumes a paused process with `SIGCONT`.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn resume(&self) {
        self.signal_and_settle(sys::SIGCONT, false, "resume");
    }

    /// Whether [`pause`](Self::pause) was called without a later
    /// [`resume`](Self::resume) (or kill).
    pub fn is_paused(&self) -> bool {
        lock(&self.state).paused
    }

    /// Whether the process is alive (paused counts as alive).
    pub fn is_running(&self) -> bool {
        let mut st = lock(&self.state);
        let alive = match st.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        if !alive {
            st.child = None;
            st.paused = false;
        }
        alive
    }

    /// Kills the process with `SIGKILL` and reaps it. The port and directory
    /// stay reserved for [`restart`](Self::restart). No-op if not running.
    pub fn kill(&mut self) {
        let mut st = lock(&self.state);
        if let Some(mut child) = st.child.take() {
            // SIGKILL also ends a stopped process; `Child::kill` only signals
            // our own unreaped child.
            let _ = child.kill();
            let _ = child.wait();
        }
        st.paused = false;
    }

    /// Starts the server again on the same port, with the same options and
    /// directory (so with [`Persistence::AppendFsyncAlways`] the data
    /// survives), and waits until it answers `PING`. Kills the current
    /// process first if it is still running.
    ///
    /// # Panics
    /// If it cannot be started within a few seconds (the message includes
    /// its log).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + RESTART_PORT_WAIT;
        loop {
            let mark = LogMark::now(&self.dir);
            match spawn_and_wait(&self.bin, self.port, &self.dir, &self.opts, mark) {
                Ok(child) => {
                    let mut st = lock(&self.state);
                    st.pid = child.id();
                    st.child = Some(child);
                    st.paused = false;
                    return;
                }
                Err(StartFailure::Exited {
                    port_busy: true, ..
                }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(failure) => panic!(
                    "could not restart redis-server on 127.0.0.1:{}: {}\n{}",
                    self.port,
                    describe(&failure),
                    log_report(&self.dir, mark)
                ),
            }
        }
    }

    /// An authenticated (if a password is configured) connection with a
    /// 5 s timeout.
    pub fn connection(&self) -> Result<Connection, HarnessError> {
        self.connection_timeout(CMD_TIMEOUT)
    }

    /// Like [`connection`](Self::connection) with a custom timeout.
    pub fn connection_timeout(&self, timeout: Duration) -> Result<Connection, HarnessError> {
        let mut conn = Connection::connect(self.addr(), timeout)?;
        if let Some(pw) = &self.opts.password {
            conn.auth(pw)?;
        }
        Ok(conn)
    }

    /// Runs one command on a fresh connection (5 s timeouts), authenticating
    /// first if a password is configured. Uses the harness' own RESP2 client,
    /// independent from the system under test.
    pub fn cmd(&self, args: &[&str]) -> Result<Reply, HarnessError> {
        self.connection()?.call(args)
    }

    /// Like [`cmd`](Self::cmd) with a custom connect/read/write timeout; a
    /// paused server yields [`HarnessError::Timeout`].
    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Result<Reply, HarnessError> {
        self.connection_timeout(timeout)?.call(args)
    }

    fn cmd_or_panic(&self, args: &[&str]) -> Reply {
        match self.cmd(args) {
            Ok(Reply::Error(e)) => panic!("redis on port {}: {args:?} failed: {e}", self.port),
            Ok(reply) => reply,
            Err(e) => panic!("redis on port {}: {args:?} failed: {e}", self.port),
        }
    }

    /// All keys matching `pattern` (a `SCAN MATCH` loop), sorted.
    ///
    /// # Panics
    /// If the server cannot be queried.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self
            .connection()
            .unwrap_or_else(|e| panic!("redis on port {}: connect failed: {e}", self.port));
        let mut keys = HashSet::new();
        let mut cursor = "0".to_owned();
        loop {
            let reply = conn
                .call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
                .unwrap_or_else(|e| panic!("redis on port {}: SCAN failed: {e}", self.port));
            let parts = match reply.as_array() {
                Some([next, Reply::Array(Some(batch))]) => {
                    for k in batch {
                        let k = k.as_bytes().unwrap_or_else(|| {
                            panic!("redis on port {}: bad SCAN key {k:?}", self.port)
                        });
                        keys.insert(String::from_utf8_lossy(k).into_owned());
                    }
                    next.as_str().map(str::to_owned)
                }
                _ => None,
            };
            cursor = parts.unwrap_or_else(|| {
                panic!(
                    "redis on port {}: unexpected SCAN reply {reply:?}",
                    self.port
                )
            });
            if cursor == "0" {
                break;
            }
        }
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys
    }

    /// `GET key` (lossy UTF-8); `None` if the key does not exist.
    ///
    /// # Panics
    /// If the server cannot be queried or the key holds a non-string.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.cmd_or_panic(&["GET", key]) {
            Reply::Bulk(None) => None,
            Reply::Bulk(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            other => panic!(
                "redis on port {}: unexpected GET reply {other:?}",
                self.port
            ),
        }
    }

    /// One field of `INFO` (e.g. `run_id`, `uptime_in_seconds`), or `None`
    /// if the reply has no such field.
    ///
    /// # Panics
    /// If the server cannot be queried.
    pub fn info_field(&self, name: &str) -> Option<String> {
        let reply = self.cmd_or_panic(&["INFO"]);
        let text = String::from_utf8_lossy(reply.as_bytes()?).into_owned();
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
    }

    /// `INFO`'s `uptime_in_seconds`, as the server reports it: whole
    /// seconds of its *wall* clock, `floor(now) - floor(start)`, so it
    /// reads 1 as soon as a second boundary passed since the start, which
    /// may be a few milliseconds after it.
    ///
    /// # Panics
    /// If the server cannot be queried or the field is missing.
    pub fn uptime_in_seconds(&self) -> u64 {
        self.info_field("uptime_in_seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("redis on port {}: no uptime_in_seconds", self.port))
    }

    /// `PTTL key`: milliseconds left, `-1` if no expiry, `-2` if missing.
    ///
    /// # Panics
    /// If the server cannot be queried.
    pub fn pttl(&self, key: &str) -> i64 {
        let reply = self.cmd_or_panic(&["PTTL", key]);
        reply.as_int().unwrap_or_else(|| {
            panic!(
                "redis on port {}: unexpected PTTL reply {reply:?}",
                self.port
            )
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let st = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(mut child) = st.child.take() {
            if st.paused && matches!(child.try_wait(), Ok(None)) {
                let _ = sys::signal(child.id(), sys::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        st.paused = false;
        let _ = fs::remove_dir_all(&self.dir);
        release_port(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a-b_c.d~9"), "a-b_c.d~9");
        assert_eq!(url_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }

    #[test]
    fn args_contain_required_flags() {
        let opts = ServerOptions::default()
            .with_password("pw")
            .with_persistence(Persistence::AppendFsyncAlways)
            .with_arg("maxmemory-policy", "noeviction");
        let args = build_args(1234, Path::new("/tmp/x"), &opts);
        let joined = args.join(" ");
        for needle in [
            "--port 1234",
            "--bind 127.0.0.1",
            "--daemonize no",
            "--protected-mode no",
            "--appendonly yes",
            "--appendfsync always",
            "--requirepass pw",
            "--maxmemory-policy noeviction",
        ] {
            assert!(joined.contains(needle), "{needle} missing in {joined}");
        }
        let save = args.iter().position(|a| a == "--save").expect("--save");
        assert_eq!(args[save + 1], "");
    }
}
