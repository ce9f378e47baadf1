//! Fencing tokens against real masters: every fenced holder's fence is
//! strictly greater than every earlier fenced holder's, across managers
//! (processes) and resources, and a protected resource that checks the
//! fence refuses a stale holder that outlived its validity.

use std::time::Duration;

use redlock_core::{AcquireOptions, Fence, Redlock, ResourceSet};
use redlock_testing::{Masters, RedisServer};
use redlock_tests::fresh_builder;
use redlock_tokio::{RedisMaster, TokioRuntime};

type Manager = Redlock<RedisMaster, TokioRuntime>;

async fn fenced_manager(masters: &Masters, ttl: Duration) -> Manager {
    fresh_builder(masters.urls())
        .settings(|s| s.ttl(ttl).fencing(true))
        .connect_core()
        .await
        .expect("connect")
}

fn fence_of(lock: &redlock_core::Lock) -> Fence {
    lock.fence().expect("a fenced lock has a fence")
}

#[tokio::test]
async fn fences_strictly_increase_across_holders_and_managers() {
    let masters = Masters::start(3);
    let a = fenced_manager(&masters, Duration::from_secs(5)).await;
    let b = fenced_manager(&masters, Duration::from_secs(5)).await;
    let mut last: Option<Fence> = None;
    for round in 0..10 {
        // Alternate between two managers: two processes of a deployment.
        let rl = if round % 2 == 0 { &a } else { &b };
        let lock = rl.try_acquire("invoice:7").await.expect("free");
        let fence = fence_of(&lock);
        if let Some(prev) = last {
            assert!(fence > prev, "round {round}: fence {fence} after {prev}");
        }
        last = Some(fence);
        rl.release(lock).await.expect("release");
    }
    // The counter lives in the hash named by the key prefix, one field per
    // resource, on at least a quorum of masters.
    let stored = masters
        .iter()
        .filter(|m| {
            m.cmd(&["HGET", "redlock:", "invoice:7"])
                .ok()
                .and_then(|r| r.as_str().map(str::to_owned))
                == last.map(|f| f.to_string())
        })
        .count();
    assert!(stored >= 2, "fence stored on {stored} of 3 masters");
}

#[tokio::test]
async fn forgetting_a_fence_resets_its_counter_on_every_master_and_nothing_else() {
    let masters = Masters::start(3);
    let rl = fenced_manager(&masters, Duration::from_secs(5)).await;
    for resource in ["retired", "kept", "retired", "retired"] {
        let lock = rl.try_acquire(resource).await.expect("free");
        rl.release(lock).await.expect("release");
    }
    let set = ResourceSet::try_from("retired").expect("resource");
    let report = rl.danger_forget_fences(&set).await.expect("every master");
    assert_eq!(report.failed(), 0, "{report}");
    for m in masters.iter() {
        let retired = m.cmd(&["HEXISTS", "redlock:", "retired"]).expect("HEXISTS");
        assert_eq!(retired.as_int(), Some(0), "master {}", m.port());
        let kept = m.cmd(&["HGET", "redlock:", "kept"]).expect("HGET");
        assert!(kept.as_str().is_some(), "the other resource's fence stays");
    }
    // The next holder starts again from 1.
    let lock = rl.try_acquire("retired").await.expect("free");
    assert_eq!(fence_of(&lock).get(), 1);
    rl.release(lock).await.expect("release");
}

#[tokio::test]
async fn multi_resource_fence_exceeds_every_resource_fence() {
    let masters = Masters::start(3);
    let rl = fenced_manager(&masters, Duration::from_secs(5)).await;
    // Push one resource's counter well ahead of the other's.
    let mut high = None;
    for _ in 0..5 {
        let lock = rl.try_acquire("a").await.expect("free");
        high = Some(fence_of(&lock));
        rl.release(lock).await.expect("release");
    }
    let low = {
        let lock = rl.try_acquire("b").await.expect("free");
        let f = fence_of(&lock);
        rl.release(lock).await.expect("release");
        f
    };
    let both = ResourceSet::try_from(["a", "b"]).expect("valid");
    let lock = rl
        .acquire_with(
            &both,
            &AcquireOptions::once(),
            redlock_core::Token::random(&TokioRuntime),
        )
        .await
        .expect("free");
    let fence = fence_of(&lock);
    assert!(high.is_some_and(|h| fence > h) && fence > low, "{fence}");
    rl.release(lock).await.expect("release");
    // Both resources' counters moved up to it: the next holder of either
    // one gets more.
    let next = rl.try_acquire("b").await.expect("free");
    assert!(fence_of(&next) > fence);
    rl.release(next).await.expect("release");
}

