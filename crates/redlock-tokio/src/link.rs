//! The production master whichever client reaches it: [`RedisLink`] is
//! the fred link ([`FredLink`], the default) or, with the `redis-rs`
//! feature, the redis-rs link ([`RedisRsLink`](crate::redis_rs::RedisRsLink)),
//! and [`RedisMaster`] is it behind the core's admission gate. Start-up
//! is shared too: every master connected in parallel until a quorum is
//! usable ([`connect_all`]), then every answer recorded through the same
//! admission rules ([`admit_all`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use redlock_core::{
    Admission, Admitted, ClockSample, ConfigError, Fence, FenceKeys, KeyState, Link, Master,
    MasterFacts, MasterFailure, Redlock, Refusal, ReleaseWatch, Settings, Token, Ttl,
};

use crate::fred::FredLink;
use crate::TokioRuntime;

/// Which Redis client reaches the masters
/// ([`LockManagerBuilder::client`](crate::LockManagerBuilder::client)).
/// Both send the same commands (`SET NX GET`, the core's scripts), read
/// the replies by the same rules and vote behind the same admission
/// gate; they differ in how they talk to the server. The fault, safety,
/// TLS and chaos tests run over both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Client {
    /// fred: one multiplexed client per master with fred's reconnect
    /// loop and its unresponsive-connection check. The default without
    /// the `redis-rs` feature.
    #[cfg_attr(not(feature = "redis-rs"), default)]
    Fred,
    /// redis-rs (feature `redis-rs`, on by default; the default client):
    /// redis-rs's command encoding and replies over one connection per
    /// master, replaced by our own reconnect loop. A `redis://` master's
    /// connection is written and read by the calling tasks themselves
    /// (one of the waiting tasks reads for all), with no I/O task to hand
    /// each command and reply to: on tokio's multi-thread runtime that
    /// halves the futex calls of a one-master cycle, and a lock cycle
    /// costs 15–20% less client CPU than over redis-rs's own connection,
    /// which costs about half fred's (see `docs/benchmarks.md`).
    /// `rediss://` goes through redis-rs's multiplexed connection and the
    /// same rustls connector as fred's; with `wake_on_release`, the
    /// subscriptions use a fred connection per master beside it.
    #[cfg(feature = "redis-rs")]
    #[default]
    RedisRs,
}

impl Client {
    /// The client's name, as errors and reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fred => "fred",
            #[cfg(feature = "redis-rs")]
            Self::RedisRs => "redis-rs",
        }
    }
}

/// The raw connection to one master, through whichever client was chosen
/// (see [`Client`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisLink {
    /// Through fred.
    Fred(FredLink),
    /// Through redis-rs.
    #[cfg(feature = "redis-rs")]
    RedisRs(crate::redis_rs::RedisRsLink),
}

/// The production master: a [`RedisLink`] behind the admission rules
/// (identity, replica, restart guard, reconnect generations, clock check).
pub type RedisMaster = Admitted<RedisLink>;

/// The same call on whichever link this is.
macro_rules! each {
    ($link:expr, $l:ident => $call:expr) => {
        match $link {
            RedisLink::Fred($l) => $call,
            #[cfg(feature = "redis-rs")]
            RedisLink::RedisRs($l) => $call,
        }
    };
}

/// The same command on whichever link this is, awaited. fred's command
/// futures are about 7 KB (redis-rs's under 1 KB), and an enum's future
/// is as large as its largest arm: every vote future would be copied at
/// fred's size into the core's set of answers (a task of its
/// `FuturesUnordered`, or a box with one master), whichever client runs.
/// So fred's arm is boxed (measured: 7464 bytes per vote future over
/// either client before, see docs/benchmarks.md).
macro_rules! each_await {
    ($link:expr, $l:ident => $call:expr) => {
        match $link {
            RedisLink::Fred($l) => Box::pin($call).await,
            #[cfg(feature = "redis-rs")]
            RedisLink::RedisRs($l) => $call.await,
        }
    };
}

impl Link for RedisLink {
    fn now(&self) -> Instant {
        crate::now()
    }

    fn take_reconnects(&self) -> bool {
        each!(self, l => l.take_reconnects())
    }

    fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>> {
        each!(self, l => l.identify())
    }

    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
        each!(self, l => l.sample_clock())
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

impl Master for RedisLink {
    fn address(&self) -> &Arc<str> {
        each!(self, l => l.address())
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        each_await!(self, l => l.acquire(keys, token, ttl))
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        each_await!(self, l => l.extend(keys, token, ttl, recreate))
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        each_await!(self, l => l.release(keys, token))
    }

    async fn release_announced(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        each_await!(self, l => l.release_announced(keys, token))
    }

    fn sends_dropped_releases(&self) -> bool {
        each!(self, l => l.sends_dropped_releases())
    }

    async fn settle(&self) {
        each_await!(self, l => l.settle());
    }

