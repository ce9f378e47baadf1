//! Real servers answering with errors the scripts never expect: each is a
//! failed vote of the right kind, never a panic, never a grant.

use std::time::Duration;

use redlock_core::{MasterFailure, VoteOutcome};
use redlock_testing::Masters;
use redlock_tests::fresh_builder;

fn server_error(outcome: Option<&VoteOutcome>, prefix: &str) -> bool {
    matches!(outcome, Some(VoteOutcome::Failed(MasterFailure::Server(m))) if m.starts_with(prefix))
}

#[tokio::test]
async fn out_of_memory_master_is_a_failed_vote() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    for args in [
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"][..],
        &["CONFIG", "SET", "maxmemory", "1"][..],
    ] {
        assert!(masters[0].cmd(args).expect("CONFIG SET").is_ok());
    }
    // Master 0 refuses every write; the other two can still grant. Try a few
    // times so master 0's refusal is seen before the decision at least once.
    let mut seen = false;
    for _ in 0..20 {
        let lock = rl.try_acquire("oom").await.expect("2 of 3 grant");
        seen |= server_error(lock.votes().get(0).map(|v| &v.outcome), "OOM");
        assert_ne!(
            lock.votes().get(0).map(|v| &v.outcome),
            Some(&VoteOutcome::Granted)
        );
        rl.release(lock).await.ok();
        if seen {
            break;
        }
    }
    assert!(seen, "master 0 never reported OOM");
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn busy_master_is_a_failed_vote() {
    let masters = Masters::start(1);
    assert!(masters[0]
        .cmd(&["CONFIG", "SET", "busy-reply-threshold", "50"])
        .expect("CONFIG SET")
        .is_ok());
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.master_timeout(Duration::from_millis(500)))
        .connect_core()
        .await
        .expect("connect");
    // A script that spins for 1.5 s on the server, from another connection.
    let addr = masters[0].addr();
    let spinner = std::thread::spawn(move || {
        let mut conn =
            redlock_testing::Connection::connect(addr, Duration::from_secs(5)).expect("connect");
        conn.set_timeout(Duration::from_secs(10)).expect("timeout");
        let script = "local t0 = redis.call('TIME') \
                      while true do \
                        local t = redis.call('TIME') \
                        if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 1500000 then return 1 end \
                      end";
        conn.call(&["EVAL", script, "0"]).expect("spin")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = rl
        .try_acquire("busy")
        .await
        .expect_err("a busy master cannot grant");
    let outcome = err
        .votes()
        .and_then(|v| v.get(0))
        .map(|v| v.outcome.clone());
    assert!(server_error(outcome.as_ref(), "BUSY"), "{err}");
    assert_eq!(spinner.join().expect("spinner thread").as_int(), Some(1));
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
}

#[tokio::test]
async fn master_demoted_to_replica_after_connect_is_a_failed_vote() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    let primary = masters[1].port().to_string();
    assert!(masters[0]
        .cmd(&["REPLICAOF", "127.0.0.1", &primary])
        .expect("REPLICAOF")
        .is_ok());
    let mut seen = false;
    for _ in 0..20 {
        let lock = rl
            .try_acquire("demoted")
            .await
            .expect("masters 1 and 2 grant");
        let outcome = lock.votes().get(0).map(|v| v.outcome.clone());
        assert_ne!(outcome, Some(VoteOutcome::Granted), "a replica voted");
        // READONLY from the script, or the role check after a reconnect.
        seen |= server_error(outcome.as_ref(), "READONLY")
            || matches!(
                outcome,
                Some(VoteOutcome::Failed(MasterFailure::Misconfigured(_)))
            );
        rl.release(lock).await.ok();
        if seen {
            break;
        }
    }
    assert!(seen, "the replica's refusal was never seen");
}
