//! Admission: which master may vote, and from when. A pure state machine
//! fed with `now` and the facts the masters report; the production client
//! and the simulation both drive this one implementation (through
//! [`Admitted`](crate::Admitted)), so the rules the simulation checks are
//! the rules that ship.
//!
//! One [`Admission`] covers every master of one manager, because one rule
//! spans masters: two list entries that reach the same server must not both
//! vote.
//!
//! ```text
//!                 check() ─► Verify(g)                  verified(g, facts)
//!   ┌────────────┐ ───────────────────────────────────────────────────► ┌──────────────────────┐
//!   │ Unverified │                                                      │ Verified { votes_from,│
//!   └────────────┘ ◄──────────── reconnected() (generation + 1) ─────── │            run_id }   │
//!     ▲     │                                                           └──────────────────────┘
//!     │     │ verified(g, facts): replica, or same run_id as a verified master
//!     │     ▼
//!   ┌─────────────────────────┐
//!   │ Refused { until }       │  retried at `until`, or at once after a reconnect
//!   └─────────────────────────┘
//! ```
//!
//! The rules:
//!
//! - **Generations.** Every reconnect starts a new generation and forgets
//!   what was known about the server (it may be another process now). A
//!   verification counts only if no reconnect happened since it started; a
//!   vote counts only if no reconnect happened while it was in flight
//!   ([`Admission::confirm`]).
//! - **Identity.** A replica never votes. Two entries whose current
//!   connections reach one server (same `run_id`) never both vote: the one
//!   verified first keeps voting, the newcomer is refused and checked again
//!   [`RECHECK_AFTER`] later, so a routing mistake that is fixed heals by
//!   itself and never removes a master for good.
//! - **Restart guard.** A master that restarted empty may have forgotten
//!   keys other holders count on. It grants no acquire until it has been up
//!   for the *guard window*, which is the deployment-wide maximum TTL (no
//!   client knows the TTLs of the others, so every client of a deployment
//!   must share the bound; [`Settings::max_ttl`](crate::Settings::max_ttl)).
//!   Redis reports uptime in whole seconds computed from two truncated wall
//!   clock readings, so a reported uptime of `u` means a true uptime above
//!   `u - 1 s`: the guard adds [`UPTIME_GRANULARITY`].
//! - **Clock check** (opt-in): a master whose clock rate is suspect grants
//!   neither acquire nor extend.

use std::time::{Duration, Instant};

use crate::clock::{ClockCheck, ClockSample, ClockVerdict};
use crate::config::Ttl;
use crate::tally::MasterFailure;

/// How much Redis's `uptime_in_seconds` may exceed the true uptime: it is
/// the difference of two wall-clock readings truncated to whole seconds, so
/// a server up for 0.05 s may already report 1.
pub const UPTIME_GRANULARITY: Duration = Duration::from_secs(1);

/// How long a master refused for its identity (a replica, or the same
/// server as another entry) waits before it is checked again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// How often a master's clock is sampled while it is in use (clock check).
pub const CLOCK_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What a master says about itself (from `INFO`), as it says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterFacts {
    /// The server process's random id (`run_id`): new at every start.
    pub run_id: String,
    /// `master` or `slave` (`role`).
    pub role: String,
    /// `uptime_in_seconds`, as reported (whole seconds, see
    /// [`UPTIME_GRANULARITY`]).
    pub uptime_secs: u64,
}

/// What a call wants to do on a master; the rules differ per operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Set keys: identity, restart guard and clock check apply.
    Acquire {
        /// The TTL asked for.
        ttl: Ttl,
    },
    /// Lengthen our keys: identity and clock check apply; the restart
    /// guard too when missing keys may be re-created.
    Extend {
        /// The TTL asked for.
        ttl: Ttl,
        /// Whether missing keys are re-created.
        recreate: bool,
    },
    /// Delete our keys (or read, for inspection): always safe, never held
    /// back, not even on a refused master.
    Release,
    /// Write a fence where our token holds the keys: like a plain extend,
    /// identity and clock check apply, the restart guard does not.
    Fence,
}