    async fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        each_await!(self, l => l.acquire_fenced(keys, fences, token, ttl))
    }

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        each_await!(self, l => l.inspect(key, fences))
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        each_await!(self, l => l.force_delete(keys))
    }

    async fn forget_fences(&self, fences: FenceKeys<'_>) -> Result<(), MasterFailure> {
        each_await!(self, l => l.forget_fences(fences))
    }

    async fn close(&self) {
        each_await!(self, l => l.close());
    }

    async fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        each_await!(self, l => l.set_fence(keys, fences, token, fence))
    }

    async fn watch_releases(&self, keys: &[String]) -> Option<ReleaseWatch> {
        each_await!(self, l => l.watch_releases(keys))
    }
}

/// What one master's start-up gave: its link, and when and what it said
/// about itself, or why it is not usable yet.
pub(crate) type Attempt<L> = (L, Result<(Instant, MasterFacts), MasterFailure>);

/// How long [`connect_all`] keeps waiting for the other masters once a
/// quorum is usable: a master that answers a moment later is still
/// checked at start-up (a duplicate or a replica is then a configuration
/// error), but one that is paused or black-holed does not hold the caller
/// for the whole connect timeout. It joins in the background.
const CONNECT_GRACE: Duration = Duration::from_millis(50);

/// Connects masters `0..n` in parallel with `one` and returns, in master
/// order, as soon as `needed` are usable and [`CONNECT_GRACE`] has passed
/// (or every master answered). A master still connecting then gets the
/// link `later` builds, which keeps connecting in the background; it is
/// checked before its first vote counts.
pub(crate) async fn connect_all<L, F>(
    n: usize,
    needed: usize,
    one: impl Fn(usize) -> F,
    later: impl Fn(usize) -> Result<L, ConfigError>,
) -> Result<Vec<Attempt<L>>, ConfigError>
where
    F: Future<Output = Result<Attempt<L>, ConfigError>>,
{
    let mut pending: futures::stream::FuturesUnordered<_> = (0..n)
        .map(|i| {
            let attempt = one(i);
            async move { (i, attempt.await) }
        })
        .collect();
    let mut done: Vec<Option<Attempt<L>>> = (0..n).map(|_| None).collect();
    let mut usable = 0;
    let mut grace_until: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_until {
            Some(until) => match tokio::time::timeout_at(until, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => pending.next().await,
        };
        let Some((i, attempt)) = next else { break };
        let attempt = attempt?;
        if attempt.1.is_ok() {
            usable += 1;
        }
        done[i] = Some(attempt);
        if usable >= needed && grace_until.is_none() {
            grace_until = Some(tokio::time::Instant::now() + CONNECT_GRACE);
        }
    }
    drop(pending);
    done.into_iter()
        .enumerate()
        .map(|(i, attempt)| match attempt {
            Some(a) => Ok(a),
            None => Ok((
                later(i)?,
                Err(MasterFailure::Unreachable(
                    "still connecting when a quorum was ready".into(),
                )),
            )),
        })
        .collect()
}

/// Records every master's start-up answer through the admission rules
/// every later check uses, and builds the core manager. At start-up a
/// replica or a duplicate in the list is a configuration error worth
/// stopping for, while a master that is merely unreachable or flaky now
/// joins when it answers.
pub(crate) fn admit_all(
    attempts: Vec<Attempt<RedisLink>>,
    settings: Settings,
) -> Result<Redlock<RedisMaster, TokioRuntime>, ConfigError> {
    let admission = Arc::new(Mutex::new(Admission::for_settings(&settings)));
    let mut masters = Vec::with_capacity(attempts.len());
    let mut not_usable = Vec::new();
    for (i, (link, facts)) in attempts.into_iter().enumerate() {
        let address = link.address().to_string();
        let master = Admitted::new(link, i, Arc::clone(&admission));
        match facts {
            Ok((observed_at, facts)) => {
                let verdict = admission
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .verified(i, 0, observed_at, &facts);
                match verdict {
                    Ok(()) => {}
                    Err(Refusal::NotMaster { role }) => {
                        return Err(ConfigError::NotAMaster {
                            master: address,
                            role,
                        })
                    }
                    Err(Refusal::SameServerAs { other, run_id }) => {
                        return Err(ConfigError::DuplicateMaster {
                            first: masters
                                .get(other)
                                .map_or_else(String::new, |m: &RedisMaster| {
                                    m.address().to_string()
                                }),
                            second: address,
                            why: format!("same run_id {run_id}"),
                        })
                    }
                    Err(other) => not_usable.push(format!("{address} {}", other.to_failure())),
                }
            }
            Err(failure) => not_usable.push(format!("{address} {failure}")),
        }
        masters.push(master);
    }
    let usable = masters.len() - not_usable.len();
    if usable < settings.quorum().needed() {
        return Err(ConfigError::Unreachable {
            reachable: usable,
            masters: masters.len(),
            needed: settings.quorum().needed(),
            details: not_usable.join("; "),
        });
    }
    Redlock::with_masters(masters, settings, TokioRuntime)
}

