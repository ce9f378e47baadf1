//! The two Redis clients (`Client::Fred`, `Client::RedisRs`) on the same
//! masters: they store the same keys and tokens, so a lock held through
//! one refuses the other; and each client's reconnection reaches the
//! admission rules, so a restarted master's vote counts only after it
//! said again who it is. The rest of the suite runs over either client
//! (`REDLOCK_TEST_CLIENT`, see `scripts/test.sh`).

use std::time::{Duration, Instant};

use redlock_core::{Redlock, VoteOutcome};
use redlock_testing::Masters;
use redlock_tests::fresh_builder;
use redlock_tokio::{Client, RedisMaster, TokioRuntime};

type Manager = Redlock<RedisMaster, TokioRuntime>;

const BOTH: [Client; 2] = [Client::Fred, Client::RedisRs];

async fn manager(masters: &Masters, client: Client) -> Manager {
    fresh_builder(masters.urls())
        .client(client)
        .connect_core()
        .await
        .unwrap_or_else(|e| panic!("connect through {}: {e}", client.name()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_through_one_client_refuses_the_other() {
    let masters = Masters::start(3);
    let fred = manager(&masters, Client::Fred).await;
    let redis_rs = manager(&masters, Client::RedisRs).await;
    for (holder, other, names) in [
        (&fred, &redis_rs, "fred holds, redis-rs asks"),
        (&redis_rs, &fred, "redis-rs holds, fred asks"),
    ] {
        let lock = holder.try_acquire("shared").await.expect(names);
        let err = other
            .try_acquire("shared")
            .await
            .expect_err("held through the other client");
        assert!(err.is_contended(), "{names}: {err}");
        holder.release(lock).await.expect(names);
    }
    assert!(
        redlock_tests::keys_left(&masters, "redlock:*")
            .await
            .is_empty(),
        "a key was left behind"
    );
}

/// A master restarted under a connected manager: the client reconnects,
/// and its first vote after that is preceded by `INFO` on the new server
/// (the identity check the restart guard and the duplicate check rely
/// on). A client whose reconnection the gate did not see would vote
/// without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_votes_only_after_its_identity_is_checked_again() {
    for client in BOTH {
        let mut masters = Masters::start(3);
        let rl = manager(&masters, client).await;
        let lock = rl.try_acquire("restart").await.expect("free");
        rl.release(lock).await.expect("release");

        masters.get_mut(0).restart();
        // A fresh process: the harness's own `INFO` is not counted yet.
        let before = masters[0].calls("info");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lock = rl.try_acquire("restart").await.expect("a quorum is up");
            let voted = lock.votes().get(0).map(|v| &v.outcome) == Some(&VoteOutcome::Granted);
            rl.release(lock).await.expect("release");
            if voted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the restarted master never voted again",
                client.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // `before`'s own INFO is one; the link's identity check the other.
        let after = masters[0].calls("info");
        assert!(
            after >= before + 2,
            "{}: the restarted master voted without INFO ({before} then {after})",
            client.name()
        );
    }
}
