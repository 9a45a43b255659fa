#!/usr/bin/env bash
# Did a change make anything slower? Builds REV (default: the commit before issue 16's
# restructuring) next to the working tree and measures both, alternating, in one run:
#  - embedding: `unisight embed` of the Grocery Store test photos (the rate each reports,
#    ROUNDS rounds, in turn old-new and new-old);
#  - the index scan: the `bench_scan` example of each (1M x 256 bits, k 10; one query and
#    batches of 1000, one thread; queries/s);
#  - the service: `unisight serve` of each on the same 1M-item catalog, measured level by level
#    by one `unisight load-test --compare-url` (searches by id and by image).
# Prints both builds' figures in turn (load-test: "url" is the new build, "compare" the old, and
# its ratio is old / new); writes everything under OUT.
#   scripts/bench-before-after.sh [REV] [DATA_DIR]     OUT=out/before-after ROUNDS=3
#   SECONDS_PER_LEVEL=10 (of each load-test level). REV is checked out as a git worktree under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-13a2ddf^}
data=$(realpath "${2:-../shared/data}")
out=$(realpath -m "${OUT:-out/before-after}")
rounds=${ROUNDS:-3}
mkdir -p "$out"
scripts/fetch-assets.sh >/dev/null

# The old build gets a target folder of its own, and the script refuses two identical binaries:
# the runs of 2026-12-06 shared this checkout's folder and built only the example, so their
# "old" unisight was the working tree's and compared a build with itself.
old_src=$out/src-$(git rev-parse --short "$rev")
[ -d "$old_src" ] || git worktree add --detach "$old_src" "$rev" >/dev/null
[ "$(git -C "$old_src" rev-parse HEAD)" = "$(git rev-parse "$rev")" ] ||
  { echo "$old_src is not at $rev: remove it (git worktree remove $old_src)" >&2; exit 2; }
# (one command per target kind: `-p unisight -p unisight-index --example bench_scan` builds the
# example alone, and an earlier version of this script then copied whatever unisight binary
# the folder held)
for what in "-p unisight --bin unisight" "-p unisight-index --example bench_scan"; do
  # shellcheck disable=SC2086
  CARGO_TARGET_DIR=$out/target-old cargo build --release --locked \
    --manifest-path "$old_src/Cargo.toml" $what
done
cp "$out/target-old/release/unisight" "$out/unisight-old"
cp "$out/target-old/release/examples/bench_scan" "$out/bench_scan-old"
cargo build --release --locked -p unisight --bin unisight
cargo build --release --locked -p unisight-index --example bench_scan
cargo build --release --locked -p unisight-eval --example synthetic_set
cp target/release/unisight "$out/unisight-new"; cp target/release/examples/bench_scan "$out/bench_scan-new"
if cmp -s "$out/unisight-old" "$out/unisight-new"; then
  echo "the builds of $rev and of the working tree are the same binary: nothing to compare" >&2
  exit 2
fi

echo "## embedding: unisight embed, Grocery Store test photos"
: > "$out/embed.txt"; : > "$out/scan.txt"
photos=$data/grocery-store/dataset/test
"$out/unisight-new" init-model --dim 256 --out "$out/m.safetensors" >/dev/null
# old-new, then new-old: a machine that drifts during the run favours neither
for r in $(seq "$rounds"); do
  order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
  for which in $order; do
    rm -rf "$out/emb-$which"
    "$out/unisight-$which" embed --model "$out/m.safetensors" --input "$photos" \
      --out "$out/emb-$which" 2> "$out/embed-$which-$r.log" >/dev/null
    echo "round $r $which: $(tail -1 "$out/embed-$which-$r.log")" | tee -a "$out/embed.txt"
  done
done
cmp "$out/emb-old/codes.npy" "$out/emb-new/codes.npy" && echo "same codes from both builds"

echo "## index scan: bench_scan 1M x 256 bits, k 10, one thread"
for batch in 1 1000; do
  for r in $(seq "$rounds"); do
    order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
    for which in $order; do
      echo "batch $batch round $r $which $("$out/bench_scan-$which" 1000000 256 10 1 "$batch" | tail -1)" \
        | tee -a "$out/scan.txt"
    done
  done
done

echo "## service: load-test, the new build against the old on one 1M-item catalog"
gallery=$out/gallery
[ -f "$gallery/items.jsonl" ] || target/release/examples/synthetic_set "$gallery" 1000000 256 10000 1
mkdir -p "$out/photos"
find "$photos" -name '*.jpg' | sort | awk 'NR % 37 == 0' | head -64 \
  | while read -r f; do cp "$f" "$out/photos/$(basename "$(dirname "$f")")_$(basename "$f")"; done
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
port=18190
for which in new old; do
  rm -rf "$out/index-$which"
  "$out/unisight-$which" index build --from "$gallery" --out "$out/index-$which" --floats f16 \
    >/dev/null
  port=$((port + 1))
  "$out/unisight-$which" serve --model "$out/m.safetensors" --index "$out/index-$which" \
    --addr "127.0.0.1:$port" --workers 2 --threads 1 > "$out/serve-$which.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do grep -q "listening on" "$out/serve-$which.log" && break; sleep 0.1; done
  grep -q "listening on" "$out/serve-$which.log" || { cat "$out/serve-$which.log"; exit 1; }
done
"$out/unisight-new" load-test --url http://127.0.0.1:18191 --compare-url http://127.0.0.1:18192 \
  --items "$gallery/items.jsonl" --images "$out/photos" --kinds id,image --levels 1,4 \
  --seconds "${SECONDS_PER_LEVEL:-10}" --json "$out/load.json"
