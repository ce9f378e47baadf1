#!/usr/bin/env bash
# The main job: the two-web-servers demo (two requests and one lock, a
# burst with the lock and without it, then a server paused past its lock's
# TTL writing late, without and with fencing), then the single-master vs quorum
# benchmark, all on throwaway local redis-server processes that this script
# starts on free loopback ports and stops on exit. Installs redis-server
# when it is missing.
#
#   bash scripts/demo.sh [BENCH OPTIONS...]   the full demo; options go to `redlock bench`
#   bash scripts/demo.sh --quick              (or DEMO_QUICK=1) a small burst and a short
#                                             benchmark: the same build and the same steps,
#                                             in seconds once built; scripts/test.sh runs it
#
# Exits non-zero when a step fails, including the demo's own self-checks
# (with the lock, the stock must be exact; with fencing, the late write of the
# paused server must be refused).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh

QUICK=${DEMO_QUICK:-0}
if [[ ${1:-} == --quick ]]; then
  QUICK=1
  shift
fi
# Where cargo puts what it builds: the binaries are run from there.
# DEMO_PROFILE=dev builds them in debug instead (scripts/test.sh does, so
# the test run reuses its own debug build rather than compiling everything
# a second time in release); the numbers are then not representative.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${DEMO_PROFILE:-release}
case $PROFILE in
  release) BIN="$TARGET_DIR/release" ;;
  dev) BIN="$TARGET_DIR/debug" ;;
  *) echo "!! DEMO_PROFILE must be release or dev, not $PROFILE" >&2; exit 64 ;;
esac

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

echo ">> building ($PROFILE): the redlock binary and the demo" >&2
# Name both targets: with only `--example`, cargo builds the example alone
# and target/release/redlock does not exist on a fresh clone.
cargo build --profile "$PROFILE" --locked -p redlock-cli -p redlock-tokio \
  --bin redlock --example two_web_servers >&2
for exe in "$BIN/redlock" "$BIN/examples/two_web_servers"; do
  if [[ ! -x $exe ]]; then
    echo "!! the build did not produce $exe" >&2
    exit 1
  fi
done

URLS=()
for i in $(seq 1 "$MASTERS"); do
  start_master "$i"
  URLS+=("$LAST_URL")
done
CSV=$(IFS=,; echo "${URLS[*]}")
echo ">> $MASTERS throwaway masters: $CSV" >&2

DEMO_ARGS=()
BENCH_ARGS=(--spawn 5)
if [[ $QUICK == 1 ]]; then
  DEMO_ARGS=(--requests 12)
  BENCH_ARGS=(--spawn 3 --iterations 50 --warmup 5 --concurrency 4)
fi

echo
echo "=== Demo: two web servers behind a load balancer, with the lock and without it; a stale lock, without and with fencing ==="
# --danger-fresh-masters: these masters were started empty a moment ago for
# this demo alone, so the restart guard need not hold them back for a TTL.
"$BIN/examples/two_web_servers" --masters "$CSV" --danger-fresh-masters ${DEMO_ARGS[@]+"${DEMO_ARGS[@]}"}
echo
echo "=== Benchmark: one master vs a quorum (redlock bench ${BENCH_ARGS[*]}) ==="
"$BIN/redlock" bench "${BENCH_ARGS[@]}" "$@"
