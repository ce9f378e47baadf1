//! `redlock bench` end to end, against real `redis-server` masters. These
//! check shape and consistency, never speed: machines are noisy.

mod common;

use common::{run, TempDir};
use redlock_testing::Masters;
use serde_json::Value;

fn latency_ok(l: &Value, count: u64, what: &str) {
    assert_eq!(l["count"], count, "{what}: {l}");
    let get = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("{what}.{k}: {l}"));
    let (min, p50, p90, p99, max) = (
        get("min_us"),
        get("p50_us"),
        get("p90_us"),
        get("p99_us"),
        get("max_us"),
    );
    assert!(
        min >= 1 && min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{what}: {l}"
    );
    assert!(l["mean_us"].as_f64().is_some(), "{what}: {l}");
}

/// The state letter of a process (`T`: stopped), Linux only.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn workload_ok(wl: &Value, cycles: u64, tasks: u64, what: &str) {
    assert_eq!(wl["cycles"], cycles, "{what}: {wl}");
    assert_eq!(wl["errors"], 0, "{what}: {wl}");
    assert_eq!(wl["tasks"], tasks, "{what}: {wl}");
    assert!(
        wl["cycles_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{what}: {wl}"
    );
    assert!(
        wl["client_cpu_us_per_cycle"]
            .as_f64()
            .is_some_and(|c| c >= 0.0),
        "{what}: {wl}"
    );
    for op in ["acquire", "release", "cycle"] {
        latency_ok(&wl[op], cycles, &format!("{what}.{op}"));
    }
}

