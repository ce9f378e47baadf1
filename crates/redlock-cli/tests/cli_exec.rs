//! `redlock exec` end to end, against real `redis-server` masters.

mod common;

use std::time::{Duration, Instant};

use common::{finish, read, redlock, run, signal, start, wait_until, TempDir};
use redlock_testing::Masters;

fn no_keys(masters: &Masters) {
    assert_eq!(
        masters.keys_everywhere("redlock:*"),
        Vec::<(usize, String)>::new(),
        "lock keys left behind"
    );
}

#[test]
fn cmd_gets_the_lock_env_its_status_is_ours_and_the_lock_is_released() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (env_file, go) = (tmp.file("env"), tmp.file("go"));
    let script = format!(
        "printf '%s\\n%s\\n%s\\n%s\\n' \"$REDLOCK_TOKEN\" \"$REDLOCK_RESOURCE\" \"$REDLOCK_KEY\" \"$REDLOCK_TTL_MS\" > {env_file}.tmp; \
         mv {env_file}.tmp {env_file}; while [ ! -e {go} ]; do sleep 0.02; done; exit 7"
    );
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "job",
        "--ttl",
        "30s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        !read(&tmp.path("env")).is_empty()
    });
    let env = read(&tmp.path("env"));
    let fields: Vec<&str> = env.lines().collect();
    assert_eq!(fields.len(), 4, "{env}");
    // The whole value stored in the key: 128 random bits, then who holds
    // it (host, redlock's pid, since when), as `unlock --token` takes it.
    let token = fields[0];
    let mut words = token.split(' ');
    let random = words.next().expect("random part");
    assert_eq!(random.len(), 32, "{env}");
    assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{env}");
    let (host, pid, since) = (words.next(), words.next(), words.next());
    assert_eq!(host, Some(common::hostname().as_str()), "{env}");
    assert_eq!(pid, Some(child.id().to_string().as_str()), "{env}");
    assert!(since.is_some_and(|s| s.parse::<u64>().is_ok()), "{env}");
    assert_eq!(words.next(), None, "no label without --label: {env}");
    assert_eq!(&fields[1..], ["job", "redlock:job", "30000"]);
    // The decision is taken at the second grant; the third may land a
    // moment later.
    wait_until(Duration::from_secs(2), "the key on every master", || {
        masters
            .iter()
            .all(|m| m.get("redlock:job").as_deref() == Some(token))
    });
    for m in masters.iter() {
        let pttl = m.pttl("redlock:job");
        assert!(pttl > 0 && pttl <= 30_000, "pttl {pttl}");
    }
    std::fs::write(tmp.path("go"), "").expect("write go");
    let out = finish(child);
    assert_eq!(out.code(), 7, "{out:?}");
    assert_eq!(out.stderr, "", "exec is quiet on success");
    no_keys(&masters);
}

#[test]
fn contending_execs_never_overlap() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let log = tmp.file("log");
    // Each CMD appends its start and end time; under the lock, the lines
    // of different processes can never interleave.
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> {log}; sleep 0.15; echo \"end $$ $(date +%s%N)\" >> {log}"
    );
    let urls = masters.urls_csv();
    let children: Vec<_> = (0..4)
        .map(|_| {
            start(redlock().args([
                "--masters",
                &urls,
                "exec",
                "--resource",
                "shared",
                "--ttl",
                "5s",
                "--wait",
                "40s",
                "--",
                "sh",
                "-c",
                &script,
            ]))
        })
        .collect();
    for child in children {
        let out = finish(child);
        assert_eq!(out.code(), 0, "{out:?}");
    }
    let text = read(&tmp.path("log"));
    let lines: Vec<(String, String, u128)> = text
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next().expect("kind").to_owned();
            let pid = w.next().expect("pid").to_owned();
            let ns = w.next().expect("time").parse().expect("nanoseconds");
            (kind, pid, ns)
        })
        .collect();
    assert_eq!(lines.len(), 8, "four runs, two lines each:\n{text}");
    let mut last_end = 0u128;
    for pair in lines.chunks(2) {
        let (start, end) = (&pair[0], &pair[1]);
        assert_eq!(start.0, "start", "{text}");
        assert_eq!(end.0, "end", "interleaved runs:\n{text}");
        assert_eq!(start.1, end.1, "interleaved runs:\n{text}");
        assert!(start.2 >= last_end, "overlap:\n{text}");
        assert!(end.2 >= start.2, "{text}");
        last_end = end.2;
    }
    no_keys(&masters);
}

#[test]
fn held_lock_exits_75_with_per_master_outcomes_and_cmd_never_runs() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    for m in masters.iter() {
        m.cmd(&["SET", "redlock:busy", "someone-else", "PX", "30000"])
            .expect("SET");
    }
    let ran = tmp.file("ran");
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "busy",
        "--ttl",
        "10s",
        "--",
        "touch",
        &ran,
    ]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    // A key set by hand has no holder record: its token and where it is.
    assert!(
        out.stderr.starts_with("redlock: resource \"busy\" is held by another owner (token someone-, no holder recorded), "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" left, on 3/3 masters"),
        "{}",
        out.stderr
    );
    for m in masters.iter() {
        assert_eq!(m.get("redlock:busy").as_deref(), Some("someone-else"));
    }
    // A master that does not hold it is named, with what it said.
    masters[2].cmd(&["DEL", "redlock:busy"]).expect("DEL");
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "busy",
        "--ttl",
        "10s",
        "--",
        "touch",
        &ran,
    ]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "on 2/3 masters; 127.0.0.1:{} free",
            masters[2].port()
        )),
        "{}",
        out.stderr
    );
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");
    // -q: the same status, nothing for cron to mail.
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-q",
        "--resource",
        "busy",
        "--ttl",
        "10s",
        "--",
        "touch",
        &ran,
    ]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert_eq!(out.stderr, "", "-q prints nothing when busy");
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");
}

