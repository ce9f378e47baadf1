//! Value parsers: the text of each option turned into a checked value at
//! the boundary, with the reason in words when it is not one.

use std::time::Duration;

use redlock_core::{KeyPrefix, Resource, Ttl, MAX_LABEL_LEN};

use super::Wait;
use crate::spawn::MAX_SPAWN;

/// The longest duration any option takes. Far beyond any sane TTL, wait or
/// timeout, and small enough that adding it to a clock reading can never
/// overflow (an `Instant` holds centuries), so nothing downstream has to
/// cope with values like `18446744073709551615s`.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; expected a duration such as 500ms, 10s, 1m30s"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "too long: at most {}",
            crate::output::human_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

pub(super) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    Ttl::try_from(d).map_err(|e| e.to_string())?;
    Ok(d)
}

pub(super) fn parse_wait(s: &str) -> Result<Wait, String> {
    if s.trim().eq_ignore_ascii_case("forever") {
        return Ok(Wait::Forever);
    }
    parse_positive_duration(s).map(Wait::For)
}

pub(super) fn parse_resource(s: &str) -> Result<String, String> {
    Resource::new(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

pub(super) fn parse_label(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must be one line of text, without control characters".into());
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(format!(
            "too long: {} bytes, at most {MAX_LABEL_LEN}",
            s.len()
        ));
    }
    Ok(s.to_owned())
}

pub(super) fn parse_prefix(s: &str) -> Result<String, String> {
    KeyPrefix::new(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

pub(super) fn parse_spawn(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of servers, 1 to {MAX_SPAWN}"))?;
    if !(1..=MAX_SPAWN).contains(&n) {
        return Err(format!("expected 1 to {MAX_SPAWN} servers"));
    }
    Ok(n)
}
