//! Outside the fault model: each of these must be caught by the checker in
//! most seeds. A checker that cannot catch them proves nothing.
//!
//! Each control is the twin of an in-model scenario in `within_model.rs`
//! (same seeds, same fault rates) with exactly one parameter moved across
//! the model's boundary. `REDLOCK_SIM_CONTROL_SEEDS=N` changes the number
//! of seeds; `REDLOCK_SIM_SEED=S` replays one seed with its trace.

use redlock_sim::{assert_caught, test_name, Scenario};

/// "Most seeds".
const MOST: f64 = 0.5;

#[test]
fn negative_control_mutant_no_elapsed_check_is_caught() {
    let s = assert_caught(
        &Scenario::mutant_no_elapsed_check(),
        test_name!("negative_control_mutant_no_elapsed_check_is_caught"),
        100,
        MOST,
    );
    assert_eq!(
        s.totals.faults.total()
            - s.totals.faults.clock_jumps_forward
            - s.totals.faults.clock_jumps_backward,
        0
    );
}

#[test]
fn negative_control_immediate_restart_without_persistence_is_caught() {
    let s = assert_caught(
        &Scenario::immediate_restart_without_persistence(),
        test_name!("negative_control_immediate_restart_without_persistence_is_caught"),
        100,
        MOST,
    );
    assert!(s.totals.faults.crashes_empty_immediately > 0);
}

#[test]
fn negative_control_clock_jump_beyond_drift_is_caught() {
    let s = assert_caught(
        &Scenario::clock_jump_beyond_drift(),
        test_name!("negative_control_clock_jump_beyond_drift_is_caught"),
        100,
        MOST,
    );
    assert!(s.totals.faults.clock_jumps_forward > 0);
}

#[test]
fn negative_control_pause_after_validity_check_is_caught() {
    let s = assert_caught(
        &Scenario::pause_after_validity_check(),
        test_name!("negative_control_pause_after_validity_check_is_caught"),
        100,
        MOST,
    );
    assert!(s.totals.pauses_after_check > 0);
}

/// The restart guard's window taken from the client's own TTL (the old
/// rule, the core's `mutant_window_from_own_ttl`): a 2 s holder loses its
/// key to an empty restart, and a 100-200 ms client trusts the restarted
/// master after its own short window. Twin:
/// `mixed_ttl_empty_restart_guard_window_is_max_ttl_no_violation`.
#[test]
fn negative_control_guard_window_from_own_ttl_is_caught() {
    let s = assert_caught(
        &Scenario::mutant_guard_window_from_own_ttl(),
        test_name!("negative_control_guard_window_from_own_ttl_is_caught"),
        100,
        MOST,
    );
    assert!(s.totals.faults.crashes_empty_immediately > 0);
    assert!(s.totals.guard_refusals > 0);
}

/// Uptime compared without the whole-second granularity margin (the
/// core's `mutant_no_uptime_margin`): with TTLs of 1-1.5 s, a master that
/// restarted at a late sub-second phase reports a second more than it has
/// been up. Twin: `whole_second_uptime_with_granularity_margin_no_violation`.
#[test]
fn negative_control_uptime_without_granularity_margin_is_caught() {
    let s = assert_caught(
        &Scenario::mutant_no_uptime_margin(),
        test_name!("negative_control_uptime_without_granularity_margin_is_caught"),
        100,
        MOST,
    );
    assert!(s.totals.faults.crashes_empty_immediately > 0);
    assert!(s.totals.uptime_overstated > 0);
}
