#!/usr/bin/env bash
# Soak: one release node under a mixed load for SECS seconds (default 1800):
# sandbox fan-out, tactics bots, clients that walk away and resume, and
# misbehaving clients (malformed frames every second, a burst over the frame
# budget every 20 s, reconnecting after each close). The node's RSS, open
# files, WebSocket connections and writer queue are sampled every 10 s into
# OUT/soak.csv and drawn into OUT/soak.svg. Loopback only; stops by itself.
#   loadtest/scripts/soak.sh [SECS] [OUT]      (OUT default target/soak)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-1800}
OUT=${2:-target/soak}
PORT=${PORT:-18282}
mkdir -p "$OUT"
cargo build --release -p matchd -p loadtest
DATA=$(mktemp -d)
# Every generator comes from 127.0.0.1: the per-IP limits are lifted; the
# per-connection budgets stay at their defaults, so the abusers are cut off.
MATCHD_DATA_DIR=$DATA MATCHD_BIND=127.0.0.1:$PORT RUST_LOG=warn \
    MATCHD_RATE_SESSIONS_PER_MIN=10000000 MATCHD_RATE_UPGRADES_PER_MIN=10000000 \
    MATCHD_RATE_MATCHES_PER_MIN=10000000 MATCHD_MAX_CONNS_PER_IP=1000000 \
    target/release/matchd 2> "$OUT/node.log" &
NODE=$!
GENS=()
cleanup() {
    kill "${GENS[@]}" "$NODE" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
LT=target/release/loadtest
run() {
    local name=$1
    shift
    "$LT" ws --url "$URL" --duration "${SECS}s" --threads 1 --quiet on \
        --json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1 &
    GENS+=($!)
}
run fanout --scenario fanout --clients 200 --room 4 --rate 10
run tactics --scenario tactics --clients 100
run resume --scenario resume --clients 80 --room 4 --rate 5 --resume-every 20s
run abuse --scenario abuse --clients 20
metric() { awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'; }
echo "t_s,rss_kib,fds,connections,writer_queue,history_lost" > "$OUT/soak.csv"
START=$(date +%s)
while kill -0 "${GENS[0]}" 2>/dev/null; do
    M=$(curl -sf "$URL/metrics" || true)
    RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$NODE/status")
    FDS=$(ls "/proc/$NODE/fd" | wc -l)
    echo "$(($(date +%s) - START)),$RSS,$FDS,$(metric matchd_connections_open <<< "$M"),$(metric matchd_writer_queue_depth <<< "$M"),$(metric matchd_history_records_lost_total <<< "$M")" >> "$OUT/soak.csv"
    sleep 10
done
for g in "${GENS[@]}"; do wait "$g" || true; done
"$LT" soak-plot "$OUT/soak.csv" "$OUT/soak.svg" "matchd soak: ${SECS} s, fan-out 200 + tactics 100 + resume 80 + abusers 20 ($(date -u +%F))"
# RSS after the first 5 minutes (warm-up) against the end.
awk -F, 'NR > 1 && $1 >= 300 && !w { w = $2 } NR > 1 { last = $2; max = ($2 > max ? $2 : max) }
    END { printf "RSS after warm-up %d KiB, at the end %d KiB, peak %d KiB\n", w, last, max }' "$OUT/soak.csv"
for f in fanout tactics resume abuse; do echo "== $f"; tail -n 25 "$OUT/$f.txt"; done
