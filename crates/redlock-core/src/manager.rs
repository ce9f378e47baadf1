//! The Redlock algorithm over any set of [`Master`]s and any [`Runtime`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::future::{self, Either, FutureExt};
use futures::stream::{BoxStream, StreamExt};

use crate::answers::Answers;
use crate::background::Background;
use crate::config::{ResourceSet, Settings, Ttl};
use crate::error::{AcquireError, ConfigError, ExtendError, ReleaseError};
use crate::fence::{Fence, FenceKeys};
use crate::lock::Lock;
use crate::master::{Master, ReleaseWatch, Runtime};
use crate::options::AcquireOptions;

mod operator;
use crate::release::{ReleaseReport, ReleaseTally};
use crate::tally::{Decision, MasterFailure, Tally, VoteOutcome, Votes};
use crate::token::Token;
use crate::validity;

/// After its first wake by release announcements, a waiter pauses for a
/// random part of this many times its last attempt's length (see
/// `acquire_with`), so that the waiters woken by the same release do not
/// all try at the same instant.
const WAKE_SPREAD: u32 = 4;

/// What a waiter hears from one master's release announcements
/// ([`Redlock::watch_releases`]).
enum Heard {
    /// The subscription is settled: in place (`true`), or this master does
    /// not announce to us (`false`).
    Subscribed(bool),
    /// The master with this index announced a release.
    Announced(usize),
}

/// How a waiter's sleep between two attempts ended
/// ([`Redlock::sleep_or_announced`]).
enum Woke {
    /// Its delay ran out.
    Slept,
    /// A subscription that was still under way is in place.
    Subscribed,
    /// A quorum of masters announced a release.
    Announced,
}

/// Why one attempt failed; becomes an [`AcquireError`] with the attempt
/// count once retries are exhausted.
enum AttemptFailure {
    NoQuorum(Votes),
    ValidityExhausted(Duration),
    FenceNotConfirmed(Votes),
    FencesExhausted,
}

impl AttemptFailure {
    fn into_error(self, attempts: u32, ttl: Ttl) -> AcquireError {
        match self {
            Self::NoQuorum(votes) => AcquireError::NoQuorum { attempts, votes },
            Self::ValidityExhausted(elapsed) => AcquireError::ValidityExhausted {
                attempts,
                elapsed,
                ttl: ttl.as_duration(),
            },
            Self::FenceNotConfirmed(votes) => AcquireError::FenceNotConfirmed { attempts, votes },
            Self::FencesExhausted => AcquireError::FencesExhausted,
        }
    }
}

/// A Redlock lock manager over N independent masters.
///
/// `M` is how a master is reached and `R` where time and randomness come
/// from; both are seams, and this crate does no I/O itself. In production
/// they are `redlock-tokio`'s `RedisMaster` (one fred or redis-rs connection per master) and
/// `TokioRuntime`, and that crate's `LockManager::builder(urls)` builds
/// this manager (`connect_core`); share it behind an `Arc`. With
/// [`with_masters`](Self::with_masters) it runs over any other masters and
/// runtime, such as a simulation's.
pub struct Redlock<M, R> {
    masters: Arc<[M]>,
    addresses: Arc<[Arc<str>]>,
    settings: Settings,
    runtime: R,
    background: Arc<Background>,
    /// Some release was left to masters that send dropped releases by
    /// themselves: [`background_idle`](Self::background_idle) settles
    /// them from then on.
    left_to_masters: AtomicBool,
}

/// The answers of releases sent to every master by a background task, as
/// they arrive.
struct Releases(mpsc::UnboundedReceiver<Answer>);

impl Releases {
    /// Waits until every master answered (each bounded by the per-master
    /// timeout).
    async fn finished(mut self) {
        while self.0.next().await.is_some() {}
    }
}

