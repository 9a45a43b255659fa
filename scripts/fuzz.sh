#!/usr/bin/env bash
# Coverage-guided fuzzing of the index file readers (cargo-fuzz, libFuzzer): seeds and a fixture
# index from `examples/fuzz_seeds.rs`, then each target for SECONDS (default 60):
#   segment    any bytes as a segment file (odd first byte: a body given a valid footer)
#   index_dir  any bytes as MANIFEST.json of a real two-segment index with a tombstone
# Prints libFuzzer's executions and crashes per target. Needs `cargo install cargo-fuzz`; the
# machine's stable toolchain runs in nightly mode (RUSTC_BOOTSTRAP=1) for the sanitizer flags.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
corpus=$PWD/crates/index/fuzz/corpus
cargo run --quiet --release -p unisight-index --example fuzz_seeds -- "$corpus"
cd crates/index/fuzz
status=0
for target in segment index_dir; do
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
