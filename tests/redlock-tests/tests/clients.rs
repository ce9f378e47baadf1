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

/// Connections master `m` accepted since it started (each reading opens
/// one of its own).
fn connections_received(masters: &Masters, m: usize) -> u64 {
    masters[m]
        .info_field("total_connections_received")
        .and_then(|v| v.parse().ok())
        .expect("total_connections_received")
}

/// Waits (up to 15 s) until master `m` has accepted a connection beyond
/// `before` (a reading of [`connections_received`]) and the `others` the
/// test opened since, and beyond this function's own readings (each opens
/// one); panics with `what` if it never does.
async fn until_a_new_connection(masters: &Masters, m: usize, before: u64, others: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut readings = others;
    loop {
        readings += 1;
        let now = connections_received(masters, m);
        if now > before + readings {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} ({before} connections before, {now} after {readings} readings)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// A master that stops answering (here SIGSTOP; a black-holed host looks
/// the same) keeps its TCP connection open: each client replaces a
/// connection that answered nothing for `max(20 x per-master timeout,
/// 2 s)` while commands timed out on it, rather than wait for TCP to give
/// up (about 15 minutes). `traffic`: how long the test keeps trying to
/// lock during the 8 s pause. fred's check counts from the last write, so
/// only a pause in the traffic lets it fire; the redis-rs link counts
/// from the first timeout, so it fires under continuous traffic too.
async fn stalled_connection_is_replaced(client: Client, traffic: Duration) {
    let masters = Masters::start(3);
    let rl = manager(&masters, client).await;
    let connections = |m: usize| connections_received(&masters, m);
    let before = connections(0);
    masters[0].pause();
    let paused = Instant::now();
    while paused.elapsed() < traffic {
        if let Ok(lock) = rl.try_acquire("stalled").await {
            let _ = rl.release(lock).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(paused.elapsed())).await;
    masters[0].resume();
    // Beyond the readings' own connections, the client must have opened
    // one.
    let what = format!(
        "{} ({traffic:?} of traffic): the stalled connection was never replaced",
        client.name()
    );
    until_a_new_connection(&masters, 0, before, 0, &what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_is_replaced() {
    for client in BOTH {
        stalled_connection_is_replaced(client, Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_is_replaced_under_traffic_by_the_redis_rs_link() {
    stalled_connection_is_replaced(Client::RedisRs, Duration::from_secs(8)).await;
}

/// The other side of the unresponsive check: a master that missed one
/// per-master timeout (paused 300 ms under an acquire and its release) and
/// answers again keeps its connection, even though the late answer never reached the
/// command that gave up on it and nothing else is sent for 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_answers_late_once_is_kept() {
    for client in BOTH {
        let masters = Masters::start(3);
        let rl = manager(&masters, client).await;
        let connections = |m: usize| connections_received(&masters, m);
        let before = connections(0);
        masters[0].pause();
        let lock = rl.try_acquire("late").await.expect("two of three answer");
        rl.release(lock).await.expect("two of three answer");
        // The release's part on master 0 times out in the background.
        tokio::time::sleep(Duration::from_millis(300)).await;
        masters[0].resume();
        tokio::time::sleep(Duration::from_secs(4)).await;
        // One reading here, one for `before`: nothing else connected.
        let after = connections(0);
        assert_eq!(
            after,
            before + 1,
            "{}: a connection that answered late once was replaced",
            client.name()
        );
    }
}

/// A server that accepts connections and closes them at once (Redis at
/// `maxclients`, a proxy without a healthy backend): a client keeps
/// trying, with its backoff, rather than open connections in a tight
/// loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_every_connection_is_not_hammered() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    for client in BOTH {
        let masters = Masters::start(2);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicU64::new(0));
        {
            let accepted = Arc::clone(&accepted);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    drop(conn);
                }
            });
        }
        let mut urls = masters.urls();
        urls.push(format!("redis://127.0.0.1:{port}"));
        let rl = fresh_builder(urls)
            .client(client)
            .connect_core()
            .await
            .unwrap_or_else(|e| panic!("{}: two of three masters answer: {e}", client.name()));
        let start = accepted.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let in_3s = accepted.load(Ordering::SeqCst) - start;
        // 10 ms doubling to 1 s: about 8 attempts in 3 s.
        assert!(
            in_3s <= 30,
            "{}: {in_3s} connections in 3 s to a server that closes each one",
            client.name()
        );
        drop(rl);
    }
}

/// A manager through `client` (TTL 60 s, `master_timeout`) with master 0
/// paused behind a full socket: `locks` locks of `resources` resources of
/// 1000 bytes (about `resources` KB per command) taken and released
/// meanwhile, which masters 1 and 2 grant. A paused master's socket takes
/// about 4 MB (`tcp_wmem`'s 4 MB on the client's side, a receive buffer
/// a fresh connection has not grown): what does not fit waits in the
/// client.
async fn master_0_paused_behind_a_full_socket(
    masters: &Masters,
    client: Client,
    master_timeout: Duration,
    locks: usize,
    resources: usize,
) -> Manager {
    let rl = fresh_builder(masters.urls())
        .client(client)
        .settings(|s| {
            s.ttl(Duration::from_secs(60))
                .master_timeout(master_timeout)
        })
        .connect_core()
        .await
        .unwrap_or_else(|e| panic!("connect through {}: {e}", client.name()));
    masters[0].pause();
    for round in 0..locks {
        let names: Vec<String> = (0..resources)
            .map(|i| format!("{round}-{i}-{}", "x".repeat(990)))
            .collect();
        let lock = rl
            .try_acquire(names)
            .await
            .unwrap_or_else(|e| panic!("{}: masters 1 and 2 grant: {e}", client.name()));
        rl.release(lock).await.ok();
    }
    rl
}

/// For each client: master 0 paused behind a full socket
/// (`master_0_paused_behind_a_full_socket` with these arguments), then
/// resumed once the manager's background is idle; once master 0 has read
/// everything written to it before, no lock key may be left on any
/// master.
async fn no_key_left_once_master_0_resumes(
    master_timeout: Duration,
    locks: usize,
    resources: usize,
) {
    for client in BOTH {
        let masters = Masters::start(3);
        let rl = master_0_paused_behind_a_full_socket(
            &masters,
            client,
            master_timeout,
            locks,
            resources,
        )
        .await;
        rl.background_idle().await;
        masters[0].resume();
        assert_no_key_once_caught_up(&rl, &masters, client).await;
    }
}

/// Waits until master 0 has read everything written to it before, and
/// asserts that no lock key is left on any master.
async fn assert_no_key_once_caught_up(rl: &Manager, masters: &Masters, client: Client) {
    // Once master 0 votes on a new lock, it has read everything the
    // client wrote before (one connection, in order).
    // A new name each time: a key left by an earlier try must not
    // keep it from voting (it is counted below).
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let lock = rl
            .try_acquire(format!("caught-up-{attempt}"))
            .await
            .expect("a quorum is up");
        let vote = lock.votes().get(0).map(|v| v.outcome.clone());
        rl.release_all(lock).await.ok();
        if vote == Some(VoteOutcome::Granted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: master 0 never voted again (last: {vote:?})",
            client.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = masters.keys_everywhere("redlock:*");
    assert!(
        left.is_empty(),
        "{}: {} keys left, e.g. on master {}",
        client.name(),
        left.len(),
        left.first().map_or(0, |(m, _)| *m)
    );
}

/// A master whose socket is full (paused under a backlog): the votes sent
/// to it are dropped by the early decision, and their releases time out
/// before they are written. A client must then write neither, or both:
/// fred used to write the dropped `SET`s once the socket drained (nothing
/// marked them as given up) and skip the releases queued behind them
/// (marked timed out), leaving our keys on the master until their TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_given_up_behind_a_full_socket_leave_no_key() {
    // 2 MB commands take a while on a loaded machine: a 1 s timeout.
    // Master 0's calls time out all the same (it is paused throughout).
    no_key_left_once_master_0_resumes(Duration::from_secs(1), 8, 2000).await;
}

/// A vote too large for a paused master's socket is cut mid-write when
/// its timeout runs out, and a client cannot take back what it started
/// writing: the rest goes out once the master reads again. The release
/// queued behind it must then go out too, however late: both clients
/// used to give it up unsent at its own timeout, and the 12 000 keys of
/// the vote stayed on the master until their TTL. (Late, a release
/// deletes only keys holding its own token.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_queued_behind_a_partly_written_vote_is_still_written() {
    // One lock of 12 000 resources: a 12 MB command, three times what the
    // paused master's socket takes. A 2 s timeout for masters 1 and 2 to
    // take it on a loaded machine.
    no_key_left_once_master_0_resumes(Duration::from_secs(2), 1, 12_000).await;
}

