//! `redlock inspect`: who holds a resource, master by master.
//!
//! Read-only: `GET` and `PTTL` of `PREFIX+NAME` on each master, through the
//! master's own fred client with the per-master timeout. The manager over
//! all masters refuses to build when fewer than a quorum answer; inspection
//! is exactly when one wants to see those masters, so it then falls back to
//! one single-master manager per URL and shows the unreachable ones as such.

use std::collections::HashMap;
use std::fmt::Write as _;

use fred::interfaces::{ClientLike, KeysInterface};
use redlock_core::{FredMaster, Master, Quorum};
use serde::Serialize;

use crate::cli::{Global, InspectArgs};
use crate::output::{print_stdout, short_token, Align, Failure, Table, EX_UNAVAILABLE};
use crate::signals::{Signals, STOP};

/// What one master says about the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct MasterView {
    /// Address for humans (no password).
    address: String,
    /// Whether the master answered.
    reachable: bool,
    /// Whether the key exists (`None` when unreachable).
    held: Option<bool>,
    /// First 8 characters of the token in the key.
    token_prefix: Option<String>,
    /// Remaining TTL in ms; `-1` for a key without expiry (not a redlock
    /// key, or set by hand).
    ttl_ms: Option<i64>,
    /// Why the master could not be read.
    error: Option<String>,
    /// The full token, for counting holders; never printed.
    #[serde(skip)]
    token: Option<String>,
}

/// The whole report, also the `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    resource: String,
    key: String,
    masters: Vec<MasterView>,
    /// Votes a quorum needs.
    quorum: usize,
    /// Masters holding the most common token.
    holders: usize,
    /// First 8 characters of the most common token.
    holder_token_prefix: Option<String>,
    held_by_quorum: bool,
    reachable: usize,
}

/// Runs `inspect`.
///
/// # Errors
///
/// Bad URLs (64); fewer than a quorum reachable (69, after printing).
pub(crate) async fn run(
    global: &Global,
    urls: &[String],
    args: InspectArgs,
) -> Result<u8, Failure> {
    let mut signals = Signals::install(STOP)?;
    tokio::select! {
        r = inspect(global, urls, &args) => r,
        sig = signals.recv() => Err(Failure::signalled(sig)),
    }
}

async fn inspect(global: &Global, urls: &[String], args: &InspectArgs) -> Result<u8, Failure> {
    let key = format!("{}{}", global.prefix, args.resource);
    let views = match crate::connect(global, urls, std::time::Duration::from_secs(10)).await {
        Ok(manager) => {
            futures::future::join_all(manager.masters().iter().map(|m| read(m, &key))).await
        }
        // Fewer than a quorum answered: look at each master on its own.
        Err(f) if f.status == EX_UNAVAILABLE => {
            futures::future::join_all(urls.iter().map(|u| read_alone(global, u, &key))).await
        }
        Err(f) => return Err(f),
    };
    let quorum = Quorum::majority(views.len()).map_err(Failure::from)?;
    let report = summarize(args.resource.clone(), key, views, quorum);
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::software(format_args!("cannot encode JSON: {e}")))?;
        print_stdout(&format!("{json}\n"))?;
    } else {
        print_stdout(&render(&report))?;
    }
    if report.reachable >= quorum.needed() {
        Ok(0)
    } else {
        Err(Failure::unavailable(format_args!(
            "only {} of {} masters reachable, {} needed",
            report.reachable,
            report.masters.len(),
            quorum.needed()
        )))
    }
}

/// Reads the key on one master of a connected manager.
async fn read(master: &FredMaster, key: &str) -> MasterView {
    let client = master.client().with_options(master.call_options());
    let address = master.address().to_string();
    let got: Result<Option<String>, _> = client.get(key).await;
    let view = |held, token: Option<String>, ttl_ms, error: Option<String>| MasterView {
        address: address.clone(),
        reachable: error.is_none(),
        held,
        token_prefix: token.as_deref().map(short_token),
        ttl_ms,
        error,
        token,
    };
    match got {
        Err(e) => view(None, None, None, Some(e.details().to_owned())),
        Ok(None) => view(Some(false), None, None, None),
        Ok(Some(token)) => match client.pttl::<i64, _>(key).await {
            // -2: the key expired between the two commands.
            Ok(-2) => view(Some(false), None, None, None),
            Ok(ms) => view(Some(true), Some(token), Some(ms), None),
            Err(e) => view(None, None, None, Some(e.details().to_owned())),
        },
    }
}

