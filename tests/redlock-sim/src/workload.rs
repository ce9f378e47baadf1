//! The simulated clients: each runs the core's own `acquire`, `extend` and
//! `release` through its own `Redlock` over its own links, and records what
//! it believed and did for the checker.

use std::sync::Arc;
use std::time::Duration;

use crate::rng::SimRng;
use rand::{Rng, RngCore};
use redlock_core::{
    drift, AcquireOptions, DriftFactor, Fence, Lock, MasterFailure, ResourceSet, Token, Ttl,
    VoteOutcome, Votes,
};

use crate::cluster::{setup, SimRedlock};
use crate::scenario::Millis;
use crate::world::{lock as locked, World};

/// The guarded resource, and the one some acquisitions add to it.
const GUARDED: &str = "guarded";
const OTHER: &str = "other";

fn ms(rng: &mut SimRng, (lo, hi): Millis) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

/// A fresh 128-bit token from the seed: `Token::random()` would read the OS
/// RNG, and a replay must see the very same values.
fn token(rng: &mut SimRng) -> Token {
    let hex: String = (0..2).map(|_| format!("{:016x}", rng.next_u64())).collect();
    // 32 lowercase hex digits is exactly the format `Token::parse` accepts.
    Token::parse(&hex).expect("32 lowercase hex digits form a valid token")
}

/// What the votes of an `acquire` show about the admission gate: masters
/// the restart guard held back, and (for a granted lock) masters that
/// failed this client's set-up and vote now.
fn observe_votes(world: &World, client: usize, votes: &Votes, granted: bool) {
    let mut st = locked(&world.stats);
    for v in votes.iter() {
        match &v.outcome {
            VoteOutcome::Failed(MasterFailure::RecentlyRestarted { .. }) => st.guard_refusals += 1,
            VoteOutcome::Granted if granted && world.joined(client, v.master) => {
                st.late_joins += 1;
            }
            _ => {}
        }
    }
}

/// One client's life: start-up (every master asked who it is, as the
/// production builder does), then its loop until the scenario's duration
/// is over.
pub(crate) async fn client(
    world: Arc<World>,
    client: usize,
    redlock: Arc<SimRedlock>,
    mut rng: SimRng,
) {
    let single = ResourceSet::try_from(GUARDED).expect("constant resource name is valid");
    let pair = ResourceSet::try_from([GUARDED, OTHER]).expect("constant resource names are valid");
    let w = world.scenario.workload.clone();
    // This client's TTL, if the scenario gives clients TTLs of their own:
    // drawn once, unknown to the other clients.
    let ttl = match w.ttl_ms.get(client).or(w.ttl_ms.last()) {
        Some(&range) => ms(&mut rng, range),
        None => world.scenario.ttl,
    };
    let options = if w.ttl_ms.is_empty() {
        AcquireOptions::new()
    } else {
        AcquireOptions::new().ttl(ttl)
    };
    // What the core subtracts from `start + ttl` for the validity: with
    // it, the start of the winning attempt is exact (fence order check).
    let budget = match (
        Ttl::try_from(ttl),
        DriftFactor::new(world.scenario.drift_factor),
    ) {
        (Ok(t), Ok(f)) => ttl.saturating_sub(drift(t, f)),
        _ => ttl,
    };
    setup(&world, client, &redlock).await;
    while world.elapsed() < world.scenario.duration {
        tokio::time::sleep(ms(&mut rng, w.think_ms)).await;
        let resources = if rng.gen_bool(w.multi_resource_prob) {
            &pair
        } else {
            &single
        };
        let token = token(&mut rng);
        match redlock.acquire_with(resources, &options, token).await {
            Ok(lock) => {
                observe_votes(&world, client, lock.votes(), true);
                hold(&world, client, &redlock, lock, budget, &mut rng).await;
            }
            Err(e) => {
                if let Some(votes) = e.votes() {
                    observe_votes(&world, client, votes, false);
                }
                locked(&world.stats).acquire_failures += 1;
                world.event("acq-fail", [client as u64, 0, 0], || {
                    format!("c{client} acquire failed: {e}")
                });
            }
        }
    }
}