/// The answer of [`Admission::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send the command; pass the [`Pass`] to [`Admission::confirm`] once
    /// the reply is in.
    Proceed(Pass),
    /// Ask the master who it is first (generation given), report it with
    /// [`Admission::verified`], then check again.
    Verify(u64),
    /// Do not send: this master does not take part now.
    Refuse(MasterFailure),
}

/// Permission for one call, tied to the connection generation it was
/// given in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    generation: u64,
}

impl Pass {
    /// The connection generation the call was admitted in.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Why [`Admission::verified`] did not admit a master.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The connection was replaced while the master was being asked: the
    /// answer may describe another server. Ask again.
    Stale,
    /// The server is a replica (or reports another role).
    NotMaster {
        /// The role it reported.
        role: String,
    },
    /// Another entry's current connection reaches the same server.
    SameServerAs {
        /// Index of the entry verified first.
        other: usize,
        /// The shared `run_id`.
        run_id: String,
    },
}

impl Refusal {
    /// The vote failure this refusal stands for.
    pub fn to_failure(&self) -> MasterFailure {
        match self {
            Self::Stale => {
                MasterFailure::Unreachable("reconnected while its identity was checked".into())
            }
            Self::NotMaster { role } => {
                MasterFailure::Misconfigured(format!("role is {role}, not master"))
            }
            Self::SameServerAs { other, .. } => {
                MasterFailure::Misconfigured(format!("same server as master #{other}"))
            }
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Unverified,
    Verified {
        run_id: String,
        votes_from: Instant,
    },
    Refused {
        failure: MasterFailure,
        until: Instant,
    },
}

#[derive(Clone, Debug)]
struct Slot {
    generation: u64,
    state: State,
    clock: Option<ClockSlot>,
}

#[derive(Clone, Debug)]
struct ClockSlot {
    check: ClockCheck,
    last_sample: Option<Instant>,
}

/// The admission rules of the masters of one manager. Pure: no clock, no
/// I/O; every call takes the facts and the time it needs.
#[derive(Clone, Debug)]
pub struct Admission {
    slots: Vec<Slot>,
    /// The restart guard's window (the deployment's maximum TTL), or
    /// `None` with the guard off.
    guard_window: Option<Duration>,
    #[cfg(feature = "__broken-for-negative-controls")]
    mutants: Mutants,
}

/// Deliberately broken variants, for the simulation's negative controls.
#[cfg(feature = "__broken-for-negative-controls")]
#[derive(Clone, Debug, Default)]
struct Mutants {
    /// The guard window is the longest TTL this client used (the old rule).
    window_from_own_ttl: bool,
    /// Reported uptime is taken as exact.
    no_uptime_margin: bool,
    longest_ttl: Option<Duration>,
}

impl Admission {
    /// Rules for `masters` masters. `guard_window`: the restart guard's
    /// window (the deployment-wide maximum TTL), `None` to turn the guard
    /// off. `clock_budget`: the clock check's rate budget (the drift
    /// factor), `None` to turn it off.
    pub fn new(masters: usize, guard_window: Option<Duration>, clock_budget: Option<f64>) -> Self {
        let slot = Slot {
            generation: 0,
            state: State::Unverified,
            clock: clock_budget.map(|budget| ClockSlot {
                check: ClockCheck::new(budget, Duration::from_secs(30), Duration::from_millis(500)),
                last_sample: None,
            }),
        };
        Self {
            slots: vec![slot; masters],
            guard_window,
            #[cfg(feature = "__broken-for-negative-controls")]
            mutants: Mutants::default(),
        }
    }

    /// The rules a manager with `settings` applies: the restart guard's
    /// window is the deployment's maximum TTL when the guard is on, the
    /// clock check's budget the drift factor when the check is on. The
    /// production builder and the simulation both build theirs here.
    pub fn for_settings(settings: &crate::Settings) -> Self {
        let guard_window = settings
            .restart_guard()
            .then(|| settings.max_ttl().as_duration());
        let clock_budget = settings
            .clock_check()
            .then(|| settings.drift_factor().get());
        Self::new(settings.quorum().masters(), guard_window, clock_budget)
    }

    /// Number of masters.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no masters.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The current connection generation of master `i`.
    pub fn generation(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.generation)
    }

    /// Master `i`'s connection was replaced (fred's reconnect event): the
    /// server may be another process now. Everything known about it is
    /// forgotten, including a refusal, and calls in flight stop counting.
    pub fn reconnected(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            s.generation += 1;
            s.state = State::Unverified;
        }
    }

