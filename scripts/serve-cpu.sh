#!/usr/bin/env bash
# Where a search by image spends its time: serves the index that scripts/load-test.sh built
# (run that first), uploads its photos from CLIENTS keep-alive clients for SECONDS, and prints
# the throughput, the ratio to model-only ONNX Runtime at batch 1, and the server's CPU time per
# request (from /proc). With PERF=1 it also records the server with `perf` and prints the share
# of each library (ONNX Runtime, unisight, kernel). ROUNDS=3 repeats model-only and the load
# side by side and prints the median ratio. Loopback only; bounded.
#
#   scripts/serve-cpu.sh [N] [-- extra serve options]     (N: index size, default 1000000)
#   CLIENTS=4 SECONDS_RUN=10 ROUNDS=1 OUT=out/load PERF=0
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
shift || true
if [ "${1:-}" = "--" ]; then shift; fi
OUT=${OUT:-out/load}
CLIENTS=${CLIENTS:-4}
SECONDS_RUN=${SECONDS_RUN:-10}
bin=target/release/unisight
[ -d "$OUT/index-$N" ] || { echo "no $OUT/index-$N: run N=$N scripts/load-test.sh first" >&2; exit 2; }
log=$(mktemp)
$bin serve --model "$OUT/m.safetensors" --index "$OUT/index-$N" --addr 127.0.0.1:0 \
  --workers "${WORKERS:-2}" --threads "${THREADS:-1}" "$@" > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; exit 1; }
# model-only ONNX Runtime at batch 1 before and after every round, the server's CPU per search
# from /proc, the median and range over rounds: all measured and printed by `unisight load-test`
if [ "${PERF:-0}" = 1 ]; then
  # the first round's load starts after the anchor measurement (a few seconds)
  (sleep 8; perf record -q -F 999 -p "$server" -o "$OUT/serve-cpu.perf" -- sleep $((SECONDS_RUN - 2)) >/dev/null 2>&1) &
fi
$bin load-test --url "$url" --images "$OUT/photos" --kinds image --levels "$CLIENTS" \
  --seconds "$SECONDS_RUN" --rounds "${ROUNDS:-1}" --server-pid "$server" \
  --anchor-model "$OUT/m.safetensors" --anchor-sessions "${WORKERS:-2}" --anchor-threads "${THREADS:-1}"
kill $server; wait $server 2>/dev/null || true
trap - EXIT
rm -f "$log"
if [ "${PERF:-0}" = 1 ]; then
  perf report -i "$OUT/serve-cpu.perf" --no-children --sort dso -g none -q 2>/dev/null | head -6
fi
