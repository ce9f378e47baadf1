//! What a master's reply means, as pure functions: every reply the scripts
//! never return, and every error (`READONLY`, `NOPERM`, `BUSY`, `MOVED`,
//! `WRONGTYPE`, `OOM`, garbage), becomes a failed vote, never a panic and
//! never a grant. Property-tested below over arbitrary replies.

use fred::error::{Error as FredError, ErrorKind};
use fred::types::Value;

use redlock_core::{KeyState, MasterFailure};

// What each script's integer means lives beside the scripts, in the core
// (`redlock_core::scripts`), and is read in `crate::commands`.

/// The integer a script returned, or why there is none.
pub(crate) fn script_reply(reply: Result<Value, FredError>) -> Result<i64, MasterFailure> {
    match reply {
        Ok(Value::Integer(n)) => Ok(n),
        Ok(other) => Err(MasterFailure::BadReply(short(format!("{other:?}")))),
        Err(e) => Err(map_error(&e)),
    }
}

/// What `SET key token NX PX ttl GET` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetNxGet {
    /// The key was absent and is now ours.
    Set,
    /// The key already holds our token (a late command of an earlier
    /// attempt); it was not touched, so its expiry must be refreshed.
    Ours,
    /// The key holds another token.
    Other,
}

/// `SET key token NX PX ttl GET` (Redis 7.0+) answers nil when it set the
/// key and the old value when the key exists: one round trip tells set,
/// ours, or held. Anything else is a failed vote.
pub(crate) fn set_nx_get_outcome(
    reply: Result<Value, FredError>,
    token: &str,
) -> Result<SetNxGet, MasterFailure> {
    let held = |v: &[u8]| {
        if v == token.as_bytes() {
            SetNxGet::Ours
        } else {
            SetNxGet::Other
        }
    };
    match reply {
        Ok(Value::Null) => Ok(SetNxGet::Set),
        Ok(Value::String(s)) => Ok(held(s.as_bytes())),
        Ok(Value::Bytes(b)) => Ok(held(&b)),
        Ok(other) => Err(MasterFailure::BadReply(short(format!("{other:?}")))),
        Err(e) => Err(map_error(&e)),
    }
}

/// Whether a failure says the server does not know `SET ... NX GET`
/// (Redis before 7.0 answers a syntax error).
pub(crate) fn is_syntax_error(failure: &MasterFailure) -> bool {
    matches!(failure, MasterFailure::Server(e) if e.contains("syntax error"))
}

/// The inspection script's reply: the key's state and the stored fence.
pub(crate) fn inspect_outcome(
    reply: Result<Value, FredError>,
) -> Result<(KeyState, u64), MasterFailure> {
    let parts = match reply {
        Ok(Value::Array(parts)) => parts,
        Ok(other) => return Err(MasterFailure::BadReply(short(format!("{other:?}")))),
        Err(e) => return Err(map_error(&e)),
    };
    let int = |v: &Value| match v {
        Value::Integer(n) => Some(*n),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    let bad = || MasterFailure::BadReply(short(format!("inspect script returned {parts:?}")));
    let fence = parts
        .get(1)
        .and_then(int)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)?;
    let state = match (parts.first().and_then(int), parts.get(2), parts.get(3)) {
        (Some(0), None, None) => KeyState::Free,
        (Some(2), Some(kind), None) => KeyState::WrongType {
            kind: text(kind).ok_or_else(bad)?,
        },
        (Some(1), Some(value), Some(pttl)) => KeyState::Held {
            holder: text(value).and_then(|v| crate::Token::parse(&v).ok()?.holder()),
            token: text(value).ok_or_else(bad)?,
            ttl: int(pttl)
                .and_then(|ms| u64::try_from(ms).ok())
                .map(std::time::Duration::from_millis),
        },
        _ => return Err(bad()),
    };
    Ok((state, fence))
}

/// Maps a fred error at the boundary: transport problems, timeouts and
/// server error replies stay distinguishable, and fred's type never leaks
/// through the core API.
pub(crate) fn map_error(e: &FredError) -> MasterFailure {
    let details = short(e.details().to_string());
    match e.kind() {
        ErrorKind::Timeout => MasterFailure::TimedOut,
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing | ErrorKind::Backpressure
            if details.contains("Connection closed") =>
        {
            // fred closes a connection whose replies stalled (the
            // unresponsive check): the server is paused, overloaded or
            // restarting, which "closed unexpectedly" does not say.
            MasterFailure::Unreachable(format!(
                "{details} (the server stopped answering: paused, overloaded or restarting?)"
            ))
        }
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing | ErrorKind::Backpressure => {
            MasterFailure::Unreachable(io_message(details))
        }
        ErrorKind::Protocol | ErrorKind::Parse => MasterFailure::BadReply(details),
        // fred reports a command refused by `fail_fast` on a disconnected
        // client with these words rather than an IO kind.
        _ if details.contains("fail fast") || details.contains("Disconnected") => {
            MasterFailure::Unreachable(details)
        }
        _ => MasterFailure::Server(details),
    }
}

