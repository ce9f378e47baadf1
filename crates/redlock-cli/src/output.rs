//! Exit statuses, the one-line error type, and plain-text tables.
//!
//! Every failure of `redlock` itself ends as one [`Failure`]: a status from
//! the table below and a single line on stderr, `redlock: error: ...`. No
//! path prints a backtrace or a multi-line clap report.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use redlock_core::ConfigError;

/// Bad arguments (`EX_USAGE` from `sysexits.h`): unknown option, bad
/// duration, bad URL, invalid resource name, TTL too short for the drift
/// margin. Clap's own default (2) is replaced by this everywhere.
pub(crate) const EX_USAGE: u8 = 64;
/// Masters unavailable (`EX_UNAVAILABLE`): fewer than a quorum reachable,
/// rejected credentials, a replica or a duplicate in the list, or
/// `redis-server` missing for `--spawn`.
pub(crate) const EX_UNAVAILABLE: u8 = 69;
/// Internal or I/O failure of `redlock` itself (`EX_SOFTWARE`): a benchmark
/// that could not complete, a plot that could not be written.
pub(crate) const EX_SOFTWARE: u8 = 70;
/// The lock was not acquired (`EX_TEMPFAIL`): held by another owner, or no
/// quorum answered in time. Try again later.
pub(crate) const EX_TEMPFAIL: u8 = 75;
/// `exec` only: the lock was lost while CMD ran (extensions refused or
/// timed out until the validity ran out). CMD was sent SIGTERM, then
/// SIGKILL after `--kill-after`. Also when the lock was lost before CMD
/// could start (CMD is then not started), or CMD's exit was noticed only
/// after the validity ended.
pub(crate) const EX_LOCK_LOST: u8 = 76;
/// `exec` only: CMD exists but could not be executed (as `env(1)` does).
pub(crate) const EX_CANNOT_EXECUTE: u8 = 126;
/// `exec` only: CMD was not found (as `env(1)` does).
pub(crate) const EX_NOT_FOUND: u8 = 127;

/// The exit statuses table shown in `--help` and in the README.
pub(crate) const EXIT_STATUS_TABLE: &str = "\
Exit status:
  0        success (exec: CMD exited 0; unlock: a quorum confirmed)
  1-125    exec: CMD's own exit status
  64       bad arguments (EX_USAGE)
  69       masters unavailable: fewer than a quorum reachable (unlock: confirming),
           bad credentials, a replica or duplicate in the list, redis-server
           missing for --spawn
  70       internal or I/O error (a benchmark or plot could not complete)
  75       lock not acquired: held elsewhere (exec --conflict-exit-code), or no
           quorum (EX_TEMPFAIL); unlock --token: the token holds nothing while
           another owner holds the lock
  76       exec (--lost-exit-code): lock lost while CMD ran; CMD got SIGTERM (then SIGKILL);
           or lost before CMD could start (CMD not started)
  126/127  exec: CMD could not be executed / was not found
  128+N    exec: CMD was killed by signal N; redlock itself stopped by signal N";

/// A failure of `redlock` itself: one line of text and an exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit status.
    pub(crate) status: u8,
    /// One line, without the `redlock: error: ` prefix.
    pub(crate) message: String,
    /// Print the message without the `error:` prefix (it already says what
    /// happened, e.g. a busy lock).
    pub(crate) plain: bool,
}

impl Failure {
    /// A failure with `status` and `message` (newlines are folded).
    pub(crate) fn new(status: u8, message: impl fmt::Display) -> Self {
        Self {
            status,
            message: one_line(&message.to_string()),
            plain: false,
        }
    }

    /// Bad arguments.
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self::new(EX_USAGE, message)
    }

    /// Masters unavailable.
    pub(crate) fn unavailable(message: impl fmt::Display) -> Self {
        Self::new(EX_UNAVAILABLE, message)
    }

    /// Internal or I/O failure.
    pub(crate) fn software(message: impl fmt::Display) -> Self {
        Self::new(EX_SOFTWARE, message)
    }

    /// An exit by signal `signo` received by redlock itself, with nothing
    /// printed beyond a short note.
    pub(crate) fn signalled(signo: i32) -> Self {
        let status = u8::try_from(128 + signo).unwrap_or(EX_SOFTWARE);
        Self {
            status,
            message: format!("stopped by {}", crate::sys::signal_name(signo)),
            plain: true,
        }
    }

    /// Prints the failure on stderr, as one line.
    pub(crate) fn report(&self) {
        let mut err = io::stderr().lock();
        let _ = if self.plain {
            writeln!(err, "redlock: {}", self.message)
        } else {
            writeln!(err, "redlock: error: {}", self.message)
        };
    }
}

impl From<ConfigError> for Failure {
    /// Input that could have been fixed on the command line is a usage
    /// error; everything learnt from the servers is "unavailable".
    fn from(e: ConfigError) -> Self {
        Self::new(config_status(&e), describe_config(&e))
    }
}

