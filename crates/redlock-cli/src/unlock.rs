//! `redlock unlock`: release a lock from outside its holder.
//!
//! Two ways, of very different risk:
//!
//! - `--token TOKEN` releases the keys that hold that token, and only
//!   those ([`Redlock::release_token`](redlock_core::Redlock::release_token)):
//!   a compare-and-delete on every master, exactly what the holder's own
//!   release does. Whoever has the token is the holder, as far as the
//!   masters can tell; a wrong token removes nothing.
//! - `--force` deletes the keys whoever holds them
//!   ([`Redlock::danger_force_unlock`](redlock_core::Redlock::danger_force_unlock)),
//!   after saying who held them. A holder that still runs keeps trusting
//!   its lock until its validity ends (or its next extension fails), while
//!   the next contender takes the resource at once: two holders.
//!
//! ```text
//!  --token ─► release_token ─► removed somewhere ─► 0
//!                    │       └─ removed nowhere ─► held by another? 75 : 0
//!                    └─ no quorum confirmed ─► 69
//!  --force ─► inspect, say who ─► danger_force_unlock ─► quorum confirmed? 0 : 69
//! ```

use std::io::BufRead;
use std::time::{Duration, SystemTime};

use redlock_core::{ReleaseError, ReleaseReport, Resource, ResourceSet, Token};

use crate::cli::{Global, UnlockArgs};
use crate::inspect::{held_by, holder_ttl, rough, token_prefix};
use crate::output::{quote_input, Failure, EX_TEMPFAIL, EX_UNAVAILABLE};
use crate::signals::{Signals, STOP};
use crate::Manager;

/// Runs `unlock`.
///
/// # Errors
///
/// A malformed token (64), masters unavailable or too few confirming (69),
/// a token that holds nothing while another owner holds the resource (75).
pub(crate) async fn run(global: &Global, urls: &[String], args: UnlockArgs) -> Result<u8, Failure> {
    let mut signals = Signals::install(STOP)?;
    // Parsed before connecting: a bad token is a usage error, found first.
    let token = match &args.token {
        Some(text) => Some(parse_token(text)?),
        None => None,
    };
    let resource = Resource::new(args.resource.as_str()).map_err(Failure::from)?;
    let manager = tokio::select! {
        r = crate::connect(global, urls, global.plain_ttl()) => r?,
        sig = signals.recv() => return Err(Failure::signalled(sig)),
    };
    let outcome = tokio::select! {
        r = unlock(&manager, &args, &resource, token) => r,
        sig = signals.recv() => Err(Failure::signalled(sig)),
    };
    // A release decides at a quorum; the other masters finish in the
    // background, which must end before `main` drops the runtime. Each is
    // bounded by the per-master timeout.
    let bound = global.master_timeout.saturating_add(Duration::from_secs(1));
    let _ = tokio::time::timeout(bound, manager.background_idle()).await;
    outcome
}

async fn unlock(
    manager: &Manager,
    args: &UnlockArgs,
    resource: &Resource,
    token: Option<Token>,
) -> Result<u8, Failure> {
    let set = ResourceSet::from(resource.clone());
    match token {
        Some(token) => by_token(manager, args, resource, &set, token).await,
        None => force(manager, args, resource, &set).await,
    }
}

/// `--token`: the holder's own compare-and-delete, from outside.
async fn by_token(
    manager: &Manager,
    args: &UnlockArgs,
    resource: &Resource,
    set: &ResourceSet,
    token: Token,
) -> Result<u8, Failure> {
    let shown = quote_input(resource.as_str());
    let token = complete(manager, resource, token).await;
    let prefix = token_prefix(token.expose());
    match manager.release_token(set, &token).await {
        Ok(report) if report.released() > 0 => {
            if !args.quiet {
                eprintln!(
                    "redlock: released {shown} (token {prefix}) on {}",
                    counted(&report)
                );
            }
            Ok(0)
        }
        Ok(_) => {
            // Nothing held that token: say who holds the resource now, if
            // anyone. Another holder keeps it (75); a free resource is
            // what was asked for.
            let now = SystemTime::now();
            let inspection = manager.inspect(resource.clone()).await.ok();
            match inspection.as_ref().and_then(|i| held_by(i, now)) {
                Some(held) => Err(Failure {
                    status: EX_TEMPFAIL,
                    message: crate::output::one_line(&format!(
                        "resource {shown} not released: no master holds it with token {prefix}; it is {held}"
                    )),
                    plain: true,
                }),
                None => {
                    if !args.quiet {
                        eprintln!(
                            "redlock: nothing to release: no master holds {shown} with token {prefix} (released already, or expired)"
                        );
                    }
                    Ok(0)
                }
            }
        }
        Err(ReleaseError::Incomplete { report }) => Err(too_few(manager, &shown, &report)),
        Err(e) => Err(Failure::unavailable(e)),
    }
}