    /// Whether master `i` may take part in `intent` at `now`.
    pub fn check(&mut self, i: usize, now: Instant, intent: Intent) -> Gate {
        #[cfg(feature = "__broken-for-negative-controls")]
        if let Intent::Acquire { ttl } | Intent::Extend { ttl, .. } = intent {
            let m = &mut self.mutants;
            m.longest_ttl = m.longest_ttl.max(Some(ttl.as_duration()));
        }
        let Some(slot) = self.slots.get_mut(i) else {
            return Gate::Refuse(MasterFailure::Misconfigured("no such master".into()));
        };
        if intent == Intent::Release {
            // Deleting keys that hold our token is safe on any server, and
            // a key of ours may sit on a master refused since it was set
            // (a command sent just before a reconnect reached another
            // server): a release is never held back.
            return Gate::Proceed(Pass {
                generation: slot.generation,
            });
        }
        let votes_from = match &slot.state {
            State::Refused { failure, until } => {
                if now < *until {
                    return Gate::Refuse(failure.clone());
                }
                slot.state = State::Unverified;
                return Gate::Verify(slot.generation);
            }
            State::Unverified => return Gate::Verify(slot.generation),
            State::Verified { votes_from, .. } => *votes_from,
        };
        let guarded = matches!(
            intent,
            Intent::Acquire { .. } | Intent::Extend { recreate: true, .. }
        );
        if guarded {
            let wait = votes_from.saturating_duration_since(now);
            if !wait.is_zero() {
                return Gate::Refuse(MasterFailure::RecentlyRestarted { votes_in: wait });
            }
        }
        if let Some(ClockVerdict::Suspect { rate }) = slot.clock.as_ref().map(|c| c.check.verdict())
        {
            return Gate::Refuse(MasterFailure::ClockSuspect {
                rate_ppm: (rate * 1e6) as i64,
            });
        }
        Gate::Proceed(Pass {
            generation: slot.generation,
        })
    }

    /// With the clock check on: whether a `TIME` sample of master `i` is
    /// due at `now`, claiming it (so concurrent calls do not all sample).
    /// Asked before every acquire and extend, whatever the gate says: a
    /// suspect master keeps being sampled so it can recover.
    pub fn take_clock_sample(&mut self, i: usize, now: Instant) -> bool {
        let Some(clock) = self.slots.get_mut(i).and_then(|s| s.clock.as_mut()) else {
            return false;
        };
        let due = clock
            .last_sample
            .is_none_or(|t| now.saturating_duration_since(t) >= CLOCK_SAMPLE_EVERY);
        if due {
            clock.last_sample = Some(now);
        }
        due
    }

    /// Reports what master `i` said about itself when asked in
    /// `generation`; `observed_at` is when the answer arrived (the server
    /// read its uptime before that).
    ///
    /// # Errors
    ///
    /// The [`Refusal`]: the answer is stale (a reconnect since), the
    /// server is not a master, or another entry reaches the same server.
    /// The master is then refused until [`RECHECK_AFTER`] has passed or
    /// it reconnects.
    pub fn verified(
        &mut self,
        i: usize,
        generation: u64,
        observed_at: Instant,
        facts: &MasterFacts,
    ) -> Result<(), Refusal> {
        if self.slots.get(i).is_none_or(|s| s.generation != generation) {
            return Err(Refusal::Stale);
        }
        let refusal = if facts.role != "master" {
            Some(Refusal::NotMaster {
                role: facts.role.clone(),
            })
        } else {
            self.slots
                .iter()
                .enumerate()
                .find(|(j, s)| {
                    *j != i
                        && matches!(&s.state, State::Verified { run_id, .. } if *run_id == facts.run_id)
                })
                .map(|(other, _)| Refusal::SameServerAs {
                    other,
                    run_id: facts.run_id.clone(),
                })
        };
        let votes_from = self.votes_from(observed_at, facts.uptime_secs);
        let slot = &mut self.slots[i];
        match refusal {
            Some(r) => {
                slot.state = State::Refused {
                    failure: r.to_failure(),
                    until: observed_at
                        .checked_add(RECHECK_AFTER)
                        .unwrap_or(observed_at),
                };
                Err(r)
            }
            None => {
                slot.state = State::Verified {
                    run_id: facts.run_id.clone(),
                    votes_from,
                };
                Ok(())
            }
        }
    }

