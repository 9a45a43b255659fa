#!/usr/bin/env bash
# Streaming evaluation at catalog scale: a synthetic gallery of N items and Q queries
# (D = 256, 10,000 classes) written to disk, then `unisight eval --embeddings` on them; prints
# the time and the peak memory against the size of the embeddings themselves.
#
#   scripts/bench-eval-scale.sh [N] [Q]     (default 1000000 100000; OUT=out/bench-eval)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
Q=${2:-100000}
D=256
CLASSES=${CLASSES:-10000}
OUT=${OUT:-out/bench-eval}
cargo build --release --locked -p unisight
cargo build --release --locked -p unisight-eval --example synthetic_set
mkdir -p "$OUT"
gallery="$OUT/gallery-$N"
queries="$OUT/queries-$Q"
[ -f "$gallery/items.jsonl" ] || target/release/examples/synthetic_set "$gallery" "$N" $D "$CLASSES" 1
[ -f "$queries/items.jsonl" ] || target/release/examples/synthetic_set "$queries" "$Q" $D "$CLASSES" 2
start=$(date +%s.%N)
target/release/unisight eval --embeddings "$queries" --gallery "$gallery" --task synthetic \
  --k 1,10 --examples 0 --out "$OUT/report-$N-$Q" > /dev/null
end=$(date +%s.%N)
python3 - "$OUT/report-$N-$Q/report.json" "$gallery" "$queries" "$start" "$end" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
size = sum(os.path.getsize(os.path.join(d, f)) for d in sys.argv[2:4] for f in ("embeddings.npy", "codes.npy"))
t = report["tasks"][0]
rss = report["peak_rss_bytes"]
print(f"gallery {t['metrics']['gallery']:,} x queries {t['metrics']['queries']:,}, D=256: "
      f"search+metrics {report['seconds']:.0f} s (whole command {float(sys.argv[5]) - float(sys.argv[4]):.0f} s), "
      f"peak RSS {rss / 2**20:.0f} MiB = {rss / size:.2f}x the embeddings + codes ({size / 2**20:.0f} MiB); "
      f"R@1 float {t['metrics']['float']['recall'][0]:.4f} bits {t['metrics']['bits']['recall'][0]:.4f}")
PY