#[test]
fn a_refused_exec_says_who_holds_the_lock() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let (started, go, ran) = (tmp.file("started"), tmp.file("go"), tmp.file("ran"));
    let holder = start(redlock().args([
        "--masters",
        &urls,
        "exec",
        "--resource",
        "nightly",
        "--label",
        "nightly report",
        "--ttl",
        "30s",
        "-c",
        &format!("touch {started}; while [ ! -e {go} ]; do sleep 0.02; done"),
    ]));
    wait_until(Duration::from_secs(20), "the holder to start", || {
        tmp.path("started").exists()
    });
    let who = format!(
        "redlock: resource \"nightly\" is held by pid {} on {} (\"nightly report\") since ",
        holder.id(),
        common::hostname()
    );
    let exec = |extra: &[&str]| {
        let mut args = vec!["--masters", &urls, "exec", "-r", "nightly", "--ttl", "5s"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "touch", &ran]);
        run(&args)
    };
    let out = exec(&[]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with(&who), "{}", out.stderr);
    assert!(
        out.stderr.trim_end().ends_with(" left, on 3/3 masters"),
        "{}",
        out.stderr
    );
    let out = exec(&["--wait", "300ms"]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert!(out.stderr.starts_with(&who), "{}", out.stderr);
    assert!(
        out.stderr.contains("; gave up after waiting "),
        "{}",
        out.stderr
    );
    let out = exec(&["-q"]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert_eq!(out.stderr, "", "-q says nothing about a busy lock");
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");

    std::fs::write(tmp.path("go"), "").expect("write go");
    assert_eq!(finish(holder).code(), 0);
    no_keys(&masters);
}

#[test]
fn fence_gives_cmd_a_growing_fence_and_nothing_without_it() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let exec = |fence: bool, file: &str| {
        let file = tmp.file(file);
        let mut cmd = redlock();
        // An enclosing lock's fence must never pass for this one's.
        cmd.env("REDLOCK_FENCE", "999")
            .args(["--masters", &urls, "exec"]);
        if fence {
            cmd.arg("--fence");
        }
        cmd.args(["-r", "fenced", "--ttl", "5s", "-c"])
            .arg(format!("printf '%s' \"${{REDLOCK_FENCE-unset}}\" > {file}"));
        let out = finish(start(&mut cmd));
        assert_eq!(out.code(), 0, "{out:?}");
        read(std::path::Path::new(&file))
    };
    let first: u64 = exec(true, "first").parse().expect("a decimal fence");
    let second: u64 = exec(true, "second").parse().expect("a decimal fence");
    assert!(first >= 1, "{first}");
    assert!(second > first, "fences must grow: {first} then {second}");
    assert_eq!(exec(false, "plain"), "unset", "no fence without --fence");
    // The masters keep the highest fence handed out.
    let out = run(&["--masters", &urls, "inspect", "-r", "fenced", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["fence"], second, "{doc}");
    // The lock keys are gone; the fence counters (in the hash named by
    // the prefix) stay, as they must.
    assert_eq!(
        masters.keys_everywhere("redlock:fenced"),
        Vec::<(usize, String)>::new()
    );
}

#[test]
fn bad_labels_are_usage_errors() {
    for (label, why) in [
        ("", "empty"),
        ("two\nlines", "control characters"),
        (&"x".repeat(129)[..], "at most 128"),
    ] {
        let out = run(&[
            "--masters",
            "redis://127.0.0.1:6399",
            "exec",
            "-r",
            "r",
            "--ttl",
            "5s",
            "--label",
            label,
            "--",
            "true",
        ]);
        assert_eq!(out.code(), 64, "{label:?}: {out:?}");
        assert!(out.stderr.contains("--label"), "{out:?}");
        assert!(out.stderr.contains(why), "{why}: {out:?}");
    }
}

#[test]
fn wait_retries_until_the_holder_is_gone() {
    let masters = Masters::start(3);
    for m in masters.iter() {
        m.cmd(&["SET", "redlock:later", "someone-else", "PX", "800"])
            .expect("SET");
    }
    let started = Instant::now();
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "later",
        "--ttl",
        "5s",
        "--wait",
        "20s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "acquired while the other owner still held it"
    );
    no_keys(&masters);
}

