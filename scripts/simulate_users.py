#!/usr/bin/env python3
"""SIMULATED users for the experiment loop: they search a running unisight service by uploading
labelled photos and click, save and dwell on results the way the labels say a person would.

Everything they do is marked simulated (header X-Unisight-Simulated: 1, so the service logs
"simulated": true and reports count it apart). Bounded and self-stopping: exactly --searches
searches, each request with a timeout; only a loopback URL is accepted.

Label files are the Grocery Store layout (`path, fine_id, coarse_id` per line, paths relative
to --root), or any CSV of `path,label[,coarse]` without a header.

Behaviour of one search (seeded):
- the user looks at results top-down; position p is examined with probability 1/(p+1)^0.6;
- an examined result with the query's label is clicked with probability 0.75, one with only
  the same coarse label ("wrong but similar") with 0.2, anything else with 0.02 (noise);
- at most two clicks; a relevant click is saved with probability 0.3; every click has a
  dwell time (longer on relevant results);
- after a click on the right product, half of the users ask for more like it (the web page's
  click on a result) and react to those results the same way;
- 1% of clicks are sent twice (a replay the service must refuse), 0.5% of searches send an
  action for a made-up request id, 1% of events carry a client clock ten minutes off.

  scripts/simulate_users.py --url http://127.0.0.1:8080 --root DATA/grocery-store/dataset \\
      --queries DATA/grocery-store/dataset/test.txt --catalog DATA/grocery-store/dataset/train.txt \\
      --searches 1500 --users 300 --seed 1 --out stats.json
"""
import argparse
import concurrent.futures
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def read_labels(path):
    labels = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            cols = [c.strip() for c in line.split(",")]
            if len(cols) < 2:
                sys.exit(f"{path}, line {n}: expected path,label[,coarse]")
            labels[cols[0]] = (cols[1], cols[2] if len(cols) > 2 else cols[1])
    return labels


def post(url, body, headers, timeout=30):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--root", required=True, help="folder the query paths are relative to")
    ap.add_argument("--queries", required=True, help="labelled query photos")
    ap.add_argument("--catalog", required=True, help="labels of the indexed items, by path")
    ap.add_argument("--searches", type=int, default=1000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write the counts as JSON here")
    args = ap.parse_args()
    host = urllib.parse.urlparse(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing {args.url}: simulated users only talk to a service on loopback")
    queries = sorted(read_labels(args.queries).items())
    catalog = read_labels(args.catalog)
    rng = random.Random(args.seed)
    users = [f"sim-{args.seed}-{rng.getrandbits(64):016x}" for _ in range(args.users)]
    # every search is planned up front from the seed, so a run is reproducible whatever the
    # threads' timing
    plans = [(rng.choice(users), rng.choice(queries), random.Random(rng.getrandbits(64)))
             for _ in range(args.searches)]
    lock = threading.Lock()
    counts = {"searches": 0, "more_like_this": 0, "by_arm": {}, "clicks": 0, "saves": 0,
              "relevant_clicks": 0, "status": {}, "refused_as_expected": 0, "errors": 0}

    def count(key, arm=None, n=1):
        with lock:
            if arm is None:
                counts[key] = counts.get(key, 0) + n
            else:
                a = counts["by_arm"].setdefault(arm, {"searches": 0, "clicks": 0, "relevant_clicks": 0, "saves": 0})
                a[key] += n

    def event(request, key, action, r, **extra):
        now = int(time.time() * 1000)
        if r.random() < 0.01:
            now += 600_000
        body = dict(request=request, key=key, action=action, client_time_ms=now, **extra)
        status, _ = post(f"{args.url}/v1/events", json.dumps(body).encode(), {"Content-Type": "application/json"})
        with lock:
            counts["status"][str(status)] = counts["status"].get(str(status), 0) + 1
        return status

    def one(plan):
        try:
            search(plan)
        except (OSError, ValueError, KeyError) as e:  # a refused connection, a bad answer
            count("errors")
            print(f"  error: {e}", file=sys.stderr)

    def get(url, headers, timeout=30):
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def react(data, fine, coarse, r):
        """Clicks, saves and dwells on one result list; returns the first relevant click."""
        arm, request = data["arm"], data["request"]
        clicks, first_relevant = 0, None
        for position, hit in enumerate(data["results"]):
            if clicks >= 2:
                break
            if r.random() > 1.0 / (position + 1) ** 0.6:
                continue
            label = catalog.get(hit["path"])
            relevant = label is not None and label[0] == fine
            similar = label is not None and label[1] == coarse
            p = 0.75 if relevant else 0.2 if similar else 0.02
            if r.random() >= p:
                continue
            clicks += 1
            if event(request, hit["key"], "click", r) == 202:
                count("clicks")
                count("clicks", arm)
                if relevant:
                    count("relevant_clicks")
                    count("relevant_clicks", arm)
                    first_relevant = first_relevant or hit["key"]
            if r.random() < 0.01 and event(request, hit["key"], "click", r) == 200:
                count("refused_as_expected")
            if relevant and r.random() < 0.3 and event(request, hit["key"], "save", r) == 202:
                count("saves")
                count("saves", arm)
            dwell = int(r.lognormvariate(9.9 if relevant else 8.0, 0.5))
            event(request, hit["key"], "dwell", r, dwell_ms=dwell)
        return first_relevant

    def search(plan):
        user, (path, (fine, coarse)), r = plan
        with open(f"{args.root}/{path}", "rb") as f:
            image = f.read()
        headers = {"X-Unisight-User": user, "X-Unisight-Simulated": "1"}
        status, data = post(f"{args.url}/v1/search?k={args.k}", image,
                            dict(headers, **{"Content-Type": "image/jpeg"}))
        if status != 200:
            count("errors")
            return
        count("searches")
        count("searches", data["arm"])
        clicked = react(data, fine, coarse, r)
        if clicked and r.random() < 0.5:
            key = urllib.parse.quote(clicked, safe="")
            status, more = get(f"{args.url}/v1/items/{key}/similar?k={args.k}", headers)
            if status != 200:
                count("errors")
                return
            count("more_like_this")
            react(more, fine, coarse, r)
        if r.random() < 0.005 and event(f"{r.getrandbits(128):032x}", "x", "click", r) == 404:
            count("refused_as_expected")

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        for done, _ in enumerate(pool.map(one, plans), 1):
            if done % 250 == 0:
                print(f"  {done}/{args.searches} searches, {done / (time.time() - started):.0f}/s", file=sys.stderr)
    counts["seconds"] = round(time.time() - started, 1)
    counts["simulated"] = True
    text = json.dumps(counts, indent=2, sort_keys=True)
    print(text)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        import os
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
