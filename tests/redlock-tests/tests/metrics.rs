//! The adapter's `metrics` feature against real masters: the counters,
//! gauges and histograms an operator scrapes move as locks are taken,
//! refused, extended, released and lost. (Its own process: the recorder is
//! global.)

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use redlock_testing::Masters;
use redlock_tokio::{LockManager, LockOptions};

fn value(rendered: &str, line_start: &str) -> Option<f64> {
    rendered
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_follow_acquire_contention_hold_and_loss() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this process");

    let mut masters = Masters::start(3);
    let locks = LockManager::builder(masters.urls())
        .settings(|s| {
            s.danger_disable_restart_guard(true)
                .ttl(Duration::from_millis(500))
        })
        .connect()
        .await
        .expect("connect");
    let held = locks.try_acquire("m").await.expect("free");
    assert!(locks.try_acquire("m").await.is_err(), "busy");
    let rendered = handle.render();
    assert_eq!(value(&rendered, "redlock_held "), Some(1.0), "{rendered}");
    assert_eq!(
        value(&rendered, "redlock_acquire_total{outcome=\"acquired\"}"),
        Some(1.0),
        "{rendered}"
    );
    assert_eq!(
        value(&rendered, "redlock_acquire_total{outcome=\"contended\"}"),
        Some(1.0),
        "{rendered}"
    );
    // Kept past a few TTLs by the watchdog.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    held.release().await.expect("release");
    let rendered = handle.render();
    assert_eq!(value(&rendered, "redlock_held "), Some(0.0), "{rendered}");
    assert!(
        value(&rendered, "redlock_extensions_total{outcome=\"ok\"}").is_some_and(|n| n >= 1.0),
        "{rendered}"
    );
    assert!(rendered.contains("redlock_hold_seconds"), "{rendered}");

    // A loss: a majority of masters dies under a held lock.
    let lost = locks
        .acquire_with("m", &LockOptions::once())
        .await
        .expect("free again");
    masters.get_mut(0).kill();
    masters.get_mut(1).kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), lost.lost()).await;
    drop(lost);
    locks.shutdown(Duration::from_secs(2)).await;
    let rendered = handle.render();
    assert!(
        value(&rendered, "redlock_losses_total{reason=").is_some_and(|n| n >= 1.0),
        "{rendered}"
    );
}
