//! `redlock inspect`: who holds a resource, master by master.
//!
//! Read-only, through [`Redlock::inspect`](redlock_core::Redlock::inspect):
//! one script per master reads the lock key (its value, type and time to
//! live) and the resource's fence counter, bounded by the per-master
//! timeout. The manager over all masters refuses to build when fewer than a
//! quorum answer; inspection is exactly when one wants to see those
//! masters, so it then falls back to one single-master manager per URL and
//! puts their views together ([`Inspection::from_views`]), showing the
//! unreachable ones with the reason.
//!
//! The same reading tells a refused `exec` and `unlock --force` who holds
//! a resource ([`held_by`]).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redlock_core::{
    ConfigError, Holder, Inspection, KeyPrefix, KeyState, MasterFailure, MasterView, Quorum,
    Resource, ResourceSet,
};
use serde::Serialize;

use crate::cli::{Global, InspectArgs};
use crate::output::{human_duration, print_stdout, quote_input, Align, Failure, Table};
use crate::signals::{Signals, STOP};

/// The version of the `--json` document: fields are stable within it, new
/// ones may be added.
const JSON_SCHEMA: u32 = 1;

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
    let resource = Resource::new(args.resource.as_str()).map_err(Failure::from)?;
    let inspection = read(global, urls, &resource).await?;
    let now = SystemTime::now();
    if args.json {
        let json = serde_json::to_string_pretty(&Report::new(&inspection))
            .map_err(|e| Failure::software(format_args!("cannot encode JSON: {e}")))?;
        print_stdout(&format!("{json}\n"))?;
    } else {
        print_stdout(&render(&inspection, now))?;
    }
    let needed = inspection.quorum().needed();
    if inspection.reachable() >= needed {
        Ok(0)
    } else {
        Err(Failure::unavailable(format_args!(
            "only {} of {} masters reachable, {needed} needed",
            inspection.reachable(),
            inspection.views().len(),
        )))
    }
}

/// Reads `resource` on every master: through one manager over all of
/// them, or, when fewer than a quorum can be reached, one master at a time.
///
/// # Errors
///
/// Bad input (64), or a master list the servers prove wrong (the same
/// server twice: 69).
async fn read(
    global: &Global,
    urls: &[String],
    resource: &Resource,
) -> Result<Inspection, Failure> {
    match crate::connect_core(global, urls, global.plain_ttl()).await {
        Ok(manager) => manager
            .inspect(resource.clone())
            .await
            .map_err(Failure::from),
        // The same server twice is a mistake in the list: looking at each
        // entry alone would show it twice and count it twice.
        Err(e @ ConfigError::DuplicateMaster { .. }) => Err(Failure::from(e)),
        Err(e) if crate::output::config_status(&e) == crate::output::EX_UNAVAILABLE => {
            read_one_by_one(global, urls, resource).await
        }
        Err(e) => Err(Failure::from(e)),
    }
}

/// Reads `resource` on each master with a manager of its own, and puts the
/// views together as one inspection over all of them.
async fn read_one_by_one(
    global: &Global,
    urls: &[String],
    resource: &Resource,
) -> Result<Inspection, Failure> {
    let views = futures::future::join_all(urls.iter().enumerate().map(|(i, url)| async move {
        let alone = std::slice::from_ref(url);
        let failed = |why: MasterFailure| MasterView {
            master: i,
            address: Arc::from(display_address(url)),
            state: Err(why),
            fence: None,
        };
        match crate::connect_core(global, alone, global.plain_ttl()).await {
            Ok(manager) => match manager.inspect(resource.clone()).await {
                Ok(one) => one.views().first().cloned().map_or_else(
                    || failed(MasterFailure::BadReply("no view".into())),
                    |v| MasterView { master: i, ..v },
                ),
                Err(e) => failed(MasterFailure::Server(crate::output::describe_config(&e))),
            },
            Err(e) => failed(not_usable(&e)),
        }
    }))
    .await;
    let quorum = Quorum::majority(urls.len()).map_err(Failure::from)?;
    // The key as the library names it, even when no master answered.
    let prefix = KeyPrefix::new(global.prefix.as_str()).map_err(Failure::from)?;
    let key = ResourceSet::from(resource.clone())
        .keys(&prefix)
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(Inspection::from_views(resource.clone(), key, views, quorum))
}

