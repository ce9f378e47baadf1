//! `redlock unlock` end to end, against real `redis-server` masters.

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{finish, hostname, read, redlock, run, start, wait_until, TempDir};
use redlock_testing::Masters;

/// A `redlock exec` holding `resource` until `go` exists; returns it and
/// its token (the whole value of the key).
fn hold(masters: &Masters, tmp: &TempDir, resource: &str) -> (Child, String) {
    let (token_file, go) = (tmp.file("token"), tmp.file("go"));
    let script = format!(
        "printf %s \"$REDLOCK_TOKEN\" > {token_file}.tmp; mv {token_file}.tmp {token_file}; \
         while [ ! -e {go} ]; do sleep 0.02; done"
    );
    let holder = start(redlock().args([
        "--masters",
        &masters.urls_csv(),
        "exec",
        "--resource",
        resource,
        "--label",
        "holder",
        "--ttl",
        "30s",
        "-c",
        &script,
    ]));
    wait_until(Duration::from_secs(20), "the holder to start", || {
        !read(&tmp.path("token")).is_empty()
    });
    let token = read(&tmp.path("token"));
    let key = format!("redlock:{resource}");
    wait_until(Duration::from_secs(2), "the key on every master", || {
        masters
            .iter()
            .all(|m| m.get(&key).as_deref() == Some(token.as_str()))
    });
    (holder, token)
}

fn gone_everywhere(masters: &Masters, key: &str) {
    wait_until(
        Duration::from_secs(2),
        "the key gone on every master",
        || masters.keys_everywhere(key).is_empty(),
    );
}

/// `redlock ARGS` with `input` on its stdin.
fn run_with_stdin(args: &[&str], input: &str) -> common::Output {
    let mut child = redlock()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redlock");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    finish(child)
}

#[test]
fn unlock_by_token_removes_only_that_holders_keys() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let (holder, token) = hold(&masters, &tmp, "job");

    // A well-formed token that is not the holder's: nothing removed, and
    // the message says who holds the lock instead.
    let wrong = "0123456789abcdef0123456789abcdef";
    let out = run(&["--masters", &urls, "unlock", "-r", "job", "--token", wrong]);
    assert_eq!(out.code(), 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "not released: no master holds it with token 01234567; it is held by pid {} on {} (\"holder\")",
            holder.id(),
            hostname()
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&token[..9]),
        "token shown: {}",
        out.stderr
    );
    for m in masters.iter() {
        assert_eq!(m.get("redlock:job").as_deref(), Some(token.as_str()));
    }

    // The holder's token, whole: its keys go, on every master.
    let out = run(&["--masters", &urls, "unlock", "-r", "job", "--token", &token]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("released \"job\" (token {})", &token[..8])),
        "{}",
        out.stderr
    );
    gone_everywhere(&masters, "redlock:job");
    // Again: nothing holds it, and the resource is free; not an error.
    let out = run(&[
        "--masters",
        &urls,
        "unlock",
        "-q",
        "-r",
        "job",
        "--token",
        &token,
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stderr, "", "-q: {out:?}");

    std::fs::write(tmp.path("go"), "").expect("write go");
    let out = finish(holder);
    assert_eq!(out.code(), 0, "{out:?}");
}

#[test]
fn unlock_reads_the_token_from_stdin_and_takes_its_random_part_alone() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let (holder, token) = hold(&masters, &tmp, "piped");
    // The first 32 hex digits are the secret; the holder record after them
    // is completed from the masters.
    let random = token.split(' ').next().expect("random part");
    assert_eq!(random.len(), 32, "{token}");
    let out = run_with_stdin(
        &["--masters", &urls, "unlock", "-r", "piped", "--token", "-"],
        &format!("{random}\n"),
    );
    assert_eq!(out.code(), 0, "{out:?}");
    gone_everywhere(&masters, "redlock:piped");
    std::fs::write(tmp.path("go"), "").expect("write go");
    assert_eq!(finish(holder).code(), 0);
}

#[test]
fn unlock_force_names_the_holder_then_removes_its_keys() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let (holder, _token) = hold(&masters, &tmp, "stuck");
    let out = run(&["--masters", &urls, "unlock", "-r", "stuck", "--force"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let mut lines = out.stderr.lines();
    let warning = lines.next().unwrap_or_default();
    assert!(
        warning.starts_with(&format!(
            "redlock: warning: forcing \"stuck\" open: it is held by pid {} on {} (\"holder\") since ",
            holder.id(),
            hostname()
        )),
        "{}",
        out.stderr
    );
    assert!(warning.contains("keeps trusting its lock"), "{warning}");
    assert_eq!(
        lines.next(),
        Some("redlock: removed \"stuck\" on 3/3 masters"),
        "{}",
        out.stderr
    );
    gone_everywhere(&masters, "redlock:stuck");
    // The resource is free for the next contender at once.
    let out = run(&[
        "--masters",
        &urls,
        "exec",
        "-r",
        "stuck",
        "--ttl",
        "5s",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");

    // A key of the wrong type, where the lock key should be, goes too.
    masters[1]
        .cmd(&["HSET", "redlock:odd", "f", "v"])
        .expect("HSET");
    let out = run(&["--masters", &urls, "unlock", "-q", "-r", "odd", "--force"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stderr, "", "-q: {out:?}");
    gone_everywhere(&masters, "redlock:odd");

    std::fs::write(tmp.path("go"), "").expect("write go");
    finish(holder);
}

#[test]
fn unlock_needs_a_quorum_and_a_well_formed_token() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    masters[0]
        .cmd(&["SET", "redlock:r", "someone", "PX", "20000"])
        .expect("SET");
    masters[1].pause();
    masters[2].pause();
    let out = run(&[
        "--masters",
        &urls,
        "--connect-timeout",
        "300ms",
        "unlock",
        "-r",
        "r",
        "--force",
    ]);
    masters[1].resume();
    masters[2].resume();
    assert_eq!(out.code(), 69, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);

    for (args, needle) in [
        (&["unlock", "-r", "r"][..], "--token"),
        (&["unlock", "-r", "r", "--force", "--token", "x"], "--force"),
        (
            &["unlock", "-r", "r", "--token", "not-a-token-secret"],
            "--token",
        ),
    ] {
        let mut all = vec!["--masters", &urls];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(out.code(), 64, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("not-a-token-secret"), "{}", out.stderr);
    }
    assert_eq!(masters[0].get("redlock:r").as_deref(), Some("someone"));
}
