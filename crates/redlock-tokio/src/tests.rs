//! The adapter over in-memory masters on tokio's paused clock: the watchdog,
//! the loss signal, cancellation cleanup and shutdown, deterministically
//! and in virtual time. Real-Redis tests live in `tests/redlock-tests`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::testing::{Fault, MemMaster};
use redlock_core::Settings;

use crate::{
    AcquireError, Cap, ExtendPolicy, LockManager, LockOptions, LossReason, Redlock, Runtime,
    WithLockError,
};

const TTL: Duration = Duration::from_secs(1);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// tokio's (pausable) clock, so the core's validity and the adapter's
/// timers agree in virtual time; plus the time "suspended" on this thread,
/// which the runtime's clock counts and tokio's timer does not (as
/// `CLOCK_BOOTTIME` and `CLOCK_MONOTONIC` after a machine suspend).
struct VirtualClock(AtomicU64);

thread_local! {
    static SUSPENDED: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Simulates a machine suspend of `d`: the runtime's clock jumps, tokio's
/// timer does not move.
fn suspend(d: Duration) {
    SUSPENDED.with(|s| s.set(s.get() + d));
}

impl Runtime for VirtualClock {
    fn now(&self) -> Instant {
        now() + SUSPENDED.with(std::cell::Cell::get)
    }

    fn sleep(&self, d: Duration) -> impl std::future::Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random_u64(&self) -> u64 {
        self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
    }

    fn fill_secret(&self, dest: &mut [u8]) {
        crate::TokioRuntime.fill_secret(dest);
    }

    fn holder(&self, label: Option<&str>) -> redlock_core::Holder {
        crate::TokioRuntime.holder(label)
    }

    fn spawn(&self, task: futures::future::BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// Handles on the in-memory masters (clones share their state), kept by
/// the test.
struct Fakes(Vec<MemMaster>);

impl Fakes {
    fn set_fault(&self, masters: &[usize], fault: Fault) {
        for &i in masters {
            self.0[i].set_fault(fault);
        }
    }

    fn value(&self, i: usize, key: &str) -> Option<String> {
        self.0[i].value(key)
    }

    fn live_keys(&self) -> usize {
        self.0.iter().map(|m| m.store().live_keys(now())).sum()
    }

    fn overwrite(&self, masters: &[usize], key: &str, value: Option<&str>) {
        for &i in masters {
            let mut store = self.0[i].store();
            match value {
                Some(v) => store.put(key, v, now() + Duration::from_secs(60)),
                None => store.force_delete(&[key.to_owned()]),
            }
        }
    }
}

fn setup(policy: ExtendPolicy) -> (LockManager<MemMaster, VirtualClock>, Fakes) {
    let masters = MemMaster::group(3, now);
    let fakes = Fakes(masters.clone());
    let settings = Settings::builder().ttl(TTL).build(3).expect("settings");
    let core =
        Redlock::with_masters(masters, settings, VirtualClock(AtomicU64::new(1))).expect("core");
    (
        LockManager::with_handle(core, policy, tokio::runtime::Handle::current()),
        fakes,
    )
}

/// Lets spawned tasks run without moving the paused clock much.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Every master is asked, not only a quorum: in-memory masters answer
/// within the poll that sends them the command, so a quorum of answers
/// is in before the last masters' futures were first polled. Those must
/// still send their commands before the round is decided (and dropped),
/// or the lock would stand on a bare quorum and one more lost master
/// would lose it.
#[tokio::test(start_paused = true)]
async fn every_master_is_asked_though_a_quorum_answers_at_once() {
    let masters = MemMaster::group(3, now);
    let fakes = Fakes(masters.clone());
    let settings = Settings::builder().ttl(TTL).build(3).expect("settings");
    let core =
        Redlock::with_masters(masters, settings, VirtualClock(AtomicU64::new(1))).expect("core");
    let mut lock = core.try_acquire("job").await.expect("free");
    let expiries = || -> Vec<Option<Duration>> {
        (0..3)
            .map(|i| {
                let at = fakes.0[i]
                    .store()
                    .peek("redlock:job", now())
                    .map(|(_, at)| at);
                at.map(|at| at - now())
            })
            .collect()
    };
    assert_eq!(
        expiries(),
        vec![Some(TTL); 3],
        "not every master was asked to acquire"
    );
    // An extend too reaches every master: each key gets the new expiry.
    tokio::time::advance(TTL / 2).await;
    core.extend(&mut lock, None).await.expect("extended");
    assert_eq!(
        expiries(),
        vec![Some(TTL); 3],
        "not every master was asked to extend"
    );
    core.release(lock).await.expect("released");
    core.background_idle().await;
    assert_eq!(fakes.live_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_single_attempt_is_refused_in_process_while_another_task_holds_it() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let guard = locks.acquire("job").await.expect("free");
    let held = fakes.value(0, "redlock:job");
    assert!(held.is_some());
    // Another task of this process: refused without a round trip, as a
    // contention, with no votes (nothing was asked).
    let err = locks.try_acquire("job").await.expect_err("held in process");
    assert!(matches!(err, AcquireError::HeldInProcess), "{err}");
    assert!(err.is_contended());
    assert!(err.votes().is_none());
    assert_eq!(fakes.value(0, "redlock:job"), held);
    // Other resources are not affected, and once released it is free.
    let other = locks.try_acquire("other").await.expect("free");
    drop(other);
    guard.release().await.expect("release");
    let again = locks.try_acquire("job").await.expect("free again");
    drop(again);
    settle().await;
    assert_eq!(fakes.live_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn watchdog_keeps_the_lock_past_many_ttls() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let guard = locks.try_acquire("job").await.expect("free");
    let first = guard.valid_until();
    tokio::time::sleep(TTL * 5).await;
    assert!(!guard.is_lost(), "{:?}", guard.loss_reason());
    assert!(guard.valid_until() > first + TTL * 4);
    // Extended at half the TTL left: about twice per TTL.
    assert!(
        (9..=11).contains(&guard.extensions()),
        "{}",
        guard.extensions()
    );
    assert_eq!(
        fakes.value(1, "redlock:job").as_deref(),
        Some(guard.token().expose())
    );
    let report = guard.release().await.expect("released");
    // The early decision may leave the third master's first call unpolled
    // (an in-memory master only acts when polled), so 2 or 3 held it.
    assert!(report.released() >= 2, "{report}");
    assert_eq!(fakes.live_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn stuck_extension_cannot_delay_the_loss_past_validity() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let guard = locks.try_acquire("stuck").await.expect("free");
    // A majority never answers: the extension call hangs forever.
    fakes.set_fault(&[1, 2], Fault::Hang);
    let valid_until = guard.valid_until();
    let reason = guard.lost().await;
    let fired = now();
    assert!(
        fired <= valid_until,
        "fired {:?} after validity",
        fired - valid_until
    );
    assert!(
        valid_until - fired <= Duration::from_millis(2),
        "fired {:?} early",
        valid_until - fired
    );
    assert!(matches!(reason, LossReason::Lapsed { .. }), "{reason}");
    assert_eq!(guard.valid_until(), valid_until, "no extension was counted");
    drop(guard);
    settle().await;
    // The one healthy master's key is removed; the hung ones expire.
    assert_eq!(fakes.value(0, "redlock:stuck"), None);
}

#[tokio::test(start_paused = true)]
async fn majority_saying_not_ours_is_a_loss_at_the_next_extension() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let guard = locks.try_acquire("taken").await.expect("free");
    let valid_until = guard.valid_until();
    let t0 = now();
    fakes.overwrite(&[0, 1], "redlock:taken", Some("another-owner"));
    let reason = guard.lost().await;
    let fired = now();
    match &reason {
        LossReason::Refused { votes } => assert!(votes.held_elsewhere() >= 2, "{votes}"),
        other => panic!("unexpected {other}"),
    }
    // At the scheduled extension (half the TTL), well before validity ends.
    assert!(
        fired - t0 <= TTL / 2 + Duration::from_millis(5),
        "{:?}",
        fired - t0
    );
    assert!(fired < valid_until);
    assert!(!guard.is_valid());
    drop(guard);
    settle().await;
    // Our release never deletes the other owner's keys; ours on master 2 goes.
    assert_eq!(
        fakes.value(0, "redlock:taken").as_deref(),
        Some("another-owner")
    );
    assert_eq!(
        fakes.value(1, "redlock:taken").as_deref(),
        Some("another-owner")
    );
    assert_eq!(fakes.value(2, "redlock:taken"), None);
}

#[tokio::test(start_paused = true)]
async fn caps_stop_extensions_and_say_so() {
    let (locks, _fakes) = setup(ExtendPolicy::new().max_extensions(2));
    let guard = locks.try_acquire("capped").await.expect("free");
    let reason = guard.lost().await;
    assert!(
        matches!(
            reason,
            LossReason::CapReached {
                cap: Cap::Extensions(2)
            }
        ),
        "{reason}"
    );
    assert_eq!(guard.extensions(), 2);
    assert!(now() <= guard.valid_until());

    let opts =
        LockOptions::once().extend(ExtendPolicy::new().max_hold(Duration::from_millis(1200)));
    let t0 = now();
    let guard = locks.acquire_with("held-long", &opts).await.expect("free");
    let reason = guard.lost().await;
    assert!(
        matches!(
            reason,
            LossReason::CapReached {
                cap: Cap::HoldTime(_)
            }
        ),
        "{reason}"
    );
    // Held at most max_hold plus one TTL.
    assert!(
        now() - t0 <= Duration::from_millis(1200) + TTL,
        "{:?}",
        now() - t0
    );
    assert!(now() - t0 >= Duration::from_millis(1200));
}

#[tokio::test(start_paused = true)]
async fn without_auto_extension_the_loss_fires_at_validity() {
    let (locks, _fakes) = setup(ExtendPolicy::disabled());
    let guard = locks.try_acquire("short").await.expect("free");
    let valid_until = guard.valid_until();
    let reason = guard.lost().await;
    assert!(
        matches!(
            reason,
            LossReason::Lapsed {
                attempts: 0,
                last_error: None
            }
        ),
        "{reason}"
    );
    assert!(now() <= valid_until && valid_until - now() <= Duration::from_millis(2));
    assert_eq!(guard.extensions(), 0);
}

/// Hole: on Linux `Instant` does not count time the machine was suspended,
/// so after a suspend the loss timer (on tokio's clock) trusted a lock
/// whose keys had expired meanwhile. The runtime's clock counts it, and the
/// watchdog re-reads it at least every second: the loss fires within about
/// a second of the resume, not a TTL later.
#[tokio::test(start_paused = true)]
async fn a_suspend_longer_than_the_validity_is_a_loss_soon_after_resume() {
    let (locks, _fakes) = setup(ExtendPolicy::disabled());
    let opts = LockOptions::once().ttl(Duration::from_secs(60));
    let guard = locks.acquire_with("suspended", &opts).await.expect("free");
    settle().await;
    assert!(!guard.is_lost());
    // The machine sleeps for two minutes; tokio's timers do not see it.
    suspend(Duration::from_secs(120));
    let reason = tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("the loss must fire within a watchdog step of the resume");
    assert!(matches!(reason, LossReason::Lapsed { .. }), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_guard_releases_in_the_background_even_off_runtime() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let guard = locks.try_acquire("dropped").await.expect("free");
    let status = guard.status();
    assert_eq!(locks.held_count(), 1);
    // Dropped on a thread with no tokio runtime: must not panic.
    std::thread::spawn(move || drop(guard))
        .join()
        .expect("drop on a plain thread");
    assert!(matches!(status.lost().await, LossReason::Released));
    settle().await;
    assert_eq!(fakes.live_keys(), 0);
    assert_eq!(locks.held_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancelled_acquire_leaves_no_key() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    fakes.set_fault(&[1, 2], Fault::Hang);
    // Boxed so that `drop` below really drops the future (a `pin!`ned one
    // would live to the end of the scope).
    let mut acquire = Box::pin(locks.try_acquire("abandoned"));
    let pending = tokio::time::timeout(Duration::from_millis(50), &mut acquire).await;
    assert!(pending.is_err(), "the acquisition cannot finish");
    // Mid-flight: master 0 already holds our token.
    assert!(fakes.value(0, "redlock:abandoned").is_some());
    drop(acquire);
    settle().await;
    assert_eq!(
        fakes.value(0, "redlock:abandoned"),
        None,
        "a cancelled acquisition leaked a key"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_everything_and_refuses_new_locks() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let a = locks.try_acquire("a").await.expect("free");
    let b = locks.try_acquire("b").await.expect("free");
    let c = locks.try_acquire(["c", "d"]).await.expect("free");
    // 4 keys on at least 2 of 3 masters each (early decision).
    assert!(fakes.live_keys() >= 8);
    let report = locks.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.held(), report.released()), (3, 3), "{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(fakes.live_keys(), 0);
    for g in [&a, &b, &c] {
        assert!(matches!(g.loss_reason(), Some(LossReason::Shutdown)));
    }
    assert!(matches!(
        locks.try_acquire("e").await,
        Err(AcquireError::ShutDown)
    ));
    // Guards outliving the shutdown are inert.
    let report = a.release().await.expect("nothing to do");
    assert_eq!(report.released(), 0);
    drop((b, c));
}

#[tokio::test(start_paused = true)]
async fn with_lock_cancels_the_work_on_loss() {
    let (locks, fakes) = setup(ExtendPolicy::new());
    let dropped = Arc::new(AtomicBool::new(false));
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = OnDrop(Arc::clone(&dropped));
    let stores = fakes.0.clone();
    let result = locks
        .with_lock("scoped", |status| async move {
            let _flag = flag;
            // Someone deletes our keys on every master.
            for m in &stores {
                m.restart_empty();
            }
            assert!(
                status.is_valid(),
                "validity is local until the next extension"
            );
            std::future::pending::<()>().await;
        })
        .await;
    match result {
        Err(WithLockError::Lost(LossReason::Refused { .. })) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(dropped.load(Ordering::SeqCst), "the work was not cancelled");
    let out = locks
        .with_lock("scoped", |_| async { 7 })
        .await
        .expect("free again");
    assert_eq!(out, 7);
    settle().await;
    assert_eq!(fakes.live_keys(), 0);
}

/// An in-memory master that announces its holders' releases, as a fred
/// master built with `wake_on_release` does: one broadcast per master.
/// Its subscriptions take `subscribing` to be in place.
struct Announcing {
    inner: MemMaster,
    releases: tokio::sync::broadcast::Sender<()>,
    subscribing: Duration,
}

impl redlock_core::Master for Announcing {
    fn address(&self) -> &Arc<str> {
        self.inner.address()
    }

    async fn acquire(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
        ttl: redlock_core::Ttl,
    ) -> Result<(), redlock_core::MasterFailure> {
        self.inner.acquire(keys, token, ttl).await
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
        ttl: redlock_core::Ttl,
        recreate: bool,
    ) -> Result<(), redlock_core::MasterFailure> {
        self.inner.extend(keys, token, ttl, recreate).await
    }

    async fn release(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
    ) -> Result<(), redlock_core::MasterFailure> {
        self.inner.release(keys, token).await
    }

    async fn release_announced(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
    ) -> Result<(), redlock_core::MasterFailure> {
        let released = self.inner.release(keys, token).await;
        let _ = self.releases.send(());
        released
    }

    async fn watch_releases(&self, _keys: &[String]) -> Option<redlock_core::ReleaseWatch> {
        use futures::StreamExt;
        tokio::time::sleep(self.subscribing).await;
        let rx = self.releases.subscribe();
        Some(
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.ok().map(|()| ((), rx))
            })
            .boxed(),
        )
    }
}

/// A waiter's task: the lock, or why not.
type Waiter = tokio::task::JoinHandle<Result<redlock_core::Lock, redlock_core::AcquireError>>;

/// Three announcing masters, and a waiter for `job` whose retry policy
/// allows one retry after a delay of half an hour to an hour.
fn announcing_waiter(subscribing: Duration) -> (Arc<Redlock<Announcing, VirtualClock>>, Waiter) {
    let masters: Vec<Announcing> = MemMaster::group(3, now)
        .into_iter()
        .map(|inner| Announcing {
            inner,
            releases: tokio::sync::broadcast::channel(8).0,
            subscribing,
        })
        .collect();
    let settings = Settings::builder()
        .ttl(Duration::from_secs(60))
        .build(3)
        .expect("settings");
    let core = Arc::new(
        Redlock::with_masters(masters, settings, VirtualClock(AtomicU64::new(1))).expect("core"),
    );
    let waiter = {
        let core = Arc::clone(&core);
        tokio::spawn(async move {
            // Let the test take the lock first.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let hour = Duration::from_secs(3600);
            let opts = redlock_core::AcquireOptions::new()
                .retry(crate::RetryPolicy::new(1, hour, hour))
                .wait(None);
            let resources = redlock_core::ResourceSet::try_from("job").expect("name");
            let token = core.settings().new_token(core.runtime());
            core.acquire_with(&resources, &opts, token).await
        })
    };
    (core, waiter)
}

/// A waiter sleeping out an hour-long retry delay is woken by the
/// holder's release (announced by every master), in virtual time long
/// before the hour, and the retries the announcements caused do not use
/// up its budget of one retry.
#[tokio::test(start_paused = true)]
async fn release_announcements_wake_a_waiter_without_spending_its_retries() {
    assert_the_release_frees_the_waiter(Duration::ZERO, Duration::from_secs(10)).await;
}

/// A subscription slower than the per-master timeout (a loaded machine, a
/// subscriber connection still coming up) is not given up: it goes on
/// while the waiter sleeps, and the release after it wakes the waiter.
/// Before, the waiter dropped it at the timeout and slept out its hour.
#[tokio::test(start_paused = true)]
async fn a_subscription_slower_than_the_master_timeout_still_wakes_the_waiter() {
    let subscribing = Duration::from_secs(5);
    assert!(
        Settings::builder()
            .build(3)
            .expect("defaults")
            .master_timeout()
            < subscribing
    );
    // The waiter asks after a second: its subscriptions land at six.
    assert_the_release_frees_the_waiter(subscribing, Duration::from_secs(10)).await;
}

/// A release while the subscriptions are still under way is announced to
/// nobody; the waiter retries once they are in place, as it does after
/// the first refusal, instead of sleeping out its delay (which it did while
/// a late subscription only made it listen).
#[tokio::test(start_paused = true)]
async fn a_release_before_a_late_subscription_is_caught_when_it_lands() {
    assert_the_release_frees_the_waiter(Duration::from_secs(5), Duration::from_secs(3)).await;
}

/// Takes `job` before the waiter of `announcing_waiter(subscribing)` asks,
/// releases it `release_after` later, and checks that the waiter got the
/// lock long before its delay ran out (the policy's shortest is half its
/// hour), with its one retry still unspent.
async fn assert_the_release_frees_the_waiter(subscribing: Duration, release_after: Duration) {
    let (core, waiter) = announcing_waiter(subscribing);
    let held = core.try_acquire("job").await.expect("free");
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(release_after).await;
    core.release(held).await.expect("release");
    let lock = waiter
        .await
        .expect("waiter task")
        .expect("the announcements woke the waiter; its one retry is unspent");
    assert!(
        t0.elapsed() < Duration::from_secs(1800),
        "woken, not slept out: {:?}",
        t0.elapsed()
    );
    assert!(lock.votes().granted() >= 2);
    core.release(lock).await.expect("release");
}

/// One master's announcement is not a release: the keys may still be held
/// on the others. The waiter sleeps its delay out.
#[tokio::test(start_paused = true)]
async fn a_minority_of_announcements_does_not_wake_a_waiter() {
    let (core, waiter) = announcing_waiter(Duration::ZERO);
    let held = core.try_acquire("job").await.expect("free");
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    for m in core.masters() {
        // Plain releases, which announce nothing (a master the quorum
        // decided without may not hold the key: `NotHeld` there).
        let _ = redlock_core::Master::release(m, held.keys(), held.token()).await;
    }
    let _ = core.masters()[0].releases.send(());
    let lock = waiter
        .await
        .expect("waiter task")
        .expect("the lock, after the delay");
    assert!(
        t0.elapsed() >= Duration::from_secs(1800),
        "one announcement of three woke the waiter after {:?}",
        t0.elapsed()
    );
    core.release(lock).await.expect("release");
}

/// When an in-memory master of [`Leaving`] answers a release.
#[derive(Clone, Copy)]
enum Reply {
    /// At the first poll, which applies it.
    AtOnce,
    /// At the next poll.
    Soon,
    /// Never: a master slower than the caller wants to wait.
    Never,
}

/// An in-memory master whose release is applied at its first poll, as a
/// caller-written connection writes it then, and answered as `reply`
/// says; `sends` says whether it reports that dropped releases still
/// reach it ([`redlock_core::Master::sends_dropped_releases`]).
struct Leaving {
    inner: MemMaster,
    reply: Reply,
    sends: bool,
    applied: Arc<AtomicU64>,
}

impl redlock_core::Master for Leaving {
    fn address(&self) -> &Arc<str> {
        self.inner.address()
    }

    async fn acquire(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
        ttl: redlock_core::Ttl,
    ) -> Result<(), redlock_core::MasterFailure> {
        self.inner.acquire(keys, token, ttl).await
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
        ttl: redlock_core::Ttl,
        recreate: bool,
    ) -> Result<(), redlock_core::MasterFailure> {
        self.inner.extend(keys, token, ttl, recreate).await
    }

    async fn release(
        &self,
        keys: &[String],
        token: &redlock_core::Token,
    ) -> Result<(), redlock_core::MasterFailure> {
        let outcome = self.inner.release(keys, token).await;
        self.applied.fetch_add(1, Ordering::SeqCst);
        match self.reply {
            Reply::AtOnce => {}
            Reply::Soon => tokio::task::yield_now().await,
            Reply::Never => std::future::pending().await,
        }
        outcome
    }

    fn sends_dropped_releases(&self) -> bool {
        self.sends
    }
}

/// [`VirtualClock`], counting the tasks the core spawns.
struct Counting {
    clock: VirtualClock,
    spawns: Arc<AtomicU64>,
}

impl Runtime for Counting {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep(&self, d: Duration) -> impl std::future::Future<Output = ()> + Send {
        self.clock.sleep(d)
    }

    fn random_u64(&self) -> u64 {
        self.clock.random_u64()
    }

    fn fill_secret(&self, dest: &mut [u8]) {
        self.clock.fill_secret(dest);
    }

    fn holder(&self, label: Option<&str>) -> redlock_core::Holder {
        self.clock.holder(label)
    }

    fn spawn(&self, task: futures::future::BoxFuture<'static, ()>) {
        self.spawns.fetch_add(1, Ordering::SeqCst);
        self.clock.spawn(task);
    }
}

/// Five [`Leaving`] masters, the first three answering releases as
/// `reply` says and the last two never; a lock taken on all five and
/// released (decided by the first three). Returns how many releases were
/// applied when the release returned, and how many tasks it spawned.
async fn release_past_two_silent_masters(reply: Reply, sends: bool) -> (u64, u64) {
    let applied = Arc::new(AtomicU64::new(0));
    let spawns = Arc::new(AtomicU64::new(0));
    let masters: Vec<Leaving> = MemMaster::group(5, now)
        .into_iter()
        .enumerate()
        .map(|(i, inner)| Leaving {
            inner,
            reply: if i < 3 { reply } else { Reply::Never },
            sends,
            applied: Arc::clone(&applied),
        })
        .collect();
    let settings = Settings::builder().ttl(TTL).build(5).expect("settings");
    let runtime = Counting {
        clock: VirtualClock(AtomicU64::new(1)),
        spawns: Arc::clone(&spawns),
    };
    let core = Redlock::with_masters(masters, settings, runtime).expect("core");
    let lock = core.try_acquire("job").await.expect("free");
    let report = core.release(lock).await.expect("decided by three");
    assert_eq!(report.pending(), 2, "{report}");
    (
        applied.load(Ordering::SeqCst),
        spawns.load(Ordering::SeqCst),
    )
}

/// A release decided while the two slowest masters' releases were
/// already sent, on masters that send a dropped release by themselves,
/// leaves those to them: no task. Masters that do not say so get one.
#[tokio::test(start_paused = true)]
async fn sent_releases_left_to_masters_that_send_them_cost_no_task() {
    let (applied, spawns) = release_past_two_silent_masters(Reply::Soon, true).await;
    assert_eq!((applied, spawns), (5, 0));
    let (applied, spawns) = release_past_two_silent_masters(Reply::Soon, false).await;
    assert_eq!((applied, spawns), (5, 1));
}

/// A release whose first three masters answer within the poll that sends
/// them their command is decided by them at once; the two slowest
/// masters' releases are still sent before it returns, since every
/// master's future is polled before any answer counts. (Before, they were
/// handed to a task unpolled, and before that, dropped unsent.) Left to
/// masters that send dropped releases, they then need no task.
#[tokio::test(start_paused = true)]
async fn releases_answered_at_once_still_reach_every_master_before_the_decision() {
    let (applied, spawns) = release_past_two_silent_masters(Reply::AtOnce, true).await;
    assert_eq!((applied, spawns), (5, 0), "a release was not sent");
    let (applied, spawns) = release_past_two_silent_masters(Reply::AtOnce, false).await;
    assert_eq!((applied, spawns), (5, 1), "a release was not sent");
}