/// A command that is seen through to its answer or its timeout, even when
/// its caller stops waiting (an early decision drops the slowest masters'
/// votes): dropped before its answer, it is awaited to the end in a task
/// of its own. Both clients need it, for opposite reasons:
///
/// - fred gives a command up (and then never writes it) only when its
///   timeout fires in the future that awaits it; a dropped one stays queued
///   without a deadline and is written whenever the connection can take
///   it, after the release queued behind it has timed out (a key left
///   until its TTL; `clients.rs`,
///   `votes_given_up_behind_a_full_socket_leave_no_key`).
/// - redis-rs skips a queued command whose caller is gone: a vote dropped
///   before its connection wrote it never reaches its master, and the lock
///   rests on exactly a quorum, lost with any one of those masters
///   (`clients.rs`, `a_vote_dropped_before_it_was_written_still_reaches_its_master`).
///
/// Seen through, a command is written within its timeout or not at all
/// ([`Timed`]; a release is never given up unsent, [`Release`]), in
/// order with the commands queued after it.
/// One exception: a command whose writing had begun when its timeout ran
/// out is written whole once the socket drains, as neither client can
/// take back what it started writing.
pub(crate) struct Finish<T: Send + 'static>(Option<BoxFuture<'static, T>>);

impl<T: Send + 'static> Finish<T> {
    pub(crate) fn new(request: impl Future<Output = T> + Send + 'static) -> Self {
        Self(Some(Box::pin(request)))
    }
}

impl<T: Send + 'static> Future for Finish<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let request = self.0.as_mut().expect("a Finish polled after its answer");
        let out = std::task::ready!(request.as_mut().poll(cx));
        self.0 = None;
        std::task::Poll::Ready(out)
    }
}

impl<T: Send + 'static> Drop for Finish<T> {
    fn drop(&mut self) {
        // Dropped before the answer: wait for it (or the client's timeout)
        // in a task of its own. Off a runtime there is none to run it on.
        if let Some(request) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(async move {
                    let _ = request.await;
                }));
            }
        }
    }
}

/// Whether a client may give a command up unsent once the per-master
/// timeout has run out ([`Timed`] or [`Release`]); either way its caller
/// waits at most that timeout. A type rather than a value, so that a timed
/// command's future carries no timer of ours (a `Sleep` is 112 bytes, and
/// nested futures carry it at every level).
pub(crate) trait Delivery: Copy + Send + Sync + 'static {
    /// Whether the client's own timeout bounds the command: it then gives
    /// it up unsent once that runs out.
    const TIMED: bool;

    /// Waits for `request`, which must see itself through when dropped
    /// (a [`Finish`]): bounded by the client's own timeout ([`Timed`]), or
    /// by `timeout` here, after which the caller gets `timed_out()` and
    /// the request goes on ([`Release`]). The caller-written connection
    /// (`direct.rs`) bounds its callers' waits itself and is not awaited
    /// through this.
    fn awaited<T: Send + 'static, E: Send + 'static>(
        self,
        timeout: Duration,
        request: impl Future<Output = Result<T, E>> + Send,
        timed_out: impl FnOnce() -> E + Send,
    ) -> impl Future<Output = Result<T, E>> + Send;
}

/// Written within the per-master timeout or not at all: votes, extends,
/// fences, reads, forced deletes. Late, a vote would set a key after its
/// caller stopped counting on it, and a forced `DEL` could delete the next
/// holder's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timed;

impl Delivery for Timed {
    const TIMED: bool = true;

    fn awaited<T: Send + 'static, E: Send + 'static>(
        self,
        _timeout: Duration,
        request: impl Future<Output = Result<T, E>> + Send,
        _timed_out: impl FnOnce() -> E + Send,
    ) -> impl Future<Output = Result<T, E>> + Send {
        request
    }
}

/// Never given up unsent: the token-checked releases (of a lock, and the
/// cleanup after a refused attempt). The client writes it whenever the
/// connection takes it and waits for its answer while the connection
/// lives (a stalled one is replaced, see `unresponsive` in
/// `fred/connect.rs`); its caller stops waiting at the per-master timeout.
/// A release must follow whatever is written ahead of it on its
/// connection: a vote too large for a paused master's socket is partly
/// written when its timeout runs out, the rest goes out once the master
/// reads again, and a release given up meanwhile left its keys there until
/// their TTL (`clients.rs`,
/// `a_release_queued_behind_a_partly_written_vote_is_still_written`).
/// Late, a release is harmless: it deletes only keys that still hold its
/// own token, and a token is never used by another call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Release;

impl Delivery for Release {
    const TIMED: bool = false;

    async fn awaited<T: Send + 'static, E: Send + 'static>(
        self,
        timeout: Duration,
        request: impl Future<Output = Result<T, E>> + Send,
        timed_out: impl FnOnce() -> E + Send,
    ) -> Result<T, E> {
        tokio::time::timeout(timeout, request)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }
}
