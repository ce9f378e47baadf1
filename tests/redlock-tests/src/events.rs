//! The chaos workers' event log: one line per event, written by
//! `chaos_worker` and read back by the checker.
//!
//! Every line starts with the event name and its time in nanoseconds on the
//! system-wide monotonic clock ([`crate::sys::monotonic_ns`]), so the logs
//! of all workers form one timeline:
//!
//! ```text
//! start 1200000000 4242          worker started (pid)
//! acquired 1200500000 1700400000 acquire returned; lock valid until (ns)
//! check_ok 1200510000            validity checked before acting
//! read 1200600000 41             counter read (GET)
//! recheck_ok 1203600000          validity checked again right before the write
//! commit 1203700000 42           SET acknowledged: the value written
//! abort 1203600000 expired-before-commit
//! releasing 1203800000           release called
//! released 1204000000 ok         release returned (ok | incomplete)
//! acquire_failed 1300000000 deadline
//! counter_error 1400000000 <message>
//! end 1500000000
//! ```
//!
//! A fenced worker (`chaos_worker --fenced`) adds the lock's fence to its
//! holds and commits, as one more number at the end of the line; a line
//! without it is an unfenced one, so logs of either kind parse alike:
//!
//! ```text
//! acquired 1200500000 1700400000 17   a lock with fence 17
//! commit 1203700000 42 17             accepted by the counter with fence 17
//! abort 1203600000 fenced-out         write refused: a later fence was seen
//! abort 1203600000 fenced-out-read    read refused: a later fence was seen
//! ```
//!
//! Each line goes out in one `write` call on an unbuffered file, so a worker
//! that is paused or killed leaves every line it logged complete, except at
//! most a torn last line, which the parser drops.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

/// One event of a worker, with its time in monotonic nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The worker started (its pid).
    Start {
        /// Time.
        t: u64,
        /// Process id.
        pid: u32,
    },
    /// `acquire` returned a lock, trusted strictly before `valid_until`.
    Acquired {
        /// Time `acquire` returned.
        t: u64,
        /// The lock's `valid_until()` on the same timeline.
        valid_until: u64,
        /// The lock's fence, for a fenced lock.
        fence: Option<u64>,
    },
    /// `acquire` gave up (`reason`: one word).
    AcquireFailed {
        /// Time.
        t: u64,
        /// Why, as one word.
        reason: String,
    },
    /// The lock was checked valid (with margin) before the protected action.
    CheckOk {
        /// Time.
        t: u64,
    },
    /// The counter was read.
    Read {
        /// Time the reply arrived.
        t: u64,
        /// Value read (0 when absent).
        value: i64,
    },
    /// The lock was checked valid again, right before the write.
    RecheckOk {
        /// Time.
        t: u64,
    },
    /// The counter write was acknowledged: a committed increment.
    Commit {
        /// Time the reply arrived.
        t: u64,
        /// Value written.
        value: i64,
        /// The fence the write carried, for a fenced write.
        fence: Option<u64>,
    },
    /// The action was abandoned: validity ran out, or the fenced counter
    /// refused a stale holder.
    Abort {
        /// Time.
        t: u64,
        /// `expired-before-check`, `expired-before-commit`, `fenced-out`
        /// (write refused) or `fenced-out-read` (read refused).
        reason: String,
    },
    /// Release is about to be called: from here the keys may be gone.
    Releasing {
        /// Time.
        t: u64,
    },
    /// Release returned.
    Released {
        /// Time.
        t: u64,
        /// Whether every master confirmed.
        ok: bool,
    },
    /// The counter Redis failed: the outcome of the action is unknown.
    CounterError {
        /// Time.
        t: u64,
        /// The error, on one line.
        message: String,
    },
    /// The worker finished its run.
    End {
        /// Time.
        t: u64,
    },
}