/// The exit status of a configuration error: 64 for input that could have
/// been fixed on the command line, 69 for what was learnt from the servers.
pub(crate) fn config_status(e: &ConfigError) -> u8 {
    match e {
            ConfigError::NoMasters
            | ConfigError::InvalidUrl { .. }
            | ConfigError::UnsupportedScheme { .. }
            | ConfigError::TlsNotCompiled { .. }
            | ConfigError::InvalidQuorum { .. }
            | ConfigError::TtlZero
            | ConfigError::TtlTooLarge { .. }
            | ConfigError::TtlNotWholeMillis { .. }
            | ConfigError::TtlAboveMax { .. }
            | ConfigError::DriftConsumesTtl { .. }
            | ConfigError::InvalidDriftFactor { .. }
            | ConfigError::ZeroTimeout
            | ConfigError::TimeoutNotBelowValidity { .. }
            | ConfigError::ZeroWait
            | ConfigError::InvalidRetry { .. }
            | ConfigError::InvalidPrefix { .. }
            | ConfigError::EmptyResource
            | ConfigError::ResourceTooLong { .. }
            | ConfigError::NoResources
            | ConfigError::InvalidToken { .. }
            // A CA file that is missing or not PEM is fixed on the command line.
            | ConfigError::InvalidTlsCa { .. } => EX_USAGE,
            // Duplicate masters by address are also a command-line mistake;
            // by run id they are only visible from the servers. Either way
            // the list must change, and "unavailable" says the lock service
            // as configured cannot be used.
            _ => EX_UNAVAILABLE,
    }
}

/// Folds a possibly multi-line message into one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A duration for people: `250ms`, `1.98s`, `29.9s`, `1m30s`, `2h5m`,
/// `3d4h`. Never Rust's `Debug` form (`1.977737831s`): two or three
/// significant digits say all a reader needs.
pub(crate) fn human_duration(d: Duration) -> String {
    // One implementation, the core's, which every library message uses.
    redlock_core::HumanDuration(d).to_string()
}

/// How much of a piece of user input a one-line message repeats.
const ECHO_CHARS: usize = 64;

/// User input repeated in a one-line message, quoted: whole if short, else
/// its first 64 characters, an ellipsis and its size, `"abc…"… (1024
/// bytes)`, so a 100 KB argument never floods a terminal or a cron mail.
pub(crate) fn quote_input(s: &str) -> String {
    if s.chars().count() <= ECHO_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(ECHO_CHARS).collect();
        format!("{head:?}… ({} bytes)", s.len())
    }
}

/// As [`quote_input`], without the quotes (for text already in quotes,
/// as in clap's messages).
pub(crate) fn short_input(s: &str) -> String {
    if s.chars().count() <= ECHO_CHARS {
        s.to_owned()
    } else {
        let head: String = s.chars().take(ECHO_CHARS).collect();
        format!("{head}… ({} bytes)", s.len())
    }
}

/// A configuration error in words for people: the core's message.
pub(crate) fn describe_config(e: &ConfigError) -> String {
    // The core prints its durations for people (`HumanDuration`) and keeps
    // the exact value where the fraction is the point (`TtlNotWholeMillis`).
    e.to_string()
}

/// An acquisition failure in words for people (see [`describe_config`]).
pub(crate) fn describe_acquire(e: &redlock_core::AcquireError) -> String {
    use redlock_core::AcquireError as E;
    match e {
        E::Invalid(c) => describe_config(c),
        E::ValidityExhausted {
            attempts,
            elapsed,
            ttl,
        } => format!(
            "quorum reached after {}, leaving no validity of the {} TTL (attempts: {attempts})",
            human_duration(*elapsed),
            human_duration(*ttl)
        ),
        E::Deadline {
            attempts,
            waited,
            last,
        } => format!(
            "gave up waiting after {} ({attempts} attempt(s)); last: {}",
            human_duration(*waited),
            describe_acquire(last)
        ),
        other => other.to_string(),
    }
}

/// The adapter's acquisition failure in words for people.
pub(crate) fn describe_lock_error(e: &redlock_tokio::AcquireError) -> String {
    match e {
        redlock_tokio::AcquireError::Lock(e) => describe_acquire(e),
        other => other.to_string(),
    }
}

/// A failed extension in words for people.
pub(crate) fn describe_extend(e: &redlock_core::ExtendError) -> String {
    use redlock_core::ExtendError as E;
    match e {
        E::Invalid(c) => describe_config(c),
        E::Expired { ago } => format!(
            "lock already expired locally {} ago; not extending",
            human_duration(*ago)
        ),
        E::ValidityExhausted { elapsed, ttl } => format!(
            "extension reached quorum after {}, leaving no validity of the {} TTL",
            human_duration(*elapsed),
            human_duration(*ttl)
        ),
        other => other.to_string(),
    }
}

/// Why a lock was lost, in words for people.
pub(crate) fn describe_loss(reason: &redlock_tokio::LossReason) -> String {
    use redlock_tokio::{Cap, LossReason};
    let text = match reason {
        LossReason::Lapsed {
            attempts,
            last_error: Some(e),
        } => format!(
            "lock lost: validity ended before an extension succeeded ({attempts} failed attempt(s); last: {})",
            describe_extend(e)
        ),
        LossReason::CapReached {
            cap: Cap::HoldTime(d),
        } => format!(
            "lock lost: hold-time cap of {} reached, and the validity ended",
            human_duration(*d)
        ),
        other => other.to_string(),
    };
    one_line(&text)
}

