#!/usr/bin/env bash
# The results tables of docs/results.md: every trained model (zero-shot, specialized per task, unified)
# evaluated on grocery fine (test photos -> iconic catalog images), grocery coarse (test ->
# train photos) and clothing (test -> train), float and bits, over the seeds that exist, then
# compared against zero-shot with paired bootstrap intervals. The table is written between the
# eval-table markers of docs/results.md.
#
#   scripts/eval-benchmark.sh [DATA_DIR] [MODELS_DIR] [OUT]
#     DATA_DIR    ../shared/data (grocery-store/dataset and clothing-small)
#     MODELS_DIR  out/quality, where scripts/quality-bar.sh puts NAME-sSEED.safetensors
#     OUT         out/eval
#   SEEDS="1 2 3"  MODELS="zero-shot specialized-grocery-fine ..."  RESULTS=docs/results.md
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
MODELS_DIR=${2:-out/quality}
OUT=${3:-out/eval}
SEEDS=${SEEDS:-"1 2 3"}
MODELS=${MODELS:-"zero-shot specialized-grocery-fine specialized-grocery-coarse specialized-clothing unified unified-binary"}
RESULTS=${RESULTS:-docs/results.md}
cargo build --release --locked -p unisight
bin=target/release/unisight
entries=()
declare -A entry_of
for model in $MODELS; do
  reports=()
  for seed in $SEEDS; do
    name="$model-s$seed"
    weights="$MODELS_DIR/$name.safetensors"
    # only finished training runs (their report is written last)
    if [ ! -f "$weights" ] || { [ "$model" != zero-shot ] && [ ! -f "$MODELS_DIR/$name.run/report.json" ]; }; then
      continue
    fi
    if [ ! -f "$OUT/$name/report.json" ] || [ "$weights" -nt "$OUT/$name/report.json" ]; then
      echo "== eval $name" >&2
      $bin eval --model "$weights" --config configs/unified.toml --data-dir "$DATA_DIR" \
        --out "$OUT/$name" > /dev/null
    fi
    reports+=("$OUT/$name")
  done
  if [ ${#reports[@]} -gt 0 ]; then
    entries+=("$model=$(IFS=,; echo "${reports[*]}")")
    entry_of[$model]="$model=$(IFS=,; echo "${reports[*]}")"
  else
    echo "note: no finished $model model in $MODELS_DIR" >&2
  fi
done
$bin compare --baseline zero-shot --out "$OUT/compare" "${entries[@]}" > /dev/null
echo "wrote $OUT/compare/compare.md" >&2
# the paper's claim: on each task, the unified models against the model specialized for it
table="$OUT/tables.md"
{
  echo "#### Every model against zero-shot"
  echo
  sed 's/^### /##### /' "$OUT/compare/compare.md"
  echo "#### Unified against the specialized model, each task on its own"
  echo
} > "$table"
for pair in grocery-fine:specialized-grocery-fine grocery-coarse:specialized-grocery-coarse clothing:specialized-clothing; do
  task=${pair%%:*}; special=${pair#*:}
  if [ -z "${entry_of[$special]:-}" ]; then
    echo "##### $task: no finished $special model yet" >> "$table"; echo >> "$table"
    continue
  fi
  unified=()
  for m in unified unified-binary; do [ -n "${entry_of[$m]:-}" ] && unified+=("${entry_of[$m]}"); done
  $bin compare --tasks "$task" --baseline "$special" --out "$OUT/compare-$task" \
    "${entry_of[$special]}" "${unified[@]}" > /dev/null
  sed 's/^### /##### /' "$OUT/compare-$task/compare.md" >> "$table"
done
if [ -n "$RESULTS" ] && grep -q '<!-- eval-table:begin -->' "$RESULTS"; then
  scripts/replace-table.py "$RESULTS" eval-table "$table"
  echo "updated the table in $RESULTS" >&2
fi
cat "$table"
