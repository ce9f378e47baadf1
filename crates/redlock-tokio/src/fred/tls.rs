//! TLS for `rediss://` masters: rustls with the ring provider, trusting the
//! system roots or the CAs given to the builder.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use fred::rustls::crypto::ring;
use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::CertificateDer;
use fred::rustls::{ClientConfig, RootCertStore};
use fred::rustls_native_certs;
use fred::types::config::TlsConnector;

use redlock_core::ConfigError;

use super::url::ParsedUrl;

/// Where a trusted CA comes from; read and checked by [`attach`], so
/// the builder methods stay infallible like the others.
#[derive(Clone)]
pub(crate) enum CaSource {
    Pem(Vec<u8>),
    File(PathBuf),
}

/// Gives every `rediss://` master one shared connector. The CAs are
/// checked even when every URL is `redis://`: a CA that was given but
/// cannot be read is a mistake worth reporting. The files (CA files,
/// the system store) are read synchronously: once per `connect`,
/// before any master is contacted.
pub(super) fn attach(
    mut parsed: Vec<ParsedUrl>,
    cas: &[CaSource],
) -> Result<Vec<ParsedUrl>, ConfigError> {
    if cas.is_empty() && !parsed.iter().any(|p| p.tls) {
        // All plaintext: do not even look at the system roots.
        return Ok(parsed);
    }
    let roots = if cas.is_empty() {
        system_roots()?
    } else {
        given_roots(cas)?
    };
    // An explicit provider rather than `ClientConfig::builder()`, which
    // panics when the build links two rustls providers (another crate
    // may enable aws-lc-rs) and no process default was installed.
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring's default provider supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(config);
    for p in parsed.iter_mut().filter(|p| p.tls) {
        p.config.tls = Some(connector.clone().into());
    }
    Ok(parsed)
}

/// The error for an unusable CA, with its reason.
fn invalid(reason: String) -> ConfigError {
    ConfigError::InvalidTlsCa { reason }
}

/// A root store of exactly the CAs given to the builder: every
/// `CERTIFICATE` block of every source must be a usable CA, and each
/// source must have at least one.
fn given_roots(cas: &[CaSource]) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        let (pem, origin) = match ca {
            CaSource::Pem(pem) => (Cow::Borrowed(pem.as_slice()), "tls_ca_pem".to_owned()),
            CaSource::File(path) => {
                let origin = format!("tls_ca_file {}", path.display());
                let pem = std::fs::read(path).map_err(|e| invalid(format!("{origin}: {e}")))?;
                (Cow::Owned(pem), origin)
            }
        };
        let mut found = 0_usize;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(format!("{origin}: bad PEM: {e}")))?;
            found += 1;
            roots.add(cert).map_err(|e| {
                invalid(format!(
                    "{origin}: certificate #{found} is not a usable CA: {e}"
                ))
            })?;
        }
        if found == 0 {
            return Err(invalid(format!("{origin}: no PEM CERTIFICATE block found")));
        }
    }
    Ok(roots)
}

/// The platform's roots. Unlike fred's `TlsConnector::default_rustls`,
/// one unreadable system certificate does not fail the whole store;
/// an empty store does, as nothing could ever be verified against it.
fn system_roots() -> Result<RootCertStore, ConfigError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors = loaded
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(invalid(format!(
            "no usable system root certificate ({errors}); give the servers' CA with tls_ca_pem or tls_ca_file"
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cas: Vec<CaSource>) -> String {
        match given_roots(&cas) {
            Err(ConfigError::InvalidTlsCa { reason }) => reason,
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn bad_ca_pem_is_a_typed_error() {
        let reason = err(vec![CaSource::Pem(b"not a certificate".to_vec())]);
        assert!(reason.contains("no PEM CERTIFICATE block"), "{reason}");
        // A key alone is not a CA.
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let reason = err(vec![CaSource::Pem(key.to_vec())]);
        assert!(reason.contains("no PEM CERTIFICATE block"), "{reason}");
        // Valid base64, not a certificate.
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let reason = err(vec![CaSource::Pem(junk.to_vec())]);
        assert!(
            reason.contains("certificate #1 is not a usable CA"),
            "{reason}"
        );
        let cut = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        let reason = err(vec![CaSource::Pem(cut.to_vec())]);
        assert!(reason.contains("bad PEM"), "{reason}");
    }

    #[test]
    fn missing_ca_file_is_a_typed_error() {
        let reason = err(vec![CaSource::File("/nonexistent/redlock/ca.pem".into())]);
        assert!(reason.contains("/nonexistent/redlock/ca.pem"), "{reason}");
    }
}
