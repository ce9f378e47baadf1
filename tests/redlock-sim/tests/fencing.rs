//! Fencing tokens over the quorum: fences strictly increase across
//! holders inside the fence's envelope (masters keep their counters), the
//! fenced resource loses no update even where the lock alone fails
//! (client pauses past the validity), and the checker catches the core's
//! mutant without the write-back round.
//!
//! `REDLOCK_SIM_SEEDS=N` runs N seeds of the claims instead of the CI
//! default (long mode), `REDLOCK_SIM_CONTROL_SEEDS=N` of the controls;
//! `REDLOCK_SIM_SEED=S` replays one seed with its full trace.

use redlock_sim::{
    assert_caught_by, assert_fences_hold, assert_no_violations, test_name, Scenario, Summary,
    Violation,
};

/// "Most seeds".
const MOST: f64 = 0.5;

/// The fence checks had work to do: fences were handed out, and compared
/// with earlier holders' (a check that compared nothing proves nothing).
fn assert_fences_checked(s: &Summary) {
    let t = &s.totals;
    assert!(
        t.fences_issued >= t.acquisitions && t.fences_issued > 0,
        "[{}] locks without fences: {t}",
        s.scenario
    );
    assert!(
        t.fences_compared >= t.fences_issued / 2,
        "[{}] too few fences compared with an earlier holder's: {t}",
        s.scenario
    );
}

/// Inside the model with every fault class (persisted restarts only):
/// no violation of any kind, fences strictly increasing.
#[test]
fn fenced_within_model_fences_strictly_increase() {
    let s = assert_no_violations(
        &Scenario::fenced_within_model(),
        test_name!("fenced_within_model_fences_strictly_increase"),
        200,
    );
    assert_fences_checked(&s);
    let t = &s.totals;
    s.assert_injected("crash with persistence", t.faults.crashes_persisted);
    s.assert_injected("master pause", t.faults.master_pauses);
    s.assert_injected("partition", t.faults.partitions);
    s.assert_injected("lost message", t.messages_lost);
    s.assert_injected("command applied after its caller's timeout", t.late_applies);
    s.assert_injected("command queued on a paused master", t.queued_while_paused);
    s.assert_injected("guard refusal", t.guard_refusals);
    s.assert_injected("forward clock jump", t.faults.clock_jumps_forward);
}

/// Twelve persisted restarts a second with the restart guard on.
#[test]
fn fenced_restart_with_persistence_fences_strictly_increase() {
    let s = assert_no_violations(
        &Scenario::fenced_restart_with_persistence(),
        test_name!("fenced_restart_with_persistence_fences_strictly_increase"),
        200,
    );
    assert_fences_checked(&s);
    s.assert_injected("crash with persistence", s.totals.faults.crashes_persisted);
    s.assert_injected("guard refusal", s.totals.guard_refusals);
}

/// Outside the lock's envelope: pauses between the validity check and the
/// action. The unfenced counter loses updates in most seeds; the fenced
/// resource loses none, and fences stay strictly increasing.
#[test]
fn fenced_pause_after_check_loses_no_update() {
    let s = assert_fences_hold(
        &Scenario::fenced_pause_after_validity_check(),
        test_name!("fenced_pause_after_check_loses_no_update"),
        200,
        MOST,
    );
    assert_fences_checked(&s);
    assert!(s.totals.pauses_after_check > 0);
    assert!(
        s.totals.fenced_refused > 0,
        "no stale holder was fenced out"
    );
}

/// Outside the lock's envelope: pauses longer than the validity between
/// the read and the write of an action.
#[test]
fn fenced_pause_mid_action_loses_no_update() {
    let s = assert_fences_hold(
        &Scenario::fenced_pause_mid_action(),
        test_name!("fenced_pause_mid_action_loses_no_update"),
        200,
        MOST,
    );
    assert_fences_checked(&s);
    assert!(s.totals.pauses_mid_action > 0);
    assert!(
        s.totals.fenced_refused > 0,
        "no stale holder was fenced out"
    );
}

/// Negative control: the core's mutant without the conditional write-back
/// (`mutant_no_fence_write_back`) breaks monotonicity in most seeds of
/// the in-model fenced scenario.
#[test]
fn negative_control_mutant_no_fence_write_back_is_caught() {
    let s = assert_caught_by(
        &Scenario::mutant_no_fence_write_back(),
        test_name!("negative_control_mutant_no_fence_write_back_is_caught"),
        200,
        MOST,
        Violation::is_monotonicity,
    );
    assert!(s.totals.fences_issued > 0);
}

/// Outside the fence's envelope (inside the lock's): masters restart
/// empty after the max TTL, which keeps mutual exclusion but forgets the
/// fence counters. Fences can then repeat or fall: the documented reason
/// fences need persistence. Asserts that the checker sees it, and that
/// the lock itself still held (no validity or action overlap).
#[test]
fn fenced_empty_restart_breaks_fences_outside_their_envelope() {
    let s = assert_caught_by(
        &Scenario::fenced_empty_restart(),
        test_name!("fenced_empty_restart_breaks_fences_outside_their_envelope"),
        200,
        0.0,
        Violation::is_monotonicity,
    );
    assert!(s.totals.faults.crashes_empty_after_ttl > 0);
    let (validity, actions, _) = s.by_kind();
    assert_eq!(
        (validity, actions),
        (0, 0),
        "mutual exclusion must hold here"
    );
}
