//! Bad input gives one clear line and the documented status; `--spawn`
//! never leaves a server behind.

mod common;

use std::time::Duration;

use common::{
    alive_named, children_named, finish, read, redlock, run, signal, start, wait_until, TempDir,
};

fn one_clear_line(args: &[&str], status: i32) -> String {
    let out = run(args);
    assert_eq!(out.code(), status, "{args:?}: {out:?}");
    assert_eq!(out.stdout, "", "{args:?}");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "{args:?}: one line expected:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("redlock: error: "),
        "{args:?}: {}",
        out.stderr
    );
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!out.stderr.contains(bad), "{args:?}: {}", out.stderr);
    }
    out.stderr
}

#[test]
fn bad_arguments_are_one_line_and_status_64() {
    let m = "redis://127.0.0.1:6399";
    for (args, needle) in [
        (&["frobnicate"][..], "frobnicate"),
        (
            &["--masters", m, "exec", "--ttl", "1s", "--", "true"],
            "--resource",
        ),
        (
            &["--masters", m, "exec", "--resource", "r", "--", "true"],
            "--ttl",
        ),
        (
            &["--masters", m, "exec", "--resource", "r", "--ttl", "1s"],
            "CMD",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "--resource",
                "r",
                "--ttl",
                "soon",
                "--",
                "true",
            ],
            "soon",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "--resource",
                "r",
                "--ttl",
                "0s",
                "--",
                "true",
            ],
            "TTL",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "--resource",
                "r",
                "--ttl",
                "2ms",
                "--",
                "true",
            ],
            "--ttl",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "--resource",
                "",
                "--ttl",
                "1s",
                "--",
                "true",
            ],
            "resource name is empty",
        ),
        (&["--spawn", "0", "inspect", "--resource", "r"], "--spawn"),
        (
            &[
                "--client",
                "hiredis",
                "--masters",
                m,
                "inspect",
                "--resource",
                "r",
            ],
            "hiredis",
        ),
        (
            &["--spawn", "1", "--masters", m, "inspect", "--resource", "r"],
            "--spawn",
        ),
        (&["inspect", "--resource", "r"], "--masters"),
        (
            &["--masters", "localhost:6379", "inspect", "--resource", "r"],
            "localhost:6379",
        ),
        (
            &["--masters", "http://h:1", "inspect", "--resource", "r"],
            "http",
        ),
        (
            &[
                "--masters",
                "redis://u:hunter2@h:notaport",
                "inspect",
                "--resource",
                "r",
            ],
            "***",
        ),
        (
            &[
                "--masters",
                &format!("{m},{m}"),
                "inspect",
                "--resource",
                "r",
            ],
            "same",
        ),
        (
            &["--masters", m, "bench", "--iterations", "0"],
            "--iterations",
        ),
        (&["--masters", m, "bench", "--runtime", "fast"], "--runtime"),
        (
            &["--masters", m, "--prefix", "", "inspect", "-r", "r"],
            "prefix",
        ),
        // Durations too long to add to a clock reading are refused before
        // anything runs (a huge --kill-after once panicked on a lost lock).
        (
            &[
                "--masters",
                m,
                "exec",
                "-r",
                "r",
                "--ttl",
                "5s",
                "--kill-after",
                "18446744073709551615s",
                "--",
                "true",
            ],
            "--kill-after",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "-r",
                "r",
                "--ttl",
                "5s",
                "--wait",
                "18446744073709551615s",
                "--",
                "true",
            ],
            "--wait",
        ),
        (
            &[
                "--masters",
                m,
                "exec",
                "-r",
                "r",
                "--ttl",
                "500000000000s",
                "--",
                "true",
            ],
            "--ttl",
        ),
        (
            &[
                "--masters",
                m,
                "--master-timeout",
                "18446744073709551615s",
                "inspect",
                "-r",
                "r",
            ],
            "--master-timeout",
        ),
        (
            &[
                "--masters",
                m,
                "--connect-timeout",
                "18446744073709551615s",
                "inspect",
                "-r",
                "r",
            ],
            "--connect-timeout",
        ),
    ] {
        let line = one_clear_line(args, 64);
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(!line.contains("hunter2"), "password printed: {line}");
    }
}

