//! The fault schedule: drawn up front from the seed's fault stream, then
//! played by one driver task on virtual time.

use std::sync::Arc;
use std::time::Duration;

use crate::rng::SimRng;
use rand::Rng;

use crate::scenario::{Millis, Restart, Scenario};
use crate::world::{lock, World};

/// One fault event.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    Crash {
        master: usize,
        restart: Restart,
    },
    /// With, per client, how long after the restart it reconnects.
    Restart {
        master: usize,
        reconnect_after: Vec<Duration>,
    },
    Pause {
        master: usize,
    },
    Resume {
        master: usize,
    },
    Cut {
        master: usize,
        clients: Vec<usize>,
    },
    Heal {
        master: usize,
    },
    Jump {
        master: usize,
        delta_ns: i128,
    },
}

fn ms(rng: &mut SimRng, (lo, hi): Millis) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

/// An exponential wait with the given mean.
fn exp(rng: &mut SimRng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    mean.mul_f64(-u.ln())
}

/// Draws the whole schedule of a run, sorted by time (ties keep the order
/// they were drawn in).
pub(crate) fn schedule(s: &Scenario, masters: usize, rng: &mut SimRng) -> Vec<(Duration, Fault)> {
    let mut events = Vec::new();
    let f = &s.faults;

    // Window faults (crash, pause, partition): a Poisson process over the
    // cluster; each picks a master not already under a fault, and is
    // skipped when the limit of concurrent faults (a minority) is reached.
    let limit = f.max_concurrent.unwrap_or((masters - 1) / 2);
    let weights = [f.crash_weight, f.pause_weight, f.partition_weight];
    let total: u32 = weights.iter().sum();
    if f.window_faults_per_sec > 0.0 && total > 0 && limit > 0 {
        let mean = Duration::from_secs_f64(1.0 / f.window_faults_per_sec);
        let mut busy_until = vec![Duration::ZERO; masters];
        let mut t = Duration::ZERO;
        loop {
            t += exp(rng, mean);
            if t >= s.duration {
                break;
            }
            let pick = rng.gen_range(0..total);
            let free: Vec<usize> = (0..masters).filter(|&m| busy_until[m] <= t).collect();
            let master = free.get(rng.gen_range(0..free.len().max(1))).copied();
            let Some(master) = master.filter(|_| masters - free.len() < limit) else {
                continue;
            };
            let (start, end, length) = if pick < weights[0] {
                let restart = f.restarts[rng.gen_range(0..f.restarts.len())];
                let down = match restart {
                    Restart::Persisted { down_ms } | Restart::EmptyImmediately { down_ms } => {
                        ms(rng, down_ms)
                    }
                    Restart::EmptyAfterMaxTtl { extra_ms } => s.max_ttl() + ms(rng, extra_ms),
                };
                let reconnect_after = (0..s.clients).map(|_| ms(rng, f.reconnect_ms)).collect();
                (
                    Fault::Crash { master, restart },
                    Fault::Restart {
                        master,
                        reconnect_after,
                    },
                    down,
                )
            } else if pick < weights[0] + weights[1] {
                (
                    Fault::Pause { master },
                    Fault::Resume { master },
                    ms(rng, f.pause_ms),
                )
            } else {
                // Cut the master off from a non-empty random subset of the
                // clients (all of them: the master is isolated).
                let mut clients: Vec<usize> =
                    (0..s.clients).filter(|_| rng.gen_bool(0.5)).collect();
                if clients.is_empty() {
                    clients = (0..s.clients).collect();
                }
                (
                    Fault::Cut { master, clients },
                    Fault::Heal { master },
                    ms(rng, f.partition_ms),
                )
            };
            // A master counts as faulty until 1 ms after it recovers.
            busy_until[master] = t + length + Duration::from_millis(1);
            events.push((t, start));
            events.push((t + length, end));
        }
    }

    // Clock jumps: per master, spaced at least `min_spacing` apart.
    if let Some(j) = &f.jumps {
        for master in 0..masters {
            let mut t = exp(rng, j.mean_extra);
            while t < s.duration {
                let backward = rng.gen_bool(j.backward_prob);
                let delta_ns = if backward {
                    -(rng.gen_range(0..=j.backward_max.as_nanos()) as i128)
                } else {
                    rng.gen_range(j.forward.0.as_nanos()..=j.forward.1.as_nanos()) as i128
                };
                events.push((t, Fault::Jump { master, delta_ns }));
                t += j.min_spacing + exp(rng, j.mean_extra);
            }
        }
    }

    events.sort_by_key(|(t, _)| *t);
    events
}

/// Plays the schedule on virtual time.
pub(crate) async fn drive(world: Arc<World>, events: Vec<(Duration, Fault)>) {
    for (at, fault) in events {
        tokio::time::sleep_until(world.t0 + at).await;
        apply(&world, fault);
    }
}

fn apply(world: &Arc<World>, fault: Fault) {
    let described = fault.clone();
    let (kind, master) = match fault {
        Fault::Crash { master, restart } => {
            let keep = matches!(restart, Restart::Persisted { .. });
            world.crash(master, keep);
            let mut st = lock(&world.stats);
            match restart {
                Restart::Persisted { .. } => st.faults.crashes_persisted += 1,
                Restart::EmptyAfterMaxTtl { .. } => st.faults.crashes_empty_after_ttl += 1,
                Restart::EmptyImmediately { .. } => st.faults.crashes_empty_immediately += 1,
            }
            ("crash", master)
        }
        Fault::Restart {
            master,
            ref reconnect_after,
        } => {
            world.restart(master, reconnect_after);
            ("restart", master)
        }
        Fault::Pause { master } => {
            world.pause(master);
            lock(&world.stats).faults.master_pauses += 1;
            ("pause", master)
        }
        Fault::Resume { master } => {
            world.resume(master);
            ("resume", master)
        }
        Fault::Cut {
            master,
            ref clients,
        } => {
            world.cut(master, clients);
            lock(&world.stats).faults.partitions += 1;
            ("cut", master)
        }
        Fault::Heal { master } => {
            world.heal(master);
            ("heal", master)
        }
        Fault::Jump { master, delta_ns } => {
            world.jump(master, delta_ns);
            let mut st = lock(&world.stats);
            if delta_ns >= 0 {
                st.faults.clock_jumps_forward += 1;
            } else {
                st.faults.clock_jumps_backward += 1;
            }
            ("jump", master)
        }
    };
    world.event(kind, [master as u64, 0, 0], move || {
        format!("FAULT {described:?}")
    });
}
