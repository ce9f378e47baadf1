//! The core crate against real `redis-server` masters started by the harness.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::{
    AcquireError, AcquireOptions, ConfigError, ExtendError, MasterFailure, Redlock, ReleaseError,
    ResourceSet, RetryPolicy, Token, VoteOutcome,
};
use redlock_testing::{Masters, RedisServer, ServerOptions};
use redlock_tests::fresh_builder;
use redlock_tokio::{RedisMaster, TokioRuntime};

type Manager = Redlock<RedisMaster, TokioRuntime>;

async fn manager(masters: &Masters) -> Manager {
    fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect to harness masters")
}

fn our_keys(masters: &Masters) -> Vec<(usize, String)> {
    masters.keys_everywhere("redlock:*")
}

#[tokio::test]
async fn single_master_is_the_same_api() {
    let masters = Masters::start(1);
    let rl = manager(&masters).await;
    let lock = rl.try_acquire("solo").await.expect("free lock");
    assert_eq!(lock.votes().granted(), 1);
    assert_eq!(
        masters[0].get("redlock:solo").as_deref(),
        Some(lock.token().expose())
    );
    let err = rl.try_acquire("solo").await.expect_err("held");
    assert!(err.is_contended(), "{err}");
    let report = rl.release(lock).await.expect("release");
    assert_eq!(report.released(), 1);
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn lock_is_set_on_every_master_with_ttl_and_released_everywhere() {
    let masters = Masters::start(5);
    let rl = manager(&masters).await;
    let lock = rl.try_acquire("orders").await.expect("free lock");
    assert!(lock.is_valid_at(redlock_tokio::now()));
    assert!(lock.remaining_at(redlock_tokio::now()) <= Duration::from_secs(10));
    // All five answer on loopback, but the decision is taken at the third:
    // the other two may still be in flight.
    let token = lock.token().expose();
    let set = redlock_tests::on_every_master(&masters, |m| {
        m.get("redlock:orders").as_deref() == Some(token)
    })
    .await;
    assert!(set, "{:?}", our_keys(&masters));
    for m in masters.iter() {
        let pttl = m.pttl("redlock:orders");
        assert!(pttl > 9_000 && pttl <= 10_000, "pttl {pttl}");
    }
    rl.release(lock).await.expect("release");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn contenders_never_overlap() {
    const TTL: Duration = Duration::from_secs(5);
    let masters = Masters::start(5);
    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(Arc::new(
            fresh_builder(masters.urls())
                .settings(|s| {
                    s.ttl(TTL)
                        .retry(RetryPolicy::unbounded(
                            Duration::from_millis(2),
                            Duration::from_millis(20),
                        ))
                        .wait(Some(Duration::from_secs(60)))
                })
                .connect_core()
                .await
                .expect("connect"),
        ));
    }
    let holders = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let acquired = Arc::new(AtomicUsize::new(0));
    let unconfirmed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..12 {
        let rl = Arc::clone(&managers[worker % managers.len()]);
        let (holders, overlaps, acquired, unconfirmed) = (
            Arc::clone(&holders),
            Arc::clone(&overlaps),
            Arc::clone(&acquired),
            Arc::clone(&unconfirmed),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..8 {
                let lock = rl
                    .acquire("shared")
                    .await
                    .expect("acquire within the deadline");
                assert!(lock.is_valid_at(redlock_tokio::now()));
                if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                acquired.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                // Not what this test is about: on a loaded machine a master
                // can miss the per-master timeout (it failed once at load
                // 8-11). The key there stays until its TTL and keeps the
                // others out meanwhile, which is safe; the overlap count
                // above is the assertion.
                if rl.release(lock).await.is_err() {
                    unconfirmed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker finished");
    }
    assert_eq!(acquired.load(Ordering::SeqCst), 12 * 8);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    if unconfirmed.load(Ordering::SeqCst) == 0 {
        assert!(redlock_tests::keys_left(&masters, "redlock:*")
            .await
            .is_empty());
    } else {
        // Keys left where a release timed out still expire with the TTL
        // (or are deleted once the late release runs).
        let deadline = Instant::now() + TTL + Duration::from_secs(5);
        while !our_keys(&masters).is_empty() {
            assert!(
                Instant::now() < deadline,
                "keys outlived their TTL: {:?}",
                our_keys(&masters)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn acquire_succeeds_with_two_of_five_down() {
    let mut masters = Masters::start(5);
    let rl = manager(&masters).await;
    masters.get_mut(1).kill();
    masters.get_mut(3).kill();
    let lock = rl
        .try_acquire("two-down")
        .await
        .expect("3 of 5 still grant");
    assert_eq!(lock.votes().granted(), 3);
    // Released at quorum: the three live masters confirm, the two dead ones
    // cannot (failed, or still trying when the release was decided).
    let report = rl.release(lock).await.expect("a quorum confirms");
    assert_eq!(report.released(), 3, "{report}");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
    // Waiting for every master reports the two that cannot confirm.
    let lock = rl
        .try_acquire("two-down")
        .await
        .expect("3 of 5 still grant");
    let err = rl
        .release_all(lock)
        .await
        .expect_err("two masters cannot confirm the release");
    assert!(
        matches!(err, ReleaseError::Incomplete { ref report } if report.failed() == 2),
        "{err}"
    );
}

#[tokio::test]
async fn paused_minority_master_does_not_delay_the_answer() {
    let masters = Masters::start(5);
    // A long per-master timeout: if the answer waited for the paused master
    // it would take 20 s. The vote report shows it was not waited for.
    let rl = fresh_builder(masters.urls())
        .settings(|s| {
            s.ttl(Duration::from_secs(60))
                .master_timeout(Duration::from_secs(20))
        })
        .connect_core()
        .await
        .expect("connect");
    masters[2].pause();
    let t0 = Instant::now();
    let lock = rl.try_acquire("paused").await.expect("4 of 5 answer");
    let took = t0.elapsed();
    masters[2].resume();
    assert_eq!(
        lock.votes().get(2).map(|v| &v.outcome),
        Some(&VoteOutcome::Pending)
    );
    assert!(
        took < Duration::from_secs(10),
        "waited {took:?} for a paused master"
    );
    rl.release(lock)
        .await
        .expect("all five confirm once resumed");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn acquire_fails_cleanly_with_three_of_five_down() {
    let mut masters = Masters::start(5);
    let rl = manager(&masters).await;
    for i in [0, 2, 4] {
        masters.get_mut(i).kill();
    }
    let err = rl.try_acquire("three-down").await.expect_err("no quorum");
    let votes = err.votes().expect("a vote was taken");
    assert!(votes.granted() <= 2);
    assert!(!err.is_contended(), "{err}");
    for i in [0, 2, 4] {
        assert!(matches!(
            &votes.get(i).map(|v| &v.outcome),
            Some(VoteOutcome::Failed(MasterFailure::Unreachable(_))) | Some(VoteOutcome::Pending)
        ));
    }
    // The cleanup is queued, not awaited by the refusal: wait for it.
    rl.background_idle().await;
    assert!(
        redlock_tests::keys_left(&masters, "redlock:*")
            .await
            .is_empty(),
        "keys left on live masters"
    );
}

#[tokio::test]
async fn per_master_timeout_bounds_a_paused_single_master() {
    // N = 1: the paused master decides, so the call must end by fred's own
    // per-command timeout (a regression to fred's default would hang here).
    let masters = Masters::start(1);
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.master_timeout(Duration::from_millis(200)))
        .connect_core()
        .await
        .expect("connect");
    masters[0].pause();
    let result = tokio::time::timeout(Duration::from_secs(30), rl.try_acquire("stuck")).await;
    masters[0].resume();
    let err = result
        .expect("per-master timeout must end the call")
        .expect_err("paused master cannot grant");
    let votes = err.votes().expect("votes");
    assert_eq!(
        votes.get(0).map(|v| &v.outcome),
        Some(&VoteOutcome::Failed(MasterFailure::TimedOut))
    );
}

#[tokio::test]
async fn timed_out_set_landing_after_resume_is_cleaned_up() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| {
            s.ttl(Duration::from_secs(60))
                .master_timeout(Duration::from_millis(200))
        })
        .connect_core()
        .await
        .expect("connect");
    // Another owner holds the resource on masters 1 and 2.
    for i in [1, 2] {
        masters[i]
            .cmd(&["SET", "redlock:late", "someone-else", "PX", "60000"])
            .expect("SET");
    }
    masters[0].pause();
    let err = rl.try_acquire("late").await.expect_err("held on 2 of 3");
    assert!(err.is_contended());
    // Our SET and then our release are queued on the paused master, in order.
    masters[0].resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    while masters[0].cmd(&["DBSIZE"]).ok().and_then(|r| r.as_int()) != Some(0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        masters[0].get("redlock:late"),
        None,
        "the late SET outlived our release"
    );
    for i in [1, 2] {
        assert_eq!(
            masters[i].get("redlock:late").as_deref(),
            Some("someone-else")
        );
    }
}

#[tokio::test]
async fn extend_keeps_a_lock_past_its_first_ttl() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.ttl(Duration::from_millis(400)))
        .connect_core()
        .await
        .expect("connect");
    let mut lock = rl.try_acquire("long-job").await.expect("free");
    let first_until = lock.valid_until();
    let end = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rl.extend(&mut lock, None)
            .await
            .expect("extend while valid");
    }
    assert!(lock.valid_until() > first_until + Duration::from_millis(700));
    assert!(lock.is_valid_at(redlock_tokio::now()));
    let err = rl.try_acquire("long-job").await.expect_err("still held");
    assert!(err.is_contended(), "{err}");
    for m in masters.iter() {
        assert_eq!(
            m.get("redlock:long-job").as_deref(),
            Some(lock.token().expose())
        );
    }
    rl.release(lock).await.expect("release");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn extend_after_expiry_fails() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.ttl(Duration::from_millis(150)))
        .connect_core()
        .await
        .expect("connect");
    let mut lock = rl.try_acquire("short").await.expect("free");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!lock.is_valid_at(redlock_tokio::now()));
    let err = rl.extend(&mut lock, None).await.expect_err("expired");
    assert!(matches!(err, ExtendError::Expired { .. }), "{err}");
    // The keys expired on the masters too: nothing to leak.
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn extend_refused_once_another_owner_took_over() {
    let masters = Masters::start(3);
    let rl = manager(&masters).await;
    let mut lock = rl.try_acquire("taken").await.expect("free");
    // Simulate the keys expiring and someone else acquiring them.
    for m in masters.iter() {
        m.cmd(&["SET", "redlock:taken", "other-owner", "PX", "60000"])
            .expect("SET");
    }
    let err = rl
        .extend(&mut lock, None)
        .await
        .expect_err("not ours any more");
    let votes = match &err {
        ExtendError::NoQuorum { votes } => votes,
        other => panic!("unexpected {other}"),
    };
    // Two refusals of three already decide; the third may be pending.
    assert!(votes.held_elsewhere() >= 2, "{votes}");
    // Releasing must not delete the other owner's keys.
    let report = rl.release(lock).await.expect("nothing failed");
    assert_eq!(report.released(), 0);
    for m in masters.iter() {
        assert_eq!(m.get("redlock:taken").as_deref(), Some("other-owner"));
    }
}

#[tokio::test]
async fn release_by_a_non_owner_token_does_not_delete() {
    let masters = Masters::start(3);
    let rl = manager(&masters).await;
    let lock = rl.try_acquire("mine").await.expect("free");
    let resources = ResourceSet::try_from("mine").expect("valid");
    let report = rl
        .release_token(&resources, &Token::random(&TokioRuntime))
        .await
        .expect("no master failed");
    assert_eq!(report.released(), 0);
    // Decided at quorum: at least two said "not held".
    assert!(report.not_held() >= 2, "{report}");
    rl.background_idle().await;
    for m in masters.iter() {
        assert_eq!(
            m.get("redlock:mine").as_deref(),
            Some(lock.token().expose())
        );
    }
    rl.release(lock).await.expect("owner releases");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn multi_resource_is_all_or_none() {
    let masters = Masters::start(3);
    let rl = manager(&masters).await;
    let b = rl.try_acquire("b").await.expect("free");
    let err = rl
        .try_acquire(["a", "b", "c"])
        .await
        .expect_err("b is taken");
    assert!(err.is_contended());
    // Neither a nor c was left behind on any master.
    let keys = our_keys(&masters);
    assert!(keys.iter().all(|(_, k)| k == "redlock:b"), "{keys:?}");
    rl.release(b).await.expect("release b");
    let all = rl
        .try_acquire(["c", "a", "b", "a"])
        .await
        .expect("all free now");
    assert_eq!(all.keys(), ["redlock:a", "redlock:b", "redlock:c"]);
    let set = redlock_tests::on_every_master(&masters, |m| {
        ["redlock:a", "redlock:b", "redlock:c"]
            .iter()
            .all(|k| m.get(k).is_some())
    })
    .await;
    assert!(set, "{:?}", our_keys(&masters));
    assert_eq!(our_keys(&masters).len(), 9);
    rl.release(all).await.expect("release");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn retry_until_deadline_then_succeed_after_release() {
    let masters = Masters::start(3);
    let rl = Arc::new(manager(&masters).await);
    let held = rl.try_acquire("queue").await.expect("free");
    let waiter = {
        let rl = Arc::clone(&rl);
        tokio::spawn(async move {
            let opts = AcquireOptions::new()
                .retry(RetryPolicy::unbounded(
                    Duration::from_millis(10),
                    Duration::from_millis(50),
                ))
                .wait(Some(Duration::from_secs(20)));
            let set = ResourceSet::try_from("queue").expect("valid");
            rl.acquire_with(&set, &opts, Token::random(&TokioRuntime))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    rl.release(held).await.expect("release");
    let lock = waiter
        .await
        .expect("task")
        .expect("waiter gets it after the release");
    rl.release(lock).await.expect("release");

    let held = rl.try_acquire("queue").await.expect("free again");
    let opts = AcquireOptions::new()
        .retry(RetryPolicy::unbounded(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .wait(Some(Duration::from_millis(300)));
    let set = ResourceSet::try_from("queue").expect("valid");
    let err = rl
        .acquire_with(&set, &opts, Token::random(&TokioRuntime))
        .await
        .expect_err("deadline");
    match &err {
        AcquireError::Deadline { attempts, last, .. } => {
            assert!(*attempts > 1);
            assert!(last.is_contended());
        }
        other => panic!("unexpected {other}"),
    }
    rl.release(held).await.expect("release");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn master_restarted_empty_votes_again_and_scripts_reload() {
    let mut masters = Masters::start(3);
    let rl = manager(&masters).await;
    masters.get_mut(0).kill();
    masters.get_mut(0).restart();
    // The restarted master lost its script cache: EVALSHA gets NOSCRIPT and
    // the client falls back to EVAL. The reconnect may take a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lock = rl
            .try_acquire("after-restart")
            .await
            .expect("2 of 3 at least");
        let vote = lock.votes().get(0).map(|v| v.outcome.clone());
        rl.release(lock).await.ok();
        if vote == Some(VoteOutcome::Granted) {
            break;
        }
        // The last outcome says why: still unreachable, not verified, or
        // refused (a key left by an earlier try under the same name).
        assert!(
            Instant::now() < deadline,
            "restarted master never voted again (last: {vote:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    masters[1].cmd(&["SCRIPT", "FLUSH"]).expect("flush");
    // The first call after the flush may decide before master 1's EVAL
    // fallback answers; the scripts are reloaded in the background and
    // master 1 votes again soon after. Two resources: a one-key acquire
    // is a plain `SET` (and a release an `EVAL`), which need no script.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lock = rl
            .try_acquire(["after-flush", "and-another"])
            .await
            .expect("2 of 3 at least");
        let granted_by_1 = lock
            .votes()
            .get(1)
            .map(|v| v.outcome == VoteOutcome::Granted)
            == Some(true);
        rl.release(lock).await.expect("release");
        if granted_by_1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "master 1 never voted after SCRIPT FLUSH"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reload runs in the background (started by the NOSCRIPT answer,
    // which may come after the release was decided by the other masters):
    // wait for it, boundedly.
    let sha = fred_sha(redlock_core::scripts::ACQUIRE);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loaded = masters[1]
            .cmd(&["SCRIPT", "EXISTS", &sha])
            .expect("SCRIPT EXISTS");
        let loaded = loaded
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r.as_int());
        if loaded == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scripts were not reloaded on master 1: SCRIPT EXISTS says {loaded:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

fn fred_sha(body: &str) -> String {
    // Computed by the server itself, independently of our client.
    let probe = RedisServer::start();
    let sha = probe.cmd(&["SCRIPT", "LOAD", body]).expect("SCRIPT LOAD");
    sha.as_str().expect("sha string").to_owned()
}

#[tokio::test]
async fn master_down_at_startup_joins_when_it_comes_up() {
    let mut masters = Masters::start(3);
    masters.get_mut(2).kill();
    let rl = manager(&masters).await;
    let lock = rl.try_acquire("late-joiner").await.expect("2 of 3");
    rl.release(lock).await.ok();
    masters.get_mut(2).restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lock = rl
            .try_acquire("late-joiner")
            .await
            .expect("2 of 3 at least");
        let granted_by_2 = lock
            .votes()
            .get(2)
            .map(|v| v.outcome == VoteOutcome::Granted)
            == Some(true);
        rl.release(lock).await.ok();
        if granted_by_2 {
            break;
        }
        assert!(Instant::now() < deadline, "late master never voted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

/// A paused minority master at start-up does not hold `connect` for the
/// connect timeout: once a quorum is usable the build returns, and the
/// paused master joins in the background once it answers. (Before, every
/// `connect` waited the whole connect timeout for it.)
#[tokio::test]
async fn paused_master_at_startup_does_not_hold_connect() {
    let masters = Masters::start(3);
    masters[2].pause();
    let t0 = Instant::now();
    let rl = fresh_builder(masters.urls())
        .connect_timeout(Duration::from_secs(20))
        .connect_core()
        .await
        .expect("a quorum is usable");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "connect waited {took:?} for a paused minority master"
    );
    masters[2].resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lock = rl.try_acquire("joins").await.expect("2 of 3 at least");
        let granted_by_2 = lock.votes().get(2).map(|v| &v.outcome) == Some(&VoteOutcome::Granted);
        rl.release(lock).await.ok();
        if granted_by_2 {
            break;
        }
        assert!(Instant::now() < deadline, "the paused master never joined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

// ---------------------------------------------------------------- bad input

async fn connect_err(urls: Vec<String>) -> ConfigError {
    fresh_builder(urls)
        .connect_core()
        .await
        .expect_err("must be rejected")
}

#[tokio::test]
async fn zero_masters_rejected() {
    assert!(matches!(connect_err(vec![]).await, ConfigError::NoMasters));
}

#[tokio::test]
async fn malformed_urls_rejected() {
    for url in [
        "not a url",
        "localhost:6379",
        "http://127.0.0.1:1",
        "redis://127.0.0.1:notaport",
        "redis-cluster://127.0.0.1:1",
    ] {
        let err = connect_err(vec![url.to_owned()]).await;
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl { .. } | ConfigError::UnsupportedScheme { .. }
            ),
            "{url}: {err}"
        );
    }
    // This crate builds redlock-core with `tls` (for tests/tls.rs), so a
    // rediss:// URL parses here and is checked like any other. Its refusal
    // without the feature (`TlsNotCompiled`, never plaintext) is the unit
    // test `rediss_refused_without_tls`, which scripts/test.sh runs in a
    // build of redlock-core alone.
    let err = connect_err(vec!["rediss://127.0.0.1:notaport".to_owned()]).await;
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
}

#[tokio::test]
async fn cluster_nodes_and_missing_databases_are_named_not_unreachable() {
    use redlock_testing::{RedisServer, ServerOptions};
    let masters = Masters::start(2);
    let node = RedisServer::start_with(ServerOptions::default().with_arg("cluster-enabled", "yes"));
    let err = connect_err(vec![masters[0].url(), masters[1].url(), node.url()]).await;
    assert!(matches!(err, ConfigError::ClusterNode { .. }), "{err}");
    assert!(err.to_string().contains("cluster"), "{err}");
    let err = connect_err(vec![format!("{}/99", masters[0].url())]).await;
    assert!(
        matches!(err, ConfigError::NoSuchDatabase { db: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn duplicate_masters_rejected_by_address_and_by_identity() {
    let masters = Masters::start(2);
    let p = masters[0].port();
    let err = connect_err(vec![masters[0].url(), masters[1].url(), masters[0].url()]).await;
    assert!(
        matches!(&err, ConfigError::DuplicateMaster { why, .. } if why.contains("address")),
        "{err}"
    );
    // Same server under another name: only the server's run_id tells.
    let err = connect_err(vec![
        format!("redis://127.0.0.1:{p}"),
        masters[1].url(),
        format!("redis://localhost:{p}"),
    ])
    .await;
    assert!(
        matches!(&err, ConfigError::DuplicateMaster { why, .. } if why.contains("run_id")),
        "{err}"
    );
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn invalid_settings_rejected() {
    let masters = Masters::start(4);
    let urls = masters.urls();
    let err = fresh_builder(urls.clone())
        .settings(|s| s.quorum(2))
        .connect_core()
        .await
        .expect_err("2 of 4 is not a majority");
    assert!(
        matches!(
            err,
            ConfigError::InvalidQuorum {
                quorum: 2,
                masters: 4
            }
        ),
        "{err}"
    );
    let err = fresh_builder(urls.clone())
        .settings(|s| s.ttl(Duration::ZERO))
        .connect_core()
        .await
        .expect_err("zero ttl");
    assert!(matches!(err, ConfigError::TtlZero), "{err}");
    let err = fresh_builder(urls.clone())
        .settings(|s| s.ttl(Duration::from_secs(u64::MAX / 1000)))
        .connect_core()
        .await
        .expect_err("huge ttl");
    assert!(matches!(err, ConfigError::TtlTooLarge { .. }), "{err}");
    let err = fresh_builder(urls.clone())
        .settings(|s| s.ttl(Duration::from_millis(100)).drift_factor(0.99))
        .connect_core()
        .await
        .expect_err("drift");
    assert!(matches!(err, ConfigError::DriftConsumesTtl { .. }), "{err}");
    let err = fresh_builder(urls.clone())
        .settings(|s| s.drift_factor(f64::NAN))
        .connect_core()
        .await
        .expect_err("nan");
    assert!(
        matches!(err, ConfigError::InvalidDriftFactor { .. }),
        "{err}"
    );

    // Per-call checks on a good manager.
    let rl = fresh_builder(urls).connect_core().await.expect("connect");
    for bad in [
        "".to_owned(),
        "x".repeat(redlock_core::MAX_RESOURCE_LEN + 1),
    ] {
        let err = rl.try_acquire(bad.as_str()).await.expect_err("bad name");
        assert!(
            matches!(
                err,
                AcquireError::Invalid(
                    ConfigError::EmptyResource | ConfigError::ResourceTooLong { .. }
                )
            ),
            "{err}"
        );
    }
    let set = ResourceSet::try_from("ok").expect("valid");
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_micros(1500),
    ] {
        let err = rl
            .acquire_with(
                &set,
                &AcquireOptions::once().ttl(ttl),
                Token::random(&TokioRuntime),
            )
            .await
            .expect_err("bad ttl");
        assert!(matches!(err, AcquireError::Invalid(_)), "{err}");
    }
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn wrong_password_rejected() {
    let server = RedisServer::start_with(ServerOptions::default().with_password("s3cret"));
    let port = server.port();
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://:wrong@127.0.0.1:{port}"),
    ] {
        let err = connect_err(vec![url.clone()]).await;
        assert!(matches!(err, ConfigError::Auth { .. }), "{url}: {err}");
        assert!(!err.to_string().contains("wrong@"), "{err}");
    }
    let rl = fresh_builder([format!("redis://:s3cret@127.0.0.1:{port}")])
        .connect_core()
        .await
        .expect("right password");
    let lock = rl.try_acquire("authed").await.expect("free");
    rl.release(lock).await.expect("release");
}

#[tokio::test]
async fn wrong_kind_of_key_is_a_failed_vote_not_a_panic() {
    let masters = Masters::start(3);
    let rl = manager(&masters).await;
    masters[0]
        .cmd(&["HSET", "redlock:kind", "f", "v"])
        .expect("HSET");
    // One master of the wrong kind: a failed vote (or not yet answered when
    // the other two decided: it needs two round trips, SET NX then the
    // script), never a grant.
    let lock = rl.try_acquire("kind").await.expect("2 of 3");
    let outcome = lock.votes().get(0).map(|v| v.outcome.clone());
    assert!(
        matches!(&outcome, Some(VoteOutcome::Pending))
            || matches!(&outcome, Some(VoteOutcome::Failed(MasterFailure::Server(m))) if m.contains("WRONGTYPE")),
        "{outcome:?}"
    );
    let err = rl
        .release_all(lock)
        .await
        .expect_err("master 0 cannot confirm");
    assert!(matches!(err, ReleaseError::Incomplete { .. }));
    // All masters of the wrong kind: refused, and nothing of ours is left.
    for i in [1, 2] {
        masters[i]
            .cmd(&["HSET", "redlock:kind", "f", "v"])
            .expect("HSET");
    }
    let err = rl
        .try_acquire("kind")
        .await
        .expect_err("no master can grant");
    let votes = err.votes().expect("votes");
    assert_eq!(votes.granted(), 0);
    // The refusal was decided by WRONGTYPE replies (two of three suffice).
    let wrongtype = votes
        .iter()
        .filter(|v| matches!(&v.outcome, VoteOutcome::Failed(MasterFailure::Server(m)) if m.contains("WRONGTYPE")))
        .count();
    assert!(wrongtype >= 2, "{votes}");
    for m in masters.iter() {
        assert_eq!(
            m.cmd(&["TYPE", "redlock:kind"])
                .ok()
                .and_then(|r| r.as_str().map(str::to_owned))
                .as_deref(),
            Some("hash")
        );
    }
}

#[tokio::test]
async fn too_few_reachable_masters_rejected_at_connect() {
    let mut masters = Masters::start(3);
    masters.get_mut(0).kill();
    masters.get_mut(1).kill();
    let err = fresh_builder(masters.urls())
        .connect_timeout(Duration::from_millis(500))
        .connect_core()
        .await
        .expect_err("1 of 3");
    assert!(
        matches!(
            err,
            ConfigError::Unreachable {
                reachable: 1,
                masters: 3,
                needed: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn extend_never_shortens_a_key() {
    // A shorter TTL must not shorten keys: an extend that then fails or is
    // dropped would leave the lock trusting a validity its keys no longer
    // have (found by the simulation).
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.ttl(Duration::from_secs(10)))
        .connect_core()
        .await
        .expect("connect");
    let mut lock = rl.try_acquire("no-shorten").await.expect("free");
    // Every master holds the key before the shorter extension is sent.
    let set =
        redlock_tests::on_every_master(&masters, |m| m.get("redlock:no-shorten").is_some()).await;
    assert!(set, "{:?}", our_keys(&masters));
    rl.extend(&mut lock, Some(Duration::from_millis(500)))
        .await
        .expect("extend");
    assert!(
        lock.remaining_at(redlock_tokio::now()) <= Duration::from_millis(500),
        "validity follows the asked TTL"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    for m in masters.iter() {
        let pttl = m.pttl("redlock:no-shorten");
        assert!(pttl > 9_000, "key shortened to {pttl} ms");
    }
    // A longer TTL still lengthens them.
    rl.extend(&mut lock, Some(Duration::from_secs(20)))
        .await
        .expect("extend");
    let lengthened =
        redlock_tests::on_every_master(&masters, |m| m.pttl("redlock:no-shorten") > 19_000).await;
    let pttls: Vec<i64> = masters
        .iter()
        .map(|m| m.pttl("redlock:no-shorten"))
        .collect();
    assert!(lengthened, "keys not lengthened: {pttls:?} ms");
    rl.release(lock).await.expect("release");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}
