//! `--spawn N`: throwaway `redis-server` processes on free loopback ports.
//!
//! This is the "try it with no infrastructure" default, so it must never
//! leave a server behind. Servers are stopped:
//! - on drop of [`Spawned`], which `main` reaches on success, on every error
//!   path, and after a signal (the signal handlers turn SIGINT/SIGTERM/...
//!   into an ordinary return);
//! - by the kernel when `redlock` dies without running destructors (SIGKILL,
//!   abort): on Linux each server is spawned with a parent-death signal.
//!
//! The CLI is a publishable crate, so it cannot use the test harness (which
//! is `publish = false`); this is its own small spawner.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::output::Failure;

/// How long a fresh server may take to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try per server (another process may take a port
/// between our probe and the server's bind).
const PORT_ATTEMPTS: usize = 5;
/// The most servers `--spawn` starts: beyond this a "quorum" is only a
/// slower way to use one machine.
pub(crate) const MAX_SPAWN: usize = 15;
/// The install hint of the error shown when `redis-server` is missing.
pub(crate) const INSTALL_HINT: &str =
    "install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`) or pass --masters";

/// Throwaway servers, stopped and their files removed on drop.
#[derive(Debug)]
pub(crate) struct Spawned {
    servers: Vec<Server>,
    root: PathBuf,
}

#[derive(Debug)]
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Spawned {
    /// Starts `n` servers in parallel and waits until each answers `PING`.
    ///
    /// Call from the main thread: the parent-death signal is tied to the
    /// thread that spawns (see [`crate::sys::die_with_parent`]).
    ///
    /// # Errors
    ///
    /// [`Failure`] with status 69 when `redis-server` is missing or does not
    /// start; servers already started are stopped first (by drop).
    pub(crate) fn start(n: usize) -> Result<Self, Failure> {
        let bin = find_redis_server().ok_or_else(|| {
            Failure::unavailable(format_args!(
                "--spawn needs `redis-server`, which is not on PATH; {INSTALL_HINT}"
            ))
        })?;
        let root = make_root()?;
        let mut spawned = Spawned {
            servers: Vec::with_capacity(n),
            root,
        };
        // Launch all first, then wait for all: startup time is paid once.
        // Each server is owned by `spawned` from its launch on, so any early
        // return below stops every server started so far.
        for (i, port) in free_ports(n)?.into_iter().enumerate() {
            let dir = spawned.root.join(format!("m{i}"));
            fs::create_dir_all(&dir).map_err(|e| {
                Failure::unavailable(format_args!("cannot create {}: {e}", dir.display()))
            })?;
            let child = launch(&bin, port, &dir)?;
            spawned.servers.push(Server { child, port, dir });
        }
        for server in &mut spawned.servers {
            let mut attempt = 1;
            loop {
                match wait_ready(server) {
                    Ok(()) => break,
                    Err(StartError::PortTaken) if attempt < PORT_ATTEMPTS => {
                        // The exited server was reaped by `wait_ready`.
                        attempt += 1;
                        server.port = free_ports(1)?
                            .pop()
                            .ok_or_else(|| Failure::unavailable("no free loopback port"))?;
                        server.child = launch(&bin, server.port, &server.dir)?;
                    }
                    Err(e) => {
                        return Err(Failure::unavailable(format_args!(
                            "could not start redis-server on 127.0.0.1:{}: {}",
                            server.port,
                            e.describe(&server.dir)
                        )));
                    }
                }
            }
        }
        Ok(spawned)
    }

    /// `redis://127.0.0.1:PORT` of every server, in start order.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        for s in &mut self.servers {
            // SIGKILL: the data is throwaway, and a stopped (SIGSTOP) server
            // would ignore SIGTERM. `Child::kill` signals only our own
            // unreaped child, so it can never hit a recycled pid.
            let _ = s.child.kill();
        }
        for s in &mut self.servers {
            let _ = s.child.wait();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

enum StartError {
    PortTaken,
    Exited(String),
    Timeout,
}

impl StartError {
    fn describe(&self, dir: &Path) -> String {
        let log = fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        match self {
            StartError::PortTaken => format!("port kept being taken ({last})"),
            StartError::Exited(status) => format!("it exited ({status}): {last}"),
            StartError::Timeout => format!(
                "no PONG within {}: {last}",
                crate::output::human_duration(STARTUP_TIMEOUT)
            ),
        }
    }
}

fn find_redis_server() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|c| {
            fs::metadata(c)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn make_root() -> Result<PathBuf, Failure> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let root =
        std::env::temp_dir().join(format!("redlock-spawn-{}-{nanos:09}", std::process::id()));
    fs::create_dir_all(&root)
        .map_err(|e| Failure::unavailable(format_args!("cannot create {}: {e}", root.display())))?;
    Ok(root)
}

/// `n` distinct loopback ports that were free a moment ago: all listeners
/// stay open until every port is chosen, so they are distinct.
fn free_ports(n: usize) -> Result<Vec<u16>, Failure> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::unavailable(format_args!("cannot bind 127.0.0.1:0: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::unavailable(format_args!("cannot read a bound port: {e}")))
}

fn launch(bin: &Path, port: u16, dir: &Path) -> Result<Child, Failure> {
    let mut cmd = Command::new(bin);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--loglevel", "warning"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::sys::die_with_parent(&mut cmd, crate::sys::SIGKILL);
    cmd.spawn().map_err(|e| {
        Failure::unavailable(format_args!(
            "cannot run {}: {e}; {INSTALL_HINT}",
            bin.display()
        ))
    })
}

fn wait_ready(server: &mut Server) -> Result<(), StartError> {
    let deadline = Instant::now()
        .checked_add(STARTUP_TIMEOUT)
        .ok_or(StartError::Timeout)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = fs::read_to_string(server.dir.join("redis.log")).unwrap_or_default();
            return Err(if log.contains("Address already in use") {
                StartError::PortTaken
            } else {
                StartError::Exited(status.to_string())
            });
        }
        if ping(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One raw `PING`, answered by `+PONG`.
fn ping(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(200);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
