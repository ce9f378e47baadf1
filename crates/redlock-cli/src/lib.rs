//! The library half of `redlock-cli`: the latency histogram and the SVG
//! charts behind `redlock bench` (its tables, its JSON and `--plot`),
//! shared with the workspace's benchmark report (`benches/redlock-benches`),
//! so that both measure and draw latencies one way.
//!
//! Why here and not in the benchmark crate: `redlock-cli` is published,
//! and a published crate cannot depend on the `publish = false`
//! benchmark crate, while the benchmark crate may depend on this one.
//!
//! This is not a stable API: it changes with the command's output and
//! follows no semver promise of its own. Use the `redlock` command, or
//! `redlock-core` and `redlock-tokio`, instead.

pub mod charts;
pub mod latency;
