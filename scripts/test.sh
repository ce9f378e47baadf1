#!/usr/bin/env bash
# The whole test suite: unit, property, simulation and real-Redis tests.
# Installs redis-server when it is missing; the tests start their own
# throwaway servers on free loopback ports and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
echo ">> cargo test --workspace --locked" >&2
cargo test --workspace --locked
