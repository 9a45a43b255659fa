#!/usr/bin/env bash
# The main job, end to end: fetch assets, build, embed a catalog and store photos with the
# zero-shot model, build a binary index, and search it with a store photo.
# Usage: scripts/demo.sh [GROCERY_STORE_DATASET_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/grocery-store/dataset}
out=${2:-out/demo}
if [ ! -f "$data/test.txt" ]; then
  cat >&2 <<MSG
no Grocery Store dataset at $data
get it with: git clone https://github.com/marcusklasson/GroceryStoreDataset && scripts/demo.sh GroceryStoreDataset/dataset
MSG
  exit 2
fi
./scripts/fetch-assets.sh
cargo build --release --locked -p unisight
bin=target/release/unisight
rm -rf "$out" && mkdir -p "$out"
# the catalog: one clean image per product
$bin embed --input "$data/iconic-images-and-descriptions" --out "$out/catalog"
$bin index build --from "$out/catalog" --out "$out/index"
# a store photo as the query
query=$(head -n 1 "$data/test.txt" | cut -d, -f1)
echo "query: $data/$query"
$bin search --index "$out/index" --image "$data/$query" -k 5 --rerank 4
# and all test photos, embedded in bulk (resumable; prints images/s)
$bin embed --input "$data/test" --out "$out/test-photos"