#[test]
fn a_waiting_exec_subscribes_to_releases_only_with_wake_on_release() {
    let masters = Masters::start(3);
    let subscribed = |masters: &Masters| masters.iter().any(|m| m.calls("subscribe") > 0);
    for wake in [false, true] {
        for m in masters.iter() {
            m.cmd(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT");
            m.cmd(&["SET", "redlock:wake", "someone-else", "PX", "500"])
                .expect("SET");
        }
        let urls = masters.urls_csv();
        let mut args = vec!["--masters", urls.as_str()];
        if wake {
            args.push("--wake-on-release");
        }
        args.extend([
            "exec",
            "--resource",
            "wake",
            "--ttl",
            "5s",
            "--wait",
            "20s",
            "--",
            "true",
        ]);
        let out = run(&args);
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(
            subscribed(&masters),
            wake,
            "a refused exec subscribes to releases exactly when asked to"
        );
        no_keys(&masters);
    }
}

#[test]
fn cmd_killed_by_a_signal_gives_128_plus_n_and_the_lock_is_released() {
    let masters = Masters::start(3);
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "doomed",
        "--ttl",
        "30s",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(out.code(), 128 + 9, "{out:?}");
    no_keys(&masters);
}

#[test]
fn missing_cmd_gives_127_and_the_lock_is_released() {
    let masters = Masters::start(3);
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "nothing",
        "--ttl",
        "30s",
        "--",
        "/nonexistent/redlock-test-command",
    ]);
    assert_eq!(out.code(), 127, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    no_keys(&masters);
}

#[test]
fn sigterm_to_redlock_is_forwarded_and_the_lock_released() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, got) = (tmp.file("ready"), tmp.file("got"));
    // The TTL is long, so only an explicit release can remove the keys in
    // time for the check below.
    let script = format!(
        "trap 'kill $! 2>/dev/null; echo TERM > {got}; exit 3' TERM; sleep 30 >/dev/null 2>&1 & echo ok > {ready}; wait"
    );
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "forward",
        "--ttl",
        "60s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    // The decision is taken at the second grant; the third may land a
    // moment later.
    wait_until(Duration::from_secs(2), "the key on every master", || {
        masters.keys_everywhere("redlock:*").len() == 3
    });
    signal(child.id(), "TERM");
    let out = finish(child);
    assert_eq!(out.code(), 3, "CMD's own status: {out:?}");
    assert_eq!(read(&tmp.path("got")).trim(), "TERM", "CMD got the signal");
    no_keys(&masters);
}

#[test]
fn losing_the_majority_stops_cmd_with_sigterm_and_exits_76() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, got) = (tmp.file("ready"), tmp.file("got"));
    let script = format!(
        "trap 'kill $! 2>/dev/null; echo TERM > {got}; exit 0' TERM; sleep 30 >/dev/null 2>&1 & echo ok > {ready}; wait"
    );
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "fragile",
        "--ttl",
        "1s",
        "--kill-after",
        "5s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    masters[0].pause();
    masters[1].pause();
    let out = finish(child);
    masters[0].resume();
    masters[1].resume();
    assert_eq!(out.code(), 76, "{out:?}");
    assert_eq!(read(&tmp.path("got")).trim(), "TERM", "CMD got SIGTERM");
    assert!(out.stderr.contains("lock lost"), "{}", out.stderr);
    assert!(out.stderr.contains("SIGTERM"), "{}", out.stderr);
    common::assert_human_durations(&out.stderr);
    // CMD stopped on SIGTERM: no escalation was needed.
    assert!(!out.stderr.contains("sent SIGKILL"), "{}", out.stderr);
}

#[test]
fn cmd_ignoring_sigterm_after_loss_gets_sigkill() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let ready = tmp.file("ready");
    // SIG_IGN survives exec, so `sleep` itself ignores SIGTERM.
    let script = format!("trap '' TERM; echo ok > {ready}; exec sleep 30");
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "stubborn",
        "--ttl",
        "1s",
        "--kill-after",
        "300ms",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    for i in 0..3 {
        masters[i].pause();
    }
    let out = finish(child);
    for i in 0..3 {
        masters[i].resume();
    }
    assert_eq!(out.code(), 76, "{out:?}");
    assert!(out.stderr.contains("SIGKILL"), "{}", out.stderr);
}

#[test]
fn sigterm_while_an_acquisition_is_in_flight_releases_what_it_set() {
    let masters = Masters::start(3);
    // Another owner holds the resource on masters 1 and 2, so every attempt
    // is refused there and granted on master 0, and `--wait` keeps retrying.
    for i in [1, 2] {
        masters[i]
            .cmd(&["SET", "redlock:inflight", "someone-else"])
            .expect("SET");
    }
    let tmp = TempDir::new();
    let ran = tmp.file("ran");
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        // Long enough that an attempt sent to paused masters stays in
        // flight while the test looks.
        "--master-timeout",
        "4s",
        "exec",
        "--resource",
        "inflight",
        "--ttl",
        "60s",
        "--wait",
        "5m",
        "--",
        "touch",
        &ran,
    ]));
    // Two attempts reached master 1: connected, and retrying.
    wait_until(Duration::from_secs(20), "two refused attempts", || {
        masters[1].calls("set") >= 2
    });
    masters[1].pause();
    masters[2].pause();
    // The next attempt sets our key on master 0 and then hangs on the two
    // paused masters. A refused attempt's cleanup would delete the key
    // within its backoff (at most 1 s), so a key that stays put for longer
    // than that belongs to an attempt in flight.
    let mut since: Option<(String, Instant)> = None;
    wait_until(Duration::from_secs(30), "an attempt in flight", || {
        let now = masters[0].get("redlock:inflight");
        match (&since, now) {
            (Some((token, t)), Some(now)) if *token == now => {
                t.elapsed() >= Duration::from_millis(1500)
            }
            (_, Some(now)) => {
                since = Some((now, Instant::now()));
                false
            }
            (_, None) => {
                since = None;
                false
            }
        }
    });
    signal(child.id(), "TERM");
    let out = finish(child);
    assert_eq!(out.code(), 128 + 15, "{out:?}");
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");
    // Master 0 answers: our key there must be gone now, not in 60 s.
    assert_eq!(
        masters[0].get("redlock:inflight"),
        None,
        "the in-flight attempt's key was left on master 0: {out:?}"
    );
    masters[1].resume();
    masters[2].resume();
    // The other owner lets go; what the paused masters had queued (our SET
    // NX, then our release) runs on resume and leaves nothing of ours.
    for i in [1, 2] {
        masters[i].cmd(&["DEL", "redlock:inflight"]).expect("DEL");
    }
    wait_until(Duration::from_secs(10), "no lock key anywhere", || {
        masters.keys_everywhere("redlock:*").is_empty()
    });
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "inflight",
        "--ttl",
        "5s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 0, "the resource is free again: {out:?}");
    no_keys(&masters);
}

