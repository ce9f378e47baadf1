//! The floor under any quorum operation on this machine: one `PING` sent to
//! every master in parallel, with no lock library in between.
//!
//! - [`ping_fanout`]: over fred connections like redlock's fred client's
//!   (one multiplexed client per master, built here: the library keeps its
//!   own connections private), the time to the quorum-th and to the last
//!   reply.
//! - [`QuorumFloor`]: over plain redis-rs connections (the client under
//!   both redlock's default link and rslock), a lock cycle's shape without
//!   the lock: two rounds that each return at the quorum-th reply, the
//!   rest awaited in a task of their own, as redlock's acquire and
//!   release do.
//!
//! - [`DirectFloor`]: the same shape over plain TCP connections that the
//!   calling task writes and reads itself, with no driver task between it
//!   and the sockets: what a Redis connection without redis-rs's driver
//!   task would cost (an experiment, `cycle_profile --ping direct`). Built
//!   with [`DirectFloor::connect_lock`], its rounds send the lock's own
//!   commands instead of `PING` (`SET ... NX PX ... GET`, then `EVAL` of
//!   the release script): every master does a lock cycle's work and no
//!   library does anything, the *lock floor* of `bench_report --targets`.
//!
//! A lock cycle over the same client cannot be cheaper than its fan-out,
//! so a floor's 5-master time over its 1-master time is the best B / A a
//! quorum-of-5 lock over that client reaches on this machine and tokio
//! runtime, whatever the algorithm does. The runtime moves it most
//! (`docs/benchmarks.md`, eleventh session). The lock floor's B / A is
//! the best of any client, the servers' command time included: the
//! redis-rs `PING` floor is higher than that, as its driver tasks cost
//! more with every master (`docs/benchmarks.md`, fourteenth session).

use std::collections::VecDeque;
use std::time::Instant;

use fred::interfaces::ClientLike;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use redlock_tokio::Master;

use crate::scenario::Client;
use crate::stats::Latency;
use crate::workload::CycleSample;

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

/// Plain redis-rs connections to some masters, for the floor under a
/// quorum cycle (see the module docs).
pub struct QuorumFloor {
    conns: Vec<redis::aio::MultiplexedConnection>,
}

impl QuorumFloor {
    /// One multiplexed connection per URL.
    ///
    /// # Errors
    ///
    /// The first URL that does not connect, with its error.
    pub async fn connect(urls: &[String]) -> Result<Self, String> {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let conn = match redis::Client::open(url.as_str()) {
                Ok(c) => c.get_multiplexed_async_connection().await,
                Err(e) => Err(e),
            };
            conns.push(conn.map_err(|e| format!("{url}: {e}"))?);
        }
        Ok(Self { conns })
    }

    /// One round: `PING` to every master, back at the quorum-th answer;
    /// the others are awaited in a task of their own (redis-rs would not
    /// write a command whose future was dropped before it). `false` if a
    /// quorum did not answer.
    async fn round(&self) -> bool {
        let quorum = self.conns.len() / 2 + 1;
        let mut pending: FuturesUnordered<_> = self
            .conns
            .iter()
            .map(|c| {
                let mut c = c.clone();
                async move { redis::cmd("PING").query_async::<String>(&mut c).await }
            })
            .collect();
        if !quorum_answered(&mut pending, quorum).await {
            return false;
        }
        if !pending.is_empty() {
            tokio::spawn(async move { while pending.next().await.is_some() {} });
        }
        true
    }

    /// `cycles` sequential pairs of rounds, timed as a lock cycle's
    /// acquire and release; a pair where a quorum did not answer is left
    /// out.
    pub async fn cycles(&self, cycles: u64) -> Vec<CycleSample> {
        timed_pairs(cycles, async || self.round().await).await
    }
}

/// Waits for `quorum` successful answers of `pending`; `false` if it ran
/// out of answers first. What is still pending stays in it.
async fn quorum_answered<T, E>(
    pending: &mut (impl Stream<Item = Result<T, E>> + Unpin),
    quorum: usize,
) -> bool {
    let mut answered = 0;
    while answered < quorum {
        match pending.next().await {
            Some(Ok(_)) => answered += 1,
            Some(Err(_)) => {}
            None => return false,
        }
    }
    true
}

/// `cycles` sequential pairs of `round`s, timed as a lock cycle's acquire
/// and release; a pair where a quorum did not answer (`false`) is left
/// out.
async fn timed_pairs(cycles: u64, mut round: impl AsyncFnMut() -> bool) -> Vec<CycleSample> {
    let mut samples = Vec::with_capacity(usize::try_from(cycles.min(1 << 20)).unwrap_or(0));
    for _ in 0..cycles {
        let t0 = Instant::now();
        let acquired = round().await;
        let t1 = Instant::now();
        let released = round().await;
        if acquired && released {
            samples.push(CycleSample {
                acquire: t1 - t0,
                release: t1.elapsed(),
            });
        }
    }
    samples
}

/// One master's connection of a [`DirectFloor`].
struct DirectConn {
    stream: tokio::net::TcpStream,
    /// The replies of commands already sent that were not read yet, in
    /// order (a round returns at the quorum; the others' replies are read
    /// first the next time).
    owed: VecDeque<&'static [u8]>,
    /// Bytes read and not yet counted as a whole reply.
    buf: Vec<u8>,
}

/// `PING` in RESP, and the reply to it.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

/// The key and token of [`DirectFloor::connect_lock`]'s commands: a token
/// as long as the library's (22 characters).
const FLOOR_KEY: &str = "redlock-floor";
const FLOOR_TOKEN: &str = "floorfloorfloorfloor00";