    /// After the reply to a call admitted with `pass`: the vote counts
    /// only if master `i`'s connection was not replaced meanwhile (the
    /// reply may come from a server restarted since it was checked).
    ///
    /// # Errors
    ///
    /// [`MasterFailure::Unreachable`] when it was.
    pub fn confirm(&self, i: usize, pass: &Pass) -> Result<(), MasterFailure> {
        if self.generation(i) == pass.generation {
            Ok(())
        } else {
            Err(MasterFailure::Unreachable(
                "reconnected during the call".into(),
            ))
        }
    }

    /// Feeds a `TIME` sample of master `i` to the clock check.
    pub fn clock_sample(&mut self, i: usize, sample: ClockSample) {
        if let Some(clock) = self.slots.get_mut(i).and_then(|s| s.clock.as_mut()) {
            clock.check.observe(sample);
        }
    }

    /// The clock check's verdict on master `i`, `None` with the check off.
    pub fn clock_verdict(&self, i: usize) -> Option<ClockVerdict> {
        self.slots
            .get(i)
            .and_then(|s| s.clock.as_ref())
            .map(|c| c.check.verdict())
    }

    /// Whether master `i` is verified and may grant acquires at `now`.
    pub fn votes_at(&self, i: usize, now: Instant) -> bool {
        matches!(self.slots.get(i).map(|s| &s.state), Some(State::Verified { votes_from, .. }) if *votes_from <= now)
    }

    /// The restart guard's rule: when a master that reported
    /// `uptime_secs` in an answer that arrived at `observed_at` may grant
    /// acquires. It restarted after `observed_at - (uptime_secs + 1 s)`
    /// (the reported uptime may exceed the true one by up to
    /// [`UPTIME_GRANULARITY`]); every key it lost then was set with a TTL
    /// of at most the window, so every lock that counted on it is past its
    /// validity once the window has passed since the restart.
    fn votes_from(&self, observed_at: Instant, uptime_secs: u64) -> Instant {
        let Some(window) = self.guard_window else {
            return observed_at;
        };
        #[allow(unused_mut)]
        let (mut window, mut margin) = (window, UPTIME_GRANULARITY);
        #[cfg(feature = "__broken-for-negative-controls")]
        {
            if self.mutants.window_from_own_ttl {
                window = self.mutants.longest_ttl.unwrap_or(window);
            }
            if self.mutants.no_uptime_margin {
                margin = Duration::ZERO;
            }
        }
        let wait = (window + margin).saturating_sub(Duration::from_secs(uptime_secs));
        observed_at.checked_add(wait).unwrap_or(observed_at)
    }

    /// Breaks the restart guard on purpose: its window becomes the longest
    /// TTL this client used, as if clients knew each other's TTLs. Only
    /// for the simulation's negative controls.
    #[cfg(feature = "__broken-for-negative-controls")]
    #[doc(hidden)]
    pub fn mutant_window_from_own_ttl(&mut self) {
        self.mutants.window_from_own_ttl = true;
    }