/// Starts `exec` on `resource` whose CMD is a shell that starts a
/// grandchild (`sleep 300`) in the background, writes its pid, and waits:
/// the shape of `sh -c 'long-job; true'`, where signalling the shell alone
/// would leave the job running. Returns the child and the grandchild's pid.
/// (The job's output goes to /dev/null: holding the test's pipes open, it
/// would keep `finish` waiting for it.)
fn exec_with_grandchild(
    masters: &Masters,
    tmp: &TempDir,
    resource: &str,
    extra: &[&str],
) -> (std::process::Child, u32) {
    let pid_file = tmp.file("grandchild");
    let script = format!(
        "sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; wait"
    );
    let mut args = vec![
        "--masters".to_owned(),
        masters.urls_csv(),
        "exec".to_owned(),
    ];
    args.extend(["--resource", resource, "--ttl", "1s"].map(str::to_owned));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(["--", "sh", "-c", &script].map(str::to_owned));
    let child = start(redlock().args(&args));
    wait_until(Duration::from_secs(20), "CMD to start its job", || {
        !read(&tmp.path("grandchild")).is_empty()
    });
    let pid = read(&tmp.path("grandchild"))
        .trim()
        .parse()
        .expect("grandchild pid");
    assert!(common::alive_named(pid, "sleep"), "the job runs");
    (child, pid)
}

/// Whether the grandchild `pid` is gone within a few seconds; kills it if
/// not (it is this test's own `sleep`), so a failing test leaves nothing.
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !common::alive_named(pid, "sleep") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(pid, "KILL");
    false
}

#[test]
fn losing_the_lock_stops_cmd_and_every_process_it_started() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (child, job) = exec_with_grandchild(&masters, &tmp, "group-loss", &["--kill-after", "5s"]);
    masters[0].pause();
    masters[1].pause();
    let out = finish(child);
    masters[0].resume();
    masters[1].resume();
    assert_eq!(out.code(), 76, "{out:?}");
    assert!(
        gone(job),
        "CMD's job kept running without the lock: {out:?}"
    );
}

#[test]
fn a_forwarded_sigterm_reaches_every_process_cmd_started() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (child, job) = exec_with_grandchild(&masters, &tmp, "group-term", &[]);
    signal(child.id(), "TERM");
    let out = finish(child);
    assert_eq!(out.code(), 128 + 15, "the shell died of SIGTERM: {out:?}");
    assert!(
        gone(job),
        "CMD's job survived the forwarded SIGTERM: {out:?}"
    );
    no_keys(&masters);
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `redlock exec --resource RESOURCE --ttl 30s -- sh -c CMD` over
/// `masters`, quoted as a line to type into a shell.
fn exec_line(masters: &Masters, resource: &str, cmd: &str) -> String {
    [
        env!("CARGO_BIN_EXE_redlock"),
        "--danger-disable-restart-guard",
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        resource,
        "--ttl",
        "30s",
        "--",
        "sh",
        "-c",
        cmd,
    ]
    .map(sh_quote)
    .join(" ")
}

/// script(1) with `args`, without our masters in its environment, its
/// standard streams piped.
fn script(args: &[&str]) -> std::process::Command {
    let mut script = std::process::Command::new("script");
    script
        .args(args)
        .env_remove("REDLOCK_MASTERS")
        .env_remove("REDLOCK_PREFIX")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    script
}

/// Starts `script`: the session, and the keyboard of its terminal.
fn on_a_terminal(mut script: std::process::Command) -> (common::Session, std::process::ChildStdin) {
    let mut session = common::Session::new(script.spawn().expect("spawn script(1)"));
    let keys = session.child_mut().stdin.take().expect("piped stdin");
    (session, keys)
}

/// An interactive shell with job control on a pseudo terminal, typed to
/// as a person would.
fn job_control_shell() -> (common::Session, std::process::ChildStdin) {
    let mut shell = script(&["-q", "-c", "bash --norc --noprofile -i", "/dev/null"]);
    shell.env("PS1", "$ ");
    on_a_terminal(shell)
}

