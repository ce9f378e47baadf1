#!/usr/bin/env bash
# The main job: the two-web-servers demo (with the lock, then without it),
# then the single-master vs quorum benchmark, all on throwaway local
# redis-server processes that this script starts on free loopback ports
# and stops on exit. Installs redis-server when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh

MASTERS=${MASTERS:-3}
WORK=$(mktemp -d -t redlock-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Starts one redis-server on a random free port; sets LAST_URL and records
# its pid (no subshell, so the pid stays this script's child).
start_master() {
  local i=$1 port dir pid
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 30000))
    dir="$WORK/m$i-$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --daemonize no --logfile "$dir/log" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        PIDS+=("$pid")
        LAST_URL="redis://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "!! could not start redis-server (see $WORK)" >&2
  return 1
}

echo ">> building (release)" >&2
cargo build --release --locked -p redlock-cli -p redlock-tokio --example two_web_servers >&2

URLS=()
for i in $(seq 1 "$MASTERS"); do
  start_master "$i"
  URLS+=("$LAST_URL")
done
CSV=$(IFS=,; echo "${URLS[*]}")
echo ">> $MASTERS throwaway masters: $CSV" >&2

echo
echo "=== Demo 1/2: two web servers behind a load balancer, WITH the lock ==="
# --danger-fresh-masters: these masters were started empty a moment ago for
# this demo alone, so the restart guard need not hold them back for a TTL.
target/release/examples/two_web_servers --masters "$CSV" --danger-fresh-masters
echo
echo "=== Demo 2/2: the same burst WITHOUT the lock (--no-lock) ==="
target/release/examples/two_web_servers --masters "$CSV" --danger-fresh-masters --no-lock || true
echo
echo "=== Benchmark: one master vs a quorum of five (redlock bench --spawn 5) ==="
target/release/redlock bench --spawn 5 "$@"
