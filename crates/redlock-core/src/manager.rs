//! The Redlock algorithm over any set of [`Master`]s and any [`Runtime`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::config::{ResourceSet, Settings, Ttl};
use crate::error::{AcquireError, ConfigError, ExtendError, ReleaseError};
use crate::lock::Lock;
use crate::master::{Master, Runtime};
use crate::release::ReleaseReport;
use crate::retry::RetryPolicy;
use crate::tally::{Decision, MasterFailure, Tally, Vote, VoteOutcome, Votes};
use crate::token::Token;
use crate::validity;

/// Per-call overrides of the manager's settings for
/// [`Redlock::acquire_with`].
#[derive(Clone, Debug, Default)]
pub struct AcquireOptions {
    ttl: Option<Duration>,
    retry: Option<RetryPolicy>,
    wait: Option<Option<Duration>>,
}

impl AcquireOptions {
    /// Uses the manager's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// TTL of this lock.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Retry policy of this call.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Overall wait deadline of this call (`None`: the retry count alone).
    pub fn wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = Some(wait);
        self
    }

    /// A single attempt: no retries, no deadline.
    pub fn once() -> Self {
        Self::default().retry(RetryPolicy::never()).wait(None)
    }
}

/// Why one attempt failed; becomes an [`AcquireError`] with the attempt
/// count once retries are exhausted.
enum AttemptFailure {
    NoQuorum(Votes),
    ValidityExhausted(Duration),
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
        }
    }
}

/// A Redlock lock manager over N independent masters.
///
/// `M` is how a master is reached ([`FredMaster`](crate::FredMaster) in
/// production) and `R` where time and randomness come from
/// ([`TokioRuntime`](crate::TokioRuntime) in production). Build the
/// production one with [`Redlock::builder`](crate::Redlock::builder); share
/// it behind an `Arc`.
pub struct Redlock<M, R> {
    masters: Vec<M>,
    addresses: Vec<Arc<str>>,
    settings: Settings,
    runtime: R,
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
            masters,
            addresses,
            settings,
            runtime,
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
        self.acquire_with(&resources, &AcquireOptions::once(), Token::random())
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
        self.acquire_with(&resources, &AcquireOptions::new(), Token::random())
            .await
    }

    /// Acquires with explicit options and a caller-chosen token.
    ///
    /// The token is used for every attempt of this call: between attempts
    /// all keys holding it are released, so a late command from an earlier
    /// attempt can only ever set a key to *our* token, which the release at
    /// the end (or the caller's cleanup after cancellation, by this same
    /// token) removes. Choosing the token up front is what lets a caller
    /// clean up after dropping this future.
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
        let retry = opts.retry.as_ref().unwrap_or(&self.settings.retry);
        let wait = opts.wait.unwrap_or(self.settings.wait);
        let keys: Arc<[String]> = resources.keys(&self.settings.prefix).into();
        let begin = self.runtime.now();
        let deadline = wait.and_then(|w| begin.checked_add(w));
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(&keys, &token, ttl).await {
                Ok((valid_until, votes)) => {
                    return Ok(Lock {
                        resources: resources.clone(),
                        keys,
                        token,
                        ttl,
                        valid_until,
                        votes,
                    });
                }
                Err(f) => f,
            };
            if attempts > retry.retries() {
                return Err(failure.into_error(attempts, ttl));
            }
            let delay = retry.delay(attempts, self.runtime.random_u64());
            let now = self.runtime.now();
            if let Some(deadline) = deadline {
                // No attempt starts after the deadline.
                if now.checked_add(delay).is_none_or(|next| next >= deadline) {
                    return Err(AcquireError::Deadline {
                        attempts,
                        waited: now.saturating_duration_since(begin),
                        last: Box::new(failure.into_error(attempts, ttl)),
                    });
                }
            }
            self.runtime.sleep(delay).await;
        }
    }

    /// One acquisition attempt: fan out, decide early, check validity, and
    /// release everywhere on failure.
    async fn attempt(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
    ) -> Result<(Instant, Votes), AttemptFailure> {
        // `start` is read before any command is sent: every key is set at
        // or after it, so `start + ttl` is a lower bound of every expiry.
        let start = self.runtime.now();
        let (decision, tally) = self.vote(|m| m.acquire(keys, token, ttl)).await;
        let votes = tally.into_votes(&self.addresses);
        if decision == Decision::Granted {
            let now = self.runtime.now();
            #[cfg(feature = "sim-mutants")]
            if self.settings.mutant_no_elapsed_check {
                // Deliberately broken (see the `sim-mutants` feature): trusts
                // the lock for a full TTL from the decision, ignoring the time
                // the acquire took and the drift margin.
                return Ok((now + ttl.as_duration(), votes));
            }
            match validity::valid_until(start, ttl, self.settings.drift_factor) {
                Some(until) if validity::is_valid(until, now, self.settings.min_validity) => {
                    return Ok((until, votes))
                }
                _ => {
                    self.release_keys(keys, token).await;
                    return Err(AttemptFailure::ValidityExhausted(
                        now.saturating_duration_since(start),
                    ));
                }
            }
        }
        // Release on all N, including masters that refused, timed out or
        // have not answered: a timed-out SET may still be applied later, and
        // on a live connection our release is queued behind it.
        self.release_keys(keys, token).await;
        Err(AttemptFailure::NoQuorum(votes))
    }

    /// Sends `op` to every master in parallel and tallies replies as they
    /// arrive, returning as soon as the decision is certain. Masters that
    /// have not answered by then stay `Pending` in the tally; their futures
    /// are dropped (their commands may still run, which every caller
    /// accounts for).
    async fn vote<'a, F, Fut>(&'a self, op: F) -> (Decision, Tally)
    where
        F: Fn(&'a M) -> Fut,
        Fut: Future<Output = Result<(), MasterFailure>> + 'a,
    {
        let mut tally = Tally::new(self.settings.quorum);
        let mut pending: FuturesUnordered<_> = self
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

    /// Releases `lock` on every master and waits for each (bounded by the
    /// per-master timeout).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when some master could not confirm; the
    /// key there expires with its TTL. Masters that no longer held the key
    /// are not errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave keys until their TTL.
    pub async fn release(&self, lock: Lock) -> Result<ReleaseReport, ReleaseError> {
        let report = self.release_keys(&lock.keys, &lock.token).await;
        finish_release(report)
    }

    /// Releases the keys of `resources` that hold `token`, on every master.
    /// For cleanup after a cancelled [`acquire_with`](Self::acquire_with),
    /// and for handing a lock across processes by its token. Keys held by
    /// any other token are never touched.
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
        let keys = resources.keys(&self.settings.prefix);
        finish_release(self.release_keys(&keys, token).await)
    }

    async fn release_keys(&self, keys: &[String], token: &Token) -> ReleaseReport {
        let outcomes =
            futures::future::join_all(self.masters.iter().map(|m| m.release(keys, token))).await;
        let votes = outcomes
            .into_iter()
            .enumerate()
            .map(|(master, r)| Vote {
                master,
                address: Arc::clone(&self.addresses[master]),
                outcome: match r {
                    Ok(()) => VoteOutcome::Granted,
                    Err(e) => VoteOutcome::Failed(e),
                },
            })
            .collect();
        ReleaseReport { votes }
    }
}

fn finish_release(report: ReleaseReport) -> Result<ReleaseReport, ReleaseError> {
    if report.failed() == 0 {
        Ok(report)
    } else {
        Err(ReleaseError::Incomplete { report })
    }
}
