//! Waking waiters on release (`LockManagerBuilder::wake_on_release`)
//! against real `redis-server` masters: a release in one manager wakes a
//! waiter of another (two managers stand for two processes) long before
//! its retry delay runs out; the waiter's subscriptions are gone once it
//! is done; uncontended acquisitions never subscribe; a subscription that
//! cannot land at once lands later.
//!
//! The waiter's retry delay is an hour and the bound on its wake-up a
//! minute: the bound only tells "woken" from "slept it out", it measures
//! no speed. An announcement is a hint that is not repeated: a woken
//! waiter whose next attempt fails for lack of answers sleeps its delay
//! out. So the per-master timeout here is a second, far above what a
//! loaded machine adds to a loopback round trip, rather than the 50 ms
//! default.

use std::time::Duration;

use redlock_testing::Masters;
use redlock_tests::eventually;
use redlock_tokio::{LockManager, LockOptions, RetryPolicy};

async fn manager(masters: &Masters, wake: bool) -> LockManager {
    redlock_tests::builder(masters.urls())
        .settings(|s| {
            s.danger_disable_restart_guard(true)
                .master_timeout(Duration::from_secs(1))
        })
        .wake_on_release(wake)
        .connect()
        .await
        .expect("connect to harness masters")
}

/// How many subscribers each master counts on `channel`.
fn subscribers(masters: &Masters, channel: &str) -> Vec<i64> {
    (0..masters.len())
        .map(|i| subscribers_on(masters, i, channel))
        .collect()
}

/// How many subscribers master `i` counts on `channel`.
fn subscribers_on(masters: &Masters, i: usize, channel: &str) -> i64 {
    let reply = masters
        .get(i)
        .cmd(&["PUBSUB", "NUMSUB", channel])
        .expect("PUBSUB NUMSUB");
    reply
        .as_array()
        .and_then(|a| a.get(1))
        .and_then(|n| n.as_int())
        .expect("a count")
}

/// A waiter for `job` whose retry delay is an hour: without an
/// announcement it would sleep that long after its retry. Gives its
/// manager back once it got the lock and released it.
fn wait_for_job(waiter_side: LockManager) -> tokio::task::JoinHandle<LockManager> {
    tokio::spawn(async move {
        let opts = LockOptions::new()
            .retry(RetryPolicy::unbounded(
                Duration::from_secs(3600),
                Duration::from_secs(3600),
            ))
            .wait(None);
        let guard = waiter_side
            .acquire_with("job", &opts)
            .await
            .expect("the lock, once released");
        guard.release().await.expect("release");
        waiter_side
    })
}

