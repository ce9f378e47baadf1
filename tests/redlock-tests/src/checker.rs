//! The chaos run's checker: reads every worker's event log (see
//! [`crate::events`]) and finds where mutual exclusion failed.
//!
//! Three independent checks, all on the one monotonic timeline the workers
//! log on:
//!
//! 1. **Overlapping holds.** A worker believes it holds the lock from the
//!    moment `acquire` returned until the earlier of its validity end and
//!    the moment it called `release`. Two such intervals of different
//!    workers that overlap mean two holders at once. Pauses cannot fake this
//!    one: a paused holder's interval still ends at its validity.
//! 2. **Overlapping protected actions.** Each committed action spans
//!    `[check_ok, commit]`: from the validity check before acting to the
//!    acknowledgement of its write. Two overlapping spans of different
//!    workers are a violation: both checked validity before acting, and
//!    their read-modify-writes interleaved.
//! 3. **The counter.** Ordered by commit time, each action must have read
//!    exactly what the previous one wrote (0 first), and the final value must
//!    be the last value written. `lost_updates` (commits minus final value)
//!    must be 0. This check trusts no timestamp: it catches any write the
//!    logs do not explain.
//!
//! One case is excused, and reported: a worker frozen by the fault
//! scheduler between its last validity check and its write's
//! acknowledgement. Whether its write landed in time cannot be told, and a
//! write that lands after validity is the limit no lock service can
//! prevent (a process pause between the check and the effect; fencing
//! tokens are the answer). Such an action is left out of check 2, and check
//! 3 skips the steps its write might have landed in. Check 1 excuses
//! nothing.
//!
//! # Fenced runs
//!
//! [`check_fenced`] judges workers that hold fenced locks and act on a
//! fenced counter (`chaos_worker --fenced`), and excuses nothing: a paused
//! holder is exactly what the fence is for.
//!
//! 1. **Overlapping holds**, as above.
//! 2. **Fences.** Every lock has a fence, no fence is handed out twice,
//!    and a lock whose acquire attempt began after another lock's acquire
//!    had returned has the higher fence. When the attempt began is read
//!    from the lock's validity: `valid_until - ttl` is the attempt's start
//!    minus the drift margin, so never later than the start. (Comparing
//!    the times the `acquired` lines were logged would not do: a worker
//!    frozen between its acquire and its log line logs a lower fence after
//!    a successor's higher one, and nothing is wrong.) This covers every
//!    commit too: a commit comes after its lock's acquire.
//! 3. **The counter, in the store's order.** A committed write's log line
//!    can come long after the write (the worker was frozen in between), so
//!    commit times do not order the writes; the values do. Sorted by value
//!    written, each commit must have read the value the previous one wrote
//!    (0 first), so two commits that read the same value (a lost update)
//!    break the chain; the counter must end at the last value written; and
//!    the fences of successive writes never decrease (the store refuses a
//!    lower one). `lost_updates` must be 0.
//!
//! Overlapping actions are not checked: a stale holder acting while its
//! successor does is the case under test, and the store, not the clock,
//! decides which of them counts.
//!
//! The rules (half-open overlaps, the fence order, the fenced store's
//! refusal of a lower fence) are `redlock_checker`'s, shared with the
//! simulator; this module reads the logs and reports what they find.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use redlock_checker::{fence_order as fence_rules, overlaps as overlap_pairs};
use redlock_checker::{FenceRule, FencedStore, Grant, Interval};

use crate::events::Event;

/// One worker's parsed log.
#[derive(Clone, Debug)]
pub struct WorkerLog {
    /// The worker's id.
    pub worker: usize,
    /// Its events, in log order.
    pub events: Vec<Event>,
}

/// A span during which the fault scheduler had the worker stopped
/// (`from` before SIGSTOP was sent, `to` after SIGCONT was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pause {
    /// The paused worker.
    pub worker: usize,
    /// Start, monotonic ns.
    pub from: u64,
    /// End, monotonic ns.
    pub to: u64,
}

/// A half-open interval `[from, to)` of one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The worker.
    pub worker: usize,
    /// Start, monotonic ns.
    pub from: u64,
    /// End, monotonic ns.
    pub to: u64,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} [{}, {}) ({} us)",
            self.worker,
            self.from,
            self.to,
            self.to.saturating_sub(self.from) / 1000
        )
    }
}

/// Two spans of different workers that overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// The span that started first.
    pub first: Span,
    /// The span that started inside it.
    pub second: Span,
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.first.to.min(self.second.to) - self.second.from;
        write!(
            f,
            "{} overlaps {} by {} us",
            self.first,
            self.second,
            shared / 1000
        )
    }
}

