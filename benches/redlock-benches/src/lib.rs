//! Benchmarks of `redlock-core` against real `redis-server` processes, side
//! by side with the [`rslock`] crate on the same machine in the same run.
//!
//! This library holds what the criterion benches (`benches/redlock.rs`) and
//! the percentile report (`src/bin/bench_report/`) share:
//!
//! - [`scenario`]: N masters (1, 3 or 5), healthy or with the last one slowed
//!   or paused, and a client of either implementation;
//! - [`workload`]: the workloads (uncontended sequential cycles,
//!   concurrent cycles on distinct resources, contended cycles on one
//!   resource with the library's retry or one round per call and the
//!   caller's jitter);
//! - [`targets`]: the side-by-side comparison against rslock that the
//!   performance targets are stated in (scenarios A to F);
//! - [`fanout`]: the cost of a bare parallel `PING` to N masters, the floor
//!   under any quorum operation on the machine;
//! - [`stats`]: medians and ranges of per-round numbers; the latency
//!   histogram is `redlock_cli::latency::Latency`, and the report's SVG
//!   charts are `redlock_cli::charts`: the ones `redlock bench` uses.
//!
//! Results and how to reproduce them are in `docs/benchmarks.md`.

pub mod fanout;
pub mod redis_rs;
pub mod scenario;
pub mod stats;
pub mod targets;
pub mod workload;

pub use scenario::{Client, Env, Fault, Held, Impl, Scenario};
