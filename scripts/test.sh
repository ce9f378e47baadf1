#!/usr/bin/env bash
# The whole test suite: unit, property, simulation and real-Redis tests.
# Installs redis-server when it is missing; the tests start their own
# throwaway servers on free loopback ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
# What a submission must pass, checked here so CI catches it too: stock
# formatting, clippy with warnings as errors, and rustdoc with warnings as
# errors (broken intra-doc links, examples that do not compile).
echo ">> cargo fmt --all --check" >&2
cargo fmt --all --check
echo ">> cargo clippy --workspace --all-targets --locked -- -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo ">> RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked" >&2
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked
echo ">> cargo test --workspace --locked" >&2
cargo test --workspace --locked
# The same fault, safety and adapter tests once more over the other Redis
# client (`Client::Fred`; the workspace run used the default, redis-rs):
# restarts, pauses, resets, garbage replies, ACLs, TLS, the chaos run
# (its main and fenced runs shorter; the restart-guard runs keep their
# length, which their negative control needs to see enough restarts), each
# against the fred link and fred's reconnect loop.
echo ">> REDLOCK_TEST_CLIENT=fred cargo test --locked -p redlock-tests (fault, safety and adapter tests)" >&2
REDLOCK_TEST_CLIENT=fred REDLOCK_CHAOS_SECS=20 REDLOCK_CHAOS_FENCE_SECS=15 \
  cargo test --locked -p redlock-tests \
  --test safe_by_default --test guards --test core --test fencing --test replies \
  --test security --test tls --test tokio_adapter --test wake_on_release \
  --test inspect --test chaos
# The workspace run builds redlock-tokio with `tls` (redlock-tests enables
# it), so run its unit tests once more in a build of the crate alone,
# without the feature: `rediss://` must then be refused, never sent in
# plaintext.
echo ">> cargo test --locked -p redlock-tokio --lib" >&2
cargo test --locked -p redlock-tokio --lib
# Last, the README's main command the way a user meets it, in its quick
# form: the same build line and the same steps as `bash scripts/demo.sh`,
# a small burst and a short benchmark, in the debug profile the tests just
# built (a second, release build would double the suite's time). It catches
# what unit tests cannot: a build line that leaves the redlock binary
# unbuilt on a clean checkout, a demo whose self-check fails.
# REDLOCK_SKIP_DEMO=1 skips it.
if [[ ${REDLOCK_SKIP_DEMO:-0} != 1 ]]; then
  echo ">> DEMO_PROFILE=dev bash scripts/demo.sh --quick" >&2
  DEMO_PROFILE=dev bash scripts/demo.sh --quick
fi