/// A step of the counter's history that the logs do not explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// What was expected (the previous write, or 0).
    pub expected: i64,
    /// What was found (a read, or the final value).
    pub found: i64,
    /// Where: the worker and time of the read, or `None` for the final
    /// value.
    pub at: Option<(usize, u64)>,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((w, t)) => write!(
                f,
                "worker {w} read {} at {t}, but the last committed write was {}",
                self.found, self.expected
            ),
            None => write!(
                f,
                "final counter {} but the last committed write was {}",
                self.found, self.expected
            ),
        }
    }
}

/// A fence that breaks the promise: handed out twice, lower than an
/// earlier lock's, or accepted by the counter after a higher one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceBreak {
    /// What is wrong.
    pub what: &'static str,
    /// The earlier lock or write: worker, time logged, fence.
    pub earlier: (usize, u64, u64),
    /// The later one.
    pub later: (usize, u64, u64),
}

impl fmt::Display for FenceBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ew, et, ef) = self.earlier;
        let (lw, lt, lf) = self.later;
        write!(
            f,
            "{}: worker {lw} fence {lf} (at {lt}) after worker {ew} fence {ef} (at {et})",
            self.what
        )
    }
}

/// One committed read-modify-write.
#[derive(Clone, Copy, Debug)]
struct Action {
    worker: usize,
    check: u64,
    read_t: u64,
    read: i64,
    /// The last validity check before the write: the re-check, or the
    /// first check when the worker does not re-check.
    recheck: u64,
    commit_t: u64,
    written: i64,
    valid_until: u64,
    fence: Option<u64>,
}

/// One acquired lock.
#[derive(Clone, Copy, Debug)]
struct Hold {
    worker: usize,
    acquired: u64,
    valid_until: u64,
    fence: Option<u64>,
}

/// What the checker found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Workers whose logs were read.
    pub workers: usize,
    /// Locks acquired (`acquired` events).
    pub cycles: usize,
    /// Cycles whose release returned.
    pub released: usize,
    /// Releases that some master did not confirm.
    pub release_incomplete: usize,
    /// Committed increments.
    pub commits: usize,
    /// Aborted actions, by reason.
    pub aborts: BTreeMap<String, usize>,
    /// Acquisitions that gave up, by reason.
    pub acquire_failures: BTreeMap<String, usize>,
    /// Commits acknowledged after the lock's validity had ended.
    pub late_commits: usize,
    /// Committed actions excused from checks 2 and 3 (see the module docs).
    pub excused: Vec<Span>,
    /// Check 1: overlapping holds.
    pub hold_overlaps: Vec<Overlap>,
    /// Check 2: overlapping protected actions.
    pub action_overlaps: Vec<Overlap>,
    /// Check 3: unexplained steps of the counter's history.
    pub chain_breaks: Vec<ChainBreak>,
    /// Whether this is the report of a fenced run ([`check_fenced`]).
    pub fenced: bool,
    /// Fenced runs: fences that break the promise.
    pub fence_breaks: Vec<FenceBreak>,
    /// Fenced runs: the highest fence handed out.
    pub max_fence: u64,
    /// The counter at the end.
    pub final_counter: i64,
    /// Committed increments minus the final counter.
    pub lost_updates: i64,
    /// Logs that break the worker's protocol, or report a counter error:
    /// the run cannot be judged.
    pub log_errors: Vec<String>,
}

impl Report {
    /// Violations of mutual exclusion: overlapping holds, overlapping
    /// actions, unexplained counter steps, broken fences, and lost updates
    /// when no action was excused (a fenced run excuses none).
    pub fn violations(&self) -> usize {
        let lost = usize::from(self.lost_updates != 0 && self.excused.is_empty());
        self.hold_overlaps.len()
            + self.action_overlaps.len()
            + self.chain_breaks.len()
            + self.fence_breaks.len()
            + lost
    }

    /// Fenced runs: writes the counter refused (stale holders whose
    /// successor had already read or written it).
    pub fn fenced_out(&self) -> usize {
        self.aborts.get("fenced-out").copied().unwrap_or(0)
    }

    /// Fenced runs: reads the counter refused.
    pub fn fenced_out_reads(&self) -> usize {
        self.aborts.get("fenced-out-read").copied().unwrap_or(0)
    }

    /// Total aborted actions.
    pub fn aborted(&self) -> usize {
        self.aborts.values().sum()
    }