fn queued_ok(q: &Value, sections: u64, tasks: u64, what: &str) {
    assert_eq!(q["tasks"], tasks, "{what}: {q}");
    assert_eq!(q["critical_sections"], sections, "{what}: {q}");
    assert_eq!(q["errors"], 0, "{what}: {q}");
    assert_eq!(q["exclusion_violations"], 0, "{what}: {q}");
    let (min, max) = (
        q["per_task_min"].as_u64().expect("per_task_min"),
        q["per_task_max"].as_u64().expect("per_task_max"),
    );
    // Every task ran at least one critical section, and together they
    // ran all of them.
    assert!(1 <= min && min <= max && max <= sections, "{what}: {q}");
    let fairness = q["fairness"].as_f64().expect("fairness");
    assert!(
        (fairness - min as f64 / max as f64).abs() < 0.01,
        "{what}: {q}"
    );
    assert!(
        q["critical_sections_per_sec"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{what}: {q}"
    );
    latency_ok(&q["wait"], sections, &format!("{what}.wait"));
    latency_ok(&q["release"], sections, &format!("{what}.release"));
}

#[test]
fn bench_json_covers_single_and_quorum_and_the_plot_has_both() {
    let masters = Masters::start(3);
    let tmp = TempDir::new();
    let plot = tmp.file("bench.svg");
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "bench",
        "--json",
        "--iterations",
        "40",
        "--concurrency",
        "4",
        "--contenders",
        "3",
        "--warmup",
        "5",
        "--ttl",
        "5s",
        "--plot",
        &plot,
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["runtime"], "multi", "the default runtime: {doc}");
    assert_eq!(doc["iterations"], 40);
    assert_eq!(doc["concurrency"], 4);
    assert_eq!(doc["contenders"], 3);
    assert_eq!(doc["ttl_ms"], 5000);
    assert_eq!(doc["masters"].as_array().map(Vec::len), Some(3), "{doc}");
    for (name, n, q) in [("single", 1, 1), ("quorum", 3, 2)] {
        let c = &doc[name];
        assert_eq!(c["masters"], n, "{name}: {c}");
        assert_eq!(c["quorum"], q, "{name}: {c}");
        for (w, tasks) in [("sequential", 1), ("fenced", 1), ("concurrent", 4)] {
            workload_ok(&c[w], 40, tasks, &format!("{name}.{w}"));
        }
        queued_ok(&c["queued"], 40, 3, &format!("{name}.queued"));
        let k = &c["contended"];
        assert_eq!(k["tasks"], 4, "{k}");
        assert_eq!(k["acquisitions"], 40, "{k}");
        assert_eq!(k["errors"], 0, "{k}");
        assert!(
            k["acquisitions_per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{k}"
        );
        // Hand-offs are acquisitions that went to another task: possibly
        // none, if one task kept winning.
        let changes = k["owner_changes"].as_u64().expect("owner_changes");
        assert!(changes < 40, "{k}");
        assert_eq!(k["handoff_wait"]["count"], changes, "{k}");
        if changes > 0 {
            latency_ok(
                &k["handoff_wait"],
                changes,
                &format!("{name}.contended.handoff_wait"),
            );
            assert!(
                k["handoffs_per_sec"].as_f64().is_some_and(|r| r > 0.0),
                "{k}"
            );
        }
        latency_ok(&k["wait"], 40, &format!("{name}.contended.wait"));
    }
    // A cycle includes its acquire.
    let s = &doc["quorum"]["sequential"];
    assert!(
        s["cycle"]["p50_us"].as_u64() >= s["acquire"]["p50_us"].as_u64(),
        "{s}"
    );
    // The faults ran on the last master: slowed through the proxy; not
    // paused, since these masters are not children of redlock.
    let f = &doc["faults"];
    assert_eq!(doc["faults_skipped"], Value::Null, "{doc}");
    assert_eq!(f["master"], doc["masters"][2], "{f}");
    assert_eq!(f["slow_one_way_ms"], 20.0, "{f}");
    workload_ok(&f["slowed"], 40, 1, "faults.slowed");
    assert_eq!(f["slowed_skipped"], Value::Null, "{f}");
    assert_eq!(f["paused"], Value::Null, "{f}");
    let why = f["paused_skipped"].as_str().unwrap_or_default();
    assert!(why.contains("--spawn"), "{f}");
    // ... and none was left stopped.
    for m in masters.iter() {
        assert_ne!(process_state(m.pid()), Some('T'), "{}", m.url());
    }

    let svg = std::fs::read_to_string(tmp.path("bench.svg")).expect("plot written");
    assert!(svg.starts_with("<svg"), "not an SVG");
    assert!(svg.contains("single master: p50"), "legend names single");
    assert!(svg.contains("quorum (2 of 3): p50"), "legend names quorum");
    assert!(
        svg.contains("one slowed: p50"),
        "legend names the slowed quorum"
    );
    assert!(
        svg.matches("<polyline").count() >= 8,
        "3 panels x 2 curves, and the fault panel's 2"
    );
    assert_eq!(
        masters.keys_everywhere("redlock:*"),
        Vec::<(usize, String)>::new()
    );
}

#[test]
fn bench_table_names_every_workload() {
    let masters = Masters::start(2);
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "bench",
        "--iterations",
        "10",
        "--concurrency",
        "2",
        "--warmup",
        "0",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    for word in [
        "sequential",
        "concurrent",
        "contended",
        "single",
        "quorum",
        "p99 µs",
        "cycles/s",
        "hand-offs/s",
        "fenced",
        "queued",
        "CS/s",
        "fewest/most",
        "faults: skipped",
    ] {
        assert!(out.stdout.contains(word), "{word} missing:\n{}", out.stdout);
    }
    assert_eq!(out.stderr, "", "no progress bar without a terminal");
    let headline = out
        .stdout
        .lines()
        .find(|l| l.starts_with("quorum vs single:"))
        .unwrap_or_else(|| panic!("no headline ratio line:\n{}", out.stdout));
    assert!(
        headline.contains("loopback exaggerates"),
        "the ratio line says what loopback does to it: {headline}"
    );
}

/// `redlock --spawn 3 bench --json` with `runtime` (the default when
/// `None`), 20 iterations over 2 tasks and a master slowed by 1 ms: the
/// JSON document, after checking the run succeeded.
fn small_spawned_bench(runtime: Option<&str>) -> Value {
    let mut args = vec!["--spawn", "3", "bench", "--json"];
    if let Some(r) = runtime {
        args.extend(["--runtime", r]);
    }
    args.extend([
        "--iterations",
        "20",
        "--concurrency",
        "2",
        "--contenders",
        "2",
        "--warmup",
        "2",
        "--slow-by",
        "1ms",
    ]);
    let out = run(&args);
    assert_eq!(out.code(), 0, "{out:?}");
    serde_json::from_str(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn spawned_masters_are_paused_for_the_fault_scenario_and_resumed() {
    let doc = small_spawned_bench(None);
    let f = &doc["faults"];
    assert_eq!(f["slow_one_way_ms"], 1.0, "{f}");
    workload_ok(&f["slowed"], 20, 1, "faults.slowed");
    workload_ok(&f["paused"], 20, 1, "faults.paused");
    assert_eq!(f["paused_skipped"], Value::Null, "{f}");
}

/// Every workload and both fault scenarios on one thread: nothing of the
/// benchmark needs a second worker (a paused master is resumed, the
/// slowed one's proxy runs on a thread of its own).
#[test]
fn the_benchmark_runs_on_a_current_thread_runtime_when_asked() {
    let doc = small_spawned_bench(Some("current"));
    assert_eq!(doc["runtime"], "current", "{doc}");
    for name in ["single", "quorum"] {
        for (w, tasks) in [("sequential", 1), ("fenced", 1), ("concurrent", 2)] {
            workload_ok(&doc[name][w], 20, tasks, &format!("{name}.{w}"));
        }
        queued_ok(&doc[name]["queued"], 20, 2, &format!("{name}.queued"));
    }
    workload_ok(&doc["faults"]["slowed"], 20, 1, "faults.slowed");
    workload_ok(&doc["faults"]["paused"], 20, 1, "faults.paused");
}

#[test]
fn faults_are_skipped_when_asked() {
    let masters = Masters::start(3);
    let out = run(&[
        "--masters",
        &masters.urls_csv(),
        "bench",
        "--json",
        "--no-faults",
        "--iterations",
        "5",
        "--warmup",
        "0",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["faults"], Value::Null, "{doc}");
    assert_eq!(doc["faults_skipped"], "--no-faults", "{doc}");
}

#[test]
fn an_unwritable_plot_path_fails_before_the_benchmark_runs() {
    let masters = Masters::start(1);
    let tmp = TempDir::new();
    for path in [
        tmp.file("no-such-dir/bench.svg"),
        // A directory cannot be written as a file either.
        tmp.file(""),
    ] {
        let out = run(&[
            "--masters",
            &masters.urls_csv(),
            "bench",
            "--iterations",
            "10",
            "--warmup",
            "0",
            "--plot",
            &path,
        ]);
        assert_eq!(out.code(), 64, "{path}: {out:?}");
        assert_eq!(out.stdout, "", "{path}: the benchmark ran: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.contains("--plot"), "{out:?}");
        assert!(masters[0].calls("set") == 0, "{path}: the benchmark ran");
    }
    // A writable path is checked without leaving a file behind when the
    // run fails later (here: no master answers).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let plot = tmp.file("later.svg");
    let out = run(&[
        "--masters",
        &format!("redis://127.0.0.1:{port}"),
        "bench",
        "--plot",
        &plot,
    ]);
    assert_eq!(out.code(), 69, "{out:?}");
    assert!(
        !tmp.path("later.svg").exists(),
        "an empty plot file was left"
    );
}
