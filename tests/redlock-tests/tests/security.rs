//! Secrets stay secret, and the library works under a least-privilege ACL
//! user limited to the lock key prefix.

use std::time::Duration;

use redlock_core::ConfigError;
use redlock_testing::{Masters, RedisServer, ServerOptions};
use redlock_tests::fresh_builder;
use redlock_tokio::TokioRuntime;

/// The exact ACL the library needs, documented in `docs/safety.md`:
/// the three scripts (EVALSHA, EVAL for the NOSCRIPT fallback and the
/// redis-rs link's releases, SCRIPT LOAD),
/// the commands they run (GET, SET, PEXPIRE, PTTL, DEL; HGET and HSET on the
/// fence hash, whose key is the prefix; TYPE for inspection) on lock keys only, INFO
/// for the identity and restart checks, and PING. `resetchannels` and
/// `-@all` first, so nothing else is allowed.
const ACL_RULES: &[&str] = &[
    "on",
    ">locker-pw",
    "resetkeys",
    "~redlock:*",
    "resetchannels",
    "-@all",
    "+evalsha",
    "+eval",
    "+script|load",
    "+get",
    "+set",
    "+pexpire",
    "+pttl",
    "+del",
    "+hget",
    "+hset",
    "+type",
    "+info",
    "+ping",
];

fn create_lock_user(server: &RedisServer) {
    let mut args = vec!["ACL", "SETUSER", "locker"];
    args.extend_from_slice(ACL_RULES);
    let reply = server.cmd(&args).expect("ACL SETUSER");
    assert!(reply.is_ok(), "{reply:?}");
}