/// A token given by its random part alone (the first 32 hex digits, say
/// from a log) is completed with the holder record stored after it, when
/// some master holds exactly that random part: the scripts compare the
/// whole value. Knowing the random part is knowing the secret, so this
/// lets nobody release a lock they could not release anyway.
async fn complete(manager: &Manager, resource: &Resource, token: Token) -> Token {
    if token.expose().contains(' ') {
        return token;
    }
    let Ok(inspection) = manager.inspect(resource.clone()).await else {
        return token;
    };
    let stored = inspection.views().iter().find_map(|v| match &v.state {
        Ok(redlock_core::KeyState::Held { token: t, .. })
            if t.split(' ').next() == Some(token.expose()) =>
        {
            Token::parse(t).ok()
        }
        _ => None,
    });
    stored.unwrap_or(token)
}

/// `--force`: delete whoever holds it, after saying who that is.
async fn force(
    manager: &Manager,
    args: &UnlockArgs,
    resource: &Resource,
    set: &ResourceSet,
) -> Result<u8, Failure> {
    let shown = quote_input(resource.as_str());
    if !args.quiet {
        let now = SystemTime::now();
        let inspection = manager.inspect(resource.clone()).await.ok();
        match inspection
            .as_ref()
            .and_then(|i| held_by(i, now).map(|h| (i, h)))
        {
            Some((i, held)) => {
                let trust = holder_ttl(i).map_or_else(
                    || "until its validity ends".to_owned(),
                    |ttl| format!("for up to {} more", rough(ttl)),
                );
                eprintln!(
                    "redlock: warning: forcing {shown} open: it is {held}. If that holder still runs, it keeps trusting its lock {trust}, while the next contender takes it at once"
                );
            }
            None => eprintln!(
                "redlock: {shown} is not held on any master that answered; deleting its key anyway"
            ),
        }
    }
    let report = match manager.danger_force_unlock(set).await {
        Ok(report) => report,
        Err(ReleaseError::Incomplete { report }) => {
            if report.confirmed() < manager.settings().quorum().needed() {
                return Err(too_few(manager, &shown, &report));
            }
            eprintln!(
                "redlock: warning: {shown} removed on {} only: {report}; the key on the others expires with its TTL",
                counted(&report)
            );
            return Ok(0);
        }
        Err(e) => return Err(Failure::unavailable(e)),
    };
    if !args.quiet {
        eprintln!("redlock: removed {shown} on {}", counted(&report));
    }
    Ok(0)
}

/// `2/3 masters`.
fn counted(report: &ReleaseReport) -> String {
    let n = report.iter().count();
    format!(
        "{}/{n} master{}",
        report.confirmed(),
        if n == 1 { "" } else { "s" }
    )
}

/// Fewer than a quorum confirmed: the lock may still count as held.
fn too_few(manager: &Manager, shown: &str, report: &ReleaseReport) -> Failure {
    Failure::new(
        EX_UNAVAILABLE,
        format_args!(
            "resource {shown}: removal confirmed on {}, {} needed: {report}; the keys there expire with their TTL",
            counted(report),
            manager.settings().quorum().needed()
        ),
    )
}

/// Parses `--token`: the value as `REDLOCK_TOKEN` has it, or `-` to read
/// it from the first line of stdin (a token on a command line is visible
/// to every user of the host in `ps`). The error never repeats the input:
/// it may be a secret.
fn parse_token(text: &str) -> Result<Token, Failure> {
    let text = if text == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format_args!("--token -: cannot read stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        text.to_owned()
    };
    Token::parse(&text).map_err(|_| {
        Failure::usage(format_args!(
            "--token: not a redlock token ({} bytes): expected the value REDLOCK_TOKEN holds, 32 hex digits optionally followed by a space and its holder record, quoted as one argument (the value is not repeated here)",
            text.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_parsed_without_echoing_them() {
        let t = "0123456789abcdef0123456789abcdef";
        assert!(parse_token(t).is_ok());
        assert!(parse_token(&format!("{t} web-1 42 1700000000000 nightly")).is_ok());
        for bad in ["secret-value", "0123", &format!("{t} not a record")] {
            let f = parse_token(bad).expect_err(bad);
            assert_eq!(f.status, crate::output::EX_USAGE);
            assert!(!f.message.contains(bad), "{}", f.message);
        }
    }
}
