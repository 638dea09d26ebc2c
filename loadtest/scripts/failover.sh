#!/usr/bin/env bash
# Failover timing with the default lease settings: a throwaway redis-server,
# node B, and per round a fresh node A that hosts a sandbox match and is
# killed with -9 while `loadtest failover` resumes through B.
# Usage: loadtest/scripts/failover.sh [ROUNDS]   (from the repository root,
# after `cargo build --release --workspace`). Prints one JSON line per round.
set -euo pipefail
ROUNDS=${1:-5}
BIN=target/release
DIR=$(mktemp -d)
REDIS_PORT=${REDIS_PORT:-16391}
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >"$DIR/redis.log" 2>&1 &
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done

node() { # node ID PORT
  env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" MATCHD_REDIS_PREFIX=fo: \
    MATCHD_NODE_ID="$1" MATCHD_BIND="127.0.0.1:$2" \
    MATCHD_ADVERTISE_URL="ws://127.0.0.1:$2/v1/ws" MATCHD_DATA_DIR="$DIR/$1" \
    MATCHD_RATE_SESSIONS_PER_MIN=10000000 MATCHD_RATE_UPGRADES_PER_MIN=10000000 MATCHD_MAX_CONNS_PER_IP=1000000 \
    RUST_LOG=warn "$BIN/matchd" >"$DIR/$1.log" 2>&1 &
  echo $!
}
ready() { until curl -sf "http://127.0.0.1:$1/ready" >/dev/null; do sleep 0.05; done; }

node node-b 18092 >/dev/null
ready 18092
for round in $(seq 1 "$ROUNDS"); do
  pid=$(node "node-a$round" 18091)
  ready 18091
  "$BIN/loadtest" failover --url http://127.0.0.1:18091 --via http://127.0.0.1:18092 \
    --redis "redis://127.0.0.1:$REDIS_PORT" --prefix fo: --kill-pid "$pid"
  wait "$pid" 2>/dev/null || true
done