/// Why one master alone could not be used, without repeating its address
/// (the row shows it).
fn not_usable(e: &ConfigError) -> MasterFailure {
    match e {
        // `details` is "ADDRESS REASON" for the one master, the reason
        // itself often "unreachable (WHY)".
        ConfigError::Unreachable { details, .. } => {
            let why = details.split_once(' ').map_or(details.as_str(), |(_, w)| w);
            let why = why
                .strip_prefix("unreachable (")
                .and_then(|w| w.strip_suffix(')'))
                .unwrap_or(why);
            MasterFailure::Unreachable(why.to_owned())
        }
        other => MasterFailure::Misconfigured(crate::output::describe_config(other)),
    }
}

/// `host:port[/db]` of a URL, without scheme or credentials.
fn display_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.trim_end_matches('/').to_owned()
}

/// The first 8 characters of a token: enough to tell holders apart, not
/// enough to release someone else's lock. Anything but letters, digits and
/// punctuation (a key set by hand can hold anything) becomes `?`.
pub(crate) fn token_prefix(token: &str) -> String {
    token
        .chars()
        .take(8)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// How long ago a holder took its lock, by its own wall clock against
/// ours: whole seconds from 10 s on (clocks of two hosts agree no better),
/// "just now" when its clock is ahead of ours.
fn age(holder: &Holder, now: SystemTime) -> String {
    match now.duration_since(holder.since()) {
        Ok(d) => format!("{} ago", rough(d)),
        Err(_) => "just now".to_owned(),
    }
}

/// A duration rounded for people: whole seconds from 10 s on.
pub(crate) fn rough(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        human_duration(Duration::from_secs(d.as_secs()))
    } else {
        human_duration(Duration::from_millis(
            d.as_millis().min(9_999) as u64 / 100 * 100,
        ))
    }
}

/// The holder for a message: `pid 4242 on web-1 ("nightly") since 12s
/// ago`, or, without a record, `another owner (token 3fa2b1c9, no holder
/// recorded)`.
fn describe_holder(token: &str, holder: Option<&Holder>, now: SystemTime) -> String {
    match holder {
        Some(h) => format!("{h} since {}", age(h, now)),
        None => format!(
            "another owner (token {}, no holder recorded)",
            token_prefix(token)
        ),
    }
}

/// The longest time to live left among the masters where `token` holds
/// the key (`None` inside: a key without expiry).
fn ttl_of(inspection: &Inspection, token: &str) -> Option<Option<Duration>> {
    inspection
        .views()
        .iter()
        .filter_map(|v| match &v.state {
            Ok(KeyState::Held { token: t, ttl, .. }) if t == token => Some(*ttl),
            _ => None,
        })
        .reduce(|a, b| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        })
}

/// Time to live left of the most common token's key (the longest among
/// its masters), when it has one.
pub(crate) fn holder_ttl(inspection: &Inspection) -> Option<Duration> {
    let (token, _) = inspection.holder()?;
    ttl_of(inspection, token).flatten()
}

/// The token held on the most masters, described for people.
struct Top<'a> {
    token: &'a str,
    /// Masters where it holds the key.
    masters: usize,
    /// `pid 4242 on web-1 ("nightly") since 12s ago`.
    who: String,
    /// `18s left`.
    left: String,
}

fn top(inspection: &Inspection, now: SystemTime) -> Option<Top<'_>> {
    let (token, masters) = inspection.holder()?;
    let record = inspection.holder_record();
    let left = match ttl_of(inspection, token) {
        Some(Some(ttl)) => format!("{} left", rough(ttl)),
        _ => "no expiry (not set by redlock)".to_owned(),
    };
    Some(Top {
        token,
        masters,
        who: describe_holder(token, record.as_ref(), now),
        left,
    })
}

/// Who holds the resource, for a one-line message: `held by pid 4242 on
/// web-1 ("nightly") since 12s ago, 18s left, on 3/3 masters`, followed by
/// what the other masters said. `None` when no master holds the key.
pub(crate) fn held_by(inspection: &Inspection, now: SystemTime) -> Option<String> {
    let top = top(inspection, now)?;
    let mut line = format!(
        "held by {}, {}, on {}/{} masters",
        top.who,
        top.left,
        top.masters,
        inspection.views().len()
    );
    // The masters that do not hold that token: the reason a contender may
    // still be refused (another holder, a wrong-type key) or the lock looks
    // thinner than it is (unreachable).
    for v in inspection.views() {
        let other = match &v.state {
            Ok(KeyState::Held { token, .. }) if token == top.token => continue,
            Ok(KeyState::Held { token, .. }) => {
                format!("held by another token ({})", token_prefix(token))
            }
            Ok(KeyState::Free) => "free".to_owned(),
            Ok(KeyState::WrongType { kind }) => wrong_type(kind),
            Ok(_) => "in an unknown state".to_owned(),
            Err(e @ MasterFailure::Unreachable(_)) => {
                format!("unreachable ({})", failure_note(e))
            }
            Err(e) => e.to_string(),
        };
        let _ = write!(line, "; {} {other}", v.address);
    }
    Some(line)
}