impl Event {
    /// The event's time.
    pub fn t(&self) -> u64 {
        match self {
            Self::Start { t, .. }
            | Self::Acquired { t, .. }
            | Self::AcquireFailed { t, .. }
            | Self::CheckOk { t }
            | Self::Read { t, .. }
            | Self::RecheckOk { t }
            | Self::Commit { t, .. }
            | Self::Abort { t, .. }
            | Self::Releasing { t }
            | Self::Released { t, .. }
            | Self::CounterError { t, .. }
            | Self::End { t } => *t,
        }
    }

    /// The event's name, as it starts its line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::Acquired { .. } => "acquired",
            Self::AcquireFailed { .. } => "acquire_failed",
            Self::CheckOk { .. } => "check_ok",
            Self::Read { .. } => "read",
            Self::RecheckOk { .. } => "recheck_ok",
            Self::Commit { .. } => "commit",
            Self::Abort { .. } => "abort",
            Self::Releasing { .. } => "releasing",
            Self::Released { .. } => "released",
            Self::CounterError { .. } => "counter_error",
            Self::End { .. } => "end",
        }
    }
}

/// Replaces whitespace so a free-text field stays one token or one line.
fn one_word(s: &str) -> String {
    let w: String = s
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if w.is_empty() {
        "-".into()
    } else {
        w
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.t())?;
        match self {
            Self::Start { pid, .. } => write!(f, " {pid}"),
            Self::Acquired {
                valid_until, fence, ..
            } => {
                write!(f, " {valid_until}")?;
                fence.map_or(Ok(()), |n| write!(f, " {n}"))
            }
            Self::AcquireFailed { reason, .. } | Self::Abort { reason, .. } => {
                write!(f, " {}", one_word(reason))
            }
            Self::Read { value, .. } => write!(f, " {value}"),
            Self::Commit { value, fence, .. } => {
                write!(f, " {value}")?;
                fence.map_or(Ok(()), |n| write!(f, " {n}"))
            }
            Self::Released { ok, .. } => {
                write!(f, " {}", if *ok { "ok" } else { "incomplete" })
            }
            Self::CounterError { message, .. } => {
                write!(f, " {}", message.replace(['\n', '\r'], " "))
            }
            Self::CheckOk { .. }
            | Self::RecheckOk { .. }
            | Self::Releasing { .. }
            | Self::End { .. } => Ok(()),
        }
    }
}

/// A line that is not an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEventError(pub String);

impl fmt::Display for ParseEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad event line {:?}", self.0)
    }
}

impl std::error::Error for ParseEventError {}

impl FromStr for Event {
    type Err = ParseEventError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let bad = || ParseEventError(line.to_owned());
        let mut parts = line.splitn(3, ' ');
        let name = parts.next().ok_or_else(bad)?;
        let t: u64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let rest = parts.next();
        let num = |r: Option<&str>| r.and_then(|v| v.trim().parse::<i64>().ok()).ok_or_else(bad);
        let word = |r: Option<&str>| r.map(|v| v.trim().to_owned()).ok_or_else(bad);
        let none = |r: Option<&str>| if r.is_none() { Ok(()) } else { Err(bad()) };
        // A number, then the fence of a fenced line if there is one.
        let fenced = |r: Option<&str>| -> Result<(i64, Option<u64>), ParseEventError> {
            let mut it = r.ok_or_else(bad)?.split(' ');
            let n = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let fence = match it.next() {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| bad())?),
            };
            match it.next() {
                None => Ok((n, fence)),
                Some(_) => Err(bad()),
            }
        };
        Ok(match name {
            "start" => Self::Start {
                t,
                pid: u32::try_from(num(rest)?).map_err(|_| bad())?,
            },
            "acquired" => {
                let (until, fence) = fenced(rest)?;
                Self::Acquired {
                    t,
                    valid_until: u64::try_from(until).map_err(|_| bad())?,
                    fence,
                }
            }
            "acquire_failed" => Self::AcquireFailed {
                t,
                reason: word(rest)?,
            },
            "check_ok" => none(rest).map(|()| Self::CheckOk { t })?,
            "read" => Self::Read {
                t,
                value: num(rest)?,
            },
            "recheck_ok" => none(rest).map(|()| Self::RecheckOk { t })?,
            "commit" => {
                let (value, fence) = fenced(rest)?;
                Self::Commit { t, value, fence }
            }
            "abort" => Self::Abort {
                t,
                reason: word(rest)?,
            },
            "releasing" => none(rest).map(|()| Self::Releasing { t })?,
            "released" => Self::Released {
                t,
                ok: match rest {
                    Some("ok") => true,
                    Some("incomplete") => false,
                    _ => return Err(bad()),
                },
            },
            "counter_error" => Self::CounterError {
                t,
                message: rest.unwrap_or_default().to_owned(),
            },
            "end" => none(rest).map(|()| Self::End { t })?,
            _ => return Err(bad()),
        })
    }
}

