//! The per-guard watchdog task: it owns the core [`Lock`], extends it,
//! fires the loss signal, and releases the lock when the guard goes.
//!
//! One task per guard keeps every decision about a lock in one place, in
//! order: an extension and the release of the same lock are never sent
//! concurrently, so a release always lands after (never before) the
//! extension that preceded it on each master's connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::{ExtendError, Lock, Master, ReleaseError, ReleaseReport, Runtime};
use tokio::sync::{mpsc, oneshot};

use crate::error::LossReason;
use crate::guard::{Command, Shared};
use crate::manager::Inner;
use crate::policy::{self, ExtendPolicy};

/// The watchdog of one guard. See [`LockGuard`](crate::LockGuard) for the
/// state diagram it implements.
pub(crate) struct Watchdog<M: Master, R: Runtime> {
    pub(crate) inner: Arc<Inner<M, R>>,
    pub(crate) id: u64,
    pub(crate) lock: Lock,
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) policy: ExtendPolicy,
    pub(crate) acquired_at: Instant,
    /// This lock's place at the head of the in-process queue for its
    /// resources: held until the release is queued on every master (or
    /// the lock is lost), then the next waiting task of this process asks
    /// the masters. `None` once handed on.
    pub(crate) queue_slot: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// What woke the watchdog while the lock was held.
enum Event {
    Shutdown,
    /// `None`: the guard was dropped.
    Release(Option<Command>),
    Extended(Result<(), ExtendError>),
    ValidityEnds,
}

/// How the `Held` state ended.
enum Exit {
    /// Shutdown or the guard: release now.
    Release {
        reply: Option<oneshot::Sender<Result<ReleaseReport, ReleaseError>>>,
        by_shutdown: bool,
    },
    /// The lock is lost; wait for the guard to go.
    Lost,
}

/// What to do with a failed extension.
enum Verdict {
    /// A majority says the token is gone: lost now.
    Gone(LossReason),
    /// Nothing proven (timeouts, unreachable, too slow): retry while valid.
    Retry,
    /// Cannot extend any more (expired locally, or an error no retry fixes):
    /// stop extending and let the validity run out.
    Stop,
}

fn judge(e: &ExtendError) -> Verdict {
    match e {
        ExtendError::NoQuorum { votes } if votes.majority_gone() => {
            Verdict::Gone(LossReason::Refused {
                votes: votes.clone(),
            })
        }
        ExtendError::NoQuorum { .. } | ExtendError::ValidityExhausted { .. } => Verdict::Retry,
        _ => Verdict::Stop,
    }
}

