#!/usr/bin/env bash
# The service on a Milvus collection against the service on the embedded index, same machine,
# same model, same catalog, in one run: `unisight load-test --url EMBEDDED --compare-url MILVUS`
# measures each level on both, one right after the other, and prints Milvus's rate over the
# embedded index's and both p99s (searches by id and by image).
#   scripts/bench-milvus-vs-embedded.sh [DATA_DIR] [OUT]
# DATA_DIR: ../shared/data (its Grocery Store photos are the catalog); OUT: out/bench-milvus.
# Needs pip's milvus==2.3.5; runs itself inside a loopback-only namespace (scripts/netns.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath "${1:-$here/../shared/data}")
out=$(realpath -m "${2:-$here/out/bench-milvus}")
if [ -z "${UNISIGHT_IN_NETNS:-}" ]; then
  cargo build --release --locked -p unisight --manifest-path "$here/Cargo.toml"
  exec env UNISIGHT_IN_NETNS=1 "$here/scripts/netns.sh" "$0" "$data" "$out"
fi
bin=$here/target/release/unisight
catalog=$data/grocery-store/dataset
rm -rf "$out"; mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 "$here/scripts/milvus_server.py" --data "$out/milvus" --ready-file "$out/milvus.ready" \
  --max-seconds 1800 > "$out/milvus.log" 2>&1 &
pids+=($!)
"$bin" init-model --dim 256 --out "$out/model.safetensors"
"$bin" embed --model "$out/model.safetensors" --input "$catalog" --out "$out/emb"
"$bin" index build --floats f32 --from "$out/emb" --out "$out/idx"
for _ in $(seq 120); do [ -f "$out/milvus.ready" ] && break; sleep 1; done
"$bin" index build --floats f32 --from "$out/emb" --out milvus://127.0.0.1:19530/bench

photos=$out/photos; mkdir -p "$photos"
mapfile -t jpegs < <(find "$catalog/test" -name '*.jpg' | sort)
for f in "${jpegs[@]:0:64}"; do
  cp "$f" "$photos/$(basename "$(dirname "$f")")_$(basename "$f")"
done
serve() { # INDEX PORT
  "$bin" serve --model "$out/model.safetensors" --index "$1" --addr "127.0.0.1:$2" \
    > "$out/serve-$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 120); do grep -q listening "$out/serve-$2.log" && return; sleep 1; done
  echo "the service on $1 did not start: $(tail -3 "$out/serve-$2.log")" >&2; exit 1
}
serve "$out/idx" 18091
serve milvus://127.0.0.1:19530/bench 18092
"$bin" load-test --url http://127.0.0.1:18091 --compare-url http://127.0.0.1:18092 \
  --items "$out/emb/items.jsonl" --images "$photos" --kinds id,image \
  --levels "${LEVELS:-1,4}" --seconds "${SECONDS_PER_LEVEL:-8}" --json "$out/load.json"