/// `wake_on_release` under the least-privilege user, which may use no
/// channel: the release's `PUBLISH` is refused, and the release must
/// still succeed; a waiter's `SUBSCRIBE` is refused, and it must fall back
/// to polling rather than fail or hang. With the channels granted
/// (`&redlock:* +publish +subscribe +unsubscribe`, `docs/safety.md`) the
/// subscription is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_on_release_degrades_to_polling_without_channel_rights() {
    let masters = Masters::start(3);
    let mut urls = Vec::new();
    for m in masters.iter() {
        create_lock_user(m);
        urls.push(format!("redis://locker:locker-pw@127.0.0.1:{}", m.port()));
    }
    let connect = || async {
        fresh_builder(urls.clone())
            .wake_on_release(true)
            .connect()
            .await
            .expect("connect as locker")
    };
    let (holder, waiter) = (connect().await, connect().await);
    let held = holder.try_acquire("acl:w").await.expect("free");
    let waiting = tokio::spawn(async move {
        let opts = redlock_tokio::LockOptions::new().wait(Some(Duration::from_secs(20)));
        let guard = waiter
            .acquire_with("acl:w", &opts)
            .await
            .expect("the lock, by polling");
        guard.release().await.expect("release as locker");
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.release()
        .await
        .expect("a refused PUBLISH does not fail the release");
    waiting.await.expect("waiter");
    assert!(redlock_tests::keys_left(&masters, "redlock:?*")
        .await
        .is_empty());

    // With the channels granted, the waiter's SUBSCRIBE is executed.
    for m in masters.iter() {
        let reply = m
            .cmd(&[
                "ACL",
                "SETUSER",
                "locker",
                "&redlock:*",
                "+publish",
                "+subscribe",
                "+unsubscribe",
            ])
            .expect("ACL SETUSER");
        assert!(reply.is_ok(), "{reply:?}");
        m.cmd(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT");
    }
    let (holder, waiter) = (connect().await, connect().await);
    let held = holder.try_acquire("acl:w").await.expect("free");
    let waiting = tokio::spawn(async move {
        let opts = redlock_tokio::LockOptions::new().wait(Some(Duration::from_secs(20)));
        let guard = waiter.acquire_with("acl:w", &opts).await.expect("the lock");
        guard.release().await.expect("release as locker");
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.release().await.expect("release as locker");
    waiting.await.expect("waiter");
    let executed = masters.iter().any(|m| m.calls("subscribe") > 0);
    assert!(executed, "SUBSCRIBE ran with the channel rights");
}

#[tokio::test]
async fn works_under_a_least_privilege_acl_user() {
    let masters = Masters::start(3);
    let mut urls = Vec::new();
    for m in masters.iter() {
        create_lock_user(m);
        urls.push(format!("redis://locker:locker-pw@127.0.0.1:{}", m.port()));
    }
    let rl = fresh_builder(urls)
        .settings(|s| s.ttl(Duration::from_secs(5)))
        .connect_core()
        .await
        .expect("connect as locker");
    let mut lock = rl
        .try_acquire(["acl:a", "acl:b"])
        .await
        .expect("acquire as locker");
    assert_eq!(lock.votes().granted(), 2);
    rl.extend(&mut lock, None).await.expect("extend as locker");
    let err = rl.try_acquire("acl:a").await.expect_err("held");
    assert!(err.is_contended(), "{err}");
    rl.release(lock).await.expect("release as locker");
    // The NOSCRIPT fallback (EVAL) and the reload (SCRIPT LOAD) are allowed.
    masters[0]
        .cmd(&["SCRIPT", "FLUSH"])
        .expect("flush as admin");
    let lock = rl.try_acquire("acl:c").await.expect("acquire after flush");
    rl.release(lock).await.expect("release after flush");
    // Fencing and inspection need nothing more than the documented line.
    let fenced = rl
        .acquire_with(
            &redlock_core::ResourceSet::try_from("acl:f").expect("valid"),
            &redlock_core::AcquireOptions::once().fenced(true),
            redlock_core::Token::random(&TokioRuntime),
        )
        .await
        .expect("fenced acquire as locker");
    assert!(fenced.fence().is_some());
    let seen = rl.inspect("acl:f").await.expect("valid");
    assert!(seen.views().iter().all(|v| v.state.is_ok()), "{seen}");
    rl.release(fenced).await.expect("release as locker");
    // No lock key is left ("redlock:" alone is the fence hash, which
    // never expires).
    assert!(redlock_tests::keys_left(&masters, "redlock:?*")
        .await
        .is_empty());

    // The user really is limited: no data keys, no dangerous commands.
    let mut conn = masters[0].connection().expect("raw connection");
    let auth = conn
        .call(&["AUTH", "locker", "locker-pw"])
        .expect("AUTH reply");
    assert!(auth.is_ok(), "{auth:?}");
    for args in [
        &["GET", "data:x"][..],
        &["FLUSHALL"][..],
        &["KEYS", "*"][..],
        &["CONFIG", "GET", "*"][..],
    ] {
        let reply = conn.call(args).expect("reply");
        assert!(
            reply.as_error().is_some_and(|e| e.starts_with("NOPERM")),
            "{args:?}: {reply:?}"
        );
    }
}

#[tokio::test]
async fn a_user_without_the_prefix_gets_a_typed_failure_not_a_panic() {
    let masters = Masters::start(1);
    let reply = masters[0]
        .cmd(&[
            "ACL",
            "SETUSER",
            "narrow",
            "on",
            ">pw",
            "resetkeys",
            "~other:*",
            "+@all",
        ])
        .expect("ACL SETUSER");
    assert!(reply.is_ok());
    let rl = fresh_builder([format!("redis://narrow:pw@127.0.0.1:{}", masters[0].port())])
        .connect_core()
        .await
        .expect("connect works: INFO and SCRIPT LOAD are allowed");
    let err = rl
        .try_acquire("x")
        .await
        .expect_err("no access to redlock:*");
    assert!(err.to_string().contains("NOPERM"), "{err}");
    assert!(redlock_tests::keys_left(&masters, "*").await.is_empty());
}

#[tokio::test]
async fn passwords_and_tokens_never_printed() {
    let server = RedisServer::start_with(ServerOptions::default().with_password("hunter2-secret"));
    let good = format!("redis://:hunter2-secret@127.0.0.1:{}", server.port());
    let bad = format!("redis://:hunter2-wrong@127.0.0.1:{}", server.port());

    let builder = fresh_builder([good.clone()]);
    let shown = format!("{builder:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let err = fresh_builder([bad.clone()])
        .connect_core()
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ConfigError::Auth { .. }));
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let err = fresh_builder([format!(
        "redis://:hunter2-x@127.0.0.1:{}:bad",
        server.port()
    )])
    .connect_core()
    .await
    .expect_err("malformed");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let rl = builder.connect_core().await.expect("right password");
    assert!(!format!("{rl:?}").contains("hunter2"));
    let lock = rl.try_acquire("secret").await.expect("free");
    let token = lock.token().expose().to_owned();
    for shown in [
        format!("{lock:?}"),
        format!("{:?}", lock.token()),
        lock.token().to_string(),
        lock.votes().to_string(),
    ] {
        assert!(!shown.contains(&token), "{shown}");
    }
    let err = rl.try_acquire("secret").await.expect_err("held");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(&token), "{shown}");
    }
    let report = rl.release(lock).await.expect("release");
    assert!(!format!("{report:?}").contains(&token));
}
