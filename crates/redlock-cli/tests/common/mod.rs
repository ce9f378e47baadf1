//! Helpers shared by the end-to-end tests of the `redlock` binary.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one `redlock` run may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary under test, with a clean environment for its own variables.
pub fn redlock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redlock"));
    cmd.env_remove("REDLOCK_MASTERS")
        .env_remove("REDLOCK_PREFIX")
        .env_remove("REDLOCK_MAX_TTL")
        // The harness starts the masters empty for each test alone, the case
        // the restart guard may be off for; otherwise it would hold them
        // back for a whole TTL after their start.
        .arg("--danger-disable-restart-guard");
    cmd
}

/// This machine's host name, as holder records carry it.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host name")
        .trim()
        .to_owned()
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code (panics with the output if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("redlock killed by a signal: {self:?}"))
    }
}

/// Runs `redlock ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    finish(start(redlock().args(args)))
}

/// Starts a command with piped stdout and stderr.
pub fn start(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redlock")
}

/// Waits for `child` (at most [`RUN_TIMEOUT`]) and collects its output.
pub fn finish(mut child: Child) -> Output {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redlock did not finish within {RUN_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().expect("stdout reader"),
        stderr: t_err.join().expect("stderr reader"),
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redlock-cli-test-")
            .tempdir()
            .expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// The path of `name` as a `&str` for shell commands.
    pub fn file(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

/// Reads a file, or "" if it does not exist yet.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Sends `sig` (a number) to `pid` with kill(1): only ever a pid this test
/// spawned itself.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Live children of `ppid` whose command name is `name`, from /proc.
pub fn children_named(ppid: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let comm = &stat[open + 1..close];
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next();
            let parent = rest.next().and_then(|p| p.parse::<u32>().ok());
            comm == name && parent == Some(ppid) && state != Some("Z")
        })
        .collect()
}

/// Whether `pid` is a live (non-zombie) process named `name`.
pub fn alive_named(pid: u32, name: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(&format!("({name})")) && !s.contains(") Z "))
        .unwrap_or(false)
}

/// `(pid, ppid, session id, state)` of every process, from /proc.
fn processes() -> Vec<(u32, u32, u32, char)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = rest.next()?.chars().next()?;
            let ppid = rest.next()?.parse().ok()?;
            let _pgrp = rest.next()?;
            let sid = rest.next()?.parse().ok()?;
            Some((pid, ppid, sid, state))
        })
        .collect()
}

/// A `script(1)` run (a pseudo-terminal session) started by a test. Dropped
/// while still running, for instance by a failing assertion, it kills
/// every process of the session it created, then `script` itself, so that
/// a failed test leaves no stopped job behind.
pub struct Session(Option<Child>);

impl Session {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("session still running")
    }

    /// Waits for `script` to finish, as [`finish`].
    pub fn finish(mut self) -> Output {
        finish(self.0.take().expect("session still running"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let all = processes();
        // script's child leads the session on the pseudo terminal.
        let sessions: Vec<u32> = all
            .iter()
            .filter(|p| p.1 == child.id())
            .map(|p| p.0)
            .collect();
        for (pid, _, sid, state) in all {
            if sessions.contains(&sid) && state != 'Z' {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A pipe whose buffer is full: the first write to the writer blocks until
/// the reader is read. Returns the reader, the writer and the number of
/// filler bytes (`#`) to skip when reading.
pub fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter, usize) {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    // O_NONBLOCK lives on the open file description, so it goes off again
    // before the writer is handed on.
    rustix::io::ioctl_fionbio(&writer, true).expect("FIONBIO on");
    let chunk = [b'#'; 4096];
    let mut filled = 0;
    loop {
        match writer.write(&chunk) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    rustix::io::ioctl_fionbio(&writer, false).expect("FIONBIO off");
    (reader, writer, filled)
}

/// Panics if `text` shows a duration the way Rust's `Debug` does, with
/// more than three decimals (`1.977737831s`, `987.27223ms`), instead of in
/// units for people (`1.98s`, `987ms`).
pub fn assert_human_durations(text: &str) {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('.') {
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let rest = &text[i + 1 + digits..];
        let unit = ["s", "ms", "µs", "ns"].iter().any(|u| rest.starts_with(u));
        let before = i > 0 && bytes[i - 1].is_ascii_digit();
        assert!(
            !(before && digits > 3 && unit),
            "a duration in Debug format at byte {i}: {text}"
        );
    }
}
