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
//!   under any quorum operation on the machine, and the lock floor (the
//!   lock's own commands over bare sockets, no library): the best B / A a
//!   client can reach there;
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

/// The tokio runtime a benchmark binary runs on (`--runtime`).
///
/// On the 2-vCPU machines these benchmarks run on, a quorum cycle's
/// latency can depend on it more than on either lock library: on tokio's
/// multi-thread runtime a cycle hands work between workers that park and
/// wake each other (over redis-rs's connection 8-9 futex calls per cycle
/// with one master, 12-17 with five; over redlock's own connection 4 and
/// about 9.5), on one thread nothing is handed between threads, as in
/// node, where node-redlock runs. See `docs/benchmarks.md`, eleventh and
/// twelfth sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// tokio's multi-thread runtime, one worker per CPU: the default of
    /// `#[tokio::main]`, and of most services.
    #[default]
    Multi,
    /// Every task on the one thread that calls `block_on`
    /// (`#[tokio::main(flavor = "current_thread")]`).
    Current,
}

impl Flavor {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Multi => "multi",
            Self::Current => "current",
        }
    }

    /// A runtime of this flavor, with I/O and timers.
    ///
    /// # Errors
    ///
    /// The runtime could not be built (out of threads or descriptors).
    pub fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Self::Multi => tokio::runtime::Builder::new_multi_thread(),
            Self::Current => tokio::runtime::Builder::new_current_thread(),
        };
        builder.enable_all().build()
    }
}