/// Waits for CMD to write `$$ $PPID` to `ready`: CMD's pid and redlock's.
fn started_pids(tmp: &TempDir) -> (u32, u32) {
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    pids_in(&tmp.path("ready"))
}

/// The two pids CMD wrote to `path` (`$$ $PPID`): CMD's and redlock's.
fn pids_in(path: &std::path::Path) -> (u32, u32) {
    let pids = read(path);
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    (pids[0], pids[1])
}

#[test]
fn in_a_terminal_cmd_gets_the_foreground_and_one_ctrl_c() {
    use std::io::Write;
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (fg, ready, out, armed, log, go) = (
        tmp.file("fg"),
        tmp.file("ready"),
        tmp.file("out"),
        tmp.file("armed"),
        tmp.file("log"),
        tmp.file("go"),
    );
    // CMD records its group, the terminal's foreground group and redlock's
    // group, reads a line from the terminal, then logs the SIGINTs it gets
    // (a shell's trap may merge two that arrive together, so the groups are
    // what shows that a Ctrl-C cannot reach CMD twice).
    let cmd = format!(
        "trap 'echo INT >> {log}' INT; ps -o pgid= -o tpgid= -p $$ > {fg}; ps -o pgid= -p $PPID >> {fg}; \
         echo ok > {ready}; \
         read line; echo \"got:$line\" > {out}; echo ok > {armed}; \
         while [ ! -e {go} ]; do sleep 0.05; done"
    );
    let redlock_cmd = exec_line(&masters, "tty", &cmd);
    // script(1) runs the command in a new session on a fresh pseudo
    // terminal, in its foreground group, and copies our bytes to it as if
    // typed: "\x03" is a Ctrl-C.
    let (session, mut keys) = on_a_terminal(script(&["-q", "-e", "-c", &redlock_cmd, "/dev/null"]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    let groups = read(&tmp.path("fg"));
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_ne!(groups[0], groups[2], "CMD has a process group of its own");
    // So a Ctrl-C reaches CMD's group alone, not redlock too (which would
    // forward it: twice for CMD).
    assert_eq!(groups[0], groups[1], "CMD's group has the terminal");
    // The line reaches CMD: a background group would be stopped (SIGTTIN).
    keys.write_all(b"hello\n").expect("type a line");
    wait_until(Duration::from_secs(20), "CMD to read the line", || {
        tmp.path("armed").exists()
    });
    assert_eq!(read(&tmp.path("out")).trim(), "got:hello");
    keys.write_all(b"\x03").expect("type Ctrl-C");
    wait_until(Duration::from_secs(20), "CMD to get SIGINT", || {
        !read(&tmp.path("log")).is_empty()
    });
    std::fs::write(tmp.path("go"), "").expect("write go");
    let result = session.finish();
    drop(keys);
    assert_eq!(result.code(), 0, "CMD handled the SIGINT: {result:?}");
    assert_eq!(
        read(&tmp.path("log")).lines().count(),
        1,
        "one Ctrl-C, one SIGINT for CMD"
    );
    no_keys(&masters);
}

/// The state letter of `pid` in /proc (`T` stopped, `S` sleeping, ...).
fn state(pid: u32) -> Option<char> {
    stat_field(pid, 0)?.chars().next()
}

/// Field `n` (0-based, after the command name) of `/proc/pid/stat`: 0 the
/// state, 2 the process group, 5 the terminal's foreground group.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(n)
        .map(str::to_owned)
}

/// Waits (at most 20 s) until CMD and redlock are both stopped, as the
/// shell must see a stopped job; on a timeout, says what each was doing and
/// who had the terminal.
fn wait_for_job_stop(cmd_pid: u32, redlock_pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(state(cmd_pid) == Some('T') && state(redlock_pid) == Some('T')) {
        assert!(
            Instant::now() < deadline,
            "CMD and redlock did not both stop: CMD {:?}, redlock {:?}, terminal foreground group {:?} (CMD's group {:?}, redlock's {:?})",
            state(cmd_pid),
            state(redlock_pid),
            stat_field(cmd_pid, 5),
            stat_field(cmd_pid, 2),
            stat_field(redlock_pid, 2),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctrl_z_in_a_job_control_shell_stops_redlock_with_cmd_and_fg_resumes_both() {
    use std::io::Write;
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, go, finished) = (tmp.file("ready"), tmp.file("go"), tmp.file("finished"));
    // CMD waits by opening a FIFO, not by polling with `sleep`: a shell
    // that vforks `sleep` just as Ctrl-Z arrives waits uninterruptibly for
    // a child that stopped before its exec, and so never stops itself
    // (with or without redlock; seen here about once in ten runs).
    let mkfifo = std::process::Command::new("mkfifo")
        .arg(tmp.path("go"))
        .status()
        .expect("mkfifo");
    assert!(mkfifo.success(), "mkfifo failed");
    let cmd = format!(
        "echo \"$$ $PPID\" > {ready}.tmp; mv {ready}.tmp {ready}; \
         read x < {go}; echo done > {finished}"
    );
    let line = exec_line(&masters, "job", &cmd);
    // An interactive shell with job control on a pseudo terminal, typed to
    // as a person would.
    let (session, mut keys) = job_control_shell();
    keys.write_all(format!("{line}\n").as_bytes())
        .expect("type the command");
    let (cmd_pid, redlock_pid) = started_pids(&tmp);
    keys.write_all(b"\x1a").expect("type Ctrl-Z");
    // The shell knows only redlock's group: redlock stops too, so the
    // shell sees its job stopped and takes the terminal back.
    wait_for_job_stop(cmd_pid, redlock_pid);
    keys.write_all(b"fg\n").expect("type fg");
    // Opening the FIFO for writing waits for CMD to open it for reading,
    // which it does once continued: from a thread of its own, so that a
    // CMD that never continues fails the wait below instead of hanging.
    let go_path = tmp.path("go");
    let writer = std::thread::spawn(move || std::fs::write(go_path, "go\n"));
    wait_until(Duration::from_secs(20), "CMD to finish after fg", || {
        tmp.path("finished").exists()
    });
    writer.join().expect("FIFO writer").expect("write go");
    keys.write_all(b"exit\n").expect("type exit");
    drop(keys);
    let out = session.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    wait_until(Duration::from_secs(10), "the lock to be released", || {
        masters.keys_everywhere("redlock:*").is_empty()
    });
}

#[test]
fn cmd_exit_noticed_only_after_the_validity_ended_is_a_loss() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, go) = (tmp.file("ready"), tmp.file("go"));
    let script = format!(
        "echo $$ > {ready}.tmp; mv {ready}.tmp {ready}; while [ ! -e {go} ]; do sleep 0.02; done; exit 0"
    );
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "late",
        "--ttl",
        "1s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    let cmd: u32 = read(&tmp.path("ready")).trim().parse().expect("CMD pid");
    // redlock is frozen: it neither extends the lock nor reaps CMD, which
    // exits now; when redlock runs again, CMD's exit and the loss are
    // there at once.
    signal(child.id(), "STOP");
    std::fs::write(tmp.path("go"), "").expect("write go");
    wait_until(Duration::from_secs(20), "CMD to exit", || {
        !common::alive_named(cmd, "sh")
    });
    wait_until(Duration::from_secs(20), "the keys to expire", || {
        masters.keys_everywhere("redlock:*").is_empty()
    });
    signal(child.id(), "CONT");
    let out = finish(child);
    assert_eq!(
        out.code(),
        76,
        "nothing shows CMD ended within the validity: {out:?}"
    );
    assert!(out.stderr.contains("lock lost"), "{}", out.stderr);
}

#[test]
fn a_lock_lost_before_cmd_starts_never_runs_cmd() {
    use std::io::Read;
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let ran = tmp.file("ran");
    // With -v, redlock reports the acquisition on stderr before it starts
    // CMD; with stderr a full pipe, it waits right there, the lock not
    // extended (the runtime is blocked), until the test reads.
    let (mut stderr, stderr_w, filled) = common::full_pipe();
    let mut cmd = redlock();
    cmd.args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-v",
        "--resource",
        "gap",
        "--ttl",
        "1s",
        "--",
        "touch",
        &ran,
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::from(stderr_w));
    let mut child = cmd.spawn().expect("spawn redlock");
    drop(cmd);
    wait_until(Duration::from_secs(20), "the lock to be taken", || {
        !masters.keys_everywhere("redlock:gap").is_empty()
    });
    wait_until(Duration::from_secs(20), "its keys to expire", || {
        masters.keys_everywhere("redlock:gap").is_empty()
    });
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        all
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let all = reader.join().expect("stderr reader");
    let text = String::from_utf8_lossy(&all[filled..]).into_owned();
    assert!(
        !tmp.path("ran").exists(),
        "CMD ran without the lock: {text}"
    );
    assert_eq!(status.code(), Some(76), "{text}");
    assert!(text.contains("lock lost"), "{text}");
    // Not started at all: a CMD started and killed at once may still have
    // done something.
    assert!(text.contains("CMD not started"), "{text}");
    assert!(!text.contains("sent SIGTERM"), "CMD was started: {text}");
    no_keys(&masters);
}