/// A vote dropped by the early decision while it still waited for its
/// connection (queued behind a full socket) must still reach its master:
/// a lock resting on exactly a quorum is lost as soon as one of those
/// masters is. redis-rs skips a queued command whose caller is gone, so
/// its link sees each command through to its answer or timeout, as the
/// fred link does; the master gets our key once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_dropped_before_it_was_written_still_reaches_its_master() {
    for client in BOTH {
        let masters = Masters::start(3);
        // A 5 s timeout, far above what master 0 needs to catch up once
        // resumed: the late vote must land within it.
        let rl =
            master_0_paused_behind_a_full_socket(&masters, client, Duration::from_secs(5), 2, 2000)
                .await;
        let held = rl
            .try_acquire("behind")
            .await
            .unwrap_or_else(|e| panic!("{}: masters 1 and 2 grant: {e}", client.name()));
        masters[0].resume();
        let key = "redlock:behind";
        redlock_tests::eventually(Duration::from_secs(30), || masters[0].get(key).is_some()).await;
        assert_eq!(
            masters[0].get(key).as_deref(),
            Some(held.token().expose()),
            "{}: our vote never reached master 0 ({})",
            client.name(),
            held.votes()
        );
        rl.release_all(held).await.expect("released everywhere");
        rl.background_idle().await;
        let left = redlock_tests::keys_left(&masters, "redlock:*").await;
        assert!(left.is_empty(), "{}: keys left {left:?}", client.name());
    }
}