/// Why a master could not be read, for a row that already says
/// "unreachable": the reason alone, in words (fred describes socket errors
/// with their `Debug` form, `Os { code: 111, .., message: "Connection
/// refused" }`: the message is what a reader wants).
fn failure_note(e: &MasterFailure) -> String {
    match e {
        MasterFailure::Unreachable(why) => {
            let message = why
                .split_once("message: \"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(m, _)| m);
            message.unwrap_or(why).to_owned()
        }
        other => other.to_string(),
    }
}

fn wrong_type(kind: &str) -> String {
    format!("a {kind} key, not a lock (every acquire fails there until it is deleted)")
}

/// The text report: a table of masters, the verdict, the fence.
fn render(inspection: &Inspection, now: SystemTime) -> String {
    let n = inspection.views().len();
    let mut out = format!(
        "resource {} (key {}) on {n} master{}:\n",
        quote_input(inspection.resource().as_str()),
        quote_input(inspection.key()),
        if n == 1 { "" } else { "s" }
    );
    let mut table = Table::new(&[
        ("master", Align::Left),
        ("state", Align::Left),
        ("token", Align::Left),
        ("holder", Align::Left),
        ("since", Align::Left),
        ("ttl", Align::Right),
        ("fence", Align::Right),
        ("note", Align::Left),
    ]);
    for v in inspection.views() {
        let blank = String::new;
        // state, token, holder, since, ttl, note
        let (state, token, holder, since, ttl, note) = match &v.state {
            Ok(KeyState::Free) => ("free", blank(), blank(), blank(), blank(), blank()),
            Ok(KeyState::Held { token, holder, ttl }) => (
                "held",
                token_prefix(token),
                holder.as_ref().map(ToString::to_string).unwrap_or_default(),
                holder.as_ref().map(|h| age(h, now)).unwrap_or_default(),
                ttl.map_or_else(|| "no expiry".to_owned(), human_duration),
                match (holder, ttl) {
                    (_, None) => "not set by redlock".to_owned(),
                    (None, _) => "no holder recorded".to_owned(),
                    _ => blank(),
                },
            ),
            Ok(KeyState::WrongType { kind }) => (
                "wrong type",
                blank(),
                blank(),
                blank(),
                blank(),
                wrong_type(kind),
            ),
            Ok(_) => ("unknown", blank(), blank(), blank(), blank(), blank()),
            Err(e) => (
                "unreachable",
                blank(),
                blank(),
                blank(),
                blank(),
                failure_note(e),
            ),
        };
        let fence = v.fence.map(|f| f.to_string()).unwrap_or_default();
        table.row(vec![
            v.address.to_string(),
            state.to_owned(),
            token,
            holder,
            since,
            ttl,
            fence,
            note,
        ]);
    }
    for line in table.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let needed = inspection.quorum().needed();
    let verdict = match top(inspection, now) {
        Some(t) if inspection.held_by_quorum() => format!(
            "yes, by {}, {} (token {} on {} of {n} masters, {needed} needed)",
            t.who,
            t.left,
            token_prefix(t.token),
            t.masters
        ),
        Some(t) => format!(
            "no (token {} on {} of {n} masters, {needed} needed)",
            token_prefix(t.token),
            t.masters
        ),
        None => format!("no (held on 0 of {n} masters, {needed} needed)"),
    };
    let _ = writeln!(out, "held by quorum: {verdict}");
    let fence = inspection.fence();
    if fence > 0 {
        let _ = writeln!(
            out,
            "fence: {fence} (the highest on any master; the next fenced holder gets a higher one)"
        );
    }
    out
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    resource: String,
    key: String,
    masters: Vec<MasterJson>,
    /// Votes a quorum needs.
    quorum: usize,
    /// Masters that answered.
    reachable: usize,
    /// Masters holding the most common token.
    holders: usize,
    /// First 8 characters of the most common token.
    holder_token_prefix: Option<String>,
    #[serde(flatten)]
    holder: HolderJson,
    /// Time to live of the most common token's key (the longest).
    ttl_ms: Option<u64>,
    held_by_quorum: bool,
    /// The highest fence counter any master reported (0: never fenced).
    fence: u64,
}

/// A holder record as separate plain fields.
#[derive(Debug, Default, Serialize)]
struct HolderJson {
    holder_host: Option<String>,
    holder_pid: Option<u32>,
    holder_since_unix_ms: Option<u64>,
    holder_label: Option<String>,
}

impl HolderJson {
    fn new(holder: Option<&Holder>) -> Self {
        holder.map_or_else(Self::default, |h| Self {
            holder_host: Some(h.host().to_owned()),
            holder_pid: Some(h.pid()),
            holder_since_unix_ms: Some(h.since_unix_ms()),
            holder_label: h.label().map(str::to_owned),
        })
    }
}

/// One master in the `--json` document.
#[derive(Debug, Serialize)]
struct MasterJson {
    address: String,
    /// `free`, `held`, `wrong_type` or `unreachable`.
    state: &'static str,
    reachable: bool,
    /// Whether a lock key is there (`null` when unreachable).
    held: Option<bool>,
    token_prefix: Option<String>,
    #[serde(flatten)]
    holder: HolderJson,
    /// Time to live left of a held key; `null` without one.
    ttl_ms: Option<u64>,
    /// A held key without expiry (not set by redlock).
    no_expiry: bool,
    /// The Redis type of a key that is not a lock.
    wrong_type: Option<String>,
    /// The fence counter there (0: never fenced; `null` when unreachable).
    fence: Option<u64>,
    error: Option<String>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl MasterJson {
    fn new(v: &MasterView) -> Self {
        let mut m = Self {
            address: v.address.to_string(),
            state: "unreachable",
            reachable: v.state.is_ok(),
            held: v
                .state
                .as_ref()
                .ok()
                .map(|s| matches!(s, KeyState::Held { .. })),
            token_prefix: None,
            holder: HolderJson::default(),
            ttl_ms: None,
            no_expiry: false,
            wrong_type: None,
            fence: v.fence,
            error: None,
        };
        match &v.state {
            Ok(KeyState::Free) => m.state = "free",
            Ok(KeyState::Held { token, holder, ttl }) => {
                m.state = "held";
                m.token_prefix = Some(token_prefix(token));
                m.holder = HolderJson::new(holder.as_ref());
                m.ttl_ms = ttl.map(millis);
                m.no_expiry = ttl.is_none();
            }
            Ok(KeyState::WrongType { kind }) => {
                m.state = "wrong_type";
                m.wrong_type = Some(kind.clone());
            }
            Ok(_) => m.state = "unknown",
            Err(e) => m.error = Some(failure_note(e)),
        }
        m
    }
}

impl Report {
    fn new(inspection: &Inspection) -> Self {
        let top = inspection.holder();
        let record = inspection.holder_record();
        Self {
            schema: JSON_SCHEMA,
            resource: inspection.resource().as_str().to_owned(),
            key: inspection.key().to_owned(),
            masters: inspection.views().iter().map(MasterJson::new).collect(),
            quorum: inspection.quorum().needed(),
            reachable: inspection.reachable(),
            holders: top.map_or(0, |(_, n)| n),
            holder_token_prefix: top.map(|(t, _)| token_prefix(t)),
            holder: HolderJson::new(record.as_ref()),
            ttl_ms: top
                .and_then(|(t, _)| ttl_of(inspection, t))
                .flatten()
                .map(millis),
            held_by_quorum: inspection.held_by_quorum(),
            fence: inspection.fence(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_060_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(NOW_MS)
    }

    fn view(i: usize, state: Result<KeyState, MasterFailure>) -> MasterView {
        MasterView {
            master: i,
            address: Arc::from(format!("10.0.0.{}:6379", i + 1)),
            state,
            fence: Some(7),
        }
    }

    fn held(
        token: &str,
        holder: Option<Holder>,
        ttl_ms: Option<u64>,
    ) -> Result<KeyState, MasterFailure> {
        Ok(KeyState::Held {
            token: token.into(),
            holder,
            ttl: ttl_ms.map(Duration::from_millis),
        })
    }

    fn inspection(views: Vec<MasterView>) -> Inspection {
        let q = Quorum::majority(views.len()).expect("masters");
        Inspection::from_views(
            Resource::new("nightly").expect("valid"),
            "redlock:nightly".into(),
            views,
            q,
        )
    }

    fn web1() -> Holder {
        // Acquired 12.3 s before `now()`.
        Holder::new("web-1", 4242, NOW_MS - 12_300, Some("nightly"))
    }

    #[test]
    fn held_by_names_the_holder_its_age_and_what_is_left() {
        let token = "3fa2b1c9d0e1f2a3b4c5d6e7f8091a2b web-1 4242 1699999947700 nightly";
        let i = inspection(vec![
            view(0, held(token, Some(web1()), Some(18_400))),
            view(1, held(token, Some(web1()), Some(18_100))),
            view(2, Err(MasterFailure::TimedOut)),
        ]);
        assert_eq!(
            held_by(&i, now()).as_deref(),
            Some("held by pid 4242 on web-1 (\"nightly\") since 12s ago, 18s left, on 2/3 masters; 10.0.0.3:6379 timed out")
        );
        let text = render(&i, now());
        assert!(
            text.contains("held by quorum: yes, by pid 4242 on web-1 (\"nightly\") since 12s ago, 18s left (token 3fa2b1c9 on 2 of 3 masters, 2 needed)"),
            "{text}"
        );
        assert!(text.contains("fence: 7"), "{text}");
        assert!(
            !text.contains("3fa2b1c9d"),
            "more than 8 characters: {text}"
        );
        let json = serde_json::to_value(Report::new(&i)).expect("JSON");
        assert_eq!(json["holder_token_prefix"], "3fa2b1c9");
        assert_eq!(json["holder_pid"], 4242);
        assert_eq!(json["holder_host"], "web-1");
        assert_eq!(json["holder_label"], "nightly");
        assert_eq!(json["holder_since_unix_ms"], NOW_MS - 12_300);
        assert_eq!(json["ttl_ms"], 18_400);
        assert_eq!(json["fence"], 7);
        assert_eq!(json["masters"][0]["state"], "held");
        assert_eq!(json["masters"][0]["token_prefix"], "3fa2b1c9");
        assert_eq!(json["masters"][2]["state"], "unreachable");
        assert_eq!(json["masters"][2]["error"], "timed out");
    }

    #[test]
    fn keys_without_a_record_or_expiry_and_wrong_types_are_named() {
        let i = inspection(vec![
            view(0, held("someone else\n", None, None)),
            view(
                1,
                Ok(KeyState::WrongType {
                    kind: "hash".into(),
                }),
            ),
            view(2, Ok(KeyState::Free)),
        ]);
        assert_eq!(
            held_by(&i, now()).as_deref(),
            Some("held by another owner (token someone?, no holder recorded), no expiry (not set by redlock), on 1/3 masters; 10.0.0.2:6379 a hash key, not a lock (every acquire fails there until it is deleted); 10.0.0.3:6379 free")
        );
        let text = render(&i, now());
        assert!(text.contains("wrong type"), "{text}");
        assert!(text.contains("a hash key, not a lock"), "{text}");
        assert!(
            text.contains("held by quorum: no (token someone? on 1 of 3 masters, 2 needed)"),
            "{text}"
        );
        let json = serde_json::to_value(Report::new(&i)).expect("JSON");
        assert_eq!(json["masters"][0]["no_expiry"], true);
        assert_eq!(json["masters"][0]["ttl_ms"], serde_json::Value::Null);
        assert_eq!(json["masters"][1]["state"], "wrong_type");
        assert_eq!(json["masters"][1]["wrong_type"], "hash");
        assert_eq!(json["masters"][2]["state"], "free");
        assert!(held_by(&inspection(vec![view(0, Ok(KeyState::Free))]), now()).is_none());
    }

    #[test]
    fn ages_and_addresses_read_well() {
        assert_eq!(display_address("redis://u:pw@h:1/2"), "h:1/2");
        assert_eq!(display_address("redis://h:1"), "h:1");
        let refused = MasterFailure::Unreachable(
            "Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }".into(),
        );
        assert_eq!(failure_note(&refused), "Connection refused");
        assert_eq!(failure_note(&MasterFailure::TimedOut), "timed out");
        let h = |ago_ms: u64| Holder::new("h", 1, NOW_MS - ago_ms, None);
        assert_eq!(age(&h(12_345), now()), "12s ago");
        assert_eq!(age(&h(1_250), now()), "1.2s ago");
        let ahead = Holder::new("h", 1, NOW_MS + 5_000, None);
        assert_eq!(age(&ahead, now()), "just now");
    }
}
