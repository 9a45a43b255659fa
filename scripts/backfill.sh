#!/usr/bin/env bash
# A back-fill without downtime: while a service started with `unisight serve --deployment FILE`
# answers searches, re-embeds the catalog with a new model on a Ray cluster into a new Milvus
# collection (scripts/ray_embed.py), checks it against the shards (`unisight index check`:
# counts, a sample of items by key and by search), points the deployment file at the new model
# and collection (an atomic rename) and asks the service to switch (`POST /v1/admin/reload`,
# which builds the new arm before swapping, so no request fails). The old collection stays: drop
# it with `unisight index drop` once the switch is confirmed. A back-fill that fails at any step
# leaves the service and its deployment file on the old model and collection.
#
#   UNISIGHT_TOKEN=... scripts/backfill.sh --service http://127.0.0.1:8080 \
#       --deployment deploy.toml --model out/model-v2.safetensors --catalog catalog/ \
#       --index milvus://127.0.0.1:19530/catalog_v2 --ray 127.0.0.1:6379 --work out/backfill
#
# Options: --shards N (default 8), --unisight BIN (default target/release/unisight),
# --sample N (items checked, default 200). Sequencing only: every step is a command of its own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
unisight=${UNISIGHT_BIN:-$here/../target/release/unisight}
shards=8
sample=200
service= deployment= model= catalog= index= ray= work=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --service) service=$2 ;;
    --deployment) deployment=$2 ;;
    --model) model=$2 ;;
    --catalog) catalog=$2 ;;
    --index) index=$2 ;;
    --ray) ray=$2 ;;
    --work) work=$2 ;;
    --shards) shards=$2 ;;
    --unisight) unisight=$2 ;;
    --sample) sample=$2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
for v in service deployment model catalog index ray work; do
  if [ -z "${!v}" ]; then echo "--$v is required (see the header of $0)" >&2; exit 2; fi
done
if [ -z "${UNISIGHT_TOKEN:-}" ]; then
  echo "UNISIGHT_TOKEN must hold the service's token (the reload is a mutation)" >&2
  exit 2
fi
model=$(realpath "$model")

echo "1/4 embedding $catalog with $model on Ray ($ray) into $index"
python3 "$here/ray_embed.py" --address "$ray" --unisight "$unisight" --model "$model" \
  --input "$catalog" --shards "$shards" --work "$work" --index "$index" --floats f32

echo "2/4 checking $index against the shards"
from=()
for ((i = 0; i < shards; i++)); do from+=(--from "$work/shards/shard-$i"); done
"$unisight" index check --index "$index" "${from[@]}" --sample "$sample"

echo "3/4 pointing $deployment at the new model and collection (old one kept as $deployment.previous)"
cp -p "$deployment" "$deployment.previous"
printf 'model = "%s"\nindex = "%s"\n' "$model" "$index" > "$deployment.next"
mv -f "$deployment.next" "$deployment"

echo "4/4 switching the service"
if ! curl -sS --fail-with-body -X POST -H @- "$service/v1/admin/reload" > "$work/reload.json" \
    <<< "Authorization: Bearer $UNISIGHT_TOKEN"; then
  mv -f "$deployment.previous" "$deployment"
  echo "the service refused the switch ($(cat "$work/reload.json" 2>/dev/null)); it still serves" \
    "the old model and collection, and $deployment names them again" >&2
  exit 1
fi
cat "$work/reload.json"; echo
echo "switched. The old collection stays until you drop it (see $deployment.previous):"
echo "  $unisight index drop --index <the old index>"
