#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH, installing Debian's package when it
# is missing (needs root and apt). Sourced by the other scripts.
if ! command -v redis-server >/dev/null 2>&1; then
  echo ">> redis-server is missing: installing it with 'apt-get install -y redis-server'" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "!! no apt-get here: install redis-server (Redis >= 6.2) with your package manager" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
echo ">> using $(redis-server --version | cut -d' ' -f1-3) at $(command -v redis-server)" >&2
