#!/usr/bin/env bash
# Trains the unified model and the specialized ones over several seeds and prints the comparison
# table of docs/results.md (Recall@1, float and bits, mean and spread over seeds).
#
#   scripts/quality-bar.sh [DATA_DIR] [OUT]
#     DATA_DIR  folder holding grocery-store/dataset and clothing-small (default ../shared/data)
#     OUT       where models and run folders go (default out/quality)
#   SEEDS="1 2 3"  MODELS="unified specialized-grocery-fine ..."  choose what runs.
#
# Each run takes about 20-23 minutes on a 2-core AMD EPYC with AVX-512 (30-35 on an earlier Zen 3;
# most of it the 1,500 training steps);
# a killed run resumes from its last checkpoint when the script is started again, and finished
# runs are skipped. Each finished run's report (a few hundred bytes: Recall@k per task, float and
# bits) is also copied to results/quality/NAME-sSEED.run/ with the machine it ran on, so that
# seeds run in different sessions (or on different machines) add up in the committed table;
# the table printed at the end is over every report there, and replaces the one between the
# runs-table markers of docs/results.md (RESULTS= to leave it alone).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
OUT=${2:-out/quality}
SEEDS=${SEEDS:-"1 2 3"}
MODELS=${MODELS:-"zero-shot unified unified-binary specialized-grocery-fine specialized-grocery-coarse specialized-clothing"}
if [ ! -d "$DATA_DIR/grocery-store/dataset" ] || [ ! -d "$DATA_DIR/clothing-small" ]; then
  echo "need $DATA_DIR/grocery-store/dataset and $DATA_DIR/clothing-small:" >&2
  echo "  git clone https://github.com/marcusklasson/GroceryStoreDataset && mv GroceryStoreDataset $DATA_DIR/grocery-store" >&2
  echo "  git clone https://github.com/alexeygrigorev/clothing-dataset-small $DATA_DIR/clothing-small" >&2
  exit 2
fi
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
# the commit the binary is built from ("+changes" when the source differed from it)
built_from=$(git rev-parse HEAD)
git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || built_from="$built_from+changes"
mkdir -p "$OUT"
for model in $MODELS; do
  for seed in $SEEDS; do
    name="$model-s$seed"
    # the commit a kept record names: this invocation's build, when this invocation trained it
    commit="unknown (trained by an earlier invocation of this script)"
    if [ ! -f "$OUT/$name.run/report.json" ]; then
      commit=$built_from
      echo "== $name" >&2
      start=$SECONDS
      target/release/unisight train \
        --config "configs/$model.toml" --data-dir "$DATA_DIR" --seed "$seed" \
        --out "$OUT/$name.safetensors" --work-dir "$OUT/$name.run"
      echo "$name: $((SECONDS - start)) s" >&2
    fi
    keep="results/quality/$name.run"
    if [ ! -f "$keep/report.json" ]; then
      mkdir -p "$keep"
      cp "$OUT/$name.run/report.json" "$keep/report.json"
      { lscpu | sed -n "s/^Model name: *//p"; echo "cores: $(nproc)"; echo "commit: $commit"; } > "$keep/machine.txt"
      cp "$OUT/$name.run/config.toml" "$keep/config.toml"
      # the validation curve (`summarize-runs --validation`), without the per-step losses
      python3 -c 'import json, sys; h = json.load(open(sys.argv[1])); h["steps"] = []; json.dump(h, open(sys.argv[2], "w"))' \
        "$OUT/$name.run/history.json" "$keep/history.json"
    fi
  done
done
table=$(mktemp)
trap 'rm -f "$table"' EXIT
target/release/unisight summarize-runs results/quality/*.run > "$table"
RESULTS=${RESULTS:-docs/results.md}
if [ -n "$RESULTS" ] && grep -q '<!-- runs-table:begin -->' "$RESULTS"; then
  scripts/replace-table.py "$RESULTS" runs-table "$table"
  echo "updated the kept runs' table in $RESULTS" >&2
fi
cat "$table"