/// fred reports I/O errors with their `Debug` text (`Os { code: 111, kind:
/// ConnectionRefused, message: "Connection refused" }`); keep the message.
fn io_message(details: String) -> String {
    details
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(details.clone(), |(msg, _)| msg.to_owned())
}

/// Bounds what a reply can put into an error message: a garbage reply of
/// megabytes must not become a megabyte error line.
pub(crate) fn short(mut s: String) -> String {
    const MAX: usize = 200;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redlock_core::scripts::{
        acquire_fenced_outcome, acquire_outcome, extend_outcome, release_outcome, set_fence_outcome,
    };

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Integer),
            ".{0,300}".prop_map(|s| Value::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::Bytes(b.into())),
            any::<f64>().prop_map(Value::Double),
            any::<bool>().prop_map(Value::Boolean),
            Just(Value::Null),
            Just(Value::Queued),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(Value::Array)
        })
    }

    fn any_kind() -> impl Strategy<Value = ErrorKind> {
        prop_oneof![
            Just(ErrorKind::Config),
            Just(ErrorKind::Auth),
            Just(ErrorKind::Routing),
            Just(ErrorKind::IO),
            Just(ErrorKind::InvalidCommand),
            Just(ErrorKind::InvalidArgument),
            Just(ErrorKind::Url),
            Just(ErrorKind::Protocol),
            Just(ErrorKind::Canceled),
            Just(ErrorKind::Unknown),
            Just(ErrorKind::Timeout),
            Just(ErrorKind::Cluster),
            Just(ErrorKind::Parse),
            Just(ErrorKind::NotFound),
            Just(ErrorKind::Backpressure),
        ]
    }

    fn any_message() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("READONLY You can't write against a read only replica.".to_owned()),
            Just("NOPERM this user has no permissions to access one of the keys".to_owned()),
            Just("BUSY Redis is busy running a script.".to_owned()),
            Just("MOVED 3999 127.0.0.1:6381".to_owned()),
            Just("WRONGTYPE Operation against a key holding the wrong kind of value".to_owned()),
            Just("OOM command not allowed when used memory > 'maxmemory'.".to_owned()),
            Just("LOADING Redis is loading the dataset in memory".to_owned()),
            ".{0,400}",
        ]
    }

    proptest! {
        /// No reply but the integer 1 ever grants, whatever the script.
        #[test]
        fn only_integer_one_grants(v in any_value()) {
            let grants = |r: Result<(), MasterFailure>| r.is_ok();
            let n = script_reply(Ok(v.clone()));
            let is_one = matches!(v, Value::Integer(1));
            prop_assert_eq!(n.clone().map(acquire_outcome).is_ok_and(grants), is_one);
            prop_assert_eq!(n.clone().map(extend_outcome).is_ok_and(grants), is_one);
            if let Err(f) = n {
                prop_assert!(f.to_string().chars().count() < 260, "{}", f);
            }
        }

        /// Any error is a failed vote of the right family, never a grant,
        /// never `Held` (contention is only ever claimed from a script's 0).
        #[test]
        fn errors_are_failed_votes(kind in any_kind(), msg in any_message()) {
            let e = FredError::new(kind.clone(), msg);
            let f = match script_reply(Err(e)) {
                Err(f) => f,
                Ok(n) => return Err(TestCaseError::fail(format!("error became {n}"))),
            };
            prop_assert!(!f.is_contention());
            prop_assert!(f.to_string().chars().count() < 260);
            match kind {
                ErrorKind::Timeout => prop_assert_eq!(f, MasterFailure::TimedOut),
                ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing | ErrorKind::Backpressure => {
                    prop_assert!(matches!(f, MasterFailure::Unreachable(_)))
                }
                _ => prop_assert!(matches!(f, MasterFailure::Server(_) | MasterFailure::BadReply(_) | MasterFailure::Unreachable(_))),
            }
        }

        /// Only nil sets; a value (even `OK`) never does; only a value
        /// equal to our token is ours.
        #[test]
        fn set_nx_get_only_nil_sets(v in any_value()) {
            let null = matches!(v, Value::Null);
            let ours = matches!(&v, Value::String(s) if &**s == "tok") || matches!(&v, Value::Bytes(b) if &b[..] == b"tok");
            match set_nx_get_outcome(Ok(v), "tok") {
                Ok(SetNxGet::Set) => prop_assert!(null),
                Ok(SetNxGet::Ours) => prop_assert!(ours),
                Ok(SetNxGet::Other) => prop_assert!(!null && !ours),
                Err(f) => { prop_assert!(!null && !ours); prop_assert!(!f.is_contention()); }
            }
        }

        #[test]
        fn script_integers_map_totally(n in any::<i64>()) {
            prop_assert_eq!(acquire_outcome(n).is_ok(), n == 1);
            prop_assert_eq!(extend_outcome(n).is_ok(), n == 1);
            prop_assert_eq!(release_outcome(n).is_ok(), n > 0);
            prop_assert_eq!(acquire_outcome(n) == Err(MasterFailure::Held), n == 0);
            prop_assert_eq!(acquire_fenced_outcome(n).is_ok(), n >= 0);
            prop_assert_eq!(acquire_fenced_outcome(n) == Err(MasterFailure::Held), n == -1);
            prop_assert_eq!(set_fence_outcome(n).is_ok(), n == 1);
        }
    }

    #[test]
    fn set_nx_get_replies() {
        let t = "tok";
        assert_eq!(set_nx_get_outcome(Ok(Value::Null), t), Ok(SetNxGet::Set));
        assert_eq!(
            set_nx_get_outcome(Ok(Value::from("tok")), t),
            Ok(SetNxGet::Ours)
        );
        assert_eq!(
            set_nx_get_outcome(Ok(Value::Bytes(b"other".to_vec().into())), t),
            Ok(SetNxGet::Other)
        );
        assert!(matches!(
            set_nx_get_outcome(Ok(Value::Integer(1)), t),
            Err(MasterFailure::BadReply(_))
        ));
        let wrongtype = FredError::new(ErrorKind::Unknown, "WRONGTYPE Operation");
        assert!(matches!(
            set_nx_get_outcome(Err(wrongtype), t),
            Err(MasterFailure::Server(_))
        ));
        let old = FredError::new(ErrorKind::Unknown, "ERR syntax error");
        assert!(is_syntax_error(&map_error(&old)));
    }

    #[test]
    fn inspect_replies() {
        let arr = |v: Vec<Value>| Ok(Value::Array(v));
        assert_eq!(
            inspect_outcome(arr(vec![Value::Integer(0), Value::Integer(3)])),
            Ok((KeyState::Free, 3))
        );
        assert_eq!(
            inspect_outcome(arr(vec![
                Value::Integer(1),
                Value::Integer(0),
                Value::from("tok"),
                Value::Integer(-1)
            ])),
            Ok((
                KeyState::Held {
                    token: "tok".into(),
                    holder: None,
                    ttl: None
                },
                0
            ))
        );
        assert_eq!(
            inspect_outcome(arr(vec![
                Value::Integer(2),
                Value::Integer(0),
                Value::from("hash")
            ])),
            Ok((
                KeyState::WrongType {
                    kind: "hash".into()
                },
                0
            ))
        );
        assert!(matches!(
            inspect_outcome(arr(vec![Value::Integer(7)])),
            Err(MasterFailure::BadReply(_))
        ));
    }

    #[test]
    fn io_errors_say_their_message_not_their_debug_form() {
        let e = FredError::new(
            ErrorKind::IO,
            "Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }",
        );
        assert_eq!(
            map_error(&e),
            MasterFailure::Unreachable("Connection refused".into())
        );
        let plain = FredError::new(ErrorKind::IO, "Connection reset");
        assert_eq!(
            map_error(&plain),
            MasterFailure::Unreachable("Connection reset".into())
        );
    }

    #[test]
    fn server_errors_keep_their_message() {
        for msg in [
            "READONLY x",
            "NOPERM y",
            "BUSY z",
            "MOVED 1 h:1",
            "WRONGTYPE w",
            "OOM o",
        ] {
            let f = script_reply(Err(FredError::new(ErrorKind::Unknown, msg)));
            assert_eq!(f, Err(MasterFailure::Server(msg.to_owned())));
        }
    }
}
