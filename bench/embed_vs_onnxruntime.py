#!/usr/bin/env python3
"""Embedding throughput: `unisight` on ONNX Runtime vs Python onnxruntime on the same ONNX file
and batch, in the same run; then end-to-end `unisight embed` from JPEGs on disk to finished
files, and burn flex inference for reference. Needs `pip install onnxruntime numpy`.

usage: bench/embed_vs_onnxruntime.py [--data ../shared/data/grocery-store/dataset] [--batch 32]
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "unisight")


def run(*args):
    return subprocess.run([BIN, *args], check=True, capture_output=True, text=True, cwd=ROOT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "grocery-store", "dataset"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "unisight"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp()
    onnx = os.path.join(tmp, "lite0.onnx")
    run("export-onnx", "--out", onnx)

    ours = json.loads(run("bench-model", "--batch", str(args.batch), "--iters", str(args.iters)).stdout)["images_per_second"]
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    x = ((np.arange(args.batch * 3 * 224 * 224) * 7919 % 256).astype(np.float32) / 128.0 - 1.0).reshape(args.batch, 3, 224, 224)
    sess.run(None, {"pixels": x})
    start = time.perf_counter()
    for _ in range(args.iters):
        sess.run(None, {"pixels": x})
    py = args.iters * args.batch / (time.perf_counter() - start)
    burn = json.loads(run("bench-model", "--batch", "8", "--iters", "2", "--backend", "burn").stdout)["images_per_second"]

    out = os.path.join(tmp, "emb")
    run("embed", "--input", os.path.join(args.data, "test"), "--out", out, "--batch", str(args.batch))
    meta = json.load(open(os.path.join(out, "meta.json")))
    e2e = meta["images_per_second"]

    print(f"onnxruntime {ort.__version__}, EfficientNet-Lite0 (D = 1280), batch {args.batch}, {os.cpu_count()} CPUs\n")
    print("| measurement | images/s | ratio |")
    print("|---|---|---|")
    print(f"| model only, unisight (Rust, ort) | {ours:.1f} | {ours / py:.2f}x Python onnxruntime |")
    print(f"| model only, Python onnxruntime, same ONNX file | {py:.1f} | 1.00x |")
    print(f"| end to end, `unisight embed` on {meta['embedded']} Grocery Store test JPEGs | {e2e:.1f} | {e2e / ours:.2f}x model only |")
    print(f"| model only, burn flex (batch 8) | {burn:.1f} | {burn / ours:.2f}x unisight ort |")


if __name__ == "__main__":
    sys.exit(main())
