//! The benchmark's few commands outside the lock protocol (removing its
//! own fence counter, asking a master for its process id), sent through a
//! short-lived client of its own: the library keeps its connections to
//! itself, and these are not lock operations.

use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::Config;
use fred::types::{Builder, ClusterHash, CustomCommand, Value};

/// Sends one command to the master at `url`; `None` on any failure (the
/// callers treat a missing answer as "unknown"), bounded by `timeout`.
async fn command(
    url: &str,
    timeout: Duration,
    name: &'static str,
    args: Vec<String>,
) -> Option<Value> {
    let config = Config::from_url(url).ok()?;
    let client: Client = Builder::from_config(config).build().ok()?;
    let reply = tokio::time::timeout(timeout, async {
        client.init().await.ok()?;
        client
            .custom::<Value, _>(
                CustomCommand::new_static(name, ClusterHash::FirstKey, false),
                args,
            )
            .await
            .ok()
    })
    .await
    .ok()
    .flatten();
    let _ = client.quit().await;
    reply
}

/// The process id the master at `url` reports (`INFO server`).
pub(super) async fn server_pid(url: &str, timeout: Duration) -> Option<u32> {
    let info = command(url, timeout, "INFO", vec!["server".into()]).await?;
    let info = info.as_str()?.into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Deletes `field` of the hash `key` on every master (best effort).
pub(super) async fn hdel_everywhere(urls: &[String], timeout: Duration, key: &str, field: &str) {
    futures::future::join_all(
        urls.iter()
            .map(|url| command(url, timeout, "HDEL", vec![key.to_owned(), field.to_owned()])),
    )
    .await;
}