/// Many tasks on one connection per master at once: each reply must reach
/// the call it answers. The redis-rs link's plain TCP connections are
/// written and read by their callers (one of them reads for all, see
/// `redlock-tokio/src/direct.rs`); a reply handed to the wrong caller
/// would grant a held resource or refuse a free one. Every round, half
/// the tasks ask for a resource held by another lock and half for a free
/// one, interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_connection_each_get_their_own_reply() {
    use std::sync::Arc;
    const TASKS: usize = 64;
    for client in BOTH {
        let masters = Masters::start(3);
        let rl = Arc::new(manager(&masters, client).await);
        let mut held = Vec::new();
        for i in 0..TASKS / 2 {
            held.push(rl.try_acquire(format!("held-{i}")).await.expect("free"));
        }
        for round in 0..10 {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let rl = Arc::clone(&rl);
                    tokio::spawn(async move {
                        let free = t % 2 == 1;
                        let name = if free {
                            format!("free-{round}-{t}")
                        } else {
                            format!("held-{}", t / 2)
                        };
                        let outcome = match rl.try_acquire(name.clone()).await {
                            Ok(lock) => Ok(rl.release(lock).await.ok()),
                            Err(e) => Err(e),
                        };
                        (free, name, outcome)
                    })
                })
                .collect();
            for task in tasks {
                let (free, name, outcome) = task.await.expect("the task ran");
                match outcome {
                    Ok(_) => assert!(free, "{}: {name} granted while held", client.name()),
                    Err(e) => {
                        assert!(!free, "{}: free {name} refused: {e}", client.name());
                        assert!(e.is_contended(), "{}: {name}: {e}", client.name());
                    }
                }
            }
        }
        for lock in held {
            rl.release(lock).await.expect("released");
        }
        rl.background_idle().await;
        let left = redlock_tests::keys_left(&masters, "redlock:*").await;
        assert!(left.is_empty(), "{}: keys left {left:?}", client.name());
    }
}