    /// Total failed acquisitions.
    pub fn failed_acquires(&self) -> usize {
        self.acquire_failures.values().sum()
    }

    /// The first few violations, one per line, for assertion messages.
    pub fn describe_violations(&self, max: usize) -> String {
        let mut lines: Vec<String> = Vec::new();
        lines.extend(
            self.hold_overlaps
                .iter()
                .map(|o| format!("overlapping holds: {o}")),
        );
        lines.extend(
            self.action_overlaps
                .iter()
                .map(|o| format!("overlapping actions: {o}")),
        );
        lines.extend(
            self.chain_breaks
                .iter()
                .map(|c| format!("counter history: {c}")),
        );
        lines.extend(self.fence_breaks.iter().map(|b| format!("fences: {b}")));
        if self.lost_updates != 0 {
            lines.push(format!(
                "lost updates: {} commits, final counter {} ({} excused actions)",
                self.commits,
                self.final_counter,
                self.excused.len()
            ));
        }
        let total = lines.len();
        lines.truncate(max);
        if total > max {
            lines.push(format!("... and {} more", total - max));
        }
        lines.join("\n")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "cycles={} commits={} aborts={} ({}) acquire_failures={} ({}) \
             release_incomplete={} late_commits={} excused={} hold_overlaps={} \
             action_overlaps={} chain_breaks={} final_counter={} lost_updates={} \
             violations={}",
            self.cycles,
            self.commits,
            self.aborted(),
            map(&self.aborts),
            self.failed_acquires(),
            map(&self.acquire_failures),
            self.release_incomplete,
            self.late_commits,
            self.excused.len(),
            self.hold_overlaps.len(),
            self.action_overlaps.len(),
            self.chain_breaks.len(),
            self.final_counter,
            self.lost_updates,
            self.violations()
        )?;
        if self.fenced {
            write!(
                f,
                " fenced_out_writes={} fenced_out_reads={} fence_breaks={} max_fence={}",
                self.fenced_out(),
                self.fenced_out_reads(),
                self.fence_breaks.len(),
                self.max_fence
            )?;
        }
        Ok(())
    }
}

/// The cycle a worker is in while its log is read.
#[derive(Default)]
struct Open {
    acquired: u64,
    valid_until: u64,
    fence: Option<u64>,
    check: Option<u64>,
    read: Option<(u64, i64)>,
    recheck: Option<u64>,
    releasing: Option<u64>,
}

/// Runs all three checks. `final_counter` is the counter's value after
/// every worker ended (0 if absent).
pub fn check(logs: &[WorkerLog], pauses: &[Pause], final_counter: i64) -> Report {
    let mut report = Report {
        workers: logs.len(),
        final_counter,
        ..Report::default()
    };
    let mut holds = Vec::new();
    let mut actions = Vec::new();
    for log in logs {
        read_worker(log, &mut report, &mut holds, &mut actions);
    }

    report.hold_overlaps = overlaps(holds.iter().map(|(span, _)| *span).collect());

    let paused_during = |a: &Action| {
        pauses
            .iter()
            .any(|p| p.worker == a.worker && p.from <= a.commit_t && p.to >= a.recheck)
    };
    let (excused, in_model): (Vec<Action>, Vec<Action>) =
        actions.iter().partition(|a| paused_during(a));
    report.late_commits = actions
        .iter()
        .filter(|a| a.commit_t > a.valid_until)
        .count();
    report.excused = excused
        .iter()
        .map(|a| Span {
            worker: a.worker,
            from: a.recheck,
            to: a.commit_t,
        })
        .collect();
    report.action_overlaps = overlaps(
        in_model
            .iter()
            .map(|a| Span {
                worker: a.worker,
                from: a.check,
                to: a.commit_t,
            })
            .collect(),
    );

    report.chain_breaks = chain(in_model, &report.excused, final_counter);
    report.commits = actions.len();
    report.lost_updates = i64::try_from(actions.len()).unwrap_or(i64::MAX) - final_counter;
    report
}

