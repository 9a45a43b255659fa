#!/usr/bin/env python3
"""Embeds a catalog on a Ray cluster and writes it into one index (a folder or a Milvus
collection): the catalog is split into N shards by `unisight embed --shard I/N` (a hash of each
item's id, so shards never overlap and a re-run splits the same way); each shard is a Ray task
that runs the unisight binary on a worker and returns the shard's embedding folder through the
object store; a task whose worker dies or whose binary fails is retried (a retry on the same
node resumes the shard's finished chunks); the driver keeps each finished shard under
WORK/shards/ (atomically, so a re-run of the driver skips them) and, once every shard is in,
runs `unisight index build --from SHARD... --out INDEX`, which checks that every shard is there
once and every id once.

  python3 scripts/ray_embed.py --address 127.0.0.1:6379 --unisight target/release/unisight \\
      --model out/model.safetensors --input catalog/ --shards 8 --work out/ray \\
      --index milvus://127.0.0.1:19530/catalog_v2

Every node must see the input images at the same path (shared storage) and have the unisight
binary at --unisight with its assets (scripts/fetch-assets.sh); the model file travels with the
tasks. Ray's own setup (token authentication, loopback-only tests) is in docs/scale-out.md.
"""

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# files of an embedding folder (docs/formats/embedding-folder.md)
SHARD_FILES = ("meta.json", "items.jsonl", "codes.npy", "embeddings.npy")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="Ray cluster address (HOST:PORT)")
    p.add_argument("--unisight", required=True, help="the unisight binary, the same path on every node")
    p.add_argument("--model", help="model file (default: the zero-shot model)")
    p.add_argument("--input", required=True, help="image folder or manifest, the same path on every node")
    p.add_argument("--root", help="root of a manifest's relative paths")
    p.add_argument("--shards", type=int, required=True, help="number of shards (tasks)")
    p.add_argument("--work", required=True, help="driver folder: finished shards, the log")
    p.add_argument("--index", required=True, help="index folder or milvus://HOST:PORT/COLLECTION to create")
    p.add_argument("--floats", default="f16", choices=["none", "f16", "f32"])
    p.add_argument("--server-index", default="flat", help="flat or ivf:N (Milvus only)")
    p.add_argument("--max-retries", type=int, default=3, help="attempts after the first, per shard")
    p.add_argument("--cpus-per-shard", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per shard")
    args = p.parse_args()
    if args.shards < 1:
        p.error("--shards must be at least 1")
    return args


def run_shard(index, count, unisight, model_bytes, model_name, input_path, root, threads, job):
    """One shard on a worker: `unisight embed --shard index/count` into node-local scratch,
    returned as {file name: bytes}. Runs in the Ray worker."""
    scratch = os.path.join(tempfile.gettempdir(), "unisight-ray", job, f"shard-{index}")
    os.makedirs(scratch, exist_ok=True)
    attempts_file = os.path.join(scratch, "attempts")
    with open(attempts_file, "a") as f:
        f.write("x")
    with open(attempts_file) as f:
        attempts = len(f.read())
    command = [unisight, "embed", "--input", input_path, "--out", os.path.join(scratch, "out"),
               "--shard", f"{index}/{count}", "--threads", str(threads)]
    if model_bytes is not None:
        # one copy per node and job, written whole before it is used
        model = os.path.join(os.path.dirname(scratch), model_name)
        if not os.path.exists(model):
            part = f"{model}.{os.getpid()}.part"
            with open(part, "wb") as f:
                f.write(model_bytes)
            os.replace(part, model)
        command += ["--model", model]
    if root:
        command += ["--root", root]

    def die_with_worker():
        # the binary must not outlive a killed worker: a retry would race it on the same folder
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=die_with_worker)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"shard {index}/{count}: unisight embed exited {done.returncode}: "
                           + " | ".join(tail))
    out = os.path.join(scratch, "out")
    files = {}
    for name in SHARD_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    # the shard travels back through the object store; the worker keeps no copy
    shutil.rmtree(scratch, ignore_errors=True)
    return {"index": index, "attempts": attempts, "files": files}


def keep_shard(work, result):
    """Writes a finished shard to WORK/shards/shard-I atomically (a folder renamed into place)."""
    final = os.path.join(work, "shards", f"shard-{result['index']}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # meta.json last: a folder with meta.json is complete (the embed job's own rule)
    names = sorted(result["files"], key=lambda n: n == "meta.json")
    for name in names:
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(result["files"][name])
            f.flush()
            os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def main():
    args = parse_args()
    import ray

    work = os.path.abspath(args.work)
    os.makedirs(os.path.join(work, "shards"), exist_ok=True)
    shard_dirs = [os.path.join(work, "shards", f"shard-{i}") for i in range(args.shards)]
    todo = [i for i, d in enumerate(shard_dirs) if not os.path.exists(os.path.join(d, "meta.json"))]
    if len(todo) < args.shards:
        print(f"resuming: {args.shards - len(todo)} of {args.shards} shards already kept", flush=True)

    ray.init(address=args.address, logging_level="WARNING", log_to_driver=False)
    model_bytes = None
    model_name = "zero-shot"
    if args.model:
        with open(args.model, "rb") as f:
            model_bytes = f.read()
        # named by its bytes: a worker never reuses another model's copy
        model_name = hashlib.sha256(model_bytes).hexdigest()[:16] + "-" + os.path.basename(args.model)
    model_ref = ray.put(model_bytes)
    # this run's name keys the workers' scratch folders, so a retry resumes its own shard
    job = f"{os.path.basename(work.rstrip('/'))}-{args.shards}-{secrets.token_hex(4)}"
    task = ray.remote(run_shard).options(
        num_cpus=args.cpus_per_shard, max_retries=args.max_retries, retry_exceptions=True)
    pending = {
        task.remote(i, args.shards, os.path.abspath(args.unisight), model_ref,
                    model_name, os.path.abspath(args.input),
                    os.path.abspath(args.root) if args.root else None, args.threads, job): i
        for i in todo
    }
    started = time.monotonic()
    failed = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
        for ref in ready:
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - every shard's failure is reported
                failed.append(i)
                print(f"shard {i}/{args.shards} failed after {args.max_retries + 1} attempts: {e}",
                      flush=True)
                continue
            keep_shard(work, result)
            print(f"shard {i}/{args.shards} done (attempts: {result['attempts']})", flush=True)
        # a line every few seconds, terminal or not
        print(f"{args.shards - len(pending) - len(failed)}/{args.shards} shards done, "
              f"{time.monotonic() - started:.0f} s", flush=True)
    ray.shutdown()
    done = args.shards - len(failed)
    print(f"{done}/{args.shards} shards kept; {time.monotonic() - started:.1f} s on the cluster",
          flush=True)
    if failed:
        print(f"{len(failed)} shards failed ({failed}); the index was not built. Run the same "
              f"command again to retry them (finished shards are kept in {work}/shards)",
              file=sys.stderr)
        return 1
    command = [args.unisight, "index", "build", "--out", args.index, "--floats", args.floats,
               "--server-index", args.server_index]
    for d in shard_dirs:
        command += ["--from", d]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
