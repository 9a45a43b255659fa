#!/usr/bin/env bash
# Load test of `unisight serve` at 1M items (256-bit codes, f16 floats for re-ranking), on
# loopback only, bounded (SECONDS_PER_LEVEL x levels x 3 runs), then model-only ONNX Runtime
# throughput at batch 1 for the ratio (the faster of one session on every core and the
# server's own WORKERS x THREADS sessions side by side).
#
#   scripts/load-test.sh [DATA_DIR]     (Grocery Store photos for uploads; default ../shared/data)
#   N=1000000 SECONDS_PER_LEVEL=10 LEVELS=1,2,4 OUT=out/load WORKERS=2 THREADS=1 (embedding
#   workers and ONNX Runtime threads each)
#   IVF_LISTS=1024 IVF_PROBES=16: serve through an inverted file instead of the exact scan, and
#   report what it finds of the exact top 10 (`unisight index ivf-recall`) next to the speed
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
N=${N:-1000000}
OUT=${OUT:-out/load}
SECONDS_PER_LEVEL=${SECONDS_PER_LEVEL:-10}
LEVELS=${LEVELS:-1,2,4}
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
cargo build --release --locked -p unisight-eval --example synthetic_set
bin=target/release/unisight
mkdir -p "$OUT/photos"
[ -f "$OUT/m.safetensors" ] || $bin init-model --dim 256 --out "$OUT/m.safetensors" >/dev/null
gallery="$OUT/gallery-$N"
[ -f "$gallery/items.jsonl" ] || target/release/examples/synthetic_set "$gallery" "$N" 256 10000 1
[ -f "$OUT/index-$N/MANIFEST.json" ] || $bin index build --from "$gallery" --out "$OUT/index-$N" --floats f16
# 64 store photos to upload
ls -A "$OUT/photos" | grep -q jpg || find "$DATA_DIR/grocery-store/dataset/test" -name '*.jpg' | sort | awk 'NR % 37 == 0' | head -64 \
  | while read -r f; do cp "$f" "$OUT/photos/$(basename "$(dirname "$f")")_$(basename "$f")"; done
ivf=()
if [ -n "${IVF_LISTS:-}" ]; then
  ivf=(--ivf-lists "$IVF_LISTS" --ivf-probes "${IVF_PROBES:-16}")
fi
$bin serve --model "$OUT/m.safetensors" --index "$OUT/index-$N" --addr 127.0.0.1:0 \
  --workers "${WORKERS:-2}" --threads "${THREADS:-1}" "${ivf[@]}" > "$OUT/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q "listening on" "$OUT/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$OUT/serve.log" | head -1)
[ -n "$url" ] || { cat "$OUT/serve.log"; exit 1; }
echo "serving $N items at $url" >&2
# the ratio's anchor, model-only ONNX Runtime at batch 1 before and after the load, is measured
# by load-test itself (the faster of one session on every core and the server's sessions)
$bin load-test --url "$url" --items "$gallery/items.jsonl" --images "$OUT/photos" \
  --seconds "$SECONDS_PER_LEVEL" --levels "$LEVELS" --json "$OUT/load.json" \
  --anchor-model "$OUT/m.safetensors" --anchor-sessions "${WORKERS:-2}" --anchor-threads "${THREADS:-1}"
kill $server; wait $server 2>/dev/null || true
trap - EXIT
if [ -n "${IVF_LISTS:-}" ]; then
  echo "inverted file: $IVF_LISTS lists, ${IVF_PROBES:-16} probes; what it finds of the exact top 10:"
  $bin index ivf-recall --index "$OUT/index-$N" --lists "$IVF_LISTS" --probes "${IVF_PROBES:-16}" \
    --queries 1000 -k 10
fi
