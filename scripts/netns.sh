#!/usr/bin/env bash
# Runs a command inside a new, loopback-only network namespace: `lo` is up, nothing else
# exists, so whatever the command starts (Milvus, Ray) can listen on and reach 127.0.0.1 only.
# Needs root or unprivileged user namespaces (`unshare -n`, or `unshare -rn` as a user).
#   scripts/netns.sh cargo test -p unisight-milvus
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: scripts/netns.sh COMMAND [ARGS...]" >&2
    exit 2
fi
flags=(-n)
if [ "$(id -u)" -ne 0 ]; then
    flags=(-rn)
fi
exec unshare "${flags[@]}" bash -c 'ip link set lo up && exec "$@"' netns "$@"
