#!/usr/bin/env bash
# The measurements behind docs/capacity-plan.md, in one run on this machine:
#  1. `unisight bench-scatter`: exact scans of ITEMS random codes split over 1 and 2 shard
#     processes (one query at a time, batches), then open-loop loads at RATES queries/s through
#     1 and 2 replicas of every shard, every answer checked against one index's;
#  2. the same codes and queries on a fresh Milvus collection (BIN_FLAT) of a standalone server
#     started here, inside a loopback-only namespace (scripts/netns.sh), after the first part so
#     the idle server does not share the cores with it.
#   scripts/bench-capacity.sh [OUT]      (OUT: out/bench-capacity)
# ITEMS (1000000), RATES (500,1000,1500,2000,3000), SECONDS_PER_RATE (10) override the defaults.
# Needs pip's milvus==2.3.5 for part 2.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$here/out/bench-capacity}")
items=${ITEMS:-1000000}
if [ -z "${UNISIGHT_IN_NETNS:-}" ]; then
  cargo build --release --locked -p unisight --manifest-path "$here/Cargo.toml"
  exec env UNISIGHT_IN_NETNS=1 "$here/scripts/netns.sh" "$0" "$out"
fi
bin=$here/target/release/unisight
rm -rf "$out"; mkdir -p "$out"

"$bin" bench-scatter --items "$items" --queries 400 --shards 1,2 --replicas 1,2 \
  --rates "${RATES:-500,1000,1500,2000,3000}" --seconds "${SECONDS_PER_RATE:-10}" \
  --work "$out/shards" --json "$out/scatter.json" | tee "$out/scatter.md"

pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
python3 "$here/scripts/milvus_server.py" --data "$out/milvus" --ready-file "$out/milvus.ready" \
  --max-seconds 3600 > "$out/milvus.log" 2>&1 &
pid=$!
for _ in $(seq 120); do [ -f "$out/milvus.ready" ] && break; sleep 1; done
[ -f "$out/milvus.ready" ] || { echo "Milvus did not start: $(tail -3 "$out/milvus.log")" >&2; exit 1; }
"$bin" bench-scatter --items "$items" --queries 400 --shards 1 \
  --milvus milvus://127.0.0.1:19530/bench_capacity --milvus-index flat \
  --work "$out/shards" --json "$out/milvus.json" | tee "$out/milvus.md"