/// A release is decided by the quorum and returns; a slow master's part
/// goes on after it (a task of the core's for fred, the connection itself
/// for redis-rs's caller-written one). `background_idle` returns only once
/// that part has reached the slow master (within the per-master timeout),
/// so a process may exit then without leaving a key there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_idle_waits_for_what_a_release_left_to_a_slow_master() {
    for client in BOTH {
        let masters = Masters::start(3);
        let slow = redlock_testing::Proxy::start_with_mode(
            masters[2].addr(),
            redlock_testing::Mode::Delay(Duration::from_millis(100)),
        )
        .expect("proxy");
        let mut urls = masters.urls();
        urls[2] = slow.url();
        let rl = fresh_builder(urls)
            .client(client)
            .settings(|s| {
                s.ttl(Duration::from_secs(60))
                    .master_timeout(Duration::from_secs(5))
            })
            .connect_core()
            .await
            .unwrap_or_else(|e| panic!("connect through {}: {e}", client.name()));
        // `connect_core` returns once a quorum is connected, and the slow
        // master's first votes wait for its identity check (which the
        // quorum does not wait for): take locks until one reaches it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (lock, key) = loop {
            let attempt = rl.try_acquire("lag").await.expect("free");
            let key = attempt.keys()[0].clone();
            if redlock_tests::eventually(Duration::from_secs(1), || masters[2].get(&key).is_some())
                .await
            {
                break (attempt, key);
            }
            assert!(
                Instant::now() < deadline,
                "{}: no vote reached the slow master ({})",
                client.name(),
                attempt.votes()
            );
            rl.release_all(attempt).await.ok();
        };
        let report = rl.release(lock).await.expect("released by the quorum");
        rl.background_idle().await;
        assert_eq!(
            masters[2].get(&key),
            None,
            "{}: background_idle returned before the release reached the slow master \
             (decided as {report})",
            client.name()
        );
        // Again on a slow master whose script cache was flushed meanwhile
        // (an operator's `SCRIPT FLUSH`): the release left to it must
        // still delete the key, though nobody waits for its answer.
        let lock = rl.try_acquire("lag").await.expect("free");
        assert!(
            redlock_tests::eventually(Duration::from_secs(5), || masters[2].get(&key).is_some())
                .await,
            "{}: the vote did not reach the slow master again ({})",
            client.name(),
            lock.votes()
        );
        masters[2].cmd(&["SCRIPT", "FLUSH"]).expect("flush");
        let report = rl.release(lock).await.expect("released by the quorum");
        rl.background_idle().await;
        assert_eq!(
            redlock_tests::keys_left(&masters, "redlock:*").await,
            vec![],
            "{}: a release left to a master without its scripts was lost \
             (decided as {report})",
            client.name()
        );
    }
}

/// A connection the server closes while nothing is sent on it (`CLIENT
/// KILL`, a restart, an idle timeout) is replaced at once, as redis-rs's
/// and fred's I/O tasks notice the end of stream: the redis-rs link's
/// plain TCP connections have no task reading them between calls, and
/// the link's watcher must notice it instead, or the next vote would
/// find the connection dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_replaced_without_a_call() {
    for client in BOTH {
        let masters = Masters::start(3);
        let rl = manager(&masters, client).await;
        let before = connections_received(&masters, 0);
        masters[0]
            .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
            .expect("CLIENT KILL");
        // Beyond the `CLIENT KILL`'s own connection and the readings', the
        // client must have opened one, with no lock call made meanwhile.
        let what = format!(
            "{}: the closed connection was never replaced",
            client.name()
        );
        until_a_new_connection(&masters, 0, before, 1, &what).await;
        let lock = rl.try_acquire("after-kill").await.expect("a quorum is up");
        rl.release(lock).await.expect("released");
    }
}