/// The checks of a fenced run (see the module docs): overlapping holds,
/// fences, and the counter in the store's order, excusing nothing. `ttl`
/// is the workers' TTL; `final_counter` the counter's value after every
/// worker ended.
pub fn check_fenced(logs: &[WorkerLog], ttl: Duration, final_counter: i64) -> Report {
    let mut report = Report {
        workers: logs.len(),
        final_counter,
        fenced: true,
        ..Report::default()
    };
    let mut holds = Vec::new();
    let mut actions = Vec::new();
    for log in logs {
        read_worker(log, &mut report, &mut holds, &mut actions);
    }
    report.hold_overlaps = overlaps(holds.iter().map(|(span, _)| *span).collect());
    let holds: Vec<Hold> = holds.into_iter().map(|(_, h)| h).collect();
    for h in holds.iter().filter(|h| h.fence.is_none()) {
        report.log_errors.push(format!(
            "worker {}: lock acquired at {} without a fence",
            h.worker, h.acquired
        ));
    }
    for a in actions.iter().filter(|a| a.fence.is_none()) {
        report.log_errors.push(format!(
            "worker {}: commit at {} without a fence",
            a.worker, a.commit_t
        ));
    }
    report.max_fence = holds.iter().filter_map(|h| h.fence).max().unwrap_or(0);
    report.fence_breaks = fence_order(&holds, ttl);
    let (chain_breaks, fence_breaks) = chain_by_value(&actions, final_counter);
    report.chain_breaks = chain_breaks;
    report.fence_breaks.extend(fence_breaks);
    report.late_commits = actions
        .iter()
        .filter(|a| a.commit_t > a.valid_until)
        .count();
    report.commits = actions.len();
    report.lost_updates = i64::try_from(actions.len()).unwrap_or(i64::MAX) - final_counter;
    report
}

/// Check 2 of a fenced run: no fence twice, and a lock whose attempt began
/// after another's acquire returned has the higher fence. When the attempt
/// began is bounded by the validity: `valid_until - ttl` is the attempt's
/// start minus the drift margin.
fn fence_order(holds: &[Hold], ttl: Duration) -> Vec<FenceBreak> {
    let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let fenced: Vec<(Hold, u64)> = holds
        .iter()
        .filter_map(|h| h.fence.map(|f| (*h, f)))
        .collect();
    let grant = |&(h, fence): &(Hold, u64)| Grant {
        began: h.valid_until.saturating_sub(ttl),
        granted: h.acquired,
        fence,
    };
    let at = |i: usize| {
        let (h, fence) = fenced[i];
        (h.worker, h.acquired, fence)
    };
    fence_rules(&fenced, grant)
        .0
        .into_iter()
        .map(|breach| FenceBreak {
            what: match breach.rule {
                FenceRule::Repeated => "fence handed out twice",
                FenceRule::NotAbove => "fence not above an earlier lock's",
            },
            earlier: at(breach.earlier),
            later: at(breach.later),
        })
        .collect()
}

/// Check 3 of a fenced run: the commits sorted by the value they wrote
/// form one chain from 0 to the final counter, each reading what the
/// previous one wrote; and replayed in that order through a
/// [`FencedStore`], every write is accepted (the real counter must not
/// have accepted a fence below one it had already seen).
fn chain_by_value(actions: &[Action], final_counter: i64) -> (Vec<ChainBreak>, Vec<FenceBreak>) {
    let mut sorted: Vec<&Action> = actions.iter().collect();
    sorted.sort_by_key(|a| (a.written, a.commit_t));
    let mut breaks = Vec::new();
    let mut fences = Vec::new();
    let mut expected = 0;
    let mut store = FencedStore::default();
    // The accepted write that set the store's highest fence.
    let mut top: Option<&Action> = None;
    for a in sorted {
        if a.read != expected {
            breaks.push(ChainBreak {
                expected,
                found: a.read,
                at: Some((a.worker, a.read_t)),
            });
        }
        // Commits without a fence are log errors already.
        if let Some(af) = a.fence {
            // The store keeps values as u64; only the fence matters here.
            if store.write(af, 0) {
                top = Some(a);
            } else if let Some((t, tf)) = top.and_then(|t| t.fence.map(|f| (t, f))) {
                fences.push(FenceBreak {
                    what: "counter accepted a lower fence after a higher one",
                    earlier: (t.worker, t.commit_t, tf),
                    later: (a.worker, a.commit_t, af),
                });
            }
        }
        expected = a.written;
    }
    if final_counter != expected {
        breaks.push(ChainBreak {
            expected,
            found: final_counter,
            at: None,
        });
    }
    (breaks, fences)
}