/// Holds one lock: protected actions, maybe extends, then release.
async fn hold(
    world: &World,
    client: usize,
    redlock: &SimRedlock,
    mut lock: Lock,
    budget: Duration,
    rng: &mut SimRng,
) {
    let w = &world.scenario.workload;
    let action = Duration::from_millis(w.action_ms);
    let granted_at = world.elapsed();
    let valid_until = world.since_start(lock.valid_until());
    let holder = locked(&world.history).acquired(client, granted_at, valid_until);
    let fence = lock.fence().map(Fence::get);
    if let Some(f) = fence {
        // `valid_until = start + budget`, `start` read by the core just
        // before the attempt's first command.
        let began = valid_until.saturating_sub(budget);
        locked(&world.history).fenced(holder, began, f);
        world.event("fence", [client as u64, holder as u64, f], || {
            format!(
                "c{client} holder #{holder} has fence {f} (attempt began {:.3}ms)",
                began.as_secs_f64() * 1e3
            )
        });
    }
    world.event("acquired", [client as u64, holder as u64, 0], || {
        format!(
            "c{client} ACQUIRED as holder #{holder}, valid until {:.3}ms ({})",
            world.since_start(lock.valid_until()).as_secs_f64() * 1e3,
            lock.votes()
        )
    });
    let hold_to_end = rng.gen_bool(w.hold_to_end_prob);
    let planned = if hold_to_end {
        w.max_actions
    } else {
        rng.gen_range(w.actions.0..=w.actions.1)
    };
    let mut done = 0;
    let mut extends = 0;
    while done < planned {
        if rng.gen_bool(w.client_pause_prob) {
            // In the model: a pause before the check (GC, swap, SIGSTOP).
            locked(&world.stats).client_pauses += 1;
            tokio::time::sleep(ms(rng, w.client_pause_ms)).await;
        }
        // The check the library asks for: the lock must still be valid when
        // the action *ends* (the timer rounds up to whole milliseconds,
        // hence the extra one).
        let now = tokio::time::Instant::now().into_std();
        if !lock.is_valid_at(now + action + Duration::from_millis(1)) {
            break;
        }
        let check_at = world.elapsed();
        if rng.gen_bool(w.pause_after_check_prob) {
            // Outside the model: the pause lands between check and action.
            locked(&world.stats).pauses_after_check += 1;
            tokio::time::sleep(ms(rng, w.pause_after_check_ms)).await;
        }
        let read_at = world.elapsed();
        let value = *locked(&world.counter);
        // The same read-modify-write on the fenced resource, with the
        // lock's fence; it may refuse the read (a higher fence came
        // first): then the holder skips its write there.
        let fenced_read = fence.and_then(|f| locked(&world.fenced).read(f));
        // Drawn only where such pauses exist, so that every other
        // scenario's seeds replay as before.
        if w.pause_mid_action_prob > 0.0 && rng.gen_bool(w.pause_mid_action_prob) {
            // Outside the model: the pause lands between read and write.
            locked(&world.stats).pauses_mid_action += 1;
            tokio::time::sleep(ms(rng, w.pause_mid_action_ms)).await;
        }
        tokio::time::sleep(action).await;
        *locked(&world.counter) = value + 1;
        if let (Some(f), Some(v)) = (fence, fenced_read) {
            let accepted = locked(&world.fenced).write(f, v + 1);
            if !accepted {
                world.event("fenced-out", [client as u64, holder as u64, f], || {
                    format!("c{client} holder #{holder}: write with fence {f} refused")
                });
            }
        }
        let write_at = world.elapsed();
        locked(&world.history).action(holder, check_at, read_at, write_at);
        world.event("action", [client as u64, holder as u64, value], || {
            format!(
                "c{client} holder #{holder} wrote counter {} (read {value})",
                value + 1
            )
        });
        done += 1;
        if done < planned && extends < w.max_extends && rng.gen_bool(w.extend_prob) {
            extends += 1;
            let ttl = w.extend_ttl_ms.map(|r| ms(rng, r));
            let result = redlock.extend(&mut lock, ttl).await;
            let at = world.elapsed();
            locked(&world.history).validity(holder, at, world.since_start(lock.valid_until()));
            let mut st = locked(&world.stats);
            match &result {
                Ok(()) => st.extends_ok += 1,
                Err(_) => st.extends_failed += 1,
            }
            drop(st);
            world.event(
                "extend",
                [client as u64, holder as u64, u64::from(result.is_ok())],
                || {
                    format!(
                        "c{client} holder #{holder} extend ({ttl:?}): {}; valid until {:.3}ms",
                        match &result {
                            Ok(()) => "ok".to_owned(),
                            Err(e) => e.to_string(),
                        },
                        world.since_start(lock.valid_until()).as_secs_f64() * 1e3
                    )
                },
            );
        }
        tokio::time::sleep(ms(rng, w.gap_ms)).await;
    }
    let at = world.elapsed();
    locked(&world.history).released(holder, at);
    world.event("release", [client as u64, holder as u64, 0], || {
        format!("c{client} holder #{holder} releases")
    });
    let result = redlock.release(lock).await;
    let mut st = locked(&world.stats);
    st.releases += 1;
    if result.is_err() {
        st.releases_incomplete += 1;
    }
}