#[test]
fn an_unknown_option_before_cmd_is_a_usage_error_and_nothing_runs() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let ran = tmp.file("ran");
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        "typo",
        "--ttl",
        "5s",
        "--wiat",
        "5s",
        "--",
        "touch",
        &ran,
    ]);
    assert_eq!(out.code(), 64, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("--wiat"), "{}", out.stderr);
    assert!(!tmp.path("ran").exists(), "CMD ran");
    no_keys(&masters);
    // CMD starts at its first word without a dash, `--` or not, and every
    // word after it is CMD's, dashes included.
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        "typo",
        "--ttl",
        "5s",
        "sh",
        "-c",
        "exit 3",
        "--wait",
    ]);
    assert_eq!(out.code(), 3, "{out:?}");
    no_keys(&masters);
}

#[test]
fn conflict_exit_code_replaces_75_when_another_owner_holds_the_lock() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    for m in masters.iter() {
        m.cmd(&["SET", "redlock:busy", "someone-else", "PX", "30000"])
            .expect("SET");
    }
    let ran = tmp.file("ran");
    let exec = |extra: &[&str]| {
        let urls = masters.urls_csv();
        let mut args = vec!["--masters", &urls, "exec", "-r", "busy", "--ttl", "5s"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "touch", &ran]);
        run(&args)
    };
    let out = exec(&["--conflict-exit-code", "3"]);
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(out.stderr.contains("held by another owner"), "{out:?}");
    // flock -n -E 0 style: for cron, a busy lock is a quiet success.
    let out = exec(&["-q", "--conflict-exit-code", "0"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    assert!(!tmp.path("ran").exists(), "CMD ran without the lock");
    // Only contention: with no master to ask, it is 69, not the code.
    masters[0].pause();
    masters[1].pause();
    let out = exec(&["--conflict-exit-code", "3", "--connect-timeout", "300ms"]);
    masters[0].resume();
    masters[1].resume();
    assert_eq!(out.code(), 69, "{out:?}");
    for bad in ["256", "1.5", "x"] {
        let out = exec(&["--conflict-exit-code", bad]);
        assert_eq!(out.code(), 64, "{bad}: {out:?}");
        assert!(out.stderr.contains("--conflict-exit-code"), "{out:?}");
    }
    let out = exec(&["--lost-exit-code", "0"]);
    assert_eq!(out.code(), 64, "a lost lock is never a success: {out:?}");
}

#[test]
fn lost_exit_code_replaces_76() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let ready = tmp.file("ready");
    let script = format!("echo ok > {ready}; exec sleep 30 >/dev/null 2>&1");
    let child = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "lost-code",
        "--ttl",
        "1s",
        "--lost-exit-code",
        "9",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "CMD to start", || {
        tmp.path("ready").exists()
    });
    masters[0].pause();
    masters[1].pause();
    let out = finish(child);
    masters[0].resume();
    masters[1].resume();
    assert_eq!(out.code(), 9, "{out:?}");
    assert!(out.stderr.contains("lock lost"), "{out:?}");
}