fn read_worker(
    log: &WorkerLog,
    r: &mut Report,
    holds: &mut Vec<(Span, Hold)>,
    out: &mut Vec<Action>,
) {
    let w = log.worker;
    let mut open: Option<Open> = None;
    let mut ended = false;
    let err = |r: &mut Report, msg: String| r.log_errors.push(format!("worker {w}: {msg}"));
    let close = |open: Option<Open>, holds: &mut Vec<(Span, Hold)>| {
        if let Some(o) = open {
            let end = o.releasing.map_or(o.valid_until, |t| t.min(o.valid_until));
            let span = Span {
                worker: w,
                from: o.acquired,
                to: end,
            };
            let hold = Hold {
                worker: w,
                acquired: o.acquired,
                valid_until: o.valid_until,
                fence: o.fence,
            };
            holds.push((span, hold));
        }
    };
    for e in &log.events {
        match e {
            Event::Start { .. } => {}
            Event::Acquired {
                t,
                valid_until,
                fence,
            } => {
                close(open.take(), holds);
                r.cycles += 1;
                open = Some(Open {
                    acquired: *t,
                    valid_until: *valid_until,
                    fence: *fence,
                    ..Open::default()
                });
            }
            Event::AcquireFailed { reason, .. } => {
                close(open.take(), holds);
                *r.acquire_failures.entry(reason.clone()).or_default() += 1;
            }
            Event::CheckOk { t } => match open.as_mut() {
                Some(o) if o.check.is_none() && o.releasing.is_none() => o.check = Some(*t),
                _ => err(r, format!("check_ok at {t} outside a hold")),
            },
            Event::Read { t, value } => match open.as_mut() {
                Some(o) if o.check.is_some() && o.read.is_none() => o.read = Some((*t, *value)),
                _ => err(r, format!("read at {t} without check_ok")),
            },
            Event::RecheckOk { t } => match open.as_mut() {
                Some(o) if o.read.is_some() && o.recheck.is_none() => o.recheck = Some(*t),
                _ => err(r, format!("recheck_ok at {t} without read")),
            },
            Event::Commit { t, value, fence } => match open.as_ref() {
                Some(Open {
                    check: Some(check),
                    read: Some((read_t, read)),
                    recheck,
                    valid_until,
                    fence: held,
                    releasing: None,
                    ..
                }) => {
                    if *value != read + 1 {
                        err(
                            r,
                            format!("commit at {t} wrote {value} after reading {read}"),
                        );
                    }
                    if fence != held {
                        err(
                            r,
                            format!("commit at {t} with fence {fence:?} under lock fence {held:?}"),
                        );
                    }
                    out.push(Action {
                        worker: w,
                        check: *check,
                        read_t: *read_t,
                        read: *read,
                        // A worker run with `--recheck off` checks once.
                        recheck: recheck.unwrap_or(*check),
                        commit_t: *t,
                        written: *value,
                        valid_until: *valid_until,
                        fence: *fence,
                    });
                }
                _ => err(r, format!("commit at {t} without check and read")),
            },
            Event::Abort { t, reason } => {
                if open.is_none() {
                    err(r, format!("abort at {t} outside a hold"));
                }
                *r.aborts.entry(reason.clone()).or_default() += 1;
            }
            Event::Releasing { t } => match open.as_mut() {
                Some(o) if o.releasing.is_none() => o.releasing = Some(*t),
                _ => err(r, format!("releasing at {t} outside a hold")),
            },
            Event::Released { ok, .. } => {
                r.released += 1;
                if !ok {
                    r.release_incomplete += 1;
                }
            }
            Event::CounterError { t, message } => {
                err(r, format!("counter error at {t}: {message}"));
            }
            Event::End { .. } => ended = true,
        }
    }
    close(open, holds);
    if !ended {
        err(r, "log has no `end`: the worker did not finish".into());
    }
}

/// Every span that starts inside a span of another worker (the shared
/// half-open rule). Spans that end before they begin (a lock whose
/// validity ran out before its acquire returned) hold nothing and are
/// left out.
fn overlaps(mut spans: Vec<Span>) -> Vec<Overlap> {
    spans.retain(|s| s.from < s.to);
    let interval = |s: &Span| Interval {
        owner: s.worker,
        from: s.from,
        to: s.to,
    };
    overlap_pairs(&spans, interval)
        .into_iter()
        .map(|(a, b)| Overlap {
            first: spans[a],
            second: spans[b],
        })
        .collect()
}

