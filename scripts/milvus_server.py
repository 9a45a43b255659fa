#!/usr/bin/env python3
"""Runs the standalone Milvus server of the PyPI package `milvus==2.3.5` on loopback.

The package's server has no listen-address option, so every component's `ip` is set to
127.0.0.1 here; run this inside a loopback-only network namespace (`scripts/netns.sh`) so that
nothing can listen on or reach any other address either way. The server keeps its data in
`--data` (use a fresh folder per test run), answers gRPC on `--port` and health on
`--health-port` (`GET /healthz`). It stops on SIGTERM or SIGINT, and on its own after
`--max-seconds` (a bounded loop: a test that forgets it leaves nothing running); Milvus's own
shutdown can hang, so it gets SIGTERM and then SIGKILL after a deadline.

Usage: milvus_server.py --data DIR [--port 19530] [--health-port 9091] [--ready-file F]
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
STOP_DEADLINE_S = 10


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data folder (created; use a fresh one per run)")
    p.add_argument("--port", type=int, default=19530, help="gRPC port of the proxy")
    p.add_argument("--health-port", type=int, default=9091, help="port of GET /healthz")
    p.add_argument("--ready-file", help="written with the port once the server is healthy")
    p.add_argument("--max-seconds", type=float, default=3600, help="stop after this long")
    p.add_argument("--start-timeout", type=float, default=120, help="seconds to become healthy")
    return p.parse_args()


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return b"OK" in r.read()
    except OSError:
        return False


def main():
    args = parse_args()
    from milvus import MilvusServer  # the PyPI package milvus==2.3.5

    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(os.path.abspath(args.data))
    server.listen_port = args.port
    for component in COMPONENTS:
        server.config.set(f"{component}.ip", "127.0.0.1")
    # the helper picks the health port itself, from 9091 up: fix it instead; and its port
    # probes bind without SO_REUSEADDR, which fails on a restart while the last run's
    # connections sit in TIME_WAIT
    server.webservice_port = args.health_port
    server.config.try_bind_port = _bind_reusable
    server.config.resolve_port = _fixed_port(server.config.resolve_port, args.health_port)
    server.start()
    process = server.server_proc
    stop = {"now": False}

    def request_stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    started = time.monotonic()
    while not healthy(args.health_port):
        if process.poll() is not None:
            sys.exit(f"milvus exited with {process.returncode} before it was healthy; "
                     f"see {args.data}/logs")
        if time.monotonic() - started > args.start_timeout or stop["now"]:
            shutdown(process)
            sys.exit(f"milvus was not healthy within {args.start_timeout:.0f} s; see {args.data}/logs")
        time.sleep(0.2)
    print(f"milvus ready on 127.0.0.1:{args.port} after {time.monotonic() - started:.1f} s "
          f"(pid {process.pid})", flush=True)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{args.port}\n")
        os.replace(tmp, args.ready_file)
    while not stop["now"] and process.poll() is None:
        if time.monotonic() - started > args.max_seconds:
            print(f"milvus: stopping after --max-seconds {args.max_seconds:.0f}", flush=True)
            break
        time.sleep(0.2)
    code = process.poll()
    shutdown(process)
    if code is not None and not stop["now"]:
        sys.exit(f"milvus exited on its own with {code}; see {args.data}/logs")


def _bind_reusable(port):
    """A socket bound to 127.0.0.1:port, or None when the port is taken."""
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        return sock
    except OSError:
        sock.close()
        return None


def _fixed_port(resolve, port):
    def resolve_port(start):
        if start == port or start == 9091:
            sock = _bind_reusable(port)
            if sock is None:
                sys.exit(f"the health port {port} is taken")
            return port, sock
        return resolve(start)
    return resolve_port


def shutdown(process):
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_DEADLINE_S)


if __name__ == "__main__":
    main()