/// Shortens a token for display: its first 8 characters and an ellipsis.
/// Enough to tell holders apart, not enough to release someone's lock.
pub(crate) fn short_token(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    if token.chars().count() > 8 {
        format!("{head}…")
    } else {
        head
    }
}

/// Writes `text` to stdout. A closed pipe (`redlock bench | head`) is not
/// an error worth reporting; anything else is.
pub(crate) fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::software(format_args!(
            "cannot write to stdout: {e}"
        ))),
    }
}

/// How a column is aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text columns.
    Left,
    /// Number columns.
    Right,
}

/// A plain-text table with aligned columns, for terminals and logs alike.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(header: &[(&str, Align)]) -> Self {
        Self {
            header: header.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The last row appended, to add cells to it.
    pub(crate) fn last_row_mut(&mut self) -> Option<&mut Vec<String>> {
        self.rows.last_mut()
    }

    /// Appends an empty separator row.
    pub(crate) fn gap(&mut self) {
        self.rows.push(Vec::new());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain(std::iter::once(self.header[i].0.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let mut s = String::new();
            for (i, (_, align)) in self.header.iter().enumerate() {
                let cell = cells.get(i).copied().unwrap_or("");
                if i > 0 {
                    s.push_str("  ");
                }
                match align {
                    Align::Left => s.push_str(&format!("{cell:<w$}", w = widths[i])),
                    Align::Right => s.push_str(&format!("{cell:>w$}", w = widths[i])),
                }
            }
            writeln!(f, "{}", s.trim_end())
        };
        let header: Vec<&str> = self.header.iter().map(|(h, _)| h.as_str()).collect();
        line(f, &header)?;
        for row in &self.rows {
            if row.is_empty() {
                writeln!(f)?;
            } else {
                let cells: Vec<&str> = row.iter().map(String::as_str).collect();
                line(f, &cells)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("name", Align::Left), ("n", Align::Right)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["long".into(), "100".into()]);
        assert_eq!(t.to_string(), "name    n\na       1\nlong  100\n");
    }

    #[test]
    fn messages_fold_to_one_line() {
        assert_eq!(one_line("a\n  b\n\nc "), "a b c");
        assert_eq!(Failure::usage("x\ny").message, "x y");
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        let ms = Duration::from_millis;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(250), "250µs"),
            (Duration::from_micros(2_500), "2.5ms"),
            (Duration::from_micros(2_020), "2.02ms"),
            (ms(250), "250ms"),
            (Duration::from_micros(999_400), "999ms"),
            (Duration::from_micros(999_600), "1s"),
            (Duration::from_nanos(1_977_737_831), "1.98s"),
            (ms(10_000), "10s"),
            (ms(29_940), "29.9s"),
            (ms(59_960), "1m"),
            (ms(90_000), "1m30s"),
            (Duration::from_secs(7_500), "2h5m"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600), "3d4h"),
            (Duration::MAX, "213503982334601d7h"),
        ] {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        assert_eq!(quote_input("nightly"), "\"nightly\"");
        let long = "a".repeat(1024);
        let shown = quote_input(&long);
        assert_eq!(shown, format!("\"{}\"… (1024 bytes)", "a".repeat(64)));
        assert_eq!(
            short_input(&long),
            format!("{}… (1024 bytes)", "a".repeat(64))
        );
        // Characters, not bytes: never a cut inside a UTF-8 sequence.
        let wide = "é".repeat(100);
        assert!(short_input(&wide).ends_with("… (200 bytes)"));
    }

    #[test]
    fn core_errors_get_human_durations() {
        let e = ConfigError::TimeoutNotBelowValidity {
            timeout: Duration::from_nanos(1_977_737_831),
            budget: Duration::from_micros(1_500),
        };
        assert_eq!(
            describe_config(&e),
            "per-master timeout 1.98s must be shorter than the TTL minus drift (1.5ms)"
        );
        let e = redlock_core::ExtendError::Expired {
            ago: Duration::from_nanos(51_695_283),
        };
        let lost = redlock_tokio::LossReason::Lapsed {
            attempts: 1,
            last_error: Some(std::sync::Arc::new(e)),
        };
        assert!(
            describe_loss(&lost)
                .ends_with("last: lock already expired locally 52ms ago; not extending)"),
            "{}",
            describe_loss(&lost)
        );
    }

    #[test]
    fn tokens_are_shortened() {
        assert_eq!(short_token("0123456789abcdef"), "01234567…");
        assert_eq!(short_token("0123"), "0123");
    }

    #[test]
    fn config_errors_map_to_statuses() {
        assert_eq!(Failure::from(ConfigError::TtlZero).status, EX_USAGE);
        let e = ConfigError::Unreachable {
            reachable: 0,
            masters: 1,
            needed: 1,
            details: "x".into(),
        };
        assert_eq!(Failure::from(e).status, EX_UNAVAILABLE);
    }
}
