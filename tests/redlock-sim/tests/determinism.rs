//! A seed replays exactly: same trace, same counters, same violations.

use redlock_sim::{run_seed, Scenario};

#[test]
fn same_seed_gives_identical_trace_and_summary() {
    for scenario in [
        Scenario::within_model(),
        Scenario::immediate_restart_without_persistence(),
    ] {
        for seed in [0, 7, 12345] {
            let a = run_seed(&scenario, seed, true);
            let b = run_seed(&scenario, seed, true);
            assert!(!a.trace.is_empty(), "the trace was asked for");
            assert_eq!(
                a.trace, b.trace,
                "[{}] seed {seed}: traces differ",
                scenario.name
            );
            assert_eq!(a, b, "[{}] seed {seed}: reports differ", scenario.name);
            // Tracing only formats what happened; it changes nothing.
            let c = run_seed(&scenario, seed, false);
            assert_eq!(
                a.fingerprint, c.fingerprint,
                "[{}] seed {seed}: tracing changed the run",
                scenario.name
            );
            assert_eq!(a.stats, c.stats);
            assert_eq!(a.violations, c.violations);
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let s = Scenario::within_model();
    let a = run_seed(&s, 1, false);
    let b = run_seed(&s, 2, false);
    assert_ne!(a.fingerprint, b.fingerprint, "the seed must drive the run");
}
