#!/usr/bin/env python3
"""Ray embedding against a single `unisight embed` on the same images, same machine, one run:
the cluster's overhead on one machine. A two-node local Ray cluster (one CPU per node, token
authentication) runs scripts/ray_embed.py with two shards (each `unisight embed --threads 1`);
the anchor is one `unisight embed` of the same folder with one and with two ONNX Runtime
threads. Prints images per second of each and Ray's over the single runs'.

  python3 bench/ray_vs_single.py [--input DIR] [--out DIR]

Default input: the Grocery Store test photos in ../shared/data. Needs `pip install
'ray[data]==2.60.0'`; runs itself inside a loopback-only namespace (scripts/netns.sh), since Ray
uses the host's address for some traffic.
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def isolated():
    with open("/proc/self/net/dev") as f:
        names = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    return all(n == "lo" for n in names)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default=os.path.join(ROOT, "..", "shared", "data", "grocery-store", "dataset", "test"))
    p.add_argument("--out", default=os.path.join(ROOT, "out", "bench-ray"))
    p.add_argument("--port", type=int, default=6399)
    args = p.parse_args()
    unisight = os.path.join(ROOT, "target", "release", "unisight")
    if not isolated():
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "unisight"], cwd=ROOT, check=True)
        os.execv(os.path.join(ROOT, "scripts", "netns.sh"),
                 [os.path.join(ROOT, "scripts", "netns.sh"), sys.executable] + sys.argv)
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "tmp"))
    model = os.path.join(out, "model.safetensors")
    subprocess.run([unisight, "init-model", "--dim", "256", "--out", model], check=True)
    # the model's ONNX export is cached by the first run; time the embedding only
    subprocess.run([unisight, "embed", "--model", model, "--input", args.input, "--out",
                    os.path.join(out, "warm")], check=True, capture_output=True)
    rates = {}
    count = None
    for threads in (1, 2):
        started = time.monotonic()
        subprocess.run([unisight, "embed", "--model", model, "--input", args.input, "--threads",
                        str(threads), "--out", os.path.join(out, f"single-{threads}")],
                       check=True, capture_output=True)
        seconds = time.monotonic() - started
        with open(os.path.join(out, f"single-{threads}", "meta.json")) as f:
            count = json.load(f)["embedded"]
        rates[f"single, {threads} thread(s)"] = count / seconds

    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_USAGE_STATS_ENABLED="0", TMPDIR=os.path.join(out, "tmp"))
    temp = f"--temp-dir={os.path.join(out, 'tmp', 'ray')}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", temp]
    try:
        subprocess.run(["ray", "start", "--head", f"--port={args.port}", "--include-dashboard=false"] + common,
                       env=env, check=True, capture_output=True)
        subprocess.run(["ray", "start", f"--address=127.0.0.1:{args.port}"] + common,
                       env=env, check=True, capture_output=True)
        started = time.monotonic()
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ray_embed.py"),
                        "--address", f"127.0.0.1:{args.port}", "--unisight", unisight,
                        "--model", model, "--input", args.input, "--shards", "2",
                        "--work", os.path.join(out, "ray"), "--index", os.path.join(out, "idx")],
                       env=env, check=True, capture_output=True)
        seconds = time.monotonic() - started
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)
    rates["ray, 2 nodes x 1 CPU, 2 shards (incl. index build)"] = count / seconds
    print(f"{count} images from {args.input} on {os.cpu_count()} cores")
    print("| run | images/s | ray / this |")
    print("|---|---|---|")
    ray = rates["ray, 2 nodes x 1 CPU, 2 shards (incl. index build)"]
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {ray / rate:.2f}x |")


if __name__ == "__main__":
    main()