impl<M: Master, R: Runtime> Watchdog<M, R> {
    /// Runs until the lock is released (by the guard, its drop, or the
    /// manager's shutdown), then leaves the registry.
    pub(crate) async fn run(mut self) {
        let exit = self.held().await;
        let (reply, by_shutdown) = match exit {
            Exit::Release { reply, by_shutdown } => (reply, by_shutdown),
            Exit::Lost => self.lost().await,
        };
        let held_for = self
            .inner
            .redlock
            .runtime()
            .now()
            .saturating_duration_since(self.acquired_at);
        crate::metrics::ended(held_for, self.shared.loss());
        // Always by token, even for a lost lock: it deletes only keys that
        // still hold our token (a minority left over, or keys a paused
        // master kept), never another owner's.
        let mut release = std::pin::pin!(self
            .inner
            .redlock
            .release_token(&self.shared.resources, &self.shared.token));
        // The next task of this process waiting for these resources may go
        // as soon as our release is queued on every master's connection
        // (the first poll sends it), not only once a quorum answered: each
        // connection delivers our delete before its attempt, so it finds
        // the keys gone, one round trip earlier.
        let first = futures::poll!(release.as_mut());
        drop(self.queue_slot.take());
        let result = match first {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => release.await,
        };
        match &result {
            Ok(report) => {
                tracing::debug!(resources = %self.shared.resources, %report, "lock released")
            }
            Err(e) => {
                tracing::warn!(resources = %self.shared.resources, error = %e, "release incomplete; keys expire with their TTL")
            }
        }
        if reply.is_none() && !by_shutdown && result.is_err() {
            // A dropped guard: nobody awaits this release.
            self.inner
                .stats
                .background_incomplete
                .fetch_add(1, Ordering::SeqCst);
        }
        if by_shutdown {
            let counter = if result.is_ok() {
                &self.inner.stats.released
            } else {
                &self.inner.stats.incomplete
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
        // Deregister before answering: a caller that awaited the release
        // sees the registry without this lock.
        self.inner.deregister(self.id);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// The `Held` state: extend on schedule, and race every extension
    /// against the end of validity, the guard and the shutdown.
    async fn held(&mut self) -> Exit {
        let redlock = &self.inner.redlock;
        let rt = redlock.runtime();
        let shutdown = self.inner.shutdown.clone();
        // Failed attempts since the last success, and the last error.
        let mut failures: u32 = 0;
        let mut last_error: Option<Arc<ExtendError>> = None;
        let mut extensions: u32 = 0;
        // Set once an extension failed in a way no retry fixes.
        let mut stopped = false;
        loop {
            // Every iteration starts after an event that changed the
            // schedule (acquired, extended, failed), so the next attempt and
            // the loss deadline are recomputed from scratch each time.
            let now = rt.now();
            let valid_until = self.lock.valid_until();
            let next = if failures == 0 {
                policy::next_extension(
                    now,
                    valid_until,
                    self.policy
                        .threshold_value()
                        .lead(self.lock.ttl().as_duration()),
                )
            } else {
                policy::retry_at(now, valid_until)
            };
            // The cap is judged at the instant the attempt would start, not
            // now: a hold-time cap must stop an attempt scheduled after it.
            let cap = policy::cap_reached(&self.policy, extensions, self.acquired_at, next);
            let may_extend = self.policy.is_enabled() && cap.is_none() && !stopped;
            let fire_at = policy::loss_deadline(valid_until);
            // The extension borrows the lock only for this `select!`: if
            // another branch wins, the extension future is dropped, which
            // the core documents as harmless (keys keep our token, with an
            // expiry no shorter than before), and the lock is usable again.
            let lock = &mut self.lock;
            let event = tokio::select! {
                // Shutdown and the guard come first: once the lock is given
                // up, no further extension may start.
                biased;
                () = shutdown.cancelled() => Event::Shutdown,
                cmd = self.commands.recv() => Event::Release(cmd),
                r = async {
                    sleep_until(rt, next).await;
                    redlock.extend(lock, None).await
                }, if may_extend => Event::Extended(r),
                // Independent of the extension: a stuck or slow extension
                // call cannot delay the loss signal past the validity.
                () = sleep_until(rt, fire_at) => Event::ValidityEnds,
            };
            match event {
                Event::Shutdown => {
                    self.shared.fire(LossReason::Shutdown);
                    return Exit::Release {
                        reply: None,
                        by_shutdown: true,
                    };
                }
                Event::Release(cmd) => {
                    self.shared.fire(LossReason::Released);
                    let reply = cmd.map(|Command::Release(tx)| tx);
                    return Exit::Release {
                        reply,
                        by_shutdown: false,
                    };
                }
                Event::Extended(Ok(())) => {
                    crate::metrics::extended(true);
                    extensions = extensions.saturating_add(1);
                    failures = 0;
                    last_error = None;
                    self.shared.record_extension(self.lock.valid_until());
                    tracing::trace!(resources = %self.shared.resources, extensions, "lock extended");
                }
                Event::Extended(Err(e)) => {
                    crate::metrics::extended(false);
                    tracing::debug!(resources = %self.shared.resources, error = %e, "extension failed");
                    match judge(&e) {
                        Verdict::Gone(reason) => {
                            self.shared.fire(reason);
                            return Exit::Lost;
                        }
                        Verdict::Retry => failures = failures.saturating_add(1),
                        Verdict::Stop => {
                            // Not a loss yet: the lock stays valid until
                            // its deadline, and the work may finish by then.
                            failures = failures.saturating_add(1);
                            stopped = true;
                        }
                    }
                    last_error = Some(Arc::new(e));
                }
                Event::ValidityEnds => {
                    // Report the cap only if it is really what stopped us;
                    // failing extensions are the more useful diagnosis.
                    let reason = match cap {
                        Some(cap) if !stopped && failures == 0 && self.policy.is_enabled() => {
                            LossReason::CapReached { cap }
                        }
                        _ => LossReason::Lapsed {
                            attempts: failures,
                            last_error: last_error.take(),
                        },
                    };
                    // `Shared::fire` logs the loss itself, at WARN.
                    self.shared.fire(reason);
                    return Exit::Lost;
                }
            }
        }
    }

    /// The `Lost` state: never extend, never re-acquire; wait for the guard
    /// (or the shutdown) to release what may remain.
    async fn lost(
        &mut self,
    ) -> (
        Option<oneshot::Sender<Result<ReleaseReport, ReleaseError>>>,
        bool,
    ) {
        let shutdown = self.inner.shutdown.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => (None, true),
            cmd = self.commands.recv() => (cmd.map(|Command::Release(tx)| tx), false),
        }
    }
}

/// The longest single sleep of a watchdog timer.
///
/// The runtime's clock counts time the machine was suspended
/// ([`crate::now`]); tokio's timer does not. So a watchdog never
/// sleeps to a deadline in one go: it sleeps at most this long, then reads
/// the runtime's clock again. After a suspension, a lock whose validity
/// passed meanwhile is reported lost within this step of the resume.
const MAX_STEP: Duration = Duration::from_secs(1);

/// Sleeps until `deadline` by the runtime's clock, through the runtime's
/// own sleep, in steps of at most [`MAX_STEP`].
async fn sleep_until<R: Runtime>(rt: &R, deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(rt.now());
        if left.is_zero() {
            return;
        }
        rt.sleep(left.min(MAX_STEP)).await;
    }
}
