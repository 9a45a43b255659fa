#!/usr/bin/env bash
# The loop, end to end, on this machine (about 10 minutes on 2 cores):
#   1. train a model from human labels (grocery coarse categories only);
#   2. A/B round 1: serve zero-shot (control) and that model (treatment) side by side on
#      127.0.0.1, driven by SIMULATED users (`unisight simulate-users`) who search with store
#      photos and click the exact product; the service logs what it showed and what they did;
#   3. train the next model from that engagement log plus the same human labels;
#   4. A/B round 2: the human-label model (control) against the engagement model (treatment);
#   5. reports of both rounds (CTR, saves, MRR with intervals and tests) and offline Recall@k.
# Every click in it comes from simulated users; the reports say so.
#
#   scripts/experiment-loop.sh [DATA_DIR] [OUT]
#     DATA_DIR  folder with grocery-store/dataset (default ../shared/data)
#     OUT       default out/loop
#   SEARCHES=6000 per round, USERS=1000, SEED=1
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data}
OUT=${2:-out/loop}
SEARCHES=${SEARCHES:-6000}
USERS=${USERS:-1000}
SEED=${SEED:-1}
ds="$DATA_DIR/grocery-store/dataset"
[ -f "$ds/train.txt" ] || { echo "need $ds (see README, Data)" >&2; exit 2; }
scripts/fetch-assets.sh >/dev/null
cargo build --release --locked -p unisight
bin=$PWD/target/release/unisight
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "== catalog: the grocery train photos" >&2
{ echo path; cut -d, -f1 "$ds/train.txt"; } > "$OUT/catalog.csv"

embed_and_index() { # model name
  if [ ! -f "$OUT/$2-index/MANIFEST.json" ]; then
    $bin embed --model "$1" --input "$OUT/catalog.csv" --root "$ds" --out "$OUT/$2-catalog" >&2
    rm -rf "$OUT/$2-index"
    $bin index build --from "$OUT/$2-catalog" --out "$OUT/$2-index" >/dev/null
  fi
}

train() { # config name [--set KEY=VALUE ...]
  local config=$1 name=$2
  shift 2
  if [ ! -f "$OUT/$name.safetensors" ]; then
    $bin train --config "$config" --data-dir "$DATA_DIR" --seed "$SEED" "$@" \
      --out "$OUT/$name.safetensors" --work-dir "$OUT/$name.run" >&2
  fi
}

# serves an experiment file, drives it with simulated users, stops it, reports
round() { # name control-model treatment-model
  local dir="$OUT/$1"
  mkdir -p "$dir"
  if [ ! -f "$dir/report.json" ]; then
    rm -rf "$dir/logs"
    cat > "$dir/experiment.toml" <<EOF
name = "$1"
[[arms]]
name = "$2"
model = "$OUT/$2.safetensors"
index = "$OUT/$2-index"
[[arms]]
name = "$3"
model = "$OUT/$3.safetensors"
index = "$OUT/$3-index"
[log]
dir = "logs"
EOF
    local port_file="$dir/serve.out"
    $bin serve --experiment "$dir/experiment.toml" --addr 127.0.0.1:0 --image-root "$ds" \
      --threads 1 > "$port_file" 2> "$dir/serve.err" &
    local pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 600); do grep -q listening "$port_file" 2>/dev/null && break; sleep 0.1; done
    local url
    url=$(sed -n 's|listening on \(http://[^/]*\)/|\1|p' "$port_file")
    [ -n "$url" ] || { cat "$dir/serve.err" >&2; exit 1; }
    echo "== $1: $2 (control) vs $3 (treatment) at $url, $SEARCHES searches by simulated users" >&2
    $bin simulate-users --url "$url" --root "$ds" --queries "$ds/test.txt" \
      --catalog "$ds/train.txt" --searches "$SEARCHES" --users "$USERS" --seed "$SEED" \
      --out "$dir/simulated-users.json" > /dev/null
    curl -s "$url/readyz" > "$dir/readyz.json"
    curl -s "$url/metrics" | grep '^unisight_events_total' > "$dir/events.txt"
    kill -INT $pid; wait $pid || true
    trap - EXIT
    $bin experiment report --log "$dir/logs" --control "$2" --out "$dir" > /dev/null
  fi
  cat "$dir/report.md"
}

echo "== models" >&2
[ -f "$OUT/zero-shot.safetensors" ] || $bin init-model --out "$OUT/zero-shot.safetensors" >&2
train configs/loop-human.toml human
embed_and_index "$OUT/zero-shot.safetensors" zero-shot
embed_and_index "$OUT/human.safetensors" human

round round-1 zero-shot human

echo "== train from the round-1 engagement log + human labels" >&2
abs_out=$(cd "$OUT" && pwd)
train configs/loop-engagement.toml engagement \
  --set "datasets.clicks.logs=$abs_out/round-1/logs" --set "datasets.clicks.catalog=$abs_out/human-index"
embed_and_index "$OUT/engagement.safetensors" engagement

round round-2 human engagement

echo "== offline, on human labels (grocery test photos -> train photos, exact product)" >&2
for m in zero-shot human engagement; do
  if [ ! -f "$OUT/eval-$m/report.json" ]; then
    $bin eval --model "$OUT/$m.safetensors" --config configs/loop-human.toml --data-dir "$DATA_DIR" \
      --out "$OUT/eval-$m" > /dev/null
  fi
  printf '%s: ' "$m"; grep -m1 -E '^\| Recall@1 ' "$OUT/eval-$m/report.md"
done
