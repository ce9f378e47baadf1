//! The library's guards against real `redis-server` processes: the restart
//! guard (a master that restarted within the longest TTL grants nothing)
//! and the identity checks.

use std::time::{Duration, Instant};

use redlock_core::{MasterFailure, Redlock, VoteOutcome};
use redlock_testing::Masters;
use redlock_tokio::{RedisMaster, TokioRuntime};

type Manager = Redlock<RedisMaster, TokioRuntime>;

const TTL: Duration = Duration::from_secs(2);

async fn manager(masters: &Masters, guard: bool) -> Manager {
    redlock_tests::builder(masters.urls())
        // The deployment's maximum TTL is the guard's window: short here,
        // so the tests need not wait the default minute.
        .settings(|s| s.ttl(TTL).max_ttl(TTL).danger_disable_restart_guard(!guard))
        .connect_core()
        .await
        .expect("connect")
}

fn is_guarded(outcome: Option<&VoteOutcome>) -> bool {
    matches!(
        outcome,
        Some(VoteOutcome::Failed(MasterFailure::RecentlyRestarted { .. }))
    )
}

#[tokio::test]
async fn restart_guard_holds_back_masters_younger_than_the_ttl() {
    let masters = Masters::start(3);
    let rl = manager(&masters, true).await;
    // Fresh servers: uptime 0 < TTL, so nobody may grant yet.
    let err = rl
        .try_acquire("young")
        .await
        .expect_err("all masters are younger than the TTL");
    let votes = err.votes().expect("votes");
    // Two guarded refusals already decide; the third may still be pending.
    assert_eq!(votes.granted(), 0, "{votes}");
    assert!(
        votes
            .iter()
            .filter(|v| is_guarded(Some(&v.outcome)))
            .count()
            >= 2,
        "{votes}"
    );
    assert!(
        redlock_tests::keys_left(&masters, "redlock:*")
            .await
            .is_empty(),
        "a guarded master was written to"
    );
    // Once they have been up for a TTL they vote normally.
    tokio::time::sleep(TTL + Duration::from_millis(1100)).await;
    let lock = rl.try_acquire("young").await.expect("old enough now");
    assert_eq!(lock.votes().granted(), 2);
    rl.release(lock).await.expect("release");
}

/// The hole the guard closes, reproduced with real processes.
///
/// A holds the lock on masters 0 and 1 (master 2 refused: a third owner's
/// short-lived key was there). Master 0 then restarts empty at once, and
/// the third owner's key on master 2 expires. B now finds master 0 empty
/// and master 2 free: 2 of 3, a quorum, while A's lock is still valid.
/// With the guard, master 0 refuses to grant until it has been up a TTL.
async fn restart_hole(guard: bool) -> (bool, String) {
    let mut masters = Masters::start(3);
    // Let the masters age past the guard window before A acquires.
    tokio::time::sleep(TTL + Duration::from_millis(1100)).await;
    masters[2]
        .cmd(&["SET", "redlock:hole", "third-owner", "PX", "300"])
        .expect("SET");
    let a = manager(&masters, guard).await;
    let lock_a = a.try_acquire("hole").await.expect("A gets masters 0 and 1");
    // Master 2 refused, or had not answered when 0 and 1 decided (its
    // script then finds the third owner's key and writes nothing).
    assert_ne!(
        lock_a.votes().get(2).map(|v| &v.outcome),
        Some(&VoteOutcome::Granted)
    );
    masters.get_mut(0).kill();
    masters.get_mut(0).restart();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = manager(&masters, guard).await;
    let result = b.try_acquire("hole").await;
    let overlap = match &result {
        Ok(lock_b) => {
            lock_a.is_valid_at(redlock_tokio::now()) && lock_b.is_valid_at(redlock_tokio::now())
        }
        Err(_) => false,
    };
    let report = match &result {
        Ok(lock_b) => lock_b.votes().to_string(),
        Err(e) => e.to_string(),
    };
    if let Ok(lock_b) = result {
        b.release(lock_b).await.ok();
    }
    a.release(lock_a).await.ok();
    (overlap, report)
}

#[tokio::test]
async fn negative_control_immediate_restart_without_guard_gives_two_holders() {
    let (overlap, report) = restart_hole(false).await;
    assert!(overlap, "without the guard the hole should open: {report}");
}

#[tokio::test]
async fn restart_guard_closes_the_immediate_restart_hole() {
    let (overlap, report) = restart_hole(true).await;
    assert!(!overlap, "two holders at once: {report}");
    assert!(report.contains("restart guard"), "{report}");
}

#[tokio::test]
async fn restart_is_noticed_by_a_running_manager() {
    let mut masters = Masters::start(3);
    tokio::time::sleep(TTL + Duration::from_millis(1100)).await;
    let rl = manager(&masters, true).await;
    let lock = rl.try_acquire("noticed").await.expect("old masters grant");
    rl.release(lock).await.expect("release");
    masters.get_mut(1).kill();
    masters.get_mut(1).restart();
    // The client reconnects on its own; the first vote after that is held
    // back by the guard, then master 1 votes again once a TTL has passed.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saw_guard = false;
    loop {
        let lock = rl
            .try_acquire("noticed")
            .await
            .expect("masters 0 and 2 still grant");
        let outcome = lock.votes().get(1).map(|v| v.outcome.clone());
        rl.release(lock).await.ok();
        saw_guard |= is_guarded(outcome.as_ref());
        if saw_guard && outcome == Some(VoteOutcome::Granted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "saw guard: {saw_guard}, last: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn replica_is_rejected_at_build_time() {
    let masters = Masters::start(3);
    let primary = masters[0].port().to_string();
    masters[2]
        .cmd(&["REPLICAOF", "127.0.0.1", &primary])
        .expect("REPLICAOF");
    let err = redlock_tests::builder(masters.urls())
        .connect_core()
        .await
        .expect_err("a replica is not a master");
    assert!(
        matches!(err, redlock_core::ConfigError::NotAMaster { ref role, .. } if role == "slave"),
        "{err}"
    );
}

#[tokio::test]
async fn clock_check_samples_and_judges_healthy_masters_healthy() {
    let masters = Masters::start(3);
    let rl = redlock_tests::fresh_builder(masters.urls())
        .settings(|s| s.check_master_clocks(true))
        .connect_core()
        .await
        .expect("connect");
    let off = redlock_tests::builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    assert!(off.masters().iter().all(|m| m.clock_verdict().is_none()));
    // Keep the masters busy for a while: a sample a second, judged once
    // they span half a second. Same-host clocks run at the same rate.
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        let lock = rl
            .try_acquire("clock")
            .await
            .expect("healthy masters grant");
        assert!(lock.votes().granted() >= 2);
        rl.release(lock).await.expect("release");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for m in rl.masters() {
        match m.clock_verdict() {
            Some(redlock_core::ClockVerdict::Healthy { rate }) => {
                assert!((rate - 1.0).abs() < 0.01, "rate {rate}")
            }
            other => panic!("{}: {other:?}", redlock_core::Master::address(m)),
        }
    }
}