impl<M, R> std::fmt::Debug for Redlock<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redlock")
            .field("masters", &self.addresses)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<M: Master, R: Runtime> Redlock<M, R> {
    /// A manager over already-built masters (a simulation, or a custom
    /// transport). `settings` must have been built for `masters.len()`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoMasters`] or [`ConfigError::InvalidQuorum`] when the
    /// settings were built for another number of masters.
    pub fn with_masters(
        masters: Vec<M>,
        settings: Settings,
        runtime: R,
    ) -> Result<Self, ConfigError> {
        if masters.is_empty() {
            return Err(ConfigError::NoMasters);
        }
        if settings.quorum.masters() != masters.len() {
            return Err(ConfigError::InvalidQuorum {
                quorum: settings.quorum.needed(),
                masters: masters.len(),
            });
        }
        let addresses = masters.iter().map(|m| Arc::clone(m.address())).collect();
        Ok(Self {
            masters: masters.into(),
            addresses,
            settings,
            runtime,
            background: Arc::default(),
            left_to_masters: AtomicBool::new(false),
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The masters, in configuration order.
    pub fn masters(&self) -> &[M] {
        &self.masters
    }

    /// The runtime (clock, sleep, randomness).
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// One attempt, no retry, default TTL.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Invalid`] for a bad resource name;
    /// [`AcquireError::NoQuorum`] when held elsewhere or too many masters
    /// failed; [`AcquireError::ValidityExhausted`] when the quorum came too
    /// late. In every failure case the keys were released on all masters.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future after commands were sent may
    /// leave keys on some masters until their TTL. `redlock-tokio` wraps it
    /// to release them.
    pub async fn try_acquire<S>(&self, resources: S) -> Result<Lock, AcquireError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
    {
        let resources = resources.try_into().map_err(Into::into)?;
        self.acquire_with(
            &resources,
            &AcquireOptions::once(),
            self.settings.new_token(&self.runtime),
        )
        .await
    }

    /// Acquires with the manager's retry policy and wait deadline.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), plus
    /// [`AcquireError::Deadline`] when the wait deadline passed first.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`try_acquire`](Self::try_acquire)).
    pub async fn acquire<S>(&self, resources: S) -> Result<Lock, AcquireError>
    where
        S: TryInto<ResourceSet>,
        S::Error: Into<ConfigError>,
    {
        let resources = resources.try_into().map_err(Into::into)?;
        self.acquire_with(
            &resources,
            &AcquireOptions::new(),
            self.settings.new_token(&self.runtime),
        )
        .await
    }

    /// Acquires with explicit options and a caller-chosen token.
    ///
    /// The token is used for every attempt of this call: between attempts
    /// all keys holding it are released, so a late command from an earlier
    /// attempt can only ever set a key to *our* token, which the release at
    /// the end (or the caller's cleanup after cancellation, by this same
    /// token) removes. Choosing the token up front is what lets a caller
    /// clean up after dropping this future. Use a fresh token for every
    /// call ([`Settings::new_token`](crate::Settings::new_token)): a
    /// release may reach a slow master late, and it deletes whatever key
    /// there holds its token.
    ///
    /// Waking on release: after the first refusal, a call that may retry
    /// asks every master to watch its keys
    /// ([`Master::watch_releases`]). If any does, it retries at once (the
    /// subscription now precedes the attempt, so no later release goes
    /// unheard), then sleeps until its retry delay runs out or a quorum of
    /// distinct masters announced a release, whichever comes first; after
    /// such a wake it pauses for a random part of a window of a few
    /// attempts' length, doubled at each further wake of the same call, so
    /// that waiters woken together spread out. The call waits for the
    /// subscription at most the per-master timeout; one that takes longer
    /// is not dropped but goes on while the call sleeps, and once it is in
    /// place the call retries at once (as after the first refusal: a
    /// release before it went unheard) and is woken from then on. Retries
    /// that answer announcements are not counted against the retry policy,
    /// up to as many as it allows, nor are those made because subscriptions
    /// landed, at most one per master (so a call makes at most twice its
    /// retries plus one per master, and the wait deadline bounds it as
    /// usual). Masters that do not announce (the default) leave the loop as
    /// plain jittered polling.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); a per-call TTL is checked like the
    /// default one ([`ConfigError::DriftConsumesTtl`], ...).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe by itself; after dropping it, release with
    /// [`release_token`](Self::release_token) and the same token.
    #[tracing::instrument(name = "redlock.acquire", level = "debug", skip_all, fields(%resources))]
    pub async fn acquire_with(
        &self,
        resources: &ResourceSet,
        opts: &AcquireOptions,
        token: Token,
    ) -> Result<Lock, AcquireError> {
        let ttl = match opts.ttl {
            Some(d) => Ttl::try_from(d)?,
            None => self.settings.ttl,
        };
        self.settings.check_ttl(ttl)?;
        // Per-call options are checked like the builder's.
        let retry = opts.retry.as_ref().unwrap_or(&self.settings.retry);
        retry.check()?;
        let wait = opts.wait.unwrap_or(self.settings.wait);
        if wait == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroWait.into());
        }
        let keys: Arc<[String]> = resources.keys(&self.settings.prefix).into();
        let fields: Option<Vec<String>> = opts
            .fenced
            .unwrap_or(self.settings.fencing)
            .then(|| resources.iter().map(|r| r.as_str().to_owned()).collect());
        let fences = fields.as_deref().map(|fields| FenceKeys {
            hash: self.settings.prefix.as_str(),
            fields,
        });
        let begin = self.runtime.now();
        let deadline = wait.and_then(|w| begin.checked_add(w));
        let mut attempts: u32 = 0;
        let mut cleanup: Option<Releases> = None;
        let mut watch: Option<BoxStream<'_, Heard>> = None;
        // Retries at once because subscriptions landed (after the first
        // refusal, and later for each that landed late): at most one per
        // master, they do not count against the retry budget.
        let mut landed: u32 = 0;
        // Retries that answered announcements rather than a poll: up to as
        // many as the budget itself, they do not count against it (beyond
        // that they do, so that a call without a deadline still ends under
        // endless churn).
        let mut wakes: u32 = 0;
        loop {
            attempts += 1;
            if let Some(previous) = cleanup.take() {
                // Every attempt uses the same token, so the previous
                // attempt's cleanup must be through (answered or timed out,
                // so written) on every connection before this attempt's
                // commands follow it; otherwise it could delete a key this
                // attempt is about to count. It was sent a backoff ago, so
                // this rarely waits.
                previous.finished().await;
            }
            let attempt_began = self.runtime.now();
            let outcome = self.attempt(&keys, fences, &token, ttl).await;
            let attempt_took = self.runtime.now().saturating_duration_since(attempt_began);
            let failure = match outcome {
                Ok((valid_until, votes, fence)) => {
                    tracing::debug!(attempts, %votes, fence = fence.map(Fence::get), "acquired");
                    return Ok(Lock {
                        resources: resources.clone(),
                        // Shared: a subscription under way borrows them.
                        keys: Arc::clone(&keys),
                        token,
                        ttl,
                        valid_until,
                        votes,
                        fence,
                    });
                }
                Err((f, releases)) => {
                    cleanup = Some(releases);
                    f
                }
            };
            let polls = attempts - landed - wakes.min(retry.retries());
            if polls > retry.retries() {
                return Err(log_failure(failure.into_error(attempts, ttl)));
            }
            let before_deadline = |now: Instant| deadline.is_none_or(|d| now < d);
            if attempts == 1 && before_deadline(self.runtime.now()) {
                // Refused once: from now on this waiter listens for the
                // masters' release announcements (when they make them), and
                // uncontended acquisitions never subscribe. A release
                // between the refusal and the subscription is not announced
                // to us, so the first retry goes at once, after the
                // subscription: every release after it wakes us. The wait
                // for it is bounded by the per-master timeout (and the
                // deadline), whatever the masters do; a subscription still
                // under way then is not dropped: it goes on while this
                // waiter sleeps, and the retry goes once it is in place.
                let mut bound = self.settings.master_timeout();
                if let Some(d) = deadline {
                    bound = bound.min(d.saturating_duration_since(self.runtime.now()));
                }
                let mut heard = self.watch_releases(&keys);
                let limit = self.runtime.sleep(bound);
                futures::pin_mut!(limit);
                let (mut unanswered, mut listening) = (self.masters.len(), false);
                while unanswered > 0 {
                    // The masters first: those that do not announce answer
                    // at once, and the timer is never polled.
                    match future::select(heard.next(), limit.as_mut()).await {
                        Either::Left((Some(Heard::Subscribed(yes)), _)) => {
                            unanswered -= 1;
                            listening |= yes;
                        }
                        // Before the retry that follows anyway.
                        Either::Left((Some(Heard::Announced(_)), _)) => {}
                        Either::Left((None, _)) | Either::Right(_) => break,
                    }
                }
                if listening || unanswered > 0 {
                    watch = Some(heard);
                    if listening && before_deadline(self.runtime.now()) {
                        landed += 1;
                        continue;
                    }
                }
            }
            let mut delay = retry.delay(polls, self.runtime.random_u64());
            let now = self.runtime.now();
            if let Some(deadline) = deadline {
                // No attempt starts after the deadline, and the wait lasts
                // as long as asked: the last backoff is cut short so that
                // one last attempt starts at the deadline.
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(log_failure(AcquireError::Deadline {
                        attempts,
                        waited: now.saturating_duration_since(begin),
                        last: Box::new(failure.into_error(attempts, ttl)),
                    }));
                }
                delay = delay.min(left);
            }
            match self.sleep_or_announced(delay, &mut watch).await {
                Woke::Slept => {}
                Woke::Subscribed => {
                    // As after the first refusal: releases from before the
                    // subscription went unheard, so try now.
                    tracing::debug!(attempts, "subscribed late: retrying at once");
                    landed += 1;
                }
                Woke::Announced => {
                    tracing::debug!(attempts, "woken by release announcements");
                    wakes += 1;
                    // Every waiter of every process heard the same
                    // announcements. If they all tried at once their votes
                    // would split and leave the lock free with everyone
                    // asleep, so each pauses for a random part of a window
                    // that starts at a few attempts' length and doubles each
                    // time this caller was woken and still refused (more
                    // waiters than the window separates), up to the retry
                    // policy's longest delay.
                    let window = attempt_took
                        .saturating_mul(WAKE_SPREAD)
                        .saturating_mul(1u32 << (wakes - 1).min(16))
                        .min(retry.max());
                    let span = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1);
                    let mut pause = Duration::from_nanos(self.runtime.random_u64() % span);
                    if let Some(deadline) = deadline {
                        pause = pause.min(deadline.saturating_duration_since(self.runtime.now()));
                    }
                    self.runtime.sleep(pause).await;
                }
            }
        }
    }

    /// Sleeps `delay`, or less: until a quorum of distinct masters
    /// announced a release on `watch` (one master's announcement does not
    /// free the lock, and each release announces on every master that held
    /// the keys), or a subscription still under way is in place. When
    /// every master's announcements end, `watch` is cleared (polling from
    /// then on) and the sleep runs out.
    async fn sleep_or_announced(
        &self,
        delay: Duration,
        watch: &mut Option<BoxStream<'_, Heard>>,
    ) -> Woke {
        let sleep = self.runtime.sleep(delay);
        let Some(w) = watch.as_mut() else {
            sleep.await;
            return Woke::Slept;
        };
        futures::pin_mut!(sleep);
        let mut announced = vec![false; self.masters.len()];
        let mut count = 0;
        loop {
            match future::select(sleep.as_mut(), w.next()).await {
                Either::Left(((), _)) => return Woke::Slept,
                Either::Right((Some(Heard::Announced(i)), _)) => {
                    if !std::mem::replace(&mut announced[i], true) {
                        count += 1;
                    }
                    if count >= self.settings.quorum.needed() {
                        return Woke::Announced;
                    }
                }
                Either::Right((Some(Heard::Subscribed(true)), _)) => {
                    // Those that landed with it: one retry for them all.
                    while let Some(Some(heard)) = w.next().now_or_never() {
                        if let Heard::Announced(i) = heard {
                            if !std::mem::replace(&mut announced[i], true) {
                                count += 1;
                            }
                        }
                    }
                    return if count >= self.settings.quorum.needed() {
                        Woke::Announced
                    } else {
                        Woke::Subscribed
                    };
                }
                Either::Right((Some(Heard::Subscribed(false)), _)) => {}
                Either::Right((None, _)) => {
                    *watch = None;
                    sleep.await;
                    return Woke::Slept;
                }
            }
        }
    }

    /// Subscribes to the release announcements of `keys` on every master
    /// (see [`Master::watch_releases`]): one stream of what the masters
    /// said, in order per master: first whether it subscribed (once its
    /// subscription is settled, however late), then each of its
    /// announcements. It ends once no master announces.
    fn watch_releases<'a>(&'a self, keys: &'a [String]) -> BoxStream<'a, Heard> {
        futures::stream::select_all(self.masters.iter().enumerate().map(|(i, m)| {
            futures::stream::once(m.watch_releases(keys))
                .flat_map(move |w: Option<ReleaseWatch>| {
                    let settled = futures::stream::iter([Heard::Subscribed(w.is_some())]);
                    match w {
                        Some(w) => settled.chain(w.map(move |()| Heard::Announced(i))).boxed(),
                        None => settled.boxed(),
                    }
                })
                .boxed()
        }))
        .boxed()
    }

    /// One acquisition attempt: fan out, decide early, check validity,
    /// with `fences` write the fence back to a quorum, and on failure queue
    /// a release on every master (awaited by nobody here; the caller gets
    /// the answers to wait on before a retry).
    async fn attempt(
        &self,
        keys: &Arc<[String]>,
        fences: Option<FenceKeys<'_>>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<(Instant, Votes, Option<Fence>), (AttemptFailure, Releases)> {
        // `start` is read before any command is sent: every key is set at
        // or after it, so `start + ttl` is a lower bound of every expiry.
        let start = self.runtime.now();
        // With fencing, the highest fence any granting master reported.
        let max_seen = AtomicU64::new(0);
        let (decision, tally) = match fences {
            None => self.vote(|m| m.acquire(keys, token, ttl)).await,
            Some(fences) => {
                let max_seen = &max_seen;
                self.vote(|m| async move {
                    let seen = m.acquire_fenced(keys, fences, token, ttl).await?;
                    max_seen.fetch_max(seen, Ordering::AcqRel);
                    Ok(())
                })
                .await
            }
        };
        let votes = tally.into_votes(&self.addresses);
        // On failure, release everywhere our keys may be: every master but
        // those that answered "held by another owner" (their atomic step
        // wrote nothing, and a key of ours from an earlier attempt was
        // cleaned up before this one started). That includes masters that
        // timed out or had not answered: a timed-out SET may still be
        // applied later, and on a live connection our release is queued
        // behind it. Queued, not awaited: the attempt's outcome is decided,
        // and a paused master must not hold the caller for its timeout.
        let held_elsewhere: Vec<bool> = votes
            .iter()
            .map(|v| matches!(v.outcome, VoteOutcome::Failed(MasterFailure::Held)))
            .collect();
        let fail = |f: AttemptFailure| {
            let releases = self.spawn_releases(keys, token, |i| !held_elsewhere[i]);
            Err((f, releases))
        };
        if decision != Decision::Granted {
            return fail(AttemptFailure::NoQuorum(votes));
        }
        let now = self.runtime.now();
        #[cfg(feature = "__broken-for-negative-controls")]
        if self.settings.mutant_no_elapsed_check {
            // Deliberately broken (see the `__broken-for-negative-controls` feature): trusts
            // the lock for a full TTL from the decision, ignoring the time
            // the acquire took and the drift margin.
            let fence = fences.and_then(|_| Fence::after(max_seen.load(Ordering::Acquire)));
            return Ok((now + ttl.as_duration(), votes, fence));
        }
        let until = match validity::valid_until(start, ttl, self.settings.drift_factor) {
            Some(until) if validity::is_valid(until, now, self.settings.min_validity) => until,
            _ => {
                return fail(AttemptFailure::ValidityExhausted(
                    now.saturating_duration_since(start),
                ))
            }
        };
        let Some(fences) = fences else {
            return Ok((until, votes, None));
        };
        // The fence: one more than the highest any master of the granting
        // quorum holds. That quorum shares a master with the quorum that
        // confirmed the previous holder's fence, and there the previous
        // holder wrote it while it held the key, so before our SET.
        let Some(fence) = Fence::after(max_seen.load(Ordering::Acquire)) else {
            return fail(AttemptFailure::FencesExhausted);
        };
        #[cfg(feature = "__broken-for-negative-controls")]
        if self.settings.mutant_no_fence_write_back {
            // Deliberately broken: uses max + 1 without writing it back, so
            // the next holder can read the same max (pottery's pitfall).
            return Ok((until, votes, Some(fence)));
        }
        // The write-back counts only where our token still holds the keys,
        // and only if a quorum confirms it within the lock's validity: the
        // next holder's quorum must find it.
        let (decision, tally) = self.vote(|m| m.set_fence(keys, fences, token, fence)).await;
        let now = self.runtime.now();
        if decision == Decision::Granted
            && validity::is_valid(until, now, self.settings.min_validity)
        {
            return Ok((until, votes, Some(fence)));
        }
        fail(AttemptFailure::FenceNotConfirmed(
            tally.into_votes(&self.addresses),
        ))
    }

    /// Sends `op` to every master in parallel and tallies replies as they
    /// arrive, returning as soon as the decision is certain. Every
    /// master's future is polled (its command sent) before the first reply
    /// counts, even when a quorum answers at once (see [`Answers`]).
    /// Masters that have not answered by then stay `Pending` in the tally;
    /// their futures are dropped (their commands may still run, which
    /// every caller accounts for).
    async fn vote<'a, F, Fut>(&'a self, op: F) -> (Decision, Tally)
    where
        F: Fn(&'a M) -> Fut,
        Fut: Future<Output = Result<(), MasterFailure>> + 'a,
    {
        let mut tally = Tally::new(self.settings.quorum);
        let mut pending: Answers<_> = self
            .masters
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let fut = op(m);
                async move { (i, fut.await) }
            })
            .collect();
        while let Some((i, outcome)) = pending.next().await {
            let decision = tally.record(i, outcome);
            if decision != Decision::Pending {
                return (decision, tally);
            }
        }
        // Every master answered; the tally always decides by then.
        (tally.decision(), tally)
    }

    /// Extends `lock` to `ttl` (default: its current TTL) from now.
    ///
    /// Refused without sending anything if the lock's validity already
    /// passed. On success the lock's validity becomes
    /// `start + ttl - drift`; on failure it is unchanged, which is safe
    /// because the extend script never shortens a key: every key keeps at
    /// least the expiry it had, whatever TTL is asked for.
    ///
    /// # Errors
    ///
    /// [`ExtendError::Expired`], [`ExtendError::NoQuorum`],
    /// [`ExtendError::ValidityExhausted`], or [`ExtendError::Invalid`] for a
    /// bad TTL.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense that matters: dropping it leaves the lock
    /// value unchanged, and keys on the masters hold only our token, with
    /// an expiry no shorter than before (the script never shortens a key,
    /// even for a shorter TTL).
    #[tracing::instrument(name = "redlock.extend", level = "debug", skip_all, fields(resources = %lock.resources))]
    pub async fn extend(&self, lock: &mut Lock, ttl: Option<Duration>) -> Result<(), ExtendError> {
        let ttl = match ttl {
            Some(d) => Ttl::try_from(d)?,
            None => lock.ttl,
        };
        self.settings.check_ttl(ttl)?;
        let start = self.runtime.now();
        if !lock.is_valid_at(start) {
            return Err(ExtendError::Expired {
                ago: start.saturating_duration_since(lock.valid_until),
            });
        }
        let recreate = self.settings.danger_extend_recreates;
        let keys = Arc::clone(&lock.keys);
        let token = &lock.token;
        let (decision, tally) = self.vote(|m| m.extend(&keys, token, ttl, recreate)).await;
        let votes = tally.into_votes(&self.addresses);
        tracing::debug!(%votes, "extend decided");
        if decision != Decision::Granted {
            return Err(ExtendError::NoQuorum { votes });
        }
        let now = self.runtime.now();
        match validity::valid_until(start, ttl, self.settings.drift_factor) {
            Some(until) if validity::is_valid(until, now, self.settings.min_validity) => {
                lock.valid_until = until;
                lock.ttl = ttl;
                lock.votes = votes;
                Ok(())
            }
            _ => Err(ExtendError::ValidityExhausted {
                elapsed: now.saturating_duration_since(start),
                ttl: ttl.as_duration(),
            }),
        }
    }

    /// Releases `lock`: sends the release to every master and returns as
    /// soon as the outcome is decided. The masters that have not answered
    /// by then finish in the background, each bounded by the per-master
    /// timeout.
    ///
    /// "Released" means a quorum of masters confirmed that our keys are
    /// gone (deleted, or no longer there): no other holder can count on
    /// the rest, since every quorum shares a master with those. Keys left
    /// on a master that never confirms expire with their TTL. To wait for
    /// every master's answer, use [`release_all`](Self::release_all).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when a quorum could not confirm (too
    /// many masters timed out or failed); the keys there expire with their
    /// TTL. Masters that no longer held the key are not errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once polled, the release runs in the background to the
    /// end; dropping the future only loses the report.
    pub async fn release(&self, lock: Lock) -> Result<ReleaseReport, ReleaseError> {
        self.release_keys(&lock.keys, &lock.token, false).await
    }

    /// Like [`release`](Self::release), but waits for every master's
    /// answer (each bounded by the per-master timeout).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when any master could not confirm.
    ///
    /// # Cancel safety
    ///
    /// As [`release`](Self::release).
    pub async fn release_all(&self, lock: Lock) -> Result<ReleaseReport, ReleaseError> {
        self.release_keys(&lock.keys, &lock.token, true).await
    }

    /// Releases the keys of `resources` that hold `token`, on every master,
    /// returning when decided (as [`release`](Self::release)). For cleanup
    /// after a cancelled [`acquire_with`](Self::acquire_with), and for
    /// handing a lock across processes by its token. Keys held by any other
    /// token are never touched.
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    ///
    /// # Cancel safety
    ///
    /// As [`release`](Self::release).
    pub async fn release_token(
        &self,
        resources: &ResourceSet,
        token: &Token,
    ) -> Result<ReleaseReport, ReleaseError> {
        let keys: Arc<[String]> = resources.keys(&self.settings.prefix).into();
        self.release_keys(&keys, token, false).await
    }

    /// Completes once every background task of this manager (releases
    /// finishing after their decision, cleanups of refused attempts) has
    /// finished, and every master has answered what was sent to it
    /// before (releases a decision left to masters that send them by
    /// themselves, see [`Master::sends_dropped_releases`]); each is
    /// bounded by the per-master timeout. For a process about to exit:
    /// dropping the runtime first would drop them unsent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits (and, once a release was left to its
    /// masters, asks each master to [`settle`](Master::settle)).
    pub async fn background_idle(&self) {
        let settled = async {
            if self.left_to_masters.load(Ordering::Relaxed) {
                future::join_all(self.masters.iter().map(Master::settle)).await;
            }
        };
        future::join(self.background.idle(), settled).await;
    }

    /// Closes every master connection ([`Master::close`]). Locks still
    /// held stay until their TTL; release them first (and await
    /// [`background_idle`](Self::background_idle) for releases still
    /// finishing on slow masters).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it leaves the remaining connections open; they
    /// close when the manager is dropped.
    pub async fn quit(&self) {
        future::join_all(self.masters.iter().map(Master::close)).await;
    }

    /// One release per wanted master, each an owned future that answers
    /// with its master's index: polled by the caller
    /// ([`release_keys`](Self::release_keys)) or by a background task
    /// ([`spawn_releases`](Self::spawn_releases)). The token is copied once
    /// and shared, not once per master.
    fn releases(
        &self,
        keys: &Arc<[String]>,
        token: &Token,
        wanted: impl Fn(usize) -> bool,
        announce: bool,
    ) -> Answers<impl Future<Output = Answer> + Send + 'static> {
        let token = Arc::new(token.clone());
        (0..self.masters.len())
            .filter(|&i| wanted(i))
            .map(|i| {
                let (masters, keys, token) = (
                    Arc::clone(&self.masters),
                    Arc::clone(keys),
                    Arc::clone(&token),
                );
                async move {
                    let master = &masters[i];
                    let outcome = if announce {
                        master.release_announced(&keys, &token).await
                    } else {
                        master.release(&keys, &token).await
                    };
                    (i, outcome)
                }
            })
            .collect()
    }

    /// Sends a release to every wanted master from a background task, and
    /// returns the answers as they come.
    fn spawn_releases(
        &self,
        keys: &Arc<[String]>,
        token: &Token,
        wanted: impl Fn(usize) -> bool,
    ) -> Releases {
        let (tx, rx) = mpsc::unbounded();
        // Nothing wanted: `tx` is dropped here and the channel closes at once.
        finish_in_background(
            &self.runtime,
            &self.background,
            // A cleanup frees no lock anyone was granted: announcing it
            // would wake every waiter for nothing.
            self.releases(keys, token, wanted, false),
            Some(tx),
        );
        Releases(rx)
    }

    async fn release_keys(
        &self,
        keys: &Arc<[String]>,
        token: &Token,
        wait_all: bool,
    ) -> Result<ReleaseReport, ReleaseError> {
        // Polled here, in the caller's task, until decided: no task hop on
        // the way to the answer (a spawned task and a channel cost a
        // wake-up on another worker per release). What is still running
        // then, or when this future is dropped, goes on in the background.
        let pending = self.releases(keys, token, |_| true, true);
        let mut answers = Unfinished {
            pending,
            runtime: &self.runtime,
            background: &self.background,
            detached: false,
        };
        let mut tally = ReleaseTally::new(self.settings.quorum);
        while let Some((i, outcome)) = answers.pending.next().await {
            let decision = tally.record(i, outcome);
            let waited_enough = !wait_all || tally.complete();
            if decision != Decision::Pending && waited_enough {
                break;
            }
        }
        // The masters still to answer whose release went out and goes on
        // without its future are left to it: no task, no wake-up on
        // another worker (see `Master::sends_dropped_releases`). Every
        // release was polled, so sent, before the first answer came out
        // (see `Answers`).
        answers.detached = tally
            .pending()
            .all(|i| self.masters[i].sends_dropped_releases());
        if answers.detached && !answers.pending.is_empty() {
            self.left_to_masters.store(true, Ordering::Relaxed);
        }
        drop(answers);
        let report = tally.report(&self.addresses);
        tracing::debug!(%report, "release decided");
        let ok = if wait_all {
            report.failed() == 0
        } else {
            tally.decision() == Decision::Granted
        };
        if ok {
            Ok(report)
        } else {
            Err(ReleaseError::Incomplete { report })
        }
    }
}

