#!/usr/bin/env bash
# The trunk cache of a whole task file, built into a fresh folder with the float front and then
# with the int8 front (model.front_precision), each timed whole; prints views/s of each.
#
#   scripts/bench-cache.sh [DATA_DIR] [CONFIG] [SEED]
#     DATA_DIR  folder holding the task file's datasets (default ../shared/data)
#     CONFIG    task file (default configs/unified-binary.toml); SEED its seed (default 1)
# Leaves nothing else running beside it for a fair figure. Scratch in out/bench-cache.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
CONFIG=${2:-configs/unified-binary.toml}
SEED=${3:-1}
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
out=out/bench-cache
for precision in float32 int8; do
  rm -rf "$out/$precision"
  mkdir -p "$out/$precision"
  start=$(date +%s.%N)
  target/release/unisight train --config "$CONFIG" --data-dir "$DATA_DIR" --seed "$SEED" \
    --cache-dir "$out/$precision/cache" --set "model.front_precision=$precision" \
    --set train.validate_every=0 --set 'train.keep="last"' --stop-after 1 \
    --out "$out/$precision/model.safetensors" 2> "$out/$precision/log.txt"
  end=$(date +%s.%N)
  rate=$(grep -o 'trunk cache: [0-9]*/[0-9]* views ([0-9.]* views/s)' "$out/$precision/log.txt" | tail -1)
  echo "$precision: $(echo "$end - $start" | bc) s whole command; $rate"
done
