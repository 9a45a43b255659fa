#!/usr/bin/env bash
# Where a search by image spends its time: serves the index that scripts/load-test.sh built
# (run that first), uploads its photos from CLIENTS keep-alive clients for SECONDS, and prints
# the throughput, the ratio to model-only ONNX Runtime at batch 1, and the server's CPU time per
# request (from /proc). With PERF=1 it also records the server with `perf` and prints the share
# of each library (ONNX Runtime, unisight, kernel). Loopback only; bounded.
#
#   scripts/serve-cpu.sh [N] [-- extra serve options]     (N: index size, default 1000000)
#   CLIENTS=4 SECONDS_RUN=10 OUT=out/load PERF=0
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
shift || true
if [ "${1:-}" = "--" ]; then shift; fi
OUT=${OUT:-out/load}
CLIENTS=${CLIENTS:-4}
SECONDS_RUN=${SECONDS_RUN:-10}
bin=target/release/unisight
[ -d "$OUT/index-$N" ] || { echo "no $OUT/index-$N: run N=$N scripts/load-test.sh first" >&2; exit 2; }
log=$(mktemp)
$bin serve --model "$OUT/m.safetensors" --index "$OUT/index-$N" --addr 127.0.0.1:0 \
  --workers "${WORKERS:-2}" --threads "${THREADS:-1}" "$@" > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\)\/$/\1/p' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
if [ "${PERF:-0}" = 1 ]; then
  (sleep 2; perf record -q -F 999 -p "$server" -o "$OUT/serve-cpu.perf" -- sleep $((SECONDS_RUN - 3)) >/dev/null 2>&1) &
fi
before=$(ticks)
requests=$(python3 - "$url" "$CLIENTS" "$SECONDS_RUN" "$OUT/photos" <<'PY'
import http.client, os, sys, threading, time, urllib.parse
url, clients, seconds, photos_dir = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlparse(url)
assert u.hostname in ("127.0.0.1", "localhost")
photos = [open(os.path.join(photos_dir, f), "rb").read() for f in sorted(os.listdir(photos_dir))]
deadline = time.monotonic() + seconds
counts = [0] * clients
def run(i):
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    j = i
    while time.monotonic() < deadline:
        conn.request("POST", "/v1/search?k=10", body=photos[j % len(photos)], headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            counts[i] += 1
        j += clients
threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
print(sum(counts))
PY
)
after=$(ticks)
kill $server; wait $server 2>/dev/null || true
trap - EXIT; rm -f "$log"
hz=$(getconf CLK_TCK)
# model-only ONNX Runtime at batch 1, the faster of one session on every core and the server's
# own sessions side by side (as scripts/load-test.sh takes it)
one=$($bin bench-model --model "$OUT/m.safetensors" --batch 1 --iters 300)
side=$($bin bench-model --model "$OUT/m.safetensors" --batch 1 --iters 300 \
  --sessions "${WORKERS:-2}" --threads "${THREADS:-1}")
python3 - "$requests" "$SECONDS_RUN" "$((after - before))" "$hz" "$N" "$CLIENTS" "$(nproc)" "$one" "$side" <<'PY'
import json, sys
requests, seconds, ticks, hz, n, clients, cores = (float(a) for a in sys.argv[1:8])
model = max(json.loads(a)["images_per_second"] for a in sys.argv[8:])
rate = requests / seconds
print(f"{n:.0f} items, {clients:.0f} clients: {rate:.1f} searches by image/s = {rate / model:.2f}x model-only ONNX Runtime at batch 1 ({model:.1f} img/s)")
print(f"server CPU {ticks / hz * 1e3 / max(requests, 1):.2f} core-ms per search; model-only {cores * 1e3 / model:.2f} core-ms per image on {cores:.0f} cores")
PY
if [ "${PERF:-0}" = 1 ]; then
  perf report -i "$OUT/serve-cpu.perf" --no-children --sort dso -g none -q 2>/dev/null | head -6
fi