/// Releases being polled by the caller; whatever has not answered when
/// this is dropped (decided early, or the caller's future dropped) is
/// finished by a background task, each bounded by the per-master timeout,
/// unless `detached`: then it goes on by itself.
struct Unfinished<'a, R: Runtime, F: Future<Output = Answer> + Send + 'static> {
    pending: Answers<F>,
    runtime: &'a R,
    background: &'a Arc<Background>,
    /// The masters still to answer send a dropped release by themselves,
    /// and were polled ([`Master::sends_dropped_releases`]).
    detached: bool,
}

impl<R: Runtime, F: Future<Output = Answer> + Send + 'static> Drop for Unfinished<'_, R, F> {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        // Every answer in (the usual case with healthy masters): nothing
        // is handed over, and `finish_in_background` spawns nothing.
        finish_in_background(
            self.runtime,
            self.background,
            self.pending.hand_over(),
            None,
        );
    }
}

/// One master's answer to a release: its index and the outcome.
type Answer = (usize, Result<(), MasterFailure>);

/// Runs the releases still `pending` to the end in a background task that
/// the manager counts ([`Redlock::background_idle`]), forwarding each answer
/// to `answers` when someone listens. Spawns nothing when none is pending.
fn finish_in_background<R: Runtime, F: Future<Output = Answer> + Send + 'static>(
    runtime: &R,
    background: &Arc<Background>,
    mut pending: Answers<F>,
    answers: Option<mpsc::UnboundedSender<Answer>>,
) {
    if pending.is_empty() {
        return;
    }
    let ticket = background.enter();
    runtime.spawn(Box::pin(async move {
        let _ticket = ticket;
        while let Some(answer) = pending.next().await {
            // The receiver may be gone (the decision was taken, or the
            // caller does not care): the releases go on regardless.
            if let Some(tx) = &answers {
                let _ = tx.unbounded_send(answer);
            }
        }
    }));
}

/// Logs an acquisition that failed for good: contention at DEBUG (a busy
/// resource is business as usual), anything else at WARN (masters failing,
/// validity exhausted: what an operator must see).
fn log_failure(e: AcquireError) -> AcquireError {
    if e.is_contended() {
        tracing::debug!(error = %e, "lock not acquired: held elsewhere");
    } else {
        tracing::warn!(error = %e, "lock not acquired");
    }
    e
}