/// Check 3: each in-model action read what the previous one wrote, and the
/// counter ends at the last value written. Steps where an excused write
/// may have landed are skipped.
fn chain(mut actions: Vec<Action>, excused: &[Span], final_counter: i64) -> Vec<ChainBreak> {
    actions.sort_by_key(|a| a.commit_t);
    let touched = |from: u64, to: u64| excused.iter().any(|e| e.from <= to && e.to >= from);
    let mut breaks = Vec::new();
    let mut expected = 0;
    let mut since = 0;
    for a in &actions {
        if a.read != expected && !touched(since, a.read_t) {
            breaks.push(ChainBreak {
                expected,
                found: a.read,
                at: Some((a.worker, a.read_t)),
            });
        }
        expected = a.written;
        since = a.recheck;
    }
    if final_counter != expected && !touched(since, u64::MAX) {
        breaks.push(ChainBreak {
            expected,
            found: final_counter,
            at: None,
        });
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker's log: `Start`, each cycle's events followed by its
    /// release (1 and 2 ns after the cycle's last event), and `End`.
    fn log(id: usize, cycles: impl IntoIterator<Item = Vec<Event>>) -> WorkerLog {
        let mut events = vec![Event::Start { t: 0, pid: 1 }];
        for mut cycle in cycles {
            let end = cycle.last().map_or(0, Event::t);
            cycle.extend([
                Event::Releasing { t: end + 1 },
                Event::Released {
                    t: end + 2,
                    ok: true,
                },
            ]);
            events.extend(cycle);
        }
        events.push(Event::End { t: u64::MAX / 2 });
        WorkerLog { worker: id, events }
    }

    /// A worker log of committed actions `(acquired, check, read, value
    /// read, recheck, commit)`, each released 1 ns after its commit, with
    /// a validity of 1 s.
    fn worker(id: usize, actions: &[(u64, u64, u64, i64, u64, u64)]) -> WorkerLog {
        log(
            id,
            actions
                .iter()
                .map(|&(acq, check, read_t, read, recheck, commit)| {
                    vec![
                        Event::Acquired {
                            t: acq,
                            valid_until: acq + 1_000_000_000,
                            fence: None,
                        },
                        Event::CheckOk { t: check },
                        Event::Read {
                            t: read_t,
                            value: read,
                        },
                        Event::RecheckOk { t: recheck },
                        Event::Commit {
                            t: commit,
                            value: read + 1,
                            fence: None,
                        },
                    ]
                }),
        )
    }

    #[test]
    fn serial_history_is_clean() {
        let logs = [
            worker(0, &[(10, 11, 12, 0, 13, 14), (50, 51, 52, 2, 53, 54)]),
            worker(1, &[(30, 31, 32, 1, 33, 34)]),
        ];
        let r = check(&logs, &[], 3);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
        assert!(r.log_errors.is_empty(), "{:?}", r.log_errors);
        assert_eq!((r.cycles, r.commits, r.lost_updates), (3, 3, 0));
    }

    #[test]
    fn two_holders_interleaving_are_caught_three_ways() {
        // Worker 1 acquires while worker 0 still holds; both read 0.
        let logs = [
            worker(0, &[(10_000, 11_000, 12_000, 0, 20_000, 21_000)]),
            worker(1, &[(15_000, 16_000, 17_000, 0, 18_000, 19_000)]),
        ];
        let r = check(&logs, &[], 1);
        assert_eq!(r.hold_overlaps.len(), 1, "{r}");
        assert_eq!(r.action_overlaps.len(), 1, "{r}");
        assert_eq!(r.chain_breaks.len(), 1, "{r}");
        assert_eq!(r.lost_updates, 1);
        assert_eq!(r.violations(), 4);
    }

    #[test]
    fn holds_that_overlap_without_actions_overlapping_are_caught() {
        // Worker 0 acted early and still held the lock when worker 1 got it.
        let mut logs = vec![
            worker(0, &[(10_000, 11_000, 12_000, 0, 13_000, 14_000)]),
            worker(1, &[(15_000, 16_000, 17_000, 1, 18_000, 19_000)]),
        ];
        if let Some(Event::Releasing { t }) = logs[0].events.get_mut(6) {
            *t = 30_000;
        }
        let r = check(&logs, &[], 2);
        assert_eq!(r.hold_overlaps.len(), 1, "{r}");
        assert_eq!(r.action_overlaps.len(), 0, "{r}");
        assert_eq!(r.violations(), 1);
    }

    #[test]
    fn a_hold_ends_at_its_validity_even_if_release_came_later() {
        // Worker 0 was frozen past its validity before releasing: worker 1
        // acquiring after that validity is not an overlap.
        let mut logs = vec![
            worker(0, &[(10, 11, 12, 0, 13, 14)]),
            worker(
                1,
                &[(
                    2_000_000_000,
                    2_000_000_001,
                    2_000_000_002,
                    1,
                    2_000_000_003,
                    2_000_000_004,
                )],
            ),
        ];
        if let Some(Event::Releasing { t }) = logs[0].events.get_mut(6) {
            *t = 3_000_000_000;
        }
        let r = check(&logs, &[], 2);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
    }

    #[test]
    fn a_write_the_logs_do_not_explain_is_caught() {
        let logs = [worker(
            0,
            &[(10, 11, 12, 0, 13, 14), (50, 51, 52, 5, 53, 54)],
        )];
        let r = check(&logs, &[], 6);
        assert_eq!(r.chain_breaks.len(), 1, "{r}");
        let r = check(&logs[..], &[], 7);
        assert_eq!(r.chain_breaks.len(), 2, "{r}");
        assert_eq!(r.lost_updates, -5);
    }

    #[test]
    fn a_worker_paused_between_recheck_and_commit_is_excused_not_hidden() {
        // Worker 0 is frozen after its recheck; its write lands late and
        // clobbers worker 1's. Action and counter checks excuse it; the
        // hold check does not need to (worker 0's hold ended at validity).
        let logs = [
            worker(0, &[(10, 11, 12, 0, 13, 2_500_000_000)]),
            worker(
                1,
                &[(
                    1_100_000_000,
                    1_100_000_001,
                    1_100_000_002,
                    0,
                    1_100_000_003,
                    1_100_000_004,
                )],
            ),
        ];
        let pause = Pause {
            worker: 0,
            from: 20,
            to: 2_400_000_000,
        };
        let r = check(&logs, &[pause], 1);
        assert_eq!(r.excused.len(), 1);
        assert_eq!(r.late_commits, 1);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
        // Without the recorded pause the same history is a violation.
        let r = check(&logs, &[], 1);
        assert!(r.violations() >= 1, "{r}");
        // A pause of another worker, or of this one at another time,
        // excuses nothing.
        let other = Pause {
            worker: 1,
            from: 20,
            to: 30,
        };
        assert!(check(&logs, &[other], 1).violations() >= 1);
        let other = Pause {
            worker: 0,
            from: 2_500_000_001,
            to: 2_600_000_000,
        };
        assert!(check(&logs, &[other], 1).violations() >= 1);
    }

    #[test]
    fn protocol_breaks_and_missing_end_are_log_errors() {
        let mut log = worker(0, &[(10, 11, 12, 0, 13, 14)]);
        log.events.pop();
        log.events.insert(
            1,
            Event::Commit {
                t: 5,
                value: 1,
                fence: None,
            },
        );
        let r = check(&[log], &[], 1);
        assert_eq!(r.log_errors.len(), 2, "{:?}", r.log_errors);
    }

    const MS: u64 = 1_000_000;
    const TTL: Duration = Duration::from_secs(1);

    /// How a fenced cycle ends: its write committed (logged at this time),
    /// or refused by the counter.
    enum Fin {
        Commit(u64),
        FencedOut(u64),
    }

    /// A fenced worker's cycles `(acquired, fence, value read, end)`. Each
    /// lock is valid until 980 ms after its acquire returned (attempt
    /// began 10 ms before, 10 ms of drift, a 1 s TTL).
    fn fenced_worker(id: usize, cycles: &[(u64, u64, i64, Fin)]) -> WorkerLog {
        log(
            id,
            cycles.iter().map(|&(acq, fence, read, ref fin)| {
                vec![
                    Event::Acquired {
                        t: acq,
                        valid_until: acq + 980 * MS,
                        fence: Some(fence),
                    },
                    Event::CheckOk { t: acq + 1 },
                    Event::Read {
                        t: acq + 2,
                        value: read,
                    },
                    match *fin {
                        Fin::Commit(t) => Event::Commit {
                            t,
                            value: read + 1,
                            fence: Some(fence),
                        },
                        Fin::FencedOut(t) => Event::Abort {
                            t,
                            reason: "fenced-out".into(),
                        },
                    },
                ]
            }),
        )
    }

    #[test]
    fn fenced_serial_history_is_clean() {
        let logs = [
            fenced_worker(
                0,
                &[
                    (10 * MS, 1, 0, Fin::Commit(15 * MS)),
                    (4_000 * MS, 3, 2, Fin::Commit(4_005 * MS)),
                ],
            ),
            fenced_worker(1, &[(2_000 * MS, 2, 1, Fin::Commit(2_005 * MS))]),
        ];
        let r = check_fenced(&logs, TTL, 3);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
        assert!(r.log_errors.is_empty(), "{:?}", r.log_errors);
        assert_eq!((r.commits, r.lost_updates, r.max_fence), (3, 0, 3));
        assert!(r.to_string().contains("fenced_out_writes=0"), "{r}");
    }

    #[test]
    fn a_holder_frozen_past_its_validity_is_fenced_out_and_nothing_is_lost() {
        // Worker 0 reads 0 with fence 1 and is frozen for 3 s; worker 1
        // takes the lock after it expired, reads 0 with fence 2 and
        // commits 1; worker 0's write, 3 s late, is refused.
        let logs = [
            fenced_worker(0, &[(0, 1, 0, Fin::FencedOut(3_000 * MS))]),
            fenced_worker(1, &[(1_500 * MS, 2, 0, Fin::Commit(1_505 * MS))]),
        ];
        let r = check_fenced(&logs, TTL, 1);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
        assert_eq!((r.fenced_out(), r.lost_updates), (1, 0));
        // The unfenced checker, given no pause, has nothing to say either:
        // the refused write is not a commit.
        assert_eq!(check(&logs, &[], 1).violations(), 0);
    }

    #[test]
    fn fenced_writes_are_ordered_by_value_not_by_the_time_they_were_logged() {
        // Worker 0 commits 1 with fence 1, then is frozen before it logs
        // the commit; worker 1 (fence 2) reads that 1 and commits 2 well
        // before worker 0's commit line appears.
        let logs = [
            fenced_worker(0, &[(0, 1, 0, Fin::Commit(5_000 * MS))]),
            fenced_worker(1, &[(1_500 * MS, 2, 1, Fin::Commit(1_505 * MS))]),
        ];
        let r = check_fenced(&logs, TTL, 2);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
        assert_eq!(r.late_commits, 1);
        // Ordered by commit time (the unfenced chain) it would look broken.
        assert!(!check(&logs, &[], 2).chain_breaks.is_empty());
    }

    #[test]
    fn a_fence_handed_out_twice_is_caught_with_the_update_it_lost() {
        // Two locks with fence 1: the frozen first holder's late write is
        // accepted (its fence is as high as any seen), then the second
        // holder's, computed from the same read.
        let logs = [
            fenced_worker(0, &[(0, 1, 0, Fin::Commit(1_400 * MS))]),
            fenced_worker(1, &[(1_000 * MS, 1, 0, Fin::Commit(1_600 * MS))]),
        ];
        let r = check_fenced(&logs, TTL, 1);
        let whats: Vec<&str> = r.fence_breaks.iter().map(|b| b.what).collect();
        assert!(whats.contains(&"fence handed out twice"), "{whats:?}");
        assert!(
            whats.contains(&"fence not above an earlier lock's"),
            "{whats:?}"
        );
        assert_eq!(r.chain_breaks.len(), 1, "{r}");
        assert_eq!(r.lost_updates, 1);
        assert!(r.violations() >= 4, "{}", r.describe_violations(10));
    }

    #[test]
    fn a_lower_fence_is_caught_only_when_its_attempt_began_after_the_other_returned() {
        // Worker 1's fence 4 comes after worker 0's fence 5 had returned.
        let logs = [
            fenced_worker(0, &[(0, 5, 0, Fin::Commit(5 * MS))]),
            fenced_worker(1, &[(1_500 * MS, 4, 1, Fin::FencedOut(1_505 * MS))]),
        ];
        let r = check_fenced(&logs, TTL, 1);
        assert_eq!(r.fence_breaks.len(), 1, "{r}");
        assert_eq!(r.fence_breaks[0].later, (1, 1_500 * MS, 4));
        // Worker 1's acquire returned at 100 ms with fence 4 (valid until
        // 1.08 s), but it was frozen before logging it until 3 s; worker
        // 0 got fence 5 at 1.5 s in between. Not a break: worker 1's
        // attempt began before worker 0's acquire returned.
        let mut late = fenced_worker(1, &[(3_000 * MS, 4, 0, Fin::FencedOut(3_005 * MS))]);
        if let Some(Event::Acquired { valid_until, .. }) = late.events.get_mut(1) {
            *valid_until = 1_080 * MS;
        }
        let logs = [
            fenced_worker(0, &[(1_500 * MS, 5, 0, Fin::Commit(1_505 * MS))]),
            late,
        ];
        let r = check_fenced(&logs, TTL, 1);
        assert_eq!(r.violations(), 0, "{}", r.describe_violations(10));
    }

    #[test]
    fn a_fenced_run_needs_fences_on_every_lock() {
        let logs = [worker(0, &[(10, 11, 12, 0, 13, 14)])];
        let r = check_fenced(&logs, TTL, 1);
        assert_eq!(r.log_errors.len(), 2, "{:?}", r.log_errors);
    }
}
