//! `redlock inspect` end to end, against real `redis-server` masters.

mod common;

use std::time::Duration;

use common::{finish, hostname, read, redlock, run, start, wait_until, TempDir};
use redlock_testing::Masters;

#[test]
fn inspect_shows_the_holder_on_each_master_and_the_quorum() {
    let masters = Masters::start(3);
    let urls = masters.urls_csv();
    let tmp = TempDir::new();
    let (token_file, go) = (tmp.file("token"), tmp.file("go"));
    let script = format!(
        "printf %s \"$REDLOCK_TOKEN\" > {token_file}.tmp; mv {token_file}.tmp {token_file}; \
         while [ ! -e {go} ]; do sleep 0.02; done"
    );
    let holder = start(redlock().args([
        "--masters",
        &urls,
        "exec",
        "--resource",
        "report",
        "--ttl",
        "30s",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    let pid = holder.id();
    let who = format!("pid {pid} on {}", hostname());
    wait_until(Duration::from_secs(20), "the holder to start", || {
        !read(&tmp.path("token")).is_empty()
    });
    let token = read(&tmp.path("token"));
    // Plain: the first 8 hex digits, no ellipsis.
    let short = token[..8].to_owned();
    wait_until(Duration::from_secs(2), "the key on every master", || {
        masters.keys_everywhere("redlock:report").len() == 3
    });

    let out = run(&["--masters", &urls, "inspect", "--resource", "report"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        !out.stdout.contains(&token[..9]),
        "more than 8 characters of the token printed: {}",
        out.stdout
    );
    for m in masters.iter() {
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{} ", m.port())))
            .unwrap_or_else(|| panic!("no row for {}: {}", m.port(), out.stdout));
        assert!(row.contains(" held "), "{row}");
        assert!(row.contains(&short), "{row}");
        assert!(row.contains(&who), "the holder named: {row}");
        assert!(row.contains(" ago"), "since when: {row}");
    }
    let verdict = out
        .stdout
        .lines()
        .find(|l| l.starts_with("held by quorum: "))
        .unwrap_or_else(|| panic!("no verdict: {}", out.stdout));
    assert!(
        verdict.starts_with(&format!("held by quorum: yes, by {who} since ")),
        "{verdict}"
    );
    assert!(verdict.contains(" left "), "{verdict}");
    assert!(
        verdict.ends_with(&format!("(token {short} on 3 of 3 masters, 2 needed)")),
        "{verdict}"
    );

    // One master paused: shown as unreachable, the quorum still holds.
    masters[2].pause();
    let out = run(&[
        "--masters",
        &urls,
        "--connect-timeout",
        "300ms",
        "inspect",
        "--resource",
        "report",
        "--json",
    ]);
    masters[2].resume();
    assert_eq!(out.code(), 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["schema"], 1, "{doc}");
    assert_eq!(doc["held_by_quorum"], true, "{doc}");
    assert_eq!(doc["holders"], 2, "{doc}");
    assert_eq!(doc["quorum"], 2, "{doc}");
    assert_eq!(doc["reachable"], 2, "{doc}");
    assert_eq!(doc["holder_token_prefix"], short.as_str(), "{doc}");
    assert_eq!(doc["holder_pid"], pid, "{doc}");
    assert_eq!(doc["holder_host"], hostname().as_str(), "{doc}");
    assert_eq!(doc["holder_label"], serde_json::Value::Null, "{doc}");
    assert!(doc["holder_since_unix_ms"].as_u64().is_some(), "{doc}");
    assert_eq!(doc["fence"], 0, "{doc}");
    let paused = &doc["masters"][2];
    assert_eq!(paused["state"], "unreachable", "{doc}");
    assert_eq!(paused["reachable"], false, "{doc}");
    assert!(
        paused["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
    let first = &doc["masters"][0];
    assert_eq!(first["state"], "held", "{doc}");
    assert_eq!(first["token_prefix"], short.as_str(), "{doc}");
    assert_eq!(first["holder_pid"], pid, "{doc}");
    assert_eq!(first["no_expiry"], false, "{doc}");
    let ttl = first["ttl_ms"].as_u64().expect("ttl_ms");
    assert!(ttl > 0 && ttl <= 30_000, "{doc}");

    std::fs::write(tmp.path("go"), "").expect("write go");
    assert_eq!(finish(holder).code(), 0);
    let out = run(&["--masters", &urls, "inspect", "--resource", "report"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout
            .contains("held by quorum: no (held on 0 of 3 masters, 2 needed)"),
        "{}",
        out.stdout
    );
    let free = out.stdout.lines().filter(|l| l.contains(" free ")).count();
    assert_eq!(free, 3, "{}", out.stdout);
}

#[test]
fn inspect_names_wrong_type_keys_keys_without_expiry_and_the_fence() {
    let masters = Masters::start(3);
    masters[0]
        .cmd(&["HSET", "redlock:odd", "field", "value"])
        .expect("HSET");
    masters[1]
        .cmd(&["SET", "redlock:odd", "set-by-hand"])
        .expect("SET");
    // The fence counters live in the hash named by the prefix.
    masters[2]
        .cmd(&["HSET", "redlock:", "odd", "7"])
        .expect("HSET fence");
    let urls = masters.urls_csv();
    let out = run(&["--masters", &urls, "inspect", "-r", "odd"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let row = |i: usize| {
        let port = masters[i].port();
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("no row for {port}: {}", out.stdout))
            .to_owned()
    };
    assert!(row(0).contains("wrong type"), "{}", out.stdout);
    assert!(row(0).contains("a hash key, not a lock"), "{}", out.stdout);
    assert!(row(1).contains("no expiry"), "{}", out.stdout);
    assert!(row(1).contains("set-by-"), "{}", out.stdout);
    assert!(row(2).contains(" free "), "{}", out.stdout);
    assert!(out.stdout.contains("fence: 7"), "{}", out.stdout);

    let out = run(&["--masters", &urls, "inspect", "-r", "odd", "--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let m = &doc["masters"];
    assert_eq!(m[0]["state"], "wrong_type", "{doc}");
    assert_eq!(m[0]["wrong_type"], "hash", "{doc}");
    assert_eq!(m[0]["reachable"], true, "{doc}");
    assert_eq!(m[1]["state"], "held", "{doc}");
    assert_eq!(m[1]["token_prefix"], "set-by-h", "{doc}");
    assert_eq!(m[1]["no_expiry"], true, "{doc}");
    assert_eq!(m[1]["ttl_ms"], serde_json::Value::Null, "{doc}");
    assert_eq!(m[1]["holder_pid"], serde_json::Value::Null, "{doc}");
    assert_eq!(m[2]["state"], "free", "{doc}");
    assert_eq!(m[2]["fence"], 7, "{doc}");
    assert_eq!(doc["fence"], 7, "{doc}");
    assert_eq!(doc["held_by_quorum"], false, "{doc}");
}

#[test]
fn inspect_with_a_majority_unreachable_prints_what_it_sees_and_exits_69() {
    let masters = Masters::start(3);
    masters[0]
        .cmd(&["SET", "redlock:orphan", "0123456789abcdef", "PX", "20000"])
        .expect("SET");
    masters[1].pause();
    masters[2].pause();
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "--connect-timeout",
        "300ms",
        "inspect",
        "--resource",
        "orphan",
    ]);
    masters[1].resume();
    masters[2].resume();
    assert_eq!(out.code(), 69, "{out:?}");
    assert!(out.stdout.contains("01234567 "), "{}", out.stdout);
    assert!(
        out.stdout.contains("key \"redlock:orphan\""),
        "{}",
        out.stdout
    );
    let unreachable = out
        .stdout
        .lines()
        .filter(|l| l.contains("127.0.0.1:") && l.contains(" unreachable "))
        .count();
    assert_eq!(unreachable, 2, "{}", out.stdout);
    assert!(out.stdout.contains("held by quorum: no"), "{}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}