/// Parses a whole log. A last line without its newline was torn by a kill
/// mid-write and is dropped; any other bad line is an error.
///
/// # Errors
///
/// The first line that does not parse.
pub fn parse_log(text: &str) -> Result<Vec<Event>, ParseEventError> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::parse)
        .collect()
}

/// An append-only event log that writes each line in one `write` call, with
/// no buffering, so it survives the worker being paused or killed.
#[derive(Debug)]
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Creates (or truncates) the log at `path`.
    ///
    /// # Errors
    ///
    /// The error of opening the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Appends one event as one line.
    ///
    /// # Errors
    ///
    /// The error of writing the line.
    pub fn log(&mut self, event: &Event) -> io::Result<()> {
        let line = format!("{event}\n");
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips() {
        let events = vec![
            Event::Start { t: 1, pid: 42 },
            Event::Acquired {
                t: 2,
                valid_until: 99,
                fence: None,
            },
            Event::Acquired {
                t: 2,
                valid_until: 99,
                fence: Some(7),
            },
            Event::AcquireFailed {
                t: 3,
                reason: "no quorum".into(),
            },
            Event::CheckOk { t: 4 },
            Event::Read { t: 5, value: -1 },
            Event::RecheckOk { t: 6 },
            Event::Commit {
                t: 7,
                value: 8,
                fence: None,
            },
            Event::Commit {
                t: 7,
                value: 8,
                fence: Some(7),
            },
            Event::Abort {
                t: 8,
                reason: "expired-before-commit".into(),
            },
            Event::Releasing { t: 9 },
            Event::Released { t: 10, ok: false },
            Event::CounterError {
                t: 11,
                message: "io error: reset".into(),
            },
            Event::End { t: 12 },
        ];
        let text: String = events.iter().map(|e| format!("{e}\n")).collect();
        let parsed = parse_log(&text).expect("parse");
        assert_eq!(parsed.len(), events.len());
        assert_eq!(
            parsed[3],
            Event::AcquireFailed {
                t: 3,
                reason: "no_quorum".into()
            }
        );
        assert_eq!(parsed[12], events[12]);
        for (a, b) in parsed.iter().zip(&events).filter(|(_, b)| b.t() != 3) {
            assert_eq!(a, b);
        }
    }

    #[test]
    fn torn_last_line_is_dropped_other_garbage_is_not() {
        assert_eq!(
            parse_log("check_ok 1\ncommit 2").expect("torn tail"),
            vec![Event::CheckOk { t: 1 }]
        );
        assert!(parse_log("check_ok x\n").is_err());
        assert!(parse_log("check_ok 1 extra\n").is_err());
        assert!(parse_log("nonsense 1\n").is_err());
        assert!(parse_log("released 1 maybe\n").is_err());
        assert!(parse_log("commit 1 2 3 4\n").is_err());
        assert!(parse_log("commit 1 2 x\n").is_err());
        assert!(parse_log("acquired 1 2  3\n").is_err());
    }

    #[test]
    fn unfenced_lines_of_older_logs_still_parse() {
        let parsed = parse_log("acquired 5 9\ncommit 6 1\n").expect("parse");
        assert_eq!(
            parsed,
            vec![
                Event::Acquired {
                    t: 5,
                    valid_until: 9,
                    fence: None
                },
                Event::Commit {
                    t: 6,
                    value: 1,
                    fence: None
                }
            ]
        );
    }
}
