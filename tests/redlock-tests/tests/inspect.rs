//! The inspection API and the operator's unlock against real masters.

use std::time::Duration;

use redlock_core::{KeyState, MasterFailure, ResourceSet, Token};
use redlock_testing::Masters;
use redlock_tests::fresh_builder;
use redlock_tokio::TokioRuntime;

#[tokio::test]
async fn inspect_shows_the_holder_its_ttl_and_the_fence() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| {
            s.ttl(Duration::from_secs(30))
                .fencing(true)
                .holder_label("report job")
        })
        .connect_core()
        .await
        .expect("connect");
    let free = rl.inspect("report").await.expect("valid name");
    assert!(free.views().iter().all(|v| v.state == Ok(KeyState::Free)));
    assert_eq!(free.holder(), None);
    assert!(!free.held_by_quorum());

    let lock = rl.try_acquire("report").await.expect("free");
    rl.background_idle().await;
    // Let the third master's SET land (the grant was decided at two).
    let seen = loop {
        let seen = rl.inspect("report").await.expect("valid name");
        if seen.holder().is_some_and(|(_, n)| n == 3) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(seen.holder(), Some((lock.token().expose(), 3)));
    // Who holds it was recorded with the lock.
    let holder = seen.holder_record().expect("holder recorded by default");
    assert_eq!(holder.pid(), std::process::id());
    assert_eq!(holder.label(), Some("report job"));
    assert!(seen.to_string().contains("report job"), "{seen}");
    assert!(seen.held_by_quorum());
    assert_eq!(seen.key(), "redlock:report");
    for v in seen.views() {
        match &v.state {
            Ok(KeyState::Held { ttl: Some(ttl), .. }) => {
                assert!(*ttl > Duration::from_secs(20) && *ttl <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(Some(seen.fence()), lock.fence().map(|f| f.get()));
    // The report never prints a whole token.
    assert!(!seen.to_string().contains(lock.token().expose()));
    rl.release(lock).await.expect("release");
}

#[tokio::test]
async fn inspect_reports_wrong_types_and_unreachable_masters() {
    let mut masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .connect_core()
        .await
        .expect("connect");
    masters[0]
        .cmd(&["HSET", "redlock:odd", "f", "v"])
        .expect("HSET");
    masters.get_mut(2).kill();
    let seen = rl.inspect("odd").await.expect("valid name");
    assert_eq!(
        seen.views()[0].state,
        Ok(KeyState::WrongType {
            kind: "hash".into()
        })
    );
    assert_eq!(seen.views()[1].state, Ok(KeyState::Free));
    assert!(matches!(
        seen.views()[2].state,
        Err(MasterFailure::Unreachable(_) | MasterFailure::TimedOut)
    ));
    assert_eq!(seen.reachable(), 2);
    assert!(rl.inspect("").await.is_err(), "empty names are refused");
}

#[tokio::test]
async fn unlock_by_token_removes_only_that_holder_and_force_removes_any() {
    let masters = Masters::start(3);
    let rl = fresh_builder(masters.urls())
        .settings(|s| s.ttl(Duration::from_secs(60)))
        .connect_core()
        .await
        .expect("connect");
    let stuck = rl.try_acquire("stuck").await.expect("free");
    let token = stuck.token().expose().to_owned();
    // The holder "crashed": the lock value is forgotten, the keys stay.
    drop(stuck);
    let set = ResourceSet::try_from("stuck").expect("valid");
    // A wrong token removes nothing.
    rl.release_token(&set, &Token::random(&TokioRuntime))
        .await
        .expect("answered");
    rl.background_idle().await;
    assert!(rl.inspect("stuck").await.expect("valid").held_by_quorum());
    // The holder's own token (as `inspect` shows it to an operator).
    let report = rl
        .release_token(&set, &Token::parse(&token).expect("a token"))
        .await
        .expect("released");
    // A quorum confirmed, and at least one master deleted the key (the
    // early decision may have dropped one master's SET: "not held" there).
    assert!(
        report.confirmed() >= 2 && report.released() >= 1,
        "{report}"
    );
    rl.background_idle().await;
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());

    // Forced: whoever holds it.
    let other = rl.try_acquire("stuck").await.expect("free again");
    let report = rl.danger_force_unlock(&set).await.expect("deleted");
    // Every master answered; one may never have had the key (its SET
    // dropped by the early decision): "not held" there.
    assert!(
        report.confirmed() == 3 && report.released() >= 2,
        "{report}"
    );
    assert!(redlock_tests::keys_left(&masters, "redlock:*")
        .await
        .is_empty());
    // The old holder's release now finds nothing of its own.
    let report = rl.release_all(other).await.expect("nothing failed");
    assert_eq!(report.released(), 0);
}
