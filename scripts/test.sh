#!/usr/bin/env bash
# The whole test suite: unit, property, simulation and real-Redis tests.
# Installs redis-server when it is missing; the tests start their own
# throwaway servers on free loopback ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
echo ">> cargo test --workspace --locked" >&2
cargo test --workspace --locked
# The workspace run builds redlock-core with `tls` (redlock-tests enables it),
# so run its unit tests once more in a build of the crate alone, without the
# feature: `rediss://` must then be refused, never sent in plaintext.
echo ">> cargo test --locked -p redlock-core --lib" >&2
cargo test --locked -p redlock-core --lib
# Last, the README's main command the way a user meets it, in its quick
# form: the same release build and the same steps as `bash scripts/demo.sh`,
# a small burst and a short benchmark. It catches what unit tests cannot: a
# build line that leaves target/release/redlock unbuilt on a clean checkout,
# a demo whose self-check fails. REDLOCK_SKIP_DEMO=1 skips it.
if [[ ${REDLOCK_SKIP_DEMO:-0} != 1 ]]; then
  echo ">> bash scripts/demo.sh --quick" >&2
  bash scripts/demo.sh --quick
fi