#[tokio::test]
async fn fencing_is_opt_in_per_acquire() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    let plain = rl.try_acquire("opt").await.expect("free");
    assert_eq!(plain.fence(), None);
    rl.release(plain).await.expect("release");
    let opts = AcquireOptions::once().fenced(true);
    let set = ResourceSet::try_from("opt").expect("valid");
    let fenced = rl
        .acquire_with(&set, &opts, redlock_core::Token::random(&TokioRuntime))
        .await
        .expect("free");
    assert_eq!(fenced.fence().map(Fence::get), Some(1));
    rl.release(fenced).await.expect("release");
    // Without fencing no counter is written.
    let lock = rl.try_acquire("other").await.expect("free");
    rl.release(lock).await.expect("release");
    for m in masters.iter() {
        let r = m.cmd(&["HEXISTS", "redlock:", "other"]).expect("HEXISTS");
        assert_eq!(r.as_int(), Some(0));
    }
}

/// The protected resource of `docs/safety.md`: a Redis key written with a
/// compare-and-set on the fence, on a server of its own (not a lock
/// master). Returns 1 when the write was accepted, 0 when refused.
const FENCED_WRITE: &str = r#"
local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local fence = tonumber(ARGV[1])
if fence < seen then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
return 1
"#;

fn fenced_write(store: &RedisServer, fence: Fence, value: &str) -> bool {
    let fence = fence.to_string();
    store
        .cmd(&["EVAL", FENCED_WRITE, "1", "stock", &fence, value])
        .expect("EVAL")
        .as_int()
        == Some(1)
}

/// Kleppmann's scenario: A takes the lock and stalls past its validity; B
/// takes the lock and writes; A wakes and writes with its stale fence. The
/// store refuses A's write: the lock cannot stop a paused holder, the fence
/// can.
#[tokio::test]
async fn stale_holder_after_a_pause_is_refused_by_the_fenced_store() {
    let masters = Masters::start(3);
    let store = RedisServer::start();
    let rl = fenced_manager(&masters, Duration::from_millis(300)).await;
    let a = rl.try_acquire("stock").await.expect("free");
    let fence_a = fence_of(&a);
    // A stalls (a GC pause) until its lock expired on the masters.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!a.is_valid_at(redlock_tokio::now()));
    let b = rl.try_acquire("stock").await.expect("A's keys expired");
    let fence_b = fence_of(&b);
    assert!(fence_b > fence_a);
    assert!(fenced_write(&store, fence_b, "sold by B"));
    // A wakes up and writes with its stale fence: refused.
    assert!(!fenced_write(&store, fence_a, "sold by A"));
    let value = store
        .cmd(&["HGET", "stock", "value"])
        .expect("HGET")
        .as_str()
        .map(str::to_owned);
    assert_eq!(value.as_deref(), Some("sold by B"));
    rl.release(b).await.expect("release");
    rl.release(a).await.ok();
}

#[tokio::test]
async fn guards_of_the_adapter_carry_increasing_fences() {
    use redlock_tokio::{LockManager, LockOptions};
    let masters = Masters::start(3);
    let core = fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    let locks = LockManager::new(core);
    let opts = LockOptions::once().fenced(true);
    let first = locks.acquire_with("job", &opts).await.expect("free");
    let f1 = first.fence().expect("fenced");
    assert_eq!(first.status().fence(), Some(f1));
    first.release().await.expect("release");
    let second = locks.acquire_with("job", &opts).await.expect("free");
    assert!(second.fence().expect("fenced") > f1);
    second.release().await.expect("release");
    let plain = locks.try_acquire("job").await.expect("free");
    assert_eq!(plain.fence(), None);
    plain.release().await.expect("release");
}