/// Waits (up to 30 s) until every master counts `n` subscribers on the
/// channel of `job`.
async fn subscribed_everywhere(masters: &Masters, n: i64) -> bool {
    eventually(Duration::from_secs(30), || {
        subscribers(masters, "redlock:job").iter().all(|&k| k == n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_a_waiter_of_another_manager() {
    let masters = Masters::start(3);
    let holder_side = manager(&masters, true).await;
    let waiter_side = manager(&masters, true).await;
    let held = holder_side.try_acquire("job").await.expect("free");

    let waiter = wait_for_job(waiter_side);
    assert!(
        subscribed_everywhere(&masters, 1).await,
        "the waiter subscribes on every master after its first refusal: {:?}",
        subscribers(&masters, "redlock:job")
    );
    held.release().await.expect("release");

    let waiter_side = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the release woke the waiter: it did not sleep out its hour")
        .expect("waiter task");
    for m in masters.iter() {
        assert!(
            m.calls("subscribe") > 0,
            "the waiter subscribed on {}",
            m.url()
        );
    }
    // Done waiting: its subscriptions are gone, and so are the keys.
    assert!(
        subscribed_everywhere(&masters, 0).await,
        "the last watcher unsubscribes: {:?}",
        subscribers(&masters, "redlock:job")
    );
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
    waiter_side.shutdown(Duration::from_secs(5)).await;
    holder_side.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncontended_acquisitions_never_subscribe() {
    let masters = Masters::start(3);
    let locks = manager(&masters, true).await;
    for i in 0..20 {
        let guard = locks
            .acquire(format!("free-{i}"))
            .await
            .expect("uncontended");
        guard.release().await.expect("release");
    }
    for m in masters.iter() {
        let n = m.calls("subscribe");
        assert_eq!(n, 0, "no SUBSCRIBE ever reached {}", m.url());
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
    locks.shutdown(Duration::from_secs(5)).await;
}

/// A master that is down when the manager starts still announces to it
/// once it is back: the subscriber connection keeps trying from its first
/// attempt (a fail-fast client would try once and never again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_down_at_start_carries_subscriptions_once_back() {
    let mut masters = Masters::start(3);
    masters.get_mut(0).kill();
    let holder_side = manager(&masters, true).await;
    let waiter_side = manager(&masters, true).await;
    masters.get_mut(0).restart();
    // The links reconnect in the background; wait until the restarted
    // master takes part again (its key is set by the holder's acquire).
    let held = loop {
        let lock = holder_side
            .try_acquire("job")
            .await
            .expect("a quorum is up");
        if masters.get(0).get("redlock:job").is_some() {
            break lock;
        }
        lock.release().await.expect("release");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let waiter = wait_for_job(waiter_side);
    assert!(
        subscribed_everywhere(&masters, 1).await,
        "the waiter subscribes on every master, the restarted one included: {:?}",
        subscribers(&masters, "redlock:job")
    );
    held.release().await.expect("release");
    let waiter_side = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the release woke the waiter")
        .expect("waiter task");
    waiter_side.shutdown(Duration::from_secs(5)).await;
    holder_side.shutdown(Duration::from_secs(5)).await;
}

/// A master that is down while the waiter subscribes gets the subscription
/// once it is back (the reconnection subscribes what is still watched),
/// and the waiter keeps the subscriptions that did land meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_to_a_master_down_at_the_time_lands_once_it_is_back() {
    let mut masters = Masters::start(3);
    let holder_side = manager(&masters, true).await;
    let waiter_side = manager(&masters, true).await;
    // The lock must rest on masters 1 and 2, which stay up: an acquire
    // decided early may leave one of them without our key (its vote lands
    // later, or times out), and with the restart guard off, master 0 back
    // empty would then let the waiter in while we hold it. Seen in this
    // test: the waiter took the lock.
    let held = loop {
        let lock = holder_side.try_acquire("job").await.expect("free");
        let ours =
            |i: usize| masters.get(i).get("redlock:job").as_deref() == Some(lock.token().expose());
        if eventually(Duration::from_secs(1), || ours(1) && ours(2)).await {
            break lock;
        }
        lock.release().await.expect("release");
    };
    masters.get_mut(0).kill();

    let waiter = wait_for_job(waiter_side);
    let on = |masters: &Masters, i: usize| subscribers_on(masters, i, "redlock:job");
    assert!(
        eventually(Duration::from_secs(30), || on(&masters, 1) == 1
            && on(&masters, 2) == 1)
        .await,
        "the waiter subscribes on the masters that are up"
    );
    masters.get_mut(0).restart();
    assert!(
        eventually(Duration::from_secs(30), || on(&masters, 0) == 1).await,
        "the subscription lands on the master once it is back: {:?}",
        subscribers(&masters, "redlock:job")
    );
    assert_eq!(
        subscribers(&masters, "redlock:job"),
        [1, 1, 1],
        "and the others still carry theirs"
    );
    held.release().await.expect("release");
    let waiter_side = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the release woke the waiter")
        .expect("waiter task");
    assert!(
        subscribed_everywhere(&masters, 0).await,
        "the last watcher unsubscribes: {:?}",
        subscribers(&masters, "redlock:job")
    );
    waiter_side.shutdown(Duration::from_secs(5)).await;
    holder_side.shutdown(Duration::from_secs(5)).await;
}
