#!/usr/bin/env bash
# Idle-connection capacity of one node: ramps to TOTAL clients in steps,
# with the node on core 0 and two generator processes on core 1, and fits
# the node's memory per connection. Writes results under OUT (default
# target/capacity). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOTAL=${TOTAL:-19000}
OUT=${OUT:-target/capacity}
PORT=${PORT:-18181}
mkdir -p "$OUT"
cargo build --release -p matchd -p loadtest
DATA=$(mktemp -d)
MATCHD_DATA_DIR=$DATA MATCHD_BIND=127.0.0.1:$PORT RUST_LOG=warn \
    MATCHD_RATE_SESSIONS_PER_MIN=10000000 MATCHD_RATE_UPGRADES_PER_MIN=10000000 MATCHD_MAX_CONNS_PER_IP=1000000 \
    MATCHD_RATE_MATCHES_PER_MIN=10000000 taskset -c 0 target/release/matchd &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
q=$((TOTAL / 4))
STAGES="15s:$q,5s:$q,15s:$((2 * q)),5s:$((2 * q)),15s:$((3 * q)),5s:$((3 * q)),15s:$TOTAL,15s:$TOTAL"
GENS=()
for i in 0 1; do
  taskset -c 1 target/release/loadtest ws --url "http://127.0.0.1:$PORT" --scenario connections \
    --stages "$STAGES" --shard "$i/2" --threads 1 --source-ips "127.0.0.$((10 + 20 * i))-127.0.0.$((29 + 20 * i))" \
    --server-pid "$SERVER" --quiet on --json "$OUT/connections-$i.json" > "$OUT/connections-$i.txt" 2>&1 &
  GENS+=($!)
done
for g in "${GENS[@]}"; do wait "$g" || true; done
target/release/loadtest merge "$OUT"/connections-0.json "$OUT"/connections-1.json --json "$OUT/connections.json"
grep -h "server memory" "$OUT"/connections-0.txt
