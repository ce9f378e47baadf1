//! Exposes redlock's metrics to Prometheus.
//!
//! ```text
//! cargo run -p redlock-tokio --features metrics --example prometheus -- redis://127.0.0.1:6379
//! curl -s http://127.0.0.1:9464/metrics | grep redlock_
//! ```
//!
//! It takes and releases a lock a few times a second, so the counters move;
//! stop it with Ctrl-C. The exporter listens on 127.0.0.1:9464 (change
//! `LISTEN` for a real scrape target).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use redlock_tokio::LockManager;

const LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        return Err("usage: prometheus REDIS_URL [REDIS_URL ...]".into());
    }
    // Installs the global recorder and serves /metrics over HTTP.
    PrometheusBuilder::new()
        .with_http_listener(SocketAddr::from(LISTEN))
        .install()?;
    let locks = LockManager::builder(urls)
        .settings(|s| s.ttl(Duration::from_secs(5)))
        .connect()
        .await?;
    println!(
        "serving http://{}:{}/metrics; Ctrl-C to stop",
        std::net::Ipv4Addr::from(LISTEN.0),
        LISTEN.1
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        match locks.try_acquire("prometheus-demo").await {
            Ok(guard) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                guard.release().await?;
            }
            Err(e) => eprintln!("not acquired: {e}"),
        }
    }
    locks.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