/// The reply to `SET ... NX PX ... GET` that set the key (no old value),
/// and to the release script that deleted it.
const SET_REPLY: &[u8] = b"$-1\r\n";
const RELEASED_REPLY: &[u8] = b":1\r\n";

impl DirectConn {
    /// Reads until every command sent on this connection was answered.
    /// Cancel-safe: what was read stays in `buf`.
    async fn settle(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        while let Some(&reply) = self.owed.front() {
            let n = self.buf.len().min(reply.len());
            if self.buf[..n] != reply[..n] {
                return Err(std::io::Error::other(format!(
                    "expected {:?}, read {:?}",
                    String::from_utf8_lossy(reply),
                    String::from_utf8_lossy(&self.buf)
                )));
            }
            if n == reply.len() {
                self.buf.drain(..n);
                self.owed.pop_front();
            } else if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }
}

/// The floor's cycle (two rounds of `PING`, each back at the quorum-th
/// reply) over one plain TCP connection per master that the calling task
/// writes and reads itself: no task but the caller's takes part, so on a
/// multi-thread runtime nothing is handed between workers but the
/// caller's own wake-ups. The replies a round did not wait for are read
/// at the start of the next one, on the same connection, in order.
pub struct DirectFloor {
    conns: Vec<DirectConn>,
    /// The two rounds' commands and their replies, in turn: (`PING`,
    /// `PONG`) twice, or the lock's own `SET` and release script.
    rounds: [(Vec<u8>, &'static [u8]); 2],
    /// Which of `rounds` comes next.
    next: usize,
}

impl DirectFloor {
    /// One TCP connection per `redis://HOST:PORT` URL (no password, no TLS).
    ///
    /// # Errors
    ///
    /// The first URL that is not of that form or does not connect.
    pub async fn connect(urls: &[String]) -> Result<Self, String> {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let addr = url
                .strip_prefix("redis://")
                .ok_or_else(|| format!("{url}: expected redis://HOST:PORT"))?;
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("{url}: {e}"))?;
            conns.push(DirectConn {
                stream,
                owed: VecDeque::new(),
                buf: Vec::with_capacity(64),
            });
        }
        Ok(Self {
            conns,
            rounds: [(PING.to_vec(), PONG), (PING.to_vec(), PONG)],
            next: 0,
        })
    }

    /// As [`connect`](Self::connect), but the two rounds of a cycle send
    /// the lock's own commands instead of `PING`: `SET key token NX PX
    /// 10000 GET` (the library's single-key acquire) and `EVAL` of its
    /// release script (the body, as the redis-rs link sends releases).
    /// The floor's cycle then costs each master what a lock cycle costs
    /// it, and only the library's client work is left out (an experiment,
    /// `cycle_profile --ping direct-lock`). A reply other than "set" and
    /// "deleted one key" fails the round.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_lock(urls: &[String]) -> Result<Self, String> {
        let mut floor = Self::connect(urls).await?;
        // Packed by redis-rs, as the library's redis-rs link's commands
        // are packed to the same bytes (its unit test checks that).
        let set = redis::cmd("SET")
            .arg(&[FLOOR_KEY, FLOOR_TOKEN, "NX", "PX", "10000", "GET"])
            .get_packed_command();
        let release = redis::cmd("EVAL")
            .arg(&[redlock_core::scripts::RELEASE, "1", FLOOR_KEY, FLOOR_TOKEN])
            .get_packed_command();
        floor.rounds = [(set, SET_REPLY), (release, RELEASED_REPLY)];
        Ok(floor)
    }

    /// One round: the next round's command (`PING`, or the lock's) to
    /// every master, back at the quorum-th answer. `false` if a quorum did
    /// not answer.
    async fn round(&mut self) -> bool {
        use tokio::io::AsyncWriteExt;
        let quorum = self.conns.len() / 2 + 1;
        let (command, reply) = &self.rounds[self.next];
        self.next = 1 - self.next;
        for c in &mut self.conns {
            if c.stream.write_all(command).await.is_err() {
                return false;
            }
            c.owed.push_back(reply);
        }
        let mut pending: FuturesUnordered<_> =
            self.conns.iter_mut().map(DirectConn::settle).collect();
        quorum_answered(&mut pending, quorum).await
    }

    /// `cycles` sequential pairs of rounds, timed as a lock cycle's
    /// acquire and release; a pair where a quorum did not answer is left
    /// out.
    pub async fn cycles(&mut self, cycles: u64) -> Vec<CycleSample> {
        timed_pairs(cycles, async || self.round().await).await
    }
}

#[cfg(test)]
mod tests {
    use redlock_testing::Masters;

    use super::DirectFloor;

    /// The lock floor does a lock's work: every round gets the replies of a
    /// lock that was taken and released (else it fails), and once the
    /// replies still owed are read, no master keeps its key.
    #[tokio::test]
    async fn the_lock_floor_takes_and_releases_the_key_on_every_master() {
        let masters = Masters::start(3);
        for urls in [masters.urls()[..1].to_vec(), masters.urls()] {
            let mut floor = DirectFloor::connect_lock(&urls)
                .await
                .expect("the floor connects");
            assert_eq!(floor.cycles(50).await.len(), 50, "every cycle decided");
            for c in &mut floor.conns {
                c.settle()
                    .await
                    .expect("the replies still owed are those of a lock");
            }
            assert_eq!(masters.keys_everywhere("*"), vec![], "no key left");
        }
    }
}
