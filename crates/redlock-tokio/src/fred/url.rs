//! Master URLs: `redis://[user:password@]host:port[/db]` (and
//! `rediss://` with the `tls` feature), parsed into a fred config and an
//! address for humans, with credentials never shown.

use std::sync::Arc;

use fred::types::config::{Config, ServerConfig};
use redlock_core::ConfigError;

#[derive(Clone)]
/// A master URL, checked: the fred config to build its client from and
/// its address for humans (`host:port[/db]`, without credentials).
pub(crate) struct ParsedUrl {
    pub(crate) config: Config,
    pub(crate) address: Arc<str>,
    /// `rediss://`: no client may be built before `config.tls` is set.
    pub(crate) tls: bool,
}

impl ParsedUrl {
    /// Fails closed: a `rediss://` master must carry the TLS connector
    /// `connect` attached (whichever client reaches it), never go out in
    /// plaintext. `connect` attaches one to every `rediss://` master, so
    /// this refuses nothing today; it is checked anyway, as the
    /// alternative is plaintext.
    pub(crate) fn check_tls(&self) -> Result<(), ConfigError> {
        if self.tls && !self.config.uses_tls() {
            return Err(ConfigError::TlsNotCompiled {
                url: self.address.to_string(),
            });
        }
        Ok(())
    }
}

/// A master URL with its password (or lone user-info) replaced by `***`,
/// for messages and logs. Every error and `Debug` output of this crate
/// shows URLs this way.
///
/// ```
/// assert_eq!(redlock_tokio::redact_url("redis://app:s3cret@10.0.0.1:6379"), "redis://app:***@10.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => format!("{}***{}", &url[..s + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

/// Whether this build can reach `rediss://` masters (the `tls` feature).
const TLS_COMPILED: bool = cfg!(feature = "tls");

/// Parses and checks one master URL. `rediss://` is parsed as
/// `redis://` and marked for the TLS connector `connect` attaches (see
/// the module docs); without the `tls` feature it is refused rather than
/// sent in plaintext.
///
/// # Errors
///
/// [`ConfigError::InvalidUrl`] (with the reason in words),
/// [`ConfigError::UnsupportedScheme`] or [`ConfigError::TlsNotCompiled`].
pub(super) fn parse_url(url: &str) -> Result<ParsedUrl, ConfigError> {
    parse_url_in(url, TLS_COMPILED)
}

/// [`parse_url`] in a build with or without TLS (`tls_compiled`): one
/// function for both, so the refusal without the feature is tested in
/// every build (`rediss_refused_without_tls`), not only in a second build
/// of the crate.
fn parse_url_in(url: &str, tls_compiled: bool) -> Result<ParsedUrl, ConfigError> {
    let shown = redact_url(url);
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(ConfigError::InvalidUrl {
            url: shown,
            reason: "expected redis://host:port".into(),
        });
    };
    let tls = match scheme {
        "redis" => false,
        // fred without a TLS feature would silently connect in plaintext.
        "rediss" if !tls_compiled => return Err(ConfigError::TlsNotCompiled { url: shown }),
        "rediss" => true,
        other => {
            return Err(ConfigError::UnsupportedScheme {
                url: shown,
                scheme: other.to_owned(),
            })
        }
    };
    // A `rediss://` URL is parsed as `redis://`: `connect` attaches one
    // connector to all TLS masters (see the module docs).
    let plain_url;
    let url = if tls {
        plain_url = format!("redis{}", &url[scheme.len()..]);
        &plain_url
    } else {
        url
    };
    let config = Config::from_url_centralized(url).map_err(|e| ConfigError::InvalidUrl {
        url: shown.clone(),
        reason: url_reason(e.details()),
    })?;
    let address = match &config.server {
        ServerConfig::Centralized { server } => {
            let db = config
                .database
                .filter(|d| *d != 0)
                .map(|d| format!("/{d}"))
                .unwrap_or_default();
            format!("{}:{}{}", server.host, server.port, db)
        }
        _ => {
            return Err(ConfigError::InvalidUrl {
                url: shown,
                reason: "not a single server".into(),
            })
        }
    };
    if address.starts_with(':') {
        return Err(ConfigError::InvalidUrl {
            url: shown,
            reason: "missing host".into(),
        });
    }
    Ok(ParsedUrl {
        config,
        address: address.into(),
        tls,
    })
}

/// fred reports URL mistakes with the `url` crate's enum names
/// (`EmptyHost`, `InvalidPort`) or terse phrases; say them in words.
fn url_reason(details: &str) -> String {
    match details {
        "EmptyHost" | "Invalid or missing host." => "the host is missing".into(),
        "InvalidPort" => "the port is not a number from 1 to 65535".into(),
        "InvalidIpv6Address" => "the IPv6 address is malformed".into(),
        "InvalidIpv4Address" => "the IPv4 address is malformed".into(),
        "InvalidDomainCharacter" | "IdnaError" => {
            "the host name has a character a host name cannot have".into()
        }
        "Invalid integer string." => {
            "the database (the path after the port) is not a number".into()
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(redact_url("redis://u:secret@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_url("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn urls_parsed_and_checked() {
        assert_eq!(
            parse_url("redis://127.0.0.1:7001")
                .map(|p| p.address.to_string())
                .ok()
                .as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(
            parse_url("redis://h:1/2")
                .map(|p| p.address.to_string())
                .ok()
                .as_deref(),
            Some("h:1/2")
        );
        assert!(matches!(
            parse_url("localhost:6379"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("http://h:1"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_url("redis-cluster://h:1"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_url("redis://h:notaport"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        let err = parse_url("redis://u:hunter2@h:notaport")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// Without the `tls` feature, fred would connect to a `rediss://` URL
    /// in plaintext: such a build refuses it. Checked through the same
    /// function a build without the feature runs, in any build.
    #[test]
    fn rediss_refused_without_tls() {
        assert!(matches!(
            parse_url_in("rediss://h:1", false),
            Err(ConfigError::TlsNotCompiled { .. })
        ));
        assert!(matches!(
            parse_url_in("rediss://u:pw@h:1", true),
            Ok(ParsedUrl { tls: true, .. })
        ));
        // And the build says which it is.
        assert_eq!(
            parse_url("rediss://h:1").is_ok(),
            cfg!(feature = "tls"),
            "TLS_COMPILED follows the feature"
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rediss_parsed_as_tls_with_tls() {
        let tls = |url: &str| parse_url(url).map(|p| (p.tls, p.address.to_string())).ok();
        assert_eq!(tls("rediss://u:pw@h:1/2"), Some((true, "h:1/2".into())));
        assert_eq!(tls("redis://h:1"), Some((false, "h:1".into())));
        assert!(matches!(
            parse_url("rediss://h:notaport"),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn url_errors_read_like_sentences() {
        let reason = |u: &str| match parse_url(u) {
            Err(ConfigError::InvalidUrl { reason, .. }) => reason,
            other => panic!("{u}: {:?}", other.err()),
        };
        assert_eq!(reason("redis://:1"), "the host is missing");
        assert_eq!(
            reason("redis://h:99999"),
            "the port is not a number from 1 to 65535"
        );
        assert_eq!(
            reason("redis://h:notaport"),
            "the port is not a number from 1 to 65535"
        );
        assert_eq!(reason("redis://[::1"), "the IPv6 address is malformed");
        assert!(
            reason("redis://h:1/x").contains("database"),
            "{}",
            reason("redis://h:1/x")
        );
    }
}
