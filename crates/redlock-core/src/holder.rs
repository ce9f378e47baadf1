//! Who holds a lock: recorded with the lock on every master, so a refused
//! contender, an operator's `redlock inspect` and [`Redlock::inspect`]
//! can say who holds a busy resource.
//!
//! The holder is written after the token in the value of each lock key:
//! `<token> <host> <pid> <since-unix-ms>[ <label>]`. Every script compares
//! the whole value, and the token part is 128 random bits new for every
//! acquisition, so compare-and-delete is exactly as strict as with the
//! token alone: only the holder of that exact value can extend or release.
//!
//! [`Redlock::inspect`]: crate::Redlock::inspect

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// Who acquired a lock: host, process, when, and an optional label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    host: String,
    pid: u32,
    since_unix_ms: u64,
    label: Option<String>,
}

impl Holder {
    /// A holder record from its parts (the runtime's
    /// [`holder`](crate::Runtime::holder) fills them in for this process).
    /// Characters that could break the record (spaces in the host, control
    /// characters) are replaced, and the label is cut to [`MAX_LABEL_LEN`]
    /// bytes.
    pub fn new(host: &str, pid: u32, since_unix_ms: u64, label: Option<&str>) -> Self {
        let clean = |s: &str, spaces: bool| -> String {
            let bad = |c: char| c.is_control() || (!spaces && c == ' ');
            // The usual case, a clean name, in one allocation (collecting
            // chars grows the string several times).
            if !s.chars().any(bad) {
                return s.to_owned();
            }
            s.chars().map(|c| if bad(c) { '_' } else { c }).collect()
        };
        let host = match clean(host, false) {
            h if h.is_empty() => "unknown".to_owned(),
            h => h,
        };
        let label = label
            .map(|l| {
                let mut l = clean(l, true);
                let mut end = l.len().min(MAX_LABEL_LEN);
                while !l.is_char_boundary(end) {
                    end -= 1;
                }
                l.truncate(end);
                l
            })
            .filter(|l| !l.trim().is_empty());
        Self {
            host,
            pid,
            since_unix_ms,
            label,
        }
    }

    /// The holder's host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The holder's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the lock was acquired, by the holder's wall clock.
    pub fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.since_unix_ms)
    }

    /// When the lock was acquired, in ms since the Unix epoch.
    pub fn since_unix_ms(&self) -> u64 {
        self.since_unix_ms
    }

    /// The label the holder gave, if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The record as stored after the token.
    #[cfg(test)]
    pub(crate) fn record(&self) -> String {
        let mut s = String::with_capacity(self.record_len_hint());
        self.write_record(&mut s);
        s
    }

    /// Appends the record to `out` (see [`Token::with_holder`]).
    ///
    /// [`Token::with_holder`]: crate::Token::with_holder
    pub(crate) fn write_record(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = write!(out, "{} {} {}", self.host, self.pid, self.since_unix_ms);
        if let Some(l) = &self.label {
            out.push(' ');
            out.push_str(l);
        }
    }

    /// The record's length at most: the host, the label, the separators
    /// and the longest pid and timestamp.
    pub(crate) fn record_len_hint(&self) -> usize {
        const PID_DIGITS: usize = 10; // u32::MAX
        const MS_DIGITS: usize = 20; // u64::MAX
        self.host.len()
            + 2
            + PID_DIGITS
            + MS_DIGITS
            + self.label.as_ref().map_or(0, |l| 1 + l.len())
    }

    /// Parses a record as stored after the token; `None` if it is not one.
    pub(crate) fn parse(record: &str) -> Option<Self> {
        let mut parts = record.splitn(4, ' ');
        let host = parts.next().filter(|h| !h.is_empty())?;
        let pid = parts.next()?.parse().ok()?;
        let since_unix_ms = parts.next()?.parse().ok()?;
        let label = parts.next();
        Some(Self::new(host, pid, since_unix_ms, label))
    }
}

impl fmt::Display for Holder {
    /// `pid 4242 on web-1 (label "nightly"), since 1764460000000 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)?;
        if let Some(l) = &self.label {
            write!(f, " ({l:?})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_is_cleaned() {
        let h = Holder::new("web 1", 42, 1_700_000_000_000, Some("nightly report\n"));
        assert_eq!(h.host(), "web_1");
        assert_eq!(h.label(), Some("nightly report_"));
        assert_eq!(Holder::parse(&h.record()), Some(h.clone()));
        assert_eq!(h.to_string(), "pid 42 on web_1 (\"nightly report_\")");
        let long = "é".repeat(100);
        let h = Holder::new("h", 1, 0, Some(&long));
        assert!(h.label().is_some_and(|l| l.len() <= MAX_LABEL_LEN));
        assert_eq!(Holder::parse("h 1"), None);
        assert_eq!(Holder::parse("h x 3"), None);
    }
}
