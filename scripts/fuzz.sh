#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of untrusted files (cargo-fuzz, libFuzzer; the
# workspace in fuzz/), each target for SECONDS (default 60):
#   segment    any bytes as an index segment file (odd first byte: a body given a valid footer)
#   index_dir  any bytes as MANIFEST.json of a real two-segment index with a tombstone
#   npy        any bytes as an .npy array (odd first byte: given a valid 2-d header)
#   manifest   any bytes as an embedding manifest (JSON Lines or CSV) beside links that lead out
#   task_file  any bytes as a training task file
# Seeds: the index files from `crates/index/examples/fuzz_seeds.rs`, the task files in
# configs/, and a few manifest lines. Prints libFuzzer's executions and crashes per target and
# fails if any target crashed. Needs `cargo install cargo-fuzz`; the machine's stable toolchain
# runs in nightly mode (RUSTC_BOOTSTRAP=1) for the sanitizer flags.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(segment index_dir npy manifest task_file)
corpus=$PWD/fuzz/corpus
cargo run --quiet --release --locked -p unisight-index --example fuzz_seeds -- "$corpus"
mkdir -p "$corpus/task_file" "$corpus/manifest" "$corpus/npy"
cp configs/*.toml "$corpus/task_file/"
# manifest seeds: the first byte picks the format (even: JSON Lines, odd: CSV)
printf '0{"path":"a.jpg","id":"x","label":"milk"}\n{"path":"sub/b.png","domain":"catalog"}\n' \
  > "$corpus/manifest/jsonl"
printf '1path,id,label\na.jpg,x,milk\nsub/b.png,y,juice\n' > "$corpus/manifest/csv"
printf '1\0\2\3%024d' 0 > "$corpus/npy/f32-2x3"
cd fuzz
status=0
for target in "${targets[@]}"; do
  log=$(mktemp)
  if ! UNISIGHT_FUZZ_FIXTURE="$corpus/fixture" RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" \
      "$corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    status=1
    tail -n 40 "$log"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find artifacts/"$target" -type f 2>/dev/null | wc -l)
  echo "$target: ${runs:-?} executions in ${seconds} s, $crashes crash artifacts"
  rm -f "$log"
done
exit $status
