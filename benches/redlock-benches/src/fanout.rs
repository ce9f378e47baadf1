//! The floor under any quorum operation on this machine: one `PING` sent to
//! every master in parallel over redlock's own fred connections.
//!
//! A lock cycle cannot be cheaper than this fan-out (an acquire needs the
//! quorum-th reply, a release all of them), so the ratio of the 5-master
//! fan-out to a single `PING` is the best ratio a quorum-of-5 lock can
//! reach here, whatever the algorithm does.

use std::time::Instant;

use fred::interfaces::ClientLike;
use futures::stream::{FuturesUnordered, StreamExt};

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
    let r = r.core();
    let n = r.masters().len();
    let quorum = n / 2 + 1;
    let mut out = Fanout::default();
    for _ in 0..iters {
        let t0 = Instant::now();
        let mut pending: FuturesUnordered<_> = r
            .masters()
            .iter()
            .map(|m| m.client().ping::<String>(None))
            .collect();
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
    Some(out)
}
