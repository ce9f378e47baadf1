//! `redlock inspect` end to end, against real `redis-server` masters.

mod common;

use std::time::Duration;

use common::{finish, read, redlock, run, start, wait_until, TempDir};
use redlock_harness::Masters;

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
    wait_until(Duration::from_secs(20), "the holder to start", || {
        !read(&tmp.path("token")).is_empty()
    });
    let token = read(&tmp.path("token"));
    let short = format!("{}…", &token[..8]);
    wait_until(Duration::from_secs(2), "the key on every master", || {
        masters.keys_everywhere("redlock:report").len() == 3
    });

    let out = run(&["--masters", &urls, "inspect", "--resource", "report"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        !out.stdout.contains(&token),
        "full token printed: {}",
        out.stdout
    );
    for m in masters.iter() {
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{} ", m.port())))
            .unwrap_or_else(|| panic!("no row for {}: {}", m.port(), out.stdout));
        assert!(row.contains(&short), "{row}");
        assert!(row.contains("yes  ") && !row.contains(" no "), "{row}");
    }
    assert!(
        out.stdout.contains(&format!(
            "held by quorum: yes (token {short} on 3 of 3 masters, 2 needed)"
        )),
        "{}",
        out.stdout
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
    assert_eq!(doc["held_by_quorum"], true, "{doc}");
    assert_eq!(doc["holders"], 2, "{doc}");
    assert_eq!(doc["quorum"], 2, "{doc}");
    assert_eq!(doc["masters"][2]["reachable"], false, "{doc}");
    assert_eq!(doc["masters"][0]["token_prefix"], short.as_str(), "{doc}");
    let ttl = doc["masters"][0]["ttl_ms"].as_i64().expect("ttl_ms");
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
    assert!(out.stdout.contains("01234567…"), "{}", out.stdout);
    let unreachable = out
        .stdout
        .lines()
        .filter(|l| l.contains("127.0.0.1:") && l.contains("  no "))
        .count();
    assert_eq!(unreachable, 2, "{}", out.stdout);
    assert!(out.stdout.contains("held by quorum: no"), "{}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}
