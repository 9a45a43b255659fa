#!/usr/bin/env python3
"""Exact Hamming top-k: unisight-index vs FAISS IndexBinaryFlat, side by side in one run.

Both search uniformly random codes (the same distribution; each generates its own) of N items,
k = 10, single queries and batches of 1,000, 1 and 2 threads. Prints a Markdown table with
queries/s and the ratio unisight / FAISS. Needs `pip install faiss-cpu numpy`.

usage: bench/index_vs_faiss.py [--sizes 1000000,10000000] [--bits 256,512]
"""
import argparse, json, os, subprocess, sys, time

import faiss
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def faiss_qps(n, bits, k, threads, batch):
    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(42)
    codes = rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes)
    nq = batch if batch > 1 else 200
    queries = rng.integers(0, 256, size=(nq, bits // 8), dtype=np.uint8)
    index.search(queries[:1], k)  # warm-up
    start = time.perf_counter()
    if batch > 1:
        index.search(queries, k)
    else:
        for i in range(nq):
            index.search(queries[i : i + 1], k)
    return nq / (time.perf_counter() - start)


def unisight_qps(binary, n, bits, k, threads, batch):
    out = subprocess.run([binary, str(n), str(bits), str(k), str(threads), str(batch)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--bits", default="256,512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,1000")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "unisight-index", "--example", "bench_scan"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "examples", "bench_scan")
    print(f"faiss {faiss.__version__}; {os.cpu_count()} CPUs; k = {args.k}\n")
    print("| N | bits | threads | batch | unisight q/s | FAISS q/s | ratio | kernel |")
    print("|---|---|---|---|---|---|---|---|")
    for n in map(int, args.sizes.split(",")):
        for bits in map(int, args.bits.split(",")):
            for threads in map(int, args.threads.split(",")):
                for batch in map(int, args.batches.split(",")):
                    u = unisight_qps(binary, n, bits, args.k, threads, batch)
                    f = faiss_qps(n, bits, args.k, threads, batch)
                    print(f"| {n:,} | {bits} | {threads} | {batch} | {u['qps']:.1f} | {f:.1f} | {u['qps'] / f:.2f}x | {u['kernel']} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
