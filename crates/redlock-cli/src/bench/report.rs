//! The human table of `redlock bench`, and the ratio lines under it.

use std::time::Duration;

use super::hist::LatencySummary;
use super::workload::Workload;
use super::{Config, Document, NAMES};
use crate::cli::BenchArgs;
use crate::output::{Align, Table};

/// `(workload, errors, successes, first error)` of every workload of a
/// configuration, for the warnings and the "every cycle failed" check.
pub(super) fn failures(c: &Config) -> [(&'static str, u64, u64, Option<&str>); 5] {
    fn w<'a>(name: &'static str, w: &'a Workload) -> (&'static str, u64, u64, Option<&'a str>) {
        (name, w.errors, w.cycles, w.first_error.as_deref())
    }
    [
        w("sequential", &c.sequential),
        w("fenced", &c.fenced),
        w("concurrent", &c.concurrent),
        (
            "contended",
            c.contended.errors,
            c.contended.acquisitions,
            c.contended.first_error.as_deref(),
        ),
        (
            "queued",
            c.queued.errors,
            c.queued.critical_sections,
            c.queued.first_error.as_deref(),
        ),
    ]
}

/// Which workload of a configuration a group of rows shows.
type Pick = fn(&Config) -> &Workload;

/// The table and the lines under it.
pub(super) fn render(doc: &Document, args: &BenchArgs) -> String {
    let mut out = format!(
        "redlock bench: single = {} alone; quorum = {} masters ({} needed)\n\
         {} iterations per workload, concurrency {}, contenders {}, ttl {}, warmup {}, per-master timeout {}, client {}, runtime {}\n\n",
        doc.masters.first().map_or("?", String::as_str),
        doc.quorum.masters,
        doc.quorum.quorum,
        doc.iterations,
        doc.concurrency,
        doc.contenders,
        crate::output::human_duration(args.ttl),
        doc.warmup,
        crate::output::human_duration(Duration::from_millis(doc.master_timeout_ms)),
        doc.client,
        doc.runtime,
    );
    let mut t = Table::new(&[
        ("workload", Align::Left),
        ("config", Align::Left),
        ("op", Align::Left),
        ("p50 µs", Align::Right),
        ("p90 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("max µs", Align::Right),
        ("rate", Align::Right),
        ("client cpu", Align::Right),
    ]);
    let configs = [(NAMES[0], &doc.single), (NAMES[1], &doc.quorum)];
    let picks: [(&str, Pick); 3] = [
        ("sequential", |c| &c.sequential),
        ("fenced", |c| &c.fenced),
        ("concurrent", |c| &c.concurrent),
    ];
    for (wi, (wname, pick)) in picks.into_iter().enumerate() {
        if wi > 0 {
            t.gap();
        }
        for (ci, (cname, config)) in configs.iter().enumerate() {
            let wl = if ci == 0 { wname } else { "" };
            workload_rows(&mut t, wl, cname, pick(config));
        }
    }
    t.gap();
    for (ci, (cname, config)) in configs.iter().enumerate() {
        let k = &config.contended;
        let wl = if ci == 0 { "contended" } else { "" };
        lat_row(
            &mut t,
            [wl, cname, "wait"],
            &k.wait,
            format!("{:.0} acquisitions/s", k.acquisitions_per_sec),
        );
        cpu(&mut t, k.client_cpu_us_per_acquisition, "acq");
        lat_row(
            &mut t,
            ["", "", "hand-off wait"],
            &k.handoff_wait,
            format!("{:.0} hand-offs/s", k.handoffs_per_sec),
        );
        lat_row(&mut t, ["", "", "release"], &k.release, String::new());
    }
    t.gap();
    for (ci, (cname, config)) in configs.iter().enumerate() {
        let q = &config.queued;
        let wl = if ci == 0 { "queued" } else { "" };
        lat_row(
            &mut t,
            [wl, cname, "wait"],
            &q.wait,
            format!("{:.0} CS/s", q.critical_sections_per_sec),
        );
        cpu(&mut t, q.client_cpu_us_per_critical_section, "CS");
        lat_row(&mut t, ["", "", "release"], &q.release, String::new());
    }
    if let Some(f) = &doc.faults {
        t.gap();
        let slowed = format!("slowed +{}ms", trim_ms(f.slow_one_way_ms));
        let mut first = true;
        for (label, w) in [(slowed.as_str(), &f.slowed), ("paused", &f.paused)] {
            if let Some(w) = w {
                workload_rows(&mut t, if first { "faults" } else { "" }, label, w);
                first = false;
            }
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    summary_lines(&mut out, doc);
    out
}

/// Acquire, release and cycle rows of one uncontended workload.
fn workload_rows(t: &mut Table, workload: &str, config: &str, w: &Workload) {
    lat_row(t, [workload, config, "acquire"], &w.acquire, String::new());
    lat_row(t, ["", "", "release"], &w.release, String::new());
    lat_row(
        t,
        ["", "", "cycle"],
        &w.cycle,
        format!("{:.0} cycles/s", w.cycles_per_sec),
    );
    cpu(t, w.client_cpu_us_per_cycle, "cycle");
}

fn lat_row(t: &mut Table, names: [&str; 3], l: &LatencySummary, rate: String) {
    let mut cells: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    cells.extend([
        l.p50_us.to_string(),
        l.p90_us.to_string(),
        l.p99_us.to_string(),
        l.max_us.to_string(),
        rate,
    ]);
    t.row(cells);
}

/// The client's CPU per operation goes on the row that carries the rate.
fn cpu(t: &mut Table, us: f64, per: &str) {
    if let Some(row) = t.last_row_mut() {
        row.push(format!("{us:.0} µs/{per}"));
    }
}

fn summary_lines(out: &mut String, doc: &Document) {
    let (s, q) = (&doc.single, &doc.quorum);
    // On loopback a round trip is pure CPU, shared by the client and every
    // server: N masters cost about N times the work on the same cores, a
    // cost that hosts of their own would pay in parallel. Say so where the
    // ratio is read.
    let caveat = if doc.masters.iter().all(|a| is_loopback(a)) {
        " (loopback exaggerates these ratios: a round trip here is pure CPU, shared by the client and every server; across hosts the servers work in parallel)"
    } else {
        ""
    };
    out.push_str(&format!(
        "quorum vs single: p50 cycle {} (sequential), {} (concurrent); throughput {}, {}; client cpu per cycle {}, {}{caveat}\n",
        ratio(q.sequential.cycle.p50_us, s.sequential.cycle.p50_us),
        ratio(q.concurrent.cycle.p50_us, s.concurrent.cycle.p50_us),
        ratio_f(q.sequential.cycles_per_sec, s.sequential.cycles_per_sec),
        ratio_f(q.concurrent.cycles_per_sec, s.concurrent.cycles_per_sec),
        ratio_f(q.sequential.client_cpu_us_per_cycle, s.sequential.client_cpu_us_per_cycle),
        ratio_f(q.concurrent.client_cpu_us_per_cycle, s.concurrent.client_cpu_us_per_cycle),
    ));
    out.push_str(&format!(
        "fenced vs plain: p50 cycle {} (single), {} (quorum): a fence is a second round trip to a quorum\n",
        ratio(s.fenced.cycle.p50_us, s.sequential.cycle.p50_us),
        ratio(q.fenced.cycle.p50_us, q.sequential.cycle.p50_us),
    ));
    out.push_str(&format!(
        "contended ({} tasks): the lock went to another task on {} of {} acquisitions (single), {} of {} (quorum)\n",
        doc.concurrency,
        s.contended.owner_changes,
        s.contended.acquisitions,
        q.contended.owner_changes,
        q.contended.acquisitions,
    ));
    out.push_str(&format!(
        "queued ({} tasks, the library's acquire and its FIFO queue): fewest/most critical sections per task {}/{} = {:.2} (single), {}/{} = {:.2} (quorum)\n",
        doc.contenders,
        s.queued.per_task_min,
        s.queued.per_task_max,
        s.queued.fairness,
        q.queued.per_task_min,
        q.queued.per_task_max,
        q.queued.fairness,
    ));
    match (&doc.faults, &doc.faults_skipped) {
        (Some(f), _) => {
            let vs_healthy = |w: &Option<Workload>, skipped: &Option<String>| match w {
                Some(w) => format!(
                    "{} the healthy quorum's",
                    ratio(w.cycle.p50_us, q.sequential.cycle.p50_us)
                ),
                None => format!("skipped: {}", skipped.as_deref().unwrap_or("?")),
            };
            out.push_str(&format!(
                "faults (quorum, master {}): p50 cycle with it slowed +{}ms each way {}; paused {}\n",
                f.master,
                trim_ms(f.slow_one_way_ms),
                vs_healthy(&f.slowed, &f.slowed_skipped),
                vs_healthy(&f.paused, &f.paused_skipped),
            ));
        }
        (None, Some(why)) => out.push_str(&format!("faults: skipped: {why}\n")),
        (None, None) => {}
    }
    for (cname, config) in [(NAMES[0], s), (NAMES[1], q)] {
        for (w, errors, _, first) in failures(config) {
            if errors > 0 {
                out.push_str(&format!(
                    "warning: {w}, {cname}: {errors} failed cycle(s); first: {}\n",
                    first.unwrap_or("?")
                ));
            }
        }
        if config.queued.exclusion_violations > 0 {
            out.push_str(&format!(
                "warning: queued, {cname}: {} time(s) two tasks were in the critical section at once\n",
                config.queued.exclusion_violations
            ));
        }
    }
    if let Some(f) = &doc.faults {
        for (w, name) in [(&f.slowed, "slowed"), (&f.paused, "paused")] {
            if let Some(w) = w.as_ref().filter(|w| w.errors > 0) {
                out.push_str(&format!(
                    "warning: faults, {name}: {} failed cycle(s); first: {}\n",
                    w.errors,
                    w.first_error.as_deref().unwrap_or("?")
                ));
            }
        }
    }
}

/// `20` for 20.0, `0.5` for 0.5.
fn trim_ms(ms: f64) -> String {
    let s = format!("{ms:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn ratio(q: u64, s: u64) -> String {
    if s == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.2}x", q as f64 / s as f64)
    }
}

fn ratio_f(q: f64, s: f64) -> String {
    if s > 0.0 {
        format!("{:.2}x", q / s)
    } else {
        "n/a".to_owned()
    }
}

/// Whether `address` (`host:port`, as the masters report it) is on this
/// machine's loopback interface.
fn is_loopback(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_recognised() {
        for a in [
            "127.0.0.1:7001",
            "127.8.0.1:1",
            "localhost:6379",
            "[::1]:6379",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "10.0.0.1:6379",
            "redis.example.com:6379",
            "[2001:db8::1]:6379",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn delays_print_without_trailing_zeros() {
        assert_eq!(trim_ms(20.0), "20");
        assert_eq!(trim_ms(0.5), "0.5");
        assert_eq!(trim_ms(0.0), "0");
    }

    #[test]
    fn ratios_of_zero_are_not_a_number() {
        assert_eq!(ratio(5, 0), "n/a");
        assert_eq!(ratio(3, 2), "1.50x");
        assert_eq!(ratio_f(1.0, 0.0), "n/a");
    }
}
