#!/usr/bin/env python3
"""Bounded, self-stopping load test of `unisight serve` on loopback (Python standard library only).

Levels of concurrency, each for a fixed number of seconds: searches by item id ("more like
this"), searches by uploaded image, and a mix where a tenth of the uploads are malformed (random
bytes, truncated JPEGs, text). Prints throughput and p50/p99 latency per level and counts every
status; any 5xx or dropped connection is reported as a failure (exit status 1).

    python3 bench/load_test.py --url http://127.0.0.1:8080 --items EMB/items.jsonl \
        --images DIR [--seconds 10] [--levels 1,2,4] [--json out.json]

Refuses any URL that is not 127.0.0.1 or localhost: it never loads someone else's server.
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Worker(threading.Thread):
    def __init__(self, host, port, make_request, deadline, seed):
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.make_request = make_request
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.latencies = []
        self.statuses = {}
        self.errors = 0

    def run(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while time.monotonic() < self.deadline:
            method, path, body, headers = self.make_request(self.rng)
            start = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                continue
            self.latencies.append(time.perf_counter() - start)
            self.statuses[status] = self.statuses.get(status, 0) + 1
        conn.close()


def run_level(host, port, make_request, concurrency, seconds):
    deadline = time.monotonic() + seconds
    workers = [Worker(host, port, make_request, deadline, seed=i) for i in range(concurrency)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    latencies = [l for w in workers for l in w.latencies]
    statuses = {}
    for w in workers:
        for s, n in w.statuses.items():
            statuses[s] = statuses.get(s, 0) + n
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": sum(w.errors for w in workers),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--items", required=True, help="items.jsonl of the indexed embedding folder (keys)")
    ap.add_argument("--images", required=True, help="folder of JPEG photos to upload")
    ap.add_argument("--seconds", type=float, default=10.0, help="per level (bounded)")
    ap.add_argument("--levels", default="1,2,4")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    url = urllib.parse.urlparse(args.url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.scheme != "http":
        sys.exit(f"refusing {args.url}: this load test only runs against http://127.0.0.1 or localhost")
    if args.seconds <= 0 or args.seconds > 120:
        sys.exit("--seconds must be in (0, 120]")
    host, port = url.hostname, url.port or 80
    levels = [int(x) for x in args.levels.split(",")]
    if any(c < 1 or c > 64 for c in levels):
        sys.exit("--levels must be between 1 and 64")

    keys = []
    with open(args.items) as f:
        for i, line in enumerate(f):
            keys.append(json.loads(line)["id"])
            if i >= 200_000:
                break
    photos = []
    for name in sorted(os.listdir(args.images)):
        if name.lower().endswith((".jpg", ".jpeg")):
            with open(os.path.join(args.images, name), "rb") as f:
                photos.append(f.read())
        if len(photos) >= 64:
            break
    if not keys or not photos:
        sys.exit("need item keys and at least one JPEG photo")

    def by_id(rng):
        key = urllib.parse.quote(rng.choice(keys), safe="")
        return "GET", f"/v1/items/{key}/similar?k={args.k}", None, {}

    def by_image(rng):
        return "POST", f"/v1/search?k={args.k}", rng.choice(photos), {"Content-Type": "image/jpeg"}

    def malformed(rng):
        photo = rng.choice(photos)
        kind = rng.randrange(3)
        if kind == 0:
            return rng.randbytes(2048), "image/jpeg"
        if kind == 1:
            return photo[: len(photo) // 3], "image/jpeg"
        return b"this is not an image", "text/plain"

    def mixed(rng):
        if rng.random() < 0.1:
            body, kind = malformed(rng)
            return "POST", f"/v1/search?k={args.k}", body, {"Content-Type": kind}
        return by_image(rng)

    results = {}
    for name, make in [("search by id", by_id), ("search by image", by_image), ("image, 10% malformed", mixed)]:
        results[name] = []
        for c in levels:
            r = run_level(host, port, make, c, args.seconds)
            results[name].append(r)
            print(
                f"{name:22s} concurrency {c:2d}: {r['per_second']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms  statuses {r['statuses']}  connection errors {r['connection_errors']}",
                flush=True,
            )
    failures = [
        (name, r["concurrency"])
        for name, rs in results.items()
        for r in rs
        if r["connection_errors"] or any(s.startswith("5") for s in r["statuses"])
    ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "failures": failures}, f, indent=1)
    if failures:
        print(f"FAILURES (5xx or dropped connections): {failures}")
        sys.exit(1)
    print("no 5xx, no dropped connections")


if __name__ == "__main__":
    main()
