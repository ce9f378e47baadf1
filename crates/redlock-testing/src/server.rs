//! One `redis-server` child process.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;

use crate::resp::{Connection, Reply};
use crate::spawn::{
    lock, log_report, read_from, release_port, spawn, tail, wait_ready, Launched, LogMark, Ready,
    StartFailure, REDIS_LOG,
};
use crate::{redis_server_path, sys, Error};

/// How long [`RedisServer::restart`] keeps retrying while its port is busy.
const RESTART_PORT_WAIT: Duration = Duration::from_secs(5);
/// Connect/read/write timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long pause/resume wait for the kernel to report the new state.
const SIGNAL_SETTLE: Duration = Duration::from_secs(2);

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
    /// `requirepass`; the crate's own client authenticates with it.
    pub password: Option<String>,
    /// Persistence mode.
    pub persistence: Persistence,
    /// Extra raw arguments appended to the command line, e.g.
    /// `["--maxmemory-policy", "noeviction"]`.
    pub extra_args: Vec<String>,
    /// Signal the kernel sends the server when the thread that spawned it
    /// exits (Linux; ignored elsewhere); see
    /// [`with_parent_death_signal`](Self::with_parent_death_signal).
    pub parent_death_signal: Option<Signal>,
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

    /// Has the kernel send `sig` (`Signal::KILL`, say) to the server when
    /// the thread that spawned it exits, so that a parent killed with
    /// `SIGKILL`, when no destructor runs, leaves no server behind. Linux
    /// only; ignored elsewhere.
    ///
    /// The signal is tied to the spawning *thread* (see
    /// [`die_with_parent`](crate::die_with_parent)): start the servers, and
    /// [`restart`](RedisServer::restart) them, from a thread that lives as
    /// long as they should, such as the main thread. Off by default, because
    /// a test that starts servers on a pool thread (tokio's
    /// `spawn_blocking`, say) would lose them when that thread retires.
    pub fn with_parent_death_signal(mut self, sig: Signal) -> Self {
        self.parent_death_signal = Some(sig);
        self
    }
}

#[derive(Debug)]
/// The server process as the handle knows it, behind one lock: its
/// child, its pid, whether it is paused.
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
    /// Removed when the server is dropped, after the process is reaped
    /// (fields drop after `Drop::drop`).
    dir: TempDir,
    opts: ServerOptions,
    bin: PathBuf,
    state: Mutex<ProcState>,
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
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with `opts` on a free loopback port and waits until it
    /// answers `PING`.
    ///
    /// # Panics
    /// If `redis-server` is not on `PATH`, or it cannot be started within a
    /// few attempts (the message includes its log).
    pub fn start_with(opts: ServerOptions) -> Self {
        Self::try_start_with(opts).unwrap_or_else(|e| panic!("{}", report(&e)))
    }

    /// As [`start_with`](Self::start_with), returning the failure instead of
    /// panicking.
    ///
    /// # Errors
    /// [`Error::RedisServerNotFound`], [`Error::Setup`] (no directory, port
    /// or process) or [`Error::Start`] (it did not become ready; the error
    /// holds its log).
    pub fn try_start_with(opts: ServerOptions) -> Result<Self, Error> {
        let bin = redis_server_path()?;
        let ready = Launched::spawn(&bin, &opts)?.ready(&bin, &opts)?;
        Ok(Self::from_ready(ready, opts, bin))
    }

    pub(crate) fn from_ready(ready: Ready, opts: ServerOptions, bin: PathBuf) -> Self {
        let Ready { port, dir, child } = ready;
        let pid = child.id();
        Self {
            port,
            dir,
            opts,
            bin,
            state: Mutex::new(ProcState {
                child: Some(child),
                pid,
                paused: false,
            }),
        }
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
        self.dir.path()
    }

    /// The tail (last `lines` lines) of the server's log file.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&read_from(&self.dir().join(REDIS_LOG), 0), lines)
    }

    /// Sends `sig` to the server and waits until `/proc` shows it stopped
    /// (or running again): a test that pauses a master must not race the
    /// signal. Panics if the server is not running.
    fn signal_and_settle(&self, sig: Signal, stopped: bool, what: &str) {
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
        self.signal_and_settle(Signal::STOP, true, "pause");
    }

    /// Resumes a paused process with `SIGCONT`.
    ///
    /// # Panics
    /// If the server is not running.
    pub fn resume(&self) {
        self.signal_and_settle(Signal::CONT, false, "resume");
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
        let dir = self.dir.path();
        loop {
            let mark = LogMark::now(dir);
            let started = spawn(&self.bin, self.port, dir, &self.opts)
                .and_then(|child| wait_ready(child, self.port, dir, &self.opts, mark));
            match started {
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
                    failure.describe(),
                    log_report(dir, mark)
                ),
            }
        }
    }

    /// An authenticated (if a password is configured) connection with a
    /// 5 s timeout.
    ///
    /// # Errors
    /// As [`Connection::connect`] and [`Connection::auth`].
    pub fn connection(&self) -> Result<Connection, Error> {
        self.connection_timeout(CMD_TIMEOUT)
    }

    /// Like [`connection`](Self::connection) with a custom timeout.
    ///
    /// # Errors
    /// As [`Connection::connect`] and [`Connection::auth`].
    pub fn connection_timeout(&self, timeout: Duration) -> Result<Connection, Error> {
        let mut conn = Connection::connect(self.addr(), timeout)?;
        if let Some(pw) = &self.opts.password {
            conn.auth(pw)?;
        }
        Ok(conn)
    }

    /// Runs one command on a fresh connection (5 s timeouts), authenticating
    /// first if a password is configured. Uses the crate's own RESP2 client,
    /// independent from the system under test.
    ///
    /// # Errors
    /// As [`connection`](Self::connection) and [`Connection::call`]; an
    /// error *reply* is `Ok(Reply::Error(..))`.
    pub fn cmd(&self, args: &[&str]) -> Result<Reply, Error> {
        self.connection()?.call(args)
    }

    /// Like [`cmd`](Self::cmd) with a custom connect/read/write timeout; a
    /// paused server yields [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`cmd`](Self::cmd).
    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Result<Reply, Error> {
        self.connection_timeout(timeout)?.call(args)
    }

    /// [`cmd`](Self::cmd) for the helpers whose callers want the reply or a
    /// test failure: an error reply panics too, naming the port.
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

    /// How many times the server ran `command` (lowercase, e.g. `set`)
    /// since it started or since `CONFIG RESETSTAT`, from
    /// `INFO commandstats`; 0 before the first call.
    ///
    /// # Panics
    /// If the server cannot be queried or its reply is not text.
    pub fn calls(&self, command: &str) -> u64 {
        let reply = self.cmd_or_panic(&["INFO", "commandstats"]);
        let text = reply.as_bytes().unwrap_or_else(|| {
            panic!(
                "redis on port {}: INFO is not a bulk string: {reply:?}",
                self.port
            )
        });
        let prefix = format!("cmdstat_{command}:calls=");
        String::from_utf8_lossy(text)
            .lines()
            .find_map(|l| l.trim().strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
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
                let _ = sys::signal(child.id(), Signal::CONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        st.paused = false;
        release_port(self.port);
    }
}

/// A panic message for `e`, with the server's log when there is one.
pub(crate) fn report(e: &Error) -> String {
    match e {
        Error::Start { log, .. } if !log.is_empty() => format!("{e}\n{log}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::build_args;

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
