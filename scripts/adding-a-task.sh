#!/usr/bin/env bash
# Issue 19's rule, "adding a task costs no existing task more than 0.01": trains the README's
# three tasks (configs/unified-binary.toml), then the same recipe with Fashion-MNIST as a fourth
# task (configs/unified-four.toml with the fine task's catalog-started proxies), once plainly and
# once with the three-task model distilled into the three tasks it already had
# ([tasks.distill]), and prints the table of every run's test R@1 (float / bits).
#
#   scripts/adding-a-task.sh [DATA_DIR] [OUT]
#     DATA_DIR  grocery-store/dataset, clothing-small and fashion-mnist (the output of
#               `unisight import-fashion-mnist`; default ../shared/data)
#     OUT       models and run folders (default out/adding-a-task)
#   SEEDS="1 2 3"  seeds to run (default 1).
#   DISTIL="clothing"  the tasks the three-task model is distilled into (default all three;
#                      the run is then named four-distilled-clothing-sSEED).
#
# On 2 cores: about 25 minutes for the three-task run, 40-55 for each four-task run (2,240 steps;
# the teacher's forward pass adds about a third). Killed runs resume; finished ones are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
OUT=${2:-out/adding-a-task}
SEEDS=${SEEDS:-1}
all_three="grocery-fine grocery-coarse clothing"
DISTIL=${DISTIL:-$all_three}
distilled=four-distilled
[ "$DISTIL" = "$all_three" ] || distilled="four-distilled-${DISTIL// /+}"
if [ ! -d "$DATA_DIR/fashion-mnist" ]; then
  echo "need $DATA_DIR/fashion-mnist: apt-get install dataset-fashion-mnist, then" >&2
  echo "  unisight import-fashion-mnist --out $DATA_DIR/fashion-mnist" >&2
  exit 2
fi
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
bin=target/release/unisight
mkdir -p "$OUT"
train() { # NAME CONFIG SEED [--set ...]
  local name=$1 config=$2 seed=$3
  shift 3
  if [ ! -f "$OUT/$name.run/report.json" ]; then
    echo "== $name" >&2
    "$bin" train --config "$config" --data-dir "$DATA_DIR" --seed "$seed" "$@" \
      --out "$OUT/$name.safetensors" --work-dir "$OUT/$name.run"
  fi
}
for seed in $SEEDS; do
  three="$OUT/three-s$seed.safetensors"
  train "three-s$seed" configs/unified-binary.toml "$seed"
  train "four-s$seed" configs/unified-four.toml "$seed" \
    --set tasks.grocery-fine.proxy_init=grocery:iconic
  taught=()
  for task in $DISTIL; do
    taught+=(--set "tasks.$task.distill={teacher = \"$(realpath "$three")\"}")
  done
  train "$distilled-s$seed" configs/unified-four.toml "$seed" \
    --set tasks.grocery-fine.proxy_init=grocery:iconic "${taught[@]}"
done
"$bin" summarize-runs "$OUT"/*.run