    /// Breaks the restart guard on purpose: the reported uptime is taken
    /// as exact. Only for the simulation's negative controls.
    #[cfg(feature = "__broken-for-negative-controls")]
    #[doc(hidden)]
    pub fn mutant_no_uptime_margin(&mut self) {
        self.mutants.no_uptime_margin = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(run_id: &str, uptime_secs: u64) -> MasterFacts {
        MasterFacts {
            run_id: run_id.into(),
            role: "master".into(),
            uptime_secs,
        }
    }

    fn ttl(ms: u64) -> Ttl {
        Ttl::from_millis(ms).expect("valid ttl")
    }

    fn acquire() -> Intent {
        Intent::Acquire { ttl: ttl(1_000) }
    }

    fn admit(a: &mut Admission, i: usize, now: Instant, f: &MasterFacts) -> Result<(), Refusal> {
        match a.check(i, now, acquire()) {
            Gate::Verify(g) => a.verified(i, g, now, f),
            other => panic!("expected Verify, got {other:?}"),
        }
    }

    #[test]
    fn unverified_masters_are_verified_before_voting_but_not_before_release() {
        let mut a = Admission::new(3, None, None);
        let t = Instant::now();
        assert_eq!(a.check(0, t, acquire()), Gate::Verify(0));
        assert!(matches!(a.check(0, t, Intent::Release), Gate::Proceed(_)));
        assert!(matches!(
            a.check(
                0,
                t,
                Intent::Extend {
                    ttl: ttl(5),
                    recreate: false
                }
            ),
            Gate::Verify(0)
        ));
        assert_eq!(admit(&mut a, 0, t, &facts("a", 100)), Ok(()));
        assert!(matches!(a.check(0, t, acquire()), Gate::Proceed(_)));
    }

    /// Hole: the guard window was each client's own TTL. Now it is the
    /// deployment-wide window whatever TTL the client asks for.
    #[test]
    fn guard_window_is_deployment_wide_not_the_callers_ttl() {
        let window = Duration::from_secs(8);
        let mut a = Admission::new(1, Some(window), None);
        let t = Instant::now();
        admit(&mut a, 0, t, &facts("a", 2)).expect("a master");
        // A client asking for 2 s must still wait for an 8 s window
        // (+1 s of uptime granularity): 8 + 1 - 2 = 7 s.
        let short = Intent::Acquire { ttl: ttl(2_000) };
        match a.check(0, t + Duration::from_secs(3), short) {
            Gate::Refuse(MasterFailure::RecentlyRestarted { votes_in }) => {
                assert_eq!(votes_in, Duration::from_secs(4));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            a.check(0, t + Duration::from_secs(7), short),
            Gate::Proceed(_)
        ));
    }

    /// Hole: uptime is reported in whole seconds (truncated wall clock),
    /// so "1" can mean 0.05 s. The guard adds the granularity.
    #[test]
    fn reported_uptime_gets_the_granularity_margin() {
        let mut a = Admission::new(1, Some(Duration::from_secs(1)), None);
        let t = Instant::now();
        admit(&mut a, 0, t, &facts("a", 1)).expect("a master");
        assert!(matches!(a.check(0, t, acquire()), Gate::Refuse(_)));
        assert!(!a.votes_at(0, t + Duration::from_millis(999)));
        assert!(a.votes_at(0, t + Duration::from_secs(1)));
    }

    #[test]
    fn guard_does_not_hold_back_release_or_plain_extend() {
        let mut a = Admission::new(1, Some(Duration::from_secs(60)), None);
        let t = Instant::now();
        admit(&mut a, 0, t, &facts("a", 0)).expect("a master");
        assert!(matches!(a.check(0, t, Intent::Release), Gate::Proceed(_)));
        let plain = Intent::Extend {
            ttl: ttl(5),
            recreate: false,
        };
        assert!(matches!(a.check(0, t, plain), Gate::Proceed(_)));
        let recreate = Intent::Extend {
            ttl: ttl(5),
            recreate: true,
        };
        assert!(matches!(
            a.check(0, t, recreate),
            Gate::Refuse(MasterFailure::RecentlyRestarted { .. })
        ));
    }

    /// Hole: a master rejected for an identity clash was rejected forever.
    #[test]
    fn identity_clash_heals_after_recheck_or_reconnect() {
        let mut a = Admission::new(2, None, None);
        let t = Instant::now();
        admit(&mut a, 1, t, &facts("b", 100)).expect("first");
        // Entry 0 is misrouted to entry 1's server.
        assert_eq!(
            admit(&mut a, 0, t, &facts("b", 100)),
            Err(Refusal::SameServerAs {
                other: 1,
                run_id: "b".into()
            })
        );
        assert!(matches!(
            a.check(0, t, acquire()),
            Gate::Refuse(MasterFailure::Misconfigured(_))
        ));
        // The routing is fixed and the connection replaced: checked again.
        a.reconnected(0);
        assert_eq!(admit(&mut a, 0, t, &facts("a", 100)), Ok(()));
        assert!(matches!(a.check(0, t, acquire()), Gate::Proceed(_)));
    }

    /// Hole: a stale run id could make the correctly configured entry the
    /// one rejected, for good. Run ids belong to the current connection,
    /// and a refused entry is checked again after `RECHECK_AFTER`.
    #[test]
    fn correct_entry_refused_by_a_misrouted_one_comes_back() {
        let mut a = Admission::new(2, None, None);
        let t = Instant::now();
        // Entry 0 is misrouted to B and verified first; entry 1 (really B)
        // is the one refused.
        admit(&mut a, 0, t, &facts("b", 100)).expect("first");
        assert!(admit(&mut a, 1, t, &facts("b", 100)).is_err());
        // The mistake is fixed: entry 0 reconnects to its own server A.
        a.reconnected(0);
        assert_eq!(admit(&mut a, 0, t, &facts("a", 100)), Ok(()));
        // Entry 1 never reconnected; it is checked again after the delay.
        assert!(matches!(a.check(1, t, acquire()), Gate::Refuse(_)));
        let later = t + RECHECK_AFTER;
        assert_eq!(a.check(1, later, acquire()), Gate::Verify(0));
        assert_eq!(a.verified(1, 0, later, &facts("b", 101)), Ok(()));
    }

    /// Hole: verification did not re-check the reconnect generation.
    #[test]
    fn verification_spanning_a_reconnect_does_not_count() {
        let mut a = Admission::new(1, Some(Duration::from_secs(10)), None);
        let t = Instant::now();
        let Gate::Verify(g) = a.check(0, t, acquire()) else {
            panic!("expected Verify")
        };
        // The old server answered INFO (up for long), then it restarted
        // and the client reconnected before the answer was recorded.
        a.reconnected(0);
        assert_eq!(
            a.verified(0, g, t, &facts("old", 1_000)),
            Err(Refusal::Stale)
        );
        assert!(!a.votes_at(0, t));
        assert_eq!(a.check(0, t, acquire()), Gate::Verify(g + 1));
    }

    #[test]
    fn vote_spanning_a_reconnect_does_not_count() {
        let mut a = Admission::new(1, None, None);
        let t = Instant::now();
        admit(&mut a, 0, t, &facts("a", 100)).expect("a master");
        let Gate::Proceed(pass) = a.check(0, t, acquire()) else {
            panic!("expected Proceed")
        };
        assert_eq!(a.confirm(0, &pass), Ok(()));
        a.reconnected(0);
        assert!(matches!(
            a.confirm(0, &pass),
            Err(MasterFailure::Unreachable(_))
        ));
    }

    #[test]
    fn replica_refused_then_rechecked() {
        let mut a = Admission::new(1, None, None);
        let t = Instant::now();
        let replica = MasterFacts {
            role: "slave".into(),
            ..facts("r", 100)
        };
        assert!(matches!(
            admit(&mut a, 0, t, &replica),
            Err(Refusal::NotMaster { .. })
        ));
        // A release is never held back: a key of ours may be there.
        assert!(matches!(a.check(0, t, Intent::Release), Gate::Proceed(_)));
        assert!(matches!(a.check(0, t, acquire()), Gate::Refuse(_)));
        // Promoted meanwhile.
        assert_eq!(
            admit(&mut a, 0, t + RECHECK_AFTER, &facts("r", 101)),
            Ok(())
        );
    }

    #[test]
    fn suspect_clock_refuses_votes_but_keeps_sampling() {
        let mut a = Admission::new(1, None, Some(0.01));
        let t = Instant::now();
        admit(&mut a, 0, t, &facts("a", 100)).expect("a master");
        assert!(a.take_clock_sample(0, t));
        assert!(!a.take_clock_sample(0, t + Duration::from_millis(10)));
        // The master's clock runs 10% fast.
        for k in 0..=10u64 {
            let at = t + Duration::from_millis(100 * k);
            a.clock_sample(
                0,
                ClockSample {
                    sent: at,
                    received: at,
                    master: Duration::from_secs(1_000) + Duration::from_millis(110 * k),
                },
            );
        }
        assert!(matches!(
            a.check(0, t + Duration::from_millis(500), acquire()),
            Gate::Refuse(MasterFailure::ClockSuspect { .. })
        ));
        assert!(matches!(
            a.check(0, t + Duration::from_millis(600), Intent::Release),
            Gate::Proceed(_)
        ));
        assert!(a.take_clock_sample(0, t + Duration::from_secs(1)));
    }
}