#[test]
fn a_ttl_above_max_ttl_is_one_usage_line_naming_both_options() {
    let m = "redis://127.0.0.1:6399";
    for args in [
        // The default --max-ttl is 60s.
        &[
            "--masters",
            m,
            "exec",
            "-r",
            "r",
            "--ttl",
            "2m",
            "--",
            "true",
        ][..],
        &[
            "--masters",
            m,
            "--max-ttl",
            "10s",
            "exec",
            "-r",
            "r",
            "--ttl",
            "30s",
            "--",
            "true",
        ],
        &["--masters", m, "bench", "--ttl", "61s"],
    ] {
        let line = one_clear_line(args, 64);
        assert!(
            line.contains("--ttl") && line.contains("--max-ttl"),
            "{args:?}: {line}"
        );
        assert!(line.contains("restart-guard window"), "{args:?}: {line}");
    }
    // From the environment too, and for commands that take no lock: a
    // --max-ttl the per-master timeout does not fit under is refused.
    let out = finish(start(redlock().env("REDLOCK_MAX_TTL", "5s").args([
        "--masters",
        m,
        "exec",
        "-r",
        "r",
        "--ttl",
        "6s",
        "--",
        "true",
    ])));
    assert_eq!(out.code(), 64, "{out:?}");
    assert!(out.stderr.contains("--max-ttl 5s"), "{}", out.stderr);
    let line = one_clear_line(
        &["--masters", m, "--max-ttl", "40ms", "inspect", "-r", "r"],
        64,
    );
    assert!(line.contains("--max-ttl"), "{line}");
}

#[test]
fn a_larger_max_ttl_allows_a_longer_ttl() {
    let masters = redlock_testing::Masters::start(1);
    let ok = |args: &[&str]| {
        let mut all = vec!["--masters".to_owned(), masters.urls_csv()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = run(&all);
        assert_eq!(out.code(), 0, "{args:?}: {out:?}");
    };
    ok(&[
        "--max-ttl",
        "5m",
        "exec",
        "-q",
        "-r",
        "r",
        "--ttl",
        "2m",
        "--",
        "true",
    ]);
    ok(&["exec", "-q", "-r", "r", "--ttl", "60s", "--", "true"]);
    let out = finish(start(redlock().env("REDLOCK_MAX_TTL", "3m").args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "-q",
        "-r",
        "r",
        "--ttl",
        "3m",
        "--",
        "true",
    ])));
    assert_eq!(out.code(), 0, "{out:?}");
}

#[test]
fn unreachable_masters_are_one_line_and_status_69() {
    // A port nobody listens on: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let line = one_clear_line(
        &[
            "--masters",
            &url,
            "exec",
            "--resource",
            "r",
            "--ttl",
            "5s",
            "--",
            "true",
        ],
        69,
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    let line = one_clear_line(&["--masters", &url, "bench", "--iterations", "1"], 69);
    assert!(line.contains("reachable"), "{line}");
}