#[test]
fn wait_forever_waits_until_the_holder_is_gone() {
    let masters = Masters::start(3);
    for m in masters.iter() {
        m.cmd(&["SET", "redlock:patient", "someone-else", "PX", "800"])
            .expect("SET");
    }
    let started = Instant::now();
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        "patient",
        "--ttl",
        "5s",
        "--wait",
        "forever",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "acquired while the other owner still held it"
    );
    no_keys(&masters);
}

#[test]
fn command_string_runs_in_sh_like_flock_c() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let file = tmp.file("out");
    let script = format!("echo \"$REDLOCK_RESOURCE $0\" > {file}; exit 4");
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        "shell",
        "--ttl",
        "5s",
        "-c",
        &script,
    ]);
    assert_eq!(out.code(), 4, "{out:?}");
    assert_eq!(read(&tmp.path("out")).trim(), "shell sh");
    no_keys(&masters);
    // Either a string or a CMD, not both.
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        "shell",
        "--ttl",
        "5s",
        "-c",
        "true",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 64, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn messages_show_human_durations_and_short_names() {
    let masters = Masters::start(3);
    // -v reports the validity left: `29.9s`, not `29.987654321s`.
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-v",
        "-r",
        "people",
        "--ttl",
        "30s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("valid for"), "{}", out.stderr);
    common::assert_human_durations(&out.stderr);
    // The longest name a lock may have, busy: the one-line refusal shows
    // its start and its size, not all of it.
    let long = "n".repeat(1024);
    for m in masters.iter() {
        m.cmd(&[
            "SET",
            &format!("redlock:{long}"),
            "someone-else",
            "PX",
            "30000",
        ])
        .expect("SET");
    }
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        &long,
        "--ttl",
        "5s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("\"{}\"… (1024 bytes)", "n".repeat(64))),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&"n".repeat(65)), "{}", out.stderr);
    // Too long to be a name at all: still one short line.
    let huge = "x".repeat(100 * 1024);
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-r",
        &huge,
        "--ttl",
        "5s",
        "--",
        "true",
    ]);
    assert_eq!(
        out.code(),
        64,
        "{}",
        &out.stderr[..out.stderr.len().min(300)]
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(
        out.stderr.len() < 400,
        "{} bytes of error",
        out.stderr.len()
    );
    assert!(out.stderr.contains("(102400 bytes)"), "{}", out.stderr);
}

#[test]
fn cmd_never_sees_a_master_password() {
    let masters = Masters::start_with(
        3,
        redlock_testing::ServerOptions::default().with_password("hunter2"),
    );
    let tmp = TempDir::new();
    let file = tmp.file("masters");
    // The URLs (passwords included) come from the environment, which CMD
    // inherits: the variable must be replaced, not passed on.
    let out = finish(start(
        redlock()
            .env("REDLOCK_MASTERS", masters.urls_csv())
            .args(["exec", "-r", "secret", "--ttl", "5s", "-c"])
            .arg(format!("printf %s \"$REDLOCK_MASTERS\" > {file}")),
    ));
    assert_eq!(out.code(), 0, "{out:?}");
    let seen = read(&tmp.path("masters"));
    assert!(!seen.contains("hunter2"), "CMD got a password: {seen}");
    assert_eq!(seen.matches("***").count(), 3, "{seen}");
    for m in masters.iter() {
        assert!(seen.contains(&format!("@127.0.0.1:{}", m.port())), "{seen}");
    }
}

