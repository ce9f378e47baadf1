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
