//! The floor under any quorum operation on this machine: one `PING` sent to
//! every master in parallel over fred connections like redlock's (one
//! multiplexed client per master, built here: the library keeps its own
//! connections private).
//!
//! A lock cycle cannot be cheaper than this fan-out (an acquire needs the
//! quorum-th reply, a release all of them), so the ratio of the 5-master
//! fan-out to a single `PING` is the best ratio a quorum-of-5 lock can
//! reach here, whatever the algorithm does.

use std::time::Instant;

use fred::interfaces::ClientLike;
use futures::stream::{FuturesUnordered, StreamExt};
use redlock_tokio::Master;

use crate::scenario::Client;
use crate::stats::Latency;

/// Latencies of a parallel `PING` to every master.
#[derive(Debug, Default)]
pub struct Fanout {
    /// Until the majority-th reply arrived (what an acquire waits for).
    pub quorum: Latency,
    /// Until every reply arrived (what a release waits for).
    pub all: Latency,
}

/// `iters` parallel pings through a redlock client's connections; `None`
/// for an rslock client.
pub async fn ping_fanout(client: &Client, iters: u64) -> Option<Fanout> {
    let Client::Redlock(r) = client else {
        return None;
    };
    let clients = raw_clients(r.core().masters()).await?;
    let n = clients.len();
    let quorum = n / 2 + 1;
    let mut out = Fanout::default();
    for _ in 0..iters {
        let t0 = Instant::now();
        let mut pending: FuturesUnordered<_> =
            clients.iter().map(|c| c.ping::<String>(None)).collect();
        let mut replies = 0;
        while let Some(reply) = pending.next().await {
            if reply.is_err() {
                continue;
            }
            replies += 1;
            if replies == quorum {
                out.quorum.record(t0.elapsed());
            }
        }
        if replies == n {
            out.all.record(t0.elapsed());
        }
    }
    for c in &clients {
        let _ = c.quit().await;
    }
    Some(out)
}

/// One connected fred client per master, by address (the benchmarks'
/// masters have no password); `None` if one does not connect.
pub async fn raw_clients<M: Master>(masters: &[M]) -> Option<Vec<fred::clients::Client>> {
    let mut clients = Vec::with_capacity(masters.len());
    for m in masters {
        let config =
            fred::types::config::Config::from_url(&format!("redis://{}", m.address())).ok()?;
        let client = fred::types::Builder::from_config(config).build().ok()?;
        client.init().await.ok()?;
        clients.push(client);
    }
    Some(clients)
}