#[test]
fn too_few_or_an_even_number_of_masters_is_warned_about_once() {
    for n in [1, 2, 4] {
        let masters = Masters::start(n);
        let out = run(&[
            "--masters",
            &masters.urls_csv(),
            "exec",
            "-r",
            "few",
            "--ttl",
            "5s",
            "--",
            "true",
        ]);
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{n}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("redlock: warning: ")
                && out.stderr.contains(&format!("{n} master")),
            "{n}: {}",
            out.stderr
        );
        // -q: cron mails any output; the operator chose the masters.
        let out = run(&[
            "--masters",
            &masters.urls_csv(),
            "exec",
            "-q",
            "-r",
            "few",
            "--ttl",
            "5s",
            "--",
            "true",
        ]);
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(out.stderr, "", "{n}: -q is quiet");
    }
}

#[test]
fn a_cmd_that_stops_at_once_stops_redlock_too() {
    // CMD stops the moment it starts, before redlock could have looked:
    // the stop must still reach the shell as a stopped job.
    use std::io::Write;
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, finished) = (tmp.file("ready"), tmp.file("finished"));
    let cmd = format!(
        "echo \"$$ $PPID\" > {ready}.tmp; kill -STOP $$; mv {ready}.tmp {ready}; echo done > {finished}"
    );
    let line = exec_line(&masters, "early", &cmd);
    let (session, mut keys) = job_control_shell();
    keys.write_all(format!("{line}\n").as_bytes())
        .expect("type the command");
    wait_until(Duration::from_secs(20), "CMD to start", || {
        !read(&tmp.path("ready.tmp")).is_empty()
    });
    let (cmd_pid, redlock_pid) = pids_in(&tmp.path("ready.tmp"));
    wait_for_job_stop(cmd_pid, redlock_pid);
    keys.write_all(b"fg\n").expect("type fg");
    wait_until(Duration::from_secs(20), "CMD to finish after fg", || {
        tmp.path("finished").exists()
    });
    keys.write_all(b"exit\n").expect("type exit");
    drop(keys);
    let out = session.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    wait_until(Duration::from_secs(10), "the lock to be released", || {
        masters.keys_everywhere("redlock:early").is_empty()
    });
}

#[test]
fn started_in_the_background_cmd_gets_the_terminal_on_fg() {
    use std::io::Write;
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let (ready, out_file) = (tmp.file("ready"), tmp.file("out"));
    let cmd = format!(
        "echo \"$$ $PPID\" > {ready}.tmp; mv {ready}.tmp {ready}; read line; echo \"got:$line\" > {out_file}"
    );
    let line = exec_line(&masters, "bg", &cmd);
    let (session, mut keys) = job_control_shell();
    // `&`: a background job, whose CMD then reads the terminal.
    keys.write_all(format!("{line} &\n").as_bytes())
        .expect("type the command");
    let (cmd_pid, redlock_pid) = started_pids(&tmp);
    // SIGTTIN stops CMD; redlock stops too, so the shell sees a stopped job.
    wait_for_job_stop(cmd_pid, redlock_pid);
    keys.write_all(b"fg\n").expect("type fg");
    wait_until(Duration::from_secs(20), "CMD to run and read", || {
        matches!(state(cmd_pid), Some('S' | 'R'))
    });
    keys.write_all(b"hello\n").expect("type a line");
    wait_until(Duration::from_secs(20), "CMD to read the line", || {
        !read(&tmp.path("out")).is_empty()
    });
    assert_eq!(read(&tmp.path("out")).trim(), "got:hello");
    keys.write_all(b"exit\n").expect("type exit");
    drop(keys);
    let out = session.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    wait_until(Duration::from_secs(10), "the lock to be released", || {
        masters.keys_everywhere("redlock:*").is_empty()
    });
}

/// `--client`: an exec holding the lock through one Redis client refuses
/// an exec through the other (the same keys and tokens), both ways, and
/// each releases what it took.
#[test]
fn an_exec_through_one_client_refuses_an_exec_through_the_other() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    for (holder, other) in [("fred", "redis-rs"), ("redis-rs", "fred")] {
        let (started, go) = (tmp.file(&format!("started-{holder}")), tmp.file("go"));
        let _ = std::fs::remove_file(tmp.path("go"));
        let script = format!("touch {started}; while [ ! -e {go} ]; do sleep 0.02; done; exit 0");
        let child = start(redlock().args([
            "--masters",
            &masters.urls_csv(),
            "--client",
            holder,
            "exec",
            "--resource",
            "shared",
            "--ttl",
            "30s",
            "--",
            "sh",
            "-c",
            &script,
        ]));
        wait_until(Duration::from_secs(20), "the holder's CMD to start", || {
            tmp.path(&format!("started-{holder}")).exists()
        });
        let ran = tmp.file(&format!("ran-{other}"));
        let out = run(&[
            "--masters",
            &masters.urls_csv(),
            "--client",
            other,
            "exec",
            "--resource",
            "shared",
            "--ttl",
            "10s",
            "--",
            "touch",
            &ran,
        ]);
        assert_eq!(out.code(), 75, "{holder} holds, {other} asks: {out:?}");
        assert!(
            !tmp.path(&format!("ran-{other}")).exists(),
            "{other}'s CMD ran while {holder} held the lock"
        );
        std::fs::write(tmp.path("go"), "").expect("write go");
        let out = finish(child);
        assert_eq!(out.code(), 0, "{holder}: {out:?}");
        no_keys(&masters);
    }
}
