//! Scripted runs: one situation set up step by step on virtual time, where
//! the paused clock makes a timing claim exact (no machine noise), so it
//! can be asserted.

use std::time::Duration;

use redlock_core::{AcquireError, MasterFailure, VoteOutcome};
use redlock_sim::{paused_runtime, Cluster, Scenario};
use tokio::time::Instant;

const RESOURCE: &str = "guarded";

/// Design: "decide as soon as the outcome is known; never wait for the
/// slowest master when the answer is already decided", and the cleanup
/// after a refused attempt is queued, awaited by nobody. Three masters,
/// client 0 holds the lock on two, the third is paused (`SIGSTOP`): client
/// 1's `try_acquire` is refused after one round trip (2 ms), not after the
/// paused master's 40 ms timeout. Its cleanup still reaches the paused
/// master, in the background: waiting for it takes the full timeout, which
/// shows the pause was real.
#[test]
fn decided_refusal_does_not_wait_for_a_paused_master() {
    let scenario = Scenario::scripted();
    let timeout = scenario.master_timeout;
    paused_runtime().block_on(async {
        let cluster = Cluster::new(&scenario, 0, 3, false);
        for c in 0..2 {
            assert_eq!(cluster.setup(c).await, 3, "client {c} verifies all masters");
        }
        cluster.pause(2);
        let held = cluster
            .client(0)
            .try_acquire(RESOURCE)
            .await
            .expect("two of three masters grant");
        assert_eq!(held.votes().granted(), 2);

        let sent = Instant::now();
        let refused = cluster.client(1).try_acquire(RESOURCE).await;
        let took = sent.elapsed();
        let Err(AcquireError::NoQuorum { votes, .. }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        let outcomes: Vec<&VoteOutcome> = votes.iter().map(|v| &v.outcome).collect();
        assert_eq!(
            outcomes,
            [
                &VoteOutcome::Failed(MasterFailure::Held),
                &VoteOutcome::Failed(MasterFailure::Held),
                &VoteOutcome::Pending,
            ],
            "refused by the two holders' masters, the paused one not waited for"
        );
        eprintln!(
            "decided refusal with a paused master: {took:?} (one round trip: 2 ms; master timeout {timeout:?})"
        );
        assert_eq!(took, Duration::from_millis(2), "one round trip, exactly");
        assert!(took < timeout / 4);

        // The cleanup went to every master, the paused one included, and
        // only finishes with that master's timeout.
        cluster.client(1).background_idle().await;
        assert!(
            sent.elapsed() >= timeout,
            "the cleanup waited for the paused master ({:?})",
            sent.elapsed()
        );
    });
}

/// Design: "release, like acquire, costs the Q-th fastest master, not the
/// slowest". Client 0 holds the lock on all three masters, one is then
/// paused: `release` returns once two confirmed (one round trip), and the
/// paused master's release finishes in the background.
#[test]
fn release_returns_at_quorum_without_waiting_for_a_paused_master() {
    let scenario = Scenario::scripted();
    let timeout = scenario.master_timeout;
    paused_runtime().block_on(async {
        let cluster = Cluster::new(&scenario, 0, 3, false);
        assert_eq!(cluster.setup(0).await, 3);
        let held = cluster
            .client(0)
            .try_acquire(RESOURCE)
            .await
            .expect("an idle cluster grants");
        // Let the third master's grant land too: the lock is on all three.
        tokio::time::sleep(Duration::from_millis(5)).await;
        cluster.pause(2);

        let sent = Instant::now();
        let report = cluster
            .client(0)
            .release(held)
            .await
            .expect("two of three confirm");
        let took = sent.elapsed();
        eprintln!(
            "release with a paused master: {took:?} (one round trip: 2 ms; master timeout {timeout:?}); {report:?}"
        );
        assert_eq!(took, Duration::from_millis(2), "one round trip, exactly");
        cluster.client(0).background_idle().await;
        assert!(sent.elapsed() >= timeout);
    });
}

/// A release dropped by its caller before its master answered is handed
/// to the background, with one master as with several (one master's
/// release is polled without a `FuturesUnordered`, and handed over on its
/// own): `background_idle` waits for its answer, one round trip after it
/// was sent, so a shutdown does not cut it off. One master, 1 ms each way:
/// the caller gives up after 0.5 ms, before the release even reached the
/// master; it still does, and the other client gets the lock at once, long
/// before the TTL would have freed it.
#[test]
fn a_release_dropped_before_its_one_master_answered_still_releases() {
    let scenario = Scenario::scripted();
    let ttl = scenario.ttl;
    paused_runtime().block_on(async {
        let cluster = Cluster::new(&scenario, 0, 1, false);
        for c in 0..2 {
            assert_eq!(cluster.setup(c).await, 1, "client {c} verifies the master");
        }
        let held = cluster
            .client(0)
            .try_acquire(RESOURCE)
            .await
            .expect("an idle master grants");
        let sent = Instant::now();
        let release = cluster.client(0).release(held);
        let gave_up = tokio::time::timeout(Duration::from_micros(500), release).await;
        assert!(
            gave_up.is_err(),
            "the caller stopped waiting first: {gave_up:?}"
        );

        cluster.client(0).background_idle().await;
        assert_eq!(
            sent.elapsed(),
            Duration::from_millis(2),
            "background_idle waited for the release's answer: one round trip"
        );
        let again = cluster.client(1).try_acquire(RESOURCE).await;
        let after = sent.elapsed();
        assert!(
            again.is_ok(),
            "the dropped release freed the lock ({after:?} after it, TTL {ttl:?}): {again:?}"
        );
        assert!(
            after < ttl / 4,
            "freed by the release, not by the TTL: {after:?}"
        );
    });
}

/// Design: a verification counts only if no reconnect happened since it
/// started. Client 0 holds the lock on masters 0 and 2 (master 1 was cut
/// off from it). Client 1 asks master 2 who it is; the old server answers
/// "up for a day", and while that answer is on its way (a slow path),
/// master 2 crashes, restarts *empty* and client 1 reconnects. The answer
/// then arrives: had it counted, master 2 would vote at once, client 1
/// would win masters 1 and 2, and two clients would hold the lock. The
/// core records it as stale, asks again, and the restart guard refuses.
#[test]
fn verification_answered_by_the_previous_server_does_not_count() {
    let mut scenario = Scenario::scripted();
    scenario.restart_guard = true;
    paused_runtime().block_on(async {
        let cluster = Cluster::new(&scenario, 0, 3, true);
        assert_eq!(cluster.setup(0).await, 3);
        cluster.cut(1, &[0]);
        let held = cluster
            .client(0)
            .try_acquire(RESOURCE)
            .await
            .expect("masters 0 and 2 grant");
        cluster.heal(1);

        // Client 1 starts up; master 2's answers take 30 ms more. The old
        // server answers INFO 1 ms after it is asked, then dies.
        cluster.delay_replies(1, 2, Duration::from_millis(30));
        let (verified, ()) = tokio::join!(cluster.setup(1), async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            cluster.crash(2, false);
            tokio::time::sleep(Duration::from_millis(1)).await;
            cluster.restart(2, Duration::from_millis(1));
        });
        let raced = cluster.stats().verifications_raced_by_reconnect;
        assert_eq!(raced, 1, "the old answer arrived after the reconnect");
        assert_eq!(verified, 2, "the stale answer did not verify master 2");
        let trace = cluster.trace();
        assert!(
            trace.iter().any(|l| l.contains("c1 set up")
                && l.contains("m2: unreachable (reconnected while its identity was checked)")),
            "the core saw the answer as stale:\n{}",
            trace.join("\n")
        );
        cluster.delay_replies(1, 2, Duration::ZERO);

        let attempt = cluster.client(1).try_acquire(RESOURCE).await;
        let trace = cluster.trace();
        let Err(AcquireError::NoQuorum { votes, .. }) = attempt else {
            panic!("two holders: {attempt:?}\n{}", trace.join("\n"));
        };
        let outcomes: Vec<&VoteOutcome> = votes.iter().map(|v| &v.outcome).collect();
        assert!(
            matches!(
                outcomes[..],
                [
                    VoteOutcome::Failed(MasterFailure::Held),
                    VoteOutcome::Granted,
                    VoteOutcome::Failed(MasterFailure::RecentlyRestarted { .. }),
                ]
            ),
            "{outcomes:?}\n{}",
            trace.join("\n")
        );
        assert!(
            held.is_valid_at(Instant::now().into_std()),
            "the first holder still trusts its lock: the refusal mattered"
        );
    });
}
