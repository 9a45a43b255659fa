#!/usr/bin/env bash
# Streaming evaluation at catalog scale: a synthetic gallery of N items and Q queries
# (D = 256, 10,000 classes) written to disk, then `unisight eval --embeddings` on them; prints
# the time and the peak memory against the size of the embeddings themselves (both from the
# report).
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
# the report's first paragraph names the search time and the peak memory against the arrays read
TIMEFORMAT="whole command %0R s"
time target/release/unisight eval --embeddings "$queries" --gallery "$gallery" --task synthetic \
  --k 1,10 --examples 0 --out "$OUT/report-$N-$Q" | sed -n '3p;/queries, .* gallery items/p;/^| Recall@1 /p'