/// Connects to `url` alone and reads the key there.
async fn read_alone(global: &Global, url: &str, key: &str) -> MasterView {
    let one = [url.to_owned()];
    match crate::connect(global, &one, std::time::Duration::from_secs(10)).await {
        Ok(manager) => match manager.masters().first() {
            Some(m) => read(m, key).await,
            None => unreachable_view(url, "no master".into()),
        },
        Err(f) => {
            let why = if f.message.contains("reachable") {
                "no connection".to_owned()
            } else {
                f.message
            };
            unreachable_view(url, why)
        }
    }
}

fn unreachable_view(url: &str, error: String) -> MasterView {
    MasterView {
        address: display_address(url),
        reachable: false,
        held: None,
        token_prefix: None,
        ttl_ms: None,
        error: Some(error),
        token: None,
    }
}

/// `host:port[/db]` of a URL, without scheme or credentials.
fn display_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.trim_end_matches('/').to_owned()
}

fn summarize(resource: String, key: String, masters: Vec<MasterView>, quorum: Quorum) -> Report {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in masters.iter().filter_map(|m| m.token.as_deref()) {
        *counts.entry(t).or_default() += 1;
    }
    let best = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)));
    let holders = best.map_or(0, |(_, n)| n);
    let holder_token_prefix = best.map(|(t, _)| short_token(t));
    let reachable = masters.iter().filter(|m| m.reachable).count();
    Report {
        resource,
        key,
        quorum: quorum.needed(),
        holders,
        holder_token_prefix,
        held_by_quorum: holders >= quorum.needed(),
        reachable,
        masters,
    }
}

fn render(r: &Report) -> String {
    let mut out = format!(
        "resource {} (key {}) on {} master{}:\n",
        crate::output::quote_input(&r.resource),
        crate::output::quote_input(&r.key),
        r.masters.len(),
        if r.masters.len() == 1 { "" } else { "s" }
    );
    let mut table = Table::new(&[
        ("master", Align::Left),
        ("reachable", Align::Left),
        ("held", Align::Left),
        ("token", Align::Left),
        ("ttl", Align::Right),
        ("note", Align::Left),
    ]);
    for m in &r.masters {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        let ttl = match m.ttl_ms {
            Some(-1) => "no expiry".to_owned(),
            Some(ms) => format_ms(ms),
            None => String::new(),
        };
        table.row(vec![
            m.address.clone(),
            yes_no(m.reachable),
            m.held.map_or_else(|| "?".to_owned(), yes_no),
            m.token_prefix.clone().unwrap_or_default(),
            ttl,
            m.error.clone().unwrap_or_default(),
        ]);
    }
    for line in table.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let holders = match &r.holder_token_prefix {
        Some(t) => format!("token {t} on {} of {}", r.holders, r.masters.len()),
        None => format!("held on 0 of {}", r.masters.len()),
    };
    let _ = writeln!(
        out,
        "held by quorum: {} ({holders} master{}, {} needed)",
        if r.held_by_quorum { "yes" } else { "no" },
        if r.masters.len() == 1 { "" } else { "s" },
        r.quorum
    );
    out
}

fn format_ms(ms: i64) -> String {
    if ms >= 1000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(addr: &str, token: Option<&str>) -> MasterView {
        MasterView {
            address: addr.into(),
            reachable: true,
            held: Some(token.is_some()),
            token_prefix: token.map(short_token),
            ttl_ms: token.map(|_| 5000),
            error: None,
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn quorum_needs_one_token_on_a_majority() {
        let q = Quorum::majority(3).expect("3 masters");
        let r = summarize(
            "r".into(),
            "redlock:r".into(),
            vec![
                view("a", Some("aaaaaaaaaa")),
                view("b", Some("bbbbbbbbbb")),
                view("c", None),
            ],
            q,
        );
        assert!(!r.held_by_quorum);
        assert_eq!(r.holders, 1);
        let r = summarize(
            "r".into(),
            "redlock:r".into(),
            vec![
                view("a", Some("aaaaaaaaaa")),
                view("b", Some("aaaaaaaaaa")),
                view("c", None),
            ],
            q,
        );
        assert!(r.held_by_quorum);
        assert_eq!(r.holder_token_prefix.as_deref(), Some("aaaaaaaa…"));
        let text = render(&r);
        assert!(
            text.contains("held by quorum: yes (token aaaaaaaa… on 2 of 3 masters, 2 needed)"),
            "{text}"
        );
        assert!(!text.contains("aaaaaaaaaa"), "full token printed: {text}");
    }

    #[test]
    fn addresses_hide_credentials() {
        assert_eq!(display_address("redis://u:pw@h:1/2"), "h:1/2");
        assert_eq!(display_address("redis://h:1"), "h:1");
        assert_eq!(format_ms(8512), "8.512s");
        assert_eq!(format_ms(12), "12ms");
    }
}
