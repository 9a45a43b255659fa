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
trap 'kill $server 2>/dev/null || true; rm -f "$log" "$log".*.json' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
# model-only ONNX Runtime at batch 1, the faster of one session on every core and the server's
# own sessions side by side (as scripts/load-test.sh takes it), measured in every round before
# and after the load (their mean), because this machine's speed drifts by several percent
# between minutes
model_only() {
  local one side
  one=$($bin bench-model --model "$OUT/m.safetensors" --batch 1 --iters 1000)
  side=$($bin bench-model --model "$OUT/m.safetensors" --batch 1 --iters 1000 \
    --sessions "${WORKERS:-2}" --threads "${THREADS:-1}")
  python3 -c 'import json, sys; print(max(json.loads(a)["images_per_second"] for a in sys.argv[1:]))' "$one" "$side"
}
hz=$(getconf CLK_TCK)
rounds=()
for round in $(seq "${ROUNDS:-1}"); do
  before_model=$(model_only)
  if [ "${PERF:-0}" = 1 ] && [ "$round" = 1 ]; then
    (sleep 2; perf record -q -F 999 -p "$server" -o "$OUT/serve-cpu.perf" -- sleep $((SECONDS_RUN - 3)) >/dev/null 2>&1) &
  fi
  before=$(ticks)
  $bin load-test --url "$url" --images "$OUT/photos" --kinds image --levels "$CLIENTS" \
    --seconds "$SECONDS_RUN" --json "$log.$round.json" >/dev/null
  after=$(ticks)
  model=$(python3 -c 'import sys; print((float(sys.argv[1]) + float(sys.argv[2])) / 2)' "$before_model" "$(model_only)")
  rounds+=("$model $((after - before)) $log.$round.json")
done
kill $server; wait $server 2>/dev/null || true
trap - EXIT
python3 - "$hz" "$N" "$CLIENTS" "$(nproc)" "${rounds[@]}" <<'PY2'
import json, statistics, sys
hz, n, clients, cores = (float(a) for a in sys.argv[1:5])
ratios = []
for line in sys.argv[5:]:
    model, ticks, report = line.split(" ", 2)
    model, ticks = float(model), float(ticks)
    level = json.load(open(report))["results"]["search by image"][0]
    rate, requests = level["per_second"], level["requests"]
    ratios.append(rate / model)
    print(f"{n:.0f} items, {clients:.0f} clients: {rate:.1f} searches by image/s = {rate / model:.2f}x model-only ONNX Runtime at batch 1 ({model:.1f} img/s)")
    print(f"  server CPU {ticks / hz * 1e3 / max(requests, 1):.2f} core-ms per search; client {level['client_cpu_ms_per_request']:.2f}; model-only {cores * 1e3 / model:.2f} core-ms per image on {cores:.0f} cores")
if len(ratios) > 1:
    print(f"median of {len(ratios)} rounds: {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
PY2
rm -f "$log" "$log".*.json
if [ "${PERF:-0}" = 1 ]; then
  perf report -i "$OUT/serve-cpu.perf" --no-children --sort dso -g none -q 2>/dev/null | head -6
fi