#[test]
fn help_and_version_succeed() {
    let out = run(&["--help"]);
    assert_eq!(out.code(), 0);
    assert!(
        out.stdout.contains("Exit status:") && out.stdout.contains("75"),
        "{}",
        out.stdout
    );
    let out = run(&["bench", "--help"]);
    assert_eq!(out.code(), 0);
    assert!(
        out.stdout.contains("\"handoffs_per_sec\""),
        "schema documented: {}",
        out.stdout
    );
    let out = run(&["exec", "--help"]);
    assert_eq!(out.code(), 0);
    for documented in [
        "--conflict-exit-code",
        "--lost-exit-code",
        "--wait forever",
        "-c, --command <STRING>",
        "--conflict-exit-code 0",
    ] {
        assert!(
            out.stdout.contains(documented),
            "{documented} not in exec --help: {}",
            out.stdout
        );
    }
    for help in [run(&["--help"]), run(&["exec", "--help"])] {
        for documented in [
            "--max-ttl <DURATION>",
            "REDLOCK_MAX_TTL",
            "restart-guard",
            "deployment-wide",
        ] {
            assert!(
                help.stdout.contains(documented),
                "{documented} not in --help: {}",
                help.stdout
            );
        }
    }
    let out = run(&["unlock", "--help"]);
    assert_eq!(out.code(), 0);
    for documented in [
        "--token <TOKEN>",
        "--force",
        "DANGER",
        "--token -",
        "keeps trusting",
    ] {
        assert!(
            out.stdout.contains(documented),
            "{documented} not in unlock --help: {}",
            out.stdout
        );
    }
    let out = run(&["--version"]);
    assert_eq!(out.code(), 0);
    assert!(out.stdout.starts_with("redlock "), "{}", out.stdout);
}

#[test]
fn missing_redis_server_names_the_install_step() {
    let empty = TempDir::new();
    let out = finish(start(redlock().env("PATH", empty.file("")).args([
        "--spawn",
        "1",
        "inspect",
        "--resource",
        "r",
    ])));
    assert_eq!(out.code(), 69, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("apt-get install -y redis-server"),
        "{}",
        out.stderr
    );
}

#[test]
fn spawned_servers_are_stopped_when_redlock_exits() {
    let tmp = TempDir::new();
    let (ppid_file, go) = (tmp.file("ppid"), tmp.file("go"));
    let script = format!(
        "echo $PPID > {ppid_file}.tmp; mv {ppid_file}.tmp {ppid_file}; while [ ! -e {go} ]; do sleep 0.02; done"
    );
    let child = start(redlock().args([
        "--spawn",
        "2",
        "exec",
        "--resource",
        "r",
        "--ttl",
        "10s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    let redlock_pid = child.id();
    wait_until(Duration::from_secs(20), "CMD to start", || {
        !read(&tmp.path("ppid")).is_empty()
    });
    assert_eq!(
        read(&tmp.path("ppid")).trim(),
        redlock_pid.to_string(),
        "CMD is redlock's child"
    );
    let servers = children_named(redlock_pid, "redis-server");
    assert_eq!(servers.len(), 2, "two spawned servers");
    std::fs::write(tmp.path("go"), "").expect("write go");
    let out = finish(child);
    assert_eq!(out.code(), 0, "{out:?}");
    for pid in servers {
        assert!(
            !alive_named(pid, "redis-server"),
            "server {pid} left running"
        );
    }
}

#[test]
fn spawned_servers_are_stopped_when_redlock_is_terminated() {
    let child = start(redlock().args(["--spawn", "2", "bench", "--iterations", "10000000"]));
    let redlock_pid = child.id();
    let mut servers = Vec::new();
    wait_until(Duration::from_secs(20), "the servers to start", || {
        servers = children_named(redlock_pid, "redis-server");
        servers.len() == 2
    });
    // Let the benchmark get going, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    signal(redlock_pid, "TERM");
    let out = finish(child);
    assert_eq!(out.code(), 128 + 15, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("SIGTERM"), "{}", out.stderr);
    for pid in servers {
        assert!(
            !alive_named(pid, "redis-server"),
            "server {pid} left running"
        );
    }
}

#[test]
fn unusable_tls_ca_is_one_line_and_a_usage_error() {
    let out = run(&[
        "--masters",
        "rediss://127.0.0.1:1",
        "--tls-ca",
        "/nonexistent/ca.pem",
        "exec",
        "--resource",
        "r",
        "--ttl",
        "10s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 64, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("/nonexistent/ca.pem"), "{out:?}");
}
