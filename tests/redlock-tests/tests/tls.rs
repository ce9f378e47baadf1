//! `rediss://` masters: real `redis-server` processes with a TLS port,
//! verified against a CA generated at test time.
//!
//! Each server listens on two ports: the plain one, which the harness uses
//! for readiness and to inspect keys with its own client, and a TLS port,
//! which the library under test is pointed at. Every misconfiguration must
//! fail closed: an error naming the problem, no plaintext, no key written.

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use redlock_core::{ConfigError, Redlock, ReleaseError, VoteOutcome};
use redlock_testing::{RedisServer, ServerOptions};
use redlock_tokio::{LockManagerBuilder, RedisMaster, TokioRuntime};

type Manager = Redlock<RedisMaster, TokioRuntime>;

/// TLS ports handed out in this process, so parallel tests never pick the
/// same one (the harness reserves the plain ports it picks itself).
static TLS_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

fn free_tls_port() -> u16 {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0 to find a free port")
            .port();
        let mut ports = TLS_PORTS.lock().unwrap_or_else(|p| p.into_inner());
        if ports.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// A CA, the server certificate it signed (for `127.0.0.1` only, so
/// `localhost` is a wrong host name) and the server's key, as files in a
/// private temp dir that is removed on drop.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

impl Pki {
    fn generate(name: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("redlock test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "redlock test server");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");

        let dir = std::env::temp_dir().join(format!(
            "redlock-tls-{}-{}-{name}",
            std::process::id(),
            DIR_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("creating the PKI temp dir");
        let pki = Self {
            dir,
            ca_pem: ca.pem(),
        };
        fs::write(pki.ca_file(), &pki.ca_pem).expect("writing ca.pem");
        fs::write(pki.dir.join("server.pem"), cert.pem()).expect("writing server.pem");
        fs::write(pki.dir.join("server.key"), key.serialize_pem()).expect("writing server.key");
        pki
    }

    /// The server certificate and key files' contents.
    fn server_files(&self) -> (Vec<u8>, Vec<u8>) {
        let read = |f: &str| fs::read(self.dir.join(f)).expect("reading a server file");
        (read("server.pem"), read("server.key"))
    }

    /// Overwrites the server certificate and key: a server restarted after
    /// this presents the new certificate.
    fn set_server_files(&self, (cert, key): &(Vec<u8>, Vec<u8>)) {
        fs::write(self.dir.join("server.pem"), cert).expect("writing server.pem");
        fs::write(self.dir.join("server.key"), key).expect("writing server.key");
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A harness server with a TLS port next to its plain one.
struct TlsMaster {
    server: RedisServer,
    tls_port: u16,
}

impl TlsMaster {
    /// Starts a server presenting `pki`'s server certificate on a TLS port.
    /// Retries with another TLS port if one was taken in the meantime (the
    /// harness only retries its own plain port).
    fn start(pki: &Pki) -> Self {
        let mut last = None;
        for _ in 0..3 {
            let tls_port = free_tls_port();
            let opts = ServerOptions::default()
                .with_arg("tls-port", &tls_port.to_string())
                .with_arg("tls-cert-file", &pki.path("server.pem"))
                .with_arg("tls-key-file", &pki.path("server.key"))
                .with_arg("tls-ca-cert-file", &pki.path("ca.pem"))
                .with_arg("tls-auth-clients", "no");
            match catch_unwind(AssertUnwindSafe(|| RedisServer::start_with(opts))) {
                Ok(server) => return Self { server, tls_port },
                Err(panic) => last = Some(panic),
            }
        }
        std::panic::resume_unwind(last.expect("three failed attempts"))
    }

    fn start_n(pki: &Pki, n: usize) -> Vec<Self> {
        (0..n).map(|_| Self::start(pki)).collect()
    }

    fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// Connections the server holds on its TLS port, from `CLIENT LIST`
    /// read over the plain port (`laddr` is the server side of each).
    fn tls_connections(&self) -> usize {
        let reply = self
            .server
            .cmd(&["CLIENT", "LIST"])
            .expect("CLIENT LIST over the plain port");
        let list = String::from_utf8_lossy(reply.as_bytes().expect("CLIENT LIST is a bulk string"))
            .into_owned();
        let needle = format!("laddr=127.0.0.1:{} ", self.tls_port);
        list.lines().filter(|l| l.contains(&needle)).count()
    }
}

fn tls_urls(masters: &[TlsMaster]) -> Vec<String> {
    masters.iter().map(TlsMaster::tls_url).collect()
}

fn all_keys(masters: &[TlsMaster]) -> Vec<(u16, String)> {
    masters
        .iter()
        .flat_map(|m| {
            m.server
                .keys("*")
                .into_iter()
                .map(move |k| (m.server.port(), k))
        })
        .collect()
}

fn builder(urls: Vec<String>) -> LockManagerBuilder {
    redlock_tests::fresh_builder(urls)
        .settings(|s| s.ttl(Duration::from_secs(10)))
        // Short: a client that sends a TLS hello to a plain port may wait
        // for a reply that never comes.
        .connect_timeout(Duration::from_millis(750))
}

async fn connect_err(builder: LockManagerBuilder) -> ConfigError {
    match builder.connect_core().await {
        Ok(_) => panic!("connect must fail"),
        Err(e) => e,
    }
}

/// Acquire, extend and release over TLS; the keys are seen through the
/// plain port, and the library's connections sit on the TLS ports.
///
/// Each operation decides at the quorum, so the checks go by its votes: a
/// master that granted holds what it granted; one decided without (still
/// answering, or timed out on a loaded machine) holds our key or none,
/// never anyone else's.
async fn lock_roundtrip(rl: &Manager, masters: &[TlsMaster], resource: &str) {
    let key = format!("redlock:{resource}");
    let mut lock = rl.try_acquire(resource).await.expect("free lock over TLS");
    assert!(lock.votes().granted() >= 2, "{}", lock.votes());
    let ours = Some(lock.token().expose().to_owned());
    for (m, vote) in masters.iter().zip(lock.votes().iter()) {
        let value = m.server.get(&key);
        if vote.outcome == VoteOutcome::Granted {
            assert_eq!(value, ours, "{}", lock.votes());
        } else {
            assert!(value.is_none() || value == ours, "{}", lock.votes());
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    rl.extend(&mut lock, Some(Duration::from_secs(30)))
        .await
        .expect("extend over TLS");
    assert!(lock.votes().granted() >= 2, "{}", lock.votes());
    for (m, vote) in masters.iter().zip(lock.votes().iter()) {
        if vote.outcome == VoteOutcome::Granted {
            let pttl = m.server.pttl(&key);
            assert!(pttl > 29_000 && pttl <= 30_000, "pttl {pttl}");
        }
    }
    // Waits for every master: each confirms (deleted, or never held).
    let report = rl.release_all(lock).await.expect("release over TLS");
    assert_eq!(report.confirmed(), masters.len(), "{report}");
    assert!(report.released() >= 2, "{report}");
    assert!(all_keys(masters).is_empty(), "{:?}", all_keys(masters));
}

#[tokio::test]
async fn lock_over_tls_on_three_masters() {
    let pki = Pki::generate("good");
    let masters = TlsMaster::start_n(&pki, 3);
    let rl = builder(tls_urls(&masters))
        .tls_ca_pem(pki.ca_pem.clone())
        .connect_core()
        .await
        .expect("connect over TLS with the test CA");
    for m in &masters {
        assert!(m.tls_connections() >= 1, "no connection on the TLS port");
    }
    lock_roundtrip(&rl, &masters, "tls-orders").await;
    rl.quit().await;
}

#[tokio::test]
async fn ca_from_a_file_and_mixed_schemes() {
    let pki = Pki::generate("file");
    let masters = TlsMaster::start_n(&pki, 3);
    // Two masters over TLS, the third over its plain port: allowed.
    let mut urls = tls_urls(&masters[..2]);
    urls.push(masters[2].server.url());
    let rl = builder(urls)
        .tls_ca_file(pki.ca_file())
        .connect_core()
        .await
        .expect("connect to a mixed list");
    assert!(masters[0].tls_connections() >= 1);
    assert!(masters[1].tls_connections() >= 1);
    assert_eq!(
        masters[2].tls_connections(),
        0,
        "redis:// must stay plaintext"
    );
    lock_roundtrip(&rl, &masters, "tls-mixed").await;
    rl.quit().await;
}

#[tokio::test]
async fn wrong_ca_fails_closed_even_on_one_master() {
    let pki = Pki::generate("server");
    let other = Pki::generate("unrelated");
    let mut masters = TlsMaster::start_n(&pki, 2);
    masters.push(TlsMaster::start(&other));

    // Trusting a CA that signed none of them: every handshake fails.
    let err = connect_err(builder(tls_urls(&masters)).tls_ca_pem(other.ca_pem.clone())).await;
    assert!(
        matches!(&err, ConfigError::Tls { reason, .. } if reason.contains("UnknownIssuer")),
        "{err}"
    );
    // Trusting the CA of two of three: a quorum would be reachable, but a
    // certificate mismatch is a configuration mistake, not an outage.
    let err = connect_err(builder(tls_urls(&masters)).tls_ca_pem(pki.ca_pem.clone())).await;
    let third = format!("127.0.0.1:{}", masters[2].tls_port);
    assert!(
        matches!(&err, ConfigError::Tls { master, reason }
            if *master == third && reason.contains("UnknownIssuer")),
        "{err}"
    );
    // No CA given: the system roots, which do not know the test CA (or,
    // on a machine without any, a typed error before connecting).
    let err = connect_err(builder(tls_urls(&masters))).await;
    assert!(
        matches!(
            &err,
            ConfigError::Tls { .. } | ConfigError::InvalidTlsCa { .. }
        ),
        "{err}"
    );
    assert!(all_keys(&masters).is_empty(), "{:?}", all_keys(&masters));
}

#[tokio::test]
async fn wrong_host_name_fails_closed() {
    let pki = Pki::generate("host");
    let master = TlsMaster::start(&pki);
    // The certificate names 127.0.0.1 only.
    let url = format!("rediss://localhost:{}", master.tls_port);
    let err = connect_err(builder(vec![url]).tls_ca_pem(pki.ca_pem.clone())).await;
    assert!(
        matches!(&err, ConfigError::Tls { reason, .. } if reason.contains("NotValidForName")),
        "{err}"
    );
    assert!(master.server.keys("*").is_empty());
}

#[tokio::test]
async fn rediss_to_a_plain_port_is_not_downgraded() {
    let pki = Pki::generate("downgrade");
    let masters = TlsMaster::start_n(&pki, 3);
    let urls: Vec<String> = masters
        .iter()
        .map(|m| format!("rediss://127.0.0.1:{}", m.server.port()))
        .collect();
    let err = connect_err(builder(urls).tls_ca_pem(pki.ca_pem.clone())).await;
    // A plain server answers a TLS hello with garbage (a TLS error) or
    // waits for a full line (unreachable): never a plaintext session.
    assert!(
        matches!(
            &err,
            ConfigError::Tls { .. } | ConfigError::Unreachable { .. }
        ),
        "{err}"
    );
    assert!(all_keys(&masters).is_empty(), "{:?}", all_keys(&masters));
}

#[tokio::test]
async fn redis_to_a_tls_port_fails() {
    let pki = Pki::generate("plain-to-tls");
    let masters = TlsMaster::start_n(&pki, 3);
    let urls: Vec<String> = masters
        .iter()
        .map(|m| format!("redis://127.0.0.1:{}", m.tls_port))
        .collect();
    let err = connect_err(builder(urls).tls_ca_pem(pki.ca_pem.clone())).await;
    assert!(
        matches!(
            &err,
            ConfigError::Unreachable { .. } | ConfigError::Setup { .. }
        ),
        "{err}"
    );
    assert!(all_keys(&masters).is_empty(), "{:?}", all_keys(&masters));
}

#[tokio::test]
async fn unusable_ca_is_a_typed_error_before_connecting() {
    // No server: the CA is checked before anything is sent.
    let url = || vec!["rediss://127.0.0.1:1".to_owned()];
    let reason = |err: ConfigError| match err {
        ConfigError::InvalidTlsCa { reason } => reason,
        other => panic!("expected InvalidTlsCa, got {other}"),
    };
    let r = reason(connect_err(builder(url()).tls_ca_pem("not a PEM")).await);
    assert!(r.contains("no PEM CERTIFICATE block"), "{r}");
    let pki = Pki::generate("keyonly");
    let key = fs::read(pki.dir.join("server.key")).expect("server.key");
    let r = reason(connect_err(builder(url()).tls_ca_pem(key)).await);
    assert!(r.contains("no PEM CERTIFICATE block"), "{r}");
    let missing = Path::new("/nonexistent/redlock-ca.pem");
    let r = reason(connect_err(builder(url()).tls_ca_file(missing)).await);
    assert!(r.contains("/nonexistent/redlock-ca.pem"), "{r}");
    // One good CA does not excuse a bad one next to it.
    let r = reason(
        connect_err(
            builder(url())
                .tls_ca_pem(pki.ca_pem.clone())
                .tls_ca_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        )
        .await,
    );
    assert!(r.contains("not a usable CA"), "{r}");
}

#[tokio::test]
async fn untrusted_certificate_after_a_restart_gets_no_key() {
    let trusted = Pki::generate("trusted");
    let swapped = Pki::generate("swapped");
    let untrusted = Pki::generate("untrusted");
    let mut masters = TlsMaster::start_n(&trusted, 2);
    masters.push(TlsMaster::start(&swapped));
    let rl = builder(tls_urls(&masters))
        // Two CAs: one per builder call.
        .tls_ca_pem(trusted.ca_pem.clone())
        .tls_ca_pem(swapped.ca_pem.clone())
        // Without the restart guard a restarted master votes as soon as a
        // command reaches it: only certificate checking keeps it out.
        .settings(|s| s.danger_disable_restart_guard(true))
        .connect_core()
        .await
        .expect("connect with both CAs");
    lock_roundtrip(&rl, &masters, "tls-swap").await;

    // Master 2 comes back with a certificate from a CA we do not trust.
    let good = swapped.server_files();
    swapped.set_server_files(&untrusted.server_files());
    masters[2].server.restart();
    // The client has reconnected and refused the certificate: the server
    // logs our alert. Only then do the checks below mean something.
    let mut refused = false;
    for _ in 0..50 {
        refused = masters[2].server.log_tail(20).contains("alert unknown ca");
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "{}", masters[2].server.log_tail(20));
    for _ in 0..5 {
        let lock = rl
            .try_acquire("tls-swap")
            .await
            .expect("quorum of the other two");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            masters[2].server.get("redlock:tls-swap"),
            None,
            "a master with an untrusted certificate got a key: {}",
            lock.votes()
        );
        assert!(
            !matches!(
                lock.votes().iter().nth(2).map(|v| &v.outcome),
                Some(VoteOutcome::Granted)
            ),
            "{}",
            lock.votes()
        );
        // Master 2 cannot confirm: the release is incomplete, not lost.
        let report = match rl.release(lock).await {
            Ok(report) | Err(ReleaseError::Incomplete { report }) => report,
            Err(e) => panic!("release: {e}"),
        };
        assert_eq!(report.released(), 2, "{report}");
        let master2 = report.iter().nth(2).map(|v| v.outcome.to_string());
        assert!(
            matches!(&master2, Some(o) if o.starts_with("unreachable")),
            "{report}"
        );
    }

    // Control: with its trusted certificate back, master 2 votes again, so
    // the checks above could have seen a key.
    swapped.set_server_files(&good);
    masters[2].server.restart();
    let mut granted = false;
    for _ in 0..50 {
        let lock = rl.try_acquire("tls-swap").await.expect("quorum");
        tokio::time::sleep(Duration::from_millis(150)).await;
        granted =
            masters[2].server.get("redlock:tls-swap").as_deref() == Some(lock.token().expose());
        // Until master 2 is back, its release is incomplete too.
        let _ = rl.release(lock).await;
        if granted {
            break;
        }
    }
    assert!(
        granted,
        "master 2 never voted again with its trusted certificate"
    );
    assert!(all_keys(&masters).is_empty(), "{:?}", all_keys(&masters));
    rl.quit().await;
}
