#!/usr/bin/env bash
# The whole test suite: unit, property, simulation and real-Redis tests.
# Installs redis-server when it is missing; the tests start their own
# throwaway servers on free loopback ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
# Each step prints its name when it starts and its time when it ends, so a
# slow run shows where the time went.
STEP=
STEP_START=$SECONDS
SUITE_START=$SECONDS
step() {
  if [[ -n $STEP ]]; then
    echo ">> done in $((SECONDS - STEP_START)) s: $STEP" >&2
  fi
  STEP=$1
  STEP_START=$SECONDS
  if [[ -n $STEP ]]; then
    echo ">> $STEP" >&2
  fi
}
# What a submission must pass, checked here so CI catches it too: stock
# formatting, clippy with warnings as errors, and rustdoc with warnings as
# errors (broken intra-doc links, examples that do not compile).
step "cargo fmt --all --check"
cargo fmt --all --check
step "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked
step "cargo test --workspace --locked"
cargo test --workspace --locked
# The same fault, safety and adapter tests once more over the other Redis
# client (`Client::Fred`; the workspace run used the default, redis-rs):
# restarts, pauses, resets, garbage replies, ACLs, TLS, the chaos run
# (its main and fenced runs, shorter), each against the fred link and
# fred's reconnect loop. The chaos restart-guard runs are skipped here:
# what they add over guards.rs and clients.rs (which run here too) is
# their length, which their negative control needs to see enough
# restarts, and they ran in full above. `--workspace` so that the
# features, hence the build, are the ones above: `-p redlock-tests` alone
# would compile much of the tree a second time (`--test fencing` also
# runs the simulation's fencing tests, a few seconds).
step "REDLOCK_TEST_CLIENT=fred cargo test --workspace --locked (fault, safety and adapter tests)"
REDLOCK_TEST_CLIENT=fred REDLOCK_CHAOS_SECS=20 REDLOCK_CHAOS_FENCE_SECS=15 \
  cargo test --workspace --locked \
  --test safe_by_default --test guards --test core --test fencing --test replies \
  --test security --test tls --test tokio_adapter --test wake_on_release \
  --test inspect --test chaos \
  -- --skip chaos_immediate_restarts
# The workspace builds redlock-tokio with its features (`tls`, `redis-rs`,
# `metrics`: the tests enable them); the crate must build without them too,
# with fred alone. The refusal of `rediss://` in such a build (never
# plaintext) is a unit test that runs in every build
# (`fred::url::tests::rediss_refused_without_tls`), so a check is enough.
step "cargo clippy --locked -p redlock-tokio --lib --no-default-features -- -D warnings"
cargo clippy --locked -p redlock-tokio --lib --no-default-features -- -D warnings
# Last, the README's main command the way a user meets it, in its quick
# form: the same build line and the same steps as `bash scripts/demo.sh`,
# a small burst and a short benchmark, in the debug profile the tests just
# built (a second, release build would double the suite's time). It catches
# what unit tests cannot: a build line that leaves the redlock binary
# unbuilt on a clean checkout, a demo whose self-check fails.
# REDLOCK_SKIP_DEMO=1 skips it.
if [[ ${REDLOCK_SKIP_DEMO:-0} != 1 ]]; then
  step "DEMO_PROFILE=dev bash scripts/demo.sh --quick"
  DEMO_PROFILE=dev bash scripts/demo.sh --quick
fi
step ""
echo ">> suite passed in $((SECONDS - SUITE_START)) s" >&2
